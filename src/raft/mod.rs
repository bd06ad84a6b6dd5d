//! The embedded Raft group: openraft types, sled-backed storage, and the network.

mod log_store;
pub mod network;
mod state_machine;
pub mod storage;

use std::io::Cursor;

pub use log_store::LogStore;
pub use openraft::BasicNode;
pub use state_machine::{AppliedState, StateMachineStore};

use crate::keyspace::{CommandOutcome, Stamped};

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of pgquorum's keyspace group.
    pub TypeConfig:
        D = Stamped,
        R = CommandOutcome,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type RaftMetrics = openraft::RaftMetrics<NodeId, BasicNode>;
pub type StorageError = openraft::StorageError<NodeId>;

/// The stable Raft node id of the agent whose `raft.self_addr` is `addr`.
///
/// Derived from the address alone so that every agent computes the same id for every
/// partner from its own config file, with no id to hand out or keep in sync. FNV-1a is
/// used because it is fixed forever (std's hasher may change between Rust releases).
pub fn node_id_for(addr: &str) -> NodeId {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    addr.trim()
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_stable_and_distinct() {
        // Fixed value: changing the function would re-number every deployed cluster.
        assert_eq!(node_id_for("127.0.0.1:2401"), node_id_for(" 127.0.0.1:2401 "));
        assert_eq!(node_id_for("127.0.0.1:2401"), 0x7e6c_e001_c39e_04ad);
        assert_ne!(node_id_for("127.0.0.1:2401"), node_id_for("127.0.0.1:2402"));
    }
}

#[cfg(test)]
mod conformance_test;
