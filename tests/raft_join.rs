//! Adding a member by starting it: a pristine agent whose partners include a member of a
//! formed group of its scope joins that group (learner, then voter) instead of waiting
//! forever or bootstrapping a second group; agents whose member lists disagree never form
//! two groups.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use pgquorum::ctl::cluster_read::cluster_view;
use pgquorum::demo::DemoOptions;

fn options(dir: &TestDir, base_port: u16, postgres: bool) -> DemoOptions {
    DemoOptions {
        bootstrap_parameters: Vec::new(),
        tls: false,
        dir: Some(dir.path().to_path_buf()),
        base_port,
        nodes: 3,
        exe: Some(PathBuf::from(EXE)),
        extra_config: String::new(),
        postgres,
    }
}

fn endpoint(opts: &DemoOptions, i: usize) -> String {
    format!("127.0.0.1:{}", opts.base_port + i as u16)
}

fn start(dir: &TestDir, opts: &DemoOptions, i: usize, partners: &[usize]) -> SoloAgent {
    let yaml = solo_agent_yaml(dir.path(), opts, "join", i, partners);
    SoloAgent::start(dir.path(), &format!("node{}", i + 1), &endpoint(opts, i), &yaml)
}

const SYSTEM_ID: &str = "select system_identifier from pg_control_system()";

/// Patroni's habit: start one member alone, let it become primary, then start the others
/// naming it in `partner_addrs`. They join its Raft group, clone and stream from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_started_later_join_the_running_primarys_group() {
    let dir = TestDir::new();
    let opts = options(&dir, 4701, true);
    let ep0 = endpoint(&opts, 0);
    let node1 = start(&dir, &opts, 0, &[]);
    wait_for(
        "node1 alone becomes primary",
        Duration::from_secs(120),
        || async {
            let view = cluster_view(&ep0).await.ok()?;
            let up = view.member("node1").is_some_and(|m| m.state.is_up());
            (view.leader_name() == Some("node1") && up).then_some(())
        },
    )
    .await;
    let primary_id = pg_scalar(opts.pg_port(0), SYSTEM_ID)
        .await
        .expect("primary answers");

    let node2 = start(&dir, &opts, 1, &[0]);
    let node3 = start(&dir, &opts, 2, &[0, 1]);

    let rows = wait_for("three Raft voters", Duration::from_secs(120), || async {
        let rows = pgquorum::ctl::fetch_raft_status(&endpoint(&opts, 2)).await.ok()?;
        let voters = rows
            .iter()
            .filter(|r| r.error.is_none() && (r.role == "leader" || r.role == "follower"))
            .count();
        (rows.len() == 3 && voters == 3).then_some(rows)
    })
    .await;
    let names: Vec<&str> = rows.iter().map(|r| r.member.as_str()).collect();
    assert_eq!(names, ["node1", "node2", "node3"]);

    wait_for(
        "two replicas streaming from node1",
        Duration::from_secs(180),
        || async {
            let n = pg_scalar(
                opts.pg_port(0),
                "select count(*) from pg_stat_replication where state = 'streaming'",
            )
            .await?;
            (n == "2").then_some(())
        },
    )
    .await;
    for i in 1..3 {
        let id = wait_for("the replica answers", Duration::from_secs(60), || {
            pg_scalar(opts.pg_port(i), SYSTEM_ID)
        })
        .await;
        assert_eq!(
            id,
            primary_id,
            "node{} is a clone of the primary, not a second bootstrap",
            i + 1
        );
    }
    for agent in [&node2, &node3] {
        let log = agent.log_text();
        assert!(
            !log.contains("initialised the group"),
            "{} initialised a group of its own",
            agent.name
        );
        assert!(
            log.contains("joined the group as a voter"),
            "{}: {log}",
            agent.name
        );
    }
    for agent in [node3, node2, node1] {
        agent.stop().await;
    }
}

/// node1 lists node2 and node3, node2 lists only node1: neither has a majority of its set
/// pristine with the identical set, so both wait rather than forming two groups; once node3
/// (listing node1 and node2) starts, one group of three forms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_lists_that_disagree_never_form_two_groups() {
    let dir = TestDir::new();
    let opts = options(&dir, 4711, false);
    let (ep0, ep1, ep2) = (endpoint(&opts, 0), endpoint(&opts, 1), endpoint(&opts, 2));
    let node1 = start(&dir, &opts, 0, &[1, 2]);
    let node2 = start(&dir, &opts, 1, &[0]);

    let waits_for = |agent: &SoloAgent, disagreeing: &str| {
        let needle = format!("disagreeing=[\"{disagreeing}\"]");
        agent
            .log_text()
            .lines()
            .any(|l| l.contains("waiting before initialising") && l.contains(&needle))
    };
    // Either both decided to wait, having seen each other's list, or one formed a group.
    wait_for(
        "node1 and node2 each waiting (having seen the other's different member list) or a group formed",
        Duration::from_secs(60),
        || async {
            let waiting = waits_for(&node1, &ep1) && waits_for(&node2, &ep0);
            let mut formed = false;
            for ep in [&ep0, &ep1] {
                formed |= node_status(ep).await?.initialized;
            }
            (waiting || formed).then_some(())
        },
    )
    .await;
    for ep in [&ep0, &ep1] {
        let status = node_status(ep).await.expect("agent answers");
        assert!(!status.initialized, "{ep} formed a group: {status:?}");
    }

    let node3 = start(&dir, &opts, 2, &[0, 1]);
    let expected: BTreeSet<String> = [&ep0, &ep1, &ep2].into_iter().cloned().collect();
    wait_for(
        "one group whose three voters all agree on the leader",
        Duration::from_secs(60),
        || async {
            let mut leaders = BTreeSet::new();
            for ep in [&ep0, &ep1, &ep2] {
                let s = node_status(ep).await?;
                let voters: BTreeSet<String> = s.voters.values().cloned().collect();
                if voters != expected || !s.has_leader {
                    return None;
                }
                leaders.insert(s.leader_id);
            }
            (leaders.len() == 1).then_some(())
        },
    )
    .await;
    assert!(
        !node2.log_text().contains("initialised the group"),
        "node2 initialised a group of its own"
    );
    for agent in [node3, node2, node1] {
        agent.stop().await;
    }
}

/// A partner of another scope is never joined nor counted, and a join request across scopes
/// is refused with a typed outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_of_another_scope_is_never_joined() {
    use pgquorum::grpc::pb::admin::{admin_client::AdminClient, JoinOutcome, JoinRequest};

    let dir = TestDir::new();
    let opts = options(&dir, 4721, false);
    let (ep0, ep1) = (endpoint(&opts, 0), endpoint(&opts, 1));
    let other = solo_agent_yaml(dir.path(), &opts, "other", 0, &[]);
    let node1 = SoloAgent::start(dir.path(), "node1", &ep0, &other);
    wait_for(
        "node1 forms its own one-voter group",
        Duration::from_secs(30),
        || async { node_status(&ep0).await.filter(|s| s.has_leader).map(|_| ()) },
    )
    .await;
    let node2 = start(&dir, &opts, 1, &[0]);
    wait_for(
        "node2 warns about node1's scope",
        Duration::from_secs(30),
        || async {
            let log = node2.log_text();
            (log.contains("belongs to another scope") && log.contains("their_scope=other")).then_some(())
        },
    )
    .await;
    let status = node_status(&ep1).await.expect("node2 answers");
    assert!(!status.initialized, "node2 formed or joined a group: {status:?}");
    let status = node_status(&ep0).await.expect("node1 answers");
    assert_eq!(status.voters.values().collect::<Vec<_>>(), [&ep0]);

    let channel = pgquorum::grpc::lazy_channel(&ep0, Duration::from_secs(1)).unwrap();
    let reply = AdminClient::new(channel)
        .join_cluster(JoinRequest {
            scope: "join".into(),
            name: "node2".into(),
            addr: ep1.clone(),
            forwarded: false,
        })
        .await
        .expect("join answered")
        .into_inner();
    assert_eq!(reply.outcome(), JoinOutcome::OtherScope, "{reply:?}");
    assert!(node1
        .log_text()
        .contains("refused a join request from another scope"));
    let status = node_status(&ep0).await.expect("node1 answers");
    assert_eq!(status.voters.len() + status.learners.len(), 1, "{status:?}");
    node2.stop().await;
    node1.stop().await;
}

/// Two agents with one `name` (found by the fault suite's duplicate-name scenario: the second
/// became a fourth voter and fought over the first one's replication slot). The second agent
/// now refuses to start at all (`agent::name_check`, issue 9 hole 12); behind that, the Raft
/// leader refuses a join under the name of a live member at another address (what two agents
/// started before either published its key would meet), and nobody becomes a voter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reusing_a_live_members_name_is_refused() {
    let dir = TestDir::new();
    let opts = options(&dir, 4731, true);
    let ep0 = endpoint(&opts, 0);
    let node1 = start(&dir, &opts, 0, &[]);
    wait_for(
        "node1 publishes its member key",
        Duration::from_secs(120),
        || async {
            let view = cluster_view(&ep0).await.ok()?;
            view.member("node1").filter(|m| m.state.is_up()).map(|_| ())
        },
    )
    .await;
    // A Raft-only agent at the next address, named node1 too, naming node1 as its partner.
    let raft_only = options(&dir, 4731, false);
    let yaml =
        solo_agent_yaml(dir.path(), &raft_only, "join", 1, &[0]).replace("name: node2\n", "name: node1\n");
    let mut duplicate = SoloAgent::start(dir.path(), "node1-duplicate", &endpoint(&opts, 1), &yaml);
    let exited = duplicate.exited_within(Duration::from_secs(30)).await;
    assert!(
        exited.is_some_and(|s| !s.success()),
        "the duplicate did not refuse to start: {}",
        duplicate.log_text()
    );
    assert!(
        duplicate
            .log_text()
            .contains(&format!("another agent named node1 is running at {ep0}")),
        "{}",
        duplicate.log_text()
    );

    // The leader's own refusal of such a join.
    let channel = pgquorum::grpc::lazy_channel(&ep0, Duration::from_millis(500)).expect("channel");
    let mut client = pgquorum::grpc::pb::admin::admin_client::AdminClient::new(channel);
    let reply = client
        .join_cluster(pgquorum::grpc::pb::admin::JoinRequest {
            scope: "join".into(),
            name: "node1".into(),
            addr: endpoint(&opts, 1),
            forwarded: false,
        })
        .await
        .expect("node1 answers the join")
        .into_inner();
    assert_eq!(
        reply.outcome(),
        pgquorum::grpc::pb::admin::JoinOutcome::NameTaken,
        "{reply:?}"
    );
    assert!(node1
        .log_text()
        .contains("refused a join request: a member of that name runs at another address"));
    let status = node_status(&ep0).await.expect("node1 answers");
    assert_eq!(
        status.voters.values().collect::<Vec<_>>(),
        [&ep0],
        "the duplicate never became a voter: {status:?}"
    );
    assert!(status.learners.is_empty(), "nor a learner: {status:?}");
    node1.stop().await;
}
