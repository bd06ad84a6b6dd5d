//! What the toolbox needs to know about the local PostgreSQL, taken from the agent's config.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{BinNames, Config, PgUser, ToolOption};

use super::error::PgError;

/// Patroni's default for `postgresql.pg_ctl_timeout`.
pub const DEFAULT_PG_CTL_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_PORT: u16 = 5432;

/// A role the agent logs in as.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: Option<String>,
    /// The libpq TLS/GSS options of `postgresql.authentication.<role>` (keyword, value), in
    /// libpq's keywords: applied to `primary_conninfo`, pg_basebackup and pg_rewind.
    pub libpq: Vec<(&'static str, String)>,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: Option<&str>) -> Self {
        Credentials {
            username: username.into(),
            password: password.map(str::to_string),
            libpq: Vec::new(),
        }
    }

    /// The libpq options as environment variables (`PGSSLMODE`, …), for programs that take
    /// no connection string (pg_basebackup is given host and port as flags).
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        self.libpq
            .iter()
            .filter_map(|(keyword, value)| {
                let var = match *keyword {
                    "sslmode" => "PGSSLMODE",
                    "sslcert" => "PGSSLCERT",
                    "sslkey" => "PGSSLKEY",
                    "sslrootcert" => "PGSSLROOTCERT",
                    "sslcrl" => "PGSSLCRL",
                    "sslcrldir" => "PGSSLCRLDIR",
                    "gssencmode" => "PGGSSENCMODE",
                    "channel_binding" => "PGCHANNELBINDING",
                    _ => return None,
                };
                Some((var, value.clone()))
            })
            .collect()
    }

    fn from_config(user: Option<&PgUser>, default_name: &str) -> Self {
        Credentials {
            username: user
                .and_then(|u| u.username.clone())
                .unwrap_or_else(|| default_name.to_string()),
            password: user.and_then(|u| u.password.clone()),
            libpq: user.map(libpq_options).unwrap_or_default(),
        }
    }
}

/// Patroni's libpq keys of one role that pgquorum passes on (`sslpassword`, `sslnegotiation`
/// are accepted but not acted on: see `config/schema.rs`).
fn libpq_options(user: &PgUser) -> Vec<(&'static str, String)> {
    let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    [
        ("sslmode", user.sslmode.clone()),
        ("sslcert", path(&user.sslcert)),
        ("sslkey", path(&user.sslkey)),
        ("sslrootcert", path(&user.sslrootcert)),
        ("sslcrl", path(&user.sslcrl)),
        ("sslcrldir", path(&user.sslcrldir)),
        ("gssencmode", user.gssencmode.clone()),
        ("channel_binding", user.channel_binding.clone()),
    ]
    .into_iter()
    .filter_map(|(keyword, value)| Some((keyword, value?)))
    .collect()
}

/// Passwords stay out of logs and debug output.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("libpq", &self.libpq)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct PostgresSettings {
    /// Directory holding initdb, pg_ctl, postgres, pg_basebackup, pg_controldata, pg_rewind.
    pub bin_dir: PathBuf,
    /// Program names when they differ from the standard ones (`postgresql.bin_name`).
    pub bin_names: BinNames,
    pub data_dir: PathBuf,
    /// `listen_addresses`: one host, a comma-separated list, or `*`.
    pub listen_host: String,
    pub port: u16,
    /// The host other members use to reach this PostgreSQL.
    pub connect_host: String,
    /// When set: written as `unix_socket_directories` and the agent connects through it.
    /// When unset: the agent connects over TCP to the listen address (loopback for wildcards).
    pub socket_dir: Option<PathBuf>,
    pub superuser: Credentials,
    pub replication: Credentials,
    pub rewind: Option<Credentials>,
    /// OS user PostgreSQL runs as when the agent is root (default `postgres`).
    pub run_as: Option<String>,
    pub pg_ctl_timeout: Duration,
    pub member_name: String,
    /// The cluster `scope`; written as `cluster_name` unless the parameters set one.
    pub scope: String,
    /// Extra pg_basebackup options (`postgresql.basebackup`).
    pub basebackup_options: Vec<ToolOption>,
    /// Where pg_ctl sends the server's output; default `<data_dir's parent>/<member>.postgres.log`.
    pub log_file: Option<PathBuf>,
}

impl PostgresSettings {
    /// Settings from the agent's `postgresql` section (plus `scope` and `name`).
    pub fn from_config(cfg: &Config) -> Result<Self, PgError> {
        let pg = &cfg.postgresql;
        let data_dir = pg.data_dir.clone().ok_or_else(|| {
            PgError::Settings("postgresql.data_dir is not set; name the PostgreSQL data directory".into())
        })?;
        let (listen_host, port) = match &pg.listen {
            Some(listen) => parse_listen(listen)?,
            None => ("127.0.0.1".to_string(), DEFAULT_PORT),
        };
        let connect_host = match &pg.connect_address {
            Some(address) => parse_listen(address)?.0,
            None => loopback_for(&listen_host),
        };
        let bin_dir = match &pg.bin_dir {
            Some(dir) => dir.clone(),
            None => detect_bin_dir(pg.bin_name.pg_ctl.as_deref().unwrap_or("pg_ctl"))?,
        };
        let socket_dir = if pg.use_unix_socket {
            let configured = pg
                .parameters
                .get("unix_socket_directories")
                .map(|value| value.to_string())
                .and_then(|dirs| {
                    dirs.split(',')
                        .map(str::trim)
                        .find(|d| !d.is_empty())
                        .map(PathBuf::from)
                });
            Some(configured.unwrap_or_else(|| PathBuf::from("/var/run/postgresql")))
        } else {
            None
        };
        let auth = &pg.authentication;
        Ok(PostgresSettings {
            bin_dir,
            bin_names: pg.bin_name.clone(),
            data_dir,
            listen_host,
            port,
            connect_host,
            socket_dir,
            superuser: Credentials::from_config(auth.superuser.as_ref(), "postgres"),
            replication: Credentials::from_config(auth.replication.as_ref(), "replicator"),
            rewind: auth
                .rewind
                .as_ref()
                .map(|user| Credentials::from_config(Some(user), "rewind_user")),
            run_as: pg.run_as.clone(),
            pg_ctl_timeout: pg
                .pg_ctl_timeout
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_PG_CTL_TIMEOUT),
            member_name: cfg.name.clone(),
            scope: cfg.scope.clone(),
            basebackup_options: pg.basebackup.clone(),
            log_file: None,
        })
    }

    /// The host the agent itself connects to over TCP: the first listen host, or loopback
    /// when PostgreSQL listens on a wildcard.
    pub fn local_tcp_host(&self) -> String {
        loopback_for(&self.listen_host)
    }
}

/// Splits Patroni's `listen` (`host[,host…]:port`, `[v6]:port`) into the hosts and the port.
pub fn parse_listen(listen: &str) -> Result<(String, u16), PgError> {
    let bad = |why: &str| PgError::Settings(format!("postgresql.listen \"{listen}\": {why}"));
    let (hosts, port) = listen
        .trim()
        .rsplit_once(':')
        .ok_or_else(|| bad("missing \":port\""))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
    let hosts: Vec<&str> = hosts
        .split(',')
        .map(|h| h.trim())
        .map(|h| h.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(h))
        .collect();
    let hosts = hosts.join(",");
    Ok((if hosts.is_empty() { "*".to_string() } else { hosts }, port))
}

/// The first host of a listen list, with wildcards mapped to the matching loopback address.
fn loopback_for(listen_host: &str) -> String {
    let first = listen_host.split(',').map(str::trim).next().unwrap_or("");
    match first {
        "" | "*" | "0.0.0.0" => "127.0.0.1".to_string(),
        "::" => "::1".to_string(),
        host => host.to_string(),
    }
}

/// The default `bin_dir`: `pg_ctl`'s real directory when it is on PATH next to the other
/// programs (following symlinks, so `/usr/local/bin/pg_ctl -> /usr/lib/postgresql/15/bin/pg_ctl`
/// works), else the newest `/usr/lib/postgresql/<major>/bin` (Debian's layout).
pub fn detect_bin_dir(pg_ctl: &str) -> Result<PathBuf, PgError> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(pg_ctl);
            if !candidate.is_file() {
                continue;
            }
            if let Some(real_dir) = candidate
                .canonicalize()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
            {
                if real_dir.join("postgres").is_file() && real_dir.join("initdb").is_file() {
                    return Ok(real_dir);
                }
            }
        }
    }
    newest_debian_bin_dir(Path::new("/usr/lib/postgresql")).ok_or_else(|| {
        PgError::Settings(
            "cannot find the PostgreSQL programs (no pg_ctl on PATH, nothing in /usr/lib/postgresql); \
             set postgresql.bin_dir"
                .into(),
        )
    })
}

fn newest_debian_bin_dir(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let major: f64 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((major, bin))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(postgresql: &str) -> Config {
        let yaml = format!(
            "scope: demo\nname: node1\nraft:\n  self_addr: 127.0.0.1:2222\n  data_dir: /tmp/r\npostgresql:\n{postgresql}"
        );
        serde_yaml_ng::from_str(&yaml).unwrap()
    }

    #[test]
    fn listen_forms() {
        assert_eq!(
            parse_listen("127.0.0.1:5601").unwrap(),
            ("127.0.0.1".to_string(), 5601)
        );
        assert_eq!(
            parse_listen("0.0.0.0:5432").unwrap(),
            ("0.0.0.0".to_string(), 5432)
        );
        assert_eq!(
            parse_listen("127.0.0.1, 10.0.0.5:5433").unwrap(),
            ("127.0.0.1,10.0.0.5".to_string(), 5433)
        );
        assert_eq!(parse_listen("[::1]:5432").unwrap(), ("::1".to_string(), 5432));
        assert_eq!(parse_listen(":5432").unwrap(), ("*".to_string(), 5432));
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("127.0.0.1:0").is_err());
        assert!(parse_listen("127.0.0.1:99999").is_err());
    }

    #[test]
    fn from_config_fills_defaults() {
        let cfg = config(
            "  listen: 0.0.0.0:5601\n  data_dir: /data/pg\n  bin_dir: /opt/pg/bin\n  authentication:\n    superuser:\n      password: secret\n    replication:\n      username: repl\n      password: r\n",
        );
        let settings = PostgresSettings::from_config(&cfg).unwrap();
        assert_eq!(settings.port, 5601);
        assert_eq!(settings.listen_host, "0.0.0.0");
        assert_eq!(settings.connect_host, "127.0.0.1");
        assert_eq!(settings.local_tcp_host(), "127.0.0.1");
        assert_eq!(settings.bin_dir, PathBuf::from("/opt/pg/bin"));
        assert_eq!(settings.superuser, Credentials::new("postgres", Some("secret")));
        assert_eq!(settings.replication, Credentials::new("repl", Some("r")));
        assert_eq!(settings.rewind, None);
        assert_eq!(settings.pg_ctl_timeout, DEFAULT_PG_CTL_TIMEOUT);
        assert_eq!(settings.member_name, "node1");
        assert_eq!(settings.socket_dir, None);
        assert!(!format!("{:?}", settings.superuser).contains("secret"));
    }

    #[test]
    fn from_config_reads_connect_address_and_socket_dir() {
        let cfg = config(
            "  listen: 127.0.0.1:5601\n  connect_address: 10.0.0.7:5601\n  data_dir: /data/pg\n  bin_dir: /opt\n  use_unix_socket: true\n  parameters:\n    unix_socket_directories: '/run/pgq, /tmp'\n  pg_ctl_timeout: 5\n",
        );
        let settings = PostgresSettings::from_config(&cfg).unwrap();
        assert_eq!(settings.connect_host, "10.0.0.7");
        assert_eq!(settings.socket_dir, Some(PathBuf::from("/run/pgq")));
        assert_eq!(settings.pg_ctl_timeout, Duration::from_secs(5));
    }

    #[test]
    fn missing_data_dir_is_a_clear_error() {
        let cfg = config("  listen: 127.0.0.1:5601\n");
        let err = PostgresSettings::from_config(&cfg).unwrap_err();
        assert!(
            err.to_string().contains("postgresql.data_dir is not set"),
            "{err}"
        );
    }

    #[test]
    fn finds_the_newest_debian_major() {
        let root = tempfile::tempdir().unwrap();
        for major in ["9.6", "13", "15"] {
            let bin = root.path().join(major).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("pg_ctl"), "").unwrap();
        }
        std::fs::create_dir_all(root.path().join("16")).unwrap(); // no bin: ignored
        assert_eq!(
            newest_debian_bin_dir(root.path()),
            Some(root.path().join("15").join("bin"))
        );
    }
}
