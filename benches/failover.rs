//! Failover benchmark for pgquorum: how long writes are unavailable, and whether any
//! acknowledged write is lost, when
//!
//! - `node-kill`: the primary's whole node dies (`kill -9` of its agent, its postmaster and
//!   the postmaster's children, all frozen first so they die at one instant); the node is
//!   restarted afterwards and rejoins as a replica, with pg_rewind if needed;
//! - `postmaster-kill`: only the primary's postmaster dies (`kill -9`); its agent, still
//!   holding the lease, restarts PostgreSQL in place;
//! - `switchover`: an operator asks for one (`POST /switchover` on the primary's REST API).
//!
//! Every figure comes from real `pgquorum` agents, each managing a real PostgreSQL, on
//! 127.0.0.1 (the same set-up as `pgquorum demo`), and from a client that behaves like an
//! application: one connection through a multi-host connection string with
//! `target_session_attrs=read-write`, inserting one row every few milliseconds, reconnecting
//! (with the same string) as soon as an insert fails, and retrying the same row.
//!
//! ```text
//! cargo bench --bench failover                                   # all three, 5 rounds each
//! cargo bench --bench failover -- --mode postmaster-kill --rounds 2
//! cargo bench --bench failover -- --mode node-kill --rounds 10 --interval-ms 2
//! cargo bench --bench failover -- --mode switchover --json
//! ```
//!
//! Definitions (see also `docs/benchmarks.md`):
//!
//! - **acknowledged**: the client got `INSERT 0 1` (or `INSERT 0 0` for a retry, see below)
//!   back. An insert whose connection broke after it was sent, that timed out, or that was
//!   answered with FATAL has an **unknown** outcome: it may or may not have committed. Only
//!   an ERROR answer means the statement certainly rolled back. Either way the client
//!   retries the same id with `ON CONFLICT DO NOTHING`, so a retry of an insert that did
//!   commit is harmless, and its acknowledgement is then true.
//! - **write-unavailability window**: from the last insert acknowledged before the client
//!   noticed the fault (its first failed attempt after the fault was injected) to the first
//!   insert acknowledged after its last failed attempt. "From fault" is the same end point
//!   measured from the moment the fault was injected. Both include one insert interval.
//! - **lost**: acknowledged ids that the current primary does not have once the cluster is
//!   healthy again. Must be 0 for a switchover; after a node kill it is the price of
//!   asynchronous replication (rows the old primary acknowledged but never shipped).
//!
//! Each mode runs its own three-node cluster in a fresh temp directory, stopped (and the
//! directory removed) when the mode ends, also on error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Parser, ValueEnum};
use pgquorum::cluster::ClusterView;
use pgquorum::ctl::cluster_read::cluster_view;
use pgquorum::demo::{Demo, DemoOptions, DEMO_SUPERUSER_PASSWORD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// Three agents: enough for a majority after one is killed.
const NODES: usize = 3;
/// Bootstrap: initdb on one node, a base backup on each other, on a 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(240);
/// A healthy cluster again after a round (includes a restarted node's pg_rewind / rejoin).
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the client must have been writing without a failure before a fault is
/// injected, and after one before the round counts as recovered.
const STEADY: Duration = Duration::from_secs(1);
/// Poll period of every wait in this file.
const POLL_EVERY: Duration = Duration::from_millis(20);
/// An insert (or the statement preparation after connecting) that takes longer than this
/// is given up on, its outcome unknown. Far above a normal insert on loopback (~1 ms), so it
/// only triggers on a connection that silently stopped answering.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole multi-host connection attempt (each host also has `connect_timeout=1`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `POST /switchover` answers when the switchover is done.
const SWITCHOVER_TIMEOUT: Duration = Duration::from_secs(120);
/// REST API credentials the demo writes into every node's config (`restapi.authentication`
/// in `src/demo.rs`); the REST API wants them for every mutating call.
const REST_USER: &str = "admin";
const REST_PASSWORD: &str = "demo-admin";
const INSERT_SQL: &str = "INSERT INTO bench (id) VALUES ($1) ON CONFLICT DO NOTHING";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// node-kill, then postmaster-kill, then switchover.
    All,
    NodeKill,
    PostmasterKill,
    Switchover,
}

/// The fault a round injects into the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    NodeKill,
    PostmasterKill,
    Switchover,
}

impl Fault {
    const ALL: [Fault; 3] = [Fault::NodeKill, Fault::PostmasterKill, Fault::Switchover];

    fn name(self) -> &'static str {
        match self {
            Fault::NodeKill => "node-kill",
            Fault::PostmasterKill => "postmaster-kill",
            Fault::Switchover => "switchover",
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "failover-bench",
    about = "pgquorum failover benchmarks: write unavailability and lost rows (real agents and PostgreSQL on loopback)"
)]
struct Args {
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Faults injected per mode.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The client inserts one row every this many milliseconds.
    #[arg(long, default_value_t = 5)]
    interval_ms: u64,
    /// Pause between two failed connection attempts (after a failed insert the client
    /// reconnects at once). Each attempt walks all three hosts, authenticating on every
    /// replica it meets before it finds the primary, so a tighter loop mostly loads the
    /// 2-core machine the failover runs on; it bounds the resolution of the window.
    #[arg(long, default_value_t = 20)]
    retry_ms: u64,
    /// Give up on a round if the client is not writing steadily again within this many
    /// seconds of the fault.
    #[arg(long, default_value_t = 180)]
    recovery_timeout_s: u64,
    /// Raft port of the first agent of the first mode; each mode uses its own three ports
    /// (base, base+10, base+20), PostgreSQL on port+3200 and the REST API on port+5800.
    #[arg(long, default_value_t = 3601)]
    base_port: u16,
    /// Print the summary as JSON on stdout (progress goes to stderr then).
    #[arg(long)]
    json: bool,
    /// Keep each mode's directory (configs, logs, data) instead of deleting it.
    #[arg(long)]
    keep_dir: bool,
    /// `cargo bench` passes `--bench` to every bench executable; accepted and ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Progress output: stdout normally, stderr with `--json` so stdout stays parseable.
macro_rules! say {
    ($args:expr, $($fmt:tt)*) => {
        if $args.json { eprintln!($($fmt)*) } else { println!($($fmt)*) }
    };
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(&args))
}

async fn run(args: &Args) -> ExitCode {
    if args.rounds == 0 || args.interval_ms == 0 {
        eprintln!("--rounds and --interval-ms must be at least 1");
        return ExitCode::FAILURE;
    }
    let mut outcomes = Vec::new();
    for (offset, fault) in Fault::ALL.into_iter().enumerate() {
        let wanted = match args.mode {
            Mode::All => true,
            Mode::NodeKill => fault == Fault::NodeKill,
            Mode::PostmasterKill => fault == Fault::PostmasterKill,
            Mode::Switchover => fault == Fault::Switchover,
        };
        if !wanted {
            continue;
        }
        // Own ports per mode: a mode's PostgreSQL may still be letting go of its ports
        // while the next one starts.
        let base_port = args.base_port + 10 * offset as u16;
        outcomes.push((fault, run_mode(fault, args, base_port).await));
    }
    print_summary(args, &outcomes);

    let failed = outcomes
        .iter()
        .any(|(_, r)| r.as_ref().map_or(true, |m| m.error.is_some()));
    let switchover_lost = outcomes
        .iter()
        .any(|(f, r)| *f == Fault::Switchover && r.as_ref().is_ok_and(|m| m.lost > 0));
    if switchover_lost {
        eprintln!("FAIL: a switchover lost acknowledged rows");
    }
    if failed || switchover_lost {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

// ---------------------------------------------------------------------------------------
// The client

/// What the client saw, shared with the benchmark, which reads it under the lock.
#[derive(Default)]
struct ClientLog {
    /// (id, when its insert was acknowledged). Ids are acknowledged in order and each one
    /// is retried until it is, so this is exactly 1..=n, in time order.
    acks: Vec<(u64, Instant)>,
    /// When each failed attempt (insert or connection) was noticed.
    failures: Vec<Instant>,
    /// Ids with at least one attempt whose outcome is unknown.
    unknown: BTreeSet<u64>,
    /// Of those, the ids whose retry found the row already there (`INSERT 0 0`): the
    /// unknown attempt had in fact committed, and survived the fault.
    unknown_committed: BTreeSet<u64>,
    /// Failure messages (digits masked, so alike errors group) and how often; the
    /// benchmark takes these per round.
    errors: BTreeMap<String, usize>,
}

impl ClientLog {
    fn fail(&mut self, message: &str) {
        self.failures.push(Instant::now());
        *self.errors.entry(mask_digits(message)).or_default() += 1;
    }

    /// If writes are flowing now (the latest attempt succeeded, recently), the first
    /// acknowledgement of the current run of successes.
    fn flowing_since(&self, now: Instant, fresh: Duration) -> Option<(u64, Instant)> {
        let &(_, last_ack) = self.acks.last()?;
        if now.saturating_duration_since(last_ack) > fresh {
            return None;
        }
        match self.failures.last() {
            None => self.acks.first().copied(),
            Some(&f) if f > last_ack => None,
            Some(&f) => self.acks.get(self.acks.partition_point(|a| a.1 <= f)).copied(),
        }
    }
}

/// Handle on the running client task.
struct Client {
    log: Arc<Mutex<ClientLog>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
    /// An acknowledgement older than this means writes are not flowing (normal cadence is
    /// one interval plus ~1 ms).
    fresh: Duration,
}

impl Client {
    fn start(conninfo: String, interval: Duration, retry: Duration) -> Client {
        let log = Arc::new(Mutex::new(ClientLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(insert_loop(conninfo, interval, retry, log.clone(), stop.clone()));
        Client {
            log,
            stop,
            task,
            fresh: Duration::from_millis(500) + 2 * interval,
        }
    }

    fn log(&self) -> MutexGuard<'_, ClientLog> {
        // A poisoned lock means the client task panicked; what it logged is still valid.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_alive(&self) -> anyhow::Result<()> {
        if self.task.is_finished() {
            bail!("the client task ended unexpectedly");
        }
        Ok(())
    }

    /// Wait until the client has been writing without a failure for `STEADY`.
    async fn wait_steady(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let since = self.log().flowing_since(Instant::now(), self.fresh);
            if since.is_some_and(|(_, t)| t.elapsed() >= STEADY) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let errors = self.log().errors.keys().cloned().collect::<Vec<_>>();
                bail!(
                    "the client did not write steadily for {STEADY:?} within {timeout:?}; it saw: {errors:?}"
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let abort = self.task.abort_handle();
        // The loop checks the flag before every attempt; an attempt is bounded by the
        // connect and statement timeouts.
        if tokio::time::timeout(CONNECT_TIMEOUT + STATEMENT_TIMEOUT, self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

struct Session {
    client: tokio_postgres::Client,
    insert: tokio_postgres::Statement,
}

/// The application: insert id 1, 2, 3, ... one per `interval` through one connection;
/// on any failure drop the connection, reconnect at once through the multi-host string and
/// retry the same id.
async fn insert_loop(
    conninfo: String,
    interval: Duration,
    retry: Duration,
    log: Arc<Mutex<ClientLog>>,
    stop: Arc<AtomicBool>,
) {
    let lock = || log.lock().unwrap_or_else(|p| p.into_inner());
    let mut ticker = tokio::time::interval(interval);
    // After an outage, go on at the normal pace rather than bursting to catch up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut session: Option<Session> = None;
    let mut id: u64 = 1;
    // Whether an earlier attempt for `id` has an unknown outcome.
    let mut id_unknown = false;
    // After a failure the next attempt goes at once, not on the next tick.
    let mut paced = true;
    while !stop.load(Ordering::Relaxed) {
        if paced {
            ticker.tick().await;
        }
        paced = true;
        if session.as_ref().is_some_and(|s| s.client.is_closed()) {
            session = None;
        }
        if session.is_none() {
            match open_session(&conninfo).await {
                Ok(s) => session = Some(s),
                Err(e) => {
                    lock().fail(&e);
                    // Every host refused or is read-only: try again shortly.
                    tokio::time::sleep(retry).await;
                    paced = false;
                    continue;
                }
            }
        }
        let current = session.as_ref().expect("connected above");
        let attempt = tokio::time::timeout(
            STATEMENT_TIMEOUT,
            current.client.execute(&current.insert, &[&(id as i64)]),
        )
        .await;
        match attempt {
            Ok(Ok(rows)) => {
                let mut log = lock();
                log.acks.push((id, Instant::now()));
                if id_unknown && rows == 0 {
                    log.unknown_committed.insert(id);
                }
                id += 1;
                id_unknown = false;
            }
            Ok(Err(e)) => {
                let mut log = lock();
                if !certainly_rolled_back(&e) {
                    log.unknown.insert(id);
                    id_unknown = true;
                }
                log.fail(&error_text(&e));
                session = None;
                paced = false;
            }
            Err(_) => {
                let mut log = lock();
                log.unknown.insert(id);
                id_unknown = true;
                log.fail("insert timed out");
                session = None;
                paced = false;
            }
        }
    }
}

async fn open_session(conninfo: &str) -> Result<Session, String> {
    let (client, connection) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_postgres::connect(conninfo, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| error_text(&e))?;
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away; the insert that
        // notices reports the error.
        let _ = connection.await;
    });
    // Prepared once per connection, so each insert is one round trip.
    let insert = tokio::time::timeout(STATEMENT_TIMEOUT, client.prepare(INSERT_SQL))
        .await
        .map_err(|_| "prepare timed out".to_string())?
        .map_err(|e| error_text(&e))?;
    Ok(Session { client, insert })
}

/// Whether a failed autocommit insert certainly did not commit: the server answered it
/// with an ERROR, so the statement's transaction rolled back. A lost connection, a timeout
/// or a FATAL (which can come after the commit record was flushed) leave it unknown.
fn certainly_rolled_back(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| db.parsed_severity() == Some(tokio_postgres::error::Severity::Error))
}

/// tokio-postgres' Display shows only the kind ("db error"); add the cause.
fn error_text(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

fn mask_digits(message: &str) -> String {
    let masked: String = message
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    masked.chars().take(200).collect()
}

// ---------------------------------------------------------------------------------------
// The cluster under test

struct BenchCluster {
    demo: Demo,
    opts: DemoOptions,
    client: Option<Client>,
    /// Owns the directory: dropping it (also on panic) deletes it, after `demo` is gone.
    dir: Option<tempfile::TempDir>,
}

impl BenchCluster {
    async fn start(fault: Fault, base_port: u16, args: &Args) -> anyhow::Result<BenchCluster> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pgquorum-bench-{}-", fault.name()))
            .tempdir_in(std::env::temp_dir())
            .context("cannot create the mode's temp dir")?;
        let opts = DemoOptions {
            bootstrap_parameters: Vec::new(),
            tls: false,
            dir: Some(dir.path().to_path_buf()),
            base_port,
            nodes: NODES,
            // `cargo bench` builds the agent in the bench (release) profile too.
            exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_pgquorum"))),
            extra_config: String::new(),
            postgres: true,
        };
        say!(
            args,
            "\n=== {}: 3 nodes, PostgreSQL on 127.0.0.1:{}..{}, dir {}",
            fault.name(),
            opts.pg_port(0),
            opts.pg_port(NODES - 1),
            dir.path().display()
        );
        let demo = Demo::start(&opts).await.context("cannot start the agents")?;
        let mut cluster = BenchCluster {
            demo,
            opts,
            client: None,
            dir: Some(dir),
        };
        if args.keep_dir {
            // Leak the TempDir guard so the directory survives; say where it is.
            let path = cluster.dir.take().map(|d| d.keep());
            say!(args, "(keeping {})", path.unwrap_or_default().display());
        }
        Ok(cluster)
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.demo.dir.join(format!("node{}", i + 1)).join("pgdata")
    }

    fn log_file(&self, i: usize) -> PathBuf {
        self.demo.dir.join(format!("node{}.log", i + 1))
    }

    fn client(&self) -> anyhow::Result<&Client> {
        self.client
            .as_ref()
            .ok_or_else(|| anyhow!("the client is not running"))
    }

    /// What an application would use: every node, the primary wherever it is.
    fn multi_host_conninfo(&self) -> String {
        let hosts = ["127.0.0.1"; NODES].join(",");
        let ports = (0..NODES)
            .map(|i| self.opts.pg_port(i).to_string())
            .collect::<Vec<_>>()
            .join(",");
        format!(
            "host={hosts} port={ports} user=postgres password={DEMO_SUPERUSER_PASSWORD} dbname=postgres \
             target_session_attrs=read-write connect_timeout=1"
        )
    }

    /// Wait until one node is primary and every other running node streams from it;
    /// returns the primary's index. The cluster view is what the agents last published
    /// (every loop_wait), so it can lag a restart: the primary itself is asked as well.
    async fn settle(&mut self) -> anyhow::Result<usize> {
        let deadline = Instant::now() + HEALTHY_TIMEOUT;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let view = self.demo.wait_postgres_healthy(remaining).await?;
            let primary = node_index(&view)?;
            let running = (0..NODES).filter(|&i| self.demo.pid(i).is_some()).count();
            if primary_streaming_replicas(self.opts.pg_port(primary)).await == Some(running - 1) {
                return Ok(primary);
            }
            if Instant::now() >= deadline {
                bail!(
                    "no primary with {} streaming replicas within {HEALTHY_TIMEOUT:?}",
                    running - 1
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Wait until the cluster names a primary other than `old`, and return its index.
    async fn wait_new_primary(&self, old: usize, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            for i in (0..NODES).filter(|&i| i != old) {
                if let Ok(view) = cluster_view(&self.demo.endpoints[i]).await {
                    if let Ok(p) = node_index(&view) {
                        if p != old {
                            return Ok(p);
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "the cluster still names node{} primary after {timeout:?}",
                    old + 1
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Stop the client and the agents and delete the directory. On failure first show the
    /// end of each agent's log, since the directory (and the logs with it) is about to go.
    async fn finish(mut self, result: anyhow::Result<ModeResult>) -> anyhow::Result<ModeResult> {
        if let Some(client) = self.client.take() {
            client.stop().await;
        }
        let error = match &result {
            Err(e) => Some(format!("{e:#}")),
            Ok(m) => m.error.clone(),
        };
        if let Some(e) = error {
            eprintln!("mode failed: {e}");
            for i in 0..NODES {
                eprintln!("--- last lines of {}:", self.log_file(i).display());
                eprintln!("{}", tail(&self.log_file(i), 15));
            }
        }
        self.demo.stop().await;
        drop(self.dir.take());
        result
    }
}

/// Index of the node holding the leader lease in `view` (members are named node1..).
fn node_index(view: &ClusterView) -> anyhow::Result<usize> {
    let name = view.leader_name().ok_or_else(|| anyhow!("no primary"))?;
    name.strip_prefix("node")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| (1..=NODES).contains(n))
        .map(|n| n - 1)
        .ok_or_else(|| anyhow!("unexpected member name {name}"))
}

/// A superuser connection to the PostgreSQL on `port` alone.
async fn pg_connect(port: u16) -> anyhow::Result<tokio_postgres::Client> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user=postgres password={DEMO_SUPERUSER_PASSWORD} dbname=postgres connect_timeout=3"
    );
    let (client, connection) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_postgres::connect(&conninfo, tokio_postgres::NoTls),
    )
    .await
    .map_err(|_| anyhow!("connecting to port {port} timed out"))?
    .with_context(|| format!("cannot connect to PostgreSQL on port {port}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// If the PostgreSQL on `port` is a primary, how many replicas stream from it.
async fn primary_streaming_replicas(port: u16) -> Option<usize> {
    let client = pg_connect(port).await.ok()?;
    let row = client
        .query_one(
            "SELECT pg_is_in_recovery(), \
             (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming')",
            &[],
        )
        .await
        .ok()?;
    let in_recovery: bool = row.get(0);
    let streaming: i64 = row.get(1);
    (!in_recovery).then_some(streaming as usize)
}

/// The acknowledged ids (all of 1..=`up_to`) that the primary on `port` does not have.
async fn missing_ids(port: u16, up_to: u64) -> anyhow::Result<BTreeSet<u64>> {
    let client = pg_connect(port).await?;
    let rows = client
        .query(
            "SELECT g FROM generate_series(1::bigint, $1::bigint) AS g \
             WHERE NOT EXISTS (SELECT 1 FROM bench WHERE id = g)",
            &[&(up_to as i64)],
        )
        .await
        .context("cannot read the bench table")?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
}

/// The postmaster pid in `data_dir/postmaster.pid` (its first line).
fn postmaster_pid(data_dir: &Path) -> anyhow::Result<i32> {
    let path = data_dir.join("postmaster.pid");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| anyhow!("{}: no pid on the first line", path.display()))
}

/// `kill -9 pid`; false if there is no such process.
fn sigkill(pid: i32) -> bool {
    signal(pid, libc::SIGKILL)
}

fn signal(pid: i32, sig: i32) -> bool {
    // SAFETY: plain kill(2) on a process of a cluster this benchmark started.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// The whole node dies at once: its agent, its postmaster, and the postmaster's children.
///
/// Killing only the agent and the postmaster is not a node death: PostgreSQL backends
/// outlive a killed postmaster until they notice, and measured here one went on
/// acknowledging inserts for ~13 ms, on a primary whose WAL senders were already gone, so
/// those rows were lost in the failover. So every process is first frozen (SIGSTOP: it runs
/// no further instruction), agent first, then all are killed, agent first, then the
/// postmaster. `backends` (listed beforehand) is completed once the postmaster is frozen.
/// Processes already gone are fine (the fence guard kills the postmaster once the agent is
/// gone).
fn kill_node(agent: i32, postmaster: i32, backends: &mut Vec<i32>) {
    signal(agent, libc::SIGSTOP);
    signal(postmaster, libc::SIGSTOP);
    for &b in backends.iter() {
        signal(b, libc::SIGSTOP);
    }
    for b in children_of(postmaster) {
        if !backends.contains(&b) {
            signal(b, libc::SIGSTOP);
            backends.push(b);
        }
    }
    sigkill(agent);
    sigkill(postmaster);
    for &b in backends.iter() {
        sigkill(b);
    }
}

/// Pids whose parent is `parent` (from /proc/<pid>/stat; empty if /proc is unreadable).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            // "pid (comm) state ppid ...": comm may contain spaces and parentheses, so the
            // fields are counted from the last ')'.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// `POST /switchover {"leader": name}` on 127.0.0.1:`port`, with the demo's REST
/// credentials; Patroni's contract is 200 once the switchover is done. A plain HTTP/1.0
/// exchange: the server closes the connection after the answer, and the body is never
/// chunked.
async fn post_switchover(port: u16, leader: &str) -> anyhow::Result<()> {
    use base64::Engine;
    let body = serde_json::json!({ "leader": leader }).to_string();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{REST_USER}:{REST_PASSWORD}"));
    let request = format!(
        "POST /switchover HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(SWITCHOVER_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow!("POST /switchover: no answer within {SWITCHOVER_TIMEOUT:?}"))?
        .with_context(|| format!("POST /switchover to 127.0.0.1:{port}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status: u16 = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("POST /switchover: unreadable answer {answer:?}"))?;
    if status != 200 {
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
        bail!("POST /switchover answered {status}: {body}");
    }
    Ok(())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// Rounds

struct RoundResult {
    old_primary: usize,
    new_primary: usize,
    /// Last acknowledgement before the client noticed the fault -> first after recovery.
    window: Duration,
    /// Fault injected -> first acknowledgement after recovery.
    from_fault: Duration,
    /// When the last acknowledgement before the outage came, relative to the fault
    /// (negative: before it), in ms.
    last_ack_vs_fault_ms: f64,
    /// How long the fault action itself took (the switchover call answers when done).
    fault_call: Duration,
    failed_attempts: usize,
    /// Ids in this round's outage with an unknown-outcome attempt; of those, how many had
    /// committed after all.
    unknown: usize,
    unknown_committed: usize,
    /// Acknowledged ids found missing after this round.
    lost: Vec<u64>,
    /// Failed attempts while the cluster settled after the previous round (e.g. a killed
    /// node rejoining): not part of any window, but worth knowing about.
    failures_between_rounds: usize,
    errors: BTreeMap<String, usize>,
    /// node-kill: restart of the killed node -> it streams from the new primary.
    rejoin: Option<Duration>,
}

struct ModeResult {
    rounds: Vec<RoundResult>,
    acknowledged: u64,
    unknown: usize,
    unknown_committed: usize,
    lost: usize,
    /// Why the mode stopped before all its rounds, if it did.
    error: Option<String>,
}

async fn run_mode(fault: Fault, args: &Args, base_port: u16) -> anyhow::Result<ModeResult> {
    let mut cluster = BenchCluster::start(fault, base_port, args).await?;
    let result = rounds(&mut cluster, fault, args).await;
    cluster.finish(result).await
}

async fn rounds(cluster: &mut BenchCluster, fault: Fault, args: &Args) -> anyhow::Result<ModeResult> {
    // Bootstrap includes initdb and two base backups.
    let view = cluster
        .demo
        .wait_postgres_healthy(START_TIMEOUT)
        .await
        .context("the cluster did not come up")?;
    let primary = node_index(&view)?;
    let setup = pg_connect(cluster.opts.pg_port(primary)).await?;
    setup
        .batch_execute("CREATE TABLE bench (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
        .await
        .context("cannot create the bench table")?;
    drop(setup);
    cluster.client = Some(Client::start(
        cluster.multi_host_conninfo(),
        Duration::from_millis(args.interval_ms),
        Duration::from_millis(args.retry_ms),
    ));
    say!(
        args,
        "client: one insert every {} ms through {}",
        args.interval_ms,
        cluster
            .multi_host_conninfo()
            .replace(DEMO_SUPERUSER_PASSWORD, "***")
    );

    let mut results: Vec<RoundResult> = Vec::new();
    let mut lost_so_far = BTreeSet::new();
    let mut error = None;
    for round in 1..=args.rounds {
        // A failing round ends the mode, but the rounds measured so far are still reported.
        let r = match one_round(cluster, fault, args, &mut lost_so_far).await {
            Ok(r) => r,
            Err(e) => {
                error = Some(format!("round {round}: {e:#}"));
                break;
            }
        };
        print_round(args, fault, round, &r);
        results.push(r);
        if fault == Fault::NodeKill {
            let node = results.last().map_or(0, |r| r.old_primary);
            match rejoin(cluster, node).await {
                Ok(took) => {
                    say!(
                        args,
                        "          node{} back as a streaming replica after {}",
                        node + 1,
                        ms(took)
                    );
                    if let Some(r) = results.last_mut() {
                        r.rejoin = Some(took);
                    }
                }
                Err(e) => {
                    error = Some(format!("round {round}: {e:#}"));
                    break;
                }
            }
        }
    }

    let client = cluster.client()?;
    let log = client.log();
    Ok(ModeResult {
        rounds: results,
        acknowledged: log.acks.last().map_or(0, |a| a.0),
        unknown: log.unknown.len(),
        unknown_committed: log.unknown_committed.len(),
        lost: lost_so_far.len(),
        error,
    })
}

fn print_round(args: &Args, fault: Fault, round: usize, r: &RoundResult) {
    say!(
        args,
        "round {round:>2}/{}: {} of node{} -> primary node{}: unavailable {} (last ack at fault{:+.1} ms, \
         first ack after it at +{}), {} failed attempts, {} unknown ({} had committed), {} lost{}",
        args.rounds,
        fault.name(),
        r.old_primary + 1,
        r.new_primary + 1,
        ms(r.window),
        r.last_ack_vs_fault_ms,
        ms(r.from_fault),
        r.failed_attempts,
        r.unknown,
        r.unknown_committed,
        r.lost.len(),
        if r.lost.is_empty() {
            String::new()
        } else {
            format!(" {:?}", r.lost.iter().take(20).collect::<Vec<_>>())
        }
    );
    if fault == Fault::Switchover {
        say!(
            args,
            "          POST /switchover answered after {}",
            ms(r.fault_call)
        );
    }
    if r.failures_between_rounds > 0 {
        say!(
            args,
            "          ({} failed attempts while the cluster settled before this round)",
            r.failures_between_rounds
        );
    }
    for (kind, count) in &r.errors {
        say!(args, "          {count:>6} x {kind}");
    }
}

/// Restart the agent of `node` (killed by a node-kill round) and wait until it streams
/// from the new primary again, so the next round starts from three healthy nodes. It must
/// rejoin as a replica, after pg_rewind if its timeline diverged: the agent does that
/// itself. Returns how long that took.
async fn rejoin(cluster: &mut BenchCluster, node: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    cluster
        .demo
        .start_node(node)
        .context("cannot restart the killed agent")?;
    cluster.settle().await.with_context(|| {
        format!(
            "node{} did not rejoin as a streaming replica (it may need pg_rewind; see its log)",
            node + 1
        )
    })?;
    Ok(started.elapsed())
}

async fn one_round(
    cluster: &mut BenchCluster,
    fault: Fault,
    args: &Args,
    lost_so_far: &mut BTreeSet<u64>,
) -> anyhow::Result<RoundResult> {
    let old_primary = cluster.settle().await?;
    cluster.client()?.wait_steady(HEALTHY_TIMEOUT).await?;
    let failures_between_rounds = {
        let mut log = cluster.client()?.log();
        std::mem::take(&mut log.errors).values().sum()
    };

    // Inject the fault; `t0` is the moment before the first action.
    let (t0, fault_call) = match fault {
        Fault::NodeKill => {
            // Read the pid first: the agent's fence guard may kill the postmaster (and
            // PostgreSQL leaves postmaster.pid behind) once the agent is gone.
            let pm = postmaster_pid(&cluster.data_dir(old_primary))?;
            let agent = cluster
                .demo
                .pid(old_primary)
                .ok_or_else(|| anyhow!("node{} has no agent running", old_primary + 1))?;
            // Listed before the clock starts; the list is completed once the postmaster is
            // frozen and cannot fork any more.
            let mut backends = children_of(pm);
            let t0 = Instant::now();
            kill_node(agent as i32, pm, &mut backends);
            // Reap the agent (already dead).
            cluster.demo.kill9(old_primary).await;
            (t0, t0.elapsed())
        }
        Fault::PostmasterKill => {
            let pm = postmaster_pid(&cluster.data_dir(old_primary))?;
            let t0 = Instant::now();
            if !sigkill(pm) {
                bail!("no postmaster with pid {pm} (node{})", old_primary + 1);
            }
            (t0, t0.elapsed())
        }
        Fault::Switchover => {
            let name = format!("node{}", old_primary + 1);
            let t0 = Instant::now();
            post_switchover(cluster.opts.rest_port(old_primary), &name).await?;
            (t0, t0.elapsed())
        }
    };

    let recovery = wait_recovered(
        cluster.client()?,
        t0,
        Duration::from_secs(args.recovery_timeout_s),
    )
    .await?;

    if fault == Fault::NodeKill {
        // The published view can still name the dead node for a while; settle() below
        // must see the cluster that moved on (the killed node stays down until rejoin()).
        cluster.wait_new_primary(old_primary, HEALTHY_TIMEOUT).await?;
    }
    let new_primary = cluster.settle().await?;

    // Every id acknowledged so far must be on the primary. Take the count before the read,
    // so each id in it was committed before the read's snapshot. After a node kill this is
    // final already: the old primary's extra WAL, if any, is discarded when it rejoins.
    let acknowledged = cluster.client()?.log().acks.last().map_or(0, |a| a.0);
    let missing = missing_ids(cluster.opts.pg_port(new_primary), acknowledged).await?;
    let lost: Vec<u64> = missing.difference(lost_so_far).copied().collect();
    lost_so_far.extend(lost.iter().copied());

    let errors = std::mem::take(&mut cluster.client()?.log().errors);
    Ok(RoundResult {
        old_primary,
        new_primary,
        window: recovery.first_ack_after.duration_since(recovery.last_ack_before),
        from_fault: recovery.first_ack_after.duration_since(t0),
        last_ack_vs_fault_ms: signed_ms(recovery.last_ack_before, t0),
        fault_call,
        failed_attempts: recovery.failed_attempts,
        unknown: recovery.unknown,
        unknown_committed: recovery.unknown_committed,
        lost,
        failures_between_rounds,
        errors,
        rejoin: None,
    })
}

struct Recovery {
    last_ack_before: Instant,
    first_ack_after: Instant,
    failed_attempts: usize,
    unknown: usize,
    unknown_committed: usize,
}

/// Wait until the client has noticed the fault (a failed attempt at or after `t0`) and has
/// been writing without a failure for `STEADY` since; then read the outage off its log.
async fn wait_recovered(client: &Client, t0: Instant, timeout: Duration) -> anyhow::Result<Recovery> {
    let deadline = t0 + timeout;
    loop {
        client.check_alive()?;
        {
            let log = client.log();
            let now = Instant::now();
            let first_failure = log.failures.iter().copied().find(|&f| f >= t0);
            let since = log.flowing_since(now, client.fresh);
            if let (Some(first_failure), Some((first_id, first_ack_after))) = (first_failure, since) {
                if now.duration_since(first_ack_after) >= STEADY {
                    let before = &log.acks[..log.acks.partition_point(|a| a.1 < first_failure)];
                    let &(last_id, last_ack_before) = before
                        .last()
                        .ok_or_else(|| anyhow!("no acknowledged insert before the fault"))?;
                    let in_outage = |set: &BTreeSet<u64>| set.range(last_id + 1..=first_id).count();
                    return Ok(Recovery {
                        last_ack_before,
                        first_ack_after,
                        failed_attempts: log
                            .failures
                            .iter()
                            .filter(|&&f| f >= t0 && f <= first_ack_after)
                            .count(),
                        unknown: in_outage(&log.unknown),
                        unknown_committed: in_outage(&log.unknown_committed),
                    });
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "the client {} within {timeout:?} of the fault; it saw: {:?}",
                    if first_failure.is_none() {
                        "never noticed the fault"
                    } else {
                        "was not writing steadily again"
                    },
                    log.errors.keys().collect::<Vec<_>>()
                );
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

// ---------------------------------------------------------------------------------------
// Statistics and output

/// Nearest-rank median (the lower middle one for an even count), as benches/raft.rs does.
fn median(samples: &[Duration]) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn as_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

fn signed_ms(at: Instant, origin: Instant) -> f64 {
    match at.checked_duration_since(origin) {
        Some(after) => as_ms(after),
        None => -as_ms(origin.duration_since(at)),
    }
}

struct ModeStats {
    median_window: Duration,
    max_window: Duration,
    median_from_fault: Duration,
}

impl ModeResult {
    fn stats(&self) -> Option<ModeStats> {
        let windows: Vec<Duration> = self.rounds.iter().map(|r| r.window).collect();
        let from_fault: Vec<Duration> = self.rounds.iter().map(|r| r.from_fault).collect();
        Some(ModeStats {
            median_window: median(&windows)?,
            max_window: windows.iter().max().copied()?,
            median_from_fault: median(&from_fault)?,
        })
    }

    fn median_rejoin(&self) -> Option<Duration> {
        let rejoins: Vec<Duration> = self.rounds.iter().filter_map(|r| r.rejoin).collect();
        median(&rejoins)
    }
}

fn print_summary(args: &Args, outcomes: &[(Fault, anyhow::Result<ModeResult>)]) {
    if args.json {
        println!("{}", summary_json(args, outcomes));
        return;
    }
    println!("\n==================== summary ====================");
    println!(
        "client: one insert every {} ms, multi-host, target_session_attrs=read-write",
        args.interval_ms
    );
    for (fault, outcome) in outcomes {
        match outcome {
            Err(e) => println!("{}: FAILED: {e:#}", fault.name()),
            Ok(m) => {
                if let Some(s) = m.stats() {
                    println!(
                        "{}: {} rounds; write unavailability median {}, max {}; from the fault median {}; \
                         {} acknowledged, {} unknown ({} had committed), {} lost",
                        fault.name(),
                        m.rounds.len(),
                        ms(s.median_window),
                        ms(s.max_window),
                        ms(s.median_from_fault),
                        m.acknowledged,
                        m.unknown,
                        m.unknown_committed,
                        m.lost
                    );
                }
                if let Some(rejoin) = m.median_rejoin() {
                    println!(
                        "{}: the killed node rejoined after median {}",
                        fault.name(),
                        ms(rejoin)
                    );
                }
                if let Some(e) = &m.error {
                    println!("{}: STOPPED after {} rounds: {e}", fault.name(), m.rounds.len());
                }
            }
        }
    }
    println!();
    println!(
        "{:<16} {:>6} {:>13} {:>13} {:>16} {:>9} {:>8} {:>5}",
        "mode", "rounds", "median ms", "max ms", "from fault ms", "acked", "unknown", "lost"
    );
    for (fault, outcome) in outcomes {
        match outcome.as_ref().ok().and_then(|m| m.stats().map(|s| (m, s))) {
            None => println!("{:<16} {:>6}", fault.name(), "FAILED"),
            Some((m, s)) => println!(
                "{:<16} {:>6} {:>13.1} {:>13.1} {:>16.1} {:>9} {:>8} {:>5}{}",
                fault.name(),
                m.rounds.len(),
                as_ms(s.median_window),
                as_ms(s.max_window),
                as_ms(s.median_from_fault),
                m.acknowledged,
                m.unknown,
                m.lost,
                if m.error.is_some() {
                    "  (stopped early)"
                } else {
                    ""
                }
            ),
        }
    }
    println!("=================================================");
}

fn summary_json(args: &Args, outcomes: &[(Fault, anyhow::Result<ModeResult>)]) -> serde_json::Value {
    let modes: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|(fault, outcome)| match outcome {
            Err(e) => serde_json::json!({ "mode": fault.name(), "error": format!("{e:#}") }),
            Ok(m) => {
                let stats = m.stats();
                let rounds: Vec<serde_json::Value> = m
                    .rounds
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "old_primary": format!("node{}", r.old_primary + 1),
                            "new_primary": format!("node{}", r.new_primary + 1),
                            "window_ms": as_ms(r.window),
                            "from_fault_ms": as_ms(r.from_fault),
                            "last_ack_vs_fault_ms": r.last_ack_vs_fault_ms,
                            "fault_call_ms": as_ms(r.fault_call),
                            "failed_attempts": r.failed_attempts,
                            "unknown": r.unknown,
                            "unknown_committed": r.unknown_committed,
                            "lost": r.lost,
                            "rejoin_ms": r.rejoin.map(as_ms),
                        })
                    })
                    .collect();
                serde_json::json!({
                    "mode": fault.name(),
                    "rounds": rounds,
                    "median_window_ms": stats.as_ref().map(|s| as_ms(s.median_window)),
                    "max_window_ms": stats.as_ref().map(|s| as_ms(s.max_window)),
                    "median_from_fault_ms": stats.as_ref().map(|s| as_ms(s.median_from_fault)),
                    "acknowledged": m.acknowledged,
                    "unknown": m.unknown,
                    "unknown_committed": m.unknown_committed,
                    "lost": m.lost,
                    "error": m.error,
                })
            }
        })
        .collect();
    serde_json::json!({
        "interval_ms": args.interval_ms,
        "retry_ms": args.retry_ms,
        "modes": modes,
    })
}
