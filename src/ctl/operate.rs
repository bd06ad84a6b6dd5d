//! `pgquorumctl reload` and `restart`: ask members' agents to act on their PostgreSQL.

use super::{connect, fetch_raft_status, rpc_error, CtlError};
use crate::grpc::pb::admin::OperateRequest;

/// Run `op` on each named member (all members when `members` is empty).
pub async fn run(endpoint: &str, op: &str, members: &[String]) -> Result<String, CtlError> {
    let status = fetch_raft_status(endpoint).await?;
    let targets: Vec<_> = status
        .iter()
        .filter(|r| members.is_empty() || members.contains(&r.member))
        .collect();
    for m in members {
        if !status.iter().any(|r| &r.member == m) {
            return Err(CtlError::Other(format!("no member named {m:?}")));
        }
    }
    let mut out = Vec::new();
    let mut failed = false;
    for t in targets {
        let mut client = connect(&t.address)?;
        match client.operate(OperateRequest { op: op.to_string() }).await {
            Ok(reply) => out.push(format!("{}: {}", t.member, reply.into_inner().message)),
            Err(status) => {
                failed = true;
                out.push(format!("{}: FAILED: {}", t.member, rpc_error(&t.address, status)));
            }
        }
    }
    let text = out.join("\n");
    if failed {
        Err(CtlError::Other(text))
    } else {
        Ok(text)
    }
}
