//! The HA loop's seam to the replicated keyspace: what the loop reads and writes, as a trait
//! the Raft node implements, so an in-memory keyspace can stand in for it in tests.

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::keyspace::{Command, CommandOutcome, Entry, Key, Keyspace, Stamped};
use crate::node::{KeyspaceError, RaftNode, ReadQuery};

/// A read of the whole keyspace.
#[derive(Debug, Clone, Default)]
pub struct StoreRead {
    pub entries: Vec<Entry>,
    /// Keyspace time of the read.
    pub as_of_ms: u64,
}

/// The keyspace as the HA loop uses it.
pub trait ClusterStore: Send + Sync + 'static {
    /// Every key, confirmed by a majority (linearizable). Fails when this node cannot confirm
    /// the keyspace.
    fn read_all(&self) -> impl Future<Output = Result<StoreRead, KeyspaceError>> + Send;
    /// Every key of this node's own copy, which may be stale (no round trip).
    fn read_all_local(&self) -> StoreRead;
    /// One key of this node's own copy.
    fn local_entry(&self, key: &Key) -> Option<Entry>;
    /// Commit one command; a failed precondition is an outcome, not an error.
    fn write(&self, command: Command) -> impl Future<Output = Result<CommandOutcome, KeyspaceError>> + Send;
    /// Changes (to the last applied log index) whenever a command applies.
    fn subscribe_applied(&self) -> watch::Receiver<u64>;
    /// This node was removed from the Raft group (the Raft leader's membership does not list
    /// it): its HA loop must never take the lease nor run the primary (src/ha/removed.rs).
    fn removed_from_group(&self) -> bool;
}

/// When a keyspace call of the HA loop must have answered (hole 16): while this node holds
/// the lease (`lease_deadline_ms`, on the loop's clock), by the deadline less `margin_ms`, so
/// that a primary cut off from the keyspace gets the failure back in time to demote itself
/// instead of waiting in the call past its lease (the lease watchdog and the fence guard are
/// backstops, not the plan). Without a lease: no bound beyond the store's own. Once that
/// point has passed, calls fail at once only while a server that could accept writes runs
/// (`may_write`: the loop must get to its demote); with nothing to stop, a passed deadline
/// bounds nothing, so an agent that was stalled past its lease reads the keyspace again.
pub fn call_deadline_ms(
    lease_deadline_ms: Option<u64>,
    margin_ms: u64,
    now_ms: u64,
    may_write: bool,
) -> Option<u64> {
    let bound = lease_deadline_ms?.saturating_sub(margin_ms);
    (now_ms < bound || may_write).then_some(bound)
}

/// Run a keyspace call, giving up at `deadline` (if any). A call given up on has an unknown
/// outcome (a write may still apply): `Unconfirmed`.
pub async fn within<T>(
    deadline: Option<tokio::time::Instant>,
    call: impl Future<Output = Result<T, KeyspaceError>>,
) -> Result<T, KeyspaceError> {
    let Some(deadline) = deadline else {
        return call.await;
    };
    let started = tokio::time::Instant::now();
    tokio::time::timeout_at(deadline, call).await.unwrap_or_else(|_| {
        Err(KeyspaceError::Unconfirmed {
            waited: started.elapsed(),
        })
    })
}

fn whole(linearizable: bool) -> ReadQuery {
    ReadQuery {
        key: String::new(),
        prefix: true,
        linearizable,
    }
}

impl ClusterStore for RaftNode {
    async fn read_all(&self) -> Result<StoreRead, KeyspaceError> {
        let read = self.read(&whole(true), false).await?;
        Ok(StoreRead {
            entries: read.entries,
            as_of_ms: read.as_of_ms,
        })
    }

    fn read_all_local(&self) -> StoreRead {
        let read = self.read_local(&whole(false));
        StoreRead {
            entries: read.entries,
            as_of_ms: read.as_of_ms,
        }
    }

    fn local_entry(&self, key: &Key) -> Option<Entry> {
        let read = self.read_local(&ReadQuery {
            key: key.to_string(),
            prefix: false,
            linearizable: false,
        });
        read.entries.into_iter().next()
    }

    async fn write(&self, command: Command) -> Result<CommandOutcome, KeyspaceError> {
        RaftNode::write(self, command, false).await.map(|r| r.outcome)
    }

    fn subscribe_applied(&self) -> watch::Receiver<u64> {
        RaftNode::subscribe_applied(self)
    }

    fn removed_from_group(&self) -> bool {
        RaftNode::removed_from_group(self)
    }
}

/// A keyspace in memory, applied in call order, for tests of the loop without Raft. Its
/// clock (the leader stamp of each write) is set by the test; `reachable(false)` makes reads
/// and writes fail as on a node cut off from the majority.
pub struct MemoryStore {
    state: Mutex<MemoryState>,
    applied: watch::Sender<u64>,
}

struct MemoryState {
    keyspace: Keyspace,
    index: u64,
    now_ms: u64,
    reachable: bool,
    removed: bool,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore {
            state: Mutex::new(MemoryState {
                keyspace: Keyspace::default(),
                index: 0,
                now_ms: 0,
                reachable: true,
                removed: false,
            }),
            applied: watch::channel(0).0,
        }
    }

    /// Set the keyspace clock (ms) stamped on the next writes.
    pub fn set_now_ms(&self, now_ms: u64) {
        self.lock().now_ms = now_ms;
    }

    /// Whether reads and writes reach a majority.
    pub fn reachable(&self, reachable: bool) {
        self.lock().reachable = reachable;
    }

    /// Whether this node counts as removed from the Raft group.
    pub fn set_removed(&self, removed: bool) {
        self.lock().removed = removed;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unreachable() -> KeyspaceError {
        KeyspaceError::NoLeader {
            waited: std::time::Duration::ZERO,
        }
    }

    fn snapshot(state: &MemoryState) -> StoreRead {
        StoreRead {
            entries: state.keyspace.with_prefix("").cloned().collect(),
            as_of_ms: state.keyspace.as_of_ms(),
        }
    }
}

impl ClusterStore for MemoryStore {
    async fn read_all(&self) -> Result<StoreRead, KeyspaceError> {
        let state = self.lock();
        if !state.reachable {
            return Err(Self::unreachable());
        }
        Ok(Self::snapshot(&state))
    }

    fn read_all_local(&self) -> StoreRead {
        Self::snapshot(&self.lock())
    }

    fn local_entry(&self, key: &Key) -> Option<Entry> {
        self.lock().keyspace.get(key).cloned()
    }

    async fn write(&self, command: Command) -> Result<CommandOutcome, KeyspaceError> {
        let (outcome, index) = {
            let mut state = self.lock();
            if !state.reachable {
                return Err(Self::unreachable());
            }
            state.index += 1;
            let index = state.index;
            let stamped = Stamped {
                now_ms: state.now_ms,
                command,
            };
            (state.keyspace.apply(index, &stamped), index)
        };
        self.applied.send_replace(index);
        Ok(outcome)
    }

    fn subscribe_applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    fn removed_from_group(&self) -> bool {
        self.lock().removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterView;
    use crate::keyspace::Precondition;

    #[test]
    fn calls_are_bounded_only_while_holding_a_lease() {
        // (lease deadline, now, a writable server may run) -> bound; margin 600 ms.
        let rows = [
            (None, 1_000, true, None),
            (Some(10_000), 1_000, true, Some(9_400)),
            (Some(10_000), 1_000, false, Some(9_400)),
            (Some(10_000), 9_400, true, Some(9_400)),
            (Some(300), 1_000, true, Some(0)),
            (Some(10_000), 9_400, false, None),
            (Some(300), 50_000, false, None),
        ];
        for (deadline, now, may_write, want) in rows {
            assert_eq!(
                call_deadline_ms(deadline, 600, now, may_write),
                want,
                "{deadline:?} {now} {may_write}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn within_gives_up_at_the_deadline() {
        let slow = async {
            tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            Ok::<_, KeyspaceError>(1)
        };
        let start = tokio::time::Instant::now();
        let deadline = start + std::time::Duration::from_secs(2);
        let r = within(Some(deadline), slow).await;
        assert!(matches!(r, Err(KeyspaceError::Unconfirmed { .. })), "{r:?}");
        assert_eq!(start.elapsed(), std::time::Duration::from_secs(2));
        // An answer that is there at once is taken even when the deadline has passed.
        let r = within(Some(start), async { Ok::<_, KeyspaceError>(2) }).await;
        assert_eq!(r.unwrap(), 2);
        assert_eq!(
            within(None, async { Ok::<_, KeyspaceError>(3) }).await.unwrap(),
            3
        );
    }

    #[tokio::test]
    async fn memory_store_applies_cas_and_leases_like_the_keyspace() {
        let store = MemoryStore::new();
        store.set_now_ms(1_000);
        let applied = store.subscribe_applied();
        let claim = Command::Put {
            key: Key::Initialize,
            value: serde_json::json!(""),
            ttl_ms: None,
            precondition: Precondition::Absent,
        };
        assert!(store.write(claim.clone()).await.unwrap().is_applied());
        assert!(applied.has_changed().unwrap());
        assert!(!store.write(claim).await.unwrap().is_applied(), "CAS on absence");

        let lease = |holder: &str| Command::AcquireLease {
            key: Key::Leader,
            holder: holder.into(),
            holder_addr: None,
            value: serde_json::json!({ "holder": holder }),
            ttl_ms: 10_000,
        };
        assert!(store.write(lease("node1")).await.unwrap().is_applied());
        assert!(
            !store.write(lease("node2")).await.unwrap().is_applied(),
            "held by node1"
        );
        let read = store.read_all().await.unwrap();
        let view = ClusterView::from_entries(&read.entries, read.as_of_ms);
        assert_eq!(view.leader_name(), Some("node1"));
        assert_eq!(
            store.local_entry(&Key::Leader).unwrap().holder.as_deref(),
            Some("node1")
        );

        // The lease expires on keyspace time: node2 takes it once the clock passed the ttl.
        store.set_now_ms(11_001);
        assert!(store.write(lease("node2")).await.unwrap().is_applied());

        store.reachable(false);
        assert!(store.read_all().await.is_err());
        assert!(store.write(Command::Expire).await.is_err());
        assert_eq!(
            store.read_all_local().entries.len(),
            2,
            "the local copy still answers"
        );
    }
}
