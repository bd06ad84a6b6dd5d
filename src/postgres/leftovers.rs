//! Processes a dead postmaster left behind.
//!
//! When the postmaster is killed (the fence guard at a lease deadline, an OOM kill) its
//! children normally notice and exit. One that cannot run — a backend SIGSTOPped, or stuck in
//! the kernel — stays, attached to the data directory's shared memory. PostgreSQL then refuses
//! every start on that directory, including pg_rewind's single-user crash recovery
//! (`pre-existing shared memory block ... is still in use`), and a rejoin would fail forever.
//!
//! Every PostgreSQL process works in its data directory (the postmaster `chdir`s there and its
//! children inherit it), so a `postgres` process whose working directory is this data
//! directory, while no postmaster of it is alive, is such a leftover: it serves nobody, and
//! ending it (SIGKILL, which a stopped process cannot ignore) frees the shared memory. Other
//! programs there (an operator's shell) are never touched: only the `postgres` program's.

use std::path::Path;
use std::time::{Duration, Instant};

use super::error::PgError;
use super::Postgres;

/// How long the leftovers get to disappear after SIGKILL.
const GONE_WITHIN: Duration = Duration::from_secs(5);

/// Live processes (zombies excluded: they hold no memory) running a program named one of
/// `programs` (as `/proc/<pid>/comm` shows it: at most 15 bytes) whose working directory is
/// `data_dir`, except `except` (this process, normally).
pub fn processes_in(data_dir: &Path, programs: &[&str], except: u32) -> Vec<u32> {
    let Ok(ours) = data_dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != except)
        .filter(|pid| {
            let dir = Path::new("/proc").join(pid.to_string());
            let alive = std::fs::read_to_string(dir.join("stat")).is_ok_and(|stat| {
                let state = stat
                    .rsplit_once(')')
                    .and_then(|(_, rest)| rest.trim_start().chars().next());
                !matches!(state, Some('Z') | Some('X'))
            });
            let named = std::fs::read_to_string(dir.join("comm")).is_ok_and(|comm| {
                let comm = comm.trim();
                programs
                    .iter()
                    .any(|p| comm == p.chars().take(15).collect::<String>())
            });
            alive && named && std::fs::read_link(dir.join("cwd")).is_ok_and(|cwd| cwd == ours)
        })
        .collect();
    pids.sort_unstable();
    pids
}

impl Postgres {
    /// With no postmaster alive, end the processes still working in the data directory (see
    /// the module comment) and wait for them to go. Returns the pids ended (empty: there were
    /// none). `LeftoverProcesses` when some are still there after [`GONE_WITHIN`] (not ours
    /// to kill, or stuck in the kernel). Nothing is done while a postmaster runs.
    pub async fn end_leftover_processes(&self) -> Result<Vec<u32>, PgError> {
        if self.postmaster_pid().is_some() {
            return Ok(Vec::new());
        }
        let data_dir = self.settings.data_dir.clone();
        let binary = self.tools.path(super::tool::Program::Postgres);
        let binary = binary
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let programs = ["postgres", "postmaster", binary.as_str()];
        let leftovers = processes_in(&data_dir, &programs, std::process::id());
        if leftovers.is_empty() {
            return Ok(leftovers);
        }
        tracing::warn!(
            ?leftovers,
            "processes of a dead postmaster still use {} (and its shared memory): ending them (SIGKILL)",
            data_dir.display()
        );
        for pid in &leftovers {
            if let Ok(pid) = libc::pid_t::try_from(*pid) {
                // SAFETY: sending a signal to a pid has no memory effects in this process.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let until = Instant::now() + GONE_WITHIN;
        loop {
            let left = processes_in(&data_dir, &programs, std::process::id());
            if left.is_empty() {
                return Ok(leftovers);
            }
            if Instant::now() >= until {
                return Err(PgError::LeftoverProcesses {
                    path: data_dir,
                    pids: left,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_processes_working_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        let found = processes_in(dir.path(), &["sleep"], std::process::id());
        let other_program = processes_in(dir.path(), &["postgres"], std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, vec![child.id()]);
        assert!(other_program.is_empty(), "only the named programs are leftovers");
        assert!(processes_in(dir.path(), &["sleep"], std::process::id()).is_empty());
    }
}
