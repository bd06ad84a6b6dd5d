//! The typed configuration built from a validated document.
//!
//! Field names are Patroni's, so `serde` maps them one to one; every struct has `serde(default)`
//! with Patroni's defaults, so a minimal file fills in the rest. Keys whose status is
//! "accepted, not implemented" in the schema table are still typed here where they belong to
//! a section pgquorum owns, so implementing one later needs no parser change.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::dynamic::DynamicConfig;

pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 50;
/// The longest a Raft re-election can take with these timings, as measured on openraft 0.9
/// (`docs/raft-timings.md`): a follower waits out the old leader's lease (the maximum election
/// timeout, 2 × `election_timeout_ms`) plus its own random timeout (up to 2 × again), checked on
/// a timer of about 1.5 heartbeats.
pub const fn worst_case_election_ms(election_timeout_ms: u64, heartbeat_interval_ms: u64) -> u64 {
    4 * election_timeout_ms + 2 * heartbeat_interval_ms
}

pub const DEFAULT_ELECTION_TIMEOUT_MS: u64 = 250;

/// The Raft timings of one agent that bound the lease timings (`config::timing`): published in
/// its member key, so that a `config` edit is checked against every member's, not only
/// against those of the agent that receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftTimings {
    pub election_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub max_clock_skew_ms: u64,
}

impl RaftTimings {
    pub fn of(raft: &RaftConfig) -> RaftTimings {
        RaftTimings {
            election_timeout_ms: raft.election_timeout_ms,
            heartbeat_interval_ms: raft.heartbeat_interval_ms,
            max_clock_skew_ms: raft.max_clock_skew_ms,
        }
    }

    /// [`worst_case_election_ms`] of these timings.
    pub fn worst_election_ms(&self) -> u64 {
        worst_case_election_ms(self.election_timeout_ms, self.heartbeat_interval_ms)
    }
}
/// Largest wall-clock difference between agents the lease rule tolerates (DESIGN.md,
/// "Safety"): a lease is judged by the Raft leader's clock, and after a Raft leader change by
/// a different machine's clock. NTP on a LAN keeps this to milliseconds.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 250;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Cluster name; one Raft group per scope.
    pub scope: String,
    /// This member's name, unique in the cluster.
    pub name: String,
    pub raft: RaftConfig,
    #[serde(default)]
    pub restapi: RestApiConfig,
    #[serde(default)]
    pub postgresql: PostgresqlConfig,
    #[serde(default)]
    pub bootstrap: BootstrapConfig,
    #[serde(default)]
    pub tags: Tags,
    #[serde(default)]
    pub watchdog: WatchdogConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub ctl: CtlConfig,
}

/// Patroni's `ctl` section, read by pgquorumctl (`-c`): its client certificate for agents
/// that require mutual TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CtlConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cacert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certfile: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyfile: Option<PathBuf>,
    /// The admin credentials pgquorumctl sends (else `restapi.authentication`'s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<BasicAuth>,
}

/// Patroni's `raft` section, plus pgquorum's Raft timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftConfig {
    /// `host:port` other nodes reach this node's Raft (gRPC) service at.
    pub self_addr: String,
    /// The other voters' `self_addr`s.
    #[serde(default)]
    pub partner_addrs: Vec<String>,
    /// Where the Raft log and snapshots live.
    pub data_dir: PathBuf,
    /// pgquorum extension: Raft heartbeat interval in milliseconds.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_interval_ms: u64,
    /// pgquorum extension: minimum Raft election timeout in milliseconds (max is twice this).
    #[serde(default = "default_election_ms")]
    pub election_timeout_ms: u64,
    /// pgquorum extension: the clock difference between agents the lease rule tolerates (ms).
    #[serde(default = "default_skew_ms")]
    pub max_clock_skew_ms: u64,
    /// Patroni's shared secret for the Raft port: every RPC carries a proof of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// pgquorum extension: this agent's certificate (PEM) for mutual TLS on the gRPC port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certfile: Option<PathBuf>,
    /// pgquorum extension: the private key (PEM, unencrypted) of `certfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyfile: Option<PathBuf>,
    /// pgquorum extension: the cluster CA (PEM); only certificates it signed may connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cafile: Option<PathBuf>,
    /// pgquorum extension: client certificate names (DNS SANs) given admin permission
    /// rather than an agent's (docs/security.md, "Permissions").
    #[serde(default = "default_admin_names")]
    pub admin_names: Vec<String>,
    /// pgquorum extension: client certificate names given read permission only.
    #[serde(default)]
    pub read_names: Vec<String>,
    /// pgquorum extension: client certificate names (patterns, `*` for any run of characters)
    /// that may act as agents (Raft peers); unset, every other certificate of the cluster CA may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_names: Option<Vec<String>>,
    /// pgquorum extension: callers without credentials may read (list, status, get).
    #[serde(default)]
    pub read_open: bool,
    /// pgquorum extension: serve the admin service (pgquorumctl) on this address too; the
    /// peer port (`self_addr`) then serves agents only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<String>,
}

/// The name `pgquorum generate-certs` gives pgquorumctl's client certificate.
pub const DEFAULT_ADMIN_NAME: &str = "pgquorumctl";

fn default_admin_names() -> Vec<String> {
    vec![DEFAULT_ADMIN_NAME.to_string()]
}

fn default_skew_ms() -> u64 {
    DEFAULT_MAX_CLOCK_SKEW_MS
}

impl RaftConfig {
    /// `partner_addrs` without this node's own `self_addr` (a shared list may name it),
    /// trimmed: the partners to ask before starting.
    pub fn other_partners(&self) -> Vec<&str> {
        let me = self.self_addr.trim();
        self.partner_addrs
            .iter()
            .map(|a| a.trim())
            .filter(|a| *a != me)
            .collect()
    }
}

fn default_heartbeat_ms() -> u64 {
    DEFAULT_HEARTBEAT_INTERVAL_MS
}
fn default_election_ms() -> u64 {
    DEFAULT_ELECTION_TIMEOUT_MS
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestApiConfig {
    pub listen: Option<String>,
    pub connect_address: Option<String>,
    /// Basic auth for the unsafe (mutating) endpoints.
    pub authentication: Option<BasicAuth>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub keyfile_password: Option<String>,
    pub cafile: Option<PathBuf>,
    pub ciphers: Option<String>,
    pub verify_client: Option<String>,
    pub allowlist: Vec<String>,
    pub allowlist_include_members: bool,
    pub http_extra_headers: BTreeMap<String, String>,
    pub https_extra_headers: BTreeMap<String, String>,
    pub request_queue_size: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// Patroni's local `postgresql` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PostgresqlConfig {
    /// Addresses PostgreSQL listens on: `host[,host…]:port`.
    pub listen: Option<String>,
    pub connect_address: Option<String>,
    pub proxy_address: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub config_dir: Option<PathBuf>,
    pub bin_dir: Option<PathBuf>,
    pub bin_name: BinNames,
    pub pgpass: Option<PathBuf>,
    pub custom_conf: Option<PathBuf>,
    pub authentication: PgAuthentication,
    /// Local PostgreSQL settings (override the dynamic ones), names lower-cased.
    pub parameters: BTreeMap<String, ParamValue>,
    pub recovery_conf: BTreeMap<String, ParamValue>,
    pub pg_hba: Vec<String>,
    pub pg_ident: Vec<String>,
    /// Seconds pg_ctl waits for start/stop/restart (Patroni default 60).
    pub pg_ctl_timeout: Option<u64>,
    /// Local override of the dynamic `postgresql.use_pg_rewind`.
    pub use_pg_rewind: Option<bool>,
    pub use_unix_socket: bool,
    pub use_unix_socket_repl: bool,
    /// pgquorum extension: the OS user PostgreSQL runs as when the agent runs as root
    /// (default `postgres`); ignored when the agent is not root.
    pub run_as: Option<String>,
    pub remove_data_directory_on_rewind_failure: bool,
    pub remove_data_directory_on_diverged_timelines: bool,
    pub callbacks: Callbacks,
    /// Replica creation methods in order of preference; `basebackup` when empty.
    pub create_replica_methods: Vec<String>,
    /// Extra pg_basebackup options.
    pub basebackup: Vec<ToolOption>,
    pub pre_promote: Option<String>,
    pub before_stop: Option<String>,
    /// Settings of custom replica creation methods (`postgresql.<method>`), by method name.
    #[serde(flatten)]
    pub replica_methods: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BinNames {
    pub pg_ctl: Option<String>,
    pub initdb: Option<String>,
    pub pg_controldata: Option<String>,
    pub pg_basebackup: Option<String>,
    pub postgres: Option<String>,
    pub pg_isready: Option<String>,
    pub pg_rewind: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PgAuthentication {
    pub superuser: Option<PgUser>,
    pub replication: Option<PgUser>,
    pub rewind: Option<PgUser>,
}

/// A PostgreSQL role pgquorum connects as, with libpq connection options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PgUser {
    pub username: Option<String>,
    pub password: Option<String>,
    pub sslmode: Option<String>,
    pub sslkey: Option<PathBuf>,
    pub sslpassword: Option<String>,
    pub sslcert: Option<PathBuf>,
    pub sslrootcert: Option<PathBuf>,
    pub sslcrl: Option<PathBuf>,
    pub sslcrldir: Option<PathBuf>,
    pub sslnegotiation: Option<String>,
    pub gssencmode: Option<String>,
    pub channel_binding: Option<String>,
}

/// Scripts run on role and state changes (called with action, role, scope).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Callbacks {
    pub on_reload: Option<String>,
    pub on_restart: Option<String>,
    pub on_role_change: Option<String>,
    pub on_start: Option<String>,
    pub on_stop: Option<String>,
}

/// A PostgreSQL setting's value as written in the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for ParamValue {
    /// The value as PostgreSQL reads it (booleans as `on` / `off`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Bool(true) => f.write_str("on"),
            ParamValue::Bool(false) => f.write_str("off"),
            ParamValue::Int(n) => write!(f, "{n}"),
            ParamValue::Float(x) => write!(f, "{x}"),
            ParamValue::Str(s) => f.write_str(s),
        }
    }
}

/// One initdb / pg_basebackup option: a flag (`data-checksums`) or `{name: value}` with exactly
/// one entry (`encoding: UTF8`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolOption {
    Flag(String),
    Setting(BTreeMap<String, String>),
}

impl ToolOption {
    /// As a command-line argument: `--data-checksums`, `--encoding=UTF8`.
    pub fn to_arg(&self) -> String {
        match self {
            ToolOption::Flag(flag) => format!("--{flag}"),
            ToolOption::Setting(map) => map
                .iter()
                .map(|(name, value)| format!("--{name}={value}"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BootstrapConfig {
    /// The initial dynamic configuration, written to the `config` key by the bootstrapping node.
    pub dcs: DynamicConfig,
    /// `initdb` (default) or the name of a custom bootstrap method section.
    pub method: Option<String>,
    pub initdb: Vec<ToolOption>,
    /// Script run once after the cluster is initialised (`post_init` is read as an alias).
    pub post_bootstrap: Option<String>,
    /// Removed in Patroni 4; accepted, not implemented.
    pub users: BTreeMap<String, serde_json::Value>,
    /// Deprecated in Patroni; accepted, not implemented.
    pub pg_hba: Vec<String>,
    /// Custom bootstrap method sections (`bootstrap.<method>`), by name.
    #[serde(flatten)]
    pub methods: BTreeMap<String, serde_json::Value>,
}

/// Member tags. Besides the known ones, any tag name with a scalar value is allowed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tags {
    pub nofailover: Option<bool>,
    pub failover_priority: Option<i64>,
    pub sync_priority: Option<i64>,
    pub clonefrom: bool,
    pub noloadbalance: bool,
    pub replicatefrom: Option<String>,
    pub nosync: bool,
    pub nostream: bool,
    /// User-defined tags.
    #[serde(flatten)]
    pub custom: BTreeMap<String, serde_json::Value>,
}

impl Tags {
    /// Patroni's rule: `nofailover: true` is priority 0, `nofailover: false` priority 1, an
    /// explicit `failover_priority` wins; default 1. Priority ≤ 0 never becomes primary.
    pub fn effective_failover_priority(&self) -> i64 {
        match (self.failover_priority, self.nofailover) {
            (Some(priority), _) => priority,
            (None, Some(true)) => 0,
            _ => 1,
        }
    }

    pub fn may_become_primary(&self) -> bool {
        self.effective_failover_priority() > 0
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchdogMode {
    Off,
    /// Use the watchdog when available (Patroni's default).
    #[default]
    Automatic,
    /// Never become primary without an armed watchdog.
    Required,
}

/// `watchdog.driver`: how the watchdog is driven.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchdogDriver {
    /// The Linux watchdog API on `device` (`/dev/watchdog`).
    #[default]
    Default,
    /// Patroni's test harness: no ioctls; the timeout (`Ctimeout=N` and a newline), keepalives
    /// (`1`) and the magic close (`V`) are written to `device`, a named pipe or a plain file.
    /// Nothing resets the machine: for tests only.
    Testing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchdogConfig {
    pub mode: WatchdogMode,
    pub driver: WatchdogDriver,
    pub device: PathBuf,
    /// Seconds between the watchdog firing and the lease expiring; -1 means ttl / 2.
    pub safety_margin: i64,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        WatchdogConfig {
            mode: WatchdogMode::Automatic,
            driver: WatchdogDriver::Default,
            device: PathBuf::from("/dev/watchdog"),
            safety_margin: 5,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// Patroni level name, upper case: DEBUG, INFO, WARN, WARNING, ERROR, FATAL, CRITICAL.
    pub level: Option<String>,
    #[serde(rename = "type")]
    pub log_type: Option<String>,
    pub format: Option<serde_json::Value>,
    pub dateformat: Option<String>,
    pub traceback_level: Option<String>,
    pub static_fields: BTreeMap<String, String>,
    pub max_queue_size: Option<u64>,
    pub dir: Option<PathBuf>,
    pub file_num: Option<u64>,
    pub file_size: Option<u64>,
    pub mode: Option<String>,
    pub loggers: BTreeMap<String, String>,
    pub deduplicate_heartbeat_logs: bool,
}

impl LogConfig {
    /// The `tracing` level for `level` (`error`, `warn`, `info`, `debug`), if set.
    pub fn tracing_level(&self) -> Option<&'static str> {
        let level = self.level.as_deref()?;
        Some(match level.to_ascii_uppercase().as_str() {
            "DEBUG" => "debug",
            "INFO" => "info",
            "WARN" | "WARNING" => "warn",
            _ => "error",
        })
    }
}
