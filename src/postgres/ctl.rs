//! Starting, stopping, reloading and promoting the server with `pg_ctl`, and finding out
//! whether the postmaster is alive from `postmaster.pid`.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::PgError;
use super::os_user::OsUser;
use super::tool::{last_meaningful_line, run, Program};
use super::Postgres;

const PID_FILE: &str = "postmaster.pid";

/// `pg_ctl stop -m …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Wait for clients to disconnect.
    Smart,
    /// Disconnect clients, checkpoint, stop.
    Fast,
    /// Stop at once; crash recovery on the next start.
    Immediate,
}

impl StopMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// Who holds the pid recorded in `postmaster.pid`.
#[derive(Debug, PartialEq, Eq)]
enum PidHolder {
    /// Nobody (or a zombie): the file is stale.
    Dead,
    /// A process that is provably not this data directory's postmaster (pid reuse).
    Stranger(String),
    /// Our postmaster, or a process we cannot prove is something else.
    Postmaster,
}

/// The live postmaster of `data_dir`, by its `postmaster.pid` — for code that has no
/// [`super::Postgres`] at hand (the fence guard).
pub fn postmaster_of(data_dir: &Path) -> Option<u32> {
    let pid = read_pid_file(data_dir)?;
    (classify_pid(pid, data_dir, "postgres") == PidHolder::Postmaster).then_some(pid)
}

fn read_pid_file(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join(PID_FILE)).ok()?;
    text.lines().next()?.trim().parse().ok().filter(|pid| *pid > 0)
}

/// Where PostgreSQL from Debian's packages puts its sockets when not configured.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The pid on the first line of a lock file.
fn read_first_line_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn classify_pid(pid: u32, data_dir: &Path, postgres_program: &str) -> PidHolder {
    let Ok(raw_pid) = libc::pid_t::try_from(pid) else {
        return PidHolder::Dead;
    };
    // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
    if unsafe { libc::kill(raw_pid, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        return PidHolder::Dead;
    }
    let proc_dir = Path::new("/proc").join(pid.to_string());
    if let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) {
        // "pid (comm) S …": the state letter follows the last ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if matches!(state, Some('Z') | Some('X')) {
            return PidHolder::Dead;
        }
    }
    if let Ok(comm) = std::fs::read_to_string(proc_dir.join("comm")) {
        let comm = comm.trim();
        // comm is truncated to 15 bytes.
        let expected: String = postgres_program.chars().take(15).collect();
        if comm != expected && comm != "postgres" && comm != "postmaster" {
            return PidHolder::Stranger(format!("process {pid} is \"{comm}\""));
        }
    }
    // The postmaster's working directory is its data directory.
    if let (Ok(cwd), Ok(ours)) = (std::fs::read_link(proc_dir.join("cwd")), data_dir.canonicalize()) {
        if cwd != ours {
            return PidHolder::Stranger(format!("process {pid} is a postgres serving {}", cwd.display()));
        }
    }
    PidHolder::Postmaster
}

/// The new part of the server log since `offset`.
fn read_log_since(log: &Path, offset: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(log) {
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let mut bytes = Vec::new();
            let _ = file.take(1 << 20).read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
    }
    text
}

/// What PostgreSQL's LOG lines about a configuration value or file it refuses contain
/// (`invalid value for parameter "…"`, `… is outside the valid range for parameter "…"`,
/// `unrecognized configuration parameter "…" in file "…"`, `syntax error in file "…"`).
const CONFIG_PROBLEMS: &[&str] = &["parameter \"", "in file \""];

/// The lines of a server log that explain a failed start, without their timestamp prefixes.
pub(crate) fn explain_failed_start(log: &str) -> Vec<String> {
    const LEVELS: &[&str] = &["PANIC:", "FATAL:", "ERROR:"];
    let strip = |line: &str| -> String {
        for marker in LEVELS.iter().chain(&["LOG:", "WARNING:", "HINT:", "DETAIL:"]) {
            if let Some(at) = line.find(marker) {
                return line[at..].split_whitespace().collect::<Vec<_>>().join(" ");
            }
        }
        line.trim().to_string()
    };
    let mut lines: Vec<String> = log
        .lines()
        .filter(|line| LEVELS.iter().any(|level| line.contains(level)))
        .map(strip)
        .collect();
    // The bind failure is logged at LOG level before the FATAL that ends the start.
    if let Some(bind) = log.lines().find(|line| line.contains("could not bind")) {
        lines.push(strip(bind));
    }
    // So is each setting PostgreSQL refuses ("0 is outside the valid range for parameter
    // "max_connections""); the FATAL then only says that the configuration file contains
    // errors, which does not tell the operator which one.
    lines.extend(
        log.lines()
            .filter(|line| line.contains("LOG:"))
            .filter(|line| CONFIG_PROBLEMS.iter().any(|marker| line.contains(marker)))
            .map(strip),
    );
    lines
}

impl Postgres {
    /// The postmaster's pid, when `postmaster.pid` names a live process that is (as far as
    /// can be told) this data directory's postmaster. `None` means PostgreSQL is not running,
    /// including after a crash or `kill -9` of the postmaster.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid = read_pid_file(&self.settings.data_dir)?;
        (self.classify(pid) == PidHolder::Postmaster).then_some(pid)
    }

    fn classify(&self, pid: u32) -> PidHolder {
        let program = self.tools.path(Program::Postgres);
        let name = program
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        classify_pid(pid, &self.settings.data_dir, &name)
    }

    /// `pg_ctl start -w`. Ok at once when already running.
    pub async fn start(&self) -> Result<(), PgError> {
        let data_dir = &self.settings.data_dir;
        if !data_dir.join("PG_VERSION").is_file() {
            return Err(PgError::NotInitialized {
                path: data_dir.clone(),
                reason: "no PG_VERSION".into(),
            });
        }
        if let Some(pid) = read_pid_file(data_dir) {
            match self.classify(pid) {
                PidHolder::Postmaster => {
                    tracing::info!(pid, "PostgreSQL is already running");
                    return Ok(());
                }
                PidHolder::Dead => {
                    tracing::warn!(pid, "removing stale postmaster.pid: process {pid} is not running");
                    self.remove_pid_file()?;
                }
                PidHolder::Stranger(what) => {
                    tracing::warn!(pid, "removing stale postmaster.pid: {what}");
                    self.remove_pid_file()?;
                }
            }
        }
        self.check_data_dir_ownership()?;
        self.prepare_socket_dir()?;
        self.remove_stale_socket_lock();
        let log_offset = self.prepare_log_file()?;

        tracing::info!(data_dir = %data_dir.display(), address = %self.listen_address(), "starting PostgreSQL");
        let timeout = self.settings.pg_ctl_timeout.as_secs().max(1);
        let mut command = self.tools.command(Program::PgCtl);
        command
            .arg("start")
            .arg("-D")
            .arg(data_dir)
            .arg("-w")
            .arg("-t")
            .arg(timeout.to_string())
            .arg("-l")
            .arg(&self.log_file);
        let finished = run(command, "pg_ctl start").await?;
        if finished.success {
            tracing::info!(pid = self.postmaster_pid(), "PostgreSQL started");
            return Ok(());
        }
        let output = format!("{}\n{}", finished.stdout, finished.stderr);
        let log = read_log_since(&self.log_file, log_offset);
        if output.contains("did not start in time") {
            return Err(PgError::Timeout {
                action: "start",
                seconds: timeout,
                log: self.log_file.clone(),
            });
        }
        let explained = explain_failed_start(&log);
        // Another server on this port: its TCP port, or its unix socket's lock file.
        if log.contains("Address already in use")
            || (log.contains(".s.PGSQL.") && log.contains("already exists"))
        {
            return Err(PgError::PortInUse {
                address: self.listen_address(),
                detail: explained.join("; "),
            });
        }
        let detail = if explained.is_empty() {
            finished.last_meaningful_line()
        } else {
            explained.join("; ")
        };
        Err(PgError::StartFailed {
            detail,
            log: self.log_file.clone(),
        })
    }

    /// `pg_ctl stop -m <mode> -w`. Ok when already stopped.
    pub async fn stop(&self, mode: StopMode) -> Result<(), PgError> {
        self.stop_within(mode, self.settings.pg_ctl_timeout).await
    }

    /// `pg_ctl stop -m <mode> -w -t <within, rounded up to whole seconds>`: `Timeout` when the
    /// server has not stopped by then (it goes on with the shutdown it was asked for). A caller
    /// that needs a sharper bound wraps this in its own timeout (pg_ctl dies with the future).
    pub async fn stop_within(&self, mode: StopMode, within: std::time::Duration) -> Result<(), PgError> {
        let Some(pid) = self.postmaster_pid() else {
            tracing::debug!("PostgreSQL is not running; nothing to stop");
            return Ok(());
        };
        tracing::info!(pid, mode = mode.as_str(), "stopping PostgreSQL");
        let timeout = (within.as_secs_f64().ceil() as u64).max(1);
        let mut command = self.tools.command(Program::PgCtl);
        command
            .arg("stop")
            .arg("-D")
            .arg(&self.settings.data_dir)
            .arg("-m")
            .arg(mode.as_str())
            .arg("-w")
            .arg("-t")
            .arg(timeout.to_string());
        let finished = run(command, "pg_ctl stop").await?;
        if finished.success {
            tracing::info!("PostgreSQL stopped");
            return Ok(());
        }
        let output = format!("{}\n{}", finished.stdout, finished.stderr);
        if output.contains("Is server running?") || output.contains("does not exist") {
            return Ok(());
        }
        if output.contains("does not shut down") {
            return Err(PgError::Timeout {
                action: "stop",
                seconds: timeout,
                log: self.log_file.clone(),
            });
        }
        Err(PgError::ToolFailed {
            program: "pg_ctl stop".into(),
            detail: last_meaningful_line(&output),
        })
    }

    /// Fast stop, then start.
    pub async fn restart(&self) -> Result<(), PgError> {
        tracing::info!("restarting PostgreSQL");
        self.stop(StopMode::Fast).await?;
        self.start().await
    }

    /// `pg_ctl reload`: re-read the configuration files.
    pub async fn reload(&self) -> Result<(), PgError> {
        if self.postmaster_pid().is_none() {
            return Err(PgError::NotRunning {
                path: self.settings.data_dir.clone(),
            });
        }
        tracing::info!("reloading PostgreSQL configuration");
        let mut command = self.tools.command(Program::PgCtl);
        command.arg("reload").arg("-D").arg(&self.settings.data_dir);
        let finished = run(command, "pg_ctl reload").await?;
        if finished.success {
            Ok(())
        } else {
            Err(PgError::ToolFailed {
                program: "pg_ctl reload".into(),
                detail: finished.last_meaningful_line(),
            })
        }
    }

    /// `pg_ctl promote -w`: end recovery and start accepting writes.
    pub async fn promote(&self) -> Result<(), PgError> {
        if self.postmaster_pid().is_none() {
            return Err(PgError::NotRunning {
                path: self.settings.data_dir.clone(),
            });
        }
        tracing::info!("promoting PostgreSQL");
        let timeout = self.settings.pg_ctl_timeout.as_secs().max(1);
        let mut command = self.tools.command(Program::PgCtl);
        command
            .arg("promote")
            .arg("-D")
            .arg(&self.settings.data_dir)
            .arg("-w")
            .arg("-t")
            .arg(timeout.to_string());
        let finished = run(command, "pg_ctl promote").await?;
        if finished.success {
            tracing::info!("PostgreSQL promoted");
            return Ok(());
        }
        let output = format!("{}\n{}", finished.stdout, finished.stderr);
        if output.contains("not in standby mode") {
            return Err(PgError::NotStandby);
        }
        if output.contains("did not promote in time") {
            return Err(PgError::Timeout {
                action: "promote",
                seconds: timeout,
                log: self.log_file.clone(),
            });
        }
        Err(PgError::ToolFailed {
            program: "pg_ctl promote".into(),
            detail: last_meaningful_line(&output),
        })
    }

    fn remove_pid_file(&self) -> Result<(), PgError> {
        let path = self.settings.data_dir.join(PID_FILE);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PgError::io("remove", path, e)),
        }
    }

    /// PostgreSQL refuses a data directory it does not own or that others can read; say so
    /// before pg_ctl does, in plainer words, and repair a too-open mode.
    pub(crate) fn check_data_dir_ownership(&self) -> Result<(), PgError> {
        let data_dir = &self.settings.data_dir;
        let user: &OsUser = &self.tools.user;
        let meta = std::fs::metadata(data_dir).map_err(|e| PgError::io("inspect", data_dir, e))?;
        if meta.uid() != user.uid {
            return Err(PgError::WrongOwner {
                path: data_dir.clone(),
                owner: meta.uid(),
                user: user.name.clone(),
                uid: user.uid,
            });
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o027 != 0 {
            tracing::warn!(
                mode = format!("{mode:o}"),
                "data directory mode too open for PostgreSQL; setting 0700"
            );
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| PgError::io("set the mode of", data_dir, e))?;
        }
        if !user.can_write_dir(data_dir) {
            return Err(PgError::NotWritable {
                path: data_dir.clone(),
                user: user.name.clone(),
            });
        }
        Ok(())
    }

    /// After a `kill -9` of the postmaster its socket lock file stays behind, naming the dead
    /// postmaster. PostgreSQL removes such a file itself, unless the pid still answers
    /// `kill(pid, 0)` — which an unreaped zombie does (a container whose init does not reap
    /// orphans): the restart would then fail with "lock file already exists" until the zombie
    /// is reaped. A lock file whose pid is dead or a zombie is stale: remove it.
    fn remove_stale_socket_lock(&self) {
        let dir = self
            .settings
            .socket_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET_DIR));
        let socket = dir.join(format!(".s.PGSQL.{}", self.settings.port));
        let lock = dir.join(format!(".s.PGSQL.{}.lock", self.settings.port));
        let Some(pid) = read_first_line_pid(&lock) else {
            return;
        };
        if classify_pid(pid, &self.settings.data_dir, "postgres") == PidHolder::Dead {
            tracing::warn!(
                pid,
                "removing stale socket lock file {}: process {pid} is not running",
                lock.display()
            );
            let _ = std::fs::remove_file(&lock);
            let _ = std::fs::remove_file(&socket);
        }
    }

    fn prepare_socket_dir(&self) -> Result<(), PgError> {
        if let Some(dir) = &self.settings.socket_dir {
            if !dir.exists() {
                self.tools.user.create_dir_all(dir, 0o755)?;
            }
        }
        Ok(())
    }

    /// Makes sure the server log exists and belongs to the PostgreSQL user (pg_ctl opens it
    /// as that user, who may not be allowed to create files next to the data directory).
    /// Returns its current size: the start of this start's messages.
    fn prepare_log_file(&self) -> Result<u64, PgError> {
        let log = &self.log_file;
        if let Some(parent) = log.parent() {
            if !parent.exists() {
                self.tools.user.create_dir_all(parent, 0o700)?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(log)
            .map_err(|e| PgError::io("open the server log", log, e))?;
        self.tools.user.give(log)?;
        Ok(file.metadata().map(|m| m.len()).unwrap_or(0))
    }

    pub(crate) fn listen_address(&self) -> String {
        let host = &self.settings.listen_host;
        if host.contains(':') && !host.contains(',') {
            format!("[{host}]:{}", self.settings.port)
        } else {
            format!("{host}:{}", self.settings.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_a_port_conflict() {
        let log = "2026-01-01 00:00:00.000 UTC [12] LOG:  could not bind IPv4 address \"127.0.0.1\": Address already in use
2026-01-01 00:00:00.000 UTC [12] HINT:  Is another postmaster already running on port 5714? If not, wait a few seconds and retry.
2026-01-01 00:00:00.000 UTC [12] WARNING:  could not create listen socket for \"127.0.0.1\"
2026-01-01 00:00:00.000 UTC [12] FATAL:  could not create any TCP/IP sockets
";
        assert_eq!(
            explain_failed_start(log),
            vec![
                "FATAL: could not create any TCP/IP sockets",
                "LOG: could not bind IPv4 address \"127.0.0.1\": Address already in use"
            ]
        );
    }

    #[test]
    fn names_the_setting_postgresql_refuses() {
        // PostgreSQL 15 with max_connections = 0, and with an unknown parameter.
        let log = "2026-12-01 06:32:35.612 UTC [13846] LOG:  0 is outside the valid range for parameter \"max_connections\" (1 .. 262143)
2026-12-01 06:32:35.612 UTC [13846] LOG:  unrecognized configuration parameter \"wal_keep_segments\" in file \"/d/postgresql.conf\" line 7
2026-12-01 06:32:35.612 UTC [13846] FATAL:  configuration file \"/d/postgresql.conf\" contains errors
";
        assert_eq!(
            explain_failed_start(log),
            vec![
                "FATAL: configuration file \"/d/postgresql.conf\" contains errors",
                "LOG: 0 is outside the valid range for parameter \"max_connections\" (1 .. 262143)",
                "LOG: unrecognized configuration parameter \"wal_keep_segments\" in file \"/d/postgresql.conf\" line 7",
            ]
        );
        // Ordinary start-up LOG lines are not an explanation.
        let log = "2026-12-01 06:32:37.718 UTC [13903] LOG:  starting PostgreSQL 15.10 on x86_64-pc-linux-gnu
2026-12-01 06:32:37.718 UTC [13903] FATAL:  WAL streaming (max_wal_senders > 0) requires wal_level \"replica\" or \"logical\"
";
        assert_eq!(
            explain_failed_start(log),
            vec!["FATAL: WAL streaming (max_wal_senders > 0) requires wal_level \"replica\" or \"logical\""]
        );
    }

    #[test]
    fn dead_and_foreign_pids_are_not_postmasters() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(classify_pid(pid, dir.path(), "postgres"), PidHolder::Dead);
        let me = std::process::id();
        assert!(matches!(
            classify_pid(me, dir.path(), "postgres"),
            PidHolder::Stranger(_)
        ));
    }
}
