//! Deterministic simulation of the engine (issue #16), only with the `sim`
//! feature, which no release build turns on.
//!
//! The whole engine runs on one thread: its writers run inline on the
//! caller's thread (no writer or flusher thread; a writer's step decides
//! and applies a group, a flusher's step flushes and answers the oldest
//! applied one, and up to two groups wait in between, as with the
//! threads), its clock is the
//! simulator's [`crate::ManualClock`] (the write-back interval included),
//! and every choice is drawn from one generator seeded by
//! [`SimConfig::seed`]. So one seed gives one run, step for step, and a
//! failure reported with its seed and step ([`SimFailure`]) happens again
//! when that seed is run again.
//!
//! # The fault model
//!
//! [`SimBackend`] is the disk. Its semantics are the ones sled promises
//! for the calls the engine makes, and no stronger:
//!
//! - a batch is applied whole or not at all, also across a crash;
//! - a successful flush makes every batch applied before it durable;
//! - a crash keeps the durable image and a *prefix* of the batches applied
//!   since the last successful flush (any length, from none to all, drawn
//!   from the seed): never part of a batch, never a batch without the ones
//!   before it;
//! - a failed apply applies nothing; a failed flush makes nothing durable
//!   (its batches stay pending: a crash may keep or drop them);
//! - a corrupted value is one flipped bit in a stored event block, on the
//!   disk, seen by every reader. A flip that leaves the block decoding to
//!   the same digests and event bytes (zstd ignores a few bits of its own
//!   encoding) changes no history and is counted as benign.
//!
//! What it does not model: torn batches (sled's batches are atomic), a
//! flush that reports success and loses data, or rot in anything but the
//! event blocks (the only records `verify` is required to check byte for
//! byte).
//!
//! # A run
//!
//! [`run`] opens an engine over a fresh [`SimBackend`], deploys the
//! definitions, then takes [`SimConfig::steps`] steps. A step is either a
//! fault, drawn with the chances in [`Faults`] (a crash and reopen, a clean
//! restart, a power cut after 0 to 3 more writes, a failed apply or flush,
//! a corrupted block, a clock jump of days), or a client's command: a start
//! of any workflow with generated data; a fire of an event the instance's
//! stage allows (one time in twenty, any event) with a payload generated
//! from the definition, by a random actor with one of the transition's
//! roles, with an expected sequence number that is right, missing or one
//! ahead (a lost race), and half the time a command id; a burst of two to
//! six such fires decided as one group per partition, answered only when
//! a later flusher step (or command) flushes it; a retry of an
//! acknowledged command by its id, or of one whose answer a failure lost;
//! a deadline sweep ([`crate::Engine::fire_due`]) on the simulated clock.
//! A third of the reopens have a power cut armed, which strikes during the
//! recovery or right after it.
//!
//! # The checks
//!
//! After every open and at the end ([`SimFailure`] on the first that
//! fails):
//!
//! - every acknowledged event is at its acknowledged position with its
//!   acknowledged hash, instance and sequence number;
//! - every known instance's chain is whole (sequence 1, 2, ..., each event
//!   naming the previous one's hash) and ends at its snapshot's sequence,
//!   head and stage, which is at least every acknowledged sequence;
//! - a fired deadline never fires again and never comes back;
//! - the caller's verifier passes (replay equals the snapshots; the
//!   integration test passes strive-audit's);
//! - retried commands answer their first outcome, from their idempotency
//!   record.
//!
//! And at every step: a refused command sent alone changed nothing (no
//! batch, no event, the same snapshot); the engine refuses writes only
//! after an injected I/O fault; a corrupted block is reported by the
//! verifier (unless benign), which passes again once it is restored.
//!
//! **Architecture Invariant:** the simulator reaches the engine through
//! its public API plus two hooks: [`crate::Engine`]'s inline mode and the
//! negative controls ([`Control`]), which exist only with this feature.

mod backend;
pub(crate) mod control;
mod driver;
mod payload;

use std::sync::Arc;

pub use backend::{Counts, SimBackend};
pub use control::Control;
pub use driver::{FaultCounts, Faults, SimConfig, SimFailure, SimReport, Verify, run};

use crate::engine::Engine;
use crate::error::OpenError;
use crate::records::Options;

/// Opens an engine over `backend` in the deterministic mode: its writers
/// run on the calling thread (each command a group, flushed before it
/// returns) and measure the write-back interval on `options.clock`. Commands must come from one
/// thread at a time for a run to repeat.
pub fn open_inline(backend: Arc<SimBackend>, options: Options) -> Result<Engine, OpenError> {
    Engine::with_backend_inline(backend, options)
}
