//! The member status document of `GET /patroni` (and the body of every health check), with
//! Patroni's field names; plus the facts about this node that the metrics share with it.

use std::ops::Not;

use serde::Serialize;
use serde_json::{Map, Value};

use super::epoch;
use crate::cluster::{PgRole, PgRunState};
use crate::config::Tags;
use crate::ha::{NodeSnapshot, ReplicationRow};

/// Patroni's `get_postgresql_status` + `_write_status_response`, from a snapshot. Fields that
/// need a running PostgreSQL are left out when it is not running, as Patroni leaves them out when
/// its query fails.
#[derive(Debug, Serialize)]
pub struct MemberStatusJson {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postmaster_start_time: Option<String>,
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xlog: Option<XlogJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_state: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replication: Vec<ReplicationJson>,
    #[serde(skip_serializing_if = "Not::not")]
    pub pause: bool,
    #[serde(skip_serializing_if = "Not::not")]
    pub cluster_unlocked: bool,
    pub dcs_last_seen: u64,
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub tags: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_system_identifier: Option<String>,
    #[serde(skip_serializing_if = "Not::not")]
    pub pending_restart: bool,
    /// `watchdog.mode: required` and the device cannot be armed or kept alive.
    #[serde(skip_serializing_if = "Not::not")]
    pub watchdog_failed: bool,
    /// The watchdog: `{"state": "armed"|"timeout", "timeout": s}`, `{"state": "unusable",
    /// "reason": ...}` (then `automatic` runs without one) or `{"state": "off"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchdog: Option<crate::watchdog::Plan>,
    /// pgquorum: set while a majority of the Raft voters cannot be reached (why nothing can
    /// be promoted), with `message` in plain words and every voter's reachability.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "quorum_json")]
    pub raft_quorum: Option<crate::node::quorum::QuorumLoss>,
    /// Patroni's flag: this replica is a synchronous standby (listed in the `sync` key).
    #[serde(skip_serializing_if = "Not::not")]
    pub sync_standby: bool,
    /// pgquorum's: this primary's commits wait for a synchronous standby that is not there,
    /// and why (src/ha/sync_standby.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes_blocked: Option<String>,
    pub patroni: PatroniJson,
}

fn quorum_json<S: serde::Serializer>(
    loss: &Option<crate::node::quorum::QuorumLoss>,
    out: S,
) -> Result<S::Ok, S::Error> {
    let value = loss.as_ref().map(|l| {
        serde_json::json!({
            "quorum": false,
            "message": l.to_string(),
            "voters_reachable": l.reachable(),
            "voters": l.voters,
            "voters_needed": l.needed(),
        })
    });
    value.serialize(out)
}

/// `xlog`: the primary's write position, or what a replica received and replayed.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum XlogJson {
    Primary {
        location: Option<u64>,
    },
    Replica {
        received_location: Option<u64>,
        replayed_location: Option<u64>,
        /// `pg_last_xact_replay_timestamp()`: not collected yet, always null.
        replayed_timestamp: Option<String>,
        /// `pg_is_wal_replay_paused()`: not collected yet; pgquorum never pauses replay.
        paused: bool,
    },
}

/// A `pg_stat_replication` row (Patroni also shows `usename` and `sync_priority`, which the HA
/// loop does not collect).
#[derive(Debug, Serialize)]
pub struct ReplicationJson {
    pub application_name: String,
    pub client_addr: Option<String>,
    pub state: String,
    pub sync_state: String,
}

#[derive(Debug, Serialize)]
pub struct PatroniJson {
    pub version: &'static str,
    pub scope: String,
    pub name: String,
}

pub fn member_status(snapshot: &NodeSnapshot, version: &'static str) -> MemberStatusJson {
    let me = &snapshot.me;
    let running = me.state.is_up();
    let xlog = running.then(|| match me.role {
        PgRole::Primary => XlogJson::Primary {
            location: me.wal_lsn.or(me.received_lsn),
        },
        _ => XlogJson::Replica {
            received_location: me.received_lsn.or(me.replayed_lsn),
            replayed_location: me.replayed_lsn,
            replayed_timestamp: None,
            paused: false,
        },
    });
    MemberStatusJson {
        state: patroni_state(me.state),
        postmaster_start_time: snapshot.postmaster_start_time.clone().filter(|_| running),
        role: me.role.as_str(),
        server_version: me.server_version.filter(|_| running),
        xlog,
        timeline: me.timeline.filter(|_| running),
        replication_state: (me.state == PgRunState::Streaming).then_some("streaming"),
        replication: if running {
            snapshot.replication.iter().map(replication_row).collect()
        } else {
            vec![]
        },
        pause: snapshot.paused,
        cluster_unlocked: cluster_unlocked(snapshot),
        dcs_last_seen: dcs_last_seen(snapshot),
        tags: tags_json(&me.tags),
        database_system_identifier: me.system_identifier.clone(),
        pending_restart: me.pending_restart,
        watchdog_failed: snapshot.watchdog_failed,
        watchdog: snapshot.watchdog.clone(),
        raft_quorum: None,
        sync_standby: me.role == PgRole::Replica
            && snapshot
                .cluster
                .as_ref()
                .is_some_and(|view| view.is_sync_standby(&me.name)),
        writes_blocked: snapshot.writes_blocked.clone(),
        patroni: PatroniJson {
            version,
            scope: snapshot.scope.clone(),
            name: snapshot.name.clone(),
        },
    }
}

/// Patroni's `state` is PostgreSQL's process state; whether a replica streams is reported
/// separately (`replication_state`), so our `streaming` shows as `running` here.
fn patroni_state(state: PgRunState) -> &'static str {
    match state {
        PgRunState::Streaming => PgRunState::Running.as_str(),
        other => other.as_str(),
    }
}

fn replication_row(row: &ReplicationRow) -> ReplicationJson {
    ReplicationJson {
        application_name: row.application_name.clone(),
        client_addr: row.client_addr.clone(),
        state: row.state.clone(),
        sync_state: row.sync_state.clone(),
    }
}

/// No member holds the leader lease (or the cluster was never read).
pub fn cluster_unlocked(snapshot: &NodeSnapshot) -> bool {
    snapshot.cluster.as_ref().is_none_or(|view| view.leader.is_none())
}

/// Epoch second of the last successful keyspace read; 0 while the keyspace is out of reach
/// (Patroni keeps the older value, but we only know about the last cycle).
pub fn dcs_last_seen(snapshot: &NodeSnapshot) -> u64 {
    if snapshot.keyspace_reachable && snapshot.cluster.is_some() {
        epoch::instant_to_epoch_secs(snapshot.last_cycle)
    } else {
        0
    }
}

/// The tags as Patroni shows them: only those that are set. Patroni drops the boolean tags
/// that are false (they are the defaults), so `tag_noloadbalance=false` does not match either.
pub fn tags_json(tags: &Tags) -> Map<String, Value> {
    const FLAGS_HIDDEN_WHEN_FALSE: [&str; 5] =
        ["clonefrom", "nofailover", "noloadbalance", "nosync", "nostream"];
    let Ok(Value::Object(all)) = serde_json::to_value(tags) else {
        return Map::new();
    };
    all.into_iter()
        .filter(|(name, value)| {
            let unset_flag = FLAGS_HIDDEN_WHEN_FALSE.contains(&name.as_str()) && *value == Value::Bool(false);
            !value.is_null() && !unset_flag
        })
        .collect()
}

/// A tag value as text for `?tag_<name>=<value>` matching: Patroni compares strings, and
/// lower-cases the text of non-string values (`True` → `true`).
pub fn tag_value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string().to_lowercase(),
    }
}
