//! Faults, and seeded schedules of them.
//!
//! A [`Fault`] names what to break and whom, relative to the cluster's state when it is applied
//! ("the current primary", "a replica"): [`apply`] resolves the target, breaks it, and returns
//! an [`Applied`] fault that knows how to heal. A [`Schedule`] is the sequence of faults of a
//! scenario, with their durations and the healthy gaps between them, generated from the
//! scenario's name and a seed by a small deterministic PRNG: the same seed gives the same
//! schedule.
//!
//! Not covered: losing a witness (pgquorum has no witness member yet).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pgquorum::ctl::switchover::SwitchoverArgs;
use pgquorum::grpc::Transport;
use pgquorum::keyspace::{Command, Key, Precondition};

use crate::cluster::{self, node_name, Cluster, ClusterError, RAFT_PORT};
use crate::net::{Endpoint, NetError, Network};
use crate::workload::Clock;

/// Every scenario `run --scenario` accepts, in the order `all` runs them.
pub const SCENARIOS: &[&str] = &[
    "kill-agent",
    "kill-postmaster",
    "kill-node",
    "stall-agent",
    "isolate-primary",
    "majority-minority",
    "bridge",
    "netem",
    "restart-cluster",
    "mixed",
    "switchover",
    "sighup-storm",
    "corrupt-keyspace",
    "restart-pg-partitioned",
    "forced-stop",
    "duplicate-name",
    "clock-jump",
];

/// Whether `scenario` needs the agents started under libfaketime.
pub fn needs_fake_time(scenario: &str) -> bool {
    scenario == "clock-jump"
}

/// How many spare hosts (network namespaces without a cluster member) `scenario` needs.
pub fn spare_hosts(scenario: &str) -> usize {
    usize::from(scenario == "duplicate-name")
}

/// The scenarios `mixed` draws from: the original ten's faults (the later ones have their own
/// promises, see [`promises_zero_loss`]).
const MIXED_FROM: &[&str] = &[
    "kill-agent",
    "kill-postmaster",
    "kill-node",
    "stall-agent",
    "isolate-primary",
    "majority-minority",
    "bridge",
    "netem",
    "restart-cluster",
];

/// Scenarios in which no acknowledged write may be lost even with asynchronous replication:
/// a planned switchover (the old primary stops cleanly, its walsenders ship everything), a
/// clean whole-cluster stop/start, and faults that must not cause a failover at all.
pub fn promises_zero_loss(scenario: &str) -> bool {
    matches!(
        scenario,
        "switchover" | "restart-cluster" | "sighup-storm" | "corrupt-keyspace"
    )
}

/// Scenarios whose faults must not cause a failover (one writer, one timeline all run long).
pub fn promises_no_failover(scenario: &str) -> bool {
    matches!(scenario, "sighup-storm" | "corrupt-keyspace")
}

#[derive(Debug, thiserror::Error)]
pub enum NemesisError {
    #[error("unknown scenario {0:?}; known: {known}", known = SCENARIOS.join(", "))]
    UnknownScenario(String),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("{0}")]
    Other(String),
}

/// A node chosen when the fault is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Whoever is the writable primary then.
    Primary,
    /// The k-th replica (mod the number of replicas) then.
    Replica(usize),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Primary => write!(f, "the primary"),
            Target::Replica(_) => write!(f, "a replica"),
        }
    }
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` the agent; restarted when healed. (Its fence guard stops PostgreSQL.)
    KillAgent(Target),
    /// `kill -9` the postmaster; the agent is expected to bring it back by itself.
    KillPostmaster(Target),
    /// The host is lost: agent, fence guard, postmaster, backends; restarted when healed.
    KillNode(Target),
    /// SIGSTOP the agent (PostgreSQL keeps running); SIGCONT when healed.
    Stall(Target),
    /// Cut the primary's host from every other host; the client still reaches it.
    IsolatePrimary,
    /// Split the hosts into a minority (holding this node) and a majority; the client is on
    /// the majority side.
    MajorityMinority { minority: Target },
    /// Split the other hosts into two sides that cannot talk, both still connected to
    /// `middle` (A–B and B–C up, A–C cut); the client reaches everyone.
    Bridge { middle: Target },
    /// Every host's link degraded: delay ± jitter (needs netem) and packet loss.
    Netem {
        delay_ms: u32,
        jitter_ms: u32,
        loss_pct: u32,
    },
    /// Stop every agent cleanly (SIGTERM), start them all again when healed.
    RestartCluster,
    /// A planned switchover away from the primary (`pgquorumctl switchover --force`, through
    /// the library), with the workload running.
    Switchover,
    /// SIGHUP the agent every 20 ms (it reloads its configuration on each) for the duration.
    SighupStorm(Target),
    /// Write undecodable values through the admin `Write` RPC: a replica's `members/<name>`,
    /// a `members/<name>` of nobody, and a bad entry appended to `history`.
    CorruptKeyspace,
    /// Cut the primary's host from the other hosts (the client still reaches it) and, 0.5 s
    /// later, restart its PostgreSQL behind the agent's back (`pg_ctl restart -m immediate`: a
    /// fast shutdown cannot finish while the walsenders' peers are cut off).
    RestartPgPartitioned,
    /// SIGSTOP a backend of the primary that holds a transaction open, then a planned
    /// switchover: PostgreSQL's fast shutdown cannot finish, so the agent must fall back to
    /// an immediate stop. The backend gets SIGCONT when healed.
    ForcedStop,
    /// Start a second agent with the `name` of an existing member (the primary's or a
    /// replica's) on the spare host, with empty data directories; stopped when healed.
    DuplicateName(Target),
    /// One node's `CLOCK_REALTIME` (its agent's, through libfaketime) jumps by `offset_s`
    /// seconds and stays skewed; it jumps back when healed.
    ClockJump { target: Target, offset_s: i64 },
}

impl Fault {
    /// The short kind recorded in the history.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::KillAgent(_) => "kill-agent",
            Fault::KillPostmaster(_) => "kill-postmaster",
            Fault::KillNode(_) => "kill-node",
            Fault::Stall(_) => "stall-agent",
            Fault::IsolatePrimary => "isolate",
            Fault::MajorityMinority { .. } => "partition",
            Fault::Bridge { .. } => "bridge",
            Fault::Netem { .. } => "netem",
            Fault::RestartCluster => "restart-cluster",
            Fault::Switchover => "switchover",
            Fault::SighupStorm(_) => "sighup-storm",
            Fault::CorruptKeyspace => "corrupt-keyspace",
            Fault::RestartPgPartitioned => "restart-pg-partitioned",
            Fault::ForcedStop => "forced-stop",
            Fault::DuplicateName(_) => "duplicate-name",
            Fault::ClockJump { .. } => "clock-jump",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillAgent(t) => write!(f, "kill -9 the agent of {t}"),
            Fault::KillPostmaster(t) => write!(f, "kill -9 the postmaster of {t}"),
            Fault::KillNode(t) => write!(f, "lose the host of {t}"),
            Fault::Stall(t) => write!(f, "SIGSTOP the agent of {t}"),
            Fault::IsolatePrimary => write!(f, "isolate the primary"),
            Fault::MajorityMinority { minority } => {
                write!(f, "majority/minority, {minority} in the minority")
            }
            Fault::Bridge { middle } => write!(f, "bridge through {middle}"),
            Fault::Netem {
                delay_ms,
                jitter_ms,
                loss_pct,
            } => write!(f, "netem delay {delay_ms}±{jitter_ms} ms, loss {loss_pct}%"),
            Fault::RestartCluster => write!(f, "restart the whole cluster"),
            Fault::Switchover => write!(f, "planned switchover away from the primary"),
            Fault::SighupStorm(t) => write!(f, "SIGHUP storm on the agent of {t}"),
            Fault::CorruptKeyspace => write!(f, "undecodable members/ and history values"),
            Fault::RestartPgPartitioned => {
                write!(f, "isolate the primary and restart its PostgreSQL")
            }
            Fault::ForcedStop => write!(f, "switchover with a stopped backend (forced stop)"),
            Fault::DuplicateName(t) => write!(f, "a second agent named like {t}"),
            Fault::ClockJump { target, offset_s } => {
                write!(f, "the clock of {target} jumps {offset_s:+} s")
            }
        }
    }
}

/// One step of a schedule: wait `gap`, apply `fault`, keep it `duration`, heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub gap: Duration,
    pub fault: Fault,
    pub duration: Duration,
}

/// The faults of one run, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub steps: Vec<Step>,
}

/// splitmix64: a tiny, well-mixed deterministic generator (enough for picking faults).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }

    fn millis(&mut self, lo_ms: u64, hi_ms: u64) -> Duration {
        Duration::from_millis(self.range(lo_ms, hi_ms))
    }
}

/// Primary two times out of three, otherwise a replica.
fn mostly_primary(rng: &mut SplitMix64) -> Target {
    if rng.chance(2, 3) {
        Target::Primary
    } else {
        Target::Replica(rng.range(0, 7) as usize)
    }
}

fn either(rng: &mut SplitMix64) -> Target {
    if rng.chance(1, 2) {
        Target::Primary
    } else {
        Target::Replica(rng.range(0, 7) as usize)
    }
}

/// One fault of `scenario` and how long it lasts.
fn pick(scenario: &str, rng: &mut SplitMix64) -> Result<(Fault, Duration), NemesisError> {
    Ok(match scenario {
        "kill-agent" => (Fault::KillAgent(mostly_primary(rng)), rng.millis(5_000, 10_000)),
        // The agent restarts the postmaster itself: the duration is the time given to it.
        "kill-postmaster" => (
            Fault::KillPostmaster(mostly_primary(rng)),
            rng.millis(5_000, 8_000),
        ),
        "kill-node" => (Fault::KillNode(mostly_primary(rng)), rng.millis(5_000, 10_000)),
        "stall-agent" => (Fault::Stall(mostly_primary(rng)), rng.millis(4_000, 10_000)),
        "isolate-primary" => (Fault::IsolatePrimary, rng.millis(5_000, 10_000)),
        "majority-minority" => (
            Fault::MajorityMinority {
                minority: either(rng),
            },
            rng.millis(5_000, 10_000),
        ),
        "bridge" => (Fault::Bridge { middle: either(rng) }, rng.millis(5_000, 10_000)),
        "netem" => {
            let delay_ms = rng.range(20, 100) as u32;
            (
                Fault::Netem {
                    delay_ms,
                    jitter_ms: delay_ms / 4,
                    loss_pct: rng.range(2, 10) as u32,
                },
                rng.millis(8_000, 12_000),
            )
        }
        "restart-cluster" => (Fault::RestartCluster, rng.millis(2_000, 5_000)),
        // The switchover itself runs while the fault is applied; the duration is the time
        // after it, before the next one.
        "switchover" => (Fault::Switchover, rng.millis(3_000, 5_000)),
        "sighup-storm" => (Fault::SighupStorm(mostly_primary(rng)), rng.millis(5_000, 10_000)),
        "corrupt-keyspace" => (Fault::CorruptKeyspace, rng.millis(3_000, 6_000)),
        "restart-pg-partitioned" => (Fault::RestartPgPartitioned, rng.millis(5_000, 10_000)),
        "forced-stop" => (Fault::ForcedStop, rng.millis(3_000, 5_000)),
        "duplicate-name" => (Fault::DuplicateName(either(rng)), rng.millis(8_000, 12_000)),
        "clock-jump" => {
            let target = either(rng);
            let magnitude = rng.range(3, 60) as i64;
            let offset_s = if rng.chance(1, 2) { magnitude } else { -magnitude };
            (Fault::ClockJump { target, offset_s }, rng.millis(5_000, 10_000))
        }
        "mixed" => {
            let kinds = MIXED_FROM;
            let kind = kinds[rng.range(0, kinds.len() as u64 - 1) as usize];
            return pick(kind, rng);
        }
        other => return Err(NemesisError::UnknownScenario(other.to_string())),
    })
}

impl Schedule {
    /// The schedule of `scenario` for a run of `duration`: faults with healthy gaps of 5–8 s
    /// between them (the first after a healthy start of 5 s), as many as fit.
    pub fn generate(scenario: &str, seed: u64, duration: Duration) -> Result<Schedule, NemesisError> {
        // Mix the scenario's name in, so `all --seed N` does not give every scenario the
        // same draws.
        let name_hash = scenario.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
        });
        let mut rng = SplitMix64::new(seed ^ name_hash);
        let mut steps = Vec::new();
        let mut t = Duration::ZERO;
        loop {
            let gap = if steps.is_empty() {
                Duration::from_secs(5)
            } else {
                rng.millis(5_000, 8_000)
            };
            let (fault, fault_duration) = pick(scenario, &mut rng)?;
            if t + gap + fault_duration > duration {
                break;
            }
            t += gap + fault_duration;
            steps.push(Step {
                gap,
                fault,
                duration: fault_duration,
            });
        }
        if steps.is_empty() {
            // A run shorter than one step still gets one fault (kept short).
            let (fault, _) = pick(scenario, &mut rng)?;
            steps.push(Step {
                gap: Duration::from_secs(3),
                fault,
                duration: duration
                    .saturating_sub(Duration::from_secs(3))
                    .max(Duration::from_secs(3)),
            });
        }
        Ok(Schedule { steps })
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, s) in self.steps.iter().enumerate() {
            writeln!(
                f,
                "  {:>2}. after {:>4.1} s: {} for {:.1} s",
                n + 1,
                s.gap.as_secs_f64(),
                s.fault,
                s.duration.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

/// How to undo an applied fault.
#[derive(Debug, Clone)]
enum Heal {
    /// Stop a SIGHUP storm.
    StopStorm(Arc<AtomicBool>),
    /// Heal the cuts and SIGCONT a process.
    CutsAndCont(Vec<(Endpoint, Endpoint)>, Option<i32>),
    StopDuplicate,
    ClockBack(usize),
    StartAgent(usize),
    Resume(usize),
    Cuts(Vec<(Endpoint, Endpoint)>),
    Netem(Vec<usize>),
    StartAll,
    Nothing,
}

/// A fault in force.
#[derive(Debug, Clone)]
pub struct Applied {
    pub kind: &'static str,
    /// When the fault took effect (ms on the run's clock, taken right before the harm is done,
    /// after the target was resolved).
    pub start_ms: u64,
    /// What was done, with the nodes (`isolate node2 (primary)`).
    pub description: String,
    pub nodes: Vec<String>,
    heal: Heal,
}

/// The node `target` names now. With no (single) primary to be found within a few seconds,
/// `Target::Primary` falls back to the first node.
async fn resolve(target: Target, cluster: &Cluster) -> (usize, String) {
    let mut primary = None;
    for _ in 0..20 {
        primary = cluster.current_primary().await;
        if primary.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let n = cluster.nodes();
    match (target, primary) {
        (Target::Primary, Some(p)) => (p, format!("{} (primary)", node_name(p))),
        (Target::Primary, None) => (0, format!("{} (no primary found)", node_name(0))),
        (Target::Replica(k), p) => {
            let replicas: Vec<usize> = (0..n).filter(|i| Some(*i) != p).collect();
            let r = replicas[k % replicas.len()];
            (r, format!("{} (replica)", node_name(r)))
        }
    }
}

fn cut_all(net: &Network, cuts: &[(Endpoint, Endpoint)]) -> Result<(), NetError> {
    for (a, b) in cuts {
        net.cut(*a, *b)?;
    }
    Ok(())
}

fn names(nodes: &[usize]) -> Vec<String> {
    nodes.iter().map(|i| node_name(*i)).collect()
}

/// Apply `fault` now.
pub async fn apply(
    fault: Fault,
    net: &Network,
    cluster: &mut Cluster,
    clock: Clock,
) -> Result<Applied, NemesisError> {
    let n = cluster.nodes();
    let applied = match fault {
        Fault::KillAgent(t) => {
            let (i, who) = resolve(t, cluster).await;
            let start_ms = clock.ms();
            cluster.kill_agent(i).await;
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("kill -9 agent {who}"),
                nodes: names(&[i]),
                heal: Heal::StartAgent(i),
            }
        }
        Fault::KillPostmaster(t) => {
            let (i, who) = resolve(t, cluster).await;
            let start_ms = clock.ms();
            let pid = cluster.kill_postmaster(i);
            let what = pid.map_or("no postmaster running".to_string(), |p| format!("pid {p}"));
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("kill -9 postmaster {who}, {what}"),
                nodes: names(&[i]),
                heal: Heal::Nothing,
            }
        }
        Fault::KillNode(t) => {
            let (i, who) = resolve(t, cluster).await;
            let start_ms = clock.ms();
            cluster.kill_node(i).await;
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("lose host {who} (agent, postmaster, backends)"),
                nodes: names(&[i]),
                heal: Heal::StartAgent(i),
            }
        }
        Fault::Stall(t) => {
            let (i, who) = resolve(t, cluster).await;
            let start_ms = clock.ms();
            cluster.stall_agent(i);
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("SIGSTOP agent {who}"),
                nodes: names(&[i]),
                heal: Heal::Resume(i),
            }
        }
        Fault::IsolatePrimary => {
            let (i, who) = resolve(Target::Primary, cluster).await;
            let start_ms = clock.ms();
            let cuts: Vec<_> = (0..n)
                .filter(|j| *j != i)
                .map(|j| (Endpoint::Host(i), Endpoint::Host(j)))
                .collect();
            cut_all(net, &cuts)?;
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("isolate {who} from the other hosts (the client still reaches it)"),
                nodes: names(&[i]),
                heal: Heal::Cuts(cuts),
            }
        }
        Fault::MajorityMinority { minority } => {
            let (first, who) = resolve(minority, cluster).await;
            let start_ms = clock.ms();
            let size = (n - 1) / 2;
            let minority: Vec<usize> = (0..size.max(1)).map(|k| (first + k) % n).collect();
            let majority: Vec<usize> = (0..n).filter(|i| !minority.contains(i)).collect();
            let mut cuts = Vec::new();
            for &m in &minority {
                for &j in &majority {
                    cuts.push((Endpoint::Host(m), Endpoint::Host(j)));
                }
                cuts.push((Endpoint::Host(m), Endpoint::Client));
            }
            cut_all(net, &cuts)?;
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!(
                    "partition: minority [{}] (with {who}) | majority [{}] + client",
                    names(&minority).join(", "),
                    names(&majority).join(", ")
                ),
                nodes: names(&minority),
                heal: Heal::Cuts(cuts),
            }
        }
        Fault::Bridge { middle } => {
            let (b, who) = resolve(middle, cluster).await;
            let start_ms = clock.ms();
            let others: Vec<usize> = (1..n).map(|k| (b + k) % n).collect();
            let (side_a, side_c) = others.split_at(others.len() / 2);
            let mut cuts = Vec::new();
            for &a in side_a {
                for &c in side_c {
                    cuts.push((Endpoint::Host(a), Endpoint::Host(c)));
                }
            }
            cut_all(net, &cuts)?;
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!(
                    "bridge: [{}] -- {who} -- [{}], the two sides cut from each other",
                    names(side_a).join(", "),
                    names(side_c).join(", ")
                ),
                nodes: names(&[b]),
                heal: Heal::Cuts(cuts),
            }
        }
        Fault::Netem {
            delay_ms,
            jitter_ms,
            loss_pct,
        } => {
            let start_ms = clock.ms();
            let mut what = String::new();
            for i in 0..n {
                what = net.netem(i, delay_ms, jitter_ms, loss_pct)?;
            }
            if delay_ms > 0 && !net.netem_supported() {
                what.push_str(" (no delay: this kernel has no netem qdisc)");
            }
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("every link: {what}"),
                nodes: names(&(0..n).collect::<Vec<_>>()),
                heal: Heal::Netem((0..n).collect()),
            }
        }
        Fault::RestartCluster => {
            let start_ms = clock.ms();
            cluster.stop_all(Duration::from_secs(30)).await;
            Applied {
                kind: fault.kind(),
                start_ms,
                description: "stop every agent (SIGTERM), then start them all".into(),
                nodes: names(&(0..n).collect::<Vec<_>>()),
                heal: Heal::StartAll,
            }
        }
        Fault::Switchover => {
            let (i, who) = resolve(Target::Primary, cluster).await;
            let start_ms = clock.ms();
            let result = switchover(i).await;
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("planned switchover away from {who}: {result}"),
                nodes: names(&[i]),
                heal: Heal::Nothing,
            }
        }
        Fault::SighupStorm(t) => {
            let (i, who) = resolve(t, cluster).await;
            let pid = cluster
                .agent_pid(i)
                .ok_or_else(|| NemesisError::Other(format!("no agent running on {who}")))?;
            let stop = Arc::new(AtomicBool::new(false));
            let start_ms = clock.ms();
            let flag = stop.clone();
            tokio::spawn(async move {
                while !flag.load(Ordering::SeqCst) {
                    // SAFETY: kill(2) has no memory effects; the pid is our agent child.
                    unsafe { libc::kill(pid, libc::SIGHUP) };
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("SIGHUP every 20 ms to agent {who}"),
                nodes: names(&[i]),
                heal: Heal::StopStorm(stop),
            }
        }
        Fault::CorruptKeyspace => {
            let (r, who) = resolve(Target::Replica(0), cluster).await;
            let start_ms = clock.ms();
            // Over TLS the keys written are agents' only: the writes carry node r's own
            // certificate (an agent gone wrong), not pgquorumctl's, which is refused them.
            let agent = cluster.agent_transport(r)?;
            let what = corrupt_keyspace(r, agent.as_ref()).await?;
            let with = match agent {
                Some(_) => format!(" with {}'s certificate", node_name(r)),
                None => String::new(),
            };
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("through {who}'s admin service{with}: {what}"),
                nodes: names(&[r]),
                heal: Heal::Nothing,
            }
        }
        Fault::RestartPgPartitioned => {
            let (i, who) = resolve(Target::Primary, cluster).await;
            let start_ms = clock.ms();
            let cuts: Vec<_> = (0..n)
                .filter(|j| *j != i)
                .map(|j| (Endpoint::Host(i), Endpoint::Host(j)))
                .collect();
            cut_all(net, &cuts)?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let restarted = restart_postgres(cluster, i).await;
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!(
                    "isolate {who} from the other hosts (the client still reaches it), then \
                     pg_ctl restart -m immediate its PostgreSQL: {restarted}"
                ),
                nodes: names(&[i]),
                heal: Heal::Cuts(cuts),
            }
        }
        Fault::ForcedStop => {
            let (i, who) = resolve(Target::Primary, cluster).await;
            let start_ms = clock.ms();
            let pid = stop_a_backend(i).await;
            let result = switchover(i).await;
            let stopped = match &pid {
                Ok(pid) => format!("backend pid {pid} SIGSTOPped in an open transaction"),
                Err(e) => format!("no backend stopped ({e})"),
            };
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("{stopped}, then switchover away from {who}: {result}"),
                nodes: names(&[i]),
                heal: Heal::CutsAndCont(Vec::new(), pid.ok()),
            }
        }
        Fault::DuplicateName(t) => {
            let (i, who) = resolve(t, cluster).await;
            let spare = n;
            let start_ms = clock.ms();
            cluster.start_duplicate(i, spare)?;
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!(
                    "second agent named {} on the spare host {} (like {who})",
                    node_name(i),
                    crate::net::host_addr(spare)
                ),
                nodes: names(&[i]),
                heal: Heal::StopDuplicate,
            }
        }
        Fault::ClockJump { target, offset_s } => {
            let (i, who) = resolve(target, cluster).await;
            let start_ms = clock.ms();
            cluster.set_clock_offset(i, offset_s)?;
            Applied {
                kind: fault.kind(),
                start_ms,
                description: format!("CLOCK_REALTIME of agent {who} jumps {offset_s:+} s (libfaketime)"),
                nodes: names(&[i]),
                heal: Heal::ClockBack(i),
            }
        }
    };
    Ok(applied)
}

/// The admin endpoint of node `i`.
fn admin_endpoint(i: usize) -> String {
    format!("{}:{RAFT_PORT}", crate::net::host_addr(i))
}

/// A planned switchover from node `i` (the lease holder) to any eligible replica, as
/// `pgquorumctl switchover --force` does it; returns what happened, in a few words.
async fn switchover(i: usize) -> String {
    let args = SwitchoverArgs {
        leader: Some(node_name(i)),
        force: true,
        ..SwitchoverArgs::default()
    };
    match tokio::time::timeout(
        Duration::from_secs(60),
        pgquorum::ctl::switchover::switchover(&admin_endpoint(i), "jepsen", &args),
    )
    .await
    {
        Ok(Ok(text)) => text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("done")
            .trim()
            .to_string(),
        Ok(Err(e)) => format!("refused or failed: {e}"),
        Err(_) => "not completed within 60 s".to_string(),
    }
}

/// Write undecodable values through node `r`'s admin service: with `agent`'s identity when
/// given (a TLS run), else with the process's transport.
async fn corrupt_keyspace(r: usize, agent: Option<&Transport>) -> Result<String, NemesisError> {
    let endpoint = admin_endpoint(r);
    let put = |key: Key, value: serde_json::Value| Command::Put {
        key,
        value,
        ttl_ms: None,
        precondition: Precondition::default(),
    };
    let bad = |e: String| NemesisError::Other(format!("corrupt the keyspace: {e}"));
    let mut done = Vec::new();
    let writes = [
        (
            Key::member(&node_name(r)).map_err(|e| bad(e.to_string()))?,
            serde_json::json!("not a member record"),
        ),
        (
            Key::member("jepsen-ghost").map_err(|e| bad(e.to_string()))?,
            serde_json::json!({"role": 42, "xlog_location": "nonsense", "state": ["x"]}),
        ),
    ];
    for (key, value) in writes {
        write(agent, &endpoint, &put(key.clone(), value))
            .await
            .map_err(|e| bad(e.to_string()))?;
        done.push(format!("{key} undecodable"));
    }
    // history: whatever is there, plus an entry that is not [timeline, lsn, reason, ...].
    let current = pgquorum::ctl::client::read(&endpoint, "history", false, true)
        .await
        .map_err(|e| bad(e.to_string()))?;
    let mut entries = match current.entries.first().map(|e| e.value.clone()) {
        Some(serde_json::Value::Array(a)) => a,
        _ => Vec::new(),
    };
    entries.push(serde_json::json!({"garbage": true}));
    entries.push(serde_json::json!(["x", "y"]));
    write(
        agent,
        &endpoint,
        &put(Key::History, serde_json::Value::Array(entries)),
    )
    .await
    .map_err(|e| bad(e.to_string()))?;
    done.push("history with 2 bad entries appended".into());
    Ok(done.join(", "))
}

/// A keyspace write with `transport`, or the process's when `None`.
async fn write(
    transport: Option<&Transport>,
    endpoint: &str,
    command: &Command,
) -> Result<(pgquorum::keyspace::CommandOutcome, u64), pgquorum::ctl::CtlError> {
    match transport {
        Some(t) => pgquorum::ctl::client::write_via(t, endpoint, command).await,
        None => pgquorum::ctl::client::write(endpoint, command).await,
    }
}

/// `pg_ctl restart -m immediate` node `i`'s PostgreSQL as the postgres user, behind its agent's
/// back (bounded: 20 s).
async fn restart_postgres(cluster: &Cluster, i: usize) -> String {
    let mut cmd = crate::net::exec_in_async(&crate::net::host_ns(i), "runuser");
    cmd.args([
        "-u",
        "postgres",
        "--",
        "/usr/lib/postgresql/15/bin/pg_ctl",
        "restart",
        "-m",
        "immediate",
        "-w",
        "-t",
        "15",
        "-D",
    ])
    .arg(cluster.data_dir(i))
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(20), cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => "restarted".to_string(),
        Ok(Ok(out)) => format!(
            "pg_ctl failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
        ),
        Ok(Err(e)) => format!("pg_ctl did not run: {e}"),
        Err(_) => "pg_ctl did not finish within 20 s".to_string(),
    }
}

/// Open a transaction on node `i` and SIGSTOP its backend; returns the backend's pid.
async fn stop_a_backend(i: usize) -> Result<i32, String> {
    let client = cluster::connect(&cluster::conninfo(i, 2), Duration::from_secs(3)).await?;
    let pid: i32 = tokio::time::timeout(Duration::from_secs(3), async {
        client.batch_execute("BEGIN; SELECT count(*) FROM jepsen").await?;
        client.query_one("SELECT pg_backend_pid()", &[]).await
    })
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|e| cluster::short_error(&e))?
    .get(0);
    // SAFETY: kill(2) has no memory effects; the pid is the backend serving our connection.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    // The connection is left open (leaked): closing it would only queue a message the stopped
    // backend cannot read.
    std::mem::forget(client);
    Ok(pid)
}

/// Undo an applied fault.
pub async fn heal(applied: &Applied, net: &Network, cluster: &mut Cluster) -> Result<(), NemesisError> {
    match &applied.heal {
        Heal::StartAgent(i) => cluster.start_agent(*i)?,
        Heal::Resume(i) => cluster.resume_agent(*i),
        Heal::Cuts(cuts) => {
            for (a, b) in cuts {
                net.heal_cut(*a, *b)?;
            }
        }
        Heal::Netem(nodes) => {
            for i in nodes {
                net.clear_netem(*i)?;
            }
        }
        Heal::StartAll => cluster.start_all()?,
        Heal::StopStorm(stop) => stop.store(true, Ordering::SeqCst),
        Heal::StopDuplicate => cluster.stop_duplicate_agent().await,
        Heal::ClockBack(i) => cluster.set_clock_offset(*i, 0)?,
        Heal::CutsAndCont(cuts, pid) => {
            if let Some(pid) = pid {
                // SAFETY: kill(2) has no memory effects; the pid is a backend we stopped.
                unsafe { libc::kill(*pid, libc::SIGCONT) };
            }
            for (a, b) in cuts {
                net.heal_cut(*a, *b)?;
            }
        }
        Heal::Nothing => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_schedule() {
        for scenario in SCENARIOS {
            let a = Schedule::generate(scenario, 7, Duration::from_secs(60)).unwrap();
            let b = Schedule::generate(scenario, 7, Duration::from_secs(60)).unwrap();
            assert_eq!(a, b, "{scenario}");
            assert!(!a.steps.is_empty(), "{scenario}");
            let total: Duration = a.steps.iter().map(|s| s.gap + s.duration).sum();
            assert!(total <= Duration::from_secs(60), "{scenario}: {total:?}");
        }
    }

    #[test]
    fn seeds_differ_and_mixed_mixes() {
        let a = Schedule::generate("mixed", 1, Duration::from_secs(600)).unwrap();
        let b = Schedule::generate("mixed", 2, Duration::from_secs(600)).unwrap();
        assert_ne!(a, b);
        let kinds: std::collections::BTreeSet<_> = a.steps.iter().map(|s| s.fault.kind()).collect();
        assert!(kinds.len() >= 4, "{kinds:?}");
    }

    #[test]
    fn unknown_scenario_is_an_error() {
        assert!(matches!(
            Schedule::generate("nope", 1, Duration::from_secs(60)),
            Err(NemesisError::UnknownScenario(_))
        ));
    }

    #[test]
    fn short_runs_get_one_fault() {
        let s = Schedule::generate("kill-node", 3, Duration::from_secs(8)).unwrap();
        assert_eq!(s.steps.len(), 1);
    }
}
