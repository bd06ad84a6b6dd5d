//! Logging set-up shared by the binaries.

use tracing_subscriber::EnvFilter;

/// Log to stderr at `level` (Patroni's `log.level`: DEBUG, INFO, WARNING, ERROR, CRITICAL),
/// unless `RUST_LOG` says otherwise. Dependencies log at WARN so INFO stays readable.
/// openraft logs an ERROR every half second per unreachable peer (`replication`) and one
/// for a formation race it loses (`engine_impl`); both are expected, and the agent's own
/// role-change lines and `pgquorumctl raft status` report the same facts once.
pub fn init(level: Option<&str>) {
    let level = match level.map(str::to_ascii_uppercase).as_deref() {
        Some("DEBUG") => "debug",
        Some("WARNING") | Some("WARN") => "warn",
        Some("ERROR") | Some("CRITICAL") | Some("FATAL") => "error",
        _ => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "warn,openraft=error,openraft::engine::engine_impl=off,openraft::replication=off,pgquorum={level},pgquorumctl={level}"
        ))
    });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}
