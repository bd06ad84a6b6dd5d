//! HTTP basic authentication for the mutating endpoints (`restapi.authentication`), answered
//! the way Patroni does: 401 with a `WWW-Authenticate` challenge.

use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::config::BasicAuth;

const CHALLENGE: &str = "Basic realm=\"pgquorum\"";

/// `Ok` when no authentication is configured or the request carries the configured
/// credentials; otherwise the 401 response to send.
pub fn authorize(expected: Option<&BasicAuth>, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let reason = match headers.get(AUTHORIZATION) {
        None => "no auth header received",
        Some(value) if credentials_match(expected, value.as_bytes()) => return Ok(()),
        Some(_) => "not authenticated",
    };
    Err(Box::new(
        (StatusCode::UNAUTHORIZED, [(WWW_AUTHENTICATE, CHALLENGE)], reason).into_response(),
    ))
}

fn credentials_match(expected: &BasicAuth, header: &[u8]) -> bool {
    let Some(encoded) = header.strip_prefix(b"Basic ") else {
        return false;
    };
    let Ok(given) = STANDARD.decode(encoded.trim_ascii()) else {
        return false;
    };
    let wanted = format!("{}:{}", expected.username, expected.password);
    constant_time_eq(&given, wanted.as_bytes())
}

/// Compare without returning early on the first different byte, so response timing does not
/// tell an attacker how much of a guess was right. (The length still shows; it is not secret
/// enough to matter for a password that must match in full anyway.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let longest = a.len().max(b.len());
    let mut difference = u8::from(a.len() != b.len());
    for i in 0..longest {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        difference |= x ^ y;
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_comparison_is_equality() {
        assert!(constant_time_eq(b"admin:secret", b"admin:secret"));
        assert!(!constant_time_eq(b"admin:secreT", b"admin:secret"));
        assert!(!constant_time_eq(b"admin:secret", b"admin:secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn header_must_be_basic_with_matching_credentials() {
        let auth = BasicAuth {
            username: "admin".into(),
            password: "s3cret".into(),
        };
        let good = format!("Basic {}", STANDARD.encode("admin:s3cret"));
        assert!(credentials_match(&auth, good.as_bytes()));
        assert!(!credentials_match(
            &auth,
            format!("Bearer {}", STANDARD.encode("admin:s3cret")).as_bytes()
        ));
        assert!(!credentials_match(&auth, b"Basic !!!not-base64"));
        assert!(!credentials_match(
            &auth,
            format!("Basic {}", STANDARD.encode("admin:wrong")).as_bytes()
        ));
    }
}
