//! Creating a new cluster with `initdb`, only ever into a missing or empty directory.

use crate::config::ToolOption;

use super::error::PgError;
use super::fresh_dir::FreshDataDir;
use super::secret_file::SecretFile;
use super::tool::{run, Program};
use super::Postgres;

/// Options the agent sets itself; a user option of the same name would contradict them.
const OWN_OPTIONS: &[&str] = &["pgdata", "D", "username", "U", "pwfile", "pwprompt", "W"];

/// One argument per option (`ToolOption::to_arg` joins a multi-entry mapping with spaces,
/// which a program would receive as a single argument).
pub(crate) fn option_args(options: &[ToolOption]) -> Vec<String> {
    options
        .iter()
        .flat_map(|option| match option {
            ToolOption::Flag(flag) => vec![format!("--{flag}")],
            ToolOption::Setting(map) => map
                .iter()
                .map(|(name, value)| format!("--{name}={value}"))
                .collect(),
        })
        .collect()
}

fn option_name(arg: &str) -> &str {
    arg.trim_start_matches('-').split('=').next().unwrap_or("")
}

impl Postgres {
    /// Runs initdb into the data directory, which must be missing or empty. Creates it (0700,
    /// owned by the PostgreSQL OS user) when missing. The superuser is
    /// `settings.superuser.username`; its password goes through a temporary `--pwfile`.
    /// `options` are extra initdb options (`bootstrap.initdb`: `data-checksums`,
    /// `{encoding: UTF8}` …). On failure the directory is put back as it was.
    pub async fn initdb(&self, options: &[ToolOption]) -> Result<(), PgError> {
        self.tools.check(Program::Initdb)?;
        let data_dir = &self.settings.data_dir;
        let user = &self.tools.user;
        let extra = option_args(options);
        if let Some(arg) = extra.iter().find(|arg| OWN_OPTIONS.contains(&option_name(arg))) {
            return Err(PgError::Settings(format!(
                "initdb option {arg} is set by the agent itself; remove it from bootstrap.initdb"
            )));
        }

        let fresh = FreshDataDir::prepare(data_dir, self.data_dir_state()?, user, "initdb")?;
        let pwfile = match &self.settings.superuser.password {
            Some(password) => Some(SecretFile::create(user, "pwfile", &format!("{password}\n"))?),
            None => None,
        };
        let mut command = self.tools.command(Program::Initdb);
        command
            .arg(format!("--pgdata={}", data_dir.display()))
            .arg(format!("--username={}", self.settings.superuser.username));
        if let Some(file) = &pwfile {
            command.arg(format!("--pwfile={}", file.path().display()));
        }
        command.args(&extra);
        tracing::info!(data_dir = %data_dir.display(), options = ?extra, "initializing a new PostgreSQL cluster (initdb)");
        let finished = run(command, "initdb").await?;
        drop(pwfile);
        if !finished.success {
            // Dropping `fresh` puts the directory back as it was.
            return Err(PgError::ToolFailed {
                program: "initdb".into(),
                detail: finished.last_meaningful_line(),
            });
        }
        fresh.commit();
        tracing::info!(data_dir = %data_dir.display(), "initdb done");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn options_become_one_argument_each() {
        let mut setting = BTreeMap::new();
        setting.insert("encoding".to_string(), "UTF8".to_string());
        setting.insert("locale".to_string(), "C".to_string());
        let options = vec![
            ToolOption::Flag("data-checksums".into()),
            ToolOption::Setting(setting),
        ];
        assert_eq!(
            option_args(&options),
            vec!["--data-checksums", "--encoding=UTF8", "--locale=C"]
        );
        assert_eq!(option_name("--username=x"), "username");
        assert_eq!(option_name("--data-checksums"), "data-checksums");
    }
}
