//! The witness: what `pgquorum-controller` (the `raft-controller/` crate) runs. A Raft voter
//! with no PostgreSQL and no HA loop, so that two data nodes plus a witness keep a quorum.
//!
//! It votes and stores the log like any voter: openraft 0.9 has no vote-only member (a
//! voter's vote is only safe if it holds the log it votes on; a learner holds it but has no
//! vote). It never publishes `members/<name>`, so the HA loop never sees it as a PostgreSQL
//! member or a failover candidate; it publishes `witnesses/<name>` instead
//! ([`crate::cluster::WitnessRecord`]) so that `list` and `raft status` can name it.

pub mod controller_config;
pub mod endpoint;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use crate::agent::{AgentError, VoterPorts};
use crate::grpc::admin_service::AdminGrpc;

use crate::cluster::WitnessRecord;
use crate::config::Config;
use crate::keyspace::{Command, Key, Precondition};
use crate::node::{KeyspaceError, NodeKind, NodeSettings, RaftNode, ReadQuery};

/// sled's page cache for the witness: it holds the same small keyspace as an agent, and
/// nothing reads it often (docs/benchmarks.md, "Witness footprint").
pub const WITNESS_CACHE_BYTES: u64 = 1024 * 1024;

/// The witness's Raft node settings: the agent's, marked as a witness, with a small cache.
pub fn node_settings(config: &Config) -> NodeSettings {
    NodeSettings {
        kind: NodeKind::Witness,
        storage_cache_bytes: WITNESS_CACHE_BYTES,
        ..NodeSettings::from_config(config)
    }
}

/// The record this witness publishes.
pub fn record(node: &RaftNode) -> WitnessRecord {
    WitnessRecord {
        name: node.settings.name.clone(),
        raft_addr: node.settings.self_addr.trim().to_string(),
        node_id: node.id,
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Write `witnesses/<name>` once the group has a leader, and again whenever it differs from
/// this witness's own (e.g. after its address changed). Retries until written or `node`
/// stops; returns when the record is in place.
pub async fn publish(node: Arc<RaftNode>) {
    let Ok(key) = Key::witness(&node.settings.name) else {
        tracing::error!(name = %node.settings.name, "the witness name cannot be a key; not publishing witnesses/<name>");
        return;
    };
    let mine = serde_json::to_value(record(&node)).unwrap_or_default();
    loop {
        let local = node.read_local(&ReadQuery {
            key: key.to_string(),
            ..Default::default()
        });
        if local.entries.first().is_some_and(|e| e.value == mine) {
            return;
        }
        let put = Command::Put {
            key: key.clone(),
            value: mine.clone(),
            ttl_ms: None,
            precondition: Precondition::Any,
        };
        match node.write(put, false).await {
            Ok(_) => {
                tracing::info!("published {key}: this voter is a witness, never a PostgreSQL member");
                return;
            }
            Err(KeyspaceError::Stopped(_)) => return,
            Err(e) => tracing::debug!("publishing {key} failed (retrying): {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Run the witness until `shutdown` completes: the agent's Raft start-up
/// ([`VoterPorts`], [`RaftNode::start`]) with no PostgreSQL and no HA loop, the record
/// published, and the optional health/metrics endpoint on `restapi.listen`.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let ports = VoterPorts::bind(&config).await?;
    let endpoint = match &config.restapi.listen {
        Some(addr) => Some(crate::agent::bind("restapi.listen", addr).await?),
        None => None,
    };
    let node = RaftNode::start(node_settings(&config)).await?;
    tracing::info!(name = %config.name, scope = %config.scope, "witness running: a Raft voter with no PostgreSQL");
    tokio::spawn(publish(node.clone()));
    let shutdown = shutdown.shared();
    if let Some(listener) = endpoint {
        let (node, until) = (node.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = endpoint::serve(listener, node, until).await {
                tracing::error!("health/metrics endpoint stopped: {e}");
            }
        });
    }
    // No HA loop behind it: the admin service answers status and keyspace calls, and refuses
    // operations (no PostgreSQL to operate on).
    let admin = AdminGrpc::new(node.clone(), None, None).with_raft_config(config.raft.clone());
    ports.serve(node.clone(), admin, shutdown).await?;
    node.shutdown().await;
    tracing::info!("witness stopped");
    Ok(())
}
