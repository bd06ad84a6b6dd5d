//! Table tests of the synchronous-replication steps: one row per situation the primary can
//! meet, with the ordered steps it must take.

use super::*;
use crate::config::{SynchronousMode, Tags};

fn member(name: &str, tags: Tags) -> MemberStatus {
    MemberStatus {
        name: name.into(),
        tags,
        ..Default::default()
    }
}

fn row(name: &str, sync_state: &str, flush: u64) -> ReplicationRow {
    ReplicationRow {
        application_name: name.into(),
        state: "streaming".into(),
        sync_state: sync_state.into(),
        flush_lsn: Some(flush),
        ..Default::default()
    }
}

fn members() -> Vec<MemberStatus> {
    let nosync = Tags {
        nosync: true,
        ..Default::default()
    };
    vec![
        member("node1", Tags::default()),
        member("node2", Tags::default()),
        member("node3", Tags::default()),
        member("node4", nosync),
    ]
}

fn names(value: &str) -> SyncNames {
    SyncNames {
        value: value.into(),
        managed: true,
    }
}

fn key(standbys: &[&str]) -> Option<SyncState> {
    Some(SyncState::new(
        "node1",
        &standbys.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    ))
}

fn list(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

struct Row {
    what: &'static str,
    mode: SynchronousMode,
    strict: bool,
    count: u32,
    sync: Option<SyncState>,
    replication: Vec<ReplicationRow>,
    names: SyncNames,
    steps: Vec<SyncStep>,
    blocked: bool,
}

fn on(
    what: &'static str,
    sync: Option<SyncState>,
    replication: Vec<ReplicationRow>,
    names: SyncNames,
) -> Row {
    Row {
        what,
        mode: SynchronousMode::On,
        strict: false,
        count: 1,
        sync,
        replication,
        names,
        steps: vec![],
        blocked: false,
    }
}

fn steps(mut r: Row, steps: Vec<SyncStep>) -> Row {
    r.steps = steps;
    r
}

fn q(name: &str) -> String {
    render(&[name.to_string()], false)
}

#[test]
fn the_order_of_the_steps() {
    use SyncStep::*;
    let rows = vec![
        steps(
            on(
                "mode just switched on: the key names me first, then PostgreSQL",
                None,
                vec![row("node2", "async", 10)],
                names(""),
            ),
            vec![WriteKey(vec![]), SetNames(q("node2"))],
        ),
        Row {
            blocked: true,
            ..steps(
                on(
                    "PostgreSQL has the name but the standby is not sync yet: the key waits",
                    key(&[]),
                    vec![row("node2", "async", 10)],
                    names(&q("node2")),
                ),
                vec![],
            )
        },
        steps(
            on(
                "PostgreSQL reports it sync: now the key",
                key(&[]),
                vec![row("node2", "sync", 10)],
                names(&q("node2")),
            ),
            vec![WriteKey(list(&["node2"]))],
        ),
        on(
            "steady: nothing to do",
            key(&["node2"]),
            vec![row("node2", "sync", 10), row("node3", "async", 10)],
            names(&q("node2")),
        ),
        Row {
            blocked: true,
            ..steps(
                on(
                    "the standby left: the key first, then PostgreSQL",
                    key(&["node2"]),
                    vec![row("node3", "async", 10)],
                    names(&q("node2")),
                ),
                vec![WriteKey(vec![]), SetNames(q("node3"))],
            )
        },
        Row {
            blocked: true,
            ..steps(
                on(
                    "no standby left (not strict): key emptied, then async",
                    key(&["node2"]),
                    vec![],
                    names(&q("node2")),
                ),
                vec![WriteKey(vec![]), SetNames(String::new())],
            )
        },
        steps(
            on(
                "another primary's key: mine replaces it before anything else",
                Some(SyncState::new("node9", &list(&["node2"]))),
                vec![row("node2", "sync", 10)],
                names(&q("node2")),
            ),
            vec![WriteKey(list(&["node2"]))],
        ),
        steps(
            on(
                "a set value not from the agent is not trusted",
                key(&[]),
                vec![row("node2", "sync", 10)],
                SyncNames {
                    value: q("node2"),
                    managed: false,
                },
            ),
            vec![SetNames(q("node2"))],
        ),
        steps(
            on(
                "pg_receivewal is never a candidate nor counted",
                key(&[]),
                vec![row("pg_receivewal", "sync", 90), row("node2", "async", 10)],
                names("*"),
            ),
            vec![SetNames(q("node2"))],
        ),
        steps(
            on(
                "nosync member never chosen",
                key(&[]),
                vec![row("node4", "async", 90)],
                names(""),
            ),
            vec![],
        ),
        steps(
            on(
                "a sync standby is kept over one further ahead",
                key(&["node2"]),
                vec![row("node2", "sync", 10), row("node3", "async", 90)],
                names(&q("node2")),
            ),
            vec![],
        ),
        Row {
            strict: true,
            blocked: true,
            ..steps(
                on(
                    "strict, nobody left: key emptied, then '*' and writes block",
                    key(&["node2"]),
                    vec![],
                    names(&q("node2")),
                ),
                vec![WriteKey(vec![]), SetNames("*".into())],
            )
        },
        Row {
            strict: true,
            blocked: true,
            ..on(
                "strict, steady with nobody: blocked, nothing to do",
                key(&[]),
                vec![],
                names("*"),
            )
        },
        Row {
            strict: true,
            ..steps(
                on(
                    "strict, a standby returns: PostgreSQL first",
                    key(&[]),
                    vec![row("node2", "sync", 10)],
                    names("*"),
                ),
                vec![SetNames(q("node2"))],
            )
        },
        Row {
            count: 2,
            ..steps(
                on(
                    "two wanted, one sync already: grows after PostgreSQL",
                    key(&["node2"]),
                    vec![row("node2", "sync", 10), row("node3", "async", 10)],
                    names(&q("node2")),
                ),
                vec![SetNames(render(&list(&["node2", "node3"]), false))],
            )
        },
        Row {
            mode: SynchronousMode::Off,
            ..steps(
                on(
                    "switched off: the key first, then PostgreSQL",
                    key(&["node2"]),
                    vec![row("node2", "sync", 10)],
                    names(&q("node2")),
                ),
                vec![DeleteKey, ResetNames],
            )
        },
        Row {
            mode: SynchronousMode::Off,
            ..on(
                "off and nothing of ours left: nothing",
                None,
                vec![],
                SyncNames::default(),
            )
        },
    ];
    let members = members();
    for r in rows {
        let config = DynamicConfig {
            synchronous_mode: r.mode,
            synchronous_mode_strict: r.strict,
            synchronous_node_count: r.count,
            ..Default::default()
        };
        let p = plan(&SyncInputs {
            me: "node1",
            config: &config,
            members: &members,
            sync: r.sync.as_ref(),
            replication: &r.replication,
            names: &r.names,
            primary_lsn: Some(100),
        });
        assert_eq!(p.steps, r.steps, "{}", r.what);
        assert_eq!(
            p.writes_blocked.is_some(),
            r.blocked,
            "{}: {:?}",
            r.what,
            p.writes_blocked
        );
    }
}

/// A removal never shrinks PostgreSQL's list before the key: whatever the situation, a
/// `SetNames` that drops a listed standby comes after the `WriteKey` that dropped it.
#[test]
fn a_standby_leaves_the_key_before_postgresql_stops_waiting_for_it() {
    let members = members();
    let config = DynamicConfig {
        synchronous_mode: SynchronousMode::On,
        ..Default::default()
    };
    let sync = key(&["node2"]);
    let p = plan(&SyncInputs {
        me: "node1",
        config: &config,
        members: &members,
        sync: sync.as_ref(),
        replication: &[row("node3", "async", 10)],
        names: &names(&q("node2")),
        primary_lsn: Some(100),
    });
    let key_at = p
        .steps
        .iter()
        .position(|s| matches!(s, SyncStep::WriteKey(l) if l.is_empty()));
    let names_at = p.steps.iter().position(|s| matches!(s, SyncStep::SetNames(_)));
    assert!(key_at.is_some() && key_at < names_at, "{:?}", p.steps);
}

#[test]
fn maximum_lag_on_syncnode_leaves_a_lagging_standby_out() {
    let members = members();
    let config = DynamicConfig {
        synchronous_mode: SynchronousMode::On,
        maximum_lag_on_syncnode: 50,
        ..Default::default()
    };
    let replication = [row("node2", "async", 10), row("node3", "async", 60)];
    let input = SyncInputs {
        me: "node1",
        config: &config,
        members: &members,
        sync: None,
        replication: &replication,
        names: &SyncNames::default(),
        primary_lsn: Some(100),
    };
    assert_eq!(candidates(&input), ["node3"]);
}

#[test]
fn names_are_quoted() {
    assert_eq!(
        render(&list(&["node-2", "a\"b"]), false),
        "FIRST 2 (\"node-2\",\"a\"\"b\")"
    );
    assert_eq!(render(&[], true), "*");
    assert_eq!(render(&[], false), "");
}

/// Two standbys that overtake each other in flushed WAL change nothing once both are
/// synchronous: the setting and the key list them by name.
#[test]
fn positions_overtaking_each_other_change_nothing() {
    let members = members();
    let config = DynamicConfig {
        synchronous_mode: SynchronousMode::On,
        synchronous_node_count: 2,
        ..Default::default()
    };
    let both = render(&list(&["node2", "node3"]), false);
    for (flush2, flush3) in [(10, 20), (20, 10)] {
        let replication = [row("node2", "sync", flush2), row("node3", "sync", flush3)];
        let p = plan(&SyncInputs {
            me: "node1",
            config: &config,
            members: &members,
            sync: key(&["node2", "node3"]).as_ref(),
            replication: &replication,
            names: &names(&both),
            primary_lsn: Some(100),
        });
        assert_eq!(p.steps, vec![], "flushed {flush2} / {flush3}");
    }
}
