//! Before `pg_ctl promote`: let the replica replay the WAL it already received (so nothing
//! that reached this node is left behind, and the promotion itself is quick), while this node
//! holds the lease, renewing it as it waits (issue 9, hole 11). The lease is checked again
//! right before promoting: without a valid lease there is no promotion. The decision is here
//! (pure); the runner's `wait_for_replay` only observes, renews and sleeps.

use super::keep_lease::{self, Keep};

/// How often the replay position is looked at (one short query: `PgOps::replay_progress`).
pub const POLL_MS: u64 = 50;
/// At most this long (pg_ctl's own default timeout): a replica that cannot catch up is
/// promoted with what it replayed; PostgreSQL replays the rest during the promotion, which
/// the runner runs keeping the lease.
pub const MAX_WAIT_MS: u64 = 60_000;

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The lease is valid now: promote.
    Promote,
    /// The lease is not valid (no deadline, past it less the margin, or a renewal refused):
    /// do not promote.
    LeaseGone,
    /// Renew the lease now.
    Renew,
    /// Look again after this many ms.
    Wait(u64),
}

/// The facts one look gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    pub now_ms: u64,
    /// The lease deadline on the loop's clock.
    pub deadline_ms: Option<u64>,
    pub margin_ms: u64,
    pub renew_at_ms: u64,
    pub refused: bool,
    /// When the wait began.
    pub started_ms: u64,
    /// (received, replayed) WAL positions; `None`: unknown (the query failed).
    pub replay: Option<(u64, u64)>,
}

pub fn next(l: &Look) -> Step {
    let keep = keep_lease::next(l.now_ms, l.deadline_ms, l.margin_ms, l.renew_at_ms, l.refused);
    let wait = match keep {
        _ if l.deadline_ms.is_none() => return Step::LeaseGone,
        Keep::Abandon => return Step::LeaseGone,
        Keep::Wait(w) => w.unwrap_or(POLL_MS).min(POLL_MS),
        Keep::Renew => 0,
    };
    let caught_up = l.replay.is_none_or(|(received, replayed)| replayed >= received);
    if caught_up || l.now_ms >= l.started_ms + MAX_WAIT_MS {
        return Step::Promote;
    }
    if keep == Keep::Renew {
        return Step::Renew;
    }
    Step::Wait(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look() -> Look {
        Look {
            now_ms: 1_000,
            deadline_ms: Some(10_000),
            margin_ms: 600,
            renew_at_ms: 2_000,
            refused: false,
            started_ms: 1_000,
            replay: Some((0x200, 0x100)),
        }
    }

    #[test]
    fn replay_wait_rows() {
        let rows = [
            ("behind, lease valid: wait", look(), Step::Wait(POLL_MS)),
            (
                "caught up: promote",
                Look {
                    replay: Some((0x200, 0x200)),
                    ..look()
                },
                Step::Promote,
            ),
            (
                "position unknown: promote",
                Look {
                    replay: None,
                    ..look()
                },
                Step::Promote,
            ),
            (
                "behind, renewal due: renew",
                Look {
                    now_ms: 2_000,
                    ..look()
                },
                Step::Renew,
            ),
            (
                "behind, waited the most: promote with what was replayed",
                Look {
                    now_ms: 61_000,
                    deadline_ms: Some(70_000),
                    renew_at_ms: 62_000,
                    ..look()
                },
                Step::Promote,
            ),
            (
                "near the deadline: wake in time for it",
                Look {
                    now_ms: 9_380,
                    renew_at_ms: 12_000,
                    ..look()
                },
                Step::Wait(20),
            ),
            (
                "the wait outlasted the lease: no promotion",
                Look {
                    now_ms: 9_400,
                    renew_at_ms: 12_000,
                    ..look()
                },
                Step::LeaseGone,
            ),
            (
                "caught up but the lease is gone: no promotion",
                Look {
                    now_ms: 9_400,
                    replay: Some((1, 1)),
                    ..look()
                },
                Step::LeaseGone,
            ),
            (
                "renewal refused: no promotion",
                Look {
                    refused: true,
                    ..look()
                },
                Step::LeaseGone,
            ),
            (
                "no lease at all: no promotion",
                Look {
                    deadline_ms: None,
                    replay: None,
                    ..look()
                },
                Step::LeaseGone,
            ),
        ];
        for (name, l, want) in rows {
            assert_eq!(next(&l), want, "{name}");
        }
    }
}
