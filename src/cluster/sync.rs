//! The `sync` key: which standbys the primary has made synchronous, as Patroni keeps it
//! (`{"leader": "node1", "sync_standby": "node2,node3"}`), and the failover rule it carries.
//!
//! The primary writes it in a strict order (src/ha/sync_standby.rs): a standby is added only
//! once PostgreSQL reports it synchronous, and removed before PostgreSQL stops waiting for
//! it. So every member the key lists has every commit acknowledged since it was listed, and
//! with synchronous mode on only those members (and the key's `leader`) may be promoted
//! automatically.

use serde::{Deserialize, Serialize};

use super::ClusterView;
use crate::config::SynchronousMode;

/// The value of the `sync` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SyncState {
    /// The primary that wrote it.
    #[serde(default)]
    pub leader: Option<String>,
    /// The synchronous standbys, comma-separated (Patroni's format); `None`: none.
    #[serde(default)]
    pub sync_standby: Option<String>,
}

impl SyncState {
    /// `leader` with the standbys `standbys` (kept in the order given).
    pub fn new(leader: &str, standbys: &[String]) -> SyncState {
        SyncState {
            leader: Some(leader.to_string()),
            sync_standby: (!standbys.is_empty()).then(|| standbys.join(",")),
        }
    }

    /// The standbys listed, in order.
    pub fn standbys(&self) -> Vec<String> {
        self.sync_standby
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// `name` is the key's leader or one of its standbys.
    pub fn lists(&self, name: &str) -> bool {
        self.leader.as_deref() == Some(name) || self.standbys().iter().any(|s| s == name)
    }
}

impl ClusterView {
    /// Synchronous mode is asked for (`on`; `quorum` runs as `on`, see
    /// docs/replication-modes.md).
    pub fn synchronous_mode(&self) -> bool {
        self.config.synchronous_mode != SynchronousMode::Off
    }

    /// Synchronous mode is asked for and in force: a primary has written the `sync` key. Until
    /// then (mode just switched on) nothing was promised, and the usual race rules apply.
    pub fn sync_active(&self) -> bool {
        self.synchronous_mode() && self.sync.as_ref().is_some_and(|s| s.leader.is_some())
    }

    /// `name` is a synchronous standby now (listed in the `sync` key, mode on).
    pub fn is_sync_standby(&self, name: &str) -> bool {
        self.sync_active()
            && self
                .sync
                .as_ref()
                .is_some_and(|s| s.standbys().iter().any(|m| m == name))
    }

    /// Why synchronous mode forbids promoting `name` automatically, if it does: only the
    /// `sync` key's leader and standbys are sure to have every acknowledged commit.
    pub fn sync_forbids_promotion(&self, name: &str) -> Option<String> {
        let sync = self.sync.as_ref().filter(|_| self.sync_active())?;
        if sync.lists(name) {
            return None;
        }
        let listed = match sync.standbys() {
            s if s.is_empty() => "no synchronous standby".to_string(),
            s => format!("only {}", s.join(", ")),
        };
        Some(format!(
            "synchronous_mode: {name} is not a synchronous standby (the sync key lists {listed} for primary {}): \
             it may lack acknowledged commits",
            sync.leader.as_deref().unwrap_or("?")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DynamicConfig;

    fn view(mode: SynchronousMode, sync: Option<SyncState>) -> ClusterView {
        ClusterView {
            config: DynamicConfig {
                synchronous_mode: mode,
                ..Default::default()
            },
            sync,
            ..Default::default()
        }
    }

    /// The failover rule, one row per case: (mode, sync key, member, may it be promoted).
    #[test]
    fn only_members_the_sync_key_lists_may_be_promoted() {
        use SynchronousMode::*;
        let key = |standbys: &[&str]| {
            Some(SyncState::new(
                "node1",
                &standbys.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            ))
        };
        let rows: &[(SynchronousMode, Option<SyncState>, &str, bool)] = &[
            (Off, key(&["node2"]), "node3", true), // mode off: the key means nothing
            (On, None, "node3", true),             // mode on, key not written yet
            (On, key(&["node2"]), "node2", true),  // a synchronous standby
            (On, key(&["node2"]), "node1", true),  // the key's leader
            (On, key(&["node2"]), "node3", false), // an asynchronous replica
            (On, key(&[]), "node2", false),        // no synchronous standby at all
            (On, key(&["node2", "node3"]), "node3", true),
            (Quorum, key(&["node2"]), "node3", false), // quorum runs as on
            (On, Some(SyncState::default()), "node3", true), // a key with no leader: not in force
        ];
        for (mode, sync, name, allowed) in rows {
            let v = view(*mode, sync.clone());
            assert_eq!(
                v.sync_forbids_promotion(name).is_none(),
                *allowed,
                "{mode:?} {sync:?} {name}: {:?}",
                v.sync_forbids_promotion(name)
            );
        }
    }

    #[test]
    fn patroni_format_round_trips() {
        let s = SyncState::new("node1", &["node2".into(), "node3".into()]);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"leader": "node1", "sync_standby": "node2,node3"})
        );
        assert_eq!(
            serde_json::from_value::<SyncState>(json).unwrap().standbys(),
            ["node2", "node3"]
        );
        let none = serde_json::to_value(SyncState::new("node1", &[])).unwrap();
        assert_eq!(none, serde_json::json!({"leader": "node1", "sync_standby": null}));
    }
}
