//! The model disk: a [`Backend`] that keeps what is written apart from
//! what is durable, and that crashes, fails and rots on command.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::backend::{Backend, Entry, Write};
use crate::error::StorageError;

/// An in-memory [`Backend`] with the durability semantics sled promises and
/// no stronger (see the module documentation of [`crate::sim`]):
///
/// - a batch ([`Backend::apply`]) is applied whole or not at all;
/// - [`Backend::flush`] makes every batch applied before it durable;
/// - [`SimBackend::crash`] keeps the durable image plus a prefix, chosen
///   by the caller, of the batches applied since the last flush: never part
///   of a batch, never a later batch without the earlier ones.
///
/// Faults are armed one at a time and fire once: the next `apply` or
/// `flush` fails with an I/O error (a failed apply applies nothing; a
/// failed flush makes nothing durable, so its batches may still be lost or
/// kept by a crash), or the disk dies after a number of writes (a power
/// cut, also in the middle of a recovery). A stored value can be corrupted
/// in place, for the verifier to catch, and restored.
#[derive(Debug, Default)]
pub struct SimBackend {
    disk: Mutex<Disk>,
}

#[derive(Debug, Default)]
struct Disk {
    /// What readers see: every applied batch.
    written: BTreeMap<Vec<u8>, Vec<u8>>,
    /// What survives any crash.
    durable: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The batches applied since the last successful flush, in order.
    pending: Vec<Vec<Write>>,
    /// Fail the next apply, once.
    fail_apply: bool,
    /// Fail the next flush, once.
    fail_flush: bool,
    /// Die once this many more applies and flushes have run.
    writes_left: Option<u32>,
    /// Set once the disk died: every call fails, as in a killed process.
    dead: bool,
    counts: Counts,
}

/// What a [`SimBackend`] did, for a run's figures.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Batches applied.
    pub applies: u64,
    /// Flushes that succeeded.
    pub flushes: u64,
    /// Applies and flushes failed by an armed fault.
    pub failed: u64,
}

fn io_error(what: &str) -> StorageError {
    StorageError::Backend {
        message: format!("simulated I/O error: {what}"),
    }
}

fn dead() -> StorageError {
    StorageError::Backend {
        message: "the simulated disk is gone: the process crashed".to_owned(),
    }
}

impl Disk {
    fn alive(&self) -> Result<(), StorageError> {
        if self.dead {
            return Err(dead());
        }
        Ok(())
    }

    /// Counts one write towards an armed power cut; fails once it struck.
    fn spend_write(&mut self) -> Result<(), StorageError> {
        self.alive()?;
        match self.writes_left {
            Some(0) => {
                self.dead = true;
                Err(dead())
            }
            Some(left) => {
                self.writes_left = Some(left - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn apply_to(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, writes: &[Write]) {
    for (key, value) in writes {
        match value {
            Some(value) => map.insert(key.clone(), value.clone()),
            None => map.remove(key),
        };
    }
}

impl SimBackend {
    /// An empty disk.
    pub fn new() -> SimBackend {
        SimBackend::default()
    }

    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        // A panic while the lock was held leaves the maps consistent: every
        // mutation below is a whole-map operation done after its checks.
        self.disk
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many applied batches are not durable yet.
    pub fn pending_batches(&self) -> usize {
        self.disk().pending.len()
    }

    /// Crashes the process: this disk dies (every later call on it fails,
    /// as nothing a killed process does reaches the disk), and the returned
    /// disk holds what a restart finds: the durable image and the first
    /// `keep` of the pending batches (all of them if `keep` is larger).
    pub fn crash(&self, keep: usize) -> SimBackend {
        let mut disk = self.disk();
        disk.dead = true;
        let mut image = disk.durable.clone();
        for batch in disk.pending.iter().take(keep) {
            apply_to(&mut image, batch);
        }
        SimBackend {
            disk: Mutex::new(Disk {
                written: image.clone(),
                durable: image,
                ..Disk::default()
            }),
        }
    }

    /// Fails the next [`Backend::apply`] with an I/O error, once.
    pub fn fail_next_apply(&self) {
        self.disk().fail_apply = true;
    }

    /// Fails the next [`Backend::flush`] with an I/O error, once.
    pub fn fail_next_flush(&self) {
        self.disk().fail_flush = true;
    }

    /// Kills the disk once `writes` more applies and flushes have run: the
    /// next one after those fails and so does everything after it, until
    /// [`SimBackend::crash`] gives the disk a restart finds.
    pub fn die_after(&self, writes: u32) {
        self.disk().writes_left = Some(writes);
    }

    /// Disarms every fault that has not struck yet.
    pub fn disarm(&self) {
        let mut disk = self.disk();
        disk.fail_apply = false;
        disk.fail_flush = false;
        disk.writes_left = None;
    }

    /// Whether a fault is armed and has not struck yet.
    pub fn armed(&self) -> bool {
        let disk = self.disk();
        disk.fail_apply || disk.fail_flush || disk.writes_left.is_some()
    }

    /// Whether the disk died (a crash or an armed power cut).
    pub fn is_dead(&self) -> bool {
        self.disk().dead
    }

    /// The keys with `start <= key < end`, for picking one to corrupt.
    pub fn keys_in(&self, start: &[u8], end: &[u8]) -> Vec<Vec<u8>> {
        self.disk()
            .written
            .range(start.to_vec()..end.to_vec())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Flips bit `bit` (modulo the value's length in bits) of the value at
    /// `key`, written and durable alike: rot on the disk, which every
    /// reader then sees. Returns the value as it was, for
    /// [`SimBackend::restore`]; `None` when there is no such value.
    pub fn corrupt(&self, key: &[u8], bit: usize) -> Option<Vec<u8>> {
        let mut disk = self.disk();
        let original = disk.written.get(key)?.clone();
        if original.is_empty() {
            return None;
        }
        let bit = bit % (original.len() * 8);
        let mut rotten = original.clone();
        rotten[bit / 8] ^= 1 << (bit % 8);
        disk.written.insert(key.to_vec(), rotten.clone());
        if disk.durable.contains_key(key) {
            disk.durable.insert(key.to_vec(), rotten);
        }
        Some(original)
    }

    /// Puts back the value [`SimBackend::corrupt`] returned.
    pub fn restore(&self, key: &[u8], value: Vec<u8>) {
        let mut disk = self.disk();
        if disk.durable.contains_key(key) {
            disk.durable.insert(key.to_vec(), value.clone());
        }
        disk.written.insert(key.to_vec(), value);
    }

    /// What the disk did so far.
    pub fn counts(&self) -> Counts {
        self.disk().counts
    }
}

impl Backend for SimBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let disk = self.disk();
        disk.alive()?;
        Ok(disk.written.get(key).cloned())
    }

    fn range<'a>(
        &'a self,
        start: &[u8],
        end: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Entry, StorageError>> + 'a> {
        let disk = self.disk();
        if let Err(error) = disk.alive() {
            return Box::new(std::iter::once(Err(error)));
        }
        if start >= end {
            return Box::new(std::iter::empty());
        }
        // A copy, so that no lock is held while the engine iterates: sled's
        // iterators do not block writers either.
        let entries: Vec<Result<Entry, StorageError>> = disk
            .written
            .range(start.to_vec()..end.to_vec())
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Box::new(entries.into_iter())
    }

    fn last_in(&self, start: &[u8], end: &[u8]) -> Result<Option<Entry>, StorageError> {
        let disk = self.disk();
        disk.alive()?;
        if start >= end {
            return Ok(None);
        }
        Ok(disk
            .written
            .range(start.to_vec()..end.to_vec())
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StorageError> {
        let mut disk = self.disk();
        disk.spend_write()?;
        if std::mem::take(&mut disk.fail_apply) {
            disk.counts.failed += 1;
            return Err(io_error("the batch was not written"));
        }
        apply_to(&mut disk.written, &writes);
        disk.pending.push(writes);
        disk.counts.applies += 1;
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        let mut disk = self.disk();
        disk.spend_write()?;
        if std::mem::take(&mut disk.fail_flush) {
            disk.counts.failed += 1;
            return Err(io_error("the flush did not complete"));
        }
        let pending = std::mem::take(&mut disk.pending);
        for batch in &pending {
            apply_to(&mut disk.durable, batch);
        }
        disk.counts.flushes += 1;
        Ok(())
    }

    fn size_on_disk(&self) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Write {
        (key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))
    }

    fn keys(backend: &SimBackend) -> Vec<String> {
        backend
            .range(b"", b"\xff")
            .map(|e| String::from_utf8_lossy(&e.expect("alive").0).into_owned())
            .collect()
    }

    #[test]
    fn a_crash_keeps_the_durable_image_and_a_prefix_of_whole_batches() {
        let backend = SimBackend::new();
        backend.apply(vec![put("a", "1")]).expect("apply");
        backend.flush().expect("flush");
        backend
            .apply(vec![put("b", "2"), put("c", "3")])
            .expect("apply");
        backend.apply(vec![put("d", "4")]).expect("apply");
        assert_eq!(keys(&backend), ["a", "b", "c", "d"]);
        assert_eq!(keys(&backend.crash(0)), ["a"]);
        assert_eq!(keys(&backend.crash(1)), ["a", "b", "c"]);
        assert_eq!(keys(&backend.crash(9)), ["a", "b", "c", "d"]);
        // The crashed disk is gone for the process that used it.
        assert!(backend.get(b"a").is_err());
        assert!(backend.apply(vec![put("e", "5")]).is_err());
    }

    #[test]
    fn armed_failures_fire_once_and_a_failed_apply_writes_nothing() {
        let backend = SimBackend::new();
        backend.fail_next_apply();
        assert!(backend.apply(vec![put("a", "1"), put("b", "2")]).is_err());
        assert!(keys(&backend).is_empty());
        backend
            .apply(vec![put("a", "1")])
            .expect("the next apply works");
        backend.fail_next_flush();
        assert!(backend.flush().is_err());
        // The failed flush made nothing durable...
        assert!(keys(&backend.crash(0)).is_empty());
        let backend = SimBackend::new();
        backend.apply(vec![put("a", "1")]).expect("apply");
        backend.fail_next_flush();
        assert!(backend.flush().is_err());
        // ...and the next one does.
        backend.flush().expect("the next flush works");
        assert_eq!(keys(&backend.crash(0)), ["a"]);
        assert_eq!(backend.counts().failed, 1);
    }

    #[test]
    fn a_power_cut_strikes_after_the_armed_number_of_writes() {
        let backend = SimBackend::new();
        backend.die_after(2);
        backend.apply(vec![put("a", "1")]).expect("first write");
        backend.flush().expect("second write");
        assert!(backend.apply(vec![put("b", "2")]).is_err());
        assert!(backend.is_dead());
        assert!(backend.get(b"a").is_err());
        assert_eq!(keys(&backend.crash(5)), ["a"]);
    }

    #[test]
    fn corruption_flips_one_bit_and_restores() {
        let backend = SimBackend::new();
        backend.apply(vec![put("a", "xy")]).expect("apply");
        backend.flush().expect("flush");
        let original = backend.corrupt(b"a", 9).expect("a value");
        assert_eq!(original, b"xy");
        assert_eq!(backend.get(b"a").expect("get"), Some(b"x{".to_vec()));
        assert_eq!(
            backend.crash(0).get(b"a").expect("get"),
            Some(b"x{".to_vec()),
            "the rot is on the disk"
        );
        let backend = SimBackend::new();
        backend.apply(vec![put("a", "xy")]).expect("apply");
        let original = backend.corrupt(b"a", 0).expect("a value");
        backend.restore(b"a", original);
        assert_eq!(backend.get(b"a").expect("get"), Some(b"xy".to_vec()));
        assert_eq!(backend.corrupt(b"missing", 0), None);
    }
}
