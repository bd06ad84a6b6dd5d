//! What a node removed from the Raft group may still do in the HA loop (issue 11).
//!
//! A removed node whose agent keeps running still reads and writes the keyspace: its writes
//! are forwarded to the Raft leader. Left alone it could race for and take the `leader` lease,
//! so a decommissioned node could become the primary. While removed (formation's rule says so:
//! src/node/formation.rs), this filter over `decide`'s decision takes away every step towards
//! being the primary, and a server of this node that may accept writes is stopped (when in
//! doubt, demote), giving the lease up if this node holds it (possible only after
//! `pgquorumctl members remove --force` of the primary). Following a primary stays allowed.

use super::decide::{Action, Decision, Inputs};
use crate::cluster::PgRole;

/// `d` as a removed node may carry it out; unchanged when `input.removed` is false.
pub fn while_removed(input: &Inputs<'_>, d: Decision) -> Decision {
    if !input.removed {
        return d;
    }
    let pg = input.pg;
    let i_hold = input.cluster.is_some_and(|c| c.leader_name() == Some(input.me));
    let writable_may_run = pg.running && pg.role != Some(PgRole::Replica);
    if writable_may_run {
        let mut actions = vec![Action::Demote];
        if i_hold {
            actions.push(Action::ReleaseLease);
        }
        let lease = if i_hold {
            " and releasing the leader lease"
        } else {
            ""
        };
        return Decision {
            actions,
            reason: format!(
                "REMOVED: this node was removed from the Raft group and its PostgreSQL may accept \
                 writes: demoting{lease} (a removed node never runs the primary)"
            ),
        };
    }
    let mut dropped = false;
    let mut actions: Vec<Action> = d
        .actions
        .into_iter()
        .filter(|a| {
            let keep = !leads_to_primary(a);
            dropped |= !keep;
            keep
        })
        .collect();
    if i_hold {
        actions.insert(0, Action::ReleaseLease);
    }
    let reason = if dropped || i_hold {
        format!(
            "REMOVED: this node was removed from the Raft group: it takes no lease and never \
             promotes{} (otherwise: {})",
            if i_hold {
                "; releasing the leader lease it holds"
            } else {
                ""
            },
            d.reason
        )
    } else {
        format!(
            "REMOVED from the Raft group (no lease, no promotion): {}",
            d.reason
        )
    };
    Decision { actions, reason }
}

/// Steps that take or keep the lease, make this node's server a primary, or bootstrap a new
/// cluster on it.
fn leads_to_primary(a: &Action) -> bool {
    match a {
        Action::ClaimInitialize
        | Action::Bootstrap
        | Action::FinishBootstrap { .. }
        | Action::AcquireLease
        | Action::StartPrimary
        | Action::Promote
        | Action::ClaimSync
        | Action::ManageSync
        | Action::PublishStatus
        | Action::SyncSlots
        | Action::AppendHistory { .. }
        | Action::HandOver { .. } => true,
        Action::ReleaseInitialize
        | Action::Clone { .. }
        | Action::ReleaseLease
        | Action::StartReplica { .. }
        | Action::Demote
        | Action::Rejoin { .. }
        | Action::ClearFailover
        | Action::Follow { .. }
        | Action::Refuse => false,
    }
}
