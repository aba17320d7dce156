//! Printing: the only module that writes to stdout and stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};

use crate::failure::Failure;

/// Prints a line to stdout.
pub fn line(text: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    written(writeln!(out, "{text}"));
}

/// Prints text to stdout as it is, without adding a newline (a signed
/// note, or a witness's cosignature lines, each already ending in one).
pub fn text(text: &str) {
    let mut out = std::io::stdout().lock();
    written(out.write_all(text.as_bytes()));
}

/// Prints a value as pretty JSON to stdout.
pub fn json(value: &impl Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => line(text),
        Err(error) => eprintln!("strive: cannot print JSON: {error}"),
    }
}

/// Handles the result of a write to stdout. A closed pipe (`strive history
/// x | head`) means the reader has what it wanted: like ripgrep, strive then
/// stops quietly with success instead of panicking as `println!` would.
/// Any other failure is reported on stderr.
fn written(result: std::io::Result<()>) {
    if let Err(error) = result {
        quiet_on_closed_pipe(&error);
        eprintln!("strive: cannot write to stdout: {error}");
    }
}

/// Ends the process quietly with success when `error` is a closed pipe:
/// the one rule for every command's output, streamed exports included.
pub fn quiet_on_closed_pipe(error: &std::io::Error) {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
}

/// A note for the operator on stderr, such as that a copy is being read.
pub fn note(text: impl std::fmt::Display) {
    eprintln!("strive: {text}");
}

/// Reports a failure: always a message on stderr; in JSON mode also a JSON
/// document on stdout, so tools reading stdout see why.
pub fn error(failure: &Failure) {
    eprintln!("strive: {}", failure.message);
    if failure.json {
        let mut body = json!({"kind": failure.kind, "message": failure.message});
        if let (Some(details), Value::Object(map)) = (&failure.details, &mut body) {
            map.insert("details".to_owned(), details.clone());
        }
        json(&json!({ "error": body }));
    }
}

/// A buffered writer on stdout, for exports that stream many lines.
pub fn stream() -> std::io::BufWriter<std::io::StdoutLock<'static>> {
    std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock())
}

/// A progress bar on stderr for a long run over `total` items, only when
/// stderr is a terminal (never in pipes, logs or tests).
pub fn progress(total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    Some(bar)
}
