//! The agent's configuration: one YAML file in Patroni's layout plus a `raft` section.
//!
//! PLACEHOLDER CONTRACT — the config helper replaces this file's internals; the public names
//! used by the rest of the crate (`Config::load`, the fields below, `ConfigError`) stay.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Everything wrong with a configuration file, each problem with its key path.
#[derive(Debug, thiserror::Error)]
#[error("{} problem(s) in {path}:\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub path: String,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub scope: String,
    pub name: String,
    pub raft: RaftConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub bootstrap: BootstrapConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RaftConfig {
    pub self_addr: String,
    #[serde(default)]
    pub partner_addrs: Vec<String>,
    pub data_dir: PathBuf,
    /// pgquorum extension: Raft heartbeat interval in milliseconds.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_interval_ms: u64,
    /// pgquorum extension: minimum Raft election timeout in milliseconds (max is twice this).
    #[serde(default = "default_election_ms")]
    pub election_timeout_ms: u64,
}

fn default_heartbeat_ms() -> u64 {
    100
}
fn default_election_ms() -> u64 {
    500
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogConfig {
    pub level: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BootstrapConfig {
    #[serde(default)]
    pub dcs: serde_json::Value,
}

/// A configuration that passed validation, and the warnings to log once at start-up.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let err = |p: String| ConfigError { path: path.display().to_string(), problems: vec![p] };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read file: {e}")))?;
        let config: Config = serde_yaml_ng::from_str(&text).map_err(|e| err(e.to_string()))?;
        Ok(Loaded { config, warnings: vec![] })
    }
}
