//! Shared helpers for the multi-process tests: real `pgquorum` agents on 127.0.0.1.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pgquorum::demo::{Demo, DemoOptions};
use pgquorum::keyspace::{Command, Key, Precondition};
use tokio::time::Instant;

pub const EXE: &str = env!("CARGO_BIN_EXE_pgquorum");
pub const CTL: &str = env!("CARGO_BIN_EXE_pgquorumctl");

/// Poll `probe` until it returns `Some`, or panic with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn start_cluster(dir: &Path, base_port: u16) -> Demo {
    let opts = DemoOptions {
        dir: Some(dir.to_path_buf()),
        base_port,
        nodes: 3,
        exe: Some(PathBuf::from(EXE)),
        extra_config: String::new(),
        postgres: false,
    };
    let mut demo = Demo::start(&opts).await.expect("start agents");
    demo.wait_healthy(Duration::from_secs(60))
        .await
        .expect("cluster healthy");
    demo
}

pub fn put(key: &str, value: serde_json::Value) -> Command {
    Command::Put {
        key: key.parse::<Key>().expect("valid key"),
        value,
        ttl_ms: None,
        precondition: Precondition::Any,
    }
}

/// Index of the current Raft leader among `demo.endpoints`.
pub async fn leader_index(demo: &Demo, ask: usize) -> Option<usize> {
    let rows = pgquorum::ctl::fetch_raft_status(&demo.endpoints[ask])
        .await
        .ok()?;
    let leader = rows.iter().find(|r| r.role == "leader")?;
    demo.endpoints.iter().position(|e| *e == leader.address)
}
