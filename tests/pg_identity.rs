//! Guards that keep an operator's mistake from reaching PostgreSQL: a second agent started
//! under a name a running agent uses (issue 9, hole 12).

mod common;

use std::time::Duration;

use common::*;
use pgquorum::ctl::cluster_read::cluster_view;

const BASE_PORT: u16 = 4941;

/// node1 alone, primary and lease holder; returns its agent.
async fn lone_primary(dir: &std::path::Path, opts: &pgquorum::demo::DemoOptions) -> SoloAgent {
    let yaml = solo_agent_yaml(dir, opts, "ident", 0, &[]);
    let endpoint = format!("127.0.0.1:{}", opts.base_port);
    let agent = SoloAgent::start(dir, "node1", &endpoint, &yaml);
    let port = opts.pg_port(0);
    wait_for(
        "node1 to run the primary and hold the lease",
        Duration::from_secs(120),
        || async {
            let view = cluster_view(&endpoint).await.ok()?;
            let up = view.member("node1").is_some_and(|m| m.state.is_up());
            let primary = pg_scalar(port, "SELECT pg_is_in_recovery()").await.as_deref() == Some("f");
            (view.leader_name() == Some("node1") && up && primary).then_some(())
        },
    )
    .await;
    agent
}

/// A second agent configured with the same `name` on other ports exits at once with a clear
/// message, before creating its Raft storage or PostgreSQL data directory; the first keeps
/// its primary and its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_with_a_name_in_use_refuses_to_start() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), BASE_PORT, true);
    let first = lone_primary(dir.path(), &opts).await;

    // The config of a second member (its own ports and directories), but named node1.
    let yaml = solo_agent_yaml(dir.path(), &opts, "ident", 1, &[0]).replace("name: node2\n", "name: node1\n");
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
