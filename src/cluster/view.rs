//! `ClusterView`: the keyspace decoded into typed values.

use serde::{Deserialize, Serialize};

use super::{FailoverRequest, MemberStatus, SyncState};
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

/// Who holds the pending bootstrap claim (`initialize` before a system identifier is
/// published), when the claim was taken as a lease (`src/ha/bootstrap_claim.rs`). A claim
/// written by an older agent (a plain `""`) carries no identity and never expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapClaim {
    pub holder: String,
    /// The claimer's `raft.self_addr`.
    pub holder_addr: Option<String>,
    pub revision: u64,
    /// Keyspace time the claim expires at unless the claimer refreshes it.
    pub expires_at_ms: Option<u64>,
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
    /// The claimer of a pending bootstrap (`initialize` is `Some("")`), when it gave its
    /// identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_claim: Option<BootstrapClaim>,
    pub leader: Option<LeaderLease>,
    pub members: Vec<MemberStatus>,
    /// Witnesses (`witnesses/<name>`): Raft voters that are never PostgreSQL members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<super::WitnessRecord>,
    /// Dynamic configuration (`config` key), or the defaults when never written.
    pub config: DynamicConfig,
    /// Revision of the `config` key, for compare-and-set edits; `None` if never written.
    pub config_revision: Option<u64>,
    pub history: Vec<HistoryEntry>,
    /// Revision of the `history` key, for compare-and-set appends; `None` if never written.
    #[serde(skip)]
    pub history_revision: Option<u64>,
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
    /// The synchronous standbys the primary made durable (`sync` key) and its revision, for
    /// compare-and-set writes (src/ha/sync_standby.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncState>,
    #[serde(skip)]
    pub sync_revision: Option<u64>,
    /// Keyspace time of the read (the last leader stamp applied).
    pub as_of_ms: u64,
    /// Values this read could not decode and skipped (a corrupt value, or one written by a
    /// newer agent during a rolling upgrade). One bad value must never make the whole keyspace
    /// unreadable: every agent would then demote its primary and none would promote.
    #[serde(skip)]
    pub unreadable: Vec<ViewError>,
    /// The `config` key did not decode: `config` holds the defaults, which the HA loop must
    /// replace with the last configuration it could read (see [`ClusterView::keep_config`]).
    #[serde(skip)]
    pub config_unreadable: bool,
}

impl ClusterView {
    /// Decode a full-keyspace read (prefix ""). A value that does not decode is skipped and
    /// listed in `unreadable`: a member key drops that member from this view, a history entry
    /// drops that entry, a `failover` request is ignored (its revision is kept so that it can
    /// still be removed), an unreadable `config` sets `config_unreadable`.
    pub fn from_entries(entries: &[Entry], as_of_ms: u64) -> ClusterView {
        let mut view = ClusterView {
            as_of_ms,
            ..Default::default()
        };
        for e in entries {
            let mut skip = |detail: String| {
                view.unreadable.push(ViewError::BadValue {
                    key: e.key.to_string(),
                    detail,
                })
            };
            match &e.key {
                Key::Initialize => match e.value.as_str() {
                    Some(sysid) => {
                        view.initialize = Some(sysid.to_string());
                        view.bootstrap_claim =
                            e.holder
                                .as_ref()
                                .filter(|_| sysid.is_empty())
                                .map(|h| BootstrapClaim {
                                    holder: h.clone(),
                                    holder_addr: e.holder_addr.clone(),
                                    revision: e.revision,
                                    expires_at_ms: e.expires_at_ms,
                                });
                    }
                    None => {
                        // Present but not a string: initialised by someone, identity unknown.
                        // Never "absent" (that would start a second bootstrap race).
                        skip(format!("not a string: {}", e.value));
                        view.initialize = Some(String::new());
                    }
                },
                Key::Leader => {
                    view.leader = Some(LeaderLease {
                        holder: e.holder.clone().unwrap_or_default(),
                        revision: e.revision,
                        expires_at_ms: e.expires_at_ms.unwrap_or(u64::MAX),
                    })
                }
                Key::Member(_) => match serde_json::from_value(e.value.clone()) {
                    Ok(member) => view.members.push(member),
                    Err(x) => skip(x.to_string()),
                },
                Key::Config => {
                    match serde_json::from_value(e.value.clone()) {
                        Ok(config) => view.config = config,
                        Err(x) => {
                            skip(x.to_string());
                            view.config_unreadable = true;
                        }
                    }
                    view.config_revision = Some(e.revision);
                }
                Key::History => {
                    match e.value.as_array() {
                        Some(items) => {
                            for item in items {
                                match serde_json::from_value(item.clone()) {
                                    Ok(entry) => view.history.push(entry),
                                    Err(x) => skip(format!("entry {item}: {x}")),
                                }
                            }
                        }
                        None => skip(format!("not a list: {}", e.value)),
                    }
                    view.history_revision = Some(e.revision);
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
                    match serde_json::from_value(e.value.clone()) {
                        Ok(request) => view.failover = Some(request),
                        Err(x) => skip(x.to_string()),
                    }
                    view.failover_revision = Some(e.revision);
                    view.failover_since_ms = Some(e.updated_ms);
                }
                Key::Witness(_) => match serde_json::from_value(e.value.clone()) {
                    Ok(witness) => view.witnesses.push(witness),
                    Err(x) => skip(x.to_string()),
                },
                Key::Sync => {
                    match serde_json::from_value(e.value.clone()) {
                        // Unreadable: treated as listing nobody but a leader nobody is
                        // (no automatic promotion) rather than as absent (async rules).
                        Ok(sync) => view.sync = Some(sync),
                        Err(x) => {
                            skip(x.to_string());
                            view.sync = Some(SyncState {
                                leader: Some(String::new()),
                                sync_standby: None,
                            });
                        }
                    }
                    view.sync_revision = Some(e.revision);
                }
            }
        }
        view.members.sort_by(|a, b| a.name.cmp(&b.name));
        view
    }

    /// Replace an unreadable `config` with `last_good` (the configuration the agent used until
    /// now): defaults could silently lift maintenance mode or change the lease timings.
    pub fn keep_config(&mut self, last_good: &DynamicConfig) {
        if self.config_unreadable {
            self.config = last_good.clone();
        }
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cluster::{PgRole, PgRunState};

    fn entry(key: &str, value: serde_json::Value, revision: u64) -> Entry {
        Entry {
            key: key.parse().expect("a valid key"),
            value,
            revision,
            created_revision: revision,
            updated_ms: 1_000,
            expires_at_ms: None,
            holder: None,
            holder_addr: None,
        }
    }

    fn member(name: &str, state: &str) -> serde_json::Value {
        json!({"name": name, "role": "replica", "state": state})
    }

    /// One undecodable value must not make the whole keyspace unreadable (every agent would
    /// demote its primary and none would promote): it is skipped and named.
    #[test]
    fn a_bad_value_is_skipped_not_fatal() {
        let entries = vec![
            entry("initialize", json!("7301"), 1),
            entry("members/node1", member("node1", "streaming"), 2),
            entry("members/node2", json!({"name": 42}), 3),
            entry("history", json!([[1, 2]]), 4),
            entry("failover", json!("not a request"), 5),
        ];
        let view = ClusterView::from_entries(&entries, 9);
        assert_eq!(view.initialize.as_deref(), Some("7301"));
        let names: Vec<&str> = view.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["node1"]);
        assert!(view.history.is_empty());
        assert_eq!(view.failover, None);
        assert_eq!(
            view.failover_revision,
            Some(5),
            "kept so the bad request can be removed"
        );
        let keys: Vec<String> = view
            .unreadable
            .iter()
            .map(|ViewError::BadValue { key, .. }| key.clone())
            .collect();
        assert_eq!(keys, ["members/node2", "history", "failover"]);
    }

    #[test]
    fn good_history_entries_survive_a_bad_one() {
        let good =
            json!({"timeline": 1, "switch_lsn": 100, "reason": "r", "time": "t", "new_leader": "node2"});
        let view = ClusterView::from_entries(&[entry("history", json!([good, "garbage"]), 3)], 9);
        assert_eq!(view.history.len(), 1);
        assert_eq!(view.unreadable.len(), 1);
        assert_eq!(view.history_revision, Some(3), "appends compare-and-set on it");
    }

    /// A value a newer agent writes during a rolling upgrade decodes as `unknown`.
    #[test]
    fn unknown_roles_and_states_decode() {
        let value = json!({"name": "node3", "role": "standby_leader", "state": "archiving"});
        let view = ClusterView::from_entries(&[entry("members/node3", value, 2)], 9);
        assert!(view.unreadable.is_empty(), "{:?}", view.unreadable);
        assert_eq!(view.members[0].role, PgRole::Unknown);
        assert_eq!(view.members[0].state, PgRunState::Unknown);
        assert!(!view.members[0].state.is_up());
    }

    /// An unreadable `config` keeps the last good one (defaults could lift maintenance mode).
    #[test]
    fn an_unreadable_config_keeps_the_last_good_one() {
        let mut view = ClusterView::from_entries(&[entry("config", json!({"ttl": "soon"}), 7)], 9);
        assert!(view.config_unreadable);
        assert_eq!(view.config_revision, Some(7));
        let last_good = DynamicConfig {
            pause: true,
            ..Default::default()
        };
        view.keep_config(&last_good);
        assert!(view.paused());
    }

    /// A claim taken as a lease names its claimer; a legacy `""` claim and a published
    /// system identifier name nobody.
    #[test]
    fn a_bootstrap_claim_names_its_claimer() {
        let mut claim = entry("initialize", json!(""), 4);
        claim.holder = Some("node1".into());
        claim.holder_addr = Some("10.0.0.1:5433".into());
        claim.expires_at_ms = Some(31_000);
        let view = ClusterView::from_entries(&[claim], 9);
        assert_eq!(view.initialize.as_deref(), Some(""));
        assert_eq!(
            view.bootstrap_claim,
            Some(BootstrapClaim {
                holder: "node1".into(),
                holder_addr: Some("10.0.0.1:5433".into()),
                revision: 4,
                expires_at_ms: Some(31_000),
            })
        );
        let legacy = ClusterView::from_entries(&[entry("initialize", json!(""), 4)], 9);
        assert_eq!(legacy.bootstrap_claim, None);
        let published = ClusterView::from_entries(&[entry("initialize", json!("7301"), 5)], 9);
        assert_eq!(published.bootstrap_claim, None);
    }

    #[test]
    fn an_initialize_that_is_not_a_string_still_counts_as_claimed() {
        let view = ClusterView::from_entries(&[entry("initialize", json!(12), 1)], 9);
        assert_eq!(view.initialize.as_deref(), Some(""));
        assert_eq!(view.unreadable.len(), 1);
    }
}
