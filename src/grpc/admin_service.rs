//! The admin gRPC service: keyspace reads and writes and Raft status, for `pgquorumctl`
//! and for agents forwarding to the Raft leader.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use crate::grpc::pb::admin::admin_server::Admin;
use crate::grpc::pb::admin::{
    JoinReply, JoinRequest, NodeStatusReply, NodeStatusRequest, OperateReply, OperateRequest,
    RaftStatusReply, RaftStatusRequest, ReadReply, ReadRequest, WalPositionReply, WalPositionRequest,
    WriteReply, WriteRequest,
};
use crate::ha::OperatorRequest;
use crate::ha::PositionProbe;
use crate::keyspace::Command;
use crate::node::{error_to_status, RaftNode, ReadQuery};

pub struct AdminGrpc {
    node: Arc<RaftNode>,
    /// The HA loop's request queue; `None` on a node that manages no PostgreSQL.
    operator: Option<mpsc::Sender<OperatorRequest>>,
    /// Live WAL position of the local PostgreSQL; `None` on a node without one.
    position: Option<PositionProbe>,
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
        }
    }
}

/// How long an operator request may take (a restart waits for PostgreSQL to come up).
const OPERATE_TIMEOUT: Duration = Duration::from_secs(120);

#[tonic::async_trait]
impl Admin for AdminGrpc {
    async fn write(&self, request: Request<WriteRequest>) -> Result<Response<WriteReply>, Status> {
        let req = request.into_inner();
        let command: Command = serde_json::from_slice(&req.command)
            .map_err(|e| Status::invalid_argument(format!("not a keyspace command: {e}")))?;
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

    async fn node_status(&self, _: Request<NodeStatusRequest>) -> Result<Response<NodeStatusReply>, Status> {
        Ok(Response::new(self.node.node_status().await))
    }

    async fn join_cluster(&self, request: Request<JoinRequest>) -> Result<Response<JoinReply>, Status> {
        let reply = self
            .node
            .join(request.into_inner())
            .await
            .map_err(|e| error_to_status(&e))?;
        Ok(Response::new(reply))
    }

    async fn raft_status(&self, _: Request<RaftStatusRequest>) -> Result<Response<RaftStatusReply>, Status> {
        Ok(Response::new(self.node.raft_status().await))
    }

    async fn wal_position(
        &self,
        _request: Request<WalPositionRequest>,
    ) -> Result<Response<WalPositionReply>, Status> {
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
