//! pgquorum: high availability for PostgreSQL with Raft consensus built in.
//!
//! See `docs/architecture.md` for the map of the modules.

pub mod config;
pub mod keyspace;
pub mod raft;
pub mod grpc;
pub mod node;
pub mod agent;
pub mod ctl;
pub mod demo;
pub mod logging;
