//! The bundle verifier's fuzz entry point, shared by the cargo-fuzz target
//! `bundle` and the stable replay in `tests/fuzz_corpus.rs`, so both run
//! exactly this code. The bundle is what an attacker hands an auditor, so
//! any bytes at all must give a report or an error, never a panic.

/// The checkpoint the auditor kept: of the store the seed bundles were
/// exported from, so that mutated seeds reach the proof checks.
const TRUSTED: &str = include_str!("../bundle-checkpoint.txt");

/// Verifies `data` as a JSONL bundle against the fixed trusted checkpoint.
pub fn fuzz_bundle(data: &[u8]) {
    let trusted = strive_audit::Checkpoint::parse(TRUSTED)
        .expect("fuzz/bundle-checkpoint.txt is a checkpoint")
        .checkpoint;
    if let Ok(report) = strive_audit::verify_bundle(data, &trusted) {
        let _ = report.ok();
    }
}
