//! The fence that works without the agent: `kill -9` of the primary's agent must not leave
//! its PostgreSQL accepting writes.

mod common;

use std::time::Duration;

use common::*;
use pgquorum::ctl::cluster_read::cluster_view;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primarys_agent_takes_its_postgres_down() {
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, opts) = start_pg_cluster(dir.path(), 4531).await;
    let view = cluster_view(&demo.endpoints[0]).await.unwrap();
    let leader = view.leader_name().unwrap().to_string();
    let primary = leader.trim_start_matches("node").parse::<usize>().unwrap() - 1;
    let data_dir = dir.path().join(&leader).join("pgdata");
    let port = opts.pg_port(primary);
    assert_eq!(
        pg_scalar(port, "SELECT pg_is_in_recovery()").await.as_deref(),
        Some("f")
    );

    demo.kill9(primary).await;
    wait_for(
        "the fenced primary's postmaster to be gone",
        Duration::from_secs(10),
        || {
            let data_dir = data_dir.clone();
            async move {
                postmaster_pid(&data_dir)
                    .filter(|p| process_alive(*p))
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
    assert!(
        pg_connect(port).await.is_err(),
        "the old primary still accepts connections"
    );

    // Its agent comes back, finds its lease and restarts PostgreSQL as the primary.
    demo.start_node(primary).unwrap();
    demo.wait_postgres_healthy(Duration::from_secs(120))
        .await
        .unwrap();
    demo.stop().await;
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}
