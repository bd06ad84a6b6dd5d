//! The workload and the role monitor, both running in the client namespace.
//!
//! - **Clients**: each inserts unique ids (`id = seq × clients + client`) through a multi-host
//!   `target_session_attrs=read-write` connection, one insert at a time, and records every
//!   attempt as an [`Op`] with its outcome and — when acknowledged — the server that took it,
//!   the timeline and the WAL position right after the insert.
//! - **Role monitor**: asks every server, every ~100 ms, whether it is a primary and on which
//!   timeline ([`RoleSample`]); anything that does not answer quickly is `Down`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::cluster::{self, connect, node_name, node_of_addr, parse_lsn, pg_state, short_error};
use crate::history::{NodeRole, Op, Outcome, RoleSample};

/// The table the clients insert into (created by [`create_table`]).
pub const TABLE: &str = "jepsen";

/// Milliseconds since the run started: one monotonic clock for every record.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    pub fn ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub nodes: usize,
    pub clients: u32,
    /// Bound on one insert, from sending it to its answer.
    pub op_timeout: Duration,
    /// Pause between two operations of one client.
    pub pace: Duration,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            nodes: 3,
            clients: 4,
            op_timeout: Duration::from_secs(2),
            pace: Duration::from_millis(10),
        }
    }
}

/// SQL run once on the primary before the workload starts.
pub fn create_table_sql() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, client int NOT NULL, \
         at timestamptz NOT NULL DEFAULT now());\n\
         CREATE TABLE IF NOT EXISTS jepsen_probe (at timestamptz NOT NULL DEFAULT now());"
    )
}

const INSERT: &str = "INSERT INTO jepsen (id, client) VALUES ($1, $2) \
     RETURNING host(inet_server_addr()), pg_current_wal_lsn()::text, \
     substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)";

/// Running clients; [`Workload::finish`] stops them and hands over their operations.
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<Op>>>,
}

impl Workload {
    pub fn start(config: &WorkloadConfig, clock: Clock) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..config.clients)
            .map(|c| tokio::spawn(client_loop(config.clone(), c, clock, stop.clone())))
            .collect();
        Workload { stop, tasks }
    }

    /// Stop every client (each finishes the operation it is in) and return all operations.
    pub async fn finish(self) -> Vec<Op> {
        self.stop.store(true, Ordering::Relaxed);
        let mut ops = Vec::new();
        for task in self.tasks {
            match task.await {
                Ok(mut client_ops) => ops.append(&mut client_ops),
                Err(e) => tracing::error!("a client task failed: {e}"),
            }
        }
        ops.sort_by_key(|o| (o.start_ms, o.client));
        ops
    }
}

/// Whether an error returned for a statement that was sent leaves its outcome open.
///
/// A definite ERROR from the server (read-only transaction, a constraint...) means the
/// statement's transaction aborted: `Failed`. A FATAL/PANIC (the server terminates the session
/// — shutdown, crash of another backend), a lost connection or a timeout may come after the
/// commit record was written: `Unknown`.
fn classify(e: &tokio_postgres::Error) -> Outcome {
    match e.as_db_error() {
        Some(db) if db.severity() == "ERROR" => Outcome::Failed,
        _ => Outcome::Unknown,
    }
}

struct Session {
    client: tokio_postgres::Client,
    insert: tokio_postgres::Statement,
}

async fn open_session(conninfo: &str, timeout: Duration) -> Result<Session, String> {
    let client = connect(conninfo, timeout).await?;
    let insert = tokio::time::timeout(Duration::from_secs(2), client.prepare(INSERT))
        .await
        .map_err(|_| "prepare timed out".to_string())?
        .map_err(|e| short_error(&e))?;
    Ok(Session { client, insert })
}

async fn client_loop(config: WorkloadConfig, client: u32, clock: Clock, stop: Arc<AtomicBool>) -> Vec<Op> {
    let conninfo = cluster::multi_host_conninfo(config.nodes, 1);
    // Every host may take its whole connect_timeout (1 s) before libpq moves on.
    let connect_bound = Duration::from_millis(1000 * config.nodes as u64 + 500);
    let mut ops = Vec::new();
    let mut session: Option<Session> = None;
    let mut seq: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = seq * config.clients as i64 + client as i64;
        seq += 1;
        let start_ms = clock.ms();
        if session.as_ref().is_none_or(|s| s.client.is_closed()) {
            match open_session(&conninfo, connect_bound).await {
                Ok(s) => session = Some(s),
                Err(error) => {
                    // Nothing was sent: definitely not committed.
                    ops.push(Op {
                        id,
                        client,
                        start_ms,
                        end_ms: clock.ms(),
                        outcome: Outcome::Failed,
                        node: None,
                        timeline: None,
                        lsn: None,
                        error: Some(format!("connect: {error}")),
                    });
                    session = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let s = session.as_ref().expect("a session");
        // Connecting is not part of the insert.
        let start_ms = clock.ms();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&id, &(client as i32)];
        let answer = tokio::time::timeout(config.op_timeout, s.client.query_one(&s.insert, &params)).await;
        let end_ms = clock.ms();
        let mut op = Op {
            id,
            client,
            start_ms,
            end_ms,
            outcome: Outcome::Unknown,
            node: None,
            timeline: None,
            lsn: None,
            error: None,
        };
        match answer {
            Ok(Ok(row)) => {
                let addr: Option<String> = row.get(0);
                let lsn: String = row.get(1);
                let walfile: String = row.get(2);
                op.outcome = Outcome::Ok;
                op.node = addr.as_deref().and_then(node_of_addr).map(node_name).or(addr);
                op.lsn = parse_lsn(&lsn);
                op.timeline = u64::from_str_radix(&walfile, 16).ok();
            }
            Ok(Err(e)) => {
                op.outcome = classify(&e);
                op.error = Some(short_error(&e));
                // Whatever went wrong, start over with a fresh connection: the server may have
                // been demoted, and libpq picks the writable one only when connecting.
                session = None;
            }
            Err(_) => {
                op.outcome = Outcome::Unknown;
                op.error = Some(format!("no answer within {:?}", config.op_timeout));
                session = None;
            }
        }
        ops.push(op);
        tokio::time::sleep(config.pace).await;
    }
    ops
}

/// Samples every node's role until stopped.
pub struct RoleMonitor {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Vec<RoleSample>>>,
}

impl RoleMonitor {
    pub fn start(nodes: usize, interval: Duration, clock: Clock) -> RoleMonitor {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..nodes)
            .map(|i| tokio::spawn(monitor_node(i, interval, clock, stop.clone())))
            .collect();
        RoleMonitor { stop, tasks }
    }

    pub async fn finish(self) -> Vec<RoleSample> {
        self.stop.store(true, Ordering::Relaxed);
        let mut samples = Vec::new();
        for task in self.tasks {
            if let Ok(mut s) = task.await {
                samples.append(&mut s);
            }
        }
        samples.sort_by_key(|s| s.at_ms);
        samples
    }
}

async fn monitor_node(i: usize, interval: Duration, clock: Clock, stop: Arc<AtomicBool>) -> Vec<RoleSample> {
    let conninfo = cluster::conninfo(i, 1);
    let mut samples = Vec::new();
    let mut client: Option<tokio_postgres::Client> = None;
    let mut failures_in_a_row = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = connect(&conninfo, Duration::from_millis(500)).await.ok();
        }
        // The sample's instant: when the answer came, i.e. the server was in that role then.
        let answer = match &client {
            Some(c) => tokio::time::timeout(Duration::from_millis(400), pg_state(c))
                .await
                .ok()
                .and_then(Result::ok),
            None => None,
        };
        let at_ms = clock.ms();
        let sample = match answer {
            Some(state) => {
                failures_in_a_row = 0;
                RoleSample {
                    node: node_name(i),
                    at_ms,
                    role: if state.primary {
                        NodeRole::Primary
                    } else {
                        NodeRole::Replica
                    },
                    timeline: state.timeline,
                }
            }
            None => {
                client = None;
                failures_in_a_row += 1;
                RoleSample {
                    node: node_name(i),
                    at_ms,
                    role: NodeRole::Down,
                    timeline: None,
                }
            }
        };
        samples.push(sample);
        // Back off a little while a node is unreachable (each attempt may wait 500 ms anyway).
        let pause = if failures_in_a_row > 0 {
            interval
        } else {
            interval.saturating_sub(tick.elapsed())
        };
        tokio::time::sleep(pause).await;
    }
    samples
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_across_clients() {
        let clients = 4i64;
        let mut seen = std::collections::BTreeSet::new();
        for client in 0..clients {
            for seq in 0..100 {
                assert!(seen.insert(seq * clients + client));
            }
        }
    }
}
