//! `pgquorumctl remove SCOPE` (Patroni's `remove`): delete every key of a decommissioned
//! cluster's keyspace. Refused while a member holds the primary lease unless forced: the
//! agents of a running primary would otherwise see no `initialize`, no `leader` and no members.
//! The Raft group itself stays (its voters are the agents); stop them and remove their
//! `raft.data_dir` to get rid of it.

use super::{KeyspaceError, RaftNode, ReadQuery};
use crate::keyspace::{Command, Key, Precondition};

/// Why the keyspace was not wiped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemovalError {
    #[error("this agent belongs to cluster {ours:?}, not {asked:?}: nothing deleted")]
    OtherScope { ours: String, asked: String },
    #[error(
        "{holder} holds the primary lease: stop the cluster's PostgreSQL first (or --force); nothing deleted"
    )]
    PrimaryLeaseHeld { holder: String },
    #[error(transparent)]
    Keyspace(#[from] KeyspaceError),
}

impl RaftNode {
    /// Delete every key (each at the revision read, so a key rewritten meanwhile is kept and
    /// reported in the count it is missing from). Returns how many were deleted.
    pub async fn remove_cluster(&self, scope: &str, force: bool) -> Result<u32, RemovalError> {
        if scope != self.settings.cluster {
            return Err(RemovalError::OtherScope {
                ours: self.settings.cluster.clone(),
                asked: scope.to_string(),
            });
        }
        let all = self
            .read(
                &ReadQuery {
                    key: String::new(),
                    prefix: true,
                    linearizable: true,
                },
                false,
            )
            .await?;
        let live_lease = all
            .entries
            .iter()
            .find(|e| e.key == Key::Leader && e.expires_at_ms.is_none_or(|t| t > all.as_of_ms));
        if let (Some(lease), false) = (live_lease, force) {
            return Err(RemovalError::PrimaryLeaseHeld {
                holder: lease.holder.clone().unwrap_or_else(|| "a member".into()),
            });
        }
        let mut deleted = 0;
        for entry in all.entries {
            let command = Command::Delete {
                key: entry.key.clone(),
                precondition: Precondition::Revision(entry.revision),
            };
            if self.write(command, false).await?.outcome.is_applied() {
                deleted += 1;
            }
        }
        tracing::warn!(
            deleted,
            force,
            "keyspace: an operator removed the cluster's keys (pgquorumctl remove)"
        );
        Ok(deleted)
    }
}
