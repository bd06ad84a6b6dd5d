//! Shared helpers for the multi-process tests: real `pgquorum` agents on 127.0.0.1.
#![allow(dead_code)]

pub mod https;
pub mod pg_load;

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
        bootstrap_parameters: Vec::new(),
        tls: false,
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

/// The Raft leader as agent `ask` sees it, waiting out an election in progress (on a loaded
/// machine one can start right after the group reported healthy).
pub async fn wait_leader(demo: &Demo, ask: usize) -> usize {
    wait_for("a Raft leader", Duration::from_secs(15), || {
        leader_index(demo, ask)
    })
    .await
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

/// `METHOD path` with a JSON `body` on 127.0.0.1:`port` (plain HTTP/1.0), with Basic
/// credentials `auth`: the status and the body.
pub async fn http_call(
    port: u16,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    body: &str,
) -> (u16, String) {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("REST API reachable");
    let auth = auth
        .map(|(user, password)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Authorization: Basic {token}\r\n")
        })
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
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

/// Whether process `pid` exists and has not exited (a zombie waiting to be reaped counts as
/// gone).
pub fn process_alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !stat.is_empty() && !matches!(state, Some('Z') | Some('X'))
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

/// A Patroni 4 style configuration file for node `n` (1-based) of a 3-node cluster on
/// loopback, with the ports [`DemoOptions`] lays out for `base_port` (Raft `base_port + n - 1`,
/// PostgreSQL `+ 3200`, REST `+ 5800`) and its data under `dir/node<n>`. `dcs` holds extra
/// lines for `bootstrap.dcs` (indented four spaces), `extra` extra top-level sections.
pub fn patroni_node_config(dir: &Path, n: usize, base_port: u16, dcs: &str, extra: &str) -> String {
    let port = |offset: u16, i: usize| base_port + offset + i as u16 - 1;
    let partners: String = (1..=3)
        .filter(|i| *i != n)
        .map(|i| format!("  - 127.0.0.1:{}\n", port(0, i)))
        .collect();
    let node = dir.join(format!("node{n}"));
    format!(
        "scope: patroni-style\n\
         name: node{n}\n\
         restapi:\n  listen: 127.0.0.1:{rest}\n  connect_address: 127.0.0.1:{rest}\n  \
         authentication:\n    username: admin\n    password: change-me\n\
         raft:\n  data_dir: {raft}\n  self_addr: 127.0.0.1:{raft_port}\n  partner_addrs:\n{partners}\
         bootstrap:\n  dcs:\n{dcs}    maximum_lag_on_failover: 1048576\n    postgresql:\n      use_pg_rewind: true\n      \
         use_slots: true\n      parameters:\n        max_connections: 50\n        shared_buffers: 32MB\n  \
         initdb:\n  - encoding: UTF8\n  - data-checksums\n\
         postgresql:\n  listen: 127.0.0.1:{pg}\n  connect_address: 127.0.0.1:{pg}\n  data_dir: {pgdata}\n  \
         bin_dir: /usr/lib/postgresql/15/bin\n  authentication:\n    \
         superuser:\n      username: postgres\n      password: {password}\n    \
         replication:\n      username: replicator\n      password: pgq-repl\n    \
         rewind:\n      username: rewinder\n      password: pgq-rewind\n\
         tags:\n  nofailover: false\n  noloadbalance: false\n  clonefrom: false\n  nosync: false\n\
         log:\n  level: INFO\n{extra}",
        rest = port(5800, n),
        raft = node.join("raft").display(),
        raft_port = port(0, n),
        pg = port(3200, n),
        pgdata = node.join("pgdata").display(),
        password = pgquorum::demo::DEMO_SUPERUSER_PASSWORD,
    )
}

/// Options for agents with PostgreSQL under `dir`, ports from `base_port` as in the demo
/// (Raft `base_port + i`, PostgreSQL `+3200`, REST `+5800`), with extra bootstrap parameters.
pub fn pg_options(dir: &Path, base_port: u16, nodes: usize, parameters: &[(&str, &str)]) -> DemoOptions {
    let mut opts = cluster_options(dir, base_port, true);
    opts.nodes = nodes;
    opts.bootstrap_parameters = parameters
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    opts
}

/// Write the demo-style config of agent `node<i+1>` of `nodes` with PostgreSQL in `dir` (see
/// [`pg_options`]), its replication user's password `replication_password`. Returns its path.
pub fn pg_agent_config(
    dir: &Path,
    base_port: u16,
    i: usize,
    nodes: usize,
    parameters: &[(&str, &str)],
    replication_password: &str,
) -> PathBuf {
    let opts = pg_options(dir, base_port, nodes, parameters);
    let partners: Vec<String> = (0..nodes)
        .filter(|j| *j != i)
        .map(|j| format!("127.0.0.1:{}", base_port + j as u16))
        .collect();
    let yaml = pgquorum::demo::node_config(&opts, i, dir, &partners).replace(
        "password: demo-repl}",
        &format!("password: {replication_password}}}"),
    );
    let path = dir.join(format!("node{}.yml", i + 1));
    std::fs::write(&path, yaml).expect("write the agent's config");
    path
}

/// Start an agent on `config`, its output appended to `log`; killed when dropped.
pub fn spawn_agent(config: &Path, log: &Path) -> tokio::process::Child {
    spawn_exe(Path::new(EXE), config, log)
}

/// The `pgquorum-controller` binary (the `raft-controller/` crate: another package, so cargo
/// does not build it for this package's tests): built here, next to the `pgquorum` binary
/// with the same profile, once per test process (a no-op when up to date).
pub fn controller_exe() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let agent = Path::new(EXE);
            let mut build = std::process::Command::new(env!("CARGO"));
            build.args(["build", "--offline", "-p", "pgquorum-controller"]);
            if agent.parent().and_then(|d| d.file_name()) == Some(std::ffi::OsStr::new("release")) {
                build.arg("--release");
            }
            let status = build
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status()
                .expect("run cargo build -p pgquorum-controller");
            assert!(status.success(), "cargo build -p pgquorum-controller failed");
            agent.with_file_name("pgquorum-controller")
        })
        .clone()
}

/// Start `exe CONFIG`, its output appended to `log`; killed when dropped.
pub fn spawn_exe(exe: &Path, config: &Path, log: &Path) -> tokio::process::Child {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the agent's log")
    };
    tokio::process::Command::new(exe)
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(open())
        .stderr(open())
        .kill_on_drop(true)
        .spawn()
        .expect("start the agent")
}

/// Stop an agent cleanly (SIGTERM, then SIGKILL after 30 s).
pub use pgquorum::demo::terminate_agent;

/// Options for a 3-agent PostgreSQL cluster whose `bootstrap.dcs.postgresql.parameters` has
/// `parameters` besides the demo's own.
pub fn pg_cluster_options_with_bootstrap_parameters(
    dir: &Path,
    base_port: u16,
    parameters: &[(&str, &str)],
) -> DemoOptions {
    let mut opts = cluster_options(dir, base_port, true);
    opts.bootstrap_parameters = parameters
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    opts
}

/// Bytes used by the files under `path` (symbolic links are not followed).
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}

/// The entries of `dir` whose names contain `part`.
pub fn entries_named(dir: &Path, part: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(part))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
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
    let partners: Vec<String> = partners
        .iter()
        .map(|j| format!("127.0.0.1:{}", opts.base_port + *j as u16))
        .collect();
    pgquorum::demo::node_config(opts, i, dir, &partners)
        .replace("scope: demo\n", &format!("scope: {scope}\n"))
}

impl SoloAgent {
    /// Write `yaml` to `<dir>/<name>.yml` and start an agent on it, logging to `<name>.log`.
    pub fn start(dir: &Path, name: &str, endpoint: &str, yaml: &str) -> SoloAgent {
        let config = dir.join(format!("{name}.yml"));
        std::fs::write(&config, yaml).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = spawn_agent(&config, &log);
        SoloAgent {
            name: name.to_string(),
            endpoint: endpoint.to_string(),
            log,
            child,
        }
    }

    /// Like [`SoloAgent::start`], running `pgquorum-controller` (the witness) instead.
    pub fn start_witness(dir: &Path, name: &str, endpoint: &str, yaml: &str) -> SoloAgent {
        let config = dir.join(format!("{name}.yml"));
        std::fs::write(&config, yaml).unwrap();
        let log = dir.join(format!("{name}.log"));
        let child = spawn_exe(&controller_exe(), &config, &log);
        SoloAgent {
            name: name.to_string(),
            endpoint: endpoint.to_string(),
            log,
            child,
        }
    }

    /// `kill -9` and reap the process.
    pub async fn kill9(mut self) {
        let _ = self.child.kill().await;
    }

    /// The agent's process id (to signal it).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The agent's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How the agent exited, if it does within `within` (`None`: still running).
    pub async fn exited_within(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(within, self.child.wait()).await.ok()?.ok()
    }

    /// SIGTERM (the agent stops its PostgreSQL), then SIGKILL after 30 s.
    pub async fn stop(self) {
        terminate_agent(self.child).await;
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

/// `yaml` (an agent config) with `keys` added to its `raft` section.
pub fn with_raft_keys(yaml: &str, keys: &[(&str, String)]) -> String {
    let lines: String = keys.iter().map(|(k, v)| format!("  {k}: {v}\n")).collect();
    yaml.replacen("raft:\n", &format!("raft:\n{lines}"), 1)
}

/// The `raft` keys for mutual TLS with the files `pgquorum generate-certs` wrote into `certs`
/// for node `name`.
pub fn tls_keys(certs: &Path, name: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "certfile",
            certs.join(format!("{name}.pem")).display().to_string(),
        ),
        (
            "keyfile",
            certs.join(format!("{name}-key.pem")).display().to_string(),
        ),
        ("cafile", certs.join("ca.pem").display().to_string()),
    ]
}

/// pgquorumctl's flags for the client certificate `pgquorum generate-certs` wrote into `certs`.
#[allow(unused_imports)]
pub use pgquorum::demo::ctl_tls_flags;

/// Run the pgquorumctl binary with `args`; (succeeded, stdout, stderr).
pub async fn run_ctl(args: &[String]) -> (bool, String, String) {
    run_ctl_env(args, &[]).await
}

/// [`run_ctl`] with `env` set; the caller's own pgquorumctl/patronictl variables are not
/// passed on, so only `args` and `env` steer it.
pub async fn run_ctl_env(args: &[String], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = tokio::process::Command::new(CTL)
        .args(args)
        .env_remove("PGQUORUMCTL_CONFIG_FILE")
        .env_remove("PGQUORUMCTL_ENDPOINT")
        .env_remove("PATRONICTL_CONFIG_FILE")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run pgquorumctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run pgquorumctl with `args` on a pseudo-terminal (util-linux `script`), typing `input`, for
/// its questions; everything it wrote, terminal echo included.
#[allow(dead_code)]
pub async fn run_ctl_on_terminal(args: &[String], input: &str) -> String {
    use tokio::io::AsyncWriteExt;
    // The arguments are test-made names and paths: no quoting beyond single quotes needed.
    let line = std::iter::once(CTL.to_string())
        .chain(args.iter().cloned())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("PGQUORUMCTL_CONFIG_FILE")
        .env_remove("PGQUORUMCTL_ENDPOINT")
        .env_remove("PATRONICTL_CONFIG_FILE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run script(1)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("type the answer");
    drop(stdin);
    let out = child.wait_with_output().await.expect("script(1) output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `pgquorumctl raft status --json` at `endpoint` with `flags`: (leader's member name, its
/// term, every member's address) once there is a leader.
pub async fn ctl_raft_leader(endpoint: &str, flags: &[String]) -> Option<(String, u64, Vec<String>)> {
    let mut args: Vec<String> = vec!["-e".into(), endpoint.into(), "--json".into()];
    args.extend(flags.iter().cloned());
    args.extend(["raft".to_string(), "status".to_string()]);
    let (ok, stdout, _) = run_ctl(&args).await;
    if !ok {
        return None;
    }
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).ok()?;
    let leader = rows.iter().find(|r| r["role"] == "leader")?;
    let addrs = rows
        .iter()
        .filter_map(|r| r["address"].as_str().map(String::from))
        .collect();
    Some((
        leader["member"].as_str()?.to_string(),
        leader["term"].as_u64()?,
        addrs,
    ))
}

/// Send `sig` to `pid` (an agent, postmaster or WAL sender this test started).
#[allow(dead_code)]
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process this test started (or one of its PostgreSQL processes).
    unsafe { libc::kill(pid, sig) };
}

/// The pids of the primary's WAL senders at `port`, once there are `count` of them.
#[allow(dead_code)]
pub async fn wal_sender_pids(port: u16, count: usize) -> Vec<i32> {
    wait_for("the WAL senders", Duration::from_secs(120), || async {
        let client = pg_connect(port).await.ok()?;
        let rows = client
            .query("SELECT pid FROM pg_stat_replication", &[])
            .await
            .ok()?;
        let pids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        (pids.len() == count).then_some(pids)
    })
    .await
}

/// Agent 0 of `opts` alone (cluster `scope`), once it runs the primary and holds the lease.
#[allow(dead_code)]
pub async fn lone_primary(dir: &Path, opts: &DemoOptions, scope: &str) -> SoloAgent {
    let yaml = solo_agent_yaml(dir, opts, scope, 0, &[]);
    let endpoint = format!("127.0.0.1:{}", opts.base_port);
    let agent = SoloAgent::start(dir, "node1", &endpoint, &yaml);
    let port = opts.pg_port(0);
    wait_for(
        "node1 alone to run the primary and hold the lease",
        Duration::from_secs(120),
        || async {
            let view = pgquorum::ctl::cluster_read::cluster_view(&endpoint).await.ok()?;
            let up = view.member("node1").is_some_and(|m| m.state.is_up());
            let primary = pg_scalar(port, "SELECT pg_is_in_recovery()").await.as_deref() == Some("f");
            (view.leader_name() == Some("node1") && up && primary).then_some(())
        },
    )
    .await;
    agent
}
