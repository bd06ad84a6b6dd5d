//! patronictl's optional CLUSTER positional (`pgquorumctl list demo`, `restart demo node2`):
//! telling the cluster name apart from member names, so Patroni runbook lines work unchanged.
//!
//! pgquorumctl asks one agent, so the cluster is always that agent's (`scope`); a CLUSTER given
//! is only checked against it, never used to pick another cluster.

/// Why the positionals of a verb were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterArgError {
    #[error("cluster {given:?} is not the asked agent's cluster {scope:?} (its `scope`); ask an agent of {given:?}")]
    OtherCluster { given: String, scope: String },
    #[error("{given:?} is neither the cluster name {scope:?} nor one of its members ({members})")]
    NeitherClusterNorMember {
        given: String,
        scope: String,
        members: String,
    },
    #[error("too many arguments: this command takes at most the cluster name {scope:?}")]
    TooMany { scope: String },
}

/// The positionals of a verb that takes no member names (`list`, `history`, `pause`...):
/// nothing, or the cluster name, which must be `scope`.
pub fn no_members(positionals: &[String], scope: &str) -> Result<(), ClusterArgError> {
    match positionals {
        [] => Ok(()),
        [given] if given == scope => Ok(()),
        [given] => Err(ClusterArgError::OtherCluster {
            given: given.clone(),
            scope: scope.to_string(),
        }),
        _ => Err(ClusterArgError::TooMany {
            scope: scope.to_string(),
        }),
    }
}

/// The member names among the positionals of a verb that takes members (`reload`, `restart`,
/// `reinit`): a first positional equal to `scope` is the cluster name (patronictl's form,
/// `restart demo node2`), and is dropped; otherwise they are all member names (pgquorumctl's
/// shorter form, `reload node1`). A first positional that is neither `scope` nor one of
/// `members` is refused as a wrong cluster name rather than reported as an unknown member.
/// `scope` wins over a member of the same name, as in patronictl where CLUSTER always comes first.
pub fn member_names(
    positionals: &[String],
    scope: &str,
    members: &[String],
) -> Result<Vec<String>, ClusterArgError> {
    match positionals.split_first() {
        None => Ok(Vec::new()),
        Some((first, rest)) if first == scope => Ok(rest.to_vec()),
        Some((first, _)) if !members.contains(first) => Err(ClusterArgError::NeitherClusterNorMember {
            given: first.clone(),
            scope: scope.to_string(),
            members: members.join(", "),
        }),
        Some(_) => Ok(positionals.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn verbs_without_members_take_only_their_own_cluster_name() {
        assert_eq!(no_members(&[], "demo"), Ok(()));
        assert_eq!(no_members(&s(&["demo"]), "demo"), Ok(()));
        assert_eq!(
            no_members(&s(&["prod"]), "demo"),
            Err(ClusterArgError::OtherCluster {
                given: "prod".into(),
                scope: "demo".into()
            })
        );
        assert!(matches!(
            no_members(&s(&["demo", "node1"]), "demo"),
            Err(ClusterArgError::TooMany { .. })
        ));
    }

    #[test]
    fn member_verbs_drop_a_leading_cluster_name() {
        let members = s(&["node1", "node2", "node3"]);
        assert_eq!(member_names(&[], "demo", &members), Ok(vec![]));
        assert_eq!(member_names(&s(&["demo"]), "demo", &members), Ok(vec![]));
        assert_eq!(
            member_names(&s(&["demo", "node2"]), "demo", &members),
            Ok(s(&["node2"]))
        );
        // pgquorumctl's own form: members only.
        assert_eq!(
            member_names(&s(&["node1", "node3"]), "demo", &members),
            Ok(s(&["node1", "node3"]))
        );
    }

    #[test]
    fn member_verbs_refuse_another_clusters_name() {
        let members = s(&["node1", "node2"]);
        let refused = member_names(&s(&["prod", "node1"]), "demo", &members).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "\"prod\" is neither the cluster name \"demo\" nor one of its members (node1, node2)"
        );
    }

    #[test]
    fn the_scope_wins_over_a_member_of_the_same_name() {
        let members = s(&["demo", "node2"]);
        assert_eq!(member_names(&s(&["demo"]), "demo", &members), Ok(vec![]));
    }
}
