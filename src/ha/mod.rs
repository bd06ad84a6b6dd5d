//! The HA loop: decide (pure) and act (executor).

pub mod decide;
pub mod params;
pub mod pg_adapter;
pub mod pg_ops;
pub mod publish;
pub mod runner;
pub mod snapshot;

#[cfg(test)]
mod decide_test;

pub use decide::{decide, Action, DataDir, Decision, Inputs, Job, LeaseClock, LocalPg};
pub use runner::HaLoop;
pub use snapshot::{NodeSnapshot, OperatorRequest, ReplicationRow};
