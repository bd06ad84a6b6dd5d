//! Starting PostgreSQL programs: the right binary, as the right OS user, with an environment
//! that cannot redirect them (no inherited `PG*` variables) and C-locale messages so the
//! agent can parse them.

use std::path::PathBuf;
use std::process::Stdio;

use crate::config::BinNames;

use super::error::PgError;
use super::os_user::OsUser;

/// libpq / PostgreSQL variables that would silently change what a program connects to or
/// operates on if the agent's own environment happened to set them.
const INHERITED_PG_VARIABLES: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGDATABASE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGSSLMODE",
    "PGTARGETSESSIONATTRS",
    "PGCONNECT_TIMEOUT",
    "PGSYSCONFDIR",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    Initdb,
    PgCtl,
    Postgres,
    PgBasebackup,
    PgControldata,
    PgRewind,
    PgIsready,
}

impl Program {
    pub fn default_name(self) -> &'static str {
        match self {
            Program::Initdb => "initdb",
            Program::PgCtl => "pg_ctl",
            Program::Postgres => "postgres",
            Program::PgBasebackup => "pg_basebackup",
            Program::PgControldata => "pg_controldata",
            Program::PgRewind => "pg_rewind",
            Program::PgIsready => "pg_isready",
        }
    }

    fn configured_name(self, names: &BinNames) -> Option<&str> {
        match self {
            Program::Initdb => names.initdb.as_deref(),
            Program::PgCtl => names.pg_ctl.as_deref(),
            Program::Postgres => names.postgres.as_deref(),
            Program::PgBasebackup => names.pg_basebackup.as_deref(),
            Program::PgControldata => names.pg_controldata.as_deref(),
            Program::PgRewind => names.pg_rewind.as_deref(),
            Program::PgIsready => names.pg_isready.as_deref(),
        }
    }
}

/// Where the programs are and who runs them.
#[derive(Debug, Clone)]
pub struct Tools {
    pub bin_dir: PathBuf,
    pub names: BinNames,
    pub user: OsUser,
}

impl Tools {
    pub fn path(&self, program: Program) -> PathBuf {
        self.bin_dir.join(
            program
                .configured_name(&self.names)
                .unwrap_or(program.default_name()),
        )
    }

    /// Fails with a clear message when a program is not where the settings say.
    pub fn check(&self, program: Program) -> Result<(), PgError> {
        let path = self.path(program);
        if path.is_file() {
            Ok(())
        } else {
            Err(PgError::ProgramMissing {
                program: path
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                dir: self.bin_dir.clone(),
            })
        }
    }

    /// An async command for `program`, stdin closed, stdout/stderr piped.
    pub fn command(&self, program: Program) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.path(program));
        for variable in INHERITED_PG_VARIABLES {
            command.env_remove(variable);
        }
        command
            .env("LC_MESSAGES", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        self.user.apply(&mut command);
        command
    }

    /// A blocking command for `program` (for the few synchronous calls, e.g. pg_controldata).
    pub fn std_command(&self, program: Program) -> std::process::Command {
        let mut command = std::process::Command::new(self.path(program));
        for variable in INHERITED_PG_VARIABLES {
            command.env_remove(variable);
        }
        command
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.user.apply_std(&mut command);
        command
    }
}

/// The output of a finished program.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The most telling line of the output for an error message: the last `FATAL`/`error`
    /// line if any, else the last non-empty line.
    pub fn last_meaningful_line(&self) -> String {
        last_meaningful_line(&format!("{}\n{}", self.stdout, self.stderr))
    }
}

pub fn last_meaningful_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines
        .iter()
        .rev()
        .find(|l| {
            l.contains("FATAL") || l.contains("error:") || l.contains("ERROR") || l.contains("could not")
        })
        .or(lines.last())
        .map(|l| l.to_string())
        .unwrap_or_else(|| "no output".to_string())
}

/// Runs a command to completion, collecting its output.
pub async fn run(mut command: tokio::process::Command, label: &str) -> Result<Finished, PgError> {
    let output = command.output().await.map_err(|e| PgError::ToolFailed {
        program: label.to_string(),
        detail: format!("could not run it: {e}"),
    })?;
    Ok(Finished {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_telling_line() {
        let text = "waiting for server to start.... stopped waiting\npg_ctl: could not start server\nExamine the log output.\n";
        assert_eq!(last_meaningful_line(text), "pg_ctl: could not start server");
        assert_eq!(last_meaningful_line("a\n\nb\n"), "b");
        assert_eq!(last_meaningful_line(""), "no output");
    }
}
