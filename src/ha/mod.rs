//! The HA loop: decide (pure) and act (executor).

pub mod action_error;
pub mod bootstrap_claim;
pub mod callbacks;
pub mod claim_fence;
pub mod decide;
pub mod engine;
pub mod hand_over;
pub mod jobs;
pub mod keep_lease;
pub mod lease_watchdog;
pub mod params;
pub mod pg_adapter;
pub mod pg_ops;
pub mod position;
pub mod publish;
pub mod removed;
pub mod replay_wait;
pub mod retry;
pub mod rewind_marker;
pub mod runner;
pub mod shutdown;
pub mod snapshot;
pub mod store;
pub mod switchover;
pub mod sync_apply;
pub mod sync_standby;

#[cfg(test)]
mod decide_test;
#[cfg(test)]
mod engine_test;
#[cfg(test)]
mod loop_test;
#[cfg(test)]
mod sim;

pub use decide::{decide, Action, DataDir, Decision, Inputs, Job, LeaseClock, LocalPg, WalPosition};
pub use position::{position_probe, PositionProbe};
pub use runner::HaLoop;
pub use snapshot::{NodeSnapshot, OperatorRequest, ReplicationRow};
