//! A member's WAL position for leader races: what this node reports to the others over gRPC
//! (`position_probe`), and the position an observation shows (`position_of`, pure).

use std::sync::Arc;

use super::decide::WalPosition;
use super::pg_ops::{PgObservation, PgOps};

/// A live query of the local PostgreSQL's WAL position, served to other agents over gRPC.
pub type PositionProbe =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Result<WalPosition, String>> + Send + Sync>;

pub fn position_probe<P: PgOps>(pg: Arc<P>) -> PositionProbe {
    Arc::new(move || {
        let pg = pg.clone();
        Box::pin(async move {
            if !pg.postmaster_running() {
                return Err("PostgreSQL is not running".to_string());
            }
            let o = pg.observe().await?;
            position_of(&o).ok_or_else(|| "PostgreSQL reports no WAL position".to_string())
        })
    })
}

/// The position a leader race compares: the timeline, and the furthest WAL this server has
/// (a primary's written position; a replica's received or replayed, whichever is further).
pub fn position_of(o: &PgObservation) -> Option<WalPosition> {
    let lsn = [o.wal_lsn, o.received_lsn, o.replayed_lsn]
        .into_iter()
        .flatten()
        .max()?;
    Some(WalPosition {
        timeline: o.timeline.unwrap_or(0),
        lsn,
    })
}
