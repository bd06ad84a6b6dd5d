//! Physical replication slots on the local PostgreSQL: one per replica, named after the
//! member (Patroni's naming), so WAL a replica still needs is kept for it.

use tokio_postgres::Client;

use super::error::PgError;
use super::query::query_error;

/// Patroni's rule: the member name lower-cased, every character outside `[a-z0-9_]` replaced
/// by `_`.
pub fn slot_name_for(member: &str) -> String {
    member
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What [`sync`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotSync {
    pub created: Vec<String>,
    pub dropped: Vec<String>,
    /// Unwanted slots still in use by a connection; dropped on a later call once inactive.
    pub unwanted_but_active: Vec<String>,
}

/// Makes the physical slots match `wanted`: creates the missing ones (reserving WAL at once,
/// so a replica that has not connected yet loses nothing), drops inactive physical slots that
/// are neither wanted nor listed in `ignore`. Logical slots are never touched.
pub async fn sync(client: &Client, wanted: &[String], ignore: &[String]) -> Result<SlotSync, PgError> {
    const LIST: &str =
        "SELECT slot_name::text, active FROM pg_replication_slots WHERE slot_type = 'physical'";
    let existing: Vec<(String, bool)> = client
        .query(LIST, &[])
        .await
        .map_err(|e| query_error(LIST, e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut report = SlotSync::default();
    for name in wanted {
        if existing.iter().any(|(slot, _)| slot == name) {
            continue;
        }
        const CREATE: &str = "SELECT pg_create_physical_replication_slot($1, true)";
        match client.query_one(CREATE, &[name]).await {
            Ok(_) => {
                tracing::info!(slot = %name, "created physical replication slot");
                report.created.push(name.clone());
            }
            // Created meanwhile (another call of ours, or an operator): what we wanted.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_OBJECT) => {}
            Err(e) => return Err(query_error(CREATE, e)),
        }
    }
    for (name, active) in &existing {
        if wanted.contains(name) || ignore.contains(name) {
            continue;
        }
        if *active {
            tracing::info!(slot = %name, "unwanted replication slot still in use; will drop it once inactive");
            report.unwanted_but_active.push(name.clone());
            continue;
        }
        const DROP: &str = "SELECT pg_drop_replication_slot($1)";
        match client.query_one(DROP, &[name]).await {
            Ok(_) => {
                tracing::info!(slot = %name, "dropped physical replication slot");
                report.dropped.push(name.clone());
            }
            // Became active (or vanished) between the listing and the drop: next time.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) => {
                report.unwanted_but_active.push(name.clone());
            }
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT) => {}
            Err(e) => return Err(query_error(DROP, e)),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_follow_patroni() {
        assert_eq!(slot_name_for("node1"), "node1");
        assert_eq!(slot_name_for("Node-2.dc1"), "node_2_dc1");
        assert_eq!(slot_name_for("pg_3"), "pg_3");
        assert_eq!(slot_name_for("ünï"), "_n_");
    }
}
