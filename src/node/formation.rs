//! Forming or joining the Raft group from the config, with no manual step.
//!
//! Node ids derive from addresses, so every agent computes the same id for every member.
//! Until this node is a voter, it asks its configured partners for their status every
//! 500 ms and follows `formation_rule::formation_step`: join a formed group of its scope
//! through a partner that belongs to one, initialise the configured set once a majority of
//! it agrees, or wait. A node with Raft state never initialises again, so restarts cannot
//! re-form or split the group; one whose promotion to voter was interrupted asks again.
//! A node with state that is no member any more (removed by `pgquorumctl members remove`)
//! says so in its log and waits: it never asks to join by itself. A node with state asks its
//! partners and the members of its last applied membership until the Raft leader answers that
//! it is a member (or it is the leader), so a voter removed while it was down learns it too;
//! then it waits until it knows no leader (an election, or it was removed while it ran and the
//! group stopped talking to it) and asks again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InitializeError, RaftError};

use super::formation_rule::{formation_step, Answer, Myself, OwnRole, Step, Waiting};
use super::join::JOIN_FORWARD_TIMEOUT;
use super::RaftNode;
use crate::grpc::pb::admin::{JoinOutcome, JoinRequest, NodeStatusRequest};
use crate::grpc::transport::{describe, Refusal};
use crate::raft::{node_id_for, BasicNode};

const PROBE_INTERVAL: Duration = Duration::from_millis(500);
const MAX_JOIN_BACKOFF: Duration = Duration::from_secs(5);

pub(super) async fn run(node: Arc<RaftNode>) {
    let mut last_wait: Option<Waiting> = None;
    let mut warned_other_scope = BTreeSet::new();
    let mut warned_failed_probe = BTreeSet::new();
    let mut join_backoff = PROBE_INTERVAL;
    let mut told_removed = None;
    let mut elections_off = false;
    loop {
        let pristine = match node.raft.is_initialized().await {
            Ok(initialized) => !initialized,
            Err(e) => {
                tracing::error!(error = %e, "raft: cannot check whether the group is formed");
                return;
            }
        };
        let (voters, learners) = node.membership_ids();
        let own_role = if voters.contains(&node.id) {
            OwnRole::Voter
        } else if learners.contains(&node.id) {
            OwnRole::Learner
        } else {
            OwnRole::Absent
        };
        if !pristine && node.raft.metrics().borrow().state == openraft::ServerState::Leader {
            if !wait_until_leaderless(&node).await {
                return;
            }
            continue;
        }
        let (answers, failures) = probe_partners(&node, &addrs_to_ask(&node, pristine)).await;
        for (addr, failure) in failures {
            // Each distinct failure once per partner: a partner not up yet is normal at
            // start-up, but a TLS refusal (a certificate of another CA) must reach the log.
            if warned_failed_probe.insert((addr.clone(), failure.clone())) {
                tracing::info!(partner = %addr, error = %failure, "raft: configured partner does not answer (each distinct error reported once)");
            }
        }
        for (addr, answer) in &answers {
            if let Answer::Status { scope, .. } = answer {
                if *scope != node.settings.cluster && warned_other_scope.insert(addr.clone()) {
                    tracing::warn!(
                        partner = %addr, their_scope = %scope, our_scope = %node.settings.cluster,
                        "raft: configured partner belongs to another scope; it is never joined nor counted (check raft.partner_addrs)"
                    );
                }
            }
        }
        let me = Myself {
            scope: node.settings.cluster.clone(),
            addr: node.settings.self_addr.trim().to_string(),
            configured: configured_set(&node),
            pristine,
            own_role,
        };
        let step = formation_step(&me, &answers);
        // A removed node that still believes it is a voter would keep starting elections with
        // ever higher terms: the group refuses its votes while its leader lives, but the terms
        // would disturb the next election. Off while the rule says removed, on otherwise.
        let removed = matches!(step, Step::Removed { .. });
        if removed != elections_off {
            node.raft.runtime_config().elect(!removed);
            elections_off = removed;
        }
        match step {
            Step::Join { via } => match join_through(&node, &via).await {
                // Next round: the leader confirms it, then the watch below.
                Ok(()) => join_backoff = PROBE_INTERVAL,
                Err(()) => {
                    tokio::time::sleep(join_backoff).await;
                    join_backoff = (join_backoff * 2).min(MAX_JOIN_BACKOFF);
                }
            },
            Step::Initialize { members } => {
                if !initialize(&node, &members).await {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            Step::Member => {
                told_removed = None;
                node.set_removed(false);
                if !wait_until_leaderless(&node).await {
                    return;
                }
            }
            Step::Unconfirmed => tokio::time::sleep(PROBE_INTERVAL).await,
            Step::Removed { leader } => {
                // Only `Member` clears it: a round without an answer proves nothing.
                node.set_removed(true);
                if told_removed.as_ref() != Some(&leader) {
                    log_removed(leader.as_deref());
                    told_removed = Some(leader);
                }
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
            Step::Wait(waiting) => {
                if last_wait.as_ref() != Some(&waiting) {
                    log_waiting(&waiting);
                    last_wait = Some(waiting);
                }
                tokio::time::sleep(PROBE_INTERVAL).await;
            }
        }
    }
}

/// The configured partners and, for a node with state, the other members of the last
/// membership it applied (its partner list may be stale; the Raft leader may be a member it
/// does not name).
fn addrs_to_ask(node: &RaftNode, pristine: bool) -> Vec<String> {
    let mut addrs: Vec<String> = node
        .settings
        .partner_addrs
        .iter()
        .map(|a| a.trim().to_string())
        .collect();
    if !pristine {
        let own = node.settings.self_addr.trim();
        let (voters, learners) = node.membership_ids();
        for id in voters.into_iter().chain(learners) {
            if let Some(addr) = node.addr_of(id) {
                if addr != own && !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
    }
    addrs
}

fn configured_set(node: &RaftNode) -> BTreeSet<String> {
    node.settings.all_addrs().map(|a| a.trim().to_string()).collect()
}

/// Wait until this node knows no Raft leader: an election, or the group stopped talking to it
/// because it was removed while running (it then campaigns). `false` once the node stopped.
async fn wait_until_leaderless(node: &RaftNode) -> bool {
    let mut metrics = node.raft.metrics();
    loop {
        if metrics.borrow_and_update().current_leader.is_none() {
            return true;
        }
        if metrics.changed().await.is_err() {
            return false;
        }
    }
}

fn log_removed(leader: Option<&str>) {
    let seen = match leader {
        Some(addr) => format!("the Raft leader at {addr} lists"),
        None => "the last membership this node applied lists".to_string(),
    };
    tracing::error!(
        leader = leader.unwrap_or("-"),
        "raft: this node was removed from the Raft group ({seen} it neither as voter nor as learner); \
         it does not rejoin by itself, whatever raft.partner_addrs says, and starts no elections. To bring it back run \
         `pgquorumctl members add NAME ADDR --voter`; to make it a new member instead, stop it and empty raft.data_dir"
    );
}

fn log_waiting(w: &Waiting) {
    if w.has_state {
        tracing::info!(
            silent = ?w.silent, other_scope = ?w.other_scope,
            "raft: this node has Raft state but is not a voter; waiting for a partner of a formed group to join through"
        );
    } else {
        tracing::info!(
            agreeing = ?w.agreeing, needed = w.needed, disagreeing = ?w.disagreeing, silent = ?w.silent,
            other_scope = ?w.other_scope,
            "raft: no partner belongs to a formed group and too few configured members are pristine with this node's member set; waiting before initialising"
        );
    }
}

/// Returns whether the node is now part of a group.
async fn initialize(node: &RaftNode, members: &BTreeSet<String>) -> bool {
    let nodes: BTreeMap<_, _> = members
        .iter()
        .map(|a| (node_id_for(a), BasicNode { addr: a.clone() }))
        .collect();
    match node.raft.initialize(nodes).await {
        Ok(()) => {
            tracing::info!(members = ?members, "raft: a majority of the configured members agreed and none had a formed group; initialised the group");
            true
        }
        Err(RaftError::APIError(InitializeError::NotAllowed(_))) => true,
        Err(e) => {
            tracing::error!(error = %e, "raft: initialising the group failed; retrying");
            false
        }
    }
}

/// Ask `via` (a member of a formed group) to make this node a voter. `Err` means retry.
async fn join_through(node: &RaftNode, via: &str) -> Result<(), ()> {
    let request = JoinRequest {
        scope: node.settings.cluster.clone(),
        name: node.settings.name.clone(),
        addr: node.settings.self_addr.trim().to_string(),
        forwarded: false,
    };
    tracing::info!(%via, "raft: a partner belongs to a formed group of our scope; asking it to add this node");
    let mut client = node.admin_client(via).map_err(|e| {
        tracing::error!(%via, error = %e, "raft: cannot ask the partner to add this node");
    })?;
    let wait = JOIN_FORWARD_TIMEOUT + Duration::from_secs(5);
    let mut req = tonic::Request::new(request);
    req.set_timeout(wait);
    let reply = match tokio::time::timeout(wait, client.join_cluster(req)).await {
        Ok(Ok(reply)) => reply.into_inner(),
        Ok(Err(status)) => {
            let e = super::wire_error::status_to_error(via, status);
            tracing::info!(%via, error = %e, "raft: join request failed; retrying");
            return Err(());
        }
        Err(_) => {
            tracing::info!(%via, "raft: no answer to the join request within {wait:?}; retrying");
            return Err(());
        }
    };
    match reply.outcome() {
        JoinOutcome::Voter => {
            let voters: BTreeSet<&str> = reply.voters.values().map(String::as_str).collect();
            tracing::info!(%via, voters = ?voters, "raft: joined the group as a voter");
            Ok(())
        }
        JoinOutcome::Busy => {
            tracing::info!(%via, detail = %reply.detail, "raft: the leader is busy with a membership change; retrying");
            Err(())
        }
        JoinOutcome::OtherScope => {
            tracing::warn!(%via, detail = %reply.detail, "raft: the partner refused us: it belongs to another scope");
            Err(())
        }
        JoinOutcome::NameTaken => {
            tracing::error!(%via, detail = %reply.detail, "raft: the group refused us: our name is taken");
            Err(())
        }
        JoinOutcome::Unspecified => {
            tracing::warn!(%via, "raft: the partner gave no join outcome; retrying");
            Err(())
        }
    }
}

/// The answer of every address in `addrs` (configured partners first, in configuration order), and the errors of those that did
/// not answer. A partner that refused us for belonging to another cluster answers with its scope.
async fn probe_partners(node: &RaftNode, addrs: &[String]) -> (Vec<(String, Answer)>, Vec<(String, String)>) {
    let probes = addrs.iter().map(|addr| async move {
        let addr = addr.clone();
        let answer = async {
            let mut client = node.admin_client(&addr).map_err(|e| e.to_string())?;
            let mut req = tonic::Request::new(NodeStatusRequest {});
            req.set_timeout(Duration::from_millis(500));
            let reply = tokio::time::timeout(Duration::from_millis(700), client.node_status(req))
                .await
                .map_err(|_| "no answer within 700ms".to_string())?;
            match reply {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    Ok(Answer::Status {
                        scope: reply.cluster,
                        initialized: reply.initialized,
                        configured: reply.configured_addrs.into_iter().collect(),
                        leader: reply.role == crate::node::status::LEADER_ROLE,
                        has_leader: reply.has_leader,
                        members: reply
                            .voters
                            .into_values()
                            .chain(reply.learners.into_values())
                            .collect(),
                    })
                }
                Err(status) => match (Refusal::of(&status), Refusal::their_scope(&status)) {
                    (Some(Refusal::ClusterMismatch), Some(scope)) => Ok(Answer::Status {
                        scope,
                        initialized: false,
                        configured: BTreeSet::new(),
                        leader: false,
                        has_leader: false,
                        members: BTreeSet::new(),
                    }),
                    _ => Err(describe(&status)),
                },
            }
        }
        .await;
        (addr, answer)
    });
    let mut answers = Vec::new();
    let mut failures = Vec::new();
    for (addr, answer) in futures::future::join_all(probes).await {
        match answer {
            Ok(answer) => answers.push((addr, answer)),
            Err(e) => {
                answers.push((addr.clone(), Answer::Silent));
                failures.push((addr, e));
            }
        }
    }
    (answers, failures)
}
