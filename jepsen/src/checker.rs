//! Pure analysis of a recorded [`History`]: lost writes, split brain, recovery, availability.
//!
//! The checker never talks to a server; everything it knows comes from the history, so a saved
//! `history.json` can be checked again (and histories can be hand-made in tests).
//!
//! # What is flagged
//!
//! Violations (any of them fails the run, see [`CheckResult::passed`]):
//!
//! - **lost write, zero-loss run**: an id acknowledged by an `Ok` op is not in
//!   `final_state.ids_on_primary`, and the run promised zero loss: `synchronous_mode` was on,
//!   or the scenario is one that loses nothing even with asynchronous replication
//!   ([`crate::history::RunInfo::zero_loss`]: a planned switchover, a clean whole-cluster restart, faults that
//!   must cause no failover).
//! - **lost write, asynchronous**: otherwise the lost ids are grouped by the timeline they were
//!   acknowledged on and measured against where that timeline ended in the final primary's
//!   timeline history (`final_state.timeline_switches`): a violation when the last lost LSN is
//!   more than `maximum_lag_on_failover` bytes past the switch point, or when the timeline has
//!   no switch point there (the final timeline itself, or a branch the final history does not
//!   contain: the loss cannot be bounded). Within the bound, a finding. (A lost write recorded
//!   at or before the switch point is not flagged: the recorded LSN is read before the commit
//!   record is written.)
//! - **no failover** (scenarios that promise none, [`crate::history::RunInfo::no_failover`]): acknowledged
//!   writes on more than one node or timeline, or more than one node sampled primary.
//! - **no single primary at the end**: `final_state.primary` is `None`, so no acknowledged write
//!   can be verified.
//! - **phantom write**: an id on the final primary that no op ever tried to insert.
//! - **failed write present**: an id whose op ended `Failed` ("definitely not committed") is on
//!   the final primary; either the server committed after reporting an error or the workload
//!   classified the error wrongly, and both make the history untrustworthy.
//! - **duplicate acknowledgement**: one id acknowledged by two `Ok` ops.
//! - **split brain, stale timeline**: an `Ok` op Y on node B, timeline t, that *started* after an
//!   `Ok` op X on another node A, timeline T > t, had *ended*. Every promotion starts a new
//!   timeline and a correct cluster only ever moves forward through them, so once a write on T
//!   was acknowledged, any commit on an older timeline happened on a history that had already
//!   been forked off: the old primary was still writable. Only real-time order proves this: a Y
//!   that started before X ended may have committed before the promotion (an in-flight write at
//!   failover), so it is not flagged.
//! - **split brain, shared timeline**: `Ok` ops on the same timeline acknowledged by two
//!   different nodes, whatever their timing. A timeline's writes come from the one server that
//!   created it by promotion (replicas that later follow it cannot write, and their own
//!   promotion creates the next timeline). Two writers on one timeline means two promotions
//!   from the same parent timeline (both picked the same next number: a fork) or a replica
//!   opened for writes without a promotion; either way two histories took writes.
//! - **split brain, stale timeline seen by the monitor**: an `Ok` op on node B, timeline t,
//!   that started after the role monitor had sampled another node primary on a timeline T > t
//!   (the sample's time is taken after the answer came). It catches the old primary's writes
//!   in the gap between the promotion and the new primary's first acknowledged write.
//! - **split brain observed by the monitor**: two different nodes sampled `Primary` within
//!   [`CheckOptions::monitor_same_instant_ms`] of each other. Kept apart from the op-based kinds:
//!   it needs no client write, but it rests on sampling (a sample is a point in time), so the
//!   window is small enough that a clean hand-over (demote, lease transfer, promote) cannot fit
//!   in it.
//! - **recovery**: after `final_state.healed_at_ms` (or the last fault's end, if later) the run
//!   did not reach one primary with every replica streaming and a successful write
//!   (`final_state.recovered_at_ms`) within `final_state.recovery_bound_ms`, or the recorded
//!   recovery predates that heal (then recovery from the last fault was never observed).
//! - **unhealed fault**: a fault interval with `end_ms: None`.
//! - **nothing verified**: no write was acknowledged during the whole run.
//!
//! Findings (reported, never fail the run): lost writes within `maximum_lag_on_failover`, `Ok` ops
//! without node or timeline (left out of the split-brain rules), replicas whose final ids differ
//! from the primary's, the final state's own notes, a `healed_at_ms` earlier than a fault's end.
//!
//! Unknown ops are neither acknowledged nor refused: their ids may be on the final primary
//! (they committed) or not, and both are fine.
//!
//! Contract with the runner: every row the run inserts into the table must be recorded as an
//! op (a recovery probe write included), or it is reported as a phantom write. The timeline of
//! an `Ok` op must be the one its WAL was written to (for instance from
//! `pg_walfile_name(pg_current_wal_lsn())`), not `pg_control_checkpoint()`, which lags behind a
//! promotion until the next checkpoint.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::history::{FaultInterval, History, NodeRole, Op, Outcome, RoleSample, TimelineSwitch};

/// Two `Primary` samples of different nodes this close together count as the same instant.
pub const DEFAULT_MONITOR_SAME_INSTANT_MS: u64 = 50;

/// Gaps between acknowledged writes shorter than this are never reported as unavailability,
/// however fast the workload runs: scheduling jitter on a loaded machine produces them.
pub const DEFAULT_MIN_UNAVAILABILITY_MS: u64 = 250;

/// Monitor observations of the same pair of nodes closer than this form one episode, so a long
/// double-primary period is one finding rather than one per sample.
const MONITOR_EPISODE_GAP_MS: u64 = 1_000;

/// At most this many ids are spelled out in one violation sentence; the structured fields
/// hold them all.
const IDS_IN_SENTENCE: usize = 20;

/// Tunables of the checker; [`check`] uses the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckOptions {
    /// See [`DEFAULT_MONITOR_SAME_INSTANT_MS`].
    pub monitor_same_instant_ms: u64,
    /// See [`DEFAULT_MIN_UNAVAILABILITY_MS`].
    pub min_unavailability_ms: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            monitor_same_instant_ms: DEFAULT_MONITOR_SAME_INSTANT_MS,
            min_unavailability_ms: DEFAULT_MIN_UNAVAILABILITY_MS,
        }
    }
}

/// How the client ops ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    pub total: usize,
    pub ok: usize,
    pub failed: usize,
    pub unknown: usize,
    /// Unknown ops whose id is on the final primary (they did commit).
    pub unknown_committed: usize,
}

/// Which split-brain rule a [`SplitBrain`] comes from (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitBrainKind {
    /// A write acknowledged on an older timeline after a newer one had acknowledged a write.
    StaleTimeline,
    /// Two nodes acknowledged writes on the same timeline.
    SharedTimeline,
}

/// One split brain proved by client ops. Ops of the same kind, nodes and timelines are grouped:
/// `first`/`second` are the earliest offending pair, `count` and `ids` cover the whole group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitBrain {
    pub kind: SplitBrainKind,
    /// The acknowledgement that came first: for `stale-timeline` the write on the newer
    /// timeline, for `shared-timeline` the first write of the node that wrote there first.
    pub first: Op,
    /// The offending acknowledgement: the write on the old timeline (which started after
    /// `first` ended), or the first write of the second node on the shared timeline.
    pub second: Op,
    /// How many acknowledged writes of `second`'s node and timeline offend in this group.
    pub count: usize,
    /// Their ids, ascending.
    pub ids: Vec<i64>,
}

/// Two nodes seen as `Primary` at the same instant by the role monitor, possibly repeatedly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorSplitBrain {
    /// The two nodes, in name order.
    pub nodes: (String, String),
    /// Earliest and latest sample time of the episode.
    pub from_ms: u64,
    pub to_ms: u64,
    /// How many pairs of samples showed both as primary.
    pub pairs: usize,
    /// The first such pair (ordered by time).
    pub first: (RoleSample, RoleSample),
}

/// Acknowledged writes lost from one timeline, measured against where that timeline ended in
/// the final primary's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineLoss {
    /// The timeline the lost writes were acknowledged on (`None`: ops without one).
    pub timeline: Option<u64>,
    /// The lost ids on it, ascending.
    pub ids: Vec<i64>,
    /// The highest LSN any of them was acknowledged at.
    pub last_lsn: Option<u64>,
    /// Where the timeline ended in the final primary's history; `None` when it is not an
    /// ended ancestor of the final primary's timeline (the final timeline itself, or a branch
    /// the final history does not contain): then the loss cannot be bounded.
    pub switch_lsn: Option<u64>,
    /// `last_lsn - switch_lsn`, when both are known.
    pub bytes: Option<u64>,
}

/// An acknowledgement on an older timeline that started after the role monitor had already
/// seen another node primary on a newer timeline. Grouped like [`SplitBrain`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorStale {
    /// The monitor's sample of the newer primary (its first with the highest timeline among
    /// the samples taken before `op` started).
    pub sample: RoleSample,
    /// The earliest offending acknowledgement.
    pub op: Op,
    pub count: usize,
    pub ids: Vec<i64>,
}

/// Did the cluster recover after the last fault healed?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// When the last fault healed (the later of `final_state.healed_at_ms` and the last fault's
    /// end).
    pub healed_at_ms: u64,
    pub recovered_at_ms: Option<u64>,
    pub bound_ms: u64,
    /// `recovered_at_ms - healed_at_ms` (0 if it was recorded before the heal).
    pub took_ms: Option<u64>,
    pub final_primary: Option<String>,
    pub within_bound: bool,
    /// Why not, when `within_bound` is false.
    pub reason: Option<String>,
}

/// A period in which clients kept trying but no write was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start_ms: u64,
    pub end_ms: u64,
    pub duration_ms: u64,
    /// Failed and unknown ops that ended inside the window.
    pub failed: usize,
    pub unknown: usize,
    /// Indices into `History::faults` of the faults active during the window.
    pub faults: Vec<usize>,
    /// Their descriptions, so `result.json` reads on its own.
    pub causes: Vec<String>,
}

/// A violation placed in time, for the timeline picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub at_ms: u64,
    pub label: String,
}

/// Everything the checker concluded about one history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub counts: OpCounts,
    /// Distinct acknowledged ids.
    pub acked: usize,
    pub final_primary: Option<String>,
    /// Acknowledged ids missing from the final primary (empty when there is no final primary:
    /// then see `unverifiable_acked`).
    pub lost: Vec<i64>,
    /// Whether `lost` is a violation by itself (`synchronous_mode` on, or a scenario that
    /// promises zero loss) or bounded in bytes (`lost_bytes`).
    pub lost_is_violation: bool,
    /// With asynchronous replication: the loss per old timeline, in bytes past its switch
    /// point, which must stay within `maximum_lag_on_failover`.
    #[serde(default)]
    pub lost_bytes: Vec<TimelineLoss>,
    /// `maximum_lag_on_failover` of the run, the bound that applies to `lost` when
    /// `synchronous_mode` is off.
    pub maximum_lag_on_failover: u64,
    /// Acknowledged ids that could not be verified because there was no single final primary.
    pub unverifiable_acked: usize,
    /// Ids on the final primary that no op ever tried to insert.
    pub phantom: Vec<i64>,
    /// Ids of `Failed` ops that are on the final primary.
    pub failed_but_present: Vec<i64>,
    /// Ids acknowledged by more than one `Ok` op.
    pub duplicate_acks: Vec<i64>,
    /// Op-based split brains (stale and shared timelines).
    pub split_brain: Vec<SplitBrain>,
    /// Split brains seen by the role monitor.
    pub monitor_split_brain: Vec<MonitorSplitBrain>,
    /// Stale-timeline acknowledgements proved by a monitor sample rather than by a client op.
    #[serde(default)]
    pub monitor_stale: Vec<MonitorStale>,
    pub recovery: Recovery,
    pub unhealed_faults: Vec<FaultInterval>,
    /// Gaps longer than `unavailability_threshold_ms` with no acknowledged write.
    pub unavailability: Vec<Window>,
    pub unavailability_threshold_ms: u64,
    /// Reported, but do not fail the run.
    pub findings: Vec<String>,
    /// Human sentences; the run passed when there are none.
    pub violations: Vec<String>,
    /// Violations placed in time, for the picture.
    pub marks: Vec<Mark>,
}

impl CheckResult {
    /// No violations.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Check a history with the default options.
pub fn check(h: &History) -> CheckResult {
    check_with(h, &CheckOptions::default())
}

/// Check a history.
pub fn check_with(h: &History, opts: &CheckOptions) -> CheckResult {
    let mut out = Out::default();

    if !h.ops.iter().any(|op| op.outcome == Outcome::Ok) {
        out.violation(
            "no write was acknowledged during the whole run, so nothing was verified".to_string(),
            None,
        );
    }
    let writes = check_writes(h, &mut out);
    let split_brain = check_split_brain(h, &mut out);
    let monitor_split_brain = check_monitor(h, opts, &mut out);
    let monitor_stale = check_monitor_stale(h, &split_brain, &mut out);
    if h.info.no_failover {
        check_no_failover(h, &mut out);
    }
    let recovery = check_recovery(h, &mut out);

    let mut unhealed_faults = Vec::new();
    for (i, f) in h.faults.iter().enumerate() {
        if f.end_ms.is_none() {
            out.violation(
                format!(
                    "fault [{i}] `{}` (started at {}) was never healed",
                    f.description,
                    secs(f.start_ms)
                ),
                Some(Mark {
                    at_ms: f.start_ms,
                    label: format!("never healed: {}", f.kind),
                }),
            );
            unhealed_faults.push(f.clone());
        }
    }

    let (unavailability, unavailability_threshold_ms) = unavailability(h, opts);

    CheckResult {
        counts: writes.counts,
        acked: writes.acked,
        final_primary: h.final_state.primary.clone(),
        lost: writes.lost,
        lost_bytes: writes.lost_bytes,
        lost_is_violation: h.info.synchronous_mode || h.info.zero_loss,
        maximum_lag_on_failover: h.info.maximum_lag_on_failover,
        unverifiable_acked: writes.unverifiable_acked,
        phantom: writes.phantom,
        failed_but_present: writes.failed_but_present,
        duplicate_acks: writes.duplicate_acks,
        split_brain,
        monitor_split_brain,
        monitor_stale,
        recovery,
        unhealed_faults,
        unavailability,
        unavailability_threshold_ms,
        findings: out.findings,
        violations: out.violations,
        marks: out.marks,
    }
}

/// One line describing an op, used in violation sentences and the summary.
pub fn describe_op(op: &Op) -> String {
    let mut s = format!("id {} (client {}", op.id, op.client);
    match op.outcome {
        Outcome::Ok => {}
        Outcome::Failed => s.push_str(", failed"),
        Outcome::Unknown => s.push_str(", unknown"),
    }
    if let Some(node) = &op.node {
        s.push_str(&format!(", {node}"));
    }
    if let Some(tl) = op.timeline {
        s.push_str(&format!(", timeline {tl}"));
    }
    if let Some(lsn) = op.lsn {
        s.push_str(&format!(", lsn {}", fmt_lsn(lsn)));
    }
    s.push_str(&format!(", {}–{})", secs(op.start_ms), secs(op.end_ms)));
    if let Some(err) = &op.error {
        s.push_str(&format!(": {err}"));
    }
    s
}

/// An LSN the way PostgreSQL prints it (`16/B374D848`).
pub fn fmt_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// `1 write`, `2 writes`.
pub fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Milliseconds since the start of the run as seconds (`12.345 s`).
pub fn secs(ms: u64) -> String {
    format!("{}.{:03} s", ms / 1000, ms % 1000)
}

/// Collects sentences while the rules run.
#[derive(Default)]
struct Out {
    violations: Vec<String>,
    findings: Vec<String>,
    marks: Vec<Mark>,
}

impl Out {
    fn violation(&mut self, sentence: String, mark: Option<Mark>) {
        self.violations.push(sentence);
        self.marks.extend(mark);
    }

    fn finding(&mut self, sentence: String) {
        self.findings.push(sentence);
    }
}

struct Writes {
    counts: OpCounts,
    acked: usize,
    lost: Vec<i64>,
    lost_bytes: Vec<TimelineLoss>,
    unverifiable_acked: usize,
    phantom: Vec<i64>,
    failed_but_present: Vec<i64>,
    duplicate_acks: Vec<i64>,
}

fn list_ids(ids: &[i64]) -> String {
    let mut s = ids
        .iter()
        .take(IDS_IN_SENTENCE)
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    if ids.len() > IDS_IN_SENTENCE {
        s.push_str(&format!(" and {} more", ids.len() - IDS_IN_SENTENCE));
    }
    s
}

/// Lost, phantom, duplicate and failed-but-present writes.
fn check_writes(h: &History, out: &mut Out) -> Writes {
    let fs = &h.final_state;
    let mut counts = OpCounts {
        total: h.ops.len(),
        ..OpCounts::default()
    };
    let attempted: HashSet<i64> = h.ops.iter().map(|op| op.id).collect();
    // The first Ok op of each id, to name the op (and its time) in sentences.
    let mut acked: BTreeMap<i64, &Op> = BTreeMap::new();
    let mut duplicates: BTreeMap<i64, &Op> = BTreeMap::new();
    for op in &h.ops {
        match op.outcome {
            Outcome::Ok => {
                counts.ok += 1;
                if let Entry::Vacant(e) = acked.entry(op.id) {
                    e.insert(op);
                } else {
                    duplicates.entry(op.id).or_insert(op);
                }
            }
            Outcome::Failed => counts.failed += 1,
            Outcome::Unknown => counts.unknown += 1,
        }
    }

    for (id, second) in &duplicates {
        out.violation(
            format!(
                "duplicate acknowledgement: id {id} was acknowledged more than once: {} and {}",
                describe_op(acked[id]),
                describe_op(second)
            ),
            Some(Mark {
                at_ms: second.end_ms,
                label: format!("duplicate id {id}"),
            }),
        );
    }

    let mut lost = Vec::new();
    let mut lost_bytes = Vec::new();
    let mut unverifiable_acked = 0;
    let mut phantom = Vec::new();
    let mut failed_but_present = Vec::new();
    match &fs.primary {
        None => {
            unverifiable_acked = acked.len();
            out.violation(
                format!(
                    "no single primary at the end: {} could not be verified",
                    plural(acked.len(), "acknowledged write", "acknowledged writes")
                ),
                Some(Mark {
                    at_ms: fs.healed_at_ms.saturating_add(fs.recovery_bound_ms),
                    label: "no single primary".to_string(),
                }),
            );
        }
        Some(primary) => {
            let present: HashSet<i64> = fs.ids_on_primary.iter().copied().collect();
            lost = acked.keys().copied().filter(|id| !present.contains(id)).collect();
            let present_sorted: BTreeSet<i64> = present.iter().copied().collect();
            phantom = present_sorted
                .iter()
                .copied()
                .filter(|id| !attempted.contains(id))
                .collect();
            for op in &h.ops {
                if !present.contains(&op.id) {
                    continue;
                }
                match op.outcome {
                    Outcome::Unknown => counts.unknown_committed += 1,
                    // An id that failed once and was acknowledged on a retry is the Ok op's.
                    Outcome::Failed if !acked.contains_key(&op.id) => failed_but_present.push(op.id),
                    _ => {}
                }
            }
            failed_but_present.sort_unstable();
            failed_but_present.dedup();

            if !lost.is_empty() {
                let ops: Vec<String> = lost
                    .iter()
                    .take(IDS_IN_SENTENCE)
                    .map(|id| describe_op(acked[id]))
                    .collect();
                let more = if lost.len() > IDS_IN_SENTENCE {
                    format!("; and {} more", lost.len() - IDS_IN_SENTENCE)
                } else {
                    String::new()
                };
                let first_ack = lost.iter().map(|id| acked[id].end_ms).min().unwrap_or(0);
                let lost_ops: Vec<&Op> = lost.iter().map(|id| acked[id]).collect();
                if h.info.synchronous_mode || h.info.zero_loss {
                    let why = if h.info.synchronous_mode {
                        "synchronous_mode was on".to_string()
                    } else {
                        format!("scenario {} promises zero loss", h.info.scenario)
                    };
                    out.violation(
                        format!(
                            "lost writes: {} missing from the final primary {primary} although \
                             {why}: {}{more}",
                            plural(lost.len(), "acknowledged id is", "acknowledged ids are"),
                            ops.join("; ")
                        ),
                        Some(Mark {
                            at_ms: first_ack,
                            label: format!("{} lost", lost.len()),
                        }),
                    );
                } else {
                    let loss = async_loss(&lost_ops, &fs.timeline_switches);
                    judge_async_loss(h, primary, &loss, out);
                    lost_bytes = loss;
                    out.finding(format!(
                        "lost writes allowed by asynchronous replication: {} missing from the \
                         final primary {primary} (synchronous_mode off, maximum_lag_on_failover \
                         {} bytes): {}{more}",
                        plural(lost.len(), "acknowledged id is", "acknowledged ids are"),
                        h.info.maximum_lag_on_failover,
                        ops.join("; ")
                    ));
                }
            }
            if !phantom.is_empty() {
                out.violation(
                    format!(
                        "phantom writes: {} on the final primary {primary} never attempted by \
                         any client: {}",
                        plural(phantom.len(), "id", "ids"),
                        list_ids(&phantom)
                    ),
                    None,
                );
            }
            if !failed_but_present.is_empty() {
                let ops: Vec<String> = h
                    .ops
                    .iter()
                    .filter(|op| op.outcome == Outcome::Failed && failed_but_present.contains(&op.id))
                    .take(IDS_IN_SENTENCE)
                    .map(describe_op)
                    .collect();
                let first_failed = h
                    .ops
                    .iter()
                    .filter(|op| op.outcome == Outcome::Failed && failed_but_present.contains(&op.id))
                    .map(|op| op.end_ms)
                    .min()
                    .unwrap_or(0);
                out.violation(
                    format!(
                        "failed writes present: {} whose insert was reported as failed \
                         (definitely not committed) on the final primary {primary}: {}",
                        plural(failed_but_present.len(), "id", "ids"),
                        ops.join("; ")
                    ),
                    Some(Mark {
                        at_ms: first_failed,
                        label: format!(
                            "{} present",
                            plural(failed_but_present.len(), "failed write", "failed writes")
                        ),
                    }),
                );
            }
            replica_findings(h, primary, &present, out);
        }
    }
    for note in &fs.notes {
        out.finding(format!("final state: {note}"));
    }

    Writes {
        counts,
        acked: acked.len(),
        lost,
        lost_bytes,
        unverifiable_acked,
        phantom,
        failed_but_present,
        duplicate_acks: duplicates.keys().copied().collect(),
    }
}

/// Replicas whose rows differ from the primary's. Only a finding: the runner reads the nodes
/// one after the other, so a replica may legitimately lag by the rows written in between.
fn replica_findings(h: &History, primary: &str, present: &HashSet<i64>, out: &mut Out) {
    for (node, ids) in &h.final_state.ids_per_node {
        if node == primary {
            continue;
        }
        let theirs: HashSet<i64> = ids.iter().copied().collect();
        let mut extra: Vec<i64> = theirs.difference(present).copied().collect();
        let missing = present.difference(&theirs).count();
        extra.sort_unstable();
        if !extra.is_empty() || missing > 0 {
            out.finding(format!(
                "{node} differs from the primary {primary} at the end: {} missing, {} the \
                 primary does not have{}",
                plural(missing, "id", "ids"),
                plural(extra.len(), "id", "ids"),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", list_ids(&extra))
                }
            ));
        }
    }
}

/// An `Ok` op with everything the split-brain rules need.
#[derive(Clone, Copy)]
struct Ack<'a> {
    op: &'a Op,
    node: &'a str,
    tl: u64,
}

/// Group lost acknowledged ops by timeline and measure each group against the timeline's
/// switch point.
fn async_loss(lost: &[&Op], switches: &[TimelineSwitch]) -> Vec<TimelineLoss> {
    let mut by_tl: BTreeMap<Option<u64>, Vec<&Op>> = BTreeMap::new();
    for op in lost {
        by_tl.entry(op.timeline).or_default().push(op);
    }
    by_tl
        .into_iter()
        .map(|(timeline, ops)| {
            let mut ids: Vec<i64> = ops.iter().map(|op| op.id).collect();
            ids.sort_unstable();
            let last_lsn = ops.iter().filter_map(|op| op.lsn).max();
            let switch_lsn = timeline
                .and_then(|t| switches.iter().find(|s| s.timeline == t))
                .map(|s| s.switch_lsn);
            let bytes = last_lsn.zip(switch_lsn).map(|(l, s)| l.saturating_sub(s));
            TimelineLoss {
                timeline,
                ids,
                last_lsn,
                switch_lsn,
                bytes,
            }
        })
        .collect()
}

/// With asynchronous replication a failover may lose what the old primary had not shipped,
/// but no more than `maximum_lag_on_failover` bytes past the old timeline's end.
///
/// A lost write whose recorded LSN is at or before the switch point is not flagged by itself:
/// the LSN is read by the insert's `RETURNING`, before the commit record is written, so the
/// commit may still lie past the switch point.
fn judge_async_loss(h: &History, primary: &str, loss: &[TimelineLoss], out: &mut Out) {
    let max = h.info.maximum_lag_on_failover;
    let tl_name = |t: Option<u64>| t.map_or("an unknown timeline".to_string(), |t| format!("timeline {t}"));
    for l in loss {
        let mark = |label: String| -> Option<Mark> {
            Some(Mark {
                at_ms: h
                    .ops
                    .iter()
                    .filter(|op| op.outcome == Outcome::Ok && l.ids.binary_search(&op.id).is_ok())
                    .map(|op| op.end_ms)
                    .min()
                    .unwrap_or(0),
                label,
            })
        };
        match (l.switch_lsn, l.bytes) {
            (None, _) => out.violation(
                format!(
                    "lost writes that cannot be bounded: {} acknowledged on {} are missing from \
                     the final primary {primary}, and that timeline did not end in its history \
                     (final timeline {}; ids {})",
                    plural(l.ids.len(), "write", "writes"),
                    tl_name(l.timeline),
                    h.final_state
                        .final_timeline
                        .map_or("unknown".to_string(), |t| t.to_string()),
                    list_ids(&l.ids)
                ),
                mark(format!("{} lost, unbounded", l.ids.len())),
            ),
            (Some(sw), Some(bytes)) => {
                if bytes > max {
                    out.violation(
                        format!(
                            "lost writes over maximum_lag_on_failover: {} acknowledged on {} up \
                             to {} lost, {bytes} bytes past its switch point {} (limit {max} \
                             bytes; ids {})",
                            plural(l.ids.len(), "write", "writes"),
                            tl_name(l.timeline),
                            l.last_lsn.map_or("?".to_string(), fmt_lsn),
                            fmt_lsn(sw),
                            list_ids(&l.ids)
                        ),
                        mark(format!("{bytes} bytes lost")),
                    );
                }
            }
            (Some(sw), None) => out.violation(
                format!(
                    "lost writes without an LSN: {} acknowledged on {} (switch point {}) cannot \
                     be measured (ids {})",
                    plural(l.ids.len(), "write", "writes"),
                    tl_name(l.timeline),
                    fmt_lsn(sw),
                    list_ids(&l.ids)
                ),
                mark(format!("{} lost, unmeasured", l.ids.len())),
            ),
        }
    }
}

/// Op-based split brain: the stale-timeline and shared-timeline rules.
fn check_split_brain(h: &History, out: &mut Out) -> Vec<SplitBrain> {
    let mut acks = Vec::new();
    let mut unattributed = 0;
    for op in h.ops.iter().filter(|op| op.outcome == Outcome::Ok) {
        match (&op.node, op.timeline) {
            (Some(node), Some(tl)) => acks.push(Ack { op, node, tl }),
            _ => unattributed += 1,
        }
    }
    if unattributed > 0 {
        out.finding(format!(
            "{} without node or timeline, left out of the split-brain check",
            plural(unattributed, "acknowledged op", "acknowledged ops")
        ));
    }

    let mut found = stale_timeline(&acks);
    found.extend(shared_timeline(&acks));
    found.sort_by_key(|sb| (sb.second.end_ms, sb.second.id));

    for sb in &found {
        let (a, b) = (sb.first.node.as_deref(), sb.second.node.as_deref());
        let (a, b) = (a.unwrap_or("?"), b.unwrap_or("?"));
        let (ta, tb) = (sb.first.timeline.unwrap_or(0), sb.second.timeline.unwrap_or(0));
        let (sentence, label) = match sb.kind {
            SplitBrainKind::StaleTimeline => (
                format!(
                    "split brain: {b} acknowledged {} on timeline {tb} after {a} had \
                     acknowledged a write on the newer timeline {ta}; first: {} began after {} \
                     was acknowledged (ids {})",
                    plural(sb.count, "write", "writes"),
                    describe_op(&sb.second),
                    describe_op(&sb.first),
                    list_ids(&sb.ids)
                ),
                format!("split brain: {b} tl {tb} after {a} tl {ta}"),
            ),
            SplitBrainKind::SharedTimeline => (
                format!(
                    "split brain: {a} and {b} both acknowledged writes on timeline {ta} \
                     ({} by {b}); first of {a}: {}; first of {b}: {} (ids {})",
                    plural(sb.count, "write", "writes"),
                    describe_op(&sb.first),
                    describe_op(&sb.second),
                    list_ids(&sb.ids)
                ),
                format!("split brain: {a} and {b} on tl {ta}"),
            ),
        };
        out.violation(
            sentence,
            Some(Mark {
                at_ms: sb.second.end_ms,
                label,
            }),
        );
    }
    found
}

/// Which of two candidate proofs names the newer history: the higher timeline, then the
/// earlier acknowledgement (the first evidence of it).
fn newer_proof<'a>(a: Ack<'a>, b: Ack<'a>) -> Ack<'a> {
    let key = |x: &Ack| (std::cmp::Reverse(x.tl), x.op.end_ms, x.op.id);
    if key(&b) < key(&a) {
        b
    } else {
        a
    }
}

/// Rule: Y (node B, timeline t) started after X (node A != B, timeline T > t) ended.
fn stale_timeline(acks: &[Ack]) -> Vec<SplitBrain> {
    // Per node: its acks by end time, and for each prefix the newest-history proof in it, so
    // "the best proof on node A that ended before time s" is one binary search.
    let mut per_node: BTreeMap<&str, Vec<Ack>> = BTreeMap::new();
    for a in acks {
        per_node.entry(a.node).or_default().push(*a);
    }
    let mut prefix_best: BTreeMap<&str, Vec<Ack>> = BTreeMap::new();
    for (node, list) in per_node.iter_mut() {
        list.sort_by_key(|a| (a.op.end_ms, a.op.id));
        let mut best = Vec::with_capacity(list.len());
        for a in list.iter() {
            let b = match best.last() {
                Some(prev) => newer_proof(*prev, *a),
                None => *a,
            };
            best.push(b);
        }
        prefix_best.insert(*node, best);
    }

    // Grouped by (stale node, stale timeline, proof node, proof timeline).
    type Group<'a> = (&'a str, u64, &'a str, u64);
    let mut groups: BTreeMap<Group, Vec<(Ack, Ack)>> = BTreeMap::new();
    for y in acks {
        let mut proof: Option<Ack> = None;
        for (node, list) in &per_node {
            if *node == y.node {
                continue;
            }
            let n = list.partition_point(|a| a.op.end_ms < y.op.start_ms);
            if n == 0 {
                continue;
            }
            let cand = prefix_best[node][n - 1];
            if cand.tl > y.tl {
                proof = Some(match proof {
                    Some(p) => newer_proof(p, cand),
                    None => cand,
                });
            }
        }
        if let Some(x) = proof {
            groups
                .entry((y.node, y.tl, x.node, x.tl))
                .or_default()
                .push((x, *y));
        }
    }

    groups
        .into_values()
        .map(|mut pairs| {
            pairs.sort_by_key(|(_, y)| (y.op.start_ms, y.op.end_ms, y.op.id));
            let mut ids: Vec<i64> = pairs.iter().map(|(_, y)| y.op.id).collect();
            ids.sort_unstable();
            let (x, y) = pairs[0];
            SplitBrain {
                kind: SplitBrainKind::StaleTimeline,
                first: x.op.clone(),
                second: y.op.clone(),
                count: pairs.len(),
                ids,
            }
        })
        .collect()
}

/// Rule: two nodes acknowledged writes on the same timeline.
fn shared_timeline(acks: &[Ack]) -> Vec<SplitBrain> {
    let mut by_tl: BTreeMap<u64, BTreeMap<&str, Vec<&Op>>> = BTreeMap::new();
    for a in acks {
        by_tl
            .entry(a.tl)
            .or_default()
            .entry(a.node)
            .or_default()
            .push(a.op);
    }
    let mut found = Vec::new();
    for nodes in by_tl.values() {
        if nodes.len() < 2 {
            continue;
        }
        // The node that wrote there first is taken as the timeline's owner; every other node
        // writing on it offends.
        let mut writers: Vec<(&str, Vec<&Op>)> = nodes
            .iter()
            .map(|(node, ops)| {
                let mut ops = ops.clone();
                ops.sort_by_key(|op| (op.end_ms, op.id));
                (*node, ops)
            })
            .collect();
        writers.sort_by_key(|(node, ops)| (ops[0].end_ms, *node));
        let owner_first = writers[0].1[0];
        for (_, ops) in &writers[1..] {
            let mut ids: Vec<i64> = ops.iter().map(|op| op.id).collect();
            ids.sort_unstable();
            found.push(SplitBrain {
                kind: SplitBrainKind::SharedTimeline,
                first: owner_first.clone(),
                second: ops[0].clone(),
                count: ops.len(),
                ids,
            });
        }
    }
    found
}

/// Two different nodes sampled `Primary` within the same-instant window.
fn check_monitor(h: &History, opts: &CheckOptions, out: &mut Out) -> Vec<MonitorSplitBrain> {
    let mut prim: Vec<&RoleSample> = h.roles.iter().filter(|s| s.role == NodeRole::Primary).collect();
    prim.sort_by(|a, b| (a.at_ms, &a.node).cmp(&(b.at_ms, &b.node)));

    let mut episodes: Vec<MonitorSplitBrain> = Vec::new();
    // Index of the open episode per pair of nodes.
    let mut open: HashMap<(String, String), usize> = HashMap::new();
    for (i, a) in prim.iter().enumerate() {
        for b in prim[i + 1..]
            .iter()
            .take_while(|b| b.at_ms - a.at_ms <= opts.monitor_same_instant_ms)
        {
            if a.node == b.node {
                continue;
            }
            let key = if a.node < b.node {
                (a.node.clone(), b.node.clone())
            } else {
                (b.node.clone(), a.node.clone())
            };
            if let Some(&e) = open.get(&key) {
                let ep = &mut episodes[e];
                if a.at_ms <= ep.to_ms.saturating_add(MONITOR_EPISODE_GAP_MS) {
                    ep.to_ms = ep.to_ms.max(b.at_ms);
                    ep.pairs += 1;
                    continue;
                }
            }
            open.insert(key.clone(), episodes.len());
            episodes.push(MonitorSplitBrain {
                nodes: key,
                from_ms: a.at_ms,
                to_ms: b.at_ms,
                pairs: 1,
                first: ((*a).clone(), (*b).clone()),
            });
        }
    }

    for ep in &episodes {
        let tl = |s: &RoleSample| s.timeline.map(|t| format!(" (timeline {t})")).unwrap_or_default();
        let (sa, sb) = &ep.first;
        out.violation(
            format!(
                "split brain observed by the monitor: {} and {} were both primary between {} and \
                 {} ({} within {} ms); first: {} primary{} at {}, {} primary{} at {}",
                ep.nodes.0,
                ep.nodes.1,
                secs(ep.from_ms),
                secs(ep.to_ms),
                plural(ep.pairs, "pair of samples", "pairs of samples"),
                opts.monitor_same_instant_ms,
                sa.node,
                tl(sa),
                secs(sa.at_ms),
                sb.node,
                tl(sb),
                secs(sb.at_ms)
            ),
            Some(Mark {
                at_ms: ep.from_ms,
                label: format!("2 primaries: {} + {}", ep.nodes.0, ep.nodes.1),
            }),
        );
    }
    episodes
}

/// Rule: an `Ok` op Y (node B, timeline t) that started after the monitor's sample of another
/// node A primary on timeline T > t. The sample's time is taken after A answered, so A was
/// primary on T before Y began: B's commit on t happened on a history already forked off.
/// Acknowledgements the op-based rules already flagged are left out (one finding per write).
fn check_monitor_stale(h: &History, already: &[SplitBrain], out: &mut Out) -> Vec<MonitorStale> {
    let flagged: HashSet<i64> = already.iter().flat_map(|sb| sb.ids.iter().copied()).collect();
    // Per node: its primary samples with a timeline, by time, and for each prefix the sample
    // with the highest timeline (the earliest of those).
    let mut per_node: BTreeMap<&str, Vec<&RoleSample>> = BTreeMap::new();
    for s in h
        .roles
        .iter()
        .filter(|s| s.role == NodeRole::Primary && s.timeline.is_some())
    {
        per_node.entry(s.node.as_str()).or_default().push(s);
    }
    let mut prefix_best: BTreeMap<&str, Vec<&RoleSample>> = BTreeMap::new();
    for (node, list) in per_node.iter_mut() {
        list.sort_by_key(|s| s.at_ms);
        let mut best: Vec<&RoleSample> = Vec::with_capacity(list.len());
        for s in list.iter() {
            let b = match best.last() {
                Some(prev) if prev.timeline >= s.timeline => *prev,
                _ => *s,
            };
            best.push(b);
        }
        prefix_best.insert(*node, best);
    }

    type Group<'a> = (&'a str, u64, &'a str, u64);
    let mut groups: BTreeMap<Group, Vec<(&RoleSample, &Op)>> = BTreeMap::new();
    for op in h.ops.iter().filter(|op| op.outcome == Outcome::Ok) {
        let (Some(node), Some(tl)) = (op.node.as_deref(), op.timeline) else {
            continue;
        };
        if flagged.contains(&op.id) {
            continue;
        }
        let mut proof: Option<&RoleSample> = None;
        for (other, list) in &per_node {
            if *other == node {
                continue;
            }
            let n = list.partition_point(|s| s.at_ms < op.start_ms);
            if n == 0 {
                continue;
            }
            let cand = prefix_best[other][n - 1];
            if cand.timeline.unwrap_or(0) > tl
                && proof.is_none_or(|p| {
                    (std::cmp::Reverse(cand.timeline), cand.at_ms) < (std::cmp::Reverse(p.timeline), p.at_ms)
                })
            {
                proof = Some(cand);
            }
        }
        if let Some(s) = proof {
            groups
                .entry((node, tl, s.node.as_str(), s.timeline.unwrap_or(0)))
                .or_default()
                .push((s, op));
        }
    }

    let mut found: Vec<MonitorStale> = groups
        .into_values()
        .map(|mut pairs| {
            pairs.sort_by_key(|(_, op)| (op.start_ms, op.end_ms, op.id));
            let mut ids: Vec<i64> = pairs.iter().map(|(_, op)| op.id).collect();
            ids.sort_unstable();
            let (s, op) = pairs[0];
            MonitorStale {
                sample: s.clone(),
                op: op.clone(),
                count: pairs.len(),
                ids,
            }
        })
        .collect();
    found.sort_by_key(|m| (m.op.end_ms, m.op.id));
    for m in &found {
        let b = m.op.node.as_deref().unwrap_or("?");
        let tb = m.op.timeline.unwrap_or(0);
        let ta = m.sample.timeline.unwrap_or(0);
        out.violation(
            format!(
                "split brain: {b} acknowledged {} on timeline {tb} after the monitor had seen \
                 {} primary on the newer timeline {ta} at {}; first: {} (ids {})",
                plural(m.count, "write", "writes"),
                m.sample.node,
                secs(m.sample.at_ms),
                describe_op(&m.op),
                list_ids(&m.ids)
            ),
            Some(Mark {
                at_ms: m.op.end_ms,
                label: format!("split brain: {b} tl {tb} after {} seen on tl {ta}", m.sample.node),
            }),
        );
    }
    found
}

/// Rule for scenarios whose faults must not cause a failover: one writer, one timeline.
fn check_no_failover(h: &History, out: &mut Out) {
    let writers: BTreeSet<(&str, u64)> = h
        .ops
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .filter_map(|op| Some((op.node.as_deref()?, op.timeline?)))
        .collect();
    let sampled: BTreeSet<&str> = h
        .roles
        .iter()
        .filter(|s| s.role == NodeRole::Primary)
        .map(|s| s.node.as_str())
        .collect();
    if writers.len() > 1 || sampled.len() > 1 {
        let writers: Vec<String> = writers
            .iter()
            .map(|(n, t)| format!("{n} on timeline {t}"))
            .collect();
        out.violation(
            format!(
                "failover although scenario {} promises none: acknowledged by {}; sampled \
                 primary: {}",
                h.info.scenario,
                writers.join(", "),
                sampled.iter().copied().collect::<Vec<_>>().join(", ")
            ),
            None,
        );
    }
}

fn check_recovery(h: &History, out: &mut Out) -> Recovery {
    let fs = &h.final_state;
    let mut healed_at_ms = fs.healed_at_ms;
    if let Some((i, f, end)) = h
        .faults
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.end_ms.map(|e| (i, f, e)))
        .max_by_key(|(_, _, e)| *e)
    {
        if end > healed_at_ms {
            // The runner's figure cannot be earlier than a heal it recorded itself; count from
            // the later one so recovery is not charged for time the fault was still active.
            out.finding(format!(
                "final_state.healed_at_ms ({}) is earlier than the end of fault [{i}] `{}` ({}); \
                 recovery is measured from the latter",
                secs(healed_at_ms),
                f.description,
                secs(end)
            ));
            healed_at_ms = end;
        }
    }
    let bound_ms = fs.recovery_bound_ms;
    let took_ms = fs.recovered_at_ms.map(|r| r.saturating_sub(healed_at_ms));
    let reason = match (fs.recovered_at_ms, took_ms) {
        (None, _) | (_, None) => Some(format!(
            "the cluster did not reach one primary with every other node streaming from it and \
             a successful write within {} of the last heal at {}",
            secs(bound_ms),
            secs(healed_at_ms)
        )),
        (Some(at), _) if at < healed_at_ms => Some(format!(
            "recovered_at ({}) precedes the last heal ({}): recovery after the last fault was \
             not observed",
            secs(at),
            secs(healed_at_ms)
        )),
        (Some(_), Some(took)) if took > bound_ms => Some(format!(
            "recovery took {} after the last heal at {}, over the bound of {}",
            secs(took),
            secs(healed_at_ms),
            secs(bound_ms)
        )),
        _ => None,
    };
    if let Some(reason) = &reason {
        // Placed where the failure shows: the late recovery itself, the heal it should have
        // followed, or the deadline that passed without one.
        let at_ms = match fs.recovered_at_ms {
            Some(at) => at.max(healed_at_ms),
            None => healed_at_ms.saturating_add(bound_ms),
        };
        out.violation(
            format!("recovery: {reason}"),
            Some(Mark {
                at_ms,
                label: "not recovered in bound".to_string(),
            }),
        );
    }
    Recovery {
        healed_at_ms,
        recovered_at_ms: fs.recovered_at_ms,
        bound_ms,
        took_ms,
        final_primary: fs.primary.clone(),
        within_bound: reason.is_none(),
        reason,
    }
}

/// Gaps with no acknowledged write while clients were trying (from the first op's start to
/// the last op's end). The threshold is twice the mean interval between acknowledgements, but
/// at least `min_unavailability_ms`.
fn unavailability(h: &History, opts: &CheckOptions) -> (Vec<Window>, u64) {
    let mut ok_ends: Vec<u64> = h
        .ops
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .map(|op| op.end_ms)
        .collect();
    ok_ends.sort_unstable();
    let threshold = match (ok_ends.first(), ok_ends.last()) {
        (Some(first), Some(last)) if ok_ends.len() >= 2 => {
            let mean = (last - first) as f64 / (ok_ends.len() - 1) as f64;
            ((2.0 * mean).ceil() as u64).max(opts.min_unavailability_ms)
        }
        _ => opts.min_unavailability_ms,
    };
    let (Some(span_start), Some(span_end)) = (
        h.ops.iter().map(|op| op.start_ms).min(),
        h.ops.iter().map(|op| op.end_ms).max(),
    ) else {
        return (Vec::new(), threshold);
    };

    let mut points = Vec::with_capacity(ok_ends.len() + 2);
    points.push(span_start);
    points.extend(ok_ends.iter().copied());
    points.push(span_end);

    let mut windows = Vec::new();
    for w in points.windows(2) {
        let (start_ms, end_ms) = (w[0], w[1]);
        if end_ms.saturating_sub(start_ms) <= threshold {
            continue;
        }
        let inside = |op: &&Op| op.end_ms >= start_ms && op.end_ms <= end_ms;
        let failed = h
            .ops
            .iter()
            .filter(inside)
            .filter(|op| op.outcome == Outcome::Failed)
            .count();
        let unknown = h
            .ops
            .iter()
            .filter(inside)
            .filter(|op| op.outcome == Outcome::Unknown)
            .count();
        let faults: Vec<usize> = h
            .faults
            .iter()
            .enumerate()
            .filter(|(_, f)| f.start_ms < end_ms && f.end_ms.unwrap_or(u64::MAX) > start_ms)
            .map(|(i, _)| i)
            .collect();
        let causes = faults.iter().map(|&i| h.faults[i].description.clone()).collect();
        windows.push(Window {
            start_ms,
            end_ms,
            duration_ms: end_ms - start_ms,
            failed,
            unknown,
            faults,
            causes,
        });
    }
    (windows, threshold)
}
