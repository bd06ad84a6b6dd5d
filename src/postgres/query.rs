//! SQL against the local PostgreSQL: connecting as the superuser, the state the HA loop reads
//! every cycle, and the few changes the agent makes with SQL (roles).

use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, Socket};

use super::error::PgError;
use super::local_tls::{self, LocalTls, LocalTlsError, LocalTlsPlan};
use super::lsn::parse_lsn;
use super::settings::{Credentials, PostgresSettings};

/// Short: the HA loop must not hang on a stuck server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the agent connects to its own PostgreSQL.
#[derive(Debug, Clone)]
pub enum LocalEndpoint {
    Socket { dir: PathBuf, port: u16 },
    Tcp { host: String, port: u16 },
}

impl LocalEndpoint {
    pub fn for_settings(settings: &PostgresSettings) -> Self {
        match &settings.socket_dir {
            Some(dir) => LocalEndpoint::Socket {
                dir: dir.clone(),
                port: settings.port,
            },
            None => LocalEndpoint::Tcp {
                host: settings.local_tcp_host(),
                port: settings.port,
            },
        }
    }

    pub fn describe(&self) -> String {
        match self {
            LocalEndpoint::Socket { dir, port } => format!("{}/.s.PGSQL.{port}", dir.display()),
            LocalEndpoint::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            LocalEndpoint::Tcp { host, port } => format!("{host}:{port}"),
        }
    }
}

/// Opens a connection as `user` to the `postgres` database.
pub async fn connect(endpoint: &LocalEndpoint, user: &Credentials) -> Result<Client, PgError> {
    let mut config = tokio_postgres::Config::new();
    config
        .user(&user.username)
        .dbname("postgres")
        .application_name("pgquorum")
        .connect_timeout(CONNECT_TIMEOUT);
    if let Some(password) = &user.password {
        config.password(password);
    }
    match endpoint {
        LocalEndpoint::Socket { dir, port } => config.host_path(dir).port(*port),
        LocalEndpoint::Tcp { host, port } => config.host(host).port(*port),
    };
    // TLS only applies over TCP, as the superuser role's libpq options ask (local_tls.rs).
    let plan = match endpoint {
        LocalEndpoint::Socket { .. } => LocalTlsPlan::Plain,
        LocalEndpoint::Tcp { .. } => local_tls::plan(user).map_err(|e| tls_error(endpoint, e))?,
    };
    match plan {
        LocalTlsPlan::Plain => open(&config, NoTls, endpoint, user).await,
        LocalTlsPlan::Tls {
            mode,
            verify,
            rootcert,
            client,
        } => {
            config.ssl_mode(mode);
            let tls = LocalTls::new(
                verify,
                rootcert.as_deref(),
                client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
            )
            .map_err(|e| tls_error(endpoint, e))?;
            open(&config, tls, endpoint, user).await
        }
    }
}

fn tls_error(endpoint: &LocalEndpoint, error: LocalTlsError) -> PgError {
    PgError::Connect {
        address: endpoint.describe(),
        message: error.to_string(),
    }
}

/// Connect with `tls` and run the connection in the background.
async fn open<T>(
    config: &tokio_postgres::Config,
    tls: T,
    endpoint: &LocalEndpoint,
    user: &Credentials,
) -> Result<Client, PgError>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let connecting = config.connect(tls);
    // connect_timeout covers the TCP connect; this covers a server that accepts and then stalls.
    let (client, connection) = match tokio::time::timeout(CONNECT_TIMEOUT * 2, connecting).await {
        Ok(result) => result.map_err(|e| connect_error(endpoint, user, &e))?,
        Err(_) => {
            return Err(PgError::Connect {
                address: endpoint.describe(),
                message: format!("no answer within {} s", (CONNECT_TIMEOUT * 2).as_secs()),
            })
        }
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection to the local PostgreSQL ended");
        }
    });
    Ok(client)
}

fn connect_error(endpoint: &LocalEndpoint, user: &Credentials, error: &tokio_postgres::Error) -> PgError {
    if let Some(db) = error.as_db_error() {
        if *db.code() == SqlState::INVALID_PASSWORD {
            return PgError::WrongPassword {
                user: user.username.clone(),
            };
        }
        if *db.code() == SqlState::CANNOT_CONNECT_NOW {
            return PgError::NotAcceptingConnections {
                address: endpoint.describe(),
                message: db.message().to_string(),
            };
        }
        return PgError::LoginRejected {
            address: endpoint.describe(),
            user: user.username.clone(),
            message: db.message().to_string(),
        };
    }
    let mut message = error.to_string();
    if let Some(source) = std::error::Error::source(error) {
        message = format!("{message}: {source}");
    }
    if message.contains("password missing") {
        return PgError::LoginRejected {
            address: endpoint.describe(),
            user: user.username.clone(),
            message: "the server asks for a password and none is configured".into(),
        };
    }
    PgError::Connect {
        address: endpoint.describe(),
        message,
    }
}

pub fn query_error(sql: &str, error: tokio_postgres::Error) -> PgError {
    let message = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    };
    PgError::Query {
        sql: sql.to_string(),
        message,
    }
}

/// Whether the server accepts connections: a completed login, or a login refused for
/// credentials (the server is up; only the agent's settings are wrong).
pub async fn accepts_connections(endpoint: &LocalEndpoint, user: &Credentials) -> bool {
    match connect(endpoint, user).await {
        Ok(client) => client.simple_query("").await.is_ok(),
        Err(PgError::WrongPassword { .. } | PgError::LoginRejected { .. }) => true,
        Err(_) => false,
    }
}

/// The local PostgreSQL as the HA loop sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgState {
    pub in_recovery: bool,
    /// Primary: the timeline it writes on. Replica: the newest of its last restartpoint's
    /// and the one it receives (see also `wal_timeline`).
    pub timeline: u64,
    /// Primary only: `pg_current_wal_lsn()`.
    pub wal_lsn: Option<u64>,
    /// Replica: `pg_last_wal_receive_lsn()` (None when nothing was streamed since start).
    pub received_lsn: Option<u64>,
    /// Replica: `pg_last_wal_replay_lsn()`.
    pub replayed_lsn: Option<u64>,
    pub system_identifier: String,
    pub server_version_num: u32,
    /// Parameters changed in the files that wait for a restart.
    pub pending_restart: Vec<String>,
    pub wal_receiver: Option<WalReceiver>,
    /// Replica: the newest timeline whose segment file in `pg_wal` holds its replay (or
    /// receive) position (see `wal_segments`); it survives a restart of the agent and of the
    /// server, which the receiver's timeline does not, and leads the checkpoint's.
    pub wal_timeline: Option<u64>,
    /// Primary (or cascading replica): its WAL senders.
    pub replication: Vec<ReplicationPeer>,
    /// `synchronous_standby_names` now, and whether it comes from `postgresql.auto.conf`
    /// (where the agent sets it in synchronous mode: src/ha/sync_standby.rs).
    pub sync_names: (String, bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalReceiver {
    pub status: String,
    pub sender_host: Option<String>,
    pub sender_port: Option<u16>,
    pub received_tli: Option<u64>,
    pub slot_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationPeer {
    pub application_name: String,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub client_addr: Option<String>,
    pub replay_lsn: Option<u64>,
    pub flush_lsn: Option<u64>,
}

const STATE_SQL: &str = "SELECT pg_is_in_recovery(), \
       current_setting('server_version_num')::int4, \
       (SELECT system_identifier::text FROM pg_control_system()), \
       (SELECT timeline_id::int8 FROM pg_control_checkpoint()), \
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END, \
       CASE WHEN pg_is_in_recovery() THEN NULL \
            ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END, \
       pg_last_wal_receive_lsn()::text, \
       pg_last_wal_replay_lsn()::text";
const PENDING_RESTART_SQL: &str = "SELECT name FROM pg_settings WHERE pending_restart ORDER BY name";
const WAL_RECEIVER_SQL: &str = "SELECT status, sender_host, sender_port, received_tli::int8, slot_name \
       FROM pg_stat_wal_receiver";
const SYNC_NAMES_SQL: &str = "SELECT setting, coalesce(sourcefile LIKE '%/postgresql.auto.conf', false) \
       FROM pg_settings WHERE name = 'synchronous_standby_names'";
const REPLICATION_SQL: &str = "SELECT application_name, state, sync_state, client_addr::text, \
       replay_lsn::text, flush_lsn::text FROM pg_stat_replication ORDER BY application_name";

const WAL_SEGMENTS_SQL: &str =
    "SELECT (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'), \
       array(SELECT name FROM pg_ls_waldir() WHERE length(name) = 24)";
const REPLAY_SQL: &str = "SELECT pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text";

/// A replica's (received, replayed) WAL positions, in one query: what the wait before a
/// promotion polls (`read_state` runs four).
pub async fn read_replay(client: &Client) -> Result<(Option<u64>, Option<u64>), PgError> {
    let row = client
        .query_one(REPLAY_SQL, &[])
        .await
        .map_err(|e| query_error(REPLAY_SQL, e))?;
    let lsn = |i: usize| row.get::<_, Option<String>>(i).as_deref().and_then(parse_lsn);
    Ok((lsn(0), lsn(1)))
}

pub async fn read_state(client: &Client) -> Result<PgState, PgError> {
    let row = client
        .query_one(STATE_SQL, &[])
        .await
        .map_err(|e| query_error(STATE_SQL, e))?;
    let in_recovery: bool = row.get(0);
    let server_version_num: i32 = row.get(1);
    let system_identifier: String = row.get(2);
    let checkpoint_tli: i64 = row.get(3);
    let wal_lsn = row.get::<_, Option<String>>(4).as_deref().and_then(parse_lsn);
    let writing_tli = row
        .get::<_, Option<String>>(5)
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok());
    let received_lsn = row.get::<_, Option<String>>(6).as_deref().and_then(parse_lsn);
    let replayed_lsn = row.get::<_, Option<String>>(7).as_deref().and_then(parse_lsn);

    let pending_restart = client
        .query(PENDING_RESTART_SQL, &[])
        .await
        .map_err(|e| query_error(PENDING_RESTART_SQL, e))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let wal_receiver = client
        .query_opt(WAL_RECEIVER_SQL, &[])
        .await
        .map_err(|e| query_error(WAL_RECEIVER_SQL, e))?
        .map(|r| WalReceiver {
            status: r.get(0),
            sender_host: r.get(1),
            sender_port: r.get::<_, Option<i32>>(2).and_then(|p| u16::try_from(p).ok()),
            received_tli: r.get::<_, Option<i64>>(3).and_then(|t| u64::try_from(t).ok()),
            slot_name: r.get(4),
        });
    let replication = client
        .query(REPLICATION_SQL, &[])
        .await
        .map_err(|e| query_error(REPLICATION_SQL, e))?
        .iter()
        .map(|r| ReplicationPeer {
            application_name: r.get::<_, Option<String>>(0).unwrap_or_default(),
            state: r.get(1),
            sync_state: r.get(2),
            client_addr: r.get(3),
            replay_lsn: r.get::<_, Option<String>>(4).as_deref().and_then(parse_lsn),
            flush_lsn: r.get::<_, Option<String>>(5).as_deref().and_then(parse_lsn),
        })
        .collect();

    let sync_names = client
        .query_opt(SYNC_NAMES_SQL, &[])
        .await
        .map_err(|e| query_error(SYNC_NAMES_SQL, e))?
        .map(|r| (r.get::<_, String>(0), r.get::<_, bool>(1)))
        .unwrap_or_default();

    let wal_timeline = if in_recovery {
        read_wal_timeline(client, [replayed_lsn, received_lsn]).await?
    } else {
        None
    };

    let checkpoint_tli = u64::try_from(checkpoint_tli).unwrap_or(0);
    let timeline = if in_recovery {
        let received = wal_receiver
            .as_ref()
            .and_then(|w: &WalReceiver| w.received_tli)
            .unwrap_or(0);
        checkpoint_tli.max(received)
    } else {
        writing_tli.unwrap_or(checkpoint_tli)
    };
    Ok(PgState {
        in_recovery,
        timeline,
        wal_lsn,
        received_lsn,
        replayed_lsn,
        system_identifier,
        server_version_num: u32::try_from(server_version_num).unwrap_or(0),
        pending_restart,
        wal_receiver,
        wal_timeline,
        replication,
        sync_names,
    })
}

/// A replica's newest timeline whose segment in `pg_wal` holds one of `positions`.
async fn read_wal_timeline(client: &Client, positions: [Option<u64>; 2]) -> Result<Option<u64>, PgError> {
    let row = client
        .query_one(WAL_SEGMENTS_SQL, &[])
        .await
        .map_err(|e| query_error(WAL_SEGMENTS_SQL, e))?;
    let segment_size = row.get::<_, Option<i64>>(0).and_then(|s| u64::try_from(s).ok());
    let names: Vec<String> = row.get(1);
    Ok(segment_size.and_then(|size| {
        positions
            .into_iter()
            .flatten()
            .filter_map(|lsn| super::wal_segments::timeline_holding(&names, lsn, size))
            .max()
    }))
}

/// Of `names`, those PostgreSQL says need a restart (`context = 'postmaster'`).
pub async fn postmaster_parameters(client: &Client, names: &[String]) -> Result<Vec<String>, PgError> {
    const SQL: &str =
        "SELECT name FROM pg_settings WHERE context = 'postmaster' AND name = ANY($1) ORDER BY name";
    let rows = client
        .query(SQL, &[&names])
        .await
        .map_err(|e| query_error(SQL, e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A SQL identifier in double quotes.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal that reads the same whatever `standard_conforming_strings` says.
pub fn quote_literal(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('\'', "''");
    if value.contains('\\') {
        format!("E'{escaped}'")
    } else {
        format!("'{escaped}'")
    }
}

async fn is_in_recovery(client: &Client) -> Result<bool, PgError> {
    const SQL: &str = "SELECT pg_is_in_recovery()";
    Ok(client
        .query_one(SQL, &[])
        .await
        .map_err(|e| query_error(SQL, e))?
        .get(0))
}

/// Creates (or updates) the replication role and, when given, the pg_rewind role with the
/// function grants pg_rewind needs as a non-superuser. Safe to repeat.
pub async fn create_roles(
    client: &Client,
    superuser: &str,
    replication: &Credentials,
    rewind: Option<&Credentials>,
) -> Result<(), PgError> {
    if is_in_recovery(client).await? {
        return Err(PgError::InRecovery {
            operation: "creating roles",
        });
    }
    ensure_role(client, superuser, replication, "REPLICATION LOGIN").await?;
    if let Some(rewind) = rewind {
        ensure_role(client, superuser, rewind, "LOGIN").await?;
        if rewind.username != superuser {
            let role = quote_ident(&rewind.username);
            for function in [
                "pg_catalog.pg_ls_dir(text, boolean, boolean)",
                "pg_catalog.pg_stat_file(text, boolean)",
                "pg_catalog.pg_read_binary_file(text)",
                "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
            ] {
                let sql = format!("GRANT EXECUTE ON FUNCTION {function} TO {role}");
                client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| query_error(&sql, e))?;
            }
        }
    }
    Ok(())
}

async fn ensure_role(
    client: &Client,
    superuser: &str,
    role: &Credentials,
    attributes: &str,
) -> Result<(), PgError> {
    if role.username == superuser {
        tracing::debug!(role = %role.username, "role is the superuser; nothing to create");
        return Ok(());
    }
    const EXISTS: &str = "SELECT 1 FROM pg_roles WHERE rolname = $1";
    let exists = client
        .query_opt(EXISTS, &[&role.username])
        .await
        .map_err(|e| query_error(EXISTS, e))?
        .is_some();
    let verb = if exists { "ALTER" } else { "CREATE" };
    let sql = role_statement(verb, role, attributes);
    // The statement holds a password: report errors without it.
    let shown = format!(
        "{verb} ROLE {} WITH {attributes} PASSWORD …",
        quote_ident(&role.username)
    );
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| query_error(&shown, e))?;
    if !exists {
        tracing::info!(role = %role.username, attributes, "created PostgreSQL role");
    }
    Ok(())
}

/// `CREATE`/`ALTER ROLE … WITH attributes PASSWORD 'SCRAM-SHA-256$…'`: the password goes as a
/// SCRAM verifier computed here, so the plaintext never reaches the server, where
/// `log_statement` or `pg_stat_statements` could record it, and PostgreSQL stores no
/// plaintext-equivalent (whatever `password_encryption` says).
fn role_statement(verb: &str, role: &Credentials, attributes: &str) -> String {
    let password = match &role.password {
        Some(password) => format!(
            " PASSWORD {}",
            quote_literal(&postgres_protocol::password::scram_sha_256(password.as_bytes()))
        ),
        None => String::new(),
    };
    format!(
        "{verb} ROLE {} WITH {attributes}{password}",
        quote_ident(&role.username)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_passwords_are_sent_as_scram_verifiers() {
        let role = Credentials::new("repl", Some("plain-secret"));
        let sql = role_statement("CREATE", &role, "REPLICATION LOGIN");
        assert!(!sql.contains("plain-secret"), "{sql}");
        assert!(
            sql.starts_with("CREATE ROLE \"repl\" WITH REPLICATION LOGIN PASSWORD 'SCRAM-SHA-256$4096:"),
            "{sql}"
        );
        let none = role_statement("ALTER", &Credentials::new("r", None), "LOGIN");
        assert_eq!(none, "ALTER ROLE \"r\" WITH LOGIN");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'"), "E'a\\\\b'''");
    }

    #[test]
    fn endpoint_descriptions() {
        let socket = LocalEndpoint::Socket {
            dir: "/tmp/s".into(),
            port: 5432,
        };
        assert_eq!(socket.describe(), "/tmp/s/.s.PGSQL.5432");
        let tcp = LocalEndpoint::Tcp {
            host: "::1".into(),
            port: 5,
        };
        assert_eq!(tcp.describe(), "[::1]:5");
    }
}
