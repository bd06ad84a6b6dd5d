use proptest::prelude::*;
use serde_json::json;

use super::*;

fn at(now_ms: u64, command: Command) -> Stamped {
    Stamped { now_ms, command }
}

fn put(key: Key, value: Value, ttl_ms: Option<u64>, precondition: Precondition) -> Command {
    Command::Put {
        key,
        value,
        ttl_ms,
        precondition,
    }
}

fn lease(holder: &str, ttl_ms: u64) -> Command {
    Command::AcquireLease {
        key: Key::Leader,
        holder: holder.into(),
        holder_addr: None,
        value: json!({"holder": holder}),
        ttl_ms,
    }
}

#[test]
fn compare_and_set_table() {
    struct Case {
        name: &'static str,
        before: Vec<Command>,
        command: Command,
        applied: bool,
    }
    let cfg = |v: i64| put(Key::Config, json!({"v": v}), None, Precondition::Any);
    let cases = vec![
        Case {
            name: "absent on a missing key",
            before: vec![],
            command: put(Key::Config, json!(1), None, Precondition::Absent),
            applied: true,
        },
        Case {
            name: "absent on an existing key",
            before: vec![cfg(1)],
            command: put(Key::Config, json!(2), None, Precondition::Absent),
            applied: false,
        },
        Case {
            // `before` is applied at indexes 1.., so the config written first has revision 1.
            name: "matching revision",
            before: vec![cfg(1)],
            command: put(Key::Config, json!(2), None, Precondition::Revision(1)),
            applied: true,
        },
        Case {
            name: "stale revision",
            before: vec![cfg(1), cfg(2)],
            command: put(Key::Config, json!(3), None, Precondition::Revision(1)),
            applied: false,
        },
        Case {
            name: "revision on a missing key",
            before: vec![],
            command: put(Key::Config, json!(3), None, Precondition::Revision(1)),
            applied: false,
        },
        Case {
            name: "initialize is set once even with Any",
            before: vec![put(
                Key::Initialize,
                json!("7300000000000000001"),
                None,
                Precondition::Absent,
            )],
            command: put(
                Key::Initialize,
                json!("7300000000000000002"),
                None,
                Precondition::Any,
            ),
            applied: false,
        },
        Case {
            name: "a pending bootstrap claim is completed with the system identifier",
            before: vec![put(Key::Initialize, json!(""), None, Precondition::Absent)],
            command: put(
                Key::Initialize,
                json!("7300000000000000002"),
                None,
                Precondition::Revision(1),
            ),
            applied: true,
        },
        Case {
            name: "delete with a stale revision",
            before: vec![cfg(1), cfg(2)],
            command: Command::Delete {
                key: Key::Config,
                precondition: Precondition::Revision(1),
            },
            applied: false,
        },
        Case {
            name: "lease free",
            before: vec![],
            command: lease("node1", 1000),
            applied: true,
        },
        Case {
            name: "lease renewed by its holder",
            before: vec![lease("node1", 1000)],
            command: lease("node1", 1000),
            applied: true,
        },
        Case {
            name: "lease held by another",
            before: vec![lease("node1", 1000)],
            command: lease("node2", 1000),
            applied: false,
        },
        Case {
            name: "release by a non-holder",
            before: vec![lease("node1", 1000)],
            command: Command::ReleaseLease {
                key: Key::Leader,
                holder: "node2".into(),
                holder_addr: None,
            },
            applied: false,
        },
        Case {
            name: "release by the holder",
            before: vec![lease("node1", 1000)],
            command: Command::ReleaseLease {
                key: Key::Leader,
                holder: "node1".into(),
                holder_addr: None,
            },
            applied: true,
        },
    ];
    for case in cases {
        let mut ks = Keyspace::default();
        let mut index = 0;
        for c in case.before {
            index += 1;
            assert!(
                ks.apply(index, &at(1000, c)).is_applied(),
                "{}: setup failed",
                case.name
            );
        }
        let before: Vec<Entry> = ks.with_prefix("").cloned().collect();
        let outcome = ks.apply(index + 1, &at(1000, case.command));
        assert_eq!(outcome.is_applied(), case.applied, "{}: {outcome:?}", case.name);
        if !case.applied {
            // Only the keyspace clock may move on a rejected command.
            let after: Vec<Entry> = ks.with_prefix("").cloned().collect();
            assert_eq!(
                after, before,
                "{}: a rejected command changed the keyspace",
                case.name
            );
            let CommandOutcome::Rejected { reason, .. } = outcome else {
                unreachable!()
            };
            assert!(!reason.is_empty());
        }
    }
}

#[test]
fn ttl_keys_expire_by_the_leader_stamp_not_the_applying_clock() {
    let mut ks = Keyspace::default();
    ks.apply(1, &at(10_000, lease("node1", 3_000)));
    assert_eq!(ks.get(&Key::Leader).unwrap().expires_at_ms, Some(13_000));
    // Just before expiry (by stamp) the lease still blocks others.
    assert!(!ks.apply(2, &at(12_999, lease("node2", 3_000))).is_applied());
    assert!(ks.get(&Key::Leader).is_some());
    // The Raft leader's housekeeping at the expiry instant removes it.
    ks.apply(3, &at(13_000, Command::Expire));
    assert!(ks.get(&Key::Leader).is_none());
    assert!(ks.apply(4, &at(13_001, lease("node2", 3_000))).is_applied());
    assert_eq!(ks.get(&Key::Leader).unwrap().holder.as_deref(), Some("node2"));
}

#[test]
fn a_leader_with_a_slow_clock_cannot_revive_an_expired_key() {
    let mut ks = Keyspace::default();
    ks.apply(1, &at(10_000, lease("node1", 1_000)));
    ks.apply(2, &at(20_000, Command::Expire));
    // A new Raft leader whose clock is 15 s behind stamps an older time.
    let outcome = ks.apply(3, &at(5_000, lease("node2", 1_000)));
    assert!(outcome.is_applied());
    let e = ks.get(&Key::Leader).unwrap();
    assert_eq!(e.updated_ms, 20_000, "the keyspace clock never goes backwards");
    assert_eq!(e.expires_at_ms, Some(21_000));
}

#[test]
fn renewal_keeps_created_revision_and_moves_revision() {
    let mut ks = Keyspace::default();
    ks.apply(5, &at(1, lease("node1", 10)));
    ks.apply(9, &at(2, lease("node1", 10)));
    let e = ks.get(&Key::Leader).unwrap();
    assert_eq!((e.created_revision, e.revision), (5, 9));
}

#[test]
fn prefix_reads_return_members_in_order() {
    let mut ks = Keyspace::default();
    for (i, name) in ["node3", "node1", "node2"].iter().enumerate() {
        let key = Key::member(name).unwrap();
        ks.apply(
            i as u64 + 1,
            &at(1, put(key, json!({}), Some(1000), Precondition::Any)),
        );
    }
    ks.apply(4, &at(1, put(Key::Config, json!({}), None, Precondition::Any)));
    let names: Vec<String> = ks
        .with_prefix(MEMBERS_PREFIX)
        .map(|e| e.key.to_string())
        .collect();
    assert_eq!(names, ["members/node1", "members/node2", "members/node3"]);
    assert_eq!(ks.with_prefix("").count(), 4);
}

// ----- property tests -----

fn arb_key() -> impl Strategy<Value = Key> {
    prop_oneof![
        Just(Key::Leader),
        Just(Key::Config),
        Just(Key::Initialize),
        Just(Key::Sync),
        Just(Key::Failover),
        (0..3u8).prop_map(|i| Key::Member(format!("node{i}"))),
    ]
}

fn arb_precondition() -> impl Strategy<Value = Precondition> {
    prop_oneof![
        Just(Precondition::Any),
        Just(Precondition::Absent),
        (0..40u64).prop_map(Precondition::Revision)
    ]
}

fn arb_command() -> impl Strategy<Value = Command> {
    let holder = (0..3u8).prop_map(|i| format!("node{i}"));
    prop_oneof![
        (
            arb_key(),
            any::<i32>(),
            proptest::option::of(1..5_000u64),
            arb_precondition()
        )
            .prop_map(|(key, v, ttl_ms, precondition)| Command::Put {
                key,
                value: json!(v),
                ttl_ms,
                precondition
            }),
        (arb_key(), arb_precondition()).prop_map(|(key, precondition)| Command::Delete { key, precondition }),
        (holder.clone(), 1..5_000u64).prop_map(|(h, ttl)| lease(&h, ttl)),
        holder.prop_map(|h| Command::ReleaseLease {
            key: Key::Leader,
            holder: h,
            holder_addr: None,
        }),
        Just(Command::Expire),
    ]
}

/// A log: commands with stamps that mostly advance but sometimes step back (a new Raft
/// leader with a slower clock).
fn arb_log() -> impl Strategy<Value = Vec<Stamped>> {
    proptest::collection::vec((arb_command(), -500i64..2_000), 1..80).prop_map(|steps| {
        let mut now: i64 = 1_000_000;
        steps
            .into_iter()
            .map(|(command, delta)| {
                now += delta;
                Stamped {
                    now_ms: now as u64,
                    command,
                }
            })
            .collect()
    })
}

fn apply_all(ks: &mut Keyspace, log: &[Stamped], first_index: u64) -> Vec<CommandOutcome> {
    log.iter()
        .enumerate()
        .map(|(i, s)| ks.apply(first_index + i as u64, s))
        .collect()
}

proptest! {
    /// Same log => same state and same outcomes, on any number of nodes.
    #[test]
    fn apply_is_deterministic(log in arb_log()) {
        let (mut a, mut b) = (Keyspace::default(), Keyspace::default());
        let out_a = apply_all(&mut a, &log, 1);
        let out_b = apply_all(&mut b, &log, 1);
        prop_assert_eq!(out_a, out_b);
        prop_assert_eq!(&a, &b);
        // The serialised form is byte-identical too (snapshots compare equal across nodes).
        prop_assert_eq!(serde_json::to_vec(&a).unwrap(), serde_json::to_vec(&b).unwrap());
    }

    /// A node that installs a snapshot taken at any point and applies the rest of the log
    /// ends exactly where a node that applied everything ends.
    #[test]
    fn snapshot_round_trip_then_replay_matches(log in arb_log(), cut in 0usize..80) {
        let cut = cut.min(log.len());
        let mut full = Keyspace::default();
        apply_all(&mut full, &log, 1);

        let mut before = Keyspace::default();
        apply_all(&mut before, &log[..cut], 1);
        let snapshot = serde_json::to_vec(&before).unwrap();
        let mut restored: Keyspace = serde_json::from_slice(&snapshot).unwrap();
        prop_assert_eq!(&restored, &before);
        apply_all(&mut restored, &log[cut..], 1 + cut as u64);
        prop_assert_eq!(restored, full);
    }

    /// After any command, no entry is visible past its expiry, the clock never goes back,
    /// and a live lease has exactly one holder.
    #[test]
    fn ttl_and_clock_invariants(log in arb_log()) {
        let mut ks = Keyspace::default();
        let mut last_clock = 0;
        for (i, s) in log.iter().enumerate() {
            ks.apply(i as u64 + 1, s);
            prop_assert!(ks.as_of_ms() >= last_clock);
            last_clock = ks.as_of_ms();
            for e in ks.with_prefix("") {
                if let Some(t) = e.expires_at_ms {
                    prop_assert!(t > ks.as_of_ms(), "{} visible after expiry", e.key);
                }
            }
        }
    }

    /// A lease taken by one holder is never taken by another until the keyspace clock has
    /// passed its expiry.
    #[test]
    fn leases_do_not_overlap(log in arb_log()) {
        let mut ks = Keyspace::default();
        for (i, s) in log.iter().enumerate() {
            let before = ks.get(&Key::Leader).cloned();
            let outcome = ks.apply(i as u64 + 1, s);
            if let (Some(prev), Command::AcquireLease { holder, .. }, true) =
                (&before, &s.command, outcome.is_applied())
            {
                if prev.holder.as_deref() != Some(holder.as_str()) {
                    prop_assert!(prev.expires_at_ms.is_some_and(|t| t <= ks.as_of_ms())
                        || prev.holder.is_none(),
                        "{holder} took a lease still held by {:?}", prev.holder);
                }
            }
        }
    }
}

fn lease_at(holder: &str, addr: Option<&str>, ttl_ms: u64) -> Command {
    Command::AcquireLease {
        key: Key::Leader,
        holder: holder.into(),
        holder_addr: addr.map(str::to_string),
        value: json!({"holder": holder}),
        ttl_ms,
    }
}

#[test]
fn two_agents_with_the_same_name_cannot_both_hold_the_lease() {
    let a = Some("10.0.0.1:7000");
    let b = Some("10.0.0.2:7000");
    let release = |addr: Option<&str>| Command::ReleaseLease {
        key: Key::Leader,
        holder: "node1".into(),
        holder_addr: addr.map(str::to_string),
    };
    // (before, command, applied)
    let table = [
        (
            "the same agent renews",
            vec![lease_at("node1", a, 1000)],
            lease_at("node1", a, 1000),
            true,
        ),
        (
            "its namesake cannot renew",
            vec![lease_at("node1", a, 1000)],
            lease_at("node1", b, 1000),
            false,
        ),
        (
            "its namesake cannot release",
            vec![lease_at("node1", a, 1000)],
            release(b),
            false,
        ),
        (
            "the holder releases",
            vec![lease_at("node1", a, 1000)],
            release(a),
            true,
        ),
        // Rolling upgrade: an older agent gives no address; renewals without one still apply.
        (
            "an older agent renews its own lease",
            vec![lease_at("node1", None, 1000)],
            lease_at("node1", None, 1000),
            true,
        ),
        (
            "an upgraded agent renews the older lease",
            vec![lease_at("node1", None, 1000)],
            lease_at("node1", a, 1000),
            true,
        ),
        (
            "an older renewal keeps the address",
            vec![lease_at("node1", a, 1000), lease_at("node1", None, 1000)],
            lease_at("node1", b, 1000),
            false,
        ),
        (
            "a free lease is taken by anyone",
            vec![],
            lease_at("node1", b, 1000),
            true,
        ),
    ];
    for (name, before, command, applied) in table {
        let mut ks = Keyspace::default();
        for (i, c) in before.iter().enumerate() {
            assert!(
                ks.apply(i as u64 + 1, &at(1, c.clone())).is_applied(),
                "{name}: setup"
            );
        }
        let outcome = ks.apply(100, &at(2, command));
        assert_eq!(outcome.is_applied(), applied, "{name}: {outcome:?}");
        if let CommandOutcome::Rejected { reason, .. } = &outcome {
            assert!(
                reason.contains("two agents share the name node1"),
                "{name}: {reason}"
            );
        }
    }
    let mut ks = Keyspace::default();
    ks.apply(1, &at(1, lease_at("node1", a, 1000)));
    assert_eq!(ks.get(&Key::Leader).unwrap().holder_addr.as_deref(), a);
}

#[test]
fn member_keys_are_capped_but_existing_ones_stay_writable() {
    let mut ks = Keyspace::default();
    let member = |i: usize| Key::member(&format!("m{i}")).unwrap();
    for i in 0..MAX_MEMBER_KEYS {
        let cmd = put(member(i), json!({}), Some(10_000), Precondition::Any);
        assert!(ks.apply(i as u64 + 1, &at(1, cmd)).is_applied());
    }
    let index = MAX_MEMBER_KEYS as u64 + 1;
    let extra = put(member(MAX_MEMBER_KEYS), json!({}), None, Precondition::Any);
    assert!(!ks.apply(index, &at(1, extra)).is_applied());
    let extra_lease = Command::AcquireLease {
        key: member(MAX_MEMBER_KEYS + 1),
        holder: "x".into(),
        holder_addr: None,
        value: json!({}),
        ttl_ms: 1000,
    };
    assert!(!ks.apply(index + 1, &at(1, extra_lease)).is_applied());
    let rewrite = put(
        member(0),
        json!({"role": "replica"}),
        Some(10_000),
        Precondition::Any,
    );
    assert!(ks.apply(index + 2, &at(1, rewrite)).is_applied());
    // Other keys are not members: unaffected.
    assert!(ks
        .apply(
            index + 3,
            &at(1, put(Key::Config, json!({}), None, Precondition::Any))
        )
        .is_applied());
    // Once member keys expire there is room again.
    let later = put(member(MAX_MEMBER_KEYS), json!({}), None, Precondition::Any);
    assert!(ks.apply(index + 4, &at(20_000, later)).is_applied());
}
