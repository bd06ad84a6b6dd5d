//! `pgquorumctl reload` and `restart`: ask members' agents to act on their PostgreSQL.

use std::io::IsTerminal;

use clap::ValueEnum;

use super::list::ListRole;
use super::raft_status::{MemberRow, WITNESS_KIND};
use super::switchover::Console;
use super::{cluster_arg, cluster_read, connect, fetch_raft_status, list, rpc_error, scope_of, CtlError};
use crate::grpc::pb::admin::OperateRequest;

/// patronictl's `-r/--role` for `reload` and `restart` (Patroni 3's names; `master` is the
/// primary, as there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleFilter {
    /// The primary (pgquorum has no standby clusters, so no standby leader).
    Leader,
    #[value(alias = "master")]
    Primary,
    Replica,
    /// A standby cluster's leader: pgquorum runs none, so this selects nobody.
    StandbyLeader,
    Any,
}

impl RoleFilter {
    /// Whether a member shown with `role` in `list` has this role.
    pub(super) fn matches(self, role: ListRole) -> bool {
        match self {
            RoleFilter::Leader | RoleFilter::Primary => role == ListRole::Leader,
            RoleFilter::Replica => matches!(role, ListRole::Replica | ListRole::SyncStandby),
            // pgquorum runs no standby clusters: no row has this role.
            RoleFilter::StandbyLeader => false,
            RoleFilter::Any => role != ListRole::Witness,
        }
    }
}

/// What `reload`/`restart` were given on the command line.
pub struct OperateArgs<'a> {
    /// `[CLUSTER] [MEMBER...]`.
    pub positionals: &'a [String],
    pub role: Option<RoleFilter>,
    pub force: bool,
    pub json: bool,
}

/// The rows `op` runs on: the named members (every member when none is named) that have the
/// role asked for. A witness manages no PostgreSQL, so "every member" leaves it out; named, it
/// is asked and answers why it cannot.
fn chosen<'a>(status: &'a [MemberRow], named: &[String], with_role: Option<&[String]>) -> Vec<&'a MemberRow> {
    status
        .iter()
        .filter(|r| {
            if named.is_empty() {
                r.kind != WITNESS_KIND
            } else {
                named.contains(&r.member)
            }
        })
        .filter(|r| with_role.is_none_or(|names| names.contains(&r.member)))
        .collect()
}

/// Run `op` on each named member (all members when none is named), those with `args.role`.
pub async fn run(endpoint: &str, op: &str, args: &OperateArgs<'_>) -> Result<String, CtlError> {
    let status = fetch_raft_status(endpoint).await?;
    let known: Vec<String> = status.iter().map(|r| r.member.clone()).collect();
    let members = if args.positionals.is_empty() {
        Vec::new()
    } else {
        let scope = scope_of(endpoint).await?;
        cluster_arg::member_names(args.positionals, &scope, &known)
            .map_err(|e| CtlError::Other(e.to_string()))?
    };
    for m in &members {
        if !known.contains(m) {
            return Err(CtlError::Other(format!("{m} is not a member of cluster")));
        }
    }
    let with_role: Option<Vec<String>> = match args.role {
        None => None,
        Some(role) => {
            let scope = scope_of(endpoint).await?;
            let view = cluster_read::cluster_view(endpoint).await?;
            Some(
                list::rows(&scope, &view)
                    .into_iter()
                    .filter(|r| role.matches(r.kind))
                    .map(|r| r.member)
                    .collect(),
            )
        }
    };
    let targets = chosen(&status, &members, with_role.as_deref());
    if targets.is_empty() {
        let role = args
            .role
            .and_then(|r| r.to_possible_value())
            .map(|v| v.get_name().to_string());
        return Err(CtlError::Other(format!(
            "No {} among provided members",
            role.unwrap_or_else(|| "member".into())
        )));
    }
    // patronictl asks before acting; nobody to ask (a script) keeps acting unasked, as before.
    if !args.force && std::io::stdin().is_terminal() {
        let names: Vec<&str> = targets.iter().map(|t| t.member.as_str()).collect();
        Console::new(args.json, false).confirm(
            &format!("Are you sure you want to {op} members {}?", names.join(", ")),
            &format!("Aborted {op}"),
        )?;
    }
    let mut out = Vec::new();
    let mut failed = false;
    for t in targets {
        let address = super::operator_address(endpoint, &t.member, &t.address).await;
        let mut client = connect(&address)?;
        match client.operate(OperateRequest { op: op.to_string() }).await {
            Ok(reply) => out.push(success_line(op, &t.member, &reply.into_inner().message)),
            Err(status) => {
                failed = true;
                out.push(format!(
                    "Failed: {op} for member {}, status code={}, ({})",
                    t.member,
                    status.code() as i32,
                    rpc_error(&address, status)
                ));
            }
        }
    }
    let text = out.join("\n");
    if failed {
        Err(CtlError::Other(text))
    } else {
        Ok(text)
    }
}

/// patronictl's lines for a member that did it (scripts match on their start); the agent's own
/// message follows, since pgquorum's reload and restart are done by the time it answers.
fn success_line(op: &str, member: &str, message: &str) -> String {
    let head = match op {
        "reload" => format!("Reload request received for member {member}"),
        "restart" => format!("Success: restart on member {member}"),
        _ => format!("Success: {op} for member {member}"),
    };
    if message.is_empty() {
        head
    } else {
        format!("{head}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::{chosen, success_line, MemberRow, RoleFilter, WITNESS_KIND};

    fn row(member: &str, kind: &str) -> MemberRow {
        MemberRow {
            member: member.into(),
            kind: kind.into(),
            address: String::new(),
            node_id: 0,
            role: "follower".into(),
            term: None,
            last_log_index: None,
            commit_index: None,
            applied_index: None,
            lag: None,
            error: None,
        }
    }

    /// `reload`/`restart` with no member named act on every PostgreSQL member, never on a
    /// witness (which would answer that it manages no PostgreSQL and fail the command).
    #[test]
    fn every_member_means_every_postgresql_member() {
        let status = [
            row("node1", "agent"),
            row("node2", "agent"),
            row("w", WITNESS_KIND),
        ];
        let names = |rows: Vec<&MemberRow>| rows.iter().map(|r| r.member.clone()).collect::<Vec<_>>();
        assert_eq!(names(chosen(&status, &[], None)), ["node1", "node2"]);
        assert_eq!(names(chosen(&status, &["w".into()], None)), ["w"], "named: asked");
        let primary = ["node2".to_string()];
        assert_eq!(names(chosen(&status, &[], Some(&primary))), ["node2"]);
    }

    #[test]
    fn roles_select_as_patronictls_do() {
        use clap::ValueEnum;
        let master = RoleFilter::from_str("master", false).unwrap();
        assert_eq!(master, RoleFilter::Primary);
        use crate::ctl::list::ListRole::*;
        assert!(master.matches(Leader) && !master.matches(Replica));
        assert!(RoleFilter::Leader.matches(Leader));
        assert!(RoleFilter::Replica.matches(Replica) && RoleFilter::Replica.matches(SyncStandby));
        assert!(!RoleFilter::Replica.matches(Leader));
        assert!(!RoleFilter::StandbyLeader.matches(Leader));
        assert!(RoleFilter::Any.matches(Replica) && !RoleFilter::Any.matches(Witness));
    }

    #[test]
    fn lines_start_as_patronictls_do() {
        assert_eq!(
            success_line("restart", "node2", "restarted successfully"),
            "Success: restart on member node2: restarted successfully"
        );
        assert!(success_line("reload", "node1", "").starts_with("Reload request received for member node1"));
    }
}
