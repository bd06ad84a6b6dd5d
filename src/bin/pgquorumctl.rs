//! `pgquorumctl`: the operator CLI.

use std::process::ExitCode;

use clap::Parser;
use pgquorum::ctl::{run, Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
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
            pgquorum::ctl::stdout::print(&out, true);
            ExitCode::SUCCESS
        }
        Err(e) => {
            // patronictl's (click's) form, which scripts match on.
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}
