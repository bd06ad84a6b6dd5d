//! Three real agent processes on loopback form one Raft group, replicate the keyspace,
//! survive `kill -9` of the Raft leader and restarts, and refuse to answer from a minority.

mod common;

use std::time::Duration;

use common::*;
use pgquorum::ctl::client;
use pgquorum::keyspace::CommandOutcome;
use serde_json::json;

/// The value of `key` in the local (possibly stale) copy of the agent at `endpoint`.
async fn local_value(endpoint: &str, key: &str) -> Option<serde_json::Value> {
    let read = client::read(endpoint, key, false, false).await.ok()?;
    read.entries.first().map(|e| e.value.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicate_survive_leader_kill9_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = start_cluster(dir.path(), 4401).await;

    // A write sent to a follower is forwarded to the leader and reaches every node.
    let leader = wait_leader(&demo, 0).await;
    let follower = (leader + 1) % 3;
    let (outcome, _) = client::write(&demo.endpoints[follower], &put("config", json!({"step": 1})))
        .await
        .unwrap();
    assert!(matches!(outcome, CommandOutcome::Applied { .. }), "{outcome:?}");
    for endpoint in demo.endpoints.clone() {
        wait_for("the write on every node", Duration::from_secs(10), || {
            let e = endpoint.clone();
            async move { (local_value(&e, "config").await == Some(json!({"step": 1}))).then_some(()) }
        })
        .await;
    }

    // kill -9 the Raft leader: a new one is elected and writes continue.
    demo.kill9(leader).await;
    let survivor = (leader + 1) % 3;
    let new_leader = wait_for("a new leader", Duration::from_secs(15), || {
        let demo = &demo;
        async move { leader_index(demo, survivor).await.filter(|l| *l != leader) }
    })
    .await;
    assert_ne!(new_leader, leader);
    let (outcome, _) = client::write(&demo.endpoints[survivor], &put("config", json!({"step": 2})))
        .await
        .unwrap();
    assert!(outcome.is_applied());

    // The killed node restarts with its log and catches up on what it missed.
    demo.start_node(leader).unwrap();
    let restarted = demo.endpoints[leader].clone();
    wait_for("the restarted node to catch up", Duration::from_secs(20), || {
        let e = restarted.clone();
        async move { (local_value(&e, "config").await == Some(json!({"step": 2}))).then_some(()) }
    })
    .await;

    // All three killed and restarted together keep the data.
    for i in 0..3 {
        demo.kill9(i).await;
    }
    for i in 0..3 {
        demo.start_node(i).unwrap();
    }
    demo.wait_healthy(Duration::from_secs(60)).await.unwrap();
    let read = client::read(&demo.endpoints[2], "config", false, true)
        .await
        .unwrap();
    assert_eq!(read.entries[0].value, json!({"step": 2}));
    let rows = pgquorum::ctl::fetch_raft_status(&demo.endpoints[0])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "the group kept its three members: {rows:?}");
    for name in ["node1", "node2", "node3"] {
        let log = std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap();
        assert!(
            log.matches("initialised the group").count() <= 1,
            "{name} initialised the group twice"
        );
    }
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_in_a_minority_cannot_confirm_the_keyspace() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = start_cluster(dir.path(), 4411).await;
    client::write(&demo.endpoints[0], &put("config", json!({"v": 1})))
        .await
        .unwrap();
    let lonely = demo.endpoints[2].clone();
    // A write commits on a majority; wait until node 3 has applied it too.
    wait_for("node 3 to apply the write", Duration::from_secs(10), || {
        let e = lonely.clone();
        async move { (local_value(&e, "config").await == Some(json!({"v": 1}))).then_some(()) }
    })
    .await;

    // Leave node 3 alone: its local copy still holds the data, but it must not vouch for it.
    demo.kill9(0).await;
    demo.kill9(1).await;
    assert_eq!(
        local_value(&lonely, "config").await,
        Some(json!({"v": 1})),
        "stale copy is still there"
    );
    let err = client::read(&lonely, "config", false, true)
        .await
        .expect_err("linearizable read must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("cannot confirm")
            || msg.contains("could not be reached")
            || msg.contains("not confirmed"),
        "unclear error: {msg}"
    );
    let err = client::write(&lonely, &put("config", json!({"v": 2})))
        .await
        .expect_err("write must fail");
    assert!(!err.to_string().is_empty());

    // Once a majority is back, the same read works again.
    demo.start_node(0).unwrap();
    wait_for("a majority again", Duration::from_secs(30), || {
        let e = lonely.clone();
        async move { client::read(&e, "config", false, true).await.ok() }
    })
    .await;
    demo.stop().await;
}

/// A Raft leader change must never by itself cost the PostgreSQL primary its lease: the
/// holder keeps renewing through the election, and no other holder ever gets the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_renewals_ride_through_a_raft_election() {
    use pgquorum::keyspace::{Command, Key};
    use tokio::time::Instant;

    const TTL_MS: u64 = 10_000;
    const RENEW_EVERY: Duration = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let mut demo = start_cluster(dir.path(), 4421).await;
    let raft_leader = wait_leader(&demo, 0).await;
    // The lease holder is an agent that is not the Raft leader, renewing through itself.
    let holder = (raft_leader + 1) % 3;
    let endpoint = demo.endpoints[holder].clone();
    let renew = Command::AcquireLease {
        key: Key::Leader,
        holder: "pg-primary".into(),
        holder_addr: None,
        value: json!({"holder": "pg-primary"}),
        ttl_ms: TTL_MS,
    };
    let (first, _) = client::write(&endpoint, &renew).await.unwrap();
    let pgquorum::keyspace::CommandOutcome::Applied {
        revision: first_revision,
    } = first
    else {
        panic!("first acquire rejected: {first:?}")
    };

    let mut last_ok = Instant::now();
    let mut longest_gap = Duration::ZERO;
    let mut killed = false;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        if !killed && started.elapsed() > Duration::from_secs(2) {
            demo.kill9(raft_leader).await;
            killed = true;
        }
        match client::write(&endpoint, &renew).await {
            Ok((outcome, _)) => {
                assert!(outcome.is_applied(), "renewal rejected: {outcome:?}");
                longest_gap = longest_gap.max(last_ok.elapsed());
                last_ok = Instant::now();
            }
            Err(e) => eprintln!("renewal failed (retrying): {e}"),
        }
        tokio::time::sleep(RENEW_EVERY).await;
    }
    assert!(killed);
    let new_leader = wait_for("a new Raft leader", Duration::from_secs(15), || {
        let demo = &demo;
        async move { leader_index(demo, holder).await.filter(|l| *l != raft_leader) }
    })
    .await;
    assert_ne!(new_leader, raft_leader);
    assert!(
        longest_gap < Duration::from_millis(TTL_MS / 2),
        "renewals stalled for {longest_gap:?} across the election (ttl {TTL_MS} ms)"
    );
    let read = client::read(&endpoint, "leader", false, true).await.unwrap();
    let entry = &read.entries[0];
    assert_eq!(entry.holder.as_deref(), Some("pg-primary"));
    // The key was never lost and re-created: it is still the one the first renewal created.
    assert_eq!(
        entry.created_revision, first_revision,
        "the lease expired during the election"
    );
    demo.stop().await;
}
