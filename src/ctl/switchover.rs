//! `pgquorumctl switchover`, `failover` and `flush switchover`: write the `failover` key
//! (compare-and-set: only when none is pending) after checking the request against the
//! cluster like the REST API does, then follow the HA loop carrying it out.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cluster_read::cluster_view;
use super::list::{self, ListRow};
use super::{client, CtlError};
use crate::cluster::{ClusterView, FailoverRequest, PgRole, PgRunState};
use crate::ha::switchover::{
    describe, eligible, validate_failover, validate_switchover, Operation, SwitchoverError,
};
use crate::keyspace::{Command, CommandOutcome, Key, Precondition};
use crate::timefmt::{rfc3339, rfc3339_now};

/// How long to follow an immediate switchover or failover before giving up.
const HANDOVER_WAIT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(150);
/// How long to wait, once done, for the new primary to remove the `failover` key.
const KEY_REMOVAL_GRACE: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// Talking to the operator

/// Questions and progress lines: on stdout, or on stderr under `--json` so that stdout carries
/// nothing but the JSON document.
pub(super) struct Console {
    json: bool,
    force: bool,
}

impl Console {
    pub fn new(json: bool, force: bool) -> Console {
        Console { json, force }
    }

    pub fn say(&self, text: &str) {
        if self.json {
            eprintln!("{text}");
        } else {
            super::stdout::print(text, true);
        }
    }

    /// A progress line, stamped like `patronictl`'s.
    pub fn progress(&self, text: &str) {
        self.say(&format!("{} {text}", rfc3339_now()));
    }

    /// Whether to ask questions: never with `--force`; without it, only on a terminal, and
    /// with nobody to ask the command refuses rather than acting unconfirmed.
    pub fn interactive(&self) -> Result<bool, CtlError> {
        if self.force {
            return Ok(false);
        }
        if std::io::stdin().is_terminal() {
            Ok(true)
        } else {
            Err(CtlError::Other(
                "stdin is not a terminal, so nothing can be confirmed: give --force to go ahead without questions"
                    .into(),
            ))
        }
    }

    /// Ask and read one line (trimmed).
    pub fn ask(&self, prompt: &str) -> Result<String, CtlError> {
        if self.json {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
        } else {
            super::stdout::print(prompt, false);
        }
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CtlError::Other(format!("cannot read the answer: {e}")))?;
        Ok(line.trim().to_string())
    }

    /// Ask a yes/no question; a "no" fails with `aborted` (patronictl's words, e.g.
    /// `Aborting switchover`, `Aborted reinitialize`).
    pub fn confirm(&self, question: &str, aborted: &str) -> Result<(), CtlError> {
        if is_yes(&self.ask(&format!("{question} [y/N]: "))?) {
            Ok(())
        } else {
            Err(CtlError::Other(aborted.into()))
        }
    }
}

pub(super) fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

fn to_json(value: &impl Serialize) -> Result<String, CtlError> {
    serde_json::to_string_pretty(value).map_err(|e| CtlError::Other(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// switchover, failover

/// What `switchover` and `failover` print with `--json`.
#[derive(Debug, Serialize)]
struct Report {
    action: &'static str,
    /// `scheduled` or `completed`.
    result: &'static str,
    from: Option<String>,
    to: Option<String>,
    scheduled_at: Option<String>,
    /// The lease holder at the end.
    leader: Option<String>,
    members: Vec<ListRow>,
}

/// The options of `pgquorumctl switchover`.
#[derive(Debug, Clone, Default)]
pub struct SwitchoverArgs {
    pub leader: Option<String>,
    pub candidate: Option<String>,
    pub scheduled: Option<String>,
    pub force: bool,
    pub json: bool,
}

/// The time a schedule must not precede: the later of the keyspace clock (which the HA loop
/// compares `scheduled_at_ms` with) and this machine's clock.
fn now_ms(view: &ClusterView) -> u64 {
    crate::timefmt::now_ms().max(view.as_of_ms)
}

/// Members that could take over from `leader`, for the prompt.
fn candidate_names<'a>(view: &'a ClusterView, leader: Option<&str>) -> Vec<&'a str> {
    view.members
        .iter()
        .filter(|m| Some(m.name.as_str()) != leader && eligible(m))
        .map(|m| m.name.as_str())
        .collect()
}

/// patronictl's own checks, in its order and with its words, made before the request goes
/// through the validation shared with the REST API: scripts written for patronictl match on
/// these lines (`Error: No candidates found to switchover to`, …).
pub(super) fn patronictl_checks(
    view: &ClusterView,
    scope: &str,
    operation: Operation,
    leader: Option<&str>,
    candidate: Option<&str>,
) -> Result<(), CtlError> {
    let refuse = |text: String| Err(CtlError::Other(text));
    let holder = view.leader_name();
    if operation == Operation::Switchover {
        let Some(holder) = holder else {
            return refuse("This cluster has no leader".into());
        };
        if let Some(given) = leader.filter(|l| !l.is_empty() && *l != holder) {
            return refuse(format!("Member {given} is not the leader of cluster {scope}"));
        }
    }
    // patronictl offers every member but the leader and those tagged nofailover.
    let candidates: Vec<&str> = view
        .members
        .iter()
        .filter(|m| Some(m.name.as_str()) != holder && m.tags.may_become_primary())
        .map(|m| m.name.as_str())
        .collect();
    if candidates.is_empty() {
        return refuse(format!("No candidates found to {operation} to"));
    }
    let candidate = candidate.filter(|c| !c.is_empty());
    if operation == Operation::Failover && candidate.is_none() {
        return refuse(SwitchoverError::NoCandidateGiven.to_string());
    }
    match candidate {
        Some(c) if !candidates.contains(&c) && Some(c) == holder => {
            refuse(format!("Member {c} is already the leader of cluster {scope}"))
        }
        Some(c) if !candidates.contains(&c) => refuse(format!(
            "Member {c} does not exist in cluster {scope} or is tagged as nofailover"
        )),
        _ => Ok(()),
    }
}

/// A refusal past patronictl's own checks: patronictl prints the REST API's answer as
/// `Switchover failed, details: 412, …`; the same line here (with the HTTP code the REST API
/// gives for it), plus what Patroni's terse message leaves out.
fn refused(operation: Operation, e: SwitchoverError) -> CtlError {
    let mut op = operation.to_string();
    op[..1].make_ascii_uppercase();
    let detail = match &e {
        SwitchoverError::LeaderMismatch { actual, .. } => {
            format!("{e}: {actual} holds the leader lease")
        }
        SwitchoverError::NoLeader | SwitchoverError::NoLeaderGiven => format!(
            "{e}: no member holds the leader lease, so there is nothing to switch over from; \
             `pgquorumctl failover --candidate NAME` promotes a replica"
        ),
        _ => e.to_string(),
    };
    CtlError::Other(format!("{op} failed, details: {}, {detail}", e.http_status()))
}

pub async fn switchover(endpoint: &str, scope: &str, args: &SwitchoverArgs) -> Result<String, CtlError> {
    let console = Console::new(args.json, args.force);
    let view = cluster_view(endpoint).await?;
    let interactive = console.interactive()?;
    let current = view.leader_name().map(str::to_string);
    let mut leader = args.leader.clone();
    let mut candidate = args.candidate.clone();
    let mut scheduled = args.scheduled.clone();
    if interactive {
        if leader.is_none() {
            let default = current.clone().unwrap_or_default();
            let answer = console.ask(&format!("Primary [{default}]: "))?;
            leader = Some(if answer.is_empty() { default } else { answer });
        }
        if candidate.is_none() {
            let names = candidate_names(&view, leader.as_deref());
            let answer = console.ask(&format!("Candidate {names:?} []: "))?;
            candidate = (!answer.is_empty()).then_some(answer);
        }
        if scheduled.is_none() {
            let example = rfc3339((now_ms(&view) / 60_000 + 60) * 60_000);
            let answer = console.ask(&format!(
                "When should the switchover take place (e.g. {example}) [now]: "
            ))?;
            scheduled = (!answer.is_empty()).then_some(answer);
        }
    } else if leader.is_none() {
        leader = current;
    }
    patronictl_checks(
        &view,
        scope,
        Operation::Switchover,
        leader.as_deref(),
        candidate.as_deref(),
    )?;
    let request = validate_switchover(
        &view,
        leader.as_deref(),
        candidate.as_deref(),
        scheduled.as_deref(),
        now_ms(&view),
    )
    .map_err(|e| refused(Operation::Switchover, e))?;
    let from = request.leader.clone().unwrap_or_default();
    if interactive {
        console.say("Current cluster topology");
        console.say(&list::render(scope, &view));
        console.confirm(&match &request.scheduled_at {
            Some(at) => format!(
                "Are you sure you want to schedule switchover of cluster {scope} at {at}, demoting current leader {from}?"
            ),
            None => format!("Are you sure you want to switchover cluster {scope}, demoting current leader {from}?"),
        }, if request.scheduled_at.is_some() { "Aborting scheduled switchover" } else { "Aborting switchover" })?;
    }
    write_request(endpoint, Operation::Switchover, &request).await?;

    if request.scheduled_at.is_some() {
        let view = cluster_view(endpoint).await?;
        if args.json {
            return to_json(&report(
                scope,
                &view,
                Operation::Switchover,
                &request,
                "scheduled",
            ));
        }
        return Ok(format!(
            "{} Switchover scheduled\n{}",
            rfc3339_now(),
            list::render(scope, &view)
        ));
    }
    let (view, new_leader) = follow(
        endpoint,
        &console,
        Operation::Switchover,
        Some(&from),
        request.member.as_deref(),
    )
    .await?;
    finish(
        scope,
        &view,
        Operation::Switchover,
        &request,
        &new_leader,
        args.json,
    )
}

pub async fn failover(
    endpoint: &str,
    scope: &str,
    candidate: Option<&str>,
    force: bool,
    json: bool,
) -> Result<String, CtlError> {
    let console = Console::new(json, force);
    let view = cluster_view(endpoint).await?;
    let interactive = console.interactive()?;
    let mut candidate = candidate.map(str::to_string);
    if interactive && candidate.is_none() {
        let names = candidate_names(&view, view.leader_name());
        let answer = console.ask(&format!("Candidate {names:?} []: "))?;
        candidate = (!answer.is_empty()).then_some(answer);
    }
    patronictl_checks(&view, scope, Operation::Failover, None, candidate.as_deref())?;
    let request =
        validate_failover(&view, candidate.as_deref(), force).map_err(|e| refused(Operation::Failover, e))?;
    if let Some(why) = candidate.as_deref().and_then(|c| view.sync_forbids_promotion(c)) {
        eprintln!(
            "Warning: {why}: commits acknowledged since it stopped being synchronous may be lost (forced)"
        );
    }
    let old_leader = view.leader_name().map(str::to_string);
    if interactive {
        console.say("Current cluster topology");
        console.say(&list::render(scope, &view));
        console.confirm(
            &match &old_leader {
                Some(l) => {
                    format!("Are you sure you want to failover cluster {scope}, demoting current leader {l}?")
                }
                None => format!("Are you sure you want to failover cluster {scope}?"),
            },
            "Aborting failover",
        )?;
    }
    write_request(endpoint, Operation::Failover, &request).await?;
    let (view, new_leader) = follow(
        endpoint,
        &console,
        Operation::Failover,
        old_leader.as_deref(),
        request.member.as_deref(),
    )
    .await?;
    finish(scope, &view, Operation::Failover, &request, &new_leader, json)
}

fn report(
    scope: &str,
    view: &ClusterView,
    operation: Operation,
    request: &FailoverRequest,
    result: &'static str,
) -> Report {
    Report {
        action: match operation {
            Operation::Switchover => "switchover",
            Operation::Failover => "failover",
        },
        result,
        from: request.leader.clone(),
        to: request.member.clone(),
        scheduled_at: request.scheduled_at.clone(),
        leader: view.leader_name().map(str::to_string),
        members: list::rows(scope, view),
    }
}

fn finish(
    scope: &str,
    view: &ClusterView,
    operation: Operation,
    request: &FailoverRequest,
    new_leader: &str,
    json: bool,
) -> Result<String, CtlError> {
    if json {
        return to_json(&report(scope, view, operation, request, "completed"));
    }
    Ok(format!(
        "{} {}\n{}",
        rfc3339_now(),
        outcome_line(operation, request.member.as_deref(), new_leader),
        list::render(scope, view)
    ))
}

/// Patroni's words: `Successfully switched over to "node2"`, or `Switched over to "node3"
/// instead of "node2"` when another member took over.
fn outcome_line(operation: Operation, candidate: Option<&str>, new_leader: &str) -> String {
    let verb = match operation {
        Operation::Switchover => "switched",
        Operation::Failover => "failed",
    };
    match candidate {
        Some(c) if c != new_leader => {
            let mut verb = verb.to_string();
            verb[..1].make_ascii_uppercase();
            format!("{verb} over to \"{new_leader}\" instead of \"{c}\"")
        }
        _ => format!("Successfully {verb} over to \"{new_leader}\""),
    }
}

/// Write the `failover` key, only if none is there.
async fn write_request(
    endpoint: &str,
    operation: Operation,
    request: &FailoverRequest,
) -> Result<(), CtlError> {
    let value = serde_json::to_value(request).map_err(|e| CtlError::Other(e.to_string()))?;
    let command = Command::Put {
        key: Key::Failover,
        value,
        ttl_ms: None,
        precondition: Precondition::Absent,
    };
    match client::write(endpoint, &command).await?.0 {
        CommandOutcome::Applied { .. } => Ok(()),
        CommandOutcome::Rejected { current, .. } => {
            let pending = current
                .and_then(|e| serde_json::from_value::<FailoverRequest>(e.value).ok())
                .map_or_else(|| "switchover or failover".to_string(), |r| describe(&r));
            Err(refused(operation, SwitchoverError::AlreadyPending { pending }))
        }
    }
}

/// Where a switchover or failover stands, from one read of the cluster.
#[derive(Debug, PartialEq)]
pub(super) enum Step {
    Waiting(String),
    /// `leader` holds the lease and runs as primary.
    Done {
        leader: String,
    },
    Failed(String),
}

/// `old`: the lease holder when the request was written; `target`: the candidate, if named.
pub(super) fn step(
    view: &ClusterView,
    operation: Operation,
    old: Option<&str>,
    target: Option<&str>,
) -> Step {
    let describe_member = |name: &str| match view.member(name) {
        Some(m) => format!("{}, {}", m.role.as_str(), m.state.as_str()),
        None => "no member record".to_string(),
    };
    match view.leader_name() {
        Some(holder) if Some(holder) != old => match view.member(holder) {
            Some(m) if m.role == PgRole::Primary && m.state == PgRunState::Running => Step::Done {
                leader: holder.to_string(),
            },
            _ => Step::Waiting(format!(
                "{holder} holds the leader lease; waiting for it to run as primary ({})",
                describe_member(holder)
            )),
        },
        Some(holder) if view.failover.is_none() => {
            let mut op = operation.to_string();
            op[..1].make_ascii_uppercase();
            Step::Failed(format!(
                "{op} failed: {holder} still holds the leader lease and the failover key was removed; \
                 the agents' logs say why"
            ))
        }
        Some(holder) => Step::Waiting(format!(
            "{holder} holds the leader lease ({}); {operation} pending",
            describe_member(holder)
        )),
        None => Step::Waiting(format!(
            "no member holds the leader lease; waiting for {} to take it",
            target.unwrap_or("a new primary")
        )),
    }
}

/// Poll the cluster until the request is carried out, printing a line whenever the state
/// changes. Returns the last view and the new primary.
async fn follow(
    endpoint: &str,
    console: &Console,
    operation: Operation,
    old: Option<&str>,
    target: Option<&str>,
) -> Result<(ClusterView, String), CtlError> {
    let deadline = Instant::now() + HANDOVER_WAIT;
    let mut last = String::new();
    loop {
        let line = match cluster_view(endpoint).await {
            Ok(view) => match step(&view, operation, old, target) {
                Step::Done { leader } => return Ok((settled(endpoint, view).await, leader)),
                Step::Failed(message) => return Err(CtlError::Other(message)),
                Step::Waiting(line) => line,
            },
            Err(e) => format!("cannot read the cluster state ({e}); retrying"),
        };
        if line != last {
            console.progress(&line);
            last = line;
        }
        if Instant::now() >= deadline {
            let mut op = operation.to_string();
            op[..1].make_ascii_uppercase();
            return Err(CtlError::Other(format!(
                "{op} status unknown: not completed within {} s (last: {last}). The failover key \
                 stays until the agents act on it; `pgquorumctl flush switchover` removes it",
                HANDOVER_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The new primary removes the `failover` key in its next cycle: give it a moment, so that
/// the table printed last does not still show the request in progress.
async fn settled(endpoint: &str, mut view: ClusterView) -> ClusterView {
    let until = Instant::now() + KEY_REMOVAL_GRACE;
    while view.failover.is_some() && Instant::now() < until {
        tokio::time::sleep(POLL_INTERVAL).await;
        match cluster_view(endpoint).await {
            Ok(newer) => view = newer,
            Err(_) => break,
        }
    }
    view
}

// ---------------------------------------------------------------------------------------------
// flush switchover

#[derive(Debug, Serialize)]
struct FlushReport {
    deleted: Option<FailoverRequest>,
}

/// Remove the pending `failover` key (compare-and-set on the revision read), scheduled or not.
pub async fn flush_switchover(endpoint: &str, json: bool) -> Result<String, CtlError> {
    let read = client::read(endpoint, "failover", false, true).await?;
    let Some(entry) = read.entries.into_iter().next() else {
        return if json {
            to_json(&FlushReport { deleted: None })
        } else {
            Ok("No pending scheduled switchover".into())
        };
    };
    let request: FailoverRequest = serde_json::from_value(entry.value).unwrap_or_default();
    let command = Command::Delete {
        key: Key::Failover,
        precondition: Precondition::Revision(entry.revision),
    };
    match client::write(endpoint, &command).await?.0 {
        CommandOutcome::Applied { .. } if json => to_json(&FlushReport {
            deleted: Some(request),
        }),
        CommandOutcome::Applied { .. } if request.scheduled_at.is_some() => {
            Ok("Success: scheduled switchover deleted".into())
        }
        CommandOutcome::Applied { .. } => Ok(format!(
            "Success: pending {} deleted (it was being carried out; the cluster keeps whichever primary holds the lease)",
            describe(&request)
        )),
        CommandOutcome::Rejected { .. } => Err(CtlError::Other(
            "the failover key changed meanwhile (carried out or replaced); nothing deleted — run `list` and try again"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{LeaderLease, MemberStatus};

    fn member(name: &str, role: PgRole, state: PgRunState) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            role,
            state,
            ..Default::default()
        }
    }

    fn view(holder: Option<&str>, members: Vec<MemberStatus>, pending: bool) -> ClusterView {
        ClusterView {
            leader: holder.map(|h| LeaderLease {
                holder: h.into(),
                revision: 1,
                expires_at_ms: u64::MAX,
            }),
            members,
            failover: pending.then(|| FailoverRequest {
                leader: Some("node1".into()),
                member: Some("node2".into()),
                ..Default::default()
            }),
            failover_revision: pending.then_some(40),
            ..Default::default()
        }
    }

    #[test]
    fn steps_of_a_switchover() {
        use PgRole::{Primary, Replica};
        use PgRunState::{Running, Stopped, Stopping, Streaming};
        let sw = Operation::Switchover;
        let waiting = |s: &str| Step::Waiting(s.to_string());
        #[rustfmt::skip]
        let table: Vec<(&str, ClusterView, Step)> = vec![
            ("old primary still at work", view(Some("node1"), vec![member("node1", Primary, Running)], true),
                waiting("node1 holds the leader lease (primary, running); switchover pending")),
            ("old primary stopping", view(Some("node1"), vec![member("node1", Primary, Stopping)], true),
                waiting("node1 holds the leader lease (primary, stopping); switchover pending")),
            ("lease released", view(None, vec![member("node1", Replica, Stopped)], true),
                waiting("no member holds the leader lease; waiting for node2 to take it")),
            ("candidate has the lease, promoting", view(Some("node2"), vec![member("node2", Replica, Streaming)], true),
                waiting("node2 holds the leader lease; waiting for it to run as primary (replica, streaming)")),
            ("candidate has the lease, no record", view(Some("node2"), vec![], false),
                waiting("node2 holds the leader lease; waiting for it to run as primary (no member record)")),
            ("candidate runs as primary", view(Some("node2"), vec![member("node2", Primary, Running)], false),
                Step::Done { leader: "node2".into() }),
            ("refused by the loop", view(Some("node1"), vec![member("node1", Primary, Running)], false),
                Step::Failed("Switchover failed: node1 still holds the leader lease and the failover key was removed; \
                              the agents' logs say why".into())),
        ];
        for (name, v, want) in table {
            assert_eq!(step(&v, sw, Some("node1"), Some("node2")), want, "{name}");
        }
        // Another member won: done as well (reported as "instead of").
        let v = view(Some("node3"), vec![member("node3", Primary, Running)], false);
        assert_eq!(
            step(&v, sw, Some("node1"), Some("node2")),
            Step::Done {
                leader: "node3".into()
            }
        );
    }

    #[test]
    fn steps_of_a_failover_without_primary() {
        let fo = Operation::Failover;
        let v = view(None, vec![], false);
        assert_eq!(
            step(&v, fo, None, Some("node2")),
            Step::Waiting("no member holds the leader lease; waiting for node2 to take it".into()),
            "a failover without primary never fails on a missing key"
        );
        let v = view(
            Some("node2"),
            vec![member("node2", PgRole::Primary, PgRunState::Running)],
            false,
        );
        assert_eq!(
            step(&v, fo, None, Some("node2")),
            Step::Done {
                leader: "node2".into()
            }
        );
    }

    #[test]
    fn outcome_lines_are_patronis() {
        assert_eq!(
            outcome_line(Operation::Switchover, Some("node2"), "node2"),
            "Successfully switched over to \"node2\""
        );
        assert_eq!(
            outcome_line(Operation::Switchover, None, "node3"),
            "Successfully switched over to \"node3\""
        );
        assert_eq!(
            outcome_line(Operation::Switchover, Some("node2"), "node3"),
            "Switched over to \"node3\" instead of \"node2\""
        );
        assert_eq!(
            outcome_line(Operation::Failover, Some("node2"), "node2"),
            "Successfully failed over to \"node2\""
        );
    }

    #[test]
    fn confirmation_answers() {
        for yes in ["y", "Y", "yes", " YES \n"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "n", "no", "yep", "sure"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }

    #[test]
    fn prompt_lists_eligible_candidates_only() {
        let mut nofailover = member("node4", PgRole::Replica, PgRunState::Streaming);
        nofailover.tags.nofailover = Some(true);
        let v = view(
            Some("node1"),
            vec![
                member("node1", PgRole::Primary, PgRunState::Running),
                member("node2", PgRole::Replica, PgRunState::Streaming),
                member("node3", PgRole::Replica, PgRunState::Stopped),
                nofailover,
            ],
            false,
        );
        assert_eq!(candidate_names(&v, Some("node1")), ["node2"]);
    }

    #[test]
    fn refusals_past_patronictls_checks_read_like_its_rest_failure_line() {
        let e = refused(
            Operation::Switchover,
            SwitchoverError::LeaderNotRunning {
                leader: "node1".into(),
                role: "primary",
                state: "stopped",
            },
        );
        assert_eq!(
            e.to_string(),
            "Switchover failed, details: 412, leader node1 is not running as primary (role primary, state stopped)"
        );
    }

    /// patronictl's words for each of its own checks (scripts match on them).
    #[test]
    fn patronictl_messages() {
        let mut nofailover = member("node4", PgRole::Replica, PgRunState::Streaming);
        nofailover.tags.nofailover = Some(true);
        let three = view(
            Some("node1"),
            vec![
                member("node1", PgRole::Primary, PgRunState::Running),
                member("node2", PgRole::Replica, PgRunState::Streaming),
                member("node3", PgRole::Replica, PgRunState::Stopped),
                nofailover.clone(),
            ],
            false,
        );
        let alone = view(
            Some("node1"),
            vec![member("node1", PgRole::Primary, PgRunState::Running), nofailover],
            false,
        );
        let leaderless = view(
            None,
            vec![member("node2", PgRole::Replica, PgRunState::Streaming)],
            false,
        );
        use Operation::{Failover, Switchover};
        // (view, operation, --leader, --candidate, the error patronictl prints)
        type Row<'a> = (
            &'a ClusterView,
            Operation,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let rows: Vec<Row> = vec![
            (
                &leaderless,
                Switchover,
                None,
                None,
                Some("This cluster has no leader"),
            ),
            (
                &three,
                Switchover,
                Some("node2"),
                None,
                Some("Member node2 is not the leader of cluster demo"),
            ),
            (
                &alone,
                Switchover,
                Some("node1"),
                None,
                Some("No candidates found to switchover to"),
            ),
            (
                &alone,
                Failover,
                None,
                Some("node4"),
                Some("No candidates found to failover to"),
            ),
            (
                &three,
                Failover,
                None,
                None,
                Some("Failover could be performed only to a specific candidate"),
            ),
            (
                &three,
                Failover,
                None,
                Some("node1"),
                Some("Member node1 is already the leader of cluster demo"),
            ),
            (
                &three,
                Switchover,
                Some("node1"),
                Some("node4"),
                Some("Member node4 does not exist in cluster demo or is tagged as nofailover"),
            ),
            (
                &three,
                Switchover,
                Some("node1"),
                Some("node9"),
                Some("Member node9 does not exist in cluster demo or is tagged as nofailover"),
            ),
            // A stopped candidate passes patronictl's checks; the shared validation refuses it.
            (&three, Switchover, Some("node1"), Some("node3"), None),
            (&three, Switchover, None, None, None),
            (&leaderless, Failover, None, Some("node2"), None),
        ];
        for (v, op, leader, candidate, want) in rows {
            let got = patronictl_checks(v, "demo", op, leader, candidate)
                .err()
                .map(|e| e.to_string());
            assert_eq!(
                got.as_deref(),
                want,
                "{op} leader={leader:?} candidate={candidate:?}"
            );
        }
    }
}
