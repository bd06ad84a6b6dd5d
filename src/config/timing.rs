//! Fitting the lease timings (`ttl`, `loop_wait`, `retry_timeout`) to the rules they must obey,
//! the way Patroni does: values that break a rule but can be made safe by shortening
//! `loop_wait` (and, failing that, `retry_timeout`) are shortened, with one warning saying what
//! changed and why; only timings no shortening can save are refused.
//!
//! The rules, in the order they are applied:
//!
//! 1. Patroni's: `loop_wait + 2 × retry_timeout ≤ ttl` — the primary must be able to finish a
//!    loop and retry a failed keyspace call twice before its lease runs out. Patroni shortens
//!    `loop_wait` first (down to 1 s), then sets `retry_timeout` to `(ttl − loop_wait) / 2`;
//!    so does pgquorum, except that a `loop_wait` already below 1 s is never raised.
//! 2. pgquorum's (when the Raft timings are known): the primary's renewals must be able to stall
//!    for the longest Raft re-election without it demoting itself (docs/failover.md):
//!    `ttl − max_clock_skew − loop_wait − DEMOTE_BEFORE_DEADLINE ≥ worst election`. A shorter
//!    `loop_wait` (down to 0.1 s) makes room; when even that is not enough, `ttl` is too short
//!    for the Raft timings and clock skew, which no dynamic setting can fix: refused.
//!
//! Everything here is in milliseconds; whole-second inputs give whole-second results, as in
//! Patroni (which only has whole seconds).

/// The floor Patroni shortens `loop_wait` to when it fits the timings.
const PATRONI_LOOP_WAIT_FLOOR_MS: i64 = 1000;
/// The smallest `loop_wait` and `retry_timeout` pgquorum accepts at all (the schema minimum).
pub(crate) const MIN_LOOP_WAIT_MS: i64 = 100;
pub(crate) const MIN_RETRY_TIMEOUT_MS: i64 = 100;
/// How long before its lease deadline (`renewal sent + ttl − max_clock_skew_ms`) the primary
/// demotes itself: the HA loop's margin in `src/ha/runner.rs` (`demote_margin_ms`, 500 ms of
/// lease watchdog margin + 100 ms). Keep the two in step.
pub(crate) const DEMOTE_BEFORE_DEADLINE_MS: i64 = 600;

/// The three lease timings, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseTimings {
    pub ttl_ms: i64,
    pub loop_wait_ms: i64,
    pub retry_timeout_ms: i64,
}

/// What the Raft side of a node demands of the lease, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RaftBounds {
    pub max_clock_skew_ms: i64,
    /// `worst_case_election_ms(election_timeout_ms, heartbeat_interval_ms)`.
    pub worst_election_ms: i64,
}

/// Timings that obey every rule, and why they differ from the given ones (empty: unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fitted {
    pub timings: LeaseTimings,
    pub reasons: Vec<String>,
}

impl Fitted {
    /// One warning for the whole adjustment (`None` when nothing changed): every changed value
    /// from → to, then every reason. `section` names where the timings live.
    pub fn warning(&self, given: LeaseTimings, section: &str) -> Option<String> {
        if self.reasons.is_empty() {
            return None;
        }
        let mut changes = Vec::new();
        let pairs = [
            ("loop_wait", given.loop_wait_ms, self.timings.loop_wait_ms),
            (
                "retry_timeout",
                given.retry_timeout_ms,
                self.timings.retry_timeout_ms,
            ),
        ];
        for (name, from, to) in pairs {
            if from != to {
                changes.push(format!("{name} from {} s to {} s", secs(from), secs(to)));
            }
        }
        let section = if section.is_empty() {
            "the dynamic configuration".to_string()
        } else {
            section.to_string()
        };
        Some(format!(
            "{section}: adjusted {}: {}",
            changes.join(" and "),
            self.reasons.join("; and ")
        ))
    }
}

/// ms as seconds for messages: `2.5`, `20`.
pub(crate) fn secs(ms: i64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

/// Rounds `ms` down to whole seconds when `whole` (Patroni's integer arithmetic), else to ms.
fn round_down(ms: i64, whole: bool) -> i64 {
    if whole {
        ms.div_euclid(1000) * 1000
    } else {
        ms
    }
}

/// The shortest `ttl` (ms) an agent with these Raft bounds can hold the lease with: a
/// re-election may take at most half of it (`DynamicConfig::from_json`), and rule 2 must
/// leave at least the smallest `loop_wait`.
pub(crate) fn ttl_floor_ms(raft: RaftBounds) -> i64 {
    (2 * raft.worst_election_ms)
        .max(raft.max_clock_skew_ms + DEMOTE_BEFORE_DEADLINE_MS + raft.worst_election_ms + MIN_LOOP_WAIT_MS)
}

/// Fits `given` to the rules (module documentation); `raft` is `None` when the Raft timings
/// are not known (a dynamic configuration edited on its own), and then only Patroni's rule
/// applies. The error says why no adjustment can make the timings safe.
pub(crate) fn fit(given: LeaseTimings, raft: Option<RaftBounds>) -> Result<Fitted, String> {
    let LeaseTimings {
        ttl_ms: ttl,
        mut loop_wait_ms,
        mut retry_timeout_ms,
    } = given;
    let mut reasons = Vec::new();

    if loop_wait_ms + 2 * retry_timeout_ms > ttl {
        let floor = loop_wait_ms.min(PATRONI_LOOP_WAIT_FLOOR_MS);
        if ttl - 2 * retry_timeout_ms >= floor {
            loop_wait_ms = ttl - 2 * retry_timeout_ms;
        } else {
            let whole = ttl % 1000 == 0 && floor % 1000 == 0;
            let retry = round_down((ttl - floor) / 2, whole);
            if retry < MIN_RETRY_TIMEOUT_MS {
                return Err(format!(
                    "{} s leaves no room for loop_wait ({} s) + 2 × retry_timeout ({} s), even with \
                     loop_wait shortened to {} s and retry_timeout to its minimum of {} s; raise ttl or lower \
                     loop_wait",
                    secs(ttl),
                    secs(given.loop_wait_ms),
                    secs(given.retry_timeout_ms),
                    secs(floor),
                    secs(MIN_RETRY_TIMEOUT_MS)
                ));
            }
            loop_wait_ms = floor;
            retry_timeout_ms = retry;
        }
        reasons.push(format!(
            "loop_wait + 2 × retry_timeout must not exceed ttl ({} s) — Patroni's rule, which Patroni \
             fixes the same way (shorten loop_wait first, down to 1 s, then retry_timeout)",
            secs(ttl)
        ));
    }

    if let Some(raft) = raft {
        // The longest loop_wait with which a renewal stall of one worst-case Raft re-election
        // still ends before the primary demotes itself.
        let longest = ttl - raft.max_clock_skew_ms - DEMOTE_BEFORE_DEADLINE_MS - raft.worst_election_ms;
        if longest < MIN_LOOP_WAIT_MS {
            let needed = raft.max_clock_skew_ms
                + DEMOTE_BEFORE_DEADLINE_MS
                + raft.worst_election_ms
                + MIN_LOOP_WAIT_MS;
            return Err(format!(
                "{} s is too short for this node's Raft timings and raft.max_clock_skew_ms ({} ms): the \
                 primary demotes itself {} ms before ttl − max_clock_skew_ms after its last renewal, and its \
                 renewals must be able to wait out the longest Raft re-election ({} ms, 4 × \
                 election_timeout_ms + 2 × heartbeat_interval_ms) plus one loop_wait (at least {} s) — \
                 otherwise a Raft election alone makes it demote (a needless failover); ttl must be at least \
                 {} s, or lower raft.max_clock_skew_ms / raft.election_timeout_ms",
                secs(ttl),
                raft.max_clock_skew_ms,
                DEMOTE_BEFORE_DEADLINE_MS,
                raft.worst_election_ms,
                secs(MIN_LOOP_WAIT_MS),
                secs(needed)
            ));
        }
        if loop_wait_ms > longest {
            let whole = loop_wait_ms % 1000 == 0 && longest >= 1000;
            loop_wait_ms = round_down(longest, whole).max(MIN_LOOP_WAIT_MS);
            reasons.push(format!(
                "the primary's renewals must be able to stall for the longest Raft re-election ({} ms) \
                 without it demoting itself: ttl − raft.max_clock_skew_ms ({} ms) − {} ms − loop_wait must \
                 be at least that (docs/failover.md)",
                raft.worst_election_ms, raft.max_clock_skew_ms, DEMOTE_BEFORE_DEADLINE_MS
            ));
        }
    }

    Ok(Fitted {
        timings: LeaseTimings {
            ttl_ms: ttl,
            loop_wait_ms,
            retry_timeout_ms,
        },
        reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ttl_ms: i64, loop_wait_ms: i64, retry_timeout_ms: i64) -> LeaseTimings {
        LeaseTimings {
            ttl_ms,
            loop_wait_ms,
            retry_timeout_ms,
        }
    }

    /// pgquorum's defaults: skew 250 ms, election 250 ms / heartbeat 50 ms → 1100 ms.
    const DEFAULT_RAFT: RaftBounds = RaftBounds {
        max_clock_skew_ms: 250,
        worst_election_ms: 1100,
    };

    #[test]
    fn patroni_rule_is_fitted_like_patroni() {
        // (given, expected) with no Raft bounds: Patroni's rule alone.
        let table = [
            // Already fine: unchanged.
            (t(30_000, 10_000, 10_000), t(30_000, 10_000, 10_000)),
            (t(2_500, 500, 1_000), t(2_500, 500, 1_000)),
            // loop_wait alone can make room: only loop_wait shrinks.
            (t(30_000, 15_000, 10_000), t(30_000, 10_000, 10_000)),
            (t(20_000, 5_000, 9_000), t(20_000, 2_000, 9_000)),
            // loop_wait would go below 1 s: 1 s, and retry_timeout takes the rest (whole seconds,
            // as Patroni's integer division: (20 − 1) // 2 = 9).
            (t(20_000, 2_000, 10_000), t(20_000, 1_000, 9_000)),
            (t(10_000, 10_000, 10_000), t(10_000, 1_000, 4_000)),
            (t(30_000, 10_000, 30_000), t(30_000, 1_000, 14_000)),
            // A loop_wait already below 1 s is kept, never raised; fractions stay fractions.
            (t(2_500, 500, 1_500), t(2_500, 500, 1_000)),
            (t(3_000, 400, 2_000), t(3_000, 400, 1_300)),
            // Fractional ttl: ms precision (loop_wait 1 s, retry_timeout (2.5 − 1) / 2).
            (t(2_500, 2_000, 1_000), t(2_500, 1_000, 750)),
            (t(1_500, 1_000, 1_000), t(1_500, 1_000, 250)),
        ];
        for (given, expected) in table {
            let fitted = fit(given, None).unwrap_or_else(|e| panic!("{given:?}: {e}"));
            assert_eq!(fitted.timings, expected, "{given:?}");
            assert_eq!(fitted.reasons.is_empty(), given == expected, "{given:?}");
            assert!(expected.loop_wait_ms + 2 * expected.retry_timeout_ms <= expected.ttl_ms);
        }
    }

    #[test]
    fn the_warning_says_what_changed_from_and_to_and_why() {
        let given = t(20_000, 2_000, 10_000);
        let fitted = fit(given, None).unwrap();
        assert_eq!(
            fitted.warning(given, "bootstrap.dcs").as_deref(),
            Some(
                "bootstrap.dcs: adjusted loop_wait from 2 s to 1 s and retry_timeout from 10 s to 9 s: \
                 loop_wait + 2 × retry_timeout must not exceed ttl (20 s) — Patroni's rule, which Patroni \
                 fixes the same way (shorten loop_wait first, down to 1 s, then retry_timeout)"
            )
        );
        let unchanged = t(30_000, 10_000, 10_000);
        assert_eq!(fit(unchanged, None).unwrap().warning(unchanged, ""), None);
        let only_loop = t(30_000, 15_000, 10_000);
        let warning = fit(only_loop, None).unwrap().warning(only_loop, "").unwrap();
        assert!(
            warning.starts_with("the dynamic configuration: adjusted loop_wait from 15 s to 10 s: "),
            "{warning}"
        );
    }

    #[test]
    fn the_raft_stall_rule_shortens_loop_wait_or_refuses() {
        // (given, raft, expected or None for refused)
        let slow_raft = RaftBounds {
            max_clock_skew_ms: 250,
            worst_election_ms: 4_100, // election 1000 ms, heartbeat 50 ms
        };
        let table = [
            // Defaults fit: 2500 − 250 − 600 − 500 = 1150 ≥ 1100.
            (t(2_500, 500, 1_000), DEFAULT_RAFT, Some(t(2_500, 500, 1_000))),
            // Patroni-sized timings fit with room to spare.
            (
                t(20_000, 1_000, 9_000),
                DEFAULT_RAFT,
                Some(t(20_000, 1_000, 9_000)),
            ),
            // A long loop_wait is shortened: 2500 − 250 − 600 − 1100 = 550 ms.
            (t(2_500, 900, 500), DEFAULT_RAFT, Some(t(2_500, 550, 500))),
            // Slow Raft: 10 s − 0.25 − 0.6 − 4.1 = 5.05 s; whole seconds stay whole.
            (t(10_000, 4_000, 3_000), slow_raft, Some(t(10_000, 4_000, 3_000))),
            (t(10_000, 6_000, 2_000), slow_raft, Some(t(10_000, 5_000, 2_000))),
            // No loop_wait can make room: refused.
            (t(2_000, 500, 500), DEFAULT_RAFT, None),
            (t(5_000, 500, 1_000), slow_raft, None),
            // A clock skew as long as the lease: the primary could never hold it.
            (
                t(2_500, 500, 1_000),
                RaftBounds {
                    max_clock_skew_ms: 2_500,
                    worst_election_ms: 1_100,
                },
                None,
            ),
        ];
        for (given, raft, expected) in table {
            match (fit(given, Some(raft)), expected) {
                (Ok(fitted), Some(expected)) => {
                    assert_eq!(fitted.timings, expected, "{given:?} {raft:?}");
                    assert_eq!(fitted.reasons.is_empty(), given == expected, "{given:?}");
                }
                (Err(why), None) => {
                    assert!(why.contains("too short for this node's Raft timings"), "{why}");
                    assert!(why.contains("ttl must be at least"), "{why}");
                }
                (got, expected) => panic!("{given:?} {raft:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn both_rules_make_one_warning() {
        let given = t(3_000, 2_000, 1_000);
        let fitted = fit(given, Some(DEFAULT_RAFT)).unwrap();
        // Patroni: 3000 − 2000 = 1000 ≥ 1000 → loop_wait 1 s; stall: 3000 − 1950 = 1050 → 1 s
        // kept (already below).
        assert_eq!(fitted.timings, t(3_000, 1_000, 1_000));
        let tighter = t(2_800, 2_000, 1_000);
        let fitted = fit(tighter, Some(DEFAULT_RAFT)).unwrap();
        // Patroni: 2800 − 2000 = 800 < floor 1000 → loop_wait 1 s, retry (2800 − 1000) / 2 = 900;
        // stall: 2800 − 1950 = 850 → loop_wait 850 ms.
        assert_eq!(fitted.timings, t(2_800, 850, 900));
        let warning = fitted.warning(tighter, "bootstrap.dcs").unwrap();
        assert!(
            warning.starts_with(
                "bootstrap.dcs: adjusted loop_wait from 2 s to 0.85 s and retry_timeout from 1 s to 0.9 s: "
            ),
            "{warning}"
        );
        assert!(warning.contains("Patroni's rule"), "{warning}");
        assert!(
            warning.contains("longest Raft re-election (1100 ms)"),
            "{warning}"
        );
    }

    /// The floor is exactly where `fit` and the half-ttl rule start refusing.
    #[test]
    fn the_ttl_floor_is_where_refusals_start() {
        let slow_skew = RaftBounds {
            max_clock_skew_ms: 1_500,
            worst_election_ms: 1_100,
        };
        // Defaults: half-ttl rule (2 × 1100) is the stricter; skewed: the stall rule.
        assert_eq!(ttl_floor_ms(DEFAULT_RAFT), 2_200);
        assert_eq!(ttl_floor_ms(slow_skew), 1_500 + 600 + 1_100 + 100);
        let floor = ttl_floor_ms(slow_skew);
        assert!(fit(t(floor, 100, 100), Some(slow_skew)).is_ok());
        assert!(fit(t(floor - 1, 100, 100), Some(slow_skew)).is_err());
    }

    #[test]
    fn a_lease_too_short_for_any_retry_is_refused() {
        let why = fit(t(1_000, 1_000, 1_000), None).unwrap_err();
        assert!(why.starts_with("1 s leaves no room"), "{why}");
    }
}
