//! What the PostgreSQL backend applied without waiting for the disk, kept
//! so that a lost connection can never make it acknowledge a write the
//! server lost.
//!
//! `apply` commits with `synchronous_commit = off`: the transaction is
//! visible at once and its commit record is in the server's WAL buffers,
//! not yet on disk. `flush` then commits a small transaction with
//! `synchronous_commit = on`, which flushes the WAL up to its own commit
//! record and so every earlier one: the groups applied before it are
//! durable. This is the split the engine's pipeline is built for (the
//! writer decides the next group while the flusher waits for the disk),
//! and what sled's apply and flush are.
//!
//! The danger is a connection lost in between. A server that crashed has
//! lost the applied groups whose WAL was not flushed, and a flush that
//! simply reconnected and committed would report them durable. So each
//! apply leaves a sample (one key it wrote and the value it left), and a
//! connection lost while samples are pending puts the backend in doubt:
//! before its next call it reads the samples back. If every one is there,
//! the groups survived (a transaction is all or nothing), and the calls go
//! on; if one is not, the backend is lost for good: every later call fails
//! and the engine, poisoned, must be reopened, which recovers from what
//! the server kept.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

/// Samples kept at most; past that (many groups applied without a flush,
/// as in the buffered mode) a doubt cannot be settled and is a loss.
const MAX_SAMPLES: usize = 4096;

/// One applied group's sample: a key it wrote and the value it left there
/// (`None`: deleted).
struct Sample {
    generation: u64,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

#[derive(Default)]
struct State {
    /// Groups applied so far.
    generation: u64,
    /// The samples of the groups applied and not yet flushed.
    samples: VecDeque<Sample>,
    /// Samples were dropped past [`MAX_SAMPLES`].
    truncated: bool,
    /// A connection was lost while samples were pending.
    doubt: bool,
    /// Why the backend can no longer be trusted, once it cannot.
    lost: Option<String>,
}

/// Why a doubt could not be settled.
pub(super) enum Unsettled {
    /// Applied writes are gone: the backend is lost.
    Lost(String),
    /// Reading the samples back failed; try again.
    Read(postgres::Error),
}

/// The backend's applied and unflushed groups. See the module docs.
#[derive(Default)]
pub(super) struct Unflushed {
    state: Mutex<State>,
}

impl Unflushed {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a group applied (committed without waiting for the disk)
    /// whose writes left `value` at `key`.
    pub(super) fn applied(&self, key: Vec<u8>, value: Option<Vec<u8>>) {
        let mut state = self.state();
        state.generation += 1;
        let generation = state.generation;
        state.samples.push_back(Sample {
            generation,
            key,
            value,
        });
        if state.samples.len() > MAX_SAMPLES {
            state.samples.pop_front();
            state.truncated = true;
        }
    }

    /// The groups applied so far: a flush that starts now covers them.
    pub(super) fn generation(&self) -> u64 {
        self.state().generation
    }

    /// Whether any applied group is not known to be durable.
    pub(super) fn pending(&self) -> bool {
        let state = self.state();
        !state.samples.is_empty() || state.truncated
    }

    /// A flush that started at `generation` succeeded.
    pub(super) fn flushed(&self, generation: u64) {
        let mut state = self.state();
        while state
            .samples
            .front()
            .is_some_and(|sample| sample.generation <= generation)
        {
            state.samples.pop_front();
        }
        if state.samples.is_empty() {
            state.truncated = false;
        }
    }

    /// A connection was lost: with groups pending, they are in doubt.
    pub(super) fn connection_lost(&self) {
        let mut state = self.state();
        if !state.samples.is_empty() || state.truncated {
            state.doubt = true;
        }
    }

    /// Settles a doubt by reading each pending key back with `read`
    /// (each key's newest sample: an older one was overwritten by a later
    /// group). Holds the lock while reading, so no group is applied on a
    /// server that may have lost earlier ones.
    pub(super) fn settle(
        &self,
        mut read: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, postgres::Error>,
    ) -> Result<(), Unsettled> {
        let mut state = self.state();
        if let Some(lost) = &state.lost {
            return Err(Unsettled::Lost(lost.clone()));
        }
        if !state.doubt {
            return Ok(());
        }
        let mut missing = state.truncated.then(|| {
            "too many groups were applied without a flush to check which survived".to_owned()
        });
        let newest: BTreeMap<&[u8], &Option<Vec<u8>>> = state
            .samples
            .iter()
            .map(|sample| (sample.key.as_slice(), &sample.value))
            .collect();
        for (key, value) in newest {
            if missing.is_some() {
                break;
            }
            if read(key).map_err(Unsettled::Read)? != *value {
                missing = Some(format!(
                    "a write applied before the connection was lost is gone (key {})",
                    crate::keys::show(key)
                ));
            }
        }
        match missing {
            Some(why) => {
                tracing::error!(%why, "PostgreSQL lost writes that were not yet durable");
                state.lost = Some(why.clone());
                Err(Unsettled::Lost(why))
            }
            None => {
                tracing::info!("the writes applied before the lost connection are all there");
                state.doubt = false;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(rows: &[(&[u8], &[u8])]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        rows.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn a_doubt_is_settled_only_when_every_pending_write_is_there() {
        let unflushed = Unflushed::default();
        unflushed.applied(b"a".to_vec(), Some(b"1".to_vec()));
        unflushed.applied(b"a".to_vec(), Some(b"2".to_vec()));
        unflushed.applied(b"b".to_vec(), None);
        assert!(unflushed.pending());
        // No doubt without a lost connection: nothing is read.
        assert!(unflushed.settle(|_| panic!("read without a doubt")).is_ok());
        unflushed.connection_lost();
        // The newest value of each key is what must be there.
        let kept = server(&[(b"a", b"2")]);
        let read = |key: &[u8]| Ok(kept.get(key).cloned());
        assert!(unflushed.settle(read).is_ok());
        unflushed.connection_lost();
        let lost = server(&[(b"a", b"1")]);
        let read = |key: &[u8]| Ok(lost.get(key).cloned());
        assert!(matches!(unflushed.settle(read), Err(Unsettled::Lost(_))));
        // Lost for good, whatever is read later.
        assert!(matches!(
            unflushed.settle(|_| Ok(None)),
            Err(Unsettled::Lost(_))
        ));
    }

    #[test]
    fn a_flush_clears_what_it_covered_and_a_loss_after_it_is_no_doubt() {
        let unflushed = Unflushed::default();
        unflushed.applied(b"a".to_vec(), Some(b"1".to_vec()));
        let covered = unflushed.generation();
        unflushed.applied(b"b".to_vec(), Some(b"2".to_vec()));
        unflushed.flushed(covered);
        assert!(unflushed.pending(), "the second group is not covered");
        unflushed.flushed(unflushed.generation());
        assert!(!unflushed.pending());
        unflushed.connection_lost();
        assert!(unflushed.settle(|_| panic!("nothing was in doubt")).is_ok());
    }
}
