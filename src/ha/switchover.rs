//! Checking a switchover or manual failover request against the cluster before the `failover`
//! key is written, shared by `pgquorumctl` and the REST API so both refuse the same requests
//! with the same words (Patroni's, where Patroni has them).
//!
//! Pure: the caller passes the cluster view and the time; nothing here reads the keyspace.
//! The HA loop carries out what passes: the primary holding the lease hands over to `member`
//! (or the best replica) once the request is due.

use std::fmt;

use crate::cluster::{ClusterView, FailoverRequest, MemberStatus, PgRole};
use crate::timefmt::{parse_timestamp, TimeParseError};

/// Which operation a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Switchover,
    Failover,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Switchover => "switchover",
            Operation::Failover => "failover",
        })
    }
}

/// Why a request was refused. The messages are Patroni's where it has one, so scripts and
/// operators see the same text; [`SwitchoverError::http_status`] gives Patroni's status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchoverError {
    #[error("Switchover could be performed only from a specific leader")]
    NoLeaderGiven,
    #[error("Failover could be performed only to a specific candidate")]
    NoCandidateGiven,
    #[error("Failover can't be scheduled")]
    FailoverScheduled,
    #[error("Can't schedule switchover in the paused state")]
    ScheduledWhilePaused,
    #[error("Switchover is possible only to a specific candidate in a paused state")]
    PausedWithoutCandidate,
    #[error("Timezone information is mandatory for the scheduled switchover")]
    ScheduleWithoutTimezone,
    #[error("Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601")]
    UnparsableSchedule,
    #[error("Cannot schedule switchover in the past")]
    ScheduleInPast,
    #[error("Switchover target and source are the same")]
    SameLeaderAndCandidate,
    /// Another request is in the `failover` key; only one at a time.
    #[error("another {pending} is already pending; cancel it first (`pgquorumctl flush switchover`, DELETE /switchover)")]
    AlreadyPending { pending: String },
    #[error("Cluster has no leader")]
    NoLeader,
    /// `actual` is the lease holder, for callers that want to say more than Patroni does.
    #[error("leader name does not match")]
    LeaderMismatch { given: String, actual: String },
    #[error("leader {leader} is not running as primary (role {role}, state {state})")]
    LeaderNotRunning {
        leader: String,
        role: &'static str,
        state: &'static str,
    },
    #[error("candidate {candidate} does not exist")]
    CandidateNotMember { candidate: String },
    #[error("candidate {candidate} is tagged nofailover")]
    CandidateNoFailover { candidate: String },
    #[error("candidate {candidate} has failover_priority {priority}: it never becomes primary")]
    CandidateZeroPriority { candidate: String, priority: i64 },
    #[error("candidate {candidate} is not running (state {state})")]
    CandidateNotRunning { candidate: String, state: &'static str },
    #[error("candidate {candidate} already holds the leader lease")]
    CandidateIsLeader { candidate: String },
    #[error("{operation} is not possible: cluster does not have members except leader")]
    OnlyLeader { operation: Operation },
    #[error("{operation} is not possible: no good candidates have been found")]
    NoGoodCandidates { operation: Operation },
    /// Synchronous mode: the candidate is not a synchronous standby, so it may lack commits
    /// the primary acknowledged. Allowed only when forced.
    #[error("{why}; a failover to it may lose those commits: give --force (REST: \"force\": true) to go ahead anyway")]
    CandidateNotSync { candidate: String, why: String },
}

impl SwitchoverError {
    /// Patroni's codes: 400 for a request that cannot be right whatever the cluster looks
    /// like, 422 for a schedule that does not parse or is past, 412 when the cluster does not
    /// allow it now; 409 (ours) when another request is pending.
    pub fn http_status(&self) -> u16 {
        use SwitchoverError::*;
        match self {
            NoLeaderGiven
            | NoCandidateGiven
            | FailoverScheduled
            | ScheduledWhilePaused
            | PausedWithoutCandidate
            | ScheduleWithoutTimezone
            | SameLeaderAndCandidate => 400,
            UnparsableSchedule | ScheduleInPast => 422,
            AlreadyPending { .. } => 409,
            NoLeader
            | LeaderMismatch { .. }
            | LeaderNotRunning { .. }
            | CandidateNotMember { .. }
            | CandidateNoFailover { .. }
            | CandidateZeroPriority { .. }
            | CandidateNotRunning { .. }
            | CandidateIsLeader { .. }
            | OnlyLeader { .. }
            | NoGoodCandidates { .. }
            | CandidateNotSync { .. } => 412,
        }
    }
}

/// A switchover: `leader` (required) hands the primary role to `candidate`, or to the best
/// replica when `None`, now or at `scheduled_at` (RFC 3339 with an offset; `"now"` and `""`
/// mean now). `now_ms` is the time a schedule must be after (ms since the Unix epoch).
pub fn validate_switchover(
    view: &ClusterView,
    leader: Option<&str>,
    candidate: Option<&str>,
    scheduled_at: Option<&str>,
    now_ms: u64,
) -> Result<FailoverRequest, SwitchoverError> {
    let leader = given(leader).ok_or(SwitchoverError::NoLeaderGiven)?;
    let candidate = given(candidate);
    let scheduled_at = given(scheduled_at).filter(|s| !s.eq_ignore_ascii_case("now"));
    let scheduled_at_ms = match scheduled_at {
        None => None,
        Some(_) if view.paused() => return Err(SwitchoverError::ScheduledWhilePaused),
        Some(text) => Some(parse_schedule(text, now_ms)?),
    };
    if view.paused() && candidate.is_none() {
        return Err(SwitchoverError::PausedWithoutCandidate);
    }
    if candidate == Some(leader) {
        return Err(SwitchoverError::SameLeaderAndCandidate);
    }
    refuse_if_pending(view)?;

    let holder = view.leader_name().ok_or(SwitchoverError::NoLeader)?;
    if holder != leader {
        return Err(SwitchoverError::LeaderMismatch {
            given: leader.to_string(),
            actual: holder.to_string(),
        });
    }
    match view.member(holder) {
        Some(m) if m.role == PgRole::Primary && m.state.is_up() => {}
        m => {
            return Err(SwitchoverError::LeaderNotRunning {
                leader: holder.to_string(),
                role: m.map_or("unknown", |m| m.role.as_str()),
                state: m.map_or("unknown", |m| m.state.as_str()),
            })
        }
    }
    match candidate {
        Some(c) => check_candidate(view, c)?,
        None => {
            let others: Vec<&MemberStatus> = view.members.iter().filter(|m| m.name != holder).collect();
            if others.is_empty() {
                return Err(SwitchoverError::OnlyLeader {
                    operation: Operation::Switchover,
                });
            }
            if !others.iter().any(|m| eligible(m)) {
                return Err(SwitchoverError::NoGoodCandidates {
                    operation: Operation::Switchover,
                });
            }
        }
    }
    Ok(FailoverRequest {
        leader: Some(leader.to_string()),
        member: candidate.map(str::to_string),
        scheduled_at: scheduled_at.map(str::to_string),
        scheduled_at_ms,
    })
}

/// A manual failover: `candidate` takes over whoever holds the lease now (if anyone). Allowed
/// in maintenance mode, as in Patroni; never scheduled. In synchronous mode a candidate the
/// `sync` key does not list may lack acknowledged commits: refused unless `force`.
pub fn validate_failover(
    view: &ClusterView,
    candidate: Option<&str>,
    force: bool,
) -> Result<FailoverRequest, SwitchoverError> {
    let candidate = given(candidate).ok_or(SwitchoverError::NoCandidateGiven)?;
    refuse_if_pending(view)?;
    if view.leader_name() == Some(candidate) {
        return Err(SwitchoverError::CandidateIsLeader {
            candidate: candidate.to_string(),
        });
    }
    check_candidate(view, candidate)?;
    if let Some(why) = view.sync_forbids_promotion(candidate).filter(|_| !force) {
        return Err(SwitchoverError::CandidateNotSync {
            candidate: candidate.to_string(),
            why,
        });
    }
    Ok(FailoverRequest {
        member: Some(candidate.to_string()),
        ..Default::default()
    })
}

/// What a pending request is, in words: `switchover from node1 to node2 scheduled at …`.
pub fn describe(request: &FailoverRequest) -> String {
    let mut text = if request.is_switchover() {
        Operation::Switchover.to_string()
    } else {
        Operation::Failover.to_string()
    };
    if let Some(leader) = &request.leader {
        text.push_str(&format!(" from {leader}"));
    }
    if let Some(member) = &request.member {
        text.push_str(&format!(" to {member}"));
    }
    if let Some(at) = &request.scheduled_at {
        text.push_str(&format!(" scheduled at {at}"));
    }
    text
}

/// A member that could take over: may become primary and PostgreSQL is up. The HA loop
/// chooses among these (newest timeline, then WAL position, then priority).
pub fn eligible(m: &MemberStatus) -> bool {
    m.tags.may_become_primary() && m.state.is_up()
}

fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|s| !s.is_empty())
}

fn parse_schedule(text: &str, now_ms: u64) -> Result<u64, SwitchoverError> {
    match parse_timestamp(text) {
        Ok(ms) if ms < now_ms => Err(SwitchoverError::ScheduleInPast),
        Ok(ms) => Ok(ms),
        Err(TimeParseError::NoOffset) => Err(SwitchoverError::ScheduleWithoutTimezone),
        Err(TimeParseError::BeforeEpoch) => Err(SwitchoverError::ScheduleInPast),
        Err(TimeParseError::Invalid) => Err(SwitchoverError::UnparsableSchedule),
    }
}

fn refuse_if_pending(view: &ClusterView) -> Result<(), SwitchoverError> {
    match &view.failover {
        Some(pending) => Err(SwitchoverError::AlreadyPending {
            pending: describe(pending),
        }),
        None => Ok(()),
    }
}

fn check_candidate(view: &ClusterView, candidate: &str) -> Result<(), SwitchoverError> {
    let name = candidate.to_string();
    let m = view
        .member(candidate)
        .ok_or_else(|| SwitchoverError::CandidateNotMember {
            candidate: name.clone(),
        })?;
    if !m.tags.may_become_primary() {
        return Err(match m.tags.failover_priority {
            Some(priority) if m.tags.nofailover != Some(true) => SwitchoverError::CandidateZeroPriority {
                candidate: name,
                priority,
            },
            _ => SwitchoverError::CandidateNoFailover { candidate: name },
        });
    }
    if !m.state.is_up() {
        return Err(SwitchoverError::CandidateNotRunning {
            candidate: name,
            state: m.state.as_str(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{LeaderLease, PgRunState};

    const NOW: u64 = 1_795_298_820_000; // 2026-11-21T22:07:00Z
    const LATER: &str = "2026-11-21T23:00:00+01:00"; // 22:00Z: past
    const TOMORROW: &str = "2026-11-22T22:07:00Z";

    fn member(name: &str, role: PgRole, state: PgRunState) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            role,
            state,
            ..Default::default()
        }
    }

    /// node1 primary with the lease, node2 and node3 streaming.
    fn healthy() -> ClusterView {
        ClusterView {
            initialize: Some("7268616322854375442".into()),
            leader: Some(LeaderLease {
                holder: "node1".into(),
                revision: 5,
                expires_at_ms: NOW + 30_000,
            }),
            members: vec![
                member("node1", PgRole::Primary, PgRunState::Running),
                member("node2", PgRole::Replica, PgRunState::Streaming),
                member("node3", PgRole::Replica, PgRunState::Streaming),
            ],
            as_of_ms: NOW,
            ..Default::default()
        }
    }

    fn paused() -> ClusterView {
        let mut v = healthy();
        v.config.pause = true;
        v
    }

    fn no_lease() -> ClusterView {
        let mut v = healthy();
        v.leader = None;
        v.members[0].state = PgRunState::Crashed;
        v
    }

    fn with(f: impl Fn(&mut ClusterView)) -> ClusterView {
        let mut v = healthy();
        f(&mut v);
        v
    }

    fn m<'a>(v: &'a mut ClusterView, name: &str) -> &'a mut MemberStatus {
        v.members.iter_mut().find(|m| m.name == name).unwrap()
    }

    fn pending() -> ClusterView {
        with(|v| {
            v.failover = Some(FailoverRequest {
                leader: Some("node1".into()),
                member: Some("node3".into()),
                scheduled_at: Some(TOMORROW.into()),
                scheduled_at_ms: Some(NOW + 86_400_000),
            });
            v.failover_revision = Some(9);
        })
    }

    type Case = (
        &'static str,
        ClusterView,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
        Result<FailoverRequest, u16>,
    );

    fn ok(leader: &str, member: Option<&str>, at: Option<(&str, u64)>) -> Result<FailoverRequest, u16> {
        Ok(FailoverRequest {
            leader: Some(leader.into()),
            member: member.map(str::to_string),
            scheduled_at: at.map(|(s, _)| s.to_string()),
            scheduled_at_ms: at.map(|(_, ms)| ms),
        })
    }

    #[test]
    fn switchover_rules() {
        use SwitchoverError as E;
        let tomorrow_ms = NOW + 86_400_000;
        #[rustfmt::skip]
        let cases: Vec<(Case, Option<E>)> = vec![
            (("to a named replica", healthy(), Some("node1"), Some("node2"), None, ok("node1", Some("node2"), None)), None),
            (("to the best replica", healthy(), Some("node1"), None, None, ok("node1", None, None)), None),
            (("names are trimmed, empty means none", healthy(), Some(" node1 "), Some(""), Some(""), ok("node1", None, None)), None),
            (("\"now\" is not a schedule", healthy(), Some("node1"), Some("node2"), Some("NOW"), ok("node1", Some("node2"), None)), None),
            (("scheduled", healthy(), Some("node1"), Some("node2"), Some(TOMORROW), ok("node1", Some("node2"), Some((TOMORROW, tomorrow_ms)))), None),
            (("scheduled exactly now", healthy(), Some("node1"), None, Some("2026-11-21T22:07:00Z"), ok("node1", None, Some(("2026-11-21T22:07:00Z", NOW)))), None),
            (("paused, to a named replica", paused(), Some("node1"), Some("node2"), None, ok("node1", Some("node2"), None)), None),
            (("no leader given", healthy(), None, Some("node2"), None, Err(400)), Some(E::NoLeaderGiven)),
            (("blank leader given", healthy(), Some("  "), Some("node2"), None, Err(400)), Some(E::NoLeaderGiven)),
            (("paused and scheduled", paused(), Some("node1"), Some("node2"), Some(TOMORROW), Err(400)), Some(E::ScheduledWhilePaused)),
            (("paused without candidate", paused(), Some("node1"), None, None, Err(400)), Some(E::PausedWithoutCandidate)),
            (("schedule without offset", healthy(), Some("node1"), None, Some("2026-11-22T10:00"), Err(400)), Some(E::ScheduleWithoutTimezone)),
            (("schedule unparsable", healthy(), Some("node1"), None, Some("tomorrow"), Err(422)), Some(E::UnparsableSchedule)),
            (("schedule in the past", healthy(), Some("node1"), None, Some(LATER), Err(422)), Some(E::ScheduleInPast)),
            (("schedule before 1970", healthy(), Some("node1"), None, Some("1969-01-01T00:00Z"), Err(422)), Some(E::ScheduleInPast)),
            (("to itself", healthy(), Some("node1"), Some("node1"), None, Err(400)), Some(E::SameLeaderAndCandidate)),
            (("another pending", pending(), Some("node1"), Some("node2"), None, Err(409)),
                Some(E::AlreadyPending { pending: format!("switchover from node1 to node3 scheduled at {TOMORROW}") })),
            (("nobody holds the lease", no_lease(), Some("node1"), Some("node2"), None, Err(412)), Some(E::NoLeader)),
            (("wrong leader", healthy(), Some("node2"), Some("node3"), None, Err(412)),
                Some(E::LeaderMismatch { given: "node2".into(), actual: "node1".into() })),
            (("leader not promoted yet", with(|v| m(v, "node1").role = PgRole::Replica), Some("node1"), Some("node2"), None, Err(412)),
                Some(E::LeaderNotRunning { leader: "node1".into(), role: "replica", state: "running" })),
            (("leader's postgres stopped", with(|v| m(v, "node1").state = PgRunState::Stopped), Some("node1"), None, None, Err(412)),
                Some(E::LeaderNotRunning { leader: "node1".into(), role: "primary", state: "stopped" })),
            (("leader without member record", with(|v| { v.members.remove(0); }), Some("node1"), Some("node2"), None, Err(412)),
                Some(E::LeaderNotRunning { leader: "node1".into(), role: "unknown", state: "unknown" })),
            (("unknown candidate", healthy(), Some("node1"), Some("node9"), None, Err(412)),
                Some(E::CandidateNotMember { candidate: "node9".into() })),
            (("candidate nofailover", with(|v| m(v, "node2").tags.nofailover = Some(true)), Some("node1"), Some("node2"), None, Err(412)),
                Some(E::CandidateNoFailover { candidate: "node2".into() })),
            (("candidate priority 0", with(|v| m(v, "node2").tags.failover_priority = Some(0)), Some("node1"), Some("node2"), None, Err(412)),
                Some(E::CandidateZeroPriority { candidate: "node2".into(), priority: 0 })),
            (("candidate nofailover: false wins over nothing", with(|v| m(v, "node2").tags.nofailover = Some(false)), Some("node1"), Some("node2"), None,
                ok("node1", Some("node2"), None)), None),
            (("candidate stopped", with(|v| m(v, "node2").state = PgRunState::Stopped), Some("node1"), Some("node2"), None, Err(412)),
                Some(E::CandidateNotRunning { candidate: "node2".into(), state: "stopped" })),
            (("candidate cloning", with(|v| m(v, "node2").state = PgRunState::CreatingReplica), Some("node1"), Some("node2"), None, Err(412)),
                Some(E::CandidateNotRunning { candidate: "node2".into(), state: "creating replica" })),
            (("only the leader", with(|v| v.members.truncate(1)), Some("node1"), None, None, Err(412)),
                Some(E::OnlyLeader { operation: Operation::Switchover })),
            (("no healthy replica", with(|v| { m(v, "node2").state = PgRunState::Stopped; m(v, "node3").tags.nofailover = Some(true) }),
                Some("node1"), None, None, Err(412)), Some(E::NoGoodCandidates { operation: Operation::Switchover })),
            (("one healthy replica is enough", with(|v| m(v, "node2").state = PgRunState::Stopped), Some("node1"), None, None,
                ok("node1", None, None)), None),
        ];
        for ((name, view, leader, candidate, at, want), error) in cases {
            let got = validate_switchover(&view, leader, candidate, at, NOW);
            match (&got, &want, &error) {
                (Ok(req), Ok(want), None) => assert_eq!(req, want, "{name}"),
                (Err(e), Err(status), Some(error)) => {
                    assert_eq!(e, error, "{name}");
                    assert_eq!(e.http_status(), *status, "{name}: status");
                }
                _ => panic!("{name}: got {got:?}, want {want:?} / {error:?}"),
            }
        }
    }

    type FailoverCase = (
        &'static str,
        ClusterView,
        Option<&'static str>,
        Result<FailoverRequest, SwitchoverError>,
    );

    #[test]
    fn failover_rules() {
        use SwitchoverError as E;
        let to = |c: &str| {
            Ok::<_, E>(FailoverRequest {
                member: Some(c.into()),
                ..Default::default()
            })
        };
        #[rustfmt::skip]
        let cases: Vec<FailoverCase> = vec![
            ("no primary: to a replica", no_lease(), Some("node2"), to("node2")),
            ("healthy primary: allowed, as in Patroni", healthy(), Some("node3"), to("node3")),
            ("paused: allowed to a named candidate", paused(), Some("node2"), to("node2")),
            ("no candidate", no_lease(), None, Err(E::NoCandidateGiven)),
            ("blank candidate", no_lease(), Some(" "), Err(E::NoCandidateGiven)),
            ("pending", pending(), Some("node2"), Err(E::AlreadyPending { pending: format!("switchover from node1 to node3 scheduled at {TOMORROW}") })),
            ("to the leader", healthy(), Some("node1"), Err(E::CandidateIsLeader { candidate: "node1".into() })),
            ("unknown", no_lease(), Some("node7"), Err(E::CandidateNotMember { candidate: "node7".into() })),
            ("crashed old primary", no_lease(), Some("node1"), Err(E::CandidateNotRunning { candidate: "node1".into(), state: "crashed" })),
            ("nofailover", { let mut v = no_lease(); m(&mut v, "node3").tags.nofailover = Some(true); v }, Some("node3"),
                Err(E::CandidateNoFailover { candidate: "node3".into() })),
        ];
        for (name, view, candidate, want) in cases {
            assert_eq!(validate_failover(&view, candidate, false), want, "{name}");
        }
        // Synchronous mode (issue 12): the sync key lists node2; node3 only with force.
        let sync_mode = {
            let mut v = no_lease();
            v.config.synchronous_mode = crate::config::SynchronousMode::On;
            v.sync = Some(crate::cluster::SyncState::new("node1", &["node2".to_string()]));
            v
        };
        assert_eq!(validate_failover(&sync_mode, Some("node2"), false), to("node2"));
        let refused = validate_failover(&sync_mode, Some("node3"), false).unwrap_err();
        assert!(matches!(&refused, E::CandidateNotSync { candidate, .. } if candidate == "node3"));
        assert_eq!(refused.http_status(), 412);
        assert!(
            refused.to_string().contains("may lose those commits"),
            "{refused}"
        );
        assert_eq!(validate_failover(&sync_mode, Some("node3"), true), to("node3"));
        assert_eq!(E::NoCandidateGiven.http_status(), 400);
        assert_eq!(
            E::CandidateIsLeader {
                candidate: "x".into()
            }
            .http_status(),
            412
        );
    }

    #[test]
    fn messages_are_patronis() {
        use SwitchoverError as E;
        let table: [(E, &str); 6] = [
            (
                E::LeaderMismatch {
                    given: "a".into(),
                    actual: "b".into(),
                },
                "leader name does not match",
            ),
            (
                E::ScheduledWhilePaused,
                "Can't schedule switchover in the paused state",
            ),
            (
                E::NoCandidateGiven,
                "Failover could be performed only to a specific candidate",
            ),
            (
                E::NoGoodCandidates {
                    operation: Operation::Switchover,
                },
                "switchover is not possible: no good candidates have been found",
            ),
            (
                E::CandidateNoFailover {
                    candidate: "node2".into(),
                },
                "candidate node2 is tagged nofailover",
            ),
            (E::ScheduleInPast, "Cannot schedule switchover in the past"),
        ];
        for (e, text) in table {
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn descriptions() {
        let failover = FailoverRequest {
            member: Some("node2".into()),
            ..Default::default()
        };
        assert_eq!(describe(&failover), "failover to node2");
        let switchover = FailoverRequest {
            leader: Some("node1".into()),
            ..Default::default()
        };
        assert_eq!(describe(&switchover), "switchover from node1");
    }
}
