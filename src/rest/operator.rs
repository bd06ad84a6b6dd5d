//! `POST /reload`, `POST /restart` and `POST /reinitialize`: hand the request to the HA loop,
//! which carries it out between cycles, and wait (bounded) for its answer.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::restart_conditions::{BodyProblem, RestartConditions};
use super::RestState;
use crate::ha::OperatorRequest;

/// A reload only re-reads the configuration file; the loop picks requests up between cycles,
/// so allow a few cycles.
const RELOAD_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What the loop's restart may take on top of waiting for the loop: PostgreSQL's default
/// `pg_ctl_timeout`.
const RESTART_DURATION_ALLOWANCE: Duration = Duration::from_secs(60);

/// Patroni answers 202 "reload scheduled"; we wait for the loop and pass its message on.
pub async fn reload(state: &RestState) -> Response {
    match ask_loop(
        state,
        |reply| OperatorRequest::Reload { reply },
        RELOAD_REPLY_TIMEOUT,
    )
    .await
    {
        Ok(message) => {
            let message = if message.is_empty() {
                "reload scheduled".to_string()
            } else {
                message
            };
            // The REST API's own settings (certificates, allowlist, credentials) come next.
            match state.security.reload().await {
                Ok(()) => (StatusCode::ACCEPTED, message).into_response(),
                Err(e) => {
                    tracing::error!("REST API settings not reloaded (the previous ones stay): {e}");
                    let why = format!("{message}; the REST API settings were not reloaded: {e}");
                    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
                }
            }
        }
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error).into_response(),
    }
}

/// Patroni's codes: 200 restarted, 503 failed or conditions unmet, 400 bad body.
pub async fn restart(state: &RestState, body: &[u8]) -> Response {
    let conditions = match RestartConditions::parse(body) {
        Ok(conditions) => conditions,
        Err(BodyProblem::Invalid(message)) => return (StatusCode::BAD_REQUEST, message).into_response(),
        Err(BodyProblem::Unsupported(message)) => {
            return (StatusCode::NOT_IMPLEMENTED, message).into_response()
        }
    };
    let (unmet, loop_wait) = {
        let snapshot = state.snapshot.borrow();
        (
            conditions.unmet_by(&snapshot.me),
            Duration::from_secs_f64(snapshot.loop_wait_secs),
        )
    };
    if let Some(reason) = unmet {
        tracing::info!(
            reason,
            "restart requested over REST API, conditions not satisfied"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "restart conditions are not satisfied",
        )
            .into_response();
    }
    let timeout = loop_wait + RESTART_DURATION_ALLOWANCE;
    match ask_loop(state, |reply| OperatorRequest::Restart { reply }, timeout).await {
        Ok(message) if message.is_empty() => (StatusCode::OK, "restarted successfully").into_response(),
        Ok(message) => (StatusCode::OK, message).into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error).into_response(),
    }
}

/// What stopping PostgreSQL and starting the clone may take on top of waiting for the loop.
const REINIT_START_ALLOWANCE: Duration = Duration::from_secs(60);

/// Patroni's codes: 200 `reinitialize started`, 503 with the reason otherwise. The optional
/// body `{"force": bool, "from_leader": bool}` is checked for shape and otherwise accepted for
/// compatibility: requests reach the loop one at a time, so there is never a running task for
/// `force` to cancel, and the clone always comes from the primary.
pub async fn reinitialize(state: &RestState, body: &[u8]) -> Response {
    if let Err(message) = reinit_body(body) {
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let (is_leader, loop_wait) = {
        let snapshot = state.snapshot.borrow();
        let leader = snapshot.cluster.as_ref().and_then(|c| c.leader_name()) == Some(snapshot.name.as_str());
        (
            snapshot.holds_lease || leader,
            Duration::from_secs_f64(snapshot.loop_wait_secs),
        )
    };
    if is_leader {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "I am the leader, can not reinitialize",
        )
            .into_response();
    }
    let timeout = loop_wait + REINIT_START_ALLOWANCE;
    match ask_loop(state, |reply| OperatorRequest::Reinit { reply }, timeout).await {
        Ok(message) if message.is_empty() => (StatusCode::OK, "reinitialize started").into_response(),
        Ok(message) => (StatusCode::OK, message).into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error).into_response(),
    }
}

/// An empty body, or a JSON object whose `force` / `from_leader` are booleans if present.
fn reinit_body(body: &[u8]) -> Result<(), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "the body must be a JSON object".to_string())?;
    for key in ["force", "from_leader"] {
        if let Some(v) = object.get(key) {
            if !v.is_boolean() && !v.is_null() {
                return Err(format!("{key} must be true or false"));
            }
        }
    }
    Ok(())
}

/// Send a request and wait for the reply; every way of not getting one becomes an error text.
pub(super) async fn ask_loop<T>(
    state: &RestState,
    request: impl FnOnce(oneshot::Sender<Result<T, String>>) -> OperatorRequest,
    timeout: Duration,
) -> Result<T, String> {
    let (reply, answer) = oneshot::channel();
    let exchange = async {
        state
            .requests
            .send(request(reply))
            .await
            .map_err(|_| "the HA loop is not running".to_string())?;
        answer
            .await
            .map_err(|_| "the HA loop dropped the request".to_string())?
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "no answer from the HA loop within {} s",
            timeout.as_secs()
        )),
    }
}
