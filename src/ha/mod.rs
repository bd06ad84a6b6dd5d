//! The HA loop: decide (pure) and act (executor).

pub mod callbacks;
pub mod decide;
pub mod engine;
pub mod hand_over;
pub mod lease_watchdog;
pub mod params;
pub mod pg_adapter;
pub mod pg_ops;
pub mod publish;
pub mod retry;
pub mod rewind_marker;
pub mod runner;
pub mod shutdown;
pub mod snapshot;
pub mod store;
pub mod switchover;

#[cfg(test)]
mod decide_test;
#[cfg(test)]
mod engine_test;
#[cfg(test)]
mod loop_test;
#[cfg(test)]
mod sim;

pub use decide::{decide, Action, DataDir, Decision, Inputs, Job, LeaseClock, LocalPg, WalPosition};
pub use runner::{position_probe, HaLoop, PositionProbe};
pub use snapshot::{NodeSnapshot, OperatorRequest, ReplicationRow};
