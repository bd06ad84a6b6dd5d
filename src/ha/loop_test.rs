//! The whole HA loop without Raft or PostgreSQL: `HaLoop` over the in-memory keyspace
//! (`MemoryStore`) and a PostgreSQL stand-in, with short real timings. The multi-member runs
//! under paused time, with seeded faults and an invariant checker, are in `sim.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::decide::DataDir;
use super::pg_ops::{Applied, DesiredConfig, PgObservation, PgOps, PgResult, Rewind, Upstream};
use super::runner::HaLoop;
use super::snapshot::NodeSnapshot;
use super::store::{ClusterStore, MemoryStore};
use crate::cluster::{ClusterView, PgRole};
use crate::config::Config;

const SYSID: &str = "7300000000000000042";

#[derive(Default)]
struct FakeState {
    initialized: bool,
    running: bool,
    bootstraps: u32,
}

/// A PostgreSQL that bootstraps into a running primary and does nothing else of note.
#[derive(Default)]
struct FakePg {
    state: Mutex<FakeState>,
}

impl FakePg {
    fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }
}

impl PgOps for FakePg {
    fn data_dir(&self) -> DataDir {
        if self.state().initialized {
            DataDir::Initialized {
                system_identifier: SYSID.into(),
            }
        } else {
            DataDir::Empty
        }
    }
    fn postmaster_running(&self) -> bool {
        self.state().running
    }
    async fn observe(&self) -> PgResult<PgObservation> {
        Ok(PgObservation {
            role: Some(PgRole::Primary),
            timeline: Some(1),
            wal_lsn: Some(0x3000000),
            ..Default::default()
        })
    }
    async fn bootstrap(&self, _config: &DesiredConfig) -> PgResult<String> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut s = self.state();
        s.bootstraps += 1;
        s.initialized = true;
        s.running = true;
        Ok(SYSID.into())
    }
    async fn clone_replica(&self, _source: &Upstream) -> PgResult<()> {
        Err("no clones here".into())
    }
    async fn configure(&self, _config: &DesiredConfig) -> PgResult<Applied> {
        Ok(Applied::default())
    }
    async fn start(&self) -> PgResult<()> {
        self.state().running = true;
        Ok(())
    }
    async fn stop(&self) -> PgResult<()> {
        self.state().running = false;
        Ok(())
    }
    async fn stop_fast(&self, _within: Duration) -> PgResult<()> {
        self.stop().await
    }
    async fn restart(&self) -> PgResult<()> {
        Ok(())
    }
    async fn reload(&self) -> PgResult<()> {
        Ok(())
    }
    async fn promote(&self) -> PgResult<()> {
        Ok(())
    }
    async fn sync_slots(&self, _names: &[String]) -> PgResult<()> {
        Ok(())
    }
    async fn set_sync_names(&self, _value: Option<&str>) -> PgResult<()> {
        Ok(())
    }
    fn former_primary(&self) -> bool {
        false
    }
    fn is_standby_dir(&self) -> bool {
        false
    }
    fn final_lsn(&self) -> PgResult<u64> {
        Ok(0x3000000)
    }
    async fn rewind(&self, _source: &Upstream, _dry_run: bool) -> PgResult<Rewind> {
        Ok(Rewind::NotNeeded)
    }
    async fn remove_data_dir(&self) -> PgResult<()> {
        Ok(())
    }
    fn mark_rewind_failed(&self, _reason: &str) -> PgResult<()> {
        Ok(())
    }
    fn rewind_failed_marker(&self) -> Option<String> {
        None
    }
    fn timeline_switch(&self, _timeline: u64) -> PgResult<Option<(u64, u64, String)>> {
        Ok(None)
    }
}

fn config() -> Config {
    let yaml = "scope: demo\nname: n1\nraft:\n  self_addr: 127.0.0.1:2401\n  data_dir: /tmp/r\n\
                bootstrap:\n  dcs:\n    loop_wait: 1\n    ttl: 10\n    retry_timeout: 2\n";
    Config::from_yaml_str(yaml, "test", Vec::<(String, String)>::new())
        .expect("valid")
        .config
}

async fn view(store: &MemoryStore) -> ClusterView {
    let read = store.read_all().await.expect("reachable");
    ClusterView::from_entries(&read.entries, read.as_of_ms)
}

#[tokio::test]
async fn a_lone_member_bootstraps_over_the_in_memory_keyspace() {
    let store = Arc::new(MemoryStore::new());
    let pg = Arc::new(FakePg::default());
    let config = config();
    let (snapshot_tx, _snapshot_rx) = watch::channel(Arc::new(NodeSnapshot::starting("demo", "n1")));
    let (_requests_tx, requests_rx) = mpsc::channel(1);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let ha = HaLoop::new(store.clone(), config, None, pg.clone(), snapshot_tx, requests_rx);
    let running = tokio::spawn(ha.run(shutdown_rx));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = view(&store).await;
        if v.initialize.as_deref() == Some(SYSID) && v.leader_name() == Some("n1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no bootstrap: {v:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        pg.state().bootstraps,
        1,
        "Action::Bootstrap started exactly one job"
    );
    assert!(
        view(&store).await.config_revision.is_some(),
        "the bootstrap publishes the dynamic configuration"
    );

    // The lease is renewed every loop.
    let first = store.local_entry(&crate::keyspace::Key::Leader).unwrap().revision;
    let renewed = loop {
        let now = store.local_entry(&crate::keyspace::Key::Leader).unwrap();
        if now.revision > first {
            break now;
        }
        assert!(tokio::time::Instant::now() < deadline, "lease not renewed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(renewed.holder.as_deref(), Some("n1"));

    // Shutdown stops PostgreSQL and gives the lease back.
    shutdown_tx.send_replace(true);
    running.await.unwrap();
    assert!(!pg.state().running);
    assert_eq!(view(&store).await.leader_name(), None, "lease released");
}
