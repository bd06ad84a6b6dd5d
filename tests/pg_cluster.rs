//! Three agents with three real PostgreSQL servers on loopback: bootstrap, streaming
//! replicas, the REST API per role, repairs, dynamic configuration, and the demo command.

mod common;

use std::time::Duration;

use common::*;
use pgquorum::ctl::cluster_read::cluster_view;

/// Index of the member holding the leader lease.
async fn primary_index(endpoint: &str) -> usize {
    let view = cluster_view(endpoint).await.expect("cluster view");
    let leader = view.leader_name().expect("a primary").to_string();
    leader.trim_start_matches("node").parse::<usize>().expect("nodeN") - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_replicas_rest_api_and_repairs() {
    let dir = TestDir::new();
    let (mut demo, opts) = start_pg_cluster(dir.path(), 4501).await;
    let endpoint = demo.endpoints[0].clone();
    let primary = primary_index(&endpoint).await;
    let replicas: Vec<usize> = (0..3).filter(|i| *i != primary).collect();

    // One primary, two streaming replicas, each under its own application_name.
    let streaming = pg_scalar(
        opts.pg_port(primary),
        "SELECT string_agg(application_name, ',' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming'",
    )
    .await;
    let expected: Vec<String> = replicas.iter().map(|i| format!("node{}", i + 1)).collect();
    assert_eq!(streaming.as_deref(), Some(expected.join(",").as_str()));
    for &r in &replicas {
        assert_eq!(
            pg_scalar(opts.pg_port(r), "SELECT pg_is_in_recovery()")
                .await
                .as_deref(),
            Some("t")
        );
    }

    // A row written on the primary is read on both replicas.
    let client = pg_connect(opts.pg_port(primary)).await.unwrap();
    client
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (42)")
        .await
        .unwrap();
    for &r in &replicas {
        let port = opts.pg_port(r);
        wait_for("the row on a replica", Duration::from_secs(30), || async move {
            (pg_scalar(port, "SELECT id FROM t").await.as_deref() == Some("42")).then_some(())
        })
        .await;
    }

    // Patroni's status codes per role.
    let p = opts.rest_port(primary);
    let r = opts.rest_port(replicas[0]);
    // Readiness includes replication lag, which can spike for up to a loop right after the
    // cluster forms (the second base backup switches WAL segments: the primary's position
    // jumps 16 MB before the first replica has replayed the switch). Wait for it once.
    wait_for("the replica ready", Duration::from_secs(30), || async move {
        (http_status(r, "GET", "/readiness", None).await == 200).then_some(())
    })
    .await;
    for (path, on_primary, on_replica) in [
        ("/primary", 200, 503),
        ("/leader", 200, 503),
        ("/read-write", 200, 503),
        ("/replica", 503, 200),
        ("/read-only", 200, 200),
        ("/health", 200, 200),
        ("/patroni", 200, 200),
        ("/liveness", 200, 200),
        ("/readiness", 200, 200),
        ("/replica?lag=100MB", 503, 200),
    ] {
        assert_eq!(
            http_status(p, "GET", path, None).await,
            on_primary,
            "GET {path} on the primary"
        );
        assert_eq!(
            http_status(r, "GET", path, None).await,
            on_replica,
            "GET {path} on a replica"
        );
        assert_eq!(
            http_status(r, "HEAD", path, None).await,
            on_replica,
            "HEAD {path} on a replica"
        );
    }
    assert_eq!(
        http_status(p, "POST", "/restart", None).await,
        401,
        "mutating calls need authentication"
    );
    assert_eq!(
        http_status(p, "POST", "/reload", Some("YWRtaW46d3Jvbmc=")).await,
        401,
        "wrong password"
    );

    // kill -9 of a replica's postmaster is repaired by its agent.
    let victim = replicas[1];
    let data_dir = dir.path().join(format!("node{}", victim + 1)).join("pgdata");
    let old_pid = postmaster_pid(&data_dir).expect("replica running");
    // SAFETY: kill(2) on a postmaster this test's cluster started.
    unsafe { libc::kill(old_pid, libc::SIGKILL) };
    let port = opts.pg_port(victim);
    wait_for("the replica back and streaming", Duration::from_secs(60), || {
        let data_dir = data_dir.clone();
        async move {
            let back = postmaster_pid(&data_dir).is_some_and(|p| p != old_pid);
            let streaming = pg_scalar(port, "SELECT status FROM pg_stat_wal_receiver").await;
            (back && streaming.as_deref() == Some("streaming")).then_some(())
        }
    })
    .await;

    // kill -9 of the primary's postmaster: restarted in place while it still holds the lease.
    let data_dir = dir.path().join(format!("node{}", primary + 1)).join("pgdata");
    let old_pid = postmaster_pid(&data_dir).expect("primary running");
    // SAFETY: kill(2) on a postmaster this test's cluster started.
    unsafe { libc::kill(old_pid, libc::SIGKILL) };
    let port = opts.pg_port(primary);
    wait_for("the primary restarted in place", Duration::from_secs(60), || {
        let data_dir = data_dir.clone();
        async move {
            let back = postmaster_pid(&data_dir).is_some_and(|p| p != old_pid);
            (back && pg_scalar(port, "SELECT pg_is_in_recovery()").await.as_deref() == Some("f"))
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        primary_index(&endpoint).await,
        primary,
        "crash recovery must not move the primary"
    );
    assert_eq!(pg_scalar(port, "SELECT id FROM t").await.as_deref(), Some("42"));

    // A dynamic configuration edit reaches every node.
    let out = std::process::Command::new(CTL)
        .args(["--endpoint", &endpoint, "edit-config", "--pg", "work_mem=7MB"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for i in 0..3 {
        let port = opts.pg_port(i);
        wait_for("work_mem on every node", Duration::from_secs(30), || async move {
            (pg_scalar(port, "SHOW work_mem").await.as_deref() == Some("7MB")).then_some(())
        })
        .await;
    }

    // Restarting a replica's agent keeps the primary where it is.
    let replica = replicas[0];
    demo.terminate(replica).await;
    demo.start_node(replica).unwrap();
    demo.wait_postgres_healthy(Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(primary_index(&endpoint).await, primary, "the primary changed");
    let port = opts.pg_port(replica);
    wait_for(
        "the restarted replica serving reads",
        Duration::from_secs(60),
        || async move { (pg_scalar(port, "SELECT id FROM t").await.as_deref() == Some("42")).then_some(()) },
    )
    .await;

    // SIGHUP is a reload (`systemctl reload`), never the end of the primary's agent (whose
    // fence guard would then kill PostgreSQL and fail the cluster over).
    let agent = demo.pid(primary).expect("the primary's agent runs") as i32;
    let log = dir.path().join(format!("node{}.log", primary + 1));
    // SAFETY: kill(2) on an agent this test's cluster started.
    unsafe { libc::kill(agent, libc::SIGHUP) };
    wait_for(
        "the primary's agent reloads on SIGHUP",
        Duration::from_secs(30),
        || {
            let log = log.clone();
            async move {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                text.contains("reload after SIGHUP").then_some(())
            }
        },
    )
    .await;
    let stat = std::fs::read_to_string(format!("/proc/{agent}/stat")).unwrap_or_default();
    let state = stat.rsplit(") ").next().and_then(|rest| rest.chars().next());
    assert!(
        matches!(state, Some('S' | 'R' | 'D')),
        "the agent survived SIGHUP (state {state:?})"
    );
    assert_eq!(primary_index(&endpoint).await, primary, "the primary changed");

    // `pgquorumctl list` shows the table; `--json` the same rows.
    let out = std::process::Command::new(CTL)
        .args(["--endpoint", &endpoint, "list"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Leader") && table.matches("streaming").count() == 2,
        "{table}"
    );
    let out = std::process::Command::new(CTL)
        .args(["--endpoint", &endpoint, "--json", "list"])
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(3));

    demo.stop().await;
    for i in 0..3 {
        let data_dir = dir.path().join(format!("node{}", i + 1)).join("pgdata");
        assert!(
            postmaster_pid(&data_dir).is_none(),
            "node{} PostgreSQL still running after stop",
            i + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_command_starts_and_stops_cleanly() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let dir = TestDir::new();
    let mut child = tokio::process::Command::new(EXE)
        .args([
            "demo",
            "--dir",
            dir.path().to_str().unwrap(),
            "--base-port",
            "4511",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let ready = tokio::time::timeout(Duration::from_secs(240), async {
        while let Ok(Some(line)) = lines.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("Press Ctrl-C") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "demo did not come up:\n{seen}");
    assert!(
        seen.contains("Leader") && seen.contains("target_session_attrs=read-write"),
        "{seen}"
    );
    // SAFETY: kill(2) on the child we started.
    unsafe { libc::kill(child.id().unwrap() as i32, libc::SIGINT) };
    let status = tokio::time::timeout(Duration::from_secs(90), child.wait())
        .await
        .expect("demo stops")
        .unwrap();
    assert!(status.success(), "demo exited with {status}");
    for n in 1..=3 {
        let data_dir = dir.path().join(format!("node{n}")).join("pgdata");
        assert!(data_dir.join("PG_VERSION").exists(), "data kept");
        assert!(
            postmaster_pid(&data_dir).is_none(),
            "node{n} PostgreSQL left running"
        );
    }
}
