//! The Kubernetes-style probes: `/liveness` (is the HA loop turning?) and `/readiness` (should
//! this node get traffic?), with Patroni's thresholds.

use std::time::{Duration, Instant};

use super::query::QueryParams;
use super::wal::{cluster_wal_position, parse_byte_size};
use crate::cluster::{PgRole, PgRunState};
use crate::ha::NodeSnapshot;

/// The HA loop completed a cycle recently enough. Patroni allows `loop_wait` (the pause before
/// the next cycle) plus `ttl` on a running primary, whose lease would expire by then anyway, and
/// twice that on other nodes, which nobody depends on as urgently. In maintenance mode a stuck
/// loop harms nobody, so the probe passes.
pub fn is_alive(snapshot: &NodeSnapshot, now: Instant) -> bool {
    if snapshot.paused {
        return true;
    }
    let me = &snapshot.me;
    let running_primary = me.role == PgRole::Primary && me.state.is_up();
    let ttl_multiple = if running_primary { 1 } else { 2 };
    let allowed = Duration::from_secs_f64(snapshot.loop_wait_secs + snapshot.ttl_secs * ttl_multiple as f64);
    now.saturating_duration_since(snapshot.last_cycle) < allowed
}

/// Patroni's readiness: the lease holder is ready; any other node when PostgreSQL runs, streams
/// from the primary and lags at most `?lag=` (default `maximum_lag_on_failover`) behind it,
/// measured on the replayed position or, with `?mode=write`, the received one.
pub fn is_ready(snapshot: &NodeSnapshot, query: &QueryParams) -> bool {
    if snapshot.holds_lease {
        return true;
    }
    let me = &snapshot.me;
    // Streaming implies running; a replica restoring from the archive only is not ready.
    if me.state != PgRunState::Streaming {
        return false;
    }
    // Patroni falls back on the WAL receiver's view of the primary when the DCS is gone; we
    // do not collect it, so without any cluster view we cannot judge the lag.
    let Some(view) = snapshot.cluster.as_ref() else {
        return false;
    };
    let primary = cluster_wal_position(snapshot).unwrap_or(0);
    let position = if query.first("mode") == Some("write") {
        me.received_lsn
    } else {
        me.replayed_lsn
    };
    let lag = primary.saturating_sub(position.unwrap_or(0));
    let max_lag = query
        .first("lag")
        .and_then(parse_byte_size)
        .unwrap_or(view.config.maximum_lag_on_failover);
    lag <= max_lag
}
