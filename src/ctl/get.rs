//! `pgquorumctl get KEY`: read the keyspace, for debugging.

use super::{connect, rpc_error, CtlError};
use crate::grpc::pb::admin::ReadRequest;
use crate::keyspace::Entry;

pub async fn run(endpoint: &str, key: &str, prefix: bool, linearizable: bool, json: bool) -> Result<String, CtlError> {
    let mut client = connect(endpoint)?;
    let reply = client
        .read(ReadRequest { key: key.to_string(), prefix, linearizable, forwarded: false })
        .await
        .map_err(|s| rpc_error(endpoint, s))?
        .into_inner();
    let entries = reply
        .entries
        .iter()
        .map(|b| serde_json::from_slice::<Entry>(b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CtlError::Other(format!("unreadable reply: {e}")))?;
    if json {
        return serde_json::to_string_pretty(&entries).map_err(|e| CtlError::Other(e.to_string()));
    }
    if entries.is_empty() {
        return Ok(format!("{key}: not set (as of log index {}, answered by {})", reply.applied_index, reply.answered_by));
    }
    let mut out = Vec::new();
    for e in &entries {
        let mut head = format!("{}  revision={}", e.key, e.revision);
        if let Some(holder) = &e.holder {
            head.push_str(&format!("  holder={holder}"));
        }
        if let Some(t) = e.expires_at_ms {
            let left = t.saturating_sub(reply.as_of_ms);
            head.push_str(&format!("  expires_in={:.1}s", left as f64 / 1000.0));
        }
        out.push(head);
        out.push(serde_json::to_string_pretty(&e.value).unwrap_or_default());
    }
    Ok(out.join("\n"))
}
