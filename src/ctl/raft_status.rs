//! `pgquorumctl raft status`.

use serde::Serialize;

use super::{connect, rpc_error, table, CtlError};
use crate::grpc::pb::admin::{RaftStatusReply, RaftStatusRequest};

/// The `kind` of a pgquorum-controller (witness) row.
pub const WITNESS_KIND: &str = "witness";

/// One member as shown by `raft status` (also its JSON form).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberRow {
    pub member: String,
    /// `agent`, or `witness` for pgquorum-controller (known from the keyspace even while down).
    pub kind: String,
    pub address: String,
    pub node_id: u64,
    pub role: String,
    pub term: Option<u64>,
    pub last_log_index: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub lag: Option<u64>,
    pub error: Option<String>,
}

/// The agent's `raft status` answer as it came.
pub async fn raft_status_reply(endpoint: &str) -> Result<RaftStatusReply, CtlError> {
    let mut client = connect(endpoint)?;
    Ok(client
        .raft_status(RaftStatusRequest {})
        .await
        .map_err(|s| rpc_error(endpoint, s))?
        .into_inner())
}

pub async fn fetch_raft_status(endpoint: &str) -> Result<Vec<MemberRow>, CtlError> {
    let reply = raft_status_reply(endpoint).await?;
    Ok(reply
        .members
        .into_iter()
        .map(|m| {
            let s = m.status.as_ref();
            MemberRow {
                member: if m.name.is_empty() {
                    "?".into()
                } else {
                    m.name.clone()
                },
                kind: if m.witness { WITNESS_KIND } else { "agent" }.to_string(),
                address: m.addr.clone(),
                node_id: m.id,
                role: match s {
                    Some(s) if !m.voter && s.role != crate::node::status::LEADER_ROLE => {
                        "learner".to_string()
                    }
                    Some(s) => s.role.clone(),
                    None => "unreachable".to_string(),
                },
                term: s.map(|s| s.term),
                last_log_index: s.filter(|s| s.has_last_log).map(|s| s.last_log_index),
                commit_index: s.filter(|s| s.has_commit).map(|s| s.commit_index),
                applied_index: s.filter(|s| s.has_applied).map(|s| s.applied_index),
                lag: m.has_lag.then_some(m.lag),
                error: (!m.error.is_empty()).then(|| m.error.clone()),
            }
        })
        .collect())
}

pub async fn run(endpoint: &str, json: bool) -> Result<String, CtlError> {
    let rows = fetch_raft_status(endpoint).await?;
    if json {
        return serde_json::to_string_pretty(&rows).map_err(|e| CtlError::Other(e.to_string()));
    }
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.member.clone(),
                r.kind.clone(),
                r.address.clone(),
                r.role.clone(),
                opt(r.term),
                opt(r.last_log_index),
                opt(r.commit_index),
                opt(r.lag),
                r.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = table::render(
        &[
            "Member", "Kind", "Address", "Role", "Term", "Last log", "Commit", "Lag", "Error",
        ],
        &cells,
    );
    if !rows.iter().any(|r| r.role == crate::node::status::LEADER_ROLE) {
        out.push_str(
            "\nWARNING: no Raft leader: the keyspace cannot be changed until a majority is reachable",
        );
    }
    Ok(out)
}
