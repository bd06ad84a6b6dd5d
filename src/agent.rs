//! The agent process: binds its ports, starts the Raft node, and — when the config names a
//! PostgreSQL data directory — the HA loop and the REST API; then serves until told to stop.

pub mod name_check;

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
use crate::node::config_write::ConfigWrites;
use crate::node::{NodeSettings, RaftNode, StartError};
use crate::postgres::{PgError, Postgres, PostgresSettings};
use crate::rest::{RestSecurity, RestSecurityError, RestState, SharedSecurity};

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
    #[error(transparent)]
    RestSecurity(#[from] RestSecurityError),
    #[error("cannot start the fence guard: {0}")]
    Fence(std::io::Error),
    #[error("gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error(transparent)]
    Transport(#[from] crate::grpc::transport::TransportError),
    #[error(transparent)]
    NameInUse(#[from] name_check::NameInUse),
    #[error("the HA loop died ({0}); the agent stops so that the fence guard takes PostgreSQL down")]
    HaLoopDied(String),
}

/// How the HA loop's task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEnd {
    /// It returned: the agent is shutting down and PostgreSQL has been dealt with.
    Finished,
    /// It panicked (or was cancelled): nothing manages PostgreSQL or the lease any more.
    Died(String),
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
    // Bind and check everything before touching storage: a port conflict or a bad
    // PostgreSQL setting is reported without side effects.
    let ports = VoterPorts::bind(&config).await?;
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
    let rest_security = match rest_listener {
        Some(_) => Some(SharedSecurity::new(
            RestSecurity::from_config(&config.restapi).await?,
            config_path.clone(),
        )),
        None => None,
    };
    let node = RaftNode::start(settings).await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let mut operator = None;
    let mut position = None;
    let (ha_end_tx, ha_end) = watch::channel(None);
    if let Some(pg) = postgres {
        tracing::info!(data_dir = %pg.data_dir().display(), "managing PostgreSQL");
        let (snapshot_tx, snapshot_rx) =
            watch::channel(Arc::new(NodeSnapshot::starting(&config.scope, &config.name)));
        let (requests_tx, requests_rx) = mpsc::channel(16);
        if let Some((listener, security)) = rest_listener.zip(rest_security.clone()) {
            let state = RestState {
                snapshot: snapshot_rx,
                requests: requests_tx.clone(),
                security,
                config_writes: Some(ConfigWrites::new(node.clone(), Some(config.raft.clone()))),
                version: env!("CARGO_PKG_VERSION"),
                node: Some(node.clone()),
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
        let stop = stop_rx.clone();
        let task = tokio::spawn(async move { ha.run(stop).await });
        tokio::spawn(watch_ha(task, ha_end_tx));
        tokio::spawn(reload_on_hangup(
            hangups,
            Some(requests_tx.clone()),
            rest_security,
        ));
        operator = Some(requests_tx);
    } else {
        tokio::spawn(reload_on_hangup(hangups, None, None));
        let _ = ha_end_tx.send(Some(TaskEnd::Finished));
    }

    let until = serve_until(stop_rx.clone(), ha_end.clone());
    let admin = AdminGrpc::new(node.clone(), operator, position).with_raft_config(config.raft.clone());
    ports.serve(node.clone(), admin, until).await?;
    if let Some(TaskEnd::Died(why)) = ha_end.borrow().clone() {
        // No orderly shutdown: the process exits, which closes the fence guard's pipe.
        return Err(AgentError::HaLoopDied(why));
    }
    node.shutdown().await;
    tracing::info!("agent stopped");
    Ok(())
}

/// Wait for the HA loop's task and publish how it ended. A panic leaves nothing to renew or
/// give up the lease and to stop PostgreSQL on shutdown, so it is an ERROR that ends the
/// agent (see `serve_until`).
async fn watch_ha(task: tokio::task::JoinHandle<()>, ended: watch::Sender<Option<TaskEnd>>) {
    let end = match task.await {
        Ok(()) => TaskEnd::Finished,
        Err(e) if e.is_panic() => TaskEnd::Died(format!("panicked: {}", panic_text(e.into_panic()))),
        Err(_) => TaskEnd::Died("cancelled".to_string()),
    };
    if let TaskEnd::Died(why) = &end {
        tracing::error!("the HA loop {why}: stopping the agent; the fence guard takes PostgreSQL down");
    }
    let _ = ended.send(Some(end));
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "no message".to_string(), |s| s.to_string()),
    }
}

/// Completes when the Raft/admin server should stop. After a stop request it stays up until
/// the HA loop has finished its shutdown (stopped PostgreSQL, published its final WAL
/// position, released the lease): in a whole-cluster stop the other agents' Raft must still
/// answer those writes. If the HA loop dies it completes at once: an agent that cannot manage
/// PostgreSQL must exit rather than keep serving.
async fn serve_until(mut stop: watch::Receiver<bool>, ha_end: watch::Receiver<Option<TaskEnd>>) {
    let mut finished = ha_end.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
        let _ = finished.wait_for(Option::is_some).await;
    };
    let mut end = ha_end;
    let died = async move {
        if end
            .wait_for(|e| matches!(e, Some(TaskEnd::Died(_))))
            .await
            .is_err()
        {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = stopped => {}
        _ = died => {}
    }
}

/// The start-up every Raft voter shares, the agent and the witness (`pgquorum-controller`):
/// the gRPC transport built from `raft` and installed for every channel this process opens,
/// the Raft port (and `raft.admin_listen`) bound, and the check that no live agent at another
/// address uses this `name`. All before Raft storage is opened, so a port conflict or a
/// duplicate name is reported without side effects.
pub struct VoterPorts {
    pub transport: crate::grpc::Transport,
    pub listener: TcpListener,
    pub admin_listener: Option<TcpListener>,
}

impl VoterPorts {
    pub async fn bind(config: &Config) -> Result<VoterPorts, AgentError> {
        let transport = crate::grpc::Transport::from_config(config)?;
        crate::grpc::transport::install(transport.clone());
        let listener = bind("raft.self_addr", &config.raft.self_addr).await?;
        let admin_listener = match &config.raft.admin_listen {
            Some(addr) => Some(bind("raft.admin_listen", addr).await?),
            None => None,
        };
        name_check::check(config).await?;
        Ok(VoterPorts {
            transport,
            listener,
            admin_listener,
        })
    }

    /// Serve `node`'s Raft and admin services on the bound ports until `shutdown` completes.
    pub async fn serve(
        self,
        node: Arc<RaftNode>,
        admin: AdminGrpc,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AgentError> {
        serve(
            node,
            &self.transport,
            admin,
            self.listener,
            self.admin_listener,
            shutdown,
        )
        .await
    }
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
/// both behind the transport's checks (mutual TLS, cluster identity, password proof,
/// permissions). With `admin_listener` (`raft.admin_listen`) the admin service for operators
/// is served there, and the peer port's admin service admits agents only.
pub async fn serve(
    node: Arc<RaftNode>,
    transport: &crate::grpc::Transport,
    admin: AdminGrpc,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    use crate::grpc::transport::Service;
    use futures::FutureExt;
    let raft = RaftServiceServer::new(RaftGrpc::new(node.raft.clone(), &node.settings.cluster))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let admin_server = |admin: AdminGrpc| {
        AdminServer::new(admin)
            .max_decoding_message_size(crate::grpc::admin_service::MAX_ADMIN_REQUEST_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    };
    let builder = || -> Result<tonic::transport::Server, AgentError> {
        let builder = tonic::transport::Server::builder().tcp_nodelay(true);
        Ok(match transport.server_tls() {
            Some(tls) => builder.tls_config(tls)?,
            None => builder,
        })
    };
    let shutdown = shutdown.shared();
    let peer_admin = if admin_listener.is_some() {
        Service::AdminForAgents
    } else {
        Service::Admin
    };
    let peer = builder()?
        .add_service(InterceptedService::new(raft, transport.gate(Service::Raft)))
        .add_service(InterceptedService::new(
            admin_server(admin.clone()),
            transport.gate(peer_admin),
        ))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown.clone());
    let Some(admin_listener) = admin_listener else {
        peer.await?;
        return Ok(());
    };
    let operators = builder()?
        .add_service(InterceptedService::new(
            admin_server(admin),
            transport.gate(Service::Admin),
        ))
        .serve_with_incoming_shutdown(TcpListenerStream::new(admin_listener), shutdown);
    let (peer, operators) = tokio::join!(peer, operators);
    peer?;
    operators?;
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
    rest: Option<SharedSecurity>,
) {
    while hangups.recv().await.is_some() {
        if let Some(rest) = &rest {
            // Certificates, allowlist and credentials of the REST API (the loop does the rest).
            if let Err(e) = rest.reload().await {
                tracing::error!("REST API settings not reloaded after SIGHUP (the previous ones stay): {e}");
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Start the supervision of `body` as `run` does; return the server's stop condition.
    fn supervised(
        body: impl Future<Output = ()> + Send + 'static,
    ) -> (
        watch::Sender<bool>,
        watch::Receiver<Option<TaskEnd>>,
        impl Future<Output = ()>,
    ) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (end_tx, end_rx) = watch::channel(None);
        tokio::spawn(watch_ha(tokio::spawn(body), end_tx));
        let until = serve_until(stop_rx, end_rx.clone());
        (stop_tx, end_rx, until)
    }

    #[tokio::test]
    async fn a_panicking_ha_loop_ends_the_agent_with_its_message() {
        let (_stop, end, until) = supervised(async { panic!("boom in the HA loop") });
        tokio::time::timeout(Duration::from_secs(5), until)
            .await
            .expect("the server must stop when the HA loop dies, without a stop request");
        let end = end.borrow().clone();
        assert_eq!(
            end,
            Some(TaskEnd::Died("panicked: boom in the HA loop".to_string()))
        );
        let err = AgentError::HaLoopDied("panicked: boom".into()).to_string();
        assert!(err.contains("fence guard"), "{err}");
    }

    #[tokio::test]
    async fn a_healthy_ha_loop_keeps_the_server_up_until_it_has_shut_down() {
        let (ha_stop_tx, mut ha_stop) = watch::channel(false);
        let (stop, end, until) = supervised(async move {
            let _ = ha_stop.wait_for(|s| *s).await;
        });
        tokio::pin!(until);
        let early = tokio::time::timeout(Duration::from_millis(200), &mut until).await;
        assert!(early.is_err(), "stopped without a stop request");
        // A stop request: the server waits for the HA loop to finish its own shutdown.
        stop.send_replace(true);
        let early = tokio::time::timeout(Duration::from_millis(200), &mut until).await;
        assert!(early.is_err(), "stopped before the HA loop finished");
        ha_stop_tx.send_replace(true);
        tokio::time::timeout(Duration::from_secs(5), until)
            .await
            .expect("the server stops once the HA loop finished");
        assert_eq!(*end.borrow(), Some(TaskEnd::Finished));
    }
}
