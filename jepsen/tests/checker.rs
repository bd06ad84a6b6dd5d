//! The checker and the report against hand-made histories: it must flag exactly the bad ones.

use pgquorum_jepsen::checker::{check, CheckResult, SplitBrainKind};
use pgquorum_jepsen::history::{
    parse_timeline_history, FaultInterval, FinalState, History, NodeRole, Op, Outcome, RoleSample, RunInfo,
    TimelineSwitch,
};
use pgquorum_jepsen::report::{result_json, summary_text, timeline_svg, write_all};

fn ok(id: i64, start_ms: u64, end_ms: u64, node: &str, timeline: u64) -> Op {
    Op {
        id,
        client: (id % 3) as u32,
        start_ms,
        end_ms,
        outcome: Outcome::Ok,
        node: Some(node.to_string()),
        timeline: Some(timeline),
        lsn: Some(0x0300_0000 + id as u64 * 0x100),
        error: None,
    }
}

fn not_ok(id: i64, start_ms: u64, end_ms: u64, outcome: Outcome, error: &str) -> Op {
    Op {
        id,
        client: (id % 3) as u32,
        start_ms,
        end_ms,
        outcome,
        node: None,
        timeline: None,
        lsn: None,
        error: Some(error.to_string()),
    }
}

fn sample(node: &str, at_ms: u64, role: NodeRole, timeline: Option<u64>) -> RoleSample {
    RoleSample {
        node: node.to_string(),
        at_ms,
        role,
        timeline,
    }
}

/// A clean failover: node1 (timeline 1) is killed at 10 s, node2 is promoted to timeline 2 at
/// 15 s, node1 comes back at 18 s and follows. Acknowledged ids: 1..=20 on node1, 27..=46 on
/// node2; 21..=25 failed, 26 unknown (and committed).
fn clean() -> History {
    let mut ops = Vec::new();
    for i in 0..20 {
        let start = 500 * i as u64;
        ops.push(ok(i + 1, start, start + 20, "node1", 1));
    }
    for k in 0..5 {
        let start = 10_000 + 1_000 * k as u64;
        ops.push(not_ok(
            21 + k,
            start,
            start + 900,
            Outcome::Failed,
            "connection refused",
        ));
    }
    ops.push(not_ok(26, 10_050, 15_050, Outcome::Unknown, "timeout"));
    for i in 0..20 {
        let start = 15_500 + 500 * i as u64;
        ops.push(ok(27 + i, start, start + 20, "node2", 2));
    }

    let mut roles = Vec::new();
    for t in (0..=26_000).step_by(1_000) {
        roles.push(match t {
            t if t < 10_000 => sample("node1", t, NodeRole::Primary, Some(1)),
            t if t < 18_000 => sample("node1", t, NodeRole::Down, None),
            t => sample("node1", t, NodeRole::Replica, Some(2)),
        });
        roles.push(if t < 15_000 {
            sample("node2", t, NodeRole::Replica, Some(1))
        } else {
            sample("node2", t, NodeRole::Primary, Some(2))
        });
        roles.push(sample(
            "node3",
            t,
            NodeRole::Replica,
            Some(if t < 16_000 { 1 } else { 2 }),
        ));
    }

    let mut ids: Vec<i64> = ops
        .iter()
        .filter(|op| op.outcome == Outcome::Ok)
        .map(|op| op.id)
        .collect();
    ids.push(26);
    ids.sort_unstable();

    History {
        info: RunInfo {
            scenario: "kill-primary".to_string(),
            seed: 7,
            duration_ms: 26_000,
            nodes: vec!["node1".into(), "node2".into(), "node3".into()],
            synchronous_mode: true,
            synchronous_mode_strict: false,
            maximum_lag_on_failover: 1_048_576,
            ttl_ms: 5_000,
            zero_loss: false,
            no_failover: false,
            tls: false,
        },
        ops,
        faults: vec![FaultInterval {
            kind: "kill-node".to_string(),
            description: "kill node1 (primary)".to_string(),
            nodes: vec!["node1".into()],
            start_ms: 10_000,
            end_ms: Some(18_000),
        }],
        roles,
        final_state: FinalState {
            healed_at_ms: 18_000,
            recovered_at_ms: Some(20_000),
            recovery_bound_ms: 30_000,
            primary: Some("node2".to_string()),
            ids_on_primary: ids.clone(),
            ids_per_node: vec![
                ("node1".into(), ids.clone()),
                ("node2".into(), ids.clone()),
                ("node3".into(), ids),
            ],
            notes: Vec::new(),
            // Timeline 1 ended right after id 20's commit (acknowledged at 0/3001400).
            timeline_switches: vec![TimelineSwitch {
                timeline: 1,
                switch_lsn: 0x0300_1428,
            }],
            final_timeline: Some(2),
        },
    }
}

fn assert_passes(r: &CheckResult) {
    assert!(r.passed(), "unexpected violations: {:#?}", r.violations);
}

fn assert_fails_with(r: &CheckResult, needle: &str) {
    assert!(!r.passed(), "expected a violation about {needle:?}");
    assert!(
        r.violations.iter().any(|v| v.contains(needle)),
        "no violation mentions {needle:?}: {:#?}",
        r.violations
    );
}

fn drop_id(h: &mut History, id: i64) {
    h.final_state.ids_on_primary.retain(|&x| x != id);
    for (_, ids) in &mut h.final_state.ids_per_node {
        ids.retain(|&x| x != id);
    }
}

#[test]
fn clean_failover_passes() {
    let h = clean();
    let r = check(&h);
    assert_passes(&r);
    assert_eq!(r.counts.ok, 40);
    assert_eq!(r.counts.failed, 5);
    assert_eq!(r.counts.unknown, 1);
    assert_eq!(r.counts.unknown_committed, 1);
    assert_eq!(r.acked, 40);
    assert!(r.lost.is_empty() && r.phantom.is_empty() && r.split_brain.is_empty());
    assert!(r.monitor_split_brain.is_empty());
    assert!(r.recovery.within_bound);
    assert_eq!(r.recovery.took_ms, Some(2_000));
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert!(r.marks.is_empty());

    // One outage: from the last ack on node1 to the first on node2, caused by the kill.
    assert_eq!(r.unavailability.len(), 1, "{:#?}", r.unavailability);
    let w = &r.unavailability[0];
    assert_eq!((w.start_ms, w.end_ms), (9_520, 15_520));
    assert_eq!(w.faults, vec![0]);
    assert_eq!(w.causes, vec!["kill node1 (primary)".to_string()]);
    assert_eq!((w.failed, w.unknown), (5, 1));
}

#[test]
fn unknown_ops_may_be_absent() {
    let mut h = clean();
    drop_id(&mut h, 26);
    let r = check(&h);
    assert_passes(&r);
    assert_eq!(r.counts.unknown_committed, 0);
}

#[test]
fn lost_write_fails_with_synchronous_mode() {
    let mut h = clean();
    drop_id(&mut h, 5);
    let r = check(&h);
    assert_eq!(r.lost, vec![5]);
    assert!(r.lost_is_violation);
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    assert_fails_with(&r, "lost writes");
    assert_fails_with(&r, "id 5 ");
    assert!(summary_text(&h, &r).contains("RESULT: FAIL"));
}

/// Asynchronous replication: timeline 1 ended at `switch_lsn`; ids 19 and 20 (acknowledged at
/// 0/3001300 and 0/3001400) never reached the new primary.
fn async_loss(switch_lsn: u64) -> History {
    let mut h = clean();
    h.info.synchronous_mode = false;
    h.final_state.timeline_switches = vec![TimelineSwitch {
        timeline: 1,
        switch_lsn,
    }];
    drop_id(&mut h, 19);
    drop_id(&mut h, 20);
    h
}

#[test]
fn lost_write_is_a_finding_without_synchronous_mode() {
    // Timeline 1 ended at id 18's position: 0x200 bytes lost, well within 1 MB.
    let h = async_loss(0x0300_1200);
    let r = check(&h);
    assert_passes(&r);
    assert_eq!(r.lost, vec![19, 20]);
    assert!(!r.lost_is_violation);
    assert_eq!(r.lost_bytes.len(), 1, "{:#?}", r.lost_bytes);
    let l = &r.lost_bytes[0];
    assert_eq!(
        (l.timeline, l.switch_lsn, l.bytes),
        (Some(1), Some(0x0300_1200), Some(0x200))
    );
    assert_eq!(l.ids, vec![19, 20]);
    assert!(
        r.findings
            .iter()
            .any(|f| f.contains("id 20 ") && f.contains("maximum_lag_on_failover 1048576")),
        "{:#?}",
        r.findings
    );
    let text = summary_text(&h, &r);
    assert!(text.contains("RESULT: PASS"), "{text}");
    assert!(text.contains("synchronous_mode off"), "{text}");
}

/// One lost acknowledged write (id 20, 0x100 bytes past timeline 1's switch point, far within
/// `maximum_lag_on_failover`), judged under each `--synchronous-mode`: the same history passes
/// with asynchronous replication and fails with `on` and with `strict`.
#[test]
fn one_lost_write_fails_in_synchronous_and_strict_mode_only() {
    let mut async_run = clean();
    async_run.info.synchronous_mode = false;
    async_run.final_state.timeline_switches = vec![TimelineSwitch {
        timeline: 1,
        switch_lsn: 0x0300_1300,
    }];
    drop_id(&mut async_run, 20);
    let r = check(&async_run);
    assert_passes(&r);
    assert_eq!(r.lost, vec![20]);
    assert!(!r.lost_is_violation);
    assert!(summary_text(&async_run, &r).contains("synchronous_mode off"));

    for strict in [false, true] {
        let mut h = async_run.clone();
        h.info.synchronous_mode = true;
        h.info.synchronous_mode_strict = strict;
        let r = check(&h);
        assert_eq!(r.lost, vec![20], "strict {strict}");
        assert!(r.lost_is_violation, "strict {strict}");
        assert_eq!(r.violations.len(), 1, "strict {strict}: {:#?}", r.violations);
        assert_fails_with(&r, "synchronous_mode was on");
        assert_fails_with(&r, "id 20 ");
        let text = summary_text(&h, &r);
        assert!(text.contains("RESULT: FAIL"), "{text}");
        let mode = if strict {
            "synchronous_mode on (strict)"
        } else {
            "synchronous_mode on "
        };
        assert!(text.contains(mode), "{text}");
    }
}

#[test]
fn async_loss_over_maximum_lag_on_failover_fails() {
    let mut h = async_loss(0x0300_1200);
    h.info.maximum_lag_on_failover = 0x1FF;
    let r = check(&h);
    assert_fails_with(&r, "lost writes over maximum_lag_on_failover");
    assert_fails_with(&r, "512 bytes past its switch point 0/3001200");
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    // Exactly at the limit is allowed.
    h.info.maximum_lag_on_failover = 0x200;
    assert_passes(&check(&h));
}

/// The recorded LSN is read by the insert's RETURNING, before the commit record: a lost write
/// recorded at (or just before) the switch point may have committed past it (seen in
/// restart-pg-partitioned, seed 1: recorded at exactly the switch point, lost).
#[test]
fn async_loss_recorded_at_the_switch_point_is_allowed() {
    let r = check(&async_loss(0x0300_1400));
    assert_passes(&r);
    assert_eq!(r.lost_bytes[0].bytes, Some(0));
}

#[test]
fn async_loss_on_a_timeline_without_switch_point_fails() {
    let mut h = clean();
    h.info.synchronous_mode = false;
    // id 30 was acknowledged on timeline 2, the final primary's own timeline.
    drop_id(&mut h, 30);
    let r = check(&h);
    assert_fails_with(&r, "lost writes that cannot be bounded");
    assert_fails_with(&r, "timeline 2");
    // And without any timeline history at all (final primary on timeline 1 or unread).
    let mut h = async_loss(0x0300_1200);
    h.final_state.timeline_switches.clear();
    assert_fails_with(&check(&h), "cannot be bounded");
}

#[test]
fn zero_loss_scenario_fails_on_any_lost_write() {
    let mut h = async_loss(0x0300_1200);
    h.info.scenario = "switchover".into();
    h.info.zero_loss = true;
    let r = check(&h);
    assert!(r.lost_is_violation);
    assert_fails_with(&r, "scenario switchover promises zero loss");
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    // Nothing lost: passes.
    let mut h = clean();
    h.info.synchronous_mode = false;
    h.info.zero_loss = true;
    assert_passes(&check(&h));
}

#[test]
fn timeline_history_file_parses() {
    let text = "1\t0/3000148\tno recovery target specified\n\n2\t1/A0000028\tno recovery target specified\n";
    let s = parse_timeline_history(text);
    assert_eq!(
        s,
        vec![
            TimelineSwitch {
                timeline: 1,
                switch_lsn: 0x0300_0148
            },
            TimelineSwitch {
                timeline: 2,
                switch_lsn: (1 << 32) | 0xA000_0028
            },
        ]
    );
}

#[test]
fn monitor_sample_proves_a_stale_timeline_write() {
    // node2 is sampled primary on timeline 2 at 15.0 s; its first acknowledgement ends only at
    // 15.52 s. node1 acknowledges id 100 on timeline 1 in between: no client op proves it
    // stale, the monitor's sample does.
    let mut h = clean();
    h.ops.push(ok(100, 15_200, 15_300, "node1", 1));
    h.final_state.ids_on_primary.push(100);
    let r = check(&h);
    assert!(r.split_brain.is_empty(), "{:#?}", r.split_brain);
    assert_eq!(r.monitor_stale.len(), 1, "{:#?}", r.monitor_stale);
    assert_eq!(r.monitor_stale[0].ids, vec![100]);
    assert_eq!(r.monitor_stale[0].sample.at_ms, 15_000);
    assert_fails_with(
        &r,
        "after the monitor had seen node2 primary on the newer timeline 2",
    );
}

#[test]
fn write_started_before_the_monitor_sample_is_not_stale() {
    let mut h = clean();
    h.ops.push(ok(100, 14_990, 15_300, "node1", 1));
    h.final_state.ids_on_primary.push(100);
    let r = check(&h);
    assert!(r.monitor_stale.is_empty(), "{:#?}", r.monitor_stale);
    assert_passes(&r);
}

#[test]
fn failover_in_a_no_failover_scenario_fails() {
    let mut h = clean();
    h.info.no_failover = true;
    assert_fails_with(&check(&h), "promises none");

    // The same run without the failover: node1 stays primary on timeline 1.
    let mut h = clean();
    h.info.no_failover = true;
    h.ops.retain(|op| op.node.as_deref() != Some("node2"));
    h.roles.retain(|s| s.node != "node2");
    let kept: Vec<i64> = h.ops.iter().map(|op| op.id).collect();
    h.final_state.ids_on_primary.retain(|id| kept.contains(id));
    h.final_state.primary = Some("node1".into());
    h.final_state.ids_per_node.clear();
    h.final_state.timeline_switches.clear();
    h.final_state.final_timeline = Some(1);
    let r = check(&h);
    assert!(
        !r.violations.iter().any(|v| v.contains("promises none")),
        "{:#?}",
        r.violations
    );
}

#[test]
fn stale_timeline_write_is_split_brain() {
    let mut h = clean();
    h.ops.push(ok(100, 16_000, 16_010, "node1", 1));
    h.final_state.ids_on_primary.push(100);
    let r = check(&h);
    assert_eq!(r.split_brain.len(), 1, "{:#?}", r.split_brain);
    let sb = &r.split_brain[0];
    assert_eq!(sb.kind, SplitBrainKind::StaleTimeline);
    assert_eq!(sb.first.id, 27);
    assert_eq!(sb.second.id, 100);
    assert_eq!(sb.ids, vec![100]);
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    assert_fails_with(&r, "split brain");
    assert_fails_with(&r, "id 100 ");
    assert_fails_with(&r, "id 27 ");
    assert_eq!(r.marks.len(), 1);
    assert_eq!(r.marks[0].at_ms, 16_010);
    let text = summary_text(&h, &r);
    assert!(text.contains("stale timeline"), "{text}");
}

/// Several stale writes from the same old primary form one group.
#[test]
fn stale_writes_are_grouped() {
    let mut h = clean();
    h.ops.push(ok(101, 17_000, 17_010, "node1", 1));
    h.ops.push(ok(100, 16_000, 16_010, "node1", 1));
    h.final_state.ids_on_primary.extend([100, 101]);
    let r = check(&h);
    assert_eq!(r.split_brain.len(), 1, "{:#?}", r.split_brain);
    assert_eq!(r.split_brain[0].count, 2);
    assert_eq!(r.split_brain[0].ids, vec![100, 101]);
    assert_eq!(r.split_brain[0].second.id, 100);
}

/// A write on the old timeline that was already in flight when the new timeline acknowledged
/// its first write may have committed before the promotion: not a split brain.
#[test]
fn in_flight_write_on_old_timeline_is_not_split_brain() {
    let mut h = clean();
    // Started before id 27 (timeline 2) was acknowledged at 15.52 s, acknowledged after it.
    h.ops.push(ok(101, 15_400, 15_600, "node1", 1));
    // Started exactly when id 27 was acknowledged: still not provably after it.
    h.ops.push(ok(102, 15_520, 15_530, "node1", 1));
    h.final_state.ids_on_primary.extend([101, 102]);
    // The monitor first sees node2 primary at 16 s here (else its sample at 15 s would prove
    // both writes stale: see monitor_sample_proves_a_stale_timeline_write).
    h.roles.retain(|s| !(s.node == "node2" && s.at_ms == 15_000));
    let r = check(&h);
    assert_passes(&r);
    assert!(r.split_brain.is_empty());
}

#[test]
fn two_nodes_on_one_timeline_is_split_brain() {
    let mut h = clean();
    h.ops.push(ok(103, 20_000, 20_010, "node3", 2));
    h.final_state.ids_on_primary.push(103);
    let r = check(&h);
    assert_eq!(r.split_brain.len(), 1, "{:#?}", r.split_brain);
    let sb = &r.split_brain[0];
    assert_eq!(sb.kind, SplitBrainKind::SharedTimeline);
    assert_eq!(sb.first.id, 27);
    assert_eq!(sb.second.id, 103);
    assert_fails_with(&r, "both acknowledged writes on timeline 2");
}

#[test]
fn monitor_sees_two_primaries() {
    let mut h = clean();
    // node1 is sampled primary at 5.000 s; node3 claims the same 12 ms later, twice (on the
    // same timeline: a newer one would also make node1's later writes stale).
    h.roles.push(sample("node3", 5_012, NodeRole::Primary, Some(1)));
    h.roles.push(sample("node3", 5_990, NodeRole::Primary, Some(1)));
    let r = check(&h);
    assert_eq!(r.monitor_split_brain.len(), 1, "{:#?}", r.monitor_split_brain);
    let m = &r.monitor_split_brain[0];
    assert_eq!(m.nodes, ("node1".to_string(), "node3".to_string()));
    assert_eq!((m.from_ms, m.to_ms, m.pairs), (5_000, 6_000, 2));
    assert!(r.split_brain.is_empty());
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    assert_fails_with(&r, "split brain observed by the monitor");
}

#[test]
fn primaries_far_apart_are_not_monitor_split_brain() {
    let mut h = clean();
    // 60 ms apart: outside the same-instant window.
    h.roles.push(sample("node3", 5_060, NodeRole::Primary, Some(1)));
    let r = check(&h);
    assert_passes(&r);
}

#[test]
fn recovery_too_late_fails() {
    let mut h = clean();
    h.final_state.recovered_at_ms = Some(18_000 + 30_001);
    let r = check(&h);
    assert!(!r.recovery.within_bound);
    assert_eq!(r.recovery.took_ms, Some(30_001));
    assert_fails_with(&r, "recovery took 30.001 s");
}

#[test]
fn recovery_exactly_at_bound_passes() {
    let mut h = clean();
    h.final_state.recovered_at_ms = Some(18_000 + 30_000);
    assert_passes(&check(&h));
}

#[test]
fn never_recovered_fails() {
    let mut h = clean();
    h.final_state.recovered_at_ms = None;
    let r = check(&h);
    assert!(!r.recovery.within_bound);
    assert!(r.recovery.reason.is_some());
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    assert_fails_with(&r, "recovery:");
}

#[test]
fn recovery_counts_from_the_last_fault_end() {
    let mut h = clean();
    // The runner's healed_at is before the fault ended: measure from the fault's end.
    h.final_state.healed_at_ms = 1_000;
    let r = check(&h);
    assert_passes(&r);
    assert_eq!(r.recovery.healed_at_ms, 18_000);
    assert_eq!(r.findings.len(), 1, "{:#?}", r.findings);
}

#[test]
fn unhealed_fault_fails() {
    let mut h = clean();
    h.faults.push(FaultInterval {
        kind: "partition".into(),
        description: "partition node3 from node1, node2".into(),
        nodes: vec!["node3".into()],
        start_ms: 21_000,
        end_ms: None,
    });
    let r = check(&h);
    assert_eq!(r.unhealed_faults.len(), 1);
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    assert_fails_with(&r, "never healed");
}

#[test]
fn phantom_write_fails() {
    let mut h = clean();
    h.final_state.ids_on_primary.push(9_999);
    let r = check(&h);
    assert_eq!(r.phantom, vec![9_999]);
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    assert_fails_with(&r, "phantom");
}

#[test]
fn failed_write_present_fails() {
    let mut h = clean();
    h.final_state.ids_on_primary.push(22);
    let r = check(&h);
    assert_eq!(r.failed_but_present, vec![22]);
    assert_fails_with(&r, "id 22 ");
}

#[test]
fn duplicate_ack_fails() {
    let mut h = clean();
    h.ops.push(ok(3, 20_000, 20_010, "node2", 2));
    let r = check(&h);
    assert_eq!(r.duplicate_acks, vec![3]);
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
    assert_fails_with(&r, "duplicate");
}

#[test]
fn no_final_primary_fails() {
    let mut h = clean();
    h.final_state.primary = None;
    let r = check(&h);
    assert_eq!(r.unverifiable_acked, 40);
    assert!(r.lost.is_empty());
    assert_fails_with(&r, "no single primary at the end");
}

#[test]
fn no_acknowledged_write_fails() {
    let mut h = clean();
    h.ops.retain(|op| op.outcome != Outcome::Ok);
    h.final_state.ids_on_primary = vec![26];
    let r = check(&h);
    assert_fails_with(&r, "nothing was verified");
    // The whole span of attempts is one unavailability window.
    assert_eq!(r.unavailability.len(), 1);
}

#[test]
fn lagging_replica_is_only_a_finding() {
    let mut h = clean();
    h.final_state.ids_per_node[2].1.retain(|&id| id < 40);
    let r = check(&h);
    assert_passes(&r);
    assert!(r.findings.iter().any(|f| f.contains("node3 differs")));
}

#[test]
fn unavailability_without_fault_is_reported() {
    let mut h = clean();
    h.faults.clear();
    let r = check(&h);
    assert_passes(&r);
    assert_eq!(r.unavailability.len(), 1);
    assert!(r.unavailability[0].faults.is_empty());
    assert!(summary_text(&h, &r).contains("no fault active"));
}

/// Checks that every tag opened is closed in order: enough to catch broken markup.
fn assert_balanced(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let close = rest[open..].find('>').expect("unterminated tag") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name.trim()), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            stack.push(name);
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn svg_is_well_formed_and_escaped() {
    let mut h = clean();
    h.faults.push(FaultInterval {
        kind: "netem".into(),
        description: "delay <50ms> & loss on \"node3\"".into(),
        nodes: vec!["node3".into()],
        start_ms: 20_000,
        end_ms: Some(24_000),
    });
    h.ops.push(ok(100, 16_000, 16_010, "node1", 1));
    let r = check(&h);
    assert!(!r.passed());
    let svg = timeline_svg(&h, &r);
    assert!(svg.starts_with("<svg"));
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches(r#"class="lane node-lane""#).count(), 3);
    for node in ["node1", "node2", "node3"] {
        assert!(svg.contains(&format!(r#"data-node="{node}""#)));
    }
    assert!(svg.contains("client writes"));
    assert!(svg.contains("nemesis"));
    assert!(svg.contains("&lt;50ms&gt; &amp; loss on &quot;node3&quot;"));
    assert!(!svg.contains("<50ms"));
    assert!(svg.contains("split brain"));
    assert_balanced(&svg);
}

#[test]
fn svg_bins_many_ops() {
    let mut h = clean();
    let base = h.ops.len() as i64;
    for i in 0..2_000 {
        let start = 26_000 + i as u64 * 5;
        h.ops.push(ok(1_000 + i, start, start + 3, "node2", 2));
        h.final_state.ids_on_primary.push(1_000 + i);
    }
    assert!(h.ops.len() as i64 > base + 1_000);
    let r = check(&h);
    let svg = timeline_svg(&h, &r);
    assert_balanced(&svg);
    // Binned: far fewer elements than ops.
    assert!(svg.matches("<line").count() < 200, "{}", svg.len());
    assert!(svg.len() < 100_000, "{}", svg.len());
}

#[test]
fn json_round_trips() {
    let mut h = clean();
    h.ops.push(ok(100, 16_000, 16_010, "node1", 1));
    h.roles.push(sample("node3", 5_012, NodeRole::Primary, Some(2)));
    drop_id(&mut h, 5);
    let r = check(&h);
    assert!(!r.passed());

    let text = serde_json::to_string(&r).unwrap();
    let back: CheckResult = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);

    let v = result_json(&h, &r);
    assert_eq!(v["passed"], serde_json::Value::Bool(false));
    assert_eq!(v["info"]["scenario"], "kill-primary");
    assert_eq!(v["faults"].as_array().unwrap().len(), 1);
    assert!(v.get("ops").is_none());
    let inner: CheckResult = serde_json::from_value(v["result"].clone()).unwrap();
    assert_eq!(inner, r);
    assert_eq!(v["result"]["split_brain"][0]["kind"], "stale-timeline");

    let back: History = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
    assert_eq!(back, h);
}

#[test]
fn write_all_writes_four_files() {
    let h = clean();
    let r = check(&h);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run-1");
    let paths = write_all(&out, &h, &r).unwrap();
    let names: Vec<_> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["history.json", "result.json", "summary.txt", "timeline.svg"]
    );
    let reloaded: History = serde_json::from_str(&std::fs::read_to_string(&paths[0]).unwrap()).unwrap();
    assert_eq!(reloaded, h);
    // A reloaded history checks the same.
    assert_eq!(check(&reloaded), r);
    let summary = std::fs::read_to_string(&paths[2]).unwrap();
    assert!(summary.contains("RESULT: PASS"));
    assert!(summary.contains("kill node1 (primary)"));
}
