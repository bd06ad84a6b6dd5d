//! Loading whole configurations: the Patroni examples, many mistakes at once, environment
//! overrides, warnings.

use std::path::Path;

use super::*;

const EXAMPLES: [&str; 3] = [
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/examples/patroni-raft-node1.yml"
    ),
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/examples/patroni-raft-node2.yml"
    ),
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/examples/patroni-raft-node3.yml"
    ),
];

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn load(text: &str) -> Result<Loaded, ConfigError> {
    Config::from_yaml_str(text, "test.yml", no_env())
}

/// The warnings but the watchdog one, which every file with the default watchdog settings and
/// the default timings gets (`the_watchdog_timeout_is_checked_against_the_lease_at_start_up`).
fn non_watchdog(warnings: &[String]) -> Vec<String> {
    warnings
        .iter()
        .filter(|w| !w.starts_with("watchdog: "))
        .cloned()
        .collect()
}

fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Ok(loaded) => panic!("expected problems, loaded {:?}", loaded.config),
        Err(e) => e.problems,
    }
}

const MINIMAL: &str = "
scope: demo
name: node1
raft:
  self_addr: 127.0.0.1:2401
  partner_addrs: [127.0.0.1:2402, 127.0.0.1:2403]
  data_dir: /tmp/raft
";

#[test]
fn patroni_raft_examples_load_unchanged() {
    for (i, path) in EXAMPLES.iter().enumerate() {
        let loaded = Config::load_with_env(Path::new(path), no_env()).unwrap_or_else(|e| panic!("{e}"));
        let config = loaded.config;
        assert_eq!(config.scope, "demo");
        assert_eq!(config.name, format!("node{}", i + 1));
        assert_eq!(config.raft.self_addr, format!("127.0.0.1:240{}", i + 1));
        assert_eq!(config.raft.partner_addrs.len(), 2);
        assert!(!config.raft.partner_addrs.contains(&config.raft.self_addr));
        assert_eq!(config.raft.heartbeat_interval_ms, DEFAULT_HEARTBEAT_INTERVAL_MS);
        assert_eq!(config.raft.election_timeout_ms, DEFAULT_ELECTION_TIMEOUT_MS);
        let dcs = &config.bootstrap.dcs;
        assert_eq!((dcs.ttl, dcs.loop_wait, dcs.retry_timeout), (20.0, 1.0, 3.0));
        assert_eq!(dcs.maximum_lag_on_failover, 1_048_576);
        assert!(dcs.postgresql.use_pg_rewind && dcs.postgresql.use_slots);
        assert_eq!(
            dcs.postgresql.parameters["hot_standby"],
            ParamValue::Str("on".into())
        );
        assert_eq!(dcs.postgresql.parameters["max_wal_senders"], ParamValue::Int(10));
        let initdb: Vec<String> = config.bootstrap.initdb.iter().map(ToolOption::to_arg).collect();
        assert_eq!(initdb, ["--encoding=UTF8", "--data-checksums"]);
        let auth = &config.postgresql.authentication;
        assert_eq!(
            auth.rewind.as_ref().and_then(|u| u.username.as_deref()),
            Some("rewinder")
        );
        assert_eq!(config.postgresql.pg_hba.len(), 3);
        assert_eq!(
            config
                .restapi
                .authentication
                .as_ref()
                .map(|a| a.username.as_str()),
            Some("admin")
        );
        assert!(config.tags.may_become_primary());
        assert_eq!(config.log.tracing_level(), Some("info"));
        assert_eq!(
            loaded.warnings,
            Vec::<String>::new(),
            "the examples use only implemented keys"
        );
    }
}

#[test]
fn every_mistake_is_reported_at_once_with_its_path() {
    let text = "
name: node1
Scope: demo
raft:
  self_addr: 127.0.0.1:2401
  partner_adrs: [127.0.0.1:2402]
  data_dir: [not, a, path]
  heartbeat_interval_ms: fast
restapi:
  listen: 127.0.0.1:99999
  authentication:
    username: admin
bootstrap:
  dcs:
    ttl: 30
    loop_wait: -1
    synchronous_mode: sometimes
    postgresql:
      use_slots: maybe
      parameters:
        max_connections: 0
tags:
  nofailover: perhaps
  datacenter: [eu, us]
watchdog:
  mode: automatc
frobnicate: 1
";
    assert_eq!(
        problems(text),
        [
            r#"Scope: unknown key (did you mean "scope"?)"#,
            r#"raft.partner_adrs: unknown key (did you mean "partner_addrs"?)"#,
            "raft.data_dir: expected a string, found a list",
            r#"raft.heartbeat_interval_ms: "fast" is not an integer"#,
            r#"restapi.listen: "127.0.0.1:99999" is not a valid host:port address: port "99999" is not a number from 1 to 65535"#,
            "restapi.authentication.password: required key is missing",
            "bootstrap.dcs.loop_wait: -1 s is too small (minimum 0.1 s)",
            "bootstrap.dcs.synchronous_mode: sometimes is not a synchronous mode (use true, false or quorum)",
            r#"bootstrap.dcs.postgresql.use_slots: "maybe" is not a boolean (use true or false)"#,
            "bootstrap.dcs.postgresql.parameters.max_connections: 0 is out of range (1 to 262143)",
            r#"tags.nofailover: "perhaps" is not a boolean (use true or false)"#,
            "tags.datacenter: expected a string, number or boolean, found a list",
            r#"watchdog.mode: "automatc" is not a watchdog mode (use off, automatic or required)"#,
            "frobnicate: unknown key: neither Patroni nor pgquorum has a setting by this name",
            "scope: required key is missing",
        ]
    );
}

#[test]
fn error_display_lists_every_problem_on_its_own_line() {
    let error = load("name: n\nraft: {}\n").expect_err("missing keys");
    let shown = error.to_string();
    assert!(shown.starts_with("3 problem(s) in test.yml:\n"), "{shown}");
    assert!(
        shown.contains("\n  - raft.self_addr: required key is missing"),
        "{shown}"
    );
    assert!(
        shown.contains("\n  - raft.data_dir: required key is missing"),
        "{shown}"
    );
    assert!(shown.contains("\n  - scope: required key is missing"), "{shown}");
}

#[test]
fn typos_get_suggestions_and_misplaced_keys_point_home() {
    let found = problems(&format!(
        "{MINIMAL}ttl: 30\nrestapi:\n  conect_address: 127.0.0.1:8008\n"
    ));
    assert_eq!(
        found,
        [
            r#"ttl: unknown key here (did you mean "bootstrap.dcs.ttl"?)"#,
            r#"restapi.conect_address: unknown key (did you mean "connect_address"?)"#,
        ]
    );
}

/// Patroni accepts timings that break `loop_wait + 2 × retry_timeout ≤ ttl` and shortens
/// loop_wait / retry_timeout to fit; pgquorum does the same, with one warning, and the loaded
/// configuration carries the adjusted values (the ones the HA loop uses and bootstrap stores).
#[test]
fn lease_timings_are_adjusted_like_patroni() {
    let dcs = |ttl: &str, loop_wait: &str, retry: &str| {
        format!("{MINIMAL}bootstrap:\n  dcs:\n    ttl: {ttl}\n    loop_wait: {loop_wait}\n    retry_timeout: {retry}\n")
    };
    // (ttl, loop_wait, retry_timeout) given → loaded, and the warning's "adjusted …" part.
    let table = [
        (
            ("20", "2", "10"),
            (20.0, 1.0, 9.0),
            Some("loop_wait from 2 s to 1 s and retry_timeout from 10 s to 9 s"),
        ),
        (
            ("20", "10", "10"),
            (20.0, 1.0, 9.0),
            Some("loop_wait from 10 s to 1 s and retry_timeout from 10 s to 9 s"),
        ),
        (
            ("30", "15", "10"),
            (30.0, 10.0, 10.0),
            Some("loop_wait from 15 s to 10 s"),
        ),
        (
            ("30", "10", "30"),
            (30.0, 1.0, 14.0),
            Some("loop_wait from 10 s to 1 s and retry_timeout from 30 s to 14 s"),
        ),
        (
            ("2.5", "0.5", "1.5"),
            (2.5, 0.5, 1.0),
            Some("retry_timeout from 1.5 s to 1 s"),
        ),
        // pgquorum's rule: the renewals must outlast a Raft re-election (1.1 s with the default
        // Raft timings) after the clock skew (0.25 s) and the 0.6 s demotion margin.
        (
            ("2.5", "0.9", "0.5"),
            (2.5, 0.55, 0.5),
            Some("loop_wait from 0.9 s to 0.55 s"),
        ),
        (("20", "1", "3"), (20.0, 1.0, 3.0), None),
        (("2.5", "0.5", "1"), (2.5, 0.5, 1.0), None),
    ];
    for ((ttl, loop_wait, retry), expected, change) in table {
        let loaded =
            load(&dcs(ttl, loop_wait, retry)).unwrap_or_else(|e| panic!("{ttl}/{loop_wait}/{retry}: {e}"));
        let d = &loaded.config.bootstrap.dcs;
        assert_eq!(
            (d.ttl, d.loop_wait, d.retry_timeout),
            expected,
            "{ttl}/{loop_wait}/{retry}"
        );
        match change {
            Some(change) => {
                let warnings = non_watchdog(&loaded.warnings);
                assert_eq!(warnings.len(), 1, "{warnings:?}");
                let prefix = format!("bootstrap.dcs: adjusted {change}: ");
                assert!(warnings[0].starts_with(&prefix), "{prefix} / {}", warnings[0]);
            }
            None => assert!(non_watchdog(&loaded.warnings).is_empty(), "{:?}", loaded.warnings),
        }
    }
    // The stored form is what the cluster will run with.
    let stored = load(&dcs("20", "2", "10"))
        .unwrap()
        .config
        .bootstrap
        .dcs
        .to_json();
    assert_eq!(
        (
            stored["ttl"].clone(),
            stored["loop_wait"].clone(),
            stored["retry_timeout"].clone()
        ),
        (20.into(), 1.into(), 9.into())
    );
    // Only the defaults given, but a clock skew that needs a shorter loop_wait: the adjusted
    // default is written into bootstrap.dcs too.
    let loaded = load(&format!("{MINIMAL}  max_clock_skew_ms: 350\n")).expect("adjustable");
    assert_eq!(loaded.config.bootstrap.dcs.loop_wait, 0.45);
    assert!(
        loaded.warnings[0].starts_with("bootstrap.dcs: adjusted loop_wait from 0.5 s to 0.45 s: "),
        "{:?}",
        loaded.warnings
    );
}

/// What no shortening of loop_wait / retry_timeout can make safe is refused, saying why.
#[test]
fn lease_timings_that_cannot_be_made_safe_are_refused() {
    let skewed = format!("{MINIMAL}  max_clock_skew_ms: 1000\n");
    let found = problems(&skewed);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("bootstrap.dcs.ttl: 2.5 s is too short for this node's Raft timings and raft.max_clock_skew_ms (1000 ms)"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("ttl must be at least 2.8 s"), "{}", found[0]);
    // (Raft fast enough for a 1 s lease, so only the lease timings are at fault.)
    let tiny = format!("{MINIMAL}  election_timeout_ms: 100\n  heartbeat_interval_ms: 20\nbootstrap:\n  dcs:\n    ttl: 1\n    loop_wait: 1\n    retry_timeout: 1\n");
    let found = problems(&tiny);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("bootstrap.dcs.ttl: 1 s leaves no room"),
        "{}",
        found[0]
    );
}

#[test]
fn raft_timing_must_fit_the_lease() {
    let slow_election = format!("{MINIMAL}  election_timeout_ms: 8000\n");
    assert_eq!(
        problems(&slow_election),
        [
            "raft.election_timeout_ms: 8000 ms is too long for ttl 2.5 s: a re-election can take up to \
          4 × election_timeout_ms + 2 × heartbeat_interval_ms (32100 ms), which must not exceed half of ttl \
          (1250 ms)"
        ]
    );
    let slow_heartbeat = format!("{MINIMAL}  heartbeat_interval_ms: 125\n");
    assert_eq!(
        problems(&slow_heartbeat),
        ["raft.heartbeat_interval_ms: 125 ms must be less than half of raft.election_timeout_ms (250 ms), or \
          followers start elections while the leader is healthy"]
    );
    let tuned = format!("{MINIMAL}  heartbeat_interval_ms: 40\n  election_timeout_ms: 200\n");
    let raft = load(&tuned).expect("valid").config.raft;
    assert_eq!((raft.heartbeat_interval_ms, raft.election_timeout_ms), (40, 200));
}

#[test]
fn raft_addresses_are_checked() {
    let text = "
scope: demo
name: node1
raft:
  self_addr: 127.0.0.1:2401
  partner_addrs:
  - 127.0.0.1:2402
  - 127.0.0.1:99999
  - 127.0.0.1:2401
  - 127.0.0.1:2402
  - 0.0.0.0:2405
  - localhost
  data_dir: /tmp/raft
";
    assert_eq!(
        problems(text),
        [
            r#"raft.partner_addrs[1]: "127.0.0.1:99999" is not a valid host:port address: port "99999" is not a number from 1 to 65535"#,
            r#"raft.partner_addrs[4]: "0.0.0.0:2405" is not a valid host:port address: "0.0.0.0" is a listen-only wildcard; other nodes need a host name or IP they can reach"#,
            r#"raft.partner_addrs[5]: "localhost" is not a valid host:port address: missing ":port" after the host"#,
            r#"raft.partner_addrs[2]: "127.0.0.1:2401" is this node's own raft.self_addr; list only the other nodes"#,
            r#"raft.partner_addrs[3]: "127.0.0.1:2402" is listed more than once"#,
        ]
    );
}

#[test]
fn environment_overrides_keys() {
    let text = "scope: file-scope\nname: file-name\nraft:\n  data_dir: /tmp/raft\n";
    let vars = env(&[
        ("PGQUORUM_NAME", "env-name"),
        ("PGQUORUM_RAFT_SELF_ADDR", "10.0.0.1:2401"),
        ("PGQUORUM_RAFT_PARTNER_ADDRS", "10.0.0.2:2401, 10.0.0.3:2401"),
        ("PGQUORUM_RESTAPI_LISTEN", "0.0.0.0:8008"),
        ("PGQUORUM_POSTGRESQL_DATA_DIR", "/var/lib/pg"),
        ("PGQUORUM_LOG_LEVEL", "debug"),
        ("PGQUORUM_BOOTSTRAP_DCS_TTL", "40"),
        ("PGQUORUM_SUPERUSER_PASSWORD", "s3cret"),
        ("PGQUORUM_TAGS_NOFAILOVER", "on"),
        ("HOME", "/root"),
    ]);
    let config = Config::from_yaml_str(text, "test.yml", vars)
        .expect("valid")
        .config;
    assert_eq!(config.scope, "file-scope");
    assert_eq!(config.name, "env-name");
    assert_eq!(config.raft.self_addr, "10.0.0.1:2401");
    assert_eq!(config.raft.partner_addrs, ["10.0.0.2:2401", "10.0.0.3:2401"]);
    assert_eq!(config.restapi.listen.as_deref(), Some("0.0.0.0:8008"));
    assert_eq!(
        config.postgresql.data_dir.as_deref(),
        Some(Path::new("/var/lib/pg"))
    );
    assert_eq!(config.log.level.as_deref(), Some("DEBUG"));
    assert_eq!(config.bootstrap.dcs.ttl, 40.0);
    let superuser = config
        .postgresql
        .authentication
        .superuser
        .expect("set from the environment");
    assert_eq!(superuser.password.as_deref(), Some("s3cret"));
    assert_eq!(config.tags.nofailover, Some(true));

    let flow_list = env(&[(
        "PGQUORUM_RAFT_PARTNER_ADDRS",
        r#"["10.0.0.2:2401", "10.0.0.3:2401"]"#,
    )]);
    let config = Config::from_yaml_str(MINIMAL, "test.yml", flow_list)
        .expect("valid")
        .config;
    assert_eq!(config.raft.partner_addrs, ["10.0.0.2:2401", "10.0.0.3:2401"]);
}

#[test]
fn bad_environment_variables_are_problems() {
    let vars = env(&[
        ("PGQUORUM_RAFT_SELFADDR", "10.0.0.1:2401"),
        ("PGQUORUM_RAFT_PARTNER_ADDRS", "10.0.0.2:2401,10.0.0.3"),
        ("PGQUORUM_BOOTSTRAP_DCS_LOOP_WAIT", "soon"),
    ]);
    let error = Config::from_yaml_str(MINIMAL, "test.yml", vars).expect_err("bad variables");
    assert_eq!(
        error.problems,
        [
            "PGQUORUM_RAFT_SELFADDR: unknown environment variable: no configuration key maps to it \
             (did you mean PGQUORUM_RAFT_SELF_ADDR?)",
            r#"raft.partner_addrs[1]: "10.0.0.3" is not a valid host:port address: missing ":port" after the host (set by environment variable PGQUORUM_RAFT_PARTNER_ADDRS)"#,
            r#"bootstrap.dcs.loop_wait: "soon" is not a duration (use seconds, e.g. 2.5, or a number with unit ms or s) (set by environment variable PGQUORUM_BOOTSTRAP_DCS_LOOP_WAIT)"#,
        ]
    );
}

#[test]
fn unimplemented_patroni_keys_make_one_warning() {
    let text = format!(
        "{MINIMAL}  password: secret
namespace: /service
etcd3:
  hosts: 10.0.0.1:2379
restapi:
  listen: 0.0.0.0:8008
  ciphers: ECDHE-RSA-AES256-GCM-SHA384
ctl:
  insecure: true
"
    );
    let loaded = load(&text).expect("Patroni keys are accepted");
    assert_eq!(
        non_watchdog(&loaded.warnings),
        [
            "these Patroni settings are accepted but not implemented by pgquorum, and have no effect: \
          namespace, etcd3, restapi.ciphers, ctl.insecure"
        ]
    );
}

#[test]
fn patroni_spellings_are_normalised() {
    let text = format!(
        "{MINIMAL}bootstrap:
  dcs:
    master_start_timeout: 60
    synchronous_mode: quorum
    member_slots_ttl: 10min
    permanent_slots:
      cdc: {{type: logical, database: app, plugin: pgoutput}}
      standby: null
    postgresql:
      use_pg_rewind: 'yes'
      parameters:
        Max_Connections: '100'
        wal_log_hints: true
  post_init: /usr/local/bin/setup.sh
  initdb: {{encoding: UTF8, locale: C}}
watchdog:
  mode: false
"
    );
    let config = load(&text).expect("valid").config;
    let dcs = &config.bootstrap.dcs;
    assert_eq!(dcs.primary_start_timeout, 60);
    assert_eq!(dcs.synchronous_mode, SynchronousMode::Quorum);
    assert_eq!(dcs.member_slots_ttl, 600);
    assert_eq!(dcs.slots["cdc"].slot_type, SlotType::Logical);
    assert_eq!(dcs.slots["standby"].slot_type, SlotType::Physical);
    assert!(dcs.postgresql.use_pg_rewind);
    assert_eq!(dcs.postgresql.parameters["max_connections"].to_string(), "100");
    assert_eq!(dcs.postgresql.parameters["wal_log_hints"].to_string(), "on");
    assert_eq!(
        config.bootstrap.post_bootstrap.as_deref(),
        Some("/usr/local/bin/setup.sh")
    );
    assert_eq!(config.bootstrap.initdb.len(), 2);
    assert_eq!(config.watchdog.mode, WatchdogMode::Off);
}

#[test]
fn conflicting_spellings_are_problems() {
    let text = format!(
        "{MINIMAL}bootstrap:
  dcs:
    master_start_timeout: 60
    primary_start_timeout: 30
postgresql:
  parameters:
    work_mem: 4MB
    WORK_MEM: 8MB
"
    );
    assert_eq!(
        problems(&text),
        [
            r#"bootstrap.dcs.master_start_timeout: both "master_start_timeout" and "primary_start_timeout" are set; keep only "primary_start_timeout""#,
            r#"postgresql.parameters.WORK_MEM: "work_mem" is set more than once (names are case-insensitive)"#,
        ]
    );
}

#[test]
fn custom_methods_need_their_sections() {
    let text = format!(
        "{MINIMAL}postgresql:
  create_replica_methods: [pgbackrest, wal_g, basebackup]
  pgbackrest:
    command: /usr/bin/pgbackrest --stanza=main restore
    keep_data: true
bootstrap:
  method: clone
"
    );
    assert_eq!(
        problems(&text),
        [
            r#"bootstrap.clone: bootstrap.method names method "clone", which needs this section with a "command""#,
            r#"postgresql.wal_g: postgresql.create_replica_methods names method "wal_g", which needs this section with a "command""#,
        ]
    );
    let fixed = format!("{text}  clone:\n    command: /bin/clone\n  wal_g:\n    command: /bin/wal-g\n");
    // `wal_g` sits under bootstrap in `fixed`, which is wrong; move it under postgresql.
    let fixed = fixed.replace(
        "  clone:\n    command: /bin/clone\n  wal_g:\n    command: /bin/wal-g\n",
        "  clone:\n    command: /bin/clone\n",
    );
    let fixed = fixed.replace(
        "    keep_data: true\n",
        "    keep_data: true\n  wal_g:\n    command: /bin/wal-g\n",
    );
    let config = load(&fixed).expect("valid").config;
    assert!(config.postgresql.replica_methods.contains_key("pgbackrest"));
    assert!(config.bootstrap.methods.contains_key("clone"));
}

#[test]
fn yaml_syntax_errors_have_a_location() {
    let found = problems("scope: demo\nname: [unclosed\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with("YAML syntax error at line "), "{}", found[0]);
    assert_eq!(
        problems("- just\n- a list\n"),
        ["the file must contain a map of settings (scope, name, raft, …)"]
    );
}

#[test]
fn unreadable_file_is_a_problem() {
    let error = Config::load_with_env(Path::new("/nonexistent/pgquorum.yml"), no_env()).expect_err("missing");
    assert_eq!(error.path, "/nonexistent/pgquorum.yml");
    assert_eq!(error.problems.len(), 1);
    assert!(
        error.problems[0].starts_with("cannot read the file: "),
        "{}",
        error.problems[0]
    );
}

#[test]
fn dynamic_config_round_trips_through_json() {
    let default = DynamicConfig::default();
    assert_eq!(
        (default.ttl, default.loop_wait, default.retry_timeout),
        (2.5, 0.5, 1.0)
    );
    assert_eq!(default.maximum_lag_on_failover, 1_048_576);
    assert_eq!(default.primary_start_timeout, 300);
    let (parsed, warnings) = DynamicConfig::from_json(&default.to_json(), None).expect("defaults are valid");
    assert_eq!(parsed, default);
    assert!(warnings.is_empty());

    let loaded = load(&format!(
        "{MINIMAL}bootstrap:\n  dcs:\n    synchronous_mode: quorum\n"
    ))
    .expect("valid");
    let stored = loaded.config.bootstrap.dcs.to_json();
    assert_eq!(stored["synchronous_mode"], "quorum");
    let back: DynamicConfig = serde_json::from_value(stored).expect("deserialises");
    assert_eq!(back, loaded.config.bootstrap.dcs);
}

#[test]
fn dynamic_config_edits_are_validated() {
    let edit = serde_json::json!({"ttl": 10, "loop_wait": 5, "retry_timeout": 5, "bogus": 1});
    let problems = DynamicConfig::from_json(&edit, None).expect_err("invalid edit");
    assert_eq!(
        problems,
        ["bogus: unknown key: neither Patroni nor pgquorum has a setting by this name"]
    );
    // The same timings alone are adjusted as in a file (edit-config stores the adjusted ones).
    let edit = serde_json::json!({"ttl": 10, "loop_wait": 5, "retry_timeout": 5});
    let (adjusted, warnings) = DynamicConfig::from_json(&edit, None).expect("adjusted");
    assert_eq!(
        (adjusted.ttl, adjusted.loop_wait, adjusted.retry_timeout),
        (10.0, 1.0, 4.0)
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(
            "the dynamic configuration: adjusted loop_wait from 5 s to 1 s and retry_timeout from 5 s to 4 s: "
        ),
        "{warnings:?}"
    );
    assert_eq!(adjusted.to_json()["retry_timeout"], 4);
    let raft = load(&format!(
        "{MINIMAL}  election_timeout_ms: 3000\nbootstrap:\n  dcs:\n    ttl: 30\n"
    ))
    .expect("valid")
    .config
    .raft;
    let short_lease = serde_json::json!({"ttl": 10, "loop_wait": 2, "retry_timeout": 3});
    let problems =
        DynamicConfig::from_json(&short_lease, Some(RaftTimings::of(&raft))).expect_err("too short for raft");
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].starts_with("ttl: 10 s is too short"),
        "{}",
        problems[0]
    );
    let (_, warnings) = DynamicConfig::from_json(&short_lease, None).expect("valid without raft");
    // pgquorum's short lease is deliberate: no warning for going below Patroni's minimums.
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn tags_accept_user_tags_and_reject_contradictions() {
    let text = format!("{MINIMAL}tags:\n  nofailover: true\n  datacenter: eu-west\n  rack: 7\n");
    let tags = load(&text).expect("valid").config.tags;
    assert!(!tags.may_become_primary());
    assert_eq!(tags.custom["datacenter"], "eu-west");
    assert_eq!(tags.custom["rack"], 7);
    let contradiction = format!("{MINIMAL}tags:\n  nofailover: true\n  failover_priority: 2\n");
    assert_eq!(
        problems(&contradiction),
        ["tags.failover_priority: 2 contradicts tags.nofailover: true; set only one of them"]
    );
}

#[test]
fn documentation_covers_every_key() {
    let docs = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md"));
    let missing: Vec<String> = schema::Schema::file()
        .entries()
        .iter()
        .map(|e| e.path.clone())
        .filter(|path| !docs.contains(&format!("`{path}`")))
        .collect();
    assert!(missing.is_empty(), "docs/configuration.md lacks: {missing:?}");
}

#[test]
fn watchdog_driver_is_default_or_testing() {
    let config = load(MINIMAL).expect("valid").config;
    assert_eq!(config.watchdog.driver, WatchdogDriver::Default);
    let text = format!(
        "{MINIMAL}watchdog:\n  mode: required\n  driver: testing\n  device: /tmp/wd.fifo\n  safety_margin: 0\n"
    );
    let config = load(&text).expect("valid").config;
    assert_eq!(config.watchdog.driver, WatchdogDriver::Testing);
    assert_eq!(config.watchdog.device, Path::new("/tmp/wd.fifo"));
    let unknown = format!("{MINIMAL}watchdog:\n  driver: softdog\n");
    assert_eq!(
        problems(&unknown),
        [r#"watchdog.driver: "softdog" is not one of: default, testing"#]
    );
}

/// Every key of Patroni 4's documented configuration (YAML settings, dynamic settings, the
/// raft section of 4.1), in one file: it loads, and every key pgquorum does not act on is
/// named in the start-up warning (none is ignored silently).
const PATRONI4_EVERY_KEY: &str = "
scope: batman
name: postgresql0
namespace: /service/
thread_pool_size: 5
thread_stack_size: 512kB
log:
  type: plain
  level: INFO
  traceback_level: ERROR
  format: '%(asctime)s %(levelname)s: %(message)s'
  dateformat: '%Y-%m-%d %H:%M:%S'
  static_fields: {app: patroni}
  max_queue_size: 1000
  dir: /var/log/patroni
  mode: '0644'
  file_num: 4
  file_size: 25000000
  loggers: {patroni.postmaster: WARNING, urllib3: DEBUG}
  deduplicate_heartbeat_logs: true
restapi:
  thread_pool_size: 5
  listen: 0.0.0.0:8008
  connect_address: 10.0.0.1:8008
  authentication: {username: admin, password: secret}
  certfile: /etc/ssl/rest.pem
  keyfile: /etc/ssl/rest.key
  cafile: /etc/ssl/ca.pem
  ciphers: ECDHE-RSA-AES256-GCM-SHA384
  verify_client: optional
  allowlist: [10.0.0.0/8]
  allowlist_include_members: true
  http_extra_headers: {X-Frame-Options: SAMEORIGIN}
  https_extra_headers: {Strict-Transport-Security: max-age=31536000}
  request_queue_size: 5
  server_tokens: Prod
ctl:
  authentication: {username: admin, password: secret}
  insecure: false
  cacert: /etc/ssl/ca.pem
  certfile: /etc/ssl/ctl.pem
  keyfile: /etc/ssl/ctl.key
  keyfile_password: kp
citus: {group: 0, database: citus}
raft:
  data_dir: /var/lib/raft
  self_addr: 10.0.0.1:2222
  bind_addr: 0.0.0.0:2222
  partner_addrs: [10.0.0.2:2222, 10.0.0.3:2222]
  password: raft-secret
  min_timeout: 0.4
  max_timeout: 1.4
  connection_timeout: 3.5
  append_entries_period: 0.1
  connection_retry_time: 5.0
  leader_fallback_timeout: 30.0
bootstrap:
  dcs:
    loop_wait: 10
    ttl: 30
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    maximum_lag_on_syncnode: 1048576
    max_timelines_history: 0
    primary_start_timeout: 300
    primary_stop_timeout: 0
    primary_race_backoff: 5
    synchronous_mode: quorum
    synchronous_mode_strict: false
    synchronous_node_count: 2
    failsafe_mode: true
    check_timeline: true
    member_slots_ttl: 10min
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters: {wal_level: replica, hot_standby: 'on', max_wal_senders: 10}
      recovery_conf: {restore_command: cp /archive/%f %p}
      pg_hba: [host replication replicator 10.0.0.0/8 md5]
      pg_ident: [map1 sys1 pg1]
      pg_ctl_timeout: 60
      remove_data_directory_on_rewind_failure: false
      remove_data_directory_on_diverged_timelines: false
    standby_cluster:
      host: 10.1.0.1
      port: 5432
      primary_slot_name: patroni
      create_replica_methods: [basebackup]
      restore_command: cp /archive/%f %p
      archive_cleanup_command: pg_archivecleanup /archive %r
      recovery_min_apply_delay: 5min
    slots:
      cdc: {type: logical, database: app, plugin: pgoutput}
    ignore_slots:
    - {name: ignored, type: logical, database: app, plugin: wal2json}
  method: initdb
  initdb: [{encoding: UTF8}, data-checksums]
  post_bootstrap: /usr/local/bin/setup.sh
postgresql:
  listen: 0.0.0.0:5432
  connect_address: 10.0.0.1:5432
  proxy_address: 10.0.0.1:6432
  data_dir: /data/pg
  config_dir: /data/pg
  bin_dir: /usr/lib/postgresql/16/bin
  bin_name: {pg_ctl: pg_ctl, initdb: initdb, pg_controldata: pg_controldata, pg_basebackup: pg_basebackup,
             postgres: postgres, pg_isready: pg_isready, pg_rewind: pg_rewind}
  pgpass: /tmp/pgpass0
  custom_conf: /etc/pg/custom.conf
  authentication:
    superuser: {username: postgres, password: zalando, sslmode: verify-full, sslkey: /k, sslpassword: p,
                sslcert: /c, sslrootcert: /r, sslcrl: /l, sslcrldir: /d, sslnegotiation: direct,
                gssencmode: disable, channel_binding: require}
    replication: {username: replicator, password: rep-pass}
    rewind: {username: rewind_user, password: rewind_password}
  callbacks: {on_reload: /cb, on_restart: /cb, on_role_change: /cb, on_start: /cb, on_stop: /cb}
  create_replica_methods: [wal_e, basebackup]
  wal_e: {command: /bin/wal-e-restore, no_leader: true}
  basebackup: [{max-rate: 100M}, checkpoint: fast]
  rewind: [{restore-target-wal: false}, debug]
  parameters: {unix_socket_directories: /var/run/postgresql}
  parameters_primary: {work_mem: 8MB}
  parameters_replica: {work_mem: 4MB}
  parameters_standby_leader: {work_mem: 4MB}
  recovery_conf: {recovery_min_apply_delay: 0}
  pg_hba: [local all all trust]
  pg_hba_primary: [local all all trust]
  pg_hba_replica: [local all all trust]
  pg_hba_standby_leader: [local all all trust]
  pg_ident: [map1 sys1 pg1]
  pg_ident_primary: [map1 sys1 pg1]
  pg_ident_replica: [map1 sys1 pg1]
  pg_ident_standby_leader: [map1 sys1 pg1]
  pg_ctl_timeout: 60
  use_pg_rewind: true
  use_unix_socket: true
  use_unix_socket_repl: true
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  pre_promote: /bin/fence
  before_stop: /bin/before-stop
watchdog: {mode: automatic, device: /dev/watchdog, safety_margin: 5}
tags: {nofailover: false, failover_priority: 1, sync_priority: 2, clonefrom: true, noloadbalance: false,
       replicatefrom: postgresql1, nosync: true, nostream: false, datacenter: eu}
";

#[test]
fn every_patroni_4_key_loads_and_no_ignored_key_is_silent() {
    let loaded = load(PATRONI4_EVERY_KEY).unwrap_or_else(|e| panic!("{e}"));
    let config = &loaded.config;
    assert_eq!(config.name, "postgresql0");
    assert_eq!(config.bootstrap.dcs.ttl, 30.0);
    assert!(config.postgresql.use_unix_socket);
    // The keys accepted but not acted on, and `synchronous_mode: quorum` (runs as `on`).
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    let quorum = loaded
        .warnings
        .iter()
        .find(|w| w.starts_with("bootstrap.dcs.synchronous_mode: quorum commit"))
        .unwrap_or_else(|| panic!("no quorum warning in {:?}", loaded.warnings));
    assert!(quorum.contains("runs synchronous_mode: on"), "{quorum}");
    let warning = loaded
        .warnings
        .iter()
        .find(|w| *w != quorum)
        .expect("the not-acted-on list");
    let named = [
        "namespace",
        "thread_pool_size",
        "thread_stack_size",
        "log.format",
        "log.deduplicate_heartbeat_logs",
        "restapi.ciphers",
        "restapi.server_tokens",
        "restapi.thread_pool_size",
        "ctl.keyfile_password",
        "citus",
        "raft.bind_addr",
        "raft.min_timeout",
        "raft.leader_fallback_timeout",
        "bootstrap.dcs.primary_race_backoff",
        "bootstrap.dcs.failsafe_mode",
        "bootstrap.dcs.member_slots_ttl",
        "bootstrap.dcs.postgresql.recovery_conf",
        "bootstrap.dcs.postgresql.pg_ident",
        "bootstrap.dcs.standby_cluster",
        "bootstrap.dcs.slots",
        "bootstrap.dcs.ignore_slots",
        "postgresql.proxy_address",
        "postgresql.config_dir",
        "postgresql.custom_conf",
        "postgresql.authentication.superuser.sslpassword",
        "postgresql.authentication.superuser.sslnegotiation",
        "postgresql.create_replica_methods",
        "postgresql.rewind",
        "postgresql.parameters_primary",
        "postgresql.pg_hba_standby_leader",
        "postgresql.pg_ident_replica",
        "postgresql.recovery_conf",
        "postgresql.pg_ident",
        "postgresql.use_unix_socket_repl",
        "postgresql.pre_promote",
        "postgresql.before_stop",
        "tags.sync_priority",
        "tags.replicatefrom",
    ];
    let listed: Vec<&str> = warning
        .split_once(": ")
        .map(|(_, keys)| keys.split(", ").collect())
        .unwrap_or_default();
    for key in named {
        assert!(listed.contains(&key), "{key} is not named in: {warning}");
    }
    // Values that ask for what pgquorum does anyway, and keys acted on, are not reported.
    for quiet in [
        "log.type",
        "log.dir",
        "log.file_num",
        "log.file_size",
        "bootstrap.method",
        "bootstrap.dcs.synchronous_mode_strict",
        "bootstrap.dcs.synchronous_mode",
        "bootstrap.dcs.synchronous_node_count",
        "bootstrap.dcs.maximum_lag_on_syncnode",
        "tags.nosync",
        "bootstrap.dcs.primary_stop_timeout",
        "ctl.insecure",
        "tags.nostream",
    ] {
        assert!(
            !listed.contains(&quiet),
            "{quiet} should not be named in: {warning}"
        );
    }
}

#[test]
fn permission_settings_without_tls_or_password_are_reported() {
    let text = format!("{MINIMAL}  read_open: true\n  admin_names: [ops]\n  agent_names: [\"node*\"]\n");
    let loaded = load(&text).expect("loads");
    assert_eq!(loaded.config.raft.admin_names, ["ops"]);
    assert_eq!(loaded.config.raft.agent_names, Some(vec!["node*".to_string()]));
    assert!(loaded.config.raft.read_open);
    let warnings = non_watchdog(&loaded.warnings);
    assert_eq!(warnings.len(), 3, "{:?}", loaded.warnings);
    assert!(warnings[0].starts_with("raft.admin_names has no effect without raft.certfile"));
    assert!(warnings[1].starts_with("raft.agent_names has no effect without raft.certfile"));
    assert!(warnings[2].starts_with("raft.read_open has no effect without"));
    assert_eq!(
        problems(&format!("{MINIMAL}  agent_names: []\n")),
        ["raft.agent_names: must not be empty: no agent could connect (leave it out to accept every certificate of the cluster CA)"]
    );
    let text = format!("{MINIMAL}  password: pw\n  read_open: true\n  admin_listen: 127.0.0.1:2390\n");
    let loaded = load(&text).expect("loads");
    assert!(non_watchdog(&loaded.warnings).is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.config.raft.admin_names, ["pgquorumctl"]);
    assert_eq!(loaded.config.raft.admin_listen.as_deref(), Some("127.0.0.1:2390"));
}

#[test]
fn raft_tls_files_go_together_and_password_is_not_empty() {
    let text = format!("{MINIMAL}  certfile: /etc/pgquorum/n1.pem\n  password: \"\"\n");
    assert_eq!(
        problems(&text),
        [
            "raft.keyfile: missing: mutual TLS needs raft.certfile, raft.keyfile, raft.cafile together (given: raft.certfile)",
            "raft.cafile: missing: mutual TLS needs raft.certfile, raft.keyfile, raft.cafile together (given: raft.certfile)",
            "raft.password: must not be empty (leave it out to run without a shared secret)",
        ]
    );
    let text = format!("{MINIMAL}  certfile: /c.pem\n  keyfile: /k.pem\n  cafile: /ca.pem\n  password: pw\n");
    let loaded = load(&text).expect("all three files and a password load");
    assert_eq!(loaded.config.raft.cafile.as_deref(), Some(Path::new("/ca.pem")));
    assert_eq!(loaded.config.raft.password.as_deref(), Some("pw"));
    assert!(non_watchdog(&loaded.warnings).is_empty(), "{:?}", loaded.warnings);
    let text = format!("{MINIMAL}ctl:\n  certfile: /ctl.pem\n  keyfile: /ctl.key\n");
    assert_eq!(
        problems(&text),
        ["ctl.cacert: missing: mutual TLS needs ctl.certfile, ctl.keyfile, ctl.cacert together (given: ctl.certfile, ctl.keyfile)"]
    );
}

#[test]
fn the_watchdog_timeout_is_checked_against_the_lease_at_start_up() {
    // The default timings (ttl 2.5 s, loop_wait 0.5 s, Raft election up to 1.1 s) and the
    // default safety_margin (5 s) leave no watchdog timeout: automatic says so and what fits.
    let loaded = load(MINIMAL).expect("valid");
    let warning = loaded
        .warnings
        .iter()
        .find(|w| w.starts_with("watchdog: "))
        .unwrap_or_else(|| panic!("no watchdog warning in {:?}", loaded.warnings));
    assert!(
        warning.contains("safety_margin 5 s leaves no watchdog timeout within ttl 2.5 s"),
        "{warning}"
    );
    assert!(
        warning.contains("safety_margin: 0 gives a timeout of 2 s"),
        "{warning}"
    );
    assert!(warning.contains("runs without a watchdog"), "{warning}");
    // Required: refused (such a node could never become primary).
    let required = format!("{MINIMAL}watchdog:\n  mode: required\n");
    let found = problems(&required);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("watchdog.safety_margin: ") && p.contains("never become primary")),
        "{found:?}"
    );
    // A timeout that fits, or mode off: no warning.
    for extra in ["watchdog:\n  safety_margin: 0\n", "watchdog:\n  mode: off\n"] {
        let loaded = load(&format!("{MINIMAL}{extra}")).expect("valid");
        assert!(
            !loaded.warnings.iter().any(|w| w.starts_with("watchdog: ")),
            "{extra}: {:?}",
            loaded.warnings
        );
    }
}

#[test]
fn rest_tls_keys_need_their_companions() {
    assert_eq!(
        problems(&format!(
            "{MINIMAL}restapi:\n  listen: 0.0.0.0:8008\n  keyfile: /k.pem\n  keyfile_password: kp\n  cafile: /ca.pem\n  verify_client: required\n"
        )),
        [
            "restapi.keyfile: needs restapi.certfile (TLS)",
            "restapi.keyfile_password: needs restapi.certfile (TLS)",
            "restapi.cafile: needs restapi.certfile (TLS)",
            "restapi.verify_client: required needs restapi.certfile (TLS)",
        ]
    );
    assert_eq!(
        problems(&format!(
            "{MINIMAL}restapi:\n  certfile: /c.pem\n  keyfile_password: kp\n  verify_client: optional\n"
        )),
        [
            "restapi.verify_client: optional needs restapi.cafile (the CA client certificates must come from)",
        ]
    );
    let loaded = load(&format!(
        "{MINIMAL}restapi:\n  certfile: /c.pem\n  cafile: /ca.pem\n  verify_client: required\n  allowlist: [10.0.0.0/8]\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(non_watchdog(&loaded.warnings).is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn postgres_tls_options_are_checked() {
    let pg = |auth: &str| format!("{MINIMAL}postgresql:\n  data_dir: /d\n  authentication:\n{auth}");
    assert_eq!(
        problems(&pg("    replication: {username: r, sslmode: required}\n")),
        ["postgresql.authentication.replication.sslmode: \"required\": give one of disable, allow, prefer, require, verify-ca, verify-full"]
    );
    assert_eq!(
        problems(&pg("    superuser: {username: postgres, sslmode: verify-ca}\n")),
        ["postgresql.authentication.superuser.sslrootcert: missing: the agent's own connection to its PostgreSQL checks the server's certificate against it (sslmode verify-ca / verify-full)"]
    );
    assert_eq!(
        problems(&pg("    superuser: {username: postgres, sslmode: require, sslcert: /c}\n")),
        ["postgresql.authentication.superuser.sslkey: missing: the agent's own connection to its PostgreSQL needs sslcert and sslkey together"]
    );
    // libpq's own defaults (~/.postgresql/root.crt) still serve the other roles' connections.
    load(&pg(
        "    superuser: {username: postgres, sslmode: verify-full, sslrootcert: /ca, sslcert: /c, sslkey: /k}\n    \
         replication: {username: r, sslmode: verify-ca}\n",
    ))
    .expect("loads");
}
