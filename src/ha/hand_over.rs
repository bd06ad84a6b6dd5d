//! The old primary's side of a switchover, the rules only: how long its fast shutdown may take,
//! and what it says when it gives up.
//!
//! A switchover promises that nothing committed is lost. A fast shutdown keeps that promise: it
//! sends every WAL record, up to the shutdown checkpoint, to the connected standbys before it
//! exits, and only then is the final position (the shutdown checkpoint of a control file that
//! says `shut down`) published for the candidate to wait for. An immediate stop keeps nothing
//! of it, so a hand-over never falls back to one: its fast shutdown is bounded by the time the
//! lease has left (less the demote margin, before which the loop would demote anyway), and when
//! it does not finish in that time — a backend that cannot end, a standby that stopped
//! reading — the hand-over is aborted: the node keeps its lease, the request is removed, and
//! PostgreSQL finishes its shutdown and is started again as the primary.

use std::time::Duration;

use super::pg_ops::{PgFailure, PgOps, PgResult};

/// With less of the lease left than this, a fast shutdown is not even begun (a checkpoint of
/// a busy server takes longer): the hand-over is aborted at once.
pub const MIN_FAST_STOP: Duration = Duration::from_secs(1);

/// How long the fast shutdown of a hand-over may take: until `margin_ms` before the lease
/// `deadline_ms` (local ms). `None`: no lease, or too little of it left to try.
pub fn fast_stop_budget(deadline_ms: Option<u64>, now_ms: u64, margin_ms: u64) -> Option<Duration> {
    let left = deadline_ms?.checked_sub(now_ms.saturating_add(margin_ms))?;
    Some(Duration::from_millis(left)).filter(|d| *d >= MIN_FAST_STOP)
}

/// Stop PostgreSQL for a hand-over to `candidate`: a fast shutdown within the lease's time
/// (lease `deadline_ms`, `margin_ms` before it), never an immediate one. Returns the final
/// position (from a control file that says `shut down`); on any failure the hand-over is off
/// (logged here as an ERROR).
pub async fn stop_cleanly<P: PgOps>(
    pg: &P,
    candidate: &str,
    deadline_ms: Option<u64>,
    now_ms: u64,
    margin_ms: u64,
) -> PgResult<u64> {
    let within = fast_stop_budget(deadline_ms, now_ms, margin_ms);
    tracing::info!(
        "switchover to {candidate}: stopping PostgreSQL (fast shutdown, at most {:.1} s)",
        within.unwrap_or_default().as_secs_f64()
    );
    let stopped = match within {
        Some(within) => pg.stop_fast(within).await,
        None => Err(no_time_left()),
    };
    let done = stopped.and_then(|()| pg.final_lsn());
    if let Err(failure) = &done {
        tracing::error!("{}", aborted(candidate, failure));
    }
    done
}

/// The failure that ends a hand-over when there is no time for the fast shutdown at all.
pub fn no_time_left() -> PgFailure {
    PgFailure::Timeout {
        message: format!(
            "less than {} s of the lease left for a fast shutdown",
            MIN_FAST_STOP.as_secs()
        ),
    }
}

/// The ERROR line of an aborted hand-over.
pub fn aborted(candidate: &str, failure: &PgFailure) -> String {
    format!(
        "switchover to {candidate} aborted: the fast shutdown did not complete cleanly in the lease's time ({failure}); \
         no immediate stop (it could lose committed WAL): staying primary, keeping the lease, cancelling the \
         request. PostgreSQL finishes its shutdown and is started again as primary"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_stop_ends_before_the_demote_margin() {
        assert_eq!(
            fast_stop_budget(Some(10_000), 2_000, 600),
            Some(Duration::from_millis(7_400))
        );
        assert_eq!(
            fast_stop_budget(Some(10_000), 8_500, 600),
            None,
            "under a second left"
        );
        assert_eq!(
            fast_stop_budget(Some(10_000), 9_900, 600),
            None,
            "past the margin"
        );
        assert_eq!(
            fast_stop_budget(Some(10_000), 20_000, 600),
            None,
            "past the deadline"
        );
        assert_eq!(fast_stop_budget(None, 0, 600), None, "no lease");
    }
}
