//! `pgquorumctl remove SCOPE` (Patroni's `remove`): delete every key of a decommissioned
//! cluster after the operator typed its name (or gave `--yes-i-am-sure` in a script). The
//! agent refuses while a member holds the primary lease, unless `--force`
//! (src/node/cluster_removal.rs).

use super::switchover::Console;
use super::{connect, rpc_error, scope_of, CtlError};
use crate::grpc::pb::admin::RemoveClusterRequest;

pub async fn run(
    endpoint: &str,
    scope: &str,
    sure: bool,
    force: bool,
    json: bool,
) -> Result<String, CtlError> {
    let theirs = scope_of(endpoint).await?;
    if theirs != scope {
        return Err(CtlError::Other(format!(
            "the agent at {endpoint} belongs to cluster {theirs:?}, not {scope:?}: nothing removed"
        )));
    }
    if !sure {
        // Interactive only: a script says --yes-i-am-sure.
        let console = Console::new(json, false);
        console.interactive().map_err(|_| {
            CtlError::Other(
                "stdin is not a terminal, so the cluster name cannot be typed: give --yes-i-am-sure".into(),
            )
        })?;
        let typed = console.ask(&format!(
            "This deletes every key of cluster {scope:?} (members, leader, config, history). \
             Type the cluster name to confirm: "
        ))?;
        if typed != scope {
            return Err(CtlError::Other(
                "Aborted: the name typed is not the cluster's".into(),
            ));
        }
    }
    let mut client = connect(endpoint)?;
    let reply = client
        .remove_cluster(RemoveClusterRequest {
            scope: scope.to_string(),
            force,
        })
        .await
        .map_err(|s| rpc_error(endpoint, s))?
        .into_inner();
    if json {
        return Ok(serde_json::json!({ "scope": scope, "deleted": reply.deleted }).to_string());
    }
    Ok(format!("removed {} keys of cluster {scope:?}", reply.deleted))
}
