//! The one error type of the PostgreSQL toolbox. Every variant's message is written for an
//! operator reading the agent's log: it names the path, port, user or program involved and,
//! where PostgreSQL said why, PostgreSQL's own words.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The configuration cannot describe a usable PostgreSQL (missing data_dir, bad listen …).
    #[error("postgresql settings: {0}")]
    Settings(String),

    #[error("OS user {user}: {reason}")]
    OsUser { user: String, reason: String },

    #[error("{program} not found in {dir} (set postgresql.bin_dir to the directory holding the PostgreSQL programs)")]
    ProgramMissing { program: String, dir: PathBuf },

    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// initdb or a base backup was asked to write into a directory that holds something.
    #[error("{operation} refused: {path} is not empty")]
    DataDirNotEmpty { operation: &'static str, path: PathBuf },

    /// The operation needs an initialised data directory.
    #[error("{path} is not an initialised PostgreSQL data directory ({reason})")]
    NotInitialized { path: PathBuf, reason: String },

    #[error("data directory {path} is not writable by OS user {user} (check the owner and mode of it and of its parent directories)")]
    NotWritable { path: PathBuf, user: String },

    #[error("data directory {path} is owned by uid {owner}, not by OS user {user} (uid {uid}); PostgreSQL refuses to use it")]
    WrongOwner {
        path: PathBuf,
        owner: u32,
        user: String,
        uid: u32,
    },

    #[error("pg_controldata {path} failed: {detail}")]
    ControlData { path: PathBuf, detail: String },

    /// A PostgreSQL program exited with an error; `detail` is its last meaningful output line.
    #[error("{program} failed: {detail}")]
    ToolFailed { program: String, detail: String },

    #[error("cannot start PostgreSQL on {address}: port in use ({detail})")]
    PortInUse { address: String, detail: String },

    #[error("PostgreSQL failed to start: {detail} (see {log})")]
    StartFailed { detail: String, log: PathBuf },

    #[error("PostgreSQL did not {action} within {seconds} s (see {log})")]
    Timeout {
        action: &'static str,
        seconds: u64,
        log: PathBuf,
    },

    #[error("PostgreSQL is not running (data directory {path})")]
    NotRunning { path: PathBuf },

    #[error("promote refused: PostgreSQL is not a standby")]
    NotStandby,

    #[error("{operation} needs a primary, but PostgreSQL is in recovery")]
    InRecovery { operation: &'static str },

    /// SQLSTATE 28P01: the server checked a password and it did not match.
    #[error("wrong password for user {user}")]
    WrongPassword { user: String },

    /// The server refused the login for another reason (no pg_hba.conf entry, role missing …).
    #[error("PostgreSQL at {address} rejected user {user}: {message}")]
    LoginRejected {
        address: String,
        user: String,
        message: String,
    },

    /// SQLSTATE 57P03: the server is up but starting, shutting down or not yet consistent.
    #[error("PostgreSQL at {address} does not accept connections yet: {message}")]
    NotAcceptingConnections { address: String, message: String },

    #[error("cannot connect to PostgreSQL at {address}: {message}")]
    Connect { address: String, message: String },

    #[error("query failed: {message} (SQL: {sql})")]
    Query { sql: String, message: String },

    #[error("pg_basebackup from {source_addr} failed: {detail}")]
    Basebackup { source_addr: String, detail: String },

    /// pg_rewind failed. `target_modified`: it had started changing the data directory, which
    /// is then unusable until rewound successfully or replaced by a new base backup.
    #[error("pg_rewind from {source_addr} failed: {detail}{}", damage_note(*.target_modified))]
    Rewind {
        source_addr: String,
        detail: String,
        target_modified: bool,
    },

    /// Processes of a dead postmaster still work in the data directory (and hold its shared
    /// memory) after SIGKILL: nothing can start on it until they are gone.
    #[error(
        "processes {pids:?} of a dead postmaster still use data directory {path} and did not end after SIGKILL"
    )]
    LeftoverProcesses { path: PathBuf, pids: Vec<u32> },

    /// An operation that needs PostgreSQL stopped (pg_rewind, removing the data directory).
    #[error(
        "{operation} refused: PostgreSQL (pid {pid}) is running on data directory {path}; stop it first"
    )]
    Running {
        operation: &'static str,
        path: PathBuf,
        pid: u32,
    },

    /// Asked to delete a directory that is not a PostgreSQL data directory.
    #[error("{operation} refused: {path} is not a PostgreSQL data directory ({reason}); the agent never deletes it")]
    NotPostgres {
        operation: &'static str,
        path: PathBuf,
        reason: String,
    },

    /// A timeline history file in pg_wal is missing or unreadable.
    #[error("timeline history file {path}: {detail}")]
    TimelineHistory { path: PathBuf, detail: String },

    /// A parameter name or value that cannot be written safely into postgresql.conf.
    #[error("invalid PostgreSQL parameter {name}: {reason}")]
    InvalidParameter { name: String, reason: String },
}

/// What a failed pg_rewind left behind, when that matters to the operator.
fn damage_note(target_modified: bool) -> &'static str {
    if target_modified {
        "; it had begun rewriting the data directory, which cannot be started until a rewind succeeds or a new base backup replaces it"
    } else {
        ""
    }
}

impl PgError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PgError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
