//! The cluster-wide documents: `GET /cluster` (Patroni's `cluster_as_json`) and
//! `GET /history`.

use std::ops::Not;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::status_json::tags_json;
use super::wal::format_lsn;
use crate::cluster::{ClusterView, HistoryEntry, MemberStatus};

#[derive(Debug, Serialize)]
pub struct ClusterJson {
    pub members: Vec<ClusterMemberJson>,
    pub scope: String,
    #[serde(skip_serializing_if = "Not::not")]
    pub pause: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_switchover: Option<ScheduledSwitchover>,
}

/// A pending scheduled switchover, as Patroni shows it in `/cluster`.
#[derive(Debug, Serialize)]
pub struct ScheduledSwitchover {
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ClusterMemberJson {
    pub name: String,
    /// `leader` for the lease holder, `sync_standby` for a member the `sync` key lists
    /// (synchronous mode), else `replica` (Patroni 4 names).
    pub role: &'static str,
    pub state: &'static str,
    pub api_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    #[serde(skip_serializing_if = "Not::not")]
    pub pending_restart: bool,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub tags: Map<String, Value>,
    /// `receive_lsn`/`receive_lag`, `replay_lsn`/`replay_lag`, `lsn`/`lag`; not on the leader.
    #[serde(flatten)]
    pub positions: Map<String, Value>,
}

/// `reference_lsn` is the primary's position the lags are measured against.
pub fn cluster_json(view: &ClusterView, scope: &str, reference_lsn: Option<u64>) -> ClusterJson {
    let leader = view.leader_name();
    let members = view
        .members
        .iter()
        .map(|member| {
            let role = if leader == Some(member.name.as_str()) {
                "leader"
            } else if view.is_sync_standby(&member.name) {
                "sync_standby"
            } else {
                "replica"
            };
            member_json(member, role, reference_lsn)
        })
        .collect();
    ClusterJson {
        members,
        scope: scope.to_string(),
        pause: view.paused(),
        scheduled_switchover: view.failover.as_ref().and_then(|f| {
            Some(ScheduledSwitchover {
                at: f.scheduled_at.clone()?,
                from: f.leader.clone(),
                to: f.member.clone(),
            })
        }),
    }
}

fn member_json(member: &MemberStatus, role: &'static str, reference_lsn: Option<u64>) -> ClusterMemberJson {
    let mut positions = Map::new();
    if role != "leader" {
        let kinds = [
            ("receive_", member.received_lsn),
            ("replay_", member.replayed_lsn),
            ("", member.wal_position()),
        ];
        for (prefix, lsn) in kinds {
            let (lsn_text, lag) = position_and_lag(lsn, reference_lsn);
            positions.insert(format!("{prefix}lag"), lag);
            positions.insert(format!("{prefix}lsn"), lsn_text);
        }
    }
    ClusterMemberJson {
        name: member.name.clone(),
        role,
        state: member.state.as_str(),
        api_url: member.api_url.clone(),
        port: member.port.filter(|_| member.host.is_some()),
        host: member.host.clone(),
        timeline: member.timeline,
        pending_restart: member.pending_restart,
        tags: tags_json(&member.tags),
        positions,
    }
}

/// Patroni shows "unknown" when a position is missing, and a lag of 0 for a member ahead of
/// the last published primary position. Without a primary position the lag is "unknown" too.
fn position_and_lag(lsn: Option<u64>, reference_lsn: Option<u64>) -> (Value, Value) {
    let unknown = || Value::from("unknown");
    match (lsn.filter(|&l| l > 0), reference_lsn) {
        (None, _) => (unknown(), unknown()),
        (Some(lsn), None) => (Value::from(format_lsn(lsn)), unknown()),
        (Some(lsn), Some(primary)) => (
            Value::from(format_lsn(lsn)),
            Value::from(primary.saturating_sub(lsn)),
        ),
    }
}

/// `[timeline, lsn, reason, timestamp, new_leader]` lines; `new_leader` only when known, as in
/// Patroni's history key.
pub fn history_json(history: &[HistoryEntry]) -> Value {
    let lines = history
        .iter()
        .map(|entry| {
            let mut line = vec![
                json!(entry.timeline),
                json!(entry.switch_lsn),
                json!(entry.reason),
                json!(entry.time),
            ];
            if let Some(new_leader) = &entry.new_leader {
                line.push(json!(new_leader));
            }
            Value::Array(line)
        })
        .collect();
    Value::Array(lines)
}
