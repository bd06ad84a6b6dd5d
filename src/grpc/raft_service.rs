//! The server side of the Raft RPCs.
//!
//! # Protocol safety
//! Only other members of the same Raft group should reach this service: it accepts log
//! entries and votes. Requests stamped with another cluster's `scope` are refused.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tonic::{Request, Response, Status};

use crate::grpc::pb::raft::raft_service_server::RaftService;
use crate::grpc::pb::raft::RaftMessage;
use crate::raft::Raft;

pub struct RaftGrpc {
    raft: Raft,
    cluster: String,
}

impl RaftGrpc {
    pub fn new(raft: Raft, cluster: &str) -> RaftGrpc {
        RaftGrpc {
            raft,
            cluster: cluster.to_string(),
        }
    }

    fn decode<T: DeserializeOwned>(&self, msg: RaftMessage) -> Result<T, Status> {
        if msg.cluster != self.cluster {
            return Err(Status::failed_precondition(format!(
                "this node belongs to cluster {:?}, the request came from cluster {:?}",
                self.cluster, msg.cluster
            )));
        }
        serde_json::from_slice(&msg.payload)
            .map_err(|e| Status::invalid_argument(format!("bad raft payload: {e}")))
    }

    fn encode<T: Serialize>(&self, value: &T) -> Result<Response<RaftMessage>, Status> {
        let payload = serde_json::to_vec(value).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(RaftMessage {
            cluster: self.cluster.clone(),
            payload,
        }))
    }
}

#[tonic::async_trait]
impl RaftService for RaftGrpc {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request.into_inner())?;
        self.encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request.into_inner())?;
        self.encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request.into_inner())?;
        self.encode(&self.raft.install_snapshot(rpc).await)
    }
}
