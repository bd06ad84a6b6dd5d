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
            return Err(CtlError::Other(format!("{m} is not a member of cluster")));
        }
    }
    let mut out = Vec::new();
    let mut failed = false;
    for t in targets {
        let address = super::operator_address(endpoint, &t.member, &t.address).await;
        let mut client = connect(&address)?;
        match client.operate(OperateRequest { op: op.to_string() }).await {
            Ok(reply) => out.push(success_line(op, &t.member, &reply.into_inner().message)),
            Err(status) => {
                failed = true;
                out.push(format!(
                    "Failed: {op} for member {}, status code={}, ({})",
                    t.member,
                    status.code() as i32,
                    rpc_error(&address, status)
                ));
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

/// patronictl's lines for a member that did it (scripts match on their start); the agent's own
/// message follows, since pgquorum's reload and restart are done by the time it answers.
fn success_line(op: &str, member: &str, message: &str) -> String {
    let head = match op {
        "reload" => format!("Reload request received for member {member}"),
        "restart" => format!("Success: restart on member {member}"),
        _ => format!("Success: {op} for member {member}"),
    };
    if message.is_empty() {
        head
    } else {
        format!("{head}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::success_line;

    #[test]
    fn lines_start_as_patronictls_do() {
        assert_eq!(
            success_line("restart", "node2", "restarted successfully"),
            "Success: restart on member node2: restarted successfully"
        );
        assert!(success_line("reload", "node1", "").starts_with("Reload request received for member node1"));
    }
}
