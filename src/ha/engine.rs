//! The HA loop's memory between cycles, and how it changes: pure data and pure functions.
//!
//! The runner (`runner.rs`) observes PostgreSQL and the keyspace, calls [`local_step`] (before
//! it publishes its member record) and [`step`] (which updates the memory from the
//! observation and asks [`decide`] what to do), carries the actions out, and feeds what
//! happened back with [`apply`]. Nothing here does I/O or reads a clock: times are the
//! agent's local monotonic milliseconds, passed in as `now_ms`.

use std::collections::BTreeMap;

use super::action_error::ActionError;
use super::claim_fence::{self, ClaimFacts};
use super::decide::{decide, Action, DataDir, Decision, Inputs, Job, LeaseClock, LocalPg, WalPosition};
use super::pg_ops::PgFailure;
use super::retry::RetryBudget;
use crate::cluster::{ClusterView, PgRole, PgRunState};
use crate::config::Tags;

/// A replica not streaming from a running primary this long gets a rejoin check.
pub const STREAM_STALL_MS: u64 = 10_000;
/// At most one such check per this long.
pub const STREAM_STALL_RECHECK_MS: u64 = 60_000;

/// Everything the loop remembers from one cycle to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineMemory {
    /// The leader lease as this node renewed it.
    pub lease: LeaseClock,
    /// The bootstrap claim as this node took it: until the bootstrap is published it fences
    /// the server the bootstrap started, as the lease does (src/ha/claim_fence.rs).
    pub claim: LeaseClock,
    /// The member this replica was last configured to stream from.
    pub following: Option<String>,
    /// A former primary passed its rejoin check against the current primary.
    pub rejoined: bool,
    /// The data directory must pass a rejoin check (pg_rewind) before it streams from anyone:
    /// it last ran as a primary, or its WAL went past the new primary's fork. Latched: a
    /// former primary started read-only for a leader race looks like a standby on disk.
    pub must_rejoin: bool,
    /// Why the data directory must be left alone until an operator acts.
    pub blocked: Option<String>,
    /// Since when PostgreSQL has been down while this node holds the lease.
    pub down_since_ms: Option<u64>,
    /// When this node handed its lease over in a switchover, until someone takes it.
    pub handed_over_at_ms: Option<u64>,
    /// Since when this replica has not streamed from the running primary it follows.
    pub not_streaming_since_ms: Option<u64>,
    /// When a stalled replica last got a rejoin check.
    pub last_stream_recheck_ms: Option<u64>,
    /// Why this node was last promoted, for the `history` key (used once).
    pub promote_reason: Option<String>,
    /// Failed bootstraps: back-off, and the limit (src/ha/retry.rs).
    pub bootstrap_retry: RetryBudget,
    /// Failed clones: back-off only.
    pub clone_retry: RetryBudget,
    /// Rejoin checks that failed without changing the data directory: back-off only.
    pub rejoin_retry: RetryBudget,
    /// The run state published instead of the observed one (starting, stopping, stopped on
    /// purpose, crashed, start failed).
    pub state_override: Option<PgRunState>,
    /// When the postmaster was last started by this agent (wall time, RFC 3339; shown by
    /// the REST API). Set: a stopped server that was running has crashed.
    pub postmaster_start_time: Option<String>,
    /// The revision of our `initialize` claim, from `ClaimInitialize` until the bootstrap
    /// starts with it.
    pub bootstrap_claim: Option<u64>,
    /// The system identifier of a bootstrap this agent ran, until a read shows it published
    /// in `initialize` (`FinishBootstrap` is repeated until then). Memory only: after an agent
    /// restart a data directory nobody published is never adopted by itself.
    pub bootstrapped: Option<String>,
    /// Run the next cycle at once (a demote or a job left the next step ready).
    pub again: bool,
}

impl Default for EngineMemory {
    fn default() -> EngineMemory {
        EngineMemory {
            lease: LeaseClock::default(),
            claim: LeaseClock::default(),
            following: None,
            rejoined: false,
            must_rejoin: false,
            blocked: None,
            down_since_ms: None,
            handed_over_at_ms: None,
            not_streaming_since_ms: None,
            last_stream_recheck_ms: None,
            promote_reason: None,
            bootstrap_retry: RetryBudget::bootstrap(),
            clone_retry: RetryBudget::unlimited(),
            rejoin_retry: RetryBudget::unlimited(),
            state_override: None,
            postmaster_start_time: None,
            bootstrap_claim: None,
            bootstrapped: None,
            again: false,
        }
    }
}

impl EngineMemory {
    /// "I hold the lease", defined once: the last read shows me as the holder, and my own
    /// deadline for it (from a renewal I sent) has not passed.
    pub fn holds_lease(&self, cluster: Option<&ClusterView>, me: &str, now_ms: u64) -> bool {
        cluster.and_then(|c| c.leader_name()) == Some(me) && self.lease_valid(now_ms)
    }

    /// My own deadline (from a renewal I sent) has not passed: the lease may still be mine.
    /// Not the same as a deadline being armed: a passed one stays armed for the fences until
    /// the engine sees nothing left to fence ([`step`]). Any "do I hold the lease" without a
    /// cluster view (the agent's shutdown, the callbacks' role) asks this.
    pub fn lease_valid(&self, now_ms: u64) -> bool {
        self.lease.deadline_ms.is_some_and(|d| d > now_ms)
    }

    /// The deadline the lease watchdog and the fence guard enforce: the lease's or, while a
    /// bootstrap is not published, the claim's, whichever comes first.
    pub fn fence_deadline_ms(&self) -> Option<u64> {
        claim_fence::fence_deadline(self.lease.deadline_ms, self.claim.deadline_ms)
    }
}

/// The local facts the runner observed before it publishes its member record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalObservation {
    pub data: DataDir,
    /// The postmaster is alive.
    pub running: bool,
    /// A background job is running.
    pub job: Option<Job>,
}

/// What the runner observed this cycle, after reading the cluster.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub me: &'a str,
    /// My `raft.self_addr` (a bootstrap claim carries it with `me`).
    pub my_addr: &'a str,
    pub tags: &'a Tags,
    /// `None`: the linearizable read failed.
    pub cluster: Option<&'a ClusterView>,
    pub local: LocalObservation,
    /// PostgreSQL's role, when running and queryable.
    pub role: Option<PgRole>,
    /// The WAL receiver streams from someone.
    pub streaming: bool,
    /// The running server's timeline, when queryable.
    pub timeline: Option<u64>,
    /// The stopped, initialised data directory last ran as a primary (and is not set up as
    /// a standby). Only asked when PostgreSQL is stopped and no job runs.
    pub former_primary: bool,
    /// The data directory is set up as a standby (`standby.signal`).
    pub standby_dir: bool,
    pub my_position: Option<WalPosition>,
    pub fresh: Option<&'a BTreeMap<String, WalPosition>>,
    pub demote_margin_ms: u64,
    /// This node was removed from the Raft group (src/ha/removed.rs).
    pub removed: bool,
}

/// How a background job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// A new cluster is up; the postmaster started at `started_at` (wall time).
    Bootstrapped {
        started_at: String,
        system_identifier: String,
    },
    Cloned,
    /// The former primary may follow the new one now (rewound, or no rewind needed).
    Rejoined,
    /// The data directory was removed (diverged and not rewindable): clone again.
    Removed,
    Failed(String),
    /// Failed, but nothing changed on disk: worth another try after a back-off.
    FailedRetryable(String),
}

/// What the executor reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    JobFinished {
        job: Job,
        outcome: JobOutcome,
    },
    /// An action failed; the failure's kind (src/ha/action_error.rs) may change what the
    /// loop remembers.
    ActionFailed {
        action: Action,
        error: ActionError,
    },
    /// We won the bootstrap race: `initialize` claimed at `revision`.
    InitializeClaimed {
        revision: u64,
    },
    /// The bootstrap claim was taken (again): ours until `deadline_ms` on the local clock.
    ClaimKept {
        deadline_ms: u64,
    },
    /// The bootstrap job started with the claim.
    BootstrapStarted,
    /// `FinishBootstrap` published the system identifier.
    BootstrapPublished,
    Promoted {
        reason: String,
    },
    /// A start, stop or restart began (published as this state while it runs).
    OperationBegan(PgRunState),
    /// The operation ended without changing what is published (a failed stop, a restart).
    OperationEnded,
    /// PostgreSQL was stopped on purpose (a demote, a hand-over).
    StoppedDeliberately,
    /// PostgreSQL was started at `at` (wall time).
    Started {
        at: String,
    },
    StartFailed,
    /// Demoted: the next cycle rejoins at once.
    Demoted,
    /// The lease was released for a switchover candidate.
    HandedOver,
    /// The replica was (re)configured to stream from `leader` (`None`: nobody).
    Following {
        leader: Option<String>,
    },
    LeaseRenewed {
        deadline_ms: u64,
    },
    /// This node holds no lease it renewed itself (released, lost, refused).
    LeaseDropped,
    /// An operator's reinit emptied the data directory: clone afresh.
    Reinitialized,
    /// The history entry for the last promotion was written (its reason is used up).
    HistoryWritten,
    /// The postmaster was restarted at `at` by an operator's request.
    Restarted {
        at: String,
    },
    /// The data directory carries a rewind-failed marker (src/ha/rewind_marker.rs) with
    /// `reason`: a pg_rewind failed after it began changing it, maybe before an agent restart.
    RewindMarkerFound {
        reason: String,
    },
}

/// Before publishing: a stopped server that this agent had running, with nothing in
/// progress, has crashed.
pub fn local_step(memory: &EngineMemory, local: &LocalObservation) -> EngineMemory {
    let mut m = memory.clone();
    if !local.running
        && m.state_override.is_none()
        && local.job.is_none()
        && matches!(local.data, DataDir::Initialized { .. })
        && m.postmaster_start_time.is_some()
    {
        m.state_override = Some(PgRunState::Crashed);
    }
    m
}

/// One cycle: update the memory from what was observed, then decide.
pub fn step(memory: &EngineMemory, obs: &Observation<'_>, now_ms: u64) -> (EngineMemory, Decision) {
    let mut m = memory.clone();
    let local = &obs.local;
    if obs.role == Some(PgRole::Primary) {
        // Running as a primary again: any earlier rejoin check no longer holds, and the
        // directory is a primary's again (nothing to latch).
        m.rejoined = false;
        m.must_rejoin = false;
    }
    forget_passed_lease(&mut m, obs, now_ms);
    forget_claim(&mut m, obs, now_ms);
    let i_hold = obs.cluster.and_then(|c| c.leader_name()) == Some(obs.me);
    if obs
        .cluster
        .is_some_and(|c| c.leader.is_some() || c.failover.is_none())
    {
        // Someone took the lease (or the request is gone): the hand-over is over.
        m.handed_over_at_ms = None;
    }
    m.down_since_ms = match (i_hold && !local.running && local.job.is_none(), m.down_since_ms) {
        (true, Some(t)) => Some(t),
        (true, None) => Some(now_ms),
        (false, _) => None,
    };
    if !local.running
        && local.job.is_none()
        && !m.rejoined
        && matches!(local.data, DataDir::Initialized { .. })
        && obs.former_primary
    {
        m.must_rejoin = true;
    }
    if let Some(c) = obs.cluster {
        watch_streaming(&mut m, c, obs, now_ms);
        if m.bootstrapped.is_some() && c.initialize == m.bootstrapped {
            // Published (the reply of the write may have been lost): nothing left to finish.
            m.bootstrapped = None;
        }
    }
    let pg = LocalPg {
        data: local.data.clone(),
        running: local.running,
        role: obs.role,
        following: m.following.clone(),
        job: local.job,
        needs_rejoin: m.must_rejoin && !m.rejoined && local.job.is_none(),
        standby: matches!(local.data, DataDir::Initialized { .. }) && obs.standby_dir,
        down_since_ms: m.down_since_ms,
        blocked: m.blocked.clone(),
        handed_over_at_ms: m.handed_over_at_ms,
        bootstrap_retry: m.bootstrap_retry.clone(),
        clone_retry: m.clone_retry.clone(),
        rejoin_retry: m.rejoin_retry.clone(),
        bootstrapped: m.bootstrapped.clone(),
    };
    let mut decision = decide(&Inputs {
        me: obs.me,
        my_addr: obs.my_addr,
        tags: obs.tags,
        cluster: obs.cluster,
        pg: &pg,
        lease: m.lease,
        claim: m.claim,
        now_ms,
        demote_margin_ms: obs.demote_margin_ms,
        my_position: obs.my_position,
        fresh: obs.fresh,
        removed: obs.removed,
    });
    add_history(&mut decision, obs);
    add_sync(&mut decision, obs);
    (m, decision)
}

/// A lease deadline that has passed is given up once no server that could accept writes runs:
/// PostgreSQL stopped (and no job that may start it), or running and seen read-only. Until
/// then it stays armed, whatever the keyspace says, for the lease watchdog and the fence guard
/// (never disarmed before a stop is confirmed: holes 2 and 3). Left armed, an agent stalled
/// past its lease (SIGSTOP, a long pause) that resumed would go on taking itself for the lease
/// holder: at its shutdown it would publish `status` and try to release another member's
/// lease (issue 9). The runner disarms the fences when it sees the deadline gone.
fn forget_passed_lease(m: &mut EngineMemory, obs: &Observation<'_>, now_ms: u64) {
    let passed = m.lease.deadline_ms.is_some_and(|d| d <= now_ms);
    let stopped = !obs.local.running && obs.local.job.is_none();
    let read_only = obs.local.running && obs.role == Some(PgRole::Replica);
    if passed && (stopped || read_only) {
        m.lease.deadline_ms = None;
    }
}

/// The claim's deadline fences a bootstrap's server until the bootstrap is published with
/// this member holding the lease, or until nothing that could accept writes is left
/// (src/ha/claim_fence.rs). Taken before `bootstrapped` is cleared by the same read.
fn forget_claim(m: &mut EngineMemory, obs: &Observation<'_>, now_ms: u64) {
    let Some(deadline) = m.claim.deadline_ms else {
        return;
    };
    let local = &obs.local;
    let published_as_holder = obs.cluster.is_some_and(|c| {
        c.leader_name() == Some(obs.me)
            && c.initialize.as_deref().is_some_and(|s| !s.is_empty())
            && m.bootstrapped
                .as_ref()
                .is_none_or(|b| c.initialize.as_ref() == Some(b))
    });
    let facts = ClaimFacts {
        passed: deadline <= now_ms,
        writable_may_run: (local.running && obs.role != Some(PgRole::Replica)) || local.job.is_some(),
        bootstrapping: local.job == Some(Job::Bootstrap) || m.bootstrapped.is_some(),
        published_as_holder,
    };
    if !claim_fence::keep(facts) {
        m.claim.deadline_ms = None;
    }
}

/// A primary that publishes its status and runs on a timeline `history` does not record yet
/// (the cycle after a promotion, or after an append that failed) appends the timeline it
/// left. Only the lease holder of the last read (the executor checks the deadline).
fn add_history(decision: &mut Decision, obs: &Observation<'_>) {
    let Some(at) = decision.actions.iter().position(|a| *a == Action::PublishStatus) else {
        return;
    };
    let (Some(view), Some(timeline)) = (obs.cluster, obs.timeline) else {
        return;
    };
    let recorded = view.history.iter().any(|h| h.timeline + 1 == timeline);
    if view.leader_name() == Some(obs.me) && timeline > 1 && !recorded {
        decision
            .actions
            .insert(at + 1, Action::AppendHistory { timeline });
    }
}

/// Synchronous replication: the lease holder that keeps its lease (publishes its status)
/// manages it every cycle (with the mode off too: it removes what is left of it); a
/// promotion in synchronous mode is preceded by the `sync` key naming the new primary alone,
/// so no window lets a member the old key did not list be promoted after it.
fn add_sync(decision: &mut Decision, obs: &Observation<'_>) {
    let Some(view) = obs.cluster else {
        return;
    };
    if view.synchronous_mode() {
        if let Some(at) = decision.actions.iter().position(|a| *a == Action::Promote) {
            decision.actions.insert(at, Action::ClaimSync);
        }
    }
    let keeps_lease = decision.actions.contains(&Action::PublishStatus);
    if keeps_lease && view.leader_name() == Some(obs.me) && obs.role == Some(PgRole::Primary) {
        decision.actions.push(Action::ManageSync);
    }
}

/// A running replica that follows the primary but has not streamed for `STREAM_STALL_MS`
/// while that primary runs may hold WAL past the primary's timeline switch (PostgreSQL keeps
/// running and retries the connection forever: "requested starting point is ahead of the
/// WAL flush position", "highest timeline of the primary is behind"). Latch the rejoin
/// check: pg_rewind takes it back to the fork (or finds nothing to do), at most once per
/// `STREAM_STALL_RECHECK_MS` (found by jepsen restart-cluster).
fn watch_streaming(m: &mut EngineMemory, cluster: &ClusterView, obs: &Observation<'_>, now_ms: u64) {
    let following = m.following.as_deref();
    let leader_primary = following.is_some_and(|l| {
        cluster.leader_name() == Some(l)
            && cluster
                .member(l)
                .is_some_and(|m| m.role == PgRole::Primary && m.state.is_up())
    });
    let stalled_replica =
        obs.role == Some(PgRole::Replica) && !obs.streaming && leader_primary && !obs.tags.nostream;
    if !stalled_replica {
        m.not_streaming_since_ms = None;
        return;
    }
    let since = *m.not_streaming_since_ms.get_or_insert(now_ms);
    let recheck_due = m
        .last_stream_recheck_ms
        .is_none_or(|t| now_ms.saturating_sub(t) >= STREAM_STALL_RECHECK_MS);
    if now_ms.saturating_sub(since) >= STREAM_STALL_MS && recheck_due {
        tracing::warn!(
            "not streaming from {} for {} s although it runs as primary: checking my timeline with pg_rewind",
            following.unwrap_or("?"),
            STREAM_STALL_MS / 1000
        );
        m.must_rejoin = true;
        m.rejoined = false;
        m.not_streaming_since_ms = None;
        m.last_stream_recheck_ms = Some(now_ms);
    }
}

/// What to do at once, in the same cycle, after an action failed with `error` (the rest of
/// the decision is dropped). A renewal the keyspace refused means another member may hold
/// the lease now: a server that may accept writes (running, and not seen as a replica) is
/// stopped at once, and the local deadline stays armed (lease watchdog, fence guard) until
/// the demote has confirmed the stop (hole 3). With nothing to stop, the deadline is given up.
pub fn follow_up(error: &ActionError, running: bool, role: Option<PgRole>) -> Vec<Action> {
    if !error.lease_refused() {
        return Vec::new();
    }
    if running && role != Some(PgRole::Replica) {
        vec![Action::Demote]
    } else {
        vec![Action::ReleaseLease]
    }
}

/// Feed one thing that happened back into the memory.
pub fn apply(m: &mut EngineMemory, event: Event, now_ms: u64) {
    match event {
        Event::JobFinished { job, outcome } => job_finished(m, job, outcome, now_ms),
        Event::ActionFailed { action, error } => {
            if matches!(action, Action::StartReplica { leader: Some(_) })
                && matches!(error.pg_failure(), Some(PgFailure::Diverged { .. }))
            {
                tracing::warn!(
                    "my WAL diverged from the new primary's timeline: a rejoin check (pg_rewind) comes next"
                );
                // This replica holds WAL past the point where the new primary's timeline
                // branched off (it received more than the member that won the race). It
                // cannot stream until pg_rewind takes it back to the fork: the same rejoin
                // check a former primary goes through (found by jepsen restart-cluster).
                m.must_rejoin = true;
                m.rejoined = false;
                m.state_override = Some(PgRunState::Stopped);
            }
        }
        Event::InitializeClaimed { revision } => m.bootstrap_claim = Some(revision),
        Event::BootstrapStarted => m.bootstrap_claim = None,
        Event::ClaimKept { deadline_ms } => m.claim.deadline_ms = Some(deadline_ms),
        Event::BootstrapPublished => {
            // Published with the lease taken just before: the lease fences from now on.
            m.bootstrapped = None;
            m.claim.deadline_ms = None;
        }
        Event::Promoted { reason } => {
            m.following = None;
            m.promote_reason = Some(reason);
            m.again = true;
        }
        Event::OperationBegan(state) => m.state_override = Some(state),
        Event::OperationEnded => m.state_override = None,
        Event::StoppedDeliberately => {
            // Published as `stopped`, not taken for a crash; a former primary's directory
            // must be checked again before it follows anyone.
            m.state_override = Some(PgRunState::Stopped);
            m.rejoined = false;
        }
        Event::Started { at } => {
            m.state_override = None;
            m.postmaster_start_time = Some(at);
            // Publish the running state at once rather than a loop later.
            m.again = true;
        }
        Event::StartFailed => m.state_override = Some(PgRunState::StartFailed),
        Event::Demoted => m.again = true,
        Event::HandedOver => {
            m.handed_over_at_ms = Some(now_ms);
            m.again = true;
        }
        Event::Following { leader } => m.following = leader,
        Event::LeaseRenewed { deadline_ms } => m.lease.deadline_ms = Some(deadline_ms),
        Event::LeaseDropped => m.lease.deadline_ms = None,
        Event::Reinitialized => {
            m.clone_retry.reset();
            m.rejoin_retry.reset();
            m.blocked = None;
            m.state_override = None;
            m.rejoined = false;
            m.must_rejoin = false;
            m.following = None;
            m.postmaster_start_time = None;
            m.again = true;
        }
        Event::HistoryWritten => m.promote_reason = None,
        Event::Restarted { at } => m.postmaster_start_time = Some(at),
        Event::RewindMarkerFound { reason } => {
            // Never started or rewound again, also after an agent restart: only `reinit`.
            m.blocked = Some(super::rewind_marker::blocked_reason(&reason));
            m.state_override = Some(PgRunState::RewindFailed);
        }
    }
}

fn job_finished(m: &mut EngineMemory, job: Job, outcome: JobOutcome, now_ms: u64) {
    match (job, outcome) {
        (
            Job::Bootstrap,
            JobOutcome::Bootstrapped {
                started_at,
                system_identifier,
            },
        ) => {
            m.bootstrap_retry.reset();
            m.postmaster_start_time = Some(started_at);
            // Publish it at once (`FinishBootstrap`).
            m.bootstrapped = Some(system_identifier);
            m.again = true;
        }
        (Job::Bootstrap, JobOutcome::Failed(e)) => {
            m.bootstrap_retry.record_failure_and_log("bootstrap", e, now_ms);
        }
        (Job::Clone, JobOutcome::Failed(e)) => {
            m.clone_retry
                .record_failure_and_log("creating a replica", e, now_ms);
        }
        (Job::Clone, _) => {
            m.clone_retry.reset();
            // A fresh copy of the primary never needs a rejoin check (its control file
            // still says "in production": it was copied from a primary).
            m.rejoined = true;
        }
        (Job::Rejoin, JobOutcome::Rejoined) => {
            m.rejoin_retry.reset();
            m.rejoined = true;
            m.must_rejoin = false;
            m.again = true;
        }
        (Job::Rejoin, JobOutcome::Failed(e)) => m.blocked = Some(e),
        // The rejoin check stays due (`must_rejoin`), after the back-off.
        (Job::Rejoin, JobOutcome::FailedRetryable(e)) => {
            m.rejoin_retry
                .record_failure_and_log("the rejoin check (pg_rewind)", e, now_ms);
        }
        (Job::Rejoin, _) => {
            m.rejoin_retry.reset();
            m.must_rejoin = false;
            m.again = true;
        }
        (Job::Bootstrap, _) => {}
    }
}
