//! openraft's own storage conformance suite, run against the sled log store and state
//! machine: the contract openraft relies on (log state, truncate, purge, vote, apply,
//! snapshots) is checked by the library's authors' tests rather than ours alone.

use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

use super::storage::{Identity, Storage};
use super::{LogStore, StateMachineStore, StorageError, TypeConfig};

struct SledStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for SledStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = Identity {
            cluster: "conformance".into(),
            node_id: 0,
            self_addr: "127.0.0.1:1".into(),
        };
        let storage = Storage::open(dir.path(), &identity).expect("open storage");
        let state_machine = StateMachineStore::open(storage.clone())?;
        Ok((dir, LogStore::new(storage), state_machine))
    }
}

#[test]
fn sled_storage_passes_the_openraft_suite() {
    Suite::test_all(SledStoreBuilder).expect("openraft storage suite");
}
