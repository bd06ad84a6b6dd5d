//! What a stopped (or running) data directory says about its own past, read without a
//! server: the control file through `pg_controldata`, and the timeline history files in
//! `pg_wal`. The HA loop uses them to decide whether a member that comes back last ran as a
//! primary (and so may hold WAL the new primary never saw), and whether pg_rewind can help.
//!
//! The parsers are pure functions over the programs' and files' text so they can be tested
//! on real output without a server.

use std::path::Path;

use super::error::PgError;
use super::lsn::parse_lsn;
use super::tool::Program;
use super::Postgres;

/// `Database cluster state` from the control file: what the server was doing when it last
/// wrote the control file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    /// `in production`: a primary accepting writes, or one that crashed while it was.
    InProduction,
    /// `shut down`: a primary stopped cleanly.
    ShutDown,
    /// `shut down in recovery`: a standby stopped cleanly.
    ShutDownInRecovery,
    /// `in archive recovery`: a standby, or a directory pg_rewind just rewound.
    InArchiveRecovery,
    /// `in crash recovery`: replaying its own WAL after a crash (no standby.signal).
    InCrashRecovery,
    /// `shutting down`: stopped (or crashed) during a primary's shutdown checkpoint.
    ShuttingDown,
    /// Anything else (`starting up`, or a state a newer PostgreSQL adds), verbatim.
    Other(String),
}

impl ClusterState {
    /// The state from pg_controldata's text (C locale).
    pub fn parse(text: &str) -> ClusterState {
        match text.trim() {
            "in production" => ClusterState::InProduction,
            "shut down" => ClusterState::ShutDown,
            "shut down in recovery" => ClusterState::ShutDownInRecovery,
            "in archive recovery" => ClusterState::InArchiveRecovery,
            "in crash recovery" => ClusterState::InCrashRecovery,
            "shutting down" => ClusterState::ShuttingDown,
            other => ClusterState::Other(other.to_string()),
        }
    }

    /// pg_controldata's words for the state.
    pub fn as_str(&self) -> &str {
        match self {
            ClusterState::InProduction => "in production",
            ClusterState::ShutDown => "shut down",
            ClusterState::ShutDownInRecovery => "shut down in recovery",
            ClusterState::InArchiveRecovery => "in archive recovery",
            ClusterState::InCrashRecovery => "in crash recovery",
            ClusterState::ShuttingDown => "shutting down",
            ClusterState::Other(text) => text,
        }
    }
}

impl std::fmt::Display for ClusterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of `pg_controldata` the HA loop needs to rejoin a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlData {
    /// `Database system identifier`: equal on every member of one cluster.
    pub system_identifier: String,
    /// `Database cluster state`.
    pub cluster_state: ClusterState,
    /// `Latest checkpoint's TimeLineID`.
    pub timeline: u64,
    /// `Latest checkpoint location`.
    pub checkpoint_lsn: u64,
    /// `Minimum recovery ending location`: how far a standby (or a rewound directory) must
    /// replay before it is consistent; 0 on a primary.
    pub min_recovery_end_lsn: u64,
    /// `Min recovery ending loc's timeline`: the timeline of `min_recovery_end_lsn`; 0 on a
    /// primary.
    pub min_recovery_end_timeline: u64,
    /// `Data page checksum version` is not 0 (initdb `--data-checksums`).
    pub data_checksums: bool,
    /// `wal_log_hints setting`: the value the server last ran with.
    pub wal_log_hints: bool,
}

impl ControlData {
    /// Whether the server last ran as a primary: its state is one only a primary (or a
    /// primary's crash recovery) writes, not a standby's. Such a member may hold WAL the
    /// current primary never received, so it must not simply stream from it.
    ///
    /// A base backup that was never started carries its source's state (`in production`
    /// when taken from a primary): ask only of directories that have run.
    pub fn last_ran_as_primary(&self) -> bool {
        matches!(
            self.cluster_state,
            ClusterState::InProduction
                | ClusterState::ShutDown
                | ClusterState::ShuttingDown
                | ClusterState::InCrashRecovery
        )
    }

    /// Whether pg_rewind can use this directory as its target: it needs hint-bit changes in
    /// the WAL, which data checksums or `wal_log_hints` provide.
    pub fn can_rewind(&self) -> bool {
        self.data_checksums || self.wal_log_hints
    }
}

/// Reads the fields of [`ControlData`] from `pg_controldata` output (C locale). On failure,
/// says which field is missing or unreadable.
pub fn parse_control_data(text: &str) -> Result<ControlData, String> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim())
            })
            .ok_or_else(|| format!("no \"{name}\" in its output"))
    };
    let unreadable = |name: &str, value: &str| format!("cannot read \"{name}\" from \"{value}\"");
    let number = |name: &str| {
        let value = field(name)?;
        value.parse::<u64>().map_err(|_| unreadable(name, value))
    };
    let lsn = |name: &str| {
        let value = field(name)?;
        parse_lsn(value).ok_or_else(|| unreadable(name, value))
    };
    const HINTS: &str = "wal_log_hints setting";
    let wal_log_hints = match field(HINTS)? {
        "on" => true,
        "off" => false,
        other => return Err(unreadable(HINTS, other)),
    };
    Ok(ControlData {
        system_identifier: field("Database system identifier")?.to_string(),
        cluster_state: ClusterState::parse(field("Database cluster state")?),
        timeline: number("Latest checkpoint's TimeLineID")?,
        checkpoint_lsn: lsn("Latest checkpoint location")?,
        min_recovery_end_lsn: lsn("Minimum recovery ending location")?,
        min_recovery_end_timeline: number("Min recovery ending loc's timeline")?,
        data_checksums: number("Data page checksum version")? != 0,
        wal_log_hints,
    })
}

/// One line of a timeline history file: where a timeline branched off its parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineSwitch {
    /// The timeline that was left.
    pub parent_timeline: u64,
    /// The WAL position where the parent timeline ended and the next one began.
    pub switch_lsn: u64,
    /// Why recovery ended there (`no recovery target specified` after a promotion).
    pub reason: String,
}

/// Parses a timeline history file (`00000002.history`): one `parentTLI<TAB>switchpoint<TAB>
/// reason` line per ancestor timeline, oldest first; blank lines and `#` comments are
/// skipped, as PostgreSQL does. On failure, names the line that is wrong.
pub fn parse_timeline_history(text: &str) -> Result<Vec<TimelineSwitch>, String> {
    let mut switches = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let wrong = |what: &str| format!("line {}: {what}: {line:?}", index + 1);
        let mut fields = trimmed.splitn(3, '\t');
        let parent_timeline = fields
            .next()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .ok_or_else(|| wrong("no timeline number"))?;
        let switch_lsn = fields
            .next()
            .and_then(parse_lsn)
            .ok_or_else(|| wrong("no switch point"))?;
        let reason = fields.next().unwrap_or("").trim().to_string();
        switches.push(TimelineSwitch {
            parent_timeline,
            switch_lsn,
            reason,
        });
    }
    Ok(switches)
}

/// The name PostgreSQL gives timeline `timeline`'s history file.
fn history_file_name(timeline: u64) -> String {
    format!("{timeline:08X}.history")
}

impl Postgres {
    /// Runs `pg_controldata` on the data directory (as the PostgreSQL OS user) and reads the
    /// fields of [`ControlData`]. Works whether or not the server runs; a running server's
    /// control file may lag behind it by up to a checkpoint.
    pub fn control_data(&self) -> Result<ControlData, PgError> {
        let data_dir = &self.settings.data_dir;
        self.tools.check(Program::PgControldata)?;
        if !data_dir.join("global").join("pg_control").is_file() {
            return Err(PgError::NotInitialized {
                path: data_dir.clone(),
                reason: "no global/pg_control".into(),
            });
        }
        let failed = |detail: String| PgError::ControlData {
            path: data_dir.clone(),
            detail,
        };
        let output = self
            .tools
            .std_command(Program::PgControldata)
            .arg(data_dir)
            .output()
            .map_err(|e| failed(format!("could not run it: {e}")))?;
        if !output.status.success() {
            return Err(failed(String::from_utf8_lossy(&output.stderr).trim().to_string()));
        }
        parse_control_data(&String::from_utf8_lossy(&output.stdout)).map_err(failed)
    }

    /// The history of `timeline` from `pg_wal/<timeline as %08X>.history`: every switch from
    /// timeline 1 up to it, oldest first. Timeline 1 has no history file: an empty list.
    /// A missing file for a later timeline is an error (the directory never saw that
    /// timeline begin, or lost the file).
    pub fn timeline_history(&self, timeline: u64) -> Result<Vec<TimelineSwitch>, PgError> {
        read_timeline_history(&self.settings.data_dir, timeline)
    }
}

fn read_timeline_history(data_dir: &Path, timeline: u64) -> Result<Vec<TimelineSwitch>, PgError> {
    let path = data_dir.join("pg_wal").join(history_file_name(timeline));
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && timeline == 1 => return Ok(Vec::new()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PgError::TimelineHistory {
                path,
                detail: format!("the file does not exist, so the data directory has no record of how timeline {timeline} began"),
            })
        }
        Err(e) => return Err(PgError::io("read", path, e)),
    };
    parse_timeline_history(&text).map_err(|detail| PgError::TimelineHistory { path, detail })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_controldata` of a running PostgreSQL 15 primary (wal_log_hints on, no checksums).
    const RUNNING_PRIMARY: &str = "pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7710781439581875478
Database cluster state:               in production
pg_control last modified:             Sun Nov 22 00:10:06 2026
Latest checkpoint location:           0/1500718
Latest checkpoint's REDO location:    0/1500718
Latest checkpoint's REDO WAL file:    000000010000000000000001
Latest checkpoint's TimeLineID:       1
Latest checkpoint's PrevTimeLineID:   1
Latest checkpoint's full_page_writes: on
Latest checkpoint's NextXID:          0:724
Latest checkpoint's NextOID:          13572
Latest checkpoint's NextMultiXactId:  1
Latest checkpoint's NextMultiOffset:  0
Latest checkpoint's oldestXID:        716
Latest checkpoint's oldestXID's DB:   1
Latest checkpoint's oldestActiveXID:  0
Latest checkpoint's oldestMultiXid:   1
Latest checkpoint's oldestMulti's DB: 1
Latest checkpoint's oldestCommitTsXid:0
Latest checkpoint's newestCommitTsXid:0
Time of latest checkpoint:            Sun Nov 22 00:10:06 2026
Fake LSN counter for unlogged rels:   0/3E8
Minimum recovery ending location:     0/0
Min recovery ending loc's timeline:   0
Backup start location:                0/0
Backup end location:                  0/0
End-of-backup record required:        no
wal_level setting:                    replica
wal_log_hints setting:                on
max_connections setting:              100
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           0
max_locks_per_xact setting:           64
track_commit_timestamp setting:       off
Maximum data alignment:               8
Database block size:                  8192
Blocks per segment of large relation: 131072
WAL block size:                       8192
Bytes per WAL segment:                16777216
Maximum length of identifiers:        64
Maximum columns in an index:          32
Maximum size of a TOAST chunk:        1996
Size of a large-object chunk:         2048
Date/time type storage:               64-bit integers
Float8 argument passing:              by value
Data page checksum version:           0
Mock authentication nonce:            f6e4e1e9251c1a582ebbc983665852700794ca696f13e2cb1efc9fa9b9778377
";

    /// `pg_controldata` of a PostgreSQL 15 standby after `pg_ctl stop -m fast`.
    const STOPPED_STANDBY: &str = "pg_control version number:            1300
Catalog version number:               202209061
Database system identifier:           7710781473852669338
Database cluster state:               shut down in recovery
pg_control last modified:             Sun Nov 22 00:10:15 2026
Latest checkpoint location:           0/2000060
Latest checkpoint's REDO location:    0/2000028
Latest checkpoint's REDO WAL file:    000000010000000000000002
Latest checkpoint's TimeLineID:       1
Latest checkpoint's PrevTimeLineID:   1
Latest checkpoint's full_page_writes: on
Latest checkpoint's NextXID:          0:724
Latest checkpoint's NextOID:          13572
Latest checkpoint's NextMultiXactId:  1
Latest checkpoint's NextMultiOffset:  0
Latest checkpoint's oldestXID:        716
Latest checkpoint's oldestXID's DB:   1
Latest checkpoint's oldestActiveXID:  724
Latest checkpoint's oldestMultiXid:   1
Latest checkpoint's oldestMulti's DB: 1
Latest checkpoint's oldestCommitTsXid:0
Latest checkpoint's newestCommitTsXid:0
Time of latest checkpoint:            Sun Nov 22 00:10:14 2026
Fake LSN counter for unlogged rels:   0/3E8
Minimum recovery ending location:     0/3018058
Min recovery ending loc's timeline:   1
Backup start location:                0/0
Backup end location:                  0/0
End-of-backup record required:        no
wal_level setting:                    replica
wal_log_hints setting:                on
max_connections setting:              100
max_worker_processes setting:         8
max_wal_senders setting:              10
max_prepared_xacts setting:           0
max_locks_per_xact setting:           64
track_commit_timestamp setting:       off
Maximum data alignment:               8
Database block size:                  8192
Blocks per segment of large relation: 131072
WAL block size:                       8192
Bytes per WAL segment:                16777216
Maximum length of identifiers:        64
Maximum columns in an index:          32
Maximum size of a TOAST chunk:        1996
Size of a large-object chunk:         2048
Date/time type storage:               64-bit integers
Float8 argument passing:              by value
Data page checksum version:           0
Mock authentication nonce:            db228f748dce1ee9c549760956ab6e3f0f1f7e094c27df0892e63274d3813664
";

    #[test]
    fn parses_a_running_primary() {
        let control = parse_control_data(RUNNING_PRIMARY).unwrap();
        assert_eq!(
            control,
            ControlData {
                system_identifier: "7710781439581875478".into(),
                cluster_state: ClusterState::InProduction,
                timeline: 1,
                checkpoint_lsn: 0x1500718,
                min_recovery_end_lsn: 0,
                min_recovery_end_timeline: 0,
                data_checksums: false,
                wal_log_hints: true,
            }
        );
        assert!(control.last_ran_as_primary());
        assert!(control.can_rewind());
    }

    #[test]
    fn parses_a_stopped_standby() {
        let control = parse_control_data(STOPPED_STANDBY).unwrap();
        assert_eq!(control.cluster_state, ClusterState::ShutDownInRecovery);
        assert_eq!(control.timeline, 1);
        assert_eq!(control.checkpoint_lsn, 0x2000060);
        assert_eq!(control.min_recovery_end_lsn, 0x3018058);
        assert_eq!(control.min_recovery_end_timeline, 1);
        assert!(!control.data_checksums && control.wal_log_hints);
        assert!(!control.last_ran_as_primary());
        assert!(control.can_rewind());
    }

    #[test]
    fn tells_primary_states_from_standby_states() {
        let with_state = |state: &str| {
            let text = RUNNING_PRIMARY.replace("in production", state);
            parse_control_data(&text).unwrap()
        };
        for (text, state, primary) in [
            ("in production", ClusterState::InProduction, true),
            ("shut down", ClusterState::ShutDown, true),
            ("shutting down", ClusterState::ShuttingDown, true),
            ("in crash recovery", ClusterState::InCrashRecovery, true),
            ("shut down in recovery", ClusterState::ShutDownInRecovery, false),
            ("in archive recovery", ClusterState::InArchiveRecovery, false),
            ("starting up", ClusterState::Other("starting up".into()), false),
        ] {
            let control = with_state(text);
            assert_eq!(control.cluster_state, state, "{text}");
            assert_eq!(control.cluster_state.to_string(), text);
            assert_eq!(control.last_ran_as_primary(), primary, "{text}");
        }
    }

    #[test]
    fn needs_checksums_or_hints_to_rewind() {
        let no_hints = RUNNING_PRIMARY.replace(
            "wal_log_hints setting:                on",
            "wal_log_hints setting:                off",
        );
        let control = parse_control_data(&no_hints).unwrap();
        assert!(!control.data_checksums && !control.wal_log_hints);
        assert!(!control.can_rewind());
        // initdb --data-checksums writes checksum version 1.
        let checksums = no_hints.replace(
            "Data page checksum version:           0",
            "Data page checksum version:           1",
        );
        let control = parse_control_data(&checksums).unwrap();
        assert!(control.data_checksums && !control.wal_log_hints);
        assert!(control.can_rewind());
    }

    #[test]
    fn names_a_missing_or_unreadable_field() {
        let without = RUNNING_PRIMARY.replace("Minimum recovery ending location", "Something else");
        assert_eq!(
            parse_control_data(&without).unwrap_err(),
            "no \"Minimum recovery ending location\" in its output"
        );
        let bad = RUNNING_PRIMARY.replace("0/1500718\nLatest checkpoint's REDO location", "soon\nx");
        assert_eq!(
            parse_control_data(&bad).unwrap_err(),
            "cannot read \"Latest checkpoint location\" from \"soon\""
        );
        let bad = RUNNING_PRIMARY.replace(
            "wal_log_hints setting:                on",
            "wal_log_hints setting:                maybe",
        );
        assert!(parse_control_data(&bad).unwrap_err().contains("wal_log_hints"));
        assert!(parse_control_data("").is_err());
    }

    #[test]
    fn parses_timeline_history_files() {
        // The lines of a 00000003.history (after two promotions), plus what PostgreSQL skips.
        let text = "1\t0/3018058\tno recovery target specified\n\
                    \n\
                    # a comment\n\
                    2\t0/50000A0\tat restore point \"before upgrade\"\n";
        assert_eq!(
            parse_timeline_history(text).unwrap(),
            vec![
                TimelineSwitch {
                    parent_timeline: 1,
                    switch_lsn: 0x3018058,
                    reason: "no recovery target specified".into(),
                },
                TimelineSwitch {
                    parent_timeline: 2,
                    switch_lsn: 0x50000A0,
                    reason: "at restore point \"before upgrade\"".into(),
                },
            ]
        );
        assert_eq!(parse_timeline_history("").unwrap(), vec![]);
        assert_eq!(
            parse_timeline_history("7\t1/0\n").unwrap()[0],
            TimelineSwitch {
                parent_timeline: 7,
                switch_lsn: 1 << 32,
                reason: String::new(),
            }
        );
    }

    #[test]
    fn names_the_wrong_history_line() {
        let err = parse_timeline_history("1\t0/3018058\tok\nx\t0/1\tbad\n").unwrap_err();
        assert!(err.starts_with("line 2: no timeline number"), "{err}");
        let err = parse_timeline_history("1 0/3018058 spaces\n").unwrap_err();
        assert!(err.starts_with("line 1: no timeline number"), "{err}");
        let err = parse_timeline_history("1\tnowhere\tbad\n").unwrap_err();
        assert!(err.starts_with("line 1: no switch point"), "{err}");
    }

    #[test]
    fn history_files_are_named_in_hex() {
        assert_eq!(history_file_name(2), "00000002.history");
        assert_eq!(history_file_name(26), "0000001A.history");
    }

    #[test]
    fn reads_history_files_from_pg_wal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pg_wal")).unwrap();
        assert_eq!(read_timeline_history(dir.path(), 1).unwrap(), vec![]);
        let err = read_timeline_history(dir.path(), 2).unwrap_err();
        assert!(matches!(err, PgError::TimelineHistory { .. }), "{err:?}");
        assert!(err.to_string().contains("00000002.history"), "{err}");
        std::fs::write(
            dir.path().join("pg_wal").join("00000002.history"),
            "1\t0/3018058\tno recovery target specified\n",
        )
        .unwrap();
        let history = read_timeline_history(dir.path(), 2).unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].parent_timeline, 1);
    }
}
