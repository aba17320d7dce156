//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `strive` binary built for these tests on the store `db`.
pub fn strive(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strive"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("STRIVE_DB")
        .output()
        .expect("the strive binary runs")
}

/// A command's stdout and stderr, for messages and `contains` checks.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Copies a directory tree (a closed store, say).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}
