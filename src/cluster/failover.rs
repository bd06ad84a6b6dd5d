//! The `failover` key: a switchover or manual failover an operator asked for.
//!
//! Field names follow Patroni's failover key so operators recognise it in `pgquorumctl get
//! failover`: `leader` (the primary to switch away from; absent for a manual failover),
//! `member` (the candidate; absent: the best eligible replica), `scheduled_at` (RFC 3339, as
//! given). `scheduled_at_ms` is the same instant in ms since the Unix epoch, compared with
//! the keyspace's leader-stamped time so that every agent agrees when it is due.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FailoverRequest {
    /// Switchover: the current primary, which must still hold the lease for it to proceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The member to promote; `None`: the most up-to-date eligible replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// When to carry it out (RFC 3339, as the operator gave it); `None`: now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<String>,
    /// `scheduled_at` in ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at_ms: Option<u64>,
}

impl FailoverRequest {
    /// A switchover names the primary it moves away from; a manual failover does not.
    pub fn is_switchover(&self) -> bool {
        self.leader.is_some()
    }

    /// Due at keyspace time `now_ms` (unscheduled requests are always due).
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.scheduled_at_ms.is_none_or(|t| t <= now_ms)
    }
}
