//! The load balancer health checks (`/primary`, `/replica?lag=`, `/read-only`, …): which
//! status a path answers with on this node, following Patroni's `do_GET` rules.

use super::query::QueryParams;
use super::status_json::{tag_value_text, tags_json};
use super::wal::{cluster_wal_position, parse_byte_size};
use crate::cluster::{PgRole, PgRunState};
use crate::ha::NodeSnapshot;

/// One health check, named after what it asks of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    /// `/`, `/primary`, `/master`, `/read-write`: the writable primary.
    Primary,
    /// `/leader`: holds the leader lease, whatever PostgreSQL does.
    Leader,
    /// `/standby-leader`: leader of a standby cluster (standby clusters are not supported yet).
    StandbyLeader,
    /// `/replica`: a running replica that takes read traffic.
    Replica,
    /// `/read-only`: the primary or a replica as above.
    ReadOnly,
    /// `/synchronous`, `/sync`, `/quorum`: a synchronous (or quorum) standby.
    Synchronous,
    /// `/asynchronous`, `/async`: a replica that is not a synchronous standby.
    Asynchronous,
    /// `/read-only-sync`, `/read-only-quorum`: the primary or a synchronous standby.
    ReadOnlySynchronous,
    /// `/health`: PostgreSQL is up, whatever its role.
    Health,
}

impl HealthCheck {
    /// Every path answered by a health check, and the check it runs.
    pub const PATHS: &'static [(&'static str, HealthCheck)] = &[
        ("/", HealthCheck::Primary),
        ("/primary", HealthCheck::Primary),
        ("/master", HealthCheck::Primary),
        ("/read-write", HealthCheck::Primary),
        ("/leader", HealthCheck::Leader),
        ("/standby-leader", HealthCheck::StandbyLeader),
        ("/standby_leader", HealthCheck::StandbyLeader),
        ("/replica", HealthCheck::Replica),
        ("/read-only", HealthCheck::ReadOnly),
        ("/synchronous", HealthCheck::Synchronous),
        ("/sync", HealthCheck::Synchronous),
        ("/quorum", HealthCheck::Synchronous),
        ("/asynchronous", HealthCheck::Asynchronous),
        ("/async", HealthCheck::Asynchronous),
        ("/read-only-sync", HealthCheck::ReadOnlySynchronous),
        ("/read-only-synchronous", HealthCheck::ReadOnlySynchronous),
        ("/read-only-quorum", HealthCheck::ReadOnlySynchronous),
        ("/health", HealthCheck::Health),
    ];

    pub fn for_path(path: &str) -> Option<HealthCheck> {
        HealthCheck::PATHS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, check)| *check)
    }

    /// Whether this node passes the check (HTTP 200; 503 otherwise).
    pub fn passes(self, snapshot: &NodeSnapshot, query: &QueryParams) -> bool {
        let me = &snapshot.me;
        let leadership = Leadership::of(snapshot);
        let replica = serves_replica_reads(snapshot, query);
        // A synchronous standby is one the `sync` key lists (mode on): PostgreSQL confirmed
        // it synchronous before the primary wrote it there (src/ha/sync_standby.rs).
        let sync_standby = snapshot
            .cluster
            .as_ref()
            .is_some_and(|view| view.is_sync_standby(&me.name));
        let passes = match self {
            HealthCheck::Primary => leadership.writable_primary,
            HealthCheck::Leader => leadership.leader,
            HealthCheck::StandbyLeader => false,
            HealthCheck::Replica => replica,
            HealthCheck::ReadOnly => leadership.writable_primary || replica,
            HealthCheck::Synchronous => replica && sync_standby,
            HealthCheck::Asynchronous => replica && !sync_standby,
            HealthCheck::ReadOnlySynchronous => leadership.writable_primary || (replica && sync_standby),
            HealthCheck::Health => me.state.is_up(),
        };
        passes && (self.ignores_tags() || tags_match(snapshot, query))
    }

    /// Patroni does not apply `tag_*` filters to the leader checks.
    fn ignores_tags(self) -> bool {
        matches!(
            self,
            HealthCheck::Primary | HealthCheck::Leader | HealthCheck::StandbyLeader
        )
    }
}

/// The two leader verdicts Patroni derives before looking at the path.
struct Leadership {
    /// Holds the leader lease.
    leader: bool,
    /// Holds the lease and PostgreSQL runs as primary: safe to send writes to.
    writable_primary: bool,
}

impl Leadership {
    fn of(snapshot: &NodeSnapshot) -> Leadership {
        let me = &snapshot.me;
        let running_primary = me.role == PgRole::Primary && me.state.is_up();
        let keyspace_unavailable = snapshot.cluster.is_none() || !snapshot.keyspace_reachable;
        if snapshot.paused && keyspace_unavailable {
            // Patroni's rule: in maintenance mode nobody demotes the primary when the DCS is
            // out of reach, so trust PostgreSQL's own role and keep the traffic flowing.
            let primary = me.role == PgRole::Primary;
            Leadership {
                leader: primary,
                writable_primary: running_primary,
            }
        } else {
            // Stricter than Patroni, which answers 200 on the lease alone: a lease holder whose
            // PostgreSQL is down or not promoted yet must not receive writes.
            Leadership {
                leader: snapshot.holds_lease,
                writable_primary: snapshot.holds_lease && running_primary,
            }
        }
    }
}

/// Patroni's `replica_status_code`: a running replica, not tagged `noloadbalance`, within the
/// `lag` limit and in the requested `replication_state`.
fn serves_replica_reads(snapshot: &NodeSnapshot, query: &QueryParams) -> bool {
    let me = &snapshot.me;
    let state_matches = match query.first("replication_state") {
        Some(wanted) => me.state == PgRunState::Streaming && wanted == "streaming",
        None => true,
    };
    me.role == PgRole::Replica
        && me.state.is_up()
        && !me.tags.noloadbalance
        && !lags_beyond(snapshot, query.first("lag"))
        && state_matches
}

/// Replay lag behind the cluster's position exceeds `?lag=`. Unknown positions or an
/// unparsable limit never count as lagging, as in Patroni.
fn lags_beyond(snapshot: &NodeSnapshot, limit: Option<&str>) -> bool {
    let Some(max_lag) = limit.and_then(parse_byte_size) else {
        return false;
    };
    match cluster_wal_position(snapshot) {
        Some(primary) if primary > 0 => {
            primary > snapshot.me.replayed_lsn.unwrap_or(0).saturating_add(max_lag)
        }
        _ => false,
    }
}

/// Every `tag_<name>=<value>` parameter names a tag this member has, with that value.
fn tags_match(snapshot: &NodeSnapshot, query: &QueryParams) -> bool {
    let tags = tags_json(&snapshot.me.tags);
    query.tag_filters().all(|(name, wanted)| {
        tags.get(name)
            .is_some_and(|value| tag_value_text(value) == wanted)
    })
}
