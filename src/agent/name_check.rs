//! Before anything is touched: is another agent running under this agent's `name`?
//!
//! Two agents that share a name would publish over each other's member key, and each could
//! take the other's lease as its own (the keyspace tells them apart by address for the lease
//! itself: `Command::AcquireLease::holder_addr`). So an agent asks its partners for
//! `members/<name>` before it opens its Raft storage or PostgreSQL, and refuses to start
//! when that key names another `raft.self_addr` and was updated within `ttl` on keyspace
//! time (a live agent republishes it every loop). The same agent restarting (same address),
//! a stale key (the other agent is gone, or this member moved), or no partner answering (a
//! cluster starting, or this agent alone) lets it start.

use std::time::Duration;

use futures::future::join_all;

use crate::cluster::MemberStatus;
use crate::config::{Config, DynamicConfig};
use crate::grpc::pb::admin::admin_client::AdminClient;
use crate::grpc::pb::admin::{NodeStatusRequest, ReadRequest};
use crate::keyspace::{Entry, Key};

const STATUS_TIMEOUT: Duration = Duration::from_millis(700);
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// What the keyspace says about this agent's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No member key under the name.
    Free,
    /// The key is this agent's own (same address): a restart.
    Mine,
    /// Another address, but not updated within `ttl`: that agent is gone.
    Stale { addr: String, age_ms: u64 },
    /// The key gives no address (an older agent) or does not decode: cannot tell.
    Unknown,
    /// Another agent at `addr` updated it `age_ms` ago (within `ttl`).
    InUse { addr: String, age_ms: u64 },
}

/// Judge `members/<name>` (`member`) read at keyspace time `as_of_ms`.
pub fn judge(member: Option<&Entry>, as_of_ms: u64, ttl_ms: u64, my_addr: &str) -> Verdict {
    let Some(entry) = member else {
        return Verdict::Free;
    };
    let Some(addr) = serde_json::from_value::<MemberStatus>(entry.value.clone())
        .ok()
        .and_then(|m| m.raft_addr)
    else {
        return Verdict::Unknown;
    };
    if addr.trim() == my_addr.trim() {
        return Verdict::Mine;
    }
    let age_ms = as_of_ms.saturating_sub(entry.updated_ms);
    if age_ms <= ttl_ms {
        Verdict::InUse { addr, age_ms }
    } else {
        Verdict::Stale { addr, age_ms }
    }
}

/// Another agent runs under this agent's name.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error(
    "another agent named {name} is running at {addr} (its member key members/{name} was updated {age_ms} ms \
     ago, within ttl {ttl_ms} ms): two agents must not share a name. Give this agent its own `name`, or \
     stop the other one first; this agent has touched neither its Raft storage nor PostgreSQL"
)]
pub struct NameInUse {
    pub name: String,
    pub addr: String,
    pub age_ms: u64,
    pub ttl_ms: u64,
}

/// Ask the partners (those that belong to a formed group) for the keyspace and judge this
/// agent's name. `Ok` when it may start.
pub async fn check(config: &Config) -> Result<(), NameInUse> {
    let partners = config.raft.other_partners();
    let reads = join_all(partners.iter().map(|addr| read_from(addr))).await;
    let Some((entries, as_of_ms)) = reads.into_iter().flatten().next() else {
        tracing::debug!(
            "no partner of a formed group answered: not checking whether another agent uses my name"
        );
        return Ok(());
    };
    let find = |key: &Key| entries.iter().find(|e| e.key == *key);
    let ttl_ms = find(&Key::Config)
        .and_then(|e| serde_json::from_value::<DynamicConfig>(e.value.clone()).ok())
        .unwrap_or_else(|| config.bootstrap.dcs.clone())
        .ttl_ms();
    let member = find(&Key::Member(config.name.clone()));
    match judge(member, as_of_ms, ttl_ms, config.raft.self_addr.trim()) {
        Verdict::InUse { addr, age_ms } => Err(NameInUse {
            name: config.name.clone(),
            addr,
            age_ms,
            ttl_ms,
        }),
        Verdict::Stale { addr, age_ms } => {
            tracing::info!(
                "members/{} names {addr}, but was last updated {age_ms} ms ago (over ttl): that agent is gone; starting",
                config.name
            );
            Ok(())
        }
        Verdict::Unknown => {
            tracing::warn!(
                "members/{} gives no address: cannot tell whether another agent uses my name; starting",
                config.name
            );
            Ok(())
        }
        Verdict::Free | Verdict::Mine => Ok(()),
    }
}

/// The whole keyspace from `addr`, when it belongs to a formed group and answers in time: its
/// own copy (not a linearizable read), so a group still electing a leader — every agent of a
/// whole-cluster restart — answers at once instead of holding this start-up; the age of the
/// member key is judged against that copy's own keyspace time.
async fn read_from(addr: &str) -> Option<(Vec<Entry>, u64)> {
    let channel = crate::grpc::process_channel(addr, Duration::from_millis(500)).ok()?;
    let mut client = AdminClient::new(channel);
    let mut req = tonic::Request::new(NodeStatusRequest {});
    req.set_timeout(STATUS_TIMEOUT);
    let status = tokio::time::timeout(STATUS_TIMEOUT, client.node_status(req))
        .await
        .ok()?
        .ok()?
        .into_inner();
    if !status.initialized {
        return None;
    }
    let mut req = tonic::Request::new(ReadRequest {
        key: String::new(),
        prefix: true,
        linearizable: false,
        forwarded: false,
    });
    req.set_timeout(READ_TIMEOUT);
    let reply = tokio::time::timeout(READ_TIMEOUT, client.read(req))
        .await
        .ok()?
        .ok()?
        .into_inner();
    let entries = reply
        .entries
        .iter()
        .filter_map(|b| serde_json::from_slice::<Entry>(b).ok())
        .collect();
    Some((entries, reply.as_of_ms))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn member(addr: Option<&str>, updated_ms: u64) -> Entry {
        Entry {
            key: Key::Member("node1".into()),
            value: json!({"name": "node1", "raft_addr": addr}),
            revision: 1,
            created_revision: 1,
            updated_ms,
            expires_at_ms: None,
            holder: None,
            holder_addr: None,
        }
    }

    #[test]
    fn verdict_table() {
        let ttl = 10_000;
        let now = 100_000;
        let rows: Vec<(&str, Option<Entry>, Verdict)> = vec![
            ("no member key", None, Verdict::Free),
            (
                "my own key: a restart",
                Some(member(Some("a:1"), now - 1_000)),
                Verdict::Mine,
            ),
            (
                "my own key, stale: still a restart",
                Some(member(Some("a:1"), 0)),
                Verdict::Mine,
            ),
            (
                "another address updated 1 s ago: in use",
                Some(member(Some("b:1"), now - 1_000)),
                Verdict::InUse {
                    addr: "b:1".into(),
                    age_ms: 1_000,
                },
            ),
            (
                "another address updated exactly ttl ago: in use",
                Some(member(Some("b:1"), now - ttl)),
                Verdict::InUse {
                    addr: "b:1".into(),
                    age_ms: ttl,
                },
            ),
            (
                "another address, not updated for over ttl: gone",
                Some(member(Some("b:1"), now - ttl - 1)),
                Verdict::Stale {
                    addr: "b:1".into(),
                    age_ms: ttl + 1,
                },
            ),
            (
                "an older agent's key without an address",
                Some(member(None, now)),
                Verdict::Unknown,
            ),
        ];
        for (name, entry, want) in rows {
            assert_eq!(judge(entry.as_ref(), now, ttl, "a:1"), want, "{name}");
        }
    }

    #[test]
    fn the_refusal_names_the_other_agent_and_what_to_do() {
        let e = NameInUse {
            name: "node1".into(),
            addr: "127.0.0.1:2401".into(),
            age_ms: 420,
            ttl_ms: 10_000,
        };
        let text = e.to_string();
        for part in [
            "another agent named node1 is running at 127.0.0.1:2401",
            "within ttl 10000 ms",
            "own `name`",
        ] {
            assert!(text.contains(part), "{text}");
        }
    }
}
