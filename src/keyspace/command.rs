//! The commands that change the keyspace, and what applying one produced.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::key::Key;
use super::Entry;

/// A condition the current entry must meet for a write to apply (compare-and-set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Precondition {
    /// Apply whatever is there.
    #[default]
    Any,
    /// Apply only if the key does not exist (or has expired).
    Absent,
    /// Apply only if the key exists with exactly this revision.
    Revision(u64),
}

/// One change to the keyspace, as proposed by a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// Write `value` at `key`; with `ttl_ms` the key expires that long after the leader's
    /// stamp on this command unless written again.
    Put {
        key: Key,
        value: Value,
        #[serde(default)]
        ttl_ms: Option<u64>,
        #[serde(default)]
        precondition: Precondition,
    },
    /// Remove `key`.
    Delete {
        key: Key,
        #[serde(default)]
        precondition: Precondition,
    },
    /// Take or renew a lease: applies when the key is free (absent or expired) or already
    /// held by `holder`. This is how the `leader` key is acquired and renewed.
    AcquireLease {
        key: Key,
        holder: String,
        /// The holder's identity beyond its name (its `raft.self_addr`): a lease taken with
        /// one is renewed or released only with the same, so two agents that share a `name`
        /// cannot both hold it. Absent in commands of older versions (then not checked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder_addr: Option<String>,
        value: Value,
        ttl_ms: u64,
    },
    /// Give up a lease held by `holder` (at `holder_addr`); does nothing if someone else
    /// holds it.
    ReleaseLease {
        key: Key,
        holder: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holder_addr: Option<String>,
    },
    /// Housekeeping proposed by the Raft leader: removes entries whose expiry has passed
    /// by this command's stamp. Applying any command does the same first; this one exists
    /// so keys expire even when nobody writes.
    Expire,
}

impl Command {
    /// The key a command touches, for logging.
    pub fn key(&self) -> Option<&Key> {
        match self {
            Command::Put { key, .. }
            | Command::Delete { key, .. }
            | Command::AcquireLease { key, .. }
            | Command::ReleaseLease { key, .. } => Some(key),
            Command::Expire => None,
        }
    }
}

/// The payload of a Raft log entry: a command plus the keyspace time the Raft leader
/// stamped on it when it was proposed. TTLs are judged against these stamps only, so every
/// node applies the same log to the same state whatever its own clock says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// Keyspace time in milliseconds on the proposing Raft leader ([`super::KeyspaceClock`]:
    /// started at the Unix epoch time of the first stamp, then continued on monotonic clocks;
    /// entries written by older versions carry the leader's wall clock, and apply the same).
    pub now_ms: u64,
    pub command: Command,
}

impl std::fmt::Display for Stamped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match &self.command {
            Command::Put { .. } => "put",
            Command::Delete { .. } => "delete",
            Command::AcquireLease { .. } => "acquire_lease",
            Command::ReleaseLease { .. } => "release_lease",
            Command::Expire => "expire",
        };
        match self.command.key() {
            Some(k) => write!(f, "{op} {k} @{}", self.now_ms),
            None => write!(f, "{op} @{}", self.now_ms),
        }
    }
}

/// What applying a command did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CommandOutcome {
    /// The change was made; `revision` is the new revision of the key (the log index).
    Applied { revision: u64 },
    /// A precondition failed; nothing changed. `current` is the entry that made it fail.
    Rejected {
        reason: String,
        current: Option<Box<Entry>>,
    },
}

impl CommandOutcome {
    pub fn is_applied(&self) -> bool {
        matches!(self, CommandOutcome::Applied { .. })
    }
}
