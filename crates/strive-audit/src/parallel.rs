//! Verification on every core (issue #10 item 6), with the problems of a
//! sequential run, in the same order.
//!
//! The caller's thread reads the log's blocks ([`EventRun`]s) and hands
//! them to `jobs` decoders, which hash each event's bytes and JSON-decode
//! it. One dispatcher takes the decoded blocks back in log order and runs
//! the checks that need that order (the global sequence, the Merkle log);
//! it sends each event to the shard of its family, an instance with its
//! parent and its children, where `jobs` workers check the chains and
//! replay. Deployments go to every shard (each replays them; shard 0 alone
//! reports on them). Each problem is tagged with its event's place in the
//! log, and the tags put the merged problems back in the sequential order.
//!
//! Replay is exact per shard only if no event reads the state of an
//! instance in another shard. Families make that so for every log the
//! engine writes; a tampered log can break it (a start whose parent is in
//! another family, a cause naming another family's event, a child spawned
//! in one family and started in another). The dispatcher and a check after
//! the last event detect each such case, and then the whole log is
//! verified again sequentially, so the report is always the sequential one.
//!
//! Each call verifies one log stream: with partitions, one partition's
//! log (the sequence and the Merkle log are per partition).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use strive_core::{Due, Event, EventKind, Instance, event_digest};

use crate::merkle::Hash;
use crate::problem::Problem;
use crate::replay::{FastMap, parent_of};
use crate::verify::{
    EventRun, Report, Shard, Snapshots, Stored, Stream, Verifier, VerifyOptions, finish, instances,
    unmet,
};

/// Verifies one log stream, given as the blocks `read()` yields, then the
/// snapshots, on [`VerifyOptions::jobs`] threads. `read` is called once,
/// or twice when the log holds a cross-family reference (see the module's
/// documentation). `progress` is called with the number of events read
/// after each block. The report is the one [`Verifier`] makes from the
/// same events, whatever the number of jobs.
pub fn verify_runs<F, R, E, S, Y>(
    read: F,
    snapshots: S,
    options: VerifyOptions,
    mut progress: impl FnMut(u64),
) -> Report
where
    F: Fn() -> R,
    R: Iterator<Item = Result<EventRun, E>>,
    E: fmt::Display,
    S: IntoIterator<Item = Result<(Instance, Option<Due>), Y>>,
    Y: fmt::Display,
{
    let jobs = resolve(options.jobs);
    if jobs > 1
        && let Some(done) = Parallel::run(read(), &options, Mode::Verify, jobs, &mut progress)
    {
        return done.finish(snapshots, &options);
    }
    tracing::debug!(jobs, "verifying sequentially");
    let mut verifier = Verifier::new(options);
    let mut read_so_far = 0u64;
    for item in read() {
        match item {
            Ok(run) => {
                read_so_far += run.len() as u64;
                verifier.run(&run);
            }
            Err(error) => verifier.unreadable(error),
        }
        progress(read_so_far);
    }
    for item in snapshots {
        match item {
            Ok((snapshot, due)) => verifier.snapshot(&snapshot, due.as_ref()),
            Err(error) => verifier.unreadable_snapshot(error),
        }
    }
    verifier.finish()
}

/// What the parallel pass checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Everything [`Verifier`] checks.
    Verify,
    /// Replay alone: no hashes, sequence, Merkle log or chains.
    Replay,
}

/// What a replay of a whole log found (see [`replay_runs`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Events read.
    pub events: u64,
    /// Instances replayed.
    pub instances: u64,
    /// What does not conform, in the order a sequential [`crate::Replayer`]
    /// finds it, then what the definitions imply but the log lacks
    /// ([`crate::Replayer::unmet`]); events that cannot be read or decoded too.
    pub problems: Vec<Problem>,
    /// The threads the events were replayed on (1 when sequential).
    pub jobs: usize,
}

/// Replays one log stream, given as the blocks `read()` yields, on `jobs`
/// threads (0: one per core, 1: sequentially): every instance rebuilt
/// through the core's transition function and every event checked to be
/// what the definition in force does, as [`crate::Replayer`] does, spread over
/// threads as [`verify_runs`] spreads verification. `read` is called twice
/// when the log holds a reference across families.
pub fn replay_runs<F, R, E>(read: F, jobs: usize) -> ReplayReport
where
    F: Fn() -> R,
    R: Iterator<Item = Result<EventRun, E>>,
    E: fmt::Display,
{
    let jobs = resolve(jobs);
    let options = VerifyOptions::default();
    if jobs > 1
        && let Some(done) = Parallel::run(read(), &options, Mode::Replay, jobs, &mut |_| {})
    {
        let mut problems = done.problems;
        problems.extend(unmet(&done.shards));
        return ReplayReport {
            events: done.stream.events(),
            instances: instances(&done.shards),
            problems,
            jobs,
        };
    }
    let mut stream = Stream::new(&options);
    let mut shard = Shard::default();
    let mut problems = Vec::new();
    for item in read() {
        let run = match item {
            Ok(run) => run,
            Err(error) => {
                problems.push(stream.unreadable(error));
                continue;
            }
        };
        for index in 0..run.len() {
            match decode(&run, index) {
                Decoded::Event {
                    hash, len, event, ..
                } => {
                    stream.pass(len);
                    problems.extend(shard.replayer.apply(&hash, &event));
                }
                Decoded::Undecodable {
                    computed,
                    len,
                    error,
                } => {
                    problems.push(stream.undecodable(&computed, len, &error));
                }
                Decoded::Unreadable(what) => problems.push(stream.unreadable(what)),
            }
        }
    }
    let shards = [shard];
    problems.extend(unmet(&shards));
    ReplayReport {
        events: stream.events(),
        instances: instances(&shards),
        problems,
        jobs: 1,
    }
}

/// The threads `jobs` asks for: 0 means one per core.
fn resolve(jobs: usize) -> usize {
    match jobs {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        jobs => jobs,
    }
}

/// A problem and its place in the sequential order: the event's ordinal in
/// the log, then 0 for the stream's checks and 1 for the shard's.
type Tagged = ((u64, u8), Problem);

/// A block, or why it could not be read, with its ordinal.
enum Input {
    Run(EventRun),
    Unreadable(String),
}

/// One event record after hashing and decoding.
enum Decoded {
    Event {
        stored: Hash,
        computed: Hash,
        hash: String,
        len: usize,
        event: Box<Event>,
    },
    Undecodable {
        computed: Hash,
        len: usize,
        error: String,
    },
    Unreadable(String),
}

/// An event sent to a shard: its ordinal, its hash in hex, and whether the
/// shard only replays it (a deployment copied to every shard but shard 0).
struct Job {
    ordinal: u64,
    hash: String,
    event: Arc<Event>,
    replica: bool,
}

/// Which shard each subject's events go to.
struct Router {
    shards: usize,
    /// A subject's shard, fixed by its first appearance: its parent's (a
    /// started child) or its own id's hash.
    of: FastMap<String, usize>,
}

/// The hash that picks a new subject's shard: aHash under fixed keys, so
/// that a log is spread over the shards the same way on every run (the
/// report does not depend on it; a hostile log can at worst put its
/// families in one shard, which is the sequential run).
fn spread(subject: &str) -> u64 {
    ahash::RandomState::with_seeds(
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
    )
    .hash_one(subject)
}

/// Where an event goes.
enum Target {
    One(usize),
    /// A deployment: to every shard.
    All,
    /// The event reads or writes state in another shard.
    Conflict,
}

impl Router {
    fn shard_of(&mut self, subject: &str) -> usize {
        if let Some(&shard) = self.of.get(subject) {
            return shard;
        }
        let shard = (spread(subject) % self.shards as u64) as usize;
        self.of.insert(subject.to_owned(), shard);
        shard
    }

    fn route(&mut self, event: &Event) -> Target {
        if event.kind == EventKind::Deploy {
            // A deployment's chain is checked in shard 0.
            return match self.of.get(&event.instance) {
                Some(&shard) if shard != 0 => Target::Conflict,
                Some(_) => Target::All,
                None => {
                    self.of.insert(event.instance.clone(), 0);
                    Target::All
                }
            };
        }
        let shard = match (event.kind, parent_of(event)) {
            (EventKind::Start, Some(parent)) => {
                let family = self.shard_of(parent);
                match self.of.get(&event.instance) {
                    Some(&own) if own != family => return Target::Conflict,
                    Some(_) => {}
                    None => {
                        self.of.insert(event.instance.clone(), family);
                    }
                }
                family
            }
            _ => self.shard_of(&event.instance),
        };
        // An instance that has no events yet has no state to read.
        match &event.cause {
            Some(cause) if self.of.get(&cause.instance).is_some_and(|&c| c != shard) => {
                Target::Conflict
            }
            _ => Target::One(shard),
        }
    }
}

/// What the parallel pass leaves for the snapshot checks.
struct Parallel {
    stream: Stream,
    shards: Vec<Shard>,
    router: Router,
    problems: Vec<Problem>,
}

impl Parallel {
    /// The events of `runs`, checked on `jobs` threads; `None` when the log
    /// holds a cross-family reference and must be verified sequentially.
    fn run<R, E>(
        runs: R,
        options: &VerifyOptions,
        mode: Mode,
        jobs: usize,
        progress: &mut impl FnMut(u64),
    ) -> Option<Parallel>
    where
        R: Iterator<Item = Result<EventRun, E>>,
        E: fmt::Display,
    {
        let abandon = AtomicBool::new(false);
        let (inputs, input_rx) = sync_channel::<(u64, Input)>(jobs * 4);
        let input_rx = Mutex::new(input_rx);
        let (decoded, decoded_rx) = sync_channel::<(u64, Vec<Decoded>)>(jobs * 4);
        let (to_shards, shard_rxs): (Vec<_>, Vec<_>) =
            (0..jobs).map(|_| sync_channel::<Vec<Job>>(16)).unzip();
        std::thread::scope(|scope| {
            // Should a thread not start, the channels close as this
            // closure returns, the others end, and the caller verifies
            // sequentially.
            for _ in 0..jobs {
                let decoded = decoded.clone();
                let input_rx = &input_rx;
                named(scope, "verify-decode", move || {
                    decode_loop(input_rx, &decoded)
                })?;
            }
            drop(decoded);
            let mut workers = Vec::with_capacity(jobs);
            for rx in shard_rxs {
                workers.push(named(scope, "verify-shard", move || shard_loop(&rx, mode))?);
            }
            let stream = Stream::new(options);
            let abandon = &abandon;
            let dispatcher = named(scope, "verify-dispatch", move || {
                let dispatcher = Dispatcher::new(stream, mode, jobs, &to_shards, abandon);
                dispatcher.run(&decoded_rx)
            })?;
            let mut read = 0u64;
            for (ordinal, item) in runs.enumerate() {
                if abandon.load(Ordering::Relaxed) {
                    break;
                }
                let input = match item {
                    Ok(run) => {
                        read += run.len() as u64;
                        Input::Run(run)
                    }
                    Err(error) => Input::Unreadable(error.to_string()),
                };
                if inputs.send((ordinal as u64, input)).is_err() {
                    break;
                }
                progress(read);
            }
            drop(inputs);
            let dispatched = dispatcher.join().ok().flatten();
            let shards: Vec<(Shard, Vec<Tagged>)> =
                workers.into_iter().filter_map(|w| w.join().ok()).collect();
            let (stream, router, mut tagged) = dispatched?;
            if shards.len() != jobs || !spawns_stay_home(&shards, &router) {
                return None;
            }
            let mut shard_states = Vec::with_capacity(jobs);
            for (shard, problems) in shards {
                tagged.extend(problems);
                shard_states.push(shard);
            }
            // Stable: within one tag, problems keep the order found.
            tagged.sort_by_key(|(tag, _)| *tag);
            Some(Parallel {
                stream,
                shards: shard_states,
                router,
                problems: tagged.into_iter().map(|(_, problem)| problem).collect(),
            })
        })
    }

    /// The snapshot checks (sequential: they are few beside the events) and
    /// the report.
    fn finish<S, Y>(mut self, snapshots: S, options: &VerifyOptions) -> Report
    where
        S: IntoIterator<Item = Result<(Instance, Option<Due>), Y>>,
        Y: fmt::Display,
    {
        let mut seen = Snapshots::default();
        for item in snapshots {
            match item {
                Ok((snapshot, due)) => {
                    let shard = self
                        .router
                        .of
                        .get(&snapshot.id)
                        .and_then(|&shard| self.shards.get(shard));
                    seen.check(shard, &snapshot, due.as_ref(), &mut self.problems);
                }
                Err(error) => {
                    let problem = seen.unreadable(error);
                    self.problems.push(problem);
                }
            }
        }
        finish(
            options,
            vec![self.stream],
            &self.shards,
            &seen,
            self.problems,
        )
    }
}

/// Starts a named thread in `scope` (names show in profiles and `top`).
fn named<'scope, T: Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    run: impl FnOnce() -> T + Send + 'scope,
) -> Option<std::thread::ScopedJoinHandle<'scope, T>> {
    match std::thread::Builder::new()
        .name(name.to_owned())
        .spawn_scoped(scope, run)
    {
        Ok(handle) => Some(handle),
        Err(error) => {
            tracing::warn!(%error, name, "cannot start a verification thread");
            None
        }
    }
}

/// Whether every child a shard's replay spawned was started (if at all) in
/// that shard, and by one shard only: otherwise the sequential replay
/// would have matched a spawn with a start that the shards kept apart.
fn spawns_stay_home(shards: &[(Shard, Vec<Tagged>)], router: &Router) -> bool {
    let mut spawner: HashMap<&str, usize> = HashMap::new();
    for (index, (shard, _)) in shards.iter().enumerate() {
        for child in shard.replayer.spawned() {
            if router.of.get(child).is_some_and(|&home| home != index)
                || *spawner.entry(child).or_insert(index) != index
            {
                return false;
            }
        }
    }
    true
}

/// A decoder: hashes and decodes blocks until the reader is done.
fn decode_loop(inputs: &Mutex<Receiver<(u64, Input)>>, out: &SyncSender<(u64, Vec<Decoded>)>) {
    loop {
        let next = match inputs.lock() {
            Ok(inputs) => inputs.recv(),
            Err(_) => return,
        };
        let Ok((ordinal, input)) = next else { return };
        let items = match input {
            Input::Unreadable(what) => vec![Decoded::Unreadable(what)],
            Input::Run(run) => (0..run.len()).map(|index| decode(&run, index)).collect(),
        };
        if out.send((ordinal, items)).is_err() {
            return;
        }
    }
}

fn decode(run: &EventRun, index: usize) -> Decoded {
    let (stored, bytes) = match run.get(index) {
        Ok(found) => found,
        Err(what) => return Decoded::Unreadable(what),
    };
    let computed = event_digest(bytes);
    match Event::decode(bytes) {
        Ok(event) => Decoded::Event {
            stored: *stored,
            computed,
            hash: hex::encode(computed),
            len: bytes.len(),
            event: Box::new(event),
        },
        Err(error) => Decoded::Undecodable {
            computed,
            len: bytes.len(),
            error: error.to_string(),
        },
    }
}

/// A shard's worker: chains and replay for the events sent to it.
fn shard_loop(jobs: &Receiver<Vec<Job>>, mode: Mode) -> (Shard, Vec<Tagged>) {
    let mut shard = Shard::default();
    shard.replayer.record_spawns();
    let mut tagged = Vec::new();
    let mut found = Vec::new();
    while let Ok(batch) = jobs.recv() {
        for job in batch {
            if job.replica {
                // The same problems are reported by shard 0.
                let _ = shard.replayer.apply(&job.hash, &job.event);
                continue;
            }
            match mode {
                Mode::Verify => shard.event(&job.hash, &job.event, &mut found),
                Mode::Replay => found.extend(shard.replayer.apply(&job.hash, &job.event)),
            }
            tagged.extend(found.drain(..).map(|problem| ((job.ordinal, 1), problem)));
        }
    }
    (shard, tagged)
}

/// The dispatcher: takes decoded blocks back in log order, runs the
/// stream's checks and sends each event to the shard of its family.
struct Dispatcher<'a> {
    stream: Stream,
    mode: Mode,
    router: Router,
    tagged: Vec<Tagged>,
    found: Vec<Problem>,
    /// The batches being filled for each shard.
    batches: Vec<Vec<Job>>,
    shards: &'a [SyncSender<Vec<Job>>],
    /// Set when an event crosses families: the reader stops.
    abandon: &'a AtomicBool,
}

impl<'a> Dispatcher<'a> {
    fn new(
        stream: Stream,
        mode: Mode,
        jobs: usize,
        shards: &'a [SyncSender<Vec<Job>>],
        abandon: &'a AtomicBool,
    ) -> Dispatcher<'a> {
        Dispatcher {
            stream,
            mode,
            router: Router {
                shards: jobs,
                of: FastMap::default(),
            },
            tagged: Vec::new(),
            found: Vec::new(),
            batches: (0..jobs).map(|_| Vec::new()).collect(),
            shards,
            abandon,
        }
    }

    /// Dispatches every decoded block. `None` when an event crosses
    /// families.
    fn run(
        mut self,
        decoded: &Receiver<(u64, Vec<Decoded>)>,
    ) -> Option<(Stream, Router, Vec<Tagged>)> {
        let mut waiting: HashMap<u64, Vec<Decoded>> = HashMap::new();
        let (mut next_block, mut ordinal) = (0u64, 0u64);
        while let Ok((block, items)) = decoded.recv() {
            if self.abandon.load(Ordering::Relaxed) {
                // Drain, so that no decoder waits on a full channel.
                continue;
            }
            waiting.insert(block, items);
            while let Some(items) = waiting.remove(&next_block) {
                next_block += 1;
                for item in items {
                    self.item(ordinal, item);
                    ordinal += 1;
                }
                if self.abandon.load(Ordering::Relaxed) {
                    break;
                }
                self.send();
            }
        }
        (!self.abandon.load(Ordering::Relaxed)).then_some((self.stream, self.router, self.tagged))
    }
}

impl Dispatcher<'_> {
    /// The event record at `ordinal`: the stream's checks, then its shard.
    fn item(&mut self, ordinal: u64, item: Decoded) {
        let (stored, computed, hash, len, event) = match item {
            Decoded::Unreadable(what) => {
                let problem = self.stream.unreadable(what);
                self.tagged.push(((ordinal, 0), problem));
                return;
            }
            Decoded::Undecodable {
                computed,
                len,
                error,
            } => {
                let problem = self.stream.undecodable(&computed, len, &error);
                self.tagged.push(((ordinal, 0), problem));
                return;
            }
            Decoded::Event {
                stored,
                computed,
                hash,
                len,
                event,
            } => (stored, computed, hash, len, event),
        };
        match self.mode {
            Mode::Verify => {
                let stored = Stored::Digest(&stored);
                self.stream
                    .event(stored, (&computed, &hash), len, &event, &mut self.found);
            }
            Mode::Replay => self.stream.pass(len),
        }
        self.tagged
            .extend(self.found.drain(..).map(|problem| ((ordinal, 0), problem)));
        let target = self.router.route(&event);
        let event: Arc<Event> = Arc::from(event);
        match target {
            Target::Conflict => {
                tracing::info!(
                    gseq = event.gseq,
                    instance = %event.instance,
                    "an event crosses families: verifying sequentially"
                );
                self.abandon.store(true, Ordering::Relaxed);
            }
            Target::One(shard) => {
                if let Some(batch) = self.batches.get_mut(shard) {
                    batch.push(Job {
                        ordinal,
                        hash,
                        event,
                        replica: false,
                    });
                }
            }
            Target::All => {
                for (shard, batch) in self.batches.iter_mut().enumerate() {
                    batch.push(Job {
                        ordinal,
                        hash: hash.clone(),
                        event: event.clone(),
                        replica: shard != 0,
                    });
                }
            }
        }
    }

    /// Sends the batches filled so far to their shards.
    fn send(&mut self) {
        for (sender, batch) in self.shards.iter().zip(&mut self.batches) {
            if !batch.is_empty() && sender.send(std::mem::take(batch)).is_err() {
                self.abandon.store(true, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::{Value, json};
    use strive_core::{Actor, Event, EventKind, GENESIS, definition_hash, event_digest};

    use super::*;

    /// The approval workflow of the crate's example.
    fn definition() -> Value {
        json!({
            "id": "approval", "title": "Approval", "roles": [{"id": "chief"}],
            "stages": [{"id": "draft", "kind": "initial"}, {"id": "approved", "kind": "terminal"}],
            "transitions": [{"event": "approve", "from": "draft", "to": "approved", "roles": ["chief"]}]
        })
    }

    /// A log of `(kind, instance, payload)` events, chained and numbered
    /// as the engine writes them, in one block.
    fn log(events: &[(EventKind, &str, Value)]) -> EventRun {
        let hash = definition_hash(&definition());
        let mut heads: HashMap<String, (u64, String)> = HashMap::new();
        let mut run = EventRun::new();
        for (gseq, (kind, instance, payload)) in (1..).zip(events) {
            let (seq, prev) = heads
                .get(*instance)
                .map_or((1, GENESIS.to_owned()), |(seq, prev)| {
                    (seq + 1, prev.clone())
                });
            let (event, from, transition, to) = match kind {
                EventKind::Deploy => ("deploy", None, None, ""),
                EventKind::Start => ("start", None, None, "draft"),
                EventKind::Fire => (
                    "approve",
                    Some("draft".to_owned()),
                    Some("approve".to_owned()),
                    "approved",
                ),
                EventKind::Grant
                | EventKind::Revoke
                | EventKind::Migrate
                | EventKind::RegisterKey
                | EventKind::RetireKey
                | EventKind::Lifecycle => {
                    unreachable!("the test logs hold none")
                }
            };
            let event = Event {
                v: 1,
                gseq,
                partition: 0,
                instance: (*instance).to_owned(),
                seq,
                prev,
                kind: *kind,
                workflow: "approval".into(),
                version: 1,
                definition_hash: hash.clone(),
                from,
                event: event.into(),
                transition,
                to: to.into(),
                actor: Actor::new("wang", &["chief"]),
                at: "2026-05-01T08:00:00Z".parse().expect("time"),
                command_id: None,
                payload: payload.clone(),
                effects: vec![],
                cause: None,
                signature: None,
            };
            let bytes = event.encode();
            let digest = event_digest(&bytes);
            heads.insert((*instance).to_owned(), (seq, hex::encode(digest)));
            run.push(digest, &bytes);
        }
        run
    }

    fn verify(run: &EventRun, jobs: usize) -> Report {
        let snapshots: Vec<Result<(Instance, Option<Due>), String>> = Vec::new();
        verify_runs(
            || std::iter::once(Ok::<_, String>(run.clone())),
            snapshots,
            VerifyOptions {
                jobs,
                ..VerifyOptions::default()
            },
            |_| {},
        )
    }

    /// Two ids whose own shards differ among `jobs`.
    fn apart(jobs: usize) -> (String, String) {
        let mut router = Router {
            shards: jobs,
            of: FastMap::default(),
        };
        let first = router.shard_of("doc-0");
        let other = (1..)
            .map(|n| format!("doc-{n}"))
            .find(|id| router.shard_of(id) != first)
            .unwrap_or_default();
        ("doc-0".to_owned(), other)
    }

    #[test]
    fn families_are_checked_in_parallel_with_the_sequential_report() {
        let (a, b) = apart(2);
        let start = json!({"data": {}, "parent": null});
        let run = log(&[
            (EventKind::Deploy, "@workflow/approval", definition()),
            (EventKind::Start, &a, start.clone()),
            (EventKind::Start, &b, start),
            (EventKind::Fire, &a, Value::Null),
            (EventKind::Fire, &b, Value::Null),
            // A second approval of an approved document: refused on replay.
            (EventKind::Fire, &b, Value::Null),
        ]);
        let sequential = verify(&run, 1);
        let parallel = verify(&run, 2);
        assert_eq!(parallel.jobs, 2, "no fallback on a log within families");
        assert_eq!(sequential.jobs, 1);
        assert!(!sequential.problems.is_empty());
        assert_eq!(parallel.problems, sequential.problems);
        assert_eq!(parallel.root, sequential.root);
        assert_eq!(parallel.instances, 2);
        // Replay alone, likewise.
        let replay = |jobs| replay_runs(|| std::iter::once(Ok::<_, String>(run.clone())), jobs);
        let (sequential, parallel) = (replay(1), replay(2));
        assert_eq!((sequential.jobs, parallel.jobs), (1, 2));
        assert!(!sequential.problems.is_empty());
        assert_eq!(parallel.problems, sequential.problems);
        assert_eq!((parallel.events, parallel.instances), (6, 2));
    }

    #[test]
    fn a_start_under_another_family_is_verified_sequentially() {
        let (a, b) = apart(2);
        let run = log(&[
            (EventKind::Deploy, "@workflow/approval", definition()),
            (EventKind::Start, &a, json!({"data": {}, "parent": null})),
            // `b`'s start names `a` as its parent, after `b` was placed in
            // its own shard by an earlier event.
            (EventKind::Fire, &b, Value::Null),
            (EventKind::Start, &b, json!({"data": {}, "parent": a})),
        ]);
        let sequential = verify(&run, 1);
        let parallel = verify(&run, 2);
        assert_eq!(parallel.jobs, 1, "the parallel run fell back");
        assert!(!sequential.problems.is_empty());
        assert_eq!(parallel.problems, sequential.problems);
    }
}
