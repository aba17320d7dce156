//! The storage backend: an ordered key-value store with atomic multi-key
//! writes and an explicit flush. The engine needs nothing more, so a second
//! backend (a distributed SQL engine, say) implements [`Backend`] and the
//! engine does not change.
//!
//! **Architecture Invariant:** this module is the only code that knows sled.
//! Its submodule `postgres` (the `postgres` feature) is the only code that
//! knows PostgreSQL.

use std::path::Path;

use crate::error::{OpenError, StorageError};

#[cfg(feature = "postgres")]
pub(crate) mod postgres;

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One write of an atomic batch: put a value, or delete with `None`.
pub type Write = (Vec<u8>, Option<Vec<u8>>);

/// An ordered key-value store.
pub trait Backend: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// The entries with `start <= key < end`, in key order.
    fn range<'a>(
        &'a self,
        start: &[u8],
        end: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Entry, StorageError>> + 'a>;

    /// The last entry with `start <= key < end`, if any. The default walks
    /// the range; a backend with reverse iteration answers in one seek.
    fn last_in(&self, start: &[u8], end: &[u8]) -> Result<Option<Entry>, StorageError> {
        let mut last = None;
        for entry in self.range(start, end) {
            last = Some(entry?);
        }
        Ok(last)
    }

    /// Applies every write or none, even across a crash.
    fn apply(&self, writes: Vec<Write>) -> Result<(), StorageError>;

    /// Makes every applied write durable before returning.
    fn flush(&self) -> Result<(), StorageError>;

    /// Bytes the store occupies on disk, when known.
    fn size_on_disk(&self) -> Option<u64>;

    /// The store's shared log, when several engine processes may write it
    /// at once (docs/storage.md, "Several processes"); `None`, the
    /// default, for a store one process writes, such as sled's.
    fn shared_log(&self) -> Option<&dyn SharedLog> {
        None
    }
}

/// A partition's head as a shared store records it: the log's size and a
/// stamp that changes with every batch that writes state back, so that a
/// process can tell whether the state it reads under its memtable is still
/// the one its memtable was built over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedHead {
    /// The partition's last log position.
    pub size: u64,
    /// Raised by every batch that writes the partition's state back.
    pub stamp: u64,
}

/// Appending to a partition of a store that several engine processes write
/// at once: a partition's writer locks the partition's head, catches up
/// with what other processes appended, decides its group, and appends it
/// in the locked transaction, which moves the head. The database enforces
/// the lock, so two processes never assign one position (issue #15).
pub trait SharedLog: Send + Sync {
    /// Locks `partition`'s head until [`SharedLog::append`] or
    /// [`SharedLog::unlock`], waiting while another process holds it.
    /// Returns the head, or `None` when the store has not recorded one yet
    /// (the caller reads the log's end, which no one else can move now).
    fn lock(&self, partition: u32) -> Result<Option<SharedHead>, StorageError>;

    /// Applies `writes` atomically and moves `partition`'s head from
    /// `from` to `to`, in the transaction [`SharedLog::lock`] opened,
    /// which it commits (releasing the lock). Fails, writing nothing, if
    /// the head is not `from` (`None`: not recorded) or the lock was lost.
    fn append(
        &self,
        partition: u32,
        writes: Vec<Write>,
        from: Option<SharedHead>,
        to: SharedHead,
    ) -> Result<(), StorageError>;

    /// Releases `partition`'s lock without writing.
    fn unlock(&self, partition: u32);
}

/// sled's page cache, in bytes.
const CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// How long `open` waits for a lock that is still held, for the case of a
/// store just closed in this process (see `SledBackend::open`).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The sled backend: one tree, every write of a batch in one
/// `Tree::apply_batch`, which sled applies atomically.
pub struct SledBackend {
    db: sled::Db,
}

fn backend_error(error: sled::Error) -> StorageError {
    StorageError::Backend {
        message: error.to_string(),
    }
}

impl SledBackend {
    /// Opens (creating if needed) the sled database at `path`.
    pub fn open(path: &Path) -> Result<SledBackend, OpenError> {
        let config = sled::Config::new()
            .path(path)
            // sled's default page cache is 1 GiB; the engine's hot set is
            // the tail of the log and the instances being fired, so a
            // smaller cache keeps a big store's memory bounded (issue #7:
            // RSS <= 300 MB at 10M events) at no cost to throughput.
            .cache_capacity(CACHE_BYTES)
            // Writes are flushed explicitly after every group commit; the
            // background flush only matters in the buffered mode.
            .flush_every_ms(Some(500));
        // sled lets go of its file lock a moment after the last handle of
        // a database is dropped: its background I/O jobs hold the file
        // until they finish. So an engine dropped and reopened in the same
        // process can find the lock still held for a few milliseconds (more
        // on a loaded machine). Retrying for a bounded time makes that
        // reopen work; a store really in use by another process still gets
        // `Locked`, after `LOCK_WAIT` instead of at once, never a hang.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let mut cleared = false;
        loop {
            match config.open() {
                Ok(db) => return Ok(SledBackend { db }),
                // sled 0.34 writes a snapshot of its page table to
                // `snap.<lsn>.generating` and renames it when complete; a
                // process killed in between leaves the unfinished file, and
                // sled then reads it as the newest snapshot and refuses
                // every open as corrupt (`get_snapshot_files` does not skip
                // it; spacejam/sled#1527). The file is never a complete
                // snapshot, so removing it loses nothing: sled recovers from
                // the previous snapshot and its log. Only done after sled
                // refused the open, when it had taken the store's lock, so
                // no live process is writing that file.
                Err(sled::Error::Corruption { .. })
                    if !cleared && remove_unfinished_snapshots(path) > 0 =>
                {
                    cleared = true;
                }
                Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(OpenError::Locked {
                            path: path.to_owned(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(error) => return Err(OpenError::Storage(backend_error(error))),
            }
        }
    }

    /// A database in a temporary location that sled deletes on drop.
    pub fn temporary() -> Result<SledBackend, OpenError> {
        sled::Config::new()
            .temporary(true)
            .open()
            .map(|db| SledBackend { db })
            .map_err(|error| OpenError::Storage(backend_error(error)))
    }
}

/// Removes the unfinished snapshot files (`snap.*.generating`) sled left in
/// `path` when it was killed while writing one; returns how many.
fn remove_unfinished_snapshots(path: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.")
            && name.ends_with(".generating")
            && std::fs::remove_file(entry.path()).is_ok()
        {
            tracing::warn!(
                file = %entry.path().display(),
                "removed an unfinished sled snapshot left by a crash"
            );
            removed += 1;
        }
    }
    removed
}

impl Backend for SledBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db
            .get(key)
            .map(|value| value.map(|v| v.to_vec()))
            .map_err(backend_error)
    }

    fn range<'a>(
        &'a self,
        start: &[u8],
        end: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Entry, StorageError>> + 'a> {
        Box::new(self.db.range(start.to_vec()..end.to_vec()).map(|item| {
            item.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(backend_error)
        }))
    }

    fn last_in(&self, start: &[u8], end: &[u8]) -> Result<Option<Entry>, StorageError> {
        match self.db.range(start.to_vec()..end.to_vec()).next_back() {
            None => Ok(None),
            Some(item) => item
                .map(|(k, v)| Some((k.to_vec(), v.to_vec())))
                .map_err(backend_error),
        }
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StorageError> {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
        self.db.apply_batch(batch).map_err(backend_error)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map(|_| ()).map_err(backend_error)
    }

    fn size_on_disk(&self) -> Option<u64> {
        self.db.size_on_disk().ok()
    }
}

/// What a [`Hooked`] backend runs around the writes of the backend it
/// wraps. Each hook defaults to doing nothing; an error from a `before_`
/// hook fails the call without reaching the inner backend.
pub trait Hooks: Send + Sync + 'static {
    /// Runs before every [`Backend::apply`].
    fn before_apply(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Runs before every [`Backend::flush`].
    fn before_flush(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Runs after every [`Backend::flush`] that succeeded.
    fn after_flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// A backend that delegates every call to `inner` and runs `hooks` around
/// its writes: the one wrapper behind the tests' injected failures and the
/// benchmark's extra `fdatasync`, so neither restates the trait method by
/// method.
pub struct Hooked<B, H> {
    inner: B,
    hooks: H,
}

impl<B: Backend, H: Hooks> Hooked<B, H> {
    /// `inner`, with `hooks` around its writes.
    pub fn new(inner: B, hooks: H) -> Hooked<B, H> {
        Hooked { inner, hooks }
    }

    /// The hooks (to read what they counted, say).
    pub fn hooks(&self) -> &H {
        &self.hooks
    }
}

impl<B: Backend, H: Hooks> Backend for Hooked<B, H> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }

    fn range<'a>(
        &'a self,
        start: &[u8],
        end: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Entry, StorageError>> + 'a> {
        self.inner.range(start, end)
    }

    fn last_in(&self, start: &[u8], end: &[u8]) -> Result<Option<Entry>, StorageError> {
        self.inner.last_in(start, end)
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StorageError> {
        self.hooks.before_apply()?;
        self.inner.apply(writes)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.hooks.before_flush()?;
        self.inner.flush()?;
        self.hooks.after_flush()
    }

    fn size_on_disk(&self) -> Option<u64> {
        self.inner.size_on_disk()
    }
}
