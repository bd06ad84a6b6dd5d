//! Failover, switchover and rejoin with real agents and real PostgreSQL servers on loopback.
//!
//! Every scenario runs under a split-brain monitor that asks every server, many times a
//! second, whether it accepts writes (`pg_is_in_recovery()` false): at no sample may two
//! servers say yes. Writers insert through a multi-host `target_session_attrs=read-write`
//! connection and record what was acknowledged; after a switchover every acknowledged row
//! must be on the new primary.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pg_load::*;
use common::*;
use pgquorum::demo::Demo;

/// Tag member `i` nofailover through its config file and a reload, and wait until the
/// keyspace shows it.
async fn tag_nofailover(demo: &Demo, dir: &Path, i: usize) {
    let path = dir.join(format!("{}.yml", names()[i]));
    let mut text = std::fs::read_to_string(&path).expect("node config");
    text.push_str("tags:\n  nofailover: true\n");
    std::fs::write(&path, text).expect("write node config");
    ctl_ok(demo, &["reload", names()[i]]);
    wait_for("the nofailover tag in the keyspace", TIMEOUT, || async {
        let view = cluster_view(demo).await?;
        (!view.member(names()[i])?.tags.may_become_primary()).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------- scenarios

/// Postmaster crash (restart in place), switchover by CLI and by REST, manual failover,
/// kill -9 of the whole primary node and its rejoin; a nofailover member is never promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switchover_failover_and_crashes_keep_one_primary() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let (mut demo, opts) = start_pg_cluster(dir, 4541).await;
    let p0 = wait_primary(&demo, &opts, "a primary").await;
    let never = (p0 + 2) % 3; // tagged nofailover: must never become primary
    let other = (p0 + 1) % 3;
    tag_nofailover(&demo, dir, never).await;

    let monitor = SplitBrainMonitor::start((0..3).map(|i| opts.pg_port(i)).collect());
    let writer = Writer::start(&opts).await;
    writes_progress(&writer, 50, "writes before any fault").await;

    // 1. The primary's postmaster dies: the agent restarts it in place, same primary.
    let pid = postmaster_pid(&data_dir(dir, p0)).expect("primary postmaster pid");
    signal(pid, libc::SIGKILL);
    wait_for("the primary's postmaster restarted", TIMEOUT, || async {
        postmaster_pid(&data_dir(dir, p0)).filter(|p| *p != pid)
    })
    .await;
    writes_progress(&writer, 50, "writes after the postmaster crash").await;
    assert_eq!(
        wait_primary(&demo, &opts, "primary after crash").await,
        p0,
        "restarted in place"
    );

    // patronictl's words for requests it refuses itself (scripts match on them).
    let stderr = |args: &[&str]| {
        let out = ctl(&demo, args);
        assert!(!out.status.success(), "{args:?} must be refused");
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    };
    assert_eq!(
        stderr(&["switchover", "--candidate", names()[never], "--force"]),
        format!(
            "Error: Member {} does not exist in cluster demo or is tagged as nofailover",
            names()[never]
        )
    );
    assert_eq!(
        stderr(&["switchover", "--leader", names()[other], "--force"]),
        format!(
            "Error: Member {} is not the leader of cluster demo",
            names()[other]
        )
    );
    assert_eq!(
        stderr(&["failover", "--force"]),
        "Error: Failover could be performed only to a specific candidate"
    );

    // 2. Switchover by CLI: no acknowledged row lost.
    let out = ctl_ok(
        &demo,
        &[
            "switchover",
            "--leader",
            names()[p0],
            "--candidate",
            names()[other],
            "--force",
        ],
    );
    assert!(out.contains(names()[other]), "{out}");
    wait_for("the candidate is primary", TIMEOUT, || async {
        (primary(&demo, &opts).await == Some(other)).then_some(())
    })
    .await;
    failover_key_cleared(&demo).await;
    writes_progress(&writer, 50, "writes after the CLI switchover").await;
    let acked = writer.acked.lock().unwrap().clone();
    assert_no_acked_row_lost(opts.pg_port(other), &acked, "CLI switchover").await;
    wait_for("the old primary streams from the new one", TIMEOUT, || async {
        streams(&demo, p0).await.then_some(())
    })
    .await;

    // 3. Switchover back by REST.
    let body = format!(
        r#"{{"leader": "{}", "candidate": "{}"}}"#,
        names()[other],
        names()[p0]
    );
    // The REST API validates against its node's last view of the cluster, which may be a loop
    // older than what this test saw: a 412 (precondition) can clear up; retry it until then.
    let (code, text) = wait_for("the switchover accepted by REST", TIMEOUT, || {
        let body = body.clone();
        let opts = &opts;
        async move {
            let (code, text) = rest_post(opts, other, "/switchover", &body).await;
            (code != 412).then_some((code, text))
        }
    })
    .await;
    assert_eq!(code, 200, "{text}");
    wait_for("the REST candidate is primary", TIMEOUT, || async {
        (primary(&demo, &opts).await == Some(p0)).then_some(())
    })
    .await;
    failover_key_cleared(&demo).await;
    writes_progress(&writer, 50, "writes after the REST switchover").await;
    let acked = writer.acked.lock().unwrap().clone();
    assert_no_acked_row_lost(opts.pg_port(p0), &acked, "REST switchover").await;
    wait_for("the old primary streams again", TIMEOUT, || async {
        streams(&demo, other).await.then_some(())
    })
    .await;

    // 4. Manual failover by CLI.
    ctl_ok(&demo, &["failover", "--candidate", names()[other], "--force"]);
    wait_for("the failover candidate is primary", TIMEOUT, || async {
        (primary(&demo, &opts).await == Some(other)).then_some(())
    })
    .await;
    failover_key_cleared(&demo).await;
    writes_progress(&writer, 50, "writes after the manual failover").await;
    wait_for("the former primary streams", TIMEOUT, || async {
        streams(&demo, p0).await.then_some(())
    })
    .await;

    // 4b. Manual failover back by REST.
    let body = format!(r#"{{"candidate": "{}"}}"#, names()[p0]);
    let (code, text) = rest_post(&opts, p0, "/failover", &body).await;
    assert_eq!(code, 200, "{text}");
    wait_for("the REST failover candidate is primary", TIMEOUT, || async {
        (primary(&demo, &opts).await == Some(p0)).then_some(())
    })
    .await;
    failover_key_cleared(&demo).await;
    wait_for("the other member streams from it", TIMEOUT, || async {
        streams(&demo, other).await.then_some(())
    })
    .await;
    // And once more to `other` by CLI, so that the node loss below hits `other`.
    ctl_ok(&demo, &["failover", "--candidate", names()[other], "--force"]);
    wait_for("the failover candidate is primary again", TIMEOUT, || async {
        (primary(&demo, &opts).await == Some(other)).then_some(())
    })
    .await;
    failover_key_cleared(&demo).await;
    wait_for("the former primary streams again", TIMEOUT, || async {
        streams(&demo, p0).await.then_some(())
    })
    .await;

    // 5. kill -9 of the whole primary node: the only other eligible member takes over
    //    (never the nofailover one), and the killed node rejoins when it comes back.
    kill_node(&mut demo, dir, other).await;
    wait_for("a new primary after the node loss", TIMEOUT, || async {
        (primary(&demo, &opts).await == Some(p0)).then_some(())
    })
    .await;
    writes_progress(&writer, 50, "writes after the node loss").await;
    demo.start_node(other).expect("restart the lost node");
    wait_for("the lost node rejoins as a replica", TIMEOUT, || async {
        streams(&demo, other).await.then_some(())
    })
    .await;

    let acked = writer.finish().await;
    let ever = monitor.finish().await;
    assert!(
        !ever.contains(&never),
        "the nofailover member was writable: {ever:?}"
    );
    assert!(acked.len() > 250, "the writer made progress: {}", acked.len());
    let history = ctl_ok(&demo, &["history"]);
    assert!(
        history.contains("switchover"),
        "history records the switchovers: {history}"
    );
    demo.stop().await;
}

/// A stalled (SIGSTOP) primary agent is fenced by its guard before anyone else promotes,
/// and writes nothing after SIGCONT; a primary whose WAL diverged rejoins with pg_rewind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_agent_is_fenced_and_diverged_primary_rewinds() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let (mut demo, opts) = start_pg_cluster(dir, 4551).await;
    let p0 = wait_primary(&demo, &opts, "a primary").await;
    let monitor = SplitBrainMonitor::start((0..3).map(|i| opts.pg_port(i)).collect());

    // 1. Stall the primary's agent for longer than ttl.
    let agent = demo.pid(p0).expect("agent pid") as i32;
    let postmaster = postmaster_pid(&data_dir(dir, p0)).expect("postmaster pid");
    signal(agent, libc::SIGSTOP);
    let p1 = wait_for(
        "another member promoted while the agent is stalled",
        TIMEOUT,
        || async { primary(&demo, &opts).await.filter(|p| *p != p0) },
    )
    .await;
    // The guard killed the stalled node's PostgreSQL (the monitor proves it happened before
    // the promotion: never two writable servers).
    assert!(
        !process_alive(postmaster),
        "the stalled primary's postmaster must be fenced"
    );
    signal(agent, libc::SIGCONT);
    wait_for("the stalled primary rejoins as a replica", TIMEOUT, || async {
        streams(&demo, p0).await.then_some(())
    })
    .await;

    // 2. Diverge: freeze the primary's WAL senders (nothing more reaches the replicas), write
    //    on the primary, then lose the whole node.
    let senders = wal_sender_pids(opts.pg_port(p1), 2).await;
    for &pid in &senders {
        signal(pid, libc::SIGSTOP);
    }
    let client = pg_connect(opts.pg_port(p1)).await.expect("connect to primary");
    client
        .batch_execute("CREATE TABLE diverged (id int); INSERT INTO diverged SELECT generate_series(1, 100)")
        .await
        .expect("diverging writes");
    drop(client);
    kill_node(&mut demo, dir, p1).await;
    for pid in senders {
        // Stopped processes do not notice their postmaster's death: end them too, or their
        // shared memory would keep the old primary from starting again.
        signal(pid, libc::SIGKILL);
    }
    let p2 = wait_for("a new primary", TIMEOUT, || async {
        primary(&demo, &opts).await.filter(|p| *p != p1)
    })
    .await;
    assert_eq!(
        pg_scalar(opts.pg_port(p2), "SELECT to_regclass('diverged') IS NULL")
            .await
            .as_deref(),
        Some("t"),
        "the new primary never saw the diverged writes"
    );

    // 3. The old primary comes back: pg_rewind, then it streams from the new primary.
    demo.start_node(p1).expect("restart the old primary");
    wait_for("the diverged primary rejoins as a replica", TIMEOUT, || async {
        streams(&demo, p1).await.then_some(())
    })
    .await;
    let log = std::fs::read_to_string(dir.join(format!("{}.log", names()[p1]))).unwrap_or_default();
    assert!(log.contains("pg_rewind done"), "the old primary was rewound");
    assert_eq!(
        pg_scalar(opts.pg_port(p1), "SELECT to_regclass('diverged') IS NULL")
            .await
            .as_deref(),
        Some("t"),
        "the rewound member dropped its diverged writes"
    );
    monitor.finish().await;
    demo.stop().await;
}

/// Maintenance mode: no automatic failover while paused; resuming lets it happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_blocks_failover_until_resume() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let (mut demo, opts) = start_pg_cluster(dir, 4561).await;
    let p0 = wait_primary(&demo, &opts, "a primary").await;
    ctl_ok(&demo, &["pause"]);
    let list = ctl_ok(&demo, &["list"]);
    assert!(list.contains("Maintenance mode: on"), "{list}");

    kill_node(&mut demo, dir, p0).await;
    // Three leases long, nobody may take over.
    let quiet_until = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < quiet_until {
        for i in (0..3).filter(|i| *i != p0) {
            let writable = pg_scalar(opts.pg_port(i), "SELECT NOT pg_is_in_recovery()").await;
            assert_ne!(
                writable.as_deref(),
                Some("t"),
                "node{} promoted while paused",
                i + 1
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // With no lease holder the keyspace cannot tell a crashed primary from one whose agent
    // was stopped while paused (src/ha/shutdown.rs): only a forced resume goes ahead.
    let refused = ctl(&demo, &["resume"]);
    assert!(
        !refused.status.success(),
        "resume with no lease holder must be refused"
    );
    ctl_ok(&demo, &["resume", "--force"]);
    let p1 = wait_primary(&demo, &opts, "a new primary after resume").await;
    assert_ne!(p1, p0);

    // reinit rebuilds a replica from the new primary; it is refused on the primary.
    let replica = (0..3).find(|i| *i != p0 && *i != p1).expect("the third member");
    wait_for("the replica follows the new primary", TIMEOUT, || async {
        streams(&demo, replica).await.then_some(())
    })
    .await;
    let refused = ctl(&demo, &["reinit", names()[p1], "--force"]);
    assert!(!refused.status.success(), "reinit of the primary must be refused");
    let marker = data_dir(dir, replica).join("pgquorum-reinit-marker");
    std::fs::write(&marker, "left by the test").unwrap();
    ctl_ok(&demo, &["reinit", names()[replica], "--force"]);
    assert!(!marker.exists(), "reinit emptied the data directory");
    wait_for("the reinitialised replica streams", TIMEOUT, || async {
        streams(&demo, replica).await.then_some(())
    })
    .await;
    demo.stop().await;
}

/// A whole-cluster power loss after a failover: the replicas that followed the new primary's
/// timeline come back on it, so one of them takes over when that primary stays dead. (A
/// replica's checkpoint still shows the old timeline until its next restartpoint, and after
/// the restart no receiver says which timeline it follows: read from the checkpoint alone,
/// its position past the old timeline's end looked like abandoned WAL and nobody was
/// promoted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn power_loss_after_failover_promotes_a_replica_of_the_new_timeline() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let (mut demo, opts) = start_pg_cluster(dir, 4571).await;
    let first = wait_primary(&demo, &opts, "a primary").await;

    // The first primary's machine dies: another member takes over on timeline 2.
    kill_node(&mut demo, dir, first).await;
    let second = wait_for("a new primary after the node loss", TIMEOUT, || async {
        primary(&demo, &opts).await.filter(|p| *p != first)
    })
    .await;
    let third = (0..3)
        .find(|i| *i != first && *i != second)
        .expect("a third member");
    let timeline = pg_scalar(
        opts.pg_port(second),
        "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)",
    )
    .await;
    assert_eq!(
        timeline.as_deref(),
        Some("00000002"),
        "the new primary's timeline"
    );

    // The lost machine comes back; both replicas stream timeline 2.
    demo.start_node(first).expect("restart the lost node");
    for i in [first, third] {
        wait_for("a replica streams timeline 2", TIMEOUT, || async {
            let tli = pg_scalar(
                opts.pg_port(i),
                "SELECT received_tli FROM pg_stat_wal_receiver WHERE status = 'streaming'",
            )
            .await;
            (tli.as_deref() == Some("2") && streams(&demo, i).await).then_some(())
        })
        .await;
    }

    // Power loss: every agent and postmaster at once. The new primary's machine stays dead.
    for i in 0..3 {
        kill_node(&mut demo, dir, i).await;
    }
    demo.start_node(first).expect("restart a replica");
    demo.start_node(third).expect("restart the other replica");
    let promoted = wait_for("a replica of timeline 2 promoted", TIMEOUT, || async {
        primary(&demo, &opts).await
    })
    .await;
    assert_ne!(promoted, second, "the dead primary is not running");
    demo.stop().await;
}
