//! The single writer of a partition: it takes queued commands, decides each
//! through the core's transition function against the store plus the
//! writes of earlier commands in the same group, then writes the group's
//! events as a few compressed blocks and its Merkle tiles in one atomic
//! batch, flushes, and only then acknowledges each command.
//!
//! The state the events determine (snapshots, indexes, idempotency
//! records) goes to the memtable (`crate::state`) and is written back every
//! so often, in the batch of some later group, together with the log
//! position it is complete up to. So the log is the source of truth, and
//! recovery replays it from that position (`recover.rs`).
//!
//! - `txn.rs`: the overlay one command is decided in;
//! - `decide.rs`: deploy, start, fire, deadlines;
//! - `access.rs`: grants and revocations, and refusing commands whose
//!   actor lacks a grant (when the engine enforces grants);
//! - `pipeline.rs`: the flusher that makes groups durable and answers;
//! - `recover.rs`: re-deciding recorded events (recovery, upgrade, import);
//! - `shared.rs`: a store several processes write, each group decided and
//!   appended under its partition's head lock after catching up.
//!
//! **Architecture Invariant:** every write to a partition goes through its
//! writer thread, so log positions are assigned without locks and each
//! partition's sequence is gapless: numbers are taken only by accepted
//! commands, inside the batch that records them. (In the simulator's
//! inline mode, `sim` feature, the writer runs on its caller's thread
//! under the engine's lock instead: still one writer per partition.) In a
//! store several processes share, each process has a writer per partition
//! and the database's lock on the partition's head row orders them
//! (`shared.rs`).

mod access;
mod decide;
mod lifecycle;
mod pipeline;
pub(crate) mod recover;
mod shared;
mod txn;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use strive_core::Workflow;
use strive_core::{AppendUndo, TileLog};

use crate::backend::{Backend, SharedHead, Write};
use crate::block::{self, Codec};
use crate::error::{CommandError, DeployError, StorageError};
use crate::keys;
use crate::log::{BlockCache, Tiles};
use crate::records::{DefinitionInfo, Options, Outcome};
use crate::state::{Memtables, Writes};

pub(crate) use access::{
    ActorKeys as ActorKeysRecord, GrantRecord, KeyRecord, Read as AccessRead, View as AccessStore,
    actor_keys, scope as access_scope,
};
pub(crate) use decide::{Cmd, MAX_ID_BYTES, Prepared, check_id, info};
use decide::{Decided, decide};
use pipeline::{Finish, Flusher, Job};
use txn::{GroupState, Txn};
pub(crate) use txn::{InstanceCache, Instances};

/// Write the state back once this many keys wait in the memtable...
const WRITE_BACK_KEYS: usize = 16_384;
/// ...or once this much time has passed since the last write-back, which
/// bounds what a reopen after a crash replays.
const WRITE_BACK_INTERVAL: Duration = Duration::from_secs(1);

/// The bytes of encoded instance records whose decoded form the writer
/// keeps between groups (`InstanceCache`): 64 MiB, about 150,000 of the
/// bench's records, or 10,000-30,000 of the demo's larger ones.
const CACHE_BYTES: usize = 64 << 20;

/// Where a command's result goes.
pub(crate) enum Reply {
    Deploy(SyncSender<Result<Vec<DefinitionInfo>, DeployError>>),
    Command(SyncSender<Result<Outcome, CommandError>>),
    /// A command whose caller awaits a [`crate::Pending`].
    Pending(crate::pending::Completer),
    Deadline(SyncSender<Result<Option<Outcome>, CommandError>>),
    Migrate(SyncSender<Result<Vec<Outcome>, CommandError>>),
}

/// A command for the writer, with where to send its result.
pub(crate) struct Request {
    pub(crate) cmd: Cmd,
    pub(crate) reply: Reply,
}

/// A compiled definition and the position of the group that deployed it in
/// partition 0's log.
struct Installed {
    workflow: Arc<Workflow>,
    position: u64,
}

/// A claimed key's owner: the partition and the value it will write.
type Claim = (u32, Vec<u8>);

/// One partition's state that its writer shares with readers.
pub(crate) struct Part {
    /// The last log position that is durable (or applied, in the buffered
    /// mode), with a condition variable for subscribers.
    pub(crate) committed: Mutex<u64>,
    pub(crate) committed_changed: Condvar,
    /// The Merkle log as applied (its right edge; tiles are in the store).
    pub(crate) tree: RwLock<TileLog>,
}

/// State the writers share with readers.
pub(crate) struct Shared {
    /// Compiled workflows by (id, version).
    workflows: RwLock<HashMap<(String, u32), Installed>>,
    /// The latest version of each workflow.
    pub(crate) latest: RwLock<HashMap<String, u32>>,
    /// Each partition's log position and Merkle log, by partition.
    parts: Vec<Part>,
    /// Set when a write or flush failed. One flag for every partition: a
    /// sled flush is global, so a failed one leaves every partition unsure.
    pub(crate) poisoned: Mutex<Option<String>>,
    /// State applied but not yet written back, one memtable per partition.
    pub(crate) memtables: Memtables,
    /// Decoded blocks for readers.
    pub(crate) blocks: BlockCache,
    /// Keys that must be unique across partitions (a new instance's id and
    /// look-alike skeleton, a command id) claimed by a writer's group that
    /// is not applied yet, with the partition and the value it writes.
    claims: Mutex<HashMap<Vec<u8>, Claim>>,
    /// Group sizes and flush latencies, for [`crate::Engine::stats`].
    pub(crate) stats: crate::stats::Stats,
    /// Flushes are numbered as they start; see [`Shared::flush_covering`].
    flushes_started: AtomicU64,
    /// The number of the last flush that succeeded.
    flushed: Mutex<u64>,
}

impl Shared {
    /// Shared state for partitions whose logs end at `heads` (position,
    /// Merkle log), one per partition.
    pub(crate) fn new(heads: Vec<(u64, TileLog)>) -> Shared {
        let heads = if heads.is_empty() {
            vec![(0, TileLog::new())]
        } else {
            heads
        };
        Shared {
            workflows: RwLock::new(HashMap::new()),
            latest: RwLock::new(HashMap::new()),
            memtables: Memtables::new(heads.len() as u32),
            parts: heads
                .into_iter()
                .map(|(committed, tree)| Part {
                    committed: Mutex::new(committed),
                    committed_changed: Condvar::new(),
                    tree: RwLock::new(tree),
                })
                .collect(),
            poisoned: Mutex::new(None),
            blocks: BlockCache::default(),
            claims: Mutex::new(HashMap::new()),
            stats: crate::stats::Stats::default(),
            flushes_started: AtomicU64::new(0),
            flushed: Mutex::new(0),
        }
    }

    /// What a flusher takes once its group is applied, for
    /// [`Shared::flush_covering`].
    pub(crate) fn flush_ticket(&self) -> u64 {
        self.flushes_started.load(Ordering::SeqCst)
    }

    /// Makes durable every write applied before `ticket` was taken. A
    /// backend's flush covers every write applied before it (sled's is one
    /// log for the whole store), so a flush that another partition's
    /// flusher started after the ticket covers this group too, and this
    /// flusher then waits for it instead of flushing again: with P
    /// partitions, flushes are shared as a group shares one, rather than
    /// P flushes queueing on the one log. Flushes run one at a time. With
    /// one partition every group flushes, as before.
    pub(crate) fn flush_covering(
        &self,
        ticket: u64,
        backend: &dyn Backend,
    ) -> Result<(), StorageError> {
        let Ok(mut flushed) = self.flushed.lock() else {
            return backend.flush();
        };
        if *flushed > ticket {
            return Ok(());
        }
        let number = self.flushes_started.fetch_add(1, Ordering::SeqCst) + 1;
        let started = Instant::now();
        backend.flush()?;
        self.stats.flush(started.elapsed());
        *flushed = number;
        Ok(())
    }

    /// How many partitions the store has.
    pub(crate) fn partitions(&self) -> u32 {
        self.parts.len() as u32
    }

    /// Partition `partition`'s shared state (partition 0's for a number
    /// out of range; callers check the range first).
    pub(crate) fn part(&self, partition: u32) -> &Part {
        let index = partition as usize;
        self.parts.get(index).unwrap_or(&self.parts[0])
    }

    /// The last durable position of `partition`.
    pub(crate) fn committed(&self, partition: u32) -> u64 {
        self.part(partition)
            .committed
            .lock()
            .map(|c| *c)
            .unwrap_or(0)
    }

    /// The compiled workflow `id` at `version`, as applied.
    pub(crate) fn workflow(&self, id: &str, version: u32) -> Option<Arc<Workflow>> {
        self.visible(None, id, version)
    }

    /// The workflow `id` at `version` as partition `partition`'s writer
    /// may use it: partition 0 (whose log records deployments) as soon as
    /// it is applied, every other partition only once it is durable, so no
    /// event of another partition can be durable while the deployment it
    /// names is not (docs/storage.md, "Partitions").
    pub(crate) fn workflow_for(
        &self,
        partition: u32,
        id: &str,
        version: u32,
    ) -> Option<Arc<Workflow>> {
        self.visible(Some(partition), id, version)
    }

    fn visible(&self, partition: Option<u32>, id: &str, version: u32) -> Option<Arc<Workflow>> {
        let durable = match partition {
            Some(p) if p != 0 => self.committed(0),
            _ => u64::MAX,
        };
        self.workflows
            .read()
            .ok()?
            .get(&(id.to_owned(), version))
            .filter(|installed| installed.position <= durable)
            .map(|installed| installed.workflow.clone())
    }

    pub(crate) fn latest(&self, id: &str) -> Option<(u32, Arc<Workflow>)> {
        let version = *self.latest.read().ok()?.get(id)?;
        Some((version, self.workflow(id, version)?))
    }

    /// The latest version of `id` that partition `partition` may use.
    pub(crate) fn latest_for(&self, partition: u32, id: &str) -> Option<(u32, Arc<Workflow>)> {
        let latest = *self.latest.read().ok()?.get(id)?;
        (1..=latest)
            .rev()
            .find_map(|v| self.workflow_for(partition, id, v).map(|w| (v, w)))
    }

    /// Makes a definition deployed by partition 0's group ending at
    /// `position` known.
    pub(crate) fn install(&self, workflow: Arc<Workflow>, version: u32, position: u64) {
        let id = workflow.id().to_owned();
        if let Ok(mut map) = self.workflows.write() {
            map.insert((id.clone(), version), Installed { workflow, position });
        }
        if let Ok(mut latest) = self.latest.write() {
            let entry = latest.entry(id).or_insert(version);
            *entry = (*entry).max(version);
        }
    }

    /// Claims `key` (with the value its writer will write) for
    /// `partition`'s current group. Fails with the value another
    /// partition's pending group claimed it with.
    pub(crate) fn claim(&self, partition: u32, key: &[u8], value: &[u8]) -> ClaimResult {
        let Ok(mut claims) = self.claims.lock() else {
            return ClaimResult::Held;
        };
        match claims.get(key) {
            Some((owner, value)) if *owner != partition => ClaimResult::Taken(value.clone()),
            Some(_) => ClaimResult::Held,
            None => {
                claims.insert(key.to_vec(), (partition, value.to_vec()));
                ClaimResult::New
            }
        }
    }

    /// Releases claims once their group's writes are in its memtable (or
    /// the group failed): from then on readers see the records themselves.
    pub(crate) fn release(&self, keys: &[Vec<u8>]) {
        if keys.is_empty() {
            return;
        }
        if let Ok(mut claims) = self.claims.lock() {
            for key in keys {
                claims.remove(key);
            }
        }
    }

    fn poison(&self, error: &StorageError) {
        if let Ok(mut poisoned) = self.poisoned.lock() {
            poisoned.get_or_insert_with(|| error.to_string());
        }
    }

    pub(crate) fn committed_up_to(&self, partition: u32, last: u64) {
        let part = self.part(partition);
        if let Ok(mut committed) = part.committed.lock() {
            *committed = (*committed).max(last);
            part.committed_changed.notify_all();
        }
    }
}

/// What claiming a key found.
pub(crate) enum ClaimResult {
    /// The key was free and is now this partition's.
    New,
    /// This partition holds it already (or the claims cannot be read).
    Held,
    /// Another partition's pending group holds it, with this value.
    Taken(Vec<u8>),
}

/// A partition's writer thread.
pub(crate) struct Writer {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) options: Options,
    pub(crate) partition: u32,
    pub(crate) next_position: u64,
    /// Decoded instance records as committed: what the store holds.
    pub(crate) cache: InstanceCache,
    /// The Merkle log as this writer has applied it.
    pub(crate) tree: TileLog,
    pub(crate) last_write_back: Instant,
    /// The engine clock's time at the last write-back, which measures the
    /// write-back interval instead of `last_write_back` when `inline`.
    pub(crate) last_write_back_at: jiff::Timestamp,
    /// Whether this writer runs on its callers' threads
    /// (`Engine::with_backend_inline`), where nothing may read the wall
    /// clock, so that a seeded run is repeatable.
    pub(crate) inline: bool,
    pub(crate) codec: Codec,
    /// Whether recorded commands are being decided again (`recover.rs`):
    /// then signatures are kept as recorded, not checked again.
    pub(crate) replaying: bool,
    /// In a shared store (`shared.rs`): the head this writer's view (its
    /// memtable, cache and Merkle log) is the log's at; `None` until it has
    /// caught up, or after a batch whose fate is unknown.
    pub(crate) head: Option<SharedHead>,
    /// In a shared store: the head row as this writer's group locked it
    /// (`None`: not recorded yet), which its append moves on from.
    pub(crate) row: Option<SharedHead>,
}

/// A group's writes, ready to apply.
struct Batch {
    writes: Vec<Write>,
    /// The memtable generation the batch writes back, if it does.
    written_back: Option<u64>,
    /// What puts the writer's Merkle log back as it was before the group,
    /// should the batch fail (`None` when the group appended no events).
    undo: Option<AppendUndo>,
    /// The log as it was before the group, to check the undo with.
    #[cfg(debug_assertions)]
    tree_before: TileLog,
}

impl Writer {
    /// The writer of `partition`, whose log ends where `shared` says.
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        shared: Arc<Shared>,
        options: Options,
        partition: u32,
    ) -> Writer {
        let tree = shared
            .part(partition)
            .tree
            .read()
            .map(|t| t.clone())
            .unwrap_or_default();
        let now = options.clock.now();
        Writer {
            next_position: tree.size() + 1,
            backend,
            shared,
            options,
            partition,
            cache: InstanceCache::new(CACHE_BYTES),
            tree,
            last_write_back: Instant::now(),
            last_write_back_at: now,
            inline: false,
            codec: block::DEFAULT_CODEC,
            replaying: false,
            head: None,
            row: None,
        }
    }

    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        // Group n is flushed and answered by the flusher while this thread
        // decides and applies group n+1: deciding overlaps the disk wait.
        let (jobs, queue) = mpsc::sync_channel::<Job>(2);
        let flusher = self.flusher();
        let flusher = std::thread::Builder::new()
            .name(format!("strive-flusher-{}", self.partition))
            .spawn(move || flusher.run(queue));
        let flusher = match flusher {
            Ok(handle) => Some((handle, jobs)),
            Err(error) => {
                tracing::warn!(%error, "cannot start the flusher thread; flushing inline");
                None
            }
        };
        while let Ok(first) = requests.recv() {
            let mut group = vec![first];
            while group.len() < self.options.max_batch.max(1) {
                match requests.try_recv() {
                    Ok(request) => group.push(request),
                    Err(_) => break,
                }
            }
            let job = self.write_group(group);
            match &flusher {
                Some((_, jobs)) => {
                    if let Err(mpsc::SendError(job)) = jobs.send(job) {
                        // The flusher died (it cannot panic by design); do
                        // its work here rather than leave callers waiting.
                        self.flusher().finish(job);
                    }
                }
                None => self.flusher().finish(job),
            }
        }
        if let Some((handle, jobs)) = flusher {
            drop(jobs);
            let _ = handle.join();
        }
        self.shut_down();
    }

    /// Once every sender is gone: writes the state back, so that the next
    /// open replays nothing, and makes it durable. A poisoned engine writes
    /// nothing: what it holds may not match the disk.
    pub(crate) fn shut_down(&mut self) {
        if self.poisoned().is_some() {
            return;
        }
        if let Err(error) = self.write_back_now() {
            tracing::error!(%error, "final write-back failed; the next open replays the log");
        }
        if let Err(error) = self.backend.flush() {
            tracing::error!(%error, "final flush failed");
        }
    }

    /// Whether the write-back interval has passed since the last one: by
    /// the monotonic clock, or inline by the engine's clock.
    fn write_back_late(&self) -> bool {
        if self.inline {
            let elapsed = self
                .options
                .clock
                .now()
                .duration_since(self.last_write_back_at);
            elapsed >= jiff::SignedDuration::try_from(WRITE_BACK_INTERVAL).unwrap_or_default()
        } else {
            self.last_write_back.elapsed() >= WRITE_BACK_INTERVAL
        }
    }

    /// Notes that the state was just written back.
    pub(crate) fn wrote_back(&mut self) {
        self.last_write_back = Instant::now();
        self.last_write_back_at = self.options.clock.now();
    }

    fn flusher(&self) -> Flusher {
        Flusher {
            backend: self.backend.clone(),
            shared: self.shared.clone(),
            durability: self.options.durability,
            partition: self.partition,
        }
    }

    fn poisoned(&self) -> Option<String> {
        self.shared.poisoned.lock().ok().and_then(|p| p.clone())
    }

    /// Decides and applies one group; the returned job flushes it and
    /// answers its callers.
    fn write_group(&mut self, group: Vec<Request>) -> Job {
        let (refusal, caught_up) = match self.poisoned() {
            Some(cause) => (Some(StorageError::Poisoned { cause }), None),
            // In a shared store, the group is decided under its
            // partition's head lock, after catching up (`shared.rs`).
            None => match self.lock_shared() {
                Ok(caught_up) => (None, caught_up),
                Err(error) => (Some(error), None),
            },
        };
        let mut state = GroupState::default();
        let mut finishes: Vec<Finish> = Vec::with_capacity(group.len());
        let start = self.next_position;
        for request in group {
            if let Some(error) = &refusal {
                let error = error.clone();
                finishes.push(Box::new(move |_| reply_error(request.reply, error)));
                continue;
            }
            let clock = self.options.clock.now();
            let (decided, _) = self.process(request.cmd, clock, &mut state);
            finishes.push(finish(request.reply, decided));
        }
        let mut job = Job {
            finishes,
            applied: None,
            failure: None,
        };
        // Claims end with the group: once applied, its records are in the
        // memtable; if it fails, they were never written.
        let claims = std::mem::take(&mut state.claims);
        if refusal.is_some() {
            return job;
        }
        if state.events.is_empty() && state.writes.is_empty() {
            self.shared.release(&claims);
            self.unlock_shared();
            // What was caught up with is flushed before the answers
            // decided against it are given.
            job.applied = caught_up;
            return job;
        }
        let applied = self.apply(state, start);
        self.shared.release(&claims);
        match applied {
            Ok(last) => job.applied = Some(last),
            Err(error) => {
                tracing::error!(%error, "group commit failed; refusing further writes");
                self.shared.poison(&error);
                // Nothing of this group is acknowledged; numbers are reused
                // only after a reopen re-reads what actually reached disk.
                self.next_position = start;
                self.cache.clear();
                job.failure = Some(error);
            }
        }
        job
    }

    /// Decides one command in `group`; on success its writes join the
    /// group. Returns what was decided and the events the command appended.
    fn process(
        &mut self,
        cmd: Cmd,
        clock: jiff::Timestamp,
        group: &mut GroupState,
    ) -> (Decided, usize) {
        let is_deadline = matches!(cmd, Cmd::Deadline { .. });
        let mut txn = Txn {
            backend: &*self.backend,
            shared: &self.shared,
            group,
            cache: &self.cache,
            writes: Writes::new(),
            instances: Instances::new(),
            events: Vec::new(),
            installed: Vec::new(),
            start_position: self.next_position,
            next_position: self.next_position,
            partition: self.partition,
            claims: Vec::new(),
        };
        let policy = decide::Policy {
            enforce_grants: self.options.enforce_grants,
            require_signatures: self.options.require_signatures,
            check_signatures: !self.replaying,
        };
        let decided = decide(&mut txn, cmd, clock, policy);
        self.next_position = txn.next_position;
        let writes = std::mem::take(&mut txn.writes);
        let instances = std::mem::take(&mut txn.instances);
        let events = std::mem::take(&mut txn.events);
        let installed = std::mem::take(&mut txn.installed);
        let claims = std::mem::take(&mut txn.claims);
        drop(txn);
        let appended = events.len();
        if is_deadline && events.is_empty() && !writes.is_empty() {
            // A deadline consumed without an event: no replay can redo it.
            group.unlogged = true;
        }
        debug_assert!(
            group
                .events
                .last()
                .zip(events.first())
                .is_none_or(|(a, b)| a.position + 1 == b.position),
            "a group's log positions are contiguous"
        );
        group.writes.extend(writes);
        group.instances.extend(instances);
        group.events.extend(events);
        group.installed.extend(installed);
        group.claims.extend(claims);
        (decided, appended)
    }

    /// Writes a decided group: its events as blocks, its tiles, and (when
    /// due) the state. Returns the group's last log position.
    fn apply(&mut self, state: GroupState, start: u64) -> Result<u64, StorageError> {
        let last = self.next_position - 1;
        let due = state.unlogged
            || self.memtable().len() + state.writes.len() >= WRITE_BACK_KEYS
            || self.write_back_late();
        let mut batch = self.log_batch(&state, start)?;
        let GroupState {
            writes,
            instances,
            installed,
            ..
        } = state;
        let (previous, writes) = if due {
            let previous = self.memtable().extend_saving(writes);
            let snapshot = self.memtable().snapshot();
            batch.writes.extend(snapshot.writes);
            batch.writes.push(self.applied_marker(last));
            batch.written_back = Some(snapshot.generation);
            (Some(previous), None)
        } else {
            (None, Some(writes))
        };
        // Negative control of the simulator (issue #16): a write-back whose
        // batch leaves out the events the state it writes came from.
        #[cfg(feature = "sim")]
        if due && crate::sim::control::active(crate::sim::Control::SnapshotWithoutEvent) {
            batch
                .writes
                .retain(|(key, _)| key.first() != Some(&keys::BLOCK));
        }
        if let Err(error) = self.commit(std::mem::take(&mut batch.writes), due) {
            if let Some(previous) = previous {
                self.memtable().restore(previous);
            }
            if let Some(undo) = batch.undo.take() {
                self.tree.undo(undo);
            }
            // Pair assertion: the rollback restores the log the group
            // started from.
            #[cfg(debug_assertions)]
            debug_assert_eq!(
                self.tree, batch.tree_before,
                "the Merkle log is rolled back"
            );
            debug_assert_eq!(self.tree.size() + 1, start);
            return Err(error);
        }
        if let Some(generation) = batch.written_back {
            self.memtable().written_back(generation);
            self.wrote_back();
        }
        if let Some(writes) = writes {
            self.memtable().extend(writes);
        }
        self.cache.extend(instances);
        for (workflow, version) in installed {
            self.shared.install(workflow, version, last);
        }
        // Readers see the new right edge, copied into the vectors they
        // already have.
        if let Ok(mut tree) = self.shared.part(self.partition).tree.write() {
            tree.clone_from(&self.tree);
        }
        Ok(last)
    }

    /// The blocks and Merkle tiles of a group's events. The writer's Merkle
    /// log is extended in place; the batch carries what undoes that.
    fn log_batch(&mut self, state: &GroupState, start: u64) -> Result<Batch, StorageError> {
        let mut writes = Vec::new();
        #[cfg(debug_assertions)]
        let tree_before = self.tree.clone();
        let mut undo = None;
        if !state.events.is_empty() {
            let events: Vec<([u8; 32], &[u8])> = state
                .events
                .iter()
                .map(|e| (e.digest, e.bytes.as_slice()))
                .collect();
            let mut first = start;
            for (count, value) in block::encode_group(&events, self.codec) {
                writes.push((keys::block(self.partition, first), Some(value)));
                first += count as u64;
            }
            debug_assert_eq!(first, self.next_position, "every event is in a block");
            let digests: Vec<[u8; 32]> = state.events.iter().map(|e| e.digest).collect();
            let reader = Tiles {
                backend: &*self.backend,
                partition: self.partition,
            };
            // On `Err` the log is as it was.
            let (tiles, undone) = self.tree.append_undoable(&digests, &reader).map_err(|e| {
                StorageError::Backend {
                    message: format!("cannot extend the Merkle log: {e}"),
                }
            })?;
            for (id, value) in tiles {
                writes.push((keys::tile(self.partition, id.level, id.index), Some(value)));
            }
            debug_assert_eq!(self.tree.size(), self.next_position - 1);
            undo = Some(undone);
        }
        Ok(Batch {
            writes,
            written_back: None,
            undo,
            #[cfg(debug_assertions)]
            tree_before,
        })
    }

    /// This partition's memtable.
    pub(crate) fn memtable(&self) -> &crate::state::Memtable {
        self.shared.memtables.part(self.partition)
    }

    fn applied_marker(&self, last: u64) -> Write {
        (
            keys::meta_partition("applied", self.partition),
            Some(last.to_be_bytes().to_vec()),
        )
    }

    /// Writes the whole memtable back now, with the position it is complete
    /// up to.
    /// In a shared store, under the head lock, after catching up.
    pub(crate) fn write_back_now(&mut self) -> Result<(), StorageError> {
        self.lock_shared()?;
        let snapshot = self.memtable().snapshot();
        let mut writes: Vec<Write> = snapshot.writes.into_iter().collect();
        writes.push(self.applied_marker(self.next_position - 1));
        self.commit(writes, true)?;
        self.memtable().written_back(snapshot.generation);
        self.wrote_back();
        Ok(())
    }
}

/// A partition's writer and its flusher run as steps on the caller's thread
/// (the deterministic mode, `Engine::with_backend_inline`): `apply` is the
/// writer's step, deciding and applying a group, `flush_one` the
/// flusher's, making the oldest applied group durable and answering it. In
/// between, as with the threads, the next group is decided against writes
/// that are applied and not yet durable.
#[cfg(feature = "sim")]
pub(crate) struct Inline {
    writer: Writer,
    /// Groups applied and not yet flushed, oldest first.
    applied: std::collections::VecDeque<Job>,
}

/// The applied groups an inline writer keeps waiting before it flushes the
/// oldest: the threaded writer's queue to its flusher holds two.
#[cfg(feature = "sim")]
const INLINE_QUEUE: usize = 2;

#[cfg(feature = "sim")]
impl Inline {
    pub(crate) fn new(mut writer: Writer) -> Inline {
        writer.inline = true;
        writer.wrote_back();
        Inline {
            writer,
            applied: std::collections::VecDeque::new(),
        }
    }

    /// Decides and applies `group`; its callers hear back once it is
    /// flushed.
    pub(crate) fn apply(&mut self, group: Vec<Request>) {
        if self.applied.len() >= INLINE_QUEUE {
            self.flush_one();
        }
        let job = self.writer.write_group(group);
        self.applied.push_back(job);
    }

    /// Flushes and answers the oldest applied group; `false` if none waits.
    pub(crate) fn flush_one(&mut self) -> bool {
        let Some(job) = self.applied.pop_front() else {
            return false;
        };
        self.writer.flusher().finish(job);
        true
    }

    /// How many applied groups wait for their flush.
    pub(crate) fn waiting(&self) -> usize {
        self.applied.len()
    }

    /// Applies `group` and flushes everything up to it: a caller waiting
    /// for its answer.
    pub(crate) fn run(&mut self, group: Vec<Request>) {
        self.apply(group);
        while self.flush_one() {}
    }

    /// What the writer thread does once its queue is closed.
    pub(crate) fn shut_down(mut self) {
        while self.flush_one() {}
        self.writer.shut_down();
    }
}

fn finish(reply: Reply, decided: Decided) -> Finish {
    match (reply, decided) {
        (Reply::Deploy(reply), Decided::Deploy(result)) => commit_reply(reply, result),
        (Reply::Command(reply), Decided::Command(result)) => commit_reply(reply, result),
        (Reply::Pending(done), Decided::Command(result)) => commit_reply(done, result),
        (Reply::Deadline(reply), Decided::Deadline(result)) => commit_reply(reply, result),
        (Reply::Migrate(reply), Decided::Migrate(result)) => commit_reply(reply, result),
        (reply, _) => Box::new(move |_| {
            reply_error(
                reply,
                StorageError::Backend {
                    message: "internal error: a reply of the wrong kind".to_owned(),
                },
            )
        }),
    }
}

/// Where a decided command's result goes once its group is durable (or
/// failed): a caller's channel, or the future it awaits.
trait Sink<T>: Send + 'static {
    fn answer(self, result: T);
}

impl<T: Send + 'static> Sink<T> for SyncSender<T> {
    fn answer(self, result: T) {
        // The caller may have gone away; nothing to do then.
        let _ = self.send(result);
    }
}

impl Sink<Result<Outcome, CommandError>> for crate::pending::Completer {
    fn answer(self, result: Result<Outcome, CommandError>) {
        self.complete(result);
    }
}

fn commit_reply<T: Send + 'static, E: From<StorageError> + Send + 'static>(
    reply: impl Sink<Result<T, E>>,
    result: Result<T, E>,
) -> Finish {
    Box::new(move |failure| {
        let result = match (failure, result) {
            (Some(error), Ok(_)) => Err(E::from(error.clone())),
            (_, result) => result,
        };
        reply.answer(result);
    })
}

fn reply_error(reply: Reply, error: StorageError) {
    match reply {
        Reply::Deploy(reply) => drop(reply.send(Err(error.into()))),
        Reply::Command(reply) => drop(reply.send(Err(error.into()))),
        Reply::Pending(done) => done.complete(Err(error.into())),
        Reply::Deadline(reply) => drop(reply.send(Err(error.into()))),
        Reply::Migrate(reply) => drop(reply.send(Err(error.into()))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A backend that stores nothing and counts its flushes.
    #[derive(Default)]
    struct Counting {
        flushes: AtomicU64,
        failing: AtomicBool,
    }

    impl Backend for Counting {
        fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            Ok(None)
        }
        fn range<'a>(
            &'a self,
            _: &[u8],
            _: &[u8],
        ) -> Box<dyn Iterator<Item = Result<crate::backend::Entry, StorageError>> + 'a> {
            Box::new(std::iter::empty())
        }
        fn apply(&self, _: Vec<Write>) -> Result<(), StorageError> {
            Ok(())
        }
        fn flush(&self) -> Result<(), StorageError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StorageError::Backend {
                    message: "the disk is gone".to_owned(),
                });
            }
            self.flushes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn size_on_disk(&self) -> Option<u64> {
            None
        }
    }

    #[test]
    fn a_flush_started_after_a_group_was_applied_covers_it() {
        let shared = Shared::new(vec![(0, TileLog::new()); 4]);
        let backend = Counting::default();
        let flushes = || backend.flushes.load(Ordering::SeqCst);
        // Two partitions applied a group each before any flush: the first
        // flusher's flush covers both.
        let (first, second) = (shared.flush_ticket(), shared.flush_ticket());
        assert!(shared.flush_covering(first, &backend).is_ok());
        assert!(shared.flush_covering(second, &backend).is_ok());
        assert_eq!(flushes(), 1);
        // A group applied after that flush started needs one of its own.
        let third = shared.flush_ticket();
        assert!(shared.flush_covering(third, &backend).is_ok());
        assert_eq!(flushes(), 2);
        // A failed flush covers nothing: the next flusher flushes again.
        let fourth = shared.flush_ticket();
        backend.failing.store(true, Ordering::SeqCst);
        assert!(shared.flush_covering(fourth, &backend).is_err());
        backend.failing.store(false, Ordering::SeqCst);
        assert!(shared.flush_covering(fourth, &backend).is_ok());
        assert_eq!(flushes(), 3);
    }
}
