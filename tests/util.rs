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

/// Deletes every state record of the closed store `db`, keeping only the
/// log (blocks `b`, tiles `r`), the format record and the partition count,
/// so that its next open rebuilds the state by deciding every logged
/// command again.
pub fn keep_only_the_log(db: &Path) {
    use strive_store::{Backend, SledBackend, Write};
    let backend = SledBackend::open(db).expect("raw open");
    let state: Vec<Write> = backend
        .range(&[], &[0xFF])
        .map(|entry| entry.expect("read").0)
        .filter(|key| {
            !matches!(key[0], b'b' | b'r')
                && key.as_slice() != b"mformat"
                && key.as_slice() != b"mpartitions"
        })
        .map(|key| (key, None))
        .collect();
    assert!(!state.is_empty(), "a store has state records");
    backend.apply(state).expect("write");
    backend.flush().expect("flush");
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

/// Every durable event of every partition, partition by partition, each
/// partition's in log order: what a test that once read "the global log"
/// reads in a store of any number of partitions.
pub fn every_event(engine: &strive_store::Engine) -> Vec<strive_store::StoredEvent> {
    (0..engine.partitions())
        .flat_map(|p| engine.events_in(p, 1))
        .collect::<Result<_, _>>()
        .expect("every event reads")
}

/// Each partition's durable size, by partition.
pub fn sizes(engine: &strive_store::Engine) -> Vec<u64> {
    (0..engine.partitions())
        .map(|p| engine.last_gseq_in(p))
        .collect()
}
