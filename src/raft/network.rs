//! The client side of the Raft RPCs: how this node's openraft reaches its peers over gRPC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{BasicNode, NodeId, TypeConfig};
use crate::grpc::pb::raft::raft_service_client::RaftServiceClient;
use crate::grpc::pb::raft::RaftMessage;
use crate::grpc::{process_channel, GrpcChannel, Refusal};

/// Creates one client per peer; channels are shared by address so reconnecting after a
/// peer restart reuses the same HTTP/2 connection machinery.
#[derive(Clone)]
pub struct Network {
    cluster: String,
    connect_timeout: Duration,
    channels: Arc<Mutex<HashMap<String, GrpcChannel>>>,
}

impl Network {
    pub fn new(cluster: &str, connect_timeout: Duration) -> Network {
        Network {
            cluster: cluster.to_string(),
            connect_timeout,
            channels: Arc::default(),
        }
    }

    fn channel(&self, addr: &str) -> Option<GrpcChannel> {
        let mut channels = self.channels.lock().expect("channel map poisoned");
        if let Some(c) = channels.get(addr) {
            return Some(c.clone());
        }
        match process_channel(addr, self.connect_timeout) {
            Ok(c) => {
                channels.insert(addr.to_string(), c.clone());
                Some(c)
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "raft: invalid peer address");
                None
            }
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            cluster: self.cluster.clone(),
            client: self.channel(&node.addr).map(RaftServiceClient::new),
        }
    }
}

pub struct PeerClient {
    target: NodeId,
    addr: String,
    cluster: String,
    client: Option<RaftServiceClient<GrpcChannel>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let Some(client) = self.client.as_mut() else {
            let e = TransportError(format!("invalid address {:?}", self.addr));
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        };
        let payload = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut request = tonic::Request::new(RaftMessage {
            cluster: self.cluster.clone(),
            payload,
        });
        request.set_timeout(option.hard_ttl());
        let call = async {
            match method {
                Method::Append => client.append_entries(request).await,
                Method::Vote => client.vote(request).await,
                Method::Snapshot => client.install_snapshot(request).await,
            }
        };
        let reply = match tokio::time::timeout(option.hard_ttl(), call).await {
            Ok(Ok(reply)) => reply.into_inner(),
            Ok(Err(status)) => return Err(status_to_rpc_error(&self.addr, status)),
            Err(_) => {
                let e = TransportError(format!("{} timed out after {:?}", self.addr, option.hard_ttl()));
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
        };
        let result: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(&reply.payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

#[derive(Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

fn status_to_rpc_error<E: std::error::Error>(
    addr: &str,
    status: tonic::Status,
) -> RPCError<NodeId, BasicNode, E> {
    let e = TransportError(format!("{addr}: {}: {}", status.code(), status.message()));
    if let Some(refusal) = Refusal::of(&status) {
        // A peer of another cluster, or one whose raft.password differs: a configuration
        // mistake, logged loudly; openraft backs off as from an unreachable peer.
        tracing::error!(error = %e, ?refusal, "raft: peer refused our RPC");
        return RPCError::Unreachable(Unreachable::new(&e));
    }
    match status.code() {
        // Connection refused / reset / TLS handshake refused: tell openraft to back off
        // instead of hammering the peer.
        tonic::Code::Unavailable => {
            tracing::debug!(error = %e, source = ?std::error::Error::source(&status), "raft: peer unreachable");
            RPCError::Unreachable(Unreachable::new(&e))
        }
        tonic::Code::FailedPrecondition => {
            tracing::error!(error = %e, "raft: peer refused our RPC");
            RPCError::Unreachable(Unreachable::new(&e))
        }
        _ => RPCError::Network(NetworkError::new(&e)),
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Method::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}
