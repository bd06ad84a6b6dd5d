//! Forming the Raft group from the config, with no manual step.
//!
//! Every agent knows the full member list (`raft.self_addr` + `raft.partner_addrs`) and
//! derives every node id from it, so every agent would initialise the group with the same
//! membership — which openraft allows on several nodes at once. A pristine node first asks
//! its partners: if one already belongs to a formed group, it waits to be contacted by
//! that group's leader instead of initialising. A node with Raft state never initialises
//! again, so restarts cannot re-form or split the group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};

use super::RaftNode;
use crate::grpc::pb::admin::NodeStatusRequest;
use crate::raft::{node_id_for, BasicNode};

pub(super) async fn run(node: Arc<RaftNode>) {
    let mut told_waiting = false;
    loop {
        match node.raft.is_initialized().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "raft: cannot check whether the group is formed");
                return;
            }
        }
        if let Some(partner) = initialized_partner(&node).await {
            if !told_waiting {
                tracing::info!(%partner, "raft: partner already belongs to a formed group; waiting for its leader to replicate to us");
                told_waiting = true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let members: BTreeMap<_, _> = node
            .settings
            .all_addrs()
            .map(|a| (node_id_for(a), BasicNode { addr: a.clone() }))
            .collect();
        match node.raft.initialize(members.clone()).await {
            Ok(()) => {
                let addrs: Vec<&str> = members.values().map(|n| n.addr.as_str()).collect();
                tracing::info!(members = ?addrs, "raft: no partner had a formed group; initialised the group from the config");
                return;
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => return,
            Err(e) => {
                tracing::error!(error = %e, "raft: initialising the group failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The address of a partner that reports an initialised Raft state, if any answers so.
async fn initialized_partner(node: &RaftNode) -> Option<String> {
    let probes = node.settings.partner_addrs.iter().map(|addr| async move {
        let mut client = node.admin_client(addr).ok()?;
        let mut req = tonic::Request::new(NodeStatusRequest {});
        req.set_timeout(Duration::from_millis(500));
        let reply = tokio::time::timeout(Duration::from_millis(700), client.node_status(req))
            .await
            .ok()?
            .ok()?;
        reply.into_inner().initialized.then(|| addr.clone())
    });
    futures::future::join_all(probes)
        .await
        .into_iter()
        .flatten()
        .next()
}
