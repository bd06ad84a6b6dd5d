//! The admin gRPC service: keyspace reads and writes and Raft status, for `pgquorumctl`
//! and for agents forwarding to the Raft leader.
//!
//! Every RPC requires a permission level (src/grpc/access.rs): read for reads and status,
//! admin for operator requests and the operator's keys, agent for joining and for the keys
//! only agents write ([`client_writable`]). A `config` written by anyone but an agent is
//! validated here with the same function pgquorumctl uses ([`check_config_write`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::cluster::{ClusterView, MemberStatus};
use crate::config::guard::{check_config_write, MemberTimings};
use crate::config::RaftConfig;
use crate::config::RaftTimings;
use crate::grpc::access::{require, Access, Caller};
use crate::grpc::pb::admin::admin_server::Admin;
use crate::grpc::pb::admin::{
    JoinReply, JoinRequest, NodeStatusReply, NodeStatusRequest, OperateReply, OperateRequest,
    RaftStatusReply, RaftStatusRequest, ReadReply, ReadRequest, WalPositionReply, WalPositionRequest,
    WriteReply, WriteRequest,
};
use crate::grpc::transport::Refusal;
use crate::ha::shutdown::{lifts_pause, resume_refusal};
use crate::ha::OperatorRequest;
use crate::ha::PositionProbe;
use crate::keyspace::{Command, Key};
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

    /// The Raft timings a `config` write must fit: every member's as published in its member
    /// key (linearizable read), and this agent's own (a Raft-only voter publishes none).
    async fn member_timings(&self) -> Result<Vec<MemberTimings>, Status> {
        let query = ReadQuery {
            key: crate::keyspace::MEMBERS_PREFIX.into(),
            prefix: true,
            linearizable: true,
        };
        let read = self
            .node
            .read(&query, false)
            .await
            .map_err(|e| error_to_status(&e))?;
        let members: Vec<MemberStatus> = read
            .entries
            .iter()
            .filter_map(|e| serde_json::from_value(e.value.clone()).ok())
            .collect();
        let mut timings = MemberTimings::of_members(&members);
        let me = &self.node.settings.name;
        if let Some(raft) = self
            .raft
            .as_ref()
            .filter(|_| !timings.iter().any(|t| t.name == *me))
        {
            timings.push(MemberTimings {
                name: me.clone(),
                timings: RaftTimings::of(raft),
            });
        }
        Ok(timings)
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
        let Command::Put {
            key: Key::Config,
            value,
            ..
        } = command
        else {
            return Ok(());
        };
        // Compared with the stored configuration as of now (linearizable), not a stale copy.
        let query = ReadQuery {
            key: "config".into(),
            prefix: false,
            linearizable: true,
        };
        let current = self
            .node
            .read(&query, false)
            .await
            .map_err(|e| error_to_status(&e))?;
        let before = current.entries.first().map(|e| &e.value);
        let timings = self.member_timings().await?;
        check_config_write(before, value, &timings).map_err(|problems| {
            Refusal::InvalidConfig.status(
                tonic::Code::InvalidArgument,
                format!(
                    "the new configuration is invalid, nothing changed:\n  - {}",
                    problems.join("\n  - ")
                ),
                "",
            )
        })?;
        Ok(())
    }

    /// A `config` write that lifts maintenance mode is checked with the rule of `pgquorumctl
    /// resume` ([`resume_refusal`]), whoever sends it (`edit-config --set pause=`, a
    /// hand-written client): agents never lift it themselves.
    async fn check_resume(&self, command: &Command) -> Result<(), Status> {
        let Command::Put {
            key: Key::Config,
            value,
            ..
        } = command
        else {
            return Ok(());
        };
        if value.get("pause").and_then(serde_json::Value::as_bool) == Some(true) {
            return Ok(()); // still paused: nothing to check, no read
        }
        let query = ReadQuery {
            key: String::new(),
            prefix: true,
            linearizable: true,
        };
        let all = self
            .node
            .read(&query, false)
            .await
            .map_err(|e| error_to_status(&e))?;
        let before = all
            .entries
            .iter()
            .find(|e| e.key == Key::Config)
            .map(|e| &e.value);
        if !lifts_pause(before, value) {
            return Ok(());
        }
        match resume_refusal(&ClusterView::from_entries(&all.entries, all.as_of_ms)) {
            None => Ok(()),
            Some(why) => Err(Refusal::InvalidConfig.status(
                tonic::Code::FailedPrecondition,
                format!("resume refused: {why} (`pgquorumctl resume --force` resumes anyway)"),
                "",
            )),
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
