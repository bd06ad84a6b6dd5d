//! Reading the cluster view through an agent (a linearizable read of the whole keyspace).

use super::{client, CtlError};
use crate::cluster::ClusterView;

pub async fn cluster_view(endpoint: &str) -> Result<ClusterView, CtlError> {
    let read = client::read(endpoint, "", true, true).await?;
    ClusterView::from_entries(&read.entries, read.as_of_ms).map_err(|e| CtlError::Other(e.to_string()))
}
