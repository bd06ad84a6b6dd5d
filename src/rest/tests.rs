//! The REST API over a real socket: snapshots are built as plain data, the HTTP layer is what
//! is under test. Requests are written by hand so that what HAProxy or curl would see is what
//! we assert on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};

use super::{serve, RestState};
use crate::cluster::{
    ClusterView, FailoverRequest, HistoryEntry, LeaderLease, MemberStatus, PgRole, PgRunState,
};
use crate::config::BasicAuth;
use crate::ha::{NodeSnapshot, OperatorRequest, ReplicationRow};
use crate::keyspace::{Command, CommandOutcome, Key, Precondition};

const VERSION: &str = "0.1.0";
const PRIMARY_LSN: u64 = 0x5000_0000;
const MB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Snapshots

fn primary_member(name: &str) -> MemberStatus {
    MemberStatus {
        name: name.to_string(),
        role: PgRole::Primary,
        state: PgRunState::Running,
        api_url: Some("http://10.0.0.1:8008/patroni".to_string()),
        conn_url: Some("postgres://10.0.0.1:5432/postgres".to_string()),
        host: Some("10.0.0.1".to_string()),
        port: Some(5432),
        timeline: Some(2),
        wal_lsn: Some(PRIMARY_LSN),
        server_version: Some(160004),
        system_identifier: Some("7268616322854375442".to_string()),
        version: VERSION.to_string(),
        ..Default::default()
    }
}

fn replica_member(name: &str, replayed: u64) -> MemberStatus {
    MemberStatus {
        name: name.to_string(),
        role: PgRole::Replica,
        state: PgRunState::Streaming,
        api_url: Some("http://10.0.0.2:8008/patroni".to_string()),
        host: Some("10.0.0.2".to_string()),
        port: Some(5432),
        timeline: Some(2),
        received_lsn: Some(replayed),
        replayed_lsn: Some(replayed),
        replicating_from: Some("node1".to_string()),
        server_version: Some(160004),
        system_identifier: Some("7268616322854375442".to_string()),
        version: VERSION.to_string(),
        ..Default::default()
    }
}

fn cluster_view(leader: Option<&str>, members: Vec<MemberStatus>) -> ClusterView {
    let mut members = members;
    members.sort_by(|a, b| a.name.cmp(&b.name));
    ClusterView {
        initialize: Some("7268616322854375442".to_string()),
        leader: leader.map(|holder| LeaderLease {
            holder: holder.to_string(),
            revision: 7,
            expires_at_ms: u64::MAX,
        }),
        members,
        config_revision: Some(3),
        history: vec![HistoryEntry {
            timeline: 1,
            switch_lsn: 25_623_960,
            reason: "no recovery target specified".to_string(),
            time: "2024-08-28T19:39:26+00:00".to_string(),
            new_leader: Some("node1".to_string()),
        }],
        last_primary_lsn: Some(PRIMARY_LSN),
        ..Default::default()
    }
}

/// A node of a healthy two-member cluster (node1 primary with the lease, node2 replica), seen
/// from `me`; scenarios then change what they are about.
fn snapshot_of(me: MemberStatus) -> NodeSnapshot {
    let others: Vec<MemberStatus> = [primary_member("node1"), replica_member("node2", PRIMARY_LSN)]
        .into_iter()
        .filter(|m| m.name != me.name)
        .collect();
    let mut members = others;
    members.push(me.clone());
    let mut snapshot = NodeSnapshot::starting("demo", &me.name);
    snapshot.holds_lease = me.name == "node1";
    snapshot.cluster = Some(cluster_view(Some("node1"), members));
    snapshot.keyspace_reachable = true;
    snapshot.postmaster_start_time = Some("2024-08-28T19:39:26Z".to_string());
    if me.role == PgRole::Primary {
        snapshot.replication = vec![ReplicationRow {
            application_name: "node2".to_string(),
            client_addr: Some("10.0.0.2".to_string()),
            state: "streaming".to_string(),
            sync_state: "async".to_string(),
            replay_lsn: Some(PRIMARY_LSN),
            flush_lsn: Some(PRIMARY_LSN),
        }];
    }
    snapshot.me = me;
    snapshot
}

fn primary_with_lease() -> NodeSnapshot {
    snapshot_of(primary_member("node1"))
}

/// An old primary still running after losing the lease: must not get writes.
fn primary_without_lease() -> NodeSnapshot {
    let mut snapshot = snapshot_of(primary_member("node3"));
    snapshot.holds_lease = false;
    snapshot
}

/// Just won the lease, PostgreSQL not promoted yet: a leader, but no writes yet.
fn lease_holder_not_promoted() -> NodeSnapshot {
    let mut snapshot = replica_streaming();
    snapshot.holds_lease = true;
    snapshot
}

fn replica_streaming() -> NodeSnapshot {
    snapshot_of(replica_member("node2", PRIMARY_LSN))
}

fn replica_noloadbalance() -> NodeSnapshot {
    let mut me = replica_member("node2", PRIMARY_LSN);
    me.tags.noloadbalance = true;
    snapshot_of(me)
}

fn replica_lagging_20mb() -> NodeSnapshot {
    snapshot_of(replica_member("node2", PRIMARY_LSN - 20 * MB))
}

fn postgres_stopped() -> NodeSnapshot {
    let mut me = replica_member("node2", PRIMARY_LSN);
    me.state = PgRunState::Stopped;
    snapshot_of(me)
}

/// Maintenance mode with the keyspace out of reach and a loop that has not cycled for an hour:
/// Patroni keeps the running primary in the load balancer and the liveness probe green.
fn paused_primary_cut_off() -> NodeSnapshot {
    let mut snapshot = primary_with_lease();
    snapshot.paused = true;
    snapshot.keyspace_reachable = false;
    snapshot.holds_lease = false;
    snapshot.last_cycle = ago(3600);
    snapshot
}

fn ago(secs: u64) -> Instant {
    Instant::now()
        .checked_sub(Duration::from_secs(secs))
        .expect("uptime longer than the test offset")
}

// ---------------------------------------------------------------------------------------------
// Server and client

struct TestServer {
    addr: SocketAddr,
    requests: mpsc::Receiver<OperatorRequest>,
    snapshots: watch::Sender<Arc<NodeSnapshot>>,
    _stop: oneshot::Sender<()>,
}

async fn start(snapshot: NodeSnapshot, auth: Option<BasicAuth>) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (snapshots, snapshot_rx) = watch::channel(Arc::new(snapshot));
    let (request_tx, requests) = mpsc::channel(4);
    let (stop, stopped) = oneshot::channel::<()>();
    let state = RestState {
        snapshot: snapshot_rx,
        requests: request_tx,
        security: super::SharedSecurity::new(super::RestSecurity::plain(auth), None),
        config_writes: None,
        version: VERSION,
        node: None,
    };
    tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        requests,
        snapshots,
        _stop: stop,
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn call(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    call(addr, "GET", path, &[], "").await
}

// ---------------------------------------------------------------------------------------------
// Health checks and probes

const CHECKED_PATHS: [&str; 13] = [
    "/",
    "/primary",
    "/read-write",
    "/leader",
    "/replica",
    "/replica?lag=10MB",
    "/read-only",
    "/read-only?lag=10MB",
    "/async",
    "/health",
    "/liveness",
    "/readiness",
    "/patroni",
];

/// A name, how to build its snapshot, and the status expected on each of `CHECKED_PATHS`.
type Scenario = (&'static str, fn() -> NodeSnapshot, [u16; 13]);

#[tokio::test]
async fn health_endpoints_answer_like_patroni_for_every_role() {
    #[rustfmt::skip]
    let table: [Scenario; 8] = [
        //                                          /    prim rw   lead rep  lag  ro   rolag async hlth live ready patroni
        ("primary with lease", primary_with_lease,  [200, 200, 200, 200, 503, 503, 200, 200, 503, 200, 200, 200, 200]),
        ("primary without lease", primary_without_lease,
                                                    [503, 503, 503, 503, 503, 503, 503, 503, 503, 200, 200, 503, 200]),
        ("lease holder not promoted", lease_holder_not_promoted,
                                                    [503, 503, 503, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ("replica streaming", replica_streaming,    [503, 503, 503, 503, 200, 200, 200, 200, 200, 200, 200, 200, 200]),
        ("replica noloadbalance", replica_noloadbalance,
                                                    [503, 503, 503, 503, 503, 503, 503, 503, 503, 200, 200, 200, 200]),
        ("replica lagging 20MB", replica_lagging_20mb,
                                                    [503, 503, 503, 503, 200, 503, 200, 503, 200, 200, 200, 503, 200]),
        ("postgres stopped", postgres_stopped,      [503, 503, 503, 503, 503, 503, 503, 503, 503, 503, 200, 503, 200]),
        ("paused primary cut off", paused_primary_cut_off,
                                                    [200, 200, 200, 200, 503, 503, 200, 200, 503, 200, 200, 503, 200]),
    ];
    for (scenario, snapshot, expected) in table {
        let server = start(snapshot(), None).await;
        for (path, want) in CHECKED_PATHS.iter().zip(expected) {
            for method in ["GET", "HEAD", "OPTIONS"] {
                let reply = call(server.addr, method, path, &[], "").await;
                assert_eq!(reply.status, want, "{scenario}: {method} {path}");
                if method != "GET" {
                    assert_eq!(reply.body, "", "{scenario}: {method} {path} has no body");
                }
            }
        }
    }
}

#[tokio::test]
async fn health_checks_carry_the_status_document_even_when_failing() {
    let server = start(replica_streaming(), None).await;
    let reply = get(server.addr, "/primary").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["role"], "replica");
}

#[tokio::test]
async fn liveness_allows_ttl_on_a_primary_and_twice_ttl_elsewhere() {
    // loop_wait 10 + ttl 30 = 40 s for the primary; 10 + 60 = 70 s for a replica.
    let mut primary = primary_with_lease();
    primary.last_cycle = ago(45);
    let mut replica = replica_streaming();
    replica.last_cycle = ago(45);
    let mut stale_replica = replica_streaming();
    stale_replica.last_cycle = ago(75);
    for (mut snapshot, want) in [(primary, 503), (replica, 200), (stale_replica, 503)] {
        snapshot.loop_wait_secs = 10.0;
        snapshot.ttl_secs = 30.0;
        let server = start(snapshot, None).await;
        assert_eq!(get(server.addr, "/liveness").await.status, want);
    }
}

#[tokio::test]
async fn replica_filters_on_tags_and_replication_state() {
    let mut me = replica_member("node2", PRIMARY_LSN);
    me.tags.custom.insert("dc".to_string(), Value::from("east"));
    me.tags.custom.insert("ssd".to_string(), Value::from(true));
    let server = start(snapshot_of(me), None).await;
    for (path, want) in [
        ("/replica?tag_dc=east", 200),
        ("/replica?tag_dc=west", 503),
        ("/replica?tag_ssd=true", 200),
        ("/replica?tag_rack=1", 503),
        ("/read-only?tag_dc=east&lag=1MB", 200),
        ("/health?tag_dc=west", 503),
        ("/replica?replication_state=streaming", 200),
        ("/replica?replication_state=in%20archive%20recovery", 503),
        ("/replica?lag=garbage", 200),
    ] {
        assert_eq!(get(server.addr, path).await.status, want, "{path}");
    }
    // The leader checks ignore tag filters, as in Patroni.
    let server = start(primary_with_lease(), None).await;
    assert_eq!(get(server.addr, "/primary?tag_dc=west").await.status, 200);
    assert_eq!(get(server.addr, "/read-only?tag_dc=west").await.status, 503);
}

#[tokio::test]
async fn readiness_lag_limit_and_mode_come_from_the_query() {
    let server = start(replica_lagging_20mb(), None).await;
    assert_eq!(
        get(server.addr, "/readiness").await.status,
        503,
        "default: maximum_lag_on_failover 1MB"
    );
    assert_eq!(get(server.addr, "/readiness?lag=100MB").await.status, 200);

    // Received everything, replayed 20MB behind: ready for writes-only mode.
    let mut me = replica_member("node2", PRIMARY_LSN - 20 * MB);
    me.received_lsn = Some(PRIMARY_LSN);
    let server = start(snapshot_of(me), None).await;
    assert_eq!(get(server.addr, "/readiness?mode=write").await.status, 200);
    assert_eq!(get(server.addr, "/readiness?mode=apply").await.status, 503);
}

#[tokio::test]
async fn a_replica_lags_behind_the_leaders_position_when_none_was_published() {
    let mut snapshot = replica_lagging_20mb();
    snapshot.cluster.as_mut().unwrap().last_primary_lsn = None;
    let server = start(snapshot, None).await;
    assert_eq!(get(server.addr, "/replica?lag=10MB").await.status, 503);
    assert_eq!(get(server.addr, "/replica?lag=30MB").await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Documents

#[tokio::test]
async fn patroni_document_of_a_primary() {
    let server = start(primary_with_lease(), None).await;
    let reply = get(server.addr, "/patroni").await;
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    assert_eq!(doc["state"], "running");
    assert_eq!(doc["role"], "primary");
    assert_eq!(doc["postmaster_start_time"], "2024-08-28T19:39:26Z");
    assert_eq!(doc["server_version"], 160004);
    assert_eq!(doc["xlog"]["location"], PRIMARY_LSN);
    assert_eq!(doc["timeline"], 2);
    let row = &doc["replication"][0];
    for field in ["application_name", "client_addr", "state", "sync_state"] {
        assert!(row.get(field).is_some(), "replication row lacks {field}: {row}");
    }
    assert!(doc["dcs_last_seen"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(doc["database_system_identifier"], "7268616322854375442");
    assert_eq!(
        doc["patroni"],
        serde_json::json!({"version": VERSION, "scope": "demo", "name": "node1"})
    );
    for absent in [
        "cluster_unlocked",
        "pause",
        "pending_restart",
        "tags",
        "replication_state",
    ] {
        assert!(doc.get(absent).is_none(), "{absent} should be absent: {doc}");
    }
}

#[tokio::test]
async fn patroni_document_of_a_paused_replica_with_tags() {
    let mut me = replica_member("node2", PRIMARY_LSN - 16);
    me.pending_restart = true;
    me.tags.nofailover = Some(true);
    let mut snapshot = snapshot_of(me);
    snapshot.paused = true;
    let server = start(snapshot, None).await;
    let doc = get(server.addr, "/patroni").await.json();
    assert_eq!(doc["state"], "running");
    assert_eq!(doc["replication_state"], "streaming");
    assert_eq!(doc["role"], "replica");
    assert_eq!(
        doc["xlog"],
        serde_json::json!({
            "received_location": PRIMARY_LSN - 16,
            "replayed_location": PRIMARY_LSN - 16,
            "replayed_timestamp": null,
            "paused": false
        })
    );
    assert_eq!(doc["pause"], true);
    assert_eq!(doc["pending_restart"], true);
    assert_eq!(doc["tags"], serde_json::json!({"nofailover": true}));
    assert!(doc.get("replication").is_none());
}

#[tokio::test]
async fn a_node_without_cluster_view_reports_an_unlocked_cluster() {
    let server = start(NodeSnapshot::starting("demo", "node9"), None).await;
    let doc = get(server.addr, "/patroni").await.json();
    assert_eq!(doc["state"], "stopped");
    assert_eq!(doc["role"], "uninitialized");
    assert_eq!(doc["cluster_unlocked"], true);
    assert_eq!(doc["dcs_last_seen"], 0);
    assert!(doc.get("xlog").is_none());
    assert_eq!(get(server.addr, "/cluster").await.status, 503);
    assert_eq!(get(server.addr, "/history").await.status, 503);
    assert_eq!(get(server.addr, "/config").await.status, 502);
    assert_eq!(get(server.addr, "/primary").await.status, 503);
    assert_eq!(get(server.addr, "/readiness").await.status, 503);
}

#[tokio::test]
async fn cluster_document_lists_members_with_roles_and_lag() {
    let mut snapshot = snapshot_of(replica_member("node2", PRIMARY_LSN - 1000));
    let view = snapshot.cluster.as_mut().unwrap();
    view.members.push(MemberStatus {
        name: "node3".into(),
        role: PgRole::Replica,
        ..Default::default()
    });
    let server = start(snapshot, None).await;
    let reply = get(server.addr, "/cluster").await;
    assert_eq!(reply.status, 200);
    let doc = reply.json();
    assert_eq!(doc["scope"], "demo");
    assert!(doc.get("pause").is_none());
    let members = doc["members"].as_array().unwrap();
    let names: Vec<&str> = members.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["node1", "node2", "node3"]);

    let leader = &members[0];
    assert_eq!(leader["role"], "leader");
    assert_eq!(leader["state"], "running");
    assert_eq!(leader["api_url"], "http://10.0.0.1:8008/patroni");
    assert_eq!(leader["host"], "10.0.0.1");
    assert_eq!(leader["port"], 5432);
    assert_eq!(leader["timeline"], 2);
    assert!(leader.get("lag").is_none(), "no lag on the leader");

    let replica = &members[1];
    assert_eq!(replica["role"], "replica");
    assert_eq!(replica["state"], "streaming");
    assert_eq!(replica["lag"], 1000);
    assert_eq!(replica["replay_lag"], 1000);
    assert_eq!(replica["receive_lag"], 1000);
    assert_eq!(replica["lsn"], super::wal::format_lsn(PRIMARY_LSN - 1000));

    let unknown = &members[2];
    assert_eq!(unknown["lag"], "unknown");
    assert_eq!(unknown["lsn"], "unknown");
    assert_eq!(unknown["api_url"], Value::Null);
}

#[tokio::test]
async fn history_and_config_documents() {
    let server = start(replica_streaming(), None).await;
    let history = get(server.addr, "/history").await.json();
    assert_eq!(
        history,
        serde_json::json!([[
            1,
            25_623_960,
            "no recovery target specified",
            "2024-08-28T19:39:26+00:00",
            "node1"
        ]])
    );
    let config = get(server.addr, "/config").await;
    assert_eq!(config.status, 200);
    let config = config.json();
    assert_eq!(config["ttl"], crate::config::DEFAULT_TTL_SECS);
    assert_eq!(config["loop_wait"], crate::config::DEFAULT_LOOP_WAIT_SECS);
    assert_eq!(config["maximum_lag_on_failover"], 1_048_576);
}

#[tokio::test]
async fn metrics_use_patroni_names_and_labels() {
    let server = start(primary_with_lease(), None).await;
    let reply = get(server.addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.header("content-type").unwrap().starts_with("text/plain"));
    let text = reply.body;
    for name in [
        "patroni_version",
        "patroni_postgres_running",
        "patroni_postmaster_start_time",
        "patroni_primary",
        "patroni_xlog_location",
        "patroni_standby_leader",
        "patroni_replica",
        "patroni_sync_standby",
        "patroni_xlog_received_location",
        "patroni_xlog_replayed_location",
        "patroni_xlog_paused",
        "patroni_postgres_server_version",
        "patroni_cluster_unlocked",
        "patroni_failsafe_mode_is_active",
        "patroni_postgres_timeline",
        "patroni_dcs_last_seen",
        "patroni_pending_restart",
        "patroni_is_paused",
        "patroni_postgres_state",
        "patroni_failover_priority",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "no HELP for {name}");
        assert!(text.contains(&format!("# TYPE {name} ")), "no TYPE for {name}");
        assert!(
            text.contains(&format!("{name}{{scope=\"demo\",name=\"node1\"}} ")),
            "no sample for {name}"
        );
    }
    let labels = "{scope=\"demo\",name=\"node1\"}";
    for sample in [
        format!("patroni_version{labels} 000100"),
        format!("patroni_primary{labels} 1"),
        format!("patroni_replica{labels} 0"),
        format!("patroni_xlog_location{labels} {PRIMARY_LSN}"),
        format!("patroni_postmaster_start_time{labels} 1724873966"),
        format!("patroni_postgres_server_version{labels} 160004"),
        format!("patroni_postgres_state{labels} 5"),
        format!("patroni_cluster_unlocked{labels} 0"),
    ] {
        assert!(text.lines().any(|line| line == sample), "missing line {sample}");
    }
}

// ---------------------------------------------------------------------------------------------
// Operator requests

fn admin() -> BasicAuth {
    BasicAuth {
        username: "admin".to_string(),
        password: "s3cret".to_string(),
    }
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Play the HA loop: answer the next operator request with `outcome`; the task hands back
/// which request it was and the queue, to put back into the server for the next one.
fn answer_next_request(
    server: &mut TestServer,
    outcome: Result<&'static str, &'static str>,
) -> tokio::task::JoinHandle<(&'static str, mpsc::Receiver<OperatorRequest>)> {
    let mut requests = std::mem::replace(&mut server.requests, mpsc::channel(1).1);
    tokio::spawn(async move {
        let outcome = outcome.map(String::from).map_err(String::from);
        let kind = match requests.recv().await.expect("a request") {
            OperatorRequest::Reload { reply } => {
                let _ = reply.send(outcome);
                "reload"
            }
            OperatorRequest::Restart { reply } => {
                let _ = reply.send(outcome);
                "restart"
            }
            OperatorRequest::Reinit { reply } => {
                let _ = reply.send(outcome);
                "reinit"
            }
            OperatorRequest::KeyspaceWrite { .. } => "keyspace write",
        };
        (kind, requests)
    })
}

/// Play the HA loop for a keyspace write: answer the next request, which must be one, with
/// `outcome`; the task hands back the command and the queue.
fn answer_next_write(
    server: &mut TestServer,
    outcome: Result<CommandOutcome, &'static str>,
) -> tokio::task::JoinHandle<(Command, mpsc::Receiver<OperatorRequest>)> {
    let mut requests = std::mem::replace(&mut server.requests, mpsc::channel(1).1);
    tokio::spawn(async move {
        match requests.recv().await.expect("a request") {
            OperatorRequest::KeyspaceWrite { command, reply } => {
                let _ = reply.send(outcome.map_err(String::from));
                (command, requests)
            }
            other => panic!("expected a keyspace write, got {other:?}"),
        }
    })
}

#[tokio::test]
async fn mutating_endpoints_require_the_configured_credentials() {
    let mut server = start(primary_with_lease(), Some(admin())).await;
    for (method, path) in [
        ("POST", "/reload"),
        ("POST", "/restart"),
        ("POST", "/switchover"),
        ("DELETE", "/switchover"),
        ("POST", "/failover"),
        ("POST", "/reinitialize"),
        ("POST", "/reinit"),
        ("PATCH", "/config"),
        ("PUT", "/config"),
    ] {
        let missing = call(server.addr, method, path, &[], "").await;
        assert_eq!(missing.status, 401, "{path} without credentials");
        assert_eq!(
            missing.header("www-authenticate"),
            Some("Basic realm=\"pgquorum\"")
        );
        let wrong = basic("admin", "guess");
        let wrong = call(server.addr, method, path, &[("Authorization", &wrong)], "").await;
        assert_eq!(wrong.status, 401, "{path} with a wrong password");
    }
    assert!(server.requests.try_recv().is_err(), "nothing reached the loop");

    let right = basic("admin", "s3cret");
    let loop_task = answer_next_request(&mut server, Ok("reload scheduled"));
    let reply = call(server.addr, "POST", "/reload", &[("Authorization", &right)], "").await;
    assert_eq!((reply.status, reply.body.as_str()), (202, "reload scheduled"));
    let (kind, requests) = loop_task.await.unwrap();
    assert_eq!(kind, "reload");
    server.requests = requests;

    let loop_task = answer_next_request(&mut server, Ok("restarted successfully"));
    let reply = call(
        server.addr,
        "POST",
        "/restart",
        &[("Authorization", &right)],
        "{}",
    )
    .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "restarted successfully")
    );
    assert_eq!(loop_task.await.unwrap().0, "restart");
}

#[tokio::test]
async fn restart_failures_and_conditions() {
    let mut server = start(primary_with_lease(), None).await;
    let loop_task = answer_next_request(&mut server, Err("restart failed"));
    let reply = call(server.addr, "POST", "/restart", &[], "").await;
    assert_eq!((reply.status, reply.body.as_str()), (503, "restart failed"));
    loop_task.await.unwrap();

    let mut server = start(primary_with_lease(), None).await;
    let reply = call(server.addr, "POST", "/restart", &[], r#"{"role":"replica"}"#).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "restart conditions are not satisfied")
    );
    let reply = call(
        server.addr,
        "POST",
        "/restart",
        &[],
        r#"{"schedule":"2030-01-01T00:00:00+00:00"}"#,
    )
    .await;
    assert_eq!(reply.status, 501);
    assert_eq!(
        call(server.addr, "POST", "/restart", &[], "{oops").await.status,
        400
    );
    assert!(
        server.requests.try_recv().is_err(),
        "refused restarts never reach the loop"
    );
}

#[tokio::test]
async fn operator_requests_fail_cleanly_when_the_loop_is_gone() {
    let mut server = start(primary_with_lease(), None).await;
    drop(std::mem::replace(&mut server.requests, mpsc::channel(1).1));
    let reply = call(server.addr, "POST", "/reload", &[], "").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "the HA loop is not running")
    );
}

/// `PATCH`/`PUT /config` check the body before the keyspace; a JSON object reaches the
/// `config` write path, which a server without a Raft node does not have (the end-to-end
/// answers are in tests/rest_config.rs).
#[tokio::test]
async fn config_edits_need_a_json_object_body() {
    let mut server = start(primary_with_lease(), None).await;
    for method in ["PATCH", "PUT"] {
        for body in ["", "ttl=20", "[1]", "null", "{oops"] {
            let reply = call(server.addr, method, "/config", &[JSON], body).await;
            assert_eq!(reply.status, 400, "{method} {body:?}");
            assert!(reply.body.starts_with("Invalid request"), "{}", reply.body);
        }
        let reply = call(server.addr, method, "/config", &[JSON], r#"{"ttl": 20}"#).await;
        assert_eq!(reply.status, 503, "{method}: {}", reply.body);
    }
    assert!(
        server.requests.try_recv().is_err(),
        "config edits do not go through the loop"
    );
}

// ---------------------------------------------------------------------------------------------
// Paths and methods

#[tokio::test]
async fn unknown_paths_404_and_unsupported_methods_501() {
    let server = start(primary_with_lease(), None).await;
    for (method, path, want) in [
        ("GET", "/nonexistent", 404),
        ("POST", "/failsafe", 404),
        ("GET", "/switchover", 501),
        ("PUT", "/switchover", 501),
        ("GET", "/failover", 501),
        ("DELETE", "/failover", 501),
        ("GET", "/reinitialize", 501),
        ("GET", "/reinit", 501),
        ("POST", "/config", 501),
        ("DELETE", "/config", 501),
        ("PUT", "/patroni", 501),
        ("POST", "/primary", 501),
        ("GET", "/reload", 501),
        ("DELETE", "/restart", 501),
        ("HEAD", "/patroni", 200),
        ("OPTIONS", "/cluster", 200),
        ("HEAD", "/metrics", 200),
        ("OPTIONS", "/readiness", 200),
    ] {
        let reply = call(server.addr, method, path, &[], "").await;
        assert_eq!(reply.status, want, "{method} {path}");
    }
}

// ---------------------------------------------------------------------------------------------
// Switchover, failover, reinitialize

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// node1 primary with the lease, node2 and node3 streaming, seen from node1.
fn three_members() -> NodeSnapshot {
    let mut snapshot = primary_with_lease();
    let view = snapshot.cluster.as_mut().unwrap();
    view.members.push(replica_member("node3", PRIMARY_LSN));
    view.as_of_ms = crate::timefmt::now_ms();
    snapshot
}

fn with_view(mut snapshot: NodeSnapshot, f: impl FnOnce(&mut ClusterView)) -> NodeSnapshot {
    f(snapshot.cluster.as_mut().unwrap());
    snapshot
}

/// What node1 sees once `holder` holds the lease.
fn after_handover(holder: &str) -> NodeSnapshot {
    with_view(three_members(), |view| {
        view.leader.as_mut().unwrap().holder = holder.to_string();
    })
}

#[tokio::test]
async fn refused_switchovers_never_reach_the_loop() {
    let tomorrow = crate::timefmt::rfc3339(crate::timefmt::now_ms() + 86_400_000);
    let paused = with_view(three_members(), |v| v.config.pause = true);
    let pending = with_view(three_members(), |v| {
        v.failover = Some(FailoverRequest {
            leader: Some("node1".into()),
            member: Some("node3".into()),
            ..Default::default()
        });
        v.failover_revision = Some(12);
    });
    let nofailover = with_view(three_members(), |v| {
        v.members[1].tags.nofailover = Some(true);
    });
    #[rustfmt::skip]
    let table: Vec<(NodeSnapshot, &str, String, u16, &str)> = vec![
        (three_members(), "/switchover", "".into(), 400, "the body must be a JSON object"),
        (three_members(), "/switchover", "[]".into(), 400, "the body must be a JSON object"),
        (three_members(), "/switchover", r#"{"leader": 1}"#.into(), 400, "leader must be a string"),
        (three_members(), "/switchover", r#"{"candidate": "node2"}"#.into(), 400,
            "Switchover could be performed only from a specific leader"),
        (three_members(), "/switchover", r#"{"leader": "node2", "candidate": "node3"}"#.into(), 412,
            "leader name does not match"),
        (three_members(), "/switchover", r#"{"leader": "node1", "candidate": "node1"}"#.into(), 400,
            "Switchover target and source are the same"),
        (three_members(), "/switchover", r#"{"leader": "node1", "candidate": "node9"}"#.into(), 412,
            "candidate node9 does not exist"),
        (nofailover, "/switchover", r#"{"leader": "node1", "candidate": "node2"}"#.into(), 412,
            "candidate node2 is tagged nofailover"),
        (three_members(), "/switchover", r#"{"leader": "node1", "scheduled_at": "2020-01-01T00:00:00+00:00"}"#.into(), 422,
            "Cannot schedule switchover in the past"),
        (three_members(), "/switchover", r#"{"leader": "node1", "scheduled_at": "soon"}"#.into(), 422,
            "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"),
        (three_members(), "/switchover", r#"{"leader": "node1", "scheduled_at": "2099-01-01T10:00"}"#.into(), 400,
            "Timezone information is mandatory for the scheduled switchover"),
        (paused.clone(), "/switchover", format!(r#"{{"leader": "node1", "candidate": "node2", "scheduled_at": "{tomorrow}"}}"#), 400,
            "Can't schedule switchover in the paused state"),
        (paused, "/switchover", r#"{"leader": "node1"}"#.into(), 400,
            "Switchover is possible only to a specific candidate in a paused state"),
        (pending, "/switchover", r#"{"leader": "node1", "candidate": "node2"}"#.into(), 409,
            "another switchover from node1 to node3 is already pending; cancel it first (`pgquorumctl flush switchover`, DELETE /switchover)"),
        (three_members(), "/failover", r#"{"leader": "node1"}"#.into(), 400,
            "Failover could be performed only to a specific candidate"),
        (three_members(), "/failover", format!(r#"{{"candidate": "node2", "scheduled_at": "{tomorrow}"}}"#), 400,
            "Failover can't be scheduled"),
        (three_members(), "/failover", r#"{"candidate": "node1"}"#.into(), 412,
            "candidate node1 already holds the leader lease"),
        (three_members(), "/failover", r#"{"leader": "node3", "candidate": "node2"}"#.into(), 412,
            "leader name does not match"),
    ];
    for (snapshot, path, body, status, message) in table {
        let mut server = start(snapshot, None).await;
        let reply = call(server.addr, "POST", path, &[JSON], &body).await;
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.body);
        // Exact texts, except that a body that is not JSON also says why.
        let exact = reply.body == message;
        let explained = body.is_empty() && reply.body.starts_with(&format!("{message}: "));
        assert!(exact || explained, "{path} {body}: {:?}", reply.body);
        assert!(
            server.requests.try_recv().is_err(),
            "{path} {body} reached the loop"
        );
    }
}

#[tokio::test]
async fn an_unreachable_keyspace_is_503() {
    let mut snapshot = three_members();
    snapshot.keyspace_reachable = false;
    let mut server = start(snapshot, None).await;
    for (method, path, body) in [
        ("POST", "/switchover", r#"{"leader": "node1"}"#),
        ("POST", "/failover", r#"{"candidate": "node2"}"#),
        ("DELETE", "/switchover", ""),
    ] {
        let reply = call(server.addr, method, path, &[JSON], body).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (
                503,
                "the keyspace is not reachable from this member: ask another one"
            ),
            "{method} {path}"
        );
    }
    let server2 = start(NodeSnapshot::starting("demo", "node1"), None).await;
    let reply = call(
        server2.addr,
        "POST",
        "/switchover",
        &[JSON],
        r#"{"leader": "node1"}"#,
    )
    .await;
    assert_eq!(reply.status, 503, "no view read yet");
    assert!(server.requests.try_recv().is_err());
}

#[tokio::test]
async fn scheduled_switchover_is_recorded_and_answered_202() {
    let mut server = start(three_members(), None).await;
    let at = "2099-01-31T22:00:00+01:00";
    let loop_task = answer_next_write(&mut server, Ok(CommandOutcome::Applied { revision: 40 }));
    let body = format!(r#"{{"leader": "node1", "member": "node2", "scheduled_at": "{at}"}}"#);
    let reply = call(server.addr, "POST", "/switchover", &[JSON], &body).await;
    assert_eq!((reply.status, reply.body.as_str()), (202, "Switchover scheduled"));
    let (command, _) = loop_task.await.unwrap();
    let expected = FailoverRequest {
        leader: Some("node1".into()),
        member: Some("node2".into()),
        scheduled_at: Some(at.into()),
        scheduled_at_ms: crate::timefmt::parse_rfc3339(at),
    };
    assert_eq!(
        command,
        Command::Put {
            key: Key::Failover,
            value: serde_json::to_value(&expected).unwrap(),
            ttl_ms: None,
            precondition: Precondition::Absent,
        }
    );
    assert!(expected.scheduled_at_ms.is_some());
}

fn command_value(command: &Command) -> &Value {
    match command {
        Command::Put { value, .. } => value,
        other => panic!("not a put: {other:?}"),
    }
}

#[tokio::test]
async fn immediate_switchover_waits_for_the_new_leader() {
    let mut server = start(three_members(), None).await;
    let loop_task = answer_next_write(&mut server, Ok(CommandOutcome::Applied { revision: 41 }));
    let addr = server.addr;
    let request = tokio::spawn(async move {
        call(
            addr,
            "POST",
            "/switchover",
            &[JSON],
            r#"{"leader": "node1", "candidate": "node2"}"#,
        )
        .await
    });
    let (command, _) = loop_task.await.unwrap();
    assert_eq!(
        command_value(&command),
        &serde_json::json!({"leader": "node1", "member": "node2"})
    );
    // The loop's next snapshot still shows node1 with the request pending, then node2.
    let pending = with_view(three_members(), |v| {
        v.failover = Some(FailoverRequest::default());
        v.failover_revision = Some(41);
    });
    server.snapshots.send(Arc::new(pending)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.snapshots.send(Arc::new(after_handover("node2"))).unwrap();
    let reply = request.await.unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "Successfully switched over to \"node2\"")
    );
}

#[tokio::test]
async fn switchover_to_the_best_replica_reports_who_took_over() {
    let mut server = start(three_members(), None).await;
    let loop_task = answer_next_write(&mut server, Ok(CommandOutcome::Applied { revision: 5 }));
    let addr = server.addr;
    let request =
        tokio::spawn(
            async move { call(addr, "POST", "/switchover", &[JSON], r#"{"leader": "node1"}"#).await },
        );
    let (command, _) = loop_task.await.unwrap();
    assert_eq!(command_value(&command), &serde_json::json!({"leader": "node1"}));
    server.snapshots.send(Arc::new(after_handover("node3"))).unwrap();
    let reply = request.await.unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "Successfully switched over to \"node3\"")
    );
}

#[tokio::test]
async fn a_switchover_the_loop_gave_up_on_is_503() {
    let mut server = start(three_members(), None).await;
    let loop_task = answer_next_write(&mut server, Ok(CommandOutcome::Applied { revision: 41 }));
    let addr = server.addr;
    let request = tokio::spawn(async move {
        call(
            addr,
            "POST",
            "/switchover",
            &[JSON],
            r#"{"leader": "node1", "candidate": "node2"}"#,
        )
        .await
    });
    loop_task.await.unwrap();
    let pending = with_view(three_members(), |v| {
        v.failover = Some(FailoverRequest::default());
        v.failover_revision = Some(41);
    });
    server.snapshots.send(Arc::new(pending)).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The key is gone and node1 still holds the lease.
    server.snapshots.send(Arc::new(three_members())).unwrap();
    let reply = request.await.unwrap();
    assert_eq!((reply.status, reply.body.as_str()), (503, "Switchover failed"));
}

#[tokio::test]
async fn failover_with_a_leader_is_a_switchover_and_without_one_names_no_leader() {
    // With a leader named: recorded as a switchover (Patroni's rule).
    let mut server = start(three_members(), None).await;
    let loop_task = answer_next_write(&mut server, Ok(CommandOutcome::Applied { revision: 8 }));
    let addr = server.addr;
    let request = tokio::spawn(async move {
        call(
            addr,
            "POST",
            "/failover",
            &[JSON],
            r#"{"leader": "node1", "candidate": "node3"}"#,
        )
        .await
    });
    let (command, _) = loop_task.await.unwrap();
    assert_eq!(
        command_value(&command),
        &serde_json::json!({"leader": "node1", "member": "node3"})
    );
    server.snapshots.send(Arc::new(after_handover("node3"))).unwrap();
    assert_eq!(
        request.await.unwrap().body,
        "Successfully switched over to \"node3\""
    );

    // The primary is gone: a manual failover to node2.
    let no_primary = with_view(three_members(), |v| {
        v.leader = None;
        v.members[0].state = PgRunState::Crashed;
    });
    let mut server = start(no_primary, None).await;
    let loop_task = answer_next_write(&mut server, Ok(CommandOutcome::Applied { revision: 9 }));
    let addr = server.addr;
    let request =
        tokio::spawn(
            async move { call(addr, "POST", "/failover", &[JSON], r#"{"candidate": "node2"}"#).await },
        );
    let (command, _) = loop_task.await.unwrap();
    assert_eq!(command_value(&command), &serde_json::json!({"member": "node2"}));
    server.snapshots.send(Arc::new(after_handover("node2"))).unwrap();
    let reply = request.await.unwrap();
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "Successfully failed over to \"node2\"")
    );
}

#[tokio::test]
async fn write_failures_and_races() {
    let mut server = start(three_members(), None).await;
    let loop_task = answer_next_write(&mut server, Err("no Raft leader"));
    let reply = call(
        server.addr,
        "POST",
        "/switchover",
        &[JSON],
        r#"{"leader": "node1"}"#,
    )
    .await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "failed to write failover key into DCS: no Raft leader")
    );
    server.requests = loop_task.await.unwrap().1;

    // Someone else's request got in between the check and the write.
    let theirs = crate::keyspace::Entry {
        key: Key::Failover,
        value: serde_json::json!({"member": "node3"}),
        revision: 50,
        created_revision: 50,
        updated_ms: 0,
        expires_at_ms: None,
        holder: None,
        holder_addr: None,
    };
    let loop_task = answer_next_write(
        &mut server,
        Ok(CommandOutcome::Rejected {
            reason: "failover: key exists".into(),
            current: Some(Box::new(theirs)),
        }),
    );
    let reply = call(
        server.addr,
        "POST",
        "/switchover",
        &[JSON],
        r#"{"leader": "node1"}"#,
    )
    .await;
    assert_eq!(reply.status, 409);
    assert!(
        reply
            .body
            .starts_with("another failover to node3 is already pending"),
        "{}",
        reply.body
    );
    loop_task.await.unwrap();
}

#[tokio::test]
async fn deleting_a_scheduled_switchover() {
    let server = start(three_members(), None).await;
    let reply = call(server.addr, "DELETE", "/switchover", &[], "").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (404, "no switchover is scheduled")
    );

    let scheduled = with_view(three_members(), |v| {
        v.failover = Some(FailoverRequest {
            leader: Some("node1".into()),
            scheduled_at: Some("2099-01-01T00:00:00+00:00".into()),
            scheduled_at_ms: Some(4_070_908_800_000),
            ..Default::default()
        });
        v.failover_revision = Some(33);
    });
    let mut server = start(scheduled.clone(), None).await;
    let loop_task = answer_next_write(&mut server, Ok(CommandOutcome::Applied { revision: 34 }));
    let reply = call(server.addr, "DELETE", "/switchover", &[], "").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "scheduled switchover deleted")
    );
    let (command, requests) = loop_task.await.unwrap();
    assert_eq!(
        command,
        Command::Delete {
            key: Key::Failover,
            precondition: Precondition::Revision(33),
        }
    );
    server.requests = requests;

    let loop_task = answer_next_write(
        &mut server,
        Ok(CommandOutcome::Rejected {
            reason: "failover: revision is 35, expected 33".into(),
            current: None,
        }),
    );
    let reply = call(server.addr, "DELETE", "/switchover", &[], "").await;
    assert_eq!(reply.status, 409);
    loop_task.await.unwrap();

    // /cluster shows it as Patroni does.
    let doc = get(server.addr, "/cluster").await.json();
    assert_eq!(
        doc["scheduled_switchover"],
        serde_json::json!({"at": "2099-01-01T00:00:00+00:00", "from": "node1"})
    );
    let plain = start(three_members(), None).await;
    assert!(get(plain.addr, "/cluster")
        .await
        .json()
        .get("scheduled_switchover")
        .is_none());
}

#[tokio::test]
async fn reinitialize() {
    let server = start(primary_with_lease(), None).await;
    let reply = call(server.addr, "POST", "/reinitialize", &[], "").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "I am the leader, can not reinitialize")
    );

    let mut server = start(replica_streaming(), None).await;
    for (path, body) in [("/reinitialize", ""), ("/reinit", r#"{"force": true}"#)] {
        let loop_task = answer_next_request(&mut server, Ok(""));
        let reply = call(server.addr, "POST", path, &[JSON], body).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "reinitialize started"),
            "{path}"
        );
        let (kind, requests) = loop_task.await.unwrap();
        assert_eq!(kind, "reinit");
        server.requests = requests;
    }
    let loop_task = answer_next_request(&mut server, Err("reinit is not available yet"));
    let reply = call(server.addr, "POST", "/reinitialize", &[], "{}").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (503, "reinit is not available yet")
    );
    server.requests = loop_task.await.unwrap().1;

    for body in ["{oops", "[]", r#"{"force": "yes"}"#] {
        let reply = call(server.addr, "POST", "/reinitialize", &[JSON], body).await;
        assert_eq!(reply.status, 400, "{body}");
    }
    assert!(
        server.requests.try_recv().is_err(),
        "bad bodies never reach the loop"
    );
}

// ---------------------------------------------------------------------------------------------
// Fuzzing the write endpoints' bodies (issue 10: bounded, hostile input)

/// Bodies for the write endpoints: raw bytes, and JSON objects built from the keys those
/// endpoints read with values of every JSON type.
fn hostile_body() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let key = prop::sample::select(vec![
        "leader",
        "candidate",
        "scheduled_at",
        "schedule",
        "restart_pending",
        "role",
        "postgres_version",
        "timeout",
        "ttl",
        "loop_wait",
        "postgresql",
        "parameters",
        "pause",
        "member",
        "",
        "\u{0}",
    ]);
    let scalar = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,24}".prop_map(Value::String),
    ];
    let value = scalar.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let object = prop::collection::btree_map(key, value, 0..5).prop_map(|m| {
        let object: serde_json::Map<String, Value> = m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        serde_json::to_vec(&Value::Object(object)).expect("a JSON value serialises")
    });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..64), object]
}

/// Every write endpoint answers any body with a status (never a dropped connection or a
/// panic), refuses what it cannot parse with 4xx, and what reaches the loop is answered.
#[test]
fn write_endpoints_answer_any_body_with_a_status() {
    use proptest::test_runner::{Config, TestRunner};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut server = rt.block_on(start(primary_with_lease(), None));
    // The loop's side: refuse whatever a body turned into, so no handler waits for a reply.
    let mut requests = std::mem::replace(&mut server.requests, mpsc::channel(1).1);
    rt.spawn(async move {
        while let Some(request) = requests.recv().await {
            match request {
                OperatorRequest::Reload { reply }
                | OperatorRequest::Restart { reply }
                | OperatorRequest::Reinit { reply } => {
                    let _ = reply.send(Err("refused by the fuzz test".into()));
                }
                OperatorRequest::KeyspaceWrite { reply, .. } => {
                    let _ = reply.send(Err("refused by the fuzz test".into()));
                }
            }
        }
    });
    let endpoints = [
        ("POST", "/switchover"),
        ("POST", "/failover"),
        ("DELETE", "/switchover"),
        ("POST", "/restart"),
        ("POST", "/reinitialize"),
        ("POST", "/reload"),
        ("PATCH", "/config"),
        ("PUT", "/config"),
    ];
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(128);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    runner
        .run(&hostile_body(), |body| {
            let body = String::from_utf8_lossy(&body).into_owned();
            for (method, path) in endpoints {
                let reply = rt.block_on(call(server.addr, method, path, &[JSON], &body));
                proptest::prop_assert!(
                    (200..600).contains(&reply.status) && reply.status != 500,
                    "{method} {path} {body:?}: {} {}",
                    reply.status,
                    reply.body
                );
            }
            Ok(())
        })
        .unwrap();
    // Still serving after all of it.
    assert_eq!(rt.block_on(get(server.addr, "/health")).status, 200);
}
