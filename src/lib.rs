//! pgquorum: high availability for PostgreSQL with Raft consensus built in.
//!
//! See `docs/architecture.md` for the map of the modules.

// openraft's `StorageError` and tonic's `Status` are large by design, and they are the
// error types the traits we implement require; boxing them at every call would only add
// noise on paths that are not hot.
#![allow(clippy::result_large_err)]

pub mod agent;
pub mod cluster;
pub mod config;
pub mod ctl;
pub mod demo;
pub mod fence;
pub mod grpc;
pub mod ha;
pub mod keyspace;
pub mod logging;
pub mod node;
pub mod postgres;
pub mod raft;
pub mod rest;
pub mod timefmt;
pub mod watchdog;
