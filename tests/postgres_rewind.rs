//! Rejoining a former primary with the PostgreSQL toolbox, against real servers on 127.0.0.1:
//! pg_rewind, the control file, timeline history files and emptying a data directory.
//!
//! Each test has its own ports (5731–5739) and temporary directories, waits for conditions
//! with deadlines (never fixed sleeps), and stops its servers at the end, also when it fails
//! (`ServerGuard` runs `pg_ctl stop -m immediate` on drop). The helpers are small copies of
//! those in tests/postgres_control.rs.

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use pgquorum::config::ToolOption;
use pgquorum::postgres::{
    detect_bin_dir, primary_conninfo, ClusterState, ConnTarget, Credentials, DataDirState, OsUser,
    PgConfigFiles, PgError, Postgres, PostgresSettings, Program, RewindOutcome, RewindSource, StandbyConfig,
    StopMode,
};

const SUPERUSER_PASSWORD: &str = "super'secret";
const REWIND_PASSWORD: &str = "rewind:pass";
const DEADLINE: Duration = Duration::from_secs(60);

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::new("pgquorum=info"))
        .try_init();
}

/// A temporary directory the PostgreSQL OS user can use (root's tempdirs are 0700 root).
fn test_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("pgq").tempdir().unwrap();
    let user = OsUser::for_agent(None).unwrap();
    std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
    dir
}

fn settings(dir: &Path, name: &str, port: u16) -> PostgresSettings {
    PostgresSettings {
        bin_dir: detect_bin_dir("pg_ctl").unwrap(),
        bin_names: Default::default(),
        data_dir: dir.join(name).join("data"),
        listen_host: "127.0.0.1".into(),
        port,
        connect_host: "127.0.0.1".into(),
        socket_dir: Some(dir.join("sock")),
        superuser: Credentials::new("postgres", Some(SUPERUSER_PASSWORD)),
        replication: Credentials::new("replicator", Some("repl:pass")),
        // Not a superuser: create_roles grants it exactly what pg_rewind calls.
        rewind: Some(Credentials::new("rewinder", Some(REWIND_PASSWORD))),
        run_as: None,
        pg_ctl_timeout: Duration::from_secs(60),
        member_name: name.into(),
        scope: "pgq-rewind-test".into(),
        basebackup_options: vec![],
        log_file: None,
    }
}

fn initdb_options(checksums: bool) -> Vec<ToolOption> {
    let mut encoding = BTreeMap::new();
    encoding.insert("encoding".to_string(), "UTF8".to_string());
    let mut options = vec![
        ToolOption::Setting(encoding),
        // Tests do not need the data on disk to survive a power loss.
        ToolOption::Flag("no-sync".into()),
    ];
    if checksums {
        options.push(ToolOption::Flag("data-checksums".into()));
    }
    options
}

/// Sockets for everyone, passwords over TCP (scram), replication over TCP. WAL is kept long
/// enough that a former primary still has it back to the last checkpoint it shares with the
/// new primary, which pg_rewind reads.
fn config_files() -> PgConfigFiles {
    let mut parameters = BTreeMap::new();
    parameters.insert("shared_buffers".to_string(), "16MB".to_string());
    parameters.insert("fsync".to_string(), "off".to_string());
    parameters.insert("max_connections".to_string(), "20".to_string());
    parameters.insert("wal_keep_size".to_string(), "256MB".to_string());
    PgConfigFiles {
        parameters,
        pg_hba: vec![
            "local all all trust".into(),
            "host all all 127.0.0.1/32 scram-sha-256".into(),
            "host replication all 127.0.0.1/32 scram-sha-256".into(),
        ],
        standby: None,
    }
}

/// The configuration of a standby streaming from the server on `upstream_port`.
fn standby_of(upstream: &str, upstream_port: u16, me: &str, settings: &PostgresSettings) -> PgConfigFiles {
    let mut files = config_files();
    let target = ConnTarget::new(upstream, "127.0.0.1", upstream_port);
    files.standby = Some(StandbyConfig::new(
        primary_conninfo(&target, &settings.replication, me, None),
        None,
    ));
    files
}

fn rewind_source(settings: &PostgresSettings, port: u16) -> RewindSource {
    RewindSource::new("127.0.0.1", port, settings.rewind.as_ref().unwrap())
}

/// Stops a server with `pg_ctl stop -m immediate` when dropped, so a failed test leaves no
/// PostgreSQL behind.
struct ServerGuard(Postgres);

impl Drop for ServerGuard {
    fn drop(&mut self) {
        if self.0.postmaster_pid().is_none() {
            return;
        }
        let user = self.0.os_user();
        let mut command = std::process::Command::new(self.0.program_path(Program::PgCtl));
        command
            .arg("stop")
            .arg("-D")
            .arg(self.0.data_dir())
            .args(["-m", "immediate", "-w"])
            .current_dir("/");
        if user.switch_user {
            use std::os::unix::process::CommandExt;
            command.uid(user.uid).gid(user.gid);
        }
        let _ = command.output();
    }
}

/// Polls `check` until it returns `Some`, failing the test after [`DEADLINE`].
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// initdb + config + start: a running primary.
async fn running_primary(dir: &Path, name: &str, port: u16, checksums: bool) -> (Postgres, ServerGuard) {
    let pg = Postgres::new(settings(dir, name, port)).unwrap();
    let guard = ServerGuard(pg.clone());
    pg.initdb(&initdb_options(checksums)).await.unwrap();
    pg.write_config(&config_files()).await.unwrap();
    pg.start().await.unwrap();
    (pg, guard)
}

/// Waits until `pg` streams from the server on `upstream_port`; returns its timeline.
async fn wait_streaming(pg: &Postgres, upstream_port: u16) -> u64 {
    wait_for("the standby to stream", || async {
        let state = pg.query_state().await.ok()?;
        let receiver = state.wal_receiver?;
        (state.in_recovery && receiver.status == "streaming" && receiver.sender_port == Some(upstream_port))
            .then_some(state.timeline)
    })
    .await
}

/// The rows of `probe`, in order, comma-separated.
async fn probe_rows(pg: &Postgres) -> Option<String> {
    pg.query_scalar("SELECT string_agg(x::text, ',' ORDER BY x) FROM probe")
        .await
        .ok()?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn former_primary_is_rewound_and_follows_the_new_primary() {
    init_logging();
    let dir = test_dir();
    let (a, _a_guard) = running_primary(dir.path(), "nodeA", 5731, true).await;
    let settings_a = a.settings().clone();
    a.create_roles(&settings_a.replication, settings_a.rewind.as_ref())
        .await
        .unwrap();
    a.execute("CREATE TABLE probe (x int); INSERT INTO probe VALUES (1)")
        .await
        .unwrap();

    // The control file of a running primary.
    let control = a.control_data().unwrap();
    assert_eq!(control.cluster_state, ClusterState::InProduction);
    assert!(control.last_ran_as_primary());
    assert_eq!(control.timeline, 1);
    assert!(control.checkpoint_lsn > 0);
    assert!(control.data_checksums && control.can_rewind());
    assert_eq!(control.min_recovery_end_lsn, 0);
    assert_eq!(
        control.system_identifier,
        a.query_state().await.unwrap().system_identifier
    );
    assert_eq!(a.timeline_history(1).unwrap(), vec![]);

    // B: a streaming replica of A.
    let b = Postgres::new(settings(dir.path(), "nodeB", 5732)).unwrap();
    let _b_guard = ServerGuard(b.clone());
    b.basebackup(&ConnTarget::new("nodeA", "127.0.0.1", 5731), &|_| {})
        .await
        .unwrap();
    let settings_b = b.settings().clone();
    b.write_config(&standby_of("nodeA", 5731, "nodeB", &settings_b))
        .await
        .unwrap();
    b.start().await.unwrap();
    assert_eq!(wait_streaming(&b, 5731).await, 1);
    wait_for("row 1 on B", || async {
        (probe_rows(&b).await? == "1").then_some(())
    })
    .await;

    // A stopped standby: its control file says so, and it has not diverged from A.
    b.stop(StopMode::Fast).await.unwrap();
    let control = b.control_data().unwrap();
    assert_eq!(control.cluster_state, ClusterState::ShutDownInRecovery);
    assert!(!control.last_ran_as_primary());
    assert_eq!(control.timeline, 1);
    assert!(control.min_recovery_end_lsn > 0, "{control:?}");
    assert_eq!(control.min_recovery_end_timeline, 1);
    let from_a = rewind_source(&settings_a, 5731);
    assert_eq!(b.rewind(&from_a, true).await.unwrap(), RewindOutcome::NotNeeded);
    assert_eq!(b.rewind(&from_a, false).await.unwrap(), RewindOutcome::NotNeeded);
    assert_eq!(
        b.control_data().unwrap().cluster_state,
        ClusterState::ShutDownInRecovery
    );

    // Failover: B is promoted while A, cut off, still takes a write.
    b.start().await.unwrap();
    wait_streaming(&b, 5731).await;
    b.promote().await.unwrap();
    wait_for("B to accept writes", || async {
        (!b.query_state().await.ok()?.in_recovery).then_some(())
    })
    .await;
    // pg_rewind reads the source's timeline from its control file, written at a checkpoint:
    // until then B would look like it is still on timeline 1.
    b.execute("CHECKPOINT").await.unwrap();
    b.execute("INSERT INTO probe VALUES (2)").await.unwrap();
    assert_eq!(b.control_data().unwrap().timeline, 2);
    let history = b.timeline_history(2).unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].parent_timeline, 1);
    assert!(history[0].switch_lsn > 0);
    assert_eq!(history[0].reason, "no recovery target specified");

    a.execute("INSERT INTO probe VALUES (3)").await.unwrap();
    let err = a
        .rewind(&rewind_source(&settings_a, 5732), true)
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::Running { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("pg_rewind refused: PostgreSQL (pid "),
        "{err}"
    );
    a.stop(StopMode::Fast).await.unwrap();
    let before = a.control_data().unwrap();
    assert_eq!(before.cluster_state, ClusterState::ShutDown);
    assert!(before.last_ran_as_primary());
    assert_eq!(before.timeline, 1);

    // A dry run finds the divergence and changes nothing.
    let from_b = rewind_source(&settings_b, 5732);
    assert_eq!(a.rewind(&from_b, true).await.unwrap(), RewindOutcome::Needed);
    assert_eq!(a.control_data().unwrap(), before);

    // The rewind takes A onto B's timeline, waiting for recovery to catch up.
    assert_eq!(a.rewind(&from_b, false).await.unwrap(), RewindOutcome::Rewound);
    let after = a.control_data().unwrap();
    assert_eq!(after.cluster_state, ClusterState::InArchiveRecovery);
    assert!(!after.last_ran_as_primary());
    assert_eq!(after.timeline, 2);
    assert!(after.min_recovery_end_lsn > 0);
    assert_eq!(after.system_identifier, before.system_identifier);

    // pg_rewind copied B's configuration files: write A's own, as a standby of B.
    a.write_config(&standby_of("nodeB", 5732, "nodeA", &settings_a))
        .await
        .unwrap();
    a.start().await.unwrap();
    assert_eq!(wait_streaming(&a, 5732).await, 2);
    // B's rows, without the one only A had.
    wait_for("A to show B's rows", || async {
        (probe_rows(&a).await? == "1,2").then_some(())
    })
    .await;
    b.execute("INSERT INTO probe VALUES (4)").await.unwrap();
    wait_for("row 4 to reach A", || async {
        (probe_rows(&a).await? == "1,2,4").then_some(())
    })
    .await;
    let peer = wait_for("B to list A as a replica", || async {
        b.query_state()
            .await
            .ok()?
            .replication
            .into_iter()
            .find(|peer| peer.application_name == "nodeA")
    })
    .await;
    assert_eq!(peer.state.as_deref(), Some("streaming"));
    assert_eq!(a.timeline_history(2).unwrap(), history);

    a.stop(StopMode::Fast).await.unwrap();
    b.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewind_failures_name_their_cause() {
    init_logging();
    let dir = test_dir();
    // T: a running primary to rewind from; U: a stopped cluster of another system.
    let (t, _t_guard) = running_primary(dir.path(), "nodeT", 5733, true).await;
    let settings_t = t.settings().clone();
    t.create_roles(&settings_t.replication, settings_t.rewind.as_ref())
        .await
        .unwrap();
    let u = Postgres::new(settings(dir.path(), "nodeU", 5734)).unwrap();
    let _u_guard = ServerGuard(u.clone());
    u.initdb(&initdb_options(false)).await.unwrap();
    let control = u.control_data().unwrap();
    assert_eq!(control.cluster_state, ClusterState::ShutDown);
    assert!(!control.data_checksums && !control.wal_log_hints && !control.can_rewind());

    // Nothing listens on 5739.
    let err = u
        .rewind(&rewind_source(&settings_t, 5739), true)
        .await
        .unwrap_err();
    let message = err.to_string();
    eprintln!("unreachable source: {message}");
    assert!(
        matches!(
            err,
            PgError::Rewind {
                target_modified: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        message.starts_with("pg_rewind from 127.0.0.1:5739 failed: "),
        "{message}"
    );
    assert!(
        message.contains("port 5739 failed: Connection refused"),
        "{message}"
    );

    let wrong = RewindSource::new(
        "127.0.0.1",
        5733,
        &Credentials::new("rewinder", Some("not-the-password")),
    );
    let err = u.rewind(&wrong, false).await.unwrap_err();
    let message = err.to_string();
    eprintln!("wrong password: {message}");
    assert!(
        message.contains("password authentication failed for user \"rewinder\""),
        "{message}"
    );
    assert!(message.contains("postgresql.authentication.rewind"), "{message}");
    assert!(!message.contains("pgpass"), "{message}");

    // The right password, but U is not a copy of T.
    let err = u
        .rewind(&rewind_source(&settings_t, 5733), false)
        .await
        .unwrap_err();
    let message = err.to_string();
    eprintln!("another system: {message}");
    assert!(message.contains("from different systems"), "{message}");
    assert!(
        matches!(
            err,
            PgError::Rewind {
                target_modified: false,
                ..
            }
        ),
        "{err:?}"
    );
    // None of it touched U.
    assert_eq!(u.control_data().unwrap(), control);

    // A directory that is not initialised.
    let empty = Postgres::new(settings(dir.path(), "nodeV", 5735)).unwrap();
    assert!(matches!(
        empty.control_data(),
        Err(PgError::NotInitialized { .. })
    ));
    assert!(matches!(
        empty.rewind(&rewind_source(&settings_t, 5733), true).await,
        Err(PgError::NotInitialized { .. })
    ));

    // Timeline 1 has no history; a later timeline without a history file is an error.
    assert_eq!(u.timeline_history(1).unwrap(), vec![]);
    let err = u.timeline_history(2).unwrap_err();
    assert!(matches!(err, PgError::TimelineHistory { .. }), "{err:?}");
    assert!(err.to_string().contains("00000002.history"), "{err}");

    t.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_data_dir_empties_only_a_stopped_postgres_directory() {
    init_logging();
    let dir = test_dir();
    let (pg, _guard) = running_primary(dir.path(), "nodeR", 5736, false).await;
    let data_dir = pg.data_dir().to_path_buf();

    let err = pg.remove_data_dir().await.unwrap_err();
    assert!(matches!(err, PgError::Running { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("removing the data directory refused: PostgreSQL (pid "),
        "{err}"
    );
    assert!(data_dir.join("PG_VERSION").exists());
    assert!(pg.is_ready().await);

    pg.stop(StopMode::Fast).await.unwrap();
    let before = std::fs::metadata(&data_dir).unwrap();
    pg.remove_data_dir().await.unwrap();
    assert_eq!(pg.data_dir_state().unwrap(), DataDirState::Empty);
    let after = std::fs::metadata(&data_dir).unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode()),
        (before.uid(), before.gid(), before.mode())
    );
    assert_eq!(after.mode() & 0o777, 0o700);
    assert_eq!(after.uid(), pg.os_user().uid);
    // Empty or missing: nothing to do.
    pg.remove_data_dir().await.unwrap();
    let missing = Postgres::new(settings(dir.path(), "nodeM", 5737)).unwrap();
    missing.remove_data_dir().await.unwrap();
    assert_eq!(missing.data_dir_state().unwrap(), DataDirState::Missing);

    // The emptied directory takes a new cluster (initdb here; a base backup in the agent).
    pg.initdb(&initdb_options(false)).await.unwrap();
    pg.write_config(&config_files()).await.unwrap();
    pg.start().await.unwrap();
    assert!(pg.is_ready().await);
    pg.stop(StopMode::Fast).await.unwrap();

    // A directory that is not PostgreSQL's is never emptied.
    let foreign = Postgres::new(settings(dir.path(), "nodeF", 5738)).unwrap();
    std::fs::create_dir_all(foreign.data_dir()).unwrap();
    std::fs::set_permissions(foreign.data_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let precious = foreign.data_dir().join("precious.txt");
    std::fs::write(&precious, "do not delete").unwrap();
    let err = foreign.remove_data_dir().await.unwrap_err();
    assert!(matches!(err, PgError::NotPostgres { .. }), "{err:?}");
    assert!(err.to_string().contains("the agent never deletes it"), "{err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "do not delete");
}
