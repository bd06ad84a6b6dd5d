//! Property-based fuzzing (proptest; cargo-fuzz needs a nightly toolchain this project does not
//! use) of what untrusted callers can put in front of an agent: the keyspace command decoder
//! and the state machine behind it, key names, the `config` validator the admin service runs
//! on every client write, `pg_hba` lines, the configuration file parser, and the permission
//! classification. Properties: nothing panics, and what is accepted is stable.
//! `PROPTEST_CASES=N` runs more cases; docs/security.md records the runs and findings.

use std::str::FromStr;

use pgquorum::config::guard::{check_config_write, hba_line_problem};
use pgquorum::config::Config;
use pgquorum::grpc::access::{classify, Access, Policy, Presented};
use pgquorum::keyspace::{Command, Key, Keyspace, Stamped};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Arbitrary JSON, biased towards the names the decoders look for.
fn json_value() -> impl Strategy<Value = Value> {
    let names = prop_oneof![
        Just("op".to_string()),
        Just("key".to_string()),
        Just("value".to_string()),
        Just("ttl".to_string()),
        Just("loop_wait".to_string()),
        Just("retry_timeout".to_string()),
        Just("postgresql".to_string()),
        Just("parameters".to_string()),
        Just("pg_hba".to_string()),
        Just("standby_cluster".to_string()),
        Just("slots".to_string()),
        Just("archive_command".to_string()),
        Just("precondition".to_string()),
        Just("holder".to_string()),
        Just("ttl_ms".to_string()),
        "[a-z_]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("put".to_string()),
            Just("delete".to_string()),
            Just("acquire_lease".to_string()),
            Just("leader".to_string()),
            Just("members/x".to_string()),
            Just("config".to_string()),
            Just("host all all 0.0.0.0/0 trust".to_string()),
            Just("10s".to_string()),
            ".{0,20}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(names.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The admin service's `Write` decoder on arbitrary bytes and arbitrary JSON; whatever
    /// decodes applies to a keyspace without panicking, deterministically.
    #[test]
    fn command_decoder_and_state_machine(bytes in prop::collection::vec(any::<u8>(), 0..256), value in json_value(), now in any::<u64>()) {
        let _ = serde_json::from_slice::<Command>(&bytes);
        let body = serde_json::to_vec(&value).unwrap();
        if let Ok(command) = serde_json::from_slice::<Command>(&body) {
            let stamped = Stamped { now_ms: now, command };
            let (mut a, mut b) = (Keyspace::default(), Keyspace::default());
            let first = a.apply(1, &stamped);
            prop_assert_eq!(first, b.apply(1, &stamped));
            let _ = a.apply(2, &stamped);
        }
    }

    /// Key names: parse never panics; what parses prints back to itself.
    #[test]
    fn key_names(text in ".{0,40}", name in "[a-z0-9/ _-]{0,20}") {
        for candidate in [text.clone(), format!("members/{name}")] {
            if let Ok(key) = Key::from_str(&candidate) {
                prop_assert_eq!(key.to_string(), candidate);
            }
        }
    }

    /// The server's `config` validator on arbitrary documents: never panics; what it accepts
    /// it accepts again in the stored (normalised) form, against itself as the stored value.
    #[test]
    fn config_write_validator(before in proptest::option::of(json_value()), after in json_value()) {
        if let Ok((config, _)) = check_config_write(before.as_ref(), &after, &[]) {
            let stored = config.to_json();
            let again = check_config_write(Some(&stored), &stored, &[]);
            prop_assert!(again.is_ok(), "{after} was accepted as {stored}, which is then refused: {again:?}");
        }
    }

    /// pg_hba lines: never panic; a `trust` line over the network is always refused.
    #[test]
    fn hba_lines(line in ".{0,80}", kind in "(host|hostssl|hostnossl|hostgssenc)", addr in "[0-9./:a-f]{1,20}") {
        let _ = hba_line_problem(&line);
        let refused = hba_line_problem(&format!("{kind} all all {addr} trust"));
        prop_assert!(refused.is_some());
    }

    /// The configuration file parser on arbitrary text and on YAML built from arbitrary JSON.
    #[test]
    fn config_file_parser(text in ".{0,200}", value in json_value()) {
        let _ = Config::from_yaml_str(&text, "fuzz", std::iter::empty());
        let yaml = serde_yaml_ng::to_string(&value).unwrap();
        let _ = Config::from_yaml_str(&yaml, "fuzz", std::iter::empty());
        let with_dcs = format!(
            "scope: s\nname: n\nraft:\n  self_addr: 127.0.0.1:2380\n  data_dir: /tmp/x\nbootstrap:\n  dcs: {}\n",
            serde_json::to_string(&value).unwrap()
        );
        let _ = Config::from_yaml_str(&with_dcs, "fuzz", std::iter::empty());
    }

    /// Permissions: an open port makes everyone an agent; with a password nobody is an agent
    /// without the proof; no certificate name outside the lists is ever admin without
    /// credentials; nobody gets anything without TLS, proof, credentials or read_open; with
    /// `agent_names` and TLS, no certificate outside its patterns is an agent.
    #[test]
    fn permission_classification(
        tls in any::<bool>(), password in any::<bool>(), read_open in any::<bool>(),
        credentials_configured in any::<bool>(), proof in any::<bool>(), credentials in any::<bool>(),
        names in prop::collection::vec("[a-z]{1,6}", 0..3), restrict_agents in any::<bool>(),
    ) {
        let policy = Policy {
            tls,
            password,
            admin_names: vec!["pgquorumctl".into()],
            read_names: vec!["monitor".into()],
            agent_names: restrict_agents.then(|| vec!["no*".into()]),
            read_open,
            credentials: credentials_configured,
        };
        let presented = Presented { cert_names: names.clone(), proof, credentials };
        let caller = classify(&policy, &presented);
        let level = caller.as_ref().ok().map(|c| c.access);
        if tls && restrict_agents && level == Some(Access::Agent) {
            prop_assert!(names.iter().any(|n| n.starts_with("no")));
        }
        if !tls && !password {
            prop_assert_eq!(level, Some(Access::Agent));
        }
        if password && !proof {
            prop_assert_ne!(level, Some(Access::Agent));
        }
        let named_admin = tls && names.iter().any(|n| n == "pgquorumctl");
        if level == Some(Access::Admin) {
            prop_assert!(named_admin || (credentials_configured && credentials));
        }
        // Password only: nothing proven, nothing given, reads closed.
        let admitted = tls || proof || read_open || (credentials_configured && credentials);
        if password && !admitted {
            prop_assert_eq!(level, None);
        }
    }
}
