//! The seam between the HA executor and PostgreSQL: everything the executor does to the
//! local server goes through `PgOps`. The real implementation (`pg_adapter.rs`) drives
//! PostgreSQL; keeping the trait narrow keeps the executor readable.

use std::collections::BTreeMap;
use std::future::Future;

use super::decide::DataDir;
use super::snapshot::ReplicationRow;
use super::sync_standby::SyncNames;
use crate::cluster::PgRole;

/// What a query of the running server shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PgObservation {
    pub role: Option<PgRole>,
    pub timeline: Option<u64>,
    pub wal_lsn: Option<u64>,
    pub received_lsn: Option<u64>,
    pub replayed_lsn: Option<u64>,
    pub system_identifier: Option<String>,
    pub server_version: Option<u32>,
    pub pending_restart: bool,
    /// `host:port` the WAL receiver streams from, when it streams.
    pub streaming_from: Option<String>,
    pub replication: Vec<ReplicationRow>,
    /// `synchronous_standby_names` as PostgreSQL runs with it.
    pub sync_names: SyncNames,
}

/// Where to replicate from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub member: String,
    pub host: String,
    pub port: u16,
}

/// The configuration files the agent owns, as it wants them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DesiredConfig {
    /// Lower-cased parameter names.
    pub parameters: BTreeMap<String, String>,
    pub pg_hba: Vec<String>,
    /// `Some(None)`: a read-only standby following nobody; `Some(Some(u))`: stream from `u`.
    pub standby: Option<Option<Upstream>>,
    /// The replication slot a standby streams through (when `use_slots`).
    pub primary_slot_name: Option<String>,
}

pub type PgResult<T> = Result<T, PgFailure>;

/// Why an operation on the local PostgreSQL failed, typed so the loop branches on the kind
/// and never on the words. `Display` is the operator-readable sentence (PostgreSQL's own
/// words where it gave any), unchanged from the error it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgFailure {
    /// The server's WAL went past the point where its upstream's timeline branched off
    /// (PostgreSQL refused to start as its standby): only a rejoin check (pg_rewind) helps.
    #[error("{message}")]
    Diverged { message: String },
    /// The operation needs a running server and there is none.
    #[error("{message}")]
    NotRunning { message: String },
    /// PostgreSQL did not finish in time (start, stop, promote …).
    #[error("{message}")]
    Timeout { message: String },
    /// A PostgreSQL program (initdb, pg_ctl, pg_rewind …) exited with an error.
    #[error("{program} failed: {detail}")]
    Tool { program: String, detail: String },
    /// The stopped server's control file does not say `shut down` (a fast stop fell back to
    /// an immediate one, or it crashed): its latest checkpoint is not the end of its WAL, so
    /// it has no final position to publish.
    #[error("PostgreSQL was not shut down cleanly (control file state: {state}): no final WAL position")]
    NotCleanlyStopped { state: String },
    /// pg_rewind failed; `target_modified`: it had begun changing the data directory, which
    /// may now be unusable (only a new base backup helps).
    #[error("{message}")]
    Rewind { message: String, target_modified: bool },
    /// Processes a dead postmaster left behind still use this data directory (and hold its
    /// shared memory) and could not be ended: nothing can run on it until they are gone.
    #[error("{message}")]
    LeftoverProcesses { message: String },
    /// Anything else, as a sentence.
    #[error("{0}")]
    Other(String),
}

impl PgFailure {
    /// Worth trying again on a later cycle as it is. Not retryable: a diverged standby, which
    /// fails the same way until a rejoin check (pg_rewind) takes its WAL back to the fork, and
    /// a pg_rewind that had begun changing the directory (only a new base backup helps).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            PgFailure::Diverged { .. }
                | PgFailure::Rewind {
                    target_modified: true,
                    ..
                }
        )
    }
}

impl From<String> for PgFailure {
    fn from(message: String) -> PgFailure {
        PgFailure::Other(message)
    }
}

impl From<&str> for PgFailure {
    fn from(message: &str) -> PgFailure {
        PgFailure::Other(message.to_string())
    }
}

/// The operator-readable sentence, for the loop's logs and the operator's replies.
impl From<PgFailure> for String {
    fn from(failure: PgFailure) -> String {
        failure.to_string()
    }
}

/// What writing the config files did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// A file changed: a running server needs a reload.
    pub changed: bool,
    /// A changed setting only takes effect after a restart.
    pub restart_needed: bool,
}

/// Operations on the local PostgreSQL. Errors are operator-readable sentences.
pub trait PgOps: Send + Sync + 'static {
    fn data_dir(&self) -> DataDir;
    fn postmaster_running(&self) -> bool;
    fn observe(&self) -> impl Future<Output = PgResult<PgObservation>> + Send;
    /// (received, replayed) WAL positions of a replica (`None`: not known), for the wait
    /// before a promotion, which polls it. By default from `observe`; the real server asks
    /// for just these two.
    fn replay_progress(&self) -> impl Future<Output = PgResult<Option<(u64, u64)>>> + Send {
        async move {
            let o = self.observe().await?;
            Ok(o.received_lsn.zip(o.replayed_lsn))
        }
    }
    /// initdb with the bootstrap options, configure as primary, start, create the roles,
    /// run post_bootstrap. Returns the system identifier.
    fn bootstrap(&self, config: &DesiredConfig) -> impl Future<Output = PgResult<String>> + Send;
    /// pg_basebackup from `source` into the empty data directory.
    fn clone_replica(&self, source: &Upstream) -> impl Future<Output = PgResult<()>> + Send;
    /// Write the owned config files.
    fn configure(&self, config: &DesiredConfig) -> impl Future<Output = PgResult<Applied>> + Send;
    fn start(&self) -> impl Future<Output = PgResult<()>> + Send;
    /// Stop at once, ending open sessions (`fast`), or `immediate` when that fails.
    fn stop(&self) -> impl Future<Output = PgResult<()>> + Send;
    /// A fast shutdown only, never an immediate one: `Timeout` when the server has not
    /// stopped `within` (it goes on shutting down; it accepts no new sessions meanwhile).
    fn stop_fast(&self, within: std::time::Duration) -> impl Future<Output = PgResult<()>> + Send;
    fn restart(&self) -> impl Future<Output = PgResult<()>> + Send;
    fn reload(&self) -> impl Future<Output = PgResult<()>> + Send;
    fn promote(&self) -> impl Future<Output = PgResult<()>> + Send;
    fn sync_slots(&self, names: &[String]) -> impl Future<Output = PgResult<()>> + Send;
    /// Set `synchronous_standby_names` in `postgresql.auto.conf` (`None`: remove it there, so
    /// the configuration files' value applies again) and reload.
    fn set_sync_names(&self, value: Option<&str>) -> impl Future<Output = PgResult<()>> + Send;
    /// The stopped data directory last ran as a primary and is not set up as a standby: it
    /// may hold WAL the current primary never had.
    fn former_primary(&self) -> bool;
    /// The data directory is set up as a standby (`standby.signal`): starting it brings up a
    /// read-only server, never a primary.
    fn is_standby_dir(&self) -> bool;
    /// The last WAL position of a cleanly stopped server (its shutdown checkpoint), only from
    /// a control file that says `shut down`; `NotCleanlyStopped` otherwise.
    fn final_lsn(&self) -> PgResult<u64>;
    /// pg_rewind the stopped data directory from `source` (or only check, with `dry_run`).
    fn rewind(&self, source: &Upstream, dry_run: bool) -> impl Future<Output = PgResult<Rewind>> + Send;
    /// Remove the stopped data directory's contents (to clone it again); this removes the
    /// rewind-failed marker with it.
    fn remove_data_dir(&self) -> impl Future<Output = PgResult<()>> + Send;
    /// Persist, in the data directory, that a pg_rewind failed after it may have changed it
    /// (src/ha/rewind_marker.rs): the directory is not started again until `reinit`.
    fn mark_rewind_failed(&self, reason: &str) -> PgResult<()>;
    /// The reason of a rewind-failed marker in the data directory, if there is one.
    fn rewind_failed_marker(&self) -> Option<String>;
    /// Where timeline `timeline` branched off its parent: (parent timeline, switch LSN, reason).
    fn timeline_switch(&self, timeline: u64) -> PgResult<Option<(u64, u64, String)>>;
}

/// What a rewind check or run found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewind {
    /// The timelines did not diverge: the server can stream from the source as it is.
    NotNeeded,
    /// Dry run: the server diverged and needs a rewind.
    Needed,
    /// The server was rewound.
    Rewound,
}
