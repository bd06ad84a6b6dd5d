//! Who may call the mutating endpoints, checked in Patroni's order: an address outside the
//! allowlist gets 403 `Access is denied`; over TLS with `verify_client` optional or required,
//! a client without a certificate gets 403; then wrong or missing credentials get 401.
//! Also adds `http_extra_headers` (and over TLS `https_extra_headers`) to every answer.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::listen::Peer;
use super::security::{resolve, RestSecurity, VerifyClient};
use super::{auth, RestState};

/// The connection a request came on; `None` when served without connect info (in-process
/// router tests), which an allowlist treats as not allowed.
pub struct Caller(pub Option<Peer>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, Infallible> {
        Ok(Caller(
            parts.extensions.get::<ConnectInfo<Peer>>().map(|info| info.0),
        ))
    }
}

/// `Ok` when the caller may use a mutating endpoint, else the 403 or 401 to send.
pub async fn authorize(state: &RestState, caller: &Caller, headers: &HeaderMap) -> Result<(), Response> {
    let security = state.security.current();
    if security.restricts_addresses() {
        let allowed = match caller.0 {
            Some(peer) => address_allowed(&security, state, peer.addr.ip()).await,
            None => false,
        };
        if !allowed {
            return Err((StatusCode::FORBIDDEN, "Access is denied").into_response());
        }
    }
    let tls = caller.0.is_some_and(|p| p.tls);
    if tls && security.verify_client != VerifyClient::None && !caller.0.is_some_and(|p| p.client_cert) {
        return Err((StatusCode::FORBIDDEN, "client certificate required").into_response());
    }
    auth::authorize(security.auth.as_ref(), headers).map_err(|challenge| *challenge)
}

async fn address_allowed(security: &RestSecurity, state: &RestState, ip: IpAddr) -> bool {
    if security.allowlist.iter().any(|net| net.contains(ip)) {
        return true;
    }
    if !security.include_members {
        return false;
    }
    for host in member_hosts(state) {
        if let Some(nets) = resolve(&host).await {
            if nets.iter().any(|net| net.contains(ip)) {
                return true;
            }
        }
    }
    false
}

/// The hosts the members publish (REST, PostgreSQL and Raft addresses), as Patroni's
/// `allowlist_include_members` takes them from the DCS.
fn member_hosts(state: &RestState) -> BTreeSet<String> {
    let snapshot = state.snapshot.borrow().clone();
    let Some(view) = &snapshot.cluster else {
        return BTreeSet::new();
    };
    view.members
        .iter()
        .flat_map(|m| {
            [
                m.api_url.as_deref().and_then(url_host),
                m.conn_url.as_deref().and_then(url_host),
                m.raft_addr.as_deref().and_then(addr_host),
                m.host.clone(),
            ]
        })
        .flatten()
        .collect()
}

/// `scheme://host:port/path` → `host`.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    addr_host(rest.split('/').next()?)
}

/// `host:port` or `[v6]:port` → `host`.
fn addr_host(addr: &str) -> Option<String> {
    let host = match addr.strip_prefix('[') {
        Some(v6) => v6.split_once(']')?.0,
        None => addr.rsplit_once(':').map_or(addr, |(h, _)| h),
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// Middleware: the configured extra headers on every answer.
pub async fn extra_headers(
    State(state): State<Arc<RestState>>,
    caller: Caller,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let security = state.security.current();
    let tls = caller.0.is_some_and(|p| p.tls);
    let extra = security
        .http_headers
        .iter()
        .chain(security.https_headers.iter().filter(|_| tls));
    for (name, value) in extra {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_from_urls_and_addresses() {
        assert_eq!(
            url_host("http://10.0.0.1:8008/patroni").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(url_host("postgres://db1:5432/postgres").as_deref(), Some("db1"));
        assert_eq!(
            url_host("https://[fd00::1]:8008/patroni").as_deref(),
            Some("fd00::1")
        );
        assert_eq!(addr_host("node1:5000").as_deref(), Some("node1"));
        assert_eq!(addr_host(":5000"), None);
    }
}
