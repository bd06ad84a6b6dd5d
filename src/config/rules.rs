//! Checks that span several keys: timing relations, address uniqueness, tags, custom methods.
//!
//! They run on the normalised document after the schema walk, and skip any relation whose
//! inputs were already reported as invalid (so one bad value does not cause a cascade).

use serde_json::Value as Json;

use super::address::comparable;
use super::problem::{child_path, Problem};
use super::timing::{self, secs, LeaseTimings, RaftBounds};
use super::types::{DEFAULT_ELECTION_TIMEOUT_MS, DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_MAX_CLOCK_SKEW_MS};

/// Problems and warnings found by the cross-key rules.
#[derive(Debug, Default)]
pub(crate) struct RuleOutput {
    pub problems: Vec<Problem>,
    pub warnings: Vec<String>,
    /// Values the rules adjusted (dotted path → new value), to be written into the normalised
    /// document before the typed structs are built, so the running agent uses them.
    pub adjusted: Vec<(String, Json)>,
}

/// The normalised document plus the paths already known to be broken.
struct Doc<'a> {
    root: &'a Json,
    broken: &'a [Problem],
}

impl Doc<'_> {
    fn get(&self, path: &str) -> Option<&Json> {
        path.split('.').try_fold(self.root, |node, key| node.get(key))
    }

    /// Whether `path` (or something inside it) already has a problem.
    fn is_broken(&self, path: &str) -> bool {
        self.broken.iter().any(|p| {
            p.path == path
                || p.path.starts_with(&format!("{path}."))
                || p.path.starts_with(&format!("{path}["))
        })
    }

    /// The integer at `path`, the default when absent, `None` when it was invalid.
    /// A duration in seconds (fractions allowed), as ms.
    fn ms_or(&self, path: &str, default_secs: f64) -> Option<i64> {
        if self.is_broken(path) {
            return None;
        }
        let secs = self.get(path).and_then(Json::as_f64).unwrap_or(default_secs);
        Some((secs * 1000.0).round() as i64)
    }

    fn int_or(&self, path: &str, default: i64) -> Option<i64> {
        if self.is_broken(path) {
            return None;
        }
        Some(self.get(path).and_then(Json::as_i64).unwrap_or(default))
    }

    fn str(&self, path: &str) -> Option<&str> {
        self.get(path).and_then(Json::as_str)
    }
}

/// Rules for the dynamic settings, rooted at `dcs` (`"bootstrap.dcs"` in a file, `""` for a
/// stored dynamic configuration). `raft` is what this node's Raft timings demand of the lease,
/// when known.
pub(crate) fn check_dynamic(
    root: &Json,
    dcs: &str,
    raft: Option<RaftBounds>,
    broken: &[Problem],
    out: &mut RuleOutput,
) {
    let doc = Doc { root, broken };
    let path = |key: &str| child_path(dcs, key);
    let defaults = super::dynamic::DynamicConfig::default();
    let timings = (
        doc.ms_or(&path("ttl"), defaults.ttl),
        doc.ms_or(&path("loop_wait"), defaults.loop_wait),
        doc.ms_or(&path("retry_timeout"), defaults.retry_timeout),
    );
    if let (Some(ttl_ms), Some(loop_wait_ms), Some(retry_timeout_ms)) = timings {
        let given = LeaseTimings {
            ttl_ms,
            loop_wait_ms,
            retry_timeout_ms,
        };
        match timing::fit(given, raft) {
            Ok(fitted) => {
                out.warnings.extend(fitted.warning(given, dcs));
                let changed = [
                    ("loop_wait", given.loop_wait_ms, fitted.timings.loop_wait_ms),
                    (
                        "retry_timeout",
                        given.retry_timeout_ms,
                        fitted.timings.retry_timeout_ms,
                    ),
                ];
                for (key, from, to) in changed {
                    if from != to {
                        out.adjusted.push((path(key), seconds_json(to)));
                    }
                }
            }
            Err(why) => out.problems.push(Problem::new(path("ttl"), why)),
        }
    }
    let standby = path("standby_cluster");
    if let Some(section) = doc.get(&standby).and_then(Json::as_object) {
        // An empty section means "not a standby cluster", as in Patroni.
        let has_source = ["host", "port", "restore_command"]
            .iter()
            .any(|k| section.contains_key(*k));
        if !section.is_empty() && !has_source && !doc.is_broken(&standby) {
            out.problems.push(Problem::new(
                standby,
                "needs at least one of host, port or restore_command",
            ));
        }
    }
    let sync_mode = path("synchronous_mode");
    if doc
        .str(&sync_mode)
        .is_some_and(|v| v.eq_ignore_ascii_case("quorum"))
        && !doc.is_broken(&sync_mode)
    {
        out.warnings.push(format!(
            "{sync_mode}: quorum commit (ANY k) is not implemented: pgquorum runs synchronous_mode: on \
             (FIRST n, synchronous_node_count standbys), which promises at least as much \
             (docs/replication-modes.md)"
        ));
    }
}

/// Rules for a whole configuration file (including the dynamic rules for `bootstrap.dcs`).
pub(crate) fn check_file(root: &Json, broken: &[Problem]) -> RuleOutput {
    let mut out = RuleOutput::default();
    let doc = Doc { root, broken };
    // When Raft is too slow for the lease even at half of ttl, `check_raft_timing` says so;
    // the lease rules then run without the Raft bounds, so one cause makes one problem.
    let ttl = doc.ms_or("bootstrap.dcs.ttl", super::dynamic::DynamicConfig::default().ttl);
    let bounds = raft_bounds(&doc).filter(|b| ttl.is_some_and(|ttl| b.worst_election_ms <= ttl / 2));
    check_dynamic(root, "bootstrap.dcs", bounds, broken, &mut out);
    check_raft_timing(&doc, &mut out);
    check_raft_addresses(&doc, &mut out);
    check_raft_transport(&doc, &mut out);
    check_rest_tls(&doc, &mut out);
    check_pg_tls(&doc, &mut out);
    check_tags(&doc, &mut out);
    check_watchdog(&doc, &mut out);
    check_custom_methods(&doc, &mut out);
    out
}

/// What this file's Raft settings demand of the lease; `None` when one of them is invalid (it
/// is reported on its own).
fn raft_bounds(doc: &Doc) -> Option<RaftBounds> {
    let election = doc.int_or("raft.election_timeout_ms", DEFAULT_ELECTION_TIMEOUT_MS as i64)?;
    let heartbeat = doc.int_or("raft.heartbeat_interval_ms", DEFAULT_HEARTBEAT_INTERVAL_MS as i64)?;
    let skew = doc.int_or("raft.max_clock_skew_ms", DEFAULT_MAX_CLOCK_SKEW_MS as i64)?;
    Some(RaftBounds {
        max_clock_skew_ms: skew,
        worst_election_ms: super::types::worst_case_election_ms(
            election.max(0) as u64,
            heartbeat.max(0) as u64,
        ) as i64,
    })
}

/// Seconds as the walk normalises them: whole seconds as integers, fractions as floats.
fn seconds_json(ms: i64) -> Json {
    if ms % 1000 == 0 {
        Json::from(ms / 1000)
    } else {
        Json::from(ms as f64 / 1000.0)
    }
}

/// The embedded Raft must elect a new leader well within one lease: an election must never by
/// itself cost the primary its `leader` key (see DESIGN: "a Raft election must never by itself
/// cause a PostgreSQL failover").
fn check_raft_timing(doc: &Doc, out: &mut RuleOutput) {
    let ttl = doc.ms_or("bootstrap.dcs.ttl", super::dynamic::DynamicConfig::default().ttl);
    let election = doc.int_or("raft.election_timeout_ms", DEFAULT_ELECTION_TIMEOUT_MS as i64);
    let heartbeat = doc.int_or("raft.heartbeat_interval_ms", DEFAULT_HEARTBEAT_INTERVAL_MS as i64);
    if let (Some(election), Some(heartbeat)) = (election, heartbeat) {
        if 2 * heartbeat >= election {
            out.problems.push(Problem::new(
                "raft.heartbeat_interval_ms",
                format!(
                    "{heartbeat} ms must be less than half of raft.election_timeout_ms ({election} ms), \
                     or followers start elections while the leader is healthy"
                ),
            ));
        }
    }
    if let (Some(ttl), Some(election), Some(heartbeat)) = (ttl, election, heartbeat) {
        // The longest election must fit in half the lease, so a Raft election never costs the
        // primary its lease (renewals wait for the new Raft leader).
        let worst = super::types::worst_case_election_ms(election.max(0) as u64, heartbeat.max(0) as u64);
        if worst as i64 > ttl / 2 {
            out.problems.push(Problem::new(
                "raft.election_timeout_ms",
                format!(
                    "{election} ms is too long for ttl {} s: a re-election can take up to \
                     4 × election_timeout_ms + 2 × heartbeat_interval_ms ({worst} ms), which must not exceed \
                     half of ttl ({} ms)",
                    secs(ttl),
                    ttl / 2
                ),
            ));
        }
    }
}

fn check_raft_addresses(doc: &Doc, out: &mut RuleOutput) {
    let self_addr = doc.str("raft.self_addr").map(comparable);
    let partners = doc
        .get("raft.partner_addrs")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let mut seen: Vec<String> = Vec::new();
    for (i, partner) in partners.iter().enumerate() {
        let Some(partner) = partner.as_str() else { continue };
        let path = format!("raft.partner_addrs[{i}]");
        let key = comparable(partner);
        if self_addr.as_deref() == Some(key.as_str()) {
            out.problems.push(Problem::new(
                path,
                format!("\"{partner}\" is this node's own raft.self_addr; list only the other nodes"),
            ));
        } else if seen.contains(&key) {
            out.problems.push(Problem::new(
                path,
                format!("\"{partner}\" is listed more than once"),
            ));
        }
        seen.push(key);
    }
}

/// Mutual TLS needs all three files; one or two of them is a mistake that would otherwise
/// leave the port open while the operator believes it protected. An empty password would be
/// a secret everyone knows.
fn check_raft_transport(doc: &Doc, out: &mut RuleOutput) {
    for files in [
        ["raft.certfile", "raft.keyfile", "raft.cafile"],
        ["ctl.certfile", "ctl.keyfile", "ctl.cacert"],
    ] {
        let given: Vec<&str> = files.into_iter().filter(|k| doc.get(k).is_some()).collect();
        if !given.is_empty() && given.len() < files.len() {
            for missing in files.into_iter().filter(|k| !given.contains(k)) {
                out.problems.push(Problem::new(
                    missing,
                    format!(
                        "missing: mutual TLS needs {} together (given: {})",
                        files.join(", "),
                        given.join(", ")
                    ),
                ));
            }
        }
    }
    // Permission settings act only when callers can be told apart (src/grpc/access.rs).
    let tls = doc.get("raft.certfile").is_some();
    let secured = tls || doc.get("raft.password").is_some();
    for (key, acts) in [
        ("raft.admin_names", tls),
        ("raft.read_names", tls),
        ("raft.agent_names", tls),
        ("raft.read_open", secured),
    ] {
        if doc.get(key).is_some() && !acts {
            let needs = if key == "raft.read_open" {
                "raft.certfile/keyfile/cafile or raft.password"
            } else {
                "raft.certfile/keyfile/cafile (it names client certificates)"
            };
            out.warnings.push(format!(
                "{key} has no effect without {needs}: the gRPC port is open and every caller is treated as an agent"
            ));
        }
    }
    // An empty pattern list would refuse every peer: the cluster could never form.
    if doc
        .get("raft.agent_names")
        .and_then(|v| v.as_array())
        .is_some_and(|list| list.is_empty())
    {
        out.problems.push(Problem::new(
            "raft.agent_names",
            "must not be empty: no agent could connect (leave it out to accept every certificate of the cluster CA)",
        ));
    }
    if doc.str("raft.password").is_some_and(str::is_empty) {
        out.problems.push(Problem::new(
            "raft.password",
            "must not be empty (leave it out to run without a shared secret)",
        ));
    }
}

/// libpq's `sslmode` values; and what the agent's own TLS connection to its local PostgreSQL
/// needs from the superuser's options (src/postgres/local_tls.rs): it does not fall back to
/// `~/.postgresql/root.crt` or `postgresql.crt`/`.key` as libpq does, so it says so at start.
fn check_pg_tls(doc: &Doc, out: &mut RuleOutput) {
    const MODES: [&str; 6] = [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ];
    for role in ["superuser", "replication", "rewind"] {
        let key = format!("postgresql.authentication.{role}.sslmode");
        if let Some(mode) = doc.str(&key) {
            if !MODES.contains(&mode) {
                out.problems.push(Problem::new(
                    &key,
                    format!("{mode:?}: give one of {}", MODES.join(", ")),
                ));
            }
        }
    }
    let superuser = |k: &str| {
        doc.get(&format!("postgresql.authentication.superuser.{k}"))
            .is_some()
    };
    if matches!(
        doc.str("postgresql.authentication.superuser.sslmode"),
        Some("verify-ca" | "verify-full")
    ) && !superuser("sslrootcert")
    {
        out.problems.push(Problem::new(
            "postgresql.authentication.superuser.sslrootcert",
            "missing: the agent's own connection to its PostgreSQL checks the server's certificate against it (sslmode verify-ca / verify-full)",
        ));
    }
    if superuser("sslcert") != superuser("sslkey") {
        let missing = if superuser("sslcert") { "sslkey" } else { "sslcert" };
        out.problems.push(Problem::new(
            format!("postgresql.authentication.superuser.{missing}"),
            "missing: the agent's own connection to its PostgreSQL needs sslcert and sslkey together",
        ));
    }
}

/// The REST API's TLS keys only make sense together.
fn check_rest_tls(doc: &Doc, out: &mut RuleOutput) {
    let tls = doc.get("restapi.certfile").is_some();
    for key in ["restapi.keyfile", "restapi.keyfile_password", "restapi.cafile"] {
        if !tls && doc.get(key).is_some() {
            out.problems
                .push(Problem::new(key, "needs restapi.certfile (TLS)"));
        }
    }
    if let Some(mode @ ("optional" | "required")) = doc.str("restapi.verify_client") {
        if !tls {
            out.problems.push(Problem::new(
                "restapi.verify_client",
                format!("{mode} needs restapi.certfile (TLS)"),
            ));
        } else if doc.get("restapi.cafile").is_none() {
            out.problems.push(Problem::new(
                "restapi.verify_client",
                format!("{mode} needs restapi.cafile (the CA client certificates must come from)"),
            ));
        }
    }
}

/// Patroni: "Provide only one of nofailover or failover_priority". Both together are accepted
/// when they agree (`nofailover: true` ≡ priority 0), rejected when they contradict.
fn check_tags(doc: &Doc, out: &mut RuleOutput) {
    let nofailover = doc.get("tags.nofailover").and_then(Json::as_bool);
    let priority = doc.get("tags.failover_priority").and_then(Json::as_i64);
    if let (Some(nofailover), Some(priority)) = (nofailover, priority) {
        if nofailover == (priority > 0) {
            out.problems.push(Problem::new(
                "tags.failover_priority",
                format!("{priority} contradicts tags.nofailover: {nofailover}; set only one of them"),
            ));
        }
    }
}

/// The watchdog timeout must fit the lease (`crate::watchdog::plan`: below ttl, at least
/// loop_wait + the longest Raft re-election), judged on `bootstrap.dcs` and this file's Raft
/// timings: in `required` mode a problem (such a node could never become primary), in
/// `automatic` mode a warning naming the numbers (it runs without a watchdog).
fn check_watchdog(doc: &Doc, out: &mut RuleOutput) {
    let mode = match doc.str("watchdog.mode") {
        Some("off") => return,
        Some("required") => crate::config::WatchdogMode::Required,
        _ => crate::config::WatchdogMode::Automatic,
    };
    let defaults = super::dynamic::DynamicConfig::default();
    let ttl = doc.ms_or("bootstrap.dcs.ttl", defaults.ttl);
    let loop_wait = doc.ms_or("bootstrap.dcs.loop_wait", defaults.loop_wait);
    let margin = match doc.get("watchdog.safety_margin") {
        None => Some(crate::config::WatchdogConfig::default().safety_margin),
        Some(v) => v.as_i64(),
    };
    let (Some(ttl), Some(loop_wait), Some(margin), Some(raft)) = (ttl, loop_wait, margin, raft_bounds(doc))
    else {
        return;
    };
    let config = crate::config::WatchdogConfig {
        mode,
        safety_margin: margin,
        ..Default::default()
    };
    let bounds = crate::watchdog::LeaseBounds {
        ttl_ms: ttl.max(0) as u64,
        loop_wait_ms: loop_wait.max(0) as u64,
        worst_election_ms: raft.worst_election_ms.max(0) as u64,
    };
    if let crate::watchdog::Plan::Unusable { reason } = crate::watchdog::plan(&config, bounds) {
        match mode {
            crate::config::WatchdogMode::Required => out.problems.push(Problem::new(
                "watchdog.safety_margin",
                format!("{reason} (watchdog.mode: required: this node could never become primary)"),
            )),
            _ => out.warnings.push(format!(
                "watchdog: {reason}; watchdog.mode: automatic runs without a watchdog (set watchdog.mode: \
                 off to say so, or fix the timeout)"
            )),
        }
    }
}

/// A custom bootstrap or replica creation method needs its own section with a `command`.
fn check_custom_methods(doc: &Doc, out: &mut RuleOutput) {
    if let Some(method) = doc.str("bootstrap.method").filter(|m| *m != "initdb") {
        require_command(doc, "bootstrap", method, "bootstrap.method", out);
    }
    let lists = [
        "postgresql.create_replica_methods",
        "bootstrap.dcs.standby_cluster.create_replica_methods",
    ];
    for list in lists {
        let methods = doc
            .get(list)
            .and_then(Json::as_array)
            .cloned()
            .unwrap_or_default();
        for method in methods
            .iter()
            .filter_map(Json::as_str)
            .filter(|m| *m != "basebackup")
        {
            require_command(doc, "postgresql", method, list, out);
        }
    }
}

fn require_command(doc: &Doc, parent: &str, method: &str, named_by: &str, out: &mut RuleOutput) {
    let section = format!("{parent}.{method}");
    let has_command = doc
        .get(&section)
        .and_then(|s| s.get("command"))
        .is_some_and(|c| c.is_string());
    let already = out.problems.iter().any(|p| p.path == section);
    if !has_command && !already && !doc.is_broken(&section) {
        out.problems.push(Problem::new(
            section,
            format!("{named_by} names method \"{method}\", which needs this section with a \"command\""),
        ));
    }
}
