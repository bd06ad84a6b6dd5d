//! Maintenance mode with real agents and PostgreSQL (issue 9, hole 9b): stopping the primary's
//! agent while paused leaves PostgreSQL running and taking writes, nobody takes over, `resume`
//! waits for the agent, and the agent started again leads the same server; outside
//! maintenance mode an agent stop still stops PostgreSQL and a replica takes over.

mod common;

use std::time::Duration;

use common::*;
use pgquorum::cluster::PgRunState;
use pgquorum::ctl::cluster_read::cluster_view;
use pgquorum::demo::{Demo, DemoOptions};

const TIMEOUT: Duration = Duration::from_secs(60);
/// The demo's lease (`ttl`, 2.5 s): the quiet period below lasts several of them.
const TTL: Duration = Duration::from_millis(2500);

/// The member holding the lease, as an index into the demo's agents.
async fn primary_index(demo: &Demo) -> usize {
    wait_for("a lease holder", TIMEOUT, || async {
        let live = (0..3).find(|i| demo.pid(*i).is_some())?;
        let view = cluster_view(&demo.endpoints[live]).await.ok()?;
        let leader = view.leader_name()?;
        leader
            .trim_start_matches("node")
            .parse::<usize>()
            .ok()
            .map(|n| n - 1)
    })
    .await
}

/// `pgquorumctl ARGS` against a live agent: (succeeded, stdout + stderr).
async fn ctl(demo: &Demo, args: &[&str]) -> (bool, String) {
    let live = (0..3).find(|i| demo.pid(*i).is_some()).expect("a running agent");
    let mut all = vec!["-e".to_string(), demo.endpoints[live].clone()];
    all.extend(args.iter().map(|a| a.to_string()));
    let (ok, out, err) = run_ctl(&all).await;
    (ok, format!("{out}{err}"))
}

async fn insert(port: u16, id: i64) -> Result<(), String> {
    let client = pg_connect(port).await.map_err(|e| e.to_string())?;
    client
        .execute("INSERT INTO maint VALUES ($1)", &[&id])
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn writable(opts: &DemoOptions, i: usize) -> bool {
    pg_scalar(opts.pg_port(i), "SELECT NOT pg_is_in_recovery()")
        .await
        .as_deref()
        == Some("t")
}

/// Kills a postmaster left running without its agent when the test fails half-way (nothing
/// else would: that is the point of the test), so it does not hold its port for the next run.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if process_alive(self.0) {
            // SAFETY: plain kill(2) of the process group of a postmaster this test started.
            unsafe { libc::kill(-self.0, libc::SIGKILL) };
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_agent_stop_leaves_the_primary_running_until_its_agent_is_back() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let (mut demo, opts) = start_pg_cluster(dir, 4951).await;
    // node3 leads: with as much WAL as node1 and node2 it would lose an ordinary leader race
    // on its name, so its agent can take the lease back below only by the maintenance-mode
    // rule (a running primary takes a free lease).
    if primary_index(&demo).await != 2 {
        // Asked again until it happens: right after the cluster starts, node3 may not have
        // published its replay position yet, and the switchover is then refused as lagging.
        wait_for("node3 to lead", TIMEOUT, || async {
            if primary_index(&demo).await == 2 && writable(&opts, 2).await {
                return Some(());
            }
            let _ = ctl(&demo, &["switchover", "--candidate", "node3", "--force"]).await;
            None
        })
        .await;
        demo.wait_postgres_healthy(TIMEOUT).await.unwrap();
    }
    let p = 2;
    let name = format!("node{}", p + 1);
    let port = opts.pg_port(p);
    let data_dir = dir.join(&name).join("pgdata");
    pg_connect(port)
        .await
        .unwrap()
        .batch_execute("CREATE TABLE maint (id bigint PRIMARY KEY)")
        .await
        .unwrap();
    let (ok, out) = ctl(&demo, &["pause", "--wait"]).await;
    assert!(ok, "pause: {out}");
    let postmaster = postmaster_pid(&data_dir).expect("the primary's postmaster");
    let _unattended = KillOnDrop(postmaster);

    // Stop the primary's agent (SIGTERM, as systemd does): PostgreSQL stays up.
    demo.terminate(p).await;
    // Several leases long: the primary takes writes, nobody else is promoted.
    let mut id = 0i64;
    let quiet_until = tokio::time::Instant::now() + 4 * TTL;
    while tokio::time::Instant::now() < quiet_until {
        id += 1;
        insert(port, id)
            .await
            .unwrap_or_else(|e| panic!("the primary refused write {id} after its agent stopped: {e}"));
        for i in (0..3).filter(|i| *i != p) {
            assert!(!writable(&opts, i).await, "node{} promoted while paused", i + 1);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(postmaster_pid(&data_dir), Some(postmaster));
    assert!(process_alive(postmaster), "the postmaster was stopped");
    let log = std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
    assert!(
        log.contains("maintenance mode: leaving PostgreSQL running"),
        "the agent said what it decided"
    );

    // The keyspace shows it unattended (then, once the lease ran out, no lease holder):
    // resume is refused either way.
    let view = cluster_view(&demo.endpoints[(p + 1) % 3]).await.unwrap();
    assert!(
        view.leader.is_none()
            || view
                .member(&name)
                .is_some_and(|m| m.state == PgRunState::Unattended),
        "{view:?}"
    );
    let (ok, out) = ctl(&demo, &["resume"]).await;
    assert!(
        !ok,
        "resume must be refused while {name} runs without its agent: {out}"
    );
    assert!(out.contains("resume refused"), "{out}");
    // The agents check it too: lifting `pause` through edit-config is refused the same way.
    let (ok, out) = ctl(&demo, &["edit-config", "--set", "pause="]).await;
    assert!(
        !ok,
        "edit-config lifted pause while {name} runs without its agent: {out}"
    );
    assert!(out.contains("resume refused"), "{out}");

    // The agent comes back: it takes the lease again for the same server (not restarted).
    demo.start_node(p).unwrap();
    wait_for(&format!("{name} to hold the lease again"), TIMEOUT, || async {
        let view = cluster_view(&demo.endpoints[p]).await.ok()?;
        let up = view.member(&name).is_some_and(|m| m.state.is_up());
        (view.leader_name() == Some(name.as_str()) && up).then_some(())
    })
    .await;
    assert_eq!(
        postmaster_pid(&data_dir),
        Some(postmaster),
        "PostgreSQL was restarted"
    );
    id += 1;
    insert(port, id).await.expect("writes continue");
    let (ok, out) = ctl(&demo, &["resume"]).await;
    assert!(ok, "resume once the agent is back: {out}");
    id += 1;
    insert(port, id).await.expect("writes continue after resume");

    // The new agent's fence guard is attached: killing the agent takes PostgreSQL down.
    demo.kill9(p).await;
    wait_for(
        "the re-attached fence to kill the postmaster",
        TIMEOUT,
        || async { (!process_alive(postmaster)).then_some(()) },
    )
    .await;
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unpaused_agent_stop_stops_postgres_and_a_replica_takes_over() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let (mut demo, opts) = start_pg_cluster(dir, 4961).await;
    let p = primary_index(&demo).await;
    let data_dir = dir.join(format!("node{}", p + 1)).join("pgdata");
    let postmaster = postmaster_pid(&data_dir).expect("the primary's postmaster");
    demo.terminate(p).await;
    assert!(
        !process_alive(postmaster),
        "the agent's stop left PostgreSQL running"
    );
    wait_for("another member to take over", TIMEOUT, || async {
        let next = (0..3).filter(|i| *i != p).find(|i| demo.pid(*i).is_some())?;
        let view = cluster_view(&demo.endpoints[next]).await.ok()?;
        let leader = view
            .leader_name()?
            .trim_start_matches("node")
            .parse::<usize>()
            .ok()?
            - 1;
        (leader != p && writable(&opts, leader).await).then_some(())
    })
    .await;
    demo.stop().await;
}
