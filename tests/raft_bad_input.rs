//! Bad input gets a clear error and loses nothing: invalid config, a partner that never
//! answers, another cluster's data directory, a port already taken.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use pgquorum::ctl::client;

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn agent_config(scope: &str, name: &str, port: u16, partners: &[u16], data_dir: &Path) -> String {
    let partners: String = partners.iter().map(|p| format!("  - 127.0.0.1:{p}\n")).collect();
    format!(
        "scope: {scope}\nname: {name}\nraft:\n  self_addr: 127.0.0.1:{port}\n  data_dir: {}\n  partner_addrs:\n{partners}",
        data_dir.display()
    )
}

/// Run the agent to completion (it is expected to exit), returning (success, stderr).
fn run_agent_expecting_exit(config: &Path) -> (bool, String) {
    let out = Command::new(EXE)
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_config_reports_every_problem_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yml");
    write(
        &cfg,
        "scope: demo\nname: node1\nrestapi:\n  listen: 127.0.0.1:8008\n  lisen: 1\n\
         raft:\n  self_addr: 127.0.0.1:99999\n  data_dir: /tmp/x\n  partner_addrs: [127.0.0.1:2402, not-an-address]\n\
         bootstrap:\n  dcs:\n    ttl: 10\n    loop_wait: 0\n    retry_timeout: 10\n    maximum_lag_on_failover: lots\n",
    );
    let out = Command::new(EXE)
        .arg("--validate-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "restapi.lisen",
        "did you mean",
        "raft.self_addr",
        "raft.partner_addrs[1]",
        "bootstrap.dcs.maximum_lag_on_failover",
        "loop_wait",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }

    // The agent refuses the same file and creates nothing.
    let (ok, stderr) = run_agent_expecting_exit(&cfg);
    assert!(!ok);
    assert!(stderr.contains("restapi.lisen"), "{stderr}");
    assert!(!Path::new("/tmp/x").join("pgquorum.identity").exists());
}

#[test]
fn the_patroni_examples_validate() {
    for n in 1..=3 {
        let path = format!(
            "{}/../shared/examples/patroni-raft-node{n}.yml",
            env!("CARGO_MANIFEST_DIR")
        );
        let out = Command::new(EXE)
            .arg("--validate-config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn another_clusters_data_dir_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("raft");
    // Make real Raft data of cluster "prod" with a one-node run.
    let prod = dir.path().join("prod.yml");
    write(&prod, &agent_config("prod", "n1", 4431, &[], &data));
    let mut child = Command::new(EXE)
        .arg(&prod)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(wait_for(
        "prod to elect itself",
        Duration::from_secs(20),
        || async {
            let rows = pgquorum::ctl::fetch_raft_status("127.0.0.1:4431").await.ok()?;
            rows.iter().any(|r| r.role == "leader").then_some(())
        },
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    let before = dir_fingerprint(&data);

    let demo = dir.path().join("demo.yml");
    write(&demo, &agent_config("demo", "n1", 4431, &[], &data));
    let (ok, stderr) = run_agent_expecting_exit(&demo);
    assert!(!ok);
    assert!(
        stderr.contains("belongs to cluster \"prod\"") && stderr.contains("refusing"),
        "{stderr}"
    );
    assert_eq!(
        dir_fingerprint(&data),
        before,
        "the refused data dir was modified"
    );
}

#[test]
fn a_port_already_taken_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let _holder = std::net::TcpListener::bind("127.0.0.1:4441").unwrap();
    let cfg = dir.path().join("n.yml");
    write(
        &cfg,
        &agent_config("demo", "n1", 4441, &[4442], &dir.path().join("raft")),
    );
    let (ok, stderr) = run_agent_expecting_exit(&cfg);
    assert!(!ok);
    assert!(
        stderr.contains("127.0.0.1:4441") && stderr.contains("cannot listen"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("raft").exists(),
        "nothing is created when the port is taken"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partners_that_never_answer_leave_the_agent_running_and_honest() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("n.yml");
    write(
        &cfg,
        &agent_config("demo", "n1", 4451, &[4452, 4453], &dir.path().join("raft")),
    );
    let mut child = tokio::process::Command::new(EXE)
        .arg(&cfg)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let rows = wait_for("the agent to answer", Duration::from_secs(20), || async {
        pgquorum::ctl::fetch_raft_status("127.0.0.1:4451")
            .await
            .ok()
            .filter(|r| r.len() == 3)
    })
    .await;
    assert!(rows.iter().all(|r| r.role != "leader"), "{rows:?}");
    let unreachable: Vec<_> = rows
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.address.clone())
        .collect();
    assert_eq!(unreachable, ["127.0.0.1:4452", "127.0.0.1:4453"]);

    let ctl = tokio::process::Command::new(CTL)
        .args(["--endpoint", "127.0.0.1:4451", "raft", "status"])
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&ctl.stdout);
    assert!(
        table.contains("unreachable") && table.contains("no Raft leader"),
        "{table}"
    );

    let err = client::read("127.0.0.1:4451", "leader", false, true)
        .await
        .expect_err("no majority, no answer");
    assert!(err.to_string().contains("cannot confirm the keyspace"), "{err}");
    assert!(child.try_wait().unwrap().is_none(), "the agent must keep running");
}

/// Names, sizes and contents of every file under `dir`.
fn dir_fingerprint(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            out.push((
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            ));
        }
    }
    out.sort();
    out
}
