//! A bootstrap that PostgreSQL refuses (issue 16): the agent retries it with back-off, at most
//! `BOOTSTRAP_MAX_ATTEMPTS` times, then gives up with one ERROR in PostgreSQL's own words; it
//! keeps at most one set-aside directory, so disk use stays bounded. Before the fix it retried
//! about 1.5 times a second, each attempt leaving a new data directory behind.

mod common;

use std::time::Duration;

use common::*;
use pgquorum::ha::retry::{backoff_ms, BOOTSTRAP_MAX_ATTEMPTS};

const BASE_PORT: u16 = 4591;

/// PostgreSQL 15 refuses to start with this: "WAL streaming (max_wal_senders > 0) requires
/// wal_level "replica" or "logical"". Both are parameters it knows: only the value is wrong.
const REFUSED: &[(&str, &str)] = &[("wal_level", "minimal"), ("max_wal_senders", "10")];
const POSTGRES_SAYS: &str = "requires wal_level";

/// Two data directories' worth (one set aside, one being made): an initdb here is ~40 MB.
const DISK_LIMIT: u64 = 200 * 1024 * 1024;

/// Logged once per attempt, when it starts.
const ATTEMPT_LINE: &str = "won the bootstrap race";
const GAVE_UP: &str = "giving up until the agent is restarted";

/// Seconds since midnight of a log line's timestamp (`2026-12-01T06:32:35.612345Z  INFO …`).
fn seconds_of_day(line: &str) -> Option<f64> {
    let time = line.get(11..)?.split(['Z', ' ']).next()?;
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn lines_with<'a>(log: &'a str, part: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(part)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_bootstrap_is_retried_with_backoff_five_times_then_given_up() {
    let dir = TestDir::new();
    let config = pg_agent_config(dir.path(), BASE_PORT, 0, 1, REFUSED, "demo-repl");
    let log_path = dir.path().join("node1.log");
    let mut agent = spawn_agent(&config, &log_path);
    let node_dir = dir.path().join("node1");
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Measured at every poll while the agent works, not only at the end.
    let mut peak_bytes = 0u64;
    let mut peak_aside = 0usize;
    let mut check_bounds = || {
        let used = disk_usage(dir.path());
        let aside = entries_named(&node_dir, ".failed-bootstrap-").len();
        peak_bytes = peak_bytes.max(used);
        peak_aside = peak_aside.max(aside);
        assert!(
            aside <= 1,
            "{aside} set-aside directories of failed bootstraps: only the last one may be kept"
        );
        assert!(
            used < DISK_LIMIT,
            "{} MB used under the test directory: more than two data directories' worth",
            used >> 20
        );
    };

    let gave_up = wait_for(
        "the agent to give up on the bootstrap",
        Duration::from_secs(240),
        || {
            check_bounds();
            if let Ok(Some(status)) = agent.try_wait() {
                panic!("the agent exited ({status}); see {}", log_path.display());
            }
            let log = read_log();
            async move { lines_with(&log, GAVE_UP).first().map(|l| l.to_string()) }
        },
    )
    .await;
    assert!(gave_up.contains("ERROR"), "{gave_up}");
    assert!(
        gave_up.contains(&format!("bootstrap failed {BOOTSTRAP_MAX_ATTEMPTS} times")),
        "{gave_up}"
    );
    assert!(
        gave_up.contains(POSTGRES_SAYS),
        "the ERROR must give PostgreSQL's own message: {gave_up}"
    );

    // The decision that follows says why nothing happens any more.
    wait_for("the refusing decision", Duration::from_secs(30), || {
        let log = read_log();
        async move { log.contains("not trying again").then_some(()) }
    })
    .await;
    // Proving that nothing more happens takes a time window: 6 s is a dozen loops (loop_wait
    // is 0.5 s by default), and 4 times the longest back-off before the last attempt. Watched
    // throughout, so a new attempt fails the test when it happens, not at the end.
    let window_ends = tokio::time::Instant::now() + Duration::from_secs(6);
    while tokio::time::Instant::now() < window_ends {
        check_bounds();
        let started = lines_with(&read_log(), ATTEMPT_LINE).len();
        assert!(
            started <= BOOTSTRAP_MAX_ATTEMPTS as usize,
            "attempt {started} started after giving up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let log = read_log();
    let attempts = lines_with(&log, ATTEMPT_LINE);
    assert_eq!(
        attempts.len(),
        BOOTSTRAP_MAX_ATTEMPTS as usize,
        "{BOOTSTRAP_MAX_ATTEMPTS} attempts, and none after giving up"
    );
    assert_eq!(
        lines_with(&log, "initdb done").len(),
        BOOTSTRAP_MAX_ATTEMPTS as usize,
        "one initdb per attempt"
    );
    assert_eq!(lines_with(&log, GAVE_UP).len(), 1, "one ERROR when giving up");
    let failures = lines_with(&log, "bootstrap failed (");
    assert_eq!(
        failures.len(),
        BOOTSTRAP_MAX_ATTEMPTS as usize - 1,
        "{failures:#?}"
    );
    for failure in &failures {
        assert!(
            failure.contains("WARN") && failure.contains(POSTGRES_SAYS),
            "{failure}"
        );
    }
    // Back-off: attempt k+1 starts no sooner than 1, 2, 4, 8 s after failure k.
    for (k, (failure, next)) in failures.iter().zip(&attempts[1..]).enumerate() {
        let (Some(failed_at), Some(next_at)) = (seconds_of_day(failure), seconds_of_day(next)) else {
            panic!("no timestamps in {failure:?} / {next:?}");
        };
        let wanted = backoff_ms(k as u32 + 1) as f64 / 1000.0;
        assert!(
            next_at - failed_at >= wanted - 0.1,
            "attempt {} started {:.2} s after failure {}, wanted at least {wanted} s",
            k + 2,
            next_at - failed_at,
            k + 1
        );
    }

    let aside = entries_named(&node_dir, ".failed-bootstrap-");
    assert_eq!(
        aside.len(),
        1,
        "the last failed attempt is kept for the operator: {aside:?}"
    );
    assert!(aside[0].join("PG_VERSION").exists());
    eprintln!(
        "peak disk use {} MB, at most {peak_aside} set-aside directory",
        peak_bytes >> 20
    );
    terminate_agent(agent).await;
}

/// The same rule for clones: a replica whose base backups fail (here its replication password
/// is wrong) retries with back-off for ever, and leaves nothing half-copied behind. Before the
/// fix it started the next pg_basebackup at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_clone_is_retried_with_backoff_and_leaves_no_partial_directory() {
    const BASE: u16 = 4595;
    let dir = TestDir::new();
    let primary_config = pg_agent_config(dir.path(), BASE, 0, 2, &[], "demo-repl");
    let replica_config = pg_agent_config(dir.path(), BASE, 1, 2, &[], "not-the-password");
    // The replica must never win the bootstrap race (both agents start together: the group
    // needs both to form); tagged nofailover, it waits for node1's bootstrap and clones.
    let mut yaml = std::fs::read_to_string(&replica_config).unwrap();
    yaml.push_str("tags:\n  nofailover: true\n");
    std::fs::write(&replica_config, yaml).unwrap();
    let primary_log = dir.path().join("node1.log");
    let replica_log = dir.path().join("node2.log");
    let primary = spawn_agent(&primary_config, &primary_log);
    let mut replica = spawn_agent(&replica_config, &replica_log);
    let replica_data = dir.path().join("node2").join("pgdata");
    let read_log = || std::fs::read_to_string(&replica_log).unwrap_or_default();

    const FAILED: &str = "creating a replica failed (";
    const STARTED: &str = "creating a replica with pg_basebackup";
    const WANT_FAILURES: usize = 4;
    wait_for("four failed clones", Duration::from_secs(240), || {
        if let Ok(Some(status)) = replica.try_wait() {
            panic!("the agent exited ({status}); see {}", replica_log.display());
        }
        // Between attempts nothing half-copied stays behind to block the next one. Judged
        // only when the log shows no attempt running both before and after the directory was
        // looked at (the next attempt may start at any moment; its start is logged before
        // pg_basebackup writes anything).
        let before = read_log();
        let partial = std::fs::read_dir(&replica_data).map(|d| d.count()).unwrap_or(0);
        let log = read_log();
        let between_attempts = |text: &str| text.matches(STARTED).count() == text.matches(FAILED).count();
        if log == before && between_attempts(&log) {
            assert_eq!(
                partial,
                0,
                "a failed clone left files in {}",
                replica_data.display()
            );
        }
        async move { (lines_with(&log, FAILED).len() >= WANT_FAILURES).then_some(()) }
    })
    .await;

    let log = read_log();
    let failures = lines_with(&log, FAILED);
    let attempts = lines_with(&log, STARTED);
    assert!(
        failures[0].contains("WARN") && failures[0].contains("password authentication failed"),
        "{}",
        failures[0]
    );
    assert!(
        !log.contains("giving up"),
        "clones are never given up: the primary may come back"
    );
    for (k, (failure, next)) in failures.iter().zip(&attempts[1..]).enumerate() {
        let (Some(failed_at), Some(next_at)) = (seconds_of_day(failure), seconds_of_day(next)) else {
            panic!("no timestamps in {failure:?} / {next:?}");
        };
        let wanted = backoff_ms(k as u32 + 1) as f64 / 1000.0;
        assert!(
            next_at - failed_at >= wanted - 0.1,
            "clone attempt {} started {:.2} s after failure {}, wanted at least {wanted} s",
            k + 2,
            next_at - failed_at,
            k + 1
        );
    }
    assert!(
        log.contains("waiting 4 s before clone attempt 4 from primary node1"),
        "the decision says what happens"
    );
    terminate_agent(replica).await;
    terminate_agent(primary).await;
}
