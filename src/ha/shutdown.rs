//! What the agent does with PostgreSQL when it is told to stop (SIGTERM, SIGINT), and the
//! other half of that contract: when `resume` may lift maintenance mode.
//!
//! Outside maintenance mode the agent stops PostgreSQL with it, and a lease holder publishes
//! its final WAL position and gives the lease back, so a replica takes over at once.
//!
//! In maintenance mode (as Patroni does) the agent leaves PostgreSQL running and keeps the
//! lease (it runs out by itself: nobody races for it while paused), so an agent can be
//! restarted or upgraded without touching the database. Nothing may then kill that server
//! behind the operator's back: the fence guard is told `detach`, the in-agent lease watchdog
//! ends, and a watchdog device is closed with the magic close. Before that the agent writes
//! its member record once more with the state "running without agent" — the keyspace's only
//! way to know that a server runs unattended. A primary that cannot write that record is
//! stopped as outside maintenance mode (when in doubt, stop): otherwise a `resume` could let
//! a replica be promoted beside it. A replica is left running either way (read-only).
//!
//! Started again, the agent finds its primary running: it keeps the lease if it still holds
//! it, or takes it again (in maintenance mode a running primary is the only member that takes
//! a free lease: `decide::paused`), and the new fence guard is attached from the start.
//!
//! `resume` ([`resume_refusal`]) is refused while the keyspace cannot show that the primary is
//! attended: a member record says "running without agent", or nobody holds the leader lease,
//! or the holder has no member record. The member record of an agent that stopped outlives
//! its lease (it lives at least `ttl`, the lease at most `ttl` after its last renewal), and
//! after it expired too there is no lease holder: so a primary whose agent was stopped while
//! paused blocks `resume` until its agent is back, however long that takes. With no lease
//! holder the keyspace cannot tell an unattended primary from a crashed one, so a resume
//! meant to make a failover happen needs `--force` (after making sure no PostgreSQL runs as
//! primary without its agent).

use crate::cluster::{ClusterView, PgRole, PgRunState};

/// What the agent knows when it is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownFacts {
    /// A postmaster of the data directory runs.
    pub running: bool,
    /// The last cluster view read was in maintenance mode (`false` when none was ever read).
    pub paused: bool,
    /// An operator's switchover or failover that moves away from or to this member is
    /// pending: it proceeds despite maintenance mode, so this member must not go unattended.
    pub in_handover: bool,
    /// PostgreSQL's role as last observed.
    pub role: Option<PgRole>,
    /// This node holds the leader lease: its local lease deadline is still ahead
    /// (`EngineMemory::lease_valid`). A passed deadline that is still armed for the fences does
    /// not count: another member may hold the lease by now (issue 9).
    pub holds_lease: bool,
}

/// What to do with PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownAction {
    /// Nothing runs: nothing to stop or to detach.
    Nothing,
    /// Stop PostgreSQL. A lease holder (`lease_holder`) publishes its position before and its
    /// final position after the stop, and releases the lease.
    Stop { lease_holder: bool },
    /// Leave PostgreSQL running: write the "running without agent" member record, detach the
    /// fence guard, end the lease watchdog, close the watchdog device; keep the lease.
    /// `must_mark`: if the record cannot be written, stop instead ([`unmarked`]).
    LeaveRunning { must_mark: bool },
}

/// The action and why (logged as one INFO line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownPlan {
    pub action: ShutdownAction,
    pub reason: String,
}

fn plan_of(action: ShutdownAction, reason: impl Into<String>) -> ShutdownPlan {
    ShutdownPlan {
        action,
        reason: reason.into(),
    }
}

/// Decide what the agent's shutdown does with PostgreSQL. Pure.
pub fn plan(f: &ShutdownFacts) -> ShutdownPlan {
    if !f.running {
        return plan_of(
            ShutdownAction::Nothing,
            "PostgreSQL is not running: nothing to stop",
        );
    }
    let stop = ShutdownAction::Stop {
        lease_holder: f.holds_lease,
    };
    if !f.paused {
        return plan_of(
            stop,
            if f.holds_lease {
                "stopping PostgreSQL and releasing the leader lease (not in maintenance mode)"
            } else {
                "stopping PostgreSQL (not in maintenance mode)"
            },
        );
    }
    if f.in_handover {
        return plan_of(
            stop,
            "stopping PostgreSQL: maintenance mode, but a switchover / failover involving this member is \
             pending and proceeds, so it must not run unattended",
        );
    }
    let primary = f.role == Some(PgRole::Primary) || f.holds_lease;
    plan_of(
        ShutdownAction::LeaveRunning { must_mark: primary },
        if primary {
            "maintenance mode: leaving PostgreSQL running as primary and keeping the leader lease (it \
             expires by itself; nobody takes over while paused); the fence guard is detached. `resume` is \
             refused until this agent is back"
        } else {
            "maintenance mode: leaving PostgreSQL running; the fence guard is detached"
        },
    )
}

/// The plan when the "running without agent" record of a `must_mark` member could not be
/// written: nobody could then see that the primary runs unattended, and a `resume` would let
/// a replica be promoted beside it.
pub fn unmarked(f: &ShutdownFacts, why: &str) -> ShutdownPlan {
    plan_of(
        ShutdownAction::Stop {
            lease_holder: f.holds_lease,
        },
        format!(
            "maintenance mode, but the \"running without agent\" member record could not be written \
             ({why}): stopping PostgreSQL instead of leaving a primary running that nobody can see is \
             unattended"
        ),
    )
}

/// Whether a `config` write from `before` to `after` lifts maintenance mode (`pause` true
/// before, not after): such a write is checked with [`resume_refusal`].
pub fn lifts_pause(before: Option<&serde_json::Value>, after: &serde_json::Value) -> bool {
    let paused = |v: Option<&serde_json::Value>| {
        v.and_then(|v| v.get("pause"))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    };
    paused(before) && !paused(Some(after))
}

/// Why `resume` must not lift maintenance mode now (`None`: it may), judged on one
/// linearizable read of the keyspace. See the module text for the rule.
pub fn resume_refusal(view: &ClusterView) -> Option<String> {
    let unattended: Vec<&str> = view
        .members
        .iter()
        .filter(|m| m.state == PgRunState::Unattended)
        .map(|m| m.name.as_str())
        .collect();
    if !unattended.is_empty() {
        return Some(format!(
            "PostgreSQL of {} runs without its agent (stopped in maintenance mode): nothing fences it, \
             and after a resume another member could be promoted beside it. Start its agent again, or \
             stop that PostgreSQL and wait until its member record expires",
            unattended.join(", ")
        ));
    }
    let Some(holder) = view.leader_name() else {
        return Some(
            "no member holds the leader lease: a primary whose agent was stopped in maintenance mode may \
             still be running, and after a resume another member would be promoted beside it. Start that \
             agent again (it takes the lease back); if no PostgreSQL runs as primary, `resume --force` \
             lets the members elect a new primary"
                .to_string(),
        );
    };
    if view.member(holder).is_none() {
        return Some(format!(
            "{holder} holds the leader lease but has no member record: its agent is gone, and its \
             PostgreSQL may be running without it. Start that agent again"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{LeaderLease, MemberStatus};

    fn facts(running: bool, paused: bool, role: Option<PgRole>, holds_lease: bool) -> ShutdownFacts {
        ShutdownFacts {
            running,
            paused,
            in_handover: false,
            role,
            holds_lease,
        }
    }

    const P: Option<PgRole> = Some(PgRole::Primary);
    const R: Option<PgRole> = Some(PgRole::Replica);

    #[test]
    fn the_shutdown_table() {
        use ShutdownAction::*;
        let rows: &[(&str, ShutdownFacts, ShutdownAction)] = &[
            ("stopped server", facts(false, true, P, true), Nothing),
            (
                "stopped server, not paused",
                facts(false, false, None, false),
                Nothing,
            ),
            (
                "primary, not paused: stop and release",
                facts(true, false, P, true),
                Stop { lease_holder: true },
            ),
            (
                "replica, not paused: stop",
                facts(true, false, R, false),
                Stop { lease_holder: false },
            ),
            (
                "primary whose lease just lapsed, not paused: stop",
                facts(true, false, P, false),
                Stop { lease_holder: false },
            ),
            (
                "paused primary holding the lease: leave running, marked",
                facts(true, true, P, true),
                LeaveRunning { must_mark: true },
            ),
            (
                "paused primary without a local deadline: still a primary",
                facts(true, true, P, false),
                LeaveRunning { must_mark: true },
            ),
            (
                "paused lease holder whose role is unknown: treated as a primary",
                facts(true, true, None, true),
                LeaveRunning { must_mark: true },
            ),
            (
                "paused replica: leave running, the mark is best effort",
                facts(true, true, R, false),
                LeaveRunning { must_mark: false },
            ),
            (
                "paused, but a hand-over involving me is pending: stop",
                ShutdownFacts {
                    in_handover: true,
                    ..facts(true, true, P, true)
                },
                Stop { lease_holder: true },
            ),
        ];
        for (what, f, want) in rows {
            let got = plan(f);
            assert_eq!(got.action, *want, "{what}: {}", got.reason);
            assert!(!got.reason.is_empty());
        }
        let fallback = unmarked(&facts(true, true, P, true), "keyspace unreachable");
        assert_eq!(fallback.action, Stop { lease_holder: true });
        assert!(
            fallback.reason.contains("keyspace unreachable"),
            "{}",
            fallback.reason
        );
    }

    #[test]
    fn which_config_writes_lift_pause() {
        use serde_json::json;
        let paused = json!({"ttl": 30, "pause": true});
        assert!(lifts_pause(Some(&paused), &json!({"ttl": 30})));
        assert!(lifts_pause(Some(&paused), &json!({"pause": false})));
        assert!(!lifts_pause(Some(&paused), &json!({"pause": true, "ttl": 20})));
        assert!(!lifts_pause(Some(&json!({"ttl": 30})), &json!({"ttl": 20})));
        assert!(!lifts_pause(None, &json!({"pause": true})));
    }

    fn member(name: &str, role: PgRole, state: PgRunState) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            role,
            state,
            ..Default::default()
        }
    }

    fn view(leader: Option<&str>, members: Vec<MemberStatus>) -> ClusterView {
        ClusterView {
            leader: leader.map(|h| LeaderLease {
                holder: h.into(),
                revision: 1,
                expires_at_ms: 10_000,
            }),
            members,
            ..Default::default()
        }
    }

    #[test]
    fn the_resume_table() {
        use PgRole::{Primary, Replica};
        use PgRunState::{Running, Streaming, Unattended};
        let healthy = || {
            vec![
                member("n1", Primary, Running),
                member("n2", Replica, Streaming),
                member("n3", Replica, Streaming),
            ]
        };
        let rows: Vec<(&str, ClusterView, Option<&str>)> = vec![
            (
                "attended primary with the lease",
                view(Some("n1"), healthy()),
                None,
            ),
            (
                "holder's agent stopped in maintenance mode, lease not yet expired",
                view(
                    Some("n1"),
                    vec![
                        member("n1", Primary, Unattended),
                        member("n2", Replica, Streaming),
                    ],
                ),
                Some("n1 runs without its agent"),
            ),
            (
                "the lease expired, the record still says unattended",
                view(None, vec![member("n1", Primary, Unattended)]),
                Some("n1 runs without its agent"),
            ),
            (
                "a replica left running without its agent",
                view(
                    Some("n1"),
                    vec![member("n1", Primary, Running), member("n3", Replica, Unattended)],
                ),
                Some("n3 runs without its agent"),
            ),
            (
                "no lease holder, the unattended record expired too",
                view(None, vec![member("n2", Replica, Streaming)]),
                Some("no member holds the leader lease"),
            ),
            (
                "the holder has no member record",
                view(Some("n1"), vec![member("n2", Replica, Streaming)]),
                Some("n1 holds the leader lease but has no member record"),
            ),
        ];
        for (what, v, want) in rows {
            let got = resume_refusal(&v);
            match want {
                None => assert_eq!(got, None, "{what}"),
                Some(part) => {
                    let got = got.unwrap_or_else(|| panic!("{what}: resume must be refused"));
                    assert!(got.contains(part), "{what}: {got}");
                }
            }
        }
    }
}
