//! `strive`: the command-line tool for admins, services' operators and
//! auditors. Glue only: it parses arguments, calls the libraries, prints
//! results and turns errors into exit codes (0 success, 1 refused or
//! failed, 2 usage).

mod cli;
mod client;
mod commands;
mod failure;
mod files;
mod output;

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
    // A damaged store must not end in a panic's backtrace (issue #17): the
    // libraries return errors, and should a dependency panic on bytes it
    // cannot read anyway, the panic becomes a message and exit 1.
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| commands::run(cli)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(failure::Failure::new(
            "internal",
            format!(
                "strive stopped on an internal error ({what}); if the store is damaged, \
                 `strive verify` says where, and a backup or an exported bundle restores it"
            ),
        ))
    });
    match result {
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
    // Colours only to a terminal, never into a log file or a pipe.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
}
