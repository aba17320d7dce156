//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) on stable, through the
//! same entry points the cargo-fuzz targets call (issue #6): every input
//! the fuzzers kept, and every crash they found once fixed, runs in every
//! `cargo test`.

use crate::util::root;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = root().join("fuzz").join("corpus").join(target);
    let mut count = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).expect("a corpus file");
        // A panic names the input, so it can be minimised and kept.
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "{target} panics on {}", path.display());
        count += 1;
    }
    count
}

#[test]
fn the_definition_corpus_replays() {
    assert!(replay("definition", strive_core::fuzz_definition) >= 60);
}

#[test]
fn the_guard_corpus_replays() {
    assert!(replay("guard", strive_core::fuzz_guard) >= 20);
}
