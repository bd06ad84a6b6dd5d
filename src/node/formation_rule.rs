//! The formation rule: what a node that is not yet a voter does next, given what its
//! configured partners answered. Pure, so every case is a row of the table test below.
//!
//! The one invariant: a node never initialises a new group while a configured partner
//! answers, for the same scope, that it already belongs to one — it joins that group
//! instead. And it initialises its configured set S only when a majority of S (itself
//! included) is pristine and configured with the identical S: a group of S can only ever
//! elect a leader with a majority of S anyway, and two nodes whose files disagree can then
//! not both form a group with each other in it.

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
            Answer::Status {
                initialized: true, ..
            } => return Step::Join { via: addr.clone() },
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
        }
    }

    fn status(scope: &str, initialized: bool, configured: &[&str]) -> Answer {
        Answer::Status {
            scope: scope.into(),
            initialized,
            configured: set(configured),
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
             Myself { pristine: false, ..me(&ABC) },
             answers(&[("b", status("demo", false, &ABC)), ("c", status("demo", false, &ABC))]),
             Step::Wait(Waiting { agreeing: vec!["a".into(), "b".into(), "c".into()], needed: 2,
                                  has_state: true, ..Waiting::default() })),
            ("a node with Raft state joins a formed group",
             Myself { pristine: false, ..me(&ABC) }, answers(&[("b", Silent), ("c", status("demo", true, &ABC))]),
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
