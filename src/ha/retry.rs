//! How often a failing long job (a bootstrap, a clone) may be tried again: a retry budget.
//!
//! Pure data, kept by the runner between cycles and read by `decide`: the runner records each
//! job's outcome, `decide` asks [`RetryBudget::gate`] before it starts the job again. Without
//! it a bootstrap that PostgreSQL refuses was retried at once, over and over (each attempt an
//! initdb and a set-aside data directory: gigabytes a minute).
//!
//! Times are the agent's local monotonic milliseconds (`Inputs::now_ms`).

/// Attempts a bootstrap gets before the agent gives up on it for good (until the agent is
/// restarted). A bootstrap that failed this often fails for a reason an operator must fix
/// (a setting PostgreSQL refuses, a full disk, a broken `post_bootstrap` script).
pub const BOOTSTRAP_MAX_ATTEMPTS: u32 = 5;

/// The wait after the first failure; it doubles after each further failure ...
pub const BACKOFF_BASE_MS: u64 = 1_000;
/// ... up to this.
pub const BACKOFF_CAP_MS: u64 = 60_000;

/// The failures of one kind of job since it last succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetryBudget {
    /// Attempts allowed in all; `None`: retry forever (with back-off).
    pub max_attempts: Option<u32>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// The next attempt may start at this local time (ms).
    pub next_attempt_at_ms: u64,
    /// What the last attempt failed with.
    pub last_error: Option<String>,
}

/// What the budget allows now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Try (attempt number `attempt`, 1-based).
    Go { attempt: u32 },
    /// Not before `wait_ms` from now; that will be attempt number `attempt`.
    Wait { wait_ms: u64, attempt: u32 },
    /// No attempts left.
    Exhausted,
}

/// What a recorded failure means for the next attempt (to log it at the right level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    RetryIn { wait_ms: u64 },
    GaveUp,
}

/// The wait after `failures` failures in a row: 1 s, 2 s, 4 s … capped at 60 s.
pub fn backoff_ms(failures: u32) -> u64 {
    if failures == 0 {
        return 0;
    }
    let doublings = (failures - 1).min(32);
    BACKOFF_BASE_MS
        .saturating_mul(1u64 << doublings)
        .min(BACKOFF_CAP_MS)
}

impl RetryBudget {
    /// A budget of `max_attempts` attempts in all.
    pub fn limited(max_attempts: u32) -> RetryBudget {
        RetryBudget {
            max_attempts: Some(max_attempts),
            ..RetryBudget::default()
        }
    }

    /// Retried forever, with back-off.
    pub fn unlimited() -> RetryBudget {
        RetryBudget::default()
    }

    /// The bootstrap's budget: [`BOOTSTRAP_MAX_ATTEMPTS`].
    pub fn bootstrap() -> RetryBudget {
        RetryBudget::limited(BOOTSTRAP_MAX_ATTEMPTS)
    }

    pub fn exhausted(&self) -> bool {
        self.max_attempts.is_some_and(|max| self.failures >= max)
    }

    /// May the job start now?
    pub fn gate(&self, now_ms: u64) -> Gate {
        if self.exhausted() {
            return Gate::Exhausted;
        }
        let attempt = self.failures + 1;
        if now_ms < self.next_attempt_at_ms {
            Gate::Wait {
                wait_ms: self.next_attempt_at_ms - now_ms,
                attempt,
            }
        } else {
            Gate::Go { attempt }
        }
    }

    /// An attempt failed at `now_ms` with `error`.
    pub fn record_failure(&mut self, error: impl Into<String>, now_ms: u64) -> AfterFailure {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some(error.into());
        let wait_ms = backoff_ms(self.failures);
        self.next_attempt_at_ms = now_ms.saturating_add(wait_ms);
        if self.exhausted() {
            AfterFailure::GaveUp
        } else {
            AfterFailure::RetryIn { wait_ms }
        }
    }

    /// The job succeeded (or an operator asked to start over): a clean slate.
    pub fn reset(&mut self) {
        *self = RetryBudget {
            max_attempts: self.max_attempts,
            ..RetryBudget::default()
        };
    }

    /// "attempt 3 of 5" / "attempt 3" (unlimited).
    pub fn attempt_text(&self, attempt: u32) -> String {
        match self.max_attempts {
            Some(max) => format!("attempt {attempt} of {max}"),
            None => format!("attempt {attempt}"),
        }
    }

    /// "last failure: …", or nothing before the first failure.
    pub fn last_failure_text(&self) -> String {
        self.last_error
            .as_deref()
            .map(|e| format!(" (last failure: {e})"))
            .unwrap_or_default()
    }

    /// The log line for a failure just recorded (`job`: "bootstrap", "creating a replica").
    /// Logged as an ERROR when the budget is spent (once), else as a WARN.
    pub fn failure_text(&self, job: &str, after: AfterFailure) -> String {
        let error = self.last_error.as_deref().unwrap_or("unknown error");
        match after {
            AfterFailure::RetryIn { wait_ms } => format!(
                "{job} failed ({} of {}): {error}; trying again in {}",
                self.failures,
                self.max_attempts
                    .map_or_else(|| "unlimited".to_string(), |m| m.to_string()),
                seconds_text(wait_ms)
            ),
            AfterFailure::GaveUp => format!(
                "{job} failed {} times, giving up until the agent is restarted. Last failure: {error}",
                self.failures
            ),
        }
    }

    /// Record a failure and log it: an ERROR when this spends the budget (once: no attempt
    /// follows), else a WARN with the back-off.
    pub fn record_failure_and_log(&mut self, job: &str, error: impl Into<String>, now_ms: u64) {
        let after = self.record_failure(error, now_ms);
        let line = self.failure_text(job, after);
        match after {
            AfterFailure::GaveUp => tracing::error!("{line}"),
            AfterFailure::RetryIn { .. } => tracing::warn!("{line}"),
        }
    }

    /// When the loop must wake up to make the next attempt (`None`: no attempt is waiting).
    pub fn wake_at_ms(&self) -> Option<u64> {
        (self.failures > 0 && !self.exhausted()).then_some(self.next_attempt_at_ms)
    }
}

/// How long the loop may sleep before one of `budgets` allows its next attempt (at least
/// 50 ms; `Duration::MAX` when none is waiting).
pub fn wake_in(budgets: &[&RetryBudget], now_ms: u64) -> std::time::Duration {
    budgets
        .iter()
        .filter_map(|b| b.wake_at_ms())
        .min()
        .map_or(std::time::Duration::MAX, |at| {
            std::time::Duration::from_millis(at.saturating_sub(now_ms).max(50))
        })
}

/// Whole seconds, rounded up, for "waiting N s".
pub fn seconds_text(ms: u64) -> String {
    format!("{} s", ms.div_ceil(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_a_minute() {
        let table = [
            (0, 0),
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (4, 8_000),
            (5, 16_000),
            (6, 32_000),
            (7, 60_000),
            (8, 60_000),
            (40, 60_000),
            (u32::MAX, 60_000),
        ];
        for (failures, want) in table {
            assert_eq!(backoff_ms(failures), want, "after {failures} failures");
        }
    }

    #[test]
    fn bootstrap_budget_step_by_step() {
        // (time of failure, gate just after, gate 1 ms before the wait ends, outcome)
        let mut b = RetryBudget::bootstrap();
        assert_eq!(b.gate(0), Gate::Go { attempt: 1 });
        let rows = [
            (100, AfterFailure::RetryIn { wait_ms: 1_000 }, 2),
            (2_000, AfterFailure::RetryIn { wait_ms: 2_000 }, 3),
            (5_000, AfterFailure::RetryIn { wait_ms: 4_000 }, 4),
            (10_000, AfterFailure::RetryIn { wait_ms: 8_000 }, 5),
        ];
        for (at, outcome, next) in rows {
            assert_eq!(b.record_failure(format!("failed at {at}"), at), outcome);
            let AfterFailure::RetryIn { wait_ms } = outcome else {
                unreachable!()
            };
            assert_eq!(
                b.gate(at),
                Gate::Wait {
                    wait_ms,
                    attempt: next
                }
            );
            assert_eq!(
                b.gate(at + wait_ms - 1),
                Gate::Wait {
                    wait_ms: 1,
                    attempt: next
                }
            );
            assert_eq!(b.gate(at + wait_ms), Gate::Go { attempt: next });
            assert_eq!(b.wake_at_ms(), Some(at + wait_ms));
            assert!(!b.exhausted());
        }
        assert_eq!(b.record_failure("the fifth", 30_000), AfterFailure::GaveUp);
        assert!(b.exhausted());
        assert_eq!(b.gate(30_000), Gate::Exhausted);
        assert_eq!(b.gate(u64::MAX), Gate::Exhausted, "never again, however long");
        assert_eq!(b.wake_at_ms(), None);
        assert_eq!(b.last_error.as_deref(), Some("the fifth"));
        assert_eq!(b.last_failure_text(), " (last failure: the fifth)");
    }

    #[test]
    fn unlimited_budget_never_runs_out_and_caps_the_wait() {
        let mut b = RetryBudget::unlimited();
        for i in 0..100u64 {
            let out = b.record_failure("no route to host", i * 100_000);
            assert!(matches!(out, AfterFailure::RetryIn { wait_ms } if wait_ms <= BACKOFF_CAP_MS));
        }
        assert!(!b.exhausted());
        assert_eq!(
            b.gate(9_900_000),
            Gate::Wait {
                wait_ms: 60_000,
                attempt: 101
            }
        );
        assert_eq!(b.attempt_text(101), "attempt 101");
    }

    #[test]
    fn success_resets_but_keeps_the_limit() {
        let mut b = RetryBudget::bootstrap();
        b.record_failure("x", 0);
        b.record_failure("y", 1_000);
        b.reset();
        assert_eq!(b, RetryBudget::bootstrap());
        assert_eq!(b.gate(0), Gate::Go { attempt: 1 });
        assert_eq!(b.last_failure_text(), "");
        assert_eq!(b.attempt_text(1), "attempt 1 of 5");
    }

    #[test]
    fn failure_lines_name_the_error() {
        let mut b = RetryBudget::limited(2);
        let after = b.record_failure("PostgreSQL failed to start: FATAL: nope", 0);
        assert_eq!(
            b.failure_text("bootstrap", after),
            "bootstrap failed (1 of 2): PostgreSQL failed to start: FATAL: nope; trying again in 1 s"
        );
        let after = b.record_failure("FATAL: still nope", 1_000);
        assert_eq!(
            b.failure_text("bootstrap", after),
            "bootstrap failed 2 times, giving up until the agent is restarted. Last failure: FATAL: still nope"
        );
        let mut c = RetryBudget::unlimited();
        let after = c.record_failure("refused", 0);
        assert_eq!(
            c.failure_text("creating a replica", after),
            "creating a replica failed (1 of unlimited): refused; trying again in 1 s"
        );
    }

    #[test]
    fn the_loop_wakes_when_the_first_back_off_ends() {
        use std::time::Duration;
        let idle = RetryBudget::unlimited();
        assert_eq!(wake_in(&[&idle, &RetryBudget::bootstrap()], 0), Duration::MAX);
        let mut clone = RetryBudget::unlimited();
        clone.record_failure("x", 1_000); // next at 2 000
        let mut boot = RetryBudget::bootstrap();
        boot.record_failure("y", 0);
        boot.record_failure("y", 1_000); // next at 3 000
        assert_eq!(wake_in(&[&boot, &clone], 1_500), Duration::from_millis(500));
        assert_eq!(
            wake_in(&[&boot, &clone], 2_500),
            Duration::from_millis(50),
            "due: soon"
        );
        for _ in 0..3 {
            boot.record_failure("y", 1_000);
        }
        assert!(boot.exhausted());
        assert_eq!(wake_in(&[&boot], 0), Duration::MAX, "a spent budget wakes nobody");
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(seconds_text(1), "1 s");
        assert_eq!(seconds_text(1_000), "1 s");
        assert_eq!(seconds_text(1_001), "2 s");
        assert_eq!(seconds_text(60_000), "60 s");
    }
}
