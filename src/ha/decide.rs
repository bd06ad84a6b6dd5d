//! The HA decision: a pure function from what the agent sees to what it should do.
//!
//! No I/O here. Every case the loop can meet is a row of the table tests in
//! `decide_test.rs`; the executor (`runner.rs`) carries the actions out.

use std::collections::BTreeMap;

use super::bootstrap_claim::{self, ClaimState};
use super::claim_fence;
use super::removed;
use super::retry::{backoff_ms, seconds_text, Gate, RetryBudget};
use crate::cluster::timeline_position::{self, Placement};
use crate::cluster::{ClusterView, FailoverRequest, MemberStatus, PgRole, PgRunState};
use crate::config::Tags;

/// What the agent knows about its local data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDir {
    /// Missing or empty: a new member that needs a bootstrap or a clone.
    Empty,
    /// A PostgreSQL data directory of database system `system_identifier`.
    Initialized { system_identifier: String },
    /// Something that is not a PostgreSQL data directory; never touched.
    Foreign(String),
}

/// The local PostgreSQL as observed this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPg {
    pub data: DataDir,
    /// The postmaster is alive.
    pub running: bool,
    /// When running and queryable: primary (not in recovery) or replica.
    pub role: Option<PgRole>,
    /// The member this replica is configured to stream from (what the agent last wrote).
    pub following: Option<String>,
    /// A background job (bootstrap, clone, rejoin) is running: nothing else may touch PostgreSQL.
    pub job: Option<Job>,
    /// PostgreSQL is stopped and its data directory last ran as a primary that has not been
    /// checked against the current primary's timeline: it must go through `Rejoin` (pg_rewind)
    /// before it may stream from anyone, or it could replay WAL the new primary never had.
    pub needs_rejoin: bool,
    /// The data directory is set up as a standby (`standby.signal`): it was a replica.
    pub standby: bool,
    /// Local time (ms) since which PostgreSQL has been down while this node holds the lease.
    pub down_since_ms: Option<u64>,
    /// Why the agent must leave the data directory alone until an operator acts (a rewind
    /// that failed or is not allowed). Cleared by `reinit` or an agent restart.
    pub blocked: Option<String>,
    /// Local time (ms) this node handed its lease over in a switchover, while no one has
    /// taken it yet.
    pub handed_over_at_ms: Option<u64>,
    /// Failed bootstraps since the agent started: back-off, and a limit after which this node
    /// stops trying ([`RetryBudget::bootstrap`]).
    pub bootstrap_retry: RetryBudget,
    /// Failed clones (pg_basebackup) since the last good one: back-off only, never spent (the
    /// source may come back).
    pub clone_retry: RetryBudget,
    /// Rejoin checks that failed without changing the data directory (a dead postmaster's
    /// backends still held its shared memory, the source was unreachable): back-off only.
    pub rejoin_retry: RetryBudget,
    /// A bootstrap job of this agent succeeded with this system identifier, and its
    /// publication in `initialize` is not confirmed yet.
    pub bootstrapped: Option<String>,
}

/// How long a switchover candidate has to take the lease once the old primary handed it
/// over. Normally well under a second; if the candidate cannot (it lacks WAL, it died), the
/// old primary — which has every committed write — takes the lease back.
pub const HANDOVER_TIMEOUT_MS: u64 = 5_000;

/// How long a due switchover waits for its candidate to stream (it may be reconnecting after
/// a restart of the primary) before it is cancelled.
pub const CANDIDATE_WAIT_MS: u64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Bootstrap,
    Clone,
    Rejoin,
}

/// A member's WAL position as a leader race compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct WalPosition {
    pub timeline: u64,
    pub lsn: u64,
}

/// This agent's own view of the leader lease it may hold (local monotonic clock, ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseClock {
    /// Deadline until which this node may act as primary: send time of the last committed
    /// renewal + ttl - max clock skew. `None` if this node holds no lease it renewed itself.
    pub deadline_ms: Option<u64>,
}

/// Everything `decide` looks at.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    pub me: &'a str,
    /// My `raft.self_addr`: with `me`, the identity a bootstrap claim carries.
    pub my_addr: &'a str,
    pub tags: &'a Tags,
    /// The cluster as a linearizable read showed it; `None` when the read failed (this node
    /// cannot confirm the keyspace: cut off from a majority).
    pub cluster: Option<&'a ClusterView>,
    pub pg: &'a LocalPg,
    pub lease: LeaseClock,
    /// The bootstrap claim as this node took it (deadline on the local clock), while it fences
    /// a server this node's bootstrap started (src/ha/claim_fence.rs).
    pub claim: LeaseClock,
    /// Local monotonic time, ms.
    pub now_ms: u64,
    /// Demote this long before the lease deadline at the latest (covers one loop of delay).
    pub demote_margin_ms: u64,
    /// This node's own WAL position, observed this cycle (`None`: PostgreSQL not queryable).
    pub my_position: Option<WalPosition>,
    /// The other members' positions asked for directly at decision time (gathered only when no
    /// primary holds the lease). `None`: not gathered, the member keys' figures count; a member
    /// missing from the map did not answer and takes no part in the race.
    pub fresh: Option<&'a BTreeMap<String, WalPosition>>,
    /// This node was removed from the Raft group (src/node/formation.rs): it never takes the
    /// lease nor promotes, and demotes a server that may accept writes (src/ha/removed.rs).
    pub removed: bool,
}

/// One thing to do. The executor runs them in order and stops at the first failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Take the bootstrap claim, or take it again to keep it (`initialize` as a lease with
    /// this agent's name and address: src/ha/bootstrap_claim.rs).
    ClaimInitialize,
    /// Give the bootstrap claim back (a failed bootstrap backing off, a claim this agent can
    /// no longer finish).
    ReleaseInitialize,
    /// Create a new database cluster (initdb, config, start, roles, post_bootstrap). Runs in
    /// the background; `FinishBootstrap` publishes it.
    Bootstrap,
    /// The bootstrap job succeeded: take the claim again, take the leader lease, write
    /// `config`, and publish `system_identifier` in `initialize` (compare-and-set on the claim).
    /// Repeated until a read shows it published.
    FinishBootstrap { system_identifier: String },
    /// Clone the data directory from `source` with pg_basebackup. Runs in the background.
    Clone { source: String },
    /// Take or renew the leader lease (the same compare-and-set command).
    AcquireLease,
    /// Give the lease up (after demoting).
    ReleaseLease,
    /// Start PostgreSQL as primary (crash recovery, or after the agent restarted).
    StartPrimary,
    /// Start PostgreSQL as a replica of `leader` (`None`: read-only, following nobody).
    StartReplica { leader: Option<String> },
    /// `pg_ctl promote`.
    Promote,
    /// Stop accepting writes at once: fast shutdown (open sessions end at once). The next
    /// cycles rejoin the new primary (`Rejoin`, then `StartReplica`).
    Demote,
    /// Planned hand-over (switchover): stop cleanly so every WAL record reaches the standbys,
    /// publish the final WAL position in `status`, then release the lease for `candidate`.
    HandOver { candidate: String },
    /// Check this former primary's timeline against `leader` with pg_rewind (rewind it when it
    /// diverged, or re-clone / refuse as the configuration says). Runs in the background.
    Rejoin { leader: String },
    /// Remove the `failover` key (done, stale, or impossible).
    ClearFailover,
    /// Re-point a running replica at `leader` (reload, or restart if PostgreSQL needs it).
    Follow { leader: String },
    /// Keep replication slots for the other members (primary only).
    SyncSlots,
    /// Publish the primary's WAL position (`status`).
    PublishStatus,
    /// Append the timeline this primary left to `history` (compare-and-set on the key's
    /// revision). Added by the engine after a `PublishStatus` (src/ha/engine.rs), never by
    /// `decide`.
    AppendHistory { timeline: u64 },
    /// Synchronous mode, before `Promote`: write the `sync` key naming me as the primary with
    /// no standby (compare-and-set; a failure stops the promotion). Added by the engine
    /// (src/ha/engine.rs), never by `decide`.
    ClaimSync,
    /// The primary's synchronous replication: `synchronous_standby_names` and the `sync` key
    /// brought to the standbys that should be synchronous, in the safe order
    /// (src/ha/sync_standby.rs); with the mode off, what is left of it removed. Added by the
    /// engine for the lease holder, never by `decide`.
    ManageSync,
    /// Leave the data directory alone: never start, configure or remove it. The reason is in
    /// the decision text (logged every loop) until an operator fixes it.
    Refuse,
}

/// What to do, and why in words an operator understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub reason: String,
}

fn decision(actions: Vec<Action>, reason: impl Into<String>) -> Decision {
    Decision {
        actions,
        reason: reason.into(),
    }
}

/// Decide the next step. Pure: same inputs, same decision.
pub fn decide(input: &Inputs<'_>) -> Decision {
    let d = decide_unpaused(input);
    let d = match input.cluster {
        // An operator's explicit switchover / failover proceeds in maintenance mode too, but
        // only for the two members it names: the others stay paused.
        Some(c) if c.paused() && !in_requested_handover(input.me, c) => paused(input, c, d),
        _ => d,
    };
    // Last, over maintenance mode too: a removed node must not stay or become the primary.
    removed::while_removed(input, d)
}

/// Whether `me` takes part in the hand-over a pending `failover` request asks for: as its
/// candidate, or as the primary it moves away from (the named leader; for a failover, which
/// names none, the lease holder).
pub(crate) fn in_requested_handover(me: &str, cluster: &ClusterView) -> bool {
    let Some(req) = cluster.failover.as_ref() else {
        return false;
    };
    let from = req.leader.as_deref().or(cluster.leader_name());
    req.member.as_deref() == Some(me) || from == Some(me)
}

/// In maintenance mode the agent takes no automatic action on PostgreSQL; it only keeps
/// its lease if it is the primary (so that resuming does not cause a failover).
fn paused(input: &Inputs<'_>, cluster: &ClusterView, d: Decision) -> Decision {
    if takes_free_lease_while_paused(input, cluster, &d) {
        // As Patroni's `is_healthiest_node` in pause: a running primary is the only member
        // that takes a free lease, whatever the WAL positions (nobody else races while
        // paused). This is how an agent stopped in maintenance mode takes its primary back
        // when it starts again after the lease ran out (src/ha/shutdown.rs).
        return decision(
            vec![Action::AcquireLease, Action::PublishStatus],
            "PAUSE: no member holds the leader lease and my PostgreSQL runs as primary: taking the lease",
        );
    }
    let primary = input.pg.role == Some(PgRole::Primary);
    let keep: Vec<Action> = d
        .actions
        .into_iter()
        .filter(|a| match a {
            Action::AcquireLease | Action::PublishStatus | Action::SyncSlots => primary,
            // Keyspace bookkeeping of a bootstrap that already ran (a `bootstrap.dcs` with
            // `pause: true` is in force from the moment `config` is written).
            Action::FinishBootstrap { .. } | Action::ReleaseInitialize => true,
            _ => false,
        })
        .collect();
    decision(keep, format!("PAUSE: no automatic action ({})", d.reason))
}

/// Nobody holds the lease of this initialized cluster, and this node runs its primary (the
/// same database system, nothing blocking it).
fn takes_free_lease_while_paused(input: &Inputs<'_>, cluster: &ClusterView, d: &Decision) -> bool {
    let pg = input.pg;
    let ours = match (&pg.data, cluster.initialize.as_deref()) {
        (DataDir::Initialized { system_identifier }, Some(sysid)) => system_identifier == sysid,
        _ => false,
    };
    cluster.leader.is_none()
        && ours
        && pg.running
        && pg.role == Some(PgRole::Primary)
        && pg.job.is_none()
        && !d.actions.contains(&Action::Refuse)
}

fn decide_unpaused(input: &Inputs<'_>) -> Decision {
    let pg = input.pg;
    let writable_may_run = pg.running && pg.role != Some(PgRole::Replica);
    let margin = input.demote_margin_ms;
    if claim_fence::must_stop(input.claim.deadline_ms, input.now_ms, margin, writable_may_run) {
        // The server my bootstrap started runs on the claim alone (no lease yet): once the
        // claim may expire, another member may bootstrap and start its own.
        return decision(
            vec![Action::Demote],
            "my bootstrap claim could not be renewed before it expires: stopping the server my \
             bootstrap started",
        );
    }
    if let Some(job) = pg.job {
        if job == Job::Bootstrap {
            return bootstrap_running(input);
        }
        let what = match job {
            Job::Bootstrap => "bootstrapping a new cluster",
            Job::Clone => "creating a replica",
            Job::Rejoin => "checking my timeline against the primary's (pg_rewind)",
        };
        return decision(vec![], format!("{what}: in progress"));
    }
    if let DataDir::Foreign(why) = &pg.data {
        return decision(
            vec![Action::Refuse],
            format!("refusing to manage the data directory: {why}"),
        );
    }
    if let Some(why) = &pg.blocked {
        return decision(vec![Action::Refuse], why.clone());
    }

    let Some(cluster) = input.cluster else {
        return keyspace_unreachable(input);
    };

    // Local lease deadline: a primary that cannot prove its lease is fresh stops writing.
    let i_hold = cluster.leader_name() == Some(input.me);
    if pg.role == Some(PgRole::Primary) && pg.running && i_hold {
        if let Some(deadline) = input.lease.deadline_ms {
            if input.now_ms + input.demote_margin_ms >= deadline {
                return decision(
                    vec![Action::Demote, Action::ReleaseLease],
                    "lease renew failed before its deadline: demoting",
                );
            }
        }
    }

    match bootstrap_claim::state(cluster, input.me, input.my_addr) {
        ClaimState::Free => uninitialized_cluster(input),
        ClaimState::Mine => my_claim(input),
        ClaimState::Other { holder, addr } => others_claim(input, cluster, holder, addr),
        ClaimState::Anonymous => decision(
            vec![],
            "waiting for the member that claimed the bootstrap to finish it",
        ),
        ClaimState::Published(sysid) => initialized_cluster(input, cluster, sysid),
    }
}

/// While initdb and the first start run, keep the claim (take it again every cycle): a claim
/// not taken again for `CLAIM_TTLS` × ttl expires and another member may bootstrap.
fn bootstrap_running(input: &Inputs<'_>) -> Decision {
    let Some(cluster) = input.cluster else {
        return decision(
            vec![],
            "bootstrapping a new cluster: in progress (cannot confirm the keyspace to keep my claim)",
        );
    };
    match bootstrap_claim::state(cluster, input.me, input.my_addr) {
        ClaimState::Mine | ClaimState::Free => decision(
            vec![Action::ClaimInitialize],
            "bootstrapping a new cluster: in progress",
        ),
        ClaimState::Other { holder, .. } => lost_bootstrap(
            input,
            format!("my claim expired and {holder} claimed the bootstrap"),
        ),
        ClaimState::Anonymous | ClaimState::Published(_) => {
            lost_bootstrap(input, "another member initialised the cluster".into())
        }
    }
}

/// My bootstrap is still running but can no longer be published: the server it started (if
/// any) must not serve writes beside the other member's.
fn lost_bootstrap(input: &Inputs<'_>, why: String) -> Decision {
    if input.pg.running && input.pg.role != Some(PgRole::Replica) {
        return decision(
            vec![Action::Demote],
            format!(
                "bootstrapping a new cluster: in progress, but {why}: mine will not be published; \
                 stopping the server it started"
            ),
        );
    }
    decision(
        vec![],
        format!("bootstrapping a new cluster: in progress, but {why}: mine will not be published"),
    )
}

/// The keyspace holds my claim and no bootstrap job runs: the claim applied but its reply was
/// lost, or my bootstrap is done but not published, or failed, or this agent restarted.
fn my_claim(input: &Inputs<'_>) -> Decision {
    let pg = input.pg;
    match (&pg.data, &pg.bootstrapped) {
        (DataDir::Initialized { system_identifier }, Some(done)) if system_identifier == done => decision(
            vec![Action::FinishBootstrap {
                system_identifier: done.clone(),
            }],
            format!("bootstrap of database system {done} done: publishing it"),
        ),
        (DataDir::Empty, _) if input.tags.may_become_primary() => {
            let d = bootstrap(input);
            if d.actions.first() == Some(&Action::ClaimInitialize) {
                return d;
            }
            // Backing off (or given up): let another member try meanwhile.
            let mut actions = vec![Action::ReleaseInitialize];
            actions.extend(d.actions);
            decision(actions, format!("{} (giving my bootstrap claim back)", d.reason))
        }
        (DataDir::Empty, _) => decision(
            vec![Action::ReleaseInitialize],
            "I hold the bootstrap claim but am tagged nofailover: giving it back",
        ),
        _ => decision(
            vec![Action::ReleaseInitialize],
            "I hold the bootstrap claim but have a data directory this agent did not just bootstrap \
             (a bootstrap cut short by an agent restart?): giving the claim back so another member can \
             bootstrap; this data directory waits for an operator",
        ),
    }
}

/// Another member's claim: wait for it to finish, or for the claim to expire. A bootstrap of
/// mine that lost its claim (it expired while I was cut off) must not keep serving writes.
fn others_claim(input: &Inputs<'_>, cluster: &ClusterView, holder: &str, addr: Option<&str>) -> Decision {
    let at = addr.map(|a| format!(" at {a}")).unwrap_or_default();
    let expiry = cluster
        .bootstrap_claim
        .as_ref()
        .and_then(|c| c.expires_at_ms)
        .map(|t| {
            format!(
                "; the claim expires in {} unless {holder} keeps it",
                seconds_text(t.saturating_sub(cluster.as_of_ms))
            )
        })
        .unwrap_or_default();
    if input.pg.bootstrapped.is_some() && input.pg.running {
        return decision(
            vec![Action::Demote],
            format!("my bootstrap lost its claim to {holder}{at}: stopping the server it started"),
        );
    }
    decision(
        vec![],
        format!("waiting for {holder}{at}, which claimed the bootstrap, to finish it{expiry}"),
    )
}

fn keyspace_unreachable(input: &Inputs<'_>) -> Decision {
    let pg = input.pg;
    if pg.running && pg.role == Some(PgRole::Primary) {
        // We cannot renew the lease, so we cannot know that nobody else took it: stop
        // accepting writes now rather than at the deadline (Patroni does the same).
        return decision(
            vec![Action::Demote],
            "cannot confirm the keyspace (no majority reachable) and I was the primary: demoting",
        );
    }
    decision(
        vec![],
        "cannot confirm the keyspace (no majority reachable): keeping PostgreSQL as it is",
    )
}

fn uninitialized_cluster(input: &Inputs<'_>) -> Decision {
    if let (Some(done), DataDir::Initialized { system_identifier }) = (&input.pg.bootstrapped, &input.pg.data)
    {
        if done == system_identifier {
            // My claim expired before I could publish, and nobody claimed since.
            return decision(
                vec![Action::FinishBootstrap {
                    system_identifier: done.clone(),
                }],
                format!(
                    "bootstrap of database system {done} done, my claim expired meanwhile: publishing it"
                ),
            );
        }
    }
    match &input.pg.data {
        DataDir::Empty if input.tags.may_become_primary() => bootstrap(input),
        DataDir::Empty => decision(
            vec![],
            "cluster not initialized; I am tagged nofailover: waiting for a bootstrap",
        ),
        DataDir::Initialized { .. } => decision(
            vec![],
            "the keyspace has no initialize key but I have a data directory: waiting for an \
             operator (pgquorum never adopts existing data into an empty keyspace by itself)",
        ),
        DataDir::Foreign(_) => unreachable!("handled before"),
    }
}

/// Bootstrap, unless earlier attempts failed: then wait out the back-off, and after the last
/// attempt stop for good (a bootstrap that failed this often needs an operator; retrying at
/// once made a new initdb and a new set-aside directory every second).
fn bootstrap(input: &Inputs<'_>) -> Decision {
    let budget = &input.pg.bootstrap_retry;
    let start = || vec![Action::ClaimInitialize, Action::Bootstrap];
    match budget.gate(input.now_ms) {
        Gate::Go { attempt: 1 } => decision(start(), "cluster not initialized: trying to bootstrap it"),
        Gate::Go { attempt } => decision(
            start(),
            format!(
                "cluster not initialized: trying to bootstrap it, {}{}",
                budget.attempt_text(attempt),
                budget.last_failure_text()
            ),
        ),
        // The whole back-off, not what is left of it: the reason stays the same while waiting,
        // so it is logged once rather than every second.
        Gate::Wait { attempt, .. } => decision(
            vec![],
            format!(
                "cluster not initialized: waiting {} before bootstrap {}{}",
                seconds_text(backoff_ms(budget.failures)),
                budget.attempt_text(attempt),
                budget.last_failure_text()
            ),
        ),
        Gate::Exhausted => decision(
            vec![Action::Refuse],
            format!(
                "bootstrap failed {} times; not trying again{}. Fix the cause (often a \
                 bootstrap.dcs.postgresql.parameters value PostgreSQL refuses: its own words are in the \
                 failure), then restart this agent. The last failed attempt's data directory, if initdb got that far, is kept beside \
                 the data directory as <data_dir>.failed-bootstrap-<ms>",
                budget.failures,
                budget.last_failure_text()
            ),
        ),
    }
}

fn initialized_cluster(input: &Inputs<'_>, cluster: &ClusterView, sysid: &str) -> Decision {
    let pg = input.pg;
    match &pg.data {
        DataDir::Initialized { system_identifier } if system_identifier != sysid => {
            return decision(
                vec![Action::Refuse],
                format!(
                    "my data directory belongs to database system {system_identifier}, the cluster's is \
                     {sysid}: refusing to join"
                ),
            );
        }
        DataDir::Empty => return new_replica(input, cluster),
        _ => {}
    }

    match cluster.leader_name() {
        Some(holder) if holder == input.me => lease_holder(input, cluster),
        Some(holder) => follower_of(input, cluster, holder),
        None => no_leader(input, cluster),
    }
}

/// A member with no data directory clones: from a running member tagged `clonefrom` if there
/// is one (to spare the primary), otherwise from the primary.
fn new_replica(input: &Inputs<'_>, cluster: &ClusterView) -> Decision {
    let clonefrom = cluster
        .members
        .iter()
        .filter(|m| m.name != input.me && m.tags.clonefrom && m.state.is_up())
        .map(|m| m.name.as_str())
        .next();
    match (cluster.leader_name(), clonefrom) {
        (Some(leader), Some(source)) if leader != input.me => clone_from(
            input,
            source,
            format!("{source} (tagged clonefrom; the primary is {leader})"),
        ),
        (Some(leader), None) if leader != input.me && member_is_up(cluster, leader) => {
            clone_from(input, leader, format!("primary {leader}"))
        }
        (Some(leader), _) => decision(
            vec![],
            format!("no data directory: waiting for primary {leader} to be up"),
        ),
        (None, _) => decision(vec![], "no data directory and no primary to clone from: waiting"),
    }
}

/// Clone from `source` (`what` names it for the reason), unless earlier clones failed and the
/// back-off has not passed yet: a failed clone must not spin.
fn clone_from(input: &Inputs<'_>, source: &str, what: String) -> Decision {
    let budget = &input.pg.clone_retry;
    let clone = || {
        vec![Action::Clone {
            source: source.to_string(),
        }]
    };
    match budget.gate(input.now_ms) {
        Gate::Go { attempt: 1 } => decision(clone(), format!("no data directory: cloning from {what}")),
        Gate::Go { attempt } => decision(
            clone(),
            format!(
                "no data directory: cloning from {what}, {}{}",
                budget.attempt_text(attempt),
                budget.last_failure_text()
            ),
        ),
        // The whole back-off, not what is left of it: the reason stays the same while waiting,
        // so it is logged once rather than every second.
        Gate::Wait { attempt, .. } => decision(
            vec![],
            format!(
                "no data directory: waiting {} before clone {} from {what}{}",
                seconds_text(backoff_ms(budget.failures)),
                budget.attempt_text(attempt),
                budget.last_failure_text()
            ),
        ),
        Gate::Exhausted => decision(
            vec![Action::Refuse],
            format!(
                "creating a replica failed {} times; not trying again{}",
                budget.failures,
                budget.last_failure_text()
            ),
        ),
    }
}

fn member_is_up(cluster: &ClusterView, name: &str) -> bool {
    cluster.member(name).is_some_and(|m| m.state.is_up())
}

/// The pending `failover` request, if it is due by keyspace time.
fn due_failover(cluster: &ClusterView) -> Option<&FailoverRequest> {
    cluster.failover.as_ref().filter(|f| f.is_due(cluster.as_of_ms))
}

const KEEP_LEASE: [Action; 3] = [Action::AcquireLease, Action::PublishStatus, Action::SyncSlots];

fn lease_holder(input: &Inputs<'_>, cluster: &ClusterView) -> Decision {
    let pg = input.pg;
    match (pg.running, pg.role) {
        (true, Some(PgRole::Primary)) => primary_with_lease(input, cluster),
        (true, _) => decision(
            vec![Action::AcquireLease, Action::Promote],
            "I hold the lease but PostgreSQL runs as a replica: promoting",
        ),
        (false, _) => {
            let timeout_ms = cluster.config.primary_start_timeout.saturating_mul(1000);
            let down_for = pg.down_since_ms.map(|t| input.now_ms.saturating_sub(t));
            match down_for {
                Some(down) if down >= timeout_ms => decision(
                    vec![Action::ReleaseLease],
                    format!(
                        "PostgreSQL has been down {:.1} s, primary_start_timeout is {} s: releasing the lease \
                         so a replica takes over",
                        down as f64 / 1000.0,
                        cluster.config.primary_start_timeout
                    ),
                ),
                // A replica's directory never starts as a primary directly: that would accept
                // writes on the old timeline. Start it read-only; the next cycle promotes it.
                _ if pg.standby => decision(
                    vec![Action::AcquireLease, Action::StartReplica { leader: None }],
                    "I hold the lease and my stopped PostgreSQL is a replica: starting it read-only, \
                     then promoting",
                ),
                _ => decision(
                    vec![Action::AcquireLease, Action::StartPrimary],
                    "I hold the lease and PostgreSQL is not running: starting it as primary (crash recovery)",
                ),
            }
        }
    }
}

/// The healthy primary: keep the lease, and carry out a due switchover request.
fn primary_with_lease(input: &Inputs<'_>, cluster: &ClusterView) -> Decision {
    let keep = |extra: Option<Action>, reason: String| {
        let mut actions = KEEP_LEASE.to_vec();
        actions.extend(extra);
        decision(actions, reason)
    };
    let Some(req) = cluster.failover.as_ref() else {
        return keep(None, "no action: I am the primary and hold the lease".into());
    };
    if req.member.as_deref() == Some(input.me) {
        return keep(
            Some(Action::ClearFailover),
            "I am the primary the switchover asked for: removing the request".into(),
        );
    }
    if let Some(leader) = req.leader.as_deref().filter(|l| *l != input.me) {
        return keep(
            Some(Action::ClearFailover),
            format!("a switchover away from {leader} is pending, but I am the primary: removing the stale request"),
        );
    }
    if !req.is_due(cluster.as_of_ms) {
        return keep(
            None,
            format!(
                "no action: I am the primary; switchover scheduled at {}",
                req.scheduled_at.as_deref().unwrap_or("?")
            ),
        );
    }
    match switchover_target(input, cluster, req) {
        Err(Unfit::NotStreaming(why))
            if cluster
                .failover_since_ms
                .is_some_and(|t| cluster.as_of_ms.saturating_sub(t) < CANDIDATE_WAIT_MS) =>
        {
            keep(None, format!("switchover pending: {why}; waiting for it"))
        }
        // Renewed first: the fast shutdown may take what is left of the lease (hand_over.rs).
        Ok(candidate) => decision(
            vec![
                Action::AcquireLease,
                Action::HandOver {
                    candidate: candidate.clone(),
                },
            ],
            format!("switchover to {candidate}: shutting down cleanly and handing the lease over"),
        ),
        Err(Unfit::NotStreaming(why) | Unfit::Never(why)) => keep(
            Some(Action::ClearFailover),
            format!("switchover requested but not possible ({why}): cancelling it"),
        ),
    }
}

/// Why a member cannot take a switchover now: maybe later (not streaming yet), or never.
enum Unfit {
    NotStreaming(String),
    Never(String),
}

/// The member a switchover hands over to: the one asked for, or the best eligible replica.
fn switchover_target(
    input: &Inputs<'_>,
    cluster: &ClusterView,
    req: &FailoverRequest,
) -> Result<String, Unfit> {
    let my_lsn = input.my_position.map_or(0, |p| p.lsn);
    let max_lag = cluster.config.maximum_lag_on_failover;
    let eligible = |m: &MemberStatus| -> Result<(), Unfit> {
        if !m.tags.may_become_primary() {
            return Err(Unfit::Never(format!("{} is tagged nofailover", m.name)));
        }
        // Streaming, not just running: the old primary's last WAL must be able to reach it
        // before the old primary's shutdown completes.
        if m.state != PgRunState::Streaming {
            return Err(Unfit::NotStreaming(format!(
                "{} is not streaming ({})",
                m.name,
                m.state.as_str()
            )));
        }
        let lag = my_lsn.saturating_sub(m.wal_position().unwrap_or(0));
        if lag > max_lag {
            return Err(Unfit::Never(format!(
                "{} lags {lag} bytes behind, more than maximum_lag_on_failover ({max_lag})",
                m.name
            )));
        }
        Ok(())
    };
    match req.member.as_deref() {
        Some(name) => {
            let m = cluster
                .member(name)
                .ok_or_else(|| Unfit::Never(format!("{name} is not a member")))?;
            eligible(m).map(|()| name.to_string())
        }
        None => cluster
            .members
            .iter()
            .filter(|m| m.name != input.me && eligible(m).is_ok())
            // Synchronous mode: the best replica is a synchronous standby.
            .filter(|m| cluster.sync_forbids_promotion(&m.name).is_none())
            .max_by(|a, b| {
                let rank = |m: &MemberStatus| {
                    (
                        m.wal_position().unwrap_or(0),
                        m.tags.effective_failover_priority(),
                    )
                };
                rank(a).cmp(&rank(b)).then_with(|| b.name.cmp(&a.name))
            })
            .map(|m| m.name.clone())
            .ok_or_else(|| Unfit::NotStreaming("no eligible replica is streaming".to_string())),
    }
}

fn follower_of(input: &Inputs<'_>, cluster: &ClusterView, leader: &str) -> Decision {
    let pg = input.pg;
    if pg.running && pg.role == Some(PgRole::Primary) {
        return decision(
            vec![Action::Demote],
            format!("{leader} holds the lease but I run as a primary: demoting"),
        );
    }
    if pg.needs_rejoin {
        // The new primary must have promoted (and checkpointed: its control file names the new
        // timeline) before pg_rewind compares against it; a lease holder still starting up or
        // still read-only would look "on the same timeline" and hide a divergence.
        let promoted = cluster
            .member(leader)
            .is_some_and(|m| m.state.is_up() && m.role == PgRole::Primary);
        if !promoted {
            return decision(
                vec![],
                format!("I was a primary; waiting for the new primary {leader} to be up before rejoining"),
            );
        }
        let budget = &pg.rejoin_retry;
        if let Gate::Wait { attempt, .. } = budget.gate(input.now_ms) {
            return decision(
                vec![],
                format!(
                    "I was a primary: waiting {} before rejoin check {} against {leader}{}",
                    seconds_text(backoff_ms(budget.failures)),
                    budget.attempt_text(attempt),
                    budget.last_failure_text()
                ),
            );
        }
        return decision(
            vec![Action::Rejoin {
                leader: leader.to_string(),
            }],
            format!(
                "I was a primary: checking my timeline against {leader}'s with pg_rewind before following it"
            ),
        );
    }
    match (pg.running, pg.role) {
        (true, _) if pg.following.as_deref() == Some(leader) => {
            decision(vec![], format!("following primary {leader}"))
        }
        (true, _) => decision(
            vec![Action::Follow {
                leader: leader.to_string(),
            }],
            format!("re-pointing replication at the new primary {leader}"),
        ),
        (false, _) => decision(
            vec![Action::StartReplica {
                leader: Some(leader.to_string()),
            }],
            format!("PostgreSQL is not running: starting it as a replica of {leader}"),
        ),
    }
}

/// What a member that stays out of the race does with its PostgreSQL: a primary demotes, a
/// stopped server starts read-only (unless it was a primary that must rejoin first).
fn stay_out(input: &Inputs<'_>, reason: String) -> Decision {
    let pg = input.pg;
    // A stopped server starts read-only, following nobody, so that its real WAL position
    // takes part in the race (a former primary too: the rejoin check is latched and still
    // runs before it follows anyone).
    let actions = match (pg.running, pg.role) {
        (true, Some(PgRole::Primary)) => vec![Action::Demote],
        (false, _) => vec![Action::StartReplica { leader: None }],
        _ => vec![],
    };
    decision(actions, reason)
}

/// Nobody holds the lease. The healthiest eligible member takes it; the rest wait.
fn no_leader(input: &Inputs<'_>, cluster: &ClusterView) -> Decision {
    let pg = input.pg;
    let request = due_failover(cluster);
    if let Some(req) = request {
        if req.leader.as_deref() == Some(input.me) {
            let waited = pg.handed_over_at_ms.map(|t| input.now_ms.saturating_sub(t));
            if waited.is_some_and(|w| w >= HANDOVER_TIMEOUT_MS) && !pg.running {
                return decision(
                    vec![Action::AcquireLease, Action::StartPrimary, Action::ClearFailover],
                    format!(
                        "switchover to {} did not complete within {} s: I have every committed write, taking \
                         the lease back",
                        req.member.as_deref().unwrap_or("the best replica"),
                        HANDOVER_TIMEOUT_MS / 1000
                    ),
                );
            }
            // Stay stopped: the candidate promotes in a moment, and this node may need to take
            // the lease back as it is (it has every committed write).
            return decision(
                vec![],
                format!(
                    "handing over to {}: not taking part in the race",
                    req.member.as_deref().unwrap_or("the best replica")
                ),
            );
        }
        if let Some(candidate) = req.member.as_deref() {
            if candidate == input.me {
                return requested_candidate(input, cluster, req);
            }
            if member_is_up(cluster, candidate) {
                return stay_out(
                    input,
                    format!("a switchover / failover to {candidate} is in progress: leaving the race to it"),
                );
            }
        }
    }
    if !input.tags.may_become_primary() {
        return stay_out(
            input,
            "no primary holds the lease and I am tagged nofailover".into(),
        );
    }
    if let Err(why) = eligible_to_race(input, cluster) {
        return stay_out(input, format!("no primary holds the lease; {why}"));
    }
    if let Some(why) = cluster.sync_forbids_promotion(input.me) {
        return stay_out(
            input,
            format!("no primary holds the lease; {why}: not taking part in the race (`pgquorumctl failover --force` overrides)"),
        );
    }
    let exclude = request.and_then(|r| r.leader.as_deref());
    match best_candidate(input, cluster, exclude) {
        Some(best) if best != input.me => stay_out(
            input,
            format!("no primary holds the lease: {best} is ahead of me, leaving the race to it"),
        ),
        // Running, but my own WAL position is unknown (PostgreSQL not queryable) and nobody
        // else's counts: nobody may win on a position nobody knows.
        None if pg.running => stay_out(
            input,
            "no primary holds the lease and my WAL position is unknown: not taking part in the race".into(),
        ),
        _ => {
            match (pg.running, pg.role) {
                // Not running: its WAL position is unknown to the others and to me. Start
                // read-only first; the race is decided once every candidate runs (a stopped
                // server never becomes primary on its old timeline).
                (false, _) => decision(
                    vec![Action::StartReplica { leader: None }],
                    "no primary holds the lease and PostgreSQL is stopped: starting it read-only to take \
                     part in the race",
                ),
                (true, Some(PgRole::Primary)) => decision(
                    vec![Action::AcquireLease, Action::PublishStatus],
                    "no primary holds the lease and I am the most up-to-date member: taking the lease",
                ),
                (true, _) => decision(
                    vec![Action::AcquireLease, Action::Promote],
                    "no primary holds the lease and I am the most up-to-date member: taking the lease",
                ),
            }
        }
    }
}

/// This node is the candidate of a switchover or manual failover and nobody holds the lease.
fn requested_candidate(input: &Inputs<'_>, cluster: &ClusterView, req: &FailoverRequest) -> Decision {
    let pg = input.pg;
    if !(pg.running && pg.role == Some(PgRole::Replica)) {
        return decision(
            vec![],
            "I am the switchover / failover candidate but PostgreSQL is not running as a replica: waiting",
        );
    }
    if req.is_switchover() {
        // No committed write may be lost: the old primary published its final WAL position
        // after its clean shutdown; promote only once everything up to it arrived.
        let have = input.my_position.map_or(0, |p| p.lsn);
        if let Some(want) = cluster.last_primary_lsn.filter(|want| have < *want) {
            return decision(
                vec![],
                format!("switchover: waiting to receive WAL up to {want:X} (have {have:X})"),
            );
        }
    }
    let kind = if req.is_switchover() {
        "switchover"
    } else {
        "manual failover"
    };
    decision(
        // The request is done once this node promoted: remove it in the same cycle, so the
        // operator can ask for the next one at once.
        vec![Action::AcquireLease, Action::Promote, Action::ClearFailover],
        format!("{kind} to me: taking the lease and promoting"),
    )
}

/// The rules that keep a member out of an automatic leader race by its own figures:
/// `maximum_lag_on_failover` behind the last primary position, `check_timeline`, and a
/// position that does not lie on the newest timeline (src/cluster/timeline_position.rs).
fn eligible_to_race(input: &Inputs<'_>, cluster: &ClusterView) -> Result<(), String> {
    let me = input.my_position;
    if let Some(last) = cluster
        .last_primary_lsn
        .filter(|_| cluster.last_primary_clean_shutdown)
    {
        let have = me.map_or(0, |p| p.lsn);
        if have < last {
            return Err(format!(
                "the last primary shut down cleanly at WAL {last:X} and I have only {have:X}: waiting for a \
                 member with all of it (the old primary) — `pgquorumctl failover` overrides"
            ));
        }
    }
    if let (Some(last), Some(me)) = (cluster.last_primary_lsn, me) {
        let lag = last.saturating_sub(me.lsn);
        if lag > cluster.config.maximum_lag_on_failover {
            return Err(format!(
                "I am {lag} bytes behind the last known primary position, more than \
                 maximum_lag_on_failover ({}): not taking part in the race",
                cluster.config.maximum_lag_on_failover
            ));
        }
    }
    if cluster.config.check_timeline {
        let newest = timeline_position::newest_timeline(&cluster.history);
        if let Some(me) = me.filter(|p| p.timeline < newest) {
            return Err(format!(
                "my timeline {} is older than the cluster's {newest} (check_timeline): not taking part in the race",
                me.timeline
            ));
        }
    }
    if let Some(why) =
        me.and_then(|p| timeline_position::place(&cluster.history, p.timeline, p.lsn).why_out(p.lsn))
    {
        return Err(format!("{why}: not taking part in the race"));
    }
    Ok(())
}

/// The member that should win a leader race: eligible (may become primary, up, within the
/// lag limit, not `exclude`), with a known WAL position that lies on the newest timeline
/// (src/cluster/timeline_position.rs: an older timeline no further than where it was left),
/// with the highest WAL position; ties go to
/// the higher failover priority, then the name. Positions come from the fresh figures when
/// they were gathered (a member that did not answer is out), else from the member keys (a
/// member that publishes no timeline or position is out). `me` counts with its own position
/// (whatever the fresh figures say) so that a lone node can win; `None` when no member,
/// `me` included, has a known comparable position.
pub fn best_candidate<'a>(
    input: &Inputs<'a>,
    cluster: &'a ClusterView,
    exclude: Option<&str>,
) -> Option<&'a str> {
    let me = input.me;
    let max_lag = cluster.config.maximum_lag_on_failover;
    let position = |m: &MemberStatus| -> Option<WalPosition> {
        match input.fresh {
            Some(fresh) => fresh.get(&m.name).copied(),
            None => Some(WalPosition {
                timeline: m.timeline?,
                lsn: m.wal_position()?,
            }),
        }
    };
    let within_lag = |p: &WalPosition| {
        cluster
            .last_primary_lsn
            .is_none_or(|last| last.saturating_sub(p.lsn) <= max_lag)
    };
    let mine = input
        .my_position
        .map(|p| (me, input.tags.effective_failover_priority(), p));
    cluster
        .members
        .iter()
        .filter(|m| m.name != me && m.tags.may_become_primary() && m.state.is_up())
        .filter(|m| Some(m.name.as_str()) != exclude)
        // Synchronous mode: a member the `sync` key does not list never wins (nor makes a
        // listed one wait for it).
        .filter(|m| cluster.sync_forbids_promotion(&m.name).is_none())
        .filter_map(|m| position(m).map(|p| (m.name.as_str(), m.tags.effective_failover_priority(), p)))
        .filter(|(_, _, p)| within_lag(p))
        .chain(mine)
        .filter(|(_, _, p)| {
            timeline_position::place(&cluster.history, p.timeline, p.lsn) == Placement::OnNewest
        })
        .max_by(|(a, prio_a, pa), (b, prio_b, pb)| (pa, prio_a).cmp(&(pb, prio_b)).then_with(|| b.cmp(a)))
        .map(|(name, _, _)| name)
}
