//! The admin gRPC service: keyspace reads and writes and Raft status, for `pgquorumctl`
//! and for agents forwarding to the Raft leader.
//!
//! Every RPC requires a permission level (src/grpc/access.rs): read for reads and status,
//! admin for operator requests and the operator's keys, agent for joining and for the keys
//! only agents write ([`client_writable`]). A `config` written by anyone but an agent is
//! validated here with the same function pgquorumctl uses, on the path the REST API's
//! `PATCH`/`PUT /config` take too ([`ConfigWrites`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::config::RaftConfig;
use crate::grpc::access::{require, Access, Caller};
use crate::grpc::pb::admin::admin_server::Admin;
use crate::grpc::pb::admin::{
    JoinReply, JoinRequest, MembersChangeReply, MembersChangeRequest, NodeStatusReply, NodeStatusRequest,
    OperateReply, OperateRequest, RaftStatusReply, RaftStatusRequest, ReadReply, ReadRequest,
    RemoveClusterReply, RemoveClusterRequest, WalPositionReply, WalPositionRequest, WriteReply, WriteRequest,
};
use crate::grpc::transport::Refusal;
use crate::ha::OperatorRequest;
use crate::ha::PositionProbe;
use crate::keyspace::{Command, Key};
use crate::node::config_write::{ConfigWriteError, ConfigWrites};
use crate::node::{error_to_status, RaftNode, ReadQuery};

/// The largest admin request accepted (a keyspace command is far smaller; members' keys and
/// the configuration are a few kB).
pub const MAX_ADMIN_REQUEST_BYTES: usize = 1024 * 1024;

/// Whether a caller below agent level may apply `command`: only puts and deletes of the
/// operator's keys, `config` (validated) and `failover` (switchover requests). Leases,
/// `leader`, `initialize`, `members/*`, `status`, `history` and `sync` are the agents' own.
pub fn client_writable(command: &Command) -> bool {
    match command {
        Command::Put { key, .. } => matches!(key, Key::Config | Key::Failover),
        Command::Delete { key, .. } => matches!(key, Key::Failover),
        Command::AcquireLease { .. } | Command::ReleaseLease { .. } | Command::Expire => false,
    }
}

#[derive(Clone)]
pub struct AdminGrpc {
    node: Arc<RaftNode>,
    /// The HA loop's request queue; `None` on a node that manages no PostgreSQL.
    operator: Option<mpsc::Sender<OperatorRequest>>,
    /// Live WAL position of the local PostgreSQL; `None` on a node without one.
    position: Option<PositionProbe>,
    /// This agent's Raft timings, which a new `ttl` must leave room for.
    raft: Option<RaftConfig>,
}

impl AdminGrpc {
    pub fn new(
        node: Arc<RaftNode>,
        operator: Option<mpsc::Sender<OperatorRequest>>,
        position: Option<PositionProbe>,
    ) -> AdminGrpc {
        AdminGrpc {
            node,
            operator,
            position,
            raft: None,
        }
    }

    /// Check `config` writes against these Raft timings too.
    pub fn with_raft_config(mut self, raft: RaftConfig) -> AdminGrpc {
        self.raft = Some(raft);
        self
    }

    /// Refuse what the caller (below agent level) may not write; validate a `config`.
    async fn check_client_write(&self, caller: &Caller, command: &Command) -> Result<(), Status> {
        if !client_writable(command) {
            let what = match command.key() {
                Some(key) => format!("this write to \"{key}\" (a key only agents write)"),
                None => "this keyspace command (only agents send it)".into(),
            };
            return Err(crate::grpc::access::denied(caller, Access::Agent, &what));
        }
        let Some(value) = config_value(command) else {
            return Ok(());
        };
        self.config_writes()
            .check_client_config(value)
            .await
            .map(|_| ())
            .map_err(|e| config_write_status(&e))
    }

    /// A `config` write that lifts maintenance mode is checked with the rule of `pgquorumctl
    /// resume`, whoever sends it (`edit-config --set pause=`, a hand-written client): agents
    /// never lift it themselves.
    async fn check_resume(&self, command: &Command) -> Result<(), Status> {
        let Some(value) = config_value(command) else {
            return Ok(());
        };
        self.config_writes()
            .check_resume_of(value)
            .await
            .map_err(|e| config_write_status(&e))
    }

    fn config_writes(&self) -> ConfigWrites {
        ConfigWrites::new(self.node.clone(), self.raft.clone())
    }
}

/// A refused `config` write as a gRPC status: typed by variant, never by text.
fn config_write_status(error: &ConfigWriteError) -> Status {
    match error {
        ConfigWriteError::Keyspace(e) => error_to_status(e),
        ConfigWriteError::Invalid(_) => {
            Refusal::InvalidConfig.status(tonic::Code::InvalidArgument, error.to_string(), "")
        }
        ConfigWriteError::ResumeRefused(_) => Refusal::InvalidConfig.status(
            tonic::Code::FailedPrecondition,
            format!("{error} (`pgquorumctl resume --force` resumes anyway)"),
            "",
        ),
        ConfigWriteError::NotStored | ConfigWriteError::Changed => {
            Status::failed_precondition(error.to_string())
        }
    }
}

/// How long an operator request may take (a restart waits for PostgreSQL to come up).
const OPERATE_TIMEOUT: Duration = Duration::from_secs(120);

#[tonic::async_trait]
impl Admin for AdminGrpc {
    async fn write(&self, request: Request<WriteRequest>) -> Result<Response<WriteReply>, Status> {
        let access = require(&request, Access::Admin, "a keyspace write")?;
        let caller = request.extensions().get::<Caller>().cloned();
        let req = request.into_inner();
        let command: Command = serde_json::from_slice(&req.command)
            .map_err(|e| Status::invalid_argument(format!("not a keyspace command: {e}")))?;
        if access < Access::Agent {
            let caller = caller.expect("require found the caller");
            self.check_client_write(&caller, &command).await?;
        }
        if !req.forwarded && !req.force_resume {
            // Whoever asks (in an open cluster every caller counts as an agent); a forwarded
            // write was checked where it arrived.
            self.check_resume(&command).await?;
        }
        let result = self
            .node
            .write(command, req.forwarded)
            .await
            .map_err(|e| error_to_status(&e))?;
        let outcome = serde_json::to_vec(&result.outcome).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(WriteReply {
            outcome,
            log_index: result.log_index,
        }))
    }

    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<ReadReply>, Status> {
        require(&request, Access::Read, "a keyspace read")?;
        let req = request.into_inner();
        let query = ReadQuery {
            key: req.key,
            prefix: req.prefix,
            linearizable: req.linearizable,
        };
        let result = self
            .node
            .read(&query, req.forwarded)
            .await
            .map_err(|e| error_to_status(&e))?;
        let entries = result
            .entries
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ReadReply {
            entries,
            applied_index: result.applied_index,
            as_of_ms: result.as_of_ms,
            answered_by: result.answered_by,
        }))
    }

    async fn node_status(
        &self,
        request: Request<NodeStatusRequest>,
    ) -> Result<Response<NodeStatusReply>, Status> {
        require(&request, Access::Read, "node status")?;
        Ok(Response::new(self.node.node_status().await))
    }

    async fn join_cluster(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        require(&request, Access::Agent, "joining the Raft group")?;
        let reply = self
            .node
            .join(request.into_inner())
            .await
            .map_err(|e| error_to_status(&e))?;
        Ok(Response::new(reply))
    }

    async fn change_members(
        &self,
        request: Request<MembersChangeRequest>,
    ) -> Result<Response<MembersChangeReply>, Status> {
        require(&request, Access::Admin, "a Raft membership change")?;
        let reply = self
            .node
            .change_members(request.into_inner())
            .await
            .map_err(|e| error_to_status(&e))?;
        Ok(Response::new(reply))
    }

    async fn remove_cluster(
        &self,
        request: Request<RemoveClusterRequest>,
    ) -> Result<Response<RemoveClusterReply>, Status> {
        require(&request, Access::Admin, "removing the cluster's keyspace")?;
        let req = request.into_inner();
        use crate::node::cluster_removal::RemovalError;
        match self.node.remove_cluster(&req.scope, req.force).await {
            Ok(deleted) => Ok(Response::new(RemoveClusterReply { deleted })),
            Err(RemovalError::Keyspace(e)) => Err(error_to_status(&e)),
            Err(e @ (RemovalError::OtherScope { .. } | RemovalError::PrimaryLeaseHeld { .. })) => {
                Err(Status::failed_precondition(e.to_string()))
            }
        }
    }

    async fn raft_status(
        &self,
        request: Request<RaftStatusRequest>,
    ) -> Result<Response<RaftStatusReply>, Status> {
        require(&request, Access::Read, "raft status")?;
        Ok(Response::new(self.node.raft_status().await))
    }

    async fn wal_position(
        &self,
        request: Request<WalPositionRequest>,
    ) -> Result<Response<WalPositionReply>, Status> {
        require(&request, Access::Read, "the WAL position")?;
        let Some(probe) = &self.position else {
            return Err(Status::unimplemented("this node manages no PostgreSQL"));
        };
        let reply = match probe().await {
            Ok(p) => WalPositionReply {
                timeline: p.timeline,
                lsn: p.lsn,
                error: String::new(),
            },
            Err(e) => WalPositionReply {
                error: e,
                ..Default::default()
            },
        };
        Ok(Response::new(reply))
    }

    async fn operate(&self, request: Request<OperateRequest>) -> Result<Response<OperateReply>, Status> {
        require(
            &request,
            Access::Admin,
            "an operator request (reload, restart, reinit)",
        )?;
        let Some(operator) = &self.operator else {
            return Err(Status::unimplemented("this node manages no PostgreSQL"));
        };
        let (reply, answer) = oneshot::channel();
        let req = match request.into_inner().op.as_str() {
            "reload" => OperatorRequest::Reload { reply },
            "restart" => OperatorRequest::Restart { reply },
            "reinit" => OperatorRequest::Reinit { reply },
            other => return Err(Status::invalid_argument(format!("unknown operation {other:?}"))),
        };
        operator
            .send(req)
            .await
            .map_err(|_| Status::unavailable("the HA loop is not running"))?;
        match tokio::time::timeout(OPERATE_TIMEOUT, answer).await {
            Ok(Ok(Ok(message))) => Ok(Response::new(OperateReply { message })),
            Ok(Ok(Err(e))) => Err(Status::failed_precondition(e)),
            Ok(Err(_)) => Err(Status::unavailable("the HA loop dropped the request")),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no answer within {OPERATE_TIMEOUT:?}"
            ))),
        }
    }
}

/// The value a command writes into `config`, if it is such a write.
fn config_value(command: &Command) -> Option<&serde_json::Value> {
    match command {
        Command::Put {
            key: Key::Config,
            value,
            ..
        } => Some(value),
        _ => None,
    }
}
