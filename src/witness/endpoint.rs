//! The witness's optional HTTP endpoint (`restapi.listen`): `GET /health` and `/liveness`
//! (200 while the process serves), `GET /metrics` (the Raft gauges the agents also export).
//! Plain HTTP, no operations: nothing here changes the cluster.

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::node::RaftNode;

pub fn router(node: Arc<RaftNode>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/liveness", get(health))
        .route("/metrics", get(metrics))
        .with_state(node)
}

async fn health(State(node): State<Arc<RaftNode>>) -> Response {
    let status = node.node_status().await;
    let body = serde_json::json!({
        "state": "running",
        "role": "witness",
        "raft_role": status.role,
        "raft_term": status.term,
        "raft_leader_id": status.has_leader.then_some(status.leader_id),
        "raft_quorum": node.quorum_loss().borrow().as_ref().map(|l| l.to_string()),
        "scope": node.settings.cluster,
        "name": node.settings.name,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn metrics(State(node): State<Arc<RaftNode>>) -> Response {
    let text = crate::rest::metrics::raft_gauges(&node.settings.cluster, &node.settings.name, &node);
    (
        StatusCode::OK,
        [(CONTENT_TYPE, crate::rest::metrics::CONTENT_TYPE)],
        text,
    )
        .into_response()
}

pub async fn serve(
    listener: TcpListener,
    node: Arc<RaftNode>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(node))
        .with_graceful_shutdown(shutdown)
        .await
}
