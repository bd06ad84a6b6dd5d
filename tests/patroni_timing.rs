//! Patroni's timing values and watchdog test harness, with real agents and PostgreSQL.
//!
//! Patroni accepts `ttl: 20, loop_wait: 2, retry_timeout: 10` (which breaks its own rule
//! `loop_wait + 2 × retry_timeout ≤ ttl`) by shortening `loop_wait` / `retry_timeout` with a
//! warning; pgquorum must start a cluster from such a file, warn once, and run with the adjusted
//! values. The same cluster runs `watchdog: {mode: required, driver: testing}` on plain files,
//! so the watchdog path is observable: the primary arms it before it accepts writes and keeps
//! it alive, a demoted primary disarms it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use pgquorum::ctl::cluster_read::cluster_view;

/// Raft 4581–4583, PostgreSQL 7781–7783, REST 10381–10383.
const BASE_PORT: u16 = 4581;
const TIMEOUT: Duration = Duration::from_secs(180);

/// Patroni's accepted-but-inconsistent timings, as a Patroni user writes them.
const PATRONI_TIMINGS: &str = "    ttl: 20\n    loop_wait: 2\n    retry_timeout: 10\n";
/// What pgquorum (like Patroni) makes of them.
const ADJUSTMENT: &str =
    "bootstrap.dcs: adjusted loop_wait from 2 s to 1 s and retry_timeout from 10 s to 9 s";

fn watchdog_file(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("node{n}.watchdog"))
}

fn write_configs(dir: &Path) -> Vec<PathBuf> {
    (1..=3)
        .map(|n| {
            let device = watchdog_file(dir, n);
            std::fs::write(&device, "").unwrap();
            let watchdog = format!(
                "watchdog:\n  mode: required\n  driver: testing\n  device: {}\n",
                device.display()
            );
            let path = dir.join(format!("node{n}.yml"));
            std::fs::write(
                &path,
                patroni_node_config(dir, n, BASE_PORT, PATRONI_TIMINGS, &watchdog),
            )
            .unwrap();
            path
        })
        .collect()
}

#[test]
fn validate_config_accepts_patroni_timings_and_prints_the_adjustment() {
    let dir = TestDir::new();
    let configs = write_configs(dir.path());
    let out = Command::new(EXE)
        .arg("--validate-config")
        .arg(&configs[0])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    let warning = stdout
        .lines()
        .find(|l| l.contains(ADJUSTMENT))
        .unwrap_or_else(|| panic!("no adjustment warning in:\n{stdout}"));
    assert!(warning.starts_with("warning: "), "{warning}");
    assert!(
        warning.contains("loop_wait + 2 × retry_timeout must not exceed ttl (20 s)"),
        "{warning}"
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The 0-based index of the member holding the lease, once it accepts writes.
async fn writable_primary(name: &str) -> Option<usize> {
    let view = cluster_view(&format!("127.0.0.1:{BASE_PORT}")).await.ok()?;
    let leader = view.leader_name()?;
    if leader != name && !name.is_empty() {
        return None;
    }
    let i = leader.strip_prefix("node")?.parse::<usize>().ok()? - 1;
    let port = BASE_PORT + 3200 + i as u16;
    (pg_scalar(port, "SELECT pg_is_in_recovery()").await.as_deref() == Some("f")).then_some(i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_from_patroni_timings_starts_healthy_with_the_watchdog_test_harness() {
    let dir = TestDir::new();
    let d = dir.path();
    let configs = write_configs(d);
    let log = |n: usize| d.join(format!("node{n}.log"));
    let mut agents: Vec<_> = (1..=3).map(|n| spawn_agent(&configs[n - 1], &log(n))).collect();

    let view = wait_for("a primary and two streaming replicas", TIMEOUT, || async {
        let view = cluster_view(&format!("127.0.0.1:{BASE_PORT}")).await.ok()?;
        let leader = view.leader_name()?.to_string();
        let streaming = view
            .members
            .iter()
            .filter(|m| m.state == pgquorum::cluster::PgRunState::Streaming)
            .count();
        let primary_up = view.member(&leader).is_some_and(|m| m.state.is_up());
        (primary_up && streaming == 2).then_some(view)
    })
    .await;

    // The cluster runs with the adjusted values, and every agent said so once.
    let dcs = &view.config;
    assert_eq!((dcs.ttl, dcs.loop_wait, dcs.retry_timeout), (20.0, 1.0, 9.0));
    for n in 1..=3 {
        let text = read(&log(n));
        assert_eq!(
            text.matches(ADJUSTMENT).count(),
            1,
            "node{n}'s log should carry the warning once:\n{text}"
        );
    }

    // The primary armed its watchdog (timeout ttl − safety_margin = 15 s) and keeps it alive.
    let p = wait_for("a writable primary", TIMEOUT, || writable_primary("")).await;
    let device = watchdog_file(d, p + 1);
    let armed = read(&device);
    assert!(armed.starts_with("Ctimeout=15\n1"), "{armed:?}");
    let keepalives = armed.matches('1').count();
    wait_for("more keepalives", Duration::from_secs(30), || async {
        (read(&device).matches('1').count() >= keepalives + 2).then_some(())
    })
    .await;

    // Switchover: the candidate arms its watchdog before it promotes; the old primary disarms.
    let candidate = (p + 1) % 3;
    let names = ["node1", "node2", "node3"];
    let out = Command::new(CTL)
        .arg("--endpoint")
        .arg(format!("127.0.0.1:{BASE_PORT}"))
        .args([
            "switchover",
            "--leader",
            names[p],
            "--candidate",
            names[candidate],
            "--force",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the candidate is a writable primary", TIMEOUT, || {
        writable_primary(names[candidate])
    })
    .await;
    let text = read(&log(candidate + 1));
    let armed_at = text
        .find("watchdog armed")
        .expect("the candidate armed its watchdog");
    let promoted_at = text
        .find("promoted: PostgreSQL now accepts writes")
        .expect("the candidate promoted");
    assert!(armed_at < promoted_at, "armed after promoting:\n{text}");
    assert!(
        read(&watchdog_file(d, candidate + 1)).starts_with("Ctimeout=15\n1"),
        "{:?}",
        read(&watchdog_file(d, candidate + 1))
    );
    wait_for("the old primary disarmed its watchdog", TIMEOUT, || async {
        read(&device).ends_with('V').then_some(())
    })
    .await;

    for agent in agents.drain(..) {
        terminate_agent(agent).await;
    }
}
