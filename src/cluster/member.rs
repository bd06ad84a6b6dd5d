//! `members/<name>`: what each agent publishes about itself every loop (Patroni's member
//! fields, so scripts reading them keep working).

use serde::{Deserialize, Serialize};

use crate::config::{RaftTimings, Tags};

/// The PostgreSQL role of a member, in Patroni's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PgRole {
    Primary,
    Replica,
    #[default]
    Uninitialized,
    /// A role this agent does not know (written by a newer agent during a rolling upgrade):
    /// the member stays in the view instead of making the whole read fail.
    #[serde(other)]
    Unknown,
}

impl PgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PgRole::Primary => "primary",
            PgRole::Replica => "replica",
            PgRole::Uninitialized => "uninitialized",
            PgRole::Unknown => "unknown",
        }
    }
}

/// What the local PostgreSQL is doing, with Patroni's state names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum PgRunState {
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "streaming")]
    Streaming,
    #[default]
    #[serde(rename = "stopped")]
    Stopped,
    #[serde(rename = "starting")]
    Starting,
    #[serde(rename = "stopping")]
    Stopping,
    #[serde(rename = "restarting")]
    Restarting,
    #[serde(rename = "creating replica")]
    CreatingReplica,
    #[serde(rename = "initializing new cluster")]
    InitializingNewCluster,
    #[serde(rename = "start failed")]
    StartFailed,
    #[serde(rename = "crashed")]
    Crashed,
    /// A former primary checking / rewinding its timeline before it rejoins.
    #[serde(rename = "rewinding")]
    Rewinding,
    /// A pg_rewind failed after it began changing the data directory: left alone until
    /// `reinit` (src/ha/rewind_marker.rs).
    #[serde(rename = "rewind failed")]
    RewindFailed,
    /// PostgreSQL left running by its agent, which stopped in maintenance mode (the last
    /// record that agent wrote; src/ha/shutdown.rs): nothing fences or manages this server,
    /// so `resume` is refused while such a record stands. Not `up`: nobody waits on it.
    #[serde(rename = "running without agent")]
    Unattended,
    /// A state this agent does not know (written by a newer agent): not up.
    #[serde(other, rename = "unknown")]
    Unknown,
}

impl PgRunState {
    pub fn as_str(self) -> &'static str {
        match self {
            PgRunState::Running => "running",
            PgRunState::Streaming => "streaming",
            PgRunState::Stopped => "stopped",
            PgRunState::Starting => "starting",
            PgRunState::Stopping => "stopping",
            PgRunState::Restarting => "restarting",
            PgRunState::CreatingReplica => "creating replica",
            PgRunState::InitializingNewCluster => "initializing new cluster",
            PgRunState::StartFailed => "start failed",
            PgRunState::Crashed => "crashed",
            PgRunState::Rewinding => "rewinding",
            PgRunState::RewindFailed => "rewind failed",
            PgRunState::Unattended => "running without agent",
            PgRunState::Unknown => "unknown",
        }
    }

    /// PostgreSQL accepts connections in this state.
    pub fn is_up(self) -> bool {
        matches!(self, PgRunState::Running | PgRunState::Streaming)
    }
}

/// The value of `members/<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct MemberStatus {
    pub name: String,
    pub role: PgRole,
    pub state: PgRunState,
    /// `postgres://host:port/postgres` (no credentials), as Patroni publishes it.
    pub conn_url: Option<String>,
    /// `http://host:port/patroni`.
    pub api_url: Option<String>,
    /// The agent's gRPC address (`raft.self_addr`): where other agents ask for fresh figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_addr: Option<String>,
    /// Where operators reach this agent's admin service when it has `raft.admin_listen` (the
    /// peer port then refuses them): pgquorumctl dials it for this member's reload, restart and
    /// reinit. Absent without an admin listener and in keys of older agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_addr: Option<String>,
    /// PostgreSQL host and port clients use (`postgresql.connect_address`).
    pub host: Option<String>,
    pub port: Option<u16>,
    pub timeline: Option<u64>,
    /// On a primary: its current WAL write position; on a replica: last received position.
    pub received_lsn: Option<u64>,
    /// On a replica: last replayed position.
    pub replayed_lsn: Option<u64>,
    /// On a primary: `pg_current_wal_lsn()`.
    pub wal_lsn: Option<u64>,
    /// Name of the member this replica streams from, when it streams.
    pub replicating_from: Option<String>,
    pub tags: Tags,
    /// Parameters changed that need a PostgreSQL restart.
    pub pending_restart: bool,
    /// The agent version.
    pub version: String,
    /// PostgreSQL server version number (`server_version_num`).
    pub server_version: Option<u32>,
    /// Database system identifier of the local data directory.
    pub system_identifier: Option<String>,
    /// The agent's Raft timings and clock-skew bound: `config` edits must leave a `ttl` they
    /// fit (src/config/guard.rs). Absent in keys of older agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raft_timings: Option<RaftTimings>,
    /// A primary whose commits wait for a synchronous standby that is not there, and why
    /// (src/ha/sync_standby.rs): shown by `pgquorumctl list`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes_blocked: Option<String>,
}

impl MemberStatus {
    /// The WAL position that ranks a member in a failover: what it has received.
    pub fn wal_position(&self) -> Option<u64> {
        self.wal_lsn.or(self.received_lsn).or(self.replayed_lsn)
    }
}
