//! What a run records: every client operation, the nemesis intervals, the role each node
//! reported over time, and the final state after healing. Times are ms since the run started
//! (one monotonic clock in the jepsen process). Everything here is plain data (serde), so a
//! history can be saved as JSON, reloaded and checked again, and hand-made in tests.

use serde::{Deserialize, Serialize};

/// How an insert ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// PostgreSQL acknowledged the commit.
    Ok,
    /// Definitely not committed (no connection, refused before sending, or an error
    /// PostgreSQL returned such as "cannot execute INSERT in a read-only transaction").
    Failed,
    /// Sent, but the answer never came (connection lost, timeout): it may or may not have
    /// committed.
    Unknown,
}

/// One insert of a unique id by one client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Unique over the whole run.
    pub id: i64,
    pub client: u32,
    pub start_ms: u64,
    pub end_ms: u64,
    pub outcome: Outcome,
    /// For `Ok`: the node that accepted it (`node1`...), from `inet_server_addr()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// For `Ok`: the timeline of the WAL it was written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    /// For `Ok`: `pg_current_wal_lsn()` right after the insert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lsn: Option<u64>,
    /// For `Failed` / `Unknown`: the error, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A fault the nemesis applied, from `start_ms` until it was healed at `end_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultInterval {
    /// Short name (`kill-agent`, `isolate`, `partition`, `netem`, ...).
    pub kind: String,
    /// Human description with the nodes involved (`isolate node2 (primary)`).
    pub description: String,
    /// Nodes it hit.
    pub nodes: Vec<String>,
    pub start_ms: u64,
    /// `None`: never healed before the end of the run (a bug in the runner; the checker flags it).
    pub end_ms: Option<u64>,
}

/// What a node reported about itself at one instant (the role monitor samples every node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Accepts writes (`pg_is_in_recovery()` false).
    Primary,
    /// Read-only replica.
    Replica,
    /// PostgreSQL not reachable from the monitor (down, stopped, cut off).
    Down,
}

/// One sample of one node's role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleSample {
    pub node: String,
    pub at_ms: u64,
    pub role: NodeRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
}

/// The state after the last fault healed and the cluster was given time to recover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FinalState {
    /// When the last fault was healed.
    pub healed_at_ms: u64,
    /// The first time after `healed_at_ms` when exactly one node was primary, every other node
    /// streamed from it, and a test write succeeded; `None` if that never happened within the
    /// recovery bound.
    pub recovered_at_ms: Option<u64>,
    /// The recovery bound the run used (ms after healing).
    pub recovery_bound_ms: u64,
    /// The primary at the end, if exactly one.
    pub primary: Option<String>,
    /// Every id present in the table on the final primary.
    pub ids_on_primary: Vec<i64>,
    /// Per node: the ids it holds at the end (replicas should match the primary once caught up).
    #[serde(default)]
    pub ids_per_node: Vec<(String, Vec<i64>)>,
    /// Problems seen while establishing the final state (a node that never came back...).
    #[serde(default)]
    pub notes: Vec<String>,
    /// The final primary's timeline and its ancestry, from its newest timeline history file
    /// (`pg_wal/0000000N.history`): where each earlier timeline ended. Empty when the final
    /// primary is still on timeline 1 (or the file could not be read).
    #[serde(default)]
    pub timeline_switches: Vec<TimelineSwitch>,
    /// The final primary's timeline, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_timeline: Option<u64>,
}

/// One line of a timeline history file: `timeline` ended at `switch_lsn`, where its child
/// (the next timeline of the final primary's ancestry) begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineSwitch {
    pub timeline: u64,
    pub switch_lsn: u64,
}

/// Parse a timeline history file (`1\t0/3000148\tno recovery target specified` per line;
/// comments and blank lines skipped). Lines that do not parse are left out.
pub fn parse_timeline_history(text: &str) -> Vec<TimelineSwitch> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let timeline = parts.next()?.parse().ok()?;
            let (hi, lo) = parts.next()?.split_once('/')?;
            let switch_lsn = (u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?;
            Some(TimelineSwitch { timeline, switch_lsn })
        })
        .collect()
}

/// Settings of the run that the checker and the report need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct RunInfo {
    pub scenario: String,
    pub seed: u64,
    pub duration_ms: u64,
    pub nodes: Vec<String>,
    /// `synchronous_mode` was on: no acknowledged write may be lost.
    pub synchronous_mode: bool,
    /// `synchronous_mode_strict` was on too (only with `synchronous_mode`): the primary stops
    /// acknowledging writes when no synchronous standby is left. Same promise to the checker.
    #[serde(default)]
    pub synchronous_mode_strict: bool,
    /// `maximum_lag_on_failover` in force (bytes): bounds the loss when synchronous mode is off.
    pub maximum_lag_on_failover: u64,
    pub ttl_ms: u64,
    /// The scenario promises that no acknowledged write is lost even with asynchronous
    /// replication (a planned switchover, a clean whole-cluster restart, faults that must not
    /// cause a failover at all): then any lost acknowledged write is a violation.
    #[serde(default)]
    pub zero_loss: bool,
    /// The scenario's faults must cause no failover: every acknowledged write on one node and
    /// one timeline, and the monitor never sees a second node primary.
    #[serde(default)]
    pub no_failover: bool,
    /// The agents ran with mutual TLS on gRPC and REST (`--tls`).
    #[serde(default)]
    pub tls: bool,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct History {
    pub info: RunInfo,
    pub ops: Vec<Op>,
    pub faults: Vec<FaultInterval>,
    pub roles: Vec<RoleSample>,
    pub final_state: FinalState,
}
