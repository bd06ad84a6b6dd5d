//! The table of every configuration key: where it lives, what type it has, and whether
//! pgquorum honours it.
//!
//! This table is the single source of truth for the schema walk (`walk.rs`), the environment
//! overrides (`env.rs`) and `docs/configuration.md`. Keys are Patroni's, with Patroni's names,
//! types and units; pgquorum extensions are marked as such. Path syntax:
//! - `a.b` — key `b` inside map `a`;
//! - `a.*.b` — key `b` inside any entry of map `a` whose entry names are free (replication slots),
//!   or inside each of the explicitly listed entries of `a` (the three PostgreSQL users);
//! - `a[].b` — key `b` inside each element of list `a`.

use std::sync::OnceLock;

/// The type a key's value must have. Values are accepted as leniently as Patroni (PyYAML plus
/// its own parsing) accepts them — e.g. `"10"` for an integer, `on`/`yes` for a boolean — and
/// normalised to one representation before the typed structs are built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A map whose keys are listed in this table.
    Section,
    /// Like `Section`, but other keys are allowed too (user-defined tags).
    OpenSection,
    /// A list of maps whose keys are listed in this table under `path[]`.
    SectionList,
    /// Any scalar, kept as a string.
    Str,
    /// A file system path.
    Path,
    Bool,
    /// An integer within an inclusive range.
    Int {
        min: i64,
        max: i64,
    },
    /// A duration in seconds: an integer, or a string with a unit (`ms`, `s`, `min`, `h`, `d`).
    Seconds {
        min: i64,
    },
    /// A duration in seconds that may be fractional (`2.5`, `"500ms"`): the lease timings,
    /// which pgquorum runs far shorter than Patroni's whole seconds allow. At least `min_ms`.
    FracSeconds {
        min_ms: u64,
    },
    /// One of a fixed set of words (compared case-insensitively, stored as listed here).
    Enum(&'static [&'static str]),
    /// `host:port` other nodes connect to.
    ConnectAddr,
    /// `host:port` to bind; the host may be a wildcard.
    ListenAddr,
    /// PostgreSQL's `listen`: comma-separated hosts, then `:port`.
    ListenAddrList,
    /// A list of `host:port` (a YAML list, or one comma-separated string).
    ConnectAddrList,
    /// A list of strings.
    StrList,
    /// Command-line options as Patroni writes them for initdb / pg_basebackup: a list of
    /// `flag` strings and single-key `{option: value}` maps, or one map of options.
    OptionList,
    /// PostgreSQL settings: any name (lower-cased), string/number/boolean values.
    PgParams,
    /// Any names, scalar values kept as strings.
    StrMap,
    /// A free-form map (any nesting).
    AnyMap,
    /// Anything at all; used for whole Patroni sections pgquorum does not implement.
    Any,
    /// `synchronous_mode`: a boolean or the word `quorum`.
    SyncMode,
    /// `watchdog.mode`: off / automatic / required, with Patroni's synonyms.
    WatchdogMode,
    /// `log.format`: a string, or a list for JSON logs.
    LogFormat,
}

impl Kind {
    /// Whether the kind is a map walked key by key against this table.
    pub fn is_section(self) -> bool {
        matches!(self, Kind::Section | Kind::OpenSection)
    }
}

/// Whether pgquorum acts on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Parsed, typed and meaning what it means in Patroni.
    Implemented,
    /// A Patroni key pgquorum accepts (so Patroni files load) but does not act on yet; its use is
    /// reported in the start-up warning.
    NotImplemented,
    /// A pgquorum key that Patroni does not have.
    Extension,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub path: &'static str,
    pub kind: Kind,
    pub status: Status,
    /// Must be present whenever its parent map is (the root counts as always present).
    pub required: bool,
}

const fn key(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        status: Status::Implemented,
        required: false,
    }
}
const fn required(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        status: Status::Implemented,
        required: true,
    }
}
const fn not_implemented(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        status: Status::NotImplemented,
        required: false,
    }
}
const fn extension(path: &'static str, kind: Kind) -> Key {
    Key {
        path,
        kind,
        status: Status::Extension,
        required: false,
    }
}

const fn int(min: i64) -> Kind {
    Kind::Int { min, max: i64::MAX }
}
const PORT: Kind = Kind::Int { min: 1, max: 65535 };
const SECONDS: Kind = Kind::Seconds { min: 0 };
const LOG_LEVELS: &[&str] = &["DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL"];

/// Keys of the local configuration file. The dynamic keys under `bootstrap.dcs` are in
/// [`DYNAMIC_KEYS`].
pub const FILE_KEYS: &[Key] = &[
    // --- global ---
    required("scope", Kind::Str),
    required("name", Kind::Str),
    // One Raft group per scope replaces the DCS namespace, so there is nothing to prefix.
    not_implemented("namespace", Kind::Str),
    not_implemented("thread_pool_size", int(5)),
    // Python thread stack size (`512kB`): nothing to size in pgquorum.
    not_implemented("thread_stack_size", Kind::Str),
    // --- log ---
    key("log", Kind::Section),
    key("log.level", Kind::Enum(LOG_LEVELS)),
    key("log.type", Kind::Enum(&["plain", "json"])),
    not_implemented("log.format", Kind::LogFormat),
    not_implemented("log.dateformat", Kind::Str),
    not_implemented("log.traceback_level", Kind::Enum(&["DEBUG", "ERROR"])),
    not_implemented("log.static_fields", Kind::StrMap),
    not_implemented("log.max_queue_size", int(1)),
    key("log.dir", Kind::Path),
    key("log.file_num", int(1)),
    key("log.file_size", int(1)),
    not_implemented("log.mode", Kind::Str),
    not_implemented("log.loggers", Kind::StrMap),
    not_implemented("log.deduplicate_heartbeat_logs", Kind::Bool),
    // --- restapi ---
    key("restapi", Kind::Section),
    key("restapi.listen", Kind::ListenAddr),
    key("restapi.connect_address", Kind::ConnectAddr),
    key("restapi.authentication", Kind::Section),
    required("restapi.authentication.username", Kind::Str),
    required("restapi.authentication.password", Kind::Str),
    key("restapi.certfile", Kind::Path),
    key("restapi.keyfile", Kind::Path),
    // Acted on by refusing it: encrypted keys are not supported (docs/security.md).
    key("restapi.keyfile_password", Kind::Str),
    key("restapi.cafile", Kind::Path),
    not_implemented("restapi.ciphers", Kind::Str),
    key(
        "restapi.verify_client",
        Kind::Enum(&["none", "optional", "required"]),
    ),
    key("restapi.allowlist", Kind::StrList),
    key("restapi.allowlist_include_members", Kind::Bool),
    key("restapi.http_extra_headers", Kind::StrMap),
    key("restapi.https_extra_headers", Kind::StrMap),
    not_implemented("restapi.request_queue_size", Kind::Int { min: 0, max: 4096 }),
    not_implemented("restapi.server_tokens", Kind::Str),
    not_implemented("restapi.thread_pool_size", int(1)),
    // --- patronictl's section: pgquorumctl's TLS files for the agents' gRPC port ---
    key("ctl", Kind::Section),
    key("ctl.cacert", Kind::Path),
    key("ctl.certfile", Kind::Path),
    key("ctl.keyfile", Kind::Path),
    not_implemented("ctl.keyfile_password", Kind::Str),
    not_implemented("ctl.insecure", Kind::Bool),
    key("ctl.authentication", Kind::Section),
    required("ctl.authentication.username", Kind::Str),
    required("ctl.authentication.password", Kind::Str),
    // --- raft (Patroni's raft DCS; pgquorum's embedded Raft) ---
    required("raft", Kind::Section),
    required("raft.self_addr", Kind::ConnectAddr),
    key("raft.partner_addrs", Kind::ConnectAddrList),
    required("raft.data_dir", Kind::Path),
    not_implemented("raft.bind_addr", Kind::ListenAddr),
    key("raft.password", Kind::Str),
    extension("raft.certfile", Kind::Path),
    extension("raft.keyfile", Kind::Path),
    extension("raft.cafile", Kind::Path),
    // Who may do what on the admin service (src/grpc/access.rs).
    extension("raft.admin_names", Kind::StrList),
    extension("raft.read_names", Kind::StrList),
    extension("raft.agent_names", Kind::StrList),
    extension("raft.read_open", Kind::Bool),
    extension("raft.admin_listen", Kind::ListenAddr),
    // pysyncobj's timings (Patroni 4.1); pgquorum's Raft has its own, below.
    not_implemented("raft.min_timeout", Kind::FracSeconds { min_ms: 0 }),
    not_implemented("raft.max_timeout", Kind::FracSeconds { min_ms: 0 }),
    not_implemented("raft.connection_timeout", Kind::FracSeconds { min_ms: 0 }),
    not_implemented("raft.append_entries_period", Kind::FracSeconds { min_ms: 0 }),
    not_implemented("raft.connection_retry_time", Kind::FracSeconds { min_ms: 0 }),
    not_implemented("raft.leader_fallback_timeout", Kind::FracSeconds { min_ms: 0 }),
    extension("raft.heartbeat_interval_ms", int(1)),
    extension("raft.election_timeout_ms", int(1)),
    extension("raft.max_clock_skew_ms", int(0)),
    // --- other Patroni DCS back-ends: pgquorum is its own DCS ---
    not_implemented("etcd", Kind::Any),
    not_implemented("etcd3", Kind::Any),
    not_implemented("consul", Kind::Any),
    not_implemented("zookeeper", Kind::Any),
    not_implemented("exhibitor", Kind::Any),
    not_implemented("kubernetes", Kind::Any),
    not_implemented("citus", Kind::Any),
    // --- bootstrap ---
    key("bootstrap", Kind::Section),
    key("bootstrap.dcs", Kind::Section),
    not_implemented("bootstrap.method", Kind::Str),
    key("bootstrap.initdb", Kind::OptionList),
    key("bootstrap.post_bootstrap", Kind::Str),
    // Removed from Patroni 4 / deprecated long before; accepted so older files still load.
    not_implemented("bootstrap.users", Kind::AnyMap),
    not_implemented("bootstrap.pg_hba", Kind::StrList),
    // --- postgresql (local) ---
    key("postgresql", Kind::Section),
    key("postgresql.listen", Kind::ListenAddrList),
    key("postgresql.connect_address", Kind::ConnectAddr),
    not_implemented("postgresql.proxy_address", Kind::ConnectAddr),
    key("postgresql.data_dir", Kind::Path),
    not_implemented("postgresql.config_dir", Kind::Path),
    key("postgresql.bin_dir", Kind::Path),
    key("postgresql.pgpass", Kind::Path),
    not_implemented("postgresql.custom_conf", Kind::Path),
    key("postgresql.bin_name", Kind::Section),
    key("postgresql.bin_name.pg_ctl", Kind::Str),
    key("postgresql.bin_name.initdb", Kind::Str),
    key("postgresql.bin_name.pg_controldata", Kind::Str),
    key("postgresql.bin_name.pg_basebackup", Kind::Str),
    key("postgresql.bin_name.postgres", Kind::Str),
    key("postgresql.bin_name.pg_isready", Kind::Str),
    key("postgresql.bin_name.pg_rewind", Kind::Str),
    key("postgresql.authentication", Kind::Section),
    key("postgresql.authentication.superuser", Kind::Section),
    key("postgresql.authentication.replication", Kind::Section),
    key("postgresql.authentication.rewind", Kind::Section),
    key("postgresql.authentication.*.username", Kind::Str),
    key("postgresql.authentication.*.password", Kind::Str),
    key("postgresql.authentication.*.sslmode", Kind::Str),
    key("postgresql.authentication.*.sslkey", Kind::Path),
    not_implemented("postgresql.authentication.*.sslpassword", Kind::Str),
    key("postgresql.authentication.*.sslcert", Kind::Path),
    key("postgresql.authentication.*.sslrootcert", Kind::Path),
    key("postgresql.authentication.*.sslcrl", Kind::Path),
    key("postgresql.authentication.*.sslcrldir", Kind::Path),
    not_implemented("postgresql.authentication.*.sslnegotiation", Kind::Str),
    key("postgresql.authentication.*.gssencmode", Kind::Str),
    key("postgresql.authentication.*.channel_binding", Kind::Str),
    key("postgresql.parameters", Kind::PgParams),
    not_implemented("postgresql.recovery_conf", Kind::PgParams),
    key("postgresql.pg_hba", Kind::StrList),
    not_implemented("postgresql.pg_ident", Kind::StrList),
    key("postgresql.pg_ctl_timeout", SECONDS),
    key("postgresql.use_pg_rewind", Kind::Bool),
    key("postgresql.use_unix_socket", Kind::Bool),
    not_implemented("postgresql.use_unix_socket_repl", Kind::Bool),
    extension("postgresql.run_as", Kind::Str),
    key("postgresql.remove_data_directory_on_rewind_failure", Kind::Bool),
    key(
        "postgresql.remove_data_directory_on_diverged_timelines",
        Kind::Bool,
    ),
    key("postgresql.callbacks", Kind::Section),
    key("postgresql.callbacks.on_reload", Kind::Str),
    key("postgresql.callbacks.on_restart", Kind::Str),
    key("postgresql.callbacks.on_role_change", Kind::Str),
    key("postgresql.callbacks.on_start", Kind::Str),
    key("postgresql.callbacks.on_stop", Kind::Str),
    not_implemented("postgresql.create_replica_methods", Kind::StrList),
    key("postgresql.basebackup", Kind::OptionList),
    // Extra pg_rewind options (not the `rewind` credentials, which are under authentication).
    not_implemented("postgresql.rewind", Kind::OptionList),
    // Role-specific overrides (Patroni 4.1).
    not_implemented("postgresql.parameters_primary", Kind::PgParams),
    not_implemented("postgresql.parameters_replica", Kind::PgParams),
    not_implemented("postgresql.parameters_standby_leader", Kind::PgParams),
    not_implemented("postgresql.pg_hba_primary", Kind::StrList),
    not_implemented("postgresql.pg_hba_replica", Kind::StrList),
    not_implemented("postgresql.pg_hba_standby_leader", Kind::StrList),
    not_implemented("postgresql.pg_ident_primary", Kind::StrList),
    not_implemented("postgresql.pg_ident_replica", Kind::StrList),
    not_implemented("postgresql.pg_ident_standby_leader", Kind::StrList),
    not_implemented("postgresql.pre_promote", Kind::Str),
    not_implemented("postgresql.before_stop", Kind::Str),
    // --- watchdog ---
    key("watchdog", Kind::Section),
    key("watchdog.mode", Kind::WatchdogMode),
    key("watchdog.driver", Kind::Enum(&["default", "testing"])),
    key("watchdog.device", Kind::Path),
    key("watchdog.safety_margin", int(-1)),
    // --- tags (any other tag name is allowed too) ---
    key("tags", Kind::OpenSection),
    key("tags.nofailover", Kind::Bool),
    key("tags.failover_priority", int(0)),
    not_implemented("tags.sync_priority", int(0)),
    key("tags.clonefrom", Kind::Bool),
    key("tags.noloadbalance", Kind::Bool),
    not_implemented("tags.replicatefrom", Kind::Str),
    key("tags.nosync", Kind::Bool),
    key("tags.nostream", Kind::Bool),
];

/// Keys of the dynamic (cluster-wide) configuration: `bootstrap.dcs` in the file, and the
/// replicated `config` key once the cluster exists. Paths are relative to that section.
pub const DYNAMIC_KEYS: &[Key] = &[
    key("ttl", Kind::FracSeconds { min_ms: 1000 }),
    key("loop_wait", Kind::FracSeconds { min_ms: 100 }),
    key("retry_timeout", Kind::FracSeconds { min_ms: 100 }),
    key("maximum_lag_on_failover", int(0)),
    key("maximum_lag_on_syncnode", int(-1)),
    key("max_timelines_history", int(0)),
    key("primary_start_timeout", int(0)),
    not_implemented("primary_stop_timeout", int(0)),
    not_implemented("primary_race_backoff", int(0)),
    key("synchronous_mode", Kind::SyncMode),
    key("synchronous_mode_strict", Kind::Bool),
    key("synchronous_node_count", int(1)),
    not_implemented("failsafe_mode", Kind::Bool),
    key("check_timeline", Kind::Bool),
    key("pause", Kind::Bool),
    not_implemented("member_slots_ttl", SECONDS),
    key("postgresql", Kind::Section),
    key("postgresql.use_pg_rewind", Kind::Bool),
    key("postgresql.use_slots", Kind::Bool),
    key("postgresql.parameters", Kind::PgParams),
    not_implemented("postgresql.recovery_conf", Kind::PgParams),
    key("postgresql.pg_hba", Kind::StrList),
    not_implemented("postgresql.pg_ident", Kind::StrList),
    key("postgresql.pg_ctl_timeout", SECONDS),
    key("postgresql.remove_data_directory_on_rewind_failure", Kind::Bool),
    key(
        "postgresql.remove_data_directory_on_diverged_timelines",
        Kind::Bool,
    ),
    not_implemented("standby_cluster", Kind::Section),
    key("standby_cluster.host", Kind::Str),
    key("standby_cluster.port", PORT),
    key("standby_cluster.primary_slot_name", Kind::Str),
    key("standby_cluster.create_replica_methods", Kind::StrList),
    key("standby_cluster.restore_command", Kind::Str),
    key("standby_cluster.archive_cleanup_command", Kind::Str),
    key("standby_cluster.recovery_min_apply_delay", Kind::Str),
    not_implemented("slots", Kind::Section),
    key("slots.*", Kind::Section),
    key("slots.*.type", Kind::Enum(&["physical", "logical"])),
    key("slots.*.database", Kind::Str),
    key("slots.*.plugin", Kind::Str),
    key("slots.*.cluster_type", Kind::Str),
    not_implemented("ignore_slots", Kind::SectionList),
    key("ignore_slots[].name", Kind::Str),
    key("ignore_slots[].type", Kind::Enum(&["physical", "logical"])),
    key("ignore_slots[].database", Kind::Str),
    key("ignore_slots[].plugin", Kind::Str),
];

/// Older spellings Patroni still reads, mapped to the name pgquorum stores. Relative to the
/// section they occur in (`""` is the root of the file, `"bootstrap.dcs"` the dynamic section).
pub const ALIASES: &[(&str, &str, &str)] = &[
    ("bootstrap.dcs", "master_start_timeout", "primary_start_timeout"),
    ("bootstrap.dcs", "master_stop_timeout", "primary_stop_timeout"),
    ("bootstrap.dcs", "permanent_slots", "slots"),
    ("bootstrap.dcs", "permanent_replication_slots", "slots"),
    ("bootstrap", "post_init", "post_bootstrap"),
];

/// Where the dynamic keys sit inside the configuration file.
pub const DCS_SECTION: &str = "bootstrap.dcs";

/// A key of the table with its full path in the document being checked.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub key: &'static Key,
    /// Whether the key belongs to the dynamic configuration.
    pub dynamic: bool,
}

impl Entry {
    /// The last segment of the path: the key's own name.
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }
}

/// The table arranged for one kind of document: a whole file, or a dynamic configuration alone.
#[derive(Debug)]
pub struct Schema {
    entries: Vec<Entry>,
    /// Whether this is the dynamic section alone (its keys at the root), for aliases.
    dynamic_only: bool,
}

impl Schema {
    /// The schema of a configuration file.
    pub fn file() -> &'static Schema {
        static FILE: OnceLock<Schema> = OnceLock::new();
        FILE.get_or_init(|| {
            let local = FILE_KEYS.iter().map(|key| Entry {
                path: key.path.to_string(),
                key,
                dynamic: false,
            });
            let dynamic = DYNAMIC_KEYS.iter().map(|key| Entry {
                path: format!("{DCS_SECTION}.{}", key.path),
                key,
                dynamic: true,
            });
            Schema {
                entries: local.chain(dynamic).collect(),
                dynamic_only: false,
            }
        })
    }

    /// The schema of a dynamic configuration on its own (the replicated `config` key).
    pub fn dynamic() -> &'static Schema {
        static DYNAMIC: OnceLock<Schema> = OnceLock::new();
        DYNAMIC.get_or_init(|| Schema {
            entries: DYNAMIC_KEYS
                .iter()
                .map(|key| Entry {
                    path: key.path.to_string(),
                    key,
                    dynamic: true,
                })
                .collect(),
            dynamic_only: true,
        })
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry for key `name` inside the section whose schema path is `section`. An exact
    /// entry wins over a wildcard one.
    pub fn lookup(&self, section: &str, name: &str) -> Option<&Entry> {
        let target = super::problem::child_path(section, name);
        self.entries.iter().find(|e| e.path == target).or_else(|| {
            self.entries
                .iter()
                .find(|e| e.path.contains('*') && matches(&e.path, &target))
        })
    }

    /// The entries directly inside the section whose schema path is `section`.
    pub fn children<'a>(&'a self, section: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| match e.path.rsplit_once('.') {
                Some((parent, _)) => matches(parent, section),
                None => section.is_empty(),
            })
    }

    /// Aliases that apply inside the section at `section` (a concrete path).
    pub fn aliases_in<'a>(
        &'a self,
        section: &'a str,
    ) -> impl Iterator<Item = (&'static str, &'static str)> + 'a {
        ALIASES.iter().filter_map(move |(where_, old, new)| {
            let applies = if self.dynamic_only {
                // `bootstrap.dcs.x` in a file is `x` in a stand-alone dynamic configuration.
                let relative = where_
                    .strip_prefix(DCS_SECTION)
                    .map(|rest| rest.trim_start_matches('.'));
                relative == Some(section)
            } else {
                *where_ == section
            };
            applies.then_some((*old, *new))
        })
    }
}

/// Whether a table path (which may contain `*` segments) matches a concrete schema path.
pub(crate) fn matches(pattern: &str, concrete: &str) -> bool {
    let mut pattern_segments = pattern.split('.');
    let mut concrete_segments = concrete.split('.');
    loop {
        match (pattern_segments.next(), concrete_segments.next()) {
            (None, None) => return true,
            (Some(p), Some(c)) if p == "*" || p == c => continue,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_prefers_exact_entries_and_expands_wildcards() {
        let schema = Schema::file();
        let entry = schema
            .lookup("postgresql.authentication.superuser", "username")
            .map(|e| e.path.as_str());
        assert_eq!(entry, Some("postgresql.authentication.*.username"));
        assert!(schema.lookup("postgresql.authentication", "superuser").is_some());
        assert!(schema.lookup("postgresql.authentication", "nobody").is_none());
        assert_eq!(
            schema
                .lookup("bootstrap.dcs.slots", "my_slot")
                .map(|e| e.path.as_str()),
            Some("bootstrap.dcs.slots.*")
        );
        assert!(schema.lookup("bootstrap.dcs.slots.*", "plugin").is_some());
    }

    #[test]
    fn no_duplicate_paths() {
        for schema in [Schema::file(), Schema::dynamic()] {
            let mut paths: Vec<&str> = schema.entries().iter().map(|e| e.path.as_str()).collect();
            paths.sort_unstable();
            let before = paths.len();
            paths.dedup();
            assert_eq!(before, paths.len());
        }
    }

    #[test]
    fn every_nested_key_has_a_parent_section() {
        for entry in Schema::file().entries() {
            if let Some((parent, _)) = entry.path.rsplit_once('.') {
                let parent = parent.trim_end_matches("[]");
                let found = Schema::file()
                    .entries()
                    .iter()
                    .any(|e| matches(&e.path, parent) || matches(parent, &e.path));
                assert!(found, "{} has no parent entry", entry.path);
            }
        }
    }
}
