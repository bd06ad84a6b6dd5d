//! The fence that holds when the agent itself is gone or stalled.
//!
//! A primary whose agent dies (`kill -9`, OOM killer, crash) or stalls (SIGSTOP, a long pause)
//! would otherwise keep accepting writes while another member takes the expired lease and
//! promotes: a split brain. So the agent starts a tiny guard process (`pgquorum fence-guard
//! DATA_DIR`) and keeps the write end of a pipe to the guard's stdin open for its whole life.
//!
//! - **Agent gone**: the kernel closes the pipe whenever the agent exits, however it exits;
//!   the guard sees end-of-file and kills PostgreSQL at once.
//! - **Agent stalled**: while this node holds the leader lease, the agent sends the lease
//!   deadline down the pipe after every renewal (`deadline <ms>` on the system-wide
//!   CLOCK_MONOTONIC, which both processes read). If the deadline passes without a new one,
//!   the guard kills PostgreSQL: an agent that cannot renew cannot keep a writable primary,
//!   even when it is frozen and its own lease watchdog cannot run. `none` disarms the
//!   deadline (the node gave the lease up, or is a replica).
//!
//! "Kill" is SIGKILL to the postmaster's whole process group (pg_ctl starts the postmaster as
//! a group leader), so no backend can commit after it. On a clean shutdown the agent has
//! already stopped PostgreSQL, and the guard finds nothing to kill. What it does not cover: a
//! frozen machine or kernel; that needs the hardware watchdog (docs/fencing.md).

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, ChildStdin, Command};

/// How long before the lease deadline the guard kills PostgreSQL: covers the kill itself.
pub const GUARD_MARGIN: Duration = Duration::from_millis(250);

/// The agent's end of the guard.
pub struct FenceGuard {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// Start the guard for `data_dir`. Keep the returned guard alive as long as the agent manages
/// PostgreSQL; dropping it (or the agent dying) arms the end-of-file kill.
pub fn spawn_guard(data_dir: &Path) -> std::io::Result<FenceGuard> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("fence-guard")
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let stdin = child.stdin.take();
    Ok(FenceGuard { child, stdin })
}

impl FenceGuard {
    /// Tell the guard the lease deadline (`None`: no lease, no deadline). The guard kills
    /// PostgreSQL `GUARD_MARGIN` before it unless a later deadline arrives first.
    pub async fn set_deadline(&mut self, deadline: Option<Instant>) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let line = match deadline {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                let at_ms = (monotonic_ms() + left.as_millis() as u64)
                    .saturating_sub(GUARD_MARGIN.as_millis() as u64);
                format!("deadline {at_ms}\n")
            }
            None => "none\n".to_string(),
        };
        match self.stdin.as_mut() {
            Some(stdin) => {
                stdin.write_all(line.as_bytes()).await?;
                stdin.flush().await
            }
            None => Ok(()),
        }
    }

    /// The guard's process id (for tests and logs).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// CLOCK_MONOTONIC in ms: the same clock in every process on the machine.
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The guard's body: kill PostgreSQL when the agent goes away or lets a deadline pass.
pub fn run_guard(data_dir: &Path) -> std::process::ExitCode {
    // A Ctrl-C, a terminal hang-up or a reload (`kill -HUP` of the group) in the agent's
    // terminal reaches the whole process group; the guard must stay in force until the agent
    // itself is gone.
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    let mut deadline: Option<u64> = None;
    loop {
        let timeout_ms = match deadline {
            Some(at) => at.saturating_sub(monotonic_ms()) as i32,
            None => -1,
        };
        match wait_readable(timeout_ms) {
            Readable::TimedOut => {
                kill_postgres(
                    data_dir,
                    "the agent did not renew the leader lease before its deadline (stalled?)",
                );
                deadline = None;
            }
            Readable::Ready => {
                let mut line = String::new();
                match lines.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        kill_postgres(data_dir, "the agent is gone");
                        return std::process::ExitCode::SUCCESS;
                    }
                    Ok(_) => deadline = parse_line(&line).unwrap_or(deadline),
                }
            }
        }
    }
}

/// `deadline <ms>` → `Some(Some(ms))`, `none` → `Some(None)`; anything else is ignored.
fn parse_line(line: &str) -> Option<Option<u64>> {
    let line = line.trim();
    if line == "none" {
        return Some(None);
    }
    line.strip_prefix("deadline ")
        .and_then(|ms| ms.trim().parse().ok())
        .map(Some)
}

enum Readable {
    Ready,
    TimedOut,
}

/// Wait until stdin has input (or end of file), up to `timeout_ms` (-1: forever).
fn wait_readable(timeout_ms: i32) -> Readable {
    let mut fds = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: poll on one pollfd we own.
        let n = unsafe { libc::poll(&mut fds, 1, timeout_ms.max(-1)) };
        match n {
            0 => return Readable::TimedOut,
            n if n > 0 => return Readable::Ready,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => continue,
            // poll failing otherwise: treat as end of input (the read will tell).
            _ => return Readable::Ready,
        }
    }
}

fn kill_postgres(data_dir: &Path, why: &str) {
    let Some(pid) = crate::postgres::postmaster_of(data_dir) else {
        return;
    };
    let pid = pid as i32;
    // SAFETY: getpgid/killpg/kill on the verified postmaster of this data directory.
    unsafe {
        if libc::getpgid(pid) == pid {
            libc::killpg(pid, libc::SIGKILL);
        } else {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "pgquorum fence-guard: {why}; killed PostgreSQL (pid {pid}) of {} so it cannot keep accepting writes",
        data_dir.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_lines_parse() {
        assert_eq!(parse_line("deadline 12345\n"), Some(Some(12345)));
        assert_eq!(parse_line("none\n"), Some(None));
        assert_eq!(parse_line("garbage\n"), None);
        assert_eq!(parse_line("deadline soon\n"), None);
    }

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_ms();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(5) {}
        assert!(monotonic_ms() >= a + 4);
    }
}
