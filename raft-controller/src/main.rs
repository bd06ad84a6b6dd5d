//! `pgquorum-controller`: the witness of a two-data-node cluster (docs/witness.md).
//!
//! A Raft voter with no PostgreSQL and no HA loop, started from the agent's file layout or
//! from a Patroni `patroni_raft_controller` file unchanged. Everything it does is the
//! library's (`pgquorum::witness`); this binary only reads the file, sets up logging and a
//! small runtime, and handles signals.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use pgquorum::witness::controller_config::{self, ControllerConfig};

#[derive(Debug, Parser)]
#[command(
    name = "pgquorum-controller",
    version,
    about = "pgquorum's witness: a Raft voter with no PostgreSQL (two data nodes plus a witness)"
)]
struct Cli {
    /// The configuration file: the agent's layout (`scope`, `name`, `raft`, optional
    /// `restapi.listen`, `log`), or Patroni's controller file (`raft` only).
    config: Option<PathBuf>,
    /// Check a configuration file, report every problem in it, and exit.
    #[arg(long, value_name = "FILE")]
    validate_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.validate_config {
        return validate(path);
    }
    let Some(path) = &cli.config else {
        eprintln!("usage: pgquorum-controller CONFIG_FILE | pgquorum-controller --validate-config FILE");
        return ExitCode::from(2);
    };
    // One thread: a witness answers a few Raft RPCs per heartbeat; more threads would only
    // cost memory (docs/benchmarks.md, "Witness footprint").
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgquorum-controller: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(path: &Path) -> ExitCode {
    let checked = controller_config::load(path).map(|loaded| loaded.warnings);
    match pgquorum::config::print_validation(path, checked) {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

async fn run(path: &Path) -> anyhow::Result<()> {
    let ControllerConfig {
        mut config,
        warnings,
        scope_unknown,
    } = controller_config::load(path)?;
    pgquorum::logging::init_agent(&config.log)?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    // Installed before anything else: SIGHUP's default action would end the witness.
    let shutdown = pgquorum::agent::shutdown_signal();
    tokio::spawn(ignore_hangups());
    if scope_unknown {
        config.scope = controller_config::learn_scope(&config).await?;
        tracing::info!(scope = %config.scope, "cluster name (scope) learned from the partners");
    }
    tracing::info!(config = %path.display(), name = %config.name, scope = %config.scope, "pgquorum-controller starting");
    pgquorum::witness::run(config, shutdown).await?;
    Ok(())
}

/// A witness has nothing to reload (its settings are read at start); SIGHUP is logged, not fatal.
async fn ignore_hangups() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!(
            "SIGHUP received: the witness reads its settings at start only; restart it to apply changes"
        );
    }
}
