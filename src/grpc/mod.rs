//! gRPC: generated protobuf types, the Raft service between agents and the admin service.

pub mod admin_service;
pub mod raft_service;

pub mod pb {
    pub mod raft {
        tonic::include_proto!("pgquorum.raft");
    }
    pub mod admin {
        tonic::include_proto!("pgquorum.admin");
    }
}

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// A lazily connecting channel to `addr` (`host:port`). Nothing is dialled until the first
/// call, so a partner that is down does not hold up start-up.
pub fn lazy_channel(addr: &str, connect_timeout: Duration) -> Result<Channel, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    Ok(endpoint.connect_lazy())
}
