//! Helpers for failover tests with real PostgreSQL under load: a split-brain monitor, a
//! writer that records every acknowledged insert, and probes of the cluster (which member is
//! primary, who streams), shared by tests/pg_failover.rs and tests/sync_mode.rs.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgquorum::demo::{Demo, DemoOptions};
use tokio::task::JoinHandle;

use super::*;

pub const TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- the invariant monitor

/// Samples every server's `pg_is_in_recovery()` until stopped; records any sample where two
/// servers accepted writes, and which servers were ever writable.
pub struct SplitBrainMonitor {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: JoinHandle<(Vec<String>, BTreeSet<usize>)>,
}

impl SplitBrainMonitor {
    pub fn start(ports: Vec<u16>) -> SplitBrainMonitor {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut clients: Vec<Option<tokio_postgres::Client>> = ports.iter().map(|_| None).collect();
            let mut violations = Vec::new();
            let mut ever = BTreeSet::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let mut writable = Vec::new();
                for (i, port) in ports.iter().enumerate() {
                    if clients[i].as_ref().is_none_or(|c| c.is_closed()) {
                        clients[i] = tokio::time::timeout(Duration::from_millis(300), pg_connect(*port))
                            .await
                            .ok()
                            .and_then(Result::ok);
                    }
                    let Some(client) = &clients[i] else { continue };
                    let answer = tokio::time::timeout(
                        Duration::from_millis(300),
                        client.query_one("SELECT pg_is_in_recovery()", &[]),
                    )
                    .await;
                    match answer {
                        Ok(Ok(row)) if !row.get::<_, bool>(0) => writable.push(i),
                        Ok(Ok(_)) => {}
                        _ => clients[i] = None,
                    }
                }
                ever.extend(writable.iter().copied());
                if writable.len() > 1 {
                    violations.push(format!("servers {writable:?} accepted writes at the same time"));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (violations, ever)
        });
        SplitBrainMonitor { stop, task }
    }

    /// Stop, assert no violation, and return the set of servers that were ever writable.
    pub async fn finish(self) -> BTreeSet<usize> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (violations, ever) = self.task.await.expect("monitor task");
        assert!(violations.is_empty(), "split brain: {violations:?}");
        ever
    }
}

// ---------------------------------------------------------------- the writer

/// Inserts a row every few ms through a multi-host read-write connection; keeps the ids
/// PostgreSQL acknowledged.
pub struct Writer {
    stop: Arc<std::sync::atomic::AtomicBool>,
    pub acked: Arc<Mutex<Vec<i64>>>,
    task: JoinHandle<()>,
}

pub fn multi_host(opts: &DemoOptions) -> String {
    let ports: Vec<String> = (0..3).map(|i| opts.pg_port(i).to_string()).collect();
    format!(
        "host=127.0.0.1,127.0.0.1,127.0.0.1 port={} user=postgres password={} dbname=postgres \
         target_session_attrs=read-write connect_timeout=2",
        ports.join(","),
        pgquorum::demo::DEMO_SUPERUSER_PASSWORD
    )
}

impl Writer {
    pub async fn start(opts: &DemoOptions) -> Writer {
        let conninfo = multi_host(opts);
        let client = connect(&conninfo).await.expect("writer connects");
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS acked (id bigint PRIMARY KEY)")
            .await
            .expect("create table");
        drop(client);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (flag, list) = (stop.clone(), acked.clone());
        let task = tokio::spawn(async move {
            let mut client: Option<tokio_postgres::Client> = None;
            let mut id = 0i64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = connect(&conninfo).await.ok();
                }
                if let Some(c) = &client {
                    id += 1;
                    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                    let insert = c.execute("INSERT INTO acked VALUES ($1) ON CONFLICT DO NOTHING", &params);
                    match tokio::time::timeout(Duration::from_secs(2), insert).await {
                        Ok(Ok(_)) => list.lock().unwrap().push(id),
                        _ => client = None,
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Writer { stop, acked, task }
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    pub async fn finish(self) -> Vec<i64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("writer task");
        let acked = self.acked.lock().unwrap().clone();
        acked
    }
}

pub async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// Wait until the writer has `more` acknowledged rows beyond what it has now.
pub async fn writes_progress(writer: &Writer, more: usize, what: &str) {
    let target = writer.acked_count() + more;
    wait_for(what, TIMEOUT, || async {
        (writer.acked_count() >= target).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------- cluster probes

pub fn names() -> [&'static str; 3] {
    ["node1", "node2", "node3"]
}

pub fn index_of(name: &str) -> usize {
    names().iter().position(|n| *n == name).expect("a node name")
}

/// The member holding the leader lease, published as running, and a writable primary.
pub async fn primary(demo: &Demo, opts: &DemoOptions) -> Option<usize> {
    let view = cluster_view(demo).await?;
    let name = view.leader_name()?;
    let leader = index_of(name);
    if view.member(name)?.state != pgquorum::cluster::PgRunState::Running {
        return None;
    }
    let writable = pg_scalar(opts.pg_port(leader), "SELECT NOT pg_is_in_recovery()").await;
    (writable.as_deref() == Some("t")).then_some(leader)
}

pub async fn cluster_view(demo: &Demo) -> Option<pgquorum::cluster::ClusterView> {
    for endpoint in &demo.endpoints {
        if let Ok(view) = pgquorum::ctl::cluster_read::cluster_view(endpoint).await {
            return Some(view);
        }
    }
    None
}

/// Member `i` runs as a replica streaming from the current primary.
pub async fn streams(demo: &Demo, i: usize) -> bool {
    let Some(view) = cluster_view(demo).await else {
        return false;
    };
    view.member(names()[i])
        .is_some_and(|m| m.state == pgquorum::cluster::PgRunState::Streaming)
}

pub async fn wait_primary(demo: &Demo, opts: &DemoOptions, what: &str) -> usize {
    wait_for(what, TIMEOUT, || primary(demo, opts)).await
}

pub fn data_dir(dir: &Path, i: usize) -> std::path::PathBuf {
    dir.join(names()[i]).join("pgdata")
}

/// Wait until no `failover` key is pending (the new primary removes it).
pub async fn failover_key_cleared(demo: &Demo) {
    wait_for("the failover key removed", TIMEOUT, || async {
        cluster_view(demo)
            .await
            .filter(|v| v.failover.is_none())
            .map(|_| ())
    })
    .await;
}

/// kill -9 of a whole node: the agent and its postmaster (the machine is gone).
pub async fn kill_node(demo: &mut Demo, dir: &Path, i: usize) {
    let postmaster = postmaster_pid(&data_dir(dir, i));
    demo.kill9(i).await;
    if let Some(pid) = postmaster {
        signal(pid, libc::SIGKILL);
    }
}

/// Run pgquorumctl against a node whose agent is running.
pub fn ctl(demo: &Demo, args: &[&str]) -> std::process::Output {
    let live = (0..3).find(|i| demo.pid(*i).is_some()).expect("a running agent");
    std::process::Command::new(CTL)
        .arg("--endpoint")
        .arg(&demo.endpoints[live])
        .args(args)
        .output()
        .expect("run pgquorumctl")
}

pub fn ctl_ok(demo: &Demo, args: &[&str]) -> String {
    let out = ctl(demo, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgquorumctl {args:?} failed: {text}");
    text
}

/// POST `body` to the REST API of node `i` (the demo's admin credentials); returns the status.
pub async fn rest_post(opts: &DemoOptions, i: usize, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", opts.rest_port(i)))
        .await
        .expect("REST API reachable");
    let auth = base64_basic("admin", "demo-admin");
    let req = format!(
        "POST {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

pub fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

/// Every acknowledged id is on the server at `port`.
pub async fn assert_no_acked_row_lost(port: u16, acked: &[i64], what: &str) {
    let client = pg_connect(port).await.expect("connect to the primary");
    let rows = client.query("SELECT id FROM acked", &[]).await.expect("read ids");
    let present: BTreeSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    let lost: Vec<i64> = acked.iter().filter(|id| !present.contains(id)).copied().collect();
    assert!(
        lost.is_empty(),
        "{what}: {} acknowledged rows lost: {lost:?}",
        lost.len()
    );
}
