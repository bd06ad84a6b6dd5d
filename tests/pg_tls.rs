//! PostgreSQL connection security on a real three-node cluster: no configured password shows
//! up in logs, process arguments, REST answers, the keyspace's storage or PostgreSQL's files.
//! Ports 4911–4913 (gRPC), 8111–8113 (PostgreSQL), 10711–10713 (REST).

mod common;

use std::path::Path;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every password the demo configuration sets.
fn secrets() -> [&'static str; 4] {
    [
        pgquorum::demo::DEMO_SUPERUSER_PASSWORD,
        "demo-repl",
        "demo-rewind",
        "demo-admin",
    ]
}

/// Files under `dir` holding any secret, except the agents' own configs (`*.yml`) and the
/// pgpass files (`*.pgpass`), whose job is to hold them.
fn files_with_secrets(dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            files_with_secrets(&path, found);
            continue;
        }
        let name = path.to_string_lossy();
        if !meta.is_file() || name.ends_with(".yml") || name.ends_with(".pgpass") {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for secret in secrets() {
            if bytes.windows(secret.len()).any(|w| w == secret.as_bytes()) {
                found.push(format!("{name}: {secret}"));
            }
        }
    }
}

async fn http_body(port: u16, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_logs_processes_rest_keyspace_or_files() {
    let dir = TestDir::new();
    let (demo, opts) = start_pg_cluster(dir.path(), 4911).await;

    // REST answers of every member.
    for i in 0..3 {
        for path in ["/patroni", "/cluster", "/config", "/history", "/metrics"] {
            let body = http_body(opts.rest_port(i), path).await;
            for secret in secrets() {
                assert!(
                    !body.contains(secret),
                    "GET {path} on node{} shows {secret}",
                    i + 1
                );
            }
        }
    }
    // Process arguments of everything running on this cluster's files.
    let root = dir.path().display().to_string();
    for proc_entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(proc_entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&root) {
            for secret in secrets() {
                assert!(
                    !cmdline.contains(secret),
                    "process arguments show {secret}: {cmdline}"
                );
            }
        }
    }
    // Logs, PostgreSQL's configuration and data files, the Raft storage (the keyspace).
    let mut found = Vec::new();
    files_with_secrets(dir.path(), &mut found);
    assert!(found.is_empty(), "secrets in files: {found:#?}");
    drop(demo);
}
