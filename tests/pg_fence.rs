//! The fence that works without the agent: `kill -9` of the primary's agent must not leave
//! its PostgreSQL accepting writes; and the guard process itself (`pgquorum fence-guard`), fed
//! deadlines by hand, against a stand-in postmaster.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::time::Duration;

use common::*;
use pgquorum::ctl::cluster_read::cluster_view;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primarys_agent_takes_its_postgres_down() {
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, opts) = start_pg_cluster(dir.path(), 4531).await;
    let view = cluster_view(&demo.endpoints[0]).await.unwrap();
    let leader = view.leader_name().unwrap().to_string();
    let primary = leader.trim_start_matches("node").parse::<usize>().unwrap() - 1;
    let data_dir = dir.path().join(&leader).join("pgdata");
    let port = opts.pg_port(primary);
    assert_eq!(
        pg_scalar(port, "SELECT pg_is_in_recovery()").await.as_deref(),
        Some("f")
    );

    demo.kill9(primary).await;
    wait_for(
        "the fenced primary's postmaster to be gone",
        Duration::from_secs(10),
        || {
            let data_dir = data_dir.clone();
            async move {
                postmaster_pid(&data_dir)
                    .filter(|p| pid_exists(*p))
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await;
    assert!(
        pg_connect(port).await.is_err(),
        "the old primary still accepts connections"
    );

    // Its agent comes back, finds its lease and restarts PostgreSQL as the primary.
    demo.start_node(primary).unwrap();
    demo.wait_postgres_healthy(Duration::from_secs(120))
        .await
        .unwrap();
    demo.stop().await;
}

/// The agent frozen (SIGSTOP): its lease runs out, the guard kills PostgreSQL at the deadline
/// and, with the deadline still passed, kills it again when it is started by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_agents_postgres_started_again_by_hand_is_killed_again() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), 4631, true);
    let agent = lone_primary(dir.path(), &opts, "fence").await;
    let port = opts.pg_port(0);
    let data_dir = dir.path().join("node1").join("pgdata");
    let agent_pid = agent.pid().unwrap() as i32;
    // SAFETY: plain kill(2) on the agent this test started.
    unsafe { libc::kill(agent_pid, libc::SIGSTOP) };

    // The guard reports each postmaster it kills at the deadline once.
    let guard_kills = || {
        agent
            .log_text()
            .matches("fence-guard: the agent did not renew the leader lease")
            .count()
    };
    let postmaster_gone = |what: &'static str| {
        let data_dir = data_dir.clone();
        wait_for(what, Duration::from_secs(60), move || {
            let gone = postmaster_pid(&data_dir).filter(|p| pid_exists(*p)).is_none();
            async move { gone.then_some(()) }
        })
    };
    postmaster_gone("the guard to kill PostgreSQL after the lease deadline").await;
    assert_eq!(guard_kills(), 1, "{}", agent.log_text());

    // Started again by hand while the agent is still frozen: killed again.
    let started = std::process::Command::new("runuser")
        .args([
            "-u",
            "postgres",
            "--",
            "/usr/lib/postgresql/15/bin/pg_ctl",
            "start",
            "-w",
            "-t",
            "30",
            "-D",
        ])
        .arg(&data_dir)
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    wait_for(
        "the guard to kill the PostgreSQL started by hand",
        Duration::from_secs(30),
        || async { (guard_kills() >= 2).then_some(()) },
    )
    .await;
    postmaster_gone("the PostgreSQL started by hand to be gone").await;
    assert!(pg_connect(port).await.is_err(), "started by hand: {started}");

    // SAFETY: as above.
    unsafe { libc::kill(agent_pid, libc::SIGCONT) };
    agent.stop().await;
}

/// The pid still exists, zombies included. Not `common::process_alive`: PostgreSQL's own
/// lock-file check uses kill(pid, 0) too, so a killed postmaster not yet reaped still blocks a
/// `pg_ctl start` of its directory; the tests wait until it would not.
fn pid_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// A stand-in postmaster: `sleep` copied under the name `postgres`, running in the data
/// directory as its own process group, named by `postmaster.pid`: what the guard's checks
/// (`postgres::postmaster_of`) take for the postmaster of that directory.
struct FakePostmaster {
    child: Child,
}

impl FakePostmaster {
    fn start(data_dir: &Path) -> FakePostmaster {
        use std::os::unix::process::CommandExt;
        let bin = data_dir.parent().unwrap().join("bin");
        let exe = bin.join("postgres");
        if !exe.exists() {
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::copy("/bin/sleep", &exe).unwrap();
        }
        // A test thread forking while the copy's write descriptor was open hands that
        // descriptor to its child for a moment, and exec then fails with "text file busy"
        // (ETXTBSY): retry briefly, the descriptor is closed at the child's own exec.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let child = loop {
            match std::process::Command::new(&exe)
                .arg("600")
                .current_dir(data_dir)
                .process_group(0)
                .spawn()
            {
                Err(e)
                    if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(20))
                }
                other => break other.unwrap(),
            }
        };
        std::fs::write(
            data_dir.join("postmaster.pid"),
            format!("{}\n{}\n", child.id(), data_dir.display()),
        )
        .unwrap();
        FakePostmaster { child }
    }

    /// Reaps it if it died (so that a dead one is not left a zombie the guard still sees).
    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    async fn wait_killed(&mut self, what: &str) {
        wait_for(what, Duration::from_secs(3), || {
            let dead = !self.alive();
            async move { dead.then_some(()) }
        })
        .await;
    }

    /// Still running after `period` (the guard looks every 100 ms).
    async fn survives(&mut self, period: Duration) -> bool {
        let until = tokio::time::Instant::now() + period;
        while tokio::time::Instant::now() < until {
            if !self.alive() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }
}

impl Drop for FakePostmaster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pgquorum fence-guard DATA_DIR` with its stdin in the test's hands (the agent's part).
struct GuardProcess {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl GuardProcess {
    fn start(data_dir: &Path) -> GuardProcess {
        let mut child = std::process::Command::new(EXE)
            .arg("fence-guard")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        GuardProcess { child, stdin }
    }

    /// Send `text` in one write.
    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Close the pipe, as the agent's exit does.
    fn close(&mut self) {
        self.stdin.take();
    }
}

impl Drop for GuardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CLOCK_BOOTTIME in ms, the clock of the guard's deadlines.
fn boottime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

fn fake_data_dir(root: &Path) -> PathBuf {
    let data_dir = root.join("pgdata");
    std::fs::create_dir_all(&data_dir).unwrap();
    data_dir
}

/// How long a negative check watches: several of the guard's 100 ms looks.
const SEVERAL_LOOKS: Duration = Duration::from_millis(600);

#[tokio::test]
async fn guard_keeps_killing_a_postmaster_that_reappears_after_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = fake_data_dir(dir.path());
    let mut guard = GuardProcess::start(&data_dir);
    let mut first = FakePostmaster::start(&data_dir);
    guard.send("deadline 1\n");
    first
        .wait_killed("the postmaster to be killed at the deadline")
        .await;

    // Started again (a restart finishing late, or by hand) while no new deadline came.
    let mut second = FakePostmaster::start(&data_dir);
    second
        .wait_killed("the reappearing postmaster to be killed again")
        .await;

    // A fresh deadline re-arms: the guard leaves PostgreSQL alone until it passes.
    guard.send(&format!("deadline {}\n", boottime_ms() + 60_000));
    let mut third = FakePostmaster::start(&data_dir);
    assert!(third.survives(SEVERAL_LOOKS).await, "killed before its deadline");
    // `none` disarms, and the end of the pipe (the agent gone) still kills at once.
    guard.send("none\n");
    assert!(third.survives(SEVERAL_LOOKS).await, "killed with no deadline");
    guard.close();
    third
        .wait_killed("the postmaster to be killed when the agent is gone")
        .await;
}

#[tokio::test]
async fn guard_acts_on_the_last_of_several_lines_that_arrive_together() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = fake_data_dir(dir.path());
    let mut guard = GuardProcess::start(&data_dir);
    let mut postmaster = FakePostmaster::start(&data_dir);
    // A stale deadline directly followed by a fresh one, in one write: only the fresh counts.
    guard.send(&format!("deadline 1\ndeadline {}\n", boottime_ms() + 60_000));
    assert!(
        postmaster.survives(SEVERAL_LOOKS).await,
        "the guard acted on a stale deadline"
    );
    // A partial line is held until it is complete, and the guard does not block on it.
    guard.send("deadl");
    assert!(postmaster.survives(SEVERAL_LOOKS).await);
    guard.send("ine 1\n");
    postmaster
        .wait_killed("the postmaster to be killed once the completed line's deadline passed")
        .await;
}

#[tokio::test]
async fn guard_leaves_a_standby_running_after_the_deadline_until_it_is_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = fake_data_dir(dir.path());
    std::fs::write(data_dir.join("standby.signal"), "").unwrap();
    let mut guard = GuardProcess::start(&data_dir);
    let mut standby = FakePostmaster::start(&data_dir);
    guard.send("deadline 1\n");
    assert!(
        standby.survives(SEVERAL_LOOKS).await,
        "a read-only standby was killed"
    );
    // Promotion removes standby.signal before the server accepts writes.
    std::fs::remove_file(data_dir.join("standby.signal")).unwrap();
    standby
        .wait_killed("the promoted server to be killed past the deadline")
        .await;
}

/// Hole 9b (issue 9): an agent that exits on purpose in maintenance mode sends `detach` first;
/// the guard then exits at end of file and leaves the postmaster running. Without `detach`
/// (the agent died) end of file still kills it.
#[tokio::test]
async fn a_detached_guard_leaves_postgres_running_when_the_agent_exits() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = fake_data_dir(dir.path());
    let mut postmaster = FakePostmaster::start(&data_dir);
    let mut guard = GuardProcess::start(&data_dir);
    guard.send(&format!("deadline {}\n", boottime_ms() + 60_000));
    guard.send("detach\n");
    guard.close();
    wait_for("the detached guard to exit", Duration::from_secs(5), || {
        let exited = guard.child.try_wait().unwrap().is_some();
        async move { exited.then_some(()) }
    })
    .await;
    assert!(
        postmaster.survives(SEVERAL_LOOKS).await,
        "the detached guard killed PostgreSQL"
    );

    // Attached again by a deadline after the detach: end of file kills as before.
    let mut guard = GuardProcess::start(&data_dir);
    guard.send("detach\n");
    guard.send("none\n");
    guard.close();
    postmaster
        .wait_killed("the re-attached guard to kill at end of file")
        .await;
}
