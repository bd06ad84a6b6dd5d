//! `pgquorumctl version [CLUSTER [MEMBER...]]`: patronictl's `version` — this tool's version
//! and, given the cluster, each member's agent and PostgreSQL versions as its record publishes
//! them (`members/<name>`: `version`, `server_version`).

use serde::Serialize;

use super::{cluster_arg, cluster_read, scope_of, CtlError};
use crate::cluster::ClusterView;

/// This pgquorumctl's version.
pub const CTL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// One member's versions; field names are this command's `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberVersion {
    pub member: String,
    /// The agent's version (`pgquorum`), empty when its record has none.
    pub pgquorum: String,
    /// PostgreSQL's, as `15.4` (absent until the agent has seen its server running).
    pub postgresql: Option<String>,
}

/// PostgreSQL's `server_version_num` as people write it, the way patronictl prints it:
/// `150004` → `15.4`, `90624` → `9.6.24` (before 10 the second number is part of the major).
pub fn format_pg_version(num: u32) -> String {
    if num < 100_000 {
        format!("{}.{}.{}", num / 10_000, num / 100 % 100, num % 100)
    } else {
        format!("{}.{}", num / 10_000, num % 100)
    }
}

/// The versions of the members named (every member with a record when none is named), in the
/// view's order. Witnesses run no PostgreSQL and publish no member record, so they are not listed.
pub fn member_versions(view: &ClusterView, named: &[String]) -> Vec<MemberVersion> {
    view.members
        .iter()
        .filter(|m| named.is_empty() || named.contains(&m.name))
        .map(|m| MemberVersion {
            member: m.name.clone(),
            pgquorum: m.version.clone(),
            postgresql: m.server_version.map(format_pg_version),
        })
        .collect()
}

/// patronictl's text: the tool's line, then (given members) a blank line and
/// `NAME: pgquorum X PostgreSQL Y` per member (`PostgreSQL Y` left out when unknown).
pub fn text(members: Option<&[MemberVersion]>) -> String {
    let head = format!("pgquorumctl version {CTL_VERSION}");
    let Some(members) = members else {
        return head;
    };
    let lines: Vec<String> = members
        .iter()
        .map(|m| {
            let pg = m
                .postgresql
                .as_ref()
                .map(|v| format!(" PostgreSQL {v}"))
                .unwrap_or_default();
            format!("{}: pgquorum {}{pg}", m.member, m.pgquorum)
        })
        .collect();
    format!("{head}\n\n{}", lines.join("\n"))
}

#[derive(Serialize)]
struct VersionJson<'a> {
    pgquorumctl: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<&'a [MemberVersion]>,
}

/// The output for `members` (None: no CLUSTER given, nothing asked).
pub fn render(members: Option<&[MemberVersion]>, json: bool) -> String {
    if json {
        serde_json::to_string_pretty(&VersionJson {
            pgquorumctl: CTL_VERSION,
            members,
        })
        .unwrap_or_default()
    } else {
        text(members)
    }
}

/// `version CLUSTER [MEMBER...]`: the members' versions from the cluster view. The positionals
/// read as `reload`'s (`cluster_arg::member_names`, so `version node1` works too); a member
/// named that has no record is refused, as `reload` refuses one that is not a member.
pub async fn run(endpoint: &str, positionals: &[String], json: bool) -> Result<String, CtlError> {
    let scope = scope_of(endpoint).await?;
    let view = cluster_read::cluster_view(endpoint).await?;
    let known: Vec<String> = view.members.iter().map(|m| m.name.clone()).collect();
    let named =
        cluster_arg::member_names(positionals, &scope, &known).map_err(|e| CtlError::Other(e.to_string()))?;
    if let Some(unknown) = named.iter().find(|n| !known.contains(n)) {
        return Err(CtlError::Other(format!("{unknown} is not a member of cluster")));
    }
    Ok(render(Some(&member_versions(&view, &named)), json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::MemberStatus;

    fn view() -> ClusterView {
        let m = |name: &str, version: &str, pg: Option<u32>| MemberStatus {
            name: name.into(),
            version: version.into(),
            server_version: pg,
            ..Default::default()
        };
        ClusterView {
            members: vec![m("node1", "0.9.0", Some(150004)), m("node2", "0.9.0", None)],
            ..Default::default()
        }
    }

    #[test]
    fn postgresql_versions_read_as_patronictl_prints_them() {
        assert_eq!(format_pg_version(150004), "15.4");
        assert_eq!(format_pg_version(160010), "16.10");
        assert_eq!(format_pg_version(100000), "10.0");
        assert_eq!(format_pg_version(90624), "9.6.24");
    }

    #[test]
    fn without_a_cluster_only_the_tools_version() {
        assert_eq!(text(None), format!("pgquorumctl version {CTL_VERSION}"));
    }

    #[test]
    fn each_member_on_its_line_postgresql_left_out_when_unknown() {
        let all = member_versions(&view(), &[]);
        assert_eq!(
            text(Some(&all)),
            format!(
                "pgquorumctl version {CTL_VERSION}\n\nnode1: pgquorum 0.9.0 PostgreSQL 15.4\nnode2: pgquorum 0.9.0"
            )
        );
        let one = member_versions(&view(), &["node2".to_string()]);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].member, "node2");
    }

    #[test]
    fn json_names_the_tool_and_the_members() {
        let all = member_versions(&view(), &[]);
        let doc: serde_json::Value = serde_json::from_str(&render(Some(&all), true)).unwrap();
        assert_eq!(doc["pgquorumctl"], CTL_VERSION);
        assert_eq!(doc["members"][0]["postgresql"], "15.4");
        assert_eq!(doc["members"][1]["postgresql"], serde_json::Value::Null);
        let bare: serde_json::Value = serde_json::from_str(&render(None, true)).unwrap();
        assert!(bare.get("members").is_none());
    }
}
