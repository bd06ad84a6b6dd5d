//! `PgOps` on the real local PostgreSQL (`crate::postgres::Postgres`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::decide::DataDir;
use super::pg_ops::{Applied, DesiredConfig, PgFailure, PgObservation, PgOps, PgResult, Rewind, Upstream};
use super::snapshot::ReplicationRow;
use super::sync_standby::SyncNames;
use crate::cluster::PgRole;
use crate::config::Config;
use crate::postgres::write_pgpass;
use crate::postgres::{
    primary_conninfo, ConnTarget, DataDirState, PgConfigFiles, PgError, Postgres, RewindOutcome,
    RewindSource, StandbyConfig, StopMode,
};

pub struct LocalPostgres {
    pg: Postgres,
    config: Arc<Config>,
    /// The newest timeline this replica's WAL receiver was seen receiving (0: none) since the
    /// agent started (or the data directory was made): a lower bound kept after its primary
    /// died (the receiver's row is gone then). Lost when the agent restarts; the timeline
    /// read from `pg_wal` (`PgState::wal_timeline`) is not.
    streamed_timeline: AtomicU64,
}

impl LocalPostgres {
    pub fn new(pg: Postgres, config: Config) -> LocalPostgres {
        LocalPostgres {
            pg,
            config: Arc::new(config),
            streamed_timeline: AtomicU64::new(0),
        }
    }

    /// Create the directories PostgreSQL needs before anything else does, owned by its OS
    /// user: the data directory's parent and the unix socket directories. (Created later by
    /// root — e.g. as the parent of `raft.data_dir` — they would not be writable by it.)
    /// Existing directories are left as they are.
    pub fn prepare_dirs(pg: &Postgres, config: &Config) -> Result<(), crate::postgres::PgError> {
        let mut dirs = Vec::new();
        if let Some(parent) = pg.data_dir().parent() {
            dirs.push(parent.to_path_buf());
        }
        if let Some(value) = config.postgresql.parameters.get("unix_socket_directories") {
            let value = value.to_string();
            dirs.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|d| d.starts_with('/'))
                    .map(std::path::PathBuf::from),
            );
        }
        for dir in dirs {
            if !dir.exists() {
                pg.os_user().create_dir_all(&dir, 0o755)?;
                tracing::info!(
                    "created {} for PostgreSQL (owner {})",
                    dir.display(),
                    pg.os_user().name
                );
            }
        }
        Ok(())
    }

    /// `postgresql.pgpass` (default `<data_dir>.pgpass`, outside the data directory so base
    /// backups do not copy it), written with the replication password when there is one.
    fn replication_passfile(&self) -> Result<Option<PathBuf>, PgError> {
        let settings = self.pg.settings();
        let Some(password) = &settings.replication.password else {
            return Ok(None);
        };
        let path = self.config.postgresql.pgpass.clone().unwrap_or_else(|| {
            let mut name = settings.data_dir.as_os_str().to_owned();
            name.push(".pgpass");
            PathBuf::from(name)
        });
        write_pgpass(self.pg.os_user(), &path, &settings.replication.username, password)?;
        Ok(Some(path))
    }

    fn files(&self, desired: &DesiredConfig) -> Result<PgConfigFiles, PgError> {
        let settings = self.pg.settings();
        let passfile = match &desired.standby {
            Some(Some(_)) => self.replication_passfile()?,
            _ => None,
        };
        let standby = desired.standby.as_ref().map(|upstream| {
            let conninfo = match upstream {
                Some(u) => primary_conninfo(
                    &ConnTarget::new(&u.member, &u.host, u.port),
                    &settings.replication,
                    &self.config.name,
                    passfile.as_deref(),
                ),
                // A read-only standby that follows nobody (after a demote with no new primary).
                None => String::new(),
            };
            StandbyConfig::new(conninfo, desired.primary_slot_name.clone())
        });
        Ok(PgConfigFiles {
            parameters: desired.parameters.clone(),
            pg_hba: desired.pg_hba.clone(),
            standby,
        })
    }

    /// After a failed bootstrap: stop the server and move the half-made directory aside, so the
    /// next attempt starts from an empty directory and the failed one can still be looked at.
    /// Only the newest failed attempt is kept: the set-aside directory of an earlier failed
    /// bootstrap is removed first, so there is never more than one and disk use stays bounded
    /// by one extra data directory however often the bootstrap fails.
    async fn set_failed_bootstrap_aside(&self) {
        let _ = self.pg.stop(StopMode::Immediate).await;
        let dir = self.pg.data_dir();
        if dir.join("PG_VERSION").exists() {
            let mut name = dir.file_name().unwrap_or_default().to_os_string();
            name.push(format!("{FAILED_BOOTSTRAP_INFIX}{}", crate::node::wall_ms()));
            let aside = dir.with_file_name(name);
            remove_failed_bootstraps(dir);
            match std::fs::rename(dir, &aside) {
                Ok(()) => tracing::warn!(
                    "moved the failed bootstrap's data directory to {}",
                    aside.display()
                ),
                Err(e) => tracing::error!("could not move {} aside: {e}", dir.display()),
            }
        }
    }

    async fn run_post_bootstrap(&self) -> PgResult<()> {
        let Some(script) = &self.config.bootstrap.post_bootstrap else {
            return Ok(());
        };
        let s = self.pg.settings();
        // Patroni passes a libpq connection string as the only argument.
        let conn = format!(
            "host={} port={} user={} dbname=postgres",
            s.connect_host, s.port, s.superuser.username
        );
        tracing::info!(%script, "running post_bootstrap");
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{script} \"$1\""))
            .arg("post_bootstrap")
            .arg(&conn);
        if let Some(pw) = &s.superuser.password {
            cmd.env("PGPASSWORD", pw);
        }
        let out = cmd
            .output()
            .await
            .map_err(|e| PgFailure::Other(format!("post_bootstrap {script}: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(PgFailure::Other(format!(
                "post_bootstrap {script} failed ({}): {}",
                out.status,
                err.trim()
            )));
        }
        Ok(())
    }
}

/// A failed bootstrap's data directory `<data_dir>` is set aside as
/// `<data_dir>.failed-bootstrap-<wall clock ms>`.
const FAILED_BOOTSTRAP_INFIX: &str = ".failed-bootstrap-";

/// The directories earlier failed bootstraps of `data_dir` were set aside as: siblings named exactly `<data dir name>.failed-bootstrap-<digits>` that are directories
/// (not symbolic links). Nothing else matches, so nothing pgquorum did not create is touched.
fn failed_bootstraps(data_dir: &Path) -> Vec<PathBuf> {
    let (Some(parent), Some(name)) = (data_dir.parent(), data_dir.file_name()) else {
        return Vec::new();
    };
    let Some(name) = name.to_str() else {
        return Vec::new();
    };
    let prefix = format!("{name}{FAILED_BOOTSTRAP_INFIX}");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(&prefix))
                .is_some_and(|ms| !ms.is_empty() && ms.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
        .map(|entry| entry.path())
        .collect();
    found.sort();
    found
}

/// Remove the set-aside directories of earlier failed bootstraps (see `failed_bootstraps`).
fn remove_failed_bootstraps(data_dir: &Path) {
    for old in failed_bootstraps(data_dir) {
        match std::fs::remove_dir_all(&old) {
            Ok(()) => tracing::info!(
                "removed {}, an earlier failed bootstrap's data directory (only the last one is kept)",
                old.display()
            ),
            Err(e) => tracing::warn!("could not remove {}: {e}", old.display()),
        }
    }
}

impl LocalPostgres {
    /// A primary's timeline is the one it writes on. A replica's is the newest timeline whose
    /// segment in `pg_wal` holds its replay position (`PgState::wal_timeline`: it survives
    /// restarts of the agent and the server), with the checkpoint's, the receiver's and the
    /// newest one its receiver was seen receiving (`streamed_timeline`) as lower bounds.
    fn timeline_of(&self, st: &crate::postgres::PgState) -> u64 {
        if !st.in_recovery {
            return st.timeline;
        }
        let receiving = st.wal_receiver.as_ref().and_then(|w| w.received_tli).unwrap_or(0);
        let streamed = self.streamed_timeline.fetch_max(receiving, Ordering::SeqCst);
        let in_pg_wal = st.wal_timeline.unwrap_or(0);
        st.timeline.max(streamed).max(receiving).max(in_pg_wal)
    }
}

impl PgOps for LocalPostgres {
    fn data_dir(&self) -> DataDir {
        match self.pg.data_dir_state() {
            Ok(DataDirState::Missing | DataDirState::Empty) => DataDir::Empty,
            Ok(DataDirState::Initialized {
                system_identifier, ..
            }) => DataDir::Initialized { system_identifier },
            Ok(DataDirState::Damaged(why)) => DataDir::Foreign(format!("damaged data directory: {why}")),
            Ok(DataDirState::NotPostgres(what)) => DataDir::Foreign(format!(
                "{} is not a PostgreSQL data directory: {what}",
                self.pg.data_dir().display()
            )),
            Err(e) => DataDir::Foreign(e.to_string()),
        }
    }

    fn postmaster_running(&self) -> bool {
        self.pg.postmaster_pid().is_some()
    }

    async fn replay_progress(&self) -> PgResult<Option<(u64, u64)>> {
        let (received, replayed) = self.pg.query_replay().await.map_err(PgFailure::from)?;
        Ok(received.zip(replayed))
    }

    async fn observe(&self) -> PgResult<PgObservation> {
        let st = self.pg.query_state().await.map_err(PgFailure::from)?;
        let streaming_from = st
            .wal_receiver
            .as_ref()
            .filter(|w| w.status == "streaming")
            .and_then(|w| Some(format!("{}:{}", w.sender_host.as_ref()?, w.sender_port?)));
        Ok(PgObservation {
            role: Some(if st.in_recovery {
                PgRole::Replica
            } else {
                PgRole::Primary
            }),
            timeline: Some(self.timeline_of(&st)),
            wal_lsn: st.wal_lsn,
            received_lsn: st.received_lsn,
            replayed_lsn: st.replayed_lsn,
            system_identifier: Some(st.system_identifier),
            server_version: Some(st.server_version_num),
            pending_restart: !st.pending_restart.is_empty(),
            streaming_from,
            replication: st
                .replication
                .into_iter()
                .map(|r| ReplicationRow {
                    application_name: r.application_name,
                    client_addr: r.client_addr,
                    state: r.state.unwrap_or_default(),
                    sync_state: r.sync_state.unwrap_or_default(),
                    replay_lsn: r.replay_lsn,
                    flush_lsn: r.flush_lsn,
                })
                .collect(),
            sync_names: SyncNames {
                value: st.sync_names.0,
                managed: st.sync_names.1,
            },
        })
    }

    async fn bootstrap(&self, desired: &DesiredConfig) -> PgResult<String> {
        self.streamed_timeline.store(0, Ordering::SeqCst); // a new database system
        tracing::info!("initializing a new PostgreSQL cluster (initdb)");
        self.pg
            .initdb(&self.config.bootstrap.initdb)
            .await
            .map_err(PgFailure::from)?;
        let result: PgResult<String> = async {
            self.pg
                .write_config(&self.files(desired).map_err(PgFailure::from)?)
                .await
                .map_err(PgFailure::from)?;
            self.pg.start().await.map_err(PgFailure::from)?;
            let s = self.pg.settings();
            self.pg
                .create_roles(&s.replication, s.rewind.as_ref())
                .await
                .map_err(PgFailure::from)?;
            self.run_post_bootstrap().await?;
            let st = self.pg.query_state().await.map_err(PgFailure::from)?;
            Ok(st.system_identifier)
        }
        .await;
        if result.is_err() {
            self.set_failed_bootstrap_aside().await;
        }
        result
    }

    async fn clone_replica(&self, source: &Upstream) -> PgResult<()> {
        let target = ConnTarget::new(&source.member, &source.host, source.port);
        let member = source.member.clone();
        let progress = move |p: crate::postgres::BackupProgress| {
            tracing::info!(
                "base backup from {member}: {}% ({} MB of {} MB)",
                p.percent,
                p.done_kb / 1024,
                p.total_kb / 1024
            );
        };
        self.pg
            .basebackup(&target, &progress)
            .await
            .map_err(PgFailure::from)
    }

    async fn configure(&self, desired: &DesiredConfig) -> PgResult<Applied> {
        let change = self
            .pg
            .write_config(&self.files(desired).map_err(PgFailure::from)?)
            .await
            .map_err(PgFailure::from)?;
        Ok(Applied {
            changed: change.changed,
            restart_needed: !change.restart_needed.is_empty() || change.standby_signal_changed,
        })
    }

    async fn start(&self) -> PgResult<()> {
        self.pg.start().await.map_err(PgFailure::from)
    }

    async fn stop(&self) -> PgResult<()> {
        // Fast: open sessions end at once (a smart shutdown would let them keep writing).
        match self.pg.stop(StopMode::Fast).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!("fast shutdown failed ({e}); stopping immediately");
                self.pg.stop(StopMode::Immediate).await.map_err(PgFailure::from)
            }
        }
    }

    async fn stop_fast(&self, within: std::time::Duration) -> PgResult<()> {
        // pg_ctl waits whole seconds (rounded up): the sharp bound is this timeout.
        let stop = self.pg.stop_within(StopMode::Fast, within);
        match tokio::time::timeout(within, stop).await {
            Ok(r) => r.map_err(PgFailure::from),
            Err(_) => Err(PgFailure::Timeout {
                message: format!(
                    "PostgreSQL did not finish a fast shutdown within {:.1} s",
                    within.as_secs_f64()
                ),
            }),
        }
    }

    async fn restart(&self) -> PgResult<()> {
        self.pg.restart().await.map_err(PgFailure::from)
    }

    async fn reload(&self) -> PgResult<()> {
        self.pg.reload().await.map_err(PgFailure::from)
    }

    async fn promote(&self) -> PgResult<()> {
        // The replay wait before it is the loop's (src/ha/replay_wait.rs): bounded by the lease.
        self.pg.promote().await.map_err(PgFailure::from)?;
        // PostgreSQL only requests a spread checkpoint after a promotion; until one completes
        // its control file still shows the old timeline, and pg_rewind of the old primary
        // against it would wrongly find nothing to rewind. Writes are already accepted here.
        if let Err(e) = self.pg.execute("CHECKPOINT").await {
            tracing::warn!("checkpoint after promotion failed: {e}");
        }
        Ok(())
    }

    async fn sync_slots(&self, names: &[String]) -> PgResult<()> {
        self.pg
            .sync_replication_slots(names, &[])
            .await
            .map(|_| ())
            .map_err(PgFailure::from)
    }

    async fn set_sync_names(&self, value: Option<&str>) -> PgResult<()> {
        let sql = match value {
            Some(v) => format!(
                "ALTER SYSTEM SET synchronous_standby_names = {}",
                crate::postgres::quote_literal(v)
            ),
            None => "ALTER SYSTEM RESET synchronous_standby_names".to_string(),
        };
        self.pg.execute(&sql).await.map_err(PgFailure::from)?;
        self.pg
            .execute("SELECT pg_reload_conf()")
            .await
            .map_err(PgFailure::from)
    }

    fn former_primary(&self) -> bool {
        // A directory set up as a standby (a fresh clone, a rewound or demoted member the agent
        // configured) carries standby.signal; its control file may still say "in production"
        // (a base backup copies the primary's), which does not make it a former primary.
        let dir = self.pg.data_dir();
        if dir.join("standby.signal").exists() || dir.join("backup_label").exists() {
            return false;
        }
        match self.pg.control_data() {
            Ok(c) => c.last_ran_as_primary(),
            Err(e) => {
                tracing::warn!("cannot read the control file: {e}");
                false
            }
        }
    }

    fn is_standby_dir(&self) -> bool {
        self.pg.data_dir().join("standby.signal").exists()
    }

    fn final_lsn(&self) -> PgResult<u64> {
        let control = self.pg.control_data().map_err(PgFailure::from)?;
        final_position(&control)
    }

    async fn rewind(&self, source: &Upstream, dry_run: bool) -> PgResult<Rewind> {
        let settings = self.pg.settings();
        let credentials = settings.rewind.as_ref().unwrap_or(&settings.superuser);
        let from = RewindSource::new(&source.host, source.port, credentials);
        // A forced stop can leave backends of the dead postmaster holding the shared memory;
        // pg_rewind's crash recovery would fail on them every time.
        self.pg.end_leftover_processes().await.map_err(PgFailure::from)?;
        match self.pg.rewind(&from, dry_run).await {
            Ok(RewindOutcome::NotNeeded) => Ok(Rewind::NotNeeded),
            Ok(RewindOutcome::Needed) => Ok(Rewind::Needed),
            Ok(RewindOutcome::Rewound) => Ok(Rewind::Rewound),
            Err(e) => Err(e.into()),
        }
    }

    async fn remove_data_dir(&self) -> PgResult<()> {
        self.streamed_timeline.store(0, Ordering::SeqCst);
        self.pg.remove_data_dir().await.map_err(PgFailure::from)
    }

    fn mark_rewind_failed(&self, reason: &str) -> PgResult<()> {
        let dir = self.pg.data_dir();
        super::rewind_marker::write(dir, reason).map_err(|e| {
            PgFailure::Other(format!(
                "could not write {} in {}: {e}",
                super::rewind_marker::FILE_NAME,
                dir.display()
            ))
        })
    }

    fn rewind_failed_marker(&self) -> Option<String> {
        super::rewind_marker::read(self.pg.data_dir())
    }

    fn timeline_switch(&self, timeline: u64) -> PgResult<Option<(u64, u64, String)>> {
        let history = self.pg.timeline_history(timeline).map_err(PgFailure::from)?;
        Ok(history
            .last()
            .map(|s| (s.parent_timeline, s.switch_lsn, s.reason.clone())))
    }
}

/// The final position of a stopped primary: its shutdown checkpoint, only when the control
/// file says `shut down`. After an immediate stop or a crash the latest checkpoint is older
/// than the end of WAL: publishing it would let a member without the last WAL take over.
pub fn final_position(control: &crate::postgres::ControlData) -> PgResult<u64> {
    if control.cluster_state == crate::postgres::ClusterState::ShutDown {
        Ok(control.checkpoint_lsn)
    } else {
        Err(PgFailure::NotCleanlyStopped {
            state: control.cluster_state.to_string(),
        })
    }
}

/// PostgreSQL's start-up errors for a standby whose own WAL went past its upstream's timeline
/// switch. PostgreSQL says this only in its log, so its words are read here, at the seam, and
/// nowhere else: the loop sees `PgFailure::Diverged`.
fn diverged_from_upstream(message: &str) -> bool {
    message.contains("is not a child of this server's history")
        || message.contains("does not contain minimum recovery point")
}

impl From<PgError> for PgFailure {
    fn from(error: PgError) -> PgFailure {
        let message = error.to_string();
        match error {
            // Only a failed start carries PostgreSQL's own start-up log lines.
            PgError::StartFailed { detail, .. } if diverged_from_upstream(&detail) => {
                PgFailure::Diverged { message }
            }
            PgError::NotRunning { .. } => PgFailure::NotRunning { message },
            PgError::Timeout { .. } => PgFailure::Timeout { message },
            PgError::ToolFailed { program, detail } => PgFailure::Tool { program, detail },
            PgError::Rewind { target_modified, .. } => PgFailure::Rewind {
                message,
                target_modified,
            },
            PgError::LeftoverProcesses { .. } => PgFailure::LeftoverProcesses { message },
            _ => PgFailure::Other(message),
        }
    }
}

#[cfg(test)]
mod tests {

    /// The loop branches on the kind; the operator still reads PostgreSQL's words.
    #[test]
    fn postgres_errors_become_typed_failures_with_the_same_words() {
        let log = PathBuf::from("/pg/log");
        let diverged = PgError::StartFailed {
            detail: "FATAL:  requested timeline 3 is not a child of this server's history".into(),
            log: log.clone(),
        };
        let text = diverged.to_string();
        let failure = PgFailure::from(diverged);
        assert!(matches!(failure, PgFailure::Diverged { .. }), "{failure:?}");
        assert!(!failure.is_retryable());
        assert_eq!(failure.to_string(), text);

        let other_start = PgFailure::from(PgError::StartFailed {
            detail: "FATAL:  could not create lock file".into(),
            log: log.clone(),
        });
        assert!(matches!(other_start, PgFailure::Other(_)), "{other_start:?}");
        assert!(other_start.is_retryable());

        let timeout = PgError::Timeout {
            action: "start",
            seconds: 60,
            log,
        };
        let text = timeout.to_string();
        let failure = PgFailure::from(timeout);
        assert!(matches!(failure, PgFailure::Timeout { .. }));
        assert_eq!(failure.to_string(), text);

        let tool = PgError::ToolFailed {
            program: "pg_ctl".into(),
            detail: "could not start server".into(),
        };
        let text = tool.to_string();
        let failure = PgFailure::from(tool);
        assert_eq!(
            failure,
            PgFailure::Tool {
                program: "pg_ctl".into(),
                detail: "could not start server".into()
            }
        );
        assert_eq!(failure.to_string(), text);
        assert!(matches!(
            PgFailure::from(PgError::NotRunning { path: "/pg".into() }),
            PgFailure::NotRunning { .. }
        ));
    }

    use super::*;

    #[test]
    fn only_pgquorums_own_failed_bootstrap_dirs_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let p = root.path().join(name);
            std::fs::create_dir_all(p.join("base")).unwrap();
            std::fs::write(p.join("PG_VERSION"), "15\n").unwrap();
            p
        };
        let data = root.path().join("pgdata");
        let older = dir("pgdata.failed-bootstrap-1700000000000");
        let oldest = dir("pgdata.failed-bootstrap-1600000000000");
        // Not ours: other names, another data directory's, a file, a link to a directory.
        let keep_all = [
            dir("pgdata"),
            dir("pgdata.failed-bootstrap-"),
            dir("pgdata.failed-bootstrap-17x"),
            dir("pgdata.failed-bootstrap-1700000000000.bak"),
            dir("pgdata2.failed-bootstrap-1700000000000"),
            dir("other.failed-bootstrap-1700000000000"),
            dir("xpgdata.failed-bootstrap-1700000000000"),
            dir("pgdata.failed-bootstrap-1700000000000-copy"),
        ];
        let file = root.path().join("pgdata.failed-bootstrap-1500000000000");
        std::fs::write(&file, "not a directory").unwrap();
        let target = dir("precious");
        let link = root.path().join("pgdata.failed-bootstrap-1400000000000");
        std::os::unix::fs::symlink(&target, &link).unwrap();

        assert_eq!(failed_bootstraps(&data), vec![oldest.clone(), older.clone()]);
        remove_failed_bootstraps(&data);

        assert!(!older.exists() && !oldest.exists());
        for kept in keep_all.iter().chain([&file, &target]) {
            assert!(kept.exists(), "{} must be kept", kept.display());
        }
        assert!(
            link.symlink_metadata().is_ok(),
            "a link is not followed nor removed"
        );
        assert!(target.join("PG_VERSION").exists());
        assert!(failed_bootstraps(&data).is_empty());
    }
}
