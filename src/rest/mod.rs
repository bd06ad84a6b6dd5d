//! The REST API, compatible with Patroni's: same paths, status codes and JSON field names, so
//! HAProxy health checks, Kubernetes probes, Prometheus scrapes and existing scripts keep
//! working when Patroni is replaced. `docs/rest-api.md` lists every endpoint and where we differ.
//!
//! Everything read-only is answered from the last [`NodeSnapshot`] the HA loop published; the
//! mutating calls (`POST /reload`, `/restart`, `/reinitialize`, and the `failover` key writes of
//! `POST /switchover`, `POST /failover`, `DELETE /switchover`) are handed to the loop as
//! [`OperatorRequest`]s, which it answers between cycles; `PATCH`/`PUT /config` go through the
//! admin service's `config` write path (`node::config_write`).

mod access;
mod auth;
mod cluster_json;
mod config_edit;
mod epoch;
mod health;
mod keyfile;
mod listen;
pub mod metrics;
mod operator;
mod probes;
mod query;
mod restart_conditions;
mod routes;
mod security;
mod status_json;
mod switchover;
mod wal;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use crate::ha::{NodeSnapshot, OperatorRequest};

pub use listen::Peer;
pub use security::{Network, RestSecurity, RestSecurityError, SharedSecurity, VerifyClient};

/// What the REST API answers from and talks to.
#[derive(Clone)]
pub struct RestState {
    /// The HA loop's latest snapshot.
    pub snapshot: watch::Receiver<Arc<NodeSnapshot>>,
    /// Where operator requests go (the HA loop).
    pub requests: mpsc::Sender<OperatorRequest>,
    /// TLS, allowlist, `restapi.authentication` and extra headers; re-read on reload.
    pub security: SharedSecurity,
    /// The path `config` writes take (the admin service's); `None` where there is no Raft
    /// node (unit tests): `PATCH`/`PUT /config` answer 503.
    pub config_writes: Option<crate::node::config_write::ConfigWrites>,
    /// The agent version reported as `patroni.version` and `patroni_version`.
    pub version: &'static str,
    /// The Raft node, for its gauges in `/metrics` and a lost quorum in `/patroni`; `None`
    /// in unit tests.
    pub node: Option<Arc<crate::node::RaftNode>>,
}

/// The axum router with every endpoint.
pub fn router(state: RestState) -> axum::Router {
    routes::router(Arc::new(state))
}

/// Serve the REST API on `listener` (TLS when `state.security` says so) until `shutdown`
/// completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: RestState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listen::RestListener::new(listener, state.security.clone())?;
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<Peer>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
