//! The leader side of an operator's membership change (`pgquorumctl members add|promote|remove`,
//! the `ChangeMembers` RPC): find the member, gather what the refusal rules need, apply the
//! rules (`membership_rule`, pure) and ask openraft for the change.
//!
//! Changes share the join lock with `join`, so there is one membership change at a time; openraft
//! commits each through a joint configuration. A removed member's `members/<name>` record is
//! deleted after its Raft removal committed. Removing the Raft leader itself works: openraft
//! commits the change, the leader steps down and the remaining voters elect a new one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::ChangeMembers;
use tokio::time::Instant;

use super::membership_rule::{plan, Change, GroupView, Plan};
use super::{KeyspaceError, RaftNode, ReadQuery};
use crate::grpc::pb::admin::{MembersChangeReply, MembersChangeRequest, MembersOp};
use crate::keyspace::{Command, Key, Precondition};
use crate::raft::{node_id_for, BasicNode, NodeId};

/// How long a change may take end to end on the leader (a promotion waits for the learner to
/// catch up first); the forwarding node waits a little longer.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a promotion waits for the learner to catch up before it is refused.
const CATCH_UP: Duration = Duration::from_secs(45);

/// A Raft member the request names.
#[derive(Debug, Clone)]
struct Target {
    id: NodeId,
    addr: String,
    /// Its member name, when known (for its `members/<name>` record and the primary check).
    name: Option<String>,
}

impl RaftNode {
    /// Handle a `ChangeMembers` request: forward to the Raft leader, or (as leader) check and
    /// apply it. A refusal is an answer (`refused`), not an error, so it crosses a forward intact.
    pub async fn change_members(
        self: &Arc<Self>,
        req: MembersChangeRequest,
    ) -> Result<MembersChangeReply, KeyspaceError> {
        let deadline = Instant::now() + CHANGE_TIMEOUT + Duration::from_secs(5);
        let leader = self.wait_for_leader(deadline).await?;
        if leader != self.id {
            if req.forwarded {
                return Err(KeyspaceError::NotLeader);
            }
            let forward = MembersChangeRequest {
                forwarded: true,
                ..req
            };
            let (_, reply) = self
                .call_leader(leader, deadline, forward, |mut client, r| async move {
                    client.change_members(r).await
                })
                .await?;
            return Ok(reply);
        }
        // In its own task: an operator who interrupts pgquorumctl never cancels a change
        // half-way (openraft must be left to finish a joint configuration).
        let task = tokio::spawn(self.clone().change_as_leader(req));
        match tokio::time::timeout(CHANGE_TIMEOUT, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(KeyspaceError::Stopped(e.to_string())),
            Err(_) => Err(KeyspaceError::Unconfirmed {
                waited: CHANGE_TIMEOUT,
            }),
        }
    }

    async fn change_as_leader(
        self: Arc<Self>,
        req: MembersChangeRequest,
    ) -> Result<MembersChangeReply, KeyspaceError> {
        let _one_at_a_time = self.join_lock.lock().await;
        let target = match req.op() {
            MembersOp::AddLearner => {
                let addr = req.addr.trim().to_string();
                if addr.is_empty() {
                    return Err(KeyspaceError::Invalid("adding a member needs its address".into()));
                }
                Target {
                    id: node_id_for(&addr),
                    addr,
                    name: Some(req.name.clone()).filter(|n| !n.is_empty()),
                }
            }
            MembersOp::Promote | MembersOp::Remove => match self.find_member(&req.name).await {
                Some(target) => target,
                None => {
                    return Ok(self.refused(format!(
                        "{:?} is not a member of the Raft group (no reachable member of that name, \
                         no `members/{}` record at a Raft address); give its Raft address instead",
                        req.name, req.name
                    )))
                }
            },
            MembersOp::Unspecified => {
                return Err(KeyspaceError::Invalid("no membership operation given".into()))
            }
        };
        let change = match req.op() {
            MembersOp::AddLearner => Change::AddLearner(target.id),
            MembersOp::Promote => Change::Promote(target.id),
            _ => Change::Remove(target.id),
        };
        let view = self.group_view().await;
        let shown = target.name.clone().unwrap_or_else(|| target.addr.clone());
        let plan = match plan(change, &view, req.force) {
            Ok(plan) => plan,
            Err(refusal) => {
                tracing::warn!(member = %shown, addr = %target.addr, %refusal, "raft: refused a membership change");
                return Ok(self.refused(format!("refused to change {shown} ({}): {refusal}", target.addr)));
            }
        };
        let detail = match self.carry_out(plan, &target, &shown).await? {
            Ok(detail) => detail,
            Err(refused) => return Ok(self.refused(refused)),
        };
        let (voters, learners) = self.membership_addrs();
        Ok(MembersChangeReply {
            refused: false,
            detail,
            voters: voters.into_iter().collect(),
            learners: learners.into_iter().collect(),
        })
    }

    /// What was done (`Ok`), or why nothing was (`Err`, a refusal for the operator).
    async fn carry_out(
        &self,
        plan: Plan,
        target: &Target,
        shown: &str,
    ) -> Result<Result<String, String>, KeyspaceError> {
        let addr = &target.addr;
        match plan {
            Plan::Nothing => {
                let what = match self.membership_ids().0.contains(&target.id) {
                    true => "a voter",
                    false => "a learner",
                };
                Ok(Ok(format!("{shown} ({addr}) already is {what}; nothing changed")))
            }
            Plan::AddLearner(id) => {
                tracing::info!(member = %shown, %addr, node_id = id, "raft: an operator adds a learner");
                self.raft
                    .add_learner(id, BasicNode { addr: addr.clone() }, false)
                    .await
                    .map_err(change_error)?;
                Ok(Ok(format!(
                    "{shown} ({addr}) added as a learner; it catches up once its agent runs"
                )))
            }
            Plan::Promote(id) => {
                tracing::info!(member = %shown, %addr, "raft: an operator promotes a learner; waiting for it to catch up");
                // Re-adding an existing learner with `blocking` waits until it caught up.
                let caught_up = tokio::time::timeout(
                    CATCH_UP,
                    self.raft.add_learner(id, BasicNode { addr: addr.clone() }, true),
                )
                .await;
                match caught_up {
                    Ok(added) => added.map_err(change_error)?,
                    Err(_) => {
                        return Ok(Err(format!(
                            "{shown} ({addr}) has not caught up within {CATCH_UP:?} (is its agent running?); \
                             it stays a learner"
                        )))
                    }
                };
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                    .await
                    .map_err(change_error)?;
                tracing::info!(member = %shown, %addr, "raft: the learner is now a voter");
                Ok(Ok(format!("{shown} ({addr}) is now a voter")))
            }
            Plan::RemoveVoter(id) => {
                tracing::warn!(member = %shown, %addr, "raft: an operator removes a voter");
                self.raft
                    .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                    .await
                    .map_err(change_error)?;
                self.forget_member_record(target).await;
                Ok(Ok(format!("{shown} ({addr}) removed from the Raft group")))
            }
            Plan::RemoveLearner(id) => {
                tracing::warn!(member = %shown, %addr, "raft: an operator removes a learner");
                self.raft
                    .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                    .await
                    .map_err(change_error)?;
                self.forget_member_record(target).await;
                Ok(Ok(format!("{shown} ({addr}) removed from the Raft group")))
            }
        }
    }

    /// Delete the removed member's `members/<name>` record, only when it still names the
    /// removed address (a new agent may already run under that name elsewhere).
    async fn forget_member_record(&self, target: &Target) {
        let Some(name) = &target.name else { return };
        let Ok(key) = Key::member(name) else { return };
        let Some(entry) = self.member_record(name) else {
            return;
        };
        let record_addr = serde_json::from_value::<crate::cluster::MemberStatus>(entry.value.clone())
            .ok()
            .and_then(|m| m.raft_addr);
        if record_addr.as_deref().map(str::trim) != Some(target.addr.as_str()) {
            return;
        }
        let delete = Command::Delete {
            key,
            precondition: Precondition::Revision(entry.revision),
        };
        // Not `write`: this node may have just stopped leading (it removed itself).
        if let Err(e) = self.write(delete, false).await {
            tracing::warn!(member = %name, error = %e, "raft: the removed member's record could not be deleted (it expires with its ttl)");
        }
    }

    fn member_record(&self, name: &str) -> Option<crate::keyspace::Entry> {
        let key = Key::member(name).ok()?;
        self.read_local(&ReadQuery {
            key: key.to_string(),
            prefix: false,
            linearizable: false,
        })
        .entries
        .into_iter()
        .next()
    }

    /// The Raft member `name` means: a member whose own status gives that name or address,
    /// else the Raft address in its `members/<name>` record.
    async fn find_member(&self, name: &str) -> Option<Target> {
        let name = name.trim();
        let (voters, learners) = self.membership_addrs();
        let members: BTreeMap<NodeId, String> = voters.into_iter().chain(learners).collect();
        if let Some((id, addr)) = members.iter().find(|(_, a)| a.as_str() == name) {
            let status = self.raft_status().await;
            let own_name = status
                .members
                .iter()
                .find(|m| m.id == *id)
                .and_then(|m| m.status.as_ref())
                .map(|s| s.name.clone())
                .or_else(|| self.name_recorded_at(addr));
            return Some(Target {
                id: *id,
                addr: addr.clone(),
                name: own_name,
            });
        }
        let status = self.raft_status().await;
        if let Some(m) = status
            .members
            .iter()
            .find(|m| m.status.as_ref().is_some_and(|s| s.name == name))
        {
            return Some(Target {
                id: m.id,
                addr: m.addr.clone(),
                name: Some(name.to_string()),
            });
        }
        let entry = self.member_record(name)?;
        let addr = serde_json::from_value::<crate::cluster::MemberStatus>(entry.value)
            .ok()?
            .raft_addr?;
        let addr = addr.trim().to_string();
        let id = node_id_for(&addr);
        members.contains_key(&id).then(|| Target {
            id,
            addr,
            name: Some(name.to_string()),
        })
    }

    /// The name of the member record that gives `addr` as its Raft address (a dead member
    /// removed by address).
    fn name_recorded_at(&self, addr: &str) -> Option<String> {
        self.read_local(&ReadQuery {
            key: crate::keyspace::MEMBERS_PREFIX.to_string(),
            prefix: true,
            linearizable: false,
        })
        .entries
        .into_iter()
        .filter_map(|e| serde_json::from_value::<crate::cluster::MemberStatus>(e.value).ok())
        .find(|m| m.raft_addr.as_deref().map(str::trim) == Some(addr))
        .map(|m| m.name)
    }

    /// What the refusal rules need: the membership, who answers now, the primary's node.
    async fn group_view(&self) -> GroupView {
        let (voters, learners) = self.membership_ids();
        let status = self.raft_status().await;
        let reachable = status
            .members
            .iter()
            .filter(|m| m.status.is_some())
            .map(|m| m.id)
            .chain(std::iter::once(self.id))
            .collect();
        let primary_node = self
            .read_local(&ReadQuery {
                key: Key::Leader.to_string(),
                prefix: false,
                linearizable: false,
            })
            .entries
            .into_iter()
            .next()
            .and_then(|lease| self.node_of_holder(&lease));
        GroupView {
            voters,
            learners,
            reachable,
            primary_node,
        }
    }

    /// The Raft node of the `leader` lease holder: the address it took the lease with, else
    /// the one in its member record.
    fn node_of_holder(&self, lease: &crate::keyspace::Entry) -> Option<NodeId> {
        if let Some(addr) = &lease.holder_addr {
            return Some(node_id_for(addr.trim()));
        }
        let record = self.member_record(lease.holder.as_deref()?)?;
        let addr = serde_json::from_value::<crate::cluster::MemberStatus>(record.value)
            .ok()?
            .raft_addr?;
        Some(node_id_for(addr.trim()))
    }

    fn membership_addrs(&self) -> (BTreeMap<NodeId, String>, BTreeMap<NodeId, String>) {
        let (voters, learners) = self.membership_ids();
        let with_addr = |ids: BTreeSet<NodeId>| {
            ids.into_iter()
                .map(|id| (id, self.addr_of(id).unwrap_or_default()))
                .collect()
        };
        (with_addr(voters), with_addr(learners))
    }

    fn refused(&self, detail: String) -> MembersChangeReply {
        let (voters, learners) = self.membership_addrs();
        MembersChangeReply {
            refused: true,
            detail,
            voters: voters.into_iter().collect(),
            learners: learners.into_iter().collect(),
        }
    }
}

fn change_error(
    e: openraft::error::RaftError<NodeId, openraft::error::ClientWriteError<NodeId, BasicNode>>,
) -> KeyspaceError {
    use openraft::error::{ClientWriteError, RaftError};
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => KeyspaceError::NotLeader,
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            KeyspaceError::Invalid(e.to_string())
        }
        RaftError::Fatal(e) => KeyspaceError::Stopped(e.to_string()),
    }
}
