//! The controller's configuration: the agent's file layout and loader, plus what a Patroni
//! `patroni_raft_controller` file leaves out.
//!
//! Patroni's controller file is just `raft: {self_addr, partner_addrs, data_dir, password}`,
//! without `scope` or `name` (pysyncobj has no cluster name). pgquorum's Raft group is one
//! cluster and every call carries its `scope`, so:
//! - without `name`, the witness is named after its address (`witness-<host>-<port>`);
//! - without `scope`, it uses the cluster name stamped in its `raft.data_dir` (a restart), or
//!   else asks its partners which cluster they belong to and joins that one (first start). Its
//!   own calls to the partners carry no scope until then, which any agent's scope check lets
//!   through (the password and TLS still apply). Partners naming different clusters is an error.
//!
//! Sections a witness has no use for (`postgresql`, `bootstrap`, `watchdog`, `tags`) are
//! refused rather than ignored, as are `restapi` keys other than `listen` and `authentication`.

use std::path::Path;
use std::time::Duration;

use serde_yaml_ng::Value as Yaml;

use crate::config::{Config, ConfigError};
use crate::grpc::pb::admin::admin_client::AdminClient;
use crate::grpc::pb::admin::NodeStatusRequest;

/// Sections of an agent's file the witness refuses.
const NOT_FOR_A_WITNESS: [&str; 4] = ["postgresql", "bootstrap", "watchdog", "tags"];
/// The `restapi` keys the witness's health/metrics endpoint acts on.
const RESTAPI_KEYS: [&str; 2] = ["listen", "authentication"];
/// Stands in for a `scope` to be learned, so that the rest of the file can be validated.
const SCOPE_TO_LEARN: &str = "scope-learned-from-partners";

#[derive(Debug, thiserror::Error)]
pub enum ControllerConfigError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("{path}: {problem}")]
    NotForAWitness { path: String, problem: String },
    #[error(
        "no `scope` in the file and the partners name different clusters ({0}); set `scope` to the one to join"
    )]
    PartnersDisagree(String),
    #[error(transparent)]
    Transport(#[from] crate::grpc::transport::TransportError),
}

/// A validated controller configuration, and how its scope is to be found.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub config: Config,
    pub warnings: Vec<String>,
    /// The file gave no `scope` and the data directory holds none: ask the partners.
    pub scope_unknown: bool,
}

/// `witness-<host>-<port>` from `raft.self_addr` (a valid member-style name: no `/`, no spaces).
pub fn name_from_addr(self_addr: &str) -> String {
    let cleaned: String = self_addr
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("witness-{}", cleaned.trim_matches('-'))
}

/// Load and validate `path` (with `PGQUORUM_*` overrides) for a witness.
pub fn load(path: &Path) -> Result<ControllerConfig, ControllerConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: origin.clone(),
        problems: vec![format!("cannot read the file: {e}")],
    })?;
    from_yaml_str(&text, &origin, std::env::vars())
}

pub fn from_yaml_str(
    text: &str,
    origin: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<ControllerConfig, ControllerConfigError> {
    // A YAML error is reported by the shared loader below, with its location.
    let mut root: Yaml = serde_yaml_ng::from_str(text).unwrap_or(Yaml::Null);
    let env: Vec<(String, String)> = env.into_iter().collect();
    let mut scope_unknown = false;
    let mut notes = Vec::new();
    if let Yaml::Mapping(map) = &mut root {
        for section in NOT_FOR_A_WITNESS {
            if map.contains_key(section) {
                return Err(ControllerConfigError::NotForAWitness {
                    path: section.to_string(),
                    problem: "pgquorum-controller manages no PostgreSQL; remove this section".into(),
                });
            }
        }
        if let Some(Yaml::Mapping(rest)) = map.get("restapi") {
            if let Some(key) = rest
                .keys()
                .filter_map(Yaml::as_str)
                .find(|k| !RESTAPI_KEYS.contains(k))
            {
                return Err(ControllerConfigError::NotForAWitness {
                    path: format!("restapi.{key}"),
                    problem: "pgquorum-controller's endpoint is plain HTTP health and metrics; it acts on \
                              restapi.listen and restapi.authentication only"
                        .into(),
                });
            }
        }
        // No PostgreSQL to fence, so no watchdog: said here so that the shared loader does
        // not warn about one.
        map.insert(
            "watchdog".into(),
            serde_yaml_ng::from_str("{mode: off}").unwrap_or_default(),
        );
        let raft = map.get("raft").cloned();
        let field = |key: &str| {
            raft.as_ref()
                .and_then(|r| r.get(key))
                .and_then(Yaml::as_str)
                .map(str::to_string)
        };
        let env_has = |name: &str| env.iter().any(|(k, _)| k == name);
        if !map.contains_key("name") && !env_has("PGQUORUM_NAME") {
            if let Some(addr) = field("self_addr") {
                let name = name_from_addr(&addr);
                notes.push(format!(
                    "no `name`: this witness is named {name} after raft.self_addr"
                ));
                map.insert("name".into(), name.into());
            }
        }
        if !map.contains_key("scope") && !env_has("PGQUORUM_SCOPE") {
            let stored =
                field("data_dir").and_then(|dir| crate::raft::storage::stored_identity(Path::new(&dir)));
            match stored {
                Some(identity) => {
                    notes.push(format!(
                        "no `scope`: using cluster {:?}, the one raft.data_dir belongs to",
                        identity.cluster
                    ));
                    map.insert("scope".into(), identity.cluster.into());
                }
                None => {
                    scope_unknown = true;
                    notes.push("no `scope`: it is learned from the partners at start".to_string());
                    map.insert("scope".into(), SCOPE_TO_LEARN.into());
                }
            }
        }
    }
    let text = serde_yaml_ng::to_string(&root).unwrap_or_else(|_| text.to_string());
    let loaded = Config::from_yaml_str(&text, origin, env)?;
    let mut warnings = notes;
    warnings.extend(loaded.warnings);
    Ok(ControllerConfig {
        config: loaded.config,
        warnings,
        scope_unknown,
    })
}

/// Ask the partners which cluster they belong to until one answers (first start without
/// `scope`). Every partner that answers within the round must name the same cluster.
pub async fn learn_scope(config: &Config) -> Result<String, ControllerConfigError> {
    let transport = crate::grpc::Transport::from_config(config)?.without_scope();
    let partners = config.raft.other_partners();
    let mut waited = false;
    loop {
        let asks = partners.iter().map(|addr| {
            let transport = transport.clone();
            async move {
                let channel = transport.channel(addr, Duration::from_millis(500)).ok()?;
                let mut req = tonic::Request::new(NodeStatusRequest {});
                req.set_timeout(Duration::from_secs(1));
                let reply = tokio::time::timeout(
                    Duration::from_millis(1200),
                    AdminClient::new(channel).node_status(req),
                )
                .await
                .ok()?
                .ok()?;
                Some(reply.into_inner().cluster)
            }
        });
        let mut names: Vec<String> = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .filter(|c| !c.is_empty())
            .collect();
        names.sort();
        names.dedup();
        match names.as_slice() {
            [one] => return Ok(one.clone()),
            [] => {
                if !waited {
                    tracing::info!(
                        partners = ?partners,
                        "no `scope` configured: waiting for a partner to answer with its cluster name"
                    );
                    waited = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            many => return Err(ControllerConfigError::PartnersDisagree(many.join(", "))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATRONI_CONTROLLER: &str = "raft:\n  self_addr: 10.0.0.3:2222\n  partner_addrs: ['10.0.0.1:2222', '10.0.0.2:2222']\n  data_dir: /nonexistent/pgquorum-witness-test\n  password: secret\n";

    #[test]
    fn a_patroni_controller_file_loads_with_a_derived_name_and_a_scope_to_learn() {
        let loaded = from_yaml_str(PATRONI_CONTROLLER, "controller.yml", []).expect("loads");
        assert_eq!(loaded.config.name, "witness-10.0.0.3-2222");
        assert!(loaded.scope_unknown);
        assert_eq!(loaded.config.raft.password.as_deref(), Some("secret"));
        assert!(loaded
            .warnings
            .iter()
            .any(|w| w.contains("learned from the partners")));
    }

    #[test]
    fn a_scope_stored_in_the_data_dir_is_used_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let identity = crate::raft::storage::Identity {
            cluster: "batman".into(),
            node_id: 7,
            self_addr: "10.0.0.3:2222".into(),
        };
        crate::raft::storage::Storage::open(dir.path(), &identity).expect("open");
        let text = PATRONI_CONTROLLER.replace(
            "/nonexistent/pgquorum-witness-test",
            &dir.path().display().to_string(),
        );
        let loaded = from_yaml_str(&text, "controller.yml", []).expect("loads");
        assert_eq!(loaded.config.scope, "batman");
        assert!(!loaded.scope_unknown);
    }

    #[test]
    fn given_scope_and_name_are_kept() {
        let text = format!("scope: prod\nname: w1\n{PATRONI_CONTROLLER}");
        let loaded = from_yaml_str(&text, "controller.yml", []).expect("loads");
        assert_eq!(
            (loaded.config.scope.as_str(), loaded.config.name.as_str()),
            ("prod", "w1")
        );
        assert!(!loaded.scope_unknown);
    }

    #[test]
    fn postgresql_sections_and_unused_restapi_keys_are_refused() {
        let pg = format!("{PATRONI_CONTROLLER}postgresql:\n  data_dir: /d\n");
        let err = from_yaml_str(&pg, "c.yml", []).unwrap_err().to_string();
        assert!(err.starts_with("postgresql:"), "{err}");
        let tls = format!("{PATRONI_CONTROLLER}restapi:\n  listen: 127.0.0.1:8008\n  certfile: /c.pem\n");
        let err = from_yaml_str(&tls, "c.yml", []).unwrap_err().to_string();
        assert!(err.starts_with("restapi.certfile:"), "{err}");
    }

    #[test]
    fn other_problems_are_reported_by_the_shared_loader() {
        let err = from_yaml_str("raft:\n  self_addr: 10.0.0.3:2222\n", "c.yml", [])
            .unwrap_err()
            .to_string();
        assert!(err.contains("raft.data_dir: required key is missing"), "{err}");
    }
}
