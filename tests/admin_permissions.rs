//! Permissions on the agents' admin service: agents, admins and readers (by client certificate,
//! `raft.password` proof or admin credentials); raw writes to agent-owned keys refused; every
//! `config` write validated by the server even from a hand-written client; the admin service on
//! its own listener (`raft.admin_listen`).
//! Raft-only agents (no PostgreSQL) on 127.0.0.1, ports 4851–4889.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use pgquorum::cluster::MemberStatus;
use pgquorum::ctl::client::write_via;
use pgquorum::demo::DemoOptions;
use pgquorum::grpc::certs::{generate, NodeSpec};
use pgquorum::grpc::pb::admin::admin_client::AdminClient;
use pgquorum::grpc::pb::admin::WriteRequest;
use pgquorum::grpc::pb::raft::raft_service_client::RaftServiceClient;
use pgquorum::grpc::pb::raft::RaftMessage;
use pgquorum::grpc::transport::{Refusal, TlsFiles, Transport};
use pgquorum::ha::publish::admin_connect_address;
use pgquorum::keyspace::{Command, Key, Precondition};
use serde_json::json;

fn endpoint(opts: &DemoOptions, i: usize) -> String {
    format!("127.0.0.1:{}", opts.base_port + i as u16)
}

fn start(
    dir: &TestDir,
    opts: &DemoOptions,
    i: usize,
    partners: &[usize],
    keys: &[(&str, String)],
    extra: &str,
) -> SoloAgent {
    let yaml = with_raft_keys(&solo_agent_yaml(dir.path(), opts, "perm", i, partners), keys) + extra;
    SoloAgent::start(dir.path(), &format!("node{}", i + 1), &endpoint(opts, i), &yaml)
}

fn ctl(endpoint: &str, flags: &[String], command: &[&str]) -> Vec<String> {
    let mut args = vec!["-e".to_string(), endpoint.to_string()];
    args.extend(flags.iter().cloned());
    args.extend(command.iter().map(|s| s.to_string()));
    args
}

/// A hand-written admin client (not pgquorumctl) using `transport`.
fn client(transport: &Transport, endpoint: &str) -> AdminClient<pgquorum::grpc::GrpcChannel> {
    AdminClient::new(transport.channel(endpoint, Duration::from_secs(2)).unwrap())
}

fn tls_client_files(certs: &Path, cert: &str) -> TlsFiles {
    TlsFiles {
        certfile: certs.join(format!("{cert}.pem")),
        keyfile: certs.join(format!("{cert}-key.pem")),
        cafile: certs.join("ca.pem"),
    }
}

/// Send `command` raw; the refusal (code and kind) if refused.
async fn raw_write(
    client: &mut AdminClient<pgquorum::grpc::GrpcChannel>,
    command: &Command,
) -> Result<(), (tonic::Code, Option<Refusal>, String)> {
    let body = serde_json::to_vec(command).unwrap();
    client
        .write(WriteRequest {
            command: body,
            forwarded: false,
            force_resume: false,
        })
        .await
        .map(|_| ())
        .map_err(|s| (s.code(), Refusal::of(&s), s.message().to_string()))
}

fn put(key: Key, value: serde_json::Value) -> Command {
    Command::Put {
        key,
        value,
        ttl_ms: None,
        precondition: Precondition::Any,
    }
}

/// The writes no client may make, and the configurations no client may store.
async fn assert_client_limits(client: &mut AdminClient<pgquorum::grpc::GrpcChannel>, who: &str) {
    for command in [
        Command::Delete {
            key: Key::Leader,
            precondition: Precondition::Any,
        },
        put(Key::Initialize, json!("1234")),
        put(Key::member("node1").unwrap(), json!({"host": "10.6.6.6"})),
        put(Key::Status, json!({})),
        put(Key::History, json!([])),
        Command::ReleaseLease {
            key: Key::Leader,
            holder: "node1".into(),
            holder_addr: None,
        },
    ] {
        let (code, refusal, message) = raw_write(client, &command).await.unwrap_err();
        assert_eq!(
            code,
            tonic::Code::PermissionDenied,
            "{who}: {command:?}: {message}"
        );
        assert_eq!(refusal, Some(Refusal::NotAllowed), "{who}: {message}");
    }
    for bad in [
        json!({"postgresql": {"pg_hba": ["host all all 0.0.0.0/0 trust"]}}),
        json!({"postgresql": {"parameters": {"archive_cleanup_command": "sh -c 'id > /tmp/owned'"}}}),
        json!({"ttl": 0.2}),
        json!({"loop_wait": "soon"}),
    ] {
        let (code, refusal, message) = raw_write(client, &put(Key::Config, bad.clone()))
            .await
            .unwrap_err();
        assert_eq!(code, tonic::Code::InvalidArgument, "{who}: {bad}: {message}");
        assert_eq!(refusal, Some(Refusal::InvalidConfig), "{who}: {message}");
    }
    // A ttl no member's Raft timings fit (hole 13), refused by the agent too, naming the
    // member (a Raft-only agent: its own timings).
    let short = json!({"ttl": 1, "loop_wait": 0.2, "retry_timeout": 0.2});
    let (code, _, message) = raw_write(client, &put(Key::Config, short)).await.unwrap_err();
    assert_eq!(code, tonic::Code::InvalidArgument, "{who}: {message}");
    assert!(
        message.contains("ttl: 1 s is too short for member node")
            && message.contains("ttl must be at least 2.2 s"),
        "{who}: {message}"
    );
    // What an operator may write goes through.
    raw_write(
        client,
        &put(
            Key::Config,
            json!({"loop_wait": 0.5, "postgresql": {"parameters": {"work_mem": "8MB"}}}),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{who}: a valid config was refused: {e:?}"));
}

/// With mutual TLS: the cluster's agents form the group; `pgquorumctl`'s certificate
/// (`raft.admin_names`' default) is an admin — it reads and writes `config`, but cannot touch
/// the agents' keys nor send a Raft RPC; a certificate named in `raft.read_names` reads only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_give_agent_admin_or_read_permission() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), 4851, false);
    let certs = dir.path().join("certs");
    let specs: Vec<NodeSpec> = [
        "node1=127.0.0.1",
        "node2=127.0.0.1",
        "node3=127.0.0.1",
        "monitor=127.0.0.1",
    ]
    .iter()
    .map(|s| NodeSpec::parse(s).unwrap())
    .collect();
    generate(&certs, &specs).unwrap();
    let mut agents: Vec<SoloAgent> = (0..3)
        .map(|i| {
            let partners: Vec<usize> = (0..3).filter(|j| *j != i).collect();
            let mut keys = tls_keys(&certs, &format!("node{}", i + 1));
            keys.push(("read_names", "[monitor]".into()));
            start(&dir, &opts, i, &partners, &keys, "")
        })
        .collect();
    let ep = endpoint(&opts, 0);
    let admin_flags = ctl_tls_flags(&certs);
    wait_for("the TLS group has a leader", Duration::from_secs(60), || {
        ctl_raft_leader(&ep, &admin_flags)
    })
    .await;

    let admin = Transport::new(
        Some("perm"),
        Some(&tls_client_files(&certs, "client")),
        None,
        ["a", "b", "c"],
    )
    .unwrap();
    assert_client_limits(&mut client(&admin, &ep), "pgquorumctl's certificate").await;
    // pgquorumctl checks with the same function before sending.
    let (ok, _, stderr) = run_ctl(&ctl(
        &ep,
        &admin_flags,
        &["edit-config", "--pg", "archive_command=curl x | sh"],
    ))
    .await;
    assert!(
        !ok && stderr.contains("archive_command: runs a command"),
        "{stderr}"
    );

    // The Raft service is for agents only.
    let mut raft = RaftServiceClient::new(admin.channel(&ep, Duration::from_secs(2)).unwrap());
    let status = raft
        .vote(RaftMessage {
            cluster: "perm".into(),
            payload: b"{}".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");

    // A reader: reads, but neither writes nor operates.
    let mut monitor_flags = ctl_tls_flags(&certs);
    monitor_flags[3] = certs.join("monitor.pem").display().to_string();
    monitor_flags[5] = certs.join("monitor-key.pem").display().to_string();
    let (ok, stdout, stderr) = run_ctl(&ctl(&ep, &monitor_flags, &["get", "leader"])).await;
    assert!(ok && stdout.contains("leader"), "{stderr}");
    let (ok, _, stderr) = run_ctl(&ctl(&ep, &monitor_flags, &["pause"])).await;
    assert!(!ok, "a reader paused the cluster");
    assert!(
        stderr.contains(r#"needs admin permission; this caller (certificate "monitor") has read permission"#),
        "{stderr}"
    );
    let (ok, _, stderr) = run_ctl(&ctl(&ep, &monitor_flags, &["restart", "node1"])).await;
    assert!(!ok && stderr.contains("needs admin permission"), "{stderr}");
    // Membership: a reader lists it, and changes nothing.
    let (ok, stdout, stderr) = run_ctl(&ctl(&ep, &monitor_flags, &["members", "list"])).await;
    assert!(ok && stdout.contains("voter"), "{stderr}");
    for change in [
        &["members", "add", "node9", "127.0.0.1:1"][..],
        &["members", "remove", "node2"],
        &["members", "promote", "node2"],
        &["remove", "perm", "--yes-i-am-sure"],
    ] {
        let (ok, _, stderr) = run_ctl(&ctl(&ep, &monitor_flags, change)).await;
        assert!(
            !ok && stderr.contains("needs admin permission"),
            "{change:?}: {stderr}"
        );
    }

    for agent in agents.drain(..) {
        agent.stop().await;
    }
}

/// With `raft.password` and admin credentials (`restapi.authentication`): without either a
/// caller is unauthenticated; with the credentials it is an admin (same limits as above);
/// with `raft.read_open` it may read without credentials, and nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_give_admin_and_read_open_gives_read() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), 4861, false);
    let creds = "restapi:\n  authentication: {username: admin, password: adm1n}\n";
    let keys = [("password", "s3cret".to_string())];
    let agent = start(&dir, &opts, 0, &[], &keys, creds);
    let ep = endpoint(&opts, 0);
    let auth = ["--auth".to_string(), "admin:adm1n".to_string()];
    wait_for("the agent has a leader", Duration::from_secs(60), || {
        ctl_raft_leader(&ep, &auth)
    })
    .await;

    let (ok, _, stderr) = run_ctl(&ctl(&ep, &[], &["get", "leader"])).await;
    assert!(!ok && stderr.contains("no admin credentials"), "{stderr}");
    let wrong = ["--auth".to_string(), "admin:guess".to_string()];
    let (ok, _, stderr) = run_ctl(&ctl(&ep, &wrong, &["get", "leader"])).await;
    assert!(!ok && stderr.contains("no admin credentials"), "{stderr}");
    let (ok, _, stderr) = run_ctl(&ctl(&ep, &auth, &["edit-config", "--pg", "work_mem=8MB"])).await;
    assert!(ok, "an admin could not edit the config: {stderr}");

    let admin = Transport::open(Some("perm")).with_credentials("admin", "adm1n");
    assert_client_limits(&mut client(&admin, &ep), "admin credentials").await;
    let status = client(&Transport::open(Some("perm")), &ep)
        .write(WriteRequest {
            command: serde_json::to_vec(&put(Key::Failover, json!({}))).unwrap(),
            forwarded: false,
            force_resume: false,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    agent.stop().await;

    // The same agent with read_open: reads without credentials, nothing more.
    let keys = [
        ("password", "s3cret".to_string()),
        ("read_open", "true".to_string()),
    ];
    let agent = start(&dir, &opts, 0, &[], &keys, creds);
    wait_for("the agent is back", Duration::from_secs(60), || {
        ctl_raft_leader(&ep, &[])
    })
    .await;
    let (ok, _, stderr) = run_ctl(&ctl(&ep, &[], &["pause"])).await;
    assert!(!ok && stderr.contains("needs admin permission"), "{stderr}");
    // A reader piping into `head` that has already exited: pgquorumctl ends quietly (as
    // `patronictl … | head` does), it does not panic on the closed pipe.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(CTL)
        .args(ctl(&ep, &[], &["list"]))
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "pgquorumctl panicked on a closed stdout: {stderr}"
    );
    agent.stop().await;
}

/// `raft.admin_listen`: operators are served on the admin listener; on the peer port they are
/// refused (agents only), while the agents' group works there. A member's own operations
/// (restart, reload, reinit) reach it through the admin listener it publishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_listener_serves_operators_and_peer_port_only_agents() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), 4871, false);
    let admin_ep = "127.0.0.1:4879".to_string();
    // node2 binds every interface: it publishes the host of its peer address with this port.
    let node2_admin_listen = "0.0.0.0:4878".to_string();
    let creds = "restapi:\n  authentication: {username: admin, password: adm1n}\n";
    let mut agents: Vec<SoloAgent> = (0..3)
        .map(|i| {
            let partners: Vec<usize> = (0..3).filter(|j| *j != i).collect();
            let mut keys = vec![("password", "s3cret".to_string())];
            match i {
                0 => keys.push(("admin_listen", admin_ep.clone())),
                1 => keys.push(("admin_listen", node2_admin_listen.clone())),
                _ => {}
            }
            start(&dir, &opts, i, &partners, &keys, creds)
        })
        .collect();
    let auth = ["--auth".to_string(), "admin:adm1n".to_string()];
    let (_, _, members) = wait_for("the group has a leader", Duration::from_secs(60), || {
        ctl_raft_leader(&admin_ep, &auth)
    })
    .await;
    assert_eq!(members.len(), 3, "{members:?}");
    // A write through the admin listener may be forwarded to a leader on another node.
    let (ok, _, stderr) = run_ctl(&ctl(&admin_ep, &auth, &["edit-config", "--pg", "work_mem=8MB"])).await;
    assert!(ok, "{stderr}");
    let peer = endpoint(&opts, 0);
    let (ok, _, stderr) = run_ctl(&ctl(&peer, &auth, &["get", "leader"])).await;
    assert!(!ok, "an operator was served on the peer port");
    assert!(
        stderr.contains("agents only: raft.admin_listen serves operators"),
        "{stderr}"
    );
    // An operator request for the asked agent's own member goes through the admin listener
    // (these agents manage no PostgreSQL, so the request reaches the agent and is declined).
    let (ok, _, stderr) = run_ctl(&ctl(&admin_ep, &auth, &["restart", "node1"])).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("agent at 127.0.0.1:4879: this node manages no PostgreSQL"),
        "{stderr}"
    );
    // Another member's operation goes to the admin listener that member publishes. These
    // agents run no HA loop, so node2's record is written here as an agent would publish it.
    let node2 = MemberStatus {
        name: "node2".into(),
        raft_addr: Some(endpoint(&opts, 1)),
        admin_addr: Some(admin_connect_address(&node2_admin_listen, &endpoint(&opts, 1))),
        ..MemberStatus::default()
    };
    let agent = Transport::new(Some("perm"), None, Some("s3cret"), ["a", "b", "c"]).unwrap();
    let put = Command::Put {
        key: Key::member("node2").unwrap(),
        value: serde_json::to_value(&node2).unwrap(),
        ttl_ms: None,
        precondition: Precondition::default(),
    };
    write_via(&agent, &endpoint(&opts, 1), &put).await.unwrap();
    let (ok, _, stderr) = run_ctl(&ctl(&admin_ep, &auth, &["restart", "node2"])).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("agent at 127.0.0.1:4878: this node manages no PostgreSQL"),
        "node2's restart did not reach its admin listener: {stderr}"
    );
    // A member that publishes no admin listener is still asked on its peer port.
    let (ok, _, stderr) = run_ctl(&ctl(&admin_ep, &auth, &["reload", "node3"])).await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "agent at {}: this node manages no PostgreSQL",
            endpoint(&opts, 2)
        )),
        "{stderr}"
    );
    // Agents without admin_listen still serve operators on their peer port.
    let (ok, _, stderr) = run_ctl(&ctl(&endpoint(&opts, 2), &auth, &["get", "leader"])).await;
    assert!(ok, "{stderr}");
    for agent in agents.drain(..) {
        agent.stop().await;
    }
}

/// `raft.agent_names`: agents whose certificates match the patterns form the group; another
/// certificate of the same CA, in none of the lists, may neither send a Raft RPC nor read —
/// refused `PermissionDenied` with the `unlisted-certificate` refusal — while pgquorumctl's
/// certificate (`admin_names`) keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_names_refuse_unlisted_certificates_of_the_cluster_ca() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), 4881, false);
    let certs = dir.path().join("certs");
    let specs: Vec<NodeSpec> = [
        "node1=127.0.0.1",
        "node2=127.0.0.1",
        "node3=127.0.0.1",
        "intruder=127.0.0.1",
    ]
    .iter()
    .map(|s| NodeSpec::parse(s).unwrap())
    .collect();
    generate(&certs, &specs).unwrap();
    let mut agents: Vec<SoloAgent> = (0..3)
        .map(|i| {
            let partners: Vec<usize> = (0..3).filter(|j| *j != i).collect();
            let mut keys = tls_keys(&certs, &format!("node{}", i + 1));
            keys.push(("agent_names", r#"["node*"]"#.into()));
            start(&dir, &opts, i, &partners, &keys, "")
        })
        .collect();
    let ep = endpoint(&opts, 0);
    let admin_flags = ctl_tls_flags(&certs);
    wait_for("the TLS group has a leader", Duration::from_secs(60), || {
        ctl_raft_leader(&ep, &admin_flags)
    })
    .await;

    let intruder = Transport::new(
        Some("perm"),
        Some(&tls_client_files(&certs, "intruder")),
        None,
        ["a", "b", "c"],
    )
    .unwrap();
    let mut raft = RaftServiceClient::new(intruder.channel(&ep, Duration::from_secs(2)).unwrap());
    let status = raft
        .vote(RaftMessage {
            cluster: "perm".into(),
            payload: b"{}".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(
        Refusal::of(&status),
        Some(Refusal::UnlistedCertificate),
        "{status:?}"
    );
    let (code, refusal, message) = raw_write(&mut client(&intruder, &ep), &put(Key::Config, json!({})))
        .await
        .unwrap_err();
    assert_eq!(code, tonic::Code::PermissionDenied, "{message}");
    assert_eq!(refusal, Some(Refusal::UnlistedCertificate), "{message}");

    let mut intruder_flags = ctl_tls_flags(&certs);
    intruder_flags[3] = certs.join("intruder.pem").display().to_string();
    intruder_flags[5] = certs.join("intruder-key.pem").display().to_string();
    let (ok, _, stderr) = run_ctl(&ctl(&ep, &intruder_flags, &["list"])).await;
    assert!(!ok, "an unlisted certificate read the cluster");
    assert!(stderr.contains("matches none of raft.admin_names"), "{stderr}");
    let (ok, stdout, stderr) = run_ctl(&ctl(&ep, &admin_flags, &["get", "leader"])).await;
    assert!(ok && stdout.contains("leader"), "{stderr}");

    // An agent started with a certificate its own agent_names exclude refuses to start (its
    // peers would refuse it).
    let mut keys = tls_keys(&certs, "intruder");
    keys.push(("agent_names", r#"["node*"]"#.into()));
    let outsider = start(&dir, &opts, 3, &[0, 1, 2], &keys, "");
    wait_for(
        "the outsider refuses to start",
        Duration::from_secs(30),
        || async {
            outsider
                .log_text()
                .contains("is not an agent's under raft.agent_names")
                .then_some(())
        },
    )
    .await;
    outsider.stop().await;

    for agent in agents.drain(..) {
        agent.stop().await;
    }
}
