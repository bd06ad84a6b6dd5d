//! What is in the data directory: nothing, an empty directory, a PostgreSQL cluster (read with
//! `pg_controldata`), or something else that the agent must never touch.

use std::path::Path;

use super::error::PgError;
use super::lsn::parse_lsn;
use super::tool::{Program, Tools};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDirState {
    /// The path does not exist.
    Missing,
    /// An empty directory: initdb or a base backup may fill it.
    Empty,
    /// A PostgreSQL data directory whose control file is readable.
    Initialized {
        system_identifier: String,
        /// `Latest checkpoint's TimeLineID`.
        timeline: u64,
        /// `Latest checkpoint location`.
        checkpoint_lsn: u64,
        /// `Database cluster state`: `shut down`, `in production`, `shut down in recovery`,
        /// `in archive recovery` … (`in production` while stopped means it crashed).
        cluster_state: String,
        /// Contents of `PG_VERSION` (the major version, e.g. `15`).
        version: String,
    },
    /// `PG_VERSION` is there but the control file cannot be read (an interrupted base
    /// backup, a damaged directory). Not safe to start; the reason says what failed.
    Damaged(String),
    /// Not a PostgreSQL data directory (a file, or a non-empty directory without
    /// `PG_VERSION`): the agent must never touch it. The string says what was found.
    NotPostgres(String),
}

pub fn inspect(data_dir: &Path, tools: &Tools) -> Result<DataDirState, PgError> {
    let meta = match std::fs::symlink_metadata(data_dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DataDirState::Missing),
        Err(e) => return Err(PgError::io("inspect", data_dir, e)),
    };
    // A symlinked data directory is fine; follow it.
    let meta = if meta.file_type().is_symlink() {
        std::fs::metadata(data_dir).map_err(|e| PgError::io("inspect", data_dir, e))?
    } else {
        meta
    };
    if !meta.is_dir() {
        return Ok(DataDirState::NotPostgres("it is not a directory".into()));
    }
    let mut entries: Vec<String> = std::fs::read_dir(data_dir)
        .map_err(|e| PgError::io("list", data_dir, e))?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    if entries.is_empty() {
        return Ok(DataDirState::Empty);
    }
    let version_file = data_dir.join("PG_VERSION");
    if !version_file.is_file() {
        entries.sort();
        let shown: Vec<&str> = entries.iter().take(5).map(String::as_str).collect();
        let more = if entries.len() > 5 {
            format!(" and {} more", entries.len() - 5)
        } else {
            String::new()
        };
        return Ok(DataDirState::NotPostgres(format!(
            "it holds {}{more} but no PG_VERSION",
            shown.join(", ")
        )));
    }
    let version = std::fs::read_to_string(&version_file)
        .map_err(|e| PgError::io("read", &version_file, e))?
        .trim()
        .to_string();
    if !data_dir.join("global").join("pg_control").is_file() {
        return Ok(DataDirState::Damaged(
            "PG_VERSION is present but global/pg_control is missing".into(),
        ));
    }
    let output = tools
        .std_command(Program::PgControldata)
        .arg(data_dir)
        .output()
        .map_err(|e| PgError::ControlData {
            path: data_dir.to_path_buf(),
            detail: format!("could not run it: {e}"),
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Ok(DataDirState::Damaged(format!(
            "pg_controldata failed: {}",
            stderr.trim()
        )));
    }
    match parse_controldata(&stdout) {
        Ok(control) => Ok(DataDirState::Initialized {
            system_identifier: control.system_identifier,
            timeline: control.timeline,
            checkpoint_lsn: control.checkpoint_lsn,
            cluster_state: control.cluster_state,
            version,
        }),
        Err(missing) => Err(PgError::ControlData {
            path: data_dir.to_path_buf(),
            detail: format!("no \"{missing}\" in its output"),
        }),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct ControlData {
    pub system_identifier: String,
    pub timeline: u64,
    pub checkpoint_lsn: u64,
    pub cluster_state: String,
}

/// Reads the fields the agent needs from `pg_controldata` output (C locale). On failure,
/// returns the name of the first field that is missing or unreadable.
pub fn parse_controldata(text: &str) -> Result<ControlData, &'static str> {
    let field = |name: &'static str| {
        text.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
            .ok_or(name)
    };
    const SYSTEM_ID: &str = "Database system identifier";
    const TIMELINE: &str = "Latest checkpoint's TimeLineID";
    const CHECKPOINT: &str = "Latest checkpoint location";
    const STATE: &str = "Database cluster state";
    Ok(ControlData {
        system_identifier: field(SYSTEM_ID)?,
        timeline: field(TIMELINE)?.parse().map_err(|_| TIMELINE)?,
        checkpoint_lsn: parse_lsn(&field(CHECKPOINT)?).ok_or(CHECKPOINT)?,
        cluster_state: field(STATE)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7710754698026259847
Database cluster state:               in production
pg_control last modified:             Sat Nov 21 22:26:20 2026
Latest checkpoint location:           0/1500718
Latest checkpoint's REDO location:    0/1500718
Latest checkpoint's REDO WAL file:    000000010000000000000001
Latest checkpoint's TimeLineID:       3
Latest checkpoint's PrevTimeLineID:   2
";

    #[test]
    fn parses_controldata() {
        assert_eq!(
            parse_controldata(SAMPLE).unwrap(),
            ControlData {
                system_identifier: "7710754698026259847".into(),
                timeline: 3,
                checkpoint_lsn: 0x1500718,
                cluster_state: "in production".into(),
            }
        );
    }

    #[test]
    fn names_the_missing_field() {
        let without = SAMPLE.replace("Latest checkpoint location", "Something else");
        assert_eq!(parse_controldata(&without), Err("Latest checkpoint location"));
    }

    #[test]
    fn classifies_directories_without_running_anything() {
        let tools = Tools {
            bin_dir: "/nonexistent".into(),
            names: Default::default(),
            user: super::super::os_user::OsUser::for_agent(None).unwrap(),
        };
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            inspect(&root.path().join("nope"), &tools).unwrap(),
            DataDirState::Missing
        );
        assert_eq!(inspect(root.path(), &tools).unwrap(), DataDirState::Empty);
        std::fs::write(root.path().join("notes.txt"), "mine").unwrap();
        match inspect(root.path(), &tools).unwrap() {
            DataDirState::NotPostgres(why) => assert!(why.contains("notes.txt"), "{why}"),
            other => panic!("{other:?}"),
        }
        match inspect(&root.path().join("notes.txt"), &tools).unwrap() {
            DataDirState::NotPostgres(why) => assert!(why.contains("not a directory"), "{why}"),
            other => panic!("{other:?}"),
        }
        let half = root.path().join("half");
        std::fs::create_dir(&half).unwrap();
        std::fs::write(half.join("PG_VERSION"), "15\n").unwrap();
        assert!(matches!(
            inspect(&half, &tools).unwrap(),
            DataDirState::Damaged(_)
        ));
    }
}
