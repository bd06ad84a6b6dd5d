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
//!   CLOCK_BOOTTIME, which both processes read and which keeps counting while the machine is
//!   suspended). Once the deadline has passed without a newer one, the guard kills PostgreSQL,
//!   and keeps killing any postmaster of the data directory that could accept writes (looking
//!   again every `RECHECK_PERIOD`) until a newer deadline or `none` arrives: an agent that
//!   cannot renew cannot keep a writable primary, even when it is frozen and its own lease
//!   watchdog cannot run, and a restart that finishes after the deadline is caught too.
//!   `none` disarms the deadline (the node gave the lease up, or is a replica).
//!
//! A server set up as a standby (`standby.signal` or `recovery.signal` in the data directory)
//! is read-only, so after the deadline the guard leaves it running: the agent starts its
//! PostgreSQL as a replica after losing the lease, sometimes before it has told the guard.
//! Promotion removes those files before the server accepts writes, and the guard kills it at
//! its next look.
//!
//! "Kill" is SIGKILL to the postmaster's whole process group (pg_ctl starts the postmaster as
//! a group leader), so no backend can commit after it. On a clean shutdown the agent has
//! already stopped PostgreSQL, and the guard finds nothing to kill; in maintenance mode the
//! agent leaves PostgreSQL running and sends `detach` first (src/ha/shutdown.rs). What it does not cover: a
//! frozen machine or kernel; that needs the hardware watchdog (docs/fencing.md).

use std::io::Write;
use std::os::fd::RawFd;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, ChildStdin, Command};

/// How long before the lease deadline the guard kills PostgreSQL: covers the kill itself.
pub const GUARD_MARGIN: Duration = Duration::from_millis(250);

/// How often the guard looks at the clock and, past the deadline, for a postmaster again.
/// Also bounds how late it acts after a suspend (poll's own timeout does not count one).
pub const RECHECK_PERIOD: Duration = Duration::from_millis(100);

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
        let line = deadline_line(deadline.map(|at| at.saturating_duration_since(Instant::now())));
        match self.stdin.as_mut() {
            Some(stdin) => {
                stdin.write_all(line.as_bytes()).await?;
                stdin.flush().await
            }
            None => Ok(()),
        }
    }

    /// Tell the guard that the agent is about to exit on purpose and leave PostgreSQL running
    /// (maintenance mode): it disarms and exits at end of file without killing PostgreSQL. Any
    /// later [`FenceGuard::set_deadline`] attaches it again.
    pub async fn detach(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        match self.stdin.as_mut() {
            Some(stdin) => {
                stdin.write_all(b"detach\n").await?;
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

/// The guard as the HA loop holds it: a task forwards every lease deadline (ms after `clock0`
/// on the loop's watch channel) to it. A write error means the guard is gone: the loop's own
/// lease watchdog still holds, so it is said loudly and the agent carries on. Dropping it drops
/// the guard (between two lines): at end of file the guard kills whatever PostgreSQL of the
/// data directory still runs — nothing, after a clean stop.
pub struct FenceFeed {
    task: tokio::task::JoinHandle<FenceGuard>,
    /// Asks the task to stop forwarding and hand the guard back, between two lines.
    release: tokio::sync::oneshot::Sender<()>,
}

impl FenceFeed {
    pub fn start(
        mut guard: FenceGuard,
        clock0: Instant,
        mut deadline: tokio::sync::watch::Receiver<Option<u64>>,
    ) -> FenceFeed {
        let (release, mut released) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut working = true;
            loop {
                if working {
                    let at = deadline
                        .borrow_and_update()
                        .map(|ms| clock0 + Duration::from_millis(ms));
                    if let Err(e) = guard.set_deadline(at).await {
                        tracing::error!("the fence guard does not take deadlines any more: {e}");
                        working = false;
                    }
                }
                // Only the waits are cancelled: a line is always written whole.
                tokio::select! {
                    _ = &mut released => return guard,
                    changed = deadline.changed(), if working => {
                        if changed.is_err() {
                            working = false;
                        }
                    }
                }
            }
        });
        FenceFeed { task, release }
    }

    /// Stop forwarding deadlines and tell the guard to leave PostgreSQL running when the agent
    /// exits (maintenance mode, src/ha/shutdown.rs).
    pub async fn detach(self) -> std::io::Result<()> {
        let _ = self.release.send(());
        let mut guard = self.task.await.map_err(std::io::Error::other)?;
        guard.detach().await
    }
}

/// The line telling the guard a deadline `left` from now (`None`: disarm). The agent measures
/// `left` on its own monotonic clock at the moment of sending; from then on the deadline is a
/// point on CLOCK_BOOTTIME, so a suspend after it was sent counts as time that passed.
fn deadline_line(left: Option<Duration>) -> String {
    match left {
        Some(left) => {
            let at_ms =
                (boottime_ms() + left.as_millis() as u64).saturating_sub(GUARD_MARGIN.as_millis() as u64);
            format!("deadline {at_ms}\n")
        }
        None => "none\n".to_string(),
    }
}

/// CLOCK_BOOTTIME in ms: the same clock in every process on the machine, and unlike
/// CLOCK_MONOTONIC it goes on counting while the machine is suspended.
pub fn boottime_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
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
    guard_loop(libc::STDIN_FILENO, data_dir);
    std::process::ExitCode::SUCCESS
}

/// Read deadlines from `fd` until end of file, fencing PostgreSQL while the last one has
/// passed; at end of file (the agent is gone) kill PostgreSQL and return.
///
/// The descriptor is read raw (no buffered reader whose hidden buffer `poll` cannot see), and
/// every complete line that has arrived is taken in before the guard looks at the clock: a
/// stale deadline followed by a fresh one in the same burst never fires.
fn guard_loop(fd: RawFd, data_dir: &Path) {
    let mut lines = LineBuffer::default();
    let mut state = GuardState::default();
    // A killed postmaster can take a moment to die (a process in uninterruptible I/O): it is
    // killed again at every look, but reported once.
    let mut last_killed = None;
    loop {
        let deadline = state.deadline;
        if deadline.is_some_and(|d| boottime_ms() >= d) && !starts_read_only(data_dir) {
            if let Some(pid) = kill_postgres(data_dir) {
                if last_killed != Some(pid) {
                    report_kill(
                        data_dir,
                        pid,
                        "the agent did not renew the leader lease before its deadline (stalled?)",
                    );
                }
                last_killed = Some(pid);
            }
        }
        if wait_readable(fd, poll_timeout_ms(deadline, boottime_ms())) == Readable::TimedOut {
            continue;
        }
        // Drain everything that is there now before acting on any of it.
        loop {
            let mut chunk = [0u8; 4096];
            match read_some(fd, &mut chunk) {
                Some(0) | None => {
                    if !state.attached {
                        report_detached(data_dir);
                        return;
                    }
                    if let Some(pid) = kill_postgres(data_dir) {
                        report_kill(data_dir, pid, "the agent is gone");
                    }
                    return;
                }
                Some(n) => state = after_lines(state, &lines.push(&chunk[..n])),
            }
            if wait_readable(fd, 0) == Readable::TimedOut {
                break;
            }
        }
    }
}

/// How long to wait for input: forever without a deadline, otherwise no longer than
/// `RECHECK_PERIOD` (to notice a suspend, and past the deadline to look for a postmaster).
fn poll_timeout_ms(deadline: Option<u64>, now_ms: u64) -> i32 {
    let period = RECHECK_PERIOD.as_millis() as u64;
    match deadline {
        None => -1,
        Some(d) => d.saturating_sub(now_ms).clamp(1, period) as i32,
    }
}

/// What the guard holds between reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GuardState {
    /// The lease deadline (CLOCK_BOOTTIME ms), if armed.
    deadline: Option<u64>,
    /// End of file kills PostgreSQL. Cleared by `detach`: the agent is about to exit on
    /// purpose and leave PostgreSQL running (maintenance mode, as Patroni does); set again by
    /// any later `deadline` or `none`.
    attached: bool,
}

impl Default for GuardState {
    fn default() -> GuardState {
        GuardState {
            deadline: None,
            attached: true,
        }
    }
}

/// One message from the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Message {
    /// `deadline <ms>` (`Some`) or `none`.
    Deadline(Option<u64>),
    /// `detach`: disarm, and at end of file exit without touching PostgreSQL.
    Detach,
}

/// The state after `lines`, taken in order; lines that are not messages change nothing.
fn after_lines(mut state: GuardState, lines: &[String]) -> GuardState {
    for message in lines.iter().filter_map(|l| parse_line(l)) {
        state = match message {
            Message::Deadline(deadline) => GuardState {
                deadline,
                attached: true,
            },
            Message::Detach => GuardState {
                deadline: None,
                attached: false,
            },
        };
    }
    state
}

/// The deadline after `lines`, in order: the last valid line wins.
#[cfg(test)]
fn latest_deadline(current: Option<u64>, lines: &[String]) -> Option<u64> {
    let state = GuardState {
        deadline: current,
        attached: true,
    };
    after_lines(state, lines).deadline
}

/// `deadline <ms>`, `none` or `detach`; anything else is ignored.
fn parse_line(line: &str) -> Option<Message> {
    let line = line.trim();
    match line {
        "none" => return Some(Message::Deadline(None)),
        "detach" => return Some(Message::Detach),
        _ => {}
    }
    line.strip_prefix("deadline ")
        .and_then(|ms| ms.trim().parse().ok())
        .map(|ms| Message::Deadline(Some(ms)))
}

/// Bytes from the pipe cut into complete lines; a partial line waits for the rest.
#[derive(Default)]
struct LineBuffer {
    partial: Vec<u8>,
}

/// Longer "lines" are not ours: dropped rather than buffered without bound.
const MAX_LINE: usize = 1024;

impl LineBuffer {
    /// Add `bytes`; return the lines they complete, in order.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.partial.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
        }
        if self.partial.len() > MAX_LINE {
            self.partial.clear();
        }
        lines
    }
}

/// One `read(2)`: `Some(0)` at end of file, `None` on an error other than EINTR.
fn read_some(fd: RawFd, buf: &mut [u8]) -> Option<usize> {
    loop {
        // SAFETY: read into a buffer we own, at most its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Some(n as usize);
        }
        if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return None;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Readable {
    Ready,
    TimedOut,
}

/// Wait until `fd` has input (or end of file), up to `timeout_ms` (-1: forever).
fn wait_readable(fd: RawFd, timeout_ms: i32) -> Readable {
    let mut fds = libc::pollfd {
        fd,
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

/// The data directory is set up to start read-only (a standby, or a targeted recovery):
/// PostgreSQL removes these files before it accepts writes.
fn starts_read_only(data_dir: &Path) -> bool {
    data_dir.join("standby.signal").exists() || data_dir.join("recovery.signal").exists()
}

/// SIGKILL the postmaster of `data_dir` and its process group; returns its pid if there was one.
fn kill_postgres(data_dir: &Path) -> Option<i32> {
    let pid = crate::postgres::postmaster_of(data_dir)? as i32;
    // SAFETY: getpgid/killpg/kill on the verified postmaster of this data directory.
    unsafe {
        if libc::getpgid(pid) == pid {
            libc::killpg(pid, libc::SIGKILL);
        } else {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    Some(pid)
}

fn report_detached(data_dir: &Path) {
    let _ = writeln!(
        std::io::stderr(),
        "pgquorum fence-guard: the agent detached (maintenance mode) and exited; leaving PostgreSQL of {} running",
        data_dir.display()
    );
}

fn report_kill(data_dir: &Path, pid: i32, why: &str) {
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
        assert_eq!(
            parse_line("deadline 12345\n"),
            Some(Message::Deadline(Some(12345)))
        );
        assert_eq!(parse_line("none\n"), Some(Message::Deadline(None)));
        assert_eq!(parse_line("garbage\n"), None);
        assert_eq!(parse_line("deadline soon\n"), None);
    }

    #[test]
    fn several_lines_in_one_read_are_all_taken_and_the_last_wins() {
        let mut buf = LineBuffer::default();
        let lines = buf.push(b"deadline 5\ndeadline 900\n");
        assert_eq!(lines, vec!["deadline 5", "deadline 900"]);
        // A stale deadline followed by a fresh one: only the fresh one counts.
        assert_eq!(latest_deadline(None, &lines), Some(900));
        // ... and a later `none` disarms; garbage changes nothing.
        let lines = buf.push(b"deadline 7\nnone\nnoise\n");
        assert_eq!(latest_deadline(Some(900), &lines), None);
        assert_eq!(latest_deadline(Some(900), &buf.push(b"noise\n")), Some(900));
    }

    /// Hole 9b (issue 9): `detach` disarms and makes end of file harmless; any later deadline
    /// (or `none`) attaches the guard again, so the level-triggered fence is back.
    #[test]
    fn detach_disarms_until_the_next_deadline() {
        let mut buf = LineBuffer::default();
        assert_eq!(parse_line("detach\n"), Some(Message::Detach));
        let armed = after_lines(GuardState::default(), &buf.push(b"deadline 900\n"));
        assert_eq!(
            armed,
            GuardState {
                deadline: Some(900),
                attached: true
            }
        );
        let detached = after_lines(armed, &buf.push(b"detach\n"));
        assert_eq!(
            detached,
            GuardState {
                deadline: None,
                attached: false
            }
        );
        assert_eq!(after_lines(detached, &buf.push(b"noise\n")), detached);
        assert_eq!(
            after_lines(detached, &buf.push(b"deadline 5\n")),
            GuardState {
                deadline: Some(5),
                attached: true
            }
        );
        assert!(after_lines(detached, &buf.push(b"none\n")).attached);
    }

    #[test]
    fn a_partial_line_waits_for_its_end() {
        let mut buf = LineBuffer::default();
        assert!(buf.push(b"deadline 12").is_empty());
        assert_eq!(buf.push(b"34\ndead"), vec!["deadline 1234"]);
        assert_eq!(buf.push(b"line 9\n"), vec!["deadline 9"]);
        // An endless line is dropped, not kept growing.
        assert!(buf.push(&[b'x'; 2 * MAX_LINE]).is_empty());
        assert_eq!(buf.push(b"\nnone\n"), vec!["", "none"]);
    }

    #[test]
    fn the_guard_looks_again_at_least_every_recheck_period_while_armed() {
        let period = RECHECK_PERIOD.as_millis() as i32;
        assert_eq!(poll_timeout_ms(None, 1_000), -1);
        assert_eq!(poll_timeout_ms(Some(1_050), 1_000), 50);
        assert_eq!(poll_timeout_ms(Some(60_000), 1_000), period);
        // Past the deadline: keep looking, never spin with a zero timeout.
        assert_eq!(poll_timeout_ms(Some(500), 1_000), 1);
    }

    #[test]
    fn deadlines_are_sent_on_the_boot_clock_less_the_margin() {
        let before = boottime_ms();
        let line = deadline_line(Some(Duration::from_secs(10)));
        let after = boottime_ms();
        let at: u64 = line.trim().strip_prefix("deadline ").unwrap().parse().unwrap();
        let margin = GUARD_MARGIN.as_millis() as u64;
        assert!(
            at >= before + 10_000 - margin && at <= after + 10_000 - margin,
            "{line}"
        );
        assert_eq!(deadline_line(None), "none\n");
    }

    #[test]
    fn boot_clock_advances() {
        let a = boottime_ms();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(5) {}
        assert!(boottime_ms() >= a + 4);
    }
}
