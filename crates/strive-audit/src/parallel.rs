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
use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash as _, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use strive_core::{Due, Event, EventKind, Instance, event_digest};

use crate::merkle::Hash;
use crate::problem::Problem;
use crate::replay::parent_of;
use crate::verify::{
    EventRun, Report, Shard, Snapshots, Stored, Stream, Verifier, VerifyOptions, finish,
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
    let jobs = match options.jobs {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        jobs => jobs,
    };
    if jobs > 1
        && let Some(done) = Parallel::run(read(), &options, jobs, &mut progress)
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
    of: HashMap<String, usize>,
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
        let mut hasher = DefaultHasher::new();
        subject.hash(&mut hasher);
        let shard = (hasher.finish() % self.shards as u64) as usize;
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
            for _ in 0..jobs {
                let decoded = decoded.clone();
                let input_rx = &input_rx;
                scope.spawn(move || decode_loop(input_rx, &decoded));
            }
            drop(decoded);
            let workers: Vec<_> = shard_rxs
                .into_iter()
                .map(|rx| scope.spawn(move || shard_loop(&rx)))
                .collect();
            let stream = Stream::new(options);
            let abandon = &abandon;
            let dispatcher =
                scope.spawn(move || dispatch(stream, jobs, &decoded_rx, &to_shards, abandon));
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
        finish(options, self.stream, &self.shards, &seen, self.problems)
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
fn shard_loop(jobs: &Receiver<Vec<Job>>) -> (Shard, Vec<Tagged>) {
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
            shard.event(&job.hash, &job.event, &mut found);
            tagged.extend(found.drain(..).map(|problem| ((job.ordinal, 1), problem)));
        }
    }
    (shard, tagged)
}

/// The dispatcher's state: the stream's checks, the routing, and the
/// batches being filled for each shard.
struct Dispatcher<'a> {
    stream: Stream,
    router: Router,
    tagged: Vec<Tagged>,
    found: Vec<Problem>,
    batches: Vec<Vec<Job>>,
    shards: &'a [SyncSender<Vec<Job>>],
    abandon: &'a AtomicBool,
}

/// The dispatcher: takes decoded blocks back in log order, runs the
/// stream's checks and sends each event to its shard. `None` when an event
/// crosses families (the reader is told to stop through `abandon`).
fn dispatch(
    stream: Stream,
    jobs: usize,
    decoded: &Receiver<(u64, Vec<Decoded>)>,
    shards: &[SyncSender<Vec<Job>>],
    abandon: &AtomicBool,
) -> Option<(Stream, Router, Vec<Tagged>)> {
    let mut dispatcher = Dispatcher {
        stream,
        router: Router {
            shards: jobs,
            of: HashMap::new(),
        },
        tagged: Vec::new(),
        found: Vec::new(),
        batches: (0..jobs).map(|_| Vec::new()).collect(),
        shards,
        abandon,
    };
    let mut waiting: HashMap<u64, Vec<Decoded>> = HashMap::new();
    let (mut next_block, mut ordinal) = (0u64, 0u64);
    while let Ok((block, items)) = decoded.recv() {
        if abandon.load(Ordering::Relaxed) {
            // Drain, so that no decoder waits on a full channel.
            continue;
        }
        waiting.insert(block, items);
        while let Some(items) = waiting.remove(&next_block) {
            next_block += 1;
            for item in items {
                dispatcher.item(ordinal, item);
                ordinal += 1;
            }
            if abandon.load(Ordering::Relaxed) {
                break;
            }
            dispatcher.send();
        }
    }
    let Dispatcher {
        stream,
        router,
        tagged,
        ..
    } = dispatcher;
    (!abandon.load(Ordering::Relaxed)).then_some((stream, router, tagged))
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
        let stored = Stored::Digest(&stored);
        self.stream
            .event(stored, (&computed, &hash), len, &event, &mut self.found);
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
