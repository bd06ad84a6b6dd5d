//! Logging set-up shared by the binaries: Patroni's `log` section for the agent (level,
//! `type: json`, `dir` with size rotation, level changed on reload), stderr for the rest.

pub mod json;
pub mod rotating;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::LogConfig;
use rotating::RotatingFile;

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot open the log file in {dir}: {source}")]
    OpenFile {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Set once by [`init_agent`]: where a reload sends the new level, and the level in force.
struct Reloadable {
    handle: reload::Handle<EnvFilter, Registry>,
    level: Mutex<&'static str>,
}
static RELOADABLE: OnceLock<Reloadable> = OnceLock::new();

/// Patroni's level name (any case) → `tracing`'s; unset or unknown → info.
fn tracing_level(level: Option<&str>) -> &'static str {
    match level.map(str::to_ascii_uppercase).as_deref() {
        Some("DEBUG") => "debug",
        Some("WARNING") | Some("WARN") => "warn",
        Some("ERROR") | Some("CRITICAL") | Some("FATAL") => "error",
        _ => "info",
    }
}

/// Dependencies log at WARN so INFO stays readable. openraft logs an ERROR every half second
/// per unreachable peer (`replication`) and one for a formation race it loses
/// (`engine_impl`); both are expected, and the agent's own role-change lines and
/// `pgquorumctl raft status` report the same facts once.
fn filter_for(level: &str) -> EnvFilter {
    EnvFilter::new(format!(
        "warn,openraft=error,openraft::engine::engine_impl=off,openraft::replication=off,pgquorum={level},pgquorumctl={level}"
    ))
}

/// `RUST_LOG`, when set, wins over `log.level` (at start and on reload).
fn env_filter() -> Option<EnvFilter> {
    std::env::var_os(EnvFilter::DEFAULT_ENV)?;
    EnvFilter::try_from_default_env().ok()
}

/// Log to stderr at `level` (Patroni's `log.level`: DEBUG, INFO, WARNING, ERROR, CRITICAL),
/// unless `RUST_LOG` says otherwise. For pgquorumctl and the demo.
pub fn init(level: Option<&str>) {
    let filter = env_filter().unwrap_or_else(|| filter_for(tracing_level(level)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The agent's logging from its `log` section: `<dir>/pgquorum.log` rotated by size when
/// `dir` is set (stderr otherwise), JSON lines for `type: json`, and a level that
/// [`reload_level`] changes later.
pub fn init_agent(log: &LogConfig) -> Result<(), LoggingError> {
    let level = tracing_level(log.level.as_deref());
    let filter = env_filter().unwrap_or_else(|| filter_for(level));
    let (filter, handle) = reload::Layer::new(filter);
    let (writer, ansi) = match &log.dir {
        Some(dir) => {
            let file = RotatingFile::open(
                dir,
                log.file_size.unwrap_or(rotating::DEFAULT_FILE_SIZE),
                log.file_num.unwrap_or(rotating::DEFAULT_FILE_NUM),
            )
            .map_err(|source| LoggingError::OpenFile {
                dir: dir.clone(),
                source,
            })?;
            (BoxMakeWriter::new(file), false)
        }
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
    };
    let json = log.log_type.as_deref() == Some("json");
    let (plain, json) = if json {
        (None, Some(json::JsonLayer::new(writer)))
    } else {
        let plain = tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer);
        (Some(plain), None)
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(plain)
        .with(json)
        .try_init()
        .is_ok();
    if installed {
        let _ = RELOADABLE.set(Reloadable {
            handle,
            level: Mutex::new(level),
        });
    }
    Ok(())
}

/// After a reload: apply the file's `log.level` (unless `RUST_LOG` rules). The other `log`
/// keys (`dir`, `type`, rotation) are read at start only.
pub fn reload_level(log: &LogConfig) {
    let Some(reloadable) = RELOADABLE.get() else {
        return;
    };
    if env_filter().is_some() {
        return;
    }
    let level = tracing_level(log.level.as_deref());
    let mut current = reloadable.level.lock().unwrap_or_else(|e| e.into_inner());
    if *current == level {
        return;
    }
    match reloadable.handle.reload(filter_for(level)) {
        Ok(()) => {
            *current = level;
            drop(current);
            tracing::info!("log level changed on reload: now {level}");
        }
        Err(e) => tracing::error!("log level not changed on reload: {e}"),
    }
}
