//! `pgquorum demo --tls` end to end: certificates generated, gRPC with mutual TLS (pgquorumctl
//! works with the client certificate and is refused without it), REST over HTTPS, PostgreSQL
//! with `ssl = on` and pg_hba allowing replication only as `hostssl … cert`: the replicas
//! stream over TLS with the replication role's client certificate; a switchover and a
//! failover whose old primary diverged (pg_rewind over TLS) keep them streaming that way; the
//! agent's own local connection uses TLS as its superuser's `sslmode: verify-ca` asks.
//! Its own test binary: a TLS demo makes its client certificate the process's gRPC transport.
//! Ports 4971–4973 (gRPC), 8171–8173 (PostgreSQL), 10771–10773 (REST).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use pgquorum::demo::{Demo, DemoOptions};

const TIMEOUT: Duration = Duration::from_secs(120);

fn names() -> [&'static str; 3] {
    ["node1", "node2", "node3"]
}

async fn view(demo: &Demo) -> Option<pgquorum::cluster::ClusterView> {
    for (i, endpoint) in demo.endpoints.iter().enumerate() {
        if demo.pid(i).is_none() {
            continue;
        }
        if let Ok(view) = pgquorum::ctl::cluster_read::cluster_view(endpoint).await {
            return Some(view);
        }
    }
    None
}

/// The member holding the leader lease whose PostgreSQL is writable.
async fn primary(demo: &Demo, opts: &DemoOptions) -> Option<usize> {
    let view = view(demo).await?;
    let leader = names().iter().position(|n| Some(*n) == view.leader_name())?;
    let writable = pg_scalar(opts.pg_port(leader), "SELECT NOT pg_is_in_recovery()").await;
    (writable.as_deref() == Some("t")).then_some(leader)
}

async fn streams(demo: &Demo, i: usize) -> bool {
    view(demo)
        .await
        .and_then(|v| {
            v.member(names()[i])
                .map(|m| m.state == pgquorum::cluster::PgRunState::Streaming)
        })
        .unwrap_or(false)
}

/// Replication connections to the PostgreSQL on `port` made over TLS with the replication
/// role's certificate.
async fn tls_replication_connections(port: u16) -> Option<i64> {
    let count = pg_scalar(
        port,
        "SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid) \
         WHERE r.usename = 'replicator' AND s.ssl AND s.client_dn = '/CN=replicator'",
    )
    .await?;
    count.parse().ok()
}

/// Wait until the primary on `port` serves `n` replicas, all over TLS with a client
/// certificate, and no replication connection without TLS.
async fn wait_tls_replicas(port: u16, n: i64, what: &str) {
    wait_for(what, TIMEOUT, || async {
        let tls = tls_replication_connections(port).await?;
        let all: i64 = pg_scalar(port, "SELECT count(*) FROM pg_stat_replication")
            .await?
            .parse()
            .ok()?;
        (tls == n && all == n).then_some(())
    })
    .await;
}

fn ctl_args(endpoint: &str, flags: &[String], command: &[&str]) -> Vec<String> {
    let mut args = vec!["-e".to_string(), endpoint.to_string()];
    args.extend(flags.iter().cloned());
    args.extend(command.iter().map(|s| s.to_string()));
    args
}

fn data_dir(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(names()[i]).join("pgdata")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_demo_streams_over_tls_with_client_certificates_through_switchover_and_rewind() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let mut opts = cluster_options(dir, 4971, true);
    opts.tls = true;
    let mut demo = Demo::start(&opts).await.expect("start the TLS demo");
    demo.wait_postgres_healthy(Duration::from_secs(180))
        .await
        .expect("primary and two streaming replicas");
    let certs = dir.join(pgquorum::demo::TLS_DIR);
    let flags = ctl_tls_flags(&certs);

    // pgquorumctl: the command line the demo prints works; without the certificate, or with
    // the replication role's certificate (same CA, not in raft.agent_names), it is refused.
    let ep = demo.endpoints[0].clone();
    let (ok, stdout, stderr) = run_ctl(&ctl_args(&ep, &flags, &["list"])).await;
    assert!(ok, "pgquorumctl list with the client certificate: {stderr}");
    for name in names() {
        assert!(stdout.contains(name), "{stdout}");
    }
    let (ok, _, stderr) = run_ctl(&ctl_args(&ep, &[], &["list"])).await;
    assert!(!ok, "pgquorumctl list without a certificate succeeded");
    assert!(!stderr.is_empty());
    let mut repl_flags = flags.clone();
    repl_flags[3] = certs.join("replicator.pem").display().to_string();
    repl_flags[5] = certs.join("replicator-key.pem").display().to_string();
    let (ok, _, stderr) = run_ctl(&ctl_args(&ep, &repl_flags, &["list"])).await;
    assert!(
        !ok && stderr.contains("matches none of raft.admin_names"),
        "{stderr}"
    );

    // REST over HTTPS (the node's certificate): reads without a client certificate, the
    // mutating endpoints refused (403) without one even with the password.
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let ca = certs.join("ca.pem");
    let anonymous = https::client(&[&ca], None);
    let answer = https::https_to(&anonymous, loopback, opts.rest_port(0), "GET", "/patroni", None)
        .await
        .expect("GET /patroni over HTTPS");
    assert_eq!(answer.status, 200, "{}", answer.head);
    let admin = Some(("admin", "demo-admin"));
    let answer = https::https_to(&anonymous, loopback, opts.rest_port(0), "POST", "/reload", admin)
        .await
        .expect("POST /reload over HTTPS");
    assert_eq!(answer.status, 403, "{}", answer.head);
    let with_cert = https::client(
        &[&ca],
        Some((&certs.join("client.pem"), &certs.join("client-key.pem"))),
    );
    let answer = https::https_to(&with_cert, loopback, opts.rest_port(0), "POST", "/reload", admin)
        .await
        .expect("POST /reload with a client certificate");
    assert!(answer.status < 300, "{}", answer.head);

    // Replication over TLS with the client certificate.
    let p0 = wait_for("a primary", TIMEOUT, || primary(&demo, &opts)).await;
    wait_tls_replicas(opts.pg_port(p0), 2, "two replicas streaming over TLS").await;
    // The agents' own connections to their PostgreSQL (superuser sslmode verify-ca) use TLS.
    for i in 0..3 {
        let agent_links = |ssl: bool| {
            format!(
                "SELECT count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.application_name = 'pgquorum' AND a.client_addr IS NOT NULL AND s.ssl = {ssl}"
            )
        };
        wait_for("the agent's local connection over TLS", TIMEOUT, || async {
            let tls = pg_scalar(opts.pg_port(i), &agent_links(true)).await?;
            (tls != "0").then_some(())
        })
        .await;
        assert_eq!(
            pg_scalar(opts.pg_port(i), &agent_links(false)).await.as_deref(),
            Some("0"),
            "node{}: an agent connection without TLS",
            i + 1
        );
    }

    // Switchover (pgquorumctl over TLS): the old primary streams from the new one over TLS.
    let p1 = (p0 + 1) % 3;
    let (ok, _, stderr) = run_ctl(&ctl_args(
        &ep,
        &flags,
        &[
            "switchover",
            "--leader",
            names()[p0],
            "--candidate",
            names()[p1],
            "--force",
        ],
    ))
    .await;
    assert!(ok, "switchover: {stderr}");
    wait_for("the candidate is primary", TIMEOUT, || async {
        (primary(&demo, &opts).await == Some(p1)).then_some(())
    })
    .await;
    wait_tls_replicas(
        opts.pg_port(p1),
        2,
        "both replicas stream from the new primary over TLS",
    )
    .await;

    // Failover with divergence: freeze the primary's WAL senders, write on it, lose the node;
    // when it comes back it must pg_rewind (the rewind role over TLS) and stream again.
    let senders = wal_sender_pids(opts.pg_port(p1), 2).await;
    for &pid in &senders {
        signal(pid, libc::SIGSTOP);
    }
    let client = pg_connect(opts.pg_port(p1))
        .await
        .expect("connect to the primary");
    client
        .batch_execute("CREATE TABLE diverged (id int); INSERT INTO diverged SELECT generate_series(1, 100)")
        .await
        .expect("diverging writes");
    drop(client);
    let postmaster = postmaster_pid(&data_dir(dir, p1));
    demo.kill9(p1).await;
    if let Some(pid) = postmaster {
        signal(pid, libc::SIGKILL);
    }
    for pid in senders {
        signal(pid, libc::SIGKILL);
    }
    let p2 = wait_for("a new primary", TIMEOUT, || async {
        primary(&demo, &opts).await.filter(|p| *p != p1)
    })
    .await;
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
    wait_tls_replicas(
        opts.pg_port(p2),
        2,
        "both replicas stream over TLS after the rewind",
    )
    .await;
    demo.stop().await;
}
