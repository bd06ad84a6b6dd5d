//! TTL expiry. Keys expire by the leader's stamps only, so someone has to propose an
//! `Expire` command when nothing else is written: the Raft leader does, as soon as its
//! keyspace clock (`keyspace/clock.rs`, not its wall clock) passes the earliest expiry.

use std::sync::Arc;
use std::time::Duration;

use super::RaftNode;
use crate::keyspace::Command;

/// How often the leader checks for expired keys: the extra delay on top of a TTL.
const CHECK_EVERY: Duration = Duration::from_millis(100);

pub(super) async fn run(node: Arc<RaftNode>) {
    let mut interval = tokio::time::interval(CHECK_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut metrics = node.raft.metrics();
    loop {
        interval.tick().await;
        if metrics.has_changed().is_err() {
            return; // Raft has shut down.
        }
        let is_leader = metrics.borrow_and_update().current_leader == Some(node.id);
        if !is_leader {
            continue;
        }
        let due = node
            .state_machine
            .read(|s| s.keyspace.next_expiry_ms())
            .is_some_and(|t| t <= node.state_machine.keyspace_now_ms());
        if due {
            if let Err(e) = node.write(Command::Expire, true).await {
                tracing::debug!(error = %e, "raft: expiry housekeeping not committed");
            }
        }
    }
}
