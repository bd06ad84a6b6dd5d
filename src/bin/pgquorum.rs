//! `pgquorum`: the agent daemon, `pgquorum demo`, and `pgquorum --validate-config`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pgquorum::config::Config;
use pgquorum::demo::{Demo, DemoOptions};

#[derive(Debug, Parser)]
#[command(
    name = "pgquorum",
    version,
    about = "PostgreSQL high availability with Raft built in"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    /// The agent's configuration file (Patroni layout with a `raft` section).
    config: Option<PathBuf>,
    /// Check a configuration file, report every problem in it, and exit.
    #[arg(long, value_name = "FILE")]
    validate_config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Internal: the fence guard the agent starts beside PostgreSQL (see src/fence.rs).
    #[command(hide = true)]
    FenceGuard { data_dir: PathBuf },
    /// Start a local 3-node cluster on 127.0.0.1 and keep it up until Ctrl-C.
    Demo {
        /// Directory for configs, data and logs (default: a new one under the temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Port of the first agent; the others use the next two.
        #[arg(long, default_value_t = 2401)]
        base_port: u16,
        /// Secure the demo: generate a cluster CA and certificates, mutual TLS on gRPC,
        /// HTTPS on REST, PostgreSQL replication over TLS with a client certificate.
        #[arg(long)]
        tls: bool,
    },
    /// Write a cluster CA, one certificate per node and a client certificate for pgquorumctl
    /// (PEM; keys 0600) for mutual TLS on the agents' gRPC port (docs/security.md).
    GenerateCerts {
        /// Directory to write into (created if missing; existing files are replaced).
        #[arg(long)]
        out: PathBuf,
        /// Comma-separated nodes, each NAME (a DNS name or an IP) or NAME=IP.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// Comma-separated extra client certificates, NAME.pem/NAME-key.pem with common name
        /// NAME: e.g. the PostgreSQL replication role for `hostssl replication NAME … cert`.
        #[arg(long, value_delimiter = ',')]
        clients: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.validate_config {
        return validate(path);
    }
    if let Some(Cmd::FenceGuard { data_dir }) = &cli.command {
        return pgquorum::fence::run_guard(data_dir);
    }
    if let Some(Cmd::GenerateCerts { out, nodes, clients }) = &cli.command {
        return generate_certs(out, nodes, clients);
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = match (&cli.command, &cli.config) {
        (Some(Cmd::Demo { dir, base_port, tls }), _) => {
            pgquorum::logging::init(None);
            runtime.block_on(demo(DemoOptions {
                bootstrap_parameters: Vec::new(),
                tls: *tls,
                dir: dir.clone(),
                base_port: *base_port,
                nodes: 3,
                exe: None,
                extra_config: String::new(),
                postgres: true,
            }))
        }
        (Some(Cmd::FenceGuard { .. } | Cmd::GenerateCerts { .. }), _) => unreachable!("handled above"),
        (None, Some(path)) => runtime.block_on(agent(path)),
        (None, None) => {
            eprintln!("usage: pgquorum CONFIG_FILE | pgquorum demo | pgquorum --validate-config FILE");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgquorum: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(path: &std::path::Path) -> ExitCode {
    match pgquorum::config::print_validation(path, Config::validate(path)) {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    }
}

async fn agent(path: &std::path::Path) -> anyhow::Result<()> {
    let loaded = Config::load(path)?;
    pgquorum::logging::init_agent(&loaded.config.log)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    tracing::info!(config = %path.display(), name = %loaded.config.name, scope = %loaded.config.scope, "pgquorum agent starting");
    pgquorum::agent::run(
        loaded.config,
        Some(path.to_path_buf()),
        pgquorum::agent::shutdown_signal(),
    )
    .await?;
    Ok(())
}

async fn demo(opts: DemoOptions) -> anyhow::Result<()> {
    // Listen for Ctrl-C from the start, so an early one stops the demo cleanly too.
    let mut interrupted = Box::pin(pgquorum::agent::shutdown_signal());
    let mut demo = Demo::start(&opts).await?;
    println!(
        "Starting a 3-node pgquorum cluster (3 agents, 3 PostgreSQL servers) in {} ...",
        demo.dir.display()
    );
    if opts.tls {
        println!(
            "TLS: certificates in {}; gRPC with mutual TLS (only node* certificates are agents), REST over \
             HTTPS, PostgreSQL replication over TLS with the {} client certificate.",
            demo.dir.join(pgquorum::demo::TLS_DIR).display(),
            pgquorum::demo::DEMO_REPLICATION_USER
        );
    } else {
        println!(
            "Note: the demo runs open — its gRPC ports have no TLS and no raft.password, so anyone on this \
             machine can reach them; `pgquorum demo --tls` or docs/security.md show a secure setup."
        );
    }
    let healthy = tokio::select! {
        r = demo.wait_postgres_healthy(Duration::from_secs(180)) => Some(r),
        _ = &mut interrupted => None,
    };
    let view = match healthy {
        Some(Ok(view)) => view,
        Some(Err(e)) => {
            demo.stop().await;
            return Err(e.into());
        }
        None => {
            println!("\nInterrupted: stopping ...");
            demo.stop().await;
            return Ok(());
        }
    };
    println!("{}", pgquorum::ctl::list::render("demo", &view));
    let hosts = vec!["127.0.0.1"; opts.nodes].join(",");
    let ports: Vec<String> = (0..opts.nodes).map(|i| opts.pg_port(i).to_string()).collect();
    println!(
        "\nConnect to the primary, wherever it is:\n  psql 'host={hosts} port={} user=postgres password={} dbname=postgres target_session_attrs=read-write'",
        ports.join(","),
        pgquorum::demo::DEMO_SUPERUSER_PASSWORD
    );
    println!("\nTry, in another shell:");
    let certs = demo.dir.join(pgquorum::demo::TLS_DIR);
    let (ctl_flags, curl) = match opts.tls {
        true => (
            format!(" {}", pgquorum::demo::ctl_tls_flags(&certs).join(" ")),
            format!(
                "curl -s --cacert {} https://127.0.0.1:{}/patroni",
                certs.join("ca.pem").display(),
                opts.rest_port(0)
            ),
        ),
        false => (
            String::new(),
            format!("curl -s http://127.0.0.1:{}/patroni", opts.rest_port(0)),
        ),
    };
    println!("  pgquorumctl --endpoint {}{ctl_flags} list", demo.endpoints[0]);
    println!(
        "  pgquorumctl --endpoint {}{ctl_flags} raft status",
        demo.endpoints[0]
    );
    println!("  {curl}");
    println!("Configs and logs: {}\nPress Ctrl-C to stop.", demo.dir.display());
    interrupted.await;
    println!("\nStopping ...");
    let dir = demo.dir.clone();
    demo.stop().await;
    println!("Stopped. Data kept in {}", dir.display());
    Ok(())
}

fn generate_certs(out: &std::path::Path, nodes: &[String], clients: &[String]) -> ExitCode {
    use pgquorum::grpc::certs::{generate_with_clients, NodeSpec};
    let clients: Vec<&str> = clients.iter().map(String::as_str).collect();
    let result = nodes
        .iter()
        .map(|n| NodeSpec::parse(n))
        .collect::<Result<Vec<_>, _>>()
        .and_then(|specs| generate_with_clients(out, &specs, &clients));
    match result {
        Ok(generated) => {
            for file in generated.files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("generate-certs: {e}");
            ExitCode::FAILURE
        }
    }
}
