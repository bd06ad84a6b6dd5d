//! The dynamic (cluster-wide) configuration: Patroni's `bootstrap.dcs` section, stored as JSON
//! in the replicated `config` key once the cluster is initialised.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::types::ParamValue;

/// Default lease length (s).
pub const DEFAULT_TTL_SECS: f64 = 2.5;
/// Default HA loop period (s).
pub const DEFAULT_LOOP_WAIT_SECS: f64 = 0.5;
/// Default retry timeout (s).
pub const DEFAULT_RETRY_TIMEOUT_SECS: f64 = 1.0;

/// Patroni's dynamic configuration settings, with Patroni's names, units and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DynamicConfig {
    /// Leader lease length, seconds (fractions allowed: pgquorum's lease is short).
    #[serde(with = "secs")]
    pub ttl: f64,
    /// HA loop period, seconds (fractions allowed).
    #[serde(with = "secs")]
    pub loop_wait: f64,
    /// Timeout for keyspace and PostgreSQL operation retries, seconds (fractions allowed).
    #[serde(with = "secs")]
    pub retry_timeout: f64,
    /// Maximum bytes a replica may lag behind the last known primary position to be promoted.
    pub maximum_lag_on_failover: u64,
    /// Maximum bytes a synchronous standby may lag before it is swapped out; ≤ 0 disables.
    pub maximum_lag_on_syncnode: i64,
    /// Timeline history entries kept in the keyspace; 0 keeps all.
    pub max_timelines_history: u64,
    /// Seconds a crashed primary may take to recover before a failover (`master_start_timeout`
    /// is read as an alias).
    pub primary_start_timeout: u64,
    /// Seconds to wait for a clean stop in synchronous mode before SIGKILL; 0 disables.
    pub primary_stop_timeout: u64,
    /// Seconds a replica postpones the leader race while WAL from the primary still advances.
    pub primary_race_backoff: u64,
    pub synchronous_mode: SynchronousMode,
    pub synchronous_mode_strict: bool,
    pub synchronous_node_count: u32,
    pub failsafe_mode: bool,
    pub check_timeline: bool,
    /// Maintenance mode (`pgquorumctl pause`): the agents stop managing PostgreSQL.
    pub pause: bool,
    /// Seconds a departed member's replication slot is kept.
    pub member_slots_ttl: u64,
    pub postgresql: DynamicPostgresql,
    /// Replicate from another cluster; see [`DynamicConfig::is_standby_cluster`]. An empty
    /// section (`standby_cluster:` or `{}`) is read as none, as Patroni does.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_section_is_none"
    )]
    pub standby_cluster: Option<StandbyCluster>,
    /// Permanent replication slots, by name (`permanent_slots` is read as an alias).
    pub slots: BTreeMap<String, PermanentSlot>,
    pub ignore_slots: Vec<IgnoreSlot>,
}

impl Default for DynamicConfig {
    fn default() -> Self {
        DynamicConfig {
            // Fast by default: see docs/failover.md for the timing formula. A lost primary is
            // replaced within about ttl + 0.5 s; Patroni's 30 / 10 / 10 would take ~30 s.
            ttl: DEFAULT_TTL_SECS,
            loop_wait: DEFAULT_LOOP_WAIT_SECS,
            retry_timeout: DEFAULT_RETRY_TIMEOUT_SECS,
            maximum_lag_on_failover: 1_048_576,
            maximum_lag_on_syncnode: -1,
            max_timelines_history: 0,
            primary_start_timeout: 300,
            primary_stop_timeout: 0,
            primary_race_backoff: 0,
            synchronous_mode: SynchronousMode::Off,
            synchronous_mode_strict: false,
            synchronous_node_count: 1,
            failsafe_mode: false,
            check_timeline: false,
            pause: false,
            member_slots_ttl: 1800,
            postgresql: DynamicPostgresql::default(),
            standby_cluster: None,
            slots: BTreeMap::new(),
            ignore_slots: Vec::new(),
        }
    }
}

impl DynamicConfig {
    /// The lease length in ms.
    pub fn ttl_ms(&self) -> u64 {
        secs_to_ms(self.ttl).max(1000)
    }

    /// The loop period in ms.
    pub fn loop_wait_ms(&self) -> u64 {
        secs_to_ms(self.loop_wait).max(100)
    }

    /// The retry timeout in ms.
    pub fn retry_timeout_ms(&self) -> u64 {
        secs_to_ms(self.retry_timeout).max(100)
    }

    /// Patroni's test: a standby cluster is configured when `standby_cluster` names a source
    /// (host, port or restore_command); an empty section does not count.
    pub fn is_standby_cluster(&self) -> bool {
        self.standby_cluster
            .as_ref()
            .is_some_and(|s| s.host.is_some() || s.port.is_some() || s.restore_command.is_some())
    }
}

/// `synchronous_mode`: `false`, `true`, or `quorum` (Patroni 4's quorum commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SynchronousMode {
    #[default]
    Off,
    On,
    Quorum,
}

impl Serialize for SynchronousMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            SynchronousMode::Off => serializer.serialize_bool(false),
            SynchronousMode::On => serializer.serialize_bool(true),
            SynchronousMode::Quorum => serializer.serialize_str("quorum"),
        }
    }
}

impl<'de> Deserialize<'de> for SynchronousMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Word(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Flag(false) => Ok(SynchronousMode::Off),
            Raw::Flag(true) => Ok(SynchronousMode::On),
            Raw::Word(word) if word.eq_ignore_ascii_case("quorum") => Ok(SynchronousMode::Quorum),
            Raw::Word(word) => match super::walk::parse_bool(&word) {
                Some(true) => Ok(SynchronousMode::On),
                Some(false) => Ok(SynchronousMode::Off),
                None => Err(serde::de::Error::custom(format!(
                    "invalid synchronous_mode \"{word}\""
                ))),
            },
        }
    }
}

/// `postgresql` inside the dynamic configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DynamicPostgresql {
    pub use_pg_rewind: bool,
    pub use_slots: bool,
    /// PostgreSQL settings for every node, names lower-cased.
    pub parameters: BTreeMap<String, ParamValue>,
    pub recovery_conf: BTreeMap<String, ParamValue>,
    pub pg_hba: Vec<String>,
    pub pg_ident: Vec<String>,
    /// Seconds pg_ctl waits for start/stop/restart.
    pub pg_ctl_timeout: Option<u64>,
    pub remove_data_directory_on_rewind_failure: bool,
    pub remove_data_directory_on_diverged_timelines: bool,
}

impl Default for DynamicPostgresql {
    fn default() -> Self {
        DynamicPostgresql {
            // Patroni's default is false; pgquorum's bootstrap always enables wal_log_hints,
            // so a diverged former primary can always be rewound rather than left stopped.
            use_pg_rewind: true,
            use_slots: true,
            parameters: BTreeMap::new(),
            recovery_conf: BTreeMap::new(),
            pg_hba: Vec::new(),
            pg_ident: Vec::new(),
            pg_ctl_timeout: None,
            remove_data_directory_on_rewind_failure: false,
            remove_data_directory_on_diverged_timelines: false,
        }
    }
}

/// An empty `standby_cluster` is no standby cluster. Stored as `None`, not as a section of
/// nulls: that form failed the section's own rule when validated again, so a cluster
/// bootstrapped with `standby_cluster:` could never have its configuration edited (found by
/// tests/fuzz_inputs.rs).
fn empty_section_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<StandbyCluster>, D::Error> {
    let section = Option::<StandbyCluster>::deserialize(d)?;
    Ok(section.filter(|s| *s != StandbyCluster::default()))
}

/// `standby_cluster`: this cluster replicates from another one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StandbyCluster {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub primary_slot_name: Option<String>,
    pub create_replica_methods: Vec<String>,
    pub restore_command: Option<String>,
    pub archive_cleanup_command: Option<String>,
    pub recovery_min_apply_delay: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotType {
    #[default]
    Physical,
    Logical,
}

/// A permanent replication slot (`slots.<name>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PermanentSlot {
    #[serde(rename = "type")]
    pub slot_type: SlotType,
    pub database: Option<String>,
    pub plugin: Option<String>,
    pub cluster_type: Option<String>,
}

/// An `ignore_slots` entry: slots matching every given property are left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IgnoreSlot {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub slot_type: Option<SlotType>,
    pub database: Option<String>,
    pub plugin: Option<String>,
}

fn secs_to_ms(secs: f64) -> u64 {
    if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0).round() as u64
    } else {
        0
    }
}

/// Seconds as JSON: whole numbers as integers (as Patroni writes them), fractions as floats.
mod secs {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        if value.fract() == 0.0 && value.abs() < 1e15 {
            s.serialize_i64(*value as i64)
        } else {
            s.serialize_f64(*value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        f64::deserialize(d)
    }
}
