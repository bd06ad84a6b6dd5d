//! The cluster under test: one `pgquorum` agent (and the PostgreSQL server it manages) in each
//! host namespace, with the configuration a deployment would have — the demo's shape, on the
//! test network's addresses, default timings.
//!
//! Everything here runs from the client namespace (the jepsen process has moved there): agents
//! are started with `ip netns exec pgqj-nX`, PostgreSQL is probed over the test network.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Child;
use tokio::time::Instant;

use pgquorum::grpc::certs::NodeSpec;
use pgquorum::grpc::transport::TlsFiles;
use pgquorum::grpc::Transport;

use crate::net;

/// The superuser's password (the workload and the monitors log in with it).
pub const SUPERUSER_PASSWORD: &str = "jepsen-super";
/// PostgreSQL's port on every host.
pub const PG_PORT: u16 = 5432;
/// Raft/gRPC port on every host.
pub const RAFT_PORT: u16 = 7400;
/// REST API port on every host.
pub const REST_PORT: u16 = 8008;
/// The agents' `scope` (every gRPC call carries it).
pub const SCOPE: &str = "jepsen";
/// The lease ttl the agents run with (the default).
pub const TTL_MS: u64 = 2500;
/// `maximum_lag_on_failover` in force (the default).
pub const MAXIMUM_LAG_ON_FAILOVER: u64 = 1_048_576;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "the agent binary {0} does not exist; build it with `cargo build --bins` (or pass --agent PATH)"
    )]
    NoAgent(PathBuf),
    #[error("cannot start the agent of {node}: {source}")]
    Spawn { node: String, source: std::io::Error },
    #[error(
        "the cluster was not healthy within {timeout:?} (one primary, every other node streaming): {last}"
    )]
    NotHealthy { timeout: Duration, last: String },
    #[error("{LIBFAKETIME} is missing: the clock scenario needs Debian's faketime package (apt-get install faketime)")]
    NoFakeTime,
    #[error("SQL on {node}: {message}")]
    Sql { node: String, message: String },
    #[error("cannot write the cluster's certificates: {0}")]
    Certs(#[from] pgquorum::grpc::certs::CertError),
    #[error("cannot load the certificates of {who}: {source}")]
    Tls {
        who: String,
        source: pgquorum::grpc::transport::TransportError,
    },
}

/// How the cluster is set up.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub nodes: usize,
    /// The `pgquorum` executable.
    pub agent: PathBuf,
    /// Per-run temp directory (configs, data, logs).
    pub dir: PathBuf,
    /// `bootstrap.dcs.synchronous_mode`.
    pub synchronous_mode: bool,
    /// `bootstrap.dcs.synchronous_mode_strict` (meaningful with `synchronous_mode` only).
    pub synchronous_mode_strict: bool,
    /// Start every agent under libfaketime, each with its own offset file
    /// ([`Cluster::set_clock_offset`]), so one node's `CLOCK_REALTIME` can be made to jump.
    pub fake_time: bool,
    /// Mutual TLS on every agent's gRPC and REST port, with certificates of a cluster CA made
    /// for the run ([`CERTS_DIR`]); PostgreSQL connections stay as they are.
    pub tls: bool,
}

/// Where a `tls` run's certificates are, under the run's directory: `ca.pem`, `nodeN.pem` /
/// `nodeN-key.pem` (host N's address in the certificate) and pgquorumctl's `client.pem`.
pub const CERTS_DIR: &str = "certs";

/// libfaketime from Debian's `faketime` package.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// One host's agent process.
#[derive(Debug)]
struct Agent {
    child: Option<Child>,
    stopped: bool,
}

#[derive(Debug)]
pub struct Cluster {
    config: ClusterConfig,
    agents: Vec<Agent>,
    /// A second agent started under an existing member's name on a spare host (the
    /// duplicate-name fault), with that host's index.
    duplicate: Option<(Child, usize)>,
}

/// Node name of host `i` (0-based): `node1`...
pub fn node_name(i: usize) -> String {
    format!("node{}", i + 1)
}

/// Host index of a PostgreSQL server address, by the address plan.
pub fn node_of_addr(addr: &str) -> Option<usize> {
    let last: u8 = addr
        .trim()
        .strip_prefix("10.177.0.")?
        .split('/')
        .next()?
        .parse()
        .ok()?;
    (11..11 + net::MAX_NODES as u8)
        .contains(&last)
        .then(|| (last - 11) as usize)
}

/// A single-host conninfo for host `i`.
pub fn conninfo(i: usize, connect_timeout_s: u32) -> String {
    format!(
        "host={} port={PG_PORT} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres \
         connect_timeout={connect_timeout_s} application_name=jepsen",
        net::host_addr(i)
    )
}

/// The clients' multi-host conninfo: libpq tries the hosts in order and keeps the first that
/// accepts writes.
pub fn multi_host_conninfo(nodes: usize, connect_timeout_s: u32) -> String {
    let hosts: Vec<String> = (0..nodes).map(|i| net::host_addr(i).to_string()).collect();
    format!(
        "host={} port={PG_PORT} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres \
         target_session_attrs=read-write connect_timeout={connect_timeout_s} application_name=jepsen",
        hosts.join(",")
    )
}

/// Connect with an overall deadline; the connection task is spawned.
pub async fn connect(conninfo: &str, timeout: Duration) -> Result<tokio_postgres::Client, String> {
    match tokio::time::timeout(timeout, tokio_postgres::connect(conninfo, tokio_postgres::NoTls)).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(client)
        }
        Ok(Err(e)) => Err(short_error(&e)),
        Err(_) => Err(format!("connect timed out after {timeout:?}")),
    }
}

/// A one-line rendering of a tokio-postgres error (with the server's message when there is one).
pub fn short_error(e: &tokio_postgres::Error) -> String {
    let text = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                source = inner.source();
            }
            s
        }
    };
    text.chars().take(200).collect()
}

/// What a node's PostgreSQL says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgState {
    pub primary: bool,
    pub timeline: Option<u64>,
}

/// `pg_is_in_recovery()` and the timeline the server writes (primary: from the name of the
/// current WAL file; replica: the timeline its WAL receiver streams, else its last checkpoint's).
pub async fn pg_state(client: &tokio_postgres::Client) -> Result<PgState, tokio_postgres::Error> {
    let in_recovery: bool = client.query_one("SELECT pg_is_in_recovery()", &[]).await?.get(0);
    if !in_recovery {
        let row = client
            .query_one("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)", &[])
            .await?;
        let hex: String = row.get(0);
        return Ok(PgState {
            primary: true,
            timeline: u64::from_str_radix(&hex, 16).ok(),
        });
    }
    let row = client
        .query_one(
            "SELECT coalesce((SELECT received_tli FROM pg_stat_wal_receiver WHERE received_tli > 0), \
             (SELECT timeline_id FROM pg_control_checkpoint()))::bigint",
            &[],
        )
        .await?;
    let tli: Option<i64> = row.get(0);
    Ok(PgState {
        primary: false,
        timeline: tli.map(|t| t as u64),
    })
}

/// An `LSN` in PostgreSQL's text form (`16/B374D848`) as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

impl Cluster {
    /// Write the configuration of every node. Nothing is started yet.
    pub fn new(config: ClusterConfig) -> Result<Cluster, ClusterError> {
        if !config.agent.is_file() {
            return Err(ClusterError::NoAgent(config.agent.clone()));
        }
        if config.fake_time && !Path::new(LIBFAKETIME).is_file() {
            return Err(ClusterError::NoFakeTime);
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ClusterError::Io { path, source }
        };
        std::fs::create_dir_all(&config.dir).map_err(io(&config.dir))?;
        if config.tls {
            // Every host of the address plan the run may use, the spare host of the
            // duplicate-name fault included: a certificate names its host's address, which is
            // what peers dial and check.
            let hosts = (config.nodes + 1).min(net::MAX_NODES);
            let nodes: Vec<NodeSpec> = (0..hosts)
                .map(|i| NodeSpec {
                    name: node_name(i),
                    ip: Some(std::net::IpAddr::V4(net::host_addr(i))),
                })
                .collect();
            pgquorum::grpc::certs::generate(&config.dir.join(CERTS_DIR), &nodes)?;
        }
        for i in 0..config.nodes {
            let path = config.dir.join(format!("{}.yml", node_name(i)));
            std::fs::write(&path, node_yaml(&config, i)).map_err(io(&path))?;
            if config.fake_time {
                let path = faketime_file(&config.dir, i);
                std::fs::write(&path, "+0\n").map_err(io(&path))?;
            }
        }
        let agents = (0..config.nodes)
            .map(|_| Agent {
                child: None,
                stopped: false,
            })
            .collect();
        Ok(Cluster {
            config,
            agents,
            duplicate: None,
        })
    }

    pub fn nodes(&self) -> usize {
        self.config.nodes
    }

    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    pub fn uses_tls(&self) -> bool {
        self.config.tls
    }

    /// The gRPC transport of pgquorumctl's client certificate (admin permission): what the
    /// run's switchovers and keyspace reads use. `None` without TLS.
    pub fn ctl_transport(&self) -> Result<Option<Transport>, ClusterError> {
        self.transport("pgquorumctl", "client")
    }

    /// The gRPC transport of host `i`'s node certificate (agent permission: it may write the
    /// keys only agents write, as the corrupt-keyspace fault does). `None` without TLS.
    pub fn agent_transport(&self, i: usize) -> Result<Option<Transport>, ClusterError> {
        self.transport(&node_name(i), &node_name(i))
    }

    fn transport(&self, who: &str, file: &str) -> Result<Option<Transport>, ClusterError> {
        if !self.config.tls {
            return Ok(None);
        }
        let files = tls_files(&self.config.dir, file);
        Transport::new(Some(SCOPE), Some(&files), None, ["certfile", "keyfile", "cafile"])
            .map(Some)
            .map_err(|source| ClusterError::Tls {
                who: who.to_string(),
                source,
            })
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.config.dir.join(format!("{}.log", node_name(i)))
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.config.dir.join(node_name(i)).join("pgdata")
    }

    /// Start the agent of node `i` in its namespace (no-op if it runs); output appended to
    /// `<dir>/nodeN.log`.
    pub fn start_agent(&mut self, i: usize) -> Result<(), ClusterError> {
        if self.agent_running(i) {
            return Ok(());
        }
        let name = node_name(i);
        let log_path = self.log_path(i);
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|source| ClusterError::Io {
                    path: log_path.clone(),
                    source,
                })
        };
        let (out, err) = (open()?, open()?);
        let mut cmd = net::exec_in_async(&net::host_ns(i), &self.config.agent);
        if self.config.fake_time {
            // Only CLOCK_REALTIME (and time()/gettimeofday()) follow the file; the monotonic
            // clock stays true. Re-read at most once a second.
            cmd.env("LD_PRELOAD", LIBFAKETIME)
                .env("FAKETIME_TIMESTAMP_FILE", faketime_file(&self.config.dir, i))
                .env("FAKETIME_CACHE_DURATION", "1")
                .env("DONT_FAKE_MONOTONIC", "1");
        }
        cmd.arg(self.config.dir.join(format!("{name}.yml")))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Its own process group: a Ctrl-C in the terminal reaches the jepsen process only,
            // which then tears the cluster down in order.
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent. If the
        // jepsen process dies without tearing down (kill -9), the agent dies with it (and its
        // fence guard then stops PostgreSQL); `ip netns exec` passes the setting on to the
        // agent it executes.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|source| ClusterError::Spawn { node: name, source })?;
        self.agents[i] = Agent {
            child: Some(child),
            stopped: false,
        };
        Ok(())
    }

    /// Start a second agent named like node `of`, on the spare host `host` (an address outside
    /// the cluster's, its own empty data directories, every member as a partner). Its output
    /// goes to `<dir>/duplicate.log`.
    pub fn start_duplicate(&mut self, of: usize, host: usize) -> Result<(), ClusterError> {
        let path = self.config.dir.join("duplicate.yml");
        let yaml = agent_yaml(
            &self.config,
            &node_name(of),
            host,
            &self.config.dir.join("duplicate"),
        );
        std::fs::write(&path, yaml).map_err(|source| ClusterError::Io {
            path: path.clone(),
            source,
        })?;
        let log_path = self.config.dir.join("duplicate.log");
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|source| ClusterError::Io {
                    path: log_path.clone(),
                    source,
                })
        };
        let (out, err) = (open()?, open()?);
        let mut cmd = net::exec_in_async(&net::host_ns(host), &self.config.agent);
        cmd.arg(&path)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: as in start_agent.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| ClusterError::Spawn {
            node: format!("duplicate {}", node_name(of)),
            source,
        })?;
        self.duplicate = Some((child, host));
        Ok(())
    }

    /// Stop the duplicate agent (SIGTERM, then SIGKILL after 20 s) and everything left in its
    /// host's namespace (its PostgreSQL).
    pub async fn stop_duplicate_agent(&mut self) {
        let Some((mut child, host)) = self.duplicate.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            signal(pid as i32, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
        net::kill_all_in(&net::host_ns(host));
    }

    /// Set node `i`'s clock offset (seconds, may be negative): its agent's `CLOCK_REALTIME`
    /// jumps by that much from now on (within a second). Needs `fake_time`.
    pub fn set_clock_offset(&self, i: usize, offset_s: i64) -> Result<(), ClusterError> {
        let path = faketime_file(&self.config.dir, i);
        std::fs::write(&path, format!("{offset_s:+}\n")).map_err(|source| ClusterError::Io { path, source })
    }

    pub fn start_all(&mut self) -> Result<(), ClusterError> {
        for i in 0..self.config.nodes {
            self.start_agent(i)?;
        }
        Ok(())
    }

    /// Whether node `i`'s agent process is alive (reaping it if it exited).
    pub fn agent_running(&mut self, i: usize) -> bool {
        let agent = &mut self.agents[i];
        match agent.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) => {
                agent.child = None;
                false
            }
            None => false,
        }
    }

    pub fn agent_pid(&self, i: usize) -> Option<i32> {
        self.agents[i]
            .child
            .as_ref()
            .and_then(|c| c.id())
            .map(|p| p as i32)
    }

    /// The postmaster's pid from `postmaster.pid`, if that process exists.
    pub fn postmaster_pid(&self, i: usize) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir(i).join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        // SAFETY: kill(pid, 0) only checks that the process exists.
        (pid > 0 && unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
    }

    /// `kill -9` node `i`'s agent and reap it. (Its fence guard then stops PostgreSQL.)
    pub async fn kill_agent(&mut self, i: usize) -> bool {
        let Some(mut child) = self.agents[i].child.take() else {
            return false;
        };
        let _ = child.kill().await;
        self.agents[i].stopped = false;
        true
    }

    /// `kill -9` node `i`'s postmaster (only the postmaster: its backends are orphaned, as
    /// after a real crash of that process). Returns the pid killed.
    pub fn kill_postmaster(&self, i: usize) -> Option<i32> {
        let pid = self.postmaster_pid(i)?;
        signal(pid, libc::SIGKILL);
        Some(pid)
    }

    /// The whole host is lost: agent, fence guard, postmaster and every backend, at once.
    pub async fn kill_node(&mut self, i: usize) {
        if let Some(pid) = self.postmaster_pid(i) {
            // The postmaster leads its process group (pg_ctl starts it so).
            signal(-pid, libc::SIGKILL);
        }
        if let Some(pid) = self.agent_pid(i) {
            signal(pid, libc::SIGKILL);
        }
        net::kill_all_in(&net::host_ns(i));
        if let Some(mut child) = self.agents[i].child.take() {
            let _ = child.wait().await;
        }
        self.agents[i].stopped = false;
    }

    /// SIGSTOP node `i`'s agent (a long pause, like a stop-the-world GC or a frozen VM thread).
    pub fn stall_agent(&mut self, i: usize) -> bool {
        match self.agent_pid(i) {
            Some(pid) => {
                signal(pid, libc::SIGSTOP);
                self.agents[i].stopped = true;
                true
            }
            None => false,
        }
    }

    /// SIGCONT node `i`'s agent.
    pub fn resume_agent(&mut self, i: usize) {
        if let Some(pid) = self.agent_pid(i) {
            signal(pid, libc::SIGCONT);
        }
        self.agents[i].stopped = false;
    }

    /// Stop every agent cleanly (SIGTERM: it stops PostgreSQL and gives its lease back), in
    /// parallel; SIGKILL what is still up after `timeout`.
    pub async fn stop_all(&mut self, timeout: Duration) {
        for i in 0..self.config.nodes {
            if self.agents[i].stopped {
                self.resume_agent(i);
            }
            if let Some(pid) = self.agent_pid(i) {
                signal(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + timeout;
        for i in 0..self.config.nodes {
            let Some(mut child) = self.agents[i].child.take() else {
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, child.wait()).await.is_err() {
                tracing::warn!(
                    "{}: agent did not stop within {timeout:?}; killing it",
                    node_name(i)
                );
                let _ = child.kill().await;
            }
        }
    }

    /// Wait until exactly one node is a writable primary and every other node streams from
    /// it on its timeline; returns the primary. Probed by SQL over the test network.
    pub async fn wait_healthy(&self, timeout: Duration) -> Result<usize, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.health().await {
                Ok(primary) => return Ok(primary),
                Err(why) => why,
            };
            if Instant::now() >= deadline {
                return Err(ClusterError::NotHealthy { timeout, last });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// One probe of [`Cluster::wait_healthy`]: `Ok(primary)` or why not.
    pub async fn health(&self) -> Result<usize, String> {
        let n = self.config.nodes;
        let probes = futures::future::join_all((0..n).map(|i| async move {
            let client = connect(&conninfo(i, 1), Duration::from_millis(1500)).await?;
            let state = tokio::time::timeout(Duration::from_secs(1), pg_state(&client))
                .await
                .map_err(|_| "timed out".to_string())?
                .map_err(|e| short_error(&e))?;
            Ok::<_, String>((client, state))
        }))
        .await;
        let mut primaries = Vec::new();
        for (i, p) in probes.iter().enumerate() {
            match p {
                Ok((_, state)) if state.primary => primaries.push(i),
                Ok(_) => {}
                Err(e) => return Err(format!("{}: {e}", node_name(i))),
            }
        }
        let [primary] = primaries[..] else {
            return Err(format!("primaries: {primaries:?}"));
        };
        let Ok((client, _)) = &probes[primary] else {
            unreachable!("the primary answered")
        };
        let rows = client
            .query(
                "SELECT host(client_addr) FROM pg_stat_replication WHERE state = 'streaming'",
                &[],
            )
            .await
            .map_err(|e| short_error(&e))?;
        let streaming: Vec<usize> = rows
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(0))
            .filter_map(|a| node_of_addr(&a))
            .collect();
        // Streaming, and on the primary's timeline: a replica that could not follow a
        // promotion can still show up in pg_stat_replication (streaming the old timeline).
        let primary_tli = probes[primary].as_ref().ok().and_then(|(_, s)| s.timeline);
        let missing: Vec<String> = (0..n)
            .filter(|i| *i != primary)
            .filter(|i| {
                let tli = probes[*i].as_ref().ok().and_then(|(_, s)| s.timeline);
                !streaming.contains(i) || tli != primary_tli
            })
            .map(node_name)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "primary {}; not streaming on its timeline: {}",
                node_name(primary),
                missing.join(", ")
            ));
        }
        Ok(primary)
    }

    /// The node whose PostgreSQL currently says it is a primary, if exactly one does.
    pub async fn current_primary(&self) -> Option<usize> {
        let n = self.config.nodes;
        let states = futures::future::join_all((0..n).map(|i| async move {
            let client = connect(&conninfo(i, 1), Duration::from_millis(1000)).await.ok()?;
            tokio::time::timeout(Duration::from_millis(800), pg_state(&client))
                .await
                .ok()?
                .ok()
        }))
        .await;
        let primaries: Vec<usize> = (0..n).filter(|i| states[*i].is_some_and(|s| s.primary)).collect();
        match primaries[..] {
            [p] => Some(p),
            _ => None,
        }
    }

    /// Run `sql` on node `i`.
    pub async fn execute(&self, i: usize, sql: &str) -> Result<(), ClusterError> {
        let err = |message: String| ClusterError::Sql {
            node: node_name(i),
            message,
        };
        let client = connect(&conninfo(i, 2), Duration::from_secs(3))
            .await
            .map_err(err)?;
        tokio::time::timeout(Duration::from_secs(10), client.batch_execute(sql))
            .await
            .map_err(|_| err("timed out".into()))?
            .map_err(|e| err(short_error(&e)))
    }

    /// Kill everything still running (on the error and interrupt paths).
    pub fn kill_everything(&mut self) {
        for i in 0..self.config.nodes {
            if let Some(pid) = self.postmaster_pid(i) {
                signal(-pid, libc::SIGKILL);
            }
            if let Some(child) = self.agents[i].child.as_mut() {
                let _ = child.start_kill();
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some((_, host)) = &self.duplicate {
            net::kill_all_in(&net::host_ns(*host));
        }
        // Agents are killed by kill_on_drop; make sure no postmaster outlives the run.
        for i in 0..self.config.nodes {
            if let Some(pid) = self.postmaster_pid(i) {
                signal(-pid, libc::SIGKILL);
            }
        }
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory effects; the targets are processes of our test hosts.
    unsafe { libc::kill(pid, sig) };
}

/// libfaketime's offset file of node `i`.
fn faketime_file(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("{}.faketime", node_name(i)))
}

/// The certificate `<name>.pem`, its key and the CA of a TLS run in `dir`.
fn tls_files(dir: &Path, name: &str) -> TlsFiles {
    let certs = dir.join(CERTS_DIR);
    TlsFiles {
        certfile: certs.join(format!("{name}.pem")),
        keyfile: certs.join(format!("{name}-key.pem")),
        cafile: certs.join("ca.pem"),
    }
}

/// The YAML configuration of node `i`.
fn node_yaml(config: &ClusterConfig, i: usize) -> String {
    agent_yaml(config, &node_name(i), i, &config.dir.join(node_name(i)))
}

/// The YAML configuration of an agent named `name` on host `host`, its files under `node_dir`;
/// every cluster member but itself is a partner.
fn agent_yaml(config: &ClusterConfig, name: &str, host: usize, node_dir: &Path) -> String {
    let addr = net::host_addr(host);
    let partners: String = (0..config.nodes)
        .filter(|j| *j != host)
        .map(|j| format!("  - {}:{RAFT_PORT}\n", net::host_addr(j)))
        .collect();
    // With TLS: the certificate of the host the agent runs on (its address is in it; the
    // duplicate-name fault's second agent has the spare host's), mutual TLS on gRPC where only
    // node certificates are agents, and HTTPS on REST that requires a client certificate of
    // the cluster CA.
    let (raft_tls, rest_tls) = match config.tls {
        true => {
            let files = tls_files(&config.dir, &node_name(host));
            let tls = format!(
                "  certfile: {}\n  keyfile: {}\n  cafile: {}\n",
                files.certfile.display(),
                files.keyfile.display(),
                files.cafile.display()
            );
            (
                format!("{tls}  agent_names: [\"node*\"]\n"),
                format!("{tls}  verify_client: required\n"),
            )
        }
        false => (String::new(), String::new()),
    };
    format!(
        "# Generated by pgquorum-jepsen.\n\
         scope: {SCOPE}\n\
         name: {name}\n\
         log:\n  level: INFO\n\
         raft:\n  self_addr: {addr}:{RAFT_PORT}\n  data_dir: {raft}\n{raft_tls}  partner_addrs:\n{partners}\
         restapi:\n  listen: {addr}:{REST_PORT}\n  connect_address: {addr}:{REST_PORT}\n  \
         authentication: {{username: admin, password: jepsen-admin}}\n{rest_tls}\
         bootstrap:\n  dcs:\n    synchronous_mode: {sync}\n    synchronous_mode_strict: {strict}\n    \
         postgresql:\n      use_slots: true\n      use_pg_rewind: true\n      parameters:\n        \
         max_connections: 50\n        shared_buffers: 32MB\n  \
         initdb:\n  - encoding: UTF8\n  - data-checksums\n\
         postgresql:\n  listen: {addr}:{PG_PORT}\n  connect_address: {addr}:{PG_PORT}\n  data_dir: {pgdata}\n  \
         parameters:\n    unix_socket_directories: {sock}\n  \
         pg_hba:\n  - local all all peer\n  - host all all {subnet} scram-sha-256\n  \
         - host replication all {subnet} scram-sha-256\n  \
         authentication:\n    superuser: {{username: postgres, password: {SUPERUSER_PASSWORD}}}\n    \
         replication: {{username: replicator, password: jepsen-repl}}\n    \
         rewind: {{username: rewinder, password: jepsen-rewind}}\n",
        raft = node_dir.join("raft").display(),
        pgdata = node_dir.join("pgdata").display(),
        sock = node_dir.join("sock").display(),
        sync = config.synchronous_mode,
        strict = config.synchronous_mode_strict,
        subnet = net::SUBNET,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_to_nodes() {
        assert_eq!(node_of_addr("10.177.0.11"), Some(0));
        assert_eq!(node_of_addr("10.177.0.13/32"), Some(2));
        assert_eq!(node_of_addr("10.177.0.100"), None);
        assert_eq!(node_of_addr("127.0.0.1"), None);
    }

    #[test]
    fn lsn_text() {
        assert_eq!(parse_lsn("0/3000060"), Some(0x3000060));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374D848));
        assert_eq!(parse_lsn("nonsense"), None);
    }

    #[test]
    fn config_parses_as_an_agent_config() {
        let config = ClusterConfig {
            nodes: 3,
            agent: PathBuf::from("/nonexistent"),
            dir: PathBuf::from("/tmp/pgqj-0-test"),
            synchronous_mode: true,
            synchronous_mode_strict: true,
            fake_time: false,
            tls: false,
        };
        let yaml = node_yaml(&config, 1);
        let parsed =
            pgquorum::config::Config::from_yaml_str(&yaml, "node2.yml", Vec::<(String, String)>::new())
                .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        assert_eq!(parsed.config.name, "node2");
        assert!(yaml.contains("self_addr: 10.177.0.12:7400"), "{yaml}");
        assert!(
            yaml.contains("- 10.177.0.11:7400\n  - 10.177.0.13:7400"),
            "{yaml}"
        );
    }

    #[test]
    fn tls_config_names_the_hosts_certificate_and_requires_client_certificates() {
        let dir = std::env::temp_dir().join(format!("pgqj-tls-config-test-{}", std::process::id()));
        let config = ClusterConfig {
            nodes: 3,
            agent: PathBuf::from("/nonexistent"),
            dir: dir.clone(),
            synchronous_mode: false,
            synchronous_mode_strict: false,
            fake_time: false,
            tls: true,
        };
        // The duplicate agent named node1 on the spare host 3 carries host 3's certificate.
        let yaml = agent_yaml(&config, "node1", 3, &dir.join("duplicate"));
        let parsed =
            pgquorum::config::Config::from_yaml_str(&yaml, "duplicate.yml", Vec::<(String, String)>::new())
                .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let certs = dir.join(CERTS_DIR);
        assert_eq!(parsed.config.raft.certfile, Some(certs.join("node4.pem")));
        assert_eq!(parsed.config.raft.cafile, Some(certs.join("ca.pem")));
        assert_eq!(parsed.config.raft.agent_names, Some(vec!["node*".to_string()]));
        assert!(yaml.contains("verify_client: required"), "{yaml}");
        assert!(yaml.contains(&format!("scope: {SCOPE}")), "{yaml}");
    }
}
