//! `ClusterView`: the keyspace decoded into typed values.

use serde::{Deserialize, Serialize};

use super::{FailoverRequest, MemberStatus};
use crate::config::DynamicConfig;
use crate::keyspace::{Entry, Key};

/// The primary's lease as stored under `leader`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderLease {
    pub holder: String,
    pub revision: u64,
    /// Keyspace (leader-stamped) time the lease expires at unless renewed.
    pub expires_at_ms: u64,
}

/// One line of the timeline history (`history` key), as Patroni keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub timeline: u64,
    pub switch_lsn: u64,
    pub reason: String,
    pub time: String,
    pub new_leader: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ViewError {
    #[error("key {key}: unexpected value: {detail}")]
    BadValue { key: String, detail: String },
}

/// The whole cluster as one keyspace read shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ClusterView {
    /// The database system identifier once bootstrap completed; `Some("")` while a node
    /// that won the bootstrap race is still running initdb.
    pub initialize: Option<String>,
    pub leader: Option<LeaderLease>,
    pub members: Vec<MemberStatus>,
    /// Dynamic configuration (`config` key), or the defaults when never written.
    pub config: DynamicConfig,
    /// Revision of the `config` key, for compare-and-set edits; `None` if never written.
    pub config_revision: Option<u64>,
    pub history: Vec<HistoryEntry>,
    /// The primary's last WAL position as it published it (`status` key).
    pub last_primary_lsn: Option<u64>,
    /// The last primary shut down cleanly (its agent was stopped) at `last_primary_lsn`: no
    /// member with less WAL may take over automatically (it would drop acknowledged writes
    /// the old primary still has).
    #[serde(default)]
    pub last_primary_clean_shutdown: bool,
    /// A pending switchover / manual failover (`failover` key) and its revision.
    pub failover: Option<FailoverRequest>,
    pub failover_revision: Option<u64>,
    /// Keyspace time the `failover` key was written.
    pub failover_since_ms: Option<u64>,
    /// Keyspace time of the read (the last leader stamp applied).
    pub as_of_ms: u64,
}

impl ClusterView {
    /// Decode a full-keyspace read (prefix "").
    pub fn from_entries(entries: &[Entry], as_of_ms: u64) -> Result<ClusterView, ViewError> {
        let mut view = ClusterView {
            as_of_ms,
            ..Default::default()
        };
        for e in entries {
            let bad = |detail: String| ViewError::BadValue {
                key: e.key.to_string(),
                detail,
            };
            match &e.key {
                Key::Initialize => view.initialize = Some(e.value.as_str().unwrap_or_default().to_string()),
                Key::Leader => {
                    view.leader = Some(LeaderLease {
                        holder: e.holder.clone().unwrap_or_default(),
                        revision: e.revision,
                        expires_at_ms: e.expires_at_ms.unwrap_or(u64::MAX),
                    })
                }
                Key::Member(_) => view
                    .members
                    .push(serde_json::from_value(e.value.clone()).map_err(|x| bad(x.to_string()))?),
                Key::Config => {
                    view.config = serde_json::from_value(e.value.clone()).map_err(|x| bad(x.to_string()))?;
                    view.config_revision = Some(e.revision);
                }
                Key::History => {
                    view.history = serde_json::from_value(e.value.clone()).map_err(|x| bad(x.to_string()))?
                }
                Key::Status => {
                    view.last_primary_lsn = e.value.get("optime").and_then(|v| v.as_u64());
                    view.last_primary_clean_shutdown = e
                        .value
                        .get("clean_shutdown")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false);
                }
                Key::Failover => {
                    view.failover =
                        Some(serde_json::from_value(e.value.clone()).map_err(|x| bad(x.to_string()))?);
                    view.failover_revision = Some(e.revision);
                    view.failover_since_ms = Some(e.updated_ms);
                }
                Key::Sync => {}
            }
        }
        view.members.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(view)
    }

    pub fn member(&self, name: &str) -> Option<&MemberStatus> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The holder of the leader lease, if any.
    pub fn leader_name(&self) -> Option<&str> {
        self.leader.as_ref().map(|l| l.holder.as_str())
    }

    pub fn paused(&self) -> bool {
        self.config.pause
    }
}
