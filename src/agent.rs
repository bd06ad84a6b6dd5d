//! The agent process: binds its ports, starts the Raft node, and — when the config names a
//! PostgreSQL data directory — the HA loop and the REST API; then serves until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;

use crate::config::Config;
use crate::grpc::admin_service::AdminGrpc;
use crate::grpc::pb::admin::admin_server::AdminServer;
use crate::grpc::pb::raft::raft_service_server::RaftServiceServer;
use crate::grpc::raft_service::RaftGrpc;
use crate::ha::pg_adapter::LocalPostgres;
use crate::ha::{HaLoop, NodeSnapshot, OperatorRequest};
use crate::node::{NodeSettings, RaftNode, StartError};
use crate::postgres::{PgError, Postgres, PostgresSettings};
use crate::rest::RestState;

/// Large enough for a snapshot chunk of a big keyspace.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{key} {addr}: cannot resolve the address: {source}")]
    Resolve {
        key: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error(
        "{key} {addr}: cannot listen on {socket}: {source} (is another agent or program using this port?)"
    )]
    Bind {
        key: &'static str,
        addr: String,
        socket: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("postgresql: {0}")]
    Postgres(#[from] PgError),
    #[error("cannot start the fence guard: {0}")]
    Fence(std::io::Error),
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error(transparent)]
    Transport(#[from] crate::grpc::transport::TransportError),
}

/// Run the agent until `shutdown` completes. `config_path` is re-read on reload.
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    // Installed first: SIGHUP's default action would end the agent, and the fence guard would
    // then kill the primary's PostgreSQL — a `systemctl reload` must never cause a failover.
    let hangups = hangup_signals();
    let settings = NodeSettings::from_config(&config);
    // Every channel this process opens (Raft, forwarding, probes) and the server use it.
    let transport = crate::grpc::Transport::from_config(&config)?;
    crate::grpc::transport::install(transport.clone());
    // Bind and check everything before touching storage: a port conflict or a bad
    // PostgreSQL setting is reported without side effects.
    let listener = bind("raft.self_addr", &settings.self_addr).await?;
    let postgres = match &config.postgresql.data_dir {
        Some(_) => {
            let pg = Postgres::new(PostgresSettings::from_config(&config)?)?;
            LocalPostgres::prepare_dirs(&pg, &config)?;
            Some(pg)
        }
        None => None,
    };
    let rest_listener = match (&postgres, &config.restapi.listen) {
        (Some(_), Some(addr)) => Some(bind("restapi.listen", addr).await?),
        _ => None,
    };
    let node = RaftNode::start(settings).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let mut operator = None;
    let mut position = None;
    let ha_done = Arc::new(tokio::sync::Notify::new());
    let mut ha_task = None;
    if let Some(pg) = postgres {
        tracing::info!(data_dir = %pg.data_dir().display(), "managing PostgreSQL");
        let (snapshot_tx, snapshot_rx) =
            watch::channel(Arc::new(NodeSnapshot::starting(&config.scope, &config.name)));
        let (requests_tx, requests_rx) = mpsc::channel(16);
        if let Some(listener) = rest_listener {
            let state = RestState {
                snapshot: snapshot_rx,
                requests: requests_tx.clone(),
                auth: config.restapi.authentication.clone(),
                version: env!("CARGO_PKG_VERSION"),
            };
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let until = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(e) = crate::rest::serve(listener, state, until).await {
                    tracing::error!("REST API stopped: {e}");
                }
            });
        }
        // Armed for the whole time the loop manages PostgreSQL: if this process dies, the
        // guard kills the postmaster (src/fence.rs).
        let guard = crate::fence::spawn_guard(pg.data_dir()).map_err(AgentError::Fence)?;
        let ops = Arc::new(LocalPostgres::new(pg, config.clone()));
        position = Some(crate::ha::position_probe(ops.clone()));
        let ha = HaLoop::new(
            node.clone(),
            config.clone(),
            config_path,
            ops,
            snapshot_tx,
            requests_rx,
        )
        .with_fence(guard);
        let done = ha_done.clone();
        let stop = stop_rx.clone();
        ha_task = Some(tokio::spawn(async move {
            ha.run(stop).await;
            done.notify_one();
        }));
        tokio::spawn(reload_on_hangup(hangups, Some(requests_tx.clone())));
        operator = Some(requests_tx);
    } else {
        tokio::spawn(reload_on_hangup(hangups, None));
        ha_done.notify_one();
    }

    // The Raft/admin server stays up until the HA loop has finished its shutdown (stopped
    // PostgreSQL, published its final WAL position, released the lease): in a whole-cluster
    // stop the other agents' Raft must still answer those writes.
    let mut stop = stop_rx.clone();
    let done = ha_done.clone();
    let until = async move {
        let _ = stop.wait_for(|s| *s).await;
        done.notified().await;
    };
    serve(node.clone(), &transport, operator, position, listener, until).await?;
    if let Some(task) = ha_task {
        let _ = task.await;
    }
    node.shutdown().await;
    tracing::info!("agent stopped");
    Ok(())
}

pub async fn bind(key: &'static str, addr: &str) -> Result<TcpListener, AgentError> {
    let socket = tokio::net::lookup_host(addr)
        .await
        .map_err(|source| AgentError::Resolve {
            key,
            addr: addr.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| AgentError::Resolve {
            key,
            addr: addr.to_string(),
            source: std::io::Error::other("no address"),
        })?;
    TcpListener::bind(socket)
        .await
        .map_err(|source| AgentError::Bind {
            key,
            addr: addr.to_string(),
            socket,
            source,
        })
}

/// Serve the Raft and admin services on one port (one port per agent to open in a firewall),
/// both behind the transport's checks (mutual TLS, cluster identity, password proof).
pub async fn serve(
    node: Arc<RaftNode>,
    transport: &crate::grpc::Transport,
    operator: Option<mpsc::Sender<OperatorRequest>>,
    position: Option<crate::ha::PositionProbe>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let raft = RaftServiceServer::new(RaftGrpc::new(node.raft.clone(), &node.settings.cluster))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let admin = AdminServer::new(AdminGrpc::new(node.clone(), operator, position));
    let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
    if let Some(tls) = transport.server_tls() {
        builder = builder.tls_config(tls)?;
    }
    builder
        .add_service(InterceptedService::new(raft, transport.gate()))
        .add_service(InterceptedService::new(admin, transport.gate()))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}

fn hangup_signals() -> tokio::signal::unix::Signal {
    use tokio::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup()).expect("install SIGHUP handler")
}

/// SIGHUP = reload, as for Patroni (`systemctl reload`, `kill -HUP`): the same request as
/// `POST /reload` and `pgquorumctl reload`, carried out by the HA loop between cycles.
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    operator: Option<mpsc::Sender<OperatorRequest>>,
) {
    while hangups.recv().await.is_some() {
        let Some(operator) = &operator else {
            tracing::info!("SIGHUP received: this node manages no PostgreSQL; nothing to reload");
            continue;
        };
        tracing::info!("SIGHUP received: reloading the configuration");
        let (reply, answer) = tokio::sync::oneshot::channel();
        if operator.send(OperatorRequest::Reload { reply }).await.is_err() {
            return; // the HA loop has stopped: the agent is shutting down
        }
        match answer.await {
            Ok(Ok(outcome)) => tracing::info!("reload after SIGHUP: {outcome}"),
            Ok(Err(e)) => tracing::error!("reload after SIGHUP failed: {e}"),
            Err(_) => return,
        }
    }
}

/// Completes on SIGINT or SIGTERM. The handlers are installed when this is called (not when
/// the future is first polled), so a signal that arrives early is not lost to the default
/// action, which would kill the agent without stopping PostgreSQL.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    async move {
        tokio::select! {
            _ = int.recv() => tracing::info!("SIGINT received: stopping"),
            _ = term.recv() => tracing::info!("SIGTERM received: stopping"),
        }
    }
}
