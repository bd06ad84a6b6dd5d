//! Shared helpers for the multi-process tests: real `pgquorum` agents on 127.0.0.1.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pgquorum::demo::{Demo, DemoOptions};
use pgquorum::keyspace::{Command, Key, Precondition};
use tokio::time::Instant;

pub const EXE: &str = env!("CARGO_BIN_EXE_pgquorum");
pub const CTL: &str = env!("CARGO_BIN_EXE_pgquorumctl");

/// Poll `probe` until it returns `Some`, or panic with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Options for a 3-agent cluster in `dir`, with or without PostgreSQL.
pub fn cluster_options(dir: &Path, base_port: u16, postgres: bool) -> DemoOptions {
    DemoOptions {
        dir: Some(dir.to_path_buf()),
        base_port,
        nodes: 3,
        exe: Some(PathBuf::from(EXE)),
        extra_config: String::new(),
        postgres,
    }
}

/// Start a 3-agent Raft group (no PostgreSQL) and wait for a leader.
pub async fn start_cluster(dir: &Path, base_port: u16) -> Demo {
    let mut demo = Demo::start(&cluster_options(dir, base_port, false))
        .await
        .expect("start agents");
    demo.wait_healthy(Duration::from_secs(60))
        .await
        .expect("cluster healthy");
    demo
}

pub fn put(key: &str, value: serde_json::Value) -> Command {
    Command::Put {
        key: key.parse::<Key>().expect("valid key"),
        value,
        ttl_ms: None,
        precondition: Precondition::Any,
    }
}

/// Index of the current Raft leader among `demo.endpoints`.
pub async fn leader_index(demo: &Demo, ask: usize) -> Option<usize> {
    let rows = pgquorum::ctl::fetch_raft_status(&demo.endpoints[ask])
        .await
        .ok()?;
    let leader = rows.iter().find(|r| r.role == "leader")?;
    demo.endpoints.iter().position(|e| *e == leader.address)
}

/// Start a 3-agent cluster with PostgreSQL and wait for a primary and two streaming replicas.
pub async fn start_pg_cluster(dir: &Path, base_port: u16) -> (Demo, DemoOptions) {
    let opts = cluster_options(dir, base_port, true);
    let mut demo = Demo::start(&opts).await.expect("start agents");
    demo.wait_postgres_healthy(Duration::from_secs(180))
        .await
        .expect("primary and two streaming replicas");
    (demo, opts)
}

/// A superuser connection to the PostgreSQL on `port` (the demo's password).
pub async fn pg_connect(port: u16) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user=postgres password={} dbname=postgres connect_timeout=3",
        pgquorum::demo::DEMO_SUPERUSER_PASSWORD
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The first column of the first row of `sql` on `port`, as text.
pub async fn pg_scalar(port: u16, sql: &str) -> Option<String> {
    let client = pg_connect(port).await.ok()?;
    let rows = client.simple_query(sql).await.ok()?;
    rows.into_iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    })
}

/// HTTP status of `METHOD path` on 127.0.0.1:`port` (a plain HTTP/1.0 exchange).
pub async fn http_status(port: u16, method: &str, path: &str, auth: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("REST API reachable");
    let auth = auth
        .map(|a| format!("Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    let req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The postmaster pid in `data_dir/postmaster.pid`.
pub fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// A temp dir that is kept (and named on stderr) when the test fails, for the agents' logs.
pub struct TestDir(Option<tempfile::TempDir>);

impl TestDir {
    pub fn new() -> TestDir {
        TestDir(Some(
            tempfile::Builder::new().prefix("pgq-test-").tempdir().unwrap(),
        ))
    }
    pub fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!("test failed: logs kept in {}", dir.keep().display());
            }
        }
    }
}

/// One agent started on its own from a generated config, for tests where agents start at
/// different times or with member lists that differ. Ports follow `DemoOptions`' scheme:
/// Raft/gRPC `base_port + i`, PostgreSQL `pg_port(i)`, REST `rest_port(i)`.
pub struct SoloAgent {
    pub name: String,
    pub endpoint: String,
    pub log: PathBuf,
    child: tokio::process::Child,
}

/// The config of agent `i` (named `node<i+1>`) of scope `scope`, listing the agents
/// `partners` (indexes) as its `raft.partner_addrs`; with `postgres`, it manages a
/// PostgreSQL like the demo's.
pub fn solo_agent_yaml(dir: &Path, opts: &DemoOptions, scope: &str, i: usize, partners: &[usize]) -> String {
    let name = format!("node{}", i + 1);
    let addr = |j: usize| format!("127.0.0.1:{}", opts.base_port + j as u16);
    let partners: String = partners.iter().map(|&j| format!("  - {}\n", addr(j))).collect();
    let partners = if partners.is_empty() {
        " []\n".to_string()
    } else {
        format!("\n{partners}")
    };
    let mut yaml = format!(
        "scope: {scope}\nname: {name}\nraft:\n  self_addr: {}\n  data_dir: {}\n  partner_addrs:{partners}\
         log:\n  level: INFO\n",
        addr(i),
        dir.join(&name).join("raft").display(),
    );
    if opts.postgres {
        let (pg, rest) = (opts.pg_port(i), opts.rest_port(i));
        yaml.push_str(&format!(
            "restapi:\n  listen: 127.0.0.1:{rest}\n  connect_address: 127.0.0.1:{rest}\n  \
             authentication: {{username: admin, password: demo-admin}}\n\
             bootstrap:\n  dcs:\n    postgresql:\n      use_slots: true\n      use_pg_rewind: true\n      \
             parameters:\n        max_connections: 50\n        shared_buffers: 32MB\n\
             postgresql:\n  listen: 127.0.0.1:{pg}\n  connect_address: 127.0.0.1:{pg}\n  data_dir: {pgdata}\n  \
             authentication:\n    superuser: {{username: postgres, password: {pw}}}\n    \
             replication: {{username: replicator, password: demo-repl}}\n    \
             rewind: {{username: rewinder, password: demo-rewind}}\n",
            pgdata = dir.join(&name).join("pgdata").display(),
            pw = pgquorum::demo::DEMO_SUPERUSER_PASSWORD,
        ));
    }
    yaml
}

impl SoloAgent {
    /// Write `yaml` to `<dir>/<name>.yml` and start an agent on it, logging to `<name>.log`.
    pub fn start(dir: &Path, name: &str, endpoint: &str, yaml: &str) -> SoloAgent {
        let config = dir.join(format!("{name}.yml"));
        std::fs::write(&config, yaml).unwrap();
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(EXE)
            .arg(&config)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("start agent");
        SoloAgent {
            name: name.to_string(),
            endpoint: endpoint.to_string(),
            log,
            child,
        }
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM (the agent stops its PostgreSQL), then SIGKILL after 30 s.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on a child we started.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// This node's own Raft status (`NodeStatus`), if it answers.
pub async fn node_status(endpoint: &str) -> Option<pgquorum::grpc::pb::admin::NodeStatusReply> {
    let channel = pgquorum::grpc::lazy_channel(endpoint, Duration::from_millis(500)).ok()?;
    let mut client = pgquorum::grpc::pb::admin::admin_client::AdminClient::new(channel);
    let mut req = tonic::Request::new(pgquorum::grpc::pb::admin::NodeStatusRequest {});
    req.set_timeout(Duration::from_secs(1));
    Some(client.node_status(req).await.ok()?.into_inner())
}
