//! Rejoining a former primary as a replica: `pg_rewind` takes its data directory back to
//! where its timeline left the new primary's; when that cannot work, the data directory is
//! emptied for a new base backup.

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::basebackup::parse_progress;
use super::conninfo::quote_conninfo_value;
use super::data_dir::DataDirState;
use super::error::PgError;
use super::fresh_dir::remove_contents;
use super::secret_file::SecretFile;
use super::settings::Credentials;
use super::tool::{last_meaningful_line, Program};
use super::Postgres;

/// How often copy progress is logged at most.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// pg_rewind has no timeout of its own: without one, a source that drops packets would hold
/// the HA loop for the kernel's TCP connect timeout (minutes).
const CONNECT_TIMEOUT_SECONDS: u32 = 10;
/// How many of pg_rewind's error lines go into an error message.
const ERROR_LINES: usize = 3;

/// The running server pg_rewind copies from (normally the new primary), and the role it logs
/// in as: `postgresql.authentication.rewind`, or the superuser when none is configured.
#[derive(Clone, PartialEq, Eq)]
pub struct RewindSource {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    /// Any database the role may connect to; pg_rewind only calls functions in it.
    pub dbname: String,
    /// The role's libpq TLS options, `keyword='value'` (see `conninfo::libpq_options`).
    pub libpq: Vec<String>,
}

impl RewindSource {
    /// The server at `host:port`, logged in as `credentials`, through database `postgres`.
    pub fn new(host: impl Into<String>, port: u16, credentials: &Credentials) -> Self {
        RewindSource {
            host: host.into(),
            port,
            user: credentials.username.clone(),
            password: credentials.password.clone(),
            dbname: "postgres".to_string(),
            libpq: super::conninfo::libpq_options(credentials),
        }
    }

    /// `host:port` (`[v6]:port` for IPv6), for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The libpq connection string for `--source-server`. The password is not in it (command
    /// lines are visible to every local user); it goes through a temporary pgpass file.
    pub fn conninfo(&self) -> String {
        let mut conninfo = format!(
            "host={} port={} user={} dbname={} connect_timeout={CONNECT_TIMEOUT_SECONDS}",
            quote_conninfo_value(&self.host),
            self.port,
            quote_conninfo_value(&self.user),
            quote_conninfo_value(&self.dbname),
        );
        for option in &self.libpq {
            conninfo.push(' ');
            conninfo.push_str(option);
        }
        conninfo
    }
}

/// Passwords stay out of logs and debug output.
impl std::fmt::Debug for RewindSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RewindSource")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("dbname", &self.dbname)
            .finish()
    }
}

/// What [`Postgres::rewind`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewindOutcome {
    /// The target's history is part of the source's ("no rewind required"): it can stream
    /// from the source as it is. Nothing was changed.
    NotNeeded,
    /// Dry run only: the target has diverged and a rewind would change it.
    Needed,
    /// The target was rewound. It must now start as a standby of the source (standby.signal)
    /// to replay the source's WAL up to a consistent point.
    Rewound,
}

/// The outcome of a pg_rewind run that succeeded, from its messages.
fn outcome(messages: &[String], dry_run: bool) -> RewindOutcome {
    if messages.iter().any(|line| line.contains("no rewind required")) {
        RewindOutcome::NotNeeded
    } else if dry_run {
        RewindOutcome::Needed
    } else {
        RewindOutcome::Rewound
    }
}

/// Whether a failed run had started changing the target. pg_rewind announces the amount to
/// copy (with `--progress`) just before its point of no return; a dry run changes nothing.
fn target_modified(messages: &[String], dry_run: bool) -> bool {
    !dry_run && messages.iter().any(|line| line.contains("need to copy"))
}

/// The operator-readable reason of a failed run: pg_rewind's last error lines (with the
/// detail lines libpq adds below them), without the program-name prefix, plus a hint for
/// the failures that have a known remedy.
fn failure_detail(messages: &[String], dry_run: bool) -> String {
    let mut errors: Vec<String> = Vec::new();
    let mut in_error = false;
    for line in messages {
        if let Some(text) = line
            .strip_prefix("pg_rewind: error: ")
            .or_else(|| line.strip_prefix("pg_rewind: fatal: "))
        {
            errors.push(text.trim().to_string());
            in_error = true;
        } else if let Some(text) = line
            .strip_prefix("pg_rewind: detail: ")
            .or_else(|| line.strip_prefix("pg_rewind: hint: "))
            .or_else(|| (!line.starts_with("pg_rewind:")).then_some(line.as_str()))
        {
            // Continuation of the error above it (libpq's second line, a DETAIL or HINT),
            // except libpq's note naming the agent's temporary, already deleted pgpass file.
            match errors.last_mut() {
                Some(_) if text.starts_with("password retrieved from file") => {}
                Some(last) if in_error => {
                    last.push_str("; ");
                    last.push_str(text.trim());
                }
                _ => {}
            }
        } else {
            in_error = false;
        }
    }
    let all = messages.join("\n");
    let mut detail = if errors.is_empty() {
        last_meaningful_line(&all)
    } else {
        errors[errors.len().saturating_sub(ERROR_LINES)..].join("; ")
    };
    if let Some(hint) = hint(&all, dry_run) {
        detail.push_str(" (");
        detail.push_str(hint);
        detail.push(')');
    }
    detail
}

/// What the operator can do about the failures whose remedy is known.
fn hint(output: &str, dry_run: bool) -> Option<&'static str> {
    if output.contains("password authentication failed") {
        Some("check the password of postgresql.authentication.rewind, or of the superuser when no rewind role is configured")
    } else if output.contains("wal_log_hints") {
        Some("set wal_log_hints = on and restart, or initialise with data checksums; until then this member needs a new base backup")
    } else if output.contains("could not find previous WAL record") {
        Some("the data directory no longer has the WAL back to the last checkpoint both servers share; keep more WAL (wal_keep_size) or take a new base backup")
    } else if dry_run && output.contains("must be shut down cleanly") {
        Some("a dry run cannot run the crash recovery pg_rewind needs first; rewind without a dry run, or start and stop the server cleanly")
    } else {
        None
    }
}

fn megabytes(kb: u64) -> String {
    format!("{} MB", kb.div_ceil(1024))
}

impl Postgres {
    /// Runs `pg_rewind --target-pgdata=<data_dir> --source-server=<source> --progress`
    /// (`--dry-run` when asked) as the PostgreSQL OS user, logging its messages and copy
    /// progress at INFO. The server must be stopped. A target that was not shut down cleanly
    /// is first taken through crash recovery by pg_rewind itself (single-user mode); a dry
    /// run cannot do that and fails on such a target.
    ///
    /// For the caller:
    /// - the source must have checkpointed since its promotion (`CHECKPOINT` on it), or its
    ///   control file still shows the old timeline and pg_rewind wrongly finds that no
    ///   rewind is required;
    /// - the target needs data checksums or `wal_log_hints` ([`ControlData::can_rewind`]),
    ///   and its WAL back to the last checkpoint both servers share;
    /// - pg_rewind copies the source's configuration files too: write the configuration
    ///   ([`Postgres::write_config`], with standby settings) before starting after
    ///   [`RewindOutcome::Rewound`];
    /// - a failed run that had begun copying ([`PgError::Rewind`] with `target_modified`)
    ///   leaves an unusable directory; so does cancelling this future mid-copy (pg_rewind is
    ///   killed).
    ///
    /// [`ControlData::can_rewind`]: super::ControlData::can_rewind
    pub async fn rewind(&self, source: &RewindSource, dry_run: bool) -> Result<RewindOutcome, PgError> {
        self.tools.check(Program::PgRewind)?;
        let data_dir = &self.settings.data_dir;
        if !data_dir.join("PG_VERSION").is_file() {
            return Err(PgError::NotInitialized {
                path: data_dir.clone(),
                reason: "no PG_VERSION".into(),
            });
        }
        if let Some(pid) = self.postmaster_pid() {
            return Err(PgError::Running {
                operation: "pg_rewind",
                path: data_dir.clone(),
                pid,
            });
        }
        // pg_rewind runs as the PostgreSQL user and rewrites files throughout the directory.
        self.check_data_dir_ownership()?;
        let user = &self.tools.user;
        let pgpass = SecretFile::pgpass(user, &source.user, source.password.as_deref())?;

        let mut command = self.tools.command(Program::PgRewind);
        command
            .arg("--target-pgdata")
            .arg(data_dir)
            .arg("--source-server")
            .arg(source.conninfo())
            .arg("--progress");
        if dry_run {
            command.arg("--dry-run");
        }
        if let Some(file) = &pgpass {
            command.env("PGPASSFILE", file.path());
        }
        let address = source.address();
        tracing::info!(source = %address, user = %source.user, data_dir = %data_dir.display(), dry_run, "pg_rewind starting");
        let failed = |detail: String, target_modified: bool| PgError::Rewind {
            source_addr: address.clone(),
            detail,
            target_modified,
        };
        let mut child = command
            .spawn()
            .map_err(|e| failed(format!("could not run pg_rewind: {e}"), false))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        // pg_rewind writes its messages to stderr; drain stdout too so it never blocks.
        let drain_stdout = async {
            let mut bytes = Vec::new();
            let _ = stdout.read_to_end(&mut bytes).await;
            bytes
        };
        let (status, mut messages, printed) =
            tokio::join!(child.wait(), follow_output(stderr, &address), drain_stdout);
        drop(pgpass);
        messages.extend(
            String::from_utf8_lossy(&printed)
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .map(str::to_string),
        );
        let status = status.map_err(|e| failed(format!("waiting for pg_rewind: {e}"), false))?;
        if !status.success() {
            let modified = target_modified(&messages, dry_run);
            return Err(failed(failure_detail(&messages, dry_run), modified));
        }
        let outcome = outcome(&messages, dry_run);
        tracing::info!(source = %address, ?outcome, "pg_rewind done");
        Ok(outcome)
    }

    /// Removes everything inside the data directory so a new base backup can fill it,
    /// keeping the directory itself with its owner and mode (the agent may not be allowed to
    /// create it again in its parent). Refused while PostgreSQL runs, and for a directory
    /// that is not a PostgreSQL data directory. A missing or empty directory is left as it
    /// is. Symbolic links inside (an external pg_wal, tablespaces) are removed as links; what
    /// they point to is left alone.
    pub async fn remove_data_dir(&self) -> Result<(), PgError> {
        const OPERATION: &str = "removing the data directory";
        let data_dir = self.settings.data_dir.clone();
        if let Some(pid) = self.postmaster_pid() {
            return Err(PgError::Running {
                operation: OPERATION,
                path: data_dir,
                pid,
            });
        }
        // PG_VERSION is what makes it PostgreSQL's; its control file may well be damaged
        // (that is often why the directory is being replaced), so pg_controldata is not asked.
        if !data_dir.join("PG_VERSION").is_file() {
            match self.data_dir_state()? {
                DataDirState::Missing | DataDirState::Empty => return Ok(()),
                DataDirState::NotPostgres(reason) => {
                    return Err(PgError::NotPostgres {
                        operation: OPERATION,
                        path: data_dir,
                        reason,
                    })
                }
                DataDirState::Initialized { .. } | DataDirState::Damaged(_) => {}
            }
        }
        tracing::warn!(data_dir = %data_dir.display(), "removing the contents of the data directory");
        // A large directory takes a while to delete: keep it off the async workers.
        let path = data_dir.clone();
        tokio::task::spawn_blocking(move || remove_contents(&path))
            .await
            .map_err(|e| PgError::io("empty", &data_dir, std::io::Error::other(e)))??;
        tracing::info!(data_dir = %data_dir.display(), "data directory emptied");
        Ok(())
    }
}

/// Reads pg_rewind's stderr: copy progress (`12345/52345 kB (23%) copied`, ending in `\r` on
/// a terminal and `\n` otherwise) is logged at most once a second, plus the final figures;
/// every other line is logged and returned.
async fn follow_output(mut stderr: tokio::process::ChildStderr, address: &str) -> Vec<String> {
    let mut messages = Vec::new();
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut last_report: Option<Instant> = None;
    let mut unreported = None;
    let report = |done_kb: u64, total_kb: u64, percent: u8| {
        tracing::info!(
            "pg_rewind from {address}: {percent}% copied ({} of {})",
            megabytes(done_kb),
            megabytes(total_kb)
        );
    };
    loop {
        let read = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..read]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let raw: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw[..raw.len() - 1]).trim().to_string();
            if line.is_empty() {
                continue;
            }
            match parse_progress(&line) {
                Some(step) if last_report.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL) => {
                    last_report = Some(Instant::now());
                    unreported = None;
                    report(step.done_kb, step.total_kb, step.percent);
                }
                Some(step) => unreported = Some(step),
                None => {
                    // The final figures belong before the message that follows the copy.
                    if let Some(step) = unreported.take() {
                        report(step.done_kb, step.total_kb, step.percent);
                    }
                    tracing::info!(source = %address, "{line}");
                    messages.push(line);
                }
            }
        }
    }
    let rest = String::from_utf8_lossy(&pending).trim().to_string();
    if !rest.is_empty() {
        tracing::info!(source = %address, "{rest}");
        messages.push(rest);
    }
    if let Some(step) = unreported {
        report(step.done_kb, step.total_kb, step.percent);
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// PostgreSQL 15 `pg_rewind --progress` rewinding a former primary.
    const REWOUND: &str = "pg_rewind: connected to server
pg_rewind: servers diverged at WAL location 0/3018058 on timeline 1
pg_rewind: rewinding from last common checkpoint at 0/2000060 on timeline 1
pg_rewind: reading source file list
pg_rewind: reading target file list
pg_rewind: reading WAL in target
pg_rewind: need to copy 51 MB (total source directory size is 70 MB)
pg_rewind: creating backup label and updating control file
pg_rewind: syncing target data directory
pg_rewind: Done!
";

    const NOT_NEEDED: &str = "pg_rewind: connected to server
pg_rewind: source and target cluster are on the same timeline
pg_rewind: no rewind required
";

    #[test]
    fn reads_the_outcome_from_the_messages() {
        assert_eq!(outcome(&lines(REWOUND), false), RewindOutcome::Rewound);
        assert_eq!(outcome(&lines(REWOUND), true), RewindOutcome::Needed);
        assert_eq!(outcome(&lines(NOT_NEEDED), false), RewindOutcome::NotNeeded);
        assert_eq!(outcome(&lines(NOT_NEEDED), true), RewindOutcome::NotNeeded);
    }

    #[test]
    fn the_copy_progress_line_is_understood() {
        let step = parse_progress("    0/53069 kB (0%) copied").unwrap();
        assert_eq!((step.done_kb, step.total_kb, step.percent), (0, 53069, 0));
        let step = parse_progress("53069/53069 kB (100%) copied").unwrap();
        assert_eq!(step.percent, 100);
        assert!(
            parse_progress("pg_rewind: need to copy 51 MB (total source directory size is 70 MB)").is_none()
        );
    }

    #[test]
    fn explains_an_unreachable_source() {
        let output = lines(
            "pg_rewind: error: connection to server at \"127.0.0.1\", port 5737 failed: Connection refused
\tIs the server running on that host and accepting TCP/IP connections?",
        );
        assert_eq!(
            failure_detail(&output, false),
            "connection to server at \"127.0.0.1\", port 5737 failed: Connection refused; Is the server running on that host and accepting TCP/IP connections?"
        );
        assert!(!target_modified(&output, false));
    }

    #[test]
    fn explains_a_wrong_password() {
        let output = lines(
            "pg_rewind: error: connection to server at \"127.0.0.1\", port 5731 failed: FATAL:  password authentication failed for user \"rewinder\"",
        );
        let detail = failure_detail(&output, true);
        assert!(detail.starts_with("connection to server at \"127.0.0.1\", port 5731 failed: FATAL:  password authentication failed for user \"rewinder\" (check the password of postgresql.authentication.rewind"), "{detail}");
        // libpq's note about the pgpass file is noise: the file was the agent's own.
        let mut output = output;
        output.push("password retrieved from file \"/tmp/pgquorum-pgpass-1-2-3\"".into());
        assert_eq!(failure_detail(&output, true), detail);
    }

    #[test]
    fn explains_missing_hints_and_missing_wal() {
        let output = lines(
            "pg_rewind: connected to server
pg_rewind: error: target server needs to use either data checksums or \"wal_log_hints = on\"",
        );
        assert_eq!(
            failure_detail(&output, false),
            "target server needs to use either data checksums or \"wal_log_hints = on\" (set wal_log_hints = on and restart, or initialise with data checksums; until then this member needs a new base backup)"
        );
        let output = lines(
            "pg_rewind: connected to server
pg_rewind: servers diverged at WAL location 0/3018058 on timeline 1
pg_rewind: error: could not open file \"/d/pg_wal/000000010000000000000002\": No such file or directory
pg_rewind: error: could not find previous WAL record at 0/2000100",
        );
        let detail = failure_detail(&output, false);
        assert!(
            detail.starts_with("could not open file \"/d/pg_wal/000000010000000000000002\": No such file or directory; could not find previous WAL record at 0/2000100 (the data directory no longer has the WAL"),
            "{detail}"
        );
        assert!(!target_modified(&output, false));
    }

    #[test]
    fn a_dry_run_cannot_recover_an_unclean_target() {
        let output = lines(
            "pg_rewind: connected to server
pg_rewind: executing \"/usr/lib/postgresql/15/bin/postgres\" for target server to complete crash recovery
pg_rewind: error: target server must be shut down cleanly",
        );
        assert!(failure_detail(&output, true).contains("a dry run cannot run the crash recovery"));
        assert_eq!(
            failure_detail(&output, false),
            "target server must be shut down cleanly"
        );
    }

    #[test]
    fn knows_when_the_target_was_being_rewritten() {
        let mut output = lines(REWOUND);
        output.truncate(7);
        output.push("pg_rewind: error: could not fetch remote file \"base/1/1259\": server closed the connection unexpectedly".into());
        assert!(target_modified(&output, false));
        assert!(!target_modified(&output, true));
        let err = PgError::Rewind {
            source_addr: "10.0.0.1:5432".into(),
            detail: failure_detail(&output, false),
            target_modified: true,
        };
        assert_eq!(
            err.to_string(),
            "pg_rewind from 10.0.0.1:5432 failed: could not fetch remote file \"base/1/1259\": server closed the connection unexpectedly; it had begun rewriting the data directory, which cannot be started until a rewind succeeds or a new base backup replaces it"
        );
    }

    #[test]
    fn without_error_lines_the_last_line_is_used() {
        assert_eq!(failure_detail(&lines("something odd\n"), false), "something odd");
        assert_eq!(failure_detail(&[], false), "no output");
    }

    #[test]
    fn conninfo_has_no_password_and_quotes_values() {
        let source = RewindSource::new("10.0.0.1", 5432, &Credentials::new("re'winder", Some("s3cret")));
        let conninfo = source.conninfo();
        assert_eq!(
            conninfo,
            "host='10.0.0.1' port=5432 user='re\\'winder' dbname='postgres' connect_timeout=10 sslmode=prefer"
        );
        let mut tls = Credentials::new("rewinder", None);
        tls.libpq = vec![
            ("sslmode", "verify-ca".into()),
            ("sslrootcert", "/tls/ca.pem".into()),
        ];
        assert!(
            RewindSource::new("h", 1, &tls)
                .conninfo()
                .ends_with("connect_timeout=10 sslmode='verify-ca' sslrootcert='/tls/ca.pem'"),
            "the rewind role's TLS options reach pg_rewind"
        );
        assert!(!format!("{source:?}").contains("s3cret"));
        assert_eq!(source.address(), "10.0.0.1:5432");
        assert_eq!(
            RewindSource::new("::1", 5, &Credentials::new("u", None)).address(),
            "[::1]:5"
        );
    }
}
