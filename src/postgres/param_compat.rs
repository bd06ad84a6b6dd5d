//! PostgreSQL parameters across major versions.
//!
//! A configuration written for one PostgreSQL version must keep working on another, as it does
//! with Patroni: `wal_keep_segments: 100` is valid on every version because Patroni writes it as
//! `wal_keep_size = 1600MB` on 13 and later. This module does the same translation, and leaves
//! out what the running binary does not know, with a warning naming each parameter, instead of
//! writing a `postgresql.conf` PostgreSQL refuses to start with.
//!
//! Pure: [`translate`] takes the server version and the parameters and returns the parameters
//! to write plus one [`CompatNote`] per change; [`KnownParameters`] is what
//! `postgres --describe-config` says the binary knows. Versions are `server_version_num`
//! numbers (150018 for 15.18, 90624 for 9.6.24).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The oldest version the agent manages: it writes `standby.signal` and the recovery settings
/// into `postgresql.conf`, which PostgreSQL reads from 12 on.
pub const MIN_SUPPORTED: u32 = 120000;

/// Patroni assumes the default WAL segment size when converting between segments and sizes:
/// only `initdb --wal-segsize` changes it, and the user can always set the right parameter.
const WAL_SEGMENT_MB: u64 = 16;

/// `wal_keep_size` (13+) / `wal_keep_segments` (before 13) when neither is given: 128MB, the
/// amount pgquorum (like Patroni) keeps by default so a replica that lags a little can catch up.
const DEFAULT_WAL_KEEP_MB: u64 = 128;

/// A PostgreSQL server version as `server_version_num` (major × 10000 + minor from 10 on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgVersion(pub u32);

impl PgVersion {
    /// The major version as PostgreSQL names it: `15`, or `9.6` before 10.
    pub fn major(self) -> String {
        major_name(self.0)
    }

    /// The version from the output of `postgres --version`, e.g.
    /// `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`, `postgres (PostgreSQL) 17devel`
    /// or `postgres (PostgreSQL) 9.6.24`.
    pub fn from_version_output(text: &str) -> Option<PgVersion> {
        let rest = text.split_once("(PostgreSQL)")?.1.trim_start();
        let token = rest.split_whitespace().next()?;
        let numbers: Vec<u32> = token
            .split('.')
            .map_while(|part| {
                let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        match numbers.as_slice() {
            [] => None,
            [major, ..] if *major >= 10 => {
                Some(PgVersion(major * 10000 + numbers.get(1).copied().unwrap_or(0)))
            }
            [major, minor, ..] => Some(PgVersion(
                major * 10000 + minor * 100 + numbers.get(2).copied().unwrap_or(0),
            )),
            [_] => None,
        }
    }
}

impl fmt::Display for PgVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 100000 {
            write!(f, "{}.{}", self.0 / 10000, self.0 % 10000)
        } else {
            write!(f, "{}.{}.{}", self.0 / 10000, self.0 / 100 % 100, self.0 % 100)
        }
    }
}

fn major_name(version_num: u32) -> String {
    if version_num >= 100000 {
        (version_num / 10000).to_string()
    } else {
        format!("{}.{}", version_num / 10000, version_num / 100 % 100)
    }
}

/// A parameter renamed in a major version: `old` before `since`, `new` from it on. Translated
/// in both directions, so a configuration using either name works on every version.
struct Rename {
    old: &'static str,
    new: &'static str,
    since: u32,
}

const RENAMES: &[Rename] = &[
    // The recovery.conf name; a postgresql.conf parameter since 12 (Patroni renames it too).
    Rename {
        old: "trigger_file",
        new: "promote_trigger_file",
        since: 120000,
    },
    Rename {
        old: "force_parallel_mode",
        new: "debug_parallel_query",
        since: 160000,
    },
];

/// A parameter PostgreSQL no longer has from `since` on, and what to do instead.
struct Removed {
    name: &'static str,
    since: u32,
    instead: &'static str,
}

const REMOVED: &[Removed] = &[
    Removed {
        name: "checkpoint_segments",
        since: 90500,
        instead: "set max_wal_size",
    },
    Removed {
        name: "pause_at_recovery_target",
        since: 90500,
        instead: "set recovery_target_action",
    },
    Removed {
        name: "standby_mode",
        since: 120000,
        instead: "the agent creates standby.signal on a standby",
    },
    Removed {
        name: "operator_precedence_warning",
        since: 140000,
        instead: "nothing replaces it",
    },
    Removed {
        name: "vacuum_cleanup_index_scale_factor",
        since: 140000,
        instead: "nothing replaces it",
    },
    Removed {
        name: "stats_temp_directory",
        since: 150000,
        instead: "statistics live in shared memory",
    },
    Removed {
        name: "vacuum_defer_cleanup_age",
        since: 160000,
        instead: "use hot_standby_feedback or replication slots",
    },
    Removed {
        name: "trigger_file",
        since: 160000,
        instead: "promote through the agent (switchover or failover)",
    },
    Removed {
        name: "promote_trigger_file",
        since: 160000,
        instead: "promote through the agent (switchover or failover)",
    },
    Removed {
        name: "old_snapshot_threshold",
        since: 170000,
        instead: "nothing replaces it",
    },
    Removed {
        name: "trace_recovery_messages",
        since: 170000,
        instead: "nothing replaces it",
    },
    Removed {
        name: "db_user_namespace",
        since: 170000,
        instead: "nothing replaces it",
    },
];

/// Developer options and the like that PostgreSQL accepts in `postgresql.conf` but leaves out of
/// `postgres --describe-config` (they are flagged "not in sample"), with the versions that have
/// them (`from` inclusive, `until` exclusive).
const HIDDEN_PARAMETERS: &[(&str, u32, Option<u32>)] = &[
    ("application_name", 0, None),
    ("allow_system_table_mods", 0, None),
    ("ignore_system_indexes", 0, None),
    ("ignore_checksum_failure", 0, None),
    ("zero_damaged_pages", 0, None),
    ("post_auth_delay", 0, None),
    ("pre_auth_delay", 0, None),
    ("trace_notify", 0, None),
    ("trace_sort", 0, None),
    ("trace_recovery_messages", 0, Some(170000)),
    ("wal_consistency_checking", 100000, None),
    ("jit_debugging_support", 110000, None),
    ("jit_dump_bitcode", 110000, None),
    ("jit_expressions", 110000, None),
    ("jit_profiling_support", 110000, None),
    ("jit_tuple_deforming", 110000, None),
    ("backtrace_functions", 130000, None),
    ("ignore_invalid_pages", 130000, None),
    ("remove_temp_files_after_crash", 140000, None),
    ("debug_discard_caches", 140000, None),
    ("allow_in_place_tablespaces", 150000, None),
    ("force_parallel_mode", 0, Some(160000)),
    ("debug_parallel_query", 160000, None),
];

/// One change made to the parameters; `Display` is the warning the agent logs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CompatNote {
    /// Written under another name, with the value converted where the unit changed.
    Converted {
        from: String,
        value: String,
        to: String,
        written: String,
        version: String,
    },
    /// Not written because the parameter it translates to is set as well.
    Superseded { name: String, by: String },
    /// Not written: the version no longer has it.
    Removed {
        name: String,
        since: String,
        instead: &'static str,
    },
    /// Not written: the value cannot be converted.
    Unconvertible { name: String, value: String },
    /// Not written: the binary does not know the parameter.
    Unknown { name: String, version: String },
    /// Not written: the agent sets it itself (a standby's recovery settings).
    AgentOwned { name: String },
}

impl fmt::Display for CompatNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompatNote::Converted {
                from,
                value,
                to,
                written,
                version,
            } => write!(
                f,
                "parameter {from} = '{value}' is written as {to} = '{written}' for PostgreSQL {version}"
            ),
            CompatNote::Superseded { name, by } => {
                write!(f, "parameter {name} is not written: {by} is set and takes its place")
            }
            CompatNote::Removed {
                name,
                since,
                instead,
            } => write!(
                f,
                "parameter {name} is not written: PostgreSQL {since} and later do not have it ({instead})"
            ),
            CompatNote::Unconvertible { name, value } => {
                write!(f, "parameter {name} is not written: cannot convert its value '{value}'")
            }
            CompatNote::Unknown { name, version } => write!(
                f,
                "parameter {name} is not written: PostgreSQL {version} does not know it (postgres --describe-config)"
            ),
            CompatNote::AgentOwned { name } => write!(
                f,
                "parameter {name} is not written from postgresql parameters: the agent sets it for standbys"
            ),
        }
    }
}

/// What [`translate`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translated {
    pub parameters: BTreeMap<String, String>,
    pub notes: Vec<CompatNote>,
}

/// The parameters (lower-case names) as PostgreSQL `version` names them: renamed and removed
/// parameters, `wal_keep_segments` ↔ `wal_keep_size`, the `wal_level` aliases. Adds the
/// `wal_keep` default (128MB) under the version's name when neither name is set.
pub fn translate(version: PgVersion, parameters: BTreeMap<String, String>) -> Translated {
    let v = version.0;
    let mut params: BTreeMap<String, String> = parameters
        .into_iter()
        .map(|(k, val)| (k.to_ascii_lowercase(), val))
        .collect();
    let mut notes = Vec::new();

    for removed in REMOVED.iter().filter(|r| v >= r.since) {
        if params.remove(removed.name).is_some() {
            notes.push(CompatNote::Removed {
                name: removed.name.to_string(),
                since: major_name(removed.since),
                instead: removed.instead,
            });
        }
    }

    for rename in RENAMES {
        let (from, to) = if v >= rename.since {
            (rename.old, rename.new)
        } else {
            (rename.new, rename.old)
        };
        move_parameter(&mut params, &mut notes, version, from, to, |value| {
            Some(value.to_string())
        });
    }

    wal_keep(&mut params, &mut notes, version);

    // Both names mean `replica` since 9.6, which PostgreSQL still accepts as aliases; Patroni
    // writes the current name.
    if let Some(level) = params.get_mut("wal_level") {
        if level.eq_ignore_ascii_case("hot_standby") || level.eq_ignore_ascii_case("archive") {
            notes.push(CompatNote::Converted {
                from: "wal_level".into(),
                value: level.clone(),
                to: "wal_level".into(),
                written: "replica".into(),
                version: version.major(),
            });
            *level = "replica".into();
        }
    }

    Translated {
        parameters: params,
        notes,
    }
}

/// `wal_keep_segments` (before 13) and `wal_keep_size` (13 and later) with 16MB segments;
/// when both are set the version's own name wins.
fn wal_keep(params: &mut BTreeMap<String, String>, notes: &mut Vec<CompatNote>, version: PgVersion) {
    if version.0 >= 130000 {
        move_parameter(
            params,
            notes,
            version,
            "wal_keep_segments",
            "wal_keep_size",
            |value| {
                let segments: u64 = value.trim().parse().ok()?;
                Some(format!("{}MB", segments * WAL_SEGMENT_MB))
            },
        );
        params
            .entry("wal_keep_size".into())
            .or_insert_with(|| format!("{DEFAULT_WAL_KEEP_MB}MB"));
    } else {
        move_parameter(
            params,
            notes,
            version,
            "wal_keep_size",
            "wal_keep_segments",
            |value| {
                // Rounded up: at least as much WAL as asked for.
                let mb = size_in_mb(value)?;
                Some(mb.div_ceil(WAL_SEGMENT_MB).to_string())
            },
        );
        params
            .entry("wal_keep_segments".into())
            .or_insert_with(|| (DEFAULT_WAL_KEEP_MB / WAL_SEGMENT_MB).to_string());
    }
}

/// Moves `from` to `to` with its value converted, unless `to` is set already.
fn move_parameter(
    params: &mut BTreeMap<String, String>,
    notes: &mut Vec<CompatNote>,
    version: PgVersion,
    from: &str,
    to: &str,
    convert: impl Fn(&str) -> Option<String>,
) {
    let Some(value) = params.remove(from) else {
        return;
    };
    if params.contains_key(to) {
        notes.push(CompatNote::Superseded {
            name: from.to_string(),
            by: to.to_string(),
        });
        return;
    }
    match convert(&value) {
        Some(written) => {
            notes.push(CompatNote::Converted {
                from: from.to_string(),
                value,
                to: to.to_string(),
                written: written.clone(),
                version: version.major(),
            });
            params.insert(to.to_string(), written);
        }
        None => notes.push(CompatNote::Unconvertible {
            name: from.to_string(),
            value,
        }),
    }
}

/// A PostgreSQL size in megabytes: a number with an optional unit (`kB`, `MB`, `GB`, `TB`;
/// none means MB, the unit of `wal_keep_size`). Fractions of a megabyte round up.
fn size_in_mb(value: &str) -> Option<u64> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().ok()?;
    match unit.trim() {
        "" | "MB" => Some(number),
        "kB" => Some(number.div_ceil(1024)),
        "GB" => number.checked_mul(1024),
        "TB" => number.checked_mul(1024 * 1024),
        _ => None,
    }
}

/// The parameter names a PostgreSQL binary knows.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KnownParameters {
    names: BTreeSet<String>,
}

impl fmt::Debug for KnownParameters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KnownParameters({} names)", self.names.len())
    }
}

impl KnownParameters {
    /// From the output of `postgres --describe-config`: one parameter a line, its name first,
    /// tab-separated from its context, group, type, default, bounds and descriptions.
    pub fn from_describe_config(output: &str) -> KnownParameters {
        KnownParameters {
            names: output
                .lines()
                .filter_map(|line| line.split('\t').next())
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_ascii_lowercase)
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// PostgreSQL `version` accepts `name` in postgresql.conf. Names with a dot are extension
    /// (or custom) parameters: always accepted, their library may not be loaded yet.
    pub fn knows(&self, version: PgVersion, name: &str) -> bool {
        name.contains('.')
            || self.names.contains(name)
            || HIDDEN_PARAMETERS.iter().any(|(hidden, from, until)| {
                *hidden == name && version.0 >= *from && until.is_none_or(|u| version.0 < u)
            })
    }

    /// Removes the parameters `version` does not know, with a note for each.
    pub fn retain_known(
        &self,
        version: PgVersion,
        parameters: &mut BTreeMap<String, String>,
        notes: &mut Vec<CompatNote>,
    ) {
        parameters.retain(|name, _| {
            let known = self.knows(version, name);
            if !known {
                notes.push(CompatNote::Unknown {
                    name: name.clone(),
                    version: version.major(),
                });
            }
            known
        });
    }
}

/// What the agent learns once from its PostgreSQL binary: the version and the parameter names.
#[derive(Debug, Clone)]
pub struct PgBinary {
    pub version: PgVersion,
    pub known: KnownParameters,
}

impl PgBinary {
    /// The parameters to write for this binary: [`translate`]d, then those it does not know
    /// left out.
    pub fn adapt(&self, parameters: BTreeMap<String, String>) -> Translated {
        let mut translated = translate(self.version, parameters);
        self.known
            .retain_known(self.version, &mut translated.parameters, &mut translated.notes);
        translated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Parameters as written in a table row.
    type Pairs = &'static [(&'static str, &'static str)];

    fn v(major: u32) -> PgVersion {
        PgVersion(major * 10000)
    }

    /// A configuration written for old versions (Patroni-era names) and its translation per
    /// major version: (major, expected parameters, number of notes).
    #[test]
    fn an_old_configuration_per_major_version() {
        let input = params(&[
            ("wal_keep_segments", "100"),
            ("checkpoint_segments", "8"),
            ("standby_mode", "on"),
            ("trigger_file", "/tmp/promote"),
            ("restore_command", "cp /archive/%f %p"),
            ("archive_cleanup_command", "pg_archivecleanup /archive %r"),
            ("recovery_min_apply_delay", "5min"),
            ("recovery_target_action", "promote"),
            ("wal_level", "hot_standby"),
            ("force_parallel_mode", "off"),
            ("stats_temp_directory", "/run/pg_stat_tmp"),
            ("work_mem", "8MB"),
        ]);
        let kept = [
            ("restore_command", "cp /archive/%f %p"),
            ("archive_cleanup_command", "pg_archivecleanup /archive %r"),
            ("recovery_min_apply_delay", "5min"),
            ("recovery_target_action", "promote"),
            ("wal_level", "replica"),
            ("work_mem", "8MB"),
        ];
        let table: &[(u32, Pairs, usize)] = &[
            (
                12,
                &[
                    ("wal_keep_segments", "100"),
                    ("promote_trigger_file", "/tmp/promote"),
                    ("force_parallel_mode", "off"),
                    ("stats_temp_directory", "/run/pg_stat_tmp"),
                ],
                // checkpoint_segments, standby_mode, trigger_file, wal_level
                4,
            ),
            (
                13,
                &[
                    ("wal_keep_size", "1600MB"),
                    ("promote_trigger_file", "/tmp/promote"),
                    ("force_parallel_mode", "off"),
                    ("stats_temp_directory", "/run/pg_stat_tmp"),
                ],
                5,
            ),
            (
                14,
                &[
                    ("wal_keep_size", "1600MB"),
                    ("promote_trigger_file", "/tmp/promote"),
                    ("force_parallel_mode", "off"),
                    ("stats_temp_directory", "/run/pg_stat_tmp"),
                ],
                5,
            ),
            (
                15,
                &[
                    ("wal_keep_size", "1600MB"),
                    ("promote_trigger_file", "/tmp/promote"),
                    ("force_parallel_mode", "off"),
                ],
                6,
            ),
            (
                16,
                &[("wal_keep_size", "1600MB"), ("debug_parallel_query", "off")],
                7,
            ),
            (
                17,
                &[("wal_keep_size", "1600MB"), ("debug_parallel_query", "off")],
                7,
            ),
        ];
        for (major, specific, notes) in table {
            let out = translate(v(*major), input.clone());
            let mut expected = params(&kept);
            expected.extend(params(specific));
            assert_eq!(out.parameters, expected, "PostgreSQL {major}");
            assert_eq!(out.notes.len(), *notes, "PostgreSQL {major}: {:#?}", out.notes);
        }
    }

    #[test]
    fn the_warnings_name_what_happened() {
        let out = translate(
            v(16),
            params(&[
                ("wal_keep_segments", "100"),
                ("checkpoint_segments", "8"),
                ("trigger_file", "/t"),
            ]),
        );
        let text: Vec<String> = out.notes.iter().map(ToString::to_string).collect();
        assert!(text.contains(
            &"parameter wal_keep_segments = '100' is written as wal_keep_size = '1600MB' for PostgreSQL 16".to_string()
        ), "{text:?}");
        assert!(text.contains(
            &"parameter checkpoint_segments is not written: PostgreSQL 9.5 and later do not have it (set max_wal_size)"
                .to_string()
        ), "{text:?}");
        assert!(text
            .iter()
            .any(|t| t.starts_with("parameter trigger_file is not written: PostgreSQL 16")));
    }

    #[test]
    fn wal_keep_both_directions_and_defaults() {
        // (major, input, expected wal_keep parameter, notes)
        let table: &[(u32, Pairs, (&str, &str), usize)] = &[
            (13, &[], ("wal_keep_size", "128MB"), 0),
            (17, &[], ("wal_keep_size", "128MB"), 0),
            (12, &[], ("wal_keep_segments", "8"), 0),
            (15, &[("wal_keep_size", "1GB")], ("wal_keep_size", "1GB"), 0),
            (15, &[("wal_keep_segments", "8")], ("wal_keep_size", "128MB"), 1),
            // The version's own name wins; the other is left out with a warning.
            (
                15,
                &[("wal_keep_segments", "8"), ("wal_keep_size", "2GB")],
                ("wal_keep_size", "2GB"),
                1,
            ),
            (
                12,
                &[("wal_keep_segments", "8"), ("wal_keep_size", "2GB")],
                ("wal_keep_segments", "8"),
                1,
            ),
            (12, &[("wal_keep_size", "1GB")], ("wal_keep_segments", "64"), 1),
            (12, &[("wal_keep_size", "100")], ("wal_keep_segments", "7"), 1),
            (12, &[("wal_keep_size", "20000kB")], ("wal_keep_segments", "2"), 1),
        ];
        for (major, input, (name, value), notes) in table {
            let out = translate(v(*major), params(input));
            assert_eq!(
                out.parameters.get(*name).map(String::as_str),
                Some(*value),
                "{major} {input:?}"
            );
            let other = if *name == "wal_keep_size" {
                "wal_keep_segments"
            } else {
                "wal_keep_size"
            };
            assert!(!out.parameters.contains_key(other), "{major} {input:?}");
            assert_eq!(out.notes.len(), *notes, "{major} {input:?}: {:?}", out.notes);
        }
    }

    #[test]
    fn an_unconvertible_value_is_left_out() {
        let out = translate(v(15), params(&[("wal_keep_segments", "lots")]));
        assert_eq!(out.parameters["wal_keep_size"], "128MB", "the default applies");
        assert_eq!(
            out.notes,
            [CompatNote::Unconvertible {
                name: "wal_keep_segments".into(),
                value: "lots".into()
            }]
        );
        let out = translate(v(12), params(&[("wal_keep_size", "1PB")]));
        assert_eq!(out.parameters["wal_keep_segments"], "8");
        assert_eq!(out.notes.len(), 1);
    }

    #[test]
    fn the_new_name_goes_back_on_an_old_version() {
        let out = translate(v(15), params(&[("debug_parallel_query", "on")]));
        assert_eq!(out.parameters["force_parallel_mode"], "on");
        assert!(!out.parameters.contains_key("debug_parallel_query"));
    }

    #[test]
    fn translation_is_idempotent() {
        for major in 12..=17 {
            let once = translate(
                v(major),
                params(&[
                    ("wal_keep_segments", "10"),
                    ("trigger_file", "/t"),
                    ("wal_level", "archive"),
                ]),
            );
            let twice = translate(v(major), once.parameters.clone());
            assert_eq!(twice.parameters, once.parameters, "{major}");
            assert!(twice.notes.is_empty(), "{major}: {:?}", twice.notes);
        }
    }

    #[test]
    fn parses_version_output() {
        let table = [
            (
                "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n",
                Some(150018),
            ),
            ("postgres (PostgreSQL) 17.2\n", Some(170002)),
            ("postgres (PostgreSQL) 17devel\n", Some(170000)),
            ("postgres (PostgreSQL) 16rc1\n", Some(160000)),
            ("postgres (PostgreSQL) 9.6.24\n", Some(90624)),
            (
                "postgres (PostgreSQL) 12.22 (Ubuntu 12.22-1.pgdg22.04+1)",
                Some(120022),
            ),
            ("something else", None),
            ("postgres (PostgreSQL) ", None),
        ];
        for (text, expected) in table {
            assert_eq!(
                PgVersion::from_version_output(text),
                expected.map(PgVersion),
                "{text}"
            );
        }
        assert_eq!(PgVersion(150018).to_string(), "15.18");
        assert_eq!(PgVersion(150018).major(), "15");
        assert_eq!(PgVersion(90624).to_string(), "9.6.24");
        assert_eq!(PgVersion(90624).major(), "9.6");
    }

    #[test]
    fn unknown_parameters_are_left_out_except_extensions_and_hidden_ones() {
        let known = KnownParameters::from_describe_config(
            "work_mem\tuser\tResource Usage / Memory\tINTEGER\t4096\t64\t2147483647\tSets memory.\t\n\
             wal_keep_size\tsighup\tReplication\tINTEGER\t0\t0\t2147483647\tKeep WAL.\t\n",
        );
        assert_eq!(known.len(), 2);
        let binary = PgBinary {
            version: v(15),
            known,
        };
        let out = binary.adapt(params(&[
            ("work_mem", "8MB"),
            ("wal_keep_segments", "100"),
            ("no_such_parameter", "1"),
            ("pg_stat_statements.max", "10000"),
            ("zero_damaged_pages", "off"),
            ("debug_parallel_query", "on"),
        ]));
        assert_eq!(
            out.parameters,
            params(&[
                ("work_mem", "8MB"),
                ("wal_keep_size", "1600MB"),
                ("pg_stat_statements.max", "10000"),
                ("zero_damaged_pages", "off"),
                ("force_parallel_mode", "on"),
            ])
        );
        assert!(out.notes.contains(&CompatNote::Unknown {
            name: "no_such_parameter".into(),
            version: "15".into()
        }));
        assert!(!binary.known.knows(v(16), "force_parallel_mode"));
        assert!(binary.known.knows(v(16), "debug_parallel_query"));
    }
}
