//! Cloning another member with `pg_basebackup`, only ever into a missing or empty directory,
//! reporting progress as it goes.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use super::conninfo::ConnTarget;
use super::error::PgError;
use super::fresh_dir::FreshDataDir;
use super::initdb::option_args;
use super::secret_file::SecretFile;
use super::tool::{last_meaningful_line, Program};
use super::Postgres;

/// How often progress is reported at most.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// Options the agent sets itself.
const OWN_OPTIONS: &[&str] = &[
    "pgdata", "D", "host", "h", "port", "p", "username", "U", "progress", "P",
];

/// One pg_basebackup progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupProgress {
    pub done_kb: u64,
    pub total_kb: u64,
    pub percent: u8,
}

/// Parses `  12345/27000 kB (45%), 0/1 tablespace (…)`, pg_basebackup's `--progress` line.
pub fn parse_progress(line: &str) -> Option<BackupProgress> {
    let (sizes, rest) = line.trim_start().split_once(" kB")?;
    let (done, total) = sizes.split_once('/')?;
    let done_kb = done.trim().parse().ok()?;
    let total_kb = total.trim().parse().ok()?;
    let percent = rest
        .trim_start()
        .strip_prefix('(')
        .and_then(|r| r.split_once('%'))
        .and_then(|(p, _)| p.trim().parse().ok())
        .unwrap_or(0);
    Some(BackupProgress {
        done_kb,
        total_kb,
        percent,
    })
}

fn megabytes(kb: u64) -> String {
    format!("{} MB", kb.div_ceil(1024))
}

impl Postgres {
    /// Clones `source` into the data directory with
    /// `pg_basebackup -X stream -c fast --progress --verbose` as the replication user (password
    /// through a temporary pgpass file), plus `settings.basebackup_options`. The data
    /// directory must be missing or empty; on failure it is put back as it was. `progress`
    /// is called at most once a second while copying, and once more with the final figures.
    pub async fn basebackup(
        &self,
        source: &ConnTarget,
        progress: &(dyn Fn(BackupProgress) + Send + Sync),
    ) -> Result<(), PgError> {
        self.tools.check(Program::PgBasebackup)?;
        let data_dir = &self.settings.data_dir;
        let user = &self.tools.user;
        let extra = option_args(&self.settings.basebackup_options);
        let option_name = |arg: &str| {
            arg.trim_start_matches('-')
                .split('=')
                .next()
                .unwrap_or("")
                .to_string()
        };
        if let Some(arg) = extra
            .iter()
            .find(|arg| OWN_OPTIONS.contains(&option_name(arg).as_str()))
        {
            return Err(PgError::Settings(format!(
                "pg_basebackup option {arg} is set by the agent itself; remove it from postgresql.basebackup"
            )));
        }
        let fresh = FreshDataDir::prepare(data_dir, self.data_dir_state()?, user, "base backup")?;
        let replication = &self.settings.replication;
        let pgpass = SecretFile::pgpass(user, &replication.username, replication.password.as_deref())?;

        let mut command = self.tools.command(Program::PgBasebackup);
        command
            .arg("--pgdata")
            .arg(data_dir)
            .args([
                "--wal-method=stream",
                "--checkpoint=fast",
                "--progress",
                "--verbose",
                "--no-password",
            ])
            .arg("--host")
            .arg(&source.host)
            .arg("--port")
            .arg(source.port.to_string())
            .arg("--username")
            .arg(&replication.username)
            .args(&extra);
        if let Some(file) = &pgpass {
            command.env("PGPASSFILE", file.path());
        }
        // sslmode, sslcert, … of the replication role (libpq reads them from the environment).
        command.envs(replication.libpq_env());
        tracing::info!(source = %source.name, address = %source.address(), data_dir = %data_dir.display(), "base backup starting");
        let failed = |detail: String| PgError::Basebackup {
            source_addr: source.address(),
            detail,
        };
        let mut child = command
            .spawn()
            .map_err(|e| failed(format!("could not run pg_basebackup: {e}")))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (status, messages) = tokio::join!(
            async {
                // stdout is normally silent; drain it so the program never blocks on it.
                let mut stdout = stdout;
                let mut sink = Vec::new();
                let _ = stdout.read_to_end(&mut sink).await;
                child.wait().await
            },
            self.follow_progress(stderr, source, progress),
        );
        drop(pgpass);
        let status: ExitStatus = status.map_err(|e| failed(format!("waiting for pg_basebackup: {e}")))?;
        if !status.success() {
            // Dropping `fresh` puts the directory back as it was.
            return Err(failed(last_meaningful_line(&messages.join("\n"))));
        }
        fresh.commit();
        tracing::info!(source = %source.name, data_dir = %data_dir.display(), "base backup done");
        Ok(())
    }

    /// Reads pg_basebackup's stderr: progress lines (ending in `\r` on a terminal, `\n`
    /// otherwise) go to `progress` and the log; other lines are returned for error messages.
    async fn follow_progress(
        &self,
        mut stderr: tokio::process::ChildStderr,
        source: &ConnTarget,
        progress: &(dyn Fn(BackupProgress) + Send + Sync),
    ) -> Vec<String> {
        let mut messages = Vec::new();
        let mut pending = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut last_report: Option<Instant> = None;
        // The newest figures not yet passed to `progress`.
        let mut unreported: Option<BackupProgress> = None;
        let report = |step: BackupProgress| {
            tracing::info!(
                "base backup from {}: {}% ({} of {})",
                source.name,
                step.percent,
                megabytes(step.done_kb),
                megabytes(step.total_kb)
            );
            progress(step);
        };
        loop {
            let read = match stderr.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            pending.extend_from_slice(&chunk[..read]);
            while let Some(end) = pending.iter().position(|b| *b == b'\n' || *b == b'\r') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line[..line.len() - 1])
                    .trim()
                    .to_string();
                if line.is_empty() {
                    continue;
                }
                match parse_progress(&line) {
                    Some(step) if last_report.is_none_or(|at| at.elapsed() >= PROGRESS_INTERVAL) => {
                        last_report = Some(Instant::now());
                        unreported = None;
                        report(step);
                    }
                    Some(step) => unreported = Some(step),
                    None => {
                        tracing::debug!(source = %source.name, "pg_basebackup: {line}");
                        messages.push(line);
                    }
                }
            }
        }
        let rest = String::from_utf8_lossy(&pending).trim().to_string();
        if !rest.is_empty() {
            messages.push(rest);
        }
        if let Some(step) = unreported {
            // The final figures, even though they came within a second of the previous ones.
            report(step);
        }
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_progress_lines() {
        assert_eq!(
            parse_progress("   12345/27000 kB (45%), 0/1 tablespace (/data/base/1/1259   )"),
            Some(BackupProgress {
                done_kb: 12345,
                total_kb: 27000,
                percent: 45
            })
        );
        assert_eq!(
            parse_progress("27000/27000 kB (100%), 1/1 tablespace"),
            Some(BackupProgress {
                done_kb: 27000,
                total_kb: 27000,
                percent: 100
            })
        );
        assert_eq!(parse_progress("pg_basebackup: checkpoint completed"), None);
        assert_eq!(
            parse_progress("pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1"),
            None
        );
    }

    #[test]
    fn sizes_in_megabytes_round_up() {
        assert_eq!(megabytes(0), "0 MB");
        assert_eq!(megabytes(1), "1 MB");
        assert_eq!(megabytes(27_648), "27 MB");
    }
}
