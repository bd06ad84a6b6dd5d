//! Walks a parsed YAML document against the key table, collecting every problem, and produces a
//! normalised JSON copy from which the typed structs are built.
//!
//! Checking a generic value first (instead of letting serde reject the first bad field) is what
//! lets `Config::load` report all problems at once, each with its key path.

use serde_json::{Map, Value as Json};
use serde_yaml_ng::Value as Yaml;

use super::address::{check_host_port, check_listen_list, AddressUse};
use super::problem::{child_path, Problem};
use super::schema::{Entry, Kind, Schema, Status};
use super::suggest::closest;

/// What the walk found.
#[derive(Debug, Default)]
pub(crate) struct WalkOutput {
    /// The document with values normalised (booleans as booleans, durations in seconds,
    /// parameter names lower-cased …) and invalid values left out.
    pub normalized: Json,
    pub problems: Vec<Problem>,
    /// Paths of keys present in the document that pgquorum accepts but does not implement.
    pub not_implemented: Vec<String>,
}

/// A section name that is only valid because another key names it: custom replica creation
/// methods (`postgresql.<method>`) and custom bootstrap methods (`bootstrap.<method>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CustomSection {
    pub parent: String,
    pub name: String,
}

/// Walks `root` (the whole document) against `schema`.
pub(crate) fn walk(root: &Yaml, schema: &Schema, custom: &[CustomSection]) -> WalkOutput {
    let mut walker = Walker {
        schema,
        custom,
        problems: Vec::new(),
        not_implemented: Vec::new(),
    };
    let normalized = Json::Object(walker.section(root, "", "", false));
    WalkOutput {
        normalized,
        problems: walker.problems,
        not_implemented: walker.not_implemented,
    }
}

/// The custom method sections a configuration file declares.
pub(crate) fn custom_sections(root: &Yaml) -> Vec<CustomSection> {
    let mut found = Vec::new();
    let replica_method_lists = [
        lookup(root, &["postgresql", "create_replica_methods"]),
        lookup(
            root,
            &["bootstrap", "dcs", "standby_cluster", "create_replica_methods"],
        ),
    ];
    for list in replica_method_lists.into_iter().flatten() {
        for method in list.as_sequence().into_iter().flatten().filter_map(Yaml::as_str) {
            if method != "basebackup" {
                found.push(CustomSection {
                    parent: "postgresql".into(),
                    name: method.to_string(),
                });
            }
        }
    }
    if let Some(method) = lookup(root, &["bootstrap", "method"]).and_then(Yaml::as_str) {
        if method != "initdb" {
            found.push(CustomSection {
                parent: "bootstrap".into(),
                name: method.to_string(),
            });
        }
    }
    found
}

fn lookup<'a>(root: &'a Yaml, keys: &[&str]) -> Option<&'a Yaml> {
    keys.iter()
        .try_fold(root, |value, key| value.as_mapping()?.get(*key))
}

struct Walker<'a> {
    schema: &'a Schema,
    custom: &'a [CustomSection],
    problems: Vec<Problem>,
    not_implemented: Vec<String>,
}

impl Walker<'_> {
    fn problem(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// A map checked key by key. `schema_path` is the section's path in the table (with `*` and
    /// `[]`), `path` its concrete path in the document. `open` allows keys not in the table.
    fn section(&mut self, value: &Yaml, schema_path: &str, path: &str, open: bool) -> Map<String, Json> {
        let mut out = Map::new();
        let mapping = match untag(value) {
            Yaml::Mapping(mapping) => mapping,
            // `restapi:` with nothing under it is an empty section, as in Patroni.
            Yaml::Null => return self.check_required(schema_path, path, out, &[]),
            other => {
                self.problem(
                    path,
                    format!("expected a map of settings, found {}", describe(other)),
                );
                return out;
            }
        };
        let mut present: Vec<String> = Vec::new();
        for (raw_key, child) in mapping {
            let Some(given_name) = raw_key.as_str() else {
                self.problem(path, format!("key {} is not a string", short(raw_key)));
                continue;
            };
            let name = match self.schema.aliases_in(path).find(|(old, _)| *old == given_name) {
                Some((old, new)) if mapping.contains_key(new) => {
                    let message = format!("both \"{old}\" and \"{new}\" are set; keep only \"{new}\"");
                    self.problem(&child_path(path, old), message);
                    continue;
                }
                Some((_, new)) => new,
                None => given_name,
            };
            let key_path = child_path(path, given_name);
            if !matches!(untag(child), Yaml::Null) {
                present.push(name.to_string());
            }
            match self.schema.lookup(schema_path, name) {
                Some(entry) => {
                    let json = self.value(child, entry, &key_path);
                    // A key set to a value that changes nothing (`nosync: false`, an empty
                    // list) is not reported: pgquorum behaves as that value asks.
                    let neutral = json
                        .as_ref()
                        .is_none_or(|json| is_neutral(json) || is_what_pgquorum_does(entry, json));
                    if entry.key.status == Status::NotImplemented && !neutral {
                        self.not_implemented.push(key_path.clone());
                    }
                    if let Some(json) = json {
                        out.insert(name.to_string(), json);
                    }
                }
                None if open => match scalar_json(child) {
                    Some(json) => {
                        out.insert(name.to_string(), json);
                    }
                    None => self.problem(
                        &key_path,
                        format!("expected a string, number or boolean, found {}", describe(child)),
                    ),
                },
                None if self.is_custom_section(path, name) => {
                    if let Some(json) = self.any_map(child, &key_path) {
                        out.insert(name.to_string(), json);
                    }
                }
                None => {
                    let message = self.unknown_key_message(schema_path, name);
                    self.problem(&key_path, message);
                }
            }
        }
        self.check_required(schema_path, path, out, &present)
    }

    /// Reports required keys missing from a section; an absent required section is walked as
    /// empty so that its own required keys are reported individually.
    fn check_required(
        &mut self,
        schema_path: &str,
        path: &str,
        mut out: Map<String, Json>,
        present: &[String],
    ) -> Map<String, Json> {
        let schema = self.schema;
        for entry in schema.children(schema_path) {
            let name = entry.name();
            if !entry.key.required || name == "*" || present.iter().any(|p| p == name) {
                continue;
            }
            let key_path = child_path(path, name);
            if entry.key.kind.is_section() {
                let section = self.section(&Yaml::Null, &entry.path, &key_path, false);
                out.insert(name.to_string(), Json::Object(section));
            } else {
                self.problem(&key_path, "required key is missing");
            }
        }
        out
    }

    fn is_custom_section(&self, parent: &str, name: &str) -> bool {
        self.custom.iter().any(|c| c.parent == parent && c.name == name)
    }

    fn unknown_key_message(&self, schema_path: &str, name: &str) -> String {
        // The key exists, just somewhere else (e.g. `ttl` at the top level instead of in
        // `bootstrap.dcs`): pointing there beats a typo guess among the siblings.
        let elsewhere: Vec<&str> = self
            .schema
            .entries()
            .iter()
            .filter(|e| e.name() == name && !e.path.contains('*') && !e.path.contains("[]"))
            .map(|e| e.path.as_str())
            .collect();
        let siblings = self
            .schema
            .children(schema_path)
            .map(Entry::name)
            .filter(|n| *n != "*");
        match elsewhere.as_slice() {
            [] => match closest(name, siblings) {
                Some(suggestion) => format!("unknown key (did you mean \"{suggestion}\"?)"),
                None => "unknown key: neither Patroni nor pgquorum has a setting by this name".to_string(),
            },
            [only] => format!("unknown key here (did you mean \"{only}\"?)"),
            several => format!("unknown key here (it exists as {})", several.join(", ")),
        }
    }

    /// Checks one value against its entry; `None` when it is invalid (the problem is recorded)
    /// or null (an unset key, as in Patroni).
    fn value(&mut self, value: &Yaml, entry: &Entry, path: &str) -> Option<Json> {
        let value = untag(value);
        if matches!(value, Yaml::Null) && !entry.key.kind.is_section() {
            return None;
        }
        let checked = match entry.key.kind {
            Kind::Section => Ok(Json::Object(self.section(value, &entry.path, path, false))),
            Kind::OpenSection => Ok(Json::Object(self.section(value, &entry.path, path, true))),
            Kind::SectionList => return self.section_list(value, entry, path),
            Kind::Str | Kind::Path => string(value).map(Json::String),
            Kind::Bool => boolean(value).map(Json::Bool),
            Kind::Int { min, max } => integer(value).and_then(|n| in_range(n, min, max)).map(Json::from),
            Kind::Seconds { min } => seconds(value)
                .and_then(|n| in_range(n, min, i64::MAX))
                .map(Json::from),
            Kind::FracSeconds { min_ms } => frac_seconds(value).and_then(|secs| {
                if secs * 1000.0 + 1e-6 < min_ms as f64 {
                    Err(format!(
                        "{secs} s is too small (minimum {} s)",
                        min_ms as f64 / 1000.0
                    ))
                } else {
                    Ok(seconds_json(secs))
                }
            }),
            Kind::Enum(options) => one_of(value, options).map(|s| Json::String(s.to_string())),
            Kind::ConnectAddr => address(value, AddressUse::Connect).map(Json::String),
            Kind::ListenAddr => address(value, AddressUse::Listen).map(Json::String),
            Kind::ListenAddrList => string(value)
                .and_then(|s| {
                    check_listen_list(&s)
                        .map(|()| s.clone())
                        .map_err(|why| bad_address(&s, &why))
                })
                .map(Json::String),
            Kind::ConnectAddrList => return self.address_list(value, path),
            Kind::StrList => return self.string_list(value, path),
            Kind::OptionList => return self.option_list(value, path),
            Kind::PgParams => return self.pg_params(value, path),
            Kind::StrMap => return self.string_map(value, path),
            Kind::AnyMap => return self.any_map(value, path),
            Kind::Any => Ok(to_json(value)),
            Kind::SyncMode => sync_mode(value),
            Kind::WatchdogMode => watchdog_mode(value).map(|s| Json::String(s.to_string())),
            Kind::LogFormat => match value {
                Yaml::String(_) | Yaml::Sequence(_) => Ok(to_json(value)),
                other => Err(format!("expected a string or a list, found {}", describe(other))),
            },
        };
        checked.map_err(|message| self.problem(path, message)).ok()
    }

    fn section_list(&mut self, value: &Yaml, entry: &Entry, path: &str) -> Option<Json> {
        let Yaml::Sequence(items) = value else {
            self.problem(
                path,
                format!("expected a list of maps, found {}", describe(value)),
            );
            return None;
        };
        let item_schema_path = format!("{}[]", entry.path);
        let items = items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                Json::Object(self.section(item, &item_schema_path, &format!("{path}[{i}]"), false))
            })
            .collect();
        Some(Json::Array(items))
    }

    /// `host:port` list, as a YAML list or as one comma-separated string (as in Patroni).
    fn address_list(&mut self, value: &Yaml, path: &str) -> Option<Json> {
        let items: Vec<Yaml> = match value {
            Yaml::Sequence(items) => items.clone(),
            Yaml::String(joined) => joined
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Yaml::String(s.to_string()))
                .collect(),
            other => {
                self.problem(
                    path,
                    format!(
                        "expected a list of host:port addresses, found {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match address(untag(item), AddressUse::Connect) {
                Ok(address) => out.push(Json::String(address)),
                Err(message) => {
                    self.problem(&format!("{path}[{i}]"), message);
                    // Keep the slot so later rules report the other items at their own index.
                    out.push(to_json(item));
                }
            }
        }
        Some(Json::Array(out))
    }

    fn string_list(&mut self, value: &Yaml, path: &str) -> Option<Json> {
        let Yaml::Sequence(items) = value else {
            self.problem(
                path,
                format!("expected a list of strings, found {}", describe(value)),
            );
            return None;
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match string(untag(item)) {
                Ok(s) => out.push(Json::String(s)),
                Err(message) => self.problem(&format!("{path}[{i}]"), message),
            }
        }
        Some(Json::Array(out))
    }

    /// initdb / pg_basebackup options: `- flag`, `- option: value`, or one map of options.
    /// Normalised to the list form.
    fn option_list(&mut self, value: &Yaml, path: &str) -> Option<Json> {
        let mut out = Vec::new();
        match value {
            Yaml::Sequence(items) => {
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    match untag(item) {
                        Yaml::Mapping(m) if m.len() == 1 => {
                            if let Some(option) = self.option_pair(m.iter().next(), &item_path) {
                                out.push(option);
                            }
                        }
                        Yaml::Mapping(_) => {
                            self.problem(&item_path, "a map item must hold exactly one option")
                        }
                        other => match string(other) {
                            Ok(flag) => out.push(Json::String(flag)),
                            Err(message) => self.problem(&item_path, message),
                        },
                    }
                }
            }
            Yaml::Mapping(m) => {
                for pair in m.iter() {
                    if let Some(option) = self.option_pair(Some(pair), path) {
                        out.push(option);
                    }
                }
            }
            other => {
                self.problem(
                    path,
                    format!("expected a list of options, found {}", describe(other)),
                );
                return None;
            }
        }
        Some(Json::Array(out))
    }

    fn option_pair(&mut self, pair: Option<(&Yaml, &Yaml)>, path: &str) -> Option<Json> {
        let (name, value) = pair?;
        let Some(name) = name.as_str() else {
            self.problem(path, format!("option name {} is not a string", short(name)));
            return None;
        };
        match string(untag(value)) {
            Ok(value) => {
                let mut option = Map::new();
                option.insert(name.to_string(), Json::String(value));
                Some(Json::Object(option))
            }
            Err(message) => {
                self.problem(&child_path(path, name), message);
                None
            }
        }
    }

    /// PostgreSQL settings. Names are case-insensitive in PostgreSQL, so they are lower-cased
    /// here and two spellings of one name are a conflict.
    fn pg_params(&mut self, value: &Yaml, path: &str) -> Option<Json> {
        let mapping = self.mapping(value, path)?;
        let mut out = Map::new();
        for (raw_name, setting) in mapping {
            let Some(name) = raw_name.as_str() else {
                self.problem(
                    path,
                    format!("parameter name {} is not a string", short(raw_name)),
                );
                continue;
            };
            let lower = name.to_ascii_lowercase();
            let key_path = child_path(path, name);
            if out.contains_key(&lower) {
                self.problem(
                    &key_path,
                    format!("\"{lower}\" is set more than once (names are case-insensitive)"),
                );
                continue;
            }
            let Some(json) = scalar_json(setting) else {
                let found = describe(setting);
                self.problem(
                    &key_path,
                    format!("expected a string, number or boolean, found {found}"),
                );
                continue;
            };
            if let Err(message) = check_known_parameter(&lower, &json) {
                self.problem(&key_path, message);
                continue;
            }
            out.insert(lower, json);
        }
        Some(Json::Object(out))
    }

    fn string_map(&mut self, value: &Yaml, path: &str) -> Option<Json> {
        let mapping = self.mapping(value, path)?;
        let mut out = Map::new();
        for (name, item) in mapping {
            let name = short(name);
            match string(untag(item)) {
                Ok(s) => {
                    out.insert(name, Json::String(s));
                }
                Err(message) => self.problem(&child_path(path, &name), message),
            }
        }
        Some(Json::Object(out))
    }

    fn any_map(&mut self, value: &Yaml, path: &str) -> Option<Json> {
        self.mapping(value, path)?;
        Some(to_json(value))
    }

    fn mapping<'v>(&mut self, value: &'v Yaml, path: &str) -> Option<&'v serde_yaml_ng::Mapping> {
        match untag(value) {
            Yaml::Mapping(mapping) => Some(mapping),
            other => {
                self.problem(path, format!("expected a map, found {}", describe(other)));
                None
            }
        }
    }
}

/// Whether a value asks for nothing: `false`, an empty string, list or map.
fn is_neutral(value: &Json) -> bool {
    match value {
        Json::Null | Json::Bool(false) => true,
        Json::String(s) => s.is_empty(),
        Json::Array(items) => items.is_empty(),
        Json::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// Values of not-implemented keys that name what pgquorum does anyway: the `initdb` bootstrap,
/// `basebackup` as the only replica creation method, libpq's `sslmode=prefer`.
/// For a dynamic key, also its default: the stored `config` key always holds every setting.
fn is_what_pgquorum_does(entry: &Entry, value: &Json) -> bool {
    if entry.dynamic {
        static DEFAULTS: std::sync::OnceLock<Json> = std::sync::OnceLock::new();
        let defaults = DEFAULTS.get_or_init(|| super::dynamic::DynamicConfig::default().to_json());
        let relative = entry
            .path
            .strip_prefix(super::schema::DCS_SECTION)
            .map_or(entry.path.as_str(), |rest| rest.trim_start_matches('.'));
        let default = relative.split('.').try_fold(defaults, |node, key| node.get(key));
        if default == Some(value) {
            return true;
        }
    }
    match entry.path.as_str() {
        "bootstrap.method" => value == "initdb",
        "postgresql.create_replica_methods" => *value == Json::from(vec!["basebackup"]),
        "postgresql.authentication.*.sslmode" => value == "prefer",
        _ => false,
    }
}

/// Ranges Patroni itself enforces for a few PostgreSQL settings it depends on.
fn check_known_parameter(name: &str, value: &Json) -> Result<(), String> {
    let (min, max) = match name {
        "max_connections" => (1, 262_143),
        "max_locks_per_transaction" => (10, 2_147_483_647),
        "max_prepared_transactions"
        | "max_replication_slots"
        | "max_wal_senders"
        | "max_worker_processes" => (0, 262_143),
        _ => return Ok(()),
    };
    let number = match value {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match number {
        Some(n) if (min..=max).contains(&n) => Ok(()),
        Some(n) => Err(format!("{n} is out of range ({min} to {max})")),
        None => Err(format!("expected an integer, found {value}")),
    }
}

fn untag(value: &Yaml) -> &Yaml {
    match value {
        Yaml::Tagged(tagged) => untag(&tagged.value),
        other => other,
    }
}

/// A short description of a value's type for messages.
pub(crate) fn describe(value: &Yaml) -> &'static str {
    match untag(value) {
        Yaml::Null => "nothing (null)",
        Yaml::Bool(_) => "a boolean",
        Yaml::Number(_) => "a number",
        Yaml::String(_) => "a string",
        Yaml::Sequence(_) => "a list",
        Yaml::Mapping(_) => "a map",
        Yaml::Tagged(_) => "a tagged value",
    }
}

/// A scalar written back as YAML would show it, for messages and map keys.
fn short(value: &Yaml) -> String {
    match untag(value) {
        Yaml::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

/// Converts any YAML value to JSON (tags dropped, non-string keys stringified).
pub(crate) fn to_json(value: &Yaml) -> Json {
    match untag(value) {
        Yaml::Null => Json::Null,
        Yaml::Bool(b) => Json::Bool(*b),
        Yaml::Number(n) => number_json(n),
        Yaml::String(s) => Json::String(s.clone()),
        Yaml::Sequence(items) => Json::Array(items.iter().map(to_json).collect()),
        Yaml::Mapping(m) => Json::Object(m.iter().map(|(k, v)| (short(k), to_json(v))).collect()),
        Yaml::Tagged(_) => Json::Null,
    }
}

fn number_json(n: &serde_yaml_ng::Number) -> Json {
    if let Some(i) = n.as_i64() {
        Json::from(i)
    } else if let Some(u) = n.as_u64() {
        Json::from(u)
    } else {
        n.as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Json::String(n.to_string()), Json::Number)
    }
}

fn scalar_json(value: &Yaml) -> Option<Json> {
    match untag(value) {
        Yaml::Bool(b) => Some(Json::Bool(*b)),
        Yaml::Number(n) => Some(number_json(n)),
        Yaml::String(s) => Some(Json::String(s.clone())),
        _ => None,
    }
}

/// Any scalar as a string (Patroni takes `password: 1234` as the string "1234").
fn string(value: &Yaml) -> Result<String, String> {
    match value {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string, found {}", describe(other))),
    }
}

/// A boolean, with the spellings Patroni's `parse_bool` accepts.
fn boolean(value: &Yaml) -> Result<bool, String> {
    match value {
        Yaml::Bool(b) => Ok(*b),
        Yaml::String(s) => {
            parse_bool(s).ok_or_else(|| format!("\"{s}\" is not a boolean (use true or false)"))
        }
        Yaml::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Yaml::Number(n) if n.as_i64() == Some(0) => Ok(false),
        other => Err(format!("expected a boolean, found {}", describe(other))),
    }
}

pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "y" | "1" => Some(true),
        "false" | "off" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

fn integer(value: &Yaml) -> Result<i64, String> {
    match value {
        Yaml::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
        Yaml::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("\"{s}\" is not an integer")),
        other => Err(format!("expected an integer, found {}", describe(other))),
    }
}

fn in_range(n: i64, min: i64, max: i64) -> Result<i64, String> {
    match (n < min, n > max) {
        (true, _) if max == i64::MAX => Err(format!("{n} is too small (minimum {min})")),
        (false, false) => Ok(n),
        _ => Err(format!("{n} is out of range ({min} to {max})")),
    }
}

/// Seconds, from an integer or a string with a unit, like Patroni's `parse_int(value, 's')`.
fn seconds(value: &Yaml) -> Result<i64, String> {
    match value {
        Yaml::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("{n} is not a whole number of seconds")),
        Yaml::String(s) => parse_duration_seconds(s).ok_or_else(|| {
            format!("\"{s}\" is not a duration (use whole seconds, or a number with unit ms, s, min, h or d)")
        }),
        other => Err(format!(
            "expected a duration in seconds, found {}",
            describe(other)
        )),
    }
}

/// Seconds that may be fractional: a number, or a string with a unit (`500ms`, `2.5s`).
fn frac_seconds(value: &Yaml) -> Result<f64, String> {
    let secs = match value {
        Yaml::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("{n} is not a number of seconds"))?,
        Yaml::String(s) => {
            let t = s.trim();
            let (number, scale) = if let Some(ms) = t.strip_suffix("ms") {
                (ms, 0.001)
            } else if let Some(sec) = t.strip_suffix('s') {
                (sec, 1.0)
            } else {
                (t, 1.0)
            };
            number.trim().parse::<f64>().map(|n| n * scale).map_err(|_| {
                format!("\"{s}\" is not a duration (use seconds, e.g. 2.5, or a number with unit ms or s)")
            })?
        }
        other => {
            return Err(format!(
                "expected a duration in seconds, found {}",
                describe(other)
            ))
        }
    };
    if !secs.is_finite() {
        return Err(format!("{secs} is not a valid number of seconds"));
    }
    // Bounded so the timing rules' millisecond arithmetic cannot overflow (found by
    // tests/fuzz_inputs.rs: `loop_wait: 9223372036854775` panicked the config check).
    if secs.abs() > MAX_DURATION_SECS {
        return Err(format!("{secs} s is too large (at most {MAX_DURATION_SECS} s)"));
    }
    Ok(secs)
}

/// The longest duration a fractional-seconds setting accepts: about 115 days.
const MAX_DURATION_SECS: f64 = 1e7;

/// Whole seconds stay integers in JSON (what Patroni tools expect); fractions stay fractions.
fn seconds_json(secs: f64) -> Json {
    if secs.fract() == 0.0 && secs < 1e15 {
        Json::from(secs as i64)
    } else {
        Json::from(secs)
    }
}

pub(crate) fn parse_duration_seconds(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        // Rounded to the nearest second, as Patroni rounds when converting to the base unit.
        "ms" => (number + 500).div_euclid(1000),
        "min" => number.checked_mul(60)?,
        "h" => number.checked_mul(3600)?,
        "d" => number.checked_mul(86_400)?,
        _ => return None,
    };
    Some(seconds)
}

fn one_of(value: &Yaml, options: &'static [&'static str]) -> Result<&'static str, String> {
    let given = string(value)?;
    options
        .iter()
        .find(|option| option.eq_ignore_ascii_case(given.trim()))
        .copied()
        .ok_or_else(|| format!("\"{given}\" is not one of: {}", options.join(", ")))
}

fn address(value: &Yaml, usage: AddressUse) -> Result<String, String> {
    let text = string(value)?;
    let trimmed = text.trim().to_string();
    check_host_port(&trimmed, usage).map_err(|why| bad_address(&text, &why))?;
    Ok(trimmed)
}

fn bad_address(text: &str, why: &str) -> String {
    format!("\"{text}\" is not a valid host:port address: {why}")
}

fn sync_mode(value: &Yaml) -> Result<Json, String> {
    if let Yaml::String(s) = value {
        if s.trim().eq_ignore_ascii_case("quorum") {
            return Ok(Json::String("quorum".to_string()));
        }
    }
    boolean(value).map(Json::Bool).map_err(|_| {
        format!(
            "{} is not a synchronous mode (use true, false or quorum)",
            short(value)
        )
    })
}

/// Patroni's watchdog mode parsing: `false` is off, `true` and `on` mean automatic. Unlike
/// Patroni (which falls back to off with a log line) an unknown word is an error, so a typo
/// cannot silently disable the fence.
fn watchdog_mode(value: &Yaml) -> Result<&'static str, String> {
    let word = match value {
        Yaml::Bool(false) => return Ok("off"),
        Yaml::Bool(true) => return Ok("automatic"),
        other => string(other)?,
    };
    match word.trim().to_ascii_lowercase().as_str() {
        "off" | "no" | "false" | "disable" | "disabled" => Ok("off"),
        "automatic" | "on" => Ok("automatic"),
        "required" | "require" => Ok("required"),
        _ => Err(format!(
            "\"{word}\" is not a watchdog mode (use off, automatic or required)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_patroni_units() {
        assert_eq!(parse_duration_seconds("30"), Some(30));
        assert_eq!(parse_duration_seconds("30min"), Some(1800));
        assert_eq!(parse_duration_seconds("2h"), Some(7200));
        assert_eq!(parse_duration_seconds("1500ms"), Some(2));
        assert_eq!(parse_duration_seconds("10 minutes"), None);
    }
}
