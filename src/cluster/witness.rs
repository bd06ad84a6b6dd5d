//! `witnesses/<name>`: what a witness (`pgquorum-controller`) publishes about itself.
//!
//! The Raft membership only knows node ids and addresses; this record is how everything
//! else (`pgquorumctl list`, `raft status`, the no-quorum explanation) knows that a voter is a
//! witness, even while it is down. It has no TTL: a witness that stopped is still a voter.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessRecord {
    pub name: String,
    /// Its `raft.self_addr`, as in the Raft membership.
    pub raft_addr: String,
    /// Its Raft node id.
    pub node_id: u64,
    /// The `pgquorum-controller` version that wrote it.
    #[serde(default)]
    pub version: String,
}
