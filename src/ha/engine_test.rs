//! Table tests of the loop's memory: what `step` remembers from an observation, and what
//! `apply` remembers from an executor's report. Each row names the memory before and the
//! whole memory wanted after.

use super::action_error::{ActionError, Operation};
use super::decide::{Action, DataDir, Job};
use super::engine::*;
use super::pg_ops::PgFailure;
use super::retry::RetryBudget;
use crate::cluster::{ClusterView, FailoverRequest, LeaderLease, MemberStatus, PgRole, PgRunState};
use crate::config::Tags;

fn ours() -> DataDir {
    DataDir::Initialized {
        system_identifier: "7300000000000000001".into(),
    }
}

fn primary_member(name: &str) -> MemberStatus {
    MemberStatus {
        name: name.into(),
        state: PgRunState::Running,
        role: PgRole::Primary,
        timeline: Some(2),
        ..Default::default()
    }
}

/// node1 holds the lease and runs as primary; node2 (me) exists.
fn led_by(leader: &str) -> ClusterView {
    ClusterView {
        initialize: Some("7300000000000000001".into()),
        leader: Some(LeaderLease {
            holder: leader.into(),
            revision: 1,
            expires_at_ms: u64::MAX,
        }),
        members: vec![primary_member(leader)],
        ..Default::default()
    }
}

/// Nobody holds the lease; a switchover request from node2 to node1 is pending.
fn handing_over() -> ClusterView {
    ClusterView {
        initialize: Some("7300000000000000001".into()),
        failover: Some(FailoverRequest {
            leader: Some("node2".into()),
            member: Some("node1".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What a row observes: a running replica of node1 that streams, unless changed.
#[derive(Clone)]
struct Seen {
    cluster: Option<ClusterView>,
    running: bool,
    role: Option<PgRole>,
    streaming: bool,
    former_primary: bool,
    job: Option<Job>,
    data: DataDir,
}

fn seen() -> Seen {
    Seen {
        cluster: Some(led_by("node1")),
        running: true,
        role: Some(PgRole::Replica),
        streaming: true,
        former_primary: false,
        job: None,
        data: ours(),
    }
}

fn mem() -> EngineMemory {
    EngineMemory {
        following: Some("node1".into()),
        ..EngineMemory::default()
    }
}

struct StepRow {
    name: &'static str,
    before: EngineMemory,
    seen: Seen,
    now_ms: u64,
    want: EngineMemory,
}

fn run_step(before: &EngineMemory, s: &Seen, now_ms: u64) -> EngineMemory {
    let tags = Tags::default();
    let obs = Observation {
        me: "node2",
        my_addr: "node2:5433",
        tags: &tags,
        cluster: s.cluster.as_ref(),
        local: LocalObservation {
            data: s.data.clone(),
            running: s.running,
            job: s.job,
        },
        role: s.role,
        streaming: s.streaming,
        timeline: None,
        former_primary: s.former_primary,
        standby_dir: false,
        my_position: None,
        fresh: None,
        demote_margin_ms: 600,
        removed: false,
    };
    step(before, &obs, now_ms).0
}

#[test]
fn step_memory_table() {
    let stalled = Seen {
        streaming: false,
        ..seen()
    };
    let stopped_former_primary = Seen {
        running: false,
        role: None,
        streaming: false,
        former_primary: true,
        ..seen()
    };
    let i_hold_down = Seen {
        cluster: Some(led_by("node2")),
        running: false,
        role: None,
        streaming: false,
        ..seen()
    };
    let down = Seen {
        running: false,
        role: None,
        streaming: false,
        ..seen()
    };
    let claimed = |deadline_ms| EngineMemory {
        claim: super::decide::LeaseClock {
            deadline_ms: Some(deadline_ms),
        },
        ..mem()
    };
    let bootstrapping = Seen {
        cluster: None,
        running: true,
        role: None,
        streaming: false,
        job: Some(Job::Bootstrap),
        data: DataDir::Empty,
        ..seen()
    };
    let armed = |deadline_ms| EngineMemory {
        lease: super::decide::LeaseClock {
            deadline_ms: Some(deadline_ms),
        },
        ..mem()
    };
    let rows = vec![
        StepRow {
            name: "a streaming replica: nothing to remember",
            before: mem(),
            seen: seen(),
            now_ms: 1_000,
            want: mem(),
        },
        // --- rejoin latch ---
        StepRow {
            name: "stopped former primary: the rejoin check is latched",
            before: mem(),
            seen: stopped_former_primary.clone(),
            now_ms: 1_000,
            want: EngineMemory {
                must_rejoin: true,
                ..mem()
            },
        },
        StepRow {
            name: "stopped former primary that passed its check: no latch",
            before: EngineMemory {
                rejoined: true,
                ..mem()
            },
            seen: stopped_former_primary.clone(),
            now_ms: 1_000,
            want: EngineMemory {
                rejoined: true,
                ..mem()
            },
        },
        StepRow {
            name: "former primary with a job running: not asked, no latch",
            before: mem(),
            seen: Seen {
                job: Some(Job::Rejoin),
                ..stopped_former_primary.clone()
            },
            now_ms: 1_000,
            want: mem(),
        },
        StepRow {
            name: "latch holds while it runs read-only (looks like a standby)",
            before: EngineMemory {
                must_rejoin: true,
                ..mem()
            },
            seen: Seen {
                streaming: false,
                cluster: Some(ClusterView {
                    leader: None,
                    ..led_by("node1")
                }),
                ..seen()
            },
            now_ms: 1_000,
            want: EngineMemory {
                must_rejoin: true,
                ..mem()
            },
        },
        StepRow {
            name: "running as primary clears the latch and the check",
            before: EngineMemory {
                must_rejoin: true,
                rejoined: true,
                ..mem()
            },
            seen: Seen {
                role: Some(PgRole::Primary),
                ..seen()
            },
            now_ms: 1_000,
            want: mem(),
        },
        // --- down since ---
        StepRow {
            name: "I hold the lease and PostgreSQL is down: down since now",
            before: mem(),
            seen: i_hold_down.clone(),
            now_ms: 7_000,
            want: EngineMemory {
                down_since_ms: Some(7_000),
                ..mem()
            },
        },
        StepRow {
            name: "still down: the first time is kept",
            before: EngineMemory {
                down_since_ms: Some(7_000),
                ..mem()
            },
            seen: i_hold_down.clone(),
            now_ms: 9_000,
            want: EngineMemory {
                down_since_ms: Some(7_000),
                ..mem()
            },
        },
        StepRow {
            name: "down but a job runs: not down",
            before: EngineMemory {
                down_since_ms: Some(7_000),
                ..mem()
            },
            seen: Seen {
                job: Some(Job::Clone),
                ..i_hold_down.clone()
            },
            now_ms: 9_000,
            want: mem(),
        },
        StepRow {
            name: "keyspace unreadable: down-since forgotten",
            before: EngineMemory {
                down_since_ms: Some(7_000),
                ..mem()
            },
            seen: Seen {
                cluster: None,
                ..i_hold_down.clone()
            },
            now_ms: 9_000,
            want: mem(),
        },
        // --- hand-over ---
        StepRow {
            name: "handed over, nobody took the lease yet: remembered",
            before: EngineMemory {
                handed_over_at_ms: Some(5_000),
                ..mem()
            },
            seen: Seen {
                cluster: Some(handing_over()),
                running: false,
                role: None,
                streaming: false,
                ..seen()
            },
            now_ms: 6_000,
            want: EngineMemory {
                handed_over_at_ms: Some(5_000),
                ..mem()
            },
        },
        StepRow {
            name: "handed over and the candidate took the lease: over",
            before: EngineMemory {
                handed_over_at_ms: Some(5_000),
                ..mem()
            },
            seen: seen(),
            now_ms: 6_000,
            want: mem(),
        },
        StepRow {
            name: "handed over, keyspace unreadable: kept (nothing seen)",
            before: EngineMemory {
                handed_over_at_ms: Some(5_000),
                ..mem()
            },
            seen: Seen {
                cluster: None,
                ..seen()
            },
            now_ms: 6_000,
            want: EngineMemory {
                handed_over_at_ms: Some(5_000),
                ..mem()
            },
        },
        // --- stream stall ---
        StepRow {
            name: "replica stops streaming from a running primary: since now",
            before: mem(),
            seen: stalled.clone(),
            now_ms: 20_000,
            want: EngineMemory {
                not_streaming_since_ms: Some(20_000),
                ..mem()
            },
        },
        StepRow {
            name: "stalled under 10 s: only watched",
            before: EngineMemory {
                not_streaming_since_ms: Some(20_000),
                ..mem()
            },
            seen: stalled.clone(),
            now_ms: 29_999,
            want: EngineMemory {
                not_streaming_since_ms: Some(20_000),
                ..mem()
            },
        },
        StepRow {
            name: "stalled 10 s: rejoin check latched, recheck time noted",
            before: EngineMemory {
                not_streaming_since_ms: Some(20_000),
                rejoined: true,
                ..mem()
            },
            seen: stalled.clone(),
            now_ms: 30_000,
            want: EngineMemory {
                must_rejoin: true,
                rejoined: false,
                last_stream_recheck_ms: Some(30_000),
                ..mem()
            },
        },
        StepRow {
            name: "stalled 10 s again within a minute of the last check: no new check",
            before: EngineMemory {
                not_streaming_since_ms: Some(40_000),
                last_stream_recheck_ms: Some(30_000),
                ..mem()
            },
            seen: stalled.clone(),
            now_ms: 89_999,
            want: EngineMemory {
                not_streaming_since_ms: Some(40_000),
                last_stream_recheck_ms: Some(30_000),
                ..mem()
            },
        },
        StepRow {
            name: "stalled 10 s a minute after the last check: checked again",
            before: EngineMemory {
                not_streaming_since_ms: Some(40_000),
                last_stream_recheck_ms: Some(30_000),
                ..mem()
            },
            seen: stalled.clone(),
            now_ms: 90_000,
            want: EngineMemory {
                must_rejoin: true,
                last_stream_recheck_ms: Some(90_000),
                ..mem()
            },
        },
        StepRow {
            name: "streaming again: the watch ends",
            before: EngineMemory {
                not_streaming_since_ms: Some(20_000),
                ..mem()
            },
            seen: seen(),
            now_ms: 25_000,
            want: mem(),
        },
        StepRow {
            name: "not streaming but following someone else than the lease holder: not a stall",
            before: EngineMemory {
                following: Some("node3".into()),
                ..mem()
            },
            seen: stalled.clone(),
            now_ms: 25_000,
            want: EngineMemory {
                following: Some("node3".into()),
                ..mem()
            },
        },
        StepRow {
            name: "my bootstrap seen published (its reply may have been lost): nothing left to finish",
            before: EngineMemory {
                bootstrapped: Some("7300000000000000001".into()),
                ..mem()
            },
            seen: seen(),
            now_ms: 25_000,
            want: mem(),
        },
        StepRow {
            name: "my bootstrap not published yet: still to finish",
            before: EngineMemory {
                bootstrapped: Some("7300000000000000001".into()),
                ..mem()
            },
            seen: Seen {
                cluster: Some(ClusterView {
                    initialize: Some(String::new()),
                    ..led_by("node1")
                }),
                ..seen()
            },
            now_ms: 25_000,
            want: EngineMemory {
                bootstrapped: Some("7300000000000000001".into()),
                ..mem()
            },
        },
        // --- a passed lease deadline (issue 9: an agent stalled past its lease) ---
        StepRow {
            name: "passed deadline, PostgreSQL stopped: given up, nothing left to fence",
            before: armed(10_000),
            seen: Seen {
                cluster: Some(led_by("node1")),
                ..down.clone()
            },
            now_ms: 12_000,
            want: mem(),
        },
        StepRow {
            name: "passed deadline, keyspace unreadable, PostgreSQL stopped: given up",
            before: armed(10_000),
            seen: Seen {
                cluster: None,
                ..down.clone()
            },
            now_ms: 12_000,
            want: mem(),
        },
        StepRow {
            name: "passed deadline, running read-only: given up",
            before: armed(10_000),
            seen: seen(),
            now_ms: 12_000,
            want: mem(),
        },
        StepRow {
            name: "passed deadline, still running as primary: stays armed until the stop is confirmed",
            before: armed(10_000),
            seen: Seen {
                role: Some(PgRole::Primary),
                ..seen()
            },
            now_ms: 12_000,
            want: armed(10_000),
        },
        StepRow {
            name: "passed deadline, running but not queryable: stays armed (may accept writes)",
            before: armed(10_000),
            seen: Seen { role: None, ..seen() },
            now_ms: 12_000,
            want: armed(10_000),
        },
        StepRow {
            name: "passed deadline, stopped but a job runs: stays armed",
            before: armed(10_000),
            seen: Seen {
                job: Some(Job::Rejoin),
                ..down.clone()
            },
            now_ms: 12_000,
            want: armed(10_000),
        },
        StepRow {
            name: "deadline still ahead, PostgreSQL stopped: kept (the lease may be mine)",
            before: armed(10_000),
            seen: Seen {
                cluster: Some(led_by("node1")),
                ..down.clone()
            },
            now_ms: 9_999,
            want: armed(10_000),
        },
        // --- the bootstrap claim's deadline (src/ha/claim_fence.rs) ---
        StepRow {
            name: "bootstrap job running, its server up, cut off past the claim: stays armed",
            before: claimed(10_000),
            seen: bootstrapping.clone(),
            now_ms: 12_000,
            want: claimed(10_000),
        },
        StepRow {
            name: "bootstrap job running, no server yet, claim ahead: kept",
            before: claimed(10_000),
            seen: Seen {
                running: false,
                ..bootstrapping.clone()
            },
            now_ms: 9_000,
            want: claimed(10_000),
        },
        StepRow {
            name: "claim passed, the server stopped, job failed: given up",
            before: claimed(10_000),
            seen: Seen {
                job: None,
                data: DataDir::Empty,
                ..down.clone()
            },
            now_ms: 12_000,
            want: mem(),
        },
        StepRow {
            name: "published with me holding the lease (reply lost): the lease fences, the claim is dropped",
            before: EngineMemory {
                bootstrapped: Some("7300000000000000001".into()),
                ..claimed(40_000)
            },
            seen: Seen {
                cluster: Some(led_by("node2")),
                role: Some(PgRole::Primary),
                streaming: false,
                ..seen()
            },
            now_ms: 12_000,
            want: mem(),
        },
        StepRow {
            name: "published by another member while my bootstrap server runs: stays armed",
            before: EngineMemory {
                bootstrapped: Some("7300000000000000001".into()),
                ..claimed(40_000)
            },
            seen: Seen {
                role: Some(PgRole::Primary),
                streaming: false,
                ..seen()
            },
            now_ms: 12_000,
            want: claimed(40_000),
        },
    ];
    for r in &rows {
        let got = run_step(&r.before, &r.seen, r.now_ms);
        assert_eq!(got, r.want, "row: {}", r.name);
    }
}

#[test]
fn step_passes_the_memory_to_decide() {
    // The latched rejoin check reaches decide: a stopped former primary rejoins the leader.
    let s = Seen {
        running: false,
        role: None,
        streaming: false,
        former_primary: true,
        ..seen()
    };
    let tags = Tags::default();
    let obs = Observation {
        me: "node2",
        my_addr: "node2:5433",
        tags: &tags,
        cluster: s.cluster.as_ref(),
        local: LocalObservation {
            data: s.data.clone(),
            running: false,
            job: None,
        },
        role: None,
        streaming: false,
        timeline: None,
        former_primary: true,
        standby_dir: false,
        my_position: None,
        fresh: None,
        demote_margin_ms: 600,
        removed: false,
    };
    let (_, decision) = step(&mem(), &obs, 1_000);
    assert_eq!(
        decision.actions,
        vec![Action::Rejoin {
            leader: "node1".into()
        }],
        "{}",
        decision.reason
    );
    // Blocked: the data directory is left alone.
    let blocked = EngineMemory {
        blocked: Some("pg_rewind from node1 failed".into()),
        ..mem()
    };
    let (_, decision) = step(&blocked, &obs, 1_000);
    assert_eq!(decision.actions, vec![Action::Refuse], "{}", decision.reason);
}

#[test]
fn local_step_marks_a_crash() {
    let local = |running, job| LocalObservation {
        data: ours(),
        running,
        job,
    };
    let started = EngineMemory {
        postmaster_start_time: Some("2026-01-01T00:00:00Z".into()),
        ..EngineMemory::default()
    };
    let crashed = EngineMemory {
        state_override: Some(PgRunState::Crashed),
        ..started.clone()
    };
    assert_eq!(local_step(&started, &local(false, None)), crashed);
    assert_eq!(local_step(&started, &local(true, None)), started, "running");
    assert_eq!(
        local_step(&started, &local(false, Some(Job::Rejoin))),
        started,
        "job"
    );
    let stopped = EngineMemory {
        state_override: Some(PgRunState::Stopped),
        ..started.clone()
    };
    assert_eq!(
        local_step(&stopped, &local(false, None)),
        stopped,
        "stopped on purpose"
    );
    let never = EngineMemory::default();
    assert_eq!(
        local_step(&never, &local(false, None)),
        never,
        "never started by us"
    );
}

struct ApplyRow {
    name: &'static str,
    before: EngineMemory,
    event: Event,
    want: EngineMemory,
}

const NOW: u64 = 10_000;

fn failed_once(budget: RetryBudget, error: &str) -> RetryBudget {
    let mut b = budget;
    b.record_failure(error, NOW);
    b
}

#[test]
fn apply_memory_table() {
    let diverged = PgFailure::Diverged {
        message:
            "PostgreSQL failed to start: FATAL: requested timeline 3 is not a child of this server's history"
                .into(),
    };
    let rows = vec![
        // --- jobs ---
        ApplyRow {
            name: "clone done: budget reset, no rejoin check needed",
            before: EngineMemory {
                clone_retry: failed_once(RetryBudget::unlimited(), "x"),
                ..mem()
            },
            event: Event::JobFinished {
                job: Job::Clone,
                outcome: JobOutcome::Cloned,
            },
            want: EngineMemory {
                rejoined: true,
                ..mem()
            },
        },
        ApplyRow {
            name: "clone failed: back-off recorded",
            before: mem(),
            event: Event::JobFinished {
                job: Job::Clone,
                outcome: JobOutcome::Failed("pg_basebackup failed".into()),
            },
            want: EngineMemory {
                clone_retry: failed_once(RetryBudget::unlimited(), "pg_basebackup failed"),
                ..mem()
            },
        },
        ApplyRow {
            name: "bootstrap failed: one attempt of five spent",
            before: mem(),
            event: Event::JobFinished {
                job: Job::Bootstrap,
                outcome: JobOutcome::Failed("initdb failed".into()),
            },
            want: EngineMemory {
                bootstrap_retry: failed_once(RetryBudget::bootstrap(), "initdb failed"),
                ..mem()
            },
        },
        ApplyRow {
            name: "bootstrap done: budget reset, start time noted, publish it next cycle at once",
            before: EngineMemory {
                bootstrap_retry: failed_once(RetryBudget::bootstrap(), "x"),
                ..mem()
            },
            event: Event::JobFinished {
                job: Job::Bootstrap,
                outcome: JobOutcome::Bootstrapped {
                    started_at: "t0".into(),
                    system_identifier: "7301".into(),
                },
            },
            want: EngineMemory {
                postmaster_start_time: Some("t0".into()),
                bootstrapped: Some("7301".into()),
                again: true,
                ..mem()
            },
        },
        ApplyRow {
            name: "rejoin passed: latch cleared, check holds, next cycle at once",
            before: EngineMemory {
                must_rejoin: true,
                ..mem()
            },
            event: Event::JobFinished {
                job: Job::Rejoin,
                outcome: JobOutcome::Rejoined,
            },
            want: EngineMemory {
                rejoined: true,
                again: true,
                ..mem()
            },
        },
        ApplyRow {
            name: "rejoin removed the directory: latch cleared, clone next",
            before: EngineMemory {
                must_rejoin: true,
                ..mem()
            },
            event: Event::JobFinished {
                job: Job::Rejoin,
                outcome: JobOutcome::Removed,
            },
            want: EngineMemory { again: true, ..mem() },
        },
        ApplyRow {
            name: "rejoin failed: blocked until an operator acts",
            before: EngineMemory {
                must_rejoin: true,
                ..mem()
            },
            event: Event::JobFinished {
                job: Job::Rejoin,
                outcome: JobOutcome::Failed("pg_rewind failed".into()),
            },
            want: EngineMemory {
                must_rejoin: true,
                blocked: Some("pg_rewind failed".into()),
                ..mem()
            },
        },
        ApplyRow {
            name: "reinit: blocked, latch and clone back-off cleared",
            before: EngineMemory {
                must_rejoin: true,
                rejoined: true,
                blocked: Some("pg_rewind failed".into()),
                clone_retry: failed_once(RetryBudget::unlimited(), "x"),
                postmaster_start_time: Some("t0".into()),
                ..mem()
            },
            event: Event::Reinitialized,
            want: EngineMemory {
                following: None,
                again: true,
                ..mem()
            },
        },
        // --- typed failures ---
        ApplyRow {
            name: "a standby refused to start (diverged): rejoin check latched, shown stopped",
            before: EngineMemory {
                rejoined: true,
                state_override: Some(PgRunState::StartFailed),
                ..mem()
            },
            event: Event::ActionFailed {
                action: Action::StartReplica {
                    leader: Some("node1".into()),
                },
                error: ActionError::pg(Operation::Start, diverged.clone()),
            },
            want: EngineMemory {
                must_rejoin: true,
                state_override: Some(PgRunState::Stopped),
                ..mem()
            },
        },
        ApplyRow {
            name: "read-only start (following nobody) diverged: nothing to check against",
            before: mem(),
            event: Event::ActionFailed {
                action: Action::StartReplica { leader: None },
                error: ActionError::pg(Operation::Start, diverged),
            },
            want: mem(),
        },
        ApplyRow {
            name: "a standby failed to start for another reason: nothing latched",
            before: mem(),
            event: Event::ActionFailed {
                action: Action::StartReplica {
                    leader: Some("node1".into()),
                },
                error: ActionError::pg(
                    Operation::Start,
                    PgFailure::Timeout {
                        message: "PostgreSQL did not start within 60 s".into(),
                    },
                ),
            },
            want: mem(),
        },
        // --- role changes ---
        ApplyRow {
            name: "promoted: follows nobody, reason kept for history",
            before: mem(),
            event: Event::Promoted {
                reason: "manual failover".into(),
            },
            want: EngineMemory {
                following: None,
                promote_reason: Some("manual failover".into()),
                again: true,
                ..mem()
            },
        },
        ApplyRow {
            name: "history written: the reason is used up",
            before: EngineMemory {
                promote_reason: Some("manual failover".into()),
                ..mem()
            },
            event: Event::HistoryWritten,
            want: mem(),
        },
        ApplyRow {
            name: "stopped on purpose: shown stopped, former check void",
            before: EngineMemory {
                rejoined: true,
                state_override: Some(PgRunState::Stopping),
                ..mem()
            },
            event: Event::StoppedDeliberately,
            want: EngineMemory {
                state_override: Some(PgRunState::Stopped),
                ..mem()
            },
        },
        ApplyRow {
            name: "handed over: time noted, next cycle at once",
            before: mem(),
            event: Event::HandedOver,
            want: EngineMemory {
                handed_over_at_ms: Some(NOW),
                again: true,
                ..mem()
            },
        },
        ApplyRow {
            name: "started: running state published at once",
            before: EngineMemory {
                state_override: Some(PgRunState::Starting),
                ..mem()
            },
            event: Event::Started { at: "t1".into() },
            want: EngineMemory {
                postmaster_start_time: Some("t1".into()),
                again: true,
                ..mem()
            },
        },
        ApplyRow {
            name: "start failed: shown as such",
            before: EngineMemory {
                state_override: Some(PgRunState::Starting),
                ..mem()
            },
            event: Event::StartFailed,
            want: EngineMemory {
                state_override: Some(PgRunState::StartFailed),
                ..mem()
            },
        },
        // --- lease, bootstrap claim ---
        ApplyRow {
            name: "lease renewed",
            before: mem(),
            event: Event::LeaseRenewed { deadline_ms: 40_000 },
            want: EngineMemory {
                lease: super::decide::LeaseClock {
                    deadline_ms: Some(40_000),
                },
                ..mem()
            },
        },
        ApplyRow {
            name: "lease dropped",
            before: EngineMemory {
                lease: super::decide::LeaseClock {
                    deadline_ms: Some(40_000),
                },
                ..mem()
            },
            event: Event::LeaseDropped,
            want: mem(),
        },
        ApplyRow {
            name: "claim taken (again): its deadline fences the bootstrap's server",
            before: mem(),
            event: Event::ClaimKept { deadline_ms: 30_000 },
            want: EngineMemory {
                claim: super::decide::LeaseClock {
                    deadline_ms: Some(30_000),
                },
                ..mem()
            },
        },
        ApplyRow {
            name: "bootstrap published (the lease taken just before): the claim no longer fences",
            before: EngineMemory {
                claim: super::decide::LeaseClock {
                    deadline_ms: Some(30_000),
                },
                lease: super::decide::LeaseClock {
                    deadline_ms: Some(10_000),
                },
                bootstrapped: Some("7300000000000000001".into()),
                ..mem()
            },
            event: Event::BootstrapPublished,
            want: EngineMemory {
                lease: super::decide::LeaseClock {
                    deadline_ms: Some(10_000),
                },
                ..mem()
            },
        },
        ApplyRow {
            name: "initialize claimed: the bootstrap starts under that revision",
            before: mem(),
            event: Event::InitializeClaimed { revision: 7 },
            want: EngineMemory {
                bootstrap_claim: Some(7),
                ..mem()
            },
        },
        ApplyRow {
            name: "bootstrap started: claim handed to the job",
            before: EngineMemory {
                bootstrap_claim: Some(7),
                ..mem()
            },
            event: Event::BootstrapStarted,
            want: mem(),
        },
        ApplyRow {
            name: "bootstrap published: nothing left to finish",
            before: EngineMemory {
                bootstrapped: Some("7301".into()),
                ..mem()
            },
            event: Event::BootstrapPublished,
            want: mem(),
        },
    ];
    for r in rows {
        let mut got = r.before.clone();
        apply(&mut got, r.event.clone(), NOW);
        assert_eq!(got, r.want, "row: {}", r.name);
    }
}

#[test]
fn a_new_primary_appends_the_timeline_it_left_to_history() {
    use crate::cluster::HistoryEntry;
    let tags = Tags::default();
    let mine = |history: Vec<HistoryEntry>| ClusterView {
        history,
        members: vec![primary_member("node2")],
        ..led_by("node2")
    };
    let holding = EngineMemory {
        following: None,
        lease: super::decide::LeaseClock {
            deadline_ms: Some(60_000),
        },
        ..EngineMemory::default()
    };
    let actions = |view: &ClusterView, timeline: u64| {
        let obs = Observation {
            me: "node2",
            my_addr: "node2:5433",
            tags: &tags,
            cluster: Some(view),
            local: LocalObservation {
                data: ours(),
                running: true,
                job: None,
            },
            role: Some(PgRole::Primary),
            streaming: false,
            timeline: Some(timeline),
            former_primary: false,
            standby_dir: false,
            my_position: None,
            fresh: None,
            demote_margin_ms: 600,
            removed: false,
        };
        step(&holding, &obs, 1_000).1.actions
    };
    let left_one = HistoryEntry {
        timeline: 1,
        switch_lsn: 0x3000000,
        reason: "manual failover".into(),
        time: "t".into(),
        new_leader: Some("node2".into()),
    };
    assert_eq!(
        actions(&mine(vec![]), 2),
        vec![
            Action::AcquireLease,
            Action::PublishStatus,
            Action::AppendHistory { timeline: 2 },
            Action::SyncSlots,
            Action::ManageSync
        ],
        "timeline 2, history empty: append"
    );
    assert_eq!(
        actions(&mine(vec![left_one]), 2),
        vec![
            Action::AcquireLease,
            Action::PublishStatus,
            Action::SyncSlots,
            Action::ManageSync
        ],
        "already recorded"
    );
    assert_eq!(
        actions(&mine(vec![]), 1),
        vec![
            Action::AcquireLease,
            Action::PublishStatus,
            Action::SyncSlots,
            Action::ManageSync
        ],
        "timeline 1 left nothing"
    );
    // "I hold the lease" is defined once: holder in the read, and my own deadline ahead.
    assert!(holding.holds_lease(Some(&mine(vec![])), "node2", 59_999));
    assert!(
        !holding.holds_lease(Some(&mine(vec![])), "node2", 60_000),
        "deadline passed"
    );
    assert!(
        !holding.holds_lease(Some(&led_by("node1")), "node2", 1_000),
        "not the holder"
    );
    assert!(!holding.holds_lease(None, "node2", 1_000), "nothing read");
}

/// A stopped former primary that must rejoin node1 (what `step_passes_the_memory_to_decide`
/// observes), decided from `memory` at `now_ms`.
fn rejoin_decision(memory: &EngineMemory, now_ms: u64) -> (EngineMemory, super::decide::Decision) {
    let s = seen();
    let tags = Tags::default();
    let obs = Observation {
        me: "node2",
        my_addr: "node2:5433",
        tags: &tags,
        cluster: s.cluster.as_ref(),
        local: LocalObservation {
            data: ours(),
            running: false,
            job: None,
        },
        role: None,
        streaming: false,
        timeline: None,
        former_primary: true,
        standby_dir: false,
        my_position: None,
        fresh: None,
        demote_margin_ms: 600,
        removed: false,
    };
    step(memory, &obs, now_ms)
}

/// Hole 7 of issue 9: after an agent restart (a fresh memory) the rewind-failed marker found in
/// the data directory blocks it: no start, no second pg_rewind, `rewind failed` published;
/// only `reinit` lifts it.
#[test]
fn a_rewind_marker_found_after_a_restart_blocks_the_directory() {
    let mut m = EngineMemory::default();
    apply(
        &mut m,
        Event::RewindMarkerFound {
            reason: "pg_rewind from node1 failed after it began changing the data directory".into(),
        },
        1_000,
    );
    assert_eq!(m.state_override, Some(PgRunState::RewindFailed));
    let (_, decision) = rejoin_decision(&m, 1_000);
    assert_eq!(decision.actions, vec![Action::Refuse], "{}", decision.reason);
    assert!(decision.reason.contains("reinit"), "{}", decision.reason);
    apply(&mut m, Event::Reinitialized, 2_000);
    assert_eq!(m.blocked, None);
    assert_eq!(m.state_override, None);
}

/// Hole 1, last part: a rejoin that failed without changing the directory (a dead postmaster's
/// backends held the shared memory) is not a block: the check runs again after a back-off.
#[test]
fn a_rejoin_that_changed_nothing_is_retried_after_a_back_off() {
    let mut m = mem();
    m.must_rejoin = true;
    apply(
        &mut m,
        Event::JobFinished {
            job: Job::Rejoin,
            outcome: JobOutcome::FailedRetryable("pre-existing shared memory block is still in use".into()),
        },
        10_000,
    );
    assert_eq!(m.blocked, None);
    assert!(m.must_rejoin, "the check stays due");
    let (_, waiting) = rejoin_decision(&m, 10_500);
    assert_eq!(waiting.actions, vec![], "{}", waiting.reason);
    assert!(
        waiting.reason.contains("waiting 1 s before rejoin check"),
        "{}",
        waiting.reason
    );
    let (_, again) = rejoin_decision(&m, 11_000);
    assert_eq!(
        again.actions,
        vec![Action::Rejoin {
            leader: "node1".into()
        }],
        "{}",
        again.reason
    );
}

#[test]
fn follow_up_after_a_failure() {
    use super::action_error::Cause;
    let refused = ActionError::refused(Operation::LeaseWrite, "held by node2");
    let cut_off = ActionError::keyspace(
        Operation::LeaseWrite,
        crate::node::KeyspaceError::NoLeader {
            waited: std::time::Duration::ZERO,
        },
    );
    let start_failed = ActionError::new(Operation::Start, Cause::LeaseExpired);
    type Row<'a> = (&'a str, &'a ActionError, bool, Option<PgRole>, Vec<Action>);
    let rows: Vec<Row> = vec![
        (
            "refused renewal, primary running: stop now",
            &refused,
            true,
            Some(PgRole::Primary),
            vec![Action::Demote],
        ),
        (
            "refused renewal, role unknown (starting): stop now",
            &refused,
            true,
            None,
            vec![Action::Demote],
        ),
        (
            "refused renewal, replica: nothing to stop",
            &refused,
            true,
            Some(PgRole::Replica),
            vec![Action::ReleaseLease],
        ),
        (
            "refused renewal, stopped: give the deadline up",
            &refused,
            false,
            None,
            vec![Action::ReleaseLease],
        ),
        (
            "cut off: the next cycle decides (demotes by the deadline)",
            &cut_off,
            true,
            Some(PgRole::Primary),
            vec![],
        ),
        (
            "another failure: nothing extra",
            &start_failed,
            true,
            Some(PgRole::Primary),
            vec![],
        ),
    ];
    for (name, error, running, role, want) in rows {
        assert_eq!(follow_up(error, running, role), want, "{name}");
    }
}

/// Holding the lease needs the deadline ahead, not merely armed: a passed deadline still armed
/// for the fences (PostgreSQL not yet seen stopped) is no lease (issue 9: the agent's shutdown
/// asks `lease_valid`).
#[test]
fn a_passed_deadline_is_no_lease() {
    let armed = EngineMemory {
        lease: super::decide::LeaseClock {
            deadline_ms: Some(10_000),
        },
        ..mem()
    };
    let mine = led_by("node2");
    for (now_ms, valid) in [(9_999, true), (10_000, false), (12_000, false)] {
        assert_eq!(armed.lease_valid(now_ms), valid, "at {now_ms}");
        assert_eq!(
            armed.holds_lease(Some(&mine), "node2", now_ms),
            valid,
            "at {now_ms}"
        );
    }
    assert!(!mem().lease_valid(0));
    assert!(!armed.holds_lease(Some(&led_by("node1")), "node2", 0));
}

/// The fences get the earliest armed deadline: the claim while bootstrapping, both while
/// `FinishBootstrap` takes the lease and publishes (no gap), then the lease alone.
#[test]
fn the_fence_deadline_hands_over_from_the_claim_to_the_lease_without_a_gap() {
    let mut m = mem();
    assert_eq!(m.fence_deadline_ms(), None);
    apply(&mut m, Event::ClaimKept { deadline_ms: 30_000 }, 0);
    assert_eq!(m.fence_deadline_ms(), Some(30_000), "bootstrapping: the claim");
    apply(&mut m, Event::ClaimKept { deadline_ms: 35_000 }, 5_000);
    apply(&mut m, Event::LeaseRenewed { deadline_ms: 15_000 }, 5_000);
    assert_eq!(m.fence_deadline_ms(), Some(15_000), "both armed: the earlier");
    apply(&mut m, Event::BootstrapPublished, 5_000);
    assert_eq!(m.fence_deadline_ms(), Some(15_000), "published: the lease");
}

/// Synchronous mode (issue 12): a promotion is preceded by the `sync` key naming the new
/// primary alone (so no member the old key did not list can be promoted after it), and only
/// in synchronous mode; the primary keeping its lease manages synchronous replication.
#[test]
fn a_promotion_in_synchronous_mode_claims_the_sync_key_first() {
    use crate::config::SynchronousMode;
    let tags = Tags::default();
    let holding = EngineMemory {
        following: None,
        lease: super::decide::LeaseClock {
            deadline_ms: Some(60_000),
        },
        ..EngineMemory::default()
    };
    let actions = |mode: SynchronousMode, role: PgRole| {
        let mut view = ClusterView {
            members: vec![MemberStatus {
                role,
                ..primary_member("node2")
            }],
            ..led_by("node2")
        };
        view.config.synchronous_mode = mode;
        let obs = Observation {
            me: "node2",
            my_addr: "node2:5433",
            tags: &tags,
            cluster: Some(&view),
            local: LocalObservation {
                data: ours(),
                running: true,
                job: None,
            },
            role: Some(role),
            streaming: false,
            timeline: Some(1),
            former_primary: false,
            standby_dir: false,
            my_position: None,
            fresh: None,
            demote_margin_ms: 600,
            removed: false,
        };
        step(&holding, &obs, 1_000).1.actions
    };
    use Action::*;
    assert_eq!(
        actions(SynchronousMode::On, PgRole::Replica),
        vec![AcquireLease, ClaimSync, Promote]
    );
    assert_eq!(
        actions(SynchronousMode::Off, PgRole::Replica),
        vec![AcquireLease, Promote]
    );
    assert_eq!(
        actions(SynchronousMode::On, PgRole::Primary),
        vec![AcquireLease, PublishStatus, SyncSlots, ManageSync]
    );
}
