//! Reading the cluster view through an agent (a linearizable read of the whole keyspace).

use super::{client, CtlError};
use crate::cluster::ClusterView;

/// The cluster as the keyspace shows it; values that do not decode are skipped, each named on
/// stderr (the rest of the cluster is still shown).
pub async fn cluster_view(endpoint: &str) -> Result<ClusterView, CtlError> {
    let read = client::read(endpoint, "", true, true).await?;
    let view = ClusterView::from_entries(&read.entries, read.as_of_ms);
    for e in &view.unreadable {
        eprintln!("warning: skipped a value this pgquorumctl cannot read: {e}");
    }
    Ok(view)
}
