//! The three Patroni 4 raft-mode example files start one pgquorum cluster unchanged.
//! Only the Raft data directory is redirected (by the documented `PGQUORUM_RAFT_DATA_DIR`
//! override) so the test does not write under /var/lib.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_raft_configs_form_a_cluster_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut children = Vec::new();
    for n in 1..=3 {
        let config = format!(
            "{}/../shared/examples/patroni-raft-node{n}.yml",
            env!("CARGO_MANIFEST_DIR")
        );
        let log = std::fs::File::create(dir.path().join(format!("node{n}.log"))).unwrap();
        let child = tokio::process::Command::new(EXE)
            .arg(&config)
            .env("PGQUORUM_RAFT_DATA_DIR", dir.path().join(format!("node{n}")))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        children.push(child);
    }
    let rows = wait_for(
        "one leader and three members",
        Duration::from_secs(60),
        || async {
            let rows = pgquorum::ctl::fetch_raft_status("127.0.0.1:2402").await.ok()?;
            let ok = rows.len() == 3
                && rows.iter().all(|r| r.error.is_none())
                && rows.iter().filter(|r| r.role == "leader").count() == 1;
            ok.then_some(rows)
        },
    )
    .await;
    let names: Vec<&str> = rows.iter().map(|r| r.member.as_str()).collect();
    assert_eq!(names, ["node1", "node2", "node3"]);
    for mut c in children {
        c.kill().await.unwrap();
    }
}
