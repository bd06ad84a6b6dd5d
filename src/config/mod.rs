//! The agent's configuration: one YAML file in Patroni's layout plus Patroni's `raft` section.
//!
//! A Patroni 4 configuration written for its `raft` DCS loads unchanged. Loading goes:
//! read → parse YAML → apply `PGQUORUM_*` environment overrides (`env.rs`) → walk the document
//! against the key table (`schema.rs`, `walk.rs`) → cross-key rules (`rules.rs`) → build the
//! typed structs (`types.rs`, `dynamic.rs`). Every problem from every stage is collected and
//! reported together in one [`ConfigError`]. See `docs/configuration.md`.

mod address;
mod dynamic;
mod env;
pub mod guard;
pub mod merge_patch;
mod problem;
mod rules;
pub mod schema;
mod suggest;
pub(crate) mod timing;
mod types;
mod walk;

#[cfg(test)]
mod tests;

use std::path::Path;

use serde_yaml_ng::Value as Yaml;

pub use dynamic::{
    DynamicConfig, DynamicPostgresql, IgnoreSlot, PermanentSlot, SlotType, StandbyCluster, SynchronousMode,
    DEFAULT_LOOP_WAIT_SECS, DEFAULT_RETRY_TIMEOUT_SECS, DEFAULT_TTL_SECS,
};
pub use env::{variable_for as env_variable_for, ENV_PREFIX};
pub use types::{
    worst_case_election_ms, BasicAuth, BinNames, BootstrapConfig, Callbacks, Config, LogConfig, ParamValue,
    PgAuthentication, PgUser, PostgresqlConfig, RaftConfig, RaftTimings, RestApiConfig, Tags, ToolOption,
    WatchdogConfig, WatchdogDriver, WatchdogMode, DEFAULT_ADMIN_NAME, DEFAULT_ELECTION_TIMEOUT_MS,
    DEFAULT_HEARTBEAT_INTERVAL_MS,
};

use problem::Problem;
use schema::{Schema, Status};

/// Everything wrong with a configuration file, each problem with its key path.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in {path}:\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub path: String,
    pub problems: Vec<String>,
}

impl ConfigError {
    fn new(path: &str, problems: Vec<Problem>) -> Self {
        ConfigError {
            path: path.to_string(),
            problems: problems.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A configuration that passed validation, and the warnings to log once at start-up.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads and validates `path`, with `PGQUORUM_*` overrides from the process environment.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Like [`Config::load`], with the environment given explicitly (tests, or a caller that
    /// filters the environment). Variables not starting with `PGQUORUM_` are ignored.
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                &origin,
                vec![Problem::new("", format!("cannot read the file: {e}"))],
            )
        })?;
        Self::from_yaml_str(&text, &origin, env)
    }

    /// Validates a configuration given as YAML text; `origin` names it in the error.
    pub fn from_yaml_str(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let mut root = parse_yaml(text).map_err(|problem| ConfigError::new(origin, vec![problem]))?;
        let schema = Schema::file();

        let applied = env::apply(&mut root, env, schema);
        let custom = walk::custom_sections(&root);
        let walked = walk::walk(&root, schema, &custom);
        let mut problems = applied.problems;
        problems.extend(walked.problems);
        let ruled = rules::check_file(&walked.normalized, &problems);
        problems.extend(ruled.problems);

        if !problems.is_empty() {
            annotate_env_sources(&mut problems, &applied.sources);
            return Err(ConfigError::new(origin, problems));
        }
        let mut normalized = walked.normalized;
        apply_adjustments(&mut normalized, &ruled.adjusted);
        let config: Config = serde_json::from_value(normalized)
            .map_err(|e| ConfigError::new(origin, vec![Problem::new("", format!("internal error: {e}"))]))?;
        let mut warnings = Vec::new();
        warnings.extend(not_implemented_warning(walked.not_implemented));
        warnings.extend(ruled.warnings);
        Ok(Loaded { config, warnings })
    }

    /// The entry point of `pgquorum --validate-config FILE`: every problem as an error, or the
    /// warnings of a valid file.
    pub fn validate(path: &Path) -> Result<Vec<String>, ConfigError> {
        Self::load(path).map(|loaded| loaded.warnings)
    }
}

impl DynamicConfig {
    /// Validates a dynamic configuration given as JSON (the replicated `config` key, or an edit
    /// from `pgquorumctl edit-config` / `PATCH /config`) with the same rules as `bootstrap.dcs`.
    /// When `raft` is given (an agent's Raft timings: the slowest member's when the caller knows
    /// them all, see `config::guard`), also checks that they still fit the new `ttl`.
    /// Returns the configuration and its warnings, or every problem.
    pub fn from_json(
        value: &serde_json::Value,
        raft: Option<RaftTimings>,
    ) -> Result<(DynamicConfig, Vec<String>), Vec<String>> {
        let render = |problems: Vec<Problem>| problems.iter().map(ToString::to_string).collect::<Vec<_>>();
        let root: Yaml = serde_yaml_ng::to_value(value)
            .map_err(|e| vec![format!("cannot read the dynamic configuration: {e}")])?;
        let walked = walk::walk(&root, Schema::dynamic(), &[]);
        let mut problems = walked.problems;
        let mut ruled = rules::RuleOutput::default();
        // Raft too slow for even half of ttl is reported below, on its own.
        let ttl_ms = walked
            .normalized
            .get("ttl")
            .and_then(serde_json::Value::as_f64)
            .map_or(DynamicConfig::default().ttl_ms() as i64, |secs| {
                (secs * 1000.0).round() as i64
            });
        let bounds = raft
            .map(|raft| timing::RaftBounds {
                max_clock_skew_ms: raft.max_clock_skew_ms as i64,
                worst_election_ms: raft.worst_election_ms() as i64,
            })
            .filter(|b| b.worst_election_ms <= ttl_ms / 2);
        rules::check_dynamic(&walked.normalized, "", bounds, &problems, &mut ruled);
        problems.extend(ruled.problems);
        let mut normalized = walked.normalized;
        apply_adjustments(&mut normalized, &ruled.adjusted);
        let config: DynamicConfig = match serde_json::from_value(normalized) {
            Ok(config) if problems.is_empty() => config,
            Ok(_) => return Err(render(problems)),
            Err(e) => {
                problems.push(Problem::new("", format!("internal error: {e}")));
                return Err(render(problems));
            }
        };
        if let Some(raft) = raft {
            let lease_half_ms = config.ttl_ms() / 2;
            let worst = raft.worst_election_ms();
            if worst > lease_half_ms {
                return Err(vec![format!(
                    "ttl: {} s is too short for this cluster's Raft timings: a re-election can take up to \
                     {worst} ms (4 × election_timeout_ms + 2 × heartbeat_interval_ms), which must not exceed \
                     half of ttl",
                    config.ttl
                )]);
            }
        }
        let mut warnings: Vec<String> = not_implemented_warning(walked.not_implemented)
            .into_iter()
            .collect();
        warnings.extend(ruled.warnings);
        Ok((config, warnings))
    }

    /// The JSON stored in the replicated `config` key.
    pub fn to_json(&self) -> serde_json::Value {
        // A struct of plain fields and string-keyed maps always serialises.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Writes the values the rules adjusted into the normalised document, creating the sections
/// on the way (`bootstrap.dcs` may be absent when only the defaults were adjusted).
fn apply_adjustments(root: &mut serde_json::Value, adjusted: &[(String, serde_json::Value)]) {
    for (path, value) in adjusted {
        let mut node = &mut *root;
        let mut keys = path.split('.').peekable();
        while let Some(key) = keys.next() {
            if !node.is_object() {
                *node = serde_json::Value::Object(Default::default());
            }
            let Some(map) = node.as_object_mut() else { break };
            if keys.peek().is_none() {
                map.insert(key.to_string(), value.clone());
                break;
            }
            node = map
                .entry(key.to_string())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
        }
    }
}

/// Parses the text into a mapping, with YAML merge keys (`<<`) applied.
fn parse_yaml(text: &str) -> Result<Yaml, Problem> {
    let mut root: Yaml = serde_yaml_ng::from_str(text).map_err(|e| {
        let location = e
            .location()
            .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
            .unwrap_or_default();
        Problem::new("", format!("YAML syntax error{location}: {e}"))
    })?;
    root.apply_merge()
        .map_err(|e| Problem::new("", format!("YAML merge key error: {e}")))?;
    match root {
        Yaml::Null => Ok(Yaml::Mapping(Default::default())),
        Yaml::Mapping(_) => Ok(root),
        _ => Err(Problem::new(
            "",
            "the file must contain a map of settings (scope, name, raft, …)",
        )),
    }
}

/// Says which variable set a value, for problems about keys set from the environment.
fn annotate_env_sources(problems: &mut [Problem], sources: &std::collections::BTreeMap<String, String>) {
    for problem in problems {
        let source = sources.iter().find(|(path, _)| {
            problem.path == **path
                || problem.path.starts_with(&format!("{path}["))
                || problem.path.starts_with(&format!("{path}."))
        });
        if let Some((_, variable)) = source {
            problem
                .message
                .push_str(&format!(" (set by environment variable {variable})"));
        }
    }
}

/// One warning naming every accepted-but-not-implemented Patroni key in use.
fn not_implemented_warning(mut paths: Vec<String>) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    paths.retain(|p| seen.insert(p.clone()));
    (!paths.is_empty()).then(|| {
        format!(
            "these Patroni settings are accepted but not implemented by pgquorum, and have no effect: {}",
            paths.join(", ")
        )
    })
}

/// Every key path of the table with its status, for documentation and `--help` style listings.
/// What `--validate-config` prints for a checked file (agent and witness alike): the
/// warnings and "configuration is valid" on stdout, or the error on stderr; true when valid.
pub fn print_validation<E: std::fmt::Display>(path: &Path, checked: Result<Vec<String>, E>) -> bool {
    match checked {
        Ok(warnings) => {
            for w in &warnings {
                println!("warning: {w}");
            }
            println!("{}: configuration is valid", path.display());
            true
        }
        Err(e) => {
            eprintln!("{e}");
            false
        }
    }
}

pub fn key_statuses() -> Vec<(String, Status)> {
    Schema::file()
        .entries()
        .iter()
        .map(|e| (e.path.clone(), e.key.status))
        .collect()
}
