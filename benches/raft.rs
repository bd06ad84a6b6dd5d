//! Raft benchmarks for pgquorum: commit latency, re-election after `kill -9` of the Raft
//! leader, and whether the Raft data directory stays bounded under a long stream of writes.
//!
//! Every figure comes from real `pgquorum` agent processes on 127.0.0.1 (the same set-up as
//! `pgquorum demo`), talked to over gRPC exactly as `pgquorumctl` and the agents do.
//!
//! ```text
//! cargo bench --bench raft                                  # everything, modest sizes
//! cargo bench --bench raft -- --mode latency --latency-writes 4000
//! cargo bench --bench raft -- --mode reelection --rounds 20
//! cargo bench --bench raft -- --mode compaction --writes 100000
//! ```
//!
//! Each scenario runs its own three-agent group in a fresh temp directory, which is removed
//! (and the agents stopped) when the scenario ends, also on error; agents are started with
//! kill-on-drop, so even a panic does not leave them behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::{Parser, ValueEnum};
use pgquorum::ctl::{connect, fetch_raft_status};
use pgquorum::demo::{Demo, DemoOptions};
use pgquorum::grpc::pb::admin::admin_client::AdminClient;
use pgquorum::grpc::pb::admin::{NodeStatusReply, NodeStatusRequest, WriteRequest};
use pgquorum::grpc::GrpcChannel as Channel;
use pgquorum::keyspace::{Command, CommandOutcome, Key, Precondition};

/// The role_log line an agent writes each time it becomes a candidate.
const ELECTION_LOG_LINE: &str = "starting an election";
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(60);
/// Longer than any wait the agent itself does (request_timeout is 2 s with the defaults), so
/// a client-side timeout never hides the agent's own answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_EVERY: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// latency, then reelection, then compaction.
    All,
    Latency,
    Reelection,
    Compaction,
}

#[derive(Debug, Parser)]
#[command(
    name = "raft-bench",
    about = "pgquorum Raft benchmarks (real agents on loopback)"
)]
struct Args {
    #[arg(long, value_enum, default_value_t = Mode::All)]
    mode: Mode,
    /// Sequential writes in the latency run, alternating leader / follower (half each).
    #[arg(long, default_value_t = 2000)]
    latency_writes: usize,
    /// Kill -9 rounds in the re-election run.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Writes in the compaction run.
    #[arg(long, default_value_t = 50_000)]
    writes: u64,
    /// Concurrent writers in the compaction run.
    #[arg(long, default_value_t = 8)]
    writers: u64,
    /// Print a disk sample every this many writes in the compaction run.
    #[arg(long, default_value_t = 10_000)]
    report_every: u64,
    /// First port; each scenario uses three ports from base, base+10, base+20.
    #[arg(long, default_value_t = 3401)]
    base_port: u16,
    /// Keep each scenario's directory (configs, logs, Raft data) instead of deleting it.
    #[arg(long)]
    keep_dir: bool,
    /// `cargo bench` passes `--bench` to every bench executable; accepted and ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    runtime.block_on(run(&args))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let mut summary = Summary::default();
    let wants = |m: Mode| args.mode == Mode::All || args.mode == m;
    if wants(Mode::Latency) {
        let cluster = BenchCluster::start("latency", args.base_port, args.keep_dir).await?;
        let result = commit_latency(&cluster, args.latency_writes).await;
        summary.latency = Some(cluster.finish(result).await?);
    }
    if wants(Mode::Reelection) {
        let mut cluster = BenchCluster::start("reelection", args.base_port + 10, args.keep_dir).await?;
        let result = reelection(&mut cluster, args.rounds).await;
        summary.reelection = Some(cluster.finish(result).await?);
    }
    if wants(Mode::Compaction) {
        let cluster = BenchCluster::start("compaction", args.base_port + 20, args.keep_dir).await?;
        let result = compaction(&cluster, args).await;
        summary.compaction = Some(cluster.finish(result).await?);
    }
    summary.print();
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The cluster under test

/// A three-agent group in its own directory, plus one gRPC client per agent that is reused
/// for every call so that connection set-up is not part of any measurement.
struct BenchCluster {
    demo: Demo,
    clients: Vec<AdminClient<Channel>>,
    /// Owns the directory: dropping it (also on panic) deletes it, after `demo` is gone.
    dir: Option<tempfile::TempDir>,
}

impl BenchCluster {
    async fn start(scenario: &str, base_port: u16, keep_dir: bool) -> anyhow::Result<BenchCluster> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("pgquorum-bench-{scenario}-"))
            .tempdir_in(std::env::temp_dir())
            .context("cannot create the scenario's temp dir")?;
        let options = DemoOptions {
            bootstrap_parameters: Vec::new(),
            tls: false,
            dir: Some(dir.path().to_path_buf()),
            base_port,
            nodes: 3,
            exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_pgquorum"))),
            extra_config: String::new(),
            postgres: false,
        };
        println!(
            "\n=== {scenario}: 3 agents on 127.0.0.1:{base_port}.., dir {}",
            dir.path().display()
        );
        let demo = Demo::start(&options).await.context("cannot start the agents")?;
        let clients = demo
            .endpoints
            .iter()
            .map(|e| connect(e))
            .collect::<Result<Vec<_>, _>>()?;
        let mut cluster = BenchCluster {
            demo,
            clients,
            dir: Some(dir),
        };
        if keep_dir {
            // Leak the TempDir guard so the directory survives; say where it is.
            let path = cluster.dir.take().map(|d| d.keep());
            println!("(keeping {})", path.unwrap_or_default().display());
        }
        if let Err(e) = cluster.demo.wait_healthy(HEALTHY_TIMEOUT).await {
            return Err(cluster.finish::<()>(Err(e.into())).await.unwrap_err());
        }
        Ok(cluster)
    }

    fn dir(&self) -> &Path {
        &self.demo.dir
    }

    fn raft_data_dir(&self, i: usize) -> PathBuf {
        self.dir().join(format!("node{}", i + 1)).join("raft")
    }

    fn log_file(&self, i: usize) -> PathBuf {
        self.dir().join(format!("node{}.log", i + 1))
    }

    /// Elections started so far, per agent (from the agents' own role-change log lines).
    fn elections_started(&self) -> Vec<usize> {
        (0..self.clients.len())
            .map(|i| count_lines_containing(&self.log_file(i), ELECTION_LOG_LINE))
            .collect()
    }

    /// The index of the agent that is Raft leader, and its term, as the group reports it.
    async fn leader(&self) -> anyhow::Result<(usize, u64)> {
        let rows = fetch_raft_status(&self.demo.endpoints[0]).await?;
        let leader = rows
            .iter()
            .find(|r| r.role == "leader")
            .ok_or_else(|| anyhow!("no Raft leader"))?;
        let index = self
            .demo
            .endpoints
            .iter()
            .position(|e| *e == leader.address)
            .ok_or_else(|| anyhow!("leader address {} is not one of ours", leader.address))?;
        Ok((index, leader.term.unwrap_or(0)))
    }

    /// Stop the agents and delete the directory. On failure first show the end of each
    /// agent's log, since the directory (and the logs with it) is about to go.
    async fn finish<T>(mut self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        if let Err(e) = &result {
            eprintln!("scenario failed: {e:#}");
            for i in 0..self.clients.len() {
                eprintln!("--- last lines of {}:", self.log_file(i).display());
                eprintln!("{}", tail(&self.log_file(i), 15));
            }
        }
        self.clients.clear();
        self.demo.stop().await;
        drop(self.dir.take());
        result
    }
}

fn count_lines_containing(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().filter(|l| l.contains(needle)).count())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"));
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A small member record, shaped like the one agents publish every loop.
fn member_value(sequence: u64) -> serde_json::Value {
    serde_json::json!({
        "conn_url": "postgres://127.0.0.1:5432/postgres",
        "api_url": "http://127.0.0.1:8008/patroni",
        "role": "replica",
        "state": "running",
        "timeline": 1,
        "received_lsn": format!("0/{:X}", sequence * 8192),
        "replayed_lsn": format!("0/{:X}", sequence * 8192),
        "tags": {},
        "version": "0.1.0",
    })
}

fn member_put(name: &str, sequence: u64, ttl_ms: Option<u64>) -> Command {
    Command::Put {
        key: Key::Member(name.to_string()),
        value: member_value(sequence),
        ttl_ms,
        precondition: Precondition::Any,
    }
}

fn lease_renewal(sequence: u64) -> Command {
    Command::AcquireLease {
        key: Key::Leader,
        holder: "bench".to_string(),
        holder_addr: None,
        value: serde_json::json!({ "holder": "bench", "renewal": sequence }),
        ttl_ms: 30_000,
    }
}

/// One keyspace write through `client`, encoded as `pgquorum::ctl::client::write` does, but
/// on a connection that is kept open. Returns the log index it was committed at.
async fn write(client: &AdminClient<Channel>, command: &Command) -> anyhow::Result<u64> {
    let body = serde_json::to_vec(command).context("command does not serialise")?;
    let mut request = tonic::Request::new(WriteRequest {
        command: body,
        forwarded: false,
        force_resume: false,
    });
    request.set_timeout(WRITE_TIMEOUT);
    let reply = client
        .clone()
        .write(request)
        .await
        .map_err(|s| anyhow!("{}: {}", s.code(), s.message()))?;
    let reply = reply.into_inner();
    let outcome: CommandOutcome =
        serde_json::from_slice(&reply.outcome).context("unreadable write outcome")?;
    if !outcome.is_applied() {
        bail!("write not applied: {outcome:?}");
    }
    Ok(reply.log_index)
}

async fn node_status(client: &AdminClient<Channel>, timeout: Duration) -> anyhow::Result<NodeStatusReply> {
    let mut request = tonic::Request::new(NodeStatusRequest {});
    request.set_timeout(timeout);
    let reply = tokio::time::timeout(timeout, client.clone().node_status(request))
        .await
        .map_err(|_| anyhow!("no answer within {timeout:?}"))?
        .map_err(|s| anyhow!("{}: {}", s.code(), s.message()))?;
    Ok(reply.into_inner())
}

// ---------------------------------------------------------------------------------------
// Statistics

#[derive(Debug, Clone, Copy)]
struct Stats {
    count: usize,
    median: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

impl Stats {
    fn of(samples: &[Duration]) -> Option<Stats> {
        let mut sorted = samples.to_vec();
        sorted.sort();
        // Nearest-rank percentile: the smallest sample with at least p% of samples <= it.
        let pct =
            |p: f64| sorted[((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        (!sorted.is_empty()).then(|| Stats {
            count: sorted.len(),
            median: pct(50.0),
            p90: pct(90.0),
            p99: pct(99.0),
            max: *sorted.last().expect("not empty"),
        })
    }

    fn line(&self) -> String {
        format!(
            "n={:<5} median {:>8}  p90 {:>8}  p99 {:>8}  max {:>8}",
            self.count,
            ms(self.median),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        )
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

// ---------------------------------------------------------------------------------------
// 1. Commit latency

struct LatencyResult {
    to_leader: Stats,
    via_follower: Stats,
    elections_during_run: usize,
    leader_changed: bool,
}

async fn commit_latency(cluster: &BenchCluster, writes: usize) -> anyhow::Result<LatencyResult> {
    let (leader, term_before) = cluster.leader().await?;
    let follower = (0..cluster.clients.len())
        .find(|&i| i != leader)
        .expect("three agents");
    println!(
        "leader {} (term {term_before}), follower {}; {writes} sequential writes alternating",
        cluster.demo.endpoints[leader], cluster.demo.endpoints[follower]
    );
    // Warm-up: open both connections and let the follower open its channel to the leader.
    for i in 0..20 {
        write(&cluster.clients[leader], &member_put("bench", i, None))
            .await
            .context("warm-up write")?;
        write(&cluster.clients[follower], &member_put("bench", i, None))
            .await
            .context("warm-up write")?;
    }
    let elections_before: usize = cluster.elections_started().iter().sum();

    let mut to_leader = Vec::with_capacity(writes / 2 + 1);
    let mut via_follower = Vec::with_capacity(writes / 2 + 1);
    for i in 0..writes as u64 {
        let (target, samples) = if i % 2 == 0 {
            (leader, &mut to_leader)
        } else {
            (follower, &mut via_follower)
        };
        let started = Instant::now();
        write(&cluster.clients[target], &member_put("bench", i, None))
            .await
            .with_context(|| format!("write {i}"))?;
        samples.push(started.elapsed());
    }

    let elections_during_run = cluster.elections_started().iter().sum::<usize>() - elections_before;
    let (leader_after, term_after) = cluster.leader().await?;
    let result = LatencyResult {
        to_leader: Stats::of(&to_leader).expect("at least one write"),
        via_follower: Stats::of(&via_follower).ok_or_else(|| anyhow!("--latency-writes must be >= 2"))?,
        elections_during_run,
        leader_changed: leader_after != leader || term_after != term_before,
    };
    println!("to the leader:          {}", result.to_leader.line());
    println!("via a follower (fwd):   {}", result.via_follower.line());
    println!(
        "elections started during the run: {elections_during_run}; leader changed: {}",
        result.leader_changed
    );
    Ok(result)
}

// ---------------------------------------------------------------------------------------
// 2. Re-election after kill -9 of the Raft leader

struct ReelectionResult {
    new_leader: Stats,
    write_unavailable: Stats,
    /// Elections started while a restarted agent rejoined (should be 0: a rejoin must not
    /// disturb a healthy leader).
    elections_on_rejoin: usize,
}

struct Round {
    new_leader_after: Duration,
    write_ok_after: Duration,
    new_term: u64,
    winner: usize,
    write_errors: Vec<String>,
}

async fn reelection(cluster: &mut BenchCluster, rounds: usize) -> anyhow::Result<ReelectionResult> {
    let mut elected = Vec::new();
    let mut writable = Vec::new();
    let mut elections_on_rejoin = 0;
    let mut write_errors: std::collections::BTreeMap<String, usize> = Default::default();
    for round in 1..=rounds {
        let r = kill_leader_once(cluster, round)
            .await
            .with_context(|| format!("round {round}"))?;
        println!(
            "round {round:>2}: new leader {} (term {}) after {:>9}; write through a survivor ok after {:>9} ({} failed attempts)",
            cluster.demo.endpoints[r.winner],
            r.new_term,
            ms(r.new_leader_after),
            ms(r.write_ok_after),
            r.write_errors.len()
        );
        elected.push(r.new_leader_after);
        writable.push(r.write_ok_after);
        for e in &r.write_errors {
            *write_errors.entry(error_kind(e)).or_default() += 1;
        }
        elections_on_rejoin += restart_and_settle(cluster, r.winner)
            .await
            .with_context(|| format!("round {round}"))?;
    }
    let result = ReelectionResult {
        new_leader: Stats::of(&elected).ok_or_else(|| anyhow!("--rounds must be >= 1"))?,
        write_unavailable: Stats::of(&writable).expect("same count as elected"),
        elections_on_rejoin,
    };
    println!("new leader elected:     {}", result.new_leader.line());
    println!("write unavailability:   {}", result.write_unavailable.line());
    println!("elections started while the killed agent rejoined: {elections_on_rejoin}");
    println!("what the failed writes through a survivor answered (digits masked):");
    for (kind, count) in &write_errors {
        println!("  {count:>5} x {kind}");
    }
    Ok(result)
}

/// Kill -9 the Raft leader and time (a) until a survivor reports itself leader in a newer
/// term and (b) until a write through a survivor succeeds. Both clocks start just before the
/// kill and run concurrently.
async fn kill_leader_once(cluster: &mut BenchCluster, round: usize) -> anyhow::Result<Round> {
    let (leader, old_term) = cluster.leader().await?;
    let survivors: Vec<usize> = (0..cluster.clients.len()).filter(|&i| i != leader).collect();
    // Make sure the connections to the survivors are open before the clock starts.
    for &s in &survivors {
        node_status(&cluster.clients[s], Duration::from_secs(2))
            .await
            .context("survivor not answering")?;
    }
    let write_target = survivors[round % survivors.len()];

    let t0 = Instant::now();
    cluster.demo.kill9(leader).await;
    let watch_election = wait_for_new_leader(cluster, &survivors, old_term, t0);
    let watch_write = write_until_ok(&cluster.clients[write_target], t0, round as u64);
    let both = async { tokio::join!(watch_election, watch_write) };
    let (election, write_result) = tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .map_err(|_| anyhow!("no new leader and/or no successful write within 30 s of the kill"))?;
    let (winner, new_term, new_leader_after) = election;
    let (write_ok_after, write_errors) = write_result;
    Ok(Round {
        new_leader_after,
        write_ok_after,
        new_term,
        winner,
        write_errors,
    })
}

async fn wait_for_new_leader(
    cluster: &BenchCluster,
    survivors: &[usize],
    old_term: u64,
    t0: Instant,
) -> (usize, u64, Duration) {
    loop {
        for &s in survivors {
            if let Ok(status) = node_status(&cluster.clients[s], Duration::from_millis(200)).await {
                if status.role == "leader" && status.term > old_term {
                    return (s, status.term, t0.elapsed());
                }
            }
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Retry a write until one is committed; returns when, and the errors of the failed tries.
async fn write_until_ok(client: &AdminClient<Channel>, t0: Instant, round: u64) -> (Duration, Vec<String>) {
    let mut errors = Vec::new();
    loop {
        match write(client, &member_put("bench", round, None)).await {
            Ok(_) => return (t0.elapsed(), errors),
            Err(e) => {
                errors.push(format!("{e:#}"));
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    }
}

/// Error messages with numbers (ports, terms, durations) masked, so alike errors group.
fn error_kind(message: &str) -> String {
    let masked: String = message
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect();
    masked.chars().take(200).collect()
}

/// Restart every agent that is down, wait until the group is healthy and every member has
/// caught up with the leader. Returns the number of elections started meanwhile.
async fn restart_and_settle(cluster: &mut BenchCluster, expected_leader: usize) -> anyhow::Result<usize> {
    let elections_before: usize = cluster.elections_started().iter().sum();
    for i in 0..cluster.clients.len() {
        if cluster.demo.pid(i).is_none() {
            cluster
                .demo
                .start_node(i)
                .context("cannot restart the killed agent")?;
        }
    }
    cluster.demo.wait_healthy(HEALTHY_TIMEOUT).await?;
    wait_caught_up(cluster).await?;
    // A pause long enough for a disruptive rejoin (a candidate with a stale view) to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (leader, _) = cluster.leader().await?;
    if leader != expected_leader {
        println!(
            "          (leadership moved to {} while the killed agent rejoined)",
            cluster.demo.endpoints[leader]
        );
    }
    Ok(cluster.elections_started().iter().sum::<usize>() - elections_before)
}

async fn wait_caught_up(cluster: &BenchCluster) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = fetch_raft_status(&cluster.demo.endpoints[0]).await?;
        if rows.len() == cluster.clients.len() && rows.iter().all(|r| r.lag == Some(0)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("members did not catch up within 30 s: {rows:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// 3. Compaction: is the Raft data directory bounded?

#[derive(Debug, Clone)]
struct DiskSample {
    writes: u64,
    last_log_index: u64,
    nodes: Vec<NodeDisk>,
}

#[derive(Debug, Clone)]
struct NodeDisk {
    apparent_bytes: u64,
    allocated_bytes: u64,
    retained_entries: Option<u64>,
    snapshot_index: Option<u64>,
}

impl DiskSample {
    fn max_apparent(&self) -> u64 {
        self.nodes.iter().map(|n| n.apparent_bytes).max().unwrap_or(0)
    }

    fn max_allocated(&self) -> u64 {
        self.nodes.iter().map(|n| n.allocated_bytes).max().unwrap_or(0)
    }

    fn print(&self, label: &str) {
        println!(
            "{label:>9} writes {:>7}  last log index {:>7}",
            self.writes, self.last_log_index
        );
        for (i, n) in self.nodes.iter().enumerate() {
            let opt = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
            println!(
                "          node{}: data dir {:>10} (allocated {:>10})  log entries retained {:>5}  snapshot at {:>7}",
                i + 1,
                mib(n.apparent_bytes),
                mib(n.allocated_bytes),
                opt(n.retained_entries),
                opt(n.snapshot_index)
            );
        }
    }
}

struct CompactionResult {
    writes: u64,
    elapsed: Duration,
    failed_writes: u64,
    /// Elections started while the writes ran: load on a 2-core machine must not cause any.
    elections_during_run: usize,
    samples: Vec<DiskSample>,
    settled: DiskSample,
}

async fn compaction(cluster: &BenchCluster, args: &Args) -> anyhow::Result<CompactionResult> {
    let (leader, _) = cluster.leader().await?;
    println!(
        "{} writes (lease renewals + member updates) by {} concurrent writers to the leader {}",
        args.writes, args.writers, cluster.demo.endpoints[leader]
    );
    let issued = Arc::new(AtomicU64::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let elections_before: usize = cluster.elections_started().iter().sum();
    let started = Instant::now();
    let writers: Vec<_> = (0..args.writers)
        .map(|w| {
            let client = cluster.clients[leader].clone();
            let counters = (issued.clone(), completed.clone(), failed.clone());
            tokio::spawn(compaction_writer(client, w, args.writes, counters))
        })
        .collect();

    let mut samples = Vec::new();
    let mut next_report = args.report_every.max(1);
    while !writers.iter().all(|w| w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if completed.load(Ordering::Relaxed) >= next_report {
            let sample = disk_sample(cluster, completed.load(Ordering::Relaxed)).await;
            sample.print("sample");
            samples.push(sample);
            next_report += args.report_every.max(1);
        }
    }
    for w in writers {
        w.await.context("a writer task panicked")?;
    }
    let elapsed = started.elapsed();
    let done = completed.load(Ordering::Relaxed);
    let elections_during_run = cluster.elections_started().iter().sum::<usize>() - elections_before;
    println!(
        "{done} writes in {:.1} s ({:.0} writes/s), {} failed, {elections_during_run} elections started",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        failed.load(Ordering::Relaxed)
    );
    let last = disk_sample(cluster, done).await;
    last.print("end");
    samples.push(last);
    // sled writes in the background (flush every 500 ms, segment cleaning); look again once
    // it is quiet so the figure is not a transient.
    let settled = settled_disk_sample(cluster, done).await;
    settled.print("settled");
    Ok(CompactionResult {
        writes: done,
        elapsed,
        failed_writes: failed.load(Ordering::Relaxed),
        elections_during_run,
        samples,
        settled,
    })
}

/// One writer: takes write numbers from `issued` until `total` are handed out; even numbers
/// renew the `leader` lease, odd ones update this writer's member key.
async fn compaction_writer(
    client: AdminClient<Channel>,
    writer: u64,
    total: u64,
    (issued, completed, failed): (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>),
) {
    let member = format!("bench-{writer}");
    loop {
        let n = issued.fetch_add(1, Ordering::Relaxed);
        if n >= total {
            return;
        }
        let command = if n % 2 == 0 {
            lease_renewal(n)
        } else {
            member_put(&member, n, Some(30_000))
        };
        if let Err(e) = write(&client, &command).await {
            // Show the first few; the total is in the summary.
            if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("write {n} failed: {e:#}");
            }
            continue;
        }
        completed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A disk sample taken once the on-disk sizes stop changing between two looks 500 ms apart
/// (sled's background flush and segment cleaning have finished), or after 10 s at most.
async fn settled_disk_sample(cluster: &BenchCluster, writes: u64) -> DiskSample {
    let deadline = Instant::now() + Duration::from_secs(10);
    let sizes = |s: &DiskSample| s.nodes.iter().map(|n| n.apparent_bytes).collect::<Vec<_>>();
    let mut previous = disk_sample(cluster, writes).await;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let current = disk_sample(cluster, writes).await;
        if sizes(&current) == sizes(&previous) || Instant::now() >= deadline {
            return current;
        }
        previous = current;
    }
}

async fn disk_sample(cluster: &BenchCluster, writes: u64) -> DiskSample {
    let mut nodes = Vec::new();
    let mut last_log_index = 0;
    for (i, client) in cluster.clients.iter().enumerate() {
        let (apparent_bytes, allocated_bytes) = dir_size(&cluster.raft_data_dir(i));
        let status = node_status(client, Duration::from_secs(2)).await.ok();
        if let Some(s) = &status {
            last_log_index = last_log_index.max(s.last_log_index);
        }
        nodes.push(NodeDisk {
            apparent_bytes,
            allocated_bytes,
            retained_entries: status
                .as_ref()
                .map(|s| s.last_log_index - if s.has_purged { s.purged_index } else { 0 }),
            snapshot_index: status
                .as_ref()
                .filter(|s| s.has_snapshot)
                .map(|s| s.snapshot_index),
        });
    }
    DiskSample {
        writes,
        last_log_index,
        nodes,
    }
}

/// Total size of the files under `dir`: (apparent length, blocks actually allocated). Both
/// are reported because a store may punch holes or preallocate. Files that vanish while we
/// walk (sled replaces some) are skipped.
fn dir_size(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            let (a, b) = dir_size(&entry.path());
            apparent += a;
            allocated += b;
        } else {
            apparent += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    (apparent, allocated)
}

// ---------------------------------------------------------------------------------------
// Summary

#[derive(Default)]
struct Summary {
    latency: Option<LatencyResult>,
    reelection: Option<ReelectionResult>,
    compaction: Option<CompactionResult>,
}

impl Summary {
    fn print(&self) {
        println!("\n==================== summary ====================");
        if let Some(l) = &self.latency {
            println!(
                "commit latency, write sent to the leader:      {}",
                l.to_leader.line()
            );
            println!(
                "commit latency, write forwarded by a follower: {}",
                l.via_follower.line()
            );
            println!(
                "elections during the latency run: {} (leader changed: {})",
                l.elections_during_run, l.leader_changed
            );
        }
        if let Some(r) = &self.reelection {
            println!("kill -9 leader -> new leader:     {}", r.new_leader.line());
            println!("kill -9 leader -> write succeeds: {}", r.write_unavailable.line());
            println!(
                "elections while the killed agent rejoined: {}",
                r.elections_on_rejoin
            );
        }
        if let Some(c) = &self.compaction {
            print_compaction_summary(c);
        }
        println!("=================================================");
    }
}

fn print_compaction_summary(c: &CompactionResult) {
    println!(
        "compaction run: {} writes in {:.1} s ({:.0}/s), {} failed, {} elections started",
        c.writes,
        c.elapsed.as_secs_f64(),
        c.writes as f64 / c.elapsed.as_secs_f64(),
        c.failed_writes,
        c.elections_during_run
    );
    let retained = c.settled.nodes.iter().filter_map(|n| n.retained_entries).max();
    println!(
        "largest Raft data dir after the run: {} (allocated {}), log entries retained: {}",
        mib(c.settled.max_apparent()),
        mib(c.settled.max_allocated()),
        retained.map_or("?".to_string(), |r| r.to_string())
    );
    if let (Some(first), Some(last)) = (c.samples.first(), c.samples.last()) {
        let growth = last.max_apparent() as f64 / first.max_apparent().max(1) as f64;
        let write_growth = last.writes as f64 / first.writes.max(1) as f64;
        println!(
            "largest data dir at {} writes: {}; at {} writes: {} (writes x{:.1}, size x{:.2}) -> {}",
            first.writes,
            mib(first.max_apparent()),
            last.writes,
            mib(last.max_apparent()),
            write_growth,
            growth,
            if growth < 1.0 + (write_growth - 1.0) / 4.0 {
                "bounded"
            } else {
                "GROWING with the writes"
            }
        );
    }
}
