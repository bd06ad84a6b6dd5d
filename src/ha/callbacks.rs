//! Patroni's callbacks (`postgresql.callbacks`): user scripts run after PostgreSQL started,
//! stopped, restarted, reloaded or changed role.
//!
//! As in Patroni:
//! - the configured string is split like a shell command line (no shell runs it: no `$VAR`,
//!   pipes or redirections; quotes and backslashes work as in `sh`), and three arguments are
//!   appended: `<action> <role> <scope>`, e.g. `on_role_change primary batman`;
//! - the agent never waits for a callback: [`CallbackRunner::fire`] returns at once and a worker
//!   thread runs the command, reaps it and logs how it ended;
//! - one callback runs at a time: firing a new one kills the one still running (SIGKILL, with
//!   the processes it started). `on_reload` has a slot of its own, so it only ever kills an older
//!   `on_reload` and never another event's callback (Patroni ≥ 3.0.2). If the running one cannot
//!   be killed (a `sudo` script, say) the new one waits until it ends. Of several callbacks fired
//!   while one could not be killed, only the newest runs.
//!
//! Roles are passed as Patroni 4 passes them: `primary` (also right after a promotion, which
//! Patroni calls `promoted` internally — this module maps it), `replica`, `standby_leader`,
//! `demoted` (a primary that stopped or failed while holding the leader key), `uninitialized`.
//! See [`role`].
//!
//! When Patroni fires them (for the HA loop): `on_start` after PostgreSQL started (and once
//! when the agent attaches to an already running PostgreSQL), `on_stop` after a stop that
//! signalled PostgreSQL, `on_restart` after a restart, `on_reload` after a reload, and
//! `on_role_change` after a promotion (role `primary`), after a demoted primary or a standby
//! leader restarted as a replica (role `replica`), after a replica became a standby leader, and
//! for a primary that failed to start while holding the key (role `demoted`). A start that is
//! part of a role change fires `on_role_change` only, not `on_start`/`on_restart`.
//!
//! Each callback runs in a process group of its own, so killing it kills what it started too
//! (unless that left the group, e.g. a daemon), and a Ctrl-C meant for the agent does not reach
//! it. Callbacks outlive the agent: an `on_stop` fired during shutdown runs to its end. They run
//! as the agent's user (as root when the agent runs as root), with the agent's environment,
//! stdin from /dev/null, and no other file descriptor of the agent (Rust opens every descriptor
//! close-on-exec). Their stdout and stderr are captured: the last lines are logged at WARN when
//! the callback fails and at DEBUG when it succeeds.

use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use thiserror::Error;

use crate::config::Callbacks;

/// The role strings callbacks receive (Patroni 4's names).
pub mod role {
    pub const PRIMARY: &str = "primary";
    pub const REPLICA: &str = "replica";
    pub const STANDBY_LEADER: &str = "standby_leader";
    pub const DEMOTED: &str = "demoted";
    pub const UNINITIALIZED: &str = "uninitialized";
}

/// How many bytes of a callback's output are kept for the log.
const OUTPUT_TAIL_BYTES: usize = 2048;
/// How long to wait, after a callback exited, for the last of its output to be read. Longer
/// only when something it started in the background still holds its stdout or stderr.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackEvent {
    OnStart,
    OnStop,
    OnRestart,
    OnReload,
    OnRoleChange,
}

impl CallbackEvent {
    pub const ALL: [CallbackEvent; 5] = [
        CallbackEvent::OnStart,
        CallbackEvent::OnStop,
        CallbackEvent::OnRestart,
        CallbackEvent::OnReload,
        CallbackEvent::OnRoleChange,
    ];

    /// Patroni's name, which is also the configuration key and the callback's first argument.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackEvent::OnStart => "on_start",
            CallbackEvent::OnStop => "on_stop",
            CallbackEvent::OnRestart => "on_restart",
            CallbackEvent::OnReload => "on_reload",
            CallbackEvent::OnRoleChange => "on_role_change",
        }
    }

    fn command(self, callbacks: &Callbacks) -> Option<&str> {
        let command = match self {
            CallbackEvent::OnStart => &callbacks.on_start,
            CallbackEvent::OnStop => &callbacks.on_stop,
            CallbackEvent::OnRestart => &callbacks.on_restart,
            CallbackEvent::OnReload => &callbacks.on_reload,
            CallbackEvent::OnRoleChange => &callbacks.on_role_change,
        };
        command.as_deref()
    }
}

impl fmt::Display for CallbackEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a command line could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SplitError {
    #[error("no closing quotation")]
    UnclosedQuote,
    #[error("no escaped character after a trailing backslash")]
    TrailingBackslash,
}

#[derive(Debug, Error)]
pub enum CallbackError {
    #[error("{event} callback `{command}` cannot be split into words: {source}")]
    Split {
        event: CallbackEvent,
        command: String,
        #[source]
        source: SplitError,
    },
    #[error("{event} callback is empty")]
    Empty { event: CallbackEvent },
    #[error("could not run {event} callback `{command}`: {source}")]
    Spawn {
        event: CallbackEvent,
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// Split a command line into words the way Python's `shlex.split` (POSIX mode) does, which is
/// how Patroni reads callback and script commands: blanks separate words; inside single quotes
/// everything is literal; inside double quotes a backslash escapes only `"` and `\`; outside
/// quotes a backslash makes the next character literal. `''` is an empty word.
pub fn split_command(line: &str) -> Result<Vec<String>, SplitError> {
    #[derive(PartialEq)]
    enum State {
        Blank,
        Word,
        Single,
        Double,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut state = State::Blank;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match state {
            State::Blank | State::Word => match c {
                ' ' | '\t' | '\n' | '\r' => {
                    if state == State::Word {
                        words.push(std::mem::take(&mut word));
                        state = State::Blank;
                    }
                }
                '\'' => state = State::Single,
                '"' => state = State::Double,
                '\\' => {
                    word.push(chars.next().ok_or(SplitError::TrailingBackslash)?);
                    state = State::Word;
                }
                _ => {
                    word.push(c);
                    state = State::Word;
                }
            },
            State::Single => match c {
                '\'' => state = State::Word,
                _ => word.push(c),
            },
            State::Double => match c {
                '"' => state = State::Word,
                '\\' => match chars.next() {
                    Some(next @ ('"' | '\\')) => word.push(next),
                    Some(next) => {
                        word.push('\\');
                        word.push(next);
                    }
                    None => return Err(SplitError::UnclosedQuote),
                },
                _ => word.push(c),
            },
        }
    }
    match state {
        State::Single | State::Double => Err(SplitError::UnclosedQuote),
        State::Word => {
            words.push(word);
            Ok(words)
        }
        State::Blank => Ok(words),
    }
}

/// A word list as one line for the log, quoted so it could be pasted into a shell.
fn show_argv(argv: &[String]) -> String {
    let quote = |word: &String| {
        let plain = !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
        if plain {
            word.clone()
        } else {
            format!("'{}'", word.replace('\'', r"'\''"))
        }
    };
    argv.iter().map(quote).collect::<Vec<_>>().join(" ")
}

/// Runs the configured callbacks without blocking the caller. Cheap to create; worker threads
/// start on the first callback that is actually configured and fired.
pub struct CallbackRunner {
    callbacks: Callbacks,
    scope: String,
    /// `on_start`, `on_stop`, `on_restart`, `on_role_change`.
    main: Arc<Slot>,
    /// `on_reload` only.
    reload: Arc<Slot>,
}

impl CallbackRunner {
    pub fn new(callbacks: &Callbacks, scope: &str) -> CallbackRunner {
        CallbackRunner {
            callbacks: callbacks.clone(),
            scope: scope.to_string(),
            main: Arc::new(Slot::new("callback")),
            reload: Arc::new(Slot::new("on_reload")),
        }
    }

    /// Whether a command is configured for `event`.
    pub fn is_configured(&self, event: CallbackEvent) -> bool {
        event.command(&self.callbacks).is_some()
    }

    /// Run the callback configured for `event` (if any) with `<action> <role> <scope>`, without
    /// waiting for it; a callback of the same slot still running is killed first. Problems are
    /// logged, never returned: a callback cannot change what the HA loop does.
    pub fn fire(&self, event: CallbackEvent, role: &str) {
        let Some(command) = event.command(&self.callbacks) else {
            return;
        };
        // Patroni's internal role right after `pg_ctl promote`; callbacks see `primary`.
        let role = if role == "promoted" { role::PRIMARY } else { role };
        let argv = match build_argv(event, command, role, &self.scope) {
            Ok(argv) => argv,
            Err(e) => {
                tracing::warn!("{e}");
                return;
            }
        };
        let shown = show_argv(&argv);
        tracing::info!("running {event} callback: {shown}");
        let slot = match event {
            CallbackEvent::OnReload => &self.reload,
            _ => &self.main,
        };
        Slot::submit(slot, Invocation { event, argv, shown });
    }
}

impl Drop for CallbackRunner {
    /// Lets the workers finish what is running and pending, then end. Nothing is killed.
    fn drop(&mut self) {
        for slot in [&self.main, &self.reload] {
            slot.lock().shutdown = true;
            slot.wake.notify_all();
        }
    }
}

fn build_argv(
    event: CallbackEvent,
    command: &str,
    role: &str,
    scope: &str,
) -> Result<Vec<String>, CallbackError> {
    let mut argv = split_command(command).map_err(|source| CallbackError::Split {
        event,
        command: command.to_string(),
        source,
    })?;
    if argv.is_empty() {
        return Err(CallbackError::Empty { event });
    }
    argv.extend([event.as_str().to_string(), role.to_string(), scope.to_string()]);
    Ok(argv)
}

struct Invocation {
    event: CallbackEvent,
    argv: Vec<String>,
    /// `argv` as logged.
    shown: String,
}

/// One callback at a time: the one running and the next to run.
struct Slot {
    name: &'static str,
    state: Mutex<SlotState>,
    wake: Condvar,
}

#[derive(Default)]
struct SlotState {
    /// The newest callback fired and not started yet.
    pending: Option<Invocation>,
    running: Option<Running>,
    worker_started: bool,
    shutdown: bool,
    #[cfg(test)]
    stats: Stats,
}

/// What the tests observe of a slot (the outcomes the worker logs).
#[cfg(test)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Stats {
    spawn_failures: u32,
    failed: u32,
    succeeded: u32,
    killed: u32,
}

struct Running {
    /// Also the process group id: the child leads a group of its own.
    pid: i32,
    shown: String,
    /// Set once a kill was tried (whether it worked or not).
    kill_tried: bool,
    killed: bool,
}

impl Slot {
    fn new(name: &'static str) -> Slot {
        Slot {
            name,
            state: Mutex::new(SlotState::default()),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn submit(slot: &Arc<Slot>, invocation: Invocation) {
        let mut state = slot.lock();
        if let Some(running) = state.running.as_mut() {
            if !running.kill_tried {
                running.kill_tried = true;
                // The worker reaps the child only after clearing `running` under this lock, so
                // the pid (and group id) cannot have been reused yet.
                // SAFETY: kill(2) on the process group of our own unreaped child.
                let rc = unsafe { libc::kill(-running.pid, libc::SIGKILL) };
                if rc == 0 {
                    running.killed = true;
                    tracing::warn!("killed callback {} because it was still running", running.shown);
                } else {
                    tracing::warn!(
                        "could not kill callback {} ({}); the next callback starts when it ends",
                        running.shown,
                        std::io::Error::last_os_error()
                    );
                }
            }
        }
        if let Some(superseded) = state.pending.replace(invocation) {
            tracing::warn!("callback {} superseded before it could start", superseded.shown);
        }
        if !state.worker_started {
            let worker = Arc::clone(slot);
            let spawned = thread::Builder::new()
                .name(format!("{}-runner", slot.name))
                .spawn(move || worker.work());
            match spawned {
                Ok(_) => state.worker_started = true,
                Err(e) => {
                    tracing::warn!("could not start the callback thread: {e}");
                    state.pending = None;
                }
            }
        }
        drop(state);
        slot.wake.notify_all();
    }

    fn work(&self) {
        loop {
            let invocation = {
                let mut state = self.lock();
                loop {
                    if let Some(invocation) = state.pending.take() {
                        break invocation;
                    }
                    if state.shutdown {
                        state.worker_started = false;
                        return;
                    }
                    state = self.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
            };
            self.run(invocation);
        }
    }

    fn run(&self, invocation: Invocation) {
        let Invocation { event, argv, shown } = invocation;
        // Spawn under the lock so a `fire` never sees a started child that `running` lacks.
        let mut state = self.lock();
        let spawned = spawn(&argv).map_err(|source| CallbackError::Spawn {
            event,
            command: shown.clone(),
            source,
        });
        let (mut child, output) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                drop(state);
                tracing::warn!("{e}");
                self.record(Outcome::SpawnFailed);
                return;
            }
        };
        let pid = child.id() as i32;
        state.running = Some(Running {
            pid,
            shown: shown.clone(),
            kill_tried: false,
            killed: false,
        });
        drop(state);

        wait_exited_unreaped(pid);
        let killed = self.lock().running.take().is_some_and(|running| running.killed);
        let status = child.wait();
        let output = output.map(Output::collect).unwrap_or_default();
        self.record(report(event, &shown, status, killed, &output));
    }

    #[cfg(test)]
    fn record(&self, outcome: Outcome) {
        let mut state = self.lock();
        let counter = match outcome {
            Outcome::SpawnFailed => &mut state.stats.spawn_failures,
            Outcome::Succeeded => &mut state.stats.succeeded,
            Outcome::Failed => &mut state.stats.failed,
            Outcome::Killed => &mut state.stats.killed,
        };
        *counter += 1;
    }

    #[cfg(not(test))]
    fn record(&self, _outcome: Outcome) {}

    #[cfg(test)]
    fn stats(&self) -> Stats {
        self.lock().stats
    }
}

enum Outcome {
    SpawnFailed,
    Succeeded,
    Failed,
    Killed,
}

fn report(
    event: CallbackEvent,
    shown: &str,
    status: std::io::Result<ExitStatus>,
    killed: bool,
    output: &str,
) -> Outcome {
    let output = output.trim_end();
    let with_output = if output.is_empty() {
        String::new()
    } else {
        format!("; output:\n{output}")
    };
    match status {
        _ if killed => {
            tracing::info!("{event} callback {shown} was killed");
            Outcome::Killed
        }
        Ok(status) if status.success() => {
            tracing::debug!("{event} callback {shown} finished{with_output}");
            Outcome::Succeeded
        }
        Ok(status) => {
            tracing::warn!("{event} callback {shown} failed: {status}{with_output}");
            Outcome::Failed
        }
        Err(e) => {
            tracing::warn!("{event} callback {shown}: could not wait for it: {e}");
            Outcome::Failed
        }
    }
}

/// The tail of a child's stdout and stderr, read by a thread of its own.
struct Output {
    tail: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Output {
    /// What was read, after giving the reader a moment to reach end of file.
    fn collect(self) -> String {
        let _ = self.done.recv_timeout(OUTPUT_GRACE);
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&tail).into_owned()
    }
}

/// Start `argv` in a process group of its own, stdout and stderr into one pipe.
fn spawn(argv: &[String]) -> std::io::Result<(Child, Option<Output>)> {
    let (reader, writer) = std::io::pipe()?;
    let child = {
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);
        command.spawn()?
        // `command`, holding our copies of the write end, is dropped here, so the reader sees
        // end of file once the child (and whatever inherited its output) is gone.
    };
    let tail = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done) = mpsc::channel();
    let reader_tail = Arc::clone(&tail);
    let reading = thread::Builder::new()
        .name("callback-output".into())
        .spawn(move || read_tail(reader, &reader_tail, done_tx));
    let output = match reading {
        Ok(_) => Some(Output { tail, done }),
        Err(e) => {
            tracing::warn!("could not read callback output: {e}");
            None
        }
    };
    Ok((child, output))
}

fn read_tail(mut reader: std::io::PipeReader, tail: &Mutex<Vec<u8>>, done: mpsc::Sender<()>) {
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                tail.extend_from_slice(&buf[..n]);
                let excess = tail.len().saturating_sub(OUTPUT_TAIL_BYTES);
                tail.drain(..excess);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = done.send(());
}

/// Block until child `pid` has exited, leaving it unreaped (a zombie) so its pid stays ours.
fn wait_exited_unreaped(pid: i32) {
    loop {
        // SAFETY: siginfo_t is plain data; waitid only writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(2) on our own child with a valid out-pointer.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Instant;

    const DEADLINE: Duration = Duration::from_secs(20);

    fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn wait_for_file(path: &Path) -> String {
        wait_for(&format!("{}", path.display()), || {
            std::fs::read_to_string(path)
                .ok()
                .filter(|text| text.ends_with('\n'))
        })
    }

    /// Writes `body` as a shell script and returns a command line running it with `sh` (not by
    /// exec'ing the file itself, which can fail with ETXTBSY while another test thread forks).
    fn script(dir: &Path, name: &str, body: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        format!("sh '{}'", path.display())
    }

    /// Alive and not a zombie.
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the parenthesised command name.
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z')),
            Err(_) => false,
        }
    }

    fn read_pid(path: &Path) -> i32 {
        wait_for_file(path).trim().parse().unwrap()
    }

    #[test]
    fn split_like_shlex() {
        let ok = |line: &str| split_command(line).unwrap();
        assert_eq!(ok("/usr/bin/cb.sh"), ["/usr/bin/cb.sh"]);
        assert_eq!(ok("  a   b\tc \n"), ["a", "b", "c"]);
        assert_eq!(ok("a 'b c' \"d e\""), ["a", "b c", "d e"]);
        assert_eq!(ok("a''b \"x\"'y'z"), ["ab", "xyz"]);
        assert_eq!(ok("a '' \"\""), ["a", "", ""]);
        assert_eq!(ok(r"a\ b c\'d"), ["a b", "c'd"]);
        assert_eq!(ok(r#""a\"b\\c\d" 'e\f'"#), [r#"a"b\c\d"#, r"e\f"]);
        assert_eq!(ok("$HOME | x"), ["$HOME", "|", "x"]);
        assert_eq!(ok(""), Vec::<String>::new());
        assert_eq!(split_command("a 'b"), Err(SplitError::UnclosedQuote));
        assert_eq!(split_command("a \"b\\"), Err(SplitError::UnclosedQuote));
        assert_eq!(split_command("a\\"), Err(SplitError::TrailingBackslash));
    }

    #[test]
    fn argv_is_command_words_then_action_role_scope() {
        let argv = build_argv(CallbackEvent::OnStop, "cb 'x y'", role::REPLICA, "batman").unwrap();
        assert_eq!(argv, ["cb", "x y", "on_stop", "replica", "batman"]);
        assert!(matches!(
            build_argv(CallbackEvent::OnStop, "   ", role::REPLICA, "s"),
            Err(CallbackError::Empty { .. })
        ));
        assert!(matches!(
            build_argv(CallbackEvent::OnStop, "cb 'x", role::REPLICA, "s"),
            Err(CallbackError::Split { .. })
        ));
        assert_eq!(show_argv(&argv), "cb 'x y' on_stop replica batman");
    }

    #[test]
    fn runs_the_command_with_action_role_scope() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my dir");
        std::fs::create_dir(&dir).unwrap();
        let out = dir.join("out");
        let command = script(
            &dir,
            "cb.sh",
            &format!(
                "printf '%s|' \"$@\" >> '{}'; echo >> '{}'",
                out.display(),
                out.display()
            ),
        );
        let callbacks = Callbacks {
            on_role_change: Some(format!("{command} 'first arg' second")),
            ..Callbacks::default()
        };
        let runner = CallbackRunner::new(&callbacks, "batman");
        // Patroni's internal "promoted" is reported as "primary".
        runner.fire(CallbackEvent::OnRoleChange, "promoted");
        assert_eq!(
            wait_for_file(&out),
            "first arg|second|on_role_change|primary|batman|\n"
        );
        wait_for("the callback to be reaped", || {
            (runner.main.stats().succeeded == 1).then_some(())
        });
        // Events with no command configured do nothing.
        runner.fire(CallbackEvent::OnStart, role::REPLICA);
        assert_eq!(runner.main.stats().succeeded, 1);
    }

    #[test]
    fn a_new_callback_kills_the_running_one_and_its_children() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (shell_pid, sleep_pid, late, out) = (
            dir.join("shell.pid"),
            dir.join("sleep.pid"),
            dir.join("late"),
            dir.join("out"),
        );
        let slow = script(
            dir,
            "slow.sh",
            &format!(
                "echo $$ > '{}'; sleep 60 & echo $! > '{}'; wait; echo late > '{}'",
                shell_pid.display(),
                sleep_pid.display(),
                late.display()
            ),
        );
        let quick = script(dir, "quick.sh", &format!("echo \"$@\" > '{}'", out.display()));
        let callbacks = Callbacks {
            on_start: Some(slow),
            on_role_change: Some(quick),
            ..Callbacks::default()
        };
        let runner = CallbackRunner::new(&callbacks, "batman");
        runner.fire(CallbackEvent::OnStart, role::REPLICA);
        let (shell, sleeper) = (read_pid(&shell_pid), read_pid(&sleep_pid));
        assert!(alive(shell) && alive(sleeper));

        runner.fire(CallbackEvent::OnRoleChange, role::PRIMARY);
        assert_eq!(wait_for_file(&out), "on_role_change primary batman\n");
        wait_for("the slow callback and its child to die", || {
            (!alive(shell) && !alive(sleeper)).then_some(())
        });
        wait_for("both callbacks to be reaped", || {
            let stats = runner.main.stats();
            (stats.killed == 1 && stats.succeeded == 1).then_some(())
        });
        assert!(!late.exists(), "the killed callback ran on");
    }

    #[test]
    fn on_reload_neither_kills_nor_is_killed_by_other_callbacks() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (pid_file, out) = (dir.join("slow.pid"), dir.join("out"));
        let slow = script(
            dir,
            "slow.sh",
            &format!("echo $$ > '{}'; exec sleep 60", pid_file.display()),
        );
        let quick = script(dir, "quick.sh", &format!("echo \"$1\" >> '{}'", out.display()));
        let callbacks = Callbacks {
            on_start: Some(slow),
            on_reload: Some(quick.clone()),
            on_stop: Some(quick),
            ..Callbacks::default()
        };
        let runner = CallbackRunner::new(&callbacks, "batman");
        runner.fire(CallbackEvent::OnStart, role::PRIMARY);
        let slow_pid = read_pid(&pid_file);
        runner.fire(CallbackEvent::OnReload, role::PRIMARY);
        assert_eq!(wait_for_file(&out), "on_reload\n");
        assert!(alive(slow_pid), "on_reload killed on_start");
        // Any other event does kill it.
        runner.fire(CallbackEvent::OnStop, role::PRIMARY);
        wait_for("on_stop to run", || {
            let text = std::fs::read_to_string(&out).unwrap();
            (text == "on_reload\non_stop\n").then_some(())
        });
        wait_for("on_start to be killed", || (!alive(slow_pid)).then_some(()));
    }

    #[test]
    fn a_missing_executable_is_logged_and_the_runner_goes_on() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        let callbacks = Callbacks {
            on_stop: Some(format!("{}/no-such-callback", tmp.path().display())),
            on_start: Some(script(
                tmp.path(),
                "cb.sh",
                &format!("echo \"$1\" > '{}'; echo oops >&2; exit 3", out.display()),
            )),
            ..Callbacks::default()
        };
        let runner = CallbackRunner::new(&callbacks, "batman");
        runner.fire(CallbackEvent::OnStop, role::REPLICA);
        wait_for("the spawn failure", || {
            (runner.main.stats().spawn_failures == 1).then_some(())
        });
        // The same worker still runs the next callback; a failing exit is reported as such.
        runner.fire(CallbackEvent::OnStart, role::REPLICA);
        assert_eq!(wait_for_file(&out), "on_start\n");
        wait_for("the failure to be reaped", || {
            (runner.main.stats().failed == 1).then_some(())
        });
    }

    #[test]
    fn output_tail_keeps_the_end() {
        let (tx, rx) = mpsc::channel();
        let tail = Arc::new(Mutex::new(Vec::new()));
        let (reader, mut writer) = std::io::pipe().unwrap();
        let text = "x".repeat(3 * OUTPUT_TAIL_BYTES) + "the end";
        std::io::Write::write_all(&mut writer, text.as_bytes()).unwrap();
        drop(writer);
        read_tail(reader, &tail, tx);
        let output = Output { tail, done: rx }.collect();
        assert_eq!(output.len(), OUTPUT_TAIL_BYTES);
        assert!(output.ends_with("the end"));
    }

    #[test]
    fn nothing_configured_starts_nothing() {
        let runner = CallbackRunner::new(&Callbacks::default(), "batman");
        for event in CallbackEvent::ALL {
            assert!(!runner.is_configured(event));
            runner.fire(event, role::PRIMARY);
        }
        for slot in [&runner.main, &runner.reload] {
            let state = slot.lock();
            assert!(!state.worker_started && state.pending.is_none());
        }
    }
}
