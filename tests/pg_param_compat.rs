//! PostgreSQL parameters the running version does not have (issue 16): a cluster bootstrapped
//! with Patroni-era names starts on PostgreSQL 15, with them translated (`wal_keep_segments`
//! → `wal_keep_size`) or left out with a warning (`checkpoint_segments`), as Patroni does.

mod common;

use std::time::Duration;

use common::*;
use pgquorum::config::Config;
use pgquorum::demo::Demo;
use pgquorum::postgres::{Postgres, PostgresSettings};

/// What the installed PostgreSQL 15 binary says about itself (`postgres --version` and
/// `postgres --describe-config`, read when the toolbox is created).
#[test]
fn the_installed_postgres_15_describes_its_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "scope: demo\nname: n1\nraft:\n  self_addr: 127.0.0.1:4647\n  data_dir: {d}/raft\n\
         postgresql:\n  data_dir: {d}/pgdata\n  listen: 127.0.0.1:7847\n  bin_dir: /usr/lib/postgresql/15/bin\n",
        d = dir.path().display()
    );
    let config = Config::from_yaml_str(&yaml, "test", Vec::<(String, String)>::new())
        .expect("valid")
        .config;
    let pg = Postgres::new(PostgresSettings::from_config(&config).unwrap()).unwrap();
    let binary = pg.binary();
    assert_eq!(binary.version.major(), "15", "{}", binary.version);
    assert!(binary.known.len() > 250, "{:?}", binary.known);
    for known in [
        "wal_keep_size",
        "shared_preload_libraries",
        "promote_trigger_file",
        "restore_command",
        "recovery_min_apply_delay",
        "hba_file",
        "unix_socket_directories",
        // Not listed by --describe-config, accepted in postgresql.conf.
        "application_name",
        "zero_damaged_pages",
        // Extension parameters.
        "pg_stat_statements.max",
    ] {
        assert!(binary.known.knows(binary.version, known), "{known}");
    }
    for unknown in [
        "wal_keep_segments",
        "checkpoint_segments",
        "standby_mode",
        "trigger_file",
        "debug_parallel_query",
        "no_such_parameter",
    ] {
        assert!(!binary.known.knows(binary.version, unknown), "{unknown}");
    }
}

fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_bootstrapped_with_parameters_of_other_versions_starts() {
    let dir = TestDir::new();
    let opts = pg_cluster_options_with_bootstrap_parameters(
        dir.path(),
        4647,
        &[("wal_keep_segments", "100"), ("checkpoint_segments", "8")],
    );
    let mut demo = Demo::start(&opts).await.expect("start agents");
    let config = std::fs::read_to_string(dir.path().join("node1.yml")).unwrap();
    assert!(
        config.contains("        wal_keep_segments: 100\n        checkpoint_segments: 8\n"),
        "{config}"
    );
    demo.wait_postgres_healthy(Duration::from_secs(180))
        .await
        .expect("primary and two streaming replicas");

    let mut primaries = 0;
    for i in 0..3 {
        let port = opts.pg_port(i);
        assert_eq!(
            pg_scalar(port, "SHOW wal_keep_size").await.as_deref(),
            Some("1600MB"),
            "node{}",
            i + 1
        );
        if pg_scalar(port, "SELECT pg_is_in_recovery()").await.as_deref() == Some("f") {
            primaries += 1;
        }
    }
    assert_eq!(primaries, 1);

    // Each agent warned about each parameter, once (not on every HA cycle).
    for i in 0..3 {
        let log = std::fs::read_to_string(dir.path().join(format!("node{}.log", i + 1))).unwrap();
        for warning in [
            "parameter wal_keep_segments = '100' is written as wal_keep_size = '1600MB' for PostgreSQL 15",
            "parameter checkpoint_segments is not written: PostgreSQL 9.5 and later do not have it",
        ] {
            assert_eq!(occurrences(&log, warning), 1, "node{}: {warning}", i + 1);
        }
    }
    demo.stop().await;
}
