//! One agent's Raft node: storage, openraft, and the keyspace API the rest of the agent
//! (and the admin gRPC service) uses.
//!
//! # Responsibilities
//! - stamp writes with the Raft leader's clock and forward writes a follower receives;
//! - linearizable reads that fail, rather than answer from a stale copy, on a node that
//!   cannot reach a majority;
//! - form the group from the config on first start, or join a formed one (`formation`,
//!   `join`); operators' membership changes (`membership`, rules in `membership_rule`) and
//!   `remove SCOPE` (`cluster_removal`); expire TTL keys while Raft leader (`housekeeping`), and log every role change
//!   with its reason (`role_log`).

pub mod cluster_removal;
pub mod config_write;
mod formation;
mod formation_rule;
mod housekeeping;
mod join;
mod membership;
pub mod membership_rule;
pub mod quorum;
mod quorum_watch;
mod role_log;
pub mod status;
pub mod wire_error;

pub use wire_error::error_to_status;
use wire_error::status_to_error;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::error::{ClientWriteError, RaftError};
use tokio::time::Instant;

use crate::config::Config;
use crate::grpc::pb::admin::admin_client::AdminClient;
use crate::grpc::pb::admin::{ReadRequest, WriteRequest};
use crate::grpc::{process_channel, GrpcChannel};
use crate::keyspace::{Command, CommandOutcome, Entry, Key};
use crate::raft::network::Network;
use crate::raft::storage::{Identity, OpenError, Storage};
use crate::raft::{node_id_for, LogStore, NodeId, Raft, StateMachineStore};

/// What a node needs to know to run, taken from the agent's config.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The cluster `scope`.
    pub cluster: String,
    /// The member `name`.
    pub name: String,
    pub self_addr: String,
    pub partner_addrs: Vec<String>,
    pub data_dir: PathBuf,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// How long a keyspace request may wait for a leader, a commit or a forward.
    pub request_timeout: Duration,
    /// sled's page cache (the witness controller runs with a smaller one than an agent).
    pub storage_cache_bytes: u64,
    /// `agent` for a node beside PostgreSQL, `witness` for `pgquorum-controller`: reported
    /// in its node status so that `raft status` and `list` can tell a witness apart.
    pub kind: NodeKind,
}

/// What runs beside a Raft node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A pgquorum agent (with PostgreSQL, or a Raft-only agent started without a data dir).
    Agent,
    /// `pgquorum-controller`: votes and stores the log, never a PostgreSQL member.
    Witness,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Agent => "agent",
            NodeKind::Witness => "witness",
        }
    }
}

impl NodeSettings {
    pub fn from_config(config: &Config) -> NodeSettings {
        let heartbeat = Duration::from_millis(config.raft.heartbeat_interval_ms);
        let election = Duration::from_millis(config.raft.election_timeout_ms);
        NodeSettings {
            cluster: config.scope.clone(),
            name: config.name.clone(),
            self_addr: config.raft.self_addr.clone(),
            partner_addrs: config.raft.partner_addrs.clone(),
            data_dir: config.raft.data_dir.clone(),
            heartbeat_interval: heartbeat,
            election_timeout: election,
            // Long enough to ride through one election (max timeout is 2x the minimum).
            // Long enough to ride through the slowest Raft re-election (docs/raft-timings.md).
            request_timeout: Duration::from_millis(crate::config::worst_case_election_ms(
                config.raft.election_timeout_ms,
                config.raft.heartbeat_interval_ms,
            )) + Duration::from_millis(500),
            storage_cache_bytes: crate::raft::storage::DEFAULT_CACHE_BYTES,
            kind: NodeKind::Agent,
        }
    }

    /// Every member address, this node's first.
    pub fn all_addrs(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.self_addr).chain(self.partner_addrs.iter())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] OpenError),
    #[error("raft.data_dir {path}: the stored Raft state cannot be loaded: {detail}")]
    Load { path: PathBuf, detail: String },
    #[error("invalid Raft timings: {0}")]
    Timings(String),
    #[error("the Raft node failed to start: {0}")]
    Raft(String),
}

/// Why a keyspace request failed. `NoLeader`, `NotLeader` and `LeaderUnreachable` mean the
/// command was certainly not applied; `Unconfirmed` means it may or may not have been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyspaceError {
    #[error(
        "no Raft leader after {waited:?}: this node cannot confirm the keyspace \
         (cut off from a majority of the group, or the group is still electing)"
    )]
    NoLeader { waited: Duration },
    #[error("this node is no longer the Raft leader")]
    NotLeader,
    #[error("the Raft leader at {addr} could not be reached: {detail}")]
    LeaderUnreachable {
        addr: String,
        detail: String,
        /// The connection failed before the request went out: it certainly did not apply.
        not_sent: bool,
    },
    #[error("not confirmed by a majority within {waited:?}; the outcome is unknown")]
    Unconfirmed { waited: Duration },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("the Raft node has stopped: {0}")]
    Stopped(String),
}

impl KeyspaceError {
    /// Whether retrying cannot apply the command twice.
    pub fn certainly_not_applied(&self) -> bool {
        matches!(
            self,
            KeyspaceError::NotLeader | KeyspaceError::LeaderUnreachable { not_sent: true, .. }
        )
    }
}

/// The result of a committed write.
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub outcome: CommandOutcome,
    pub log_index: u64,
}

/// A read of one key or a key prefix.
#[derive(Debug, Clone, Default)]
pub struct ReadQuery {
    pub key: String,
    pub prefix: bool,
    pub linearizable: bool,
}

#[derive(Debug, Clone)]
pub struct ReadResult {
    pub entries: Vec<Entry>,
    pub applied_index: u64,
    pub as_of_ms: u64,
    pub answered_by: String,
}

pub struct RaftNode {
    pub id: NodeId,
    pub settings: NodeSettings,
    pub raft: Raft,
    state_machine: StateMachineStore,
    admin_channels: Mutex<HashMap<String, GrpcChannel>>,
    /// Held by the leader while it adds a joining node or carries out an operator's
    /// membership change: one membership change at a time.
    join_lock: tokio::sync::Mutex<()>,
    /// Set while no Raft leader is known and a majority of voters cannot be reached.
    quorum: tokio::sync::watch::Sender<Option<quorum::QuorumLoss>>,
    /// Set by formation while the Raft leader's membership does not list this node, cleared
    /// when it is a member again; the HA loop reads it (src/ha/removed.rs).
    removed: std::sync::atomic::AtomicBool,
}

/// Wall-clock milliseconds since the Unix epoch. Lease time does not use it (see
/// `keyspace/clock.rs`); the Raft leader reads it to seed an empty keyspace and detect jumps.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RaftNode {
    /// This node was removed from the Raft group: formation's rule said `Removed` last, and
    /// not `Member` since.
    pub fn removed_from_group(&self) -> bool {
        self.removed.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn set_removed(&self, removed: bool) {
        self.removed.store(removed, std::sync::atomic::Ordering::Relaxed);
    }

    /// Open storage, start openraft and the background tasks. Returns once the node runs;
    /// the group may still be forming.
    pub async fn start(settings: NodeSettings) -> Result<Arc<RaftNode>, StartError> {
        let id = node_id_for(&settings.self_addr);
        let identity = Identity {
            cluster: settings.cluster.clone(),
            node_id: id,
            self_addr: settings.self_addr.clone(),
        };
        let storage = Storage::open_with_cache(&settings.data_dir, &identity, settings.storage_cache_bytes)?;
        let load_err = |e: crate::raft::StorageError| StartError::Load {
            path: settings.data_dir.clone(),
            detail: e.to_string(),
        };
        let state_machine = StateMachineStore::open(storage.clone()).map_err(load_err)?;
        let log_store = LogStore::new(storage);

        let raft_config = openraft::Config {
            cluster_name: settings.cluster.clone(),
            heartbeat_interval: settings.heartbeat_interval.as_millis() as u64,
            election_timeout_min: settings.election_timeout.as_millis() as u64,
            election_timeout_max: settings.election_timeout.as_millis() as u64 * 2,
            install_snapshot_timeout: 2_000,
            // Compaction: a snapshot every 1000 entries, keeping 200 behind it so a briefly
            // lagging follower catches up from the log rather than a snapshot.
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1_000),
            max_in_snapshot_log_to_keep: 200,
            purge_batch_size: 100,
            replication_lag_threshold: 1_000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Timings(e.to_string()))?;

        let network = Network::new(
            &settings.cluster,
            settings.heartbeat_interval.max(Duration::from_millis(200)),
        );
        let raft = Raft::new(
            id,
            Arc::new(raft_config),
            network,
            log_store,
            state_machine.clone(),
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;

        let node = Arc::new(RaftNode {
            id,
            settings,
            raft,
            state_machine,
            admin_channels: Mutex::default(),
            join_lock: tokio::sync::Mutex::default(),
            quorum: tokio::sync::watch::Sender::new(None),
            removed: std::sync::atomic::AtomicBool::new(false),
        });
        tracing::info!(
            node_id = id,
            addr = %node.settings.self_addr,
            cluster = %node.settings.cluster,
            data_dir = %node.settings.data_dir.display(),
            "raft: node started"
        );
        tokio::spawn(role_log::run(node.clone()));
        tokio::spawn(formation::run(node.clone()));
        tokio::spawn(housekeeping::run(node.clone()));
        tokio::spawn(quorum_watch::run(node.clone()));
        Ok(node)
    }

    /// Why the keyspace cannot be reached, while a majority of voters cannot be: `None`
    /// while a Raft leader is known (or the group is still electing with a majority up).
    pub fn quorum_loss(&self) -> tokio::sync::watch::Receiver<Option<quorum::QuorumLoss>> {
        self.quorum.subscribe()
    }

    /// Notified with the last applied log index after every applied batch: the HA loop wakes
    /// on keyspace changes through this.
    pub fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.state_machine.subscribe()
    }

    /// Read this node's local copy, which may be stale. For display and debugging only.
    pub fn read_local(&self, query: &ReadQuery) -> ReadResult {
        self.state_machine.read(|s| {
            let entries = if query.prefix {
                s.keyspace.with_prefix(&query.key).cloned().collect()
            } else {
                query
                    .key
                    .parse::<Key>()
                    .ok()
                    .and_then(|k| s.keyspace.get(&k).cloned())
                    .into_iter()
                    .collect()
            };
            ReadResult {
                entries,
                applied_index: s.last_applied.map_or(0, |l| l.index),
                as_of_ms: s.keyspace.as_of_ms(),
                answered_by: self.settings.name.clone(),
            }
        })
    }

    /// Apply a command through Raft, forwarding it to the Raft leader if needed.
    pub async fn write(&self, command: Command, forwarded: bool) -> Result<WriteResult, KeyspaceError> {
        // Retry only what certainly did not apply (leadership moved before the command was
        // proposed, or the leader we knew is gone), so a command never applies twice.
        self.retrying(forwarded, KeyspaceError::certainly_not_applied, |deadline| {
            let command = command.clone();
            async move {
                let leader = self.wait_for_leader(deadline).await?;
                if leader == self.id {
                    self.write_as_leader(command, deadline).await
                } else if forwarded {
                    Err(KeyspaceError::NotLeader)
                } else {
                    self.forward_write(leader, &command, deadline).await
                }
            }
        })
        .await
    }

    /// Run `attempt` until it succeeds, fails in a way `retryable` rejects, or the request
    /// deadline passes (riding through a Raft election). A forwarded request is not retried
    /// here: the node that forwarded it retries.
    async fn retrying<T, Fut>(
        &self,
        forwarded: bool,
        retryable: impl Fn(&KeyspaceError) -> bool,
        attempt: impl Fn(Instant) -> Fut,
    ) -> Result<T, KeyspaceError>
    where
        Fut: std::future::Future<Output = Result<T, KeyspaceError>>,
    {
        let started = Instant::now();
        let deadline = started + self.settings.request_timeout;
        loop {
            match attempt(deadline).await {
                Err(e) if !forwarded && retryable(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(KeyspaceError::Unconfirmed { .. }) => {
                    return Err(KeyspaceError::Unconfirmed {
                        waited: started.elapsed(),
                    })
                }
                other => return other,
            }
        }
    }

    async fn write_as_leader(
        &self,
        command: Command,
        deadline: Instant,
    ) -> Result<WriteResult, KeyspaceError> {
        // The stamp is taken on the leader, just before proposing: TTLs are measured on it.
        // Keyspace time, continued on the monotonic clock: no wall clock moves lease time.
        let (now_ms, jump) = self.state_machine.stamp(wall_ms());
        if let Some(jump) = jump {
            tracing::warn!(
                jump_ms = jump.by_ms,
                keyspace_ms = now_ms,
                "raft: this leader's wall clock jumped by {} ms against its monotonic clock; \
                 lease time does not follow it (keyspace time runs on the monotonic clock)",
                jump.by_ms
            );
        }
        let stamped = crate::keyspace::Stamped { now_ms, command };
        match tokio::time::timeout_at(deadline, self.raft.client_write(stamped)).await {
            Ok(Ok(resp)) => Ok(WriteResult {
                outcome: resp.data,
                log_index: resp.log_id.index,
            }),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                Err(KeyspaceError::NotLeader)
            }
            Ok(Err(RaftError::APIError(e))) => Err(KeyspaceError::Invalid(e.to_string())),
            Ok(Err(RaftError::Fatal(e))) => Err(KeyspaceError::Stopped(e.to_string())),
            Err(_) => Err(KeyspaceError::Unconfirmed {
                waited: self.settings.request_timeout,
            }),
        }
    }

    /// Read keys. A linearizable read is answered by the Raft leader after it confirmed its
    /// leadership with a majority; on a node that cannot reach one it fails.
    pub async fn read(&self, query: &ReadQuery, forwarded: bool) -> Result<ReadResult, KeyspaceError> {
        if !query.prefix {
            query
                .key
                .parse::<Key>()
                .map_err(|e| KeyspaceError::Invalid(e.to_string()))?;
        }
        if !query.linearizable {
            return Ok(self.read_local(query));
        }
        // A read changes nothing: retry anything that may succeed under a new leader.
        let retryable = |e: &KeyspaceError| {
            matches!(
                e,
                KeyspaceError::NotLeader | KeyspaceError::LeaderUnreachable { .. }
            )
        };
        self.retrying(forwarded, retryable, |deadline| {
            self.linearizable_read_once(query, forwarded, deadline)
        })
        .await
    }

    async fn linearizable_read_once(
        &self,
        query: &ReadQuery,
        forwarded: bool,
        deadline: Instant,
    ) -> Result<ReadResult, KeyspaceError> {
        let leader = self.wait_for_leader(deadline).await?;
        if leader != self.id {
            if forwarded {
                return Err(KeyspaceError::NotLeader);
            }
            return self.forward_read(leader, query, deadline).await;
        }
        match tokio::time::timeout_at(deadline, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(self.read_local(query)),
            Ok(Err(RaftError::APIError(_))) => Err(KeyspaceError::NotLeader),
            Ok(Err(RaftError::Fatal(e))) => Err(KeyspaceError::Stopped(e.to_string())),
            Err(_) => Err(KeyspaceError::Unconfirmed {
                waited: self.settings.request_timeout,
            }),
        }
    }

    /// The current Raft leader, waiting (until `deadline`) through an election.
    async fn wait_for_leader(&self, deadline: Instant) -> Result<NodeId, KeyspaceError> {
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = metrics.borrow_and_update().current_leader {
                return Ok(leader);
            }
            match tokio::time::timeout_at(deadline, metrics.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(KeyspaceError::Stopped("metrics channel closed".into())),
                Err(_) => {
                    return Err(KeyspaceError::NoLeader {
                        waited: self.settings.request_timeout,
                    })
                }
            }
        }
    }

    fn addr_of(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics().borrow().clone();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
    }

    /// An admin client for `addr`, on a cached lazily-connecting channel.
    pub fn admin_client(&self, addr: &str) -> Result<AdminClient<GrpcChannel>, KeyspaceError> {
        let mut channels = self.admin_channels.lock().expect("channel map poisoned");
        let channel = match channels.get(addr) {
            Some(c) => c.clone(),
            None => {
                let c = process_channel(addr, Duration::from_millis(500))
                    .map_err(|e| KeyspaceError::Invalid(format!("bad address {addr:?}: {e}")))?;
                channels.insert(addr.to_string(), c.clone());
                c
            }
        };
        Ok(AdminClient::new(channel))
    }

    async fn forward_write(
        &self,
        leader: NodeId,
        command: &Command,
        deadline: Instant,
    ) -> Result<WriteResult, KeyspaceError> {
        let body = serde_json::to_vec(command).map_err(|e| KeyspaceError::Invalid(e.to_string()))?;
        let request = WriteRequest {
            command: body,
            forwarded: true,
            force_resume: false,
        };
        let (addr, reply) = self
            .call_leader(leader, deadline, request, |mut client, req| async move {
                client.write(req).await
            })
            .await?;
        let outcome = serde_json::from_slice(&reply.outcome)
            .map_err(|e| KeyspaceError::Invalid(format!("bad reply from {addr}: {e}")))?;
        Ok(WriteResult {
            outcome,
            log_index: reply.log_index,
        })
    }

    async fn forward_read(
        &self,
        leader: NodeId,
        query: &ReadQuery,
        deadline: Instant,
    ) -> Result<ReadResult, KeyspaceError> {
        let request = ReadRequest {
            key: query.key.clone(),
            prefix: query.prefix,
            linearizable: true,
            forwarded: true,
        };
        let (addr, reply) = self
            .call_leader(leader, deadline, request, |mut client, req| async move {
                client.read(req).await
            })
            .await?;
        let entries = reply
            .entries
            .iter()
            .map(|b| serde_json::from_slice(b))
            .collect::<Result<Vec<Entry>, _>>()
            .map_err(|e| KeyspaceError::Invalid(format!("bad reply from {addr}: {e}")))?;
        Ok(ReadResult {
            entries,
            applied_index: reply.applied_index,
            as_of_ms: reply.as_of_ms,
            answered_by: reply.answered_by,
        })
    }

    /// Send `message` to the Raft leader's admin service with what is left of `deadline`.
    /// Returns the leader's address (for error messages) and its reply.
    async fn call_leader<M, R, Fut>(
        &self,
        leader: NodeId,
        deadline: Instant,
        message: M,
        call: impl FnOnce(AdminClient<GrpcChannel>, tonic::Request<M>) -> Fut,
    ) -> Result<(String, R), KeyspaceError>
    where
        Fut: std::future::Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let addr = self.addr_of(leader).ok_or(KeyspaceError::NoLeader {
            waited: Duration::ZERO,
        })?;
        let client = self.admin_client(&addr)?;
        let mut request = tonic::Request::new(message);
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        let reply = tokio::time::timeout_at(deadline, call(client, request))
            .await
            .map_err(|_| KeyspaceError::Unconfirmed {
                waited: self.settings.request_timeout,
            })?
            .map_err(|s| status_to_error(&addr, s))?
            .into_inner();
        Ok((addr, reply))
    }

    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft: shutdown did not complete cleanly");
        }
    }
}
