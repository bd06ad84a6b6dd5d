//! `pgquorum-jepsen`: run fault-injection scenarios against a pgquorum cluster built from
//! network namespaces on this machine (root only).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};

use pgquorum_jepsen::nemesis::SCENARIOS;
use pgquorum_jepsen::net;
use pgquorum_jepsen::report;
use pgquorum_jepsen::scenario::{self, RunOptions, RunOutcome, ScenarioError};

#[derive(Parser)]
#[command(
    name = "pgquorum-jepsen",
    about = "Fault-injection suite for pgquorum: agents and PostgreSQL in network namespaces, \
             nemeses, a checked workload. Needs root."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario.
    Run {
        /// One of: kill-agent, kill-postmaster, kill-node, stall-agent, isolate-primary,
        /// majority-minority, bridge, netem, restart-cluster, mixed, switchover, sighup-storm,
        /// corrupt-keyspace, restart-pg-partitioned, forced-stop, duplicate-name.
        #[arg(long)]
        scenario: String,
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        duration: Duration,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Report directory (default: jepsen/results/<scenario>-<seed>, <scenario>-tls-<seed> with --tls).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Run every scenario, then print a table.
    All {
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        duration: Duration,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Runs per scenario (seeds seed, seed+1, ...).
        #[arg(long, default_value_t = 1)]
        runs: u64,
        /// Only these scenarios (comma-separated).
        #[arg(long, value_delimiter = ',')]
        scenarios: Vec<String>,
        /// Parent of the per-run report directories (default: jepsen/results).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// A short fixed set (kill-node, isolate-primary with TLS, stall-agent, 30 s each): CI's
    /// check. `--tls` runs all three with TLS.
    Smoke {
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        duration: Duration,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Parent of the per-run report directories (default: jepsen/results/smoke).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        common: Common,
    },
    /// Remove what a crashed run left: pgqj-* namespaces, processes in them, temp directories.
    Cleanup,
}

#[derive(Args, Clone)]
struct Common {
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: u32,
    /// Hosts in the cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The pgquorum agent binary (default: `pgquorum` next to this executable).
    #[arg(long)]
    agent: Option<PathBuf>,
    /// Replication mode of the cluster: `on` bootstraps it with `synchronous_mode: true`,
    /// `strict` adds `synchronous_mode_strict: true`. With either, the checker counts any lost
    /// acknowledged write as a violation. `--synchronous-mode` alone means `on`.
    #[arg(long, value_enum, default_value_t = SyncMode::Off, num_args = 0..=1, default_missing_value = "on")]
    synchronous_mode: SyncMode,
    /// Seconds the cluster gets to recover once every fault is healed.
    #[arg(long, default_value_t = 30)]
    recovery_bound: u64,
    /// Keep the temp directory (data directories, configs, logs).
    #[arg(long)]
    keep_temp: bool,
    /// Mutual TLS on every agent's gRPC and REST port (certificates of a CA made for the run;
    /// the fault suite's own gRPC calls use pgquorumctl's or a node's). The workload's
    /// PostgreSQL connections stay plain.
    #[arg(long)]
    tls: bool,
}

/// `--synchronous-mode`: the replication mode the cluster is bootstrapped with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SyncMode {
    /// Asynchronous replication: a failover may lose up to `maximum_lag_on_failover`.
    Off,
    /// `synchronous_mode: true`.
    On,
    /// `synchronous_mode: true` and `synchronous_mode_strict: true`.
    Strict,
}

/// The smoke's runs, and which of them runs with TLS whatever `--tls` says: one of the three,
/// so the secured transport is checked under a partition (Raft and forwarding reconnect over
/// TLS, the failover is driven through it) without a second full smoke.
const SMOKE: &[(&str, bool)] = &[
    ("kill-node", false),
    ("isolate-primary", true),
    ("stall-agent", false),
];

/// `60s`, `2m`, `1500ms` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("not a duration: {text:?}"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" | "min" => Ok(Duration::from_secs(60 * n)),
        _ => Err(format!("unknown unit in {text:?} (use ms, s or m)")),
    }
}

fn results_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results")
}

fn default_agent() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this executable's path")?;
    Ok(me.with_file_name("pgquorum"))
}

fn options(
    common: &Common,
    scenario: &str,
    duration: Duration,
    seed: u64,
    out: PathBuf,
    tls: bool,
) -> anyhow::Result<RunOptions> {
    let agent = match &common.agent {
        Some(a) => a.clone(),
        None => default_agent()?,
    };
    if !agent.is_file() {
        bail!(
            "the agent binary {} does not exist; build it with `cargo build --bins` \
             (same profile as this binary) or pass --agent PATH",
            agent.display()
        );
    }
    if !SCENARIOS.contains(&scenario) {
        bail!("unknown scenario {scenario:?}; known: {}", SCENARIOS.join(", "));
    }
    Ok(RunOptions {
        scenario: scenario.to_string(),
        duration,
        seed,
        clients: common.clients.max(1),
        nodes: common.nodes,
        out,
        agent,
        synchronous_mode: common.synchronous_mode != SyncMode::Off,
        synchronous_mode_strict: common.synchronous_mode == SyncMode::Strict,
        tls,
        recovery_bound: Duration::from_secs(common.recovery_bound),
        keep_temp: common.keep_temp,
    })
}

/// One run of a list: scenario, seed, with TLS.
type Planned = (String, u64, bool);

/// A finished run (with TLS or not), or the scenario, seed and why it could not run.
type Row = Result<(RunOutcome, bool), (String, u64, String)>;

/// Run a list of (scenario, seed, tls); print each summary and a table; true when all passed.
fn run_many(
    runs: &[Planned],
    duration: Duration,
    common: &Common,
    out: &std::path::Path,
) -> anyhow::Result<bool> {
    let mut rows: Vec<Row> = Vec::new();
    for (scenario, seed, tls) in runs {
        let dir = match tls {
            true => format!("{scenario}-tls-{seed}"),
            false => format!("{scenario}-{seed}"),
        };
        let opts = options(common, scenario, duration, *seed, out.join(dir), *tls)?;
        match scenario::run(&opts) {
            Ok(outcome) => {
                println!("{}", report::summary_text(&outcome.history, &outcome.result));
                println!("report: {}\n", outcome.out.display());
                rows.push(Ok((outcome, *tls)));
            }
            Err(ScenarioError::Interrupted) => {
                println!("interrupted: everything torn down");
                break;
            }
            Err(e) => {
                println!("{scenario} (seed {seed}) could not run: {e}\n");
                rows.push(Err((scenario.clone(), *seed, e.to_string())));
            }
        }
    }
    print_table(&rows);
    Ok(!scenario::interrupted()
        && rows.len() == runs.len()
        && rows
            .iter()
            .all(|r| r.as_ref().is_ok_and(|(o, _)| o.result.passed())))
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<24} {:>5} {:>7} {:>7} {:>7} {:>10} {:>16} {:>10} {:>8}",
        "scenario", "seed", "ok", "failed", "unknown", "violations", "max unavail (s)", "recovery", "time"
    );
    for row in rows {
        match row {
            Ok((o, tls)) => {
                let c = &o.result.counts;
                let name = match tls {
                    true => format!("{} (tls)", o.scenario),
                    false => o.scenario.clone(),
                };
                let recovery = o
                    .result
                    .recovery
                    .took_ms
                    .map_or("never".to_string(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
                println!(
                    "{:<24} {:>5} {:>7} {:>7} {:>7} {:>10} {:>16.1} {:>10} {:>6.0} s",
                    name,
                    o.seed,
                    c.ok,
                    c.failed,
                    c.unknown,
                    o.result.violations.len(),
                    o.max_unavailability_ms() as f64 / 1000.0,
                    recovery,
                    o.elapsed.as_secs_f64()
                );
            }
            Err((scenario, seed, e)) => println!("{scenario:<24} {seed:>5} ERROR: {e}"),
        }
    }
}

fn main() -> ExitCode {
    tracing_init();
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("pgquorum-jepsen: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn tracing_init() {
    // The library's warnings (leftovers found, no netem...) on stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn real_main() -> anyhow::Result<bool> {
    let cli = Cli::parse();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "must run as root: it creates network namespaces and runs agents inside them \
             (try: sudo {} ...)",
            std::env::args()
                .next()
                .unwrap_or_else(|| "pgquorum-jepsen".into())
        );
    }
    scenario::install_signal_handlers();
    let _lock = net::lock()?;
    match cli.command {
        Cmd::Cleanup => {
            let removed = net::cleanup_leftovers()?;
            if removed.is_empty() {
                println!("nothing to clean up");
            }
            for line in removed {
                println!("{line}");
            }
            Ok(true)
        }
        Cmd::Run {
            scenario: name,
            duration,
            seed,
            out,
            common,
        } => {
            let dir = match common.tls {
                true => format!("{name}-tls-{seed}"),
                false => format!("{name}-{seed}"),
            };
            let out = out.unwrap_or_else(|| results_root().join(dir));
            let opts = options(&common, &name, duration, seed, out, common.tls)?;
            match scenario::run(&opts) {
                Ok(outcome) => {
                    println!("{}", report::summary_text(&outcome.history, &outcome.result));
                    println!("report: {}", outcome.out.display());
                    Ok(outcome.result.passed())
                }
                Err(ScenarioError::Interrupted) => bail!("interrupted: everything torn down"),
                Err(e) => Err(e.into()),
            }
        }
        Cmd::All {
            duration,
            seed,
            runs,
            scenarios,
            out,
            common,
        } => {
            let names: Vec<String> = if scenarios.is_empty() {
                SCENARIOS.iter().map(|s| s.to_string()).collect()
            } else {
                scenarios
            };
            let list: Vec<Planned> = names
                .iter()
                .flat_map(|s| (0..runs.max(1)).map(move |k| (s.clone(), seed + k, common.tls)))
                .collect();
            run_many(&list, duration, &common, &out.unwrap_or_else(results_root))
        }
        Cmd::Smoke {
            duration,
            seed,
            out,
            common,
        } => {
            let list: Vec<Planned> = SMOKE
                .iter()
                .map(|(s, tls)| (s.to_string(), seed, *tls || common.tls))
                .collect();
            run_many(
                &list,
                duration,
                &common,
                &out.unwrap_or_else(|| results_root().join("smoke")),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn smoke_scenarios_exist() {
        for (s, _) in SMOKE {
            assert!(SCENARIOS.contains(s));
        }
        assert!(
            SMOKE.iter().any(|(_, tls)| *tls),
            "the smoke runs one scenario over TLS"
        );
    }
}
