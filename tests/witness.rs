//! Two data nodes plus a witness (`pgquorum-controller`), real processes on loopback: two
//! agents with PostgreSQL and one controller (docs/witness.md).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{pg_options, pg_scalar, solo_agent_yaml, wait_for, SoloAgent, TestDir};
use pgquorum::cluster::{ClusterView, PgRunState};
use pgquorum::ctl::cluster_read::cluster_view;
use pgquorum::demo::DemoOptions;

const SCOPE: &str = "twoplusone";
const WITNESS: usize = 2;

fn endpoint(opts: &DemoOptions, i: usize) -> String {
    format!("127.0.0.1:{}", opts.base_port + i as u16)
}

/// The witness's config in the agent's layout, its health/metrics endpoint on REST port 2.
fn witness_yaml(dir: &Path, opts: &DemoOptions) -> String {
    format!(
        "scope: {SCOPE}\nname: witness\nraft:\n  self_addr: {me}\n  partner_addrs:\n  - {a}\n  - {b}\n  \
         data_dir: {data}\nrestapi:\n  listen: 127.0.0.1:{rest}\nlog:\n  level: INFO\n",
        me = endpoint(opts, WITNESS),
        a = endpoint(opts, 0),
        b = endpoint(opts, 1),
        data = dir.join("witness").join("raft").display(),
        rest = opts.rest_port(WITNESS),
    )
}

fn start_data_node(dir: &Path, opts: &DemoOptions, i: usize) -> SoloAgent {
    let other = 1 - i;
    let yaml = solo_agent_yaml(dir, opts, SCOPE, i, &[other, WITNESS]);
    SoloAgent::start(dir, &format!("node{}", i + 1), &endpoint(opts, i), &yaml)
}

fn start_witness(dir: &Path, opts: &DemoOptions) -> SoloAgent {
    SoloAgent::start_witness(dir, "witness", &endpoint(opts, WITNESS), &witness_yaml(dir, opts))
}

async fn in_recovery(opts: &DemoOptions, i: usize) -> Option<bool> {
    pg_scalar(opts.pg_port(i), "SELECT pg_is_in_recovery()")
        .await
        .map(|v| v == "t")
}

/// Node `i` runs the primary and holds the lease, the other node streams from it on the
/// primary's timeline (a replica still on an older timeline could not take over: its WAL is
/// not the newest timeline's).
async fn wait_primary_with_replica(opts: &DemoOptions, i: usize, what: &str) -> ClusterView {
    let (me, other) = (format!("node{}", i + 1), format!("node{}", 2 - i));
    wait_for(what, Duration::from_secs(180), || async {
        let view = cluster_view(&endpoint(opts, i)).await.ok()?;
        let timeline = view.member(&me)?.timeline?;
        let replica = view.member(&other)?;
        let streaming = replica.state == PgRunState::Streaming && replica.timeline == Some(timeline);
        let received = pg_scalar(
            opts.pg_port(1 - i),
            "SELECT received_tli FROM pg_stat_wal_receiver",
        )
        .await;
        let primary = in_recovery(opts, i).await == Some(false);
        let on_timeline = received == Some(timeline.to_string());
        (view.leader_name() == Some(me.as_str()) && streaming && on_timeline && primary).then_some(view)
    })
    .await
}

/// The primary's node `i`: its lease renewed twice (revision up by 2) and still its own.
async fn wait_lease_renewed(opts: &DemoOptions, i: usize, from: &ClusterView) {
    let me = format!("node{}", i + 1);
    let start = from.leader.as_ref().expect("a lease").revision;
    wait_for(
        "the primary to renew its lease twice",
        Duration::from_secs(60),
        || async {
            let view = cluster_view(&endpoint(opts, i)).await.ok()?;
            let lease = view.leader.as_ref()?;
            assert_eq!(lease.holder, me, "the lease changed hands without the witness");
            (lease.revision >= start + 2).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_data_nodes_and_a_witness_fail_over_and_refuse_without_quorum() {
    let dir = TestDir::new();
    let opts = pg_options(dir.path(), 21400, 3, &[]);
    let witness = start_witness(dir.path(), &opts);
    let mut nodes = vec![
        Some(start_data_node(dir.path(), &opts, 0)),
        Some(start_data_node(dir.path(), &opts, 1)),
    ];
    let view = wait_for(
        "a primary and a streaming replica",
        Duration::from_secs(180),
        || async {
            let view = cluster_view(&endpoint(&opts, 0)).await.ok()?;
            let leader = view.leader_name()?.to_string();
            let streaming = view
                .members
                .iter()
                .any(|m| m.name != leader && m.state == PgRunState::Streaming);
            (streaming && !view.witnesses.is_empty()).then_some(view)
        },
    )
    .await;

    // The witness is a voter, a `witnesses/` record, never a member.
    assert_eq!(
        view.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        ["node1", "node2"],
        "members/ holds the PostgreSQL members only"
    );
    assert_eq!(view.witnesses[0].name, "witness");
    let (ok, list, err) = common::run_ctl(&["-e".into(), endpoint(&opts, 0), "list".into()]).await;
    assert!(ok, "{err}");
    let row = list
        .lines()
        .find(|l| l.contains("witness"))
        .expect("a witness row in list");
    assert!(row.contains("Witness") && row.contains("running"), "{list}");
    let (ok, raft, err) =
        common::run_ctl(&["-e".into(), endpoint(&opts, 1), "raft".into(), "status".into()]).await;
    assert!(ok, "{err}");
    let row = raft
        .lines()
        .find(|l| l.contains(&endpoint(&opts, WITNESS)))
        .expect("the witness in raft status");
    assert!(row.split_whitespace().any(|c| c == "witness"), "{raft}");
    let (status, metrics) = common::http_call(opts.rest_port(WITNESS), "GET", "/metrics", None, "").await;
    assert_eq!(status, 200);
    // An ordinary voter: it may be the Raft leader as well as a follower.
    let role =
        |r: &str| format!("pgquorum_raft_role{{scope=\"twoplusone\",name=\"witness\",role=\"{r}\"}} 1");
    assert!(
        metrics.contains(&role("follower")) || metrics.contains(&role("leader")),
        "{metrics}"
    );
    assert_eq!(
        common::http_status(opts.rest_port(WITNESS), "GET", "/health", None).await,
        200
    );

    // 1. The primary's node dies: the other data node takes over (witness + survivor = 2 of 3).
    let first = view
        .leader_name()
        .map(|n| if n == "node1" { 0 } else { 1 })
        .unwrap();
    let second = 1 - first;
    nodes[first].take().unwrap().kill9().await;
    wait_primary_with_replica_or_alone(&opts, second).await;
    nodes[first] = Some(start_data_node(dir.path(), &opts, first));
    let view = wait_primary_with_replica(&opts, second, "the old primary back as a replica").await;
    // No restartpoint is forced on the rejoined replica: its timeline is read from the WAL
    // segments it holds (postgres::wal_segments), so its position counts on timeline 2 at
    // once and it can win the race in step 4.

    // 2. The witness dies: nothing changes while both data nodes are up.
    witness.kill9().await;
    wait_lease_renewed(&opts, second, &view).await;
    let (ok, list, err) = common::run_ctl(&["-e".into(), endpoint(&opts, first), "list".into()]).await;
    assert!(ok, "{err}");
    assert!(
        list.lines()
            .any(|l| l.contains("Witness") && l.contains("unreachable")),
        "{list}"
    );

    // 3. The witness and the primary's node down: the survivor has no quorum, must not
    // promote, and says why in list, /patroni, /metrics and its log.
    nodes[second].take().unwrap().kill9().await;
    let survivor = nodes[first].as_ref().unwrap();
    let body = wait_for(
        "the survivor's /patroni to explain the lost quorum",
        Duration::from_secs(60),
        || async {
            let (status, body) = common::http_call(opts.rest_port(first), "GET", "/patroni", None, "").await;
            (status == 200 && body.contains("\"raft_quorum\"")).then_some(body)
        },
    )
    .await;
    let primary_name = format!("node{}", second + 1);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let message = json["raft_quorum"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("1 of 3 voters answer, 2 are needed"),
        "{message}"
    );
    assert!(
        message.contains(&format!("{primary_name} at {}", endpoint(&opts, second))),
        "{message}"
    );
    assert!(
        message.contains(&format!("witness witness at {}", endpoint(&opts, WITNESS))),
        "{message}"
    );
    let (_, metrics) = common::http_call(opts.rest_port(first), "GET", "/metrics", None, "").await;
    let survivor_name = format!("node{}", first + 1);
    assert!(
        metrics.contains(&format!(
            "pgquorum_raft_quorum{{scope=\"{SCOPE}\",name=\"{survivor_name}\"}} 0"
        )),
        "{metrics}"
    );
    let (ok, _, err) = common::run_ctl(&["-e".into(), endpoint(&opts, first), "list".into()]).await;
    assert!(!ok);
    assert!(
        err.contains("no quorum of Raft voters reachable") && err.contains("witness witness at"),
        "{err}"
    );
    wait_for("the survivor's log line", Duration::from_secs(10), || async {
        survivor
            .log_text()
            .contains("no quorum of Raft voters reachable")
            .then_some(())
    })
    .await;
    assert_eq!(
        in_recovery(&opts, first).await,
        Some(true),
        "the survivor promoted without a quorum"
    );

    // 4. The witness back: a quorum again, and the failover goes ahead.
    let witness = start_witness(dir.path(), &opts);
    wait_for(
        "the survivor to take over once the witness is back",
        Duration::from_secs(120),
        || async {
            let view = cluster_view(&endpoint(&opts, first)).await.ok()?;
            let primary = in_recovery(&opts, first).await == Some(false);
            (view.leader_name() == Some(survivor_name.as_str()) && primary).then_some(())
        },
    )
    .await;
    let (_, body) = common::http_call(opts.rest_port(first), "GET", "/patroni", None, "").await;
    assert!(!body.contains("raft_quorum"), "{body}");

    for node in nodes.into_iter().flatten() {
        node.stop().await;
    }
    witness.stop().await;
}

/// Node `i` runs the primary and holds the lease (its peer may be down).
async fn wait_primary_with_replica_or_alone(opts: &DemoOptions, i: usize) {
    let me = format!("node{}", i + 1);
    wait_for(
        "the other data node to become primary",
        Duration::from_secs(120),
        || async {
            let view = cluster_view(&endpoint(opts, i)).await.ok()?;
            let primary = in_recovery(opts, i).await == Some(false);
            (view.leader_name() == Some(me.as_str()) && primary).then_some(())
        },
    )
    .await;
}

/// Patroni's `patroni_raft_controller` file, unchanged: `raft` only, no `scope`, no `name`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_starts_from_a_patroni_controller_config() {
    let dir = TestDir::new();
    let controller = common::controller_exe();
    let mut opts = pg_options(dir.path(), 21500, 3, &[]);
    opts.postgres = false;
    let password = [("password", "shared-secret".to_string())];
    let agents: Vec<SoloAgent> = (0..2)
        .map(|i| {
            let yaml = common::with_raft_keys(
                &solo_agent_yaml(dir.path(), &opts, "patroni-w", i, &[1 - i, WITNESS]),
                &password,
            );
            SoloAgent::start(dir.path(), &format!("node{}", i + 1), &endpoint(&opts, i), &yaml)
        })
        .collect();
    let file = dir.path().join("patroni-controller.yml");
    std::fs::write(
        &file,
        format!(
            "raft:\n  self_addr: '{me}'\n  partner_addrs: ['{a}', '{b}']\n  data_dir: {data}\n  password: shared-secret\n",
            me = endpoint(&opts, WITNESS),
            a = endpoint(&opts, 0),
            b = endpoint(&opts, 1),
            data = dir.path().join("controller").display(),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(controller)
        .arg("--validate-config")
        .arg(&file)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && said.contains("configuration is valid"),
        "{said}"
    );
    assert!(said.contains("learned from the partners"), "{said}");

    let name = format!("witness-127.0.0.1-{}", opts.base_port + WITNESS as u16);
    let yaml = std::fs::read_to_string(&file).unwrap();
    let witness = SoloAgent::start_witness(dir.path(), "controller", &endpoint(&opts, WITNESS), &yaml);
    // Asked with pgquorumctl and the cluster's password (this test process's own transport
    // is shared with the other test).
    let raft_status = |at: String| async move {
        let args: Vec<String> = [
            "-e",
            &at,
            "--password",
            "shared-secret",
            "--json",
            "raft",
            "status",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let (ok, out, _) = common::run_ctl(&args).await;
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).ok().filter(|_| ok)?;
        Some(rows)
    };
    let voting_witness = |rows: Vec<serde_json::Value>| {
        let w = rows
            .iter()
            .find(|r| r["address"] == endpoint(&opts, WITNESS).as_str())?;
        let voting = rows
            .iter()
            .all(|r| r["role"] != "learner" && r["error"].is_null());
        (w["kind"] == "witness" && w["member"] == name.as_str() && voting && rows.len() == 3).then_some(())
    };
    wait_for(
        "the controller to vote as a witness",
        Duration::from_secs(60),
        || async { voting_witness(raft_status(endpoint(&opts, 0)).await?) },
    )
    .await;
    // Restarted, it takes the scope from its data directory.
    witness.kill9().await;
    let witness = SoloAgent::start_witness(dir.path(), "controller", &endpoint(&opts, WITNESS), &yaml);
    wait_for(
        "the restarted controller to answer",
        Duration::from_secs(60),
        || async {
            let restarted = witness.log_text().matches("pgquorum-controller starting").count() == 2;
            voting_witness(raft_status(endpoint(&opts, WITNESS)).await?).filter(|_| restarted)
        },
    )
    .await;
    assert!(witness
        .log_text()
        .contains("using cluster \"patroni-w\", the one raft.data_dir belongs to"));
    witness.stop().await;
    for agent in agents {
        agent.stop().await;
    }
}
