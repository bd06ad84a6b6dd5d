//! Watches for a lost quorum: while no Raft leader is known (or this node leads but a
//! majority stopped acknowledging it), asks every voter for its status
//! (`raft status`) and, when fewer than a majority answer, publishes the [`QuorumLoss`] and
//! logs one WARN line naming the unreachable voters (again only when that set changes), and
//! one INFO line when a leader is back.

use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;

use super::quorum::{leader_in_touch, QuorumLoss};
use super::RaftNode;

pub(super) async fn run(node: Arc<RaftNode>) {
    // Less often than an election can complete: a leader change in progress is not a loss.
    let period = (node.settings.election_timeout * 2).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(period).await;
        let m = node.raft.metrics().borrow().clone();
        if m.state == ServerState::Shutdown {
            return;
        }
        let recent_ms = period.as_millis() as u64;
        let loss = if leader_in_touch(m.id, m.current_leader, m.millis_since_quorum_ack, recent_ms) {
            None
        } else {
            let reply = node.raft_status().await;
            QuorumLoss::from_raft_status(&node.settings.name, &reply)
        };
        let before = node.quorum.borrow().clone();
        let unreachable =
            |l: &Option<QuorumLoss>| l.as_ref().map(|l| l.unreachable().cloned().collect::<Vec<_>>());
        if unreachable(&before) == unreachable(&loss) {
            continue;
        }
        match &loss {
            Some(loss) => tracing::warn!("{loss}"),
            None => tracing::info!("Raft quorum regained: a majority of voters answers again"),
        }
        node.quorum.send_replace(loss);
    }
}
