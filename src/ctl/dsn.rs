//! `pgquorumctl dsn [CLUSTER] [-r ROLE | -m MEMBER]`: patronictl's `dsn` — a libpq connection
//! string (`host=... port=...`) for the member with a role (the leader by default) or a named
//! member, from the address its record publishes (`postgresql.connect_address`).

use serde::Serialize;

use super::operate::RoleFilter;
use super::{cluster_read, list, scope_of, CtlError};
use crate::cluster::ClusterView;

/// Where to connect; field names are this command's `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dsn {
    pub member: String,
    pub host: String,
    pub port: u16,
}

impl Dsn {
    /// patronictl's line, which libpq takes as it is.
    pub fn text(&self) -> String {
        format!("host={} port={}", self.host, self.port)
    }
}

/// Which member `dsn` is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Role(RoleFilter),
    Member(String),
}

/// The first member in the view's order that is `target` and publishes a PostgreSQL address
/// (patronictl takes the first too); None: no such member. Witnesses have no PostgreSQL.
pub fn choose(scope: &str, view: &ClusterView, target: &Target) -> Option<Dsn> {
    list::rows(scope, view)
        .into_iter()
        .filter(|r| match target {
            Target::Role(role) => role.matches(r.kind),
            Target::Member(name) => &r.member == name,
        })
        .find_map(|r| {
            let m = view.member(&r.member)?;
            Some(Dsn {
                member: m.name.clone(),
                host: m.host.clone()?,
                port: m.port?,
            })
        })
}

/// The output for `dsn`.
pub fn render(dsn: &Dsn, json: bool) -> String {
    if json {
        serde_json::to_string_pretty(dsn).unwrap_or_default()
    } else {
        dsn.text()
    }
}

/// `dsn` against the agent at `endpoint` (a CLUSTER given is checked by the caller).
pub async fn run(endpoint: &str, target: &Target, json: bool) -> Result<String, CtlError> {
    let scope = scope_of(endpoint).await?;
    let view = cluster_read::cluster_view(endpoint).await?;
    match choose(&scope, &view, target) {
        Some(dsn) => Ok(render(&dsn, json)),
        None => Err(CtlError::Other("Can not find a suitable member".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{LeaderLease, MemberStatus, PgRole};

    fn view() -> ClusterView {
        let m = |name: &str, role, port| MemberStatus {
            name: name.into(),
            role,
            host: Some("127.0.0.1".into()),
            port,
            ..Default::default()
        };
        let mut view = ClusterView {
            members: vec![
                m("node1", PgRole::Replica, None),
                m("node2", PgRole::Replica, Some(5433)),
                m("node3", PgRole::Primary, Some(5434)),
            ],
            ..Default::default()
        };
        view.leader = Some(LeaderLease {
            holder: "node3".into(),
            revision: 1,
            expires_at_ms: 0,
        });
        view
    }

    #[test]
    fn the_leader_by_default_as_libpq_reads_it() {
        let dsn = choose("demo", &view(), &Target::Role(RoleFilter::Leader)).unwrap();
        assert_eq!(dsn.text(), "host=127.0.0.1 port=5434");
        assert_eq!(dsn.member, "node3");
        let master = choose("demo", &view(), &Target::Role(RoleFilter::Primary)).unwrap();
        assert_eq!(master, dsn);
    }

    #[test]
    fn a_replica_is_the_first_one_with_an_address() {
        // node1 publishes no port yet: skipped, not printed half-made.
        let dsn = choose("demo", &view(), &Target::Role(RoleFilter::Replica)).unwrap();
        assert_eq!(dsn.member, "node2");
        assert_eq!(render(&dsn, false), "host=127.0.0.1 port=5433");
    }

    #[test]
    fn a_named_member_or_nobody() {
        let dsn = choose("demo", &view(), &Target::Member("node2".into())).unwrap();
        assert_eq!(dsn.port, 5433);
        assert_eq!(choose("demo", &view(), &Target::Member("node1".into())), None);
        assert_eq!(choose("demo", &view(), &Target::Member("node9".into())), None);
        assert_eq!(
            choose("demo", &view(), &Target::Role(RoleFilter::StandbyLeader)),
            None
        );
    }

    #[test]
    fn json_has_member_host_and_port() {
        let dsn = choose("demo", &view(), &Target::Member("node2".into())).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&render(&dsn, true)).unwrap();
        assert_eq!(doc["member"], "node2");
        assert_eq!(doc["host"], "127.0.0.1");
        assert_eq!(doc["port"], 5433);
    }
}
