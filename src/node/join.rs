//! The leader side of `JoinCluster`: adding a node that started with no Raft state to the
//! formed group, as a learner first and, once it caught up, as a voter.
//!
//! openraft takes one membership change at a time, so joins are serialised on the leader
//! (`join_lock`) and a change still in progress is answered `BUSY`: the joiner retries with
//! back-off. The change runs in its own task, so a joiner that gives up waiting (its RPC
//! timed out) never cancels a change half-way — `change_membership` commits a joint
//! configuration first and must be left to finish it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::ChangeMembers;
use tokio::time::Instant;

use super::{KeyspaceError, RaftNode};
use crate::grpc::pb::admin::{JoinOutcome, JoinReply, JoinRequest};
use crate::raft::{node_id_for, BasicNode, NodeId};

/// How long a forwarded join may take end to end; the joiner waits a little longer.
pub(super) const JOIN_FORWARD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the leader answers within; a join still running then is answered `BUSY`.
const JOIN_LEADER_WAIT: Duration = Duration::from_secs(20);
/// How long a new learner may take to catch up before the attempt is answered `BUSY`
/// (the learner stays; the next attempt waits for it again).
const LEARNER_CATCH_UP: Duration = Duration::from_secs(15);

/// Why a membership change on the leader did not happen.
#[derive(Debug, Clone, thiserror::Error)]
enum AdmitError {
    #[error("another membership change is in progress")]
    InProgress,
    #[error("the learner has not caught up within {0:?}")]
    NotCaughtUp(Duration),
    #[error(transparent)]
    Keyspace(#[from] KeyspaceError),
}

impl RaftNode {
    /// Handle a `JoinCluster` request: refuse another scope, forward to the Raft leader, or
    /// (as leader) add the node.
    pub async fn join(self: &Arc<Self>, req: JoinRequest) -> Result<JoinReply, KeyspaceError> {
        if req.scope != self.settings.cluster {
            tracing::warn!(
                joiner = %req.name, addr = %req.addr, their_scope = %req.scope, our_scope = %self.settings.cluster,
                "raft: refused a join request from another scope"
            );
            return Ok(JoinReply {
                outcome: JoinOutcome::OtherScope.into(),
                detail: format!(
                    "{} belongs to scope {:?}, the joiner to {:?}",
                    self.settings.self_addr, self.settings.cluster, req.scope
                ),
                voters: Default::default(),
            });
        }
        if req.addr.trim().is_empty() {
            return Err(KeyspaceError::Invalid(
                "a join request needs the joiner's address".into(),
            ));
        }
        let deadline = Instant::now() + JOIN_FORWARD_TIMEOUT;
        let leader = self.wait_for_leader(deadline).await?;
        if leader != self.id {
            if req.forwarded {
                return Err(KeyspaceError::NotLeader);
            }
            tracing::info!(joiner = %req.name, addr = %req.addr, leader, "raft: forwarding a join request to the Raft leader");
            let forward = JoinRequest {
                forwarded: true,
                ..req
            };
            let (_, reply) = self
                .call_leader(leader, deadline, forward, |mut client, r| async move {
                    client.join_cluster(r).await
                })
                .await?;
            return Ok(reply);
        }

        if let Some(holder) = self.name_held_elsewhere(&req.name, req.addr.trim()) {
            tracing::error!(
                joiner = %req.name, addr = %req.addr, member_at = %holder,
                "raft: refused a join request: a member of that name runs at another address \
                 (two agents with one `name`?)"
            );
            return Ok(JoinReply {
                outcome: JoinOutcome::NameTaken.into(),
                detail: format!(
                    "member {:?} already runs at {holder}; give this agent its own `name`, or wait \
                     until that member's key expires if it moved",
                    req.name
                ),
                voters: Default::default(),
            });
        }
        let task = tokio::spawn(self.clone().admit(req.name.clone(), req.addr.trim().to_string()));
        let result = match tokio::time::timeout(JOIN_LEADER_WAIT, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(AdmitError::Keyspace(KeyspaceError::Stopped(e.to_string()))),
            Err(_) => Err(AdmitError::InProgress),
        };
        match result {
            Ok(voters) => Ok(JoinReply {
                outcome: JoinOutcome::Voter.into(),
                detail: String::new(),
                voters: voters.into_iter().collect(),
            }),
            Err(e @ (AdmitError::InProgress | AdmitError::NotCaughtUp(_))) => Ok(JoinReply {
                outcome: JoinOutcome::Busy.into(),
                detail: e.to_string(),
                voters: Default::default(),
            }),
            Err(AdmitError::Keyspace(e)) => Err(e),
        }
    }

    /// Make `addr` a voter (one change at a time). Returns the voters afterwards.
    async fn admit(
        self: Arc<Self>,
        name: String,
        addr: String,
    ) -> Result<BTreeMap<NodeId, String>, AdmitError> {
        let _one_at_a_time = self.join_lock.lock().await;
        let id = node_id_for(&addr);
        let (voters, learners) = self.membership_ids();
        if voters.contains(&id) {
            tracing::info!(joiner = %name, %addr, "raft: join request from a node that already is a voter");
            return Ok(self.voters());
        }
        if learners.contains(&id) {
            tracing::info!(joiner = %name, %addr, "raft: joiner already is a learner; waiting for it to catch up");
        } else {
            tracing::info!(joiner = %name, %addr, node_id = id, "raft: adding the joiner as a learner");
        }
        // Blocks until the learner caught up (re-adding an existing learner is harmless).
        let added = tokio::time::timeout(
            LEARNER_CATCH_UP,
            self.raft.add_learner(id, BasicNode { addr: addr.clone() }, true),
        )
        .await
        .map_err(|_| AdmitError::NotCaughtUp(LEARNER_CATCH_UP))?;
        added.map_err(admit_error)?;
        tracing::info!(joiner = %name, %addr, "raft: the learner caught up; promoting it to voter");
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
            .await
            .map_err(admit_error)?;
        let voters = self.voters();
        let addrs: Vec<&str> = voters.values().map(String::as_str).collect();
        tracing::info!(joiner = %name, %addr, voters = ?addrs, "raft: the joiner is now a voter");
        Ok(voters)
    }

    /// The Raft address of the live member `name` (its `members/<name>` key, which expires when
    /// its agent stops) when that is not `addr`.
    fn name_held_elsewhere(&self, name: &str, addr: &str) -> Option<String> {
        let key = crate::keyspace::Key::member(name).ok()?;
        let read = self.read_local(&super::ReadQuery {
            key: key.to_string(),
            prefix: false,
            linearizable: false,
        });
        let entry = read.entries.into_iter().next()?;
        let member: crate::cluster::MemberStatus = serde_json::from_value(entry.value).ok()?;
        member.raft_addr.filter(|held| held.trim() != addr)
    }

    /// Voter and learner ids of this node's latest membership.
    pub(super) fn membership_ids(&self) -> (BTreeSet<NodeId>, BTreeSet<NodeId>) {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        (
            membership.voter_ids().collect(),
            membership.learner_ids().collect(),
        )
    }

    fn voters(&self) -> BTreeMap<NodeId, String> {
        let (voters, _) = self.membership_ids();
        voters
            .into_iter()
            .map(|id| (id, self.addr_of(id).unwrap_or_default()))
            .collect()
    }
}

fn admit_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> AdmitError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => KeyspaceError::NotLeader.into(),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(_) | ChangeMembershipError::LearnerNotFound(_),
        )) => AdmitError::InProgress,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            KeyspaceError::Invalid(e.to_string()).into()
        }
        RaftError::Fatal(e) => KeyspaceError::Stopped(e.to_string()).into(),
    }
}
