//! The single writer: it takes queued commands, decides each through the
//! core's transition function against the store plus the writes of earlier
//! commands in the same group, then writes the whole group in one atomic
//! batch and one flush, and only then acknowledges each command.
//!
//! **Architecture Invariant:** every write to the store goes through this
//! thread, so sequence numbers are assigned without locks and the global
//! sequence is gapless: numbers are taken only by accepted commands, inside
//! the batch that records them.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use strive_core::{
    Actor, Cause, Command, Event, EventKind, GENESIS, Instance, WORKFLOW_SUBJECT_PREFIX, Workflow,
};

use crate::backend::{Backend, Entry, Write};
use crate::error::{CommandError, DeployError, StorageError};
use crate::keys;
use crate::records::{
    CommandRecord, DefinitionInfo, Durability, InstanceRecord, Options, Outcome, STORE_FORMAT,
    StoredDefinition,
};

/// How deep a chain of parent notifications may go.
const MAX_NOTIFY_DEPTH: usize = 16;

/// A definition checked and compiled by the caller, ready to store.
pub(crate) struct Prepared {
    pub(crate) workflow: Arc<Workflow>,
    pub(crate) value: Value,
}

/// A command for the writer, with where to send its result.
pub(crate) enum Request {
    Deploy {
        items: Vec<Prepared>,
        actor: Actor,
        reply: SyncSender<Result<Vec<DefinitionInfo>, DeployError>>,
    },
    Start {
        workflow: String,
        instance: String,
        actor: Actor,
        data: Map<String, Value>,
        parent: Option<String>,
        options: crate::records::CommandOptions,
        reply: SyncSender<Result<Outcome, CommandError>>,
    },
    Fire {
        instance: String,
        event: String,
        actor: Actor,
        payload: Value,
        options: crate::records::CommandOptions,
        reply: SyncSender<Result<Outcome, CommandError>>,
    },
    Deadline {
        key: Vec<u8>,
        instance: String,
        reply: SyncSender<Result<Option<Outcome>, CommandError>>,
    },
}

/// State the writer shares with readers.
pub(crate) struct Shared {
    /// Compiled workflows by (id, version).
    pub(crate) workflows: RwLock<HashMap<(String, u32), Arc<Workflow>>>,
    /// The latest version of each workflow.
    pub(crate) latest: RwLock<HashMap<String, u32>>,
    /// The last global sequence number that is durable (or applied, in the
    /// buffered mode), with a condition variable for subscribers.
    pub(crate) committed: Mutex<u64>,
    pub(crate) committed_changed: Condvar,
    /// Set when a write or flush failed.
    pub(crate) poisoned: Mutex<Option<String>>,
}

impl Shared {
    pub(crate) fn workflow(&self, id: &str, version: u32) -> Option<Arc<Workflow>> {
        self.workflows
            .read()
            .ok()?
            .get(&(id.to_owned(), version))
            .cloned()
    }

    pub(crate) fn latest(&self, id: &str) -> Option<(u32, Arc<Workflow>)> {
        let version = *self.latest.read().ok()?.get(id)?;
        Some((version, self.workflow(id, version)?))
    }

    fn install(&self, workflow: Arc<Workflow>, version: u32) {
        let id = workflow.id().to_owned();
        if let Ok(mut map) = self.workflows.write() {
            map.insert((id.clone(), version), workflow);
        }
        if let Ok(mut latest) = self.latest.write() {
            let entry = latest.entry(id).or_insert(version);
            *entry = (*entry).max(version);
        }
    }
}

/// Decoded instance records by id.
type Instances = HashMap<String, Arc<InstanceRecord>>;

/// The most decoded instance records the writer keeps between groups.
const CACHED_INSTANCES: usize = 65_536;

/// Reads through the writes of the current command, then of earlier
/// commands in the group, then the store.
///
/// Instance records are also kept decoded, in the same three layers plus
/// the writer's cache of committed records, so that firing on an instance
/// does not read and decode its JSON snapshot every time.
struct Txn<'a> {
    backend: &'a dyn Backend,
    group: &'a BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// The records this command saved, decoded (their bytes are in `writes`).
    instances: Instances,
    /// The records earlier commands of the group saved.
    group_instances: &'a Instances,
    /// Committed records, as written by earlier groups or read since.
    cache: &'a Instances,
    start_gseq: u64,
    next_gseq: u64,
}

impl Txn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(value) = self.writes.get(key) {
            return Ok(value.clone());
        }
        if let Some(value) = self.group.get(key) {
            return Ok(value.clone());
        }
        self.backend.get(key)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// The entries under `prefix`, merged across the three layers.
    fn scan(&self, prefix: &[u8]) -> Result<Vec<Entry>, StorageError> {
        let end = keys::prefix_end(prefix);
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for item in self.backend.range(prefix, &end) {
            let (key, value) = item?;
            merged.insert(key, Some(value));
        }
        for layer in [self.group, &self.writes] {
            for (key, value) in layer.range(prefix.to_vec()..end.clone()) {
                merged.insert(key.clone(), value.clone());
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(key, value)| value.map(|value| (key, value)))
            .collect())
    }

    fn load_instance(&self, id: &str) -> Result<Option<Arc<InstanceRecord>>, StorageError> {
        // Instance keys are only ever written through `save_instance`, so
        // the decoded layers hold exactly what the byte layers hold.
        for layer in [&self.instances, self.group_instances, self.cache] {
            if let Some(record) = layer.get(id) {
                return Ok(Some(record.clone()));
            }
        }
        let key = keys::key(keys::INSTANCE, &[id]);
        match self.backend.get(&key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(|record| Some(Arc::new(record)))
                .map_err(|e| StorageError::Corrupt {
                    key: keys::show(&key),
                    message: e.to_string(),
                }),
        }
    }

    fn save_instance(&mut self, record: InstanceRecord) {
        let key = keys::key(keys::INSTANCE, &[&record.instance.id]);
        self.put(key, to_json(&record));
        self.instances
            .insert(record.instance.id.clone(), Arc::new(record));
    }

    /// Appends an event: assigns its global sequence number, stores it with
    /// its hash and indexes it in its subject's chain. Returns its hash.
    fn append(&mut self, mut event: Event) -> (u64, String) {
        let gseq = self.next_gseq;
        self.next_gseq += 1;
        event.gseq = gseq;
        let bytes = event.encode();
        let digest = strive_core::event_digest(&bytes);
        let mut value = Vec::with_capacity(32 + bytes.len());
        value.extend_from_slice(&digest);
        value.extend_from_slice(&bytes);
        self.put(keys::event(gseq), value);
        self.put(
            keys::chain(&event.instance, event.seq),
            gseq.to_be_bytes().to_vec(),
        );
        (gseq, hex::encode(digest))
    }

    fn child_count_delta(
        &mut self,
        parent: &str,
        workflow: &str,
        stage: &str,
        delta: i64,
    ) -> Result<(), StorageError> {
        let key = keys::key(keys::CHILD_COUNT, &[parent, workflow, stage]);
        let current = self
            .get(&key)?
            .and_then(|v| keys::u64_value(&v))
            .unwrap_or(0);
        let next = current.saturating_add_signed(delta);
        if next == 0 {
            self.delete(key);
        } else {
            self.put(key, next.to_be_bytes().to_vec());
        }
        Ok(())
    }

    /// `{"wf": {"total": n, "stages": {"stage": n}}}` for guards.
    fn children_summary(&self, parent: &str) -> Result<Value, StorageError> {
        let prefix = keys::key(keys::CHILD_COUNT, &[parent]);
        let mut summary = Map::new();
        for (key, value) in self.scan(&prefix)? {
            let rest = key.get(prefix.len()..).unwrap_or_default();
            let mut parts = rest.split(|&b| b == 0);
            let (Some(workflow), Some(stage)) = (parts.next(), parts.next()) else {
                continue;
            };
            let count = keys::u64_value(&value).unwrap_or(0);
            let entry = summary
                .entry(String::from_utf8_lossy(workflow).into_owned())
                .or_insert_with(|| json!({"total": 0, "stages": {}}));
            if let Some(total) = entry.get_mut("total") {
                *total = Value::from(total.as_u64().unwrap_or(0) + count);
            }
            if let Some(Value::Object(stages)) = entry.get_mut("stages") {
                stages.insert(
                    String::from_utf8_lossy(stage).into_owned(),
                    Value::from(count),
                );
            }
        }
        Ok(Value::Object(summary))
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // The records are plain structs and JSON values: serializing cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The writer thread's state.
pub(crate) struct Writer {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) options: Options,
    pub(crate) next_gseq: u64,
    /// Decoded instance records as committed: what the store holds.
    pub(crate) cache: Instances,
}

/// A processed command waiting for its group to be written.
type Finish = Box<dyn FnOnce(Option<&StorageError>) + Send>;

/// A decided and applied group on its way to its callers.
struct Job {
    finishes: Vec<Finish>,
    /// The last global sequence number the group applied, if it wrote.
    applied: Option<u64>,
    /// Why applying failed.
    failure: Option<StorageError>,
}

/// Flushes applied groups in order and answers their callers: a caller
/// hears back only once its group is durable (in the default mode), and
/// groups are answered in the order they were applied, so even a refusal
/// is never reported before the writes it was decided against are
/// durable.
struct Flusher {
    backend: Arc<dyn Backend>,
    shared: Arc<Shared>,
    durability: Durability,
}

impl Flusher {
    fn run(self, jobs: Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            self.finish(job);
        }
    }

    fn finish(&self, mut job: Job) {
        if job.failure.is_none() {
            // A flush covers everything applied before it, so a failure of
            // an earlier group's flush fails this one too: acknowledge
            // nothing after it.
            let poisoned = self.shared.poisoned.lock().ok().and_then(|p| p.clone());
            if let (Some(_), Some(cause)) = (job.applied, poisoned) {
                job.failure = Some(StorageError::Poisoned { cause });
            }
        }
        if job.failure.is_none()
            && let Some(last) = job.applied
        {
            // The crash tests stop here: the group is applied, not flushed.
            crate::fail_point!("group-before-flush");
            let flushed = match self.durability {
                Durability::Flushed => self.backend.flush(),
                Durability::Buffered => Ok(()),
            };
            match flushed {
                Err(error) => {
                    tracing::error!(%error, "group flush failed; refusing further writes");
                    if let Ok(mut poisoned) = self.shared.poisoned.lock() {
                        poisoned.get_or_insert_with(|| error.to_string());
                    }
                    job.failure = Some(error);
                }
                Ok(()) => {
                    // And here: flushed, nobody acknowledged yet.
                    crate::fail_point!("group-after-flush");
                    if let Ok(mut committed) = self.shared.committed.lock() {
                        *committed = (*committed).max(last);
                        self.shared.committed_changed.notify_all();
                    }
                }
            }
        }
        for finish in job.finishes {
            finish(job.failure.as_ref());
        }
    }
}

impl Writer {
    pub(crate) fn run(mut self, requests: Receiver<Request>) {
        // Group n is flushed and answered by the flusher while this thread
        // decides and applies group n+1: deciding overlaps the disk wait.
        let (jobs, queue) = mpsc::sync_channel::<Job>(2);
        let flusher = Flusher {
            backend: self.backend.clone(),
            shared: self.shared.clone(),
            durability: self.options.durability,
        };
        let flusher = std::thread::Builder::new()
            .name("strive-flusher".to_owned())
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
                        self.finish_inline(job);
                    }
                }
                None => self.finish_inline(job),
            }
        }
        if let Some((handle, jobs)) = flusher {
            drop(jobs);
            let _ = handle.join();
        }
        // Every sender is gone: make what was applied durable before exiting.
        if let Err(error) = self.backend.flush() {
            tracing::error!(%error, "final flush failed");
        }
    }

    fn finish_inline(&self, job: Job) {
        Flusher {
            backend: self.backend.clone(),
            shared: self.shared.clone(),
            durability: self.options.durability,
        }
        .finish(job);
    }

    /// Decides and applies one group; the returned job flushes it and
    /// answers its callers.
    fn write_group(&mut self, group: Vec<Request>) -> Job {
        let poisoned = self.shared.poisoned.lock().ok().and_then(|p| p.clone());
        let mut writes: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let mut instances = Instances::new();
        let mut finishes: Vec<Finish> = Vec::with_capacity(group.len());
        let start_gseq = self.next_gseq;
        for request in group {
            if let Some(cause) = &poisoned {
                let error = StorageError::Poisoned {
                    cause: cause.clone(),
                };
                finishes.push(Box::new(move |_| reply_error(request, error)));
                continue;
            }
            finishes.push(self.process(request, &mut writes, &mut instances));
        }
        let mut job = Job {
            finishes,
            applied: None,
            failure: None,
        };
        if !writes.is_empty() {
            writes.insert(
                keys::meta("gseq"),
                Some((self.next_gseq - 1).to_be_bytes().to_vec()),
            );
            let batch: Vec<Write> = writes.into_iter().collect();
            match self.backend.apply(batch) {
                Err(error) => {
                    tracing::error!(%error, "group commit failed; refusing further writes");
                    if let Ok(mut poisoned) = self.shared.poisoned.lock() {
                        *poisoned = Some(error.to_string());
                    }
                    // Nothing of this group is acknowledged; numbers are
                    // reused only after a reopen re-reads what actually
                    // reached disk.
                    self.next_gseq = start_gseq;
                    self.cache.clear();
                    job.failure = Some(error);
                }
                Ok(()) => {
                    if self.cache.len() + instances.len() > CACHED_INSTANCES {
                        // Crude but cheap: start over rather than track recency.
                        self.cache.clear();
                    }
                    self.cache.extend(instances);
                    job.applied = Some(self.next_gseq - 1);
                }
            }
        }
        job
    }

    /// Decides one command; on success its writes join the group.
    fn process(
        &mut self,
        request: Request,
        group: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        group_instances: &mut Instances,
    ) -> Finish {
        let mut txn = Txn {
            backend: &*self.backend,
            group,
            writes: BTreeMap::new(),
            instances: Instances::new(),
            group_instances,
            cache: &self.cache,
            start_gseq: self.next_gseq,
            next_gseq: self.next_gseq,
        };
        let clock = self.options.clock.now();
        let finish: Finish = match request {
            Request::Deploy {
                items,
                actor,
                reply,
            } => {
                let result = deploy(&mut txn, &self.shared, items, &actor, clock);
                ok_or_rollback(&mut txn, &result);
                commit_reply(reply, result)
            }
            Request::Start {
                workflow,
                instance,
                actor,
                data,
                parent,
                options,
                reply,
            } => {
                let digest = || {
                    digest(
                        &json!({"op": "start", "workflow": workflow, "instance": instance,
                    "actor": actor, "data": data, "parent": parent, "expected_seq": options.expected_seq}),
                    )
                };
                let result = idempotent(&mut txn, options.command_id.as_deref(), digest, |txn| {
                    start(
                        txn,
                        &self.shared,
                        &workflow,
                        &instance,
                        &actor,
                        &data,
                        parent.as_deref(),
                        options.command_id.as_deref(),
                        None,
                        clock,
                    )
                });
                ok_or_rollback(&mut txn, &result);
                commit_reply(reply, result)
            }
            Request::Fire {
                instance,
                event,
                actor,
                payload,
                options,
                reply,
            } => {
                let digest = || {
                    digest(&json!({"op": "fire", "instance": instance, "event": event,
                    "actor": actor, "payload": payload, "expected_seq": options.expected_seq}))
                };
                let result = idempotent(&mut txn, options.command_id.as_deref(), digest, |txn| {
                    fire(
                        txn,
                        &self.shared,
                        &instance,
                        &event,
                        &actor,
                        &payload,
                        options.expected_seq,
                        options.command_id.as_deref(),
                        None,
                        clock,
                        0,
                    )
                });
                ok_or_rollback(&mut txn, &result);
                commit_reply(reply, result)
            }
            Request::Deadline {
                key,
                instance,
                reply,
            } => {
                let result = deadline(&mut txn, &self.shared, &key, &instance, clock);
                // A rejected deadline event is consumed all the same, so the
                // deadline fires at most once; its removal is written.
                commit_reply(reply, result)
            }
        };
        self.next_gseq = txn.next_gseq;
        let writes = std::mem::take(&mut txn.writes);
        let instances = std::mem::take(&mut txn.instances);
        drop(txn);
        group.extend(writes);
        group_instances.extend(instances);
        finish
    }
}

/// Drops a failed command's writes and gives back its sequence numbers.
fn ok_or_rollback<T, E>(txn: &mut Txn<'_>, result: &Result<T, E>) {
    if result.is_err() {
        txn.writes.clear();
        txn.instances.clear();
        txn.next_gseq = txn.start_gseq;
    }
}

fn commit_reply<T: Send + 'static, E: From<StorageError> + Send + 'static>(
    reply: SyncSender<Result<T, E>>,
    result: Result<T, E>,
) -> Finish {
    Box::new(move |failure| {
        let result = match (failure, result) {
            (Some(error), Ok(_)) => Err(E::from(error.clone())),
            (_, result) => result,
        };
        // The caller may have gone away; nothing to do then.
        let _ = reply.send(result);
    })
}

fn reply_error(request: Request, error: StorageError) {
    match request {
        Request::Deploy { reply, .. } => drop(reply.send(Err(error.into()))),
        Request::Start { reply, .. } | Request::Fire { reply, .. } => {
            drop(reply.send(Err(error.into())))
        }
        Request::Deadline { reply, .. } => drop(reply.send(Err(error.into()))),
    }
}

fn digest(request: &Value) -> String {
    hex::encode(Sha256::digest(to_json(request)))
}

/// Runs `command` unless `command_id` was used before: then returns the
/// recorded outcome (same request) or refuses (different request). The
/// request's digest is computed only for commands with an id.
fn idempotent(
    txn: &mut Txn<'_>,
    command_id: Option<&str>,
    digest: impl FnOnce() -> String,
    command: impl FnOnce(&mut Txn<'_>) -> Result<Outcome, CommandError>,
) -> Result<Outcome, CommandError> {
    let Some(id) = command_id else {
        return command(txn);
    };
    let digest = digest();
    let digest = digest.as_str();
    let key = keys::key(keys::COMMAND, &[id]);
    if let Some(bytes) = txn.get(&key)? {
        let record: CommandRecord =
            serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
                key: keys::show(&key),
                message: e.to_string(),
            })?;
        if record.digest != digest {
            return Err(CommandError::CommandIdReused {
                command_id: id.to_owned(),
            });
        }
        return Ok(Outcome {
            replayed: true,
            ..record.outcome
        });
    }
    let outcome = command(txn)?;
    let record = CommandRecord {
        v: STORE_FORMAT,
        digest: digest.to_owned(),
        outcome: outcome.clone(),
    };
    txn.put(key, to_json(&record));
    Ok(outcome)
}

/// The longest instance or command id accepted, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 128;

/// Refuses ids that would break the key layout or impersonate a
/// definition subject.
pub(crate) fn check_id(id: &str) -> Result<(), CommandError> {
    crate::guard::canonical_id(id)?;
    let invalid = |reason| {
        Err(CommandError::InvalidId {
            id: id.chars().take(140).collect(),
            reason,
        })
    };
    if id.is_empty() {
        return invalid("ids may not be empty");
    }
    if id.len() > MAX_ID_BYTES {
        return invalid("ids may be at most 128 bytes long");
    }
    if id.chars().any(char::is_control) {
        return invalid("ids may not contain control characters");
    }
    if id.starts_with('@') {
        return invalid("ids may not start with `@`, which marks definition histories");
    }
    Ok(())
}

fn corrupt(key: &[u8], message: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        key: keys::show(key),
        message: message.into(),
    }
}

/// The hash and time of a subject's event at `seq`.
fn chain_head(txn: &Txn<'_>, subject: &str, seq: u64) -> Result<(String, Timestamp), StorageError> {
    let key = keys::chain(subject, seq);
    let gseq = txn
        .get(&key)?
        .and_then(|v| keys::u64_value(&v))
        .ok_or_else(|| corrupt(&key, "missing chain entry"))?;
    let event_key = keys::event(gseq);
    let value = txn
        .get(&event_key)?
        .ok_or_else(|| corrupt(&event_key, "missing event"))?;
    let stored = crate::records::StoredEvent::decode(gseq, &value)?;
    Ok((stored.hash, stored.event.at))
}

fn deploy(
    txn: &mut Txn<'_>,
    shared: &Shared,
    items: Vec<Prepared>,
    actor: &Actor,
    clock: Timestamp,
) -> Result<Vec<DefinitionInfo>, DeployError> {
    let mut infos = Vec::with_capacity(items.len());
    let mut installed = Vec::new();
    for item in items {
        let id = item.workflow.id().to_owned();
        let hash = item.workflow.hash().to_owned();
        let hash_key = keys::key(keys::DEFINITION_HASH, &[&hash]);
        if let Some(bytes) = txn.get(&hash_key)? {
            let known: Value =
                serde_json::from_slice(&bytes).map_err(|e| corrupt(&hash_key, e.to_string()))?;
            let version = known["version"].as_u64().unwrap_or(0) as u32;
            let key = keys::definition(&id, version);
            let stored: StoredDefinition = txn
                .get(&key)?
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| corrupt(&key, "missing definition"))?;
            infos.push(DefinitionInfo {
                workflow: id,
                version,
                hash,
                deployed_at: stored.deployed_at,
                gseq: stored.gseq,
                unchanged: true,
            });
            continue;
        }
        let version = txn.scan(&keys::key(keys::DEFINITION, &[&id]))?.len() as u32 + 1;
        let subject = format!("{WORKFLOW_SUBJECT_PREFIX}{id}");
        let (prev, at) = if version > 1 {
            let (prev, last) = chain_head(txn, &subject, u64::from(version) - 1)?;
            (prev, clock.max(last))
        } else {
            (GENESIS.to_owned(), clock)
        };
        let event = Event {
            v: strive_core::EVENT_FORMAT,
            gseq: 0,
            instance: subject,
            seq: u64::from(version),
            prev,
            kind: EventKind::Deploy,
            workflow: id.clone(),
            version,
            definition_hash: hash.clone(),
            from: None,
            event: "deploy".to_owned(),
            transition: None,
            to: String::new(),
            actor: actor.clone(),
            at,
            command_id: None,
            payload: item.value.clone(),
            effects: Vec::new(),
            cause: None,
        };
        let (gseq, _) = txn.append(event);
        let stored = StoredDefinition {
            v: STORE_FORMAT,
            workflow: id.clone(),
            version,
            hash: hash.clone(),
            deployed_at: at,
            gseq,
            definition: item.value,
        };
        txn.put(keys::definition(&id, version), to_json(&stored));
        txn.put(
            hash_key,
            to_json(&json!({"workflow": id, "version": version})),
        );
        installed.push((item.workflow, version));
        infos.push(DefinitionInfo {
            workflow: id,
            version,
            hash,
            deployed_at: at,
            gseq,
            unchanged: false,
        });
    }
    // Later commands of the same group may start instances of these
    // versions. Should the group fail to commit, the engine is poisoned and
    // this cache is never used for writing again.
    for (workflow, version) in installed {
        shared.install(workflow, version);
    }
    Ok(infos)
}

/// Indexes a new instance: by workflow and stage, under its parent, and
/// its deadline.
fn index_new(
    txn: &mut Txn<'_>,
    instance: &Instance,
    due: Option<&strive_core::Due>,
) -> Result<(), StorageError> {
    txn.put(
        keys::key(
            keys::BY_STAGE,
            &[&instance.workflow, &instance.stage, &instance.id],
        ),
        Vec::new(),
    );
    txn.put(
        keys::key(keys::BY_WORKFLOW, &[&instance.workflow, &instance.id]),
        Vec::new(),
    );
    if let Some(parent) = &instance.parent {
        txn.put(keys::key(keys::CHILD, &[parent, &instance.id]), Vec::new());
        txn.child_count_delta(parent, &instance.workflow, &instance.stage, 1)?;
    }
    if let Some(due) = due {
        txn.put(
            keys::deadline(due.at.as_microsecond(), &instance.id),
            Vec::new(),
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn start(
    txn: &mut Txn<'_>,
    shared: &Shared,
    workflow: &str,
    id: &str,
    actor: &Actor,
    data: &Map<String, Value>,
    parent: Option<&str>,
    command_id: Option<&str>,
    cause: Option<Cause>,
    now: Timestamp,
) -> Result<Outcome, CommandError> {
    check_id(id)?;
    if txn.load_instance(id)?.is_some() {
        return Err(CommandError::InstanceExists {
            instance: id.to_owned(),
        });
    }
    let (version, compiled) =
        shared
            .latest(workflow)
            .ok_or_else(|| CommandError::UnknownWorkflow {
                workflow: workflow.to_owned(),
            })?;
    if let Some(parent) = parent
        && txn.load_instance(parent)?.is_none()
    {
        return Err(CommandError::UnknownInstance {
            instance: parent.to_owned(),
        });
    }
    let mut instance = compiled
        .new_instance(id, version, data, parent, now)
        .map_err(|reason| CommandError::Rejected {
            instance: id.to_owned(),
            event: "start".to_owned(),
            reason: Box::new(reason),
        })?;
    let event = Event {
        v: strive_core::EVENT_FORMAT,
        gseq: 0,
        instance: id.to_owned(),
        seq: 1,
        prev: GENESIS.to_owned(),
        kind: EventKind::Start,
        workflow: workflow.to_owned(),
        version,
        definition_hash: compiled.hash().to_owned(),
        from: None,
        event: "start".to_owned(),
        transition: None,
        to: instance.stage.clone(),
        actor: actor.clone(),
        at: now,
        command_id: command_id.map(str::to_owned),
        payload: json!({"data": data, "parent": parent}),
        effects: Vec::new(),
        cause,
    };
    let (gseq, hash) = txn.append(event);
    instance.seq = 1;
    instance.head = hash.clone();
    let due = if instance.finished {
        None
    } else {
        compiled.deadline(&instance.stage, now, &instance.data)
    };
    index_new(txn, &instance, due.as_ref())?;
    let outcome = Outcome {
        instance: id.to_owned(),
        event: "start".to_owned(),
        stage: instance.stage.clone(),
        seq: 1,
        gseq,
        hash,
        finished: instance.finished,
        replayed: false,
    };
    txn.save_instance(InstanceRecord {
        v: STORE_FORMAT,
        instance,
        due,
    });
    Ok(outcome)
}

#[allow(clippy::too_many_arguments)]
fn fire(
    txn: &mut Txn<'_>,
    shared: &Shared,
    id: &str,
    event: &str,
    actor: &Actor,
    payload: &Value,
    expected_seq: Option<u64>,
    command_id: Option<&str>,
    cause: Option<Cause>,
    clock: Timestamp,
    depth: usize,
) -> Result<Outcome, CommandError> {
    let record = txn
        .load_instance(id)?
        .ok_or_else(|| CommandError::UnknownInstance {
            instance: id.to_owned(),
        })?;
    let current = &record.instance;
    if let Some(expected) = expected_seq
        && expected != current.seq
    {
        return Err(CommandError::Conflict {
            instance: id.to_owned(),
            expected,
            actual: current.seq,
        });
    }
    let compiled = shared
        .workflow(&current.workflow, current.version)
        .ok_or_else(|| {
            corrupt(
                &keys::definition(&current.workflow, current.version),
                "the instance's definition version is not deployed",
            )
        })?;
    // Time never runs backwards within an instance.
    let now = clock.max(current.updated_at);
    // Summarising children reads the store: only for workflows whose
    // guards or effects read them.
    let children = if compiled.reads_children() {
        txn.children_summary(id)?
    } else {
        Value::Null
    };
    let command = Command {
        event,
        actor,
        payload,
        now,
    };
    let accepted = compiled
        .fire(current, &command, &children)
        .map_err(|reason| CommandError::Rejected {
            instance: id.to_owned(),
            event: event.to_owned(),
            reason: Box::new(reason),
        })?;
    let mut next = compiled.advance(current, &accepted, now);
    let recorded = Event {
        v: strive_core::EVENT_FORMAT,
        gseq: 0,
        instance: id.to_owned(),
        seq: next.seq,
        prev: current.head.clone(),
        kind: EventKind::Fire,
        workflow: current.workflow.clone(),
        version: current.version,
        definition_hash: current.definition_hash.clone(),
        from: Some(accepted.from.clone()),
        event: event.to_owned(),
        transition: Some(accepted.transition.clone()),
        to: accepted.to.clone(),
        actor: actor.clone(),
        at: now,
        command_id: command_id.map(str::to_owned),
        payload: payload.clone(),
        effects: accepted.effects.clone(),
        cause,
    };
    let (gseq, hash) = txn.append(recorded);
    next.head = hash.clone();
    let mut due = record.due.clone();
    if accepted.moves() {
        txn.delete(keys::key(
            keys::BY_STAGE,
            &[&current.workflow, &current.stage, id],
        ));
        txn.put(
            keys::key(keys::BY_STAGE, &[&next.workflow, &next.stage, id]),
            Vec::new(),
        );
        if let Some(parent) = &next.parent {
            txn.child_count_delta(parent, &next.workflow, &current.stage, -1)?;
            txn.child_count_delta(parent, &next.workflow, &next.stage, 1)?;
        }
        // Leaving a stage cancels its deadline; entering one sets its own.
        if let Some(old) = &due {
            txn.delete(keys::deadline(old.at.as_microsecond(), id));
        }
        due = if next.finished {
            None
        } else {
            compiled.deadline(&next.stage, now, &next.data)
        };
        if let Some(new) = &due {
            txn.put(keys::deadline(new.at.as_microsecond(), id), Vec::new());
        }
    }
    let outcome = Outcome {
        instance: id.to_owned(),
        event: event.to_owned(),
        stage: next.stage.clone(),
        seq: next.seq,
        gseq,
        hash,
        finished: next.finished,
        replayed: false,
    };
    let this_event = Cause {
        instance: id.to_owned(),
        seq: next.seq,
    };
    let parent = next.parent.clone();
    let (child_workflow, stage) = (next.workflow.clone(), next.stage.clone());
    txn.save_instance(InstanceRecord {
        v: STORE_FORMAT,
        instance: next,
        due,
    });
    if let Some(spawn) = &accepted.spawn {
        for child in &spawn.children {
            start(
                txn,
                shared,
                &spawn.workflow,
                &child.id,
                actor,
                &child.data,
                Some(id),
                None,
                Some(this_event.clone()),
                now,
            )?;
        }
    }
    if let (Some(parent_event), Some(parent)) = (&accepted.notify_parent, parent) {
        if depth >= MAX_NOTIFY_DEPTH {
            return Err(CommandError::LimitExceeded {
                what: "the chain of parent notifications",
                actual: depth + 1,
                limit: MAX_NOTIFY_DEPTH,
            });
        }
        let notice = json!({"child": id, "workflow": child_workflow, "stage": stage});
        fire(
            txn,
            shared,
            &parent,
            parent_event,
            &Actor::system(),
            &notice,
            None,
            None,
            Some(this_event),
            now,
            depth + 1,
        )
        .map_err(|error| match error {
            CommandError::Rejected {
                instance,
                event,
                reason,
            } => CommandError::ParentRejected {
                parent: instance,
                event,
                reason,
            },
            other => other,
        })?;
    }
    Ok(outcome)
}

/// Fires a due deadline once: the deadline is consumed whether its event is
/// accepted or not.
fn deadline(
    txn: &mut Txn<'_>,
    shared: &Shared,
    key: &[u8],
    id: &str,
    clock: Timestamp,
) -> Result<Option<Outcome>, CommandError> {
    crate::guard::due_by(key, id, clock)?;
    if txn.get(key)?.is_none() {
        // Already fired, or cancelled by a stage change meanwhile.
        return Ok(None);
    }
    txn.delete(key.to_vec());
    let Some(record) = txn.load_instance(id)? else {
        return Ok(None);
    };
    let mut record = InstanceRecord::clone(&record);
    let Some(due) = record.due.take() else {
        return Ok(None);
    };
    if keys::deadline(due.at.as_microsecond(), id) != key {
        return Ok(None);
    }
    txn.save_instance(record);
    let (saved, saved_instances, saved_gseq) =
        (txn.writes.clone(), txn.instances.clone(), txn.next_gseq);
    match fire(
        txn,
        shared,
        id,
        &due.event,
        &Actor::system(),
        &Value::Null,
        None,
        None,
        None,
        clock,
        0,
    ) {
        Ok(outcome) => Ok(Some(outcome)),
        Err(error) => {
            tracing::warn!(instance = id, event = %due.event, %error, "deadline event rejected; the deadline is consumed");
            txn.writes = saved;
            txn.instances = saved_instances;
            txn.next_gseq = saved_gseq;
            Err(error)
        }
    }
}
