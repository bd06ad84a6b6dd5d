//! This node's Raft state, and the whole group's as gathered from every member.

use std::time::Duration;

use openraft::ServerState;

use std::collections::HashMap;

use super::{NodeKind, RaftNode, ReadQuery};
use crate::cluster::ClusterView;
use crate::grpc::pb::admin::{MemberRaftStatus, NodeStatusReply, NodeStatusRequest, RaftStatusReply};

/// The role a Raft leader reports in status replies (`role_name(ServerState::Leader)`).
pub const LEADER_ROLE: &str = "leader";

pub fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => LEADER_ROLE,
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

impl RaftNode {
    pub async fn node_status(&self) -> NodeStatusReply {
        let m = self.raft.metrics().borrow().clone();
        let committed = self.raft.with_raft_state(|s| s.committed).await.ok().flatten();
        let membership = m.membership_config.membership();
        let addr_of = |id: u64| {
            membership
                .get_node(&id)
                .map(|n| n.addr.clone())
                .unwrap_or_default()
        };
        let initialized = m.last_log_index.is_some() || m.vote.leader_id().term > 0;
        NodeStatusReply {
            id: self.id,
            addr: self.settings.self_addr.clone(),
            name: self.settings.name.clone(),
            role: role_name(m.state).to_string(),
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            has_last_log: m.last_log_index.is_some(),
            commit_index: committed.map_or(0, |l| l.index),
            has_commit: committed.is_some(),
            applied_index: m.last_applied.map_or(0, |l| l.index),
            has_applied: m.last_applied.is_some(),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            has_snapshot: m.snapshot.is_some(),
            purged_index: m.purged.map_or(0, |l| l.index),
            has_purged: m.purged.is_some(),
            leader_id: m.current_leader.unwrap_or(0),
            has_leader: m.current_leader.is_some(),
            cluster: self.settings.cluster.clone(),
            initialized,
            matched: m
                .replication
                .as_ref()
                .map(|r| r.iter().map(|(id, l)| (*id, l.map_or(0, |l| l.index))).collect())
                .unwrap_or_default(),
            voters: membership.voter_ids().map(|id| (id, addr_of(id))).collect(),
            learners: membership.learner_ids().map(|id| (id, addr_of(id))).collect(),
            configured_addrs: self.settings.all_addrs().map(|a| a.trim().to_string()).collect(),
            kind: self.settings.kind.as_str().to_string(),
        }
    }

    /// Every member's status, asking each directly (1 s each, in parallel). Members that do
    /// not answer are listed with the error rather than left out.
    pub async fn raft_status(&self) -> RaftStatusReply {
        let mine = self.node_status().await;
        let mut members: Vec<(u64, String, bool)> =
            mine.voters.iter().map(|(id, a)| (*id, a.clone(), true)).collect();
        members.extend(mine.learners.iter().map(|(id, a)| (*id, a.clone(), false)));
        if members.is_empty() {
            // Not formed yet (waiting for a majority of the configured members, or to join):
            // show this node and its configured partners.
            members.extend(
                self.settings
                    .all_addrs()
                    .map(|a| (crate::raft::node_id_for(a), a.trim().to_string(), false)),
            );
        }
        members.sort_by(|a, b| a.1.cmp(&b.1));

        let fetches = members.iter().map(|(id, addr, voter)| {
            let mine = mine.clone();
            async move {
                let status = if *id == self.id {
                    Ok(mine)
                } else {
                    self.remote_status(addr).await
                };
                match status {
                    Ok(s) => MemberRaftStatus {
                        id: *id,
                        addr: addr.clone(),
                        status: Some(s),
                        voter: *voter,
                        ..Default::default()
                    },
                    Err(e) => MemberRaftStatus {
                        id: *id,
                        addr: addr.clone(),
                        error: e,
                        voter: *voter,
                        ..Default::default()
                    },
                }
            }
        });
        let mut statuses: Vec<MemberRaftStatus> = futures::future::join_all(fetches).await;
        let known = self.known_voters();
        for m in &mut statuses {
            let label = known.get(m.addr.trim());
            let answered = m.status.as_ref();
            m.name = answered
                .map(|s| s.name.clone())
                .or_else(|| label.map(|(name, _)| name.clone()))
                .unwrap_or_default();
            m.witness = answered.is_some_and(|s| s.kind == NodeKind::Witness.as_str())
                || label.is_some_and(|(_, witness)| *witness);
        }

        // Lag is the leader's view: its last log index minus what it matched on each member.
        let leader = statuses
            .iter()
            .filter_map(|m| m.status.as_ref())
            .find(|s| s.role == LEADER_ROLE)
            .cloned();
        if let Some(leader) = &leader {
            for m in &mut statuses {
                if m.id == leader.id {
                    m.lag = 0;
                    m.has_lag = true;
                } else if let Some(matched) = leader.matched.get(&m.id) {
                    m.lag = leader.last_log_index.saturating_sub(*matched);
                    m.has_lag = true;
                }
            }
        }
        RaftStatusReply {
            members: statuses,
            leader_id: leader.as_ref().map_or(0, |l| l.id),
            has_leader: leader.is_some(),
        }
    }

    /// Name and witness flag of every Raft address the keyspace knows (this node's copy):
    /// members publish `raft_addr`, witnesses `witnesses/<name>`. Names voters that are down.
    fn known_voters(&self) -> HashMap<String, (String, bool)> {
        let read = self.read_local(&ReadQuery {
            key: String::new(),
            prefix: true,
            linearizable: false,
        });
        let view = ClusterView::from_entries(&read.entries, read.as_of_ms);
        let members = view
            .members
            .iter()
            .filter_map(|m| Some((m.raft_addr.clone()?.trim().to_string(), (m.name.clone(), false))));
        let witnesses = view
            .witnesses
            .iter()
            .map(|w| (w.raft_addr.trim().to_string(), (w.name.clone(), true)));
        members.chain(witnesses).collect()
    }

    async fn remote_status(&self, addr: &str) -> Result<NodeStatusReply, String> {
        let mut client = self.admin_client(addr).map_err(|e| e.to_string())?;
        let mut req = tonic::Request::new(NodeStatusRequest {});
        req.set_timeout(Duration::from_secs(1));
        match tokio::time::timeout(Duration::from_millis(1200), client.node_status(req)).await {
            Ok(Ok(reply)) => Ok(reply.into_inner()),
            Ok(Err(status)) => Err(format!("{}: {}", status.code(), status.message())),
            Err(_) => Err("no answer within 1s".to_string()),
        }
    }
}
