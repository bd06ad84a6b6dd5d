//! `pgquorumctl members list|add|remove|promote`: the Raft group's voters and learners,
//! reconciled with the PostgreSQL members' records (`members/<name>`), and changing them
//! through the `ChangeMembers` RPC (the rules are checked on the Raft leader:
//! src/node/membership_rule.rs).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::switchover::Console;
use super::{client, connect, rpc_error, table, CtlError};
use crate::cluster::MemberStatus;
use crate::grpc::pb::admin::{MembersChangeReply, MembersChangeRequest, MembersOp, RaftStatusRequest};
use crate::keyspace::MEMBERS_PREFIX;

/// How long `add --voter` waits for the learner to catch up before giving up (it stays a learner).
const CATCH_UP_WAIT: Duration = Duration::from_secs(600);
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// One Raft member as the leader's view shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RaftMember {
    pub address: String,
    /// Its own name, when it answered.
    pub name: Option<String>,
    pub voter: bool,
    pub reachable: bool,
    /// The leader's last log index matched on it.
    pub matched: Option<u64>,
    pub lag: Option<u64>,
    pub leader: bool,
}

/// One line of `members list` (also its JSON form).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MembershipRow {
    pub name: Option<String>,
    pub address: String,
    /// `voter`, `learner`, or `-` for a member record whose node is no Raft member.
    pub raft: String,
    pub leader: bool,
    pub matched: Option<u64>,
    pub lag: Option<u64>,
    pub reachable: Option<bool>,
    /// A `members/<name>` record names this node.
    pub member_record: bool,
    /// Where the Raft group and the member records differ (empty when they agree).
    pub note: String,
}

/// The rows of `members list`: every Raft member, named by its own answer or its record, and
/// every member record whose Raft address is no Raft member. Pure, for the table test.
pub fn reconcile(raft: &[RaftMember], records: &[MemberStatus]) -> Vec<MembershipRow> {
    let record_at: BTreeMap<&str, &MemberStatus> = records
        .iter()
        .filter_map(|r| Some((r.raft_addr.as_deref()?.trim(), r)))
        .collect();
    let mut rows: Vec<MembershipRow> = raft
        .iter()
        .map(|m| {
            let record = record_at.get(m.address.as_str());
            let note = match (record, m.reachable) {
                (None, true) => "Raft member without a member record (no PostgreSQL, or its agent just started)",
                (None, false) => "Raft member without a member record, unreachable (down? `members remove` it if it is gone)",
                (Some(_), _) => "",
            };
            MembershipRow {
                name: m.name.clone().or_else(|| record.map(|r| r.name.clone())),
                address: m.address.clone(),
                raft: if m.voter { "voter" } else { "learner" }.into(),
                leader: m.leader,
                matched: m.matched,
                lag: m.lag,
                reachable: Some(m.reachable),
                member_record: record.is_some(),
                note: note.into(),
            }
        })
        .collect();
    for record in records {
        let in_raft = record
            .raft_addr
            .as_deref()
            .is_some_and(|a| raft.iter().any(|m| m.address == a.trim()));
        if !in_raft {
            rows.push(MembershipRow {
                name: Some(record.name.clone()),
                address: record.raft_addr.clone().unwrap_or_default(),
                raft: "-".into(),
                leader: false,
                matched: None,
                lag: None,
                reachable: None,
                member_record: true,
                note: "member record of a node that is no Raft member (removed, or not joined yet)".into(),
            });
        }
    }
    rows
}

/// The Raft group as the agent at `endpoint` gathers it.
pub async fn raft_members(endpoint: &str) -> Result<Vec<RaftMember>, CtlError> {
    let reply = connect(endpoint)?
        .raft_status(RaftStatusRequest {})
        .await
        .map_err(|s| rpc_error(endpoint, s))?
        .into_inner();
    let leader = reply
        .members
        .iter()
        .filter_map(|m| m.status.as_ref())
        .find(|s| s.role == crate::node::status::LEADER_ROLE)
        .cloned();
    Ok(reply
        .members
        .iter()
        .map(|m| RaftMember {
            address: m.addr.clone(),
            name: m.status.as_ref().map(|s| s.name.clone()),
            voter: m.voter,
            reachable: m.status.is_some(),
            matched: leader.as_ref().and_then(|l| {
                if l.id == m.id {
                    l.has_last_log.then_some(l.last_log_index)
                } else {
                    l.matched.get(&m.id).copied()
                }
            }),
            lag: m.has_lag.then_some(m.lag),
            leader: leader.as_ref().is_some_and(|l| l.id == m.id),
        })
        .collect())
}

async fn member_records(endpoint: &str) -> Result<Vec<MemberStatus>, CtlError> {
    let read = client::read(endpoint, MEMBERS_PREFIX, true, true).await?;
    Ok(read
        .entries
        .into_iter()
        .filter_map(|e| serde_json::from_value(e.value).ok())
        .collect())
}

pub async fn list(endpoint: &str, json: bool) -> Result<String, CtlError> {
    let rows = reconcile(&raft_members(endpoint).await?, &member_records(endpoint).await?);
    if json {
        return serde_json::to_string_pretty(&rows).map_err(|e| CtlError::Other(e.to_string()));
    }
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone().unwrap_or_else(|| "?".into()),
                r.address.clone(),
                if r.leader {
                    format!("{} (leader)", r.raft)
                } else {
                    r.raft.clone()
                },
                opt(r.matched),
                opt(r.lag),
                match r.reachable {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
                if r.member_record { "yes" } else { "no" }.into(),
                r.note.clone(),
            ]
        })
        .collect();
    Ok(table::render(
        &[
            "Name",
            "Address",
            "Raft",
            "Matched",
            "Lag",
            "Reachable",
            "Record",
            "Note",
        ],
        &cells,
    ))
}

async fn change(endpoint: &str, request: MembersChangeRequest) -> Result<MembersChangeReply, CtlError> {
    let mut client = connect(endpoint)?;
    let mut request = tonic::Request::new(request);
    request.set_timeout(Duration::from_secs(70));
    Ok(client
        .change_members(request)
        .await
        .map_err(|s| rpc_error(endpoint, s))?
        .into_inner())
}

fn done(reply: MembersChangeReply, json: bool) -> Result<String, CtlError> {
    if reply.refused {
        return Err(CtlError::Other(reply.detail));
    }
    if json {
        let voters: BTreeMap<u64, String> = reply.voters.into_iter().collect();
        let learners: BTreeMap<u64, String> = reply.learners.into_iter().collect();
        let doc = serde_json::json!({ "detail": reply.detail, "voters": voters, "learners": learners });
        return serde_json::to_string_pretty(&doc).map_err(|e| CtlError::Other(e.to_string()));
    }
    Ok(reply.detail)
}

/// `members add NAME ADDR [--voter]`.
pub async fn add(
    endpoint: &str,
    name: &str,
    addr: &str,
    voter: bool,
    json: bool,
) -> Result<String, CtlError> {
    let reply = change(
        endpoint,
        MembersChangeRequest {
            op: MembersOp::AddLearner.into(),
            name: name.to_string(),
            addr: addr.to_string(),
            ..Default::default()
        },
    )
    .await?;
    if !voter || reply.refused {
        return done(reply, json);
    }
    let console = Console::new(json, true);
    console.progress(&reply.detail);
    wait_caught_up(endpoint, addr, &console).await?;
    promote(endpoint, addr, json).await
}

/// Print the learner's lag whenever it changes until it is reachable and caught up (or a voter:
/// its agent's own join request may promote it first).
async fn wait_caught_up(endpoint: &str, addr: &str, console: &Console) -> Result<(), CtlError> {
    let started = Instant::now();
    let mut last = None;
    loop {
        let member = raft_members(endpoint)
            .await?
            .into_iter()
            .find(|m| m.address == addr);
        let Some(member) = member else {
            return Err(CtlError::Other(format!(
                "{addr} is no longer a member of the Raft group"
            )));
        };
        let shown = (member.reachable, member.lag);
        if last != Some(shown) {
            console.progress(&match shown {
                (false, _) => format!("waiting for the agent at {addr} to answer"),
                (true, Some(lag)) => format!("learner at {addr}: {lag} log entries behind"),
                (true, None) => format!("learner at {addr}: lag not known yet"),
            });
            last = Some(shown);
        }
        if member.voter || (member.reachable && member.lag.is_some_and(|l| l <= 1)) {
            return Ok(());
        }
        if started.elapsed() > CATCH_UP_WAIT {
            return Err(CtlError::Other(format!(
                "{addr} has not caught up within {CATCH_UP_WAIT:?}; it stays a learner (`members promote` later)"
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// `members promote NAME`. A member that already is a voter (its agent's join promoted it)
/// is answered "nothing changed".
pub async fn promote(endpoint: &str, name: &str, json: bool) -> Result<String, CtlError> {
    let reply = change(
        endpoint,
        MembersChangeRequest {
            op: MembersOp::Promote.into(),
            name: name.to_string(),
            ..Default::default()
        },
    )
    .await?;
    done(reply, json)
}

/// `members remove NAME [--force]`.
pub async fn remove(endpoint: &str, name: &str, force: bool, json: bool) -> Result<String, CtlError> {
    let reply = change(
        endpoint,
        MembersChangeRequest {
            op: MembersOp::Remove.into(),
            name: name.to_string(),
            force,
            ..Default::default()
        },
    )
    .await?;
    done(reply, json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raft(address: &str, name: Option<&str>, voter: bool, reachable: bool) -> RaftMember {
        RaftMember {
            address: address.into(),
            name: name.map(String::from),
            voter,
            reachable,
            matched: None,
            lag: None,
            leader: false,
        }
    }

    fn record(name: &str, addr: &str) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            raft_addr: Some(addr.into()),
            ..Default::default()
        }
    }

    #[test]
    fn reconcile_shows_where_raft_and_records_differ() {
        let raft = [
            raft("a:1", Some("node1"), true, true),
            raft("b:1", None, true, false),
            raft("c:1", Some("witness"), true, true),
            raft("d:1", Some("node4"), false, true),
        ];
        let records = [
            record("node1", "a:1"),
            record("node2", "b:1"),
            record("node4", "d:1"),
            record("old", "e:1"),
        ];
        let rows = reconcile(&raft, &records);
        let summary: Vec<(Option<&str>, &str, bool, bool)> = rows
            .iter()
            .map(|r| {
                (
                    r.name.as_deref(),
                    r.raft.as_str(),
                    r.member_record,
                    r.note.is_empty(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (Some("node1"), "voter", true, true),
                (Some("node2"), "voter", true, true), // unreachable, named by its record
                (Some("witness"), "voter", false, false),
                (Some("node4"), "learner", true, true),
                (Some("old"), "-", true, false),
            ]
        );
        assert_eq!(rows[1].reachable, Some(false));
    }
}
