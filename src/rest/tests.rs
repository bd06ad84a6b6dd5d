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
use crate::cluster::{ClusterView, HistoryEntry, LeaderLease, MemberStatus, PgRole, PgRunState};
use crate::config::BasicAuth;
use crate::ha::{NodeSnapshot, OperatorRequest, ReplicationRow};

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
    _snapshots: watch::Sender<Arc<NodeSnapshot>>,
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
        auth,
        version: VERSION,
    };
    tokio::spawn(serve(listener, state, async {
        let _ = stopped.await;
    }));
    TestServer {
        addr,
        requests,
        _snapshots: snapshots,
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
    for (snapshot, want) in [(primary, 503), (replica, 200), (stale_replica, 503)] {
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
    assert_eq!(config["ttl"], 30);
    assert_eq!(config["loop_wait"], 10);
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

#[tokio::test]
async fn mutating_endpoints_require_the_configured_credentials() {
    let mut server = start(primary_with_lease(), Some(admin())).await;
    for path in ["/reload", "/restart"] {
        let missing = call(server.addr, "POST", path, &[], "").await;
        assert_eq!(missing.status, 401, "{path} without credentials");
        assert_eq!(
            missing.header("www-authenticate"),
            Some("Basic realm=\"pgquorum\"")
        );
        let wrong = basic("admin", "guess");
        let wrong = call(server.addr, "POST", path, &[("Authorization", &wrong)], "").await;
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

// ---------------------------------------------------------------------------------------------
// Paths and methods

#[tokio::test]
async fn unknown_paths_404_and_unsupported_methods_501() {
    let server = start(primary_with_lease(), None).await;
    for (method, path, want) in [
        ("GET", "/nonexistent", 404),
        ("POST", "/switchover", 404),
        ("POST", "/failover", 404),
        ("POST", "/reinitialize", 404),
        ("PATCH", "/config", 501),
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
