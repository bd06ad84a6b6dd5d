//! Whether an operator's membership change may go ahead: pure, so every refusal is a row of
//! the table test below. The leader gathers the facts (`node::membership`) and acts.
//!
//! The rules protect the two promises: never two writable primaries, never a lost
//! acknowledged write.
//! - Removing the node of the primary (the `leader` key holder) is refused without `force`:
//!   its agent keeps PostgreSQL running while its keyspace writes are no longer answered;
//!   switch over first.
//! - Removing a voter is refused without `force` when the voters left would not include a
//!   reachable majority, or when the current voters do not: openraft commits the change
//!   through a joint configuration, which needs a majority of both the old and the new set,
//!   and a group left without a reachable majority cannot elect a leader or keep a lease.
//! - Removing the last voter is refused even with `force`: there would be no group left.

use std::collections::BTreeSet;

use crate::raft::NodeId;

/// The group as the Raft leader sees it when the change is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupView {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
    /// Members that answered a status request just now (the leader counts itself).
    pub reachable: BTreeSet<NodeId>,
    /// The node of the member holding the primary lease, when known.
    pub primary_node: Option<NodeId>,
}

/// The change asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    AddLearner(NodeId),
    Promote(NodeId),
    Remove(NodeId),
}

/// What openraft is asked to do, once the change is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Already so: nothing to change.
    Nothing,
    AddLearner(NodeId),
    /// Wait for the learner to catch up, then make it a voter.
    Promote(NodeId),
    /// A voter leaves the voter set and the group (joint consensus).
    RemoveVoter(NodeId),
    /// A learner leaves the group (no vote changes).
    RemoveLearner(NodeId),
}

/// Why the change is refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it is not a member of the Raft group")]
    NotAMember,
    #[error(
        "it runs the primary (it holds the `leader` key): switch over to another member first, or --force"
    )]
    PrimaryNode,
    #[error(
        "the {remaining} voters left would have only {reachable} reachable, and {needed} make a majority: \
         the group could not elect a leader nor keep the primary's lease (--force to remove anyway)"
    )]
    NoReachableMajorityLeft {
        remaining: usize,
        reachable: usize,
        needed: usize,
    },
    #[error(
        "only {reachable} of the {voters} current voters are reachable, and {needed} make a majority: \
         the change could not be committed (--force to try anyway)"
    )]
    NoReachableMajorityNow {
        voters: usize,
        reachable: usize,
        needed: usize,
    },
    #[error("it is the last voter: removing it would leave no group")]
    LastVoter,
}

impl Refusal {
    /// Whether `--force` overrides it.
    pub fn forcible(&self) -> bool {
        matches!(
            self,
            Refusal::PrimaryNode
                | Refusal::NoReachableMajorityLeft { .. }
                | Refusal::NoReachableMajorityNow { .. }
        )
    }
}

fn majority(of: usize) -> usize {
    of / 2 + 1
}

/// The plan for `change` on `group`, or why it is refused (`force` lifts the forcible refusals).
pub fn plan(change: Change, group: &GroupView, force: bool) -> Result<Plan, Refusal> {
    let check = |refusal: Refusal| -> Result<(), Refusal> {
        if force && refusal.forcible() {
            Ok(())
        } else {
            Err(refusal)
        }
    };
    match change {
        Change::AddLearner(id) if group.voters.contains(&id) || group.learners.contains(&id) => {
            Ok(Plan::Nothing)
        }
        Change::AddLearner(id) => Ok(Plan::AddLearner(id)),
        // Already done (its agent's own join request may have promoted it first).
        Change::Promote(id) if group.voters.contains(&id) => Ok(Plan::Nothing),
        Change::Promote(id) if group.learners.contains(&id) => Ok(Plan::Promote(id)),
        Change::Promote(_) => Err(Refusal::NotAMember),
        Change::Remove(id) if group.learners.contains(&id) => Ok(Plan::RemoveLearner(id)),
        Change::Remove(id) if !group.voters.contains(&id) => Err(Refusal::NotAMember),
        Change::Remove(id) => {
            if group.voters.len() == 1 {
                return Err(Refusal::LastVoter);
            }
            if group.primary_node == Some(id) {
                check(Refusal::PrimaryNode)?;
            }
            let reachable_now = group.voters.intersection(&group.reachable).count();
            if reachable_now < majority(group.voters.len()) {
                check(Refusal::NoReachableMajorityNow {
                    voters: group.voters.len(),
                    reachable: reachable_now,
                    needed: majority(group.voters.len()),
                })?;
            }
            let remaining: BTreeSet<NodeId> = group.voters.iter().copied().filter(|v| *v != id).collect();
            let reachable_left = remaining.intersection(&group.reachable).count();
            if reachable_left < majority(remaining.len()) {
                check(Refusal::NoReachableMajorityLeft {
                    remaining: remaining.len(),
                    reachable: reachable_left,
                    needed: majority(remaining.len()),
                })?;
            }
            Ok(Plan::RemoveVoter(id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[NodeId]) -> BTreeSet<NodeId> {
        v.iter().copied().collect()
    }

    fn group(
        voters: &[NodeId],
        learners: &[NodeId],
        reachable: &[NodeId],
        primary: Option<NodeId>,
    ) -> GroupView {
        GroupView {
            voters: ids(voters),
            learners: ids(learners),
            reachable: ids(reachable),
            primary_node: primary,
        }
    }

    /// What the row shows, the change, the group, `--force`, the expected answer.
    type Row = (&'static str, Change, GroupView, bool, Result<Plan, Refusal>);

    #[test]
    fn membership_rule_table() {
        use Change::*;
        let three_up = group(&[1, 2, 3], &[], &[1, 2, 3], Some(1));
        let five_up = group(&[1, 2, 3, 4, 5], &[], &[1, 2, 3, 4, 5], Some(1));
        #[rustfmt::skip]
        let rows: Vec<Row> = vec![
            ("add a new node as learner", AddLearner(4), three_up.clone(), false, Ok(Plan::AddLearner(4))),
            ("adding a learner again changes nothing", AddLearner(4), group(&[1, 2, 3], &[4], &[1, 2, 3], Some(1)), false, Ok(Plan::Nothing)),
            ("adding a voter changes nothing", AddLearner(2), three_up.clone(), false, Ok(Plan::Nothing)),
            ("promote a learner", Promote(4), group(&[1, 2, 3], &[4], &[1, 2, 3, 4], Some(1)), false, Ok(Plan::Promote(4))),
            ("promoting a voter changes nothing", Promote(2), three_up.clone(), false, Ok(Plan::Nothing)),
            ("promote a stranger", Promote(9), three_up.clone(), false, Err(Refusal::NotAMember)),
            ("remove a replica's node from five", Remove(5), five_up.clone(), false, Ok(Plan::RemoveVoter(5))),
            ("remove a replica's node from three", Remove(3), three_up.clone(), false, Ok(Plan::RemoveVoter(3))),
            ("remove a learner", Remove(4), group(&[1, 2, 3], &[4], &[1, 2, 3], Some(1)), false, Ok(Plan::RemoveLearner(4))),
            ("remove an unreachable learner", Remove(4), group(&[1, 2, 3], &[4], &[1, 2], Some(1)), false, Ok(Plan::RemoveLearner(4))),
            ("remove a stranger", Remove(9), three_up.clone(), true, Err(Refusal::NotAMember)),
            ("the primary's node is refused", Remove(1), three_up.clone(), false, Err(Refusal::PrimaryNode)),
            ("the primary's node with --force", Remove(1), three_up.clone(), true, Ok(Plan::RemoveVoter(1))),
            ("no primary: any node", Remove(1), group(&[1, 2, 3], &[], &[1, 2, 3], None), false, Ok(Plan::RemoveVoter(1))),
            ("a dead node out of three: two left, both reachable", Remove(3), group(&[1, 2, 3], &[], &[1, 2], Some(1)), false, Ok(Plan::RemoveVoter(3))),
            ("a live node out of three with one dead: one of two left",
             Remove(2), group(&[1, 2, 3], &[], &[1, 2], Some(1)), false,
             Err(Refusal::NoReachableMajorityLeft { remaining: 2, reachable: 1, needed: 2 })),
            ("the same with --force", Remove(2), group(&[1, 2, 3], &[], &[1, 2], Some(1)), true, Ok(Plan::RemoveVoter(2))),
            ("five with two dead: removing a dead one leaves 3 of 4",
             Remove(5), group(&[1, 2, 3, 4, 5], &[], &[1, 2, 3], Some(1)), false, Ok(Plan::RemoveVoter(5))),
            ("five with two dead: removing a live one leaves 2 of 4",
             Remove(3), group(&[1, 2, 3, 4, 5], &[], &[1, 2, 3], Some(1)), false,
             Err(Refusal::NoReachableMajorityLeft { remaining: 4, reachable: 2, needed: 3 })),
            ("four with two dead: no majority now, the joint change could not commit",
             Remove(4), group(&[1, 2, 3, 4], &[], &[1, 2], Some(1)), false,
             Err(Refusal::NoReachableMajorityNow { voters: 4, reachable: 2, needed: 3 })),
            ("the last voter, even with --force", Remove(1), group(&[1], &[], &[1], None), true, Err(Refusal::LastVoter)),
            ("two voters, one dead: remove the dead one", Remove(2), group(&[1, 2], &[], &[1], None), false,
             Err(Refusal::NoReachableMajorityNow { voters: 2, reachable: 1, needed: 2 })),
            ("two voters, one dead, with --force", Remove(2), group(&[1, 2], &[], &[1], None), true, Ok(Plan::RemoveVoter(2))),
        ];
        for (what, change, group, force, expected) in rows {
            assert_eq!(plan(change, &group, force), expected, "{what}");
        }
    }

    /// Over every reachability pattern of five voters: without --force an allowed removal
    /// always leaves a reachable majority, and never removes the primary's node.
    #[test]
    fn an_allowed_removal_always_leaves_a_reachable_majority() {
        let voters = ids(&[1, 2, 3, 4, 5]);
        for mask in 0u32..32 {
            let reachable: BTreeSet<NodeId> = (1..=5).filter(|i| mask & (1 << (i - 1)) != 0).collect();
            for target in 1..=5 {
                let g = GroupView {
                    voters: voters.clone(),
                    learners: BTreeSet::new(),
                    reachable: reachable.clone(),
                    primary_node: Some(1),
                };
                if let Ok(Plan::RemoveVoter(id)) = plan(Change::Remove(target), &g, false) {
                    assert_ne!(id, 1, "the primary's node removed: {g:?}");
                    let left: Vec<_> = voters
                        .iter()
                        .filter(|v| **v != id && reachable.contains(v))
                        .collect();
                    assert!(left.len() >= 3, "{g:?} removing {id}");
                }
            }
        }
    }
}
