//! The three Patroni 4 raft-mode example files start one pgquorum cluster unchanged: three
//! agents form a Raft group, and (as root, where the files' /var/lib paths are writable)
//! bootstrap one primary and two streaming replicas.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use pgquorum::cluster::PgRunState;
use pgquorum::ctl::cluster_read::cluster_view;

/// Marks the /var/lib/pgquorum/nodeN directories this test created, so that it only ever
/// removes its own leftovers and never an operator's data.
const MARKER: &str = ".created-by-pgquorum-test";

fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

fn prepare_var_lib(n: usize) {
    let dir = Path::new("/var/lib/pgquorum").join(format!("node{n}"));
    if dir.exists() {
        assert!(
            dir.join(MARKER).exists(),
            "{} exists and was not created by this test: refusing to touch it",
            dir.display()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(MARKER), "").unwrap();
    // The files put PostgreSQL's socket here; it runs as the `postgres` OS user.
    let status = std::process::Command::new("chown")
        .args(["postgres:postgres", dir.to_str().unwrap()])
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "chown postgres {}",
        dir.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_raft_configs_form_a_cluster_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let full = is_root();
    let mut children = Vec::new();
    for n in 1..=3 {
        let config = format!(
            "{}/../shared/examples/patroni-raft-node{n}.yml",
            env!("CARGO_MANIFEST_DIR")
        );
        let log = std::fs::File::create(tmp.path().join(format!("node{n}.log"))).unwrap();
        let mut cmd = tokio::process::Command::new(EXE);
        cmd.arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        if full {
            prepare_var_lib(n);
        } else {
            // Without root the files' /var/lib paths are not writable: check the Raft layer
            // only, with the data redirected by the documented overrides.
            cmd.env("PGQUORUM_RAFT_DATA_DIR", tmp.path().join(format!("node{n}")));
            cmd.env("PGQUORUM_POSTGRESQL_DATA_DIR", "");
        }
        children.push(cmd.spawn().unwrap());
    }
    let rows = wait_for(
        "one Raft leader and three members",
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

    if full {
        let view = wait_for(
            "a primary and two streaming replicas",
            Duration::from_secs(180),
            || async {
                let view = cluster_view("127.0.0.1:2401").await.ok()?;
                let leader = view.leader_name()?.to_string();
                let streaming = view
                    .members
                    .iter()
                    .filter(|m| m.state == PgRunState::Streaming)
                    .count();
                let primary_up = view.member(&leader).is_some_and(|m| m.state.is_up());
                (primary_up && streaming == 2).then_some(view)
            },
        )
        .await;
        assert_eq!(view.members.len(), 3);
    }
    for mut c in children {
        // SAFETY: kill(2) on a child we started; SIGTERM stops its PostgreSQL cleanly.
        unsafe { libc::kill(c.id().unwrap() as i32, libc::SIGTERM) };
        let _ = tokio::time::timeout(Duration::from_secs(30), c.wait()).await;
    }
}
