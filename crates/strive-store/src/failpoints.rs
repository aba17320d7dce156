//! Failpoints for the crash tests (issue #6), compiled only with the
//! `failpoints` feature, which only `cargo test` turns on: a release build
//! has neither this module nor the checks.
//!
//! A process learns which failpoints to honour from its environment, so a
//! test can crash the `strive` binary it spawns at an exact point:
//!
//! - `STRIVE_CRASH_AT=name[,name...]`: on reaching a named failpoint the
//!   process logs `failpoint reached: <name>` at error level and aborts
//!   (no destructor, no flush: as close to SIGKILL as a process can do to
//!   itself), so the test can tell that the point was really reached.
//! - `FAILPOINTS=name=actions;...`: the `fail` crate's own actions
//!   (`sleep(ms)`, `pause`, `panic`, ...), for anything else.

use std::sync::Once;

/// The environment variable naming the failpoints that abort the process.
pub const CRASH_AT: &str = "STRIVE_CRASH_AT";

/// What the process logs on reaching a crash failpoint, before the name.
pub const REACHED: &str = "failpoint reached: ";

static INSTALL: Once = Once::new();

/// Evaluates the failpoint `name`, configuring the failpoints from the
/// environment the first time any is reached. Use `fail_point!`.
pub fn reached(name: &str) {
    INSTALL.call_once(install_from_env);
    fail::fail_point!(name);
}

/// Reads `STRIVE_CRASH_AT` and `FAILPOINTS`. A malformed entry is logged
/// and skipped rather than panicking: the test then sees its failpoint
/// never fire and fails with that message.
fn install_from_env() {
    if let Ok(names) = std::env::var(CRASH_AT) {
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let owned = name.to_owned();
            if let Err(error) = fail::cfg_callback(name, move || crash(&owned)) {
                tracing::error!(failpoint = name, %error, "cannot configure the failpoint");
            }
        }
    }
    if let Ok(spec) = std::env::var("FAILPOINTS") {
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let configured = match entry.split_once('=') {
                Some((name, actions)) => fail::cfg(name.trim(), actions.trim()),
                None => Err("expected name=actions".to_owned()),
            };
            if let Err(error) = configured {
                tracing::error!(entry, %error, "cannot configure the failpoint");
            }
        }
    }
}

fn crash(name: &str) {
    // The message goes through tracing, which the binary writes to stderr
    // unbuffered, so it is out before the abort.
    tracing::error!("{REACHED}{name}");
    std::process::abort();
}
