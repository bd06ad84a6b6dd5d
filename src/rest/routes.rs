//! Which path and method runs what. Read-only endpoints answer GET with a body and HEAD and
//! OPTIONS with the same status and no body (HAProxy's `option httpchk OPTIONS /primary`);
//! other methods on a known path get Patroni's 501; unknown paths 404.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};

use super::access::{self, Caller};
use super::cluster_json::{cluster_json, history_json};
use super::config_edit::{self, EditKind};
use super::health::HealthCheck;
use super::query::QueryParams;
use super::wal::cluster_wal_position;
use super::{metrics, operator, probes, status_json, switchover as handover, RestState};
use crate::ha::switchover::Operation;
use crate::ha::NodeSnapshot;

type Shared = Arc<RestState>;

pub fn router(state: Shared) -> Router {
    let mut router = Router::new();
    for (path, _) in HealthCheck::PATHS {
        router = router.route(path, any(health_check));
    }
    router
        .route("/patroni", any(patroni_status))
        .route("/liveness", any(liveness))
        .route("/readiness", any(readiness))
        .route("/cluster", any(cluster))
        .route("/history", any(history))
        .route("/config", any(config))
        .route("/metrics", any(metrics))
        .route("/reload", any(reload))
        .route("/restart", any(restart))
        .route("/switchover", any(switchover))
        .route("/failover", any(failover))
        .route("/reinitialize", any(reinitialize))
        .route("/reinit", any(reinitialize))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::extra_headers,
        ))
        .with_state(state)
}

/// How much of a read-only endpoint's answer the method asks for.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    StatusAndBody,
    StatusOnly,
}

impl Answer {
    fn for_method(method: &Method) -> Result<Answer, Response> {
        match *method {
            Method::GET => Ok(Answer::StatusAndBody),
            Method::HEAD | Method::OPTIONS => Ok(Answer::StatusOnly),
            _ => Err(unsupported_method(method)),
        }
    }

    fn respond(self, status: StatusCode, body: impl IntoResponse) -> Response {
        match self {
            Answer::StatusAndBody => (status, body).into_response(),
            Answer::StatusOnly => status.into_response(),
        }
    }
}

/// Patroni (Python's http.server) answers a method it has no handler for with 501.
fn unsupported_method(method: &Method) -> Response {
    (
        StatusCode::NOT_IMPLEMENTED,
        format!("Unsupported method ('{method}')"),
    )
        .into_response()
}

fn snapshot(state: &RestState) -> Arc<NodeSnapshot> {
    state.snapshot.borrow().clone()
}

fn status_code(ok: bool) -> StatusCode {
    if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Health checks answer with the member status document whatever the verdict, as Patroni does.
async fn health_check(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Response {
    let answer = match Answer::for_method(&method) {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    let Some(check) = HealthCheck::for_path(uri.path()) else {
        return not_found().await;
    };
    let snapshot = snapshot(&state);
    let passes = check.passes(&snapshot, &QueryParams::parse(raw.as_deref()));
    answer.respond(status_code(passes), Json(member_status(&state, &snapshot)))
}

/// `/patroni` and the health checks' body: Patroni's document, plus `raft_quorum` while a
/// majority of the Raft voters cannot be reached.
fn member_status(state: &RestState, snapshot: &NodeSnapshot) -> status_json::MemberStatusJson {
    let mut status = status_json::member_status(snapshot, state.version);
    status.raft_quorum = state.node.as_ref().and_then(|n| n.quorum_loss().borrow().clone());
    status
}

/// Always 200: other members (and monitoring) read it whatever this node's state.
async fn patroni_status(State(state): State<Shared>, method: Method) -> Response {
    match Answer::for_method(&method) {
        Ok(answer) => {
            let body = Json(member_status(&state, &snapshot(&state)));
            answer.respond(StatusCode::OK, body)
        }
        Err(response) => response,
    }
}

/// Probes answer with a status only, even to GET (Patroni's `_write_status_code_only`).
async fn liveness(State(state): State<Shared>, method: Method) -> Response {
    match Answer::for_method(&method) {
        Ok(_) => status_code(probes::is_alive(&snapshot(&state), std::time::Instant::now())).into_response(),
        Err(response) => response,
    }
}

async fn readiness(State(state): State<Shared>, method: Method, RawQuery(raw): RawQuery) -> Response {
    match Answer::for_method(&method) {
        Ok(_) => {
            let ready = probes::is_ready(&snapshot(&state), &QueryParams::parse(raw.as_deref()));
            status_code(ready).into_response()
        }
        Err(response) => response,
    }
}

/// Without any cluster view there is nothing to show; 503 tells callers to ask another member.
const NO_CLUSTER_VIEW: (StatusCode, &str) = (
    StatusCode::SERVICE_UNAVAILABLE,
    "the cluster state has not been read yet",
);

async fn cluster(State(state): State<Shared>, method: Method) -> Response {
    let answer = match Answer::for_method(&method) {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    let snapshot = snapshot(&state);
    match &snapshot.cluster {
        Some(view) => {
            let body = cluster_json(view, &snapshot.scope, cluster_wal_position(&snapshot));
            answer.respond(StatusCode::OK, Json(body))
        }
        None => answer.respond(NO_CLUSTER_VIEW.0, NO_CLUSTER_VIEW.1),
    }
}

async fn history(State(state): State<Shared>, method: Method) -> Response {
    let answer = match Answer::for_method(&method) {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    match &snapshot(&state).cluster {
        Some(view) => answer.respond(StatusCode::OK, Json(history_json(&view.history))),
        None => answer.respond(NO_CLUSTER_VIEW.0, NO_CLUSTER_VIEW.1),
    }
}

/// `GET`: Patroni answers 502 while the dynamic configuration was never stored. `PATCH` and
/// `PUT` change it (src/rest/config_edit.rs).
async fn config(
    State(state): State<Shared>,
    method: Method,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let kind = match method {
        Method::PATCH => Some(EditKind::Patch),
        Method::PUT => Some(EditKind::Replace),
        _ => None,
    };
    if let Some(kind) = kind {
        if let Err(refusal) = access::authorize(&state, &caller, &headers).await {
            return refusal;
        }
        return config_edit::edit(&state, kind, &body).await;
    }
    let answer = match Answer::for_method(&method) {
        Ok(answer) => answer,
        Err(response) => return response,
    };
    match &snapshot(&state).cluster {
        Some(view) if view.config_revision.is_some() => answer.respond(StatusCode::OK, Json(&view.config)),
        _ => answer.respond(
            StatusCode::BAD_GATEWAY,
            "the dynamic configuration is not stored yet",
        ),
    }
}

async fn metrics(State(state): State<Shared>, method: Method) -> Response {
    match Answer::for_method(&method) {
        Ok(answer) => {
            let snapshot = snapshot(&state);
            let mut text = metrics::render(&snapshot, state.version);
            if let Some(node) = &state.node {
                text.push_str(&metrics::raft_gauges(&snapshot.scope, &snapshot.name, node));
            }
            answer.respond(StatusCode::OK, ([(CONTENT_TYPE, metrics::CONTENT_TYPE)], text))
        }
        Err(response) => response,
    }
}

async fn reload(State(state): State<Shared>, method: Method, caller: Caller, headers: HeaderMap) -> Response {
    if method != Method::POST {
        return unsupported_method(&method);
    }
    if let Err(refusal) = access::authorize(&state, &caller, &headers).await {
        return refusal;
    }
    operator::reload(&state).await
}

async fn restart(
    State(state): State<Shared>,
    method: Method,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return unsupported_method(&method);
    }
    if let Err(refusal) = access::authorize(&state, &caller, &headers).await {
        return refusal;
    }
    operator::restart(&state, &body).await
}

/// `POST` requests a switchover, `DELETE` cancels a scheduled one.
async fn switchover(
    State(state): State<Shared>,
    method: Method,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST && method != Method::DELETE {
        return unsupported_method(&method);
    }
    if let Err(refusal) = access::authorize(&state, &caller, &headers).await {
        return refusal;
    }
    if method == Method::DELETE {
        return handover::cancel(&state).await;
    }
    handover::request(&state, &body, Operation::Switchover).await
}

async fn failover(
    State(state): State<Shared>,
    method: Method,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return unsupported_method(&method);
    }
    if let Err(refusal) = access::authorize(&state, &caller, &headers).await {
        return refusal;
    }
    handover::request(&state, &body, Operation::Failover).await
}

/// Patroni's path is `/reinitialize`; `/reinit` is the same.
async fn reinitialize(
    State(state): State<Shared>,
    method: Method,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return unsupported_method(&method);
    }
    if let Err(refusal) = access::authorize(&state, &caller, &headers).await {
        return refusal;
    }
    operator::reinitialize(&state, &body).await
}

/// Includes the endpoints pgquorum does not implement (`/failsafe`, `/mpp`): better unknown
/// than pretending to work.
async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}
