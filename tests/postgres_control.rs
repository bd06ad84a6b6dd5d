//! The PostgreSQL toolbox against real PostgreSQL servers on 127.0.0.1.
//!
//! Each test has its own ports (5711–5720) and temporary directories, waits for conditions
//! with deadlines (never fixed sleeps), and stops its servers at the end, also when it fails
//! (`ServerGuard` runs `pg_ctl stop -m immediate` on drop).

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgquorum::config::ToolOption;
use pgquorum::postgres::{
    detect_bin_dir, primary_conninfo, slot_name_for, ConnTarget, Credentials, DataDirState, OsUser,
    PgConfigFiles, PgError, Postgres, PostgresSettings, Program, StandbyConfig, StopMode,
};

const SUPERUSER_PASSWORD: &str = "super'secret";
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
        rewind: Some(Credentials::new("rewinder", Some("rewind-pass"))),
        run_as: None,
        pg_ctl_timeout: Duration::from_secs(60),
        member_name: name.into(),
        scope: "pgq-test".into(),
        basebackup_options: vec![],
        log_file: None,
    }
}

fn initdb_options() -> Vec<ToolOption> {
    let mut encoding = BTreeMap::new();
    encoding.insert("encoding".to_string(), "UTF8".to_string());
    vec![
        ToolOption::Flag("data-checksums".into()),
        ToolOption::Setting(encoding),
        // Tests do not need the data on disk to survive a power loss.
        ToolOption::Flag("no-sync".into()),
    ]
}

/// Sockets for everyone, passwords over TCP (scram), replication over TCP.
fn config_files() -> PgConfigFiles {
    let mut parameters = BTreeMap::new();
    parameters.insert("shared_buffers".to_string(), "16MB".to_string());
    parameters.insert("fsync".to_string(), "off".to_string());
    parameters.insert("max_connections".to_string(), "20".to_string());
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

async fn show(pg: &Postgres, name: &str) -> String {
    pg.query_scalar(&format!("SHOW {name}")).await.unwrap().unwrap()
}

/// initdb + config + start: a running primary.
async fn running_primary(dir: &Path, name: &str, port: u16) -> (Postgres, ServerGuard) {
    let pg = Postgres::new(settings(dir, name, port)).unwrap();
    let guard = ServerGuard(pg.clone());
    pg.initdb(&initdb_options()).await.unwrap();
    pg.write_config(&config_files()).await.unwrap();
    pg.start().await.unwrap();
    (pg, guard)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_lifecycle_config_changes_and_stop() {
    init_logging();
    let dir = test_dir();
    let pg = Postgres::new(settings(dir.path(), "node1", 5711)).unwrap();
    let _guard = ServerGuard(pg.clone());
    assert_eq!(pg.data_dir_state().unwrap(), DataDirState::Missing);

    pg.initdb(&initdb_options()).await.unwrap();
    let system_identifier = match pg.data_dir_state().unwrap() {
        DataDirState::Initialized {
            system_identifier,
            timeline,
            checkpoint_lsn,
            version,
            ..
        } => {
            assert_eq!(timeline, 1);
            assert!(checkpoint_lsn > 0);
            assert!(!version.is_empty());
            system_identifier
        }
        other => panic!("after initdb: {other:?}"),
    };
    let data = std::fs::metadata(pg.data_dir()).unwrap();
    assert_eq!(data.mode() & 0o777, 0o700);
    assert_eq!(data.uid(), pg.os_user().uid);

    let mut files = config_files();
    let change = pg.write_config(&files).await.unwrap();
    assert!(change.changed);
    // initdb's postgresql.conf was taken over and is included by ours.
    let base = pg.data_dir().join("postgresql.base.conf");
    assert!(base.exists());
    let ours = std::fs::read_to_string(pg.data_dir().join("postgresql.conf")).unwrap();
    assert!(ours.starts_with("# Do not edit: managed by pgquorum"), "{ours}");
    assert!(ours.contains("include 'postgresql.base.conf'"));
    assert_eq!(std::fs::metadata(&base).unwrap().uid(), pg.os_user().uid);

    pg.start().await.unwrap();
    assert!(pg.postmaster_pid().is_some());
    assert!(pg.is_ready().await);
    pg.start().await.unwrap(); // already running: fine

    let state = pg.query_state().await.unwrap();
    assert!(!state.in_recovery);
    assert_eq!(state.timeline, 1);
    assert!(state.wal_lsn.is_some_and(|lsn| lsn > 0), "{state:?}");
    assert_eq!(state.system_identifier, system_identifier);
    assert!(state.server_version_num >= 120000);
    assert!(state.wal_receiver.is_none());
    assert!(state.pending_restart.is_empty(), "{state:?}");
    assert_eq!(show(&pg, "data_checksums").await, "on");
    assert_eq!(show(&pg, "server_encoding").await, "UTF8");
    assert_eq!(show(&pg, "cluster_name").await, "pgq-test");

    // A reloadable parameter: written, reloaded, in effect.
    files.parameters.insert("work_mem".into(), "7MB".into());
    let change = pg.write_config(&files).await.unwrap();
    assert!(change.changed);
    assert_eq!(change.changed_parameters, vec!["work_mem"]);
    assert!(change.restart_needed.is_empty());
    pg.reload().await.unwrap();
    wait_for("work_mem to become 7MB", || async {
        (pg.query_scalar("SHOW work_mem").await.ok()?? == "7MB").then_some(())
    })
    .await;

    // Unchanged files: nothing to do.
    let change = pg.write_config(&files).await.unwrap();
    assert!(!change.changed && change.changed_parameters.is_empty());

    // A restart-only parameter.
    files.parameters.insert("shared_buffers".into(), "24MB".into());
    let change = pg.write_config(&files).await.unwrap();
    assert_eq!(change.restart_needed, vec!["shared_buffers"]);
    pg.reload().await.unwrap();
    wait_for("pending_restart to show shared_buffers", || async {
        let state = pg.query_state().await.ok()?;
        state
            .pending_restart
            .contains(&"shared_buffers".to_string())
            .then_some(())
    })
    .await;
    pg.restart().await.unwrap();
    assert_eq!(show(&pg, "shared_buffers").await, "24MB");
    assert!(pg.query_state().await.unwrap().pending_restart.is_empty());

    pg.stop(StopMode::Fast).await.unwrap();
    assert_eq!(pg.postmaster_pid(), None);
    assert!(!pg.is_ready().await);
    pg.stop(StopMode::Fast).await.unwrap(); // already stopped: fine
    match pg.data_dir_state().unwrap() {
        DataDirState::Initialized { cluster_state, .. } => assert_eq!(cluster_state, "shut down"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(pg.reload().await, Err(PgError::NotRunning { .. })));
    assert!(matches!(pg.query_state().await, Err(PgError::Connect { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_from_base_backup_streams_through_its_slot_and_promotes() {
    init_logging();
    let dir = test_dir();
    let (primary, _primary_guard) = running_primary(dir.path(), "node1", 5712).await;
    let settings = primary.settings().clone();
    primary
        .create_roles(&settings.replication, settings.rewind.as_ref())
        .await
        .unwrap();
    primary
        .create_roles(&settings.replication, settings.rewind.as_ref())
        .await
        .unwrap(); // idempotent
    assert_eq!(
        primary
            .query_scalar("SELECT rolreplication FROM pg_roles WHERE rolname = 'replicator'")
            .await
            .unwrap(),
        Some("t".into())
    );
    assert_eq!(
        primary
            .query_scalar("SELECT has_function_privilege('rewinder', 'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)', 'execute')")
            .await
            .unwrap(),
        Some("t".into())
    );

    let slot = slot_name_for("node2");
    let synced = primary
        .sync_replication_slots(std::slice::from_ref(&slot), &[])
        .await
        .unwrap();
    assert_eq!(synced.created, vec![slot.clone()]);
    let again = primary
        .sync_replication_slots(std::slice::from_ref(&slot), &[])
        .await
        .unwrap();
    assert!(again.created.is_empty() && again.dropped.is_empty());

    let replica = Postgres::new(self::settings(dir.path(), "node2", 5713)).unwrap();
    let _replica_guard = ServerGuard(replica.clone());
    let source = ConnTarget::new("node1", "127.0.0.1", 5712);
    let reports = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    replica
        .basebackup(&source, &move |step| sink.lock().unwrap().push(step))
        .await
        .unwrap();
    let reports = reports.lock().unwrap().clone();
    assert!(!reports.is_empty(), "progress was never reported");
    let last = reports.last().unwrap();
    assert_eq!(last.percent, 100, "{reports:?}");
    assert!(matches!(
        replica.data_dir_state().unwrap(),
        DataDirState::Initialized { .. }
    ));

    let mut files = config_files();
    files.standby = Some(StandbyConfig::new(
        primary_conninfo(&source, &settings.replication, "node2", None),
        Some(slot.clone()),
    ));
    let change = replica.write_config(&files).await.unwrap();
    assert!(change.standby_signal_changed);
    assert!(replica.data_dir().join("standby.signal").exists());
    replica.start().await.unwrap();

    let receiving = wait_for("the replica to stream from the primary", || async {
        let state = replica.query_state().await.ok()?;
        let receiver = state.wal_receiver.clone()?;
        (receiver.status == "streaming").then_some((state, receiver))
    })
    .await;
    let (state, receiver) = receiving;
    assert!(state.in_recovery);
    assert_eq!(state.timeline, 1);
    assert_eq!(state.wal_lsn, None);
    assert!(
        state.received_lsn.is_some() && state.replayed_lsn.is_some(),
        "{state:?}"
    );
    assert_eq!(receiver.sender_port, Some(5712));
    assert_eq!(receiver.slot_name.as_deref(), Some(slot.as_str()));
    let primary_state = primary.query_state().await.unwrap();
    assert_eq!(state.system_identifier, primary_state.system_identifier);

    primary
        .execute("CREATE TABLE probe (x int); INSERT INTO probe VALUES (42)")
        .await
        .unwrap();
    wait_for("the row to reach the replica", || async {
        (replica.query_scalar("SELECT x FROM probe").await.ok()?? == "42").then_some(())
    })
    .await;
    // The one-query replay positions the wait before a promotion polls: the row was replayed,
    // so the replayed position is past where the replica stood before it.
    let (received, replayed) = replica.query_replay().await.unwrap();
    assert!(
        received.is_some() && replayed.is_some_and(|r| Some(r) > state.replayed_lsn),
        "{received:?} {replayed:?} {state:?}"
    );
    assert_eq!(primary.query_replay().await.unwrap(), (None, None));

    let peer = wait_for("pg_stat_replication to list node2", || async {
        let state = primary.query_state().await.ok()?;
        state
            .replication
            .into_iter()
            .find(|peer| peer.application_name == "node2")
    })
    .await;
    assert_eq!(peer.state.as_deref(), Some("streaming"));
    assert_eq!(peer.client_addr.as_deref(), Some("127.0.0.1/32"));
    assert_eq!(
        primary
            .query_scalar(&format!(
                "SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'"
            ))
            .await
            .unwrap(),
        Some("t".into())
    );
    // An unwanted slot still in use is not dropped.
    let synced = primary.sync_replication_slots(&[], &[]).await.unwrap();
    assert_eq!(synced.unwanted_but_active, vec![slot.clone()]);
    assert!(synced.dropped.is_empty());

    // Promote the replica: it leaves recovery on a new timeline.
    assert!(matches!(primary.promote().await, Err(PgError::NotStandby)));
    primary.stop(StopMode::Fast).await.unwrap();
    replica.promote().await.unwrap();
    let promoted = wait_for("the promoted replica to accept writes", || async {
        let state = replica.query_state().await.ok()?;
        (!state.in_recovery).then_some(state)
    })
    .await;
    assert_eq!(promoted.timeline, 2);
    assert!(promoted.wal_lsn.is_some());
    replica.execute("INSERT INTO probe VALUES (43)").await.unwrap();
    replica.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_touches_a_directory_that_is_not_postgres() {
    init_logging();
    let dir = test_dir();
    let pg = Postgres::new(settings(dir.path(), "node3", 5718)).unwrap();
    std::fs::create_dir_all(pg.data_dir()).unwrap();
    let precious = pg.data_dir().join("precious.txt");
    std::fs::write(&precious, "do not delete").unwrap();

    match pg.data_dir_state().unwrap() {
        DataDirState::NotPostgres(why) => assert!(why.contains("precious.txt"), "{why}"),
        other => panic!("{other:?}"),
    }
    let err = pg.initdb(&initdb_options()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("initdb refused: {} is not empty", pg.data_dir().display())
    );
    let err = pg
        .basebackup(&ConnTarget::new("node1", "127.0.0.1", 5712), &|_| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not empty"), "{err}");
    assert!(matches!(
        pg.write_config(&config_files()).await,
        Err(PgError::NotInitialized { .. })
    ));
    assert!(matches!(pg.start().await, Err(PgError::NotInitialized { .. })));

    let entries: Vec<PathBuf> = std::fs::read_dir(pg.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries, vec![precious.clone()]);
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "do not delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initdb_where_the_postgres_user_cannot_write_is_refused_cleanly() {
    init_logging();
    let dir = test_dir();
    let pg = Postgres::new(settings(&dir.path().join("locked"), "node9", 5718)).unwrap();
    if !pg.os_user().switch_user {
        return; // only root can build a directory the PostgreSQL user cannot enter
    }
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::os::unix::fs::chown(&locked, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();

    let err = pg.initdb(&initdb_options()).await.unwrap_err();
    assert!(matches!(err, PgError::NotWritable { .. }), "{err:?}");
    assert_eq!(
        err.to_string().split(" (").next().unwrap(),
        format!(
            "data directory {} is not writable by OS user postgres",
            pg.data_dir().display()
        )
    );
    // The directories initdb created on the way are gone again.
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_on_a_taken_port_names_the_port() {
    init_logging();
    let dir = test_dir();
    let pg = Postgres::new(settings(dir.path(), "node4", 5714)).unwrap();
    let _guard = ServerGuard(pg.clone());
    pg.initdb(&initdb_options()).await.unwrap();
    pg.write_config(&config_files()).await.unwrap();

    let squatter = std::net::TcpListener::bind("127.0.0.1:5714").unwrap();
    let err = pg.start().await.unwrap_err();
    let message = err.to_string();
    eprintln!("start on a taken port: {message}");
    assert!(matches!(err, PgError::PortInUse { .. }), "{message}");
    assert!(
        message.contains("cannot start PostgreSQL on 127.0.0.1:5714: port in use"),
        "{message}"
    );
    assert!(message.contains("FATAL"), "{message}");
    assert_eq!(pg.postmaster_pid(), None);

    drop(squatter);
    pg.start().await.unwrap();
    pg.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_postmaster_pid_is_removed_on_start() {
    init_logging();
    let dir = test_dir();
    let pg = Postgres::new(settings(dir.path(), "node5", 5715)).unwrap();
    let _guard = ServerGuard(pg.clone());
    pg.initdb(&initdb_options()).await.unwrap();
    pg.write_config(&config_files()).await.unwrap();
    let pid_file = pg.data_dir().join("postmaster.pid");
    let user = pg.os_user().clone();
    let write_pid_file = |pid: u32| {
        let contents = format!(
            "{pid}\n{}\n1700000000\n5715\n/tmp\n127.0.0.1\n  5715001    0\nready   \n",
            pg.data_dir().display()
        );
        std::fs::write(&pid_file, contents).unwrap();
        std::os::unix::fs::chown(&pid_file, Some(user.uid), Some(user.gid)).unwrap();
    };

    // A live process that is not a postmaster (this test) is not taken for one.
    write_pid_file(std::process::id());
    assert_eq!(pg.postmaster_pid(), None);

    // A pid whose process is gone.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = child.id();
    child.wait().unwrap();
    write_pid_file(dead_pid);
    assert_eq!(pg.postmaster_pid(), None);

    pg.start().await.unwrap();
    let pid = pg.postmaster_pid().expect("running after start");
    assert_ne!(pid, dead_pid);
    assert!(pg.is_ready().await);
    pg.stop(StopMode::Fast).await.unwrap();
    assert!(!pid_file.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_superuser_password_is_reported_as_such() {
    init_logging();
    let dir = test_dir();
    let (pg, _guard) = running_primary(dir.path(), "node6", 5716).await;

    // The same server over TCP, where pg_hba asks for a scram password.
    let mut tcp = pg.settings().clone();
    tcp.socket_dir = None;
    let right = Postgres::new(tcp.clone()).unwrap();
    assert!(!right.query_state().await.unwrap().in_recovery);

    tcp.superuser = Credentials::new("postgres", Some("not-the-password"));
    let wrong = Postgres::new(tcp.clone()).unwrap();
    let err = wrong.query_state().await.unwrap_err();
    assert!(matches!(err, PgError::WrongPassword { .. }), "{err:?}");
    assert_eq!(err.to_string(), "wrong password for user postgres");
    assert!(
        wrong.is_ready().await,
        "a refused password still means the server is up"
    );

    tcp.superuser = Credentials::new("postgres", None);
    let none = Postgres::new(tcp).unwrap();
    let err = none.query_state().await.unwrap_err();
    assert!(err.to_string().contains("none is configured"), "{err}");

    pg.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basebackup_from_an_unreachable_server_leaves_the_target_as_it_was() {
    init_logging();
    let dir = test_dir();
    let source = ConnTarget::new("nobody", "127.0.0.1", 5717);

    // Missing target: still missing afterwards, with the parent directory it created gone.
    let missing = Postgres::new(settings(dir.path(), "node7", 5719)).unwrap();
    let err = missing.basebackup(&source, &|_| {}).await.unwrap_err();
    let message = err.to_string();
    eprintln!("base backup from an unreachable server: {message}");
    assert!(
        message.starts_with("pg_basebackup from 127.0.0.1:5717 failed: "),
        "{message}"
    );
    assert!(message.contains("5717"), "{message}");
    assert_eq!(missing.data_dir_state().unwrap(), DataDirState::Missing);
    assert!(!dir.path().join("node7").exists());

    // Empty target: still empty, with its owner and mode back.
    let empty = Postgres::new(settings(dir.path(), "node8", 5720)).unwrap();
    std::fs::create_dir_all(empty.data_dir()).unwrap();
    std::fs::set_permissions(empty.data_dir(), std::fs::Permissions::from_mode(0o750)).unwrap();
    let before = std::fs::metadata(empty.data_dir()).unwrap();
    let err = empty.basebackup(&source, &|_| {}).await.unwrap_err();
    assert!(matches!(err, PgError::Basebackup { .. }), "{err:?}");
    assert_eq!(empty.data_dir_state().unwrap(), DataDirState::Empty);
    let after = std::fs::metadata(empty.data_dir()).unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode()),
        (before.uid(), before.gid(), before.mode())
    );
}

/// The adapter (`PgOps`) over `pg`, for what only the HA seam decides.
fn adapter(pg: &Postgres) -> pgquorum::ha::pg_adapter::LocalPostgres {
    let yaml = "scope: pgq-test\nname: node21\nraft:\n  self_addr: 127.0.0.1:1\n  data_dir: /tmp/unused\n\
                postgresql:\n  connect_address: 127.0.0.1:5721\n  data_dir: /tmp/unused\n";
    let config = pgquorum::config::Config::from_yaml_str(yaml, "test", Vec::<(String, String)>::new())
        .unwrap()
        .config;
    pgquorum::ha::pg_adapter::LocalPostgres::new(pg.clone(), config)
}

/// Issue 9, hole 1: after an immediate stop the control file's latest checkpoint lies before
/// the end of WAL, so it is no final position: only a control file that says `shut down` gives
/// one (what a switchover candidate and a whole-cluster restart wait for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_position_only_from_a_cleanly_shut_down_primary() {
    use pgquorum::ha::pg_ops::{PgFailure, PgOps};
    init_logging();
    let dir = test_dir();
    let (pg, _guard) = running_primary(dir.path(), "node21", 5721).await;
    let local = adapter(&pg);
    pg.execute("CHECKPOINT").await.unwrap();
    pg.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g")
        .await
        .unwrap();
    let written = pg
        .query_state()
        .await
        .unwrap()
        .wal_lsn
        .expect("a primary's WAL position");
    pg.stop(StopMode::Immediate).await.unwrap();
    let control = pg.control_data().unwrap();
    assert!(
        control.checkpoint_lsn < written,
        "the premise: latest checkpoint {:X} before the WAL written {written:X}",
        control.checkpoint_lsn
    );
    match local.final_lsn() {
        Err(PgFailure::NotCleanlyStopped { state }) => assert_eq!(state, "in production"),
        other => panic!("a final position from an immediately stopped primary: {other:?}"),
    }
    // Crash recovery, then a clean (fast) stop: the shutdown checkpoint is the end of WAL.
    pg.start().await.unwrap();
    pg.stop(StopMode::Fast).await.unwrap();
    let final_lsn = local
        .final_lsn()
        .expect("a cleanly stopped primary has a final position");
    assert!(final_lsn >= written, "{final_lsn:X} < {written:X}");
    assert_eq!(final_lsn, pg.control_data().unwrap().checkpoint_lsn);
}

/// Issue 9, hole 1 (jepsen forced-stop): a backend that outlives its killed postmaster (here
/// SIGSTOPped) holds the shared memory, and every start on the directory — pg_rewind's crash
/// recovery too — fails. The adapter ends such leftovers of the directory (and only when no
/// postmaster runs); then PostgreSQL starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftover_backends_of_a_killed_postmaster_are_ended() {
    init_logging();
    let dir = test_dir();
    let (pg, _guard) = running_primary(dir.path(), "node22", 5722).await;
    assert_eq!(
        pg.end_leftover_processes().await.unwrap(),
        Vec::<u32>::new(),
        "none while running"
    );
    let conninfo =
        format!("host=127.0.0.1 port=5722 user=postgres password={SUPERUSER_PASSWORD} dbname=postgres");
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let backend: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let postmaster = pg.postmaster_pid().expect("running") as i32;
    // SAFETY: signals to processes this test started; no memory effects here.
    unsafe {
        libc::kill(backend, libc::SIGSTOP);
        libc::kill(postmaster, libc::SIGKILL);
    }
    wait_for("the postmaster to be gone", || async {
        pg.postmaster_pid().is_none().then_some(())
    })
    .await;
    let err = pg
        .start()
        .await
        .expect_err("the leftover backend holds the shared memory");
    assert!(matches!(err, PgError::StartFailed { .. }), "{err}");
    let ended = pg.end_leftover_processes().await.unwrap();
    assert_eq!(ended, vec![backend as u32]);
    pg.start().await.unwrap();
    assert!(pg.is_ready().await);
    pg.stop(StopMode::Fast).await.unwrap();
}
