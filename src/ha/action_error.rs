//! Why an action of the HA executor failed, typed: what failed (the operation) and why (the
//! cause), so the engine branches on kinds and never on the words of a message. The executor
//! feeds it back as [`super::engine::Event::ActionFailed`]; `Display` is the operator's
//! sentence for the log.

use super::pg_ops::PgFailure;
use crate::node::KeyspaceError;

/// The operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Start,
    Stop,
    Restart,
    Reload,
    Promote,
    Rewind,
    Configure,
    SyncSlots,
    /// Taking or renewing the leader lease.
    LeaseWrite,
    /// Giving the leader lease back.
    LeaseRelease,
    /// Any other keyspace write (`initialize`, `status`, `history`, `failover`).
    KeyspaceWrite,
    /// Arming the watchdog device.
    Watchdog,
    /// Starting a background job (clone, bootstrap, rejoin check).
    StartJob,
    /// Taking the bootstrap claim (`initialize`), or taking it again.
    ClaimBootstrap,
    /// Synchronous replication: the `sync` key or `synchronous_standby_names`.
    SyncReplication,
}

impl Operation {
    /// `map_err(Operation::Start.pg())`: this operation failed in PostgreSQL.
    pub fn pg(self) -> impl FnOnce(PgFailure) -> ActionError {
        move |f| ActionError::pg(self, f)
    }

    /// `map_err(Operation::LeaseWrite.keyspace())`: the keyspace did not answer.
    pub fn keyspace(self) -> impl FnOnce(KeyspaceError) -> ActionError {
        move |e| ActionError::keyspace(self, e)
    }

    fn describe(self) -> &'static str {
        match self {
            Operation::Start => "starting PostgreSQL",
            Operation::Stop => "stopping PostgreSQL",
            Operation::Restart => "restarting PostgreSQL",
            Operation::Reload => "reloading PostgreSQL",
            Operation::Promote => "promoting PostgreSQL",
            Operation::Rewind => "the rejoin check",
            Operation::Configure => "writing the configuration files",
            Operation::SyncSlots => "syncing replication slots",
            Operation::LeaseWrite => "taking or renewing the leader lease",
            Operation::LeaseRelease => "releasing the leader lease",
            Operation::KeyspaceWrite => "a keyspace write",
            Operation::Watchdog => "arming the watchdog",
            Operation::StartJob => "starting a background job",
            Operation::ClaimBootstrap => "claiming the bootstrap",
            Operation::SyncReplication => "managing synchronous replication",
        }
    }
}

/// Why it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The local PostgreSQL (src/ha/pg_ops.rs).
    Pg(PgFailure),
    /// The keyspace did not answer (cut off, no Raft leader, outcome unknown).
    Keyspace(KeyspaceError),
    /// The keyspace answered no: a lease held by another member (or gone), a compare-and-set
    /// someone else won.
    Refused(String),
    /// The lease deadline passed before the action could finish (it was abandoned).
    LeaseExpired,
    /// Something the action needs is not there yet (a primary's address, our bootstrap claim).
    NotReady(String),
    /// `watchdog.mode: required` and the device cannot be armed.
    WatchdogRequired(String),
}

/// A failed action: what and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} failed: {}", .operation.describe(), cause_text(.cause))]
pub struct ActionError {
    pub operation: Operation,
    pub cause: Cause,
}

impl ActionError {
    pub fn new(operation: Operation, cause: Cause) -> ActionError {
        ActionError { operation, cause }
    }

    pub fn pg(operation: Operation, failure: PgFailure) -> ActionError {
        ActionError::new(operation, Cause::Pg(failure))
    }

    pub fn keyspace(operation: Operation, error: KeyspaceError) -> ActionError {
        ActionError::new(operation, Cause::Keyspace(error))
    }

    pub fn refused(operation: Operation, reason: impl Into<String>) -> ActionError {
        ActionError::new(operation, Cause::Refused(reason.into()))
    }

    pub fn not_ready(operation: Operation, what: impl Into<String>) -> ActionError {
        ActionError::new(operation, Cause::NotReady(what.into()))
    }

    /// The PostgreSQL failure behind it, if any.
    pub fn pg_failure(&self) -> Option<&PgFailure> {
        match &self.cause {
            Cause::Pg(f) => Some(f),
            _ => None,
        }
    }

    /// The keyspace said this node does not hold the lease (a renewal was refused).
    pub fn lease_refused(&self) -> bool {
        self.operation == Operation::LeaseWrite && matches!(self.cause, Cause::Refused(_))
    }

    /// Another member holds the bootstrap claim: the race for the bootstrap was lost, which is
    /// normal (every member of a new cluster races; one wins).
    pub fn lost_bootstrap_race(&self) -> bool {
        self.operation == Operation::ClaimBootstrap && matches!(self.cause, Cause::Refused(_))
    }

    /// Log the failure of `action` at the level it deserves: a lost bootstrap race is normal
    /// (INFO, in plain words), a retryable failure a WARN, anything else an ERROR.
    pub fn log(&self, action: &super::decide::Action) {
        if self.lost_bootstrap_race() && *action == super::decide::Action::ClaimInitialize {
            tracing::info!(
                "another member claimed the bootstrap first: it initialises the cluster, and this \
                 member will create its replica from it"
            );
        } else if self.lost_bootstrap_race() {
            tracing::warn!(
                "my bootstrap claim is gone (another member holds it): my bootstrap will not be published"
            );
        } else if self.is_retryable() {
            tracing::warn!(?action, "{self}");
        } else {
            tracing::error!(?action, "{self}");
        }
    }

    /// Worth trying again on a later cycle as it is. Fatal: a PostgreSQL failure that fails
    /// the same way until something else happens (diverged, a rewind that changed the
    /// directory), a refusal by the keyspace (someone else holds what we asked for: the next
    /// read decides anew), a lease that ran out, a required watchdog that cannot be armed.
    pub fn is_retryable(&self) -> bool {
        match &self.cause {
            Cause::Pg(f) => f.is_retryable(),
            Cause::Keyspace(_) | Cause::NotReady(_) => true,
            Cause::Refused(_) | Cause::LeaseExpired | Cause::WatchdogRequired(_) => false,
        }
    }
}

fn cause_text(cause: &Cause) -> String {
    match cause {
        Cause::Pg(f) => f.to_string(),
        Cause::Keyspace(e) => e.to_string(),
        Cause::Refused(r) => format!("refused by the keyspace: {r}"),
        Cause::LeaseExpired => "the lease deadline passed first".into(),
        Cause::NotReady(w) => w.clone(),
        Cause::WatchdogRequired(e) => {
            format!("watchdog mode is required but the watchdog cannot be armed: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retryable_or_fatal_by_kind() {
        let pg = |f: PgFailure| ActionError::pg(Operation::Start, f);
        let rows: Vec<(&str, ActionError, bool)> = vec![
            ("pg timeout", pg(PgFailure::Timeout { message: "t".into() }), true),
            (
                "pg tool error",
                pg(PgFailure::Tool {
                    program: "pg_ctl".into(),
                    detail: "x".into(),
                }),
                true,
            ),
            (
                "pg not running",
                pg(PgFailure::NotRunning { message: "n".into() }),
                true,
            ),
            (
                "pg diverged",
                pg(PgFailure::Diverged { message: "d".into() }),
                false,
            ),
            (
                "rewind changed the directory",
                ActionError::pg(
                    Operation::Rewind,
                    PgFailure::Rewind {
                        message: "r".into(),
                        target_modified: true,
                    },
                ),
                false,
            ),
            (
                "rewind changed nothing",
                ActionError::pg(
                    Operation::Rewind,
                    PgFailure::Rewind {
                        message: "r".into(),
                        target_modified: false,
                    },
                ),
                true,
            ),
            (
                "keyspace cut off",
                ActionError::keyspace(
                    Operation::LeaseWrite,
                    KeyspaceError::NoLeader {
                        waited: Duration::ZERO,
                    },
                ),
                true,
            ),
            (
                "keyspace outcome unknown",
                ActionError::keyspace(
                    Operation::KeyspaceWrite,
                    KeyspaceError::Unconfirmed {
                        waited: Duration::ZERO,
                    },
                ),
                true,
            ),
            (
                "lease refused",
                ActionError::refused(Operation::LeaseWrite, "held by node2"),
                false,
            ),
            (
                "claim lost",
                ActionError::refused(Operation::KeyspaceWrite, "claimed"),
                false,
            ),
            (
                "lease ran out",
                ActionError::new(Operation::Start, Cause::LeaseExpired),
                false,
            ),
            (
                "no address yet",
                ActionError::not_ready(Operation::StartJob, "no address"),
                true,
            ),
            (
                "watchdog required",
                ActionError::new(Operation::Watchdog, Cause::WatchdogRequired("no device".into())),
                false,
            ),
        ];
        for (name, error, retryable) in rows {
            assert_eq!(error.is_retryable(), retryable, "{name}: {error}");
        }
    }

    #[test]
    fn only_a_refused_lease_write_is_a_refused_lease() {
        assert!(ActionError::refused(Operation::LeaseWrite, "x").lease_refused());
        assert!(!ActionError::refused(Operation::KeyspaceWrite, "x").lease_refused());
        assert!(!ActionError::keyspace(Operation::LeaseWrite, KeyspaceError::NotLeader).lease_refused());
    }

    #[test]
    fn the_sentence_names_operation_and_cause() {
        let e = ActionError::pg(
            Operation::Promote,
            PgFailure::Timeout {
                message: "no answer".into(),
            },
        );
        assert_eq!(e.to_string(), "promoting PostgreSQL failed: no answer");
        assert_eq!(
            e.pg_failure(),
            Some(&PgFailure::Timeout {
                message: "no answer".into()
            })
        );
    }

    /// Losing the bootstrap race is normal: told apart by kind (logged at INFO), not by text.
    #[test]
    fn a_lost_bootstrap_race_is_known_by_its_kind() {
        assert!(ActionError::refused(Operation::ClaimBootstrap, "held by node1").lost_bootstrap_race());
        assert!(!ActionError::refused(Operation::KeyspaceWrite, "held by node1").lost_bootstrap_race());
        let cut_off = ActionError::keyspace(Operation::ClaimBootstrap, KeyspaceError::NotLeader);
        assert!(!cut_off.lost_bootstrap_race());
    }
}
