//! Table-driven tests of `decide`: one row per situation the loop can meet.

use std::collections::BTreeMap;

use super::decide::*;
use super::retry::RetryBudget;
use crate::cluster::{
    BootstrapClaim, ClusterView, FailoverRequest, LeaderLease, MemberStatus, PgRole, PgRunState,
};
use crate::config::Tags;

const SYSID: &str = "7300000000000000001";

fn member(name: &str, state: PgRunState, tl: u64, lsn: u64) -> MemberStatus {
    MemberStatus {
        name: name.into(),
        state,
        timeline: Some(tl),
        received_lsn: Some(lsn),
        role: PgRole::Replica,
        ..Default::default()
    }
}

fn cluster(initialize: Option<&str>, leader: Option<&str>, members: Vec<MemberStatus>) -> ClusterView {
    ClusterView {
        initialize: initialize.map(str::to_string),
        leader: leader.map(|h| LeaderLease {
            holder: h.into(),
            revision: 1,
            expires_at_ms: u64::MAX,
        }),
        members,
        ..Default::default()
    }
}

/// A pending bootstrap claim held by `holder` at `addr`, expiring at keyspace time 40 000
/// (the rows read at keyspace time 10 000).
fn claimed(holder: &str, addr: &str) -> ClusterView {
    ClusterView {
        initialize: Some(String::new()),
        bootstrap_claim: Some(BootstrapClaim {
            holder: holder.into(),
            holder_addr: Some(addr.into()),
            revision: 3,
            expires_at_ms: Some(40_000),
        }),
        as_of_ms: 10_000,
        ..Default::default()
    }
}

fn mine() -> ClusterView {
    claimed("node2", "node2:5433")
}

fn pg(data: DataDir, running: bool, role: Option<PgRole>, following: Option<&str>) -> LocalPg {
    LocalPg {
        data,
        running,
        role,
        following: following.map(str::to_string),
        job: None,
        needs_rejoin: false,
        standby: false,
        down_since_ms: None,
        blocked: None,
        handed_over_at_ms: None,
        bootstrap_retry: RetryBudget::bootstrap(),
        clone_retry: RetryBudget::unlimited(),
        rejoin_retry: RetryBudget::unlimited(),
        bootstrapped: None,
    }
}

const REFUSED: &str = "PostgreSQL failed to start: FATAL: WAL streaming (max_wal_senders > 0) requires wal_level \"replica\" or \"logical\"";

/// `budget` after `failures` failures in a row (the last one `REFUSED`), the next attempt
/// allowed from `next_at_ms` (the rows run at now = 10 000 ms).
fn failed(budget: RetryBudget, failures: u32, next_at_ms: u64) -> RetryBudget {
    RetryBudget {
        failures,
        next_attempt_at_ms: next_at_ms,
        last_error: Some(REFUSED.to_string()),
        ..budget
    }
}

fn ours() -> DataDir {
    DataDir::Initialized {
        system_identifier: SYSID.into(),
    }
}

struct Row {
    name: &'static str,
    cluster: Option<ClusterView>,
    pg: LocalPg,
    tags: Tags,
    lease: LeaseClock,
    /// The bootstrap claim's deadline (src/ha/claim_fence.rs).
    claim: LeaseClock,
    /// My own position; by default the figures of my member entry when PostgreSQL runs.
    my_position: Option<WalPosition>,
    fresh: Option<BTreeMap<String, WalPosition>>,
    /// This node was removed from the Raft group (src/ha/removed.rs).
    removed: bool,
    want: Vec<Action>,
    reason_has: &'static str,
}

fn row(
    name: &'static str,
    cluster: Option<ClusterView>,
    pg: LocalPg,
    want: Vec<Action>,
    reason_has: &'static str,
) -> Row {
    Row {
        name,
        cluster,
        pg,
        tags: Tags::default(),
        lease: LeaseClock::default(),
        claim: LeaseClock::default(),
        my_position: None,
        fresh: None,
        removed: false,
        want,
        reason_has,
    }
}

/// My (node2's) position as my member entry shows it, when PostgreSQL runs.
fn position_from_entry(r: &Row) -> Option<WalPosition> {
    if !r.pg.running {
        return None;
    }
    let me = r.cluster.as_ref()?.member("node2")?;
    Some(WalPosition {
        timeline: me.timeline.unwrap_or(0),
        lsn: me.wal_position().unwrap_or(0),
    })
}

fn nofailover() -> Tags {
    Tags {
        nofailover: Some(true),
        ..Default::default()
    }
}

fn three(me_state: PgRunState) -> Vec<MemberStatus> {
    vec![
        member("node1", PgRunState::Running, 1, 100),
        member("node2", me_state, 1, 100),
        member("node3", PgRunState::Streaming, 1, 90),
    ]
}

#[test]
fn decision_table() {
    use Action::*;
    let primary = Some(PgRole::Primary);
    let replica = Some(PgRole::Replica);
    let rows = vec![
        // --- bootstrap ---
        row(
            "empty keyspace, empty data: bootstrap",
            Some(cluster(None, None, vec![])),
            pg(DataDir::Empty, false, None, None),
            vec![ClaimInitialize, Bootstrap],
            "trying to bootstrap",
        ),
        Row {
            tags: nofailover(),
            ..row(
                "empty keyspace, nofailover: wait",
                Some(cluster(None, None, vec![])),
                pg(DataDir::Empty, false, None, None),
                vec![],
                "nofailover",
            )
        },
        row(
            "bootstrap failed once, back-off not over: wait, saying why",
            Some(cluster(None, None, vec![])),
            LocalPg {
                bootstrap_retry: failed(RetryBudget::bootstrap(), 1, 10_400),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![],
            "waiting 1 s before bootstrap attempt 2 of 5 (last failure: PostgreSQL failed to start: FATAL: WAL streaming",
        ),
        row(
            "bootstrap failed twice, back-off over: attempt 3",
            Some(cluster(None, None, vec![])),
            LocalPg {
                bootstrap_retry: failed(RetryBudget::bootstrap(), 2, 10_000),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![ClaimInitialize, Bootstrap],
            "trying to bootstrap it, attempt 3 of 5 (last failure: PostgreSQL failed",
        ),
        row(
            "bootstrap failed 5 times: refuse for good, with PostgreSQL's words and what to do",
            Some(cluster(None, None, vec![])),
            LocalPg {
                bootstrap_retry: failed(RetryBudget::bootstrap(), 5, 0),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![Refuse],
            "bootstrap failed 5 times; not trying again (last failure: PostgreSQL failed to start: FATAL: WAL \
             streaming (max_wal_senders > 0) requires wal_level \"replica\" or \"logical\"). Fix the cause",
        ),
        Row {
            tags: nofailover(),
            ..row(
                "bootstrap budget spent but nofailover anyway: just wait",
                Some(cluster(None, None, vec![])),
                LocalPg {
                    bootstrap_retry: failed(RetryBudget::bootstrap(), 5, 0),
                    ..pg(DataDir::Empty, false, None, None)
                },
                vec![],
                "nofailover",
            )
        },
        row(
            "my bootstraps failed, then another member bootstrapped: clone from it",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Stopped))),
            LocalPg {
                bootstrap_retry: failed(RetryBudget::bootstrap(), 5, 0),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![Clone {
                source: "node1".into(),
            }],
            "cloning from primary node1",
        ),
        row(
            "bootstrap claimed by another: wait",
            Some(cluster(Some(""), None, vec![])),
            pg(DataDir::Empty, false, None, None),
            vec![],
            "claimed the bootstrap",
        ),
        // --- the bootstrap claim (src/ha/bootstrap_claim.rs) ---
        row(
            "my claim applied but its reply was lost: bootstrap under it",
            Some(mine()),
            pg(DataDir::Empty, false, None, None),
            vec![ClaimInitialize, Bootstrap],
            "trying to bootstrap",
        ),
        row(
            "another member's claim: wait, saying who and when it expires",
            Some(claimed("node1", "node1:5433")),
            pg(DataDir::Empty, false, None, None),
            vec![],
            "waiting for node1 at node1:5433, which claimed the bootstrap, to finish it; the claim expires in 30 s",
        ),
        row(
            "my name at another address: not my claim",
            Some(claimed("node2", "10.9.9.9:5433")),
            pg(DataDir::Empty, false, None, None),
            vec![],
            "waiting for node2 at 10.9.9.9:5433",
        ),
        row(
            "bootstrap job running under my claim: keep the claim",
            Some(mine()),
            LocalPg {
                job: Some(Job::Bootstrap),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![ClaimInitialize],
            "in progress",
        ),
        row(
            "bootstrap job running, my claim expired and nobody took it: take it again",
            Some(cluster(None, None, vec![])),
            LocalPg {
                job: Some(Job::Bootstrap),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![ClaimInitialize],
            "in progress",
        ),
        row(
            "bootstrap job running, another member took the expired claim: mine is lost",
            Some(claimed("node1", "node1:5433")),
            LocalPg {
                job: Some(Job::Bootstrap),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![],
            "node1 claimed the bootstrap: mine will not be published",
        ),
        row(
            "bootstrap job running with its server up, another member took the expired claim: stop it",
            Some(claimed("node1", "node1:5433")),
            LocalPg {
                job: Some(Job::Bootstrap),
                ..pg(DataDir::Empty, true, None, None)
            },
            vec![Demote],
            "stopping the server it started",
        ),
        Row {
            claim: LeaseClock {
                deadline_ms: Some(10_900),
            },
            ..row(
                "bootstrap job running with its server up, cut off, claim about to expire: stop it",
                None,
                LocalPg {
                    job: Some(Job::Bootstrap),
                    ..pg(DataDir::Empty, true, None, None)
                },
                vec![Demote],
                "could not be renewed before it expires",
            )
        },
        Row {
            claim: LeaseClock {
                deadline_ms: Some(30_000),
            },
            ..row(
                "bootstrap job running with its server up, cut off, claim still good: hands off",
                None,
                LocalPg {
                    job: Some(Job::Bootstrap),
                    ..pg(DataDir::Empty, true, None, None)
                },
                vec![],
                "cannot confirm the keyspace",
            )
        },
        Row {
            claim: LeaseClock {
                deadline_ms: Some(10_900),
            },
            ..row(
                "bootstrap job running, no server yet, claim about to expire: nothing to stop",
                None,
                LocalPg {
                    job: Some(Job::Bootstrap),
                    ..pg(DataDir::Empty, false, None, None)
                },
                vec![],
                "cannot confirm the keyspace",
            )
        },
        row(
            "bootstrap job running, keyspace unreachable: hands off",
            None,
            LocalPg {
                job: Some(Job::Bootstrap),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![],
            "in progress",
        ),
        row(
            "bootstrap done under my claim: publish it",
            Some(mine()),
            LocalPg {
                bootstrapped: Some(SYSID.into()),
                ..pg(ours(), true, primary, None)
            },
            vec![FinishBootstrap {
                system_identifier: SYSID.into(),
            }],
            "publishing it",
        ),
        row(
            "bootstrap done, my claim expired and nobody took it: publish (the claim is taken again first)",
            Some(cluster(None, None, vec![])),
            LocalPg {
                bootstrapped: Some(SYSID.into()),
                ..pg(ours(), true, primary, None)
            },
            vec![FinishBootstrap {
                system_identifier: SYSID.into(),
            }],
            "my claim expired meanwhile",
        ),
        row(
            "bootstrap done but another member took my expired claim: stop my server",
            Some(claimed("node1", "node1:5433")),
            LocalPg {
                bootstrapped: Some(SYSID.into()),
                ..pg(ours(), true, primary, None)
            },
            vec![Demote],
            "my bootstrap lost its claim to node1",
        ),
        row(
            "my claim, my bootstrap failed and backs off: give the claim back meanwhile",
            Some(mine()),
            LocalPg {
                bootstrap_retry: failed(RetryBudget::bootstrap(), 1, 10_400),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![ReleaseInitialize],
            "waiting 1 s before bootstrap attempt 2 of 5",
        ),
        row(
            "my claim, bootstrap budget spent: give it back and refuse",
            Some(mine()),
            LocalPg {
                bootstrap_retry: failed(RetryBudget::bootstrap(), 5, 0),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![ReleaseInitialize, Refuse],
            "giving my bootstrap claim back",
        ),
        row(
            "my claim but a data directory this agent did not just bootstrap: give it back, never adopt",
            Some(mine()),
            pg(ours(), false, None, None),
            vec![ReleaseInitialize],
            "waits for an operator",
        ),
        Row {
            tags: nofailover(),
            ..row(
                "my claim but tagged nofailover now: give it back",
                Some(mine()),
                pg(DataDir::Empty, false, None, None),
                vec![ReleaseInitialize],
                "nofailover",
            )
        },
        row(
            "existing data but empty keyspace: never adopt silently",
            Some(cluster(None, None, vec![])),
            pg(ours(), true, primary, None),
            vec![],
            "operator",
        ),
        row(
            "bootstrap job running: hands off",
            Some(cluster(Some(""), None, vec![])),
            LocalPg {
                job: Some(Job::Bootstrap),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![],
            "in progress",
        ),
        // --- new replica ---
        row(
            "empty data, primary up: clone",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Stopped))),
            pg(DataDir::Empty, false, None, None),
            vec![Clone {
                source: "node1".into(),
            }],
            "cloning from primary node1",
        ),
        row(
            "clone failed 3 times, back-off not over: wait, saying why",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Stopped))),
            LocalPg {
                clone_retry: failed(RetryBudget::unlimited(), 3, 11_001),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![],
            "waiting 4 s before clone attempt 4 from primary node1 (last failure: PostgreSQL failed",
        ),
        row(
            "clone failed, back-off over: clone again",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Stopped))),
            LocalPg {
                clone_retry: failed(RetryBudget::unlimited(), 3, 9_000),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![Clone {
                source: "node1".into(),
            }],
            "cloning from primary node1, attempt 4 (last failure",
        ),
        row(
            "clones never run out of attempts (the primary may come back)",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Stopped))),
            LocalPg {
                clone_retry: failed(RetryBudget::unlimited(), 1_000, 0),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![Clone {
                source: "node1".into(),
            }],
            "attempt 1001",
        ),
        row(
            "empty data, primary not up yet: wait",
            Some(cluster(
                Some(SYSID),
                Some("node1"),
                vec![member("node1", PgRunState::Starting, 1, 0)],
            )),
            pg(DataDir::Empty, false, None, None),
            vec![],
            "waiting for primary node1",
        ),
        row(
            "clone running: hands off",
            Some(cluster(
                Some(SYSID),
                Some("node1"),
                three(PgRunState::CreatingReplica),
            )),
            LocalPg {
                job: Some(Job::Clone),
                ..pg(DataDir::Empty, false, None, None)
            },
            vec![],
            "creating a replica",
        ),
        // --- foreign data ---
        row(
            "data of another system: refuse",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Running))),
            pg(
                DataDir::Initialized {
                    system_identifier: "42".into(),
                },
                true,
                replica,
                None,
            ),
            vec![Refuse],
            "belongs to database system 42",
        ),
        row(
            "not a PostgreSQL directory: refuse",
            None,
            pg(DataDir::Foreign("random files".into()), false, None, None),
            vec![Refuse],
            "refusing to manage",
        ),
        // --- steady state ---
        row(
            "primary holding the lease: renew",
            Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Running))),
            pg(ours(), true, primary, None),
            vec![AcquireLease, PublishStatus, SyncSlots],
            "I am the primary and hold the lease",
        ),
        row(
            "replica following the primary: nothing",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Streaming))),
            pg(ours(), true, replica, Some("node1")),
            vec![],
            "following primary node1",
        ),
        row(
            "replica following an old primary: re-point",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Streaming))),
            pg(ours(), true, replica, Some("node3")),
            vec![Follow {
                leader: "node1".into(),
            }],
            "re-pointing",
        ),
        row(
            "replica postmaster died: restart as replica",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Crashed))),
            pg(ours(), false, None, Some("node1")),
            vec![StartReplica {
                leader: Some("node1".into()),
            }],
            "starting it as a replica of node1",
        ),
        row(
            "primary postmaster died while holding the lease: restart in place",
            Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Crashed))),
            pg(ours(), false, None, None),
            vec![AcquireLease, StartPrimary],
            "crash recovery",
        ),
        row(
            "holding the lease as a replica: promote",
            Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Running))),
            pg(ours(), true, replica, None),
            vec![AcquireLease, Promote],
            "promoting",
        ),
        // --- safety ---
        row(
            "another member holds the lease while I am primary: demote",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Running))),
            pg(ours(), true, primary, None),
            vec![Demote],
            "demoting",
        ),
        row(
            "keyspace unreachable as primary: demote",
            None,
            pg(ours(), true, primary, None),
            vec![Demote],
            "cannot confirm the keyspace",
        ),
        row(
            "keyspace unreachable as replica: keep",
            None,
            pg(ours(), true, replica, Some("node1")),
            vec![],
            "keeping PostgreSQL",
        ),
        Row {
            lease: LeaseClock {
                deadline_ms: Some(10_500),
            },
            ..row(
                "lease deadline near: demote and release",
                Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Running))),
                pg(ours(), true, primary, None),
                vec![Demote, ReleaseLease],
                "lease renew failed",
            )
        },
        Row {
            lease: LeaseClock {
                deadline_ms: Some(20_000),
            },
            ..row(
                "lease deadline far: renew",
                Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Running))),
                pg(ours(), true, primary, None),
                vec![AcquireLease, PublishStatus, SyncSlots],
                "hold the lease",
            )
        },
        // --- leader race (no lease holder) ---
        row(
            "no leader, I am the most up to date replica: take lease and promote",
            Some(cluster(
                Some(SYSID),
                None,
                vec![
                    member("node1", PgRunState::Stopped, 1, 100),
                    member("node2", PgRunState::Streaming, 1, 120),
                    member("node3", PgRunState::Streaming, 1, 90),
                ],
            )),
            pg(ours(), true, replica, Some("node1")),
            vec![AcquireLease, Promote],
            "most up-to-date",
        ),
        row(
            "no leader, another replica is ahead: wait",
            Some(cluster(
                Some(SYSID),
                None,
                vec![
                    member("node2", PgRunState::Streaming, 1, 90),
                    member("node3", PgRunState::Streaming, 1, 120),
                ],
            )),
            pg(ours(), true, replica, Some("node1")),
            vec![],
            "node3 is ahead",
        ),
        row(
            "no leader, newer timeline beats higher lsn",
            Some(cluster(
                Some(SYSID),
                None,
                vec![
                    member("node2", PgRunState::Streaming, 2, 50),
                    member("node3", PgRunState::Streaming, 1, 900),
                ],
            )),
            pg(ours(), true, replica, None),
            vec![AcquireLease, Promote],
            "most up-to-date",
        ),
        row(
            "no leader, I was primary (agent restarted): keep primary and take lease",
            Some(cluster(
                Some(SYSID),
                None,
                vec![
                    member("node2", PgRunState::Running, 1, 200),
                    member("node3", PgRunState::Streaming, 1, 100),
                ],
            )),
            pg(ours(), true, primary, None),
            vec![AcquireLease, PublishStatus],
            "taking the lease",
        ),
        row(
            "no leader, all stopped after a full restart: start read-only first, race once running",
            Some(cluster(
                Some(SYSID),
                None,
                vec![
                    member("node2", PgRunState::Stopped, 1, 200),
                    member("node3", PgRunState::Stopped, 1, 100),
                ],
            )),
            pg(ours(), false, None, None),
            vec![StartReplica { leader: None }],
            "starting it read-only to take part in the race",
        ),
        row(
            "no leader, others ahead, stopped: start read-only",
            Some(cluster(
                Some(SYSID),
                None,
                vec![
                    member("node2", PgRunState::Stopped, 1, 100),
                    member("node3", PgRunState::Running, 1, 200),
                ],
            )),
            pg(ours(), false, None, None),
            vec![StartReplica { leader: None }],
            "node3 is ahead",
        ),
        Row {
            tags: nofailover(),
            ..row(
                "no leader, nofailover replica never races",
                Some(cluster(
                    Some(SYSID),
                    None,
                    vec![member("node2", PgRunState::Streaming, 1, 999)],
                )),
                pg(ours(), true, replica, None),
                vec![],
                "nofailover",
            )
        },
        Row {
            tags: nofailover(),
            ..row(
                "nofailover member holding no lease but running primary: demote",
                Some(cluster(
                    Some(SYSID),
                    None,
                    vec![member("node2", PgRunState::Running, 1, 999)],
                )),
                pg(ours(), true, primary, None),
                vec![Demote],
                "nofailover",
            )
        },
    ];

    check_rows(rows);
}

fn check_rows(rows: Vec<Row>) {
    for r in rows {
        let input = Inputs {
            me: "node2",
            my_addr: "node2:5433",
            tags: &r.tags,
            cluster: r.cluster.as_ref(),
            pg: &r.pg,
            lease: r.lease,
            claim: r.claim,
            now_ms: 10_000,
            demote_margin_ms: 1_000,
            my_position: r.my_position.or_else(|| position_from_entry(&r)),
            fresh: r.fresh.as_ref(),
            removed: r.removed,
        };
        let d = decide(&input);
        assert_eq!(d.actions, r.want, "{}: {}", r.name, d.reason);
        assert!(
            d.reason.contains(r.reason_has),
            "{}: reason {:?} lacks {:?}",
            r.name,
            d.reason,
            r.reason_has
        );
        assert_eq!(decide(&input), d, "{}: decide is not deterministic", r.name);
    }
}

#[test]
fn pause_blocks_everything_but_keeping_the_lease() {
    let mut c = cluster(
        Some(SYSID),
        None,
        vec![member("node2", PgRunState::Streaming, 1, 999)],
    );
    c.config.pause = true;
    let tags = Tags::default();
    let replica = pg(ours(), true, Some(PgRole::Replica), None);
    let input = Inputs {
        me: "node2",
        my_addr: "node2:5433",
        tags: &tags,
        cluster: Some(&c),
        pg: &replica,
        lease: LeaseClock::default(),
        claim: LeaseClock::default(),
        now_ms: 0,
        demote_margin_ms: 0,
        my_position: None,
        fresh: None,
        removed: false,
    };
    let d = decide(&input);
    assert!(d.actions.is_empty(), "{d:?}");
    assert!(d.reason.starts_with("PAUSE: "), "{}", d.reason);

    c.leader = Some(LeaderLease {
        holder: "node2".into(),
        revision: 1,
        expires_at_ms: u64::MAX,
    });
    let primary = pg(ours(), true, Some(PgRole::Primary), None);
    let input = Inputs {
        me: "node2",
        my_addr: "node2:5433",
        tags: &tags,
        cluster: Some(&c),
        pg: &primary,
        lease: LeaseClock::default(),
        claim: LeaseClock::default(),
        now_ms: 0,
        demote_margin_ms: 0,
        my_position: None,
        fresh: None,
        removed: false,
    };
    assert_eq!(
        decide(&input).actions,
        vec![Action::AcquireLease, Action::PublishStatus, Action::SyncSlots]
    );
}

fn with_lsn(mut c: ClusterView, last_primary_lsn: u64) -> ClusterView {
    c.last_primary_lsn = Some(last_primary_lsn);
    c
}

fn with_failover(
    mut c: ClusterView,
    leader: Option<&str>,
    member: Option<&str>,
    at: Option<u64>,
) -> ClusterView {
    c.failover = Some(FailoverRequest {
        leader: leader.map(str::to_string),
        member: member.map(str::to_string),
        scheduled_at: at.map(|_| "2026-11-22T03:00:00+00:00".to_string()),
        scheduled_at_ms: at,
    });
    c.failover_revision = Some(7);
    c
}

/// No leader; `history` says timeline 1 was left at 0x3000, and the last primary (on
/// timeline 2) published 0x4000.
fn left_timeline_1(members: Vec<MemberStatus>) -> ClusterView {
    let mut c = cluster(Some(SYSID), None, members);
    c.history = vec![crate::cluster::HistoryEntry {
        timeline: 1,
        switch_lsn: 0x3000,
        reason: "test".into(),
        time: String::new(),
        new_leader: Some("node3".into()),
    }];
    c.last_primary_lsn = Some(0x4000);
    c
}

/// `members` with `name` running as the primary.
fn primary_is(mut members: Vec<MemberStatus>, name: &str) -> Vec<MemberStatus> {
    for m in members.iter_mut().filter(|m| m.name == name) {
        m.role = PgRole::Primary;
        m.state = PgRunState::Running;
    }
    members
}

fn pos(timeline: u64, lsn: u64) -> WalPosition {
    WalPosition { timeline, lsn }
}

#[test]
fn failover_rejoin_and_crash_table() {
    use Action::*;
    let primary = Some(PgRole::Primary);
    let replica = Some(PgRole::Replica);
    let race = |members: Vec<MemberStatus>| cluster(Some(SYSID), None, members);
    let mut start_timeout_zero = cluster(Some(SYSID), Some("node2"), three(PgRunState::Crashed));
    start_timeout_zero.config.primary_start_timeout = 0;
    let mut start_timeout_five = cluster(Some(SYSID), Some("node2"), three(PgRunState::Crashed));
    start_timeout_five.config.primary_start_timeout = 5;
    let mut check_timeline = race(vec![
        member("node2", PgRunState::Streaming, 1, 500),
        member("node3", PgRunState::Streaming, 2, 10),
    ]);
    check_timeline.config.check_timeline = true;
    check_timeline.history = vec![crate::cluster::HistoryEntry {
        timeline: 1,
        switch_lsn: 5,
        reason: "test".into(),
        time: String::new(),
        new_leader: Some("node3".into()),
    }];
    let mut clonefrom_members = three(PgRunState::Stopped);
    clonefrom_members[2].tags.clonefrom = true;
    clonefrom_members[2].state = PgRunState::Stopped;
    let mut nofailover_three = three(PgRunState::Running);
    nofailover_three[2].tags.nofailover = Some(true);
    let mut paused_switchover = with_failover(
        cluster(Some(SYSID), Some("node2"), three(PgRunState::Running)),
        Some("node2"),
        Some("node3"),
        None,
    );
    paused_switchover.config.pause = true;

    let rows =
        vec![
        // --- primary crash with the agent alive (primary_start_timeout) ---
        row(
            "postmaster down 2 s, primary_start_timeout 300 s: restart in place",
            Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Crashed))),
            LocalPg {
                down_since_ms: Some(8_000),
                ..pg(ours(), false, None, None)
            },
            vec![AcquireLease, StartPrimary],
            "crash recovery",
        ),
        row(
            "postmaster down 10 s, past primary_start_timeout 5 s: release the lease",
            Some(start_timeout_five),
            LocalPg {
                down_since_ms: Some(0),
                ..pg(ours(), false, None, None)
            },
            vec![ReleaseLease],
            "down 10.0 s, primary_start_timeout is 5 s",
        ),
        row(
            "primary_start_timeout 0: fail over at once",
            Some(start_timeout_zero),
            LocalPg {
                down_since_ms: Some(10_000),
                ..pg(ours(), false, None, None)
            },
            vec![ReleaseLease],
            "primary_start_timeout is 0 s",
        ),
        // --- rejoin of a former primary ---
        row(
            "former primary, new primary up: rejoin check (pg_rewind)",
            Some(cluster(Some(SYSID), Some("node1"), primary_is(three(PgRunState::Stopped), "node1"))),
            LocalPg {
                needs_rejoin: true,
                ..pg(ours(), false, None, None)
            },
            vec![Rejoin {
                leader: "node1".into(),
            }],
            "pg_rewind",
        ),
        row(
"former primary, new primary not up yet: wait stopped",
            Some(cluster(
                Some(SYSID),
                Some("node1"),
                vec![member("node1", PgRunState::Starting, 2, 0)],
            )),
            LocalPg {
                needs_rejoin: true,
                ..pg(ours(), false, None, None)
            },
            vec![],
            "before rejoining",
        ),
        row(
            "former primary, the lease holder has not promoted yet: wait (pg_rewind would see no divergence)",
            Some(cluster(
                Some(SYSID),
                Some("node1"),
                vec![member("node1", PgRunState::Running, 1, 100)],
            )),
            LocalPg {
                needs_rejoin: true,
                ..pg(ours(), false, None, None)
            },
            vec![],
            "before rejoining",
        ),
        row(
            "rejoin job running: hands off",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Stopped))),
            LocalPg {
                job: Some(Job::Rejoin),
                ..pg(ours(), false, None, None)
            },
            vec![],
            "pg_rewind",
        ),
        row(
            "rewind impossible: refuse and say why",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Stopped))),
            LocalPg {
                blocked: Some("pg_rewind is not allowed; run pgquorumctl reinit".into()),
                ..pg(ours(), false, None, None)
            },
            vec![Refuse],
            "reinit",
        ),
        row(
"no leader, former primary behind the others: starts read-only (the rejoin check stays latched)",
            Some(race(vec![
                member("node2", PgRunState::Stopped, 1, 50),
                member("node3", PgRunState::Streaming, 2, 100),
            ])),
            LocalPg {
                needs_rejoin: true,
                ..pg(ours(), false, None, None)
            },
            vec![StartReplica { leader: None }],
            "node3 is ahead",
        ),
        row(
            "I hold the lease but my stopped directory is a replica's: start read-only, promote next",
            Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Stopped))),
            LocalPg {
                standby: true,
                ..pg(ours(), false, None, None)
            },
            vec![AcquireLease, StartReplica { leader: None }],
            "then promoting",
        ),
        row(
            "former primary started read-only, someone else took the lease: rejoin check first",
            Some(cluster(Some(SYSID), Some("node1"), primary_is(three(PgRunState::Running), "node1"))),
            LocalPg {
                needs_rejoin: true,
                standby: true,
                ..pg(ours(), true, Some(PgRole::Replica), None)
            },
            vec![Rejoin {
                leader: "node1".into(),
            }],
            "pg_rewind",
        ),
        // --- leader race rules ---
        row(
            "no leader, I lag more than maximum_lag_on_failover: stay out",
            Some(with_lsn(
                race(vec![member("node2", PgRunState::Streaming, 1, 100)]),
                100 + 2 * 1_048_576,
            )),
            pg(ours(), true, replica, None),
            vec![],
            "maximum_lag_on_failover",
        ),
        row(
            "no leader, the last primary shut down cleanly with more WAL than I have: wait for it",
            Some({
                let mut c = with_lsn(race(vec![member("node2", PgRunState::Streaming, 1, 100)]), 120);
                c.last_primary_clean_shutdown = true;
                c
            }),
            pg(ours(), true, replica, None),
            vec![],
            "shut down cleanly",
        ),
        row(
            "no leader, the last primary shut down cleanly and I have all of its WAL: take the lease",
            Some({
                let mut c = with_lsn(race(vec![member("node2", PgRunState::Streaming, 1, 120)]), 120);
                c.last_primary_clean_shutdown = true;
                c
            }),
            pg(ours(), true, replica, None),
            vec![AcquireLease, Promote],
            "most up-to-date",
        ),
        row(
            "no leader, within maximum_lag_on_failover: take the lease",
            Some(with_lsn(
                race(vec![member("node2", PgRunState::Streaming, 1, 100)]),
                1000,
            )),
            pg(ours(), true, replica, None),
            vec![AcquireLease, Promote],
            "most up-to-date",
        ),
        Row {
            fresh: Some(BTreeMap::from([("node3".to_string(), pos(1, 500))])),
            ..row(
                "no leader, fresh figures show node3 ahead though its member key is stale",
                Some(race(vec![
                    member("node2", PgRunState::Streaming, 1, 300),
                    member("node3", PgRunState::Streaming, 1, 100),
                ])),
                pg(ours(), true, replica, None),
                vec![],
                "node3 is ahead",
            )
        },
        Row {
            fresh: Some(BTreeMap::new()),
            ..row(
                "no leader, node3 did not answer: it takes no part",
                Some(race(vec![
                    member("node2", PgRunState::Streaming, 1, 100),
                    member("node3", PgRunState::Streaming, 1, 900),
                ])),
                pg(ours(), true, replica, None),
                vec![AcquireLease, Promote],
                "most up-to-date",
            )
        },
        // --- positions compared within the newest timeline (src/cluster/timeline_position.rs) ---
        row(
            "no leader, my WAL went past the point where timeline 1 was left: out, though within the lag limit",
            Some(left_timeline_1(vec![
                member("node2", PgRunState::Running, 1, 0x5000),
                member("node3", PgRunState::Streaming, 1, 0x2F00),
            ])),
            pg(ours(), true, replica, None),
            vec![],
            "lies past the point 3000 where the cluster left that timeline",
        ),
        row(
            "no leader, node3 is ahead only on WAL the cluster abandoned: I win",
            Some(left_timeline_1(vec![
                member("node2", PgRunState::Streaming, 1, 0x2F00),
                member("node3", PgRunState::Streaming, 1, 0x5000),
            ])),
            pg(ours(), true, replica, None),
            vec![AcquireLease, Promote],
            "most up-to-date",
        ),
        row(
            "no leader, on timeline 1 before its switch point, node3 further on timeline 2: node3 wins",
            Some(left_timeline_1(vec![
                member("node2", PgRunState::Streaming, 1, 0x2F00),
                member("node3", PgRunState::Streaming, 2, 0x3800),
            ])),
            pg(ours(), true, replica, None),
            vec![],
            "node3 is ahead",
        ),
        row(
            "no leader, check_timeline: my timeline is older than the cluster's",
            Some(check_timeline),
            pg(ours(), true, replica, None),
            vec![],
            "check_timeline",
        ),
        row(
            "no leader, equal positions: the higher failover_priority wins",
            Some(race(vec![
                member("node2", PgRunState::Streaming, 1, 100),
                MemberStatus {
                    tags: Tags {
                        failover_priority: Some(5),
                        ..Default::default()
                    },
                    ..member("node3", PgRunState::Streaming, 1, 100)
                },
            ])),
            pg(ours(), true, replica, None),
            vec![],
            "node3 is ahead",
        ),
        // --- switchover, primary side ---
        row(
            "switchover due: hand over to the candidate",
            Some(with_failover(
                cluster(Some(SYSID), Some("node2"), three(PgRunState::Running)),
                Some("node2"),
                Some("node3"),
                None,
            )),
            pg(ours(), true, primary, None),
            vec![
                AcquireLease,
                HandOver {
                    candidate: "node3".into(),
                },
            ],
            "switchover to node3",
        ),
        row(
            "switchover without a candidate: the best replica",
            Some(with_failover(
                cluster(Some(SYSID), Some("node2"), three(PgRunState::Running)),
                Some("node2"),
                None,
                None,
            )),
            pg(ours(), true, primary, None),
            // node1 runs but does not stream: node3 is the only eligible one.
            vec![
                AcquireLease,
                HandOver {
                    candidate: "node3".into(),
                },
            ],
            "switchover to node3",
        ),
        row(
            "switchover scheduled later: keep the lease",
            Some(with_failover(
                cluster(Some(SYSID), Some("node2"), three(PgRunState::Running)),
                Some("node2"),
                Some("node3"),
                Some(u64::MAX / 2),
            )),
            pg(ours(), true, primary, None),
            vec![AcquireLease, PublishStatus, SyncSlots],
            "scheduled at",
        ),
        row(
            "switchover to a nofailover member: cancelled, never promoted",
            Some(with_failover(
                cluster(Some(SYSID), Some("node2"), nofailover_three),
                Some("node2"),
                Some("node3"),
                None,
            )),
            pg(ours(), true, primary, None),
            vec![AcquireLease, PublishStatus, SyncSlots, ClearFailover],
            "nofailover",
        ),
        row(
            "stale switchover away from another member: removed",
            Some(with_failover(
                cluster(Some(SYSID), Some("node2"), three(PgRunState::Running)),
                Some("node1"),
                Some("node3"),
                None,
            )),
            pg(ours(), true, primary, None),
            vec![AcquireLease, PublishStatus, SyncSlots, ClearFailover],
            "stale",
        ),
        row(
            "the candidate became primary: removes the request",
            Some(with_failover(
                cluster(Some(SYSID), Some("node2"), three(PgRunState::Running)),
                Some("node1"),
                Some("node2"),
                None,
            )),
            pg(ours(), true, primary, None),
            vec![AcquireLease, PublishStatus, SyncSlots, ClearFailover],
            "removing the request",
        ),
        row(
            "switchover in maintenance mode still proceeds (explicit operator request)",
            Some(paused_switchover),
            pg(ours(), true, primary, None),
            vec![
                AcquireLease,
                HandOver {
                    candidate: "node3".into(),
                },
            ],
            "switchover to node3",
        ),
        // --- switchover / failover, the others ---
        row(
            "old primary, candidate never took the lease: takes it back",
            Some(with_failover(
                race(three(PgRunState::Streaming)),
                Some("node2"),
                Some("node3"),
                None,
            )),
            LocalPg {
                needs_rejoin: true,
                handed_over_at_ms: Some(10_000 - HANDOVER_TIMEOUT_MS),
                ..pg(ours(), false, None, None)
            },
            vec![AcquireLease, StartPrimary, ClearFailover],
            "taking the lease back",
        ),
        row(
            "switchover to a running but not yet streaming replica: wait a little",
            Some({
                let mut c = with_failover(
                    cluster(Some(SYSID), Some("node2"), three(PgRunState::Running)),
                    Some("node2"),
                    Some("node1"),
                    None,
                );
                c.failover_since_ms = Some(0);
                c.as_of_ms = CANDIDATE_WAIT_MS - 1;
                c
            }),
            pg(ours(), true, primary, None),
            vec![AcquireLease, PublishStatus, SyncSlots],
            "waiting for it",
        ),
        row(
            "switchover to a running but not streaming replica: cancelled after a while",
            Some(with_failover(
                cluster(Some(SYSID), Some("node2"), {
                    let mut m = three(PgRunState::Running);
                    m[2].state = PgRunState::Running;
                    m
                }),
                Some("node2"),
                Some("node3"),
                None,
            )),
            pg(ours(), true, primary, None),
            vec![AcquireLease, PublishStatus, SyncSlots, ClearFailover],
            "node3 is not streaming",
        ),
        row(
            "old primary after handing over: stays out of the race",
            Some(with_failover(
                race(three(PgRunState::Stopped)),
                Some("node2"),
                Some("node3"),
                None,
            )),
            LocalPg {
                needs_rejoin: true,
                ..pg(ours(), false, None, None)
            },
            vec![],
            "handing over to node3",
        ),
        Row {
            my_position: Some(pos(1, 90)),
            ..row(
                "candidate has not received the old primary's last WAL: wait",
                Some(with_lsn(
                    with_failover(race(three(PgRunState::Streaming)), Some("node1"), Some("node2"), None),
                    100,
                )),
                pg(ours(), true, replica, Some("node1")),
                vec![],
                "waiting to receive WAL up to 64",
            )
        },
        Row {
            my_position: Some(pos(1, 100)),
            ..row(
                "candidate has everything: take the lease and promote",
                Some(with_lsn(
                    with_failover(race(three(PgRunState::Streaming)), Some("node1"), Some("node2"), None),
                    100,
                )),
                pg(ours(), true, replica, Some("node1")),
                vec![AcquireLease, Promote, ClearFailover],
                "switchover to me",
            )
        },
        Row {
            my_position: Some(pos(1, 10)),
            ..row(
                "manual failover to me although another replica is ahead",
                Some(with_failover(
                    race(vec![
                        member("node2", PgRunState::Streaming, 1, 10),
                        member("node3", PgRunState::Streaming, 1, 900),
                    ]),
                    None,
                    Some("node2"),
                    None,
                )),
                pg(ours(), true, replica, None),
                vec![AcquireLease, Promote, ClearFailover],
                "manual failover to me",
            )
        },
        row(
            "failover to node3 in progress: I stay out though I am ahead",
            Some(with_failover(
                race(vec![
                    member("node2", PgRunState::Streaming, 1, 900),
                    member("node3", PgRunState::Streaming, 1, 10),
                ]),
                None,
                Some("node3"),
                None,
            )),
            pg(ours(), true, replica, None),
            vec![],
            "leaving the race to it",
        ),
        row(
            "failover candidate node3 is down: normal race",
            Some(with_failover(
                race(vec![
                    member("node2", PgRunState::Streaming, 1, 900),
                    member("node3", PgRunState::Stopped, 1, 10),
                ]),
                None,
                Some("node3"),
                None,
            )),
            pg(ours(), true, replica, None),
            vec![AcquireLease, Promote],
            "most up-to-date",
        ),
        // --- tags ---
        row(
            "new replica clones from a member tagged clonefrom",
            Some(cluster(Some(SYSID), Some("node1"), {
                let mut m = clonefrom_members.clone();
                m[2].state = PgRunState::Streaming;
                m
            })),
            pg(DataDir::Empty, false, None, None),
            vec![Clone {
                source: "node3".into(),
            }],
            "clonefrom",
        ),
        row(
            "clonefrom member down: clone from the primary",
            Some(cluster(Some(SYSID), Some("node1"), clonefrom_members)),
            pg(DataDir::Empty, false, None, None),
            vec![Clone {
                source: "node1".into(),
            }],
            "cloning from primary node1",
        ),
    ];
    check_rows(rows);
}

fn history(entries: &[(u64, u64)]) -> Vec<crate::cluster::HistoryEntry> {
    entries
        .iter()
        .map(|&(timeline, switch_lsn)| crate::cluster::HistoryEntry {
            timeline,
            switch_lsn,
            reason: "test".into(),
            time: String::new(),
            new_leader: None,
        })
        .collect()
}

/// Hole 10 (issue 9, first half): who may win a leader race. Nobody wins on an unknown WAL
/// position. (The second half — positions past an older timeline's switch point do not count —
/// waits for a replica timeline that does not lag: see failover.md.)
#[test]
fn race_eligibility_table() {
    use Action::*;
    let replica = Some(PgRole::Replica);
    let race = |members: Vec<MemberStatus>, hist: &[(u64, u64)], last: u64| {
        let mut c = with_lsn(cluster(Some(SYSID), None, members), last);
        c.history = history(hist);
        c
    };
    let rows = vec![
        row(
            "running, my position unknown, no member key of mine, the others down: nobody wins",
            Some(cluster(
                Some(SYSID),
                None,
                vec![member("node1", PgRunState::Crashed, 1, 100)],
            )),
            pg(ours(), true, replica, None),
            vec![],
            "my WAL position is unknown",
        ),
        row(
            "a member on the newest timeline wins over one on the shared part of an older one",
            Some(race(
                vec![
                    member("node2", PgRunState::Streaming, 1, 90),
                    member("node3", PgRunState::Streaming, 2, 95),
                ],
                &[(1, 100)],
                100,
            )),
            pg(ours(), true, replica, None),
            vec![],
            "node3 is ahead of me",
        ),
        row(
            "a member that publishes no position does not win over me",
            Some(race(
                vec![
                    member("node2", PgRunState::Streaming, 1, 90),
                    MemberStatus {
                        timeline: None,
                        received_lsn: None,
                        ..member("node3", PgRunState::Streaming, 1, 0)
                    },
                ],
                &[],
                100,
            )),
            pg(ours(), true, replica, None),
            vec![AcquireLease, Promote],
            "most up-to-date",
        ),
    ];
    check_rows(rows);
}

/// Hole 9a (issue 9): in maintenance mode a pending switchover / failover lifts the pause only
/// for the two members it names (the primary it moves away from, and its candidate).
#[test]
fn pause_lifts_only_for_the_named_pair() {
    use Action::*;
    let replica = Some(PgRole::Replica);
    let paused = |mut c: ClusterView| {
        c.config.pause = true;
        c
    };
    let rows = vec![
        row(
            "bystander replica after a paused switchover node1 -> node3: not re-pointed",
            Some(paused(with_failover(
                cluster(
                    Some(SYSID),
                    Some("node3"),
                    primary_is(three(PgRunState::Streaming), "node3"),
                ),
                Some("node1"),
                Some("node3"),
                None,
            ))),
            pg(ours(), true, replica, Some("node1")),
            vec![],
            "PAUSE: ",
        ),
        row(
            "bystander with PostgreSQL stopped during a paused failover to node3: not started",
            Some(paused(with_failover(
                cluster(Some(SYSID), None, three(PgRunState::Streaming)),
                None,
                Some("node3"),
                None,
            ))),
            pg(ours(), false, None, None),
            vec![],
            "PAUSE: ",
        ),
        row(
            "paused failover to me: I take the lease and promote",
            Some(paused(with_failover(
                cluster(Some(SYSID), None, three(PgRunState::Streaming)),
                None,
                Some("node2"),
                None,
            ))),
            pg(ours(), true, replica, None),
            vec![AcquireLease, Promote, ClearFailover],
            "manual failover to me",
        ),
        row(
            "paused failover naming no leader, I hold the lease: I hand over",
            Some(paused(with_failover(
                cluster(Some(SYSID), Some("node2"), three(PgRunState::Streaming)),
                None,
                Some("node3"),
                None,
            ))),
            pg(ours(), true, Some(PgRole::Primary), None),
            vec![
                AcquireLease,
                HandOver {
                    candidate: "node3".into(),
                },
            ],
            "switchover to node3",
        ),
    ];
    check_rows(rows);
}

/// Hole 9b (issue 9): an agent stopped in maintenance mode leaves its primary running; started
/// again after its lease ran out, it takes the lease back — in maintenance mode a running
/// primary is the only member that takes a free lease, whatever the WAL positions (here node1
/// has as much WAL and would win an ordinary race on its name).
#[test]
fn paused_running_primary_takes_a_free_lease() {
    use Action::*;
    let paused = |mut c: ClusterView| {
        c.config.pause = true;
        c
    };
    let free = || {
        paused(cluster(
            Some(SYSID),
            None,
            primary_is(three(PgRunState::Running), "node2"),
        ))
    };
    let foreign = DataDir::Initialized {
        system_identifier: "7399999999999999999".into(),
    };
    let rows = vec![
        row(
            "paused, no lease holder, my PostgreSQL runs as primary: I take the lease",
            Some(free()),
            pg(ours(), true, Some(PgRole::Primary), None),
            vec![AcquireLease, PublishStatus],
            "PAUSE: no member holds the leader lease and my PostgreSQL runs as primary",
        ),
        row(
            "paused, no lease holder, I run a replica: nobody races",
            Some(free()),
            pg(ours(), true, Some(PgRole::Replica), None),
            vec![],
            "PAUSE: ",
        ),
        row(
            "paused, no lease holder, my PostgreSQL is stopped: left alone",
            Some(free()),
            pg(ours(), false, None, None),
            vec![],
            "PAUSE: ",
        ),
        row(
            "paused, no lease holder, a primary of another database system: not ours to lead",
            Some(free()),
            pg(foreign, true, Some(PgRole::Primary), None),
            vec![],
            "PAUSE: ",
        ),
        row(
            "paused, another member holds the lease: no action on my primary",
            Some(paused(cluster(
                Some(SYSID),
                Some("node1"),
                primary_is(three(PgRunState::Running), "node2"),
            ))),
            pg(ours(), true, Some(PgRole::Primary), None),
            vec![],
            "PAUSE: ",
        ),
    ];
    check_rows(rows);
}

/// Synchronous mode (issue 12): with the `sync` key in force only the members it lists race;
/// a member it does not list stays out and says why, and never makes a listed one wait for it.
#[test]
fn sync_mode_race_table() {
    use crate::cluster::SyncState;
    use crate::config::SynchronousMode;
    use Action::*;
    let replica = Some(PgRole::Replica);
    // node1 (the old primary) is gone; node2 is me, node3 another replica.
    let race = |mode: SynchronousMode, sync: Option<SyncState>, node3_lsn: u64| {
        let mut c = cluster(
            Some(SYSID),
            None,
            vec![
                member("node2", PgRunState::Streaming, 1, 100),
                member("node3", PgRunState::Streaming, 1, node3_lsn),
            ],
        );
        c.config.synchronous_mode = mode;
        c.sync = sync;
        c
    };
    let key = |standbys: &[&str]| {
        Some(SyncState::new(
            "node1",
            &standbys.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        ))
    };
    use SynchronousMode::{Off, On};
    let rows = vec![
        row(
            "I am the synchronous standby: I win even though node3 received more",
            Some(race(On, key(&["node2"]), 120)),
            pg(ours(), true, replica, None),
            vec![AcquireLease, Promote],
            "most up-to-date",
        ),
        row(
            "I am not listed: I stay out and say why, even ahead of everyone",
            Some(race(On, key(&["node3"]), 90)),
            pg(ours(), true, replica, None),
            vec![],
            "node2 is not a synchronous standby (the sync key lists only node3",
        ),
        row(
            "the key lists nobody: nobody is promoted automatically",
            Some(race(On, key(&[]), 90)),
            pg(ours(), true, replica, None),
            vec![],
            "lists no synchronous standby for primary node1",
        ),
        row(
            "mode off: the key left behind means nothing",
            Some(race(Off, key(&["node3"]), 90)),
            pg(ours(), true, replica, None),
            vec![AcquireLease, Promote],
            "most up-to-date",
        ),
        row(
            "mode on but no key written yet: the usual race",
            Some(race(On, None, 120)),
            pg(ours(), true, replica, None),
            vec![],
            "node3 is ahead of me",
        ),
    ];
    check_rows(rows);
}

/// A node removed from the Raft group (src/ha/removed.rs): never takes the lease nor promotes,
/// demotes a server that may accept writes and gives up a lease it holds; following stays.
#[test]
fn removed_node_table() {
    use Action::*;
    let primary = Some(PgRole::Primary);
    let replica = Some(PgRole::Replica);
    let removed = |r: Row| Row { removed: true, ..r };
    let mut paused = cluster(Some(SYSID), Some("node2"), three(PgRunState::Running));
    paused.config.pause = true;
    let rows = vec![
        removed(row(
            "removed replica, no leader, most up-to-date: does not race",
            Some(cluster(
                Some(SYSID),
                None,
                vec![
                    member("node1", PgRunState::Stopped, 1, 100),
                    member("node2", PgRunState::Streaming, 1, 120),
                    member("node3", PgRunState::Streaming, 1, 90),
                ],
            )),
            pg(ours(), true, replica, Some("node1")),
            vec![],
            "REMOVED: this node was removed from the Raft group: it takes no lease and never promotes",
        )),
        removed(row(
            "removed replica holding the lease: release it, no promotion",
            Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Running))),
            pg(ours(), true, replica, None),
            vec![ReleaseLease],
            "releasing the leader lease it holds",
        )),
        removed(row(
            "removed primary holding the lease (members remove --force): demote and release",
            Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Running))),
            pg(ours(), true, primary, None),
            vec![Demote, ReleaseLease],
            "demoting and releasing the leader lease",
        )),
        removed(row(
            "removed, running but role unknown while holding the lease: when in doubt, demote",
            Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Running))),
            pg(ours(), true, None, None),
            vec![Demote, ReleaseLease],
            "REMOVED",
        )),
        removed(row(
            "removed primary, another member holds the lease: demote",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Running))),
            pg(ours(), true, primary, None),
            vec![Demote],
            "REMOVED",
        )),
        removed(row(
            "removed primary, keyspace unreachable: demote",
            None,
            pg(ours(), true, primary, None),
            vec![Demote],
            "REMOVED",
        )),
        removed(row(
            "removed, stopped former primary holding the lease: no crash-recovery start as primary",
            Some(cluster(Some(SYSID), Some("node2"), three(PgRunState::Crashed))),
            pg(ours(), false, None, None),
            vec![ReleaseLease],
            "never promotes",
        )),
        removed(row(
            "removed, empty keyspace: never claims the bootstrap",
            Some(cluster(None, None, vec![])),
            pg(DataDir::Empty, false, None, None),
            vec![],
            "takes no lease",
        )),
        removed(row(
            "removed primary in maintenance mode: removal wins over the pause",
            Some(paused),
            pg(ours(), true, primary, None),
            vec![Demote, ReleaseLease],
            "REMOVED",
        )),
        removed(row(
            "removed replica whose postmaster died: restarts following the primary",
            Some(cluster(Some(SYSID), Some("node1"), three(PgRunState::Crashed))),
            pg(ours(), false, None, Some("node1")),
            vec![StartReplica {
                leader: Some("node1".into()),
            }],
            "REMOVED from the Raft group (no lease, no promotion): PostgreSQL is not running: starting it as a replica of node1",
        )),
    ];
    check_rows(rows);
}
