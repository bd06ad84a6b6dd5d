//! The bootstrap claim: who may initialise a new cluster, and how a claim that nobody
//! finishes is recovered. Pure: the commands the executor sends and how a read is judged.
//!
//! The member that wins the race takes `initialize` as a *lease* (`AcquireLease` with its
//! name and `raft.self_addr`, value `""`) that expires [`CLAIM_TTLS`] × `ttl` after it was
//! last taken, on keyspace time. So:
//! - a claim whose reply was lost (it applied, the claimer heard a timeout) is recognised by
//!   its claimer on the next cycle, which takes it again and bootstraps;
//! - the claimer takes it again every cycle while initdb and the first start run, and once
//!   more just before it publishes the system identifier;
//! - a claim nobody refreshes (the claimer died, was cut off, or restarted with a half-made
//!   data directory) expires, and another member may bootstrap;
//! - the system identifier is published with a compare-and-set on the claim's revision, as
//!   a plain write: it never expires, and no lease command can take it over (the keyspace
//!   refuses `AcquireLease` on a key written without a lease), so once published nobody
//!   ever bootstraps a second cluster.
//!
//! A `""` written by an older agent (a plain write) carries no identity and never expires:
//! its claimer finishes it or an operator removes it (as before).

use crate::cluster::ClusterView;
use crate::keyspace::{Command, Key, Precondition};

/// A claim not taken again for this many `ttl`s expires. Three: the claimer refreshes it
/// every loop (`loop_wait` < `ttl`), so it survives a couple of slow keyspace writes
/// (`retry_timeout` each) and a Raft election without being lost, while a dead claimer holds
/// the cluster up for only 7.5 s at pgquorum's default `ttl` (2.5 s; 90 s at Patroni's 30).
pub const CLAIM_TTLS: u64 = 3;

/// How long a claim lasts, from the claimer's `ttl` (ms).
pub fn claim_ttl_ms(ttl_ms: u64) -> u64 {
    ttl_ms.saturating_mul(CLAIM_TTLS)
}

/// Take the claim, or take it again (it applies when `initialize` is free or the claim is
/// already ours, name and address).
pub fn claim(name: &str, addr: &str, ttl_ms: u64) -> Command {
    Command::AcquireLease {
        key: Key::Initialize,
        holder: name.to_string(),
        holder_addr: Some(addr.to_string()),
        value: serde_json::json!(""),
        ttl_ms: claim_ttl_ms(ttl_ms),
    }
}

/// Give the claim back (it does nothing when the claim is not ours).
pub fn release(name: &str, addr: &str) -> Command {
    Command::ReleaseLease {
        key: Key::Initialize,
        holder: name.to_string(),
        holder_addr: Some(addr.to_string()),
    }
}

/// Publish the system identifier under the claim taken at `revision`: a plain write, so it
/// never expires and no lease command can take it.
pub fn publish(system_identifier: &str, revision: u64) -> Command {
    Command::Put {
        key: Key::Initialize,
        value: serde_json::json!(system_identifier),
        ttl_ms: None,
        precondition: Precondition::Revision(revision),
    }
}

/// Where the bootstrap stands, as one read shows it to the member `me` at `my_addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimState<'a> {
    /// Nobody claimed (or the last claim expired).
    Free,
    /// The claim is ours.
    Mine,
    /// Another member's claim (or an agent sharing our name at another address).
    Other { holder: &'a str, addr: Option<&'a str> },
    /// A claim without an identity (written by an older agent): only its claimer finishes it.
    Anonymous,
    /// The cluster's system identifier is published.
    Published(&'a str),
}

pub fn state<'a>(cluster: &'a ClusterView, me: &str, my_addr: &str) -> ClaimState<'a> {
    match cluster.initialize.as_deref() {
        None => ClaimState::Free,
        Some("") => match &cluster.bootstrap_claim {
            None => ClaimState::Anonymous,
            Some(c) if c.holder == me && c.holder_addr.as_deref().is_none_or(|a| a == my_addr) => {
                ClaimState::Mine
            }
            Some(c) => ClaimState::Other {
                holder: &c.holder,
                addr: c.holder_addr.as_deref(),
            },
        },
        Some(sysid) => ClaimState::Published(sysid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::BootstrapClaim;
    use crate::keyspace::{CommandOutcome, Keyspace, Stamped};

    fn view(initialize: Option<&str>, claim: Option<(&str, &str)>) -> ClusterView {
        ClusterView {
            initialize: initialize.map(str::to_string),
            bootstrap_claim: claim.map(|(h, a)| BootstrapClaim {
                holder: h.into(),
                holder_addr: Some(a.into()),
                revision: 3,
                expires_at_ms: Some(30_000),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn claim_state_table() {
        let rows: Vec<(&str, ClusterView, ClaimState<'static>)> = vec![
            ("no initialize key", view(None, None), ClaimState::Free),
            (
                "my claim (name and address)",
                view(Some(""), Some(("node1", "a:1"))),
                ClaimState::Mine,
            ),
            (
                "another member's claim",
                view(Some(""), Some(("node2", "b:1"))),
                ClaimState::Other {
                    holder: "node2",
                    addr: Some("b:1"),
                },
            ),
            (
                "my name at another address: not mine",
                view(Some(""), Some(("node1", "c:1"))),
                ClaimState::Other {
                    holder: "node1",
                    addr: Some("c:1"),
                },
            ),
            (
                "an older agent's claim",
                view(Some(""), None),
                ClaimState::Anonymous,
            ),
            (
                "published",
                view(Some("7301"), None),
                ClaimState::Published("7301"),
            ),
        ];
        for (name, v, want) in rows {
            assert_eq!(state(&v, "node1", "a:1"), want, "{name}");
        }
    }

    fn apply(ks: &mut Keyspace, index: u64, now_ms: u64, command: Command) -> CommandOutcome {
        ks.apply(index, &Stamped { now_ms, command })
    }

    /// The claim's life in the keyspace itself: retaken by its claimer, refused to others,
    /// expired when not refreshed, and never taken over once the system identifier is out.
    #[test]
    fn the_claim_in_the_keyspace() {
        let mut ks = Keyspace::default();
        let ttl = 10_000;
        let first = apply(&mut ks, 1, 1_000, claim("node1", "a:1", ttl));
        assert_eq!(first, CommandOutcome::Applied { revision: 1 });
        // The reply was lost: node1 takes it again (same name and address) and learns the revision.
        assert!(apply(&mut ks, 2, 2_000, claim("node1", "a:1", ttl)).is_applied());
        assert!(!apply(&mut ks, 3, 3_000, claim("node2", "b:1", ttl)).is_applied());
        assert!(
            !apply(&mut ks, 4, 3_000, claim("node1", "c:1", ttl)).is_applied(),
            "my name at another address"
        );
        // Not refreshed for 3 × ttl after the last take (2 000 + 30 000): node2 may claim.
        assert!(!apply(&mut ks, 5, 31_999, claim("node2", "b:1", ttl)).is_applied());
        let taken = apply(&mut ks, 6, 32_000, claim("node2", "b:1", ttl));
        assert_eq!(taken, CommandOutcome::Applied { revision: 6 });
        // node1's late publication under its old revision is refused.
        assert!(!apply(&mut ks, 7, 32_100, publish("7301", 2)).is_applied());
        assert!(apply(&mut ks, 8, 32_200, publish("7302", 6)).is_applied());
        // Published: no expiry, no lease command takes it, no claim, no second publication.
        let e = ks.get(&Key::Initialize).unwrap();
        assert_eq!(
            (e.value.as_str(), e.expires_at_ms, e.holder.as_deref()),
            (Some("7302"), None, None)
        );
        assert!(!apply(&mut ks, 9, 10_000_000, claim("node1", "a:1", ttl)).is_applied());
        assert!(!apply(&mut ks, 10, 10_000_000, claim("node2", "b:1", ttl)).is_applied());
        assert!(!apply(&mut ks, 11, 10_000_000, release("node2", "b:1")).is_applied());
        assert!(!apply(&mut ks, 12, 10_000_000, publish("7303", 8)).is_applied());
        assert_eq!(ks.get(&Key::Initialize).unwrap().value.as_str(), Some("7302"));
    }

    #[test]
    fn a_released_claim_is_free_at_once() {
        let mut ks = Keyspace::default();
        assert!(apply(&mut ks, 1, 1_000, claim("node1", "a:1", 10_000)).is_applied());
        assert!(
            !apply(&mut ks, 2, 1_100, release("node2", "b:1")).is_applied(),
            "not theirs"
        );
        assert!(apply(&mut ks, 3, 1_200, release("node1", "a:1")).is_applied());
        assert!(apply(&mut ks, 4, 1_300, claim("node2", "b:1", 10_000)).is_applied());
    }
}
