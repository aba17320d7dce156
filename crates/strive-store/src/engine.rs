//! The engine services embed: open a store, deploy definitions, start and
//! fire instances, query them, follow the log.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use strive_core::{Actor, Catalog, Definition, WORKFLOW_SUBJECT_PREFIX, Workflow, has_errors};
use strive_core::{Hash, TileLog};

use crate::backend::{Backend, SledBackend};
use crate::error::{CommandError, DeployError, OpenError, StorageError};
use crate::keys;
use crate::log::{LogReader, Tiles};
use crate::pending::Pending;
use crate::records::{
    CommandOptions, DeadlineFired, DefinitionInfo, InstanceRecord, ListQuery, MAX_PARTITIONS,
    Options, Outcome, Page, STORE_FORMAT, Snapshot, StoredDefinition, StoredEvent,
};
use crate::writer::{Cmd, Prepared, Reply, Request, Shared, Writer, check_id};

/// The largest payload (or initial data) accepted, in bytes of JSON.
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// The deepest nesting of arrays and objects accepted in a payload (or in
/// initial data), as in definitions. Events and snapshots store it a few
/// levels down and are read back with serde_json's limit of 128 levels, so
/// a much deeper value could be written but its event never read again.
pub const MAX_PAYLOAD_DEPTH: usize = 64;

/// An embedded strive engine over one store. Cheap to clone; clones share
/// the store and its writer, and can be used from many threads at once.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    shared: Arc<Shared>,
    /// How commands reach each partition's writer; `None` once closed.
    requests: Mutex<Option<Route>>,
    writers: Mutex<Vec<JoinHandle<()>>>,
    path: Option<PathBuf>,
    enforce_grants: bool,
}

/// How commands reach the writers.
enum Route {
    /// Each partition's writer queue, by partition; each writer runs on
    /// its own thread.
    Threads(Vec<Sender<Request>>),
    /// The writers themselves, by partition, run on the caller's thread
    /// (`Engine::with_backend_inline`).
    #[cfg(feature = "sim")]
    Inline(Vec<crate::writer::Inline>),
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it drains what is queued.
        // The senders must go before the writers are joined.
        match self.requests.lock().ok().and_then(|mut r| r.take()) {
            #[cfg(feature = "sim")]
            Some(Route::Inline(writers)) => writers.into_iter().for_each(|w| w.shut_down()),
            route => drop(route),
        }
        if let Ok(mut writers) = self.writers.lock() {
            for handle in writers.drain(..) {
                let _ = handle.join();
            }
        }
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Opens the store at `path`, creating it if it does not exist.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Engine, OpenError> {
        let path = path.as_ref();
        let backend = SledBackend::open(path)?;
        Engine::with_backend(Arc::new(backend), Some(path.to_owned()), options)
    }

    /// Opens the existing store at `path` for a command that reads it:
    /// never creates one. A path that is not a store is refused, and so is
    /// a store whose files hold no records at all, not even the format
    /// record every store gets when first opened (issue #17): checked on
    /// the backend the engine then runs on, so the store is opened once.
    pub fn open_existing(path: impl AsRef<Path>, options: Options) -> Result<Engine, OpenError> {
        let path = path.as_ref();
        crate::probe::require_store(path)?;
        let backend = SledBackend::open(path)?;
        crate::probe::require_records(&backend, path)?;
        Engine::with_backend(Arc::new(backend), Some(path.to_owned()), options)
    }

    /// An engine over a temporary store that disappears when the engine is
    /// dropped. For tests and demos.
    pub fn temporary() -> Result<Engine, OpenError> {
        Engine::temporary_with(Options::default())
    }

    /// A temporary engine with `options`: on a fresh PostgreSQL database
    /// when `STRIVE_TEMPORARY_URL` names a server
    /// ([`crate::TEMPORARY_URL_VAR`]), else in a temporary sled directory.
    pub fn temporary_with(options: Options) -> Result<Engine, OpenError> {
        if let Some(engine) = crate::url::temporary_database(&options) {
            return engine;
        }
        Engine::with_backend(Arc::new(SledBackend::temporary()?), None, options)
    }

    /// An engine over any [`Backend`]. A store written by an earlier run
    /// is recovered first: the events logged after its last state
    /// write-back are decided again (see docs/storage.md, "Recovery").
    pub fn with_backend(
        backend: Arc<dyn Backend>,
        path: Option<PathBuf>,
        options: Options,
    ) -> Result<Engine, OpenError> {
        let (shared, writers) = open_writers(&backend, path.as_deref(), &options)?;
        let mut senders = Vec::with_capacity(writers.len());
        let mut handles = Vec::with_capacity(writers.len());
        for writer in writers {
            let (sender, receiver) = mpsc::channel();
            let handle = std::thread::Builder::new()
                .name(format!("strive-writer-{}", writer.partition))
                .spawn(move || writer.run(receiver))
                .map_err(|e| StorageError::Backend {
                    message: format!("cannot start a writer thread: {e}"),
                })?;
            senders.push(sender);
            handles.push(handle);
        }
        Ok(Engine::assemble(
            backend,
            shared,
            path,
            options,
            Route::Threads(senders),
            handles,
        ))
    }

    /// An engine over `backend` whose writers run inline, on the thread of
    /// each caller (`writer::Inline`), with no writer or flusher thread and
    /// the write-back interval measured on `options.clock`: the
    /// deterministic mode the simulator drives (issue #16). A public
    /// command is a group of its own, flushed before it returns; the
    /// simulator also applies groups and flushes them as separate steps
    /// ([`Engine::apply_group`], [`Engine::flush_group`]). Commands must
    /// come from one thread at a time for a run to be repeatable.
    #[cfg(feature = "sim")]
    pub(crate) fn with_backend_inline(
        backend: Arc<dyn Backend>,
        options: Options,
    ) -> Result<Engine, OpenError> {
        let (shared, writers) = open_writers(&backend, None, &options)?;
        let route = Route::Inline(
            writers
                .into_iter()
                .map(crate::writer::Inline::new)
                .collect(),
        );
        Ok(Engine::assemble(
            backend,
            shared,
            None,
            options,
            route,
            Vec::new(),
        ))
    }

    /// Why the engine refuses writes, if it does: a failed write or flush,
    /// or a store that opened damaged.
    #[cfg(feature = "sim")]
    pub(crate) fn poisoned(&self) -> Option<String> {
        self.inner
            .shared
            .poisoned
            .lock()
            .ok()
            .and_then(|p| p.clone())
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        shared: Arc<Shared>,
        path: Option<PathBuf>,
        options: Options,
        route: Route,
        handles: Vec<JoinHandle<()>>,
    ) -> Engine {
        let shown = path.clone().unwrap_or_else(|| PathBuf::from("(temporary)"));
        tracing::debug!(path = %shown.display(), partitions = shared.partitions(), "engine opened");
        Engine {
            inner: Arc::new(Inner {
                backend,
                shared,
                requests: Mutex::new(Some(route)),
                writers: Mutex::new(handles),
                path,
                enforce_grants: options.enforce_grants,
            }),
        }
    }

    /// Where the store is, unless it is temporary.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// Whether the engine refuses commands whose actors lack grants
    /// ([`Options::enforce_grants`]).
    pub fn enforces_grants(&self) -> bool {
        self.inner.enforce_grants
    }

    /// Sends a command to `partition`'s writer and waits for its answer.
    pub(crate) fn send<T>(
        &self,
        partition: u32,
        make: impl FnOnce(mpsc::SyncSender<T>) -> Request,
    ) -> Result<T, StorageError> {
        let (reply, response) = mpsc::sync_channel(1);
        let request = make(reply);
        let mut requests = self
            .inner
            .requests
            .lock()
            .map_err(|_| StorageError::Closed)?;
        let sender = match requests.as_mut().ok_or(StorageError::Closed)? {
            Route::Threads(senders) => senders.get(partition as usize).cloned(),
            #[cfg(feature = "sim")]
            Route::Inline(writers) => {
                let writer = writers
                    .get_mut(partition as usize)
                    .ok_or(StorageError::Closed)?;
                writer.run(vec![request]);
                return response.try_recv().map_err(|_| StorageError::Closed);
            }
        }
        .ok_or(StorageError::Closed)?;
        drop(requests);
        sender.send(request).map_err(|_| StorageError::Closed)?;
        response.recv().map_err(|_| StorageError::Closed)
    }

    /// Runs `step` on `partition`'s inline writer.
    #[cfg(feature = "sim")]
    fn inline<T>(
        &self,
        partition: u32,
        step: impl FnOnce(&mut crate::writer::Inline) -> T,
    ) -> Result<T, StorageError> {
        let mut requests = self
            .inner
            .requests
            .lock()
            .map_err(|_| StorageError::Closed)?;
        match requests.as_mut() {
            Some(Route::Inline(writers)) => writers
                .get_mut(partition as usize)
                .map(step)
                .ok_or(StorageError::Closed),
            _ => Err(StorageError::Closed),
        }
    }

    /// Decides and applies `cmds` as one group of `partition`'s inline
    /// writer: the group commit of commands that arrived together. Each
    /// answer arrives once the group is flushed ([`Engine::flush_group`],
    /// or any later command of the partition).
    #[cfg(feature = "sim")]
    pub(crate) fn apply_group(
        &self,
        partition: u32,
        cmds: Vec<Cmd>,
    ) -> Result<Vec<mpsc::Receiver<Result<Outcome, CommandError>>>, StorageError> {
        let (group, answers): (Vec<Request>, Vec<_>) = cmds
            .into_iter()
            .map(|cmd| {
                let (reply, answer) = mpsc::sync_channel(1);
                let reply = Reply::Command(reply);
                (Request { cmd, reply }, answer)
            })
            .unzip();
        self.inline(partition, |writer| writer.apply(group))?;
        Ok(answers)
    }

    /// Forgets the blocks the readers cached: the simulator puts back a
    /// block it damaged beneath the engine, which no real disk does, and a
    /// read made while it was damaged must not outlive the repair.
    #[cfg(feature = "sim")]
    pub(crate) fn forget_cached_blocks(&self) {
        self.inner.shared.blocks.clear();
    }

    /// Flushes and answers the oldest group `partition`'s inline writer
    /// applied; `false` when none waits.
    #[cfg(feature = "sim")]
    pub(crate) fn flush_group(&self, partition: u32) -> Result<bool, StorageError> {
        self.inline(partition, crate::writer::Inline::flush_one)
    }

    /// How many applied groups wait for their flush in `partition`.
    #[cfg(feature = "sim")]
    pub(crate) fn groups_waiting(&self, partition: u32) -> Result<usize, StorageError> {
        self.inline(partition, |writer| writer.waiting())
    }

    // -- definitions --------------------------------------------------------

    /// Validates and stores one definition as a new version of its
    /// workflow. The same content deployed again returns the existing
    /// version (`unchanged`), writing nothing.
    pub fn deploy(&self, text: &str, actor: &Actor) -> Result<DefinitionInfo, DeployError> {
        let mut infos = self.deploy_all(&[(None, text)], actor)?;
        infos
            .pop()
            .ok_or(DeployError::Storage(StorageError::Closed))
    }

    /// Validates several definitions together (so they may spawn each
    /// other) and stores them in one atomic write: all or none. `file`
    /// names each in diagnostics.
    pub fn deploy_all(
        &self,
        files: &[(Option<&str>, &str)],
        actor: &Actor,
    ) -> Result<Vec<DefinitionInfo>, DeployError> {
        let mut parsed = Vec::with_capacity(files.len());
        let mut diagnostics = Vec::new();
        for (file, text) in files {
            match strive_core::parse(*file, text) {
                Ok(p) => parsed.push(p),
                Err(found) => diagnostics.extend(found),
            }
        }
        let mut catalog = Catalog::new();
        for workflow in self.latest_definitions() {
            catalog.add(&workflow);
        }
        for p in &parsed {
            catalog.add(&p.definition);
        }
        for p in &parsed {
            diagnostics.extend(strive_core::validate(p, &catalog));
        }
        if has_errors(&diagnostics) {
            return Err(DeployError::Invalid { diagnostics });
        }
        for warning in &diagnostics {
            tracing::warn!(%warning, "deploying with a warning");
        }
        let mut items = Vec::with_capacity(parsed.len());
        for p in parsed {
            let hash = strive_core::definition_hash(&p.value);
            let workflow =
                Workflow::compile(p.definition, hash).map_err(|e| DeployError::Compile {
                    workflow: p.value["id"].as_str().unwrap_or_default().to_owned(),
                    message: e.message,
                })?;
            items.push(Prepared {
                workflow: Arc::new(workflow),
                value: p.value,
            });
        }
        let cmd = Cmd::Deploy {
            items,
            actor: actor.clone(),
        };
        // Deployments are global subjects: partition 0 records them all.
        self.send(0, |reply| Request {
            cmd,
            reply: Reply::Deploy(reply),
        })?
    }

    fn latest_definitions(&self) -> Vec<Definition> {
        let Ok(latest) = self.inner.shared.latest.read() else {
            return Vec::new();
        };
        latest
            .iter()
            .filter_map(|(id, version)| self.inner.shared.workflow(id, *version))
            .map(|w| w.definition().clone())
            .collect()
    }

    /// The compiled workflow at `version`, or its latest version.
    pub fn workflow(&self, id: &str, version: Option<u32>) -> Option<Arc<Workflow>> {
        match version {
            Some(version) => self.inner.shared.workflow(id, version),
            None => self.inner.shared.latest(id).map(|(_, w)| w),
        }
    }

    /// Every deployed version of `workflow`, oldest first.
    pub fn versions(&self, workflow: &str) -> Result<Vec<DefinitionInfo>, StorageError> {
        let prefix = keys::key(keys::DEFINITION, &[workflow]);
        self.scan(&prefix)
            .map(|entry| {
                let (key, value) = entry?;
                let stored: StoredDefinition = decode(&key, &value)?;
                Ok(info(&stored))
            })
            .collect()
    }

    /// Every deployed workflow's latest version, by id.
    pub fn workflows(&self) -> Result<Vec<DefinitionInfo>, StorageError> {
        let mut latest: Vec<DefinitionInfo> = Vec::new();
        for entry in self.scan(&[keys::DEFINITION]) {
            let (key, value) = entry?;
            let stored: StoredDefinition = decode(&key, &value)?;
            match latest.last_mut() {
                Some(last) if last.workflow == stored.workflow => *last = info(&stored),
                _ => latest.push(info(&stored)),
            }
        }
        Ok(latest)
    }

    /// The definition JSON of `workflow` at `version`.
    pub fn definition(&self, workflow: &str, version: u32) -> Result<Option<Value>, StorageError> {
        let key = keys::definition(workflow, version);
        match self.get(&key)? {
            None => Ok(None),
            Some(value) => Ok(Some(decode::<StoredDefinition>(&key, &value)?.definition)),
        }
    }

    // -- commands -----------------------------------------------------------

    /// Starts instance `instance` of the latest version of `workflow` with
    /// `data` over the declared defaults, optionally as a child of `parent`.
    /// Returns once the start is durable.
    pub fn start(
        &self,
        workflow: &str,
        instance: &str,
        actor: &Actor,
        data: Map<String, Value>,
        parent: Option<&str>,
        options: CommandOptions,
    ) -> Result<Outcome, CommandError> {
        let (actor, instance): (&Actor, &str) = (
            &crate::guard::caller(actor)?,
            &crate::guard::instance_id(instance)?,
        );
        crate::guard::command_id(&options)?;
        check_id(instance)?;
        check_options(&options)?;
        // Depth first, without recursion: cloning or serializing a value
        // nested thousands deep would overflow the stack.
        let data = check_depth("the initial data's nesting depth", Value::Object(data))?;
        check_size("the initial data's size in bytes of JSON", &data)?;
        let data = match data {
            Value::Object(data) => data,
            _ => Map::new(),
        };
        if let Some(expected) = options.expected_seq
            && expected != 0
        {
            // A start creates the instance; only "must not exist" makes sense.
            return Err(CommandError::Conflict {
                instance: instance.to_owned(),
                expected,
                actual: 0,
            });
        }
        let partition = match parent {
            Some(parent) => self.partition_of(parent)?,
            None => strive_core::root_partition(instance, self.partitions()),
        };
        let cmd = Cmd::Start {
            workflow: workflow.to_owned(),
            instance: instance.to_owned(),
            actor: actor.clone(),
            data,
            parent: parent.map(str::to_owned),
            options,
        };
        self.send(partition, |reply| Request {
            cmd,
            reply: Reply::Command(reply),
        })?
    }

    /// Fires `event` on `instance`. Returns once the event is durable, or
    /// the typed reason it was refused (and nothing was written).
    pub fn fire(
        &self,
        instance: &str,
        event: &str,
        actor: &Actor,
        payload: Value,
        options: CommandOptions,
    ) -> Result<Outcome, CommandError> {
        let (partition, cmd) = self.fire_cmd(instance, event, actor, payload, options)?;
        self.send(partition, |reply| Request {
            cmd,
            reply: Reply::Command(reply),
        })?
    }

    /// Fires `event` on `instance` without waiting: the command goes to
    /// its partition's writer, and the returned [`Pending`] resolves, in
    /// any async runtime, to what [`Engine::fire`] would return (once the
    /// event is durable, or the typed reason it was refused). An async
    /// service awaits it rather than block a thread per command in flight.
    /// With several partitions, routing reads the instance's record once
    /// before this returns.
    pub fn fire_pending(
        &self,
        instance: &str,
        event: &str,
        actor: &Actor,
        payload: Value,
        options: CommandOptions,
    ) -> Pending {
        match self.fire_cmd(instance, event, actor, payload, options) {
            Ok((partition, cmd)) => self.submit(partition, cmd),
            Err(refused) => Pending::ready(Err(refused)),
        }
    }

    /// Queues `cmd` for `partition`'s writer with a [`Pending`] answer.
    /// Every path that loses the request (a closed queue, a writer gone)
    /// drops its completer, which answers that the store is closed.
    fn submit(&self, partition: u32, cmd: Cmd) -> Pending {
        let (pending, done) = Pending::new();
        let request = Request {
            cmd,
            reply: Reply::Pending(done),
        };
        let Ok(mut requests) = self.inner.requests.lock() else {
            return pending;
        };
        let sender = match requests.as_mut() {
            Some(Route::Threads(senders)) => senders.get(partition as usize).cloned(),
            #[cfg(feature = "sim")]
            Some(Route::Inline(writers)) => {
                if let Some(writer) = writers.get_mut(partition as usize) {
                    writer.run(vec![request]);
                }
                return pending;
            }
            None => None,
        };
        drop(requests);
        if let Some(sender) = sender {
            // A closed queue hands the request back; dropping it answers.
            let _ = sender.send(request);
        }
        pending
    }

    /// A fire checked and routed: its partition and the writer's command.
    pub(crate) fn fire_cmd(
        &self,
        instance: &str,
        event: &str,
        actor: &Actor,
        payload: Value,
        options: CommandOptions,
    ) -> Result<(u32, Cmd), CommandError> {
        let (actor, instance): (&Actor, &str) = (
            &crate::guard::caller(actor)?,
            &crate::guard::instance_id(instance)?,
        );
        crate::guard::command_id(&options)?;
        check_options(&options)?;
        let payload = check_depth("the payload's nesting depth", payload)?;
        check_size("the payload's size in bytes of JSON", &payload)?;
        let partition = self.partition_of(instance)?;
        let cmd = Cmd::Fire {
            instance: instance.to_owned(),
            event: event.to_owned(),
            actor: actor.clone(),
            payload,
            options,
        };
        Ok((partition, cmd))
    }

    /// Fires every deadline due at or before `now`, each exactly once (also
    /// across restarts: a fired deadline is removed in the same write that
    /// records its event). Returns what each produced.
    pub fn fire_due(&self, now: jiff::Timestamp) -> Result<Vec<DeadlineFired>, StorageError> {
        let start = [keys::DEADLINE];
        let end = keys::deadline(now.as_microsecond().saturating_add(1), "");
        let due: Vec<(Vec<u8>, i64, String)> = self
            .inner
            .shared
            .memtables
            .range(&*self.inner.backend, &start, &end)
            .filter_map(|entry| match entry {
                Ok((key, _)) => keys::parse_deadline(&key).map(|(at, id)| Ok((key, at, id))),
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()?;
        let mut fired = Vec::with_capacity(due.len());
        for (key, at, instance) in due {
            let Some(record) = self.record(&instance)? else {
                continue;
            };
            let Some(deadline) = record.due else { continue };
            let id = instance.clone();
            let cmd = Cmd::Deadline { key, instance: id };
            let result = match self.send(record.partition, |reply| Request {
                cmd,
                reply: Reply::Deadline(reply),
            }) {
                Ok(result) => result,
                Err(e) => Err(CommandError::Storage(e)),
            };
            let result = match result {
                Ok(None) => continue,
                Ok(Some(outcome)) => Ok(outcome),
                Err(CommandError::Storage(e)) => return Err(e),
                Err(e) => Err(e),
            };
            fired.push(DeadlineFired {
                instance,
                event: deadline.event,
                due: jiff::Timestamp::from_microsecond(at).unwrap_or(deadline.at),
                result,
            });
        }
        Ok(fired)
    }

    // -- queries ------------------------------------------------------------

    /// The state records under `prefix`, as of the last applied group.
    pub(crate) fn scan<'a>(
        &'a self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<crate::backend::Entry, StorageError>> + use<'a> {
        self.range(prefix, &keys::prefix_end(prefix))
    }

    fn range<'a>(
        &'a self,
        start: &[u8],
        end: &[u8],
    ) -> impl Iterator<Item = Result<crate::backend::Entry, StorageError>> + use<'a> {
        self.inner
            .shared
            .memtables
            .range(&*self.inner.backend, start, end)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.shared.memtables.get(&*self.inner.backend, key)
    }

    fn log(&self, partition: u32) -> LogReader<'_> {
        LogReader {
            backend: &*self.inner.backend,
            partition,
            cache: Some(&self.inner.shared.blocks),
        }
    }

    /// The partition a command on existing instance `id` goes to: that of
    /// its record. An instance not (yet) visible goes to where a root of
    /// that id would be, whose writer then finds it or reports it unknown.
    pub(crate) fn partition_of(&self, id: &str) -> Result<u32, StorageError> {
        if self.partitions() == 1 {
            return Ok(0);
        }
        Ok(match self.record(id)? {
            Some(record) => record.partition,
            None => strive_core::root_partition(id, self.partitions()),
        })
    }

    fn record(&self, id: &str) -> Result<Option<InstanceRecord>, StorageError> {
        let key = keys::key(keys::INSTANCE, &[id]);
        match self.get(&key)? {
            None => Ok(None),
            Some(value) => decode(&key, &value).map(Some),
        }
    }

    /// The instance `id` now, with its deadline and children.
    pub fn instance(&self, id: &str) -> Result<Option<Snapshot>, StorageError> {
        let Some(record) = self.record(id)? else {
            return Ok(None);
        };
        let prefix = keys::key(keys::CHILD, &[id]);
        let children = self
            .scan(&prefix)
            .map(|entry| entry.map(|(key, _)| keys::tail(&key, prefix.len())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Snapshot {
            instance: record.instance,
            due: record.due,
            children,
        }))
    }

    /// A page of instances, by workflow and stage, or by parent, in id order.
    pub fn list(&self, query: &ListQuery) -> Result<Page, StorageError> {
        let limit = query.limit.unwrap_or(100).max(1);
        let prefix = match (&query.parent, &query.workflow, &query.stage) {
            (Some(parent), _, _) => keys::key(keys::CHILD, &[parent]),
            (None, Some(workflow), Some(stage)) => keys::key(keys::BY_STAGE, &[workflow, stage]),
            (None, Some(workflow), None) => keys::key(keys::BY_WORKFLOW, &[workflow]),
            (None, None, _) => vec![keys::INSTANCE],
        };
        // Every index key is the prefix, the id and a 0: the first key after
        // `after` is its own key followed by one more byte.
        let start = match &query.after {
            Some(after) => {
                let mut start = prefix.clone();
                start.extend_from_slice(after.as_bytes());
                start.extend_from_slice(&[0, 0]);
                start
            }
            None => prefix.clone(),
        };
        let mut items: Vec<Snapshot> = Vec::new();
        let mut next = None;
        for entry in self.range(&start, &keys::prefix_end(&prefix)) {
            let (key, _) = entry?;
            let id = keys::tail(&key, prefix.len());
            let Some(snapshot) = self.instance(&id)? else {
                continue;
            };
            // A parent's children may be filtered further by workflow and stage.
            if query
                .workflow
                .as_ref()
                .is_some_and(|w| *w != snapshot.instance.workflow)
                || query
                    .stage
                    .as_ref()
                    .is_some_and(|s| *s != snapshot.instance.stage)
            {
                continue;
            }
            if items.len() == limit {
                next = items.last().map(|s| s.instance.id.clone());
                break;
            }
            items.push(snapshot);
        }
        Ok(Page { items, next })
    }

    /// The events of `instance` (or of `@workflow/<id>`), in order. This
    /// holds the whole history in memory; [`Engine::history_page`] reads
    /// it a page at a time.
    pub fn history(&self, instance: &str) -> Result<Vec<StoredEvent>, StorageError> {
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let page = self.history_page(instance, after, HISTORY_PAGE)?;
            let Some(last) = page.last() else { break };
            after = last.event.seq;
            let full = page.len() == HISTORY_PAGE;
            events.extend(page);
            if !full {
                break;
            }
        }
        Ok(events)
    }

    /// Up to `limit` events of `instance` (or of `@workflow/<id>`) after
    /// its sequence number `after`, in order. Reads only those events'
    /// blocks, whatever the size of the log.
    pub fn history_page(
        &self,
        instance: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StorageError> {
        let (partition, positions) = self.positions(instance, after, limit)?;
        let log = self.log(partition);
        positions
            .into_iter()
            .map(|position| {
                log.event(position)?.ok_or_else(|| StorageError::Corrupt {
                    key: keys::show(&keys::block(partition, position)),
                    message: format!(
                        "the chain of {instance} names event {position}, which is missing"
                    ),
                })
            })
            .collect()
    }

    /// The partition of `instance`'s events and their log positions after
    /// sequence `after`.
    fn positions(
        &self,
        instance: &str,
        after: u64,
        limit: usize,
    ) -> Result<(u32, Vec<u64>), StorageError> {
        if let Some(workflow) = instance.strip_prefix(WORKFLOW_SUBJECT_PREFIX) {
            // A workflow's chain is its deployments, one per version, all
            // in partition 0.
            let versions = self.versions(workflow)?;
            let positions = versions
                .into_iter()
                .filter(|v| u64::from(v.version) > after)
                .take(limit)
                .map(|v| v.gseq)
                .collect();
            return Ok((0, positions));
        }
        let Some(record) = self.record(instance)? else {
            return Ok((0, Vec::new()));
        };
        let seq = record.instance.seq;
        let last = seq.min(after.saturating_add(limit as u64));
        let mut out = Vec::with_capacity((last.saturating_sub(after)) as usize);
        let full_chunks = (seq - record.chain.len() as u64) / keys::CHAIN_CHUNK;
        let mut wanted = after + 1;
        while wanted <= last {
            let chunk = (wanted - 1) / keys::CHAIN_CHUNK;
            if chunk >= full_chunks {
                let offset = (wanted - 1 - full_chunks * keys::CHAIN_CHUNK) as usize;
                out.extend(
                    record
                        .chain
                        .iter()
                        .skip(offset)
                        .take((last - wanted + 1) as usize),
                );
                break;
            }
            let key = keys::chain_chunk(instance, chunk as u32);
            let value = self.get(&key)?.ok_or_else(|| StorageError::Corrupt {
                key: keys::show(&key),
                message: "a chain chunk is missing".to_owned(),
            })?;
            let start = ((wanted - 1) % keys::CHAIN_CHUNK) as usize;
            for bytes in value.chunks_exact(8).skip(start) {
                if wanted > last {
                    break;
                }
                out.push(keys::u64_value(bytes).unwrap_or(0));
                wanted += 1;
            }
        }
        Ok((record.partition, out))
    }

    // -- the log --------------------------------------------------------------
    //
    // Each partition has its own log. The methods without a partition read
    // partition 0's, which in a store of one partition is the whole log;
    // the `_in` methods read any partition's (docs/storage.md, "Partitions").

    /// How many partitions the store has (fixed when it was created).
    pub fn partitions(&self) -> u32 {
        self.inner.shared.partitions()
    }

    /// The event at position `gseq` of partition 0's log.
    pub fn event(&self, gseq: u64) -> Result<Option<StoredEvent>, StorageError> {
        self.event_in(0, gseq)
    }

    /// The event at position `gseq` of `partition`'s log.
    pub fn event_in(&self, partition: u32, gseq: u64) -> Result<Option<StoredEvent>, StorageError> {
        if partition >= self.partitions() || gseq == 0 || gseq > self.applied(partition) {
            return Ok(None);
        }
        self.log(partition).event(gseq)
    }

    /// Events of partition 0's log from position `from` (inclusive), in
    /// order, up to what is durable.
    pub fn events(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<StoredEvent, StorageError>> + '_ {
        self.events_in(0, from)
    }

    /// Events of `partition`'s log from position `from` (inclusive), in
    /// order, up to what is durable; nothing for a partition out of range.
    pub fn events_in(
        &self,
        partition: u32,
        from: u64,
    ) -> impl Iterator<Item = Result<StoredEvent, StorageError>> + '_ {
        let last = self.last_gseq_in(partition);
        let reader = LogReader {
            backend: &*self.inner.backend,
            partition,
            cache: None,
        };
        std::iter::from_fn({
            let mut next = from.max(1);
            let mut buffer: std::vec::IntoIter<Result<StoredEvent, StorageError>> =
                Vec::new().into_iter();
            move || loop {
                if let Some(item) = buffer.next() {
                    return Some(item);
                }
                if next > last {
                    return None;
                }
                // A few blocks at a time, so memory stays flat.
                let to = last.min(next.saturating_add(EVENTS_CHUNK - 1));
                let chunk: Vec<_> = reader.events(next, to).collect();
                if chunk.is_empty() {
                    return None;
                }
                next = to + 1;
                buffer = chunk.into_iter();
            }
        })
    }

    /// The position of `partition`'s last applied event (at least the
    /// durable one).
    fn applied(&self, partition: u32) -> u64 {
        let tree = self
            .inner
            .shared
            .part(partition)
            .tree
            .read()
            .map(|t| t.size())
            .unwrap_or(0);
        tree.max(self.last_gseq_in(partition))
    }

    /// The size and root hash of partition 0's Merkle log over its durable
    /// events, in O(log N) reads. With one partition, a checkpoint's
    /// contents; with more, see [`Engine::tree_heads`].
    pub fn tree_head(&self) -> Result<TreeHead, StorageError> {
        self.tree_head_in(0)
    }

    /// The size and root of `partition`'s Merkle log over its durable events.
    pub fn tree_head_in(&self, partition: u32) -> Result<TreeHead, StorageError> {
        self.check_partition(partition)?;
        let size = self.last_gseq_in(partition);
        let root = self.with_tree(partition, |tree, tiles| tree.root_at(size, tiles))?;
        Ok(TreeHead { size, root })
    }

    /// Every partition's tree head, by partition: what a checkpoint of a
    /// store of several partitions signs (see [`Engine::partition_heads`]).
    pub fn tree_heads(&self) -> Result<Vec<TreeHead>, StorageError> {
        (0..self.partitions())
            .map(|p| self.tree_head_in(p))
            .collect()
    }

    /// Every partition's head as a checkpoint states it
    /// ([`strive_core::PartitionHead`], numbered by partition): what
    /// `strive_audit::Checkpoint::of_heads` signs.
    pub fn partition_heads(&self) -> Result<Vec<strive_core::PartitionHead>, StorageError> {
        Ok((0u32..)
            .zip(self.tree_heads()?)
            .map(|(partition, head)| strive_core::PartitionHead {
                partition,
                size: head.size,
                root: head.root,
            })
            .collect())
    }

    /// Whether the store ever ran on a manual clock (a simulation): its
    /// times are then the simulation's (issue #17). `verify` says so.
    pub fn ran_on_manual_clock(&self) -> Result<bool, StorageError> {
        crate::guard::ran_on_manual_clock(&*self.inner.backend)
    }
    /// The RFC 9162 inclusion proof of the event at `gseq` in partition 0's
    /// tree of `size` events, in O(log N) reads. Arguments outside the log
    /// are [`StorageError::InvalidArgument`].
    pub fn inclusion_proof(&self, gseq: u64, size: u64) -> Result<Vec<Hash>, StorageError> {
        self.inclusion_proof_in(0, gseq, size)
    }

    /// The inclusion proof of the event at `gseq` in `partition`'s tree of
    /// `size` events.
    pub fn inclusion_proof_in(
        &self,
        partition: u32,
        gseq: u64,
        size: u64,
    ) -> Result<Vec<Hash>, StorageError> {
        self.check_size(partition, size)?;
        if gseq == 0 || gseq > size {
            return Err(StorageError::InvalidArgument {
                argument: "event position",
                message: format!(
                    "the tree of {size} events has no event {gseq}; give a position from 1 to {size}"
                ),
            });
        }
        self.with_tree(partition, |tree, tiles| {
            tree.inclusion_proof(gseq - 1, size, tiles)
        })
    }

    /// The RFC 9162 proof that partition 0's tree of `old` events is a
    /// prefix of its tree of `new` events, in O(log N) reads. Sizes outside
    /// the log, or an old size above the new one, are
    /// [`StorageError::InvalidArgument`].
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StorageError> {
        self.consistency_proof_in(0, old, new)
    }

    /// The consistency proof between `partition`'s trees of `old` and
    /// `new` events.
    pub fn consistency_proof_in(
        &self,
        partition: u32,
        old: u64,
        new: u64,
    ) -> Result<Vec<Hash>, StorageError> {
        self.check_size(partition, new)?;
        if old > new {
            return Err(StorageError::InvalidArgument {
                argument: "tree size",
                message: format!(
                    "the old size {old} is larger than the new size {new}; give old <= new"
                ),
            });
        }
        self.with_tree(partition, |tree, tiles| {
            tree.consistency_proof(old, new, tiles)
        })
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        &*self.inner.backend
    }

    /// The stored tiles of `partition`'s tree of `size` events, each cut to
    /// the entries that tree has: level 0's full tiles, and every tile of
    /// the levels above (the last one partial).
    pub(crate) fn tiles_at(
        &self,
        partition: u32,
        size: u64,
    ) -> Result<Vec<StoredTile>, StorageError> {
        let width = strive_core::TILE_WIDTH as u64;
        let mut out = Vec::new();
        let mut entries = size;
        let mut level = 0u8;
        while entries > 0 {
            let tiles = if level == 0 {
                entries / width
            } else {
                entries.div_ceil(width)
            };
            for index in 0..tiles {
                let key = keys::tile(partition, level, index);
                let value = self
                    .inner
                    .backend
                    .get(&key)?
                    .ok_or_else(|| StorageError::Corrupt {
                        key: keys::show(&key),
                        message: "a Merkle tile is missing".to_owned(),
                    })?;
                let keep = (entries - index * width).min(width) as usize * 32;
                let value = value.get(..keep).ok_or_else(|| StorageError::Corrupt {
                    key: keys::show(&key),
                    message: "a Merkle tile is shorter than the tree needs".to_owned(),
                })?;
                out.push(((level, index), value.to_vec()));
            }
            entries /= width;
            level += 1;
        }
        Ok(out)
    }

    fn check_partition(&self, partition: u32) -> Result<(), StorageError> {
        if partition >= self.partitions() {
            return Err(StorageError::Corrupt {
                key: format!("partition {partition}"),
                message: format!("the store has {} partitions", self.partitions()),
            });
        }
        Ok(())
    }

    fn check_size(&self, partition: u32, size: u64) -> Result<(), StorageError> {
        self.check_partition(partition)?;
        let last = self.last_gseq_in(partition);
        if size > last {
            return Err(StorageError::InvalidArgument {
                argument: "tree size",
                message: format!(
                    "the log holds {last} durable events, not {size}; give a size up to {last}"
                ),
            });
        }
        Ok(())
    }

    fn with_tree<T, E: std::fmt::Display>(
        &self,
        partition: u32,
        run: impl FnOnce(&TileLog, &Tiles<'_>) -> Result<T, E>,
    ) -> Result<T, StorageError> {
        let tree = self
            .inner
            .shared
            .part(partition)
            .tree
            .read()
            .map(|t| t.clone())
            .map_err(|_| StorageError::Closed)?;
        let tiles = Tiles {
            backend: &*self.inner.backend,
            partition,
        };
        run(&tree, &tiles).map_err(|e| StorageError::Corrupt {
            key: "the Merkle tiles".to_owned(),
            message: e.to_string(),
        })
    }

    /// The position of partition 0's last durable event (0 when empty):
    /// with one partition, the number of events in the log.
    pub fn last_gseq(&self) -> u64 {
        self.last_gseq_in(0)
    }

    /// The position of `partition`'s last durable event (0 when empty or
    /// out of range).
    pub fn last_gseq_in(&self, partition: u32) -> u64 {
        if partition >= self.partitions() {
            return 0;
        }
        self.inner.shared.committed(partition)
    }

    /// How many durable events the store holds, over every partition.
    pub fn total_events(&self) -> u64 {
        (0..self.partitions()).map(|p| self.last_gseq_in(p)).sum()
    }

    /// Follows partition 0's log from position `from` (inclusive): a
    /// service remembers the position of the last event it handled and
    /// resumes after it following a restart.
    pub fn subscribe(&self, from: u64) -> Subscription {
        self.subscribe_in(0, from)
    }

    /// Follows `partition`'s log from position `from` (inclusive).
    pub fn subscribe_in(&self, partition: u32, from: u64) -> Subscription {
        Subscription {
            engine: self.clone(),
            partition: partition.min(self.partitions() - 1),
            next: from.max(1),
        }
    }

    /// Commit group sizes and flush latencies since the engine was opened.
    pub fn stats(&self) -> crate::stats::EngineStats {
        self.inner.shared.stats.snapshot()
    }

    /// Bytes the store occupies on disk, when known.
    pub fn size_on_disk(&self) -> Option<u64> {
        self.inner.backend.size_on_disk()
    }
}

/// A position in the log that waits for new events.
#[derive(Debug)]
pub struct Subscription {
    engine: Engine,
    partition: u32,
    next: u64,
}

impl Subscription {
    /// The partition this subscription follows.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The position of the next event this subscription returns.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The next durable event, waiting up to `timeout` for one to be
    /// written. `Ok(None)` when none came in time.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<StoredEvent>, StorageError> {
        let deadline = Instant::now() + timeout;
        let part = self.engine.inner.shared.part(self.partition);
        let mut committed = part.committed.lock().map_err(|_| StorageError::Closed)?;
        while *committed < self.next {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            committed = part
                .committed_changed
                .wait_timeout(committed, left)
                .map_err(|_| StorageError::Closed)?
                .0;
        }
        drop(committed);
        let event = self.engine.event_in(self.partition, self.next)?;
        if event.is_some() {
            self.next += 1;
        }
        Ok(event)
    }
}

use crate::writer::info;

/// A stored Merkle tile: (level, index) and its value.
pub(crate) type StoredTile = ((u8, u64), Vec<u8>);

/// The events [`Engine::history`] reads at a time.
const HISTORY_PAGE: usize = 1024;

/// The events [`Engine::events`] decodes at a time.
const EVENTS_CHUNK: u64 = 4096;

/// The size and root of the Merkle log: what a checkpoint signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// The number of events.
    pub size: u64,
    /// The RFC 9162 root hash.
    pub root: Hash,
}

fn decode<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(value).map_err(|e| StorageError::Corrupt {
        key: keys::show(key),
        message: e.to_string(),
    })
}

pub(crate) fn check_options(options: &CommandOptions) -> Result<(), CommandError> {
    if let Some(id) = &options.command_id
        && (id.is_empty() || id.len() > crate::writer::MAX_ID_BYTES)
    {
        return Err(CommandError::InvalidId {
            id: id.chars().take(140).collect(),
            reason: "command ids must be 1 to 128 bytes long",
        });
    }
    Ok(())
}

/// Refuses `value` if it nests deeper than `MAX_PAYLOAD_DEPTH`, measured
/// without recursion; a refused value is taken apart without recursion too.
fn check_depth(what: &'static str, value: Value) -> Result<Value, CommandError> {
    let mut deepest = 0;
    let mut stack = vec![(&value, 1usize)];
    while let Some((item, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match item {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    if deepest <= MAX_PAYLOAD_DEPTH {
        return Ok(value);
    }
    // Dropping the value whole would recurse once per level.
    let mut parts = vec![value];
    while let Some(part) = parts.pop() {
        match part {
            Value::Array(items) => parts.extend(items),
            Value::Object(map) => parts.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
    Err(CommandError::LimitExceeded {
        what,
        actual: deepest,
        limit: MAX_PAYLOAD_DEPTH,
    })
}

fn check_size(what: &'static str, value: &Value) -> Result<(), CommandError> {
    let size = serde_json::to_vec(value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_PAYLOAD_BYTES {
        return Err(CommandError::LimitExceeded {
            what,
            actual: size,
            limit: MAX_PAYLOAD_BYTES,
        });
    }
    Ok(())
}

/// The store format recorded in `backend`: `None` when it is empty.
pub(crate) fn stored_format(backend: &dyn Backend) -> Result<Option<u32>, StorageError> {
    Ok(backend.get(&keys::meta("format"))?.map(|value| {
        value
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0)
    }))
}

/// The record of a store's number of partitions (`m partitions`, a u32);
/// a store without one has a single partition.
pub(crate) fn partitions_record(partitions: u32) -> crate::backend::Write {
    (
        keys::meta("partitions"),
        Some(partitions.to_be_bytes().to_vec()),
    )
}

/// The number of partitions recorded in `backend` (1 when none is).
pub(crate) fn stored_partitions(backend: &dyn Backend) -> Result<u32, StorageError> {
    let key = keys::meta("partitions");
    let Some(value) = backend.get(&key)? else {
        return Ok(1);
    };
    match value.get(..4).and_then(|b| b.try_into().ok()) {
        Some(bytes) if (1..=MAX_PARTITIONS).contains(&u32::from_be_bytes(bytes)) => {
            Ok(u32::from_be_bytes(bytes))
        }
        _ => Err(StorageError::Corrupt {
            key: keys::show(&key),
            message: format!("the number of partitions is not 1 to {MAX_PARTITIONS}"),
        }),
    }
}

/// Checks (or, in an empty store, writes) the format version, and returns
/// the number of partitions: the store's own, or for a new store
/// `partitions`, which must be 1 to [`MAX_PARTITIONS`].
fn check_format(backend: &dyn Backend, path: &Path, partitions: u32) -> Result<u32, OpenError> {
    let key = keys::meta("format");
    match stored_format(backend)? {
        Some(found) => {
            if found != STORE_FORMAT {
                return Err(OpenError::UnsupportedFormat {
                    path: path.to_owned(),
                    found,
                    supported: STORE_FORMAT,
                });
            }
            Ok(stored_partitions(backend)?)
        }
        None => {
            if backend.range(&[], &[0xFF]).next().is_some() {
                // Data without a format record was not written by strive.
                return Err(OpenError::UnsupportedFormat {
                    path: path.to_owned(),
                    found: 0,
                    supported: STORE_FORMAT,
                });
            }
            if !(1..=MAX_PARTITIONS).contains(&partitions) {
                return Err(OpenError::Partitions {
                    requested: partitions,
                    limit: MAX_PARTITIONS,
                });
            }
            let mut writes = vec![(key, Some(STORE_FORMAT.to_be_bytes().to_vec()))];
            // One partition is the default and needs no record, so such a
            // store is what it was before partitions existed.
            if partitions > 1 {
                writes.push(partitions_record(partitions));
            }
            backend.apply(writes)?;
            backend.flush()?;
            Ok(partitions)
        }
    }
}

/// Checks the store's format, recovers every partition and returns the
/// state the writers share with readers and the writers, partition 0's
/// first: everything of an open but how the writers are run.
fn open_writers(
    backend: &Arc<dyn Backend>,
    path: Option<&Path>,
    options: &Options,
) -> Result<(Arc<Shared>, Vec<Writer>), OpenError> {
    let shown = path.map_or_else(|| PathBuf::from("(temporary)"), Path::to_owned);
    let partitions = check_format(&**backend, &shown, options.partitions)?;
    // The engine takes what it reads for durable: the end of each log is
    // what it reports committed, and it answers retried command ids from
    // the records it finds. A backend reopened in the same process after a
    // failed flush still holds applied writes that are not durable, so
    // they are made durable first (found by the simulator, issue #16).
    backend.flush()?;
    crate::guard::record_clock(&**backend, &*options.clock)?;
    let opened = (0..partitions)
        .map(|p| open_partition(&**backend, p))
        .collect::<Result<Vec<_>, _>>()?;
    let heads = opened.iter().map(|o| (o.last, o.tree.clone())).collect();
    let shared = Arc::new(Shared::new(heads));
    load_definitions(&**backend, &shared)?;
    // Partition 0 first: its log holds the deployments the others use.
    let mut damaged = None;
    let mut writers = Vec::with_capacity(opened.len());
    for (partition, opened) in (0u32..).zip(opened) {
        let mut writer = Writer::new(backend.clone(), shared.clone(), options.clone(), partition);
        let damage = match opened.damaged {
            Some(damage) => Some(damage),
            None if backend.shared_log().is_some() => catch_up(&mut writer, &shared)?,
            None => recover(&mut writer, &opened, &shown)?,
        };
        if let Some(damage) = damage {
            let damage = if partitions > 1 {
                format!("partition {partition}: {damage}")
            } else {
                damage
            };
            damaged.get_or_insert(damage);
        }
        writers.push(writer);
    }
    if let Some(cause) = damaged {
        tracing::error!(path = %shown.display(), %cause, "the store opens for reading only");
        if let Ok(mut poisoned) = shared.poisoned.lock() {
            *poisoned = Some(cause);
        }
    }
    Ok((shared, writers))
}

/// A partition's log as found at open.
struct Opened {
    /// Its last position.
    last: u64,
    /// The position its state is written back up to.
    applied: u64,
    /// Its Merkle log's right edge.
    tree: TileLog,
    /// Why it can only be read, if it can only be read.
    damaged: Option<String>,
}

/// Reads where `partition`'s log ends and its Merkle log's right edge.
fn open_partition(backend: &dyn Backend, partition: u32) -> Result<Opened, StorageError> {
    let log = LogReader {
        backend,
        partition,
        cache: None,
    };
    let last = log.last()?;
    let applied = backend
        .get(&keys::meta_partition("applied", partition))?
        .and_then(|v| keys::u64_value(&v))
        .unwrap_or(0);
    // A store whose log and state disagree still opens, for reading:
    // an auditor must be able to run `verify` on it. It refuses writes.
    let mut damaged = (applied > last).then(|| {
        format!(
            "the state is written up to log position {applied}, but the log ends at {last} \
             (the log was cut); run `strive verify`"
        )
    });
    let recent = log.digests(last - last % 256 + 1, last)?;
    let tree = match TileLog::restore::<StorageError>(last, &recent) {
        Ok(tree) => tree,
        Err(error) => {
            // A gap in the log's tail: readable, not provable.
            damaged.get_or_insert_with(|| format!("the Merkle log cannot be restored: {error}"));
            TileLog::new()
        }
    };
    Ok(Opened {
        last,
        applied,
        tree,
        damaged,
    })
}

/// Recovers a partition's state: decides again the events logged after its
/// last write-back. Returns why the store can only be read, if it can.
fn recover(
    writer: &mut Writer,
    opened: &Opened,
    shown: &Path,
) -> Result<Option<String>, OpenError> {
    writer.next_position = opened.applied + 1;
    // Negative control of the simulator (issue #16): a recovery that skips
    // the log's tail, leaving the state behind the log.
    #[cfg(feature = "sim")]
    if crate::sim::control::active(crate::sim::Control::SkipRecoveryTail) {
        writer.next_position = opened.last + 1;
        return Ok(None);
    }
    if opened.applied < opened.last {
        let backend = writer.backend.clone();
        let log = LogReader {
            backend: &*backend,
            partition: writer.partition,
            cache: None,
        };
        let replayed = writer.replay_recorded(log.events(opened.applied + 1, opened.last), false);
        match replayed {
            Ok(replayed) => {
                writer.write_back_now()?;
                backend.flush()?;
                tracing::info!(path = %shown.display(), partition = writer.partition, replayed,
                    "recovered the state from the log");
            }
            Err(error) => {
                return Ok(Some(format!(
                    "recovering the state from the log failed: {error}"
                )));
            }
        }
    }
    debug_assert_eq!(
        writer.next_position,
        opened.last + 1,
        "recovery replays to the end of the log"
    );
    Ok(None)
}

/// Recovers a partition of a store several processes write (docs/storage.md,
/// "Several processes"): under its head lock, the writer catches up with
/// the log as any group of it does, writes the state back and makes what
/// it read durable. Returns why the store can only be read, if it can.
fn catch_up(writer: &mut Writer, shared: &Shared) -> Result<Option<String>, OpenError> {
    if let Err(error) = writer.write_back_now() {
        return Ok(Some(format!(
            "catching up with the log other processes wrote failed: {error}"
        )));
    }
    writer.backend.flush()?;
    shared.committed_up_to(writer.partition, writer.next_position - 1);
    Ok(None)
}

/// Compiles every stored definition version into the cache.
fn load_definitions(backend: &dyn Backend, shared: &Shared) -> Result<(), OpenError> {
    let prefix = [keys::DEFINITION];
    for entry in backend.range(&prefix, &keys::prefix_end(&prefix)) {
        let (key, value) = entry?;
        let stored: StoredDefinition = decode(&key, &value)?;
        let definition: Definition =
            serde_json::from_value(stored.definition.clone()).map_err(|e| {
                OpenError::Definition {
                    workflow: stored.workflow.clone(),
                    version: stored.version,
                    message: e.to_string(),
                }
            })?;
        let workflow = Workflow::compile(definition, stored.hash.clone()).map_err(|e| {
            OpenError::Definition {
                workflow: stored.workflow.clone(),
                version: stored.version,
                message: e.message,
            }
        })?;
        shared.install(Arc::new(workflow), stored.version, stored.gseq);
    }
    Ok(())
}
