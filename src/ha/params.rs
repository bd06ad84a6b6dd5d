//! The PostgreSQL configuration the agent wants: local settings over cluster-wide ones over
//! pgquorum's defaults, with the settings that must match the primary taken from the
//! cluster-wide configuration only.

use std::collections::BTreeMap;

use super::pg_ops::{DesiredConfig, Upstream};
use crate::cluster::ClusterView;
use crate::config::{Config, DynamicConfig, ParamValue};

/// What replication needs, whatever the user says (the user may raise them). The WAL kept for
/// replicas (128MB) is not here: its parameter depends on the PostgreSQL version
/// (`wal_keep_size` or `wal_keep_segments`), so `postgres::param_compat` adds it under the
/// right name, where a user's setting under either name is translated first.
const DEFAULTS: &[(&str, &str)] = &[
    ("wal_level", "replica"),
    ("hot_standby", "on"),
    ("max_wal_senders", "10"),
    ("max_replication_slots", "10"),
    // A replica that lost its primary retries every 5 s by default: too slow to re-attach
    // after a fast failover or a primary restart.
    ("wal_retrieve_retry_interval", "1s"),
    // pg_rewind needs it unless data checksums are on; cheap to have.
    ("wal_log_hints", "on"),
];

/// Settings a standby must have at least as high as its primary (PostgreSQL refuses to start
/// otherwise): only the cluster-wide value counts, so every member has the same.
pub const MUST_MATCH_PRIMARY: &[&str] = &[
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
    "track_commit_timestamp",
    "wal_level",
];

/// Used when neither the local nor the cluster-wide configuration lists pg_hba lines: local
/// socket logins only as the same OS user, everything over TCP with a password.
const DEFAULT_HBA: &[&str] = &[
    "local all all peer",
    "host all all 127.0.0.1/32 scram-sha-256",
    "host all all ::1/128 scram-sha-256",
    "host replication all 127.0.0.1/32 scram-sha-256",
    "host replication all ::1/128 scram-sha-256",
    "host all all 0.0.0.0/0 scram-sha-256",
    "host replication all 0.0.0.0/0 scram-sha-256",
];

fn render(map: &BTreeMap<String, ParamValue>) -> impl Iterator<Item = (String, String)> + '_ {
    map.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
}

/// The desired configuration of this member. `standby` as in [`DesiredConfig::standby`].
pub fn desired_config(
    config: &Config,
    dynamic: &DynamicConfig,
    standby: Option<Option<Upstream>>,
) -> DesiredConfig {
    let mut parameters: BTreeMap<String, String> = DEFAULTS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parameters.insert("cluster_name".into(), config.scope.clone());
    parameters.extend(render(&dynamic.postgresql.parameters));
    for (k, v) in render(&config.postgresql.parameters) {
        if MUST_MATCH_PRIMARY.contains(&k.as_str()) && dynamic.postgresql.parameters.contains_key(&k) {
            continue;
        }
        parameters.insert(k, v);
    }
    let pg_hba = if !config.postgresql.pg_hba.is_empty() {
        config.postgresql.pg_hba.clone()
    } else if !dynamic.postgresql.pg_hba.is_empty() {
        dynamic.postgresql.pg_hba.clone()
    } else {
        DEFAULT_HBA.iter().map(|s| s.to_string()).collect()
    };
    let primary_slot_name = match &standby {
        Some(Some(_)) if dynamic.postgresql.use_slots => Some(super::runner::slot_name_for(&config.name)),
        _ => None,
    };
    DesiredConfig {
        parameters,
        pg_hba,
        standby,
        primary_slot_name,
    }
}

/// Where to stream from to follow `leader`, from its published member record.
pub fn upstream_of(cluster: &ClusterView, leader: &str) -> Option<Upstream> {
    let m = cluster.member(leader)?;
    Some(Upstream {
        member: leader.to_string(),
        host: m.host.clone()?,
        port: m.port?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        Config::from_yaml_str(yaml, "test", Vec::<(String, String)>::new())
            .expect("valid")
            .config
    }

    const BASE: &str = "scope: demo\nname: n1\nraft:\n  self_addr: 127.0.0.1:2401\n  data_dir: /tmp/r\n";

    #[test]
    fn local_over_cluster_over_defaults_except_must_match() {
        let c = config(&format!(
            "{BASE}postgresql:\n  parameters:\n    work_mem: 8MB\n    MAX_CONNECTIONS: 500\n    wal_keep_size: 1GB\n"
        ));
        let mut dynamic = DynamicConfig::default();
        dynamic
            .postgresql
            .parameters
            .insert("work_mem".into(), ParamValue::Str("4MB".into()));
        dynamic
            .postgresql
            .parameters
            .insert("max_connections".into(), ParamValue::Int(200));
        let d = desired_config(&c, &dynamic, None);
        assert_eq!(d.parameters["work_mem"], "8MB", "local wins");
        assert_eq!(
            d.parameters["max_connections"], "200",
            "must match the primary: cluster-wide wins"
        );
        assert_eq!(d.parameters["wal_keep_size"], "1GB");
        assert_eq!(d.parameters["wal_level"], "replica");
        assert_eq!(d.parameters["cluster_name"], "demo");
        assert_eq!(d.pg_hba, DEFAULT_HBA);
    }

    #[test]
    fn a_local_must_match_setting_applies_when_the_cluster_has_none() {
        let c = config(&format!(
            "{BASE}postgresql:\n  parameters:\n    max_connections: 50\n"
        ));
        let d = desired_config(&c, &DynamicConfig::default(), None);
        assert_eq!(d.parameters["max_connections"], "50");
    }

    #[test]
    fn pg_hba_local_then_cluster() {
        let c = config(&format!(
            "{BASE}postgresql:\n  pg_hba:\n  - local all all trust\n"
        ));
        let mut dynamic = DynamicConfig::default();
        dynamic.postgresql.pg_hba = vec!["host all all 10.0.0.0/8 md5".into()];
        assert_eq!(desired_config(&c, &dynamic, None).pg_hba, ["local all all trust"]);
        let c = config(BASE);
        assert_eq!(
            desired_config(&c, &dynamic, None).pg_hba,
            ["host all all 10.0.0.0/8 md5"]
        );
    }
}
