//! `PATCH /config` and `PUT /config`: a merge patch onto, or a replacement of, the dynamic
//! configuration, written on the admin service's path ([`ConfigWrites`]): the same
//! server-side checks, compare-and-set on the revision read.
//!
//! Patroni's codes: 200 with the new configuration, 400 for a body that is not a JSON object,
//! 503 for `PATCH` while no configuration is stored, 409 when it changed concurrently. Ours
//! also: 400 for a configuration the checks refuse (the message says why), 503 when the
//! keyspace cannot be reached.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::RestState;
use crate::node::config_write::{ConfigEdit, ConfigWriteError};

/// Which edit the method asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditKind {
    Patch,
    Replace,
}

/// The body as an edit: it must be a JSON object (Patroni: 400 "Invalid request").
pub fn parse(kind: EditKind, body: &[u8]) -> Result<ConfigEdit, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("Invalid request: the body is not JSON: {e}"))?;
    if !value.is_object() {
        return Err("Invalid request: the body must be a JSON object".into());
    }
    Ok(match kind {
        EditKind::Patch => ConfigEdit::Patch(value),
        EditKind::Replace => ConfigEdit::Replace(value),
    })
}

pub async fn edit(state: &RestState, kind: EditKind, body: &[u8]) -> Response {
    let edit = match parse(kind, body) {
        Ok(edit) => edit,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    let Some(writes) = &state.config_writes else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "this agent has no keyspace handle for configuration writes",
        )
            .into_response();
    };
    match writes.edit(&edit).await {
        Ok(written) => {
            for warning in &written.warnings {
                tracing::warn!("configuration written over the REST API: {warning}");
            }
            if let Some(revision) = written.revision {
                tracing::info!(revision, "dynamic configuration changed over the REST API");
            }
            (StatusCode::OK, Json(written.config)).into_response()
        }
        Err(error) => (status_of(&error), error.to_string()).into_response(),
    }
}

fn status_of(error: &ConfigWriteError) -> StatusCode {
    match error {
        ConfigWriteError::Invalid(_) | ConfigWriteError::ResumeRefused(_) => StatusCode::BAD_REQUEST,
        ConfigWriteError::Changed => StatusCode::CONFLICT,
        ConfigWriteError::NotStored | ConfigWriteError::Keyspace(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_body_must_be_a_json_object() {
        assert_eq!(
            parse(EditKind::Patch, br#"{"ttl": 20}"#),
            Ok(ConfigEdit::Patch(json!({"ttl": 20})))
        );
        assert_eq!(
            parse(EditKind::Replace, br#"{"ttl": 20}"#),
            Ok(ConfigEdit::Replace(json!({"ttl": 20})))
        );
        for bad in [&b""[..], b"ttl=20", b"[1]", b"null", b"\"x\""] {
            assert!(parse(EditKind::Patch, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_map_to_patronis_codes() {
        let rows = [
            (ConfigWriteError::Invalid(vec!["x".into()]), 400),
            (ConfigWriteError::ResumeRefused("x".into()), 400),
            (ConfigWriteError::Changed, 409),
            (ConfigWriteError::NotStored, 503),
        ];
        for (error, code) in rows {
            assert_eq!(status_of(&error).as_u16(), code, "{error}");
        }
    }
}
