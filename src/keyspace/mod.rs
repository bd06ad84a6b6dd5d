//! The replicated cluster keyspace (the "DCS"): a small typed map applied deterministically
//! from the Raft log.
//!
//! # Determinism
//! `Keyspace::apply` reads nothing but its arguments: the log index and the leader's stamp
//! travel inside the log entry. The same log therefore produces the same keyspace on every
//! node, whatever its clock (proven by the property tests in `tests.rs`).
//!
//! # Time
//! The keyspace clock is the highest stamp applied so far (`as_of_ms`). A stamp lower than
//! that cannot move it backwards, so an expired key never comes back to life. The Raft leader
//! takes its stamps from [`KeyspaceClock`] (`clock.rs`): applied time continued on its
//! monotonic clock, so no wall clock, however wrong, moves lease time.

mod clock;
mod command;
mod key;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use clock::{KeyspaceClock, WallJump, WALL_JUMP_TOLERANCE};
pub use command::{Command, CommandOutcome, Precondition, Stamped};
pub use key::{Key, KeyError, MEMBERS_PREFIX};

/// The most `members/*` keys the keyspace holds: a write that would add one more is rejected
/// (the same on every node), so no caller can make every node store and re-persist an
/// unbounded member list. Far above any real cluster's size.
pub const MAX_MEMBER_KEYS: usize = 256;

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: Key,
    pub value: Value,
    /// Log index of the last write (the compare-and-set revision).
    pub revision: u64,
    /// Log index of the write that created the key.
    pub created_revision: u64,
    /// Keyspace time (leader-stamped ms) of the last write.
    pub updated_ms: u64,
    /// Keyspace time at which the key expires, for TTL keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// Lease holder, for keys written with `AcquireLease`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// The lease holder's address (`raft.self_addr`), when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_addr: Option<String>,
}

/// The whole keyspace. Serialises to the snapshot format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyspace {
    entries: BTreeMap<Key, Entry>,
    /// The keyspace clock: the highest leader stamp applied.
    as_of_ms: u64,
}

impl Keyspace {
    /// Apply one command committed at log `index`. Never fails: a failed precondition is an
    /// outcome, not an error, and is the same on every node.
    pub fn apply(&mut self, index: u64, stamped: &Stamped) -> CommandOutcome {
        self.as_of_ms = self.as_of_ms.max(stamped.now_ms);
        self.remove_expired();
        let now = self.as_of_ms;

        match &stamped.command {
            Command::Put {
                key,
                value,
                ttl_ms,
                precondition,
            } => {
                if let Err(rejected) = self.check(key, precondition) {
                    return rejected;
                }
                if let Err(rejected) = self.check_member_cap(key) {
                    return rejected;
                }
                // `initialize` holds "" while the bootstrap claim is pending, then the
                // system identifier, which is never overwritten.
                let settled = |e: &Entry| e.value.as_str() != Some("");
                if *key == Key::Initialize && self.entries.get(key).is_some_and(settled) {
                    return self.reject(key, "initialize is set once and never overwritten");
                }
                self.write(
                    index,
                    key,
                    value.clone(),
                    ttl_ms.map(|t| now.saturating_add(t)),
                    None,
                );
                CommandOutcome::Applied { revision: index }
            }
            Command::Delete { key, precondition } => {
                if let Err(rejected) = self.check(key, precondition) {
                    return rejected;
                }
                self.entries.remove(key);
                CommandOutcome::Applied { revision: index }
            }
            Command::AcquireLease {
                key,
                holder,
                holder_addr,
                value,
                ttl_ms,
            } => {
                if let Err(rejected) = self.check_holder(key, holder, holder_addr.as_deref(), true) {
                    return rejected;
                }
                // A renewal without an address (an older agent) keeps the one on record.
                let addr = holder_addr
                    .clone()
                    .or_else(|| self.entries.get(key).and_then(|e| e.holder_addr.clone()));
                if let Err(rejected) = self.check_member_cap(key) {
                    return rejected;
                }
                let expires = Some(now.saturating_add(*ttl_ms));
                self.write(index, key, value.clone(), expires, Some((holder.clone(), addr)));
                CommandOutcome::Applied { revision: index }
            }
            Command::ReleaseLease {
                key,
                holder,
                holder_addr,
            } => {
                if let Err(rejected) = self.check_holder(key, holder, holder_addr.as_deref(), false) {
                    return rejected;
                }
                self.entries.remove(key);
                CommandOutcome::Applied { revision: index }
            }
            Command::Expire => CommandOutcome::Applied { revision: index },
        }
    }

    pub fn get(&self, key: &Key) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Entries whose string key starts with `prefix`, in key order.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .values()
            .filter(move |e| e.key.to_string().starts_with(prefix))
    }

    /// The highest leader stamp applied (the keyspace's notion of now).
    pub fn as_of_ms(&self) -> u64 {
        self.as_of_ms
    }

    /// Earliest expiry among TTL keys, for the Raft leader's expiry timer.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.entries.values().filter_map(|e| e.expires_at_ms).min()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn check(&self, key: &Key, precondition: &Precondition) -> Result<(), CommandOutcome> {
        let current = self.entries.get(key);
        match (precondition, current) {
            (Precondition::Any, _) => Ok(()),
            (Precondition::Absent, None) => Ok(()),
            (Precondition::Absent, Some(_)) => Err(self.reject(key, "key exists")),
            (Precondition::Revision(want), Some(e)) if e.revision == *want => Ok(()),
            (Precondition::Revision(want), Some(e)) => {
                Err(self.reject(key, &format!("revision is {}, expected {want}", e.revision)))
            }
            (Precondition::Revision(want), None) => {
                Err(self.reject(key, &format!("key does not exist, expected revision {want}")))
            }
        }
    }

    /// Whether `holder` at `addr` may renew (`acquire`: a free key is fine too) or release
    /// the lease at `key`. The same name at another address is another agent.
    fn check_holder(
        &self,
        key: &Key,
        holder: &str,
        addr: Option<&str>,
        acquire: bool,
    ) -> Result<(), CommandOutcome> {
        let Some(e) = self.entries.get(key) else {
            return if acquire {
                Ok(())
            } else {
                Err(self.reject(key, "lease is not held"))
            };
        };
        match (e.holder.as_deref(), e.holder_addr.as_deref(), addr) {
            (Some(h), Some(held), Some(mine)) if h == holder && held != mine => Err(self.reject(
                key,
                &format!(
                    "lease is held by {h} at {held}, not by {holder} at {mine} (two agents share the name {holder})"
                ),
            )),
            (Some(h), ..) if h == holder => Ok(()),
            (Some(h), ..) if !acquire => Err(self.reject(key, &format!("lease is held by {h}, not {holder}"))),
            (Some(h), ..) => Err(self.reject(key, &format!("lease is held by {h}"))),
            (None, ..) => Err(self.reject(key, "lease is held by a non-lease write")),
        }
    }

    /// A new member key beyond [`MAX_MEMBER_KEYS`] is rejected; existing ones may be rewritten.
    fn check_member_cap(&self, key: &Key) -> Result<(), CommandOutcome> {
        if !matches!(key, Key::Member(_)) || self.entries.contains_key(key) {
            return Ok(());
        }
        let members = self
            .entries
            .keys()
            .filter(|k| matches!(k, Key::Member(_)))
            .count();
        if members >= MAX_MEMBER_KEYS {
            return Err(self.reject(
                key,
                &format!("the keyspace already holds {members} member keys (at most {MAX_MEMBER_KEYS})"),
            ));
        }
        Ok(())
    }

    fn reject(&self, key: &Key, reason: &str) -> CommandOutcome {
        CommandOutcome::Rejected {
            reason: format!("{key}: {reason}"),
            current: self.entries.get(key).cloned().map(Box::new),
        }
    }

    fn write(
        &mut self,
        index: u64,
        key: &Key,
        value: Value,
        expires_at_ms: Option<u64>,
        holder: Option<(String, Option<String>)>,
    ) {
        let (holder, holder_addr) = holder.unzip();
        let created_revision = self.entries.get(key).map_or(index, |e| e.created_revision);
        let entry = Entry {
            key: key.clone(),
            value,
            revision: index,
            created_revision,
            updated_ms: self.as_of_ms,
            expires_at_ms,
            holder,
            holder_addr: holder_addr.flatten(),
        };
        self.entries.insert(key.clone(), entry);
    }

    fn remove_expired(&mut self) {
        let now = self.as_of_ms;
        self.entries
            .retain(|_, e| e.expires_at_ms.is_none_or(|t| t > now));
    }
}
