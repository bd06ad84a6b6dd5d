//! One scenario, end to end:
//!
//! network → cluster → healthy → table → workload + role monitor → the schedule's faults for
//! `duration` → heal everything → recovery phase (one primary, every other node streaming, a
//! test write) → stop the workload → final read of every node's ids → stop the cluster →
//! destroy the network → [`History`] → checker → report files.
//!
//! The network is built by the calling thread with `ip` commands; then the thread moves into the
//! client namespace and builds the tokio runtime there, so the workload, the monitors and every
//! probe connect from the client's address (subprocesses choose their own namespace with `ip
//! netns exec`). Teardown runs on every exit path: success, error, and Ctrl-C (the handler only
//! sets a flag; the run notices within 100 ms, drops its work and tears down).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::checker::{self, CheckResult};
use crate::cluster::{self, node_name, Cluster, ClusterConfig, ClusterError};
use crate::history::{parse_timeline_history, FaultInterval, FinalState, History, RunInfo, TimelineSwitch};
use crate::nemesis::{self, NemesisError, Schedule};
use crate::net::{self, NetError, Network};
use crate::report;
use crate::workload::{self, Clock, RoleMonitor, Workload, WorkloadConfig};

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Nemesis(#[from] NemesisError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("interrupted")]
    Interrupted,
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: String,
    pub duration: Duration,
    pub seed: u64,
    pub clients: u32,
    pub nodes: usize,
    /// Where the report goes.
    pub out: PathBuf,
    /// The `pgquorum` executable.
    pub agent: PathBuf,
    pub synchronous_mode: bool,
    /// `synchronous_mode_strict` as well (`--synchronous-mode strict`).
    pub synchronous_mode_strict: bool,
    /// Mutual TLS on the agents' gRPC and REST ports ([`ClusterConfig::tls`]).
    pub tls: bool,
    /// How long the cluster gets to recover after the last fault healed.
    pub recovery_bound: Duration,
    /// Keep the temp directory (data directories and logs) instead of removing it.
    pub keep_temp: bool,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub scenario: String,
    pub seed: u64,
    pub history: History,
    pub result: CheckResult,
    pub out: PathBuf,
    pub elapsed: Duration,
}

impl RunOutcome {
    /// The longest period without an acknowledged write, ms.
    pub fn max_unavailability_ms(&self) -> u64 {
        self.result
            .unavailability
            .iter()
            .map(|w| w.duration_ms)
            .max()
            .unwrap_or(0)
    }
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        // Second signal: give up at once (the next run, or `cleanup`, removes the leftovers).
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(130) };
    }
}

/// SIGINT and SIGTERM set a flag that every run checks; a second one exits at once.
pub fn install_signal_handlers() {
    // SAFETY: the handler only touches an atomic and calls _exit, both async-signal-safe.
    unsafe {
        let handler: extern "C" fn(libc::c_int) = on_signal;
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// Whether SIGINT/SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

async fn wait_interrupted() {
    while !interrupted() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Run one scenario. Builds and tears down everything; returns the checked history (also
/// written to `opts.out`).
pub fn run(opts: &RunOptions) -> Result<RunOutcome, ScenarioError> {
    let started = std::time::Instant::now();
    let schedule = Schedule::generate(&opts.scenario, opts.seed, opts.duration)?;
    println!(
        "== {} (seed {}, {} s, {} clients): schedule\n{schedule}",
        opts.scenario,
        opts.seed,
        opts.duration.as_secs(),
        opts.clients
    );
    if interrupted() {
        return Err(ScenarioError::Interrupted);
    }
    let temp = std::env::temp_dir().join(format!(
        "{}{}-{}-{}",
        net::PREFIX,
        std::process::id(),
        opts.scenario,
        opts.seed
    ));
    let _ = std::fs::remove_dir_all(&temp);
    std::fs::create_dir_all(&temp).map_err(|source| ScenarioError::Io {
        what: format!("create {}", temp.display()),
        source,
    })?;
    let outcome = run_in_network(opts, &schedule, &temp);
    save_logs(opts, &temp);
    if !opts.keep_temp {
        let _ = std::fs::remove_dir_all(&temp);
    } else {
        println!("temp directory kept: {}", temp.display());
    }
    let history = outcome?;
    let result = checker::check(&history);
    report::write_all(&opts.out, &history, &result).map_err(|source| ScenarioError::Io {
        what: format!("write the report into {}", opts.out.display()),
        source,
    })?;
    Ok(RunOutcome {
        scenario: opts.scenario.clone(),
        seed: opts.seed,
        history,
        result,
        out: opts.out.clone(),
        elapsed: started.elapsed(),
    })
}

/// Copy the agents' and the servers' logs next to the report.
fn save_logs(opts: &RunOptions, temp: &Path) {
    if std::fs::create_dir_all(&opts.out).is_err() {
        return;
    }
    for i in 0..opts.nodes {
        let name = format!("{}.log", node_name(i));
        let _ = std::fs::copy(temp.join(&name), opts.out.join(&name));
        // PostgreSQL's own log, which the agent keeps beside the data directory.
        let pg_log = format!("{}.postgres.log", node_name(i));
        let _ = std::fs::copy(temp.join(node_name(i)).join(&pg_log), opts.out.join(&pg_log));
    }
    let _ = std::fs::copy(temp.join("duplicate.log"), opts.out.join("duplicate.log"));
}

fn run_in_network(opts: &RunOptions, schedule: &Schedule, temp: &Path) -> Result<History, ScenarioError> {
    let mut network = Network::create(opts.nodes + nemesis::spare_hosts(&opts.scenario))?;
    let result = (|| {
        if interrupted() {
            return Err(ScenarioError::Interrupted);
        }
        let guard = net::enter(net::CLIENT_NS)?;
        // Built after entering: every thread of the runtime starts in the client namespace.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .map_err(|source| ScenarioError::Io {
                what: "build the tokio runtime".into(),
                source,
            })?;
        let result = runtime.block_on(async {
            tokio::select! {
                r = run_cluster(opts, schedule, &network, temp) => r,
                _ = wait_interrupted() => Err(ScenarioError::Interrupted),
            }
        });
        runtime.shutdown_timeout(Duration::from_secs(5));
        drop(guard);
        result
    })();
    network.destroy();
    result
}

/// Everything that happens inside the network, from the client namespace.
async fn run_cluster(
    opts: &RunOptions,
    schedule: &Schedule,
    net: &Network,
    temp: &Path,
) -> Result<History, ScenarioError> {
    let mut cluster = Cluster::new(ClusterConfig {
        nodes: opts.nodes,
        agent: opts.agent.clone(),
        dir: temp.to_path_buf(),
        synchronous_mode: opts.synchronous_mode,
        synchronous_mode_strict: opts.synchronous_mode_strict,
        fake_time: nemesis::needs_fake_time(&opts.scenario),
        tls: opts.tls,
    })?;
    // This process's gRPC calls (switchovers, keyspace reads) carry pgquorumctl's
    // certificate of this run's CA; without TLS, plain gRPC as before.
    pgquorum::grpc::transport::install(
        cluster
            .ctl_transport()?
            .unwrap_or_else(|| pgquorum::grpc::Transport::open(None)),
    );
    cluster.start_all()?;
    let result = drive(opts, schedule, net, &mut cluster).await;
    if result.is_err() {
        cluster.kill_everything();
    }
    result
}

async fn drive(
    opts: &RunOptions,
    schedule: &Schedule,
    net: &Network,
    cluster: &mut Cluster,
) -> Result<History, ScenarioError> {
    let t0 = Instant::now();
    let primary = cluster.wait_healthy(Duration::from_secs(180)).await?;
    println!(
        "cluster healthy after {:.1} s: primary {}",
        t0.elapsed().as_secs_f64(),
        node_name(primary)
    );
    cluster.execute(primary, &workload::create_table_sql()).await?;

    let clock = Clock::start();
    let workload = Workload::start(
        &WorkloadConfig {
            nodes: opts.nodes,
            clients: opts.clients,
            ..WorkloadConfig::default()
        },
        clock,
    );
    let monitor = RoleMonitor::start(opts.nodes, Duration::from_millis(100), clock);

    let faults = run_schedule(opts, schedule, net, cluster, clock).await;

    // Heal everything, whatever the schedule left.
    let mut notes = Vec::new();
    if let Err(e) = net.heal_all() {
        notes.push(format!("healing the network: {e}"));
    }
    for i in 0..opts.nodes {
        cluster.resume_agent(i);
        if !cluster.agent_running(i) {
            notes.push(format!(
                "{}: agent was not running at the end; started",
                node_name(i)
            ));
            cluster.start_agent(i)?;
        }
    }
    let healed_at_ms = clock.ms();
    println!("[{:>6.1} s] healed; recovery phase", healed_at_ms as f64 / 1000.0);

    let recovery_bound_ms = opts.recovery_bound.as_millis() as u64;
    let recovered_at_ms = recover(cluster, clock, healed_at_ms + recovery_bound_ms).await;
    match recovered_at_ms {
        Some(at) => println!(
            "[{:>6.1} s] recovered {:.1} s after healing",
            at as f64 / 1000.0,
            (at - healed_at_ms) as f64 / 1000.0
        ),
        None => println!("not recovered within {} s", opts.recovery_bound.as_secs()),
    }

    let ops = workload.finish().await;
    let roles = monitor.finish().await;

    let final_primary = cluster.current_primary().await;
    let (ids_per_node, mut read_notes) = final_read(cluster, final_primary).await;
    notes.append(&mut read_notes);
    let (final_timeline, timeline_switches) = match final_primary {
        Some(p) => timeline_history(p).await.unwrap_or_else(|e| {
            notes.push(format!("cannot read the final primary's timeline history: {e}"));
            (None, Vec::new())
        }),
        None => (None, Vec::new()),
    };
    let ids_on_primary = final_primary
        .and_then(|p| ids_per_node.iter().find(|(n, _)| *n == node_name(p)))
        .map(|(_, ids)| ids.clone())
        .unwrap_or_default();

    cluster.stop_all(Duration::from_secs(30)).await;

    Ok(History {
        info: RunInfo {
            scenario: opts.scenario.clone(),
            seed: opts.seed,
            duration_ms: opts.duration.as_millis() as u64,
            nodes: (0..opts.nodes).map(node_name).collect(),
            synchronous_mode: opts.synchronous_mode,
            synchronous_mode_strict: opts.synchronous_mode_strict,
            maximum_lag_on_failover: cluster::MAXIMUM_LAG_ON_FAILOVER,
            ttl_ms: cluster::TTL_MS,
            zero_loss: nemesis::promises_zero_loss(&opts.scenario),
            no_failover: nemesis::promises_no_failover(&opts.scenario),
            tls: opts.tls,
        },
        ops,
        faults,
        roles,
        final_state: FinalState {
            healed_at_ms,
            recovered_at_ms,
            recovery_bound_ms,
            primary: final_primary.map(node_name),
            ids_on_primary,
            ids_per_node,
            notes,
            timeline_switches,
            final_timeline,
        },
    })
}

/// Apply the schedule's faults, each after its gap and once the cluster is healthy again
/// (bounded), as long as the fault ends within the run's duration.
async fn run_schedule(
    opts: &RunOptions,
    schedule: &Schedule,
    net: &Network,
    cluster: &mut Cluster,
    clock: Clock,
) -> Vec<FaultInterval> {
    let end_ms = opts.duration.as_millis() as u64;
    let mut faults = Vec::new();
    for step in &schedule.steps {
        tokio::time::sleep(step.gap).await;
        // Each fault starts from a healthy cluster, so the unavailability it causes is its own.
        if let Err(e) = cluster.wait_healthy(Duration::from_secs(20)).await {
            println!(
                "[{:>6.1} s] not healthy before the next fault: {e}",
                clock.ms() as f64 / 1000.0
            );
        }
        if clock.ms() + step.duration.as_millis() as u64 > end_ms {
            break;
        }
        let applied = match nemesis::apply(step.fault, net, cluster, clock).await {
            Ok(a) => a,
            Err(e) => {
                println!("cannot apply `{}`: {e}", step.fault);
                continue;
            }
        };
        let start_ms = applied.start_ms;
        println!("[{:>6.1} s] {}", start_ms as f64 / 1000.0, applied.description);
        tokio::time::sleep(step.duration).await;
        let healed = nemesis::heal(&applied, net, cluster).await;
        let end = clock.ms();
        match &healed {
            Ok(()) => println!("[{:>6.1} s] healed {}", end as f64 / 1000.0, applied.kind),
            Err(e) => println!(
                "[{:>6.1} s] healing {} failed: {e}",
                end as f64 / 1000.0,
                applied.kind
            ),
        }
        faults.push(FaultInterval {
            kind: applied.kind.to_string(),
            description: applied.description.clone(),
            nodes: applied.nodes.clone(),
            start_ms,
            end_ms: healed.is_ok().then_some(end),
        });
    }
    // The rest of the run without faults.
    let left = end_ms.saturating_sub(clock.ms());
    tokio::time::sleep(Duration::from_millis(left)).await;
    faults
}

/// Poll until the cluster has one primary, every other node streams from it and a test write
/// succeeds; returns when, or `None` past `deadline_ms`.
async fn recover(cluster: &Cluster, clock: Clock, deadline_ms: u64) -> Option<u64> {
    loop {
        if let Ok(primary) = cluster.health().await {
            if probe_write(primary).await {
                return Some(clock.ms());
            }
        }
        if clock.ms() >= deadline_ms {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A write into `jepsen_probe` (not the workload's table) on node `i`.
async fn probe_write(i: usize) -> bool {
    let Ok(client) = cluster::connect(&cluster::conninfo(i, 1), Duration::from_millis(1500)).await else {
        return false;
    };
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            client.batch_execute("INSERT INTO jepsen_probe DEFAULT VALUES")
        )
        .await,
        Ok(Ok(()))
    )
}

/// Wait (bounded) until every replica has replayed what the primary wrote, then read every
/// node's ids.
async fn final_read(cluster: &Cluster, primary: Option<usize>) -> (Vec<(String, Vec<i64>)>, Vec<String>) {
    let mut notes = Vec::new();
    let n = cluster.nodes();
    if let Some(p) = primary {
        let deadline = Instant::now() + Duration::from_secs(15);
        let target = lsn_of(p, "SELECT pg_current_wal_lsn()::text").await;
        loop {
            let behind: Vec<usize> = {
                let mut v = Vec::new();
                for i in (0..n).filter(|i| *i != p) {
                    let replayed = lsn_of(i, "SELECT pg_last_wal_replay_lsn()::text").await;
                    if replayed.is_none() || replayed < target {
                        v.push(i);
                    }
                }
                v
            };
            if behind.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                notes.push(format!(
                    "not caught up with the primary after 15 s: {}",
                    behind
                        .iter()
                        .map(|i| node_name(*i))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    } else {
        notes.push("no single primary at the end".into());
    }
    if let Some(p) = primary {
        if let Some(note) = timeline_cross_check(p).await {
            notes.push(note);
        }
    }
    let mut per_node = Vec::new();
    for i in 0..n {
        match read_ids(i).await {
            Ok(ids) => per_node.push((node_name(i), ids)),
            Err(e) => notes.push(format!("{}: cannot read the ids: {e}", node_name(i))),
        }
    }
    (per_node, notes)
}

/// The workload reads the timeline from the name of the current WAL file; after a checkpoint
/// the control file must say the same. A mismatch means the recorded timelines are wrong.
async fn timeline_cross_check(p: usize) -> Option<String> {
    let client = cluster::connect(&cluster::conninfo(p, 2), Duration::from_secs(3))
        .await
        .ok()?;
    let sql = "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint, \
               (SELECT timeline_id FROM pg_control_checkpoint())::bigint";
    let row = tokio::time::timeout(Duration::from_secs(10), async {
        client.batch_execute("CHECKPOINT").await?;
        client.query_one(sql, &[]).await
    })
    .await
    .ok()?
    .ok()?;
    let (from_walfile, from_control): (i64, i64) = (row.get(0), row.get(1));
    (from_walfile != from_control).then(|| {
        format!(
            "timeline check on {}: WAL file name says {from_walfile}, control file {from_control}",
            node_name(p)
        )
    })
}

/// The final primary's timeline and the switch points of its ancestry, from its newest
/// timeline history file (none on timeline 1).
async fn timeline_history(p: usize) -> Result<(Option<u64>, Vec<TimelineSwitch>), String> {
    let client = cluster::connect(&cluster::conninfo(p, 2), Duration::from_secs(3)).await?;
    let sql = "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint, \
               (SELECT pg_read_file('pg_wal/' || name) FROM pg_ls_waldir() \
                WHERE name ~ '^[0-9A-F]{8}\\.history$' ORDER BY name DESC LIMIT 1)";
    let row = tokio::time::timeout(Duration::from_secs(5), client.query_one(sql, &[]))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| cluster::short_error(&e))?;
    let tl: i64 = row.get(0);
    let text: Option<String> = row.get(1);
    Ok((
        Some(tl as u64),
        text.map(|t| parse_timeline_history(&t)).unwrap_or_default(),
    ))
}

async fn lsn_of(i: usize, sql: &str) -> Option<u64> {
    let client = cluster::connect(&cluster::conninfo(i, 1), Duration::from_millis(1500))
        .await
        .ok()?;
    let row = tokio::time::timeout(Duration::from_secs(2), client.query_one(sql, &[]))
        .await
        .ok()?
        .ok()?;
    let text: Option<String> = row.get(0);
    cluster::parse_lsn(&text?)
}

async fn read_ids(i: usize) -> Result<Vec<i64>, String> {
    let client = cluster::connect(&cluster::conninfo(i, 2), Duration::from_secs(3)).await?;
    let sql = format!("SELECT id FROM {} ORDER BY id", workload::TABLE);
    let rows = tokio::time::timeout(Duration::from_secs(20), client.query(&sql, &[]))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| cluster::short_error(&e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
