//! The bootstrap claim as a fence: a bootstrap starts a writable PostgreSQL before its member
//! holds the `leader` lease, so until the bootstrap is published the claim is what makes that
//! server the only one (src/ha/bootstrap_claim.rs). Once the claim expires another member may
//! bootstrap and start its own. So the claim gets a deadline on the claimer's monotonic clock,
//! as the lease does (send time of the last take + `CLAIM_TTLS` × ttl − the clock-skew bound),
//! and that deadline arms the same fences: the in-agent lease watchdog and the fence guard
//! (they are told the earliest armed deadline, [`fence_deadline`]), and the engine stops the
//! server when the claim cannot be taken again before it expires ([`must_stop`]).
//!
//! Hand-over to the lease without a gap: `FinishBootstrap` takes the claim again, then the
//! lease, then publishes; while both are armed the earlier one counts, and the claim's
//! deadline is dropped only once the bootstrap is published ([`keep`]).
//! Pure: no clock, no I/O (table tests below).

use super::bootstrap_claim::claim_ttl_ms;

/// The claim taken by a write sent at `sent_at_ms` (local clock) is surely ours until then:
/// the keyspace stamped it no earlier than we sent it.
pub fn claim_deadline_ms(sent_at_ms: u64, ttl_ms: u64, max_clock_skew_ms: u64) -> u64 {
    (sent_at_ms + claim_ttl_ms(ttl_ms)).saturating_sub(max_clock_skew_ms)
}

/// The deadline the fences enforce: the earliest armed one (`None`: neither is armed).
pub fn fence_deadline(lease_ms: Option<u64>, claim_ms: Option<u64>) -> Option<u64> {
    match (lease_ms, claim_ms) {
        (Some(l), Some(c)) => Some(l.min(c)),
        (l, c) => l.or(c),
    }
}

/// A server that may accept writes runs (running and not seen as a replica) while the claim
/// can no longer be taken again in time: within `margin_ms` of its deadline, or past it.
pub fn must_stop(claim_ms: Option<u64>, now_ms: u64, margin_ms: u64, writable_may_run: bool) -> bool {
    writable_may_run && claim_ms.is_some_and(|d| now_ms + margin_ms >= d)
}

/// What the engine knows about the bootstrap when it decides whether the claim still fences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimFacts {
    /// The deadline has passed.
    pub passed: bool,
    /// A server that could accept writes may run: PostgreSQL running and not seen as a
    /// replica, or a job running that may start it.
    pub writable_may_run: bool,
    /// A bootstrap job runs, or one finished and is not published yet.
    pub bootstrapping: bool,
    /// A read showed the bootstrap published with this member as the lease holder (the
    /// lease deadline fences from now on).
    pub published_as_holder: bool,
}

/// Whether an armed claim deadline stays armed. Dropped once published as the lease holder;
/// otherwise kept while a server that could accept writes may run and the deadline either has
/// not passed (the bootstrap may still publish) or has (never disarmed before the stop is
/// confirmed, as for the lease); with nothing writable it is kept only while a bootstrap is
/// under way and the deadline has not passed.
pub fn keep(f: ClaimFacts) -> bool {
    if f.published_as_holder {
        return false;
    }
    f.writable_may_run || (f.bootstrapping && !f.passed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_deadline_is_measured_from_the_send_less_the_skew() {
        // ttl 10 s: a claim lasts 30 s from when the keyspace stamped it.
        assert_eq!(claim_deadline_ms(5_000, 10_000, 500), 34_500);
        assert_eq!(claim_deadline_ms(0, 10, 1_000), 0, "never before zero");
    }

    #[test]
    fn the_fences_get_the_earliest_armed_deadline() {
        let rows = [
            ("nothing armed", None, None, None),
            ("lease only", Some(10), None, Some(10)),
            ("claim only (bootstrapping)", None, Some(30), Some(30)),
            (
                "both, while FinishBootstrap publishes",
                Some(10),
                Some(30),
                Some(10),
            ),
            ("both, claim earlier", Some(40), Some(30), Some(30)),
        ];
        for (name, lease, claim, want) in rows {
            assert_eq!(fence_deadline(lease, claim), want, "{name}");
        }
    }

    #[test]
    fn when_the_bootstrap_server_is_stopped() {
        let rows = [
            ("no claim", None, 0, true, false),
            ("well before the deadline", Some(30_000), 10_000, true, false),
            ("within the margin", Some(30_000), 29_500, true, true),
            ("past it", Some(30_000), 40_000, true, true),
            ("nothing writable runs", Some(30_000), 40_000, false, false),
        ];
        for (name, claim, now, writable, want) in rows {
            assert_eq!(must_stop(claim, now, 600, writable), want, "{name}");
        }
    }

    #[test]
    fn when_the_claim_deadline_is_dropped() {
        let f = |passed, writable_may_run, bootstrapping, published_as_holder| ClaimFacts {
            passed,
            writable_may_run,
            bootstrapping,
            published_as_holder,
        };
        let rows = [
            ("bootstrap running, server up", f(false, true, true, false), true),
            (
                "bootstrap running, initdb (no server yet)",
                f(false, false, true, false),
                true,
            ),
            (
                "passed, server still up: until the stop is confirmed",
                f(true, true, true, false),
                true,
            ),
            ("passed, server stopped", f(true, false, true, false), false),
            (
                "no bootstrap any more, nothing runs (failed, released)",
                f(false, false, false, false),
                false,
            ),
            (
                "published, I hold the lease: the lease fences",
                f(false, true, false, true),
                false,
            ),
        ];
        for (name, facts, want) in rows {
            assert_eq!(keep(facts), want, "{name}");
        }
    }
}
