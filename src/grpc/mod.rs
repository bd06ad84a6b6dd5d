//! gRPC: generated protobuf types, the Raft service between agents and the admin service.

pub mod access;
pub mod admin_service;
pub mod certs;
pub mod raft_service;
pub mod transport;

pub mod pb {
    pub mod raft {
        tonic::include_proto!("pgquorum.raft");
    }
    pub mod admin {
        tonic::include_proto!("pgquorum.admin");
    }
}

pub use transport::{process_channel, GrpcChannel, Refusal, Transport};

/// A lazily connecting channel to `addr` with this process's transport (see
/// [`transport::process_channel`]); kept under its old name for existing callers.
pub fn lazy_channel(
    addr: &str,
    connect_timeout: std::time::Duration,
) -> Result<GrpcChannel, transport::TransportError> {
    process_channel(addr, connect_timeout)
}
