//! `pgquorumctl list` / `topology`: the members as `patronictl list` shows them.

use std::time::Duration;

use serde::Serialize;

use super::cluster_read::cluster_view;
use super::raft_status::raft_status_reply;
use super::{table, CtlError};
use crate::cluster::{ClusterView, FailoverRequest, MemberStatus, PgRole};
use crate::node::quorum::QuorumLoss;

/// One row; field names follow `patronictl list -f json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListRow {
    #[serde(rename = "Cluster")]
    pub cluster: String,
    #[serde(rename = "Member")]
    pub member: String,
    #[serde(rename = "Host")]
    pub host: String,
    #[serde(rename = "Role")]
    pub role: String,
    /// `role` as a value, for selecting rows by role (never by the shown text).
    #[serde(skip)]
    pub kind: ListRole,
    #[serde(rename = "State")]
    pub state: String,
    #[serde(rename = "TL")]
    pub timeline: Option<u64>,
    #[serde(rename = "Lag in MB")]
    pub lag_mb: Option<f64>,
    #[serde(rename = "Pending restart", skip_serializing_if = "String::is_empty")]
    pub pending_restart: String,
    #[serde(rename = "Tags", skip_serializing_if = "Option::is_none")]
    pub tags: Option<serde_json::Value>,
}

/// A row's role in `list`: the lease holder, a synchronous standby, a witness, or the
/// member's own PostgreSQL role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListRole {
    Leader,
    SyncStandby,
    PrimaryWithoutLease,
    Replica,
    Uninitialized,
    #[default]
    Unknown,
    Witness,
}

impl ListRole {
    /// The text of the Role column (patronictl's words).
    pub fn label(self) -> &'static str {
        match self {
            ListRole::Leader => "Leader",
            ListRole::SyncStandby => "Sync Standby",
            ListRole::PrimaryWithoutLease => "Primary (no lease)",
            ListRole::Replica => "Replica",
            ListRole::Uninitialized => "Uninitialized",
            ListRole::Unknown => "Unknown",
            ListRole::Witness => WITNESS_ROLE,
        }
    }
}

fn role_of(view: &ClusterView, m: &MemberStatus) -> ListRole {
    if view.leader_name() == Some(m.name.as_str()) {
        ListRole::Leader
    } else if m.role == PgRole::Replica && view.is_sync_standby(&m.name) {
        ListRole::SyncStandby
    } else {
        match m.role {
            PgRole::Primary => ListRole::PrimaryWithoutLease,
            PgRole::Replica => ListRole::Replica,
            PgRole::Uninitialized => ListRole::Uninitialized,
            PgRole::Unknown => ListRole::Unknown,
        }
    }
}

/// The leader's WAL position, the reference for lag.
fn primary_position(view: &ClusterView) -> Option<u64> {
    view.leader_name()
        .and_then(|l| view.member(l))
        .and_then(|m| m.wal_position())
        .or(view.last_primary_lsn)
}

fn non_default_tags(m: &MemberStatus) -> Option<serde_json::Value> {
    let value = serde_json::to_value(&m.tags).ok()?;
    let map: serde_json::Map<String, serde_json::Value> = value
        .as_object()?
        .iter()
        .filter(|(_, v)| !matches!(v, serde_json::Value::Null | serde_json::Value::Bool(false)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!map.is_empty()).then_some(serde_json::Value::Object(map))
}

pub fn rows(scope: &str, view: &ClusterView) -> Vec<ListRow> {
    let primary_lsn = primary_position(view);
    view.members
        .iter()
        .map(|m| {
            let is_leader = view.leader_name() == Some(m.name.as_str());
            let lag_mb = match (is_leader, primary_lsn, m.received_lsn.or(m.replayed_lsn)) {
                (false, Some(p), Some(r)) => {
                    Some(((p.saturating_sub(r)) as f64 / 1_048_576.0 * 10.0).round() / 10.0)
                }
                _ => None,
            };
            let kind = role_of(view, m);
            ListRow {
                cluster: scope.to_string(),
                member: m.name.clone(),
                host: match (&m.host, m.port) {
                    (Some(h), Some(p)) => format!("{h}:{p}"),
                    _ => String::new(),
                },
                role: kind.label().to_string(),
                kind,
                state: m.state.as_str().to_string(),
                timeline: m.timeline,
                lag_mb,
                pending_restart: if m.pending_restart {
                    "*".into()
                } else {
                    String::new()
                },
                tags: non_default_tags(m),
            }
        })
        .chain(view.witnesses.iter().map(|w| ListRow {
            cluster: scope.to_string(),
            member: w.name.clone(),
            host: w.raft_addr.clone(),
            role: WITNESS_ROLE.to_string(),
            kind: ListRole::Witness,
            // Not in the keyspace: `run` fills it in from `raft status`.
            state: String::new(),
            timeline: None,
            lag_mb: None,
            pending_restart: String::new(),
            tags: None,
        }))
        .collect()
}

/// The role shown for a witness (`pgquorum-controller`): a Raft voter, never a PostgreSQL
/// member nor a failover candidate.
pub const WITNESS_ROLE: &str = "Witness";

/// Each witness row's state: `running` if it answered `raft status`, else `unreachable`.
fn witness_states(rows: &mut [ListRow], status: &crate::grpc::pb::admin::RaftStatusReply) {
    for row in rows.iter_mut().filter(|r| r.kind == ListRole::Witness) {
        let answered = status
            .members
            .iter()
            .find(|m| m.witness && m.addr.trim() == row.host.trim())
            .is_some_and(|m| m.status.is_some());
        row.state = if answered { "running" } else { "unreachable" }.to_string();
    }
}

pub fn render(scope: &str, view: &ClusterView) -> String {
    render_rows(scope, view, rows(scope, view))
}

fn render_rows(scope: &str, view: &ClusterView, rows: Vec<ListRow>) -> String {
    let any_pending = rows.iter().any(|r| !r.pending_restart.is_empty());
    let any_tags = rows.iter().any(|r| r.tags.is_some());
    let mut header = vec!["Member", "Host", "Role", "State", "TL", "Lag in MB"];
    if any_pending {
        header.push("Pending restart");
    }
    if any_tags {
        header.push("Tags");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.member.clone(),
                r.host.clone(),
                r.role.clone(),
                r.state.clone(),
                r.timeline.map_or(String::new(), |t| t.to_string()),
                r.lag_mb.map_or(String::new(), |l| format!("{l}")),
            ];
            if any_pending {
                row.push(r.pending_restart.clone());
            }
            if any_tags {
                row.push(r.tags.as_ref().map_or(String::new(), |t| t.to_string()));
            }
            row
        })
        .collect();
    let sysid = view
        .initialize
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("uninitialized");
    let mut out = format!("Cluster: {scope} ({sysid})\n{}", table::render(&header, &cells));
    if let Some(request) = &view.failover {
        out.push('\n');
        out.push_str(&failover_footer(request));
    }
    if view.paused() {
        out.push_str("\n Maintenance mode: on");
    }
    if view.leader.is_none() {
        out.push_str("\nWARNING: no member holds the leader lease");
    }
    for m in view.members.iter().filter(|m| m.role == PgRole::Primary) {
        if let Some(why) = &m.writes_blocked {
            out.push_str(&format!("\nWARNING: {}: {why}", m.name));
        }
    }
    out
}

/// A pending `failover` key below the table. A scheduled switchover is shown as
/// `patronictl list` shows it:
///
/// ```text
///  Switchover scheduled at: 2030-01-31T22:00:00+01:00
///                     from: node1
///                       to: node2
/// ```
pub fn failover_footer(request: &FailoverRequest) -> String {
    const HEAD: &str = " Switchover scheduled at:";
    let width = HEAD.len();
    match &request.scheduled_at {
        Some(at) => {
            let mut lines = vec![format!("{HEAD} {at}")];
            if let Some(leader) = &request.leader {
                lines.push(format!("{:>width$} {leader}", "from:"));
            }
            if let Some(member) = &request.member {
                lines.push(format!("{:>width$} {member}", "to:"));
            }
            lines.join("\n")
        }
        None => {
            let what = if request.is_switchover() {
                "Switchover"
            } else {
                "Failover"
            };
            let mut line = format!(" {what} in progress:");
            if let Some(leader) = &request.leader {
                line.push_str(&format!(" from {leader}"));
            }
            line.push_str(&format!(
                " to {}",
                request.member.as_deref().unwrap_or("the best replica")
            ));
            line
        }
    }
}

pub async fn run(
    endpoint: &str,
    scope: Option<&str>,
    json: bool,
    watch: Option<f64>,
) -> Result<String, CtlError> {
    loop {
        let view = match cluster_view(endpoint).await {
            Ok(view) => view,
            Err(read_error) => return Err(explain_failed_read(endpoint, read_error).await),
        };
        let scope = scope.unwrap_or("cluster");
        let mut rows = rows(scope, &view);
        if !view.witnesses.is_empty() {
            witness_states(&mut rows, &raft_status_reply(endpoint).await?);
        }
        let out = if json {
            serde_json::to_string_pretty(&rows).map_err(|e| CtlError::Other(e.to_string()))?
        } else {
            render_rows(scope, &view, rows)
        };
        match watch {
            None => return Ok(out),
            Some(secs) => {
                // Clear the screen and redraw, like `watch`.
                super::stdout::print(&format!("\x1b[2J\x1b[H{out}"), true);
                tokio::time::sleep(Duration::from_secs_f64(secs.max(0.5))).await;
            }
        }
    }
}

/// A failed read, explained when the agent cannot reach a majority of the Raft voters (then
/// nothing can be promoted, and `raft status` names who is missing); else the read's error.
async fn explain_failed_read(endpoint: &str, read_error: CtlError) -> CtlError {
    let Ok(status) = raft_status_reply(endpoint).await else {
        return read_error;
    };
    // Not gated on "no leader known": the survivor may still call itself Raft leader
    // (openraft keeps a cut-off leader in its role); who answers is what counts.
    match QuorumLoss::from_raft_status(&format!("the agent at {endpoint}"), &status) {
        Some(loss) => CtlError::NoQuorum {
            read_error: read_error.to_string(),
            explanation: loss.to_string(),
        },
        None => read_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{LeaderLease, PgRunState};

    fn view() -> ClusterView {
        ClusterView {
            initialize: Some("7268616322854375442".into()),
            leader: Some(LeaderLease {
                holder: "node1".into(),
                revision: 3,
                expires_at_ms: u64::MAX,
            }),
            members: vec![MemberStatus {
                name: "node1".into(),
                role: PgRole::Primary,
                state: PgRunState::Running,
                timeline: Some(1),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn footer_shows_maintenance_mode_and_a_scheduled_switchover_like_patronictl() {
        let mut v = view();
        v.config.pause = true;
        v.failover = Some(FailoverRequest {
            leader: Some("node1".into()),
            member: Some("node2".into()),
            scheduled_at: Some("2030-01-31T22:00:00+01:00".into()),
            scheduled_at_ms: Some(1_896_210_000_000),
        });
        let out = render("demo", &v);
        let footer: Vec<&str> = out.lines().skip_while(|l| !l.starts_with(" ")).collect();
        assert_eq!(
            footer,
            [
                " Switchover scheduled at: 2030-01-31T22:00:00+01:00",
                "                    from: node1",
                "                      to: node2",
                " Maintenance mode: on",
            ]
        );
    }

    #[test]
    fn footer_for_requests_being_carried_out() {
        let switchover = FailoverRequest {
            leader: Some("node1".into()),
            ..Default::default()
        };
        assert_eq!(
            failover_footer(&switchover),
            " Switchover in progress: from node1 to the best replica"
        );
        let failover = FailoverRequest {
            member: Some("node3".into()),
            ..Default::default()
        };
        assert_eq!(failover_footer(&failover), " Failover in progress: to node3");
        assert!(!render("demo", &view()).contains("progress"));
    }
}
