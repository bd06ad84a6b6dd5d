//! The formation rule: what a node that is not yet a voter does next, given what its
//! configured partners answered. Pure, so every case is a row of the table test below.
//!
//! The one invariant: a node never initialises a new group while a configured partner
//! answers, for the same scope, that it already belongs to one — it joins that group
//! instead. And it initialises its configured set S only when a majority of S (itself
//! included) is pristine and configured with the identical S: a group of S can only ever
//! elect a leader with a majority of S anyway, and two nodes whose files disagree can then
//! not both form a group with each other in it.
//!
//! After formation the replicated membership is the truth, not `partner_addrs`: a node with
//! Raft state that is no longer a member (the Raft leader's membership leaves it out, or the
//! last membership it applied does) was removed, and never asks to join again by itself
//! ([`Step::Removed`]); `pgquorumctl members add` brings it back. A node with state only
//! joins when it is a learner (its promotion was interrupted).

use std::collections::BTreeSet;

/// This node's side of the question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Myself {
    pub scope: String,
    pub addr: String,
    /// `raft.self_addr` and `raft.partner_addrs`.
    pub configured: BTreeSet<String>,
    /// No Raft state at all: initialising is still possible. A node with state (e.g. a
    /// learner whose promotion was interrupted by a restart) may only join.
    pub pristine: bool,
    /// What this node is in the last membership it applied.
    pub own_role: OwnRole,
}

/// This node's place in the last membership it applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnRole {
    /// Not in it (pristine, or removed).
    Absent,
    Learner,
    Voter,
}

/// What one configured partner answered to `NodeStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// No answer (down, not started yet, unreachable).
    Silent,
    Status {
        scope: String,
        /// It has Raft state: it belongs to a formed group.
        initialized: bool,
        /// Its own `self_addr` + `partner_addrs`.
        configured: BTreeSet<String>,
        /// It is the Raft leader: its membership is the group's latest.
        leader: bool,
        /// It knows a Raft leader (a member cut off from its group, or a removed one, does not).
        has_leader: bool,
        /// Addresses of the voters and learners of its membership.
        members: BTreeSet<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Ask this partner (a member of a formed group of our scope) to add us.
    Join {
        via: String,
    },
    /// Initialise a new group whose voters are exactly these addresses.
    Initialize {
        members: BTreeSet<String>,
    },
    Wait(Waiting),
    /// The Raft leader lists this node (a voter in its own membership): formation is over.
    Member,
    /// A voter in its own membership, but no Raft leader answered to confirm it (the group is
    /// electing, or this node was removed while it was down): keep asking, quietly.
    Unconfirmed,
    /// This node has Raft state but is no member of the group any more: it was removed. It
    /// never asks to join by itself. `leader` is the Raft leader that left it out, if one
    /// answered (else the last membership it applied did).
    Removed {
        leader: Option<String>,
    },
}

/// Why a node waits: logged whenever it changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Waiting {
    /// Pristine members of the configured set with the identical set, this node included.
    pub agreeing: Vec<String>,
    /// How many of the configured set must agree.
    pub needed: usize,
    /// Partners of our scope that are pristine but configured with another member set.
    pub disagreeing: Vec<String>,
    pub silent: Vec<String>,
    /// Partners that answered for another scope: never joined, never counted.
    pub other_scope: Vec<String>,
    /// This node has Raft state, so it cannot initialise; it waits for a formed group.
    pub has_state: bool,
}

/// The next formation step. `answers` are in configuration order; the first initialised
/// partner is the one joined through.
pub fn formation_step(me: &Myself, answers: &[(String, Answer)]) -> Step {
    let ours = |answer: &Answer| matches!(answer, Answer::Status { scope, .. } if *scope == me.scope);
    let leader_view = answers.iter().find_map(|(addr, answer)| match answer {
        Answer::Status {
            leader: true,
            members,
            ..
        } if ours(answer) => Some((addr, members)),
        _ => None,
    });
    if !me.pristine {
        let listed = leader_view.map(|(_, members)| members.contains(&me.addr));
        match (listed, me.own_role) {
            (Some(false), _) => {
                return Step::Removed {
                    leader: leader_view.map(|(addr, _)| addr.clone()),
                }
            }
            (Some(true), OwnRole::Voter) => return Step::Member,
            (None, OwnRole::Voter) => return Step::Unconfirmed,
            (None, OwnRole::Absent) => return Step::Removed { leader: None },
            // A learner, or listed again by the leader (`members add`): join.
            _ => {}
        }
    }
    // Join through the leader if it answered, else a partner that knows one, else the first
    // initialised partner (a removed member answers initialised but knows no leader).
    let initialised = |want_leader: bool, want_known: bool| {
        answers.iter().find_map(|(addr, answer)| match answer {
            Answer::Status {
                initialized: true,
                leader,
                has_leader,
                ..
            } if ours(answer) && (!want_leader || *leader) && (!want_known || *has_leader) => {
                Some(addr.clone())
            }
            _ => None,
        })
    };
    if let Some(via) = initialised(true, false)
        .or_else(|| initialised(false, true))
        .or_else(|| initialised(false, false))
    {
        return Step::Join { via };
    }
    let mut waiting = Waiting {
        agreeing: vec![me.addr.clone()],
        needed: me.configured.len() / 2 + 1,
        has_state: !me.pristine,
        ..Waiting::default()
    };
    for (addr, answer) in answers {
        match answer {
            Answer::Silent => waiting.silent.push(addr.clone()),
            Answer::Status { scope, .. } if *scope != me.scope => waiting.other_scope.push(addr.clone()),
            // Joined above: none of our scope is left here.
            Answer::Status {
                initialized: true, ..
            } => {}
            Answer::Status { configured, .. } if *configured == me.configured => {
                waiting.agreeing.push(addr.clone())
            }
            Answer::Status { .. } => waiting.disagreeing.push(addr.clone()),
        }
    }
    // Only configured members count towards the majority (an answer from an address that
    // is not in the set — impossible with answers built from the set — would not).
    let agreeing = waiting
        .agreeing
        .iter()
        .filter(|a| me.configured.contains(*a))
        .count();
    if me.pristine && agreeing >= waiting.needed {
        Step::Initialize {
            members: me.configured.clone(),
        }
    } else {
        Step::Wait(waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addrs: &[&str]) -> BTreeSet<String> {
        addrs.iter().map(|a| a.to_string()).collect()
    }

    fn me(addrs: &[&str]) -> Myself {
        Myself {
            scope: "demo".into(),
            addr: addrs[0].into(),
            configured: set(addrs),
            pristine: true,
            own_role: OwnRole::Absent,
        }
    }

    /// A node with Raft state, in the given place of its own membership.
    fn with_state(addrs: &[&str], own_role: OwnRole) -> Myself {
        Myself {
            pristine: false,
            own_role,
            ..me(addrs)
        }
    }

    fn status(scope: &str, initialized: bool, configured: &[&str]) -> Answer {
        Answer::Status {
            scope: scope.into(),
            initialized,
            configured: set(configured),
            leader: false,
            has_leader: false,
            members: BTreeSet::new(),
        }
    }

    /// A formed group's member: its Raft leader (`leader`) or a follower that knows one.
    fn formed(leader: bool, members: &[&str]) -> Answer {
        Answer::Status {
            scope: "demo".into(),
            initialized: true,
            configured: set(&ABC),
            leader,
            has_leader: true,
            members: set(members),
        }
    }

    fn answers(rows: &[(&str, Answer)]) -> Vec<(String, Answer)> {
        rows.iter().map(|(a, s)| (a.to_string(), s.clone())).collect()
    }

    const ABC: [&str; 3] = ["a", "b", "c"];

    /// What the row shows, this node, the partners' answers, the expected step.
    type Row = (&'static str, Myself, Vec<(String, Answer)>, Step);

    #[test]
    fn formation_rule_table() {
        use Answer::Silent;
        let init_abc = Step::Initialize { members: set(&ABC) };
        let join = |via: &str| Step::Join { via: via.into() };
        #[rustfmt::skip]
        let rows: Vec<Row> = vec![
            ("alone: a one-voter group at once",
             me(&["a"]), answers(&[]), Step::Initialize { members: set(&["a"]) }),
            ("all agree",
             me(&ABC), answers(&[("b", status("demo", false, &ABC)), ("c", status("demo", false, &ABC))]),
             init_abc.clone()),
            ("a majority agrees, the third is silent",
             me(&ABC), answers(&[("b", status("demo", false, &ABC)), ("c", Silent)]), init_abc.clone()),
            ("a majority agrees, the third disagrees",
             me(&ABC), answers(&[("b", status("demo", false, &["a", "b"])), ("c", status("demo", false, &ABC))]),
             init_abc.clone()),
            ("sets disagree: no majority for our set",
             me(&ABC), answers(&[("b", status("demo", false, &["b", "a"])), ("c", Silent)]),
             Step::Wait(Waiting { agreeing: vec!["a".into()], needed: 2, disagreeing: vec!["b".into()],
                                  silent: vec!["c".into()], ..Waiting::default() })),
            ("two-member sets that disagree",
             me(&["a", "b"]), answers(&[("b", status("demo", false, &ABC))]),
             Step::Wait(Waiting { agreeing: vec!["a".into()], needed: 2, disagreeing: vec!["b".into()],
                                  ..Waiting::default() })),
            ("a partner is initialised: join, even with a majority agreeing",
             me(&ABC), answers(&[("b", status("demo", false, &ABC)), ("c", status("demo", true, &["c"]))]),
             join("c")),
            ("an initialised partner with a different set is still joined",
             me(&["a", "b"]), answers(&[("b", status("demo", true, &["b"]))]), join("b")),
            ("the first initialised partner in configuration order",
             me(&ABC), answers(&[("b", status("demo", true, &ABC)), ("c", status("demo", true, &ABC))]),
             join("b")),
            ("a partner of another scope is never joined nor counted",
             me(&ABC), answers(&[("b", status("other", true, &ABC)), ("c", status("other", false, &ABC))]),
             Step::Wait(Waiting { agreeing: vec!["a".into()], needed: 2,
                                  other_scope: vec!["b".into(), "c".into()], ..Waiting::default() })),
            ("another scope does not hide our own initialised partner",
             me(&ABC), answers(&[("b", status("other", true, &ABC)), ("c", status("demo", true, &ABC))]),
             join("c")),
            ("nothing answers",
             me(&ABC), answers(&[("b", Silent), ("c", Silent)]),
             Step::Wait(Waiting { agreeing: vec!["a".into()], needed: 2,
                                  silent: vec!["b".into(), "c".into()], ..Waiting::default() })),
            ("a node with Raft state never initialises, even with everyone agreeing",
             with_state(&ABC, OwnRole::Learner),
             answers(&[("b", status("demo", false, &ABC)), ("c", status("demo", false, &ABC))]),
             Step::Wait(Waiting { agreeing: vec!["a".into(), "b".into(), "c".into()], needed: 2,
                                  has_state: true, ..Waiting::default() })),
            ("a learner (its promotion interrupted) joins a formed group",
             with_state(&ABC, OwnRole::Learner), answers(&[("b", Silent), ("c", status("demo", true, &ABC))]),
             join("c")),
            ("a learner the leader lists joins through the leader",
             with_state(&ABC, OwnRole::Learner),
             answers(&[("b", formed(false, &["b", "c", "a"])), ("c", formed(true, &["b", "c", "a"]))]),
             join("c")),
            ("removed: state, absent from its own membership, no leader answers",
             with_state(&ABC, OwnRole::Absent), answers(&[("b", status("demo", true, &ABC)), ("c", Silent)]),
             Step::Removed { leader: None }),
            ("removed: a voter in its own view, but the leader's membership leaves it out",
             with_state(&ABC, OwnRole::Voter), answers(&[("b", formed(false, &["b", "c"])), ("c", formed(true, &["b", "c"]))]),
             Step::Removed { leader: Some("c".into()) }),
            ("removed as a learner: the leader leaves it out",
             with_state(&ABC, OwnRole::Learner), answers(&[("b", formed(true, &["b", "c"])), ("c", Silent)]),
             Step::Removed { leader: Some("b".into()) }),
            ("added again (`members add`): absent from its own view, the leader lists it: join",
             with_state(&ABC, OwnRole::Absent), answers(&[("b", formed(true, &["a", "b", "c"])), ("c", Silent)]),
             join("b")),
            ("a voter the leader lists: a member, nothing to do",
             with_state(&ABC, OwnRole::Voter), answers(&[("b", formed(true, &["a", "b", "c"])), ("c", Silent)]),
             Step::Member),
            ("a voter with no leader answering: unconfirmed, never joins",
             with_state(&ABC, OwnRole::Voter), answers(&[("b", status("demo", true, &ABC)), ("c", Silent)]),
             Step::Unconfirmed),
            ("pristine: the leader is preferred to a partner listed before it",
             me(&ABC), answers(&[("b", formed(false, &["b", "c"])), ("c", formed(true, &["b", "c"]))]),
             join("c")),
            ("pristine: a partner knowing a leader is preferred to a removed one listed first",
             me(&ABC), answers(&[("b", status("demo", true, &ABC)), ("c", formed(false, &["c", "d"]))]),
             join("c")),
            ("five members: three agree",
             me(&["a", "b", "c", "d", "e"]),
             answers(&[("b", status("demo", false, &["a", "b", "c", "d", "e"])),
                       ("c", status("demo", false, &["a", "b", "c", "d", "e"])), ("d", Silent), ("e", Silent)]),
             Step::Initialize { members: set(&["a", "b", "c", "d", "e"]) }),
            ("four members: two agreeing is not a majority",
             me(&["a", "b", "c", "d"]),
             answers(&[("b", status("demo", false, &["a", "b", "c", "d"])), ("c", Silent), ("d", Silent)]),
             Step::Wait(Waiting { agreeing: vec!["a".into(), "b".into()], needed: 3,
                                  silent: vec!["c".into(), "d".into()], ..Waiting::default() })),
        ];
        for (what, me, answers, expected) in rows {
            assert_eq!(formation_step(&me, &answers), expected, "{what}");
        }
    }

    /// After formation the membership is the truth: whatever its partners answer, a node with
    /// Raft state that the answering leader leaves out, or that left itself out and hears no
    /// leader listing it, never joins nor initialises.
    #[test]
    fn a_removed_node_never_asks_to_join() {
        let choices = [
            Answer::Silent,
            status("demo", true, &ABC),
            status("demo", false, &ABC),
            formed(false, &["b", "c"]),
            formed(true, &["b", "c"]),
            formed(false, &["a", "b", "c"]),
        ];
        for role in [OwnRole::Absent, OwnRole::Learner, OwnRole::Voter] {
            let me = with_state(&ABC, role);
            for x in &choices {
                for y in &choices {
                    let answers = answers(&[("b", x.clone()), ("c", y.clone())]);
                    let leaders = answers
                        .iter()
                        .filter(|(_, a)| matches!(a, Answer::Status { leader: true, .. }))
                        .count();
                    if leaders > 1 {
                        continue; // one Raft leader per term: not a real answer set
                    }
                    let leader_lists_us = answers.iter().any(|(_, a)| {
                        matches!(a, Answer::Status { leader: true, members, .. } if members.contains("a"))
                    });
                    let leader_leaves_us_out = answers.iter().any(|(_, a)| {
                        matches!(a, Answer::Status { leader: true, members, .. } if !members.contains("a"))
                    });
                    let step = formation_step(&me, &answers);
                    assert!(
                        !matches!(step, Step::Initialize { .. }),
                        "{role:?} {answers:?} -> {step:?}"
                    );
                    if leader_leaves_us_out || (role == OwnRole::Absent && !leader_lists_us) {
                        assert!(
                            matches!(step, Step::Removed { .. }),
                            "{role:?} {answers:?} -> {step:?}"
                        );
                    }
                    if role == OwnRole::Voter {
                        assert!(
                            !matches!(step, Step::Join { .. }),
                            "{role:?} {answers:?} -> {step:?}"
                        );
                    }
                }
            }
        }
    }

    /// The invariant, over every combination of three partner answers: whenever any partner
    /// answers initialised for our scope, the step is never `Initialize`.
    #[test]
    fn never_initialises_while_a_partner_of_our_scope_is_initialised() {
        let choices = [
            Answer::Silent,
            status("demo", false, &["a", "b", "c", "d"]),
            status("demo", false, &["a", "b"]),
            status("demo", true, &["a", "b", "c", "d"]),
            status("other", true, &["a", "b", "c", "d"]),
            status("other", false, &["a", "b", "c", "d"]),
        ];
        let me = me(&["a", "b", "c", "d"]);
        for x in &choices {
            for y in &choices {
                for z in &choices {
                    let answers = answers(&[("b", x.clone()), ("c", y.clone()), ("d", z.clone())]);
                    let any_initialised = answers.iter().any(|(_, a)| {
                        matches!(a, Answer::Status { scope, initialized: true, .. } if scope == "demo")
                    });
                    let step = formation_step(&me, &answers);
                    if any_initialised {
                        assert!(matches!(step, Step::Join { .. }), "{answers:?} -> {step:?}");
                    }
                }
            }
        }
    }
}
