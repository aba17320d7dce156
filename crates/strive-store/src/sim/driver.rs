//! The seeded simulator: one thread, one clock, one model disk; simulated
//! clients drive the deployed workflows while faults are injected between
//! steps, and the model of what was acknowledged is checked against the
//! store after every reopen and at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Map, Value};
use strive_core::Actor;

use crate::backend::Backend;
use crate::engine::Engine;
use crate::error::{CommandError, StorageError};
use crate::records::{Clock, CommandOptions, Durability, ManualClock, Options, Outcome};
use crate::writer::Cmd;

use super::backend::SimBackend;
use super::control::{Armed, Control};
use super::payload::{Values, map_keys};

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

    /// Flips one bit of a stored block: `verify` must report it, and
    /// verify again once it is put back.
    fn corrupt(&mut self) -> Result<(), String> {
        // Verify reads the log up to what is durable and the snapshots as
        // applied: it needs a store with no group waiting for its flush.
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
        (self.verify)(engine).map_err(|e| format!("verify fails once the block is restored: {e}"))
    }

    // -- clients --------------------------------------------------------------

    fn client_step(&mut self) -> Result<(), String> {
        match self.rng.u32(..100) {
            0..8 => self.start_root(),
            8..50 => self.fire_some(),
            50..58 => self.burst(),
            58..63 => self.flush_some(),
            63..71 => self.retry_acknowledged(),
            71..76 => self.retry_unknown(),
            76..86 => self.fire_due(),
            _ => {
                let minutes = self.rng.u64(1..=360);
                self.clock.advance(Duration::from_secs(minutes * 60));
                Ok(())
            }
        }
    }

    fn values(&mut self, known_keys: Vec<String>) -> Values<'_> {
        Values {
            rng: &mut self.rng,
            now: self.clock.now(),
            next_id: &mut self.next_id,
            known_keys,
            fresh: Vec::new(),
        }
    }

    fn command_options(&mut self, seq: u64) -> CommandOptions {
        let expected_seq = match self.rng.u32(..10) {
            0..4 => None,
            // A client that raced another one and lost.
            4 => Some(seq + 1),
            _ => Some(seq),
        };
        let command_id = self.rng.bool().then(|| {
            self.next_id += 1;
            format!("cmd-{}", self.next_id)
        });
        CommandOptions {
            expected_seq,
            command_id,
        }
    }

    fn start_root(&mut self) -> Result<(), String> {
        let ids: Vec<String> = self.definitions.keys().cloned().collect();
        let Some(workflow) = ids.get(self.rng.usize(..ids.len().max(1))).cloned() else {
            return Ok(());
        };
        let declared = self
            .definitions
            .get(&workflow)
            .and_then(|d| d.get("data"))
            .cloned();
        let data = self.values(Vec::new()).fields(declared.as_ref(), false);
        self.next_id += 1;
        let instance = format!("r{}", self.next_id);
        let mut options = self.command_options(0);
        options.expected_seq = options.expected_seq.map(|_| 0);
        let actor = Actor::new(ACTORS[self.rng.usize(..ACTORS.len())], &["leading_group"]);
        let command = Command::Start {
            workflow,
            instance,
            actor,
            data,
            options,
        };
        self.send(command, Vec::new())
    }

    /// Fires an event the instance's stage allows (or, now and then, one
    /// it does not) with a generated payload.
    fn fire_some(&mut self) -> Result<(), String> {
        match self.pick_fire()? {
            Some((command, fresh)) => self.send(command, fresh),
            None => self.start_root(),
        }
    }

    /// Several clients' fires arrive at once: each partition's share is
    /// decided as one group, the later commands against the earlier ones'
    /// writes (two on one instance with the same expected sequence number:
    /// the second loses the race).
    fn burst(&mut self) -> Result<(), String> {
        let mut groups: BTreeMap<u32, Vec<(Command, Vec<String>, Cmd)>> = BTreeMap::new();
        for _ in 0..self.rng.usize(2..=6) {
            let Some((command, fresh)) = self.pick_fire()? else {
                return self.start_root();
            };
            self.report.commands += 1;
            let Command::Fire {
                instance,
                event,
                actor,
                payload,
                options,
            } = command.clone()
            else {
                continue;
            };
            let engine = self.engine()?;
            match engine.fire_cmd(&instance, &event, &actor, payload, options) {
                Ok((partition, cmd)) => {
                    groups
                        .entry(partition)
                        .or_default()
                        .push((command, fresh, cmd));
                }
                Err(refusal) => self.record(command, fresh, Err(refusal), None)?,
            }
        }
        for (partition, group) in groups {
            let (sent, cmds): (Vec<_>, Vec<_>) = group
                .into_iter()
                .map(|(command, fresh, cmd)| ((command, fresh), cmd))
                .unzip();
            let answers = self
                .engine()?
                .apply_group(partition, cmds)
                .map_err(|e| format!("the inline writer is gone: {e}"))?;
            self.report.bursts += 1;
            for ((command, fresh), answer) in sent.into_iter().zip(answers) {
                self.model.in_flight.push(InFlight {
                    command,
                    fresh,
                    answer,
                });
            }
        }
        Ok(())
    }

    /// The flusher's step: one partition's oldest applied group is flushed
    /// and its callers answered.
    fn flush_some(&mut self) -> Result<(), String> {
        let engine = self.engine()?;
        let waiting: Vec<u32> = (0..engine.partitions())
            .filter(|p| engine.groups_waiting(*p).unwrap_or(0) > 0)
            .collect();
        let pick = self.rng.usize(..waiting.len().max(1));
        if let Some(partition) = waiting.get(pick) {
            self.engine()?
                .flush_group(*partition)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Adds to the known instances the children acknowledged fires spawned
    /// (when an engine is open to ask).
    fn confirm_children(&mut self) -> Result<(), String> {
        let Some(engine) = &self.engine else {
            return Ok(());
        };
        for child in std::mem::take(&mut self.model.children) {
            if engine
                .instance(&child)
                .map_err(|e| e.to_string())?
                .is_some()
            {
                self.model.ids.insert(child);
            }
        }
        Ok(())
    }

    /// Flushes every waiting group of every partition.
    fn flush_all(&mut self) -> Result<(), String> {
        let engine = self.engine()?;
        for partition in 0..engine.partitions() {
            while engine.flush_group(partition).map_err(|e| e.to_string())? {}
        }
        self.collect()
    }

    /// Records every answer that arrived. One whose engine is gone was
    /// never answered: its outcome is unknown.
    fn collect(&mut self) -> Result<(), String> {
        let in_flight = std::mem::take(&mut self.model.in_flight);
        for waiting in in_flight {
            match waiting.answer.try_recv() {
                Ok(answer) => self.record(waiting.command, waiting.fresh, answer, None)?,
                Err(TryRecvError::Empty) => self.model.in_flight.push(waiting),
                Err(TryRecvError::Disconnected) => {
                    let error = CommandError::Storage(StorageError::Closed);
                    self.record(waiting.command, waiting.fresh, Err(error), None)?;
                }
            }
        }
        Ok(())
    }

    /// The partition `command` goes to.
    fn partition_of(&self, command: &Command) -> Result<Option<u32>, String> {
        let engine = self.engine()?;
        Ok(match command {
            Command::Start { instance, .. } => {
                Some(strive_core::root_partition(instance, engine.partitions()))
            }
            Command::Fire {
                instance,
                event,
                actor,
                payload,
                options,
            } => engine
                .fire_cmd(instance, event, actor, payload.clone(), options.clone())
                .ok()
                .map(|(partition, _)| partition),
        })
    }

    /// A fire a client would send now, and the ids it gives children.
    fn pick_fire(&mut self) -> Result<Option<(Command, Vec<String>)>, String> {
        let ids: Vec<&String> = self.model.ids.iter().collect();
        let Some(instance) = ids
            .get(self.rng.usize(..ids.len().max(1)))
            .map(|s| (*s).clone())
        else {
            return Ok(None);
        };
        let Some(snapshot) = self
            .engine()?
            .instance(&instance)
            .map_err(|e| e.to_string())?
        else {
            return Err(format!("the acknowledged instance {instance} is missing"));
        };
        let snapshot = snapshot.instance;
        let transitions: Vec<Value> = self
            .definitions
            .get(&snapshot.workflow)
            .and_then(|d| d.get("transitions"))
            .and_then(Value::as_array)
            .map(|all| {
                all.iter()
                    .filter(|t| self.rng.u32(..20) == 0 || from_allows(t, &snapshot.stage))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let Some(transition) = transitions.get(self.rng.usize(..transitions.len().max(1))) else {
            return Ok(None);
        };
        let event = transition
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or("none");
        let roles: Vec<&str> = transition
            .get("roles")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let role = roles
            .get(self.rng.usize(..roles.len().max(1)))
            .copied()
            .unwrap_or("member");
        let who = if self.rng.u32(..3) == 0 {
            instance.clone()
        } else {
            ACTORS[self.rng.usize(..ACTORS.len())].to_owned()
        };
        let mut values = self.values(map_keys(&snapshot.data));
        let payload = Value::Object(values.fields(transition.get("payload"), false));
        let fresh = std::mem::take(&mut values.fresh);
        let command = Command::Fire {
            instance,
            event: event.to_owned(),
            actor: Actor::new(who, &[role]),
            payload,
            options: self.command_options(snapshot.seq),
        };
        Ok(Some((command, fresh)))
    }

    /// Sends an acknowledged command with a command id again: the answer
    /// must be its original outcome, from its idempotency record.
    fn retry_acknowledged(&mut self) -> Result<(), String> {
        let retriable: Vec<usize> = (0..self.model.acks.len())
            .filter(|i| self.model.acks[*i].retry.is_some())
            .collect();
        let Some(index) = retriable
            .get(self.rng.usize(..retriable.len().max(1)))
            .copied()
        else {
            return Ok(());
        };
        self.check_replay(index)
    }

    fn check_replay(&mut self, index: usize) -> Result<(), String> {
        let Some(Ack {
            outcome,
            retry: Some(command),
        }) = self.model.acks.get(index)
        else {
            return Ok(());
        };
        let (outcome, command) = (outcome.clone(), command.clone());
        self.report.commands += 1;
        match self.execute(&command) {
            Ok(again) => {
                let expected = Outcome {
                    replayed: true,
                    ..outcome
                };
                if again != expected {
                    return Err(format!(
                        "command {:?} retried answered {again:?}, not its first outcome {expected:?}",
                        command.command_id()
                    ));
                }
                self.report.replayed += 1;
                Ok(())
            }
            Err(CommandError::Storage(_)) => Ok(()),
            Err(error) => Err(format!(
                "command {:?} retried was refused ({error}) though it was acknowledged",
                command.command_id()
            )),
        }
    }

    /// Sends again a command whose first try ended in a failure.
    fn retry_unknown(&mut self) -> Result<(), String> {
        if self.model.unknown.is_empty() {
            return Ok(());
        }
        let index = self.rng.usize(..self.model.unknown.len());
        let command = self.model.unknown.swap_remove(index);
        self.send(command, Vec::new())
    }

    fn execute(&self, command: &Command) -> Result<Outcome, CommandError> {
        let engine = self
            .engine()
            .map_err(|_| CommandError::Storage(StorageError::Closed))?;
        match command.clone() {
            Command::Start {
                workflow,
                instance,
                actor,
                data,
                options,
            } => engine.start(&workflow, &instance, &actor, data, None, options),
            Command::Fire {
                instance,
                event,
                actor,
                payload,
                options,
            } => engine.fire(&instance, &event, &actor, payload, options),
        }
    }

    /// Sends `command` and records its answer; `fresh` are the ids its
    /// payload gave children it may spawn.
    fn send(&mut self, command: Command, fresh: Vec<String>) -> Result<(), String> {
        self.report.commands += 1;
        // The command's partition answers its earlier groups first: those
        // are flushed now, so that the footprint is this command's alone.
        if let Some(partition) = self.partition_of(&command)? {
            while self
                .engine()?
                .flush_group(partition)
                .map_err(|e| e.to_string())?
            {}
            self.collect()?;
        }
        let before = self.footprint(command.instance())?;
        let result = self.execute(&command);
        self.record(command, fresh, result, Some(before))
    }

    /// Records the answer to `command`. A refusal must have changed
    /// nothing: with `before` (the command ran alone), its footprint is
    /// checked against the one taken before it ran.
    fn record(
        &mut self,
        command: Command,
        fresh: Vec<String>,
        result: Result<Outcome, CommandError>,
        before: Option<Footprint>,
    ) -> Result<(), String> {
        match result {
            Ok(outcome) if outcome.replayed => {
                // A retry of a command whose first answer was lost: it was
                // durable after all, and is acknowledged now.
                self.report.replayed += 1;
                self.model.ids.insert(outcome.instance.clone());
                let id = command.command_id();
                if !self
                    .model
                    .acks
                    .iter()
                    .any(|a| a.retry.as_ref().and_then(Command::command_id) == id)
                {
                    let outcome = Outcome {
                        replayed: false,
                        ..outcome
                    };
                    self.model.acks.push(Ack {
                        outcome,
                        retry: Some(command),
                    });
                }
                Ok(())
            }
            Ok(outcome) => {
                self.report.acknowledged += 1;
                self.model.ids.insert(outcome.instance.clone());
                self.model.children.extend(fresh);
                self.confirm_children()?;
                let retry = command.command_id().is_some().then_some(command);
                self.model.acks.push(Ack { outcome, retry });
                Ok(())
            }
            Err(CommandError::Storage(_)) => {
                if command.command_id().is_some() {
                    self.model.unknown.push(command);
                }
                Ok(())
            }
            Err(refusal) => {
                self.report.refused += 1;
                if let Some(before) = before
                    && self.footprint(command.instance())? != before
                {
                    return Err(format!(
                        "the refused command {command:?} ({refusal}) changed the store"
                    ));
                }
                Ok(())
            }
        }
    }

    /// What a refused command must leave as it found: the batches applied,
    /// each partition's log and `instance`'s snapshot.
    fn footprint(&self, instance: &str) -> Result<Footprint, String> {
        let engine = self.engine()?;
        Ok(Footprint {
            applies: self.backend.counts().applies,
            logs: (0..engine.partitions())
                .map(|p| engine.last_gseq_in(p))
                .collect(),
            snapshot: engine.instance(instance).map_err(|e| e.to_string())?,
        })
    }

    /// Fires the deadlines due now; none may fire twice.
    fn fire_due(&mut self) -> Result<(), String> {
        self.report.commands += 1;
        let fired = match self.engine()?.fire_due(self.clock.now()) {
            Ok(fired) => fired,
            Err(_) => return Ok(()),
        };
        for deadline in fired {
            let key = (deadline.instance.clone(), deadline.due.as_microsecond());
            let Ok(outcome) = deadline.result else {
                continue;
            };
            if !self.model.fired.insert(key) {
                return Err(format!(
                    "the deadline of {} due {} fired twice",
                    deadline.instance, deadline.due
                ));
            }
            self.report.deadlines += 1;
            self.report.acknowledged += 1;
            self.model.acks.push(Ack {
                outcome,
                retry: None,
            });
        }
        Ok(())
    }

    // -- checks ---------------------------------------------------------------

    /// Every check of the store against the model.
    fn check_all(&mut self) -> Result<(), String> {
        self.check_acknowledged()?;
        self.check_instances()?;
        let engine = self.engine()?;
        (self.verify)(engine).map_err(|e| format!("verify failed: {e}"))?;
        // Idempotency records survive: two acknowledged commands with ids,
        // sent again, answer as they first did.
        for _ in 0..2 {
            self.retry_acknowledged()?;
        }
        Ok(())
    }

    /// Every acknowledged event is in the log at its acknowledged position,
    /// with its acknowledged hash.
    fn check_acknowledged(&self) -> Result<(), String> {
        let engine = self.engine()?;
        for ack in &self.model.acks {
            let outcome = &ack.outcome;
            let stored = engine
                .event_in(outcome.partition, outcome.gseq)
                .map_err(|e| format!("reading event {}: {e}", outcome.gseq))?;
            let Some(stored) = stored else {
                return Err(format!(
                    "the acknowledged event {} {} (seq {}) at {}:{} is lost",
                    outcome.instance, outcome.event, outcome.seq, outcome.partition, outcome.gseq
                ));
            };
            if stored.hash != outcome.hash
                || stored.event.instance != outcome.instance
                || stored.event.seq != outcome.seq
            {
                return Err(format!(
                    "position {}:{} holds {} seq {} ({}), not the acknowledged {} seq {} ({})",
                    outcome.partition,
                    outcome.gseq,
                    stored.event.instance,
                    stored.event.seq,
                    stored.hash,
                    outcome.instance,
                    outcome.seq,
                    outcome.hash
                ));
            }
        }
        Ok(())
    }

    /// Every known instance's chain is whole and ends at its snapshot, and
    /// no fired deadline came back.
    fn check_instances(&self) -> Result<(), String> {
        let engine = self.engine()?;
        let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
        for ack in &self.model.acks {
            let seq = highest.entry(ack.outcome.instance.as_str()).or_default();
            *seq = (*seq).max(ack.outcome.seq);
        }
        for id in &self.model.ids {
            let Some(snapshot) = engine.instance(id).map_err(|e| e.to_string())? else {
                return Err(format!("the instance {id} is lost"));
            };
            let history = engine.history(id).map_err(|e| e.to_string())?;
            let mut prev = strive_core::GENESIS.to_owned();
            for (stored, seq) in history.iter().zip(1u64..) {
                if stored.event.seq != seq || stored.event.prev != prev {
                    return Err(format!("the chain of {id} breaks at seq {seq}"));
                }
                prev = stored.hash.clone();
            }
            let instance = &snapshot.instance;
            if history.len() as u64 != instance.seq || prev != instance.head {
                return Err(format!(
                    "the snapshot of {id} is at seq {} but its chain has {} events",
                    instance.seq,
                    history.len()
                ));
            }
            if history
                .last()
                .is_some_and(|last| last.event.to != instance.stage)
            {
                return Err(format!(
                    "the snapshot of {id} is not where its last event left it"
                ));
            }
            if instance.seq < highest.get(id.as_str()).copied().unwrap_or(0) {
                return Err(format!("the snapshot of {id} lost acknowledged events"));
            }
            if let Some(due) = &snapshot.due
                && self
                    .model
                    .fired
                    .contains(&(id.clone(), due.at.as_microsecond()))
            {
                return Err(format!("the fired deadline of {id} due {} is back", due.at));
            }
        }
        Ok(())
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
