//! Table-driven tests of `decide`: one row per situation the loop can meet.

use super::decide::*;
use crate::cluster::{ClusterView, LeaderLease, MemberStatus, PgRole, PgRunState};
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

fn pg(data: DataDir, running: bool, role: Option<PgRole>, following: Option<&str>) -> LocalPg {
    LocalPg {
        data,
        running,
        role,
        following: following.map(str::to_string),
        job: None,
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
        want,
        reason_has,
    }
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
            "bootstrap claimed by another: wait",
            Some(cluster(Some(""), None, vec![])),
            pg(DataDir::Empty, false, None, None),
            vec![],
            "claimed the bootstrap",
        ),
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
            vec![Demote {
                leader: Some("node1".into()),
            }],
            "demoting",
        ),
        row(
            "keyspace unreachable as primary: demote",
            None,
            pg(ours(), true, primary, None),
            vec![Demote { leader: None }],
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
                vec![Demote { leader: None }, ReleaseLease],
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
            "no leader, all stopped after a full restart, I am ahead: start as primary",
            Some(cluster(
                Some(SYSID),
                None,
                vec![
                    member("node2", PgRunState::Stopped, 1, 200),
                    member("node3", PgRunState::Stopped, 1, 100),
                ],
            )),
            pg(ours(), false, None, None),
            vec![AcquireLease, StartPrimary],
            "taking the lease",
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
                vec![Demote { leader: None }],
                "nofailover",
            )
        },
    ];

    for r in rows {
        let input = Inputs {
            me: "node2",
            tags: &r.tags,
            cluster: r.cluster.as_ref(),
            pg: &r.pg,
            lease: r.lease,
            now_ms: 10_000,
            demote_margin_ms: 1_000,
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
        tags: &tags,
        cluster: Some(&c),
        pg: &replica,
        lease: LeaseClock::default(),
        now_ms: 0,
        demote_margin_ms: 0,
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
        tags: &tags,
        cluster: Some(&c),
        pg: &primary,
        lease: LeaseClock::default(),
        now_ms: 0,
        demote_margin_ms: 0,
    };
    assert_eq!(
        decide(&input).actions,
        vec![Action::AcquireLease, Action::PublishStatus, Action::SyncSlots]
    );
}
