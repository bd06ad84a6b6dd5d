//! The background jobs' bodies (bootstrap, clone, rejoin check) and what they report to the
//! runner, which starts them and reaps them (src/ha/runner.rs).

use super::pg_ops::{PgFailure, PgOps, Rewind, Upstream};

pub enum JobResult {
    Bootstrapped {
        system_identifier: String,
    },
    Cloned,
    /// The former primary may follow the new one now (rewound, or no rewind needed).
    Rejoined,
    /// The data directory was removed (diverged and not rewindable): clone again.
    Removed,
    /// The rejoin failed and left the data directory as it was: try again after a back-off.
    RetryLater(String),
}

/// The rejoin job's body (see `HaLoop::start_rejoin`).
pub async fn rejoin<P: PgOps>(
    pg: &P,
    upstream: &Upstream,
    use_rewind: bool,
    remove_diverged: bool,
    remove_on_failure: bool,
) -> Result<JobResult, String> {
    let leader = &upstream.member;
    if pg.postmaster_running() {
        // A former primary started read-only for a leader race: pg_rewind needs it stopped.
        tracing::info!("rejoin: stopping PostgreSQL (read-only former primary) before checking it");
        pg.stop().await?;
    }
    if use_rewind {
        // A real run, not a dry run first: only a real run can do the crash recovery a
        // primary that died needs before its timeline can be compared (PostgreSQL >= 13).
        tracing::info!(
            "rejoin: comparing my timeline with {leader}'s and rewinding if it diverged (pg_rewind)"
        );
        return match pg.rewind(upstream, false).await {
            Ok(Rewind::NotNeeded) => {
                tracing::info!("rejoin: my WAL is part of {leader}'s history; no rewind needed");
                Ok(JobResult::Rejoined)
            }
            Ok(_) => {
                tracing::info!("rejoin: pg_rewind done; starting as a replica of {leader}");
                Ok(JobResult::Rejoined)
            }
            Err(e) => rewind_failed(pg, leader, &e, remove_on_failure).await,
        };
    }
    tracing::info!(
        "rejoin: comparing my timeline with {leader}'s (pg_rewind --dry-run; use_pg_rewind is off)"
    );
    let diverged = match pg.rewind(upstream, true).await {
        Ok(Rewind::NotNeeded) => {
            tracing::info!("rejoin: my WAL is part of {leader}'s history; no rewind needed");
            return Ok(JobResult::Rejoined);
        }
        Ok(_) => "my timeline diverged from {leader}'s".replace("{leader}", leader),
        Err(e) => format!("cannot tell whether my timeline diverged from {leader}'s ({e})"),
    };
    if remove_diverged {
        tracing::warn!(
            "rejoin: {diverged} and use_pg_rewind is off; remove_data_directory_on_diverged_timelines is on: \
             removing the data directory to clone again"
        );
        pg.remove_data_dir().await?;
        return Ok(JobResult::Removed);
    }
    Err(format!(
        "{diverged}, and pg_rewind is not allowed (use_pg_rewind: false); leaving the data directory alone. \
         To rejoin: enable use_pg_rewind, or set remove_data_directory_on_diverged_timelines, or run \
         `pgquorumctl reinit <this member>`"
    ))
}

async fn rewind_failed<P: PgOps>(
    pg: &P,
    leader: &str,
    error: &PgFailure,
    remove_on_failure: bool,
) -> Result<JobResult, String> {
    if remove_on_failure {
        tracing::warn!(
            "rejoin: pg_rewind from {leader} failed ({error}); remove_data_directory_on_rewind_failure is on: \
             removing the data directory to clone again"
        );
        pg.remove_data_dir().await?;
        return Ok(JobResult::Removed);
    }
    if error.is_retryable() {
        // Nothing changed on disk (e.g. a dead postmaster's backends held the shared memory).
        return Ok(JobResult::RetryLater(format!(
            "pg_rewind from {leader} failed: {error}"
        )));
    }
    let why = format!("pg_rewind from {leader} failed after it began changing the data directory: {error}");
    if let Err(e) = pg.mark_rewind_failed(&why) {
        tracing::error!("{e}");
    }
    Err(super::rewind_marker::blocked_reason(&why))
}
