//! Carrying out synchronous replication (src/ha/sync_standby.rs decides): the `sync` key
//! written before a promotion, and each cycle's ordered steps on the primary. The steps run
//! in the order planned and stop at the first failure; the next cycle plans again from
//! what it observes then.

use super::action_error::{ActionError, Cause, Operation as Op};
use super::pg_ops::{PgObservation, PgOps};
use super::store::{self, ClusterStore};
use super::sync_standby::{self, SyncInputs, SyncStep};
use crate::cluster::{ClusterView, SyncState};
use crate::config::DynamicConfig;
use crate::keyspace::{Command, CommandOutcome, Key, Precondition};

/// The precondition that makes a write of `sync` apply only to the value this cycle read.
fn as_read(cluster: &ClusterView) -> Precondition {
    match cluster.sync_revision {
        Some(revision) => Precondition::Revision(revision),
        None => Precondition::Absent,
    }
}

/// Write the `sync` key naming `me` as its primary with `standbys`, compare-and-set.
pub fn write_command(me: &str, standbys: &[String], cluster: &ClusterView) -> Command {
    Command::Put {
        key: Key::Sync,
        value: serde_json::to_value(SyncState::new(me, standbys)).unwrap_or_default(),
        ttl_ms: None,
        precondition: as_read(cluster),
    }
}

async fn commit<S: ClusterStore>(
    node: &S,
    deadline: Option<tokio::time::Instant>,
    command: Command,
) -> Result<(), ActionError> {
    match store::within(deadline, node.write(command)).await {
        Ok(CommandOutcome::Applied { .. }) => Ok(()),
        Ok(CommandOutcome::Rejected { reason, .. }) => Err(ActionError::new(
            Op::SyncReplication,
            Cause::Refused(format!("the sync key changed since it was read ({reason})")),
        )),
        Err(e) => Err(ActionError::keyspace(Op::SyncReplication, e)),
    }
}

/// Before a promotion in synchronous mode: the `sync` key names this member as the primary,
/// and no standby, so that from here on nobody else may be promoted automatically until a
/// standby is confirmed synchronous again. Then `synchronous_standby_names` is set to what a
/// primary with no synchronous standby runs with (`''`, or `'*'` in strict mode; ALTER SYSTEM
/// works on a standby): the value a clone or pg_rewind copied from the old primary would name
/// standbys that are gone, or this member itself, and make the first commits wait. A failed
/// step stops the promotion (the key changed: the next cycle decides again).
pub async fn claim<P: PgOps, S: ClusterStore>(
    pg: &P,
    node: &S,
    deadline: Option<tokio::time::Instant>,
    me: &str,
    cluster: Option<&ClusterView>,
) -> Result<(), ActionError> {
    let Some(cluster) = cluster.filter(|c| c.synchronous_mode()) else {
        return Ok(());
    };
    commit(node, deadline, write_command(me, &[], cluster)).await?;
    let names = sync_standby::render(&[], cluster.config.synchronous_mode_strict);
    pg.set_sync_names(Some(&names))
        .await
        .map_err(Op::SyncReplication.pg())
}

/// One cycle of synchronous replication on the primary holding the lease.
pub async fn manage<P: PgOps, S: ClusterStore>(
    pg: &P,
    node: &S,
    deadline: Option<tokio::time::Instant>,
    me: &str,
    config: &DynamicConfig,
    cluster: Option<&ClusterView>,
    observation: Option<&PgObservation>,
) -> Result<(), ActionError> {
    let (Some(cluster), Some(obs)) = (cluster, observation) else {
        return Ok(());
    };
    let plan = sync_standby::plan(&SyncInputs {
        me,
        config,
        members: &cluster.members,
        sync: cluster.sync.as_ref(),
        replication: &obs.replication,
        names: &obs.sync_names,
        primary_lsn: obs.wal_lsn,
    });
    for step in plan.steps {
        match &step {
            SyncStep::WriteKey(standbys) => {
                commit(node, deadline, write_command(me, standbys, cluster)).await?;
                tracing::info!(
                    "synchronous mode: the sync key now lists {}",
                    if standbys.is_empty() {
                        "no standby (only this primary may be promoted automatically)".to_string()
                    } else {
                        standbys.join(", ")
                    }
                );
            }
            SyncStep::DeleteKey => {
                let cmd = Command::Delete {
                    key: Key::Sync,
                    precondition: as_read(cluster),
                };
                commit(node, deadline, cmd).await?;
                tracing::info!("synchronous mode off: the sync key is removed");
            }
            SyncStep::SetNames(value) => {
                pg.set_sync_names(Some(value))
                    .await
                    .map_err(Op::SyncReplication.pg())?;
                tracing::info!("synchronous mode: synchronous_standby_names = '{value}'");
            }
            SyncStep::ResetNames => {
                pg.set_sync_names(None).await.map_err(Op::SyncReplication.pg())?;
                tracing::info!(
                    "synchronous mode off: synchronous_standby_names is the configuration files' again"
                );
            }
        }
    }
    Ok(())
}
