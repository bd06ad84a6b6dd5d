//! Synchronous replication on the primary (`synchronous_mode`): which standbys should be
//! synchronous, and the ordered steps that get PostgreSQL's `synchronous_standby_names` and
//! the `sync` key there without a moment where the key promises more than PostgreSQL
//! enforces. Pure: the executor (src/ha/sync_apply.rs) runs the steps in order and stops at
//! the first failure; the next cycle plans again from what it then observes.
//!
//! The order (as Patroni's `process_sync_replication`):
//! - adding a standby: first `synchronous_standby_names`, then — once `pg_stat_replication`
//!   shows it `sync` — the `sync` key. A member in the key has every commit acknowledged since.
//! - removing one: first the `sync` key, then `synchronous_standby_names`.
//! - switching the mode off: first delete the `sync` key, then reset the parameter; on: the
//!   key names this primary (and nobody else) first, then standbys are added as above.
//!
//! Candidates are replication connections whose `application_name` is a member's name: a
//! non-member consumer (pg_receivewal) is never chosen, never counted, and so never keeps a
//! member from becoming synchronous.

use crate::cluster::{MemberStatus, SyncState};
use crate::config::DynamicConfig;

use super::pg_ops::PgObservation;
use super::snapshot::ReplicationRow;

/// PostgreSQL's `synchronous_standby_names` as the primary runs with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncNames {
    /// `current_setting('synchronous_standby_names')`.
    pub value: String,
    /// It comes from `postgresql.auto.conf`, where the agent sets it (ALTER SYSTEM).
    pub managed: bool,
}

/// One step, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncStep {
    /// Write the `sync` key: this primary with these standbys (compare-and-set on the key's
    /// revision as read).
    WriteKey(Vec<String>),
    /// Remove the `sync` key (synchronous mode switched off).
    DeleteKey,
    /// `ALTER SYSTEM SET synchronous_standby_names` to this value, and reload.
    SetNames(String),
    /// `ALTER SYSTEM RESET synchronous_standby_names` (back to the configuration files' value),
    /// and reload.
    ResetNames,
}

/// What to do this cycle, and whether commits wait for a standby that is not there.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncPlan {
    pub steps: Vec<SyncStep>,
    /// Commits cannot complete now, and why (strict mode with no synchronous standby, or the
    /// standbys PostgreSQL waits for are not connected).
    pub writes_blocked: Option<String>,
}

/// What the primary sees this cycle.
#[derive(Debug, Clone)]
pub struct SyncInputs<'a> {
    pub me: &'a str,
    pub config: &'a DynamicConfig,
    pub members: &'a [MemberStatus],
    /// The `sync` key as read (`None`: absent).
    pub sync: Option<&'a SyncState>,
    /// `pg_stat_replication`.
    pub replication: &'a [ReplicationRow],
    pub names: &'a SyncNames,
    /// `pg_current_wal_lsn()`, for `maximum_lag_on_syncnode`.
    pub primary_lsn: Option<u64>,
}

/// PostgreSQL's words for a standby commits wait for.
fn is_sync(row: &ReplicationRow) -> bool {
    matches!(row.sync_state.as_str(), "sync" | "quorum")
}

/// The steps for this cycle. See the module documentation for the order.
pub fn plan(input: &SyncInputs<'_>) -> SyncPlan {
    let mut steps = Vec::new();
    if input.config.synchronous_mode == crate::config::SynchronousMode::Off {
        if input.sync.is_some() {
            steps.push(SyncStep::DeleteKey);
        }
        if input.names.managed {
            steps.push(SyncStep::ResetNames);
        }
        return SyncPlan {
            steps,
            writes_blocked: blocked(input.replication, &input.names.value),
        };
    }
    let wanted = candidates(input);
    let wanted_names = render(&wanted, input.config.synchronous_mode_strict);
    let in_force = input.names.managed && input.names.value == wanted_names;
    let confirmed = |name: &String| {
        input
            .replication
            .iter()
            .any(|r| r.application_name == *name && is_sync(r))
    };
    // Only this primary's key counts; another primary's (or none) lists nobody for us.
    let listed: Vec<String> = input
        .sync
        .filter(|s| s.leader.as_deref() == Some(input.me))
        .map(SyncState::standbys)
        .unwrap_or_default();
    let target: Vec<String> = if in_force {
        // PostgreSQL runs with the wanted list: the key may name whoever it reports sync.
        wanted.iter().filter(|n| confirmed(n)).cloned().collect()
    } else {
        // Not yet: the key may only shrink, to those that stay wanted and are sync now.
        listed
            .iter()
            .filter(|n| wanted.contains(n) && confirmed(n))
            .cloned()
            .collect()
    };
    let mine = input.sync.is_some_and(|s| s.leader.as_deref() == Some(input.me));
    if !mine || target != listed {
        steps.push(SyncStep::WriteKey(target));
    }
    if !in_force {
        steps.push(SyncStep::SetNames(wanted_names.clone()));
    }
    SyncPlan {
        steps,
        writes_blocked: blocked(input.replication, &input.names.value),
    }
}

/// The members that should be synchronous, best first, at most `synchronous_node_count`:
/// streaming members not tagged `nosync` (nor unable to become primary: a synchronous
/// standby that may never be promoted would only block failover), within
/// `maximum_lag_on_syncnode`. The ones synchronous now come first, so a healthy standby is
/// not swapped for one that is merely ahead; then the furthest flushed, then the name. The
/// result is in name order.
pub fn candidates(input: &SyncInputs<'_>) -> Vec<String> {
    let max_lag = input.config.maximum_lag_on_syncnode;
    let mut rows: Vec<&ReplicationRow> = input
        .replication
        .iter()
        .filter(|r| r.application_name != input.me && r.state == "streaming")
        .filter(|r| {
            input
                .members
                .iter()
                .any(|m| m.name == r.application_name && !m.tags.nosync && m.tags.may_become_primary())
        })
        .filter(|r| match (max_lag > 0, input.primary_lsn, r.flush_lsn) {
            (false, _, _) => true,
            (true, Some(primary), Some(flush)) => primary.saturating_sub(flush) <= max_lag as u64,
            // Lag unknown: not a standby to wait for.
            (true, _, _) => false,
        })
        .collect();
    rows.sort_by(|a, b| {
        is_sync(b)
            .cmp(&is_sync(a))
            .then(b.flush_lsn.cmp(&a.flush_lsn))
            .then(a.application_name.cmp(&b.application_name))
    });
    let count = input.config.synchronous_node_count.max(1) as usize;
    // Two connections under one name (a replica reconnecting) count once, at their best.
    let mut seen = std::collections::BTreeSet::new();
    let mut chosen: Vec<String> = rows
        .into_iter()
        .filter(|r| seen.insert(r.application_name.as_str()))
        .take(count)
        .map(|r| r.application_name.clone())
        .collect();
    // By name: `FIRST n` over n names waits for all of them, so the order means nothing, and
    // a fixed one keeps positions that overtake each other from rewriting the setting.
    chosen.sort();
    chosen
}

/// The `synchronous_standby_names` value for `standbys`: `FIRST n ("a","b")` waits for all
/// of them; none: `''` (commits do not wait), or `'*'` in strict mode (commits wait for any
/// standby at all, and block while there is none).
pub fn render(standbys: &[String], strict: bool) -> String {
    if standbys.is_empty() {
        return if strict { "*".into() } else { String::new() };
    }
    let quoted: Vec<String> = standbys
        .iter()
        .map(|s| format!("\"{}\"", s.replace('"', "\"\"")))
        .collect();
    format!("FIRST {} ({})", standbys.len(), quoted.join(","))
}

/// Whether commits wait for a standby that is not there with `names` in force: names set,
/// and no connection PostgreSQL counts as synchronous.
fn blocked(replication: &[ReplicationRow], names: &str) -> Option<String> {
    if names.trim().is_empty() || replication.iter().any(is_sync) {
        return None;
    }
    let why = if names.trim() == "*" {
        "no standby is connected and synchronous_standby_names is '*' (synchronous_mode_strict)".to_string()
    } else {
        format!("no standby named in synchronous_standby_names ({names}) is synchronous")
    };
    Some(format!(
        "writes blocked: commits wait for a synchronous standby; {why}"
    ))
}

/// Whether this server's commits wait for a standby that is not there (a primary only).
pub fn writes_blocked(obs: &PgObservation) -> Option<String> {
    if obs.role != Some(crate::cluster::PgRole::Primary) {
        return None;
    }
    blocked(&obs.replication, &obs.sync_names.value)
}

/// One WARN line when writes become blocked (with the reason), one INFO when they resume.
pub fn log_change(before: Option<&str>, now: Option<&str>) {
    match (before, now) {
        (before, Some(why)) if before != Some(why) => tracing::warn!("{why}"),
        (Some(_), None) => tracing::info!("writes no longer blocked: a synchronous standby is back"),
        _ => {}
    }
}

#[cfg(test)]
#[path = "sync_standby_test.rs"]
mod tests;
