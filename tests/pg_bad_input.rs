//! Bad input on the PostgreSQL side gets a clear error and loses nothing: a PostgreSQL port
//! already taken, a wrong superuser password, a data directory of another database system.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use pgquorum::ctl::cluster_read::cluster_view;
use pgquorum::postgres::{DataDirState, Postgres, PostgresSettings};

async fn log_contains(path: &Path, needle: &str, timeout: Duration) {
    let what = format!("{needle:?} in {}", path.display());
    wait_for(&what, timeout, || async {
        std::fs::read_to_string(path)
            .ok()
            .filter(|l| l.contains(needle))
            .map(|_| ())
    })
    .await;
}

fn system_identifier(pg: &Postgres) -> String {
    match pg.data_dir_state().unwrap() {
        DataDirState::Initialized {
            system_identifier, ..
        } => system_identifier,
        other => panic!("unexpected data dir state {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_taken_wrong_password_and_foreign_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, opts) = start_pg_cluster(dir.path(), 4521).await;
    let endpoint = demo.endpoints[0].clone();
    let view = cluster_view(&endpoint).await.unwrap();
    let leader = view.leader_name().unwrap().to_string();
    let victim = (0..3).find(|i| format!("node{}", i + 1) != leader).unwrap();
    let name = format!("node{}", victim + 1);
    let log = dir.path().join(format!("{name}.log"));
    let config_path = dir.path().join(format!("{name}.yml"));

    // 1. Its PostgreSQL port is taken by someone else: the agent says so and keeps running.
    demo.terminate(victim).await;
    let squatter = std::net::TcpListener::bind(("127.0.0.1", opts.pg_port(victim))).unwrap();
    demo.start_node(victim).unwrap();
    log_contains(
        &log,
        &format!("127.0.0.1:{}: port in use", opts.pg_port(victim)),
        Duration::from_secs(60),
    )
    .await;
    assert!(demo.pid(victim).is_some());
    drop(squatter);
    demo.wait_postgres_healthy(Duration::from_secs(120))
        .await
        .expect("recovers once the port is free");

    // 2. A wrong superuser password in its config: named clearly, data untouched.
    demo.terminate(victim).await;
    let original = std::fs::read_to_string(&config_path).unwrap();
    let wrong = original.replace(
        &format!("password: {}", pgquorum::demo::DEMO_SUPERUSER_PASSWORD),
        "password: not-the-password",
    );
    assert_ne!(wrong, original);
    std::fs::write(&config_path, &wrong).unwrap();
    demo.start_node(victim).unwrap();
    log_contains(&log, "wrong password for user postgres", Duration::from_secs(60)).await;
    demo.terminate(victim).await;
    std::fs::write(&config_path, &original).unwrap();

    // 3. A data directory of another database system: refused, and left exactly as it is.
    let config = pgquorum::config::Config::load(&config_path).unwrap().config;
    let pg = Postgres::new(PostgresSettings::from_config(&config).unwrap()).unwrap();
    let ours = system_identifier(&pg);
    std::fs::rename(pg.data_dir(), pg.data_dir().with_extension("moved-by-test")).unwrap();
    pg.initdb(&[]).await.unwrap();
    let foreign = system_identifier(&pg);
    assert_ne!(foreign, ours);
    demo.start_node(victim).unwrap();
    log_contains(
        &log,
        &format!("belongs to database system {foreign}"),
        Duration::from_secs(60),
    )
    .await;
    log_contains(&log, "refusing to join", Duration::from_secs(5)).await;
    assert_eq!(
        system_identifier(&pg),
        foreign,
        "the foreign data directory was changed"
    );
    assert!(
        pg.postmaster_pid().is_none(),
        "the foreign data directory was started"
    );
    assert_eq!(
        cluster_view(&endpoint).await.unwrap().leader_name(),
        Some(leader.as_str())
    );

    demo.stop().await;
}
