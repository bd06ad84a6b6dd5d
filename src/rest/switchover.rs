//! `POST /switchover`, `POST /failover` and `DELETE /switchover`: checked against the last
//! cluster view with the rules `pgquorumctl` uses (`crate::ha::switchover`), recorded in the
//! `failover` key through the HA loop (the REST API has no Raft handle), then, for an
//! immediate request, followed through the loop's snapshots until another member holds the
//! leader lease. Status codes and texts are Patroni's.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::time::Instant;

use super::operator::ask_loop;
use super::RestState;
use crate::cluster::{ClusterView, FailoverRequest};
use crate::ha::switchover::{describe, validate_failover, validate_switchover, Operation, SwitchoverError};
use crate::ha::OperatorRequest;
use crate::keyspace::{Command, CommandOutcome, Key, Precondition};

/// The loop picks operator requests up between cycles.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an immediate switchover or failover is followed before answering "status unknown".
const HANDOVER_WAIT: Duration = Duration::from_secs(30);

fn text(status: u16, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, message.into()).into_response()
}

fn title(operation: Operation) -> &'static str {
    match operation {
        Operation::Switchover => "Switchover",
        Operation::Failover => "Failover",
    }
}

/// The request body: Patroni's fields, `member` accepted for `candidate`.
#[derive(Debug, Default, PartialEq)]
struct Body {
    leader: Option<String>,
    candidate: Option<String>,
    scheduled_at: Option<String>,
    /// pgquorum's: a failover to a member that is not a synchronous standby (synchronous mode).
    force: bool,
}

fn parse_body(body: &[u8]) -> Result<Body, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body must be a JSON object: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "the body must be a JSON object".to_string())?;
    let field = |name: &str| match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(format!("{name} must be a string")),
    };
    let candidate = field("candidate")?;
    let member = field("member")?;
    Ok(Body {
        leader: field("leader")?,
        candidate: candidate.or(member),
        scheduled_at: field("scheduled_at")?,
        force: match object.get("force") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err("force must be true or false".to_string()),
        },
    })
}

/// The view to check a request against, or 503 when this member cannot read the keyspace
/// (its view may be stale, and the write would not get through anyway).
fn current_view(state: &RestState) -> Result<ClusterView, Response> {
    let snapshot = state.snapshot.borrow();
    match &snapshot.cluster {
        Some(view) if snapshot.keyspace_reachable => Ok(view.clone()),
        _ => Err(text(
            503,
            "the keyspace is not reachable from this member: ask another one",
        )),
    }
}

/// Check a request for `/switchover` or `/failover`. A failover that names a leader is a
/// switchover, as in Patroni; one without a candidate is refused first.
fn check(
    view: &ClusterView,
    path: Operation,
    body: &Body,
) -> Result<(Operation, FailoverRequest), SwitchoverError> {
    let now = crate::timefmt::now_ms().max(view.as_of_ms);
    let switchover = |view| {
        validate_switchover(
            view,
            body.leader.as_deref(),
            body.candidate.as_deref(),
            body.scheduled_at.as_deref(),
            now,
        )
    };
    match path {
        Operation::Switchover => Ok((Operation::Switchover, switchover(view)?)),
        Operation::Failover if body.candidate.is_none() => Err(SwitchoverError::NoCandidateGiven),
        Operation::Failover if body.leader.is_some() => {
            tracing::warn!("received failover request with leader specified - performing switchover instead");
            Ok((Operation::Switchover, switchover(view)?))
        }
        Operation::Failover
            if body
                .scheduled_at
                .as_deref()
                .is_some_and(|s| !s.eq_ignore_ascii_case("now")) =>
        {
            Err(SwitchoverError::FailoverScheduled)
        }
        Operation::Failover => Ok((
            Operation::Failover,
            validate_failover(view, body.candidate.as_deref(), body.force)?,
        )),
    }
}

/// `POST /switchover` (`path` Switchover) and `POST /failover`.
pub async fn request(state: &RestState, body: &[u8], path: Operation) -> Response {
    let body = match parse_body(body) {
        Ok(body) => body,
        Err(message) => return text(400, message),
    };
    tracing::info!(
        "received {path} request with leader={:?} candidate={:?} scheduled_at={:?}",
        body.leader,
        body.candidate,
        body.scheduled_at
    );
    let view = match current_view(state) {
        Ok(view) => view,
        Err(response) => return response,
    };
    let (operation, request) = match check(&view, path, &body) {
        Ok(checked) => checked,
        Err(e) => return text(e.http_status(), e.to_string()),
    };
    let value = match serde_json::to_value(&request) {
        Ok(value) => value,
        Err(e) => return text(500, e.to_string()),
    };
    let command = Command::Put {
        key: Key::Failover,
        value,
        ttl_ms: None,
        precondition: Precondition::Absent,
    };
    let revision = match write(state, command).await {
        Ok(CommandOutcome::Applied { revision }) => revision,
        Ok(CommandOutcome::Rejected { current, .. }) => {
            let pending = current
                .and_then(|e| serde_json::from_value::<FailoverRequest>(e.value).ok())
                .map_or_else(|| "switchover or failover".to_string(), |r| describe(&r));
            let e = SwitchoverError::AlreadyPending { pending };
            return text(e.http_status(), e.to_string());
        }
        Err(e) => return text(503, format!("failed to write failover key into DCS: {e}")),
    };
    if request.scheduled_at.is_some() {
        return text(202, format!("{} scheduled", title(operation)));
    }
    let (status, message) = follow(
        state,
        operation,
        view.leader_name(),
        request.member.as_deref(),
        revision,
    )
    .await;
    text(status, message)
}

/// `DELETE /switchover`: 200 `scheduled switchover deleted`, 404 `no switchover is scheduled`,
/// 409 when the key changed between the read and the delete.
pub async fn cancel(state: &RestState) -> Response {
    let view = match current_view(state) {
        Ok(view) => view,
        Err(response) => return response,
    };
    let revision = match (&view.failover, view.failover_revision) {
        (Some(request), Some(revision)) if request.scheduled_at.is_some() => revision,
        _ => return text(404, "no switchover is scheduled"),
    };
    let command = Command::Delete {
        key: Key::Failover,
        precondition: Precondition::Revision(revision),
    };
    match write(state, command).await {
        Ok(CommandOutcome::Applied { .. }) => text(200, "scheduled switchover deleted"),
        Ok(CommandOutcome::Rejected { .. }) => text(
            409,
            "the failover key changed meanwhile (carried out or replaced); nothing deleted",
        ),
        Err(e) => text(503, format!("failed to delete the failover key: {e}")),
    }
}

async fn write(state: &RestState, command: Command) -> Result<CommandOutcome, String> {
    ask_loop(
        state,
        |reply| OperatorRequest::KeyspaceWrite { command, reply },
        WRITE_TIMEOUT,
    )
    .await
}

/// What one view says about a request written at `revision`. `seen`: the request was in an
/// earlier view (a view without it proves nothing until then: it may predate the write).
fn outcome(
    view: &ClusterView,
    operation: Operation,
    old: Option<&str>,
    candidate: Option<&str>,
    revision: u64,
    seen: &mut bool,
) -> Option<(u16, String)> {
    if let Some(holder) = view.leader_name().filter(|h| Some(*h) != old) {
        let verb = match operation {
            Operation::Switchover => "switched",
            Operation::Failover => "failed",
        };
        return Some(match candidate {
            Some(c) if c != holder => {
                let title = title(operation);
                let stem = &title[..title.len() - 4];
                (200, format!("{stem}ed over to \"{holder}\" instead of \"{c}\""))
            }
            _ => (200, format!("Successfully {verb} over to \"{holder}\"")),
        });
    }
    if view.failover_revision == Some(revision) {
        *seen = true;
        return None;
    }
    // Removed (or replaced) while the old leader still holds the lease: the loop gave up.
    (*seen).then(|| (503, format!("{} failed", title(operation))))
}

async fn follow(
    state: &RestState,
    operation: Operation,
    old: Option<&str>,
    candidate: Option<&str>,
    revision: u64,
) -> (u16, String) {
    let mut snapshots = state.snapshot.clone();
    let deadline = Instant::now() + HANDOVER_WAIT;
    let mut seen = false;
    loop {
        {
            let snapshot = snapshots.borrow_and_update();
            if let Some(view) = &snapshot.cluster {
                if let Some(answer) = outcome(view, operation, old, candidate, revision, &mut seen) {
                    return answer;
                }
            }
        }
        match tokio::time::timeout_at(deadline, snapshots.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return (503, format!("{} status unknown", title(operation))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::LeaderLease;

    #[test]
    fn bodies() {
        let body = |s: &str| parse_body(s.as_bytes());
        assert_eq!(
            body(r#"{"leader": "node1", "candidate": "node2", "scheduled_at": "2030-01-01T00:00Z"}"#),
            Ok(Body {
                leader: Some("node1".into()),
                candidate: Some("node2".into()),
                scheduled_at: Some("2030-01-01T00:00Z".into()),
                force: false,
            })
        );
        assert_eq!(
            body(r#"{"candidate": "node3", "force": true}"#),
            Ok(Body {
                candidate: Some("node3".into()),
                force: true,
                ..Default::default()
            })
        );
        assert!(body(r#"{"candidate": "node3", "force": "yes"}"#).is_err());
        assert_eq!(
            body(r#"{"member": "node2", "leader": null, "scheduled_at": ""}"#),
            Ok(Body {
                candidate: Some("node2".into()),
                ..Default::default()
            })
        );
        assert_eq!(body("{}"), Ok(Body::default()));
        assert!(body("").is_err());
        assert!(body("[1]").is_err());
        assert_eq!(
            body(r#"{"leader": 1}"#),
            Err("leader must be a string".to_string())
        );
    }

    fn view(holder: Option<&str>, failover_revision: Option<u64>) -> ClusterView {
        ClusterView {
            leader: holder.map(|h| LeaderLease {
                holder: h.into(),
                revision: 1,
                expires_at_ms: u64::MAX,
            }),
            failover: failover_revision.map(|_| FailoverRequest::default()),
            failover_revision,
            ..Default::default()
        }
    }

    #[test]
    fn outcomes() {
        let sw = Operation::Switchover;
        let mut seen = false;
        // A view from before the write: nothing to conclude.
        assert_eq!(
            outcome(
                &view(Some("node1"), None),
                sw,
                Some("node1"),
                Some("node2"),
                40,
                &mut seen
            ),
            None
        );
        assert_eq!(
            outcome(
                &view(Some("node1"), Some(40)),
                sw,
                Some("node1"),
                Some("node2"),
                40,
                &mut seen
            ),
            None
        );
        assert!(seen);
        assert_eq!(
            outcome(
                &view(None, Some(40)),
                sw,
                Some("node1"),
                Some("node2"),
                40,
                &mut seen
            ),
            None
        );
        assert_eq!(
            outcome(
                &view(Some("node2"), None),
                sw,
                Some("node1"),
                Some("node2"),
                40,
                &mut seen
            ),
            Some((200, "Successfully switched over to \"node2\"".into()))
        );
        assert_eq!(
            outcome(
                &view(Some("node3"), None),
                sw,
                Some("node1"),
                Some("node2"),
                40,
                &mut seen
            ),
            Some((200, "Switched over to \"node3\" instead of \"node2\"".into()))
        );
        assert_eq!(
            outcome(&view(Some("node1"), None), sw, Some("node1"), None, 40, &mut seen),
            Some((503, "Switchover failed".into()))
        );
        let mut seen = false;
        assert_eq!(
            outcome(
                &view(Some("node2"), None),
                Operation::Failover,
                None,
                Some("node2"),
                7,
                &mut seen
            ),
            Some((200, "Successfully failed over to \"node2\"".into()))
        );
        assert_eq!(
            outcome(
                &view(Some("node3"), None),
                Operation::Failover,
                None,
                Some("node2"),
                7,
                &mut seen
            ),
            Some((200, "Failed over to \"node3\" instead of \"node2\"".into()))
        );
    }
}
