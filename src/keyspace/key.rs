//! The typed keys of the replicated keyspace (names as in Patroni's DCS so operators
//! recognise them).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One key of the cluster keyspace. The string form (`leader`, `members/node1`) is what
/// operators type (`pgquorumctl get members/node1`) and what the state machine orders by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Key {
    /// The database system identifier; set once by the node that won the bootstrap race.
    Initialize,
    /// The primary's lease: holder name and expiry.
    Leader,
    /// One member's published state (role, LSNs, urls, tags); expires when not refreshed.
    Member(String),
    /// Dynamic, cluster-wide configuration.
    Config,
    /// Synchronous standbys made durable by the primary.
    Sync,
    /// The primary's last WAL position and slot positions.
    Status,
    /// Timeline history.
    History,
    /// A scheduled switchover / manual failover request.
    Failover,
    /// A witness (`pgquorum-controller`): a Raft voter that is never a PostgreSQL member.
    /// Kept apart from `members/` so that nothing that reads members (the HA loop's
    /// candidates, `list`'s rows, Patroni's `/cluster`) can ever take it for one.
    Witness(String),
}

pub const MEMBERS_PREFIX: &str = "members/";
pub const WITNESSES_PREFIX: &str = "witnesses/";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("unknown key {0:?}: expected one of initialize, leader, members/<name>, config, sync, status, history, failover, witnesses/<name>")]
    Unknown(String),
    #[error("invalid member name {0:?}: it must be non-empty and must not contain '/' or whitespace")]
    BadMemberName(String),
}

impl Key {
    pub fn member(name: &str) -> Result<Key, KeyError> {
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
            return Err(KeyError::BadMemberName(name.to_string()));
        }
        Ok(Key::Member(name.to_string()))
    }

    /// A witness's key; its name follows the member name rules.
    pub fn witness(name: &str) -> Result<Key, KeyError> {
        match Key::member(name)? {
            Key::Member(name) => Ok(Key::Witness(name)),
            _ => unreachable!("Key::member returns a member key"),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Initialize => f.write_str("initialize"),
            Key::Leader => f.write_str("leader"),
            Key::Member(name) => write!(f, "{MEMBERS_PREFIX}{name}"),
            Key::Config => f.write_str("config"),
            Key::Sync => f.write_str("sync"),
            Key::Status => f.write_str("status"),
            Key::History => f.write_str("history"),
            Key::Failover => f.write_str("failover"),
            Key::Witness(name) => write!(f, "{WITNESSES_PREFIX}{name}"),
        }
    }
}

impl FromStr for Key {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "initialize" => Ok(Key::Initialize),
            "leader" => Ok(Key::Leader),
            "config" => Ok(Key::Config),
            "sync" => Ok(Key::Sync),
            "status" => Ok(Key::Status),
            "history" => Ok(Key::History),
            "failover" => Ok(Key::Failover),
            _ => match (s.strip_prefix(MEMBERS_PREFIX), s.strip_prefix(WITNESSES_PREFIX)) {
                (Some(name), _) => Key::member(name),
                (_, Some(name)) => Key::witness(name),
                _ => Err(KeyError::Unknown(s.to_string())),
            },
        }
    }
}

impl TryFrom<String> for Key {
    type Error = KeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Key> for String {
    fn from(k: Key) -> String {
        k.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_string_form() {
        for k in [
            Key::Initialize,
            Key::Leader,
            Key::Member("node1".into()),
            Key::Config,
            Key::Sync,
            Key::Status,
            Key::History,
            Key::Failover,
            Key::Witness("w1".into()),
        ] {
            assert_eq!(k.to_string().parse::<Key>().unwrap(), k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(serde_json::from_str::<Key>(&json).unwrap(), k);
        }
    }

    #[test]
    fn bad_keys_are_rejected_with_a_reason() {
        assert_eq!("leaders".parse::<Key>(), Err(KeyError::Unknown("leaders".into())));
        assert_eq!("members/".parse::<Key>(), Err(KeyError::BadMemberName("".into())));
        assert_eq!(
            "members/a/b".parse::<Key>(),
            Err(KeyError::BadMemberName("a/b".into()))
        );
        assert_eq!(
            "witnesses/".parse::<Key>(),
            Err(KeyError::BadMemberName("".into()))
        );
    }
}
