//! The rewind-failed marker: a file in the data directory that says a pg_rewind failed after it
//! may have changed the directory (or was cut off mid-way), with the reason.
//!
//! Such a directory can be half old timeline, half new: starting it, or rewinding it again,
//! could serve or replicate a mix. The marker outlives an agent restart (the loop's memory does
//! not): at start the agent finds it and refuses to touch the directory until `pgquorumctl
//! reinit`, which empties the directory and the marker with it.

use std::path::Path;
use std::time::Duration;

use super::pg_ops::PgOps;

/// How long an agent shutdown waits for a running pg_rewind before it stops it anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);

/// On agent shutdown: let a running pg_rewind (the rejoin job `job`) finish rather than kill it
/// mid-copy, for at most [`SHUTDOWN_GRACE`]; past that it is stopped, and the directory marked.
pub async fn let_rewind_finish<P: PgOps, T>(pg: &P, job: &mut tokio::task::JoinHandle<T>) {
    tracing::info!("agent shutting down: letting the running rejoin check (pg_rewind) finish first");
    if tokio::time::timeout(SHUTDOWN_GRACE, job).await.is_err() {
        let why = "pg_rewind was still running when the agent shut down, and was stopped mid-way";
        tracing::error!("{why}");
        if let Err(e) = pg.mark_rewind_failed(why) {
            tracing::error!("{e}");
        }
    }
}

/// The marker's file name, inside the data directory (PostgreSQL ignores unknown files there;
/// pg_basebackup and `reinit` remove it with everything else).
pub const FILE_NAME: &str = "pgquorum.rewind-failed";

/// Write the marker with `reason` (replacing an older one), and flush it to disk.
pub fn write(data_dir: &Path, reason: &str) -> std::io::Result<()> {
    use std::io::Write;
    let path = data_dir.join(FILE_NAME);
    let mut file = std::fs::File::create(&path)?;
    writeln!(file, "{}", reason.trim())?;
    file.sync_all()?;
    // The entry in the directory must survive a power loss too.
    std::fs::File::open(data_dir)?.sync_all()
}

/// The marker's reason, when the data directory has one (an empty or unreadable marker still
/// counts: its presence is what matters).
pub fn read(data_dir: &Path) -> Option<String> {
    let path = data_dir.join(FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().is_empty() => Some("reason not recorded".to_string()),
        Ok(text) => Some(text.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(format!("marker {} unreadable: {e}", path.display())),
    }
}

/// What the loop says while a marker blocks the directory.
pub fn blocked_reason(reason: &str) -> String {
    format!(
        "pg_rewind failed on this data directory and may have left it unusable ({reason}); \
         refusing to start or rewind it (marker {FILE_NAME} in the data directory). To rebuild it: \
         `pgquorumctl reinit <this member>`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_marker_is_read_back_and_absent_means_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        write(dir.path(), "pg_rewind from x failed: boom\n").unwrap();
        assert_eq!(read(dir.path()).as_deref(), Some("pg_rewind from x failed: boom"));
        std::fs::write(dir.path().join(FILE_NAME), "").unwrap();
        assert_eq!(read(dir.path()).as_deref(), Some("reason not recorded"));
    }
}
