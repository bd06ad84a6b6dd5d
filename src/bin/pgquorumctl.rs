//! `pgquorumctl`: the operator CLI.

use std::process::ExitCode;

use clap::Parser;
use pgquorum::ctl::{run, Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into `pgquorumctl list | head` after `head` exited
    // panicked. With the default action the CLI ends quietly, like any Unix filter.
    // SAFETY: set once at start-up, before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    pgquorum::logging::init(Some("WARNING"));
    match cli.transport() {
        Ok(transport) => pgquorum::grpc::transport::install(transport),
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    }
    match run(&cli).await {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            // patronictl's (click's) form, which scripts match on.
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
