//! The HA decision: a pure function from what the agent sees to what it should do.
//!
//! No I/O here. Every case the loop can meet is a row of the table tests in
//! `decide_test.rs`; the executor (`runner.rs`) carries the actions out.

use crate::cluster::{ClusterView, MemberStatus, PgRole};
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
    /// A background job (bootstrap, clone) is running: nothing else may touch PostgreSQL.
    pub job: Option<Job>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Bootstrap,
    Clone,
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
    pub tags: &'a Tags,
    /// The cluster as a linearizable read showed it; `None` when the read failed (this node
    /// cannot confirm the keyspace: cut off from a majority).
    pub cluster: Option<&'a ClusterView>,
    pub pg: &'a LocalPg,
    pub lease: LeaseClock,
    /// Local monotonic time, ms.
    pub now_ms: u64,
    /// Demote this long before the lease deadline at the latest (covers one loop of delay).
    pub demote_margin_ms: u64,
}

/// One thing to do. The executor runs them in order and stops at the first failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Take the bootstrap claim (`initialize`, compare-and-set on absence).
    ClaimInitialize,
    /// Create a new database cluster (initdb, config, start, roles, post_bootstrap), then
    /// take the lease and publish `initialize`. Runs in the background.
    Bootstrap,
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
    /// Stop accepting writes at once: fast shutdown, then start as a read-only replica of
    /// `leader` (or of nobody).
    Demote { leader: Option<String> },
    /// Re-point a running replica at `leader` (reload, or restart if PostgreSQL needs it).
    Follow { leader: String },
    /// Keep replication slots for the other members (primary only).
    SyncSlots,
    /// Publish the primary's WAL position (`status`).
    PublishStatus,
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
    match input.cluster {
        Some(c) if c.paused() => paused(input, d),
        _ => d,
    }
}

/// In maintenance mode the agent takes no automatic action on PostgreSQL; it only keeps
/// its lease if it is the primary (so that resuming does not cause a failover).
fn paused(input: &Inputs<'_>, d: Decision) -> Decision {
    let keep: Vec<Action> = d
        .actions
        .into_iter()
        .filter(|a| {
            matches!(
                a,
                Action::AcquireLease | Action::PublishStatus | Action::SyncSlots
            )
        })
        .filter(|_| input.pg.role == Some(PgRole::Primary))
        .collect();
    decision(keep, format!("PAUSE: no automatic action ({})", d.reason))
}

fn decide_unpaused(input: &Inputs<'_>) -> Decision {
    let pg = input.pg;
    if let Some(job) = pg.job {
        let what = match job {
            Job::Bootstrap => "bootstrapping a new cluster",
            Job::Clone => "creating a replica",
        };
        return decision(vec![], format!("{what}: in progress"));
    }
    if let DataDir::Foreign(why) = &pg.data {
        return decision(
            vec![Action::Refuse],
            format!("refusing to manage the data directory: {why}"),
        );
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
                    vec![Action::Demote { leader: None }, Action::ReleaseLease],
                    "lease renew failed before its deadline: demoting",
                );
            }
        }
    }

    match cluster.initialize.as_deref() {
        None => uninitialized_cluster(input),
        Some("") => decision(
            vec![],
            "waiting for the member that claimed the bootstrap to finish it",
        ),
        Some(sysid) => initialized_cluster(input, cluster, sysid),
    }
}

fn keyspace_unreachable(input: &Inputs<'_>) -> Decision {
    let pg = input.pg;
    if pg.running && pg.role == Some(PgRole::Primary) {
        // We cannot renew the lease, so we cannot know that nobody else took it: stop
        // accepting writes now rather than at the deadline (Patroni does the same).
        return decision(
            vec![Action::Demote { leader: None }],
            "cannot confirm the keyspace (no majority reachable) and I was the primary: demoting",
        );
    }
    decision(
        vec![],
        "cannot confirm the keyspace (no majority reachable): keeping PostgreSQL as it is",
    )
}

fn uninitialized_cluster(input: &Inputs<'_>) -> Decision {
    match &input.pg.data {
        DataDir::Empty if input.tags.may_become_primary() => decision(
            vec![Action::ClaimInitialize, Action::Bootstrap],
            "cluster not initialized: trying to bootstrap it",
        ),
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
        Some(holder) if holder == input.me => lease_holder(input),
        Some(holder) => follower_of(input, holder),
        None => no_leader(input, cluster),
    }
}

fn new_replica(input: &Inputs<'_>, cluster: &ClusterView) -> Decision {
    match cluster.leader_name() {
        Some(leader) if leader != input.me && member_is_up(cluster, leader) => decision(
            vec![Action::Clone {
                source: leader.to_string(),
            }],
            format!("no data directory: cloning from primary {leader}"),
        ),
        Some(leader) => decision(
            vec![],
            format!("no data directory: waiting for primary {leader} to be up"),
        ),
        None => decision(vec![], "no data directory and no primary to clone from: waiting"),
    }
}

fn member_is_up(cluster: &ClusterView, name: &str) -> bool {
    cluster.member(name).is_some_and(|m| m.state.is_up())
}

fn lease_holder(input: &Inputs<'_>) -> Decision {
    let pg = input.pg;
    match (pg.running, pg.role) {
        (true, Some(PgRole::Primary)) => decision(
            vec![Action::AcquireLease, Action::PublishStatus, Action::SyncSlots],
            "no action: I am the primary and hold the lease",
        ),
        (true, _) => decision(
            vec![Action::AcquireLease, Action::Promote],
            "I hold the lease but PostgreSQL runs as a replica: promoting",
        ),
        (false, _) => decision(
            vec![Action::AcquireLease, Action::StartPrimary],
            "I hold the lease and PostgreSQL is not running: starting it as primary (crash recovery)",
        ),
    }
}

fn follower_of(input: &Inputs<'_>, leader: &str) -> Decision {
    let pg = input.pg;
    match (pg.running, pg.role) {
        (true, Some(PgRole::Primary)) => decision(
            vec![Action::Demote {
                leader: Some(leader.to_string()),
            }],
            format!("{leader} holds the lease but I run as a primary: demoting"),
        ),
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

/// Nobody holds the lease. The healthiest eligible member takes it; the rest wait.
fn no_leader(input: &Inputs<'_>, cluster: &ClusterView) -> Decision {
    let pg = input.pg;
    if !input.tags.may_become_primary() {
        return match (pg.running, pg.role) {
            (true, Some(PgRole::Primary)) => decision(
                vec![Action::Demote { leader: None }],
                "no primary holds the lease and I am tagged nofailover: demoting",
            ),
            (false, _) => decision(
                vec![Action::StartReplica { leader: None }],
                "no primary and tagged nofailover: starting PostgreSQL read-only",
            ),
            _ => decision(vec![], "no primary holds the lease; tagged nofailover: waiting"),
        };
    }
    match best_candidate(input.me, cluster) {
        Some(best) if best != input.me => {
            let actions = match (pg.running, pg.role) {
                (true, Some(PgRole::Primary)) => vec![Action::Demote { leader: None }],
                (false, _) => vec![Action::StartReplica { leader: None }],
                _ => vec![],
            };
            decision(
                actions,
                format!("no primary holds the lease: {best} is ahead of me, leaving the race to it"),
            )
        }
        _ => {
            let mut actions = vec![Action::AcquireLease];
            actions.push(match (pg.running, pg.role) {
                (true, Some(PgRole::Primary)) => Action::PublishStatus,
                (true, _) => Action::Promote,
                (false, _) => Action::StartPrimary,
            });
            decision(
                actions,
                "no primary holds the lease and I am the most up-to-date member: taking the lease",
            )
        }
    }
}

/// The member that should win a leader race: eligible (may become primary, running), on the
/// newest timeline, with the highest WAL position; ties go to the higher failover priority,
/// then the name. `me` always counts as a candidate so that a lone node can win.
pub fn best_candidate<'a>(me: &'a str, cluster: &'a ClusterView) -> Option<&'a str> {
    let rank = |m: &MemberStatus| {
        (
            m.timeline.unwrap_or(0),
            m.wal_position().unwrap_or(0),
            m.tags.effective_failover_priority(),
        )
    };
    cluster
        .members
        .iter()
        .filter(|m| m.name == me || (m.tags.may_become_primary() && m.state.is_up()))
        .max_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| b.name.cmp(&a.name)))
        .map(|m| m.name.as_str())
        .or(Some(me))
}
