//! `pgquorumctl get KEY`: read the keyspace, for debugging.

use super::{client, CtlError};

pub async fn run(
    endpoint: &str,
    key: &str,
    prefix: bool,
    linearizable: bool,
    json: bool,
) -> Result<String, CtlError> {
    let reply = client::read(endpoint, key, prefix, linearizable).await?;
    if json {
        return serde_json::to_string_pretty(&reply.entries).map_err(|e| CtlError::Other(e.to_string()));
    }
    if reply.entries.is_empty() {
        let what = if prefix {
            format!("no key starts with {key:?}")
        } else {
            format!("{key}: not set")
        };
        return Ok(format!(
            "{what} (as of log index {}, answered by {})",
            reply.applied_index, reply.answered_by
        ));
    }
    let mut out = Vec::new();
    for e in &reply.entries {
        let mut head = format!("{}  revision={}", e.key, e.revision);
        if let Some(holder) = &e.holder {
            head.push_str(&format!("  holder={holder}"));
        }
        if let Some(t) = e.expires_at_ms {
            // Relative to the keyspace clock (the last leader stamp applied).
            let left = t.saturating_sub(reply.as_of_ms);
            head.push_str(&format!("  expires_in={:.1}s", left as f64 / 1000.0));
        }
        out.push(head);
        out.push(serde_json::to_string_pretty(&e.value).unwrap_or_default());
    }
    Ok(out.join("\n"))
}
