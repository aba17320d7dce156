//! `strive`: the command-line tool for admins, services' operators and
//! auditors. Glue only: it parses arguments, calls the libraries, prints
//! results and turns errors into exit codes (0 success, 1 refused or
//! failed, 2 usage).

mod audit_cmd;
mod campaign_cmd;
mod cli;
mod client;
mod commands;
mod output;
mod serve_cmd;
mod stress;

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(error) => {
            // clap prints help and version to stdout with exit 0, usage
            // errors to stderr with exit 2.
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
        }
    };
    install_tracing();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            output::error(&error);
            ExitCode::from(error.exit_code())
        }
    }
}

/// Logs go to stderr so that stdout stays machine-readable. The filter comes
/// from `STRIVE_LOG` (for example `STRIVE_LOG=debug`), warnings by default.
fn install_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRIVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
