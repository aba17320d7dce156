//! strive's auditor's toolkit: replay, time travel and conformance through
//! the core's transition function; verification of a whole store; the
//! global RFC 6962 Merkle log and its checkpoints (C2SP format, optionally
//! Ed25519-signed); and exports that auditors' tools read (a JSONL audit
//! bundle, CSV, XES, OCEL 2.0, PNML).
//!
//! It is pure: it reads events handed to it as `(stored hash, stored
//! bytes)` and snapshots as [`strive_core::Instance`], and knows no store.
//! With the feature `store`, the module `store` feeds it from a
//! `strive_store::Engine`: the one piece the CLI and `strive serve` share.
//!
//! ```
//! use serde_json::json;
//! use strive_audit::{ProblemCode, Verifier, VerifyOptions};
//! use strive_core::{Actor, Event, EventKind, GENESIS, definition_hash, event_hash};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let definition = json!({
//!     "id": "approval", "title": "Approval", "roles": [{"id": "chief"}],
//!     "stages": [{"id": "draft", "kind": "initial"}, {"id": "approved", "kind": "terminal"}],
//!     "transitions": [{"event": "approve", "from": "draft", "to": "approved", "roles": ["chief"]}]
//! });
//! let deploy = Event {
//!     v: 1, gseq: 1, partition: 0, instance: "@workflow/approval".into(), seq: 1, prev: GENESIS.into(),
//!     kind: EventKind::Deploy, workflow: "approval".into(), version: 1,
//!     definition_hash: definition_hash(&definition), from: None, event: "deploy".into(),
//!     transition: None, to: String::new(), actor: Actor::new("admin", &["admin"]),
//!     at: "2026-05-01T08:00:00Z".parse()?, command_id: None, payload: definition,
//!     effects: vec![], cause: None, signature: None,
//! };
//! let bytes = deploy.encode();
//!
//! // The log as stored verifies...
//! let mut verifier = Verifier::new(VerifyOptions::default());
//! verifier.event(&event_hash(&bytes), &bytes);
//! let report = verifier.finish();
//! assert!(report.ok(), "{:?}", report.problems);
//! assert_eq!(report.size, 1);
//!
//! // ...and one flipped byte does not.
//! let mut altered = bytes.clone();
//! let at = altered.len() - 20;
//! altered[at] ^= 0x01;
//! let mut verifier = Verifier::new(VerifyOptions::default());
//! verifier.event(&event_hash(&bytes), &altered);
//! let report = verifier.finish();
//! assert!(!report.ok());
//! assert!(report.problems.iter().any(|p| p.code == ProblemCode::HashMismatch
//!     || p.code == ProblemCode::UnreadableEvent));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod access;
mod bundle;
mod checkpoint;
mod cosignature;
mod error;
mod export;
mod merkle;
mod ocel;
mod parallel;
mod pnml;
mod policy;
mod problem;
mod publish;
mod receipt;
mod replay;
mod simulate;
#[cfg(feature = "store")]
pub mod store;
mod verify;
mod witness;

pub use bundle::{BundleError, BundleReport, verify_bundle};
pub use checkpoint::{
    Checkpoint, CheckpointError, MAX_ORIGIN_BYTES, NoteSignature, SignedCheckpoint, SigningKey,
    check_origin,
};
pub use cosignature::{WitnessKey, WitnessVerifier};
pub use error::Error;
pub use export::{
    BUNDLE_FORMAT, BundleWriter, CSV_COLUMNS, CsvWriter, ExportSummary, Filter, Prover, XesWriter,
    xml_escape,
};
pub use merkle::{Hash, MerkleLog, ProofError, empty_root, verify_consistency, verify_inclusion};
pub use ocel::{
    CAUSE, Mapping, MappingError, ObjectId, OcelSummary, OcelWriter, PARENT, Relation, SUBJECT,
};
pub use parallel::{ReplayReport, replay_runs, verify_runs};
pub use pnml::to_pnml;
pub use policy::{Policy, PolicyError, PolicyReport, PolicyWitness};
pub use problem::{Problem, ProblemCode};
pub use publish::{MAX_ENTRY_BYTES, PublishError, TileFile, TilePublisher, tile_path};
pub use receipt::{RECEIPT_FORMAT, Receipt, ReceiptError, ReceiptSummary};
pub use replay::{At, ReplayError, Replayed, Replayer, differences, replay};
pub use simulate::{
    Divergence, SIMULATED_VERSION, Selection, SimulateError, Simulation, SimulationReport,
};
/// The key text forms live in the core, which the engine's writer shares
/// (it checks actors' command signatures); re-exported where they were.
pub use strive_core::{KeyError, VerifierKey};
pub use verify::{EventRun, PartitionSummary, Report, Verifier, VerifyOptions, verify};
pub use witness::{
    AddCheckpoint, MAX_PROOF_LINES, MAX_REQUEST_BYTES, Refusal, WITNESS_FORMAT, Witness,
    WitnessStateError, WitnessedLog,
};
