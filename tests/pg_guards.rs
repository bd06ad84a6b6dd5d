//! Guards that keep an operator's mistake from reaching PostgreSQL: a second agent started
//! under a name a running agent uses (issue 9, hole 12); a lease `ttl` edited below what the
//! members' Raft timings need (hole 13).

mod common;

use std::time::Duration;

use common::*;
use pgquorum::ctl::cluster_read::cluster_view;

const BASE_PORT: u16 = 4941;

/// A second agent configured with the same `name` on other ports exits at once with a clear
/// message, before creating its Raft storage or PostgreSQL data directory; the first keeps
/// its primary and its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_with_a_name_in_use_refuses_to_start() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), BASE_PORT, true);
    let first = lone_primary(dir.path(), &opts, "guards").await;

    // The config of a second member (its own ports and directories), but named node1.
    let yaml =
        solo_agent_yaml(dir.path(), &opts, "guards", 1, &[0]).replace("name: node2\n", "name: node1\n");
    let twin_endpoint = format!("127.0.0.1:{}", opts.base_port + 1);
    let mut twin = SoloAgent::start(dir.path(), "twin", &twin_endpoint, &yaml);
    let status = twin
        .exited_within(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("the twin keeps running: {}", twin.log_text()));
    assert!(!status.success(), "{}", twin.log_text());
    let log = twin.log_text();
    assert!(
        log.contains(&format!(
            "another agent named node1 is running at 127.0.0.1:{BASE_PORT}"
        )),
        "{log}"
    );
    for untouched in ["raft", "pgdata"] {
        let path = dir.path().join("node2").join(untouched);
        assert!(!path.exists(), "{} was created: {log}", path.display());
    }

    // The first agent still runs the primary, holds the lease, and its member key is its own.
    let endpoint = format!("127.0.0.1:{BASE_PORT}");
    let view = cluster_view(&endpoint).await.expect("read the cluster");
    assert_eq!(view.leader_name(), Some("node1"));
    let me = view.member("node1").expect("node1's member key");
    assert_eq!(me.raft_addr.as_deref(), Some(endpoint.as_str()));
    assert!(me.state.is_up());
    assert_eq!(
        pg_scalar(opts.pg_port(0), "SELECT pg_is_in_recovery()")
            .await
            .as_deref(),
        Some("f")
    );
    first.stop().await;
}

/// `pgquorumctl edit-config -s ttl=1` on a running cluster is refused, naming the member whose
/// Raft timings (published in its member key) need a longer lease and the numbers; nothing
/// changes. A ttl that fits is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_too_short_for_a_members_raft_timings_is_refused() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), BASE_PORT + 10, true);
    let agent = lone_primary(dir.path(), &opts, "guards").await;
    let endpoint = format!("127.0.0.1:{}", opts.base_port);
    let view = cluster_view(&endpoint).await.expect("read the cluster");
    let timings = view.member("node1").and_then(|m| m.raft_timings);
    assert!(timings.is_some(), "node1 publishes no Raft timings: {view:?}");
    let ttl_before = view.config.ttl;

    let edit = |set: &[&str]| {
        let mut args: Vec<String> = vec!["-e".into(), endpoint.clone(), "edit-config".into()];
        for s in set {
            args.extend(["-s".to_string(), s.to_string()]);
        }
        args
    };
    let (ok, stdout, stderr) = run_ctl(&edit(&["ttl=1", "loop_wait=0.2", "retry_timeout=0.2"])).await;
    assert!(!ok, "accepted: {stdout}");
    for part in [
        "ttl: 1 s is too short for member node1's Raft timings",
        "4 × raft.election_timeout_ms 250 + 2 × raft.heartbeat_interval_ms 50",
        "raft.max_clock_skew_ms 250",
        "ttl must be at least 2.2 s",
    ] {
        assert!(stderr.contains(part), "{part:?} missing: {stderr}");
    }
    let view = cluster_view(&endpoint).await.expect("read the cluster");
    assert_eq!(view.config.ttl, ttl_before, "the refused edit changed the config");

    let (ok, stdout, stderr) = run_ctl(&edit(&["ttl=5"])).await;
    assert!(ok, "{stdout}{stderr}");
    let view = cluster_view(&endpoint).await.expect("read the cluster");
    assert_eq!(view.config.ttl, 5.0);
    agent.stop().await;
}
