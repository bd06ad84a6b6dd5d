//! Keyspace calls over the admin service, for the CLI, tests and benchmarks.

use std::time::Duration;

use super::{connect, rpc_error, CtlError};
use crate::grpc::pb::admin::admin_client::AdminClient;
use crate::grpc::pb::admin::{ReadRequest, WriteRequest};
use crate::grpc::{GrpcChannel, Transport};
use crate::keyspace::{Command, CommandOutcome, Entry};

/// The answer to a keyspace read.
#[derive(Debug, Clone)]
pub struct KeyspaceRead {
    pub entries: Vec<Entry>,
    pub applied_index: u64,
    pub as_of_ms: u64,
    pub answered_by: String,
}

/// Apply `command` through the agent at `endpoint` (forwarded to the Raft leader if needed).
/// Returns the outcome and the log index it was committed at.
pub async fn write(endpoint: &str, command: &Command) -> Result<(CommandOutcome, u64), CtlError> {
    write_forcing(endpoint, command, false).await
}

/// [`write`], with `force_resume` (`pgquorumctl resume --force`) set on the request.
pub async fn write_forcing(
    endpoint: &str,
    command: &Command,
    force_resume: bool,
) -> Result<(CommandOutcome, u64), CtlError> {
    write_on(connect(endpoint)?, endpoint, command, force_resume).await
}

/// [`write`] with `transport` instead of the process's: a caller holding several identities
/// (the fault suite writes agent-only keys with a node's certificate, and runs switchovers
/// with pgquorumctl's).
pub async fn write_via(
    transport: &Transport,
    endpoint: &str,
    command: &Command,
) -> Result<(CommandOutcome, u64), CtlError> {
    let channel = transport
        .channel(endpoint, Duration::from_secs(2))
        .map_err(|e| CtlError::BadEndpoint(endpoint.to_string(), e.to_string()))?;
    write_on(AdminClient::new(channel), endpoint, command, false).await
}

async fn write_on(
    mut client: AdminClient<GrpcChannel>,
    endpoint: &str,
    command: &Command,
    force_resume: bool,
) -> Result<(CommandOutcome, u64), CtlError> {
    let body = serde_json::to_vec(command).map_err(|e| CtlError::Other(e.to_string()))?;
    let reply = client
        .write(WriteRequest {
            command: body,
            forwarded: false,
            force_resume,
        })
        .await
        .map_err(|s| rpc_error(endpoint, s))?
        .into_inner();
    let outcome = serde_json::from_slice(&reply.outcome)
        .map_err(|e| CtlError::Other(format!("unreadable reply: {e}")))?;
    Ok((outcome, reply.log_index))
}

/// Read a key (or a prefix) through the agent at `endpoint`.
pub async fn read(
    endpoint: &str,
    key: &str,
    prefix: bool,
    linearizable: bool,
) -> Result<KeyspaceRead, CtlError> {
    let mut client = connect(endpoint)?;
    let reply = client
        .read(ReadRequest {
            key: key.to_string(),
            prefix,
            linearizable,
            forwarded: false,
        })
        .await
        .map_err(|s| rpc_error(endpoint, s))?
        .into_inner();
    let entries = reply
        .entries
        .iter()
        .map(|b| serde_json::from_slice::<Entry>(b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CtlError::Other(format!("unreadable reply: {e}")))?;
    Ok(KeyspaceRead {
        entries,
        applied_index: reply.applied_index,
        as_of_ms: reply.as_of_ms,
        answered_by: reply.answered_by,
    })
}
