//! `pgquorumctl pause`, `resume` (maintenance mode: `pause` in the dynamic configuration,
//! written compare-and-set like `edit-config`) and `reinit` (rebuild a replica).

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::cluster_read::cluster_view;
use super::switchover::Console;
use super::{client, config_cmd, connect, fetch_raft_status, list, rpc_error, CtlError};
use crate::cluster::{MemberStatus, PgRole, PgRunState};
use crate::grpc::pb::admin::OperateRequest;
use crate::ha::shutdown::resume_refusal;
use crate::keyspace::{Entry, Key, MEMBERS_PREFIX};
use crate::timefmt::rfc3339_now;

const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// A clone copies the whole data directory: give it time, but not forever.
const REINIT_WAIT: Duration = Duration::from_secs(30 * 60);
const REINIT_POLL_INTERVAL: Duration = Duration::from_millis(500);

fn to_json(value: &impl Serialize) -> Result<String, CtlError> {
    serde_json::to_string_pretty(value).map_err(|e| CtlError::Other(e.to_string()))
}

// ---------------------------------------------------------------------------------------------
// pause, resume

#[derive(Debug, Serialize)]
struct PauseReport {
    pause: bool,
    /// Log index (revision of the `config` key) the change was committed at.
    revision: u64,
    /// With `--wait`: the members whose agents ran a cycle after the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed_by: Option<Vec<String>>,
}

/// Turn maintenance mode on (`pause`) or off. With `wait`, also wait until every member's
/// agent has run an HA cycle since the change was committed. A resume is refused while a
/// primary may run without its agent ([`resume_refusal`]); `force` resumes with a warning.
pub async fn set_pause(
    endpoint: &str,
    pause: bool,
    wait: bool,
    force: bool,
    json: bool,
) -> Result<String, CtlError> {
    let console = Console::new(json, true);
    let (mut config, revision) = config_cmd::current(endpoint).await?;
    let paused = config.get("pause").and_then(Value::as_bool).unwrap_or(false);
    match (pause, paused) {
        (true, true) => return Err(CtlError::Other("Cluster is already paused".into())),
        (false, false) => return Err(CtlError::Other("Cluster is not paused".into())),
        _ => {}
    }
    if !pause {
        // Read after the configuration: the config write below is compare-and-set on its
        // revision, so a resume never acts on a view older than the pause it lifts.
        if let Some(why) = resume_refusal(&cluster_view(endpoint).await?) {
            if !force {
                return Err(CtlError::Other(format!(
                    "resume refused: {why} (`pgquorumctl resume --force` resumes anyway)"
                )));
            }
            eprintln!("warning: resuming despite: {why}");
        }
    }
    // Resuming removes the setting (the default is off), as Patroni does.
    let before = revision.map(|_| config.clone());
    config_cmd::set_path(&mut config, "pause", if pause { "true" } else { "" })?;
    let stored = config_cmd::store(endpoint, before.as_ref(), &config, revision, force).await?;
    let verb = if pause { "pause" } else { "resume" };
    let mut confirmed_by = None;
    if wait {
        console.say(&format!(
            "'{verb}' request sent, waiting until it is recognized by all members"
        ));
        // A running agent publishes its member key at least every loop_wait; the key of one
        // that is down expires after ttl and then no longer counts.
        let limit = Duration::from_secs_f64((stored.config.ttl + stored.config.loop_wait).max(0.0) + 5.0);
        confirmed_by = Some(wait_for_members(endpoint, &console, stored.revision, limit).await?);
    }
    if json {
        return to_json(&PauseReport {
            pause,
            revision: stored.revision,
            confirmed_by,
        });
    }
    Ok(format!(
        "Success: cluster management is {}",
        if pause { "paused" } else { "resumed" }
    ))
}

/// Split the member keys into (published after `revision`, not yet). An agent publishes its
/// member key at the start of each HA cycle and then reads the keyspace, so a member key newer
/// than the configuration write means that member's loop is reading the new setting.
pub(super) fn members_since(entries: &[Entry], revision: u64) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut waiting = Vec::new();
    for e in entries {
        // Left by an agent that stopped in maintenance mode: nothing will rewrite it until
        // that agent is back.
        let unattended =
            e.value.get("state").and_then(Value::as_str) == Some(PgRunState::Unattended.as_str());
        if let (Key::Member(name), false) = (&e.key, unattended) {
            if e.revision > revision {
                done.push(name.clone());
            } else {
                waiting.push(name.clone());
            }
        }
    }
    (done, waiting)
}

async fn wait_for_members(
    endpoint: &str,
    console: &Console,
    revision: u64,
    limit: Duration,
) -> Result<Vec<String>, CtlError> {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    loop {
        let line = match client::read(endpoint, MEMBERS_PREFIX, true, true).await {
            Ok(read) => {
                let (done, waiting) = members_since(&read.entries, revision);
                if waiting.is_empty() {
                    return Ok(done);
                }
                format!("waiting for {}", waiting.join(", "))
            }
            Err(e) => format!("cannot read the member keys ({e}); retrying"),
        };
        if line != last {
            console.progress(&line);
            last = line;
        }
        if Instant::now() >= deadline {
            return Err(CtlError::Other(format!(
                "the change is committed, but not every member's agent ran a cycle since within {} s ({last})",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// reinit

#[derive(Debug, Serialize)]
struct ReinitReport {
    member: String,
    /// What the member's agent answered.
    message: String,
    state: String,
}

/// Where a reinitialized member stands. `fresh`: its record was published after the agent
/// accepted the request.
#[derive(Debug, PartialEq)]
pub(super) enum ReinitStep {
    Waiting(String),
    Done,
    Failed(String),
}

pub(super) fn reinit_step(name: &str, record: Option<(bool, &MemberStatus)>) -> ReinitStep {
    match record {
        None => ReinitStep::Waiting(format!("{name}: no member record (agent down or restarting)")),
        Some((false, _)) => ReinitStep::Waiting(format!("{name}: waiting for its agent to report")),
        Some((true, m)) if m.role == PgRole::Replica && m.state.is_up() => ReinitStep::Done,
        Some((true, m)) if m.state == PgRunState::StartFailed => ReinitStep::Failed(format!(
            "reinitialize of {name} failed: PostgreSQL did not start (state {}); see its agent's log",
            m.state.as_str()
        )),
        Some((true, m)) => ReinitStep::Waiting(format!("{name}: {}", m.state.as_str())),
    }
}

/// Ask `member`'s agent to rebuild its replica from the primary (gRPC `Operate` "reinit", to
/// that member's own address), then follow its state until it runs as a replica again.
pub async fn reinit(
    endpoint: &str,
    scope: &str,
    member: &str,
    force: bool,
    json: bool,
) -> Result<String, CtlError> {
    let console = Console::new(json, force);
    let view = cluster_view(endpoint).await?;
    if view.member(member).is_none() {
        return Err(CtlError::Other(format!("{member} is not a member of cluster")));
    }
    if view.leader_name() == Some(member) {
        return Err(CtlError::Other(format!(
            "{member} holds the leader lease: the primary cannot be reinitialized (switch over first)"
        )));
    }
    if console.interactive()? {
        console.say(&list::render(scope, &view));
        console.confirm(
            &format!("Are you sure you want to reinitialize members {member}?"),
            "Aborted reinitialize",
        )?;
    }
    let status = fetch_raft_status(endpoint).await?;
    let address = status
        .iter()
        .find(|r| r.member == member)
        .map(|r| r.address.clone())
        .ok_or_else(|| CtlError::Other(format!("{member} is not in the Raft group: no address to ask")))?;
    let address = super::operator_address(endpoint, member, &address).await;
    let message = connect(&address)?
        .operate(OperateRequest { op: "reinit".into() })
        .await
        .map_err(|s| rpc_error(&address, s))?
        .into_inner()
        .message;
    console.say(&match message.as_str() {
        "" => format!("Success: reinitialize for member {member}"),
        m => format!("Success: reinitialize for member {member}: {m}"),
    });

    // Records published after this read reflect the request.
    let key = Key::member(member)
        .map_err(|e| CtlError::Other(e.to_string()))?
        .to_string();
    let accepted_at = client::read(endpoint, &key, false, true).await?.applied_index;
    let deadline = Instant::now() + REINIT_WAIT;
    let mut last = String::new();
    let state = loop {
        let line = match client::read(endpoint, &key, false, true).await {
            Ok(read) => {
                let record = read.entries.first().and_then(|e| {
                    let m: MemberStatus = serde_json::from_value(e.value.clone()).ok()?;
                    Some((e.revision > accepted_at, m))
                });
                match reinit_step(member, record.as_ref().map(|(fresh, m)| (*fresh, m))) {
                    ReinitStep::Done => {
                        break record.map(|(_, m)| m.state.as_str()).unwrap_or_default();
                    }
                    ReinitStep::Failed(message) => return Err(CtlError::Other(message)),
                    ReinitStep::Waiting(line) => line,
                }
            }
            Err(e) => format!("cannot read {key} ({e}); retrying"),
        };
        if line != last {
            console.progress(&line);
            last = line;
        }
        if Instant::now() >= deadline {
            return Err(CtlError::Other(format!(
                "{member} is not running as a replica after {} min ({last}); the agent keeps trying",
                REINIT_WAIT.as_secs() / 60
            )));
        }
        tokio::time::sleep(REINIT_POLL_INTERVAL).await;
    };
    if json {
        return to_json(&ReinitReport {
            member: member.to_string(),
            message,
            state: state.to_string(),
        });
    }
    let view = cluster_view(endpoint).await?;
    Ok(format!(
        "{} Reinitialize is completed on: {member}\n{}",
        rfc3339_now(),
        list::render(scope, &view)
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(key: Key, revision: u64) -> Entry {
        Entry {
            key,
            value: json!({}),
            revision,
            created_revision: 1,
            updated_ms: 0,
            expires_at_ms: None,
            holder: None,
            holder_addr: None,
        }
    }

    #[test]
    fn members_count_once_they_published_after_the_change() {
        let entries = [
            entry(Key::Member("node1".into()), 51),
            entry(Key::Member("node2".into()), 50),
            entry(Key::Member("node3".into()), 12),
            entry(Key::Config, 50),
        ];
        let (done, waiting) = members_since(&entries, 50);
        assert_eq!(done, ["node1"]);
        assert_eq!(waiting, ["node2", "node3"]);
        assert_eq!(members_since(&entries, 10).1, Vec::<String>::new());
        // An agent stopped in maintenance mode rewrites nothing until it is back: not waited for.
        let mut unattended = entry(Key::Member("node4".into()), 12);
        unattended.value = json!({"state": "running without agent"});
        let (done, waiting) = members_since(&[unattended], 50);
        assert!(done.is_empty() && waiting.is_empty(), "{done:?} {waiting:?}");
    }

    #[test]
    fn reinit_steps() {
        let m = |role, state| MemberStatus {
            name: "node2".into(),
            role,
            state,
            ..Default::default()
        };
        let streaming = m(PgRole::Replica, PgRunState::Streaming);
        let cloning = m(PgRole::Uninitialized, PgRunState::CreatingReplica);
        let failed = m(PgRole::Replica, PgRunState::StartFailed);
        let waiting = |s: &str| ReinitStep::Waiting(s.to_string());
        assert_eq!(
            reinit_step("node2", None),
            waiting("node2: no member record (agent down or restarting)")
        );
        assert_eq!(
            reinit_step("node2", Some((false, &streaming))),
            waiting("node2: waiting for its agent to report"),
            "a record from before the request proves nothing"
        );
        assert_eq!(
            reinit_step("node2", Some((true, &cloning))),
            waiting("node2: creating replica")
        );
        assert_eq!(reinit_step("node2", Some((true, &streaming))), ReinitStep::Done);
        assert!(matches!(
            reinit_step("node2", Some((true, &failed))),
            ReinitStep::Failed(_)
        ));
    }
}
