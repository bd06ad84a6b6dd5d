//! The lease watchdog: the HA loop's own backstop for the lease rule, independent of the loop.
//!
//! The loop normally renews or demotes well before the lease deadline, but one cycle can be
//! slow (a keyspace request waiting out an election, a PostgreSQL query timing out), and a
//! start or restart it waits for can finish late. Once the deadline (less a margin) has passed
//! with no renewal, the watchdog stops PostgreSQL (fast shutdown: open sessions end at once),
//! and keeps it stopped: it looks again every `RECHECK_PERIOD` and stops any server that could
//! accept writes, until a newer deadline arrives (a renewal) or the deadline is dropped (the
//! loop gave the lease up). A server set up as a standby is read-only and left running: the
//! loop starts its PostgreSQL as a replica once another member holds the lease.
//!
//! The deadline is on the loop's clock (`clock0`-relative ms on tokio's clock, so the
//! simulation's paused time drives it); the watchdog also turns it into a point on
//! CLOCK_BOOTTIME as it arrives and fires on whichever passes first, so a suspend of the
//! machine counts as time that passed, as for the fence guard (src/fence.rs).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::pg_ops::{PgFailure, PgOps};
use crate::fence::{boottime_ms, RECHECK_PERIOD};

/// What the watchdog needs of PostgreSQL.
pub trait Stoppable: Send + Sync {
    /// A server of this data directory is running and could accept writes.
    fn writable_running(&self) -> bool;
    fn stop(&self) -> impl Future<Output = Result<(), PgFailure>> + Send;
}

/// The local PostgreSQL, as the watchdog sees it.
pub struct Local<P: PgOps>(pub Arc<P>);

impl<P: PgOps> Stoppable for Local<P> {
    fn writable_running(&self) -> bool {
        self.0.postmaster_running() && !self.0.is_standby_dir()
    }

    fn stop(&self) -> impl Future<Output = Result<(), PgFailure>> + Send {
        self.0.stop()
    }
}

/// Watch `deadline` (ms after `clock0`; `None`: no lease) and keep PostgreSQL stopped from
/// `margin_ms` before it until a newer one arrives. Returns when the sender is gone.
pub async fn watch_deadline(
    pg: impl Stoppable,
    clock0: Instant,
    margin_ms: u64,
    mut deadline: watch::Receiver<Option<u64>>,
) {
    loop {
        let Some(d) = *deadline.borrow_and_update() else {
            if deadline.changed().await.is_err() {
                return;
            }
            continue;
        };
        // Passed when the loop's clock (tokio's: it can be paused and advanced in tests) says
        // so, or when CLOCK_BOOTTIME does — the monotonic clock stops while the machine is
        // suspended, the boot clock does not.
        let fire_at = clock0 + Duration::from_millis(d.saturating_sub(margin_ms));
        let fire_at_boot =
            boottime_ms() + fire_at.saturating_duration_since(Instant::now()).as_millis() as u64;
        // Before the deadline: wait for it, or for a newer one.
        let passed = loop {
            if Instant::now() >= fire_at || boottime_ms() >= fire_at_boot {
                break true;
            }
            let next_look = fire_at.min(Instant::now() + RECHECK_PERIOD);
            tokio::select! {
                changed = deadline.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break false;
                }
                _ = tokio::time::sleep_until(next_look) => {}
            }
        };
        if !passed {
            continue;
        }
        // Past it: level-triggered, until the deadline changes.
        loop {
            if pg.writable_running() {
                tracing::error!(
                    "the leader lease was not renewed before its deadline: stopping PostgreSQL now"
                );
                if let Err(e) = pg.stop().await {
                    tracing::error!("stopping PostgreSQL at the lease deadline failed: {e}");
                }
            }
            tokio::select! {
                changed = deadline.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                _ = tokio::time::sleep(RECHECK_PERIOD) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// A PostgreSQL that is running until stopped, and can be "started" again by the test.
    #[derive(Clone, Default)]
    struct FakePg {
        running: Arc<AtomicBool>,
        stops: Arc<AtomicUsize>,
    }

    impl Stoppable for FakePg {
        fn writable_running(&self) -> bool {
            self.running.load(Ordering::SeqCst)
        }

        async fn stop(&self) -> Result<(), PgFailure> {
            self.running.store(false, Ordering::SeqCst);
            self.stops.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    impl FakePg {
        fn start(&self) {
            self.running.store(true, Ordering::SeqCst);
        }
        fn stops(&self) -> usize {
            self.stops.load(Ordering::SeqCst)
        }
        async fn wait_stops(&self, n: usize) {
            let until = Instant::now() + Duration::from_secs(3);
            while self.stops() < n {
                assert!(Instant::now() < until, "PostgreSQL was not stopped {n} times");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    const MARGIN_MS: u64 = 500;
    /// Several of the watchdog's looks.
    const SEVERAL_LOOKS: Duration = Duration::from_millis(400);

    fn start_watchdog() -> (FakePg, Instant, watch::Sender<Option<u64>>) {
        let pg = FakePg::default();
        pg.start();
        let clock0 = Instant::now();
        let (tx, rx) = watch::channel(None);
        tokio::spawn(watch_deadline(pg.clone(), clock0, MARGIN_MS, rx));
        (pg, clock0, tx)
    }

    fn ms_since(clock0: Instant) -> u64 {
        clock0.elapsed().as_millis() as u64
    }

    #[tokio::test]
    async fn past_the_deadline_postgres_is_stopped_again_whenever_it_comes_back() {
        let (pg, clock0, tx) = start_watchdog();
        tx.send_replace(Some(ms_since(clock0) + MARGIN_MS + 100));
        pg.wait_stops(1).await;
        // A start (crash recovery, a restart, someone by hand) finishing after the deadline.
        pg.start();
        pg.wait_stops(2).await;
        pg.start();
        pg.wait_stops(3).await;
    }

    #[tokio::test]
    async fn a_renewal_or_a_release_ends_the_fencing() {
        let (pg, clock0, tx) = start_watchdog();
        tx.send_replace(Some(0));
        pg.wait_stops(1).await;
        // Renewed: PostgreSQL may run again until the new deadline.
        tx.send_replace(Some(ms_since(clock0) + 60_000));
        pg.start();
        tokio::time::sleep(SEVERAL_LOOKS).await;
        assert_eq!(pg.stops(), 1, "stopped before the new deadline");
        // Passed again, then released (the loop gave the lease up): no more stops.
        tx.send_replace(Some(0));
        pg.wait_stops(2).await;
        tx.send_replace(None);
        pg.start();
        tokio::time::sleep(SEVERAL_LOOKS).await;
        assert_eq!(pg.stops(), 2, "stopped without a lease deadline");
    }

    #[tokio::test]
    async fn nothing_is_stopped_before_the_deadline_less_the_margin() {
        let (pg, clock0, tx) = start_watchdog();
        tx.send_replace(Some(ms_since(clock0) + MARGIN_MS + 300));
        let armed_at = Instant::now();
        pg.wait_stops(1).await;
        assert!(armed_at.elapsed() >= Duration::from_millis(250), "stopped early");
    }
}
