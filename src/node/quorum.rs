//! Whether a majority of the Raft voters can be reached, and if not, which voters cannot, in
//! plain words. Pure: built from a `raft status` answer, shown by the agent's log, REST
//! (`/patroni`, `/metrics`), the controller's `/metrics` and `pgquorumctl list`.
//!
//! Without a majority no keyspace write commits, so no member can take or keep the leader
//! lease and nothing is promoted: in 2 data nodes + 1 witness, losing the witness and the
//! primary's node leaves the survivor here (docs/witness.md).

use std::fmt;

use serde::Serialize;

use crate::grpc::pb::admin::RaftStatusReply;

/// One voter as seen from the node that asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoterSeen {
    /// Empty when neither its answer nor the keyspace names it.
    pub name: String,
    pub addr: String,
    pub witness: bool,
    pub reachable: bool,
}

impl fmt::Display for VoterSeen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.witness, self.name.is_empty()) {
            (true, true) => write!(f, "witness at {}", self.addr),
            (true, false) => write!(f, "witness {} at {}", self.name, self.addr),
            (false, true) => write!(f, "voter at {}", self.addr),
            (false, false) => write!(f, "{} at {}", self.name, self.addr),
        }
    }
}

/// Fewer voters reachable than a majority: why the keyspace (and so failover) is stuck.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumLoss {
    /// The node that looked.
    pub seen_from: String,
    pub voters: Vec<VoterSeen>,
}

impl QuorumLoss {
    /// `Some` when fewer than a majority of `voters` are reachable.
    pub fn assess(seen_from: &str, voters: Vec<VoterSeen>) -> Option<QuorumLoss> {
        let loss = QuorumLoss {
            seen_from: seen_from.to_string(),
            voters,
        };
        (!loss.voters.is_empty() && loss.reachable() < loss.needed()).then_some(loss)
    }

    /// From a `raft status` answer: its voters, reachable when they answered.
    pub fn from_raft_status(seen_from: &str, reply: &RaftStatusReply) -> Option<QuorumLoss> {
        let voters = reply
            .members
            .iter()
            .filter(|m| m.voter)
            .map(|m| VoterSeen {
                name: m.name.clone(),
                addr: m.addr.clone(),
                witness: m.witness,
                reachable: m.status.is_some(),
            })
            .collect();
        Self::assess(seen_from, voters)
    }

    pub fn reachable(&self) -> usize {
        self.voters.iter().filter(|v| v.reachable).count()
    }

    pub fn needed(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn unreachable(&self) -> impl Iterator<Item = &VoterSeen> {
        self.voters.iter().filter(|v| !v.reachable)
    }
}

impl fmt::Display for QuorumLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unreachable: Vec<String> = self.unreachable().map(ToString::to_string).collect();
        write!(
            f,
            "no quorum of Raft voters reachable from {}: {} of {} voters answer, {} are needed; unreachable: {}. \
             Nothing can be written to the keyspace, so no member can take the leader lease or be promoted \
             until a majority of voters is back",
            self.seen_from,
            self.reachable(),
            self.voters.len(),
            self.needed(),
            unreachable.join(", ")
        )
    }
}

/// Whether this node is in touch with a working Raft leader, so no quorum check is needed:
/// another node leads, or this node leads and a majority acknowledged it within `recent_ms`.
/// A leader cut off from the others keeps its role (openraft has no check-quorum step-down),
/// so its own lead proves nothing once the acknowledgements stop.
pub fn leader_in_touch(
    me: u64,
    leader: Option<u64>,
    millis_since_quorum_ack: Option<u64>,
    recent_ms: u64,
) -> bool {
    match leader {
        Some(id) if id == me => millis_since_quorum_ack.is_some_and(|ms| ms <= recent_ms),
        Some(_) => true,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    /// A leader whose followers stopped acknowledging it is not in touch (the survivor of a
    /// 2 + 1 cluster can be the Raft leader when the other two die).
    #[test]
    fn a_leader_without_recent_acknowledgements_is_not_in_touch() {
        use super::leader_in_touch;
        let rows = [
            ("another node leads", Some(2), None, true),
            ("no leader known", None, None, false),
            ("I lead, acknowledged 100 ms ago", Some(1), Some(100), true),
            ("I lead, last acknowledged 5 s ago", Some(1), Some(5_000), false),
            ("I lead, never acknowledged", Some(1), None, false),
        ];
        for (name, leader, ack, want) in rows {
            assert_eq!(leader_in_touch(1, leader, ack, 1_000), want, "{name}");
        }
    }

    use super::*;

    fn voter(name: &str, witness: bool, reachable: bool) -> VoterSeen {
        VoterSeen {
            name: name.into(),
            addr: format!("{name}:5000"),
            witness,
            reachable,
        }
    }

    #[test]
    fn a_majority_is_a_quorum_and_less_is_a_loss_naming_who_is_missing() {
        let rows: &[(&[bool], bool)] = &[
            (&[true, true, true], false),
            (&[true, true, false], false),
            (&[true, false, false], true),
            (&[false, false, false], true),
            (&[true, true, false, false], true),
            (&[true, true, true, false, false], false),
        ];
        for (reach, lost) in rows {
            let voters = reach
                .iter()
                .enumerate()
                .map(|(i, r)| voter(&format!("n{i}"), false, *r))
                .collect();
            assert_eq!(QuorumLoss::assess("n0", voters).is_some(), *lost, "{reach:?}");
        }
        assert_eq!(QuorumLoss::assess("n0", vec![]), None);
    }

    #[test]
    fn the_words_name_the_unreachable_voters_and_the_witness() {
        let loss = QuorumLoss::assess(
            "node2",
            vec![
                voter("node1", false, false),
                voter("node2", false, true),
                voter("w", true, false),
            ],
        )
        .expect("1 of 3 is no quorum");
        let text = loss.to_string();
        assert!(
            text.starts_with(
                "no quorum of Raft voters reachable from node2: 1 of 3 voters answer, 2 are needed; \
                 unreachable: node1 at node1:5000, witness w at w:5000."
            ),
            "{text}"
        );
        assert!(
            text.contains("no member can take the leader lease or be promoted"),
            "{text}"
        );
    }
}
