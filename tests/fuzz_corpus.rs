//! Replays the fuzz corpus (`fuzz/corpus/<target>/`) on stable, through the
//! same entry points the cargo-fuzz targets call (issue #6): every input
//! the fuzzers kept, and every crash they found once fixed, runs in every
//! `cargo test`.

use crate::util::root;

/// The bundle target's entry point, the very file the fuzz target includes.
#[path = "../fuzz/common/bundle.rs"]
mod bundle;

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

#[test]
fn the_bundle_corpus_replays() {
    assert!(replay("bundle", bundle::fuzz_bundle) >= 4);
}

#[test]
fn the_bundle_seeds_verify_against_the_fuzzers_checkpoint() {
    // The seeds are real exports of the store the trusted checkpoint was
    // taken from; if they stopped verifying (a format change), the fuzzer
    // would only explore the rejection of malformed input.
    let text = std::fs::read_to_string(root().join("fuzz").join("bundle-checkpoint.txt"))
        .expect("fuzz/bundle-checkpoint.txt");
    let trusted = strive_audit::Checkpoint::parse(&text)
        .expect("a checkpoint")
        .checkpoint;
    let seed = std::fs::read(root().join("fuzz/corpus/bundle/seed-full.jsonl")).expect("the seed");
    let report = strive_audit::verify_bundle(seed.as_slice(), &trusted).expect("a report");
    assert!(report.ok(), "{:?}", report.problems);
    assert!(report.events > 0 && report.newer_than_checkpoint > 0);
}
