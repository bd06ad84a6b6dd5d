//! What the HA loop publishes after every cycle for the REST API and the admin service to
//! answer from, and the operator requests they hand back to the loop.

use std::time::Instant;

use serde::Serialize;
use tokio::sync::oneshot;

use crate::cluster::{ClusterView, MemberStatus};

/// A row of `pg_stat_replication` on the primary.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ReplicationRow {
    pub application_name: String,
    pub client_addr: Option<String>,
    pub state: String,
    pub sync_state: String,
    pub replay_lsn: Option<u64>,
    /// How far it has flushed: what a synchronous commit waits for (src/ha/sync_standby.rs).
    #[serde(skip)]
    pub flush_lsn: Option<u64>,
}

/// One node's view of itself and the cluster after an HA cycle.
#[derive(Debug, Clone)]
pub struct NodeSnapshot {
    pub scope: String,
    pub name: String,
    /// What this member publishes about itself (`members/<name>`).
    pub me: MemberStatus,
    /// The last cluster view read linearizably, if any.
    pub cluster: Option<ClusterView>,
    /// Whether the last keyspace read of the loop succeeded (false: cut off from a majority).
    pub keyspace_reachable: bool,
    /// This node holds the leader lease and its local lease deadline has not passed.
    pub holds_lease: bool,
    /// Maintenance mode (`pgquorumctl pause`).
    pub paused: bool,
    /// When the HA loop last completed a cycle (liveness).
    pub last_cycle: Instant,
    /// The HA loop's last decision, in words.
    pub last_decision: String,
    /// When PostgreSQL was last started by the agent (RFC 3339), if known.
    pub postmaster_start_time: Option<String>,
    /// `pg_stat_replication` on the primary.
    pub replication: Vec<ReplicationRow>,
    /// `loop_wait` and `ttl` in force (seconds), for liveness thresholds.
    pub loop_wait_secs: f64,
    pub ttl_secs: f64,
    /// `watchdog.mode: required` and the device could not be armed or kept alive.
    pub watchdog_failed: bool,
    /// The watchdog: armed, the timeout it would arm with, or why it cannot be used.
    pub watchdog: Option<crate::watchdog::Plan>,
    /// This primary's commits wait for a synchronous standby that is not there, and why
    /// (src/ha/sync_standby.rs): `/patroni`, `/metrics` `pgquorum_writes_blocked`, `list`.
    pub writes_blocked: Option<String>,
}

impl NodeSnapshot {
    /// A snapshot for a node whose loop has not completed a cycle yet.
    pub fn starting(scope: &str, name: &str) -> NodeSnapshot {
        NodeSnapshot {
            scope: scope.to_string(),
            name: name.to_string(),
            me: MemberStatus {
                name: name.to_string(),
                ..Default::default()
            },
            cluster: None,
            keyspace_reachable: false,
            holds_lease: false,
            paused: false,
            last_cycle: Instant::now(),
            last_decision: "starting".to_string(),
            postmaster_start_time: None,
            replication: Vec::new(),
            loop_wait_secs: crate::config::DEFAULT_LOOP_WAIT_SECS,
            ttl_secs: crate::config::DEFAULT_TTL_SECS,
            watchdog_failed: false,
            watchdog: None,
            writes_blocked: None,
        }
    }
}

/// Something an operator asked for through REST or gRPC; the HA loop carries it out
/// between cycles and answers on `reply`.
#[derive(Debug)]
pub enum OperatorRequest {
    /// Re-read the config file and apply it (`POST /reload`, `pgquorumctl reload`).
    Reload {
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Restart PostgreSQL (`POST /restart`, `pgquorumctl restart`).
    Restart {
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Rebuild this replica from the primary: stop PostgreSQL, remove the data directory,
    /// clone again (`POST /reinit`, `pgquorumctl reinit`). Refused on the primary.
    Reinit {
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// Apply one keyspace command for an operator endpoint (`POST /switchover`, `POST
    /// /failover`, `DELETE /switchover`): the REST API has no Raft handle of its own.
    KeyspaceWrite {
        command: crate::keyspace::Command,
        reply: oneshot::Sender<Result<crate::keyspace::CommandOutcome, String>>,
    },
}
