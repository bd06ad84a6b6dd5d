//! The state machine openraft applies committed entries to: the keyspace plus the Raft
//! bookkeeping (last applied log id, membership), persisted in sled after each batch, and
//! snapshots of it for log compaction and for catching up lagging nodes.

use std::io::Cursor;
use std::sync::{Arc, Mutex, RwLock};

use tokio::time::Instant;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::AnyError;
use openraft::{EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::storage::Storage;
use super::{BasicNode, NodeId, StorageError, TypeConfig};
use crate::keyspace::{CommandOutcome, Keyspace, KeyspaceClock, WallJump};

/// Everything the state machine holds; also the snapshot format.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AppliedState {
    pub last_applied: Option<LogId<NodeId>>,
    pub last_membership: StoredMembership<NodeId, BasicNode>,
    pub keyspace: Keyspace,
}

#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

const APPLIED: &[u8] = b"applied";
const SNAPSHOT: &[u8] = b"snapshot";

/// The state machine store. Cheap to clone; clones share the state, so the admin service
/// reads exactly what openraft applied.
#[derive(Clone)]
pub struct StateMachineStore {
    storage: Storage,
    state: Arc<RwLock<AppliedState>>,
    applied_tx: Arc<watch::Sender<u64>>,
    /// This node's keyspace clock, anchored on every applied batch (`keyspace/clock.rs`).
    clock: Arc<Mutex<KeyspaceClock>>,
}

impl StateMachineStore {
    /// Load the newest of the persisted state and the persisted snapshot.
    pub fn open(storage: Storage) -> Result<StateMachineStore, StorageError> {
        let mut state: AppliedState = match storage
            .state
            .get(APPLIED)
            .map_err(|e| StorageIOError::read_state_machine(&e))?
        {
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read_state_machine(&e))?
            }
            None => AppliedState::default(),
        };
        if let Some(snapshot) = read_snapshot(&storage)? {
            if snapshot.meta.last_log_id > state.last_applied {
                state = decode_snapshot(&snapshot.meta, &snapshot.data)?;
            }
        }
        let applied = state.last_applied.map_or(0, |l| l.index);
        let clock = KeyspaceClock::new(state.keyspace.as_of_ms(), Instant::now());
        Ok(StateMachineStore {
            storage,
            state: Arc::new(RwLock::new(state)),
            applied_tx: Arc::new(watch::channel(applied).0),
            clock: Arc::new(Mutex::new(clock)),
        })
    }

    /// Keyspace time now on this node's clock (what the Raft leader would stamp).
    pub fn keyspace_now_ms(&self) -> u64 {
        self.clock
            .lock()
            .expect("clock lock poisoned")
            .now_ms(Instant::now())
    }

    /// The stamp for a command this node proposes as Raft leader, whose wall clock reads
    /// `wall_ms`, and a wall-clock jump since its previous stamp, if any.
    pub fn stamp(&self, wall_ms: u64) -> (u64, Option<WallJump>) {
        self.clock
            .lock()
            .expect("clock lock poisoned")
            .stamp(Instant::now(), wall_ms)
    }

    fn observe_applied(&self, as_of_ms: u64) {
        self.clock
            .lock()
            .expect("clock lock poisoned")
            .observe_applied(as_of_ms, Instant::now());
    }

    /// Run `f` on the current state (a short read lock; do not block inside).
    pub fn read<T>(&self, f: impl FnOnce(&AppliedState) -> T) -> T {
        f(&self.state.read().expect("state machine lock poisoned"))
    }

    /// Watch the last applied log index: changes whenever a batch has been applied.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    fn persist(&self, state: &AppliedState) -> Result<(), StorageError> {
        // Not flushed here: after a crash openraft re-applies from the last persisted point,
        // and the log entries themselves were flushed before they were acknowledged.
        let bytes = serde_json::to_vec(state).map_err(|e| StorageIOError::write_state_machine(&e))?;
        self.storage
            .state
            .insert(APPLIED, bytes)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        Ok(())
    }
}

impl StateMachineStore {
    /// Store `data` as the current snapshot (and `state` as the applied state, when a
    /// snapshot replaces it), then flush both to disk.
    async fn save_snapshot(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        data: Vec<u8>,
        state: Option<&AppliedState>,
    ) -> Result<(), StorageError> {
        let io_err = |e: AnyError| StorageIOError::write_snapshot(Some(meta.signature()), e);
        let bytes = serde_json::to_vec(&StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .map_err(|e| io_err(AnyError::new(&e)))?;
        self.storage
            .state
            .insert(SNAPSHOT, bytes)
            .map_err(|e| io_err(AnyError::new(&e)))?;
        if let Some(state) = state {
            self.persist(state)?;
        }
        self.storage
            .db
            .flush_async()
            .await
            .map_err(|e| io_err(AnyError::new(&e)))?;
        Ok(())
    }
}

fn read_snapshot(storage: &Storage) -> Result<Option<StoredSnapshot>, StorageError> {
    match storage
        .state
        .get(SNAPSHOT)
        .map_err(|e| StorageIOError::read_snapshot(None, &e))?
    {
        Some(bytes) => Ok(Some(
            serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?,
        )),
        None => Ok(None),
    }
}

fn decode_snapshot(
    meta: &SnapshotMeta<NodeId, BasicNode>,
    data: &[u8],
) -> Result<AppliedState, StorageError> {
    let keyspace: Keyspace = serde_json::from_slice(data)
        .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
    Ok(AppliedState {
        last_applied: meta.last_log_id,
        last_membership: meta.last_membership.clone(),
        keyspace,
    })
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (data, last_applied, last_membership) = self.read(|s| {
            (
                serde_json::to_vec(&s.keyspace),
                s.last_applied,
                s.last_membership.clone(),
            )
        });
        let data = data.map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let snapshot_id = match last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership,
            snapshot_id,
        };
        // Flushed: openraft purges the log up to this snapshot once we return.
        self.save_snapshot(&meta, data.clone(), None).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError> {
        Ok(self.read(|s| (s.last_applied, s.last_membership.clone())))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandOutcome>, StorageError>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + openraft::OptionalSend,
        I::IntoIter: openraft::OptionalSend,
    {
        let mut outcomes = Vec::new();
        let snapshot_of_state = {
            let mut state = self.state.write().expect("state machine lock poisoned");
            for entry in entries {
                state.last_applied = Some(entry.log_id);
                let outcome = match entry.payload {
                    EntryPayload::Blank => CommandOutcome::Applied {
                        revision: entry.log_id.index,
                    },
                    EntryPayload::Normal(stamped) => state.keyspace.apply(entry.log_id.index, &stamped),
                    EntryPayload::Membership(m) => {
                        state.last_membership = StoredMembership::new(Some(entry.log_id), m);
                        CommandOutcome::Applied {
                            revision: entry.log_id.index,
                        }
                    }
                };
                outcomes.push(outcome);
            }
            state.clone()
        };
        self.observe_applied(snapshot_of_state.keyspace.as_of_ms());
        self.persist(&snapshot_of_state)?;
        let applied = snapshot_of_state.last_applied.map_or(0, |l| l.index);
        self.applied_tx.send_replace(applied);
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let new_state = decode_snapshot(meta, &data)?;
        self.save_snapshot(meta, data, Some(&new_state)).await?;
        let applied = new_state.last_applied.map_or(0, |l| l.index);
        self.observe_applied(new_state.keyspace.as_of_ms());
        *self.state.write().expect("state machine lock poisoned") = new_state;
        self.applied_tx.send_replace(applied);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        Ok(read_snapshot(&self.storage)?.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
