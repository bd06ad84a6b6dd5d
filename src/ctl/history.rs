//! `pgquorumctl history`: the timeline history.

use super::cluster_read::cluster_view;
use super::{table, CtlError};

pub async fn run(endpoint: &str, json: bool) -> Result<String, CtlError> {
    let view = cluster_view(endpoint).await?;
    if json {
        return serde_json::to_string_pretty(&view.history).map_err(|e| CtlError::Other(e.to_string()));
    }
    let rows: Vec<Vec<String>> = view
        .history
        .iter()
        .map(|h| {
            vec![
                h.timeline.to_string(),
                h.switch_lsn.to_string(),
                h.reason.clone(),
                h.time.clone(),
                h.new_leader.clone().unwrap_or_default(),
            ]
        })
        .collect();
    Ok(table::render(
        &["TL", "LSN", "Reason", "Timestamp", "New Leader"],
        &rows,
    ))
}
