//! The seeded simulator: one thread, one clock, one model disk; simulated
//! clients drive the deployed workflows while faults are injected between
//! steps, and the model of what was acknowledged is checked against the
//! store after every reopen and at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};
use strive_core::Actor;

use crate::backend::Backend;
use crate::engine::Engine;
use crate::error::CommandError;
use crate::records::{CommandOptions, Durability, ManualClock, Options, Outcome};

use super::backend::SimBackend;
use super::control::{Armed, Control};

mod checks;
mod clients;

/// What one simulated run does.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The seed: the same seed gives the same run, step for step.
    pub seed: u64,
    /// How many steps to take.
    pub steps: u64,
    /// The definitions to deploy first, as (file name, JSON text), children
    /// first; the clients drive every workflow among them.
    pub definitions: Vec<(String, String)>,
    /// The partitions of the store.
    pub partitions: u32,
    /// The chance of each fault at each step.
    pub faults: Faults,
    /// A deliberately broken engine to run, for the negative controls.
    pub control: Option<Control>,
}

/// The chance of each fault at a step, in parts per 10,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faults {
    /// The process crashes: the disk keeps its durable image and a seeded
    /// prefix of the unflushed batches, and the store is reopened (its
    /// recovery itself sometimes cut by a power cut).
    pub crash: u32,
    /// The engine is closed cleanly and reopened.
    pub restart: u32,
    /// The disk dies after a seeded number (0 to 3) of further writes.
    pub power_cut: u32,
    /// The next apply fails.
    pub apply_error: u32,
    /// The next flush fails.
    pub flush_error: u32,
    /// One bit of a stored event block flips; `verify` must report it.
    pub corruption: u32,
    /// The clock jumps 1 to 40 days ahead, past deadlines.
    pub clock_jump: u32,
    /// Not a fault: `verify` runs on the engine as it is, groups applied
    /// and waiting for their flush included, as a server's verify job
    /// runs while the store takes writes. It must report nothing.
    pub live_verify: u32,
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            crash: 150,
            restart: 50,
            power_cut: 100,
            apply_error: 100,
            flush_error: 100,
            corruption: 30,
            clock_jump: 200,
            live_verify: 60,
        }
    }
}

/// How many of each fault a run injected.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FaultCounts {
    /// Crashes (including those that ended a power cut).
    pub crashes: u64,
    /// Clean restarts.
    pub restarts: u64,
    /// Power cuts armed.
    pub power_cuts: u64,
    /// Power cuts that struck during a recovery.
    pub cut_recoveries: u64,
    /// Applies failed.
    pub apply_errors: u64,
    /// Flushes failed.
    pub flush_errors: u64,
    /// Corruptions injected (each reported by `verify`, or the run fails,
    /// unless benign).
    pub corruptions: u64,
    /// Of those, flips that changed no digest and no event byte (the block
    /// decodes as before), which `verify` rightly does not report.
    pub benign_corruptions: u64,
    /// Clock jumps.
    pub clock_jumps: u64,
}

impl FaultCounts {
    /// Every fault injected.
    pub fn total(&self) -> u64 {
        self.crashes
            + self.restarts
            + self.power_cuts
            + self.apply_errors
            + self.flush_errors
            + self.corruptions
            + self.clock_jumps
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &FaultCounts) {
        self.crashes += other.crashes;
        self.restarts += other.restarts;
        self.power_cuts += other.power_cuts;
        self.cut_recoveries += other.cut_recoveries;
        self.apply_errors += other.apply_errors;
        self.flush_errors += other.flush_errors;
        self.corruptions += other.corruptions;
        self.benign_corruptions += other.benign_corruptions;
        self.clock_jumps += other.clock_jumps;
    }
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// Steps taken.
    pub steps: u64,
    /// Commands sent (starts, fires, retries, deadline sweeps).
    pub commands: u64,
    /// Commands acknowledged with a new event.
    pub acknowledged: u64,
    /// Retries answered from their idempotency record.
    pub replayed: u64,
    /// Commands refused (and checked to have written nothing).
    pub refused: u64,
    /// Deadlines fired.
    pub deadlines: u64,
    /// Groups of several commands decided together.
    pub bursts: u64,
    /// Opens of the store after the first (each followed by the checks).
    pub reopens: u64,
    /// Events in the store at the end, over every partition.
    pub events: u64,
    /// Verifications run with groups waiting for their flush
    /// ([`Faults::live_verify`]).
    pub live_verifies: u64,
    /// Faults injected.
    pub faults: FaultCounts,
    /// Each partition's Merkle root at the end, in hex: equal roots mean
    /// equal logs, byte for byte.
    pub roots: Vec<String>,
}

/// A failed run: where, and what the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimFailure {
    /// The run's seed.
    pub seed: u64,
    /// The step at which a check failed.
    pub step: u64,
    /// What failed.
    pub message: String,
    /// The broken engine the run used, if it used one.
    pub control: Option<Control>,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(control) = self.control {
            return write!(
                f,
                "simulation of the broken engine {control:?} failed at step {} of seed {}: {}",
                self.step, self.seed, self.message
            );
        }
        write!(
            f,
            "simulation failed at step {} of seed {}: {}; replay it with \
             STRIVE_SIM_SEED={} cargo test --test integration sim::",
            self.step, self.seed, self.message, self.seed
        )
    }
}

impl std::error::Error for SimFailure {}

/// The verifier the checks call after every reopen: `Ok` when the store
/// verifies, else the problems it found. The store crate cannot call
/// strive-audit's (which depends on it), so the caller passes it in.
pub type Verify<'a> = &'a dyn Fn(&Engine) -> Result<(), String>;

/// Runs one simulation. `Err` says at which step of which seed a check
/// failed; the same config fails the same way again.
pub fn run(config: &SimConfig, verify: Verify<'_>) -> Result<SimReport, SimFailure> {
    let _armed = Armed::new(config.control);
    let mut world = World::new(config, verify);
    let result = world.run();
    match result {
        Ok(()) => Ok(world.report),
        Err(message) => Err(SimFailure {
            seed: config.seed,
            step: world.step,
            message,
            control: config.control,
        }),
    }
}

/// A command a client sends, kept to send again.
#[derive(Debug, Clone)]
enum Command {
    Start {
        workflow: String,
        instance: String,
        actor: Actor,
        data: Map<String, Value>,
        options: CommandOptions,
    },
    Fire {
        instance: String,
        event: String,
        actor: Actor,
        payload: Value,
        options: CommandOptions,
    },
}

impl Command {
    fn instance(&self) -> &str {
        match self {
            Command::Start { instance, .. } | Command::Fire { instance, .. } => instance,
        }
    }

    fn command_id(&self) -> Option<&str> {
        match self {
            Command::Start { options, .. } | Command::Fire { options, .. } => {
                options.command_id.as_deref()
            }
        }
    }
}

/// An acknowledged event, and the command (with a command id) to retry.
struct Ack {
    outcome: Outcome,
    retry: Option<Command>,
}

/// What the clients were told: the model the store is checked against.
#[derive(Default)]
struct Model {
    acks: Vec<Ack>,
    /// Instances known to exist (acknowledged starts and spawned children).
    ids: BTreeSet<String>,
    /// Commands with an id whose outcome a failure left unknown.
    unknown: Vec<Command>,
    /// Acknowledged deadline fires, by (instance, due time in µs).
    fired: BTreeSet<(String, i64)>,
    /// Ids an acknowledged fire gave children it may have spawned, to look
    /// for once an engine is open.
    children: Vec<String>,
    /// Commands of groups applied and not yet answered, in sending order.
    in_flight: Vec<InFlight>,
}

/// A command whose group is applied, waiting for its flush and answer.
struct InFlight {
    command: Command,
    fresh: Vec<String>,
    answer: Receiver<Result<Outcome, CommandError>>,
}

const ACTORS: [&str; 4] = ["u1", "u2", "u3", "u4"];

struct World<'a> {
    config: &'a SimConfig,
    verify: Verify<'a>,
    rng: fastrand::Rng,
    clock: Arc<ManualClock>,
    backend: Arc<SimBackend>,
    engine: Option<Engine>,
    step: u64,
    next_id: u64,
    /// Each workflow's definition JSON, by id.
    definitions: BTreeMap<String, Value>,
    model: Model,
    report: SimReport,
    /// Whether an I/O fault was armed since the store was last opened:
    /// without one, a refusal to write is a failure.
    faulted: bool,
}

impl<'a> World<'a> {
    fn new(config: &'a SimConfig, verify: Verify<'a>) -> World<'a> {
        let start = Timestamp::from_second(1_772_323_200).unwrap_or(Timestamp::UNIX_EPOCH);
        let definitions = config
            .definitions
            .iter()
            .filter_map(|(_, text)| serde_json::from_str::<Value>(text).ok())
            .filter_map(|value| Some((value.get("id")?.as_str()?.to_owned(), value)))
            .collect();
        World {
            config,
            verify,
            rng: fastrand::Rng::with_seed(config.seed),
            clock: Arc::new(ManualClock::new(start)),
            backend: Arc::new(SimBackend::new()),
            engine: None,
            step: 0,
            next_id: 0,
            definitions,
            model: Model::default(),
            report: SimReport::default(),
            faulted: false,
        }
    }

    fn options(&self) -> Options {
        Options {
            durability: match self.config.control {
                Some(Control::AckBeforeFlush) => Durability::Buffered,
                _ => Durability::Flushed,
            },
            clock: self.clock.clone(),
            partitions: self.config.partitions,
            ..Options::default()
        }
    }

    fn engine(&self) -> Result<&Engine, String> {
        self.engine
            .as_ref()
            .ok_or_else(|| "no engine is open".to_owned())
    }

    fn run(&mut self) -> Result<(), String> {
        self.open()?;
        let admin = Actor::new("admin", &["admin"]);
        let files: Vec<(Option<&str>, &str)> = self
            .config
            .definitions
            .iter()
            .map(|(name, text)| (Some(name.as_str()), text.as_str()))
            .collect();
        self.engine()?
            .deploy_all(&files, &admin)
            .map_err(|e| format!("deploying the definitions failed: {e}"))?;
        while self.step < self.config.steps {
            self.step += 1;
            self.report.steps += 1;
            let stepped = self.one_step().and_then(|()| self.collect());
            if self.backend.is_dead() {
                // A power cut struck in the step: what it read after that
                // failed, as reads of a dead disk do. The reopen's checks
                // judge what the disk kept.
                self.crash()?;
                continue;
            }
            stepped?;
            if let Some(cause) = self.engine()?.poisoned() {
                if !self.faulted {
                    return Err(format!(
                        "the engine refuses writes with no fault injected: {cause}"
                    ));
                }
                // The operator restarts the service, after a crash or not.
                if self.rng.bool() {
                    self.crash()?;
                } else {
                    self.restart()?;
                }
            }
        }
        // A last clean restart, then every check once more.
        self.restart()?;
        let engine = self.engine.as_ref().ok_or("no engine is open")?;
        let heads = engine.tree_heads().map_err(|e| e.to_string())?;
        self.report.events = engine.total_events();
        self.report.roots = heads.iter().map(|head| hex::encode(head.root)).collect();
        Ok(())
    }

    // -- faults ---------------------------------------------------------------

    fn one_step(&mut self) -> Result<(), String> {
        let faults = self.config.faults;
        let mut roll = self.rng.u32(..10_000);
        let mut hit = |chance: u32| {
            let hit = roll < chance;
            roll = roll.saturating_sub(chance);
            hit
        };
        if hit(faults.crash) {
            return self.crash();
        }
        if hit(faults.restart) {
            self.report.faults.restarts += 1;
            return self.restart();
        }
        if hit(faults.power_cut) {
            self.report.faults.power_cuts += 1;
            self.faulted = true;
            self.backend.die_after(self.rng.u32(0..4));
            return Ok(());
        }
        if hit(faults.apply_error) {
            self.report.faults.apply_errors += 1;
            self.faulted = true;
            self.backend.fail_next_apply();
            return Ok(());
        }
        if hit(faults.flush_error) {
            self.report.faults.flush_errors += 1;
            self.faulted = true;
            self.backend.fail_next_flush();
            return Ok(());
        }
        if hit(faults.corruption) {
            return self.corrupt();
        }
        if hit(faults.live_verify) {
            return self.verify_live();
        }
        if hit(faults.clock_jump) {
            self.report.faults.clock_jumps += 1;
            let days = self.rng.u64(1..=40);
            self.clock.advance(Duration::from_secs(days * 86_400));
            return self.fire_due();
        }
        self.client_step()
    }

    /// Crashes the process and reopens the store on what the disk kept.
    fn crash(&mut self) -> Result<(), String> {
        self.report.faults.crashes += 1;
        let keep = self.rng.usize(..=self.backend.pending_batches());
        let survivor = Arc::new(self.backend.crash(keep));
        // The dead engine's destructor reaches only the dead disk: its
        // waiting groups are answered with errors.
        self.engine = None;
        self.collect()?;
        self.backend = survivor;
        self.open()
    }

    /// Closes the engine cleanly (writing its state back) and reopens.
    fn restart(&mut self) -> Result<(), String> {
        // A clean close flushes and answers the waiting groups first.
        self.engine = None;
        self.collect()?;
        if self.backend.is_dead() {
            return self.crash();
        }
        self.open()
    }

    /// Opens the store and checks it against the model. A third of the
    /// opens after the first have a power cut armed, which may strike
    /// during the recovery or just after it.
    fn open(&mut self) -> Result<(), String> {
        if self.report.steps > 0 {
            self.report.reopens += 1;
        }
        for _attempt in 0..8 {
            if self.report.steps > 0 && self.rng.u32(..3) == 0 {
                self.backend.die_after(self.rng.u32(0..4));
            }
            let failed = self.backend.counts().failed;
            let opened = Engine::with_backend_inline(self.backend.clone(), self.options());
            if opened.is_err() && self.backend.counts().failed > failed {
                // An injected I/O error failed the recovery: open again.
                continue;
            }
            if self.backend.is_dead() {
                // Cut during the recovery (or right after it): crash again.
                self.report.faults.cut_recoveries += 1;
                self.report.faults.crashes += 1;
                drop(opened);
                let keep = self.rng.usize(..=self.backend.pending_batches());
                self.backend = Arc::new(self.backend.crash(keep));
                continue;
            }
            let engine = opened.map_err(|e| format!("reopening the store failed: {e}"))?;
            self.engine = Some(engine);
            // A fault armed before the open and not struck yet may still
            // poison this engine.
            self.faulted = self.backend.armed();
            self.confirm_children()?;
            return self.check_all();
        }
        // Eight cuts in a row: open once more with none armed.
        self.backend.disarm();
        let engine = Engine::with_backend_inline(self.backend.clone(), self.options())
            .map_err(|e| format!("reopening the store failed: {e}"))?;
        self.engine = Some(engine);
        self.faulted = false;
        self.confirm_children()?;
        self.check_all()
    }

    /// Sends a burst and verifies the store before its groups are flushed:
    /// the log is read up to what is durable and the snapshots as applied,
    /// and verify must tell one from a fault. A poisoned
    /// engine or an armed fault is left to the steps that handle them.
    fn verify_live(&mut self) -> Result<(), String> {
        if self.faulted || self.backend.is_dead() || self.engine()?.poisoned().is_some() {
            return Ok(());
        }
        // A burst leaves its groups applied and waiting for the flusher.
        self.burst()?;
        if self.backend.is_dead() || self.engine()?.poisoned().is_some() {
            return Ok(());
        }
        let engine = self.engine()?;
        let waiting: usize = (0..engine.partitions())
            .map(|p| engine.groups_waiting(p).unwrap_or(0))
            .sum();
        if waiting > 0 {
            self.report.live_verifies += 1;
        }
        (self.verify)(self.engine()?)
            .map_err(|e| format!("verify with {waiting} group(s) waiting for their flush: {e}"))
    }

    /// Flips one bit of a stored block: `verify` must report it, and
    /// verify again once it is put back.
    fn corrupt(&mut self) -> Result<(), String> {
        // Every block the flip may land in must be durable, so that verify
        // reads it (`verify_live` covers groups waiting for their flush).
        self.flush_all()?;
        let blocks = self.backend.keys_in(b"b", b"c");
        // A flush that just failed left groups applied and not durable:
        // the restart comes first.
        if blocks.is_empty() || self.backend.is_dead() || self.engine()?.poisoned().is_some() {
            return Ok(());
        }
        let key = &blocks[self.rng.usize(..blocks.len())];
        let bit = self.rng.usize(..1 << 20);
        let Some(original) = self.backend.corrupt(key, bit) else {
            return Ok(());
        };
        self.report.faults.corruptions += 1;
        if same_block(key, &original, &self.backend) {
            // The flip left every digest and event byte as it was (zstd
            // ignores a few bits of its own encoding): no history changed,
            // so there is nothing for verify to report.
            self.report.faults.benign_corruptions += 1;
            self.backend.restore(key, original);
            return Ok(());
        }
        let engine = self.engine()?;
        if (self.verify)(engine).is_ok() {
            let bit = bit % (original.len() * 8);
            return Err(format!(
                "bit {bit} (byte {} of {}) flipped in block {} and verify did not report it",
                bit / 8,
                original.len(),
                crate::keys::show(key)
            ));
        }
        self.backend.restore(key, original);
        // Verify's rechecks read histories through the engine's block
        // cache, which may hold the damaged block; the repair is the disk's.
        engine.forget_cached_blocks();
        (self.verify)(engine).map_err(|e| format!("verify fails once the block is restored: {e}"))
    }
}

/// What a command could have changed (`World::footprint`).
#[derive(Debug, PartialEq)]
struct Footprint {
    applies: u64,
    logs: Vec<u64>,
    snapshot: Option<crate::records::Snapshot>,
}

/// Whether the block at `key` now decodes to the digests and event bytes
/// `original` decodes to.
fn same_block(key: &[u8], original: &[u8], backend: &SimBackend) -> bool {
    let shown = crate::keys::show(key);
    let now = backend.get(key).ok().flatten().unwrap_or_default();
    match (
        crate::block::decode(original, &shown),
        crate::block::decode(&now, &shown),
    ) {
        (Ok(before), Ok(after)) => before == after,
        _ => false,
    }
}

/// Whether `transition` may fire from `stage` (`"*"`: any stage).
fn from_allows(transition: &Value, stage: &str) -> bool {
    match transition.get("from") {
        Some(Value::String(from)) => from == stage || from == "*",
        Some(Value::Array(from)) => from.iter().any(|f| f.as_str() == Some(stage)),
        _ => false,
    }
}
