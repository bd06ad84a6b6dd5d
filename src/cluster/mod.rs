//! The typed values stored under the keyspace keys, and `ClusterView`: the whole cluster as
//! one linearizable read of the keyspace shows it. The HA loop decides from a `ClusterView`;
//! the REST API and `pgquorumctl list` display one.

mod failover;
mod member;
mod sync;
pub mod timeline_position;
mod view;
mod witness;

pub use failover::FailoverRequest;
pub use member::{MemberStatus, PgRole, PgRunState};
pub use sync::SyncState;
pub use view::{BootstrapClaim, ClusterView, HistoryEntry, LeaderLease, ViewError};
pub use witness::WitnessRecord;
