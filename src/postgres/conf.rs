//! The configuration files the agent owns in the data directory.
//!
//! - `postgresql.conf` is entirely the agent's. The first time it finds one it did not write,
//!   it renames it to `postgresql.base.conf` and includes that at the top of its own file, so
//!   the user's settings keep applying unless the agent sets the same name (as Patroni does).
//! - `pg_hba.conf` is written from `postgresql.pg_hba` exactly as given, under a header; when
//!   that list is empty the existing file is left alone. Nothing is added implicitly.
//! - `standby.signal` exists exactly when the member should run as a standby; the recovery
//!   settings (`primary_conninfo`, `primary_slot_name`, `recovery_target_timeline`) go into
//!   `postgresql.conf` (PostgreSQL 12 and later).
//!
//! Files are replaced atomically (write a temporary file, fsync, rename) and only when their
//! content changes.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::error::PgError;
use super::os_user::OsUser;
use super::param_compat::{CompatNote, PgBinary, Translated};
use super::settings::PostgresSettings;

/// First line of every file the agent writes; how it recognises its own `postgresql.conf`.
pub const HEADER: &str = "# Do not edit: managed by pgquorum";
pub const CONF_FILE: &str = "postgresql.conf";
pub const BASE_CONF_FILE: &str = "postgresql.base.conf";
pub const HBA_FILE: &str = "pg_hba.conf";
pub const STANDBY_SIGNAL: &str = "standby.signal";

/// Recovery settings only a standby has; never written for a primary.
const STANDBY_PARAMETERS: &[&str] = &[
    "primary_conninfo",
    "primary_slot_name",
    "recovery_target_timeline",
];

/// PostgreSQL 15's `postmaster`-context parameters (a change needs a restart), used when the
/// server is not running to ask `pg_settings`.
pub const POSTMASTER_PARAMETERS: &[&str] = &[
    "archive_mode",
    "autovacuum_freeze_max_age",
    "autovacuum_max_workers",
    "autovacuum_multixact_freeze_max_age",
    "bonjour",
    "bonjour_name",
    "cluster_name",
    "config_file",
    "data_directory",
    "data_sync_retry",
    "dynamic_shared_memory_type",
    "event_source",
    "external_pid_file",
    "hba_file",
    "hot_standby",
    "huge_page_size",
    "huge_pages",
    "ident_file",
    "ignore_invalid_pages",
    "jit_provider",
    "listen_addresses",
    "logging_collector",
    "max_connections",
    "max_files_per_process",
    "max_locks_per_transaction",
    "max_logical_replication_workers",
    "max_pred_locks_per_transaction",
    "max_prepared_transactions",
    "max_replication_slots",
    "max_wal_senders",
    "max_worker_processes",
    "min_dynamic_shared_memory",
    "old_snapshot_threshold",
    "port",
    "recovery_target",
    "recovery_target_action",
    "recovery_target_inclusive",
    "recovery_target_lsn",
    "recovery_target_name",
    "recovery_target_time",
    "recovery_target_timeline",
    "recovery_target_xid",
    "shared_buffers",
    "shared_memory_type",
    "shared_preload_libraries",
    "superuser_reserved_connections",
    "track_activity_query_size",
    "track_commit_timestamp",
    "unix_socket_directories",
    "unix_socket_group",
    "unix_socket_permissions",
    "wal_buffers",
    "wal_decode_buffer_size",
    "wal_level",
    "wal_log_hints",
];

/// What the configuration files should say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgConfigFiles {
    /// PostgreSQL parameters by (lower-case) name. Connection settings the agent derives from
    /// its own settings (listen_addresses, port, unix_socket_directories, hba_file,
    /// ident_file) override entries of the same name.
    pub parameters: BTreeMap<String, String>,
    /// `pg_hba.conf` lines; empty means "leave the existing pg_hba.conf alone".
    pub pg_hba: Vec<String>,
    /// Run as a standby of this upstream; `None` for a primary.
    pub standby: Option<StandbyConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandbyConfig {
    /// libpq connection string (see [`super::conninfo::primary_conninfo`]).
    pub primary_conninfo: String,
    pub primary_slot_name: Option<String>,
    /// Normally `latest`: follow the upstream onto new timelines after a failover.
    pub recovery_target_timeline: String,
}

impl StandbyConfig {
    pub fn new(primary_conninfo: impl Into<String>, primary_slot_name: Option<String>) -> Self {
        StandbyConfig {
            primary_conninfo: primary_conninfo.into(),
            primary_slot_name,
            recovery_target_timeline: "latest".to_string(),
        }
    }
}

/// What [`super::Postgres::write_config`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigChange {
    /// Any file was written or removed.
    pub changed: bool,
    /// Parameters whose effective value in the files changed (added, removed or modified).
    pub changed_parameters: Vec<String>,
    /// Those of them that only take effect after a restart (`pg_settings.context =
    /// 'postmaster'` when PostgreSQL runs, [`POSTMASTER_PARAMETERS`] otherwise). After a reload,
    /// `PgState::pending_restart` is the server's authoritative list.
    pub restart_needed: Vec<String>,
    /// `standby.signal` was created or removed: switching between primary and standby
    /// configuration takes effect only on a (re)start (or, for standby → primary, a promote).
    pub standby_signal_changed: bool,
}

/// The full set of parameters the agent writes into its `postgresql.conf`, and a note for each
/// asked-for parameter written differently or left out: translated for the binary's version or
/// unknown to it (see `param_compat`), or a recovery setting the agent owns.
pub fn managed_parameters(
    settings: &PostgresSettings,
    binary: &PgBinary,
    desired: &PgConfigFiles,
) -> Result<(BTreeMap<String, String>, Vec<CompatNote>), PgError> {
    let mut asked = BTreeMap::new();
    for (name, value) in &desired.parameters {
        let name = name.to_ascii_lowercase();
        check_name(&name)?;
        asked.insert(name, value.clone());
    }
    let Translated {
        parameters,
        mut notes,
    } = binary.adapt(asked);
    let mut managed = BTreeMap::new();
    if !settings.scope.is_empty() {
        managed.insert("cluster_name".to_string(), settings.scope.clone());
    }
    for (name, value) in parameters {
        if STANDBY_PARAMETERS.contains(&name.as_str()) {
            notes.push(CompatNote::AgentOwned { name });
            continue;
        }
        managed.insert(name, value);
    }
    let data_dir = settings.data_dir.display().to_string();
    let mut enforced = vec![
        ("listen_addresses", settings.listen_host.clone()),
        ("port", settings.port.to_string()),
        ("hba_file", format!("{data_dir}/pg_hba.conf")),
        ("ident_file", format!("{data_dir}/pg_ident.conf")),
    ];
    if let Some(socket_dir) = &settings.socket_dir {
        enforced.push(("unix_socket_directories", socket_dir.display().to_string()));
    }
    if let Some(standby) = &desired.standby {
        enforced.push(("primary_conninfo", standby.primary_conninfo.clone()));
        if let Some(slot) = &standby.primary_slot_name {
            enforced.push(("primary_slot_name", slot.clone()));
        }
    }
    // Written for a primary too (it is PostgreSQL's default, and ignored outside recovery):
    // dropping it on promotion would make the new primary report a pending restart.
    let timeline = desired
        .standby
        .as_ref()
        .map_or("latest".to_string(), |s| s.recovery_target_timeline.clone());
    enforced.push(("recovery_target_timeline", timeline));
    for (name, value) in enforced {
        if let Some(asked) = managed.get(name) {
            if *asked != value {
                tracing::warn!(parameter = name, asked = %asked, using = %value, "parameter overridden by the agent's postgresql settings");
            }
        }
        managed.insert(name.to_string(), value);
    }
    for (name, value) in &managed {
        check_value(name, value)?;
    }
    Ok((managed, notes))
}

fn check_name(name: &str) -> Result<(), PgError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(PgError::InvalidParameter {
            name: name.to_string(),
            reason: "names are letters, digits, '_' and '.'".into(),
        })
    }
}

fn check_value(name: &str, value: &str) -> Result<(), PgError> {
    if value.contains(['\n', '\r', '\0']) {
        return Err(PgError::InvalidParameter {
            name: name.to_string(),
            reason: "the value contains a line break or NUL byte".into(),
        });
    }
    Ok(())
}

/// A value as a postgresql.conf string literal. Quoting every value is valid for every type.
fn quote_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

pub fn render_postgresql_conf(parameters: &BTreeMap<String, String>, include_base: bool) -> String {
    let mut text = format!(
        "{HEADER}\n# The agent rewrites this file; put local settings in postgresql.parameters of its \
         configuration{}.\n\n",
        if include_base {
            " (or in postgresql.base.conf, included below)"
        } else {
            ""
        }
    );
    if include_base {
        text.push_str(&format!("include '{BASE_CONF_FILE}'\n\n"));
    }
    for (name, value) in parameters {
        text.push_str(&format!("{name} = {}\n", quote_value(value)));
    }
    text
}

pub fn render_pg_hba(lines: &[String]) -> String {
    let mut text = format!("{HEADER} (from postgresql.pg_hba)\n");
    for line in lines {
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// The `name = value` settings of a postgresql.conf (ours or the user's); comments and
/// `include` directives are skipped, a later setting of a name wins.
pub fn parse_conf_values(text: &str) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(line.len());
        let name = line[..name_end].to_ascii_lowercase();
        if name.starts_with("include") {
            continue;
        }
        let rest = line[name_end..].trim_start();
        let rest = rest.strip_prefix('=').unwrap_or(rest).trim_start();
        values.insert(name, parse_conf_value(rest));
    }
    values
}

fn parse_conf_value(rest: &str) -> String {
    let Some(quoted) = rest.strip_prefix('\'') else {
        return rest.split('#').next().unwrap_or("").trim().to_string();
    };
    let mut value = String::new();
    let mut chars = quoted.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' if chars.peek() == Some(&'\'') => {
                chars.next();
                value.push('\'');
            }
            '\'' => break,
            '\\' => {
                if let Some(next) = chars.next() {
                    value.push(next);
                }
            }
            c => value.push(c),
        }
    }
    value
}

/// Names whose value differs between two parameter maps (added, removed or changed).
pub fn changed_names(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut names: Vec<String> = before
        .keys()
        .chain(after.keys())
        .filter(|name| before.get(*name) != after.get(*name))
        .cloned()
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The result of writing the files, before restart needs are looked up.
pub struct Written {
    pub changed: bool,
    pub changed_parameters: Vec<String>,
    pub standby_signal_changed: bool,
}

/// Writes postgresql.conf, pg_hba.conf and standby.signal in `data_dir`.
pub fn write_files(
    data_dir: &Path,
    parameters: &BTreeMap<String, String>,
    desired: &PgConfigFiles,
    user: &OsUser,
) -> Result<Written, PgError> {
    let conf_path = data_dir.join(CONF_FILE);
    let base_path = data_dir.join(BASE_CONF_FILE);
    let old_conf = read_optional(&conf_path)?;
    let ours = old_conf.as_deref().is_some_and(|text| text.starts_with(HEADER));
    let mut old_effective = BTreeMap::new();
    let mut changed = false;

    if let Some(text) = &old_conf {
        if ours {
            if text.contains(&format!("include '{BASE_CONF_FILE}'")) {
                old_effective = read_optional(&base_path)?
                    .map(|t| parse_conf_values(&t))
                    .unwrap_or_default();
            }
            old_effective.extend(parse_conf_values(text));
        } else {
            old_effective = parse_conf_values(text);
            if base_path.exists() {
                // The user replaced our file by hand while a base file exists: keep a copy of
                // theirs rather than silently overwriting it.
                let unix_time = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                let backup = data_dir.join(format!("{CONF_FILE}.replaced-{unix_time}"));
                tracing::warn!(from = %conf_path.display(), to = %backup.display(), "postgresql.conf was not written by pgquorum and postgresql.base.conf exists; keeping a copy");
                std::fs::rename(&conf_path, &backup).map_err(|e| PgError::io("rename", &conf_path, e))?;
            } else {
                tracing::info!(from = %conf_path.display(), to = %base_path.display(), "taking over postgresql.conf: the original becomes postgresql.base.conf, included by ours");
                std::fs::rename(&conf_path, &base_path).map_err(|e| PgError::io("rename", &conf_path, e))?;
            }
            changed = true;
        }
    }

    let include_base = base_path.exists();
    let mut new_effective = if include_base {
        read_optional(&base_path)?
            .map(|t| parse_conf_values(&t))
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    new_effective.extend(parameters.iter().map(|(k, v)| (k.clone(), v.clone())));

    let conf_text = render_postgresql_conf(parameters, include_base);
    changed |= replace_if_different(&conf_path, &conf_text, user)?;

    if !desired.pg_hba.is_empty() {
        changed |= replace_if_different(&data_dir.join(HBA_FILE), &render_pg_hba(&desired.pg_hba), user)?;
    }

    let signal = data_dir.join(STANDBY_SIGNAL);
    let standby_signal_changed = match (&desired.standby, signal.exists()) {
        (Some(_), false) => {
            replace_if_different(&signal, "", user)?;
            true
        }
        (None, true) => {
            std::fs::remove_file(&signal).map_err(|e| PgError::io("remove", &signal, e))?;
            true
        }
        _ => false,
    };

    Ok(Written {
        changed: changed || standby_signal_changed,
        changed_parameters: changed_names(&old_effective, &new_effective),
        standby_signal_changed,
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, PgError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PgError::io("read", path, e)),
    }
}

/// Atomically replaces `path` with `contents` (mode 0600, owned by `user`) unless it already
/// holds exactly that. Returns whether it wrote.
fn replace_if_different(path: &Path, contents: &str, user: &OsUser) -> Result<bool, PgError> {
    if read_optional(path)?.as_deref() == Some(contents) {
        return Ok(false);
    }
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let temp = path.with_file_name(format!(".{file_name}.pgquorum-tmp"));
    let _ = std::fs::remove_file(&temp);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()
    };
    write().map_err(|e| PgError::io("write", &temp, e))?;
    user.give(&temp)?;
    std::fs::rename(&temp, path).map_err(|e| PgError::io("replace", path, e))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::param_compat::{KnownParameters, PgVersion};
    use crate::postgres::settings::Credentials;
    use std::time::Duration;

    fn settings(data_dir: &Path) -> PostgresSettings {
        PostgresSettings {
            bin_dir: "/usr/lib/postgresql/15/bin".into(),
            bin_names: Default::default(),
            data_dir: data_dir.to_path_buf(),
            listen_host: "127.0.0.1".into(),
            port: 5601,
            connect_host: "127.0.0.1".into(),
            socket_dir: Some("/tmp/s".into()),
            superuser: Credentials::new("postgres", None),
            replication: Credentials::new("replicator", None),
            rewind: None,
            run_as: None,
            pg_ctl_timeout: Duration::from_secs(10),
            member_name: "node1".into(),
            scope: "demo".into(),
            basebackup_options: vec![],
            log_file: None,
        }
    }

    /// PostgreSQL 15 knowing the parameters these tests use.
    fn binary() -> PgBinary {
        PgBinary {
            version: PgVersion(150000),
            known: KnownParameters::from_describe_config(
                "work_mem\nport\nmax_connections\nwal_keep_size\nprimary_conninfo\nrecovery_min_apply_delay\n",
            ),
        }
    }

    fn managed_of(desired: &PgConfigFiles) -> BTreeMap<String, String> {
        managed_parameters(&settings(Path::new("/d")), &binary(), desired)
            .unwrap()
            .0
    }

    fn user() -> OsUser {
        let mut user = OsUser::for_agent(None).unwrap();
        user.switch_user = false; // unit tests write as themselves
        user
    }

    #[test]
    fn enforced_settings_win_and_standby_settings_are_added() {
        let mut desired = PgConfigFiles::default();
        desired.parameters.insert("Work_Mem".into(), "8MB".into());
        desired.parameters.insert("port".into(), "1".into());
        desired
            .parameters
            .insert("primary_conninfo".into(), "host=x".into());
        let managed = managed_of(&desired);
        assert_eq!(managed["work_mem"], "8MB");
        assert_eq!(managed["port"], "5601");
        assert_eq!(managed["unix_socket_directories"], "/tmp/s");
        assert_eq!(managed["hba_file"], "/d/pg_hba.conf");
        assert_eq!(managed["cluster_name"], "demo");
        assert!(!managed.contains_key("primary_conninfo"));
        assert_eq!(managed["recovery_target_timeline"], "latest");

        desired.standby = Some(StandbyConfig::new("host=p", Some("node2".into())));
        let managed = managed_of(&desired);
        assert_eq!(managed["primary_conninfo"], "host=p");
        assert_eq!(managed["primary_slot_name"], "node2");
        assert_eq!(managed["recovery_target_timeline"], "latest");
    }

    #[test]
    fn parameters_are_translated_for_the_binary_and_unknown_ones_left_out() {
        let mut desired = PgConfigFiles::default();
        for (name, value) in [
            ("wal_keep_segments", "100"),
            ("checkpoint_segments", "8"),
            ("no_such_thing", "1"),
            ("primary_conninfo", "host=x"),
            ("recovery_min_apply_delay", "1min"),
            ("auto_explain.log_min_duration", "1s"),
        ] {
            desired.parameters.insert(name.into(), value.into());
        }
        let (managed, notes) = managed_parameters(&settings(Path::new("/d")), &binary(), &desired).unwrap();
        assert_eq!(managed["wal_keep_size"], "1600MB");
        assert_eq!(managed["recovery_min_apply_delay"], "1min");
        assert_eq!(managed["auto_explain.log_min_duration"], "1s");
        for gone in [
            "wal_keep_segments",
            "checkpoint_segments",
            "no_such_thing",
            "primary_conninfo",
        ] {
            assert!(!managed.contains_key(gone), "{gone}");
        }
        let text: Vec<String> = notes.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:#?}");
        for name in [
            "wal_keep_segments",
            "checkpoint_segments",
            "no_such_thing",
            "primary_conninfo",
        ] {
            assert!(
                text.iter().any(|t| t.starts_with(&format!("parameter {name} "))),
                "{name}: {text:#?}"
            );
        }
    }

    #[test]
    fn rejects_names_and_values_that_would_break_the_file() {
        let mut desired = PgConfigFiles::default();
        desired.parameters.insert("bad name".into(), "1".into());
        assert!(managed_parameters(&settings(Path::new("/d")), &binary(), &desired).is_err());
        let mut desired = PgConfigFiles::default();
        desired.parameters.insert("work_mem".into(), "1\nport = 1".into());
        let err = managed_parameters(&settings(Path::new("/d")), &binary(), &desired).unwrap_err();
        assert!(err.to_string().contains("work_mem"), "{err}");
    }

    #[test]
    fn render_then_parse_round_trips_quotes() {
        let mut parameters = BTreeMap::new();
        parameters.insert("a".to_string(), "it's".to_string());
        parameters.insert("b".to_string(), "c:\\dir".to_string());
        let text = render_postgresql_conf(&parameters, true);
        assert!(text.starts_with(HEADER));
        assert!(text.contains("include 'postgresql.base.conf'"));
        assert_eq!(parse_conf_values(&text), parameters);
    }

    #[test]
    fn parses_a_users_file() {
        let text = "# comment\nmax_connections = 100\t# (change requires restart)\n\
                    shared_buffers 128MB\nlisten_addresses='*'\ninclude_dir 'conf.d'\nWORK_MEM = '4MB'\n";
        let values = parse_conf_values(text);
        assert_eq!(values["max_connections"], "100");
        assert_eq!(values["shared_buffers"], "128MB");
        assert_eq!(values["listen_addresses"], "*");
        assert_eq!(values["work_mem"], "4MB");
        assert_eq!(values.len(), 4);
    }

    #[test]
    fn takes_over_a_foreign_conf_and_tracks_changes() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::write(data.join(CONF_FILE), "max_connections = 100\nwork_mem = '4MB'\n").unwrap();
        let mut desired = PgConfigFiles::default();
        desired.parameters.insert("work_mem".into(), "8MB".into());
        let parameters = managed_parameters(&settings(data), &binary(), &desired)
            .unwrap()
            .0;
        let written = write_files(data, &parameters, &desired, &user()).unwrap();
        assert!(written.changed);
        assert!(written.changed_parameters.contains(&"work_mem".to_string()));
        assert!(!written
            .changed_parameters
            .contains(&"max_connections".to_string()));
        assert_eq!(
            std::fs::read_to_string(data.join(BASE_CONF_FILE)).unwrap(),
            "max_connections = 100\nwork_mem = '4MB'\n"
        );
        let ours = std::fs::read_to_string(data.join(CONF_FILE)).unwrap();
        assert!(ours.starts_with(HEADER) && ours.contains("include 'postgresql.base.conf'"));

        // Same again: nothing to do.
        let again = write_files(data, &parameters, &desired, &user()).unwrap();
        assert!(!again.changed);
        assert!(again.changed_parameters.is_empty());

        // Standby, with an hba list.
        desired.standby = Some(StandbyConfig::new("host=p", None));
        desired.pg_hba = vec!["local all all trust".into()];
        let parameters = managed_parameters(&settings(data), &binary(), &desired)
            .unwrap()
            .0;
        let written = write_files(data, &parameters, &desired, &user()).unwrap();
        assert!(written.standby_signal_changed && data.join(STANDBY_SIGNAL).exists());
        assert_eq!(written.changed_parameters, vec!["primary_conninfo"]);
        assert!(std::fs::read_to_string(data.join(HBA_FILE))
            .unwrap()
            .contains("local all all trust"));

        // Back to primary.
        desired.standby = None;
        let parameters = managed_parameters(&settings(data), &binary(), &desired)
            .unwrap()
            .0;
        let written = write_files(data, &parameters, &desired, &user()).unwrap();
        assert!(written.standby_signal_changed && !data.join(STANDBY_SIGNAL).exists());
    }

    #[test]
    fn keeps_a_copy_when_a_foreign_conf_replaces_ours() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        std::fs::write(data.join(BASE_CONF_FILE), "a = 1\n").unwrap();
        std::fs::write(data.join(CONF_FILE), "b = 2\n").unwrap();
        let desired = PgConfigFiles::default();
        let parameters = managed_parameters(&settings(data), &binary(), &desired)
            .unwrap()
            .0;
        write_files(data, &parameters, &desired, &user()).unwrap();
        let copies: Vec<_> = std::fs::read_dir(data)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("postgresql.conf.replaced-")
            })
            .collect();
        assert_eq!(copies.len(), 1);
        assert_eq!(
            std::fs::read_to_string(data.join(BASE_CONF_FILE)).unwrap(),
            "a = 1\n"
        );
    }
}
