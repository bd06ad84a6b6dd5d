//! One INFO line per Raft role change, saying what happened and why.

use std::sync::Arc;

use openraft::ServerState;

use super::RaftNode;
use crate::raft::NodeId;

pub(super) async fn run(node: Arc<RaftNode>) {
    let mut metrics = node.raft.metrics();
    let mut last: Option<(ServerState, Option<NodeId>, u64)> = None;
    loop {
        let (state, leader, term) = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_leader, m.current_term)
        };
        let now = (state, leader, term);
        if last != Some(now) {
            log_change(&node, last, now);
            last = Some(now);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

fn log_change(
    node: &RaftNode,
    before: Option<(ServerState, Option<NodeId>, u64)>,
    (state, leader, term): (ServerState, Option<NodeId>, u64),
) {
    let addr = |id: Option<NodeId>| match id {
        Some(id) => node.addr_of(id).unwrap_or_else(|| format!("node {id}")),
        None => "none".to_string(),
    };
    let (prev_state, prev_leader) = match before {
        Some((s, l, _)) => (Some(s), l),
        None => (None, None),
    };
    match state {
        ServerState::Leader if prev_state != Some(ServerState::Leader) => {
            tracing::info!(term, "raft: elected Raft leader (won the vote of a majority)");
        }
        ServerState::Candidate if prev_state != Some(ServerState::Candidate) => {
            let reason = match prev_leader {
                Some(_) => format!(
                    "no heartbeat from leader {} within the election timeout",
                    addr(prev_leader)
                ),
                None => "no leader known".to_string(),
            };
            tracing::info!(term, "raft: starting an election: {reason}");
        }
        ServerState::Follower if leader.is_some() && leader != prev_leader => {
            tracing::info!(term, leader = %addr(leader), "raft: following the Raft leader");
        }
        ServerState::Follower if leader.is_none() && prev_leader.is_some() => {
            tracing::info!(
                term,
                "raft: lost the Raft leader {}; waiting for a new one",
                addr(prev_leader)
            );
        }
        ServerState::Learner if prev_state.is_none() => {
            tracing::info!("raft: not yet part of a formed group (learner)");
        }
        ServerState::Shutdown => tracing::info!("raft: stopped"),
        _ => {}
    }
}
