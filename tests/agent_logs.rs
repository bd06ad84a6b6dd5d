//! Patroni's `log` section on a real agent: `log.dir` sends the lines to
//! `<dir>/pgquorum.log` (not stderr), and `log.level` changed in the file takes effect on
//! SIGHUP. Ports 4991 (gRPC), 8191 (PostgreSQL), 10791 (REST).

mod common;

use std::time::Duration;

use common::*;

const BASE_PORT: u16 = 4991;

fn debug_lines(text: &str) -> usize {
    text.lines().filter(|l| l.contains(" DEBUG ")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_dir_file_and_level_changed_by_sighup() {
    let dir = TestDir::new();
    let logs = dir.path().join("logs");
    let log_file = logs.join("pgquorum.log");
    let opts = pg_options(dir.path(), BASE_PORT, 1, &[]);
    let yaml_at = |level: &str| {
        solo_agent_yaml(dir.path(), &opts, "demo", 0, &[]).replacen(
            "log:\n  level: INFO\n",
            &format!(
                "log:\n  level: {level}\n  dir: {}\n  file_num: 2\n",
                logs.display()
            ),
            1,
        )
    };
    let agent = SoloAgent::start(
        dir.path(),
        "node1",
        &format!("127.0.0.1:{BASE_PORT}"),
        &yaml_at("INFO"),
    );
    let read = || std::fs::read_to_string(&log_file).unwrap_or_default();

    wait_for(
        "the start-up line in log.dir",
        Duration::from_secs(30),
        || async { read().contains("pgquorum agent starting").then_some(()) },
    )
    .await;
    // Up as the primary: the HA loop runs and a reload reaches it.
    wait_for("node1 primary", Duration::from_secs(120), || async {
        let primary = pg_scalar(opts.pg_port(0), "SELECT pg_is_in_recovery()::text").await;
        (primary.as_deref() == Some("false")).then_some(())
    })
    .await;
    assert!(
        !agent.log_text().contains("pgquorum agent starting"),
        "with log.dir the lines go to the file, not stderr"
    );
    assert_eq!(
        debug_lines(&read()),
        0,
        "INFO level logs no DEBUG line:\n{}",
        read()
    );

    std::fs::write(dir.path().join("node1.yml"), yaml_at("DEBUG")).unwrap();
    let pid = agent.pid().expect("the agent runs") as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_for(
        "a DEBUG line after the reload",
        Duration::from_secs(30),
        || async {
            let text = read();
            (text.contains("log level changed on reload: now debug") && debug_lines(&text) > 0).then_some(())
        },
    )
    .await;
    agent.stop().await;
}
