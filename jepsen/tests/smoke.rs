//! Runs `pgquorum-jepsen smoke` (kill-node, isolate-primary with mutual TLS on the agents' gRPC
//! and REST ports, stall-agent, 30 s each, against real agents and PostgreSQL servers in network
//! namespaces) and requires it to pass.
//!
//! Needs root (network namespaces). Not root: the test fails, loudly — a silent pass would
//! hide that the suite never ran. CI runs as root.

use std::path::{Path, PathBuf};
use std::process::Command;

const JEPSEN: &str = env!("CARGO_BIN_EXE_pgquorum-jepsen");

/// The `pgquorum` agent next to the jepsen binary, rebuilt (or built) first with the same
/// profile: `cargo test -p pgquorum-jepsen` alone does not build the other package's binaries,
/// and an agent left over from an older build would test old code.
fn agent_binary() -> PathBuf {
    let dir = Path::new(JEPSEN).parent().expect("the binary's directory");
    let release = dir.file_name().is_some_and(|n| n == "release");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(workspace)
        .args(["build", "-p", "pgquorum", "--bin", "pgquorum"]);
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build for the agent");
    assert!(status.success(), "cargo build --bin pgquorum failed");
    let agent = dir.join("pgquorum");
    assert!(agent.is_file(), "no agent binary at {}", agent.display());
    agent
}

#[test]
fn smoke_scenarios_pass() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "the jepsen smoke test needs root (network namespaces); run it as root, e.g. \
         `sudo -E cargo test -p pgquorum-jepsen --test smoke`"
    );
    let agent = agent_binary();
    let out = tempfile::Builder::new()
        .prefix("pgquorum-jepsen-smoke-")
        .tempdir()
        .expect("results dir");
    let started = std::time::Instant::now();
    let output = Command::new(JEPSEN)
        .arg("smoke")
        .arg("--agent")
        .arg(&agent)
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run pgquorum-jepsen smoke");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{text}\nsmoke took {:.0} s", started.elapsed().as_secs_f64());
    if !output.status.success() {
        let kept = out.keep();
        panic!(
            "pgquorum-jepsen smoke failed ({}); reports and agent logs kept in {}",
            output.status,
            kept.display()
        );
    }
    assert!(text.contains("RESULT: PASS"), "no passing result in the output");
}
