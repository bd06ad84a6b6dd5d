//! The agents' gRPC port (Raft RPCs and the admin service): mutual TLS from one cluster CA,
//! the `raft.password` shared secret, and the cluster identity carried on every RPC.
//! Raft-only agents (no PostgreSQL) on 127.0.0.1, ports 4801–4824.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use pgquorum::demo::DemoOptions;
use pgquorum::grpc::certs::{generate, NodeSpec};

fn endpoint(opts: &DemoOptions, i: usize) -> String {
    format!("127.0.0.1:{}", opts.base_port + i as u16)
}

/// CA, `node1`..`nodeN` (all 127.0.0.1) and a client certificate in `dir`.
fn certs(dir: &Path, nodes: usize) {
    let specs: Vec<NodeSpec> = (1..=nodes)
        .map(|i| NodeSpec::parse(&format!("node{i}=127.0.0.1")).unwrap())
        .collect();
    generate(dir, &specs).expect("generate certificates");
}

fn start(
    dir: &TestDir,
    opts: &DemoOptions,
    scope: &str,
    i: usize,
    partners: &[usize],
    keys: &[(&str, String)],
) -> SoloAgent {
    let yaml = with_raft_keys(&solo_agent_yaml(dir.path(), opts, scope, i, partners), keys);
    SoloAgent::start(dir.path(), &format!("node{}", i + 1), &endpoint(opts, i), &yaml)
}

async fn wait_for_log(agent: &SoloAgent, what: &str, needle: &str) -> String {
    wait_for(what, Duration::from_secs(30), || async {
        let log = agent.log_text();
        log.contains(needle).then_some(log)
    })
    .await
}

fn args(endpoint: &str, flags: &[String], command: &[&str]) -> Vec<String> {
    let mut args = vec!["-e".to_string(), endpoint.to_string()];
    args.extend(flags.iter().cloned());
    args.extend(command.iter().map(|s| s.to_string()));
    args
}

/// Three agents with certificates of one CA form a group and serve pgquorumctl with the
/// client certificate; pgquorumctl without it or with another CA's is refused; a fourth agent
/// with another CA's certificate, naming the group as its partners, neither joins nor
/// disturbs it nor reads it, and its log says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_the_cluster_ca() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), 4801, false);
    let (ours, foreign) = (dir.path().join("certs"), dir.path().join("foreign-certs"));
    certs(&ours, 3);
    certs(&foreign, 4);
    let mut agents: Vec<SoloAgent> = (0..3)
        .map(|i| {
            let partners: Vec<usize> = (0..3).filter(|j| *j != i).collect();
            start(
                &dir,
                &opts,
                "sec",
                i,
                &partners,
                &tls_keys(&ours, &format!("node{}", i + 1)),
            )
        })
        .collect();
    let ep = endpoint(&opts, 0);
    let client = ctl_tls_flags(&ours);
    let (leader, term, members) = wait_for("the TLS group has a leader", Duration::from_secs(60), || {
        ctl_raft_leader(&ep, &client)
    })
    .await;
    assert_eq!(members.len(), 3, "{members:?}");
    // On a node, `-c` with the agent's config uses its certificate, key and CA.
    let config = dir.path().join("node2.yml").display().to_string();
    let (ok, stdout, stderr) = run_ctl(&["-c".into(), config, "get".into(), "leader".into()]).await;
    assert!(ok, "pgquorumctl -c failed: {stderr}");
    assert!(stdout.contains("leader"), "{stdout}");
    // Patroni's `ctl` section of a `-c` file names pgquorumctl's own certificate.
    let file = |n: &str| ours.join(n).display().to_string();
    let yaml = solo_agent_yaml(dir.path(), &opts, "sec", 1, &[0, 2])
        + &format!(
            "ctl:\n  certfile: {}\n  keyfile: {}\n  cacert: {}\n",
            file("client.pem"),
            file("client-key.pem"),
            file("ca.pem")
        );
    let ctl_config = dir.path().join("ctl.yml");
    std::fs::write(&ctl_config, yaml).unwrap();
    let config = ctl_config.display().to_string();
    let (ok, _, stderr) = run_ctl(&["-c".into(), config, "get".into(), "leader".into()]).await;
    assert!(ok, "pgquorumctl -c with a ctl section failed: {stderr}");

    // pgquorumctl without a client certificate, and with one of another CA.
    let (ok, _, stderr) = run_ctl(&args(&ep, &[], &["raft", "status"])).await;
    assert!(!ok, "a plain-text pgquorumctl was served");
    assert!(
        stderr.contains("Error: agent at 127.0.0.1:4801: cannot connect"),
        "{stderr}"
    );
    assert!(stderr.contains("If it requires TLS, give --cacert"), "{stderr}");
    let (ok, _, stderr) = run_ctl(&args(&ep, &ctl_tls_flags(&foreign), &["get", "leader"])).await;
    assert!(!ok, "pgquorumctl trusting another CA was served");
    assert!(
        stderr.contains("Error: agent at 127.0.0.1:4801: cannot connect"),
        "{stderr}"
    );
    assert!(
        stderr.contains("was its certificate signed by --cacert's CA"),
        "{stderr}"
    );
    // The CA certificate is public: a client certificate of another CA is refused by the agent
    // even when the client trusts the cluster CA.
    let mut forged = ctl_tls_flags(&foreign);
    forged[1] = ours.join("ca.pem").display().to_string();
    let (ok, _, stderr) = run_ctl(&args(&ep, &forged, &["get", "leader"])).await;
    assert!(!ok, "pgquorumctl with another CA's client certificate was served");
    assert!(
        stderr.contains("Error: agent at 127.0.0.1:4801: cannot connect"),
        "{stderr}"
    );

    // An agent with another CA's certificate (trusting the cluster CA, which is public),
    // naming the group as its partners.
    let mut keys = tls_keys(&foreign, "node4");
    keys[2].1 = ours.join("ca.pem").display().to_string();
    let intruder = start(&dir, &opts, "sec", 3, &[0, 1, 2], &keys);
    // The group's agents refuse its certificate in the handshake (TLS alert "unknown CA").
    wait_for_log(
        &intruder,
        "the intruder logs the TLS refusal",
        "fatal alert: UnknownCA",
    )
    .await;
    wait_for_log(
        &intruder,
        "the intruder keeps waiting",
        "waiting before initialising",
    )
    .await;
    // Waits out an election a loaded machine may start meanwhile.
    let after = wait_for("the group still has a leader", Duration::from_secs(15), || {
        ctl_raft_leader(&ep, &client)
    })
    .await;
    assert_eq!(after, (leader, term, members), "the intruder changed the group");
    let status = node_status(&intruder.endpoint).await;
    assert!(status.is_none(), "the TLS-only intruder answered plain gRPC");

    intruder.stop().await;
    for agent in agents.drain(..) {
        agent.stop().await;
    }
}

/// A Raft-only agent of scope `other` listing a `main` agent as its partner: the `main`
/// agent refuses it and logs both scopes; the `other` agent logs that its partner belongs to
/// another scope and never joins; pgquorumctl told `--scope other` is refused with both names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_clusters_agent_is_refused_on_both_sides() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), 4811, false);
    let main = start(&dir, &opts, "main", 0, &[], &[]);
    let ep = endpoint(&opts, 0);
    let scope_main = ["--scope".to_string(), "main".to_string()];
    wait_for("main has a leader", Duration::from_secs(60), || {
        ctl_raft_leader(&ep, &scope_main)
    })
    .await;

    let other = start(&dir, &opts, "other", 1, &[0], &[]);
    wait_for_log(
        &main,
        "main logs the refusal",
        r#"the caller belongs to cluster "other", this agent to cluster "main""#,
    )
    .await;
    let log = wait_for_log(&other, "other logs the refusal", "belongs to another scope").await;
    assert!(log.contains("their_scope=main"), "{log}");
    let members = ctl_raft_leader(&ep, &scope_main)
        .await
        .expect("main still has a leader")
        .2;
    assert_eq!(members, vec![ep.clone()], "the other cluster's agent joined");

    let (ok, _, stderr) = run_ctl(&args(
        &ep,
        &["--scope".into(), "other".into()],
        &["get", "leader"],
    ))
    .await;
    assert!(!ok);
    assert!(
        stderr.contains(r#"this agent belongs to cluster (scope) "main", the caller to "other""#),
        "{stderr}"
    );
    other.stop().await;
    main.stop().await;
}

/// `raft.password` without TLS: the agents form a group (their RPCs carry the proof), and
/// pgquorumctl is served with the right password only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_password_is_required_on_every_call() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), 4821, false);
    let secret = [("password", "s3cret".to_string())];
    let mut agents: Vec<SoloAgent> = (0..3)
        .map(|i| {
            let partners: Vec<usize> = (0..3).filter(|j| *j != i).collect();
            start(&dir, &opts, "pw", i, &partners, &secret)
        })
        .collect();
    let ep = endpoint(&opts, 0);
    let right = ["--password".to_string(), "s3cret".to_string()];
    let (_, _, members) = wait_for(
        "the group with a password has a leader",
        Duration::from_secs(60),
        || ctl_raft_leader(&ep, &right),
    )
    .await;
    assert_eq!(members.len(), 3, "{members:?}");

    for flags in [vec!["--password".to_string(), "wrong".to_string()], vec![]] {
        let (ok, _, stderr) = run_ctl(&args(&ep, &flags, &["get", "leader"])).await;
        assert!(!ok, "served with {flags:?}");
        assert!(
            stderr.contains("proof of this cluster's raft.password"),
            "{stderr}"
        );
    }
    // The plain in-process client of the tests carries no proof either.
    assert!(node_status(&ep).await.is_none());
    wait_for_log(&agents[0], "the agent logs the refusal", "proof of raft.password").await;

    // An agent with another password, naming the group as its partners, is refused.
    let intruder = start(
        &dir,
        &opts,
        "pw",
        3,
        &[0, 1, 2],
        &[("password", "guess".to_string())],
    );
    wait_for_log(
        &intruder,
        "the intruder logs the refusal",
        "refused: a wrong proof of this cluster's raft.password",
    )
    .await;
    // Waits out an election a loaded machine may start meanwhile.
    let after = wait_for("the group still has a leader", Duration::from_secs(15), || {
        ctl_raft_leader(&ep, &right)
    })
    .await;
    assert_eq!(after.2, members, "the intruder joined");
    intruder.stop().await;

    for agent in agents.drain(..) {
        agent.stop().await;
    }
}
