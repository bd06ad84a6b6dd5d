//! `PGQUORUM_*` environment variables that override configuration keys, Patroni-style.
//!
//! The variable for a key is `PGQUORUM_` followed by its path with `.` replaced by `_`, upper
//! case: `raft.self_addr` ↔ `PGQUORUM_RAFT_SELF_ADDR`. Names are resolved by matching against the
//! key table (not by splitting on `_`, which is ambiguous because key names contain `_`). A few
//! of Patroni's shorter names are accepted too (`PGQUORUM_SUPERUSER_PASSWORD`, …).

use std::collections::BTreeMap;

use serde_yaml_ng::{Mapping, Value as Yaml};

use super::problem::Problem;
use super::schema::{Kind, Schema};
use super::suggest::closest;

pub const ENV_PREFIX: &str = "PGQUORUM_";

/// `PGQUORUM_*` variables that are not configuration overrides (reserved for the binaries'
/// own flags); they are skipped rather than reported as unknown. Empty for now.
pub const NOT_CONFIG_VARS: &[&str] = &[];

/// Patroni's short names for the credentials, as `(variable suffix, key path)`.
const PATRONI_SHORT_NAMES: &[(&str, &str)] = &[
    ("RESTAPI_USERNAME", "restapi.authentication.username"),
    ("RESTAPI_PASSWORD", "restapi.authentication.password"),
    (
        "SUPERUSER_USERNAME",
        "postgresql.authentication.superuser.username",
    ),
    (
        "SUPERUSER_PASSWORD",
        "postgresql.authentication.superuser.password",
    ),
    (
        "REPLICATION_USERNAME",
        "postgresql.authentication.replication.username",
    ),
    (
        "REPLICATION_PASSWORD",
        "postgresql.authentication.replication.password",
    ),
    ("REWIND_USERNAME", "postgresql.authentication.rewind.username"),
    ("REWIND_PASSWORD", "postgresql.authentication.rewind.password"),
];

/// Overrides applied to a document: which key each variable set, for annotating problems.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    /// Key path → variable name.
    pub sources: BTreeMap<String, String>,
    pub problems: Vec<Problem>,
}

/// Every variable name that can override a key, with the key's path and kind.
pub(crate) fn overridable_keys(schema: &Schema) -> Vec<(String, String, Kind)> {
    let mut keys = Vec::new();
    for entry in schema.entries() {
        if !settable_from_env(entry.key.kind) || entry.path.contains("[]") {
            continue;
        }
        for path in expand_wildcards(schema, &entry.path) {
            keys.push((variable_for(&path), path, entry.key.kind));
        }
    }
    for (suffix, path) in PATRONI_SHORT_NAMES {
        if let Some(entry) = schema
            .entries()
            .iter()
            .find(|e| crate::config::schema::matches(&e.path, path))
        {
            keys.push((format!("{ENV_PREFIX}{suffix}"), path.to_string(), entry.key.kind));
        }
    }
    keys
}

/// The variable name for a key path.
pub fn variable_for(path: &str) -> String {
    format!("{ENV_PREFIX}{}", path.replace('.', "_").to_ascii_uppercase())
}

fn settable_from_env(kind: Kind) -> bool {
    !matches!(
        kind,
        Kind::Section
            | Kind::OpenSection
            | Kind::SectionList
            | Kind::PgParams
            | Kind::StrMap
            | Kind::AnyMap
            | Kind::Any
    )
}

/// `a.*.b` becomes one path per explicitly listed entry of `a` (`*` entries with free names,
/// such as replication slots, cannot be addressed from the environment).
fn expand_wildcards(schema: &Schema, path: &str) -> Vec<String> {
    let Some((before, after)) = path.split_once(".*") else {
        return vec![path.to_string()];
    };
    schema
        .children(before)
        .filter(|e| e.name() != "*" && e.key.kind.is_section())
        .flat_map(|e| expand_wildcards(schema, &format!("{}{after}", e.path)))
        .collect()
}

/// Applies every `PGQUORUM_*` variable in `vars` to `root` (a mapping), collecting problems
/// for unknown variables and values that cannot be placed.
pub(crate) fn apply(
    root: &mut Yaml,
    vars: impl IntoIterator<Item = (String, String)>,
    schema: &Schema,
) -> Applied {
    let keys = overridable_keys(schema);
    let mut applied = Applied::default();
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX) && !NOT_CONFIG_VARS.contains(&name.as_str()))
        .collect();
    // Deterministic order, so problems come out the same way every run.
    vars.sort();
    for (name, raw) in vars {
        let Some((_, path, kind)) = keys.iter().find(|(variable, _, _)| *variable == name) else {
            let suggestion = closest(&name, keys.iter().map(|(variable, _, _)| variable.as_str()));
            let hint = suggestion
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            applied.problems.push(Problem::new(
                &name,
                format!("unknown environment variable: no configuration key maps to it{hint}"),
            ));
            continue;
        };
        let value = match parse_value(&raw, *kind) {
            Ok(value) => value,
            Err(message) => {
                applied.problems.push(Problem::new(&name, message));
                continue;
            }
        };
        match set_path(root, path, value) {
            Ok(()) => {
                applied.sources.insert(path.clone(), name);
            }
            Err(message) => applied.problems.push(Problem::new(&name, message)),
        }
    }
    applied
}

/// Lists may be given as `a:1,b:2` or as a YAML flow list `["a:1", "b:2"]`; everything else is
/// kept as a string and checked (and converted) by the schema walk like a value from the file.
fn parse_value(raw: &str, kind: Kind) -> Result<Yaml, String> {
    let is_list = matches!(
        kind,
        Kind::ConnectAddrList | Kind::StrList | Kind::OptionList | Kind::LogFormat
    );
    let trimmed = raw.trim();
    if is_list && (trimmed.starts_with('[') || trimmed.starts_with('-')) {
        return serde_yaml_ng::from_str(trimmed).map_err(|e| format!("cannot parse the list: {e}"));
    }
    if is_list && kind != Kind::LogFormat {
        let items = trimmed.split(',').map(str::trim).filter(|s| !s.is_empty());
        return Ok(Yaml::Sequence(
            items.map(|s| Yaml::String(s.to_string())).collect(),
        ));
    }
    Ok(Yaml::String(raw.to_string()))
}

fn set_path(root: &mut Yaml, path: &str, value: Yaml) -> Result<(), String> {
    let mut node = root;
    let mut segments = path.split('.').peekable();
    let mut walked = String::new();
    while let Some(segment) = segments.next() {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(segment);
        if node.is_null() {
            *node = Yaml::Mapping(Mapping::new());
        }
        let Yaml::Mapping(mapping) = node else {
            return Err(format!(
                "cannot override {path}: {walked} in the file is not a map"
            ));
        };
        if segments.peek().is_none() {
            mapping.insert(Yaml::String(segment.to_string()), value);
            return Ok(());
        }
        node = mapping
            .entry(Yaml::String(segment.to_string()))
            .or_insert(Yaml::Null);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_name_is_unique() {
        let keys = overridable_keys(Schema::file());
        let mut names: Vec<&str> = keys.iter().map(|(name, _, _)| name.as_str()).collect();
        names.sort_unstable();
        let mut duplicates = names.clone();
        duplicates.dedup();
        assert_eq!(
            names.len(),
            duplicates.len(),
            "two keys share an environment variable"
        );
        assert!(names.contains(&"PGQUORUM_RAFT_SELF_ADDR"));
        assert!(names.contains(&"PGQUORUM_POSTGRESQL_AUTHENTICATION_REWIND_PASSWORD"));
        assert!(names.contains(&"PGQUORUM_BOOTSTRAP_DCS_TTL"));
    }

    #[test]
    fn lists_parse_both_ways() {
        let expected = Yaml::Sequence(vec![Yaml::String("a:1".into()), Yaml::String("b:2".into())]);
        assert_eq!(
            parse_value("a:1, b:2", Kind::ConnectAddrList),
            Ok(expected.clone())
        );
        assert_eq!(
            parse_value(r#"["a:1","b:2"]"#, Kind::ConnectAddrList),
            Ok(expected)
        );
    }
}
