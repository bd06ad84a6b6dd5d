//! Patroni runbook lines run unchanged against a real 3-node PostgreSQL cluster (issue 15):
//! patronictl's CLUSTER positional, `-r/--role`, `--force`, PATRONICTL_CONFIG_FILE, `version`
//! and `dsn`.

mod common;

use common::pg_load::*;
use common::*;

/// `pgquorumctl ARGS` as a Patroni runbook writes it: (succeeded, stdout, stderr).
async fn ctl(args: &str) -> (bool, String, String) {
    let all: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    run_ctl(&all).await
}

/// The lines of `out` that start with `prefix`.
fn lines_starting<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patroni_runbook_lines_work_unchanged() {
    let tmp = TestDir::new();
    let dir = tmp.path();
    let (demo, opts) = start_pg_cluster(dir, 5461).await;
    let primary = wait_primary(&demo, &opts, "a primary").await;
    let replicas: Vec<usize> = (0..3).filter(|i| *i != primary).collect();
    let node1 = dir.join("node1.yml").display().to_string();

    // `list CLUSTER` / `topology CLUSTER`; another cluster's name is refused.
    let (ok, out, err) = ctl(&format!("-c {node1} list demo")).await;
    assert!(ok, "list demo: {err}");
    for name in names() {
        assert!(out.contains(name), "list shows {name}: {out}");
    }
    let (ok, _, err) = ctl(&format!("-c {node1} topology prod")).await;
    assert!(
        !ok && err.contains("not the asked agent's cluster"),
        "topology prod: {err}"
    );

    // `reload -r master CLUSTER`: the primary only (stdin is not a terminal: no question).
    let (ok, out, err) = ctl(&format!("-c {node1} reload -r master demo")).await;
    assert!(ok, "reload -r master demo: {err}");
    let reloaded = lines_starting(&out, "Reload request received for member ");
    assert_eq!(reloaded.len(), 1, "{out}");
    assert!(
        reloaded[0].starts_with(&format!(
            "Reload request received for member {}",
            names()[primary]
        )),
        "{out}"
    );
    // `reload --role replica CLUSTER`: both replicas, not the primary.
    let (ok, out, err) = ctl(&format!("-c {node1} reload --role replica demo --force")).await;
    assert!(ok, "reload --role replica: {err}");
    let reloaded = lines_starting(&out, "Reload request received for member ");
    assert_eq!(reloaded.len(), 2, "{out}");
    assert!(!out.contains(&format!("member {}:", names()[primary])), "{out}");
    // pgquorumctl's own member-only form keeps working.
    let (ok, out, err) = ctl(&format!("-c {node1} reload node1")).await;
    assert!(
        ok && out.starts_with("Reload request received for member node1"),
        "reload node1: {out}{err}"
    );
    // A wrong cluster name in front of the members is refused, nothing reloaded.
    let (ok, out, err) = ctl(&format!("-c {node1} reload prod node1 --force")).await;
    assert!(
        !ok && err.contains("neither the cluster name \"demo\""),
        "reload prod: {out}{err}"
    );

    // `version CLUSTER`: the tool's line, then every member's agent and PostgreSQL versions.
    let (ok, out, err) = ctl(&format!("-c {node1} version demo")).await;
    assert!(ok, "version demo: {err}");
    assert!(out.starts_with("pgquorumctl version "), "{out}");
    for name in names() {
        assert!(
            lines_starting(&out, &format!("{name}: pgquorum "))
                .iter()
                .any(|l| l.contains(" PostgreSQL 15.")),
            "version demo shows {name} on PostgreSQL 15: {out}"
        );
    }
    // `dsn CLUSTER -r replica`: a replica's address, which libpq connects to (a replica);
    // `dsn CLUSTER`: the primary's.
    let (ok, out, err) = ctl(&format!("-c {node1} dsn demo -r replica")).await;
    assert!(ok, "dsn demo -r replica: {err}");
    let replica_ports: Vec<String> = replicas
        .iter()
        .map(|i| format!("host=127.0.0.1 port={}", opts.pg_port(*i)))
        .collect();
    assert!(replica_ports.contains(&out.trim().to_string()), "{out}");
    let (ok, out, err) = ctl(&format!("-c {node1} dsn demo")).await;
    assert!(ok, "dsn demo: {err}");
    assert_eq!(
        out.trim(),
        format!("host=127.0.0.1 port={}", opts.pg_port(primary)),
        "dsn demo"
    );

    // On a terminal without --force it asks patronictl's question; a "no" restarts nothing.
    let target = replicas[0];
    let before = postmaster_pid(&data_dir(dir, target)).expect("replica postmaster");
    let asked = run_ctl_on_terminal(
        &["-c", &node1, "restart", "demo", names()[target]].map(String::from),
        "n\n",
    )
    .await;
    assert!(
        asked.contains(&format!(
            "Are you sure you want to restart members {}? [y/N]",
            names()[target]
        )),
        "{asked}"
    );
    assert!(asked.contains("Error: Aborted restart"), "{asked}");
    assert_eq!(
        postmaster_pid(&data_dir(dir, target)),
        Some(before),
        "nothing restarted"
    );

    // `restart CLUSTER MEMBER --force` with the file given the patronictl way (environment):
    // that replica's postmaster is a new process afterwards.
    let file = dir
        .join(format!("{}.yml", names()[primary]))
        .display()
        .to_string();
    let (ok, out, err) = run_ctl_env(
        &["restart", "demo", names()[target], "--force"].map(String::from),
        &[("PATRONICTL_CONFIG_FILE", &file)],
    )
    .await;
    assert!(ok, "restart demo {}: {err}", names()[target]);
    assert!(
        out.starts_with(&format!("Success: restart on member {}", names()[target])),
        "{out}"
    );
    assert_eq!(
        lines_starting(&out, "Success: restart on member ").len(),
        1,
        "{out}"
    );
    let after = postmaster_pid(&data_dir(dir, target)).expect("replica postmaster after restart");
    assert_ne!(before, after, "the replica's postmaster was restarted");
    wait_for("the restarted replica streaming again", TIMEOUT, || async {
        streams(&demo, target).await.then_some(())
    })
    .await;

    // `history CLUSTER`, then `switchover CLUSTER --leader a --candidate b --force`.
    let (ok, _, err) = ctl(&format!("-c {node1} history demo")).await;
    assert!(ok, "history demo: {err}");
    let (ok, out, err) = ctl(&format!(
        "-c {node1} switchover demo --leader {} --candidate {} --force",
        names()[primary],
        names()[target]
    ))
    .await;
    assert!(ok, "switchover: {out}{err}");
    wait_for("the candidate as primary", TIMEOUT, || async {
        (common::pg_load::primary(&demo, &opts).await == Some(target)).then_some(())
    })
    .await;
    let (ok, out, err) = ctl(&format!("-c {node1} history demo")).await;
    assert!(ok, "history demo after the switchover: {err}");
    assert!(
        out.contains(names()[target]),
        "history names the new leader: {out}"
    );

    // The other verbs take the cluster name first too.
    failover_key_cleared(&demo).await;
    let (ok, out, err) = ctl(&format!("-c {node1} flush demo switchover")).await;
    assert!(
        ok && out.contains("No pending scheduled switchover"),
        "flush demo switchover: {out}{err}"
    );
    let (ok, out, err) = ctl(&format!("-c {node1} show-config demo")).await;
    assert!(ok && out.contains("ttl"), "show-config demo: {out}{err}");
    let (ok, _, err) = ctl(&format!("-c {node1} pause demo --wait")).await;
    assert!(ok, "pause demo: {err}");
    assert!(cluster_view(&demo).await.expect("a view").config.pause, "paused");
    let (ok, _, err) = ctl(&format!("-c {node1} resume prod")).await;
    assert!(
        !ok && err.contains("not the asked agent's cluster"),
        "resume prod: {err}"
    );
    let (ok, _, err) = ctl(&format!("-c {node1} resume demo --wait")).await;
    assert!(ok, "resume demo: {err}");
    assert!(
        !cluster_view(&demo).await.expect("a view").config.pause,
        "resumed"
    );

    demo.stop().await;
}
