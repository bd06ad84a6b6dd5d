//! "Keep the lease" while the loop waits for a long PostgreSQL operation (a start with crash
//! recovery, a restart): renew every loop, and give the operation up at the lease deadline.
//! The decision is here (pure); the runner's `keeping_lease` only acts on it.
//!
//! A primary restarting in place keeps its lease for as long as `primary_start_timeout`
//! allows instead of losing it after `ttl`. But once the deadline (less the demote margin) has
//! passed, or a renewal was refused (someone else may hold the lease), the operation is
//! abandoned and PostgreSQL stopped: a start that finished after the deadline must never
//! leave a writable primary (issue 9, hole 2).

/// What to do next while the operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Let the operation run; look again after this many ms (`None`: no lease, no limit).
    Wait(Option<u64>),
    /// Renew the lease now.
    Renew,
    /// Give the operation up and stop PostgreSQL.
    Abandon,
}

/// The deadline an operation keeps: only a lease valid when the operation began is kept (a
/// replica start by an agent whose old deadline passed long ago keeps nothing); once kept, a
/// deadline dropped on the way counts as passed.
pub fn kept_deadline(held_at_start: bool, deadline_ms: Option<u64>) -> Option<u64> {
    held_at_start.then_some(deadline_ms.unwrap_or(0))
}

/// Whether a lease is held when the operation begins.
pub fn held(now_ms: u64, deadline_ms: Option<u64>, margin_ms: u64) -> bool {
    deadline_ms.is_some_and(|d| now_ms + margin_ms < d)
}

/// `deadline_ms`: the lease deadline on the loop's clock (`None`: this node holds no lease:
/// the operation just runs). `renew_at_ms`: when the next renewal is due. `refused`: the
/// keyspace refused a renewal.
pub fn next(now_ms: u64, deadline_ms: Option<u64>, margin_ms: u64, renew_at_ms: u64, refused: bool) -> Keep {
    let Some(deadline) = deadline_ms else {
        return Keep::Wait(None);
    };
    let give_up_at = deadline.saturating_sub(margin_ms);
    if refused || now_ms >= give_up_at {
        return Keep::Abandon;
    }
    if now_ms >= renew_at_ms {
        return Keep::Renew;
    }
    Keep::Wait(Some(renew_at_ms.min(give_up_at) - now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_lease_an_operation_keeps() {
        assert!(held(1_000, Some(10_000), 600));
        assert!(!held(9_400, Some(10_000), 600), "within the margin");
        assert!(!held(50_000, Some(10_000), 600), "an old deadline");
        assert!(!held(1_000, None, 600));
        assert_eq!(kept_deadline(true, Some(10_000)), Some(10_000));
        assert_eq!(kept_deadline(true, None), Some(0), "dropped on the way: give up");
        assert_eq!(kept_deadline(false, Some(10_000)), None);
        assert_eq!(kept_deadline(false, None), None);
        assert_eq!(
            next(20_000, kept_deadline(false, Some(10_000)), 600, 0, false),
            Keep::Wait(None)
        );
        assert_eq!(
            next(20_000, kept_deadline(true, None), 600, 0, false),
            Keep::Abandon
        );
    }

    #[test]
    fn when_to_renew_wait_or_give_up() {
        // (name, now, deadline, renew_at, refused, want); margin 600 ms.
        let rows = [
            (
                "no lease: run without limit",
                5_000,
                None,
                1_000,
                false,
                Keep::Wait(None),
            ),
            (
                "no lease, even if 'refused'",
                5_000,
                None,
                1_000,
                true,
                Keep::Wait(None),
            ),
            (
                "renewal not due: wait for it",
                1_000,
                Some(10_000),
                2_000,
                false,
                Keep::Wait(Some(1_000)),
            ),
            ("renewal due", 2_000, Some(10_000), 2_000, false, Keep::Renew),
            (
                "deadline comes before the renewal: wake then",
                9_000,
                Some(10_000),
                11_000,
                false,
                Keep::Wait(Some(400)),
            ),
            (
                "at the deadline less the margin: give up",
                9_400,
                Some(10_000),
                11_000,
                false,
                Keep::Abandon,
            ),
            (
                "past the deadline, renewal due: give up, not renew",
                12_000,
                Some(10_000),
                2_000,
                false,
                Keep::Abandon,
            ),
            (
                "renewal refused: give up at once",
                1_000,
                Some(10_000),
                2_000,
                true,
                Keep::Abandon,
            ),
        ];
        for (name, now, deadline, renew_at, refused, want) in rows {
            assert_eq!(next(now, deadline, 600, renew_at, refused), want, "{name}");
        }
    }
}
