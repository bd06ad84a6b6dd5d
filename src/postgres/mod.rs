//! Everything the agent does to its local PostgreSQL: the executor's toolbox.
//!
//! No HA decisions are made here; the HA loop decides and calls these. Programs (initdb,
//! pg_ctl, pg_basebackup, pg_controldata, pg_rewind) run through `tokio::process` as the
//! PostgreSQL OS user (see `os_user`: when the agent is root it switches to `postgres` or the
//! configured user), SQL goes through `tokio-postgres` as the superuser.
//!
//! Modules, one job each:
//! - `settings`: [`PostgresSettings`] from the agent's config;
//! - `os_user`: who PostgreSQL runs as, chown / permission checks;
//! - `tool`: starting a PostgreSQL program with a clean environment;
//! - `data_dir`: [`DataDirState`] (pg_controldata); `fresh_dir`: undoable preparation of an
//!   empty data directory;
//! - `control_data`: [`ControlData`] (what a member's control file says about its past) and
//!   timeline history files;
//! - `rewind`: rejoining a former primary (pg_rewind, or emptying the data directory for a
//!   new base backup);
//! - `initdb`, `basebackup`, `ctl` (pg_ctl start/stop/reload/promote, postmaster.pid);
//! - `leftovers`: ending the processes a dead postmaster left in the data directory;
//! - `conf`: postgresql.conf / pg_hba.conf / standby.signal;
//! - `param_compat`: parameters across PostgreSQL versions (what the binary knows, what
//!   Patroni translates);
//! - `query`: connecting, [`PgState`], roles; `slots`: replication slots;
//! - `local_tls`: TLS for the agent's own TCP connection (the superuser's `sslmode`, …);
//! - `conninfo`: [`ConnTarget`] and `primary_conninfo`; `lsn`: WAL positions;
//! - `wal_segments`: the timeline a replica replays on, from the segment files in `pg_wal`.

mod basebackup;
mod conf;
mod conninfo;
mod control_data;
mod ctl;
mod data_dir;
mod error;
mod fresh_dir;
mod initdb;
mod leftovers;
mod local_tls;
mod lsn;
mod os_user;
mod param_compat;
mod query;
mod rewind;
mod secret_file;
mod settings;
mod slots;
mod tool;
mod wal_segments;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use basebackup::{parse_progress, BackupProgress};
pub use conf::{ConfigChange, PgConfigFiles, StandbyConfig, POSTMASTER_PARAMETERS};
pub use conninfo::{primary_conninfo, ConnTarget};
pub use control_data::{
    parse_control_data, parse_timeline_history, ClusterState, ControlData, TimelineSwitch,
};
pub use ctl::{postmaster_of, StopMode};
pub use data_dir::DataDirState;
pub use error::PgError;
pub use lsn::{format_lsn, parse_lsn};
pub use os_user::{OsUser, DEFAULT_RUN_AS};
pub use param_compat::{translate, CompatNote, KnownParameters, PgBinary, PgVersion, Translated};
pub use query::{quote_literal, PgState, ReplicationPeer, WalReceiver};
pub use rewind::{RewindOutcome, RewindSource};
pub use secret_file::write_pgpass;
pub use settings::{detect_bin_dir, Credentials, PostgresSettings, DEFAULT_PG_CTL_TIMEOUT};
pub use slots::{slot_name_for, SlotSync};

pub use tool::Program;

use query::LocalEndpoint;
use tool::Tools;

/// Longest unix socket path PostgreSQL can bind (`sun_path` is 108 bytes on Linux).
const MAX_SOCKET_PATH: usize = 107;

/// The local PostgreSQL server.
#[derive(Debug, Clone)]
pub struct Postgres {
    settings: PostgresSettings,
    tools: Tools,
    endpoint: LocalEndpoint,
    log_file: PathBuf,
    /// Version and parameter names of the `postgres` binary, learnt once in [`Postgres::new`].
    binary: Arc<PgBinary>,
    /// The parameter warnings last logged, so that each distinct set is logged once rather
    /// than on every configuration write.
    warned: Arc<Mutex<Vec<CompatNote>>>,
}

impl Postgres {
    /// Checks the settings (programs present, OS user known, socket path short enough) and asks
    /// the `postgres` binary its version and parameters; does not touch the data directory.
    pub fn new(mut settings: PostgresSettings) -> Result<Self, PgError> {
        // Programs run with `/` as working directory, and PostgreSQL would read a relative
        // socket directory relative to the data directory: resolve everything up front.
        let absolute = |path: &Path| std::path::absolute(path).map_err(|e| PgError::io("resolve", path, e));
        settings.data_dir = absolute(&settings.data_dir)?;
        if let Some(dir) = &settings.socket_dir {
            settings.socket_dir = Some(absolute(dir)?);
        }
        if let Some(file) = &settings.log_file {
            settings.log_file = Some(absolute(file)?);
        }
        let user = OsUser::for_agent(settings.run_as.as_deref())?;
        let tools = Tools {
            bin_dir: settings.bin_dir.clone(),
            names: settings.bin_names.clone(),
            user,
        };
        tools.check(Program::PgCtl)?;
        let binary = Arc::new(detect_binary(&tools)?);
        tracing::debug!(version = %binary.version, parameters = binary.known.len(), "PostgreSQL binary");
        if let Some(dir) = &settings.socket_dir {
            let socket = dir.join(format!(".s.PGSQL.{}", settings.port));
            if socket.as_os_str().len() > MAX_SOCKET_PATH {
                return Err(PgError::Settings(format!(
                    "unix socket path {} is longer than {MAX_SOCKET_PATH} bytes; choose a shorter socket directory",
                    socket.display()
                )));
            }
        }
        let log_file = match &settings.log_file {
            Some(path) => path.clone(),
            None => {
                let parent = settings.data_dir.parent().unwrap_or(Path::new("/"));
                let name = if settings.member_name.is_empty() {
                    "postgresql"
                } else {
                    &settings.member_name
                };
                parent.join(format!("{name}.postgres.log"))
            }
        };
        let endpoint = LocalEndpoint::for_settings(&settings);
        Ok(Postgres {
            settings,
            tools,
            endpoint,
            log_file,
            binary,
            warned: Arc::default(),
        })
    }

    /// The version and parameter names of the `postgres` binary.
    pub fn binary(&self) -> &PgBinary {
        &self.binary
    }

    pub fn settings(&self) -> &PostgresSettings {
        &self.settings
    }

    pub fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }

    /// The OS user PostgreSQL programs run as.
    pub fn os_user(&self) -> &OsUser {
        &self.tools.user
    }

    /// The file pg_ctl sends the server's output to.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// Full path of a PostgreSQL program in the configured bin_dir (honouring `bin_name`).
    pub fn program_path(&self, program: Program) -> PathBuf {
        self.tools.path(program)
    }

    /// What the data directory holds. A non-empty directory without `PG_VERSION` is
    /// [`DataDirState::NotPostgres`]: every operation here refuses to touch it.
    pub fn data_dir_state(&self) -> Result<DataDirState, PgError> {
        data_dir::inspect(&self.settings.data_dir, &self.tools)
    }

    /// Writes postgresql.conf, pg_hba.conf and standby.signal (see `conf` for the rules). Does
    /// not reload or restart: the result says what changed and what needs a restart.
    pub async fn write_config(&self, desired: &PgConfigFiles) -> Result<ConfigChange, PgError> {
        let data_dir = &self.settings.data_dir;
        if !data_dir.join("PG_VERSION").is_file() {
            return Err(PgError::NotInitialized {
                path: data_dir.clone(),
                reason: "no PG_VERSION".into(),
            });
        }
        let (parameters, notes) = conf::managed_parameters(&self.settings, &self.binary, desired)?;
        self.warn_once(notes);
        let written = conf::write_files(data_dir, &parameters, desired, &self.tools.user)?;
        let restart_needed = if written.changed_parameters.is_empty() {
            Vec::new()
        } else {
            self.restart_needed(&written.changed_parameters).await
        };
        if written.changed {
            tracing::info!(
                changed = ?written.changed_parameters,
                restart_needed = ?restart_needed,
                standby = desired.standby.is_some(),
                "wrote PostgreSQL configuration"
            );
        }
        Ok(ConfigChange {
            changed: written.changed,
            changed_parameters: written.changed_parameters,
            restart_needed,
            standby_signal_changed: written.standby_signal_changed,
        })
    }

    /// Logs the parameter warnings when they differ from the set logged last.
    fn warn_once(&self, notes: Vec<CompatNote>) {
        let mut warned = self
            .warned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *warned != notes {
            for note in &notes {
                tracing::warn!("{note}");
            }
            *warned = notes;
        }
    }

    /// Of the changed parameters, those needing a restart: asked of the running server, or
    /// from the built-in list when it is not running (or cannot be asked).
    async fn restart_needed(&self, changed: &[String]) -> Vec<String> {
        if self.postmaster_pid().is_some() {
            match self.connect().await {
                Ok(client) => match query::postmaster_parameters(&client, changed).await {
                    Ok(names) => return names,
                    Err(e) => tracing::debug!(error = %e, "cannot ask pg_settings; using the built-in list"),
                },
                Err(e) => tracing::debug!(error = %e, "cannot ask pg_settings; using the built-in list"),
            }
        }
        changed
            .iter()
            .filter(|name| POSTMASTER_PARAMETERS.contains(&name.as_str()))
            .cloned()
            .collect()
    }

    async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        query::connect(&self.endpoint, &self.settings.superuser).await
    }

    /// The server accepts connections (a login refused for bad credentials counts: the server
    /// is up; starting up or shutting down does not).
    pub async fn is_ready(&self) -> bool {
        query::accepts_connections(&self.endpoint, &self.settings.superuser).await
    }

    /// Role, timeline, WAL positions, replication, pending restarts: what the HA loop reads.
    pub async fn query_state(&self) -> Result<PgState, PgError> {
        let client = self.connect().await?;
        query::read_state(&client).await
    }

    /// A replica's (received, replayed) WAL positions: one short query (`None` each on a
    /// primary, or before anything was streamed).
    pub async fn query_replay(&self) -> Result<(Option<u64>, Option<u64>), PgError> {
        let client = self.connect().await?;
        query::read_replay(&client).await
    }

    /// Creates or updates the replication role (REPLICATION LOGIN) and the optional pg_rewind
    /// role (LOGIN plus EXECUTE on the functions pg_rewind uses). Needs a primary. Idempotent.
    pub async fn create_roles(
        &self,
        replication: &Credentials,
        rewind: Option<&Credentials>,
    ) -> Result<(), PgError> {
        let client = self.connect().await?;
        query::create_roles(&client, &self.settings.superuser.username, replication, rewind).await
    }

    /// Creates the missing physical slots of `wanted`; drops inactive physical slots neither
    /// wanted nor in `ignore`. Logical slots are left alone.
    pub async fn sync_replication_slots(
        &self,
        wanted: &[String],
        ignore: &[String],
    ) -> Result<SlotSync, PgError> {
        let client = self.connect().await?;
        slots::sync(&client, wanted, ignore).await
    }

    /// Runs SQL (one or more statements) as the superuser.
    pub async fn execute(&self, sql: &str) -> Result<(), PgError> {
        let client = self.connect().await?;
        client
            .batch_execute(sql)
            .await
            .map_err(|e| query::query_error(sql, e))
    }

    /// The first column of the first row of `sql`, as text (`None` for no row or NULL).
    pub async fn query_scalar(&self, sql: &str) -> Result<Option<String>, PgError> {
        let client = self.connect().await?;
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| query::query_error(sql, e))?;
        Ok(messages
            .into_iter()
            .find_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(row.get(0).map(str::to_string)),
                _ => None,
            })
            .flatten())
    }
}

/// Asks `postgres --version` and `postgres --describe-config` (as the PostgreSQL OS user) what
/// the binary is. Refuses versions older than 12, whose recovery settings live in recovery.conf.
fn detect_binary(tools: &Tools) -> Result<PgBinary, PgError> {
    tools.check(Program::Postgres)?;
    let run = |arg: &str| -> Result<String, PgError> {
        let label = format!("postgres {arg}");
        let output = tools
            .std_command(Program::Postgres)
            .arg(arg)
            .output()
            .map_err(|e| PgError::ToolFailed {
                program: label.clone(),
                detail: format!("could not run it: {e}"),
            })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(PgError::ToolFailed {
                program: label,
                detail: tool::last_meaningful_line(&format!(
                    "{}\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )),
            })
        }
    };
    let text = run("--version")?;
    let version = PgVersion::from_version_output(&text).ok_or_else(|| PgError::ToolFailed {
        program: "postgres --version".into(),
        detail: format!("unexpected output {:?}", text.trim()),
    })?;
    if version.0 < param_compat::MIN_SUPPORTED {
        return Err(PgError::Settings(format!(
            "PostgreSQL {version} in {} is not supported: pgquorum needs PostgreSQL 12 or later",
            tools.bin_dir.display()
        )));
    }
    let known = KnownParameters::from_describe_config(&run("--describe-config")?);
    if known.is_empty() {
        return Err(PgError::ToolFailed {
            program: "postgres --describe-config".into(),
            detail: "it listed no parameters".into(),
        });
    }
    Ok(PgBinary { version, known })
}
