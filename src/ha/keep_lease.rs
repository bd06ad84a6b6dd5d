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
