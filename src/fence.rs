//! The fence that holds when the agent itself is gone.
//!
//! A primary whose agent dies (`kill -9`, OOM killer, crash) would otherwise keep accepting
//! writes while another member takes the expired lease and promotes: a split brain after
//! `ttl`. So the agent starts a tiny guard process (`pgquorum fence-guard DATA_DIR`) and keeps
//! the write end of a pipe to the guard's stdin open for its whole life. The kernel closes
//! that pipe whenever the agent exits, however it exits; the guard then sees end-of-file and
//! kills the postmaster of the data directory at once (SIGKILL: no session may commit after
//! that). On a clean shutdown the agent has already stopped PostgreSQL, and the guard finds
//! nothing to kill.
//!
//! What it does not cover: an agent that is alive but stalled (SIGSTOP, a long pause) keeps
//! the pipe open; that needs a deadline in the guard (the watchdog work of the failover issue).

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use tokio::process::{Child, Command};

/// Start the guard for `data_dir`. Keep the returned child (and its stdin) alive as long as
/// the agent manages PostgreSQL; dropping it arms the guard.
pub fn spawn_guard(data_dir: &Path) -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new(exe)
        .arg("fence-guard")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
}

/// The guard's body: wait for the agent to go away, then kill the postmaster.
pub fn run_guard(data_dir: &Path) -> std::process::ExitCode {
    // A Ctrl-C in the agent's terminal reaches the whole process group; the guard must stay
    // in force until the agent itself is gone.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    let mut buf = [0u8; 64];
    let mut stdin = std::io::stdin();
    // Nothing is ever written: read returns 0 (end of file) when the agent's end closes.
    while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    if let Some(pid) = crate::postgres::postmaster_of(data_dir) {
        // SAFETY: kill(2) on the verified postmaster of this data directory.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        eprintln!(
            "pgquorum fence-guard: the agent is gone; killed PostgreSQL (pid {pid}) of {} so it cannot \
             keep accepting writes",
            data_dir.display()
        );
    }
    std::process::ExitCode::SUCCESS
}
