//! The agent process: binds the gRPC port, starts the Raft node and serves until told to
//! stop. (The PostgreSQL side of the agent comes on top of this.)

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Config;
use crate::grpc::admin_service::AdminGrpc;
use crate::grpc::pb::admin::admin_server::AdminServer;
use crate::grpc::pb::raft::raft_service_server::RaftServiceServer;
use crate::grpc::raft_service::RaftGrpc;
use crate::ha::OperatorRequest;
use crate::node::{NodeSettings, RaftNode, StartError};

/// Large enough for a snapshot chunk of a big keyspace.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("raft.self_addr {addr}: cannot resolve the address: {source}")]
    Resolve { addr: String, source: std::io::Error },
    #[error("raft.self_addr {addr}: cannot listen on {socket}: {source} (is another agent or program using this port?)")]
    Bind {
        addr: String,
        socket: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Run the agent until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let settings = NodeSettings::from_config(&config);
    // Bind before touching storage: a port conflict is reported without side effects.
    let listener = bind(&settings.self_addr).await?;
    let node = RaftNode::start(settings).await?;
    serve(node.clone(), None, listener, shutdown).await?;
    node.shutdown().await;
    tracing::info!("agent stopped");
    Ok(())
}

pub async fn bind(addr: &str) -> Result<TcpListener, AgentError> {
    let socket = tokio::net::lookup_host(addr)
        .await
        .map_err(|source| AgentError::Resolve {
            addr: addr.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| AgentError::Resolve {
            addr: addr.to_string(),
            source: std::io::Error::other("no address"),
        })?;
    TcpListener::bind(socket)
        .await
        .map_err(|source| AgentError::Bind {
            addr: addr.to_string(),
            socket,
            source,
        })
}

/// Serve the Raft and admin services on one port (one port per agent to open in a firewall).
pub async fn serve(
    node: Arc<RaftNode>,
    operator: Option<mpsc::Sender<OperatorRequest>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let raft = RaftServiceServer::new(RaftGrpc::new(node.raft.clone(), &node.settings.cluster))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let admin = AdminServer::new(AdminGrpc::new(node.clone(), operator));
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(raft)
        .add_service(admin)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received: stopping"),
        _ = term.recv() => tracing::info!("SIGTERM received: stopping"),
    }
}
