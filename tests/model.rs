//! A model-based test (issue #6): random sequences of starts, fires (valid,
//! invalid, unauthorized), retries with the same command id, reopens and
//! replays to a point, checked after every step against a reference model
//! simple enough to be obviously right.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};
use serde_json::{Map, Value, json};
use strive_core::{Command as CoreCommand, Event, EventKind, Workflow};
use strive_store::{
    Actor, CommandError, CommandOptions, Durability, Engine, OpenError, Options, Rejection,
};

/// a -go(r1)-> b -finish(r2)-> c (terminal); b -back(r2, count < 3)-> a;
/// note(r1|r2, payload n in 0..=9) adds n to count in any non-terminal stage.
const MODEL: &str = r#"{
  "id": "model", "title": "model",
  "roles": [{"id": "r1"}, {"id": "r2"}],
  "data": [{"id": "count", "type": "integer"}],
  "stages": [{"id": "a", "kind": "initial"}, {"id": "b"}, {"id": "c", "kind": "terminal"}],
  "transitions": [
    {"event": "go", "from": "a", "to": "b", "roles": ["r1"]},
    {"event": "back", "from": "b", "to": "a", "roles": ["r2"],
     "guard": {"<": [{"var": "data.count"}, 3]}},
    {"event": "note", "from": "*", "roles": ["r1", "r2"],
     "payload": [{"id": "n", "type": "integer", "min": 0, "max": 9, "required": true}],
     "effects": [{"op": "increment", "var": "count", "by": {"var": "payload.n"}}]},
    {"event": "finish", "from": "b", "to": "c", "roles": ["r2"]}
  ]
}"#;

const IDS: &[&str] = &["i0", "i1", "i2"];
const EVENTS: &[&str] = &["go", "back", "note", "finish", "bogus"];
const ROLES: &[&str] = &["r1", "r2", "r3"];

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Start {
        id: &'static str,
    },
    Fire(Fire),
    /// Sends again the accepted command with this id.
    Retry {
        command_id: String,
    },
    Reopen,
    ReplayTo {
        id: &'static str,
        seq: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Fire {
    id: &'static str,
    event: &'static str,
    role: &'static str,
    n: i64,
    command_id: Option<String>,
}

impl Fire {
    /// What the engine receives: `n` matters only when it is sent.
    fn request(&self) -> (&str, &str, &str, Value) {
        (self.id, self.event, self.role, self.payload())
    }

    fn payload(&self) -> Value {
        if self.event == "note" {
            json!({"n": self.n})
        } else {
            Value::Null
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    stage: &'static str,
    seq: u64,
    count: i64,
}

/// What the model expects a command to do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Accepted { stage: &'static str, count: i64 },
    Replayed { partition: u32, gseq: u64 },
    UnknownInstance,
    InstanceExists,
    UnknownEvent,
    Finished,
    NotInStage,
    Role,
    Payload,
    Guard,
    Reused,
}

#[derive(Debug, Clone, Default)]
struct Model {
    /// Each instance's states, one per event (index 0 after the start).
    instances: BTreeMap<&'static str, Vec<State>>,
    /// Accepted commands with ids: the command and its event's partition
    /// and position there.
    commands: BTreeMap<String, (Fire, u32, u64)>,
    /// Each partition's last position, by partition (the deployment is
    /// partition 0's first event). A store has `STRIVE_PARTITIONS` of them.
    log: Vec<u64>,
}

/// The partition an instance's events go to: that of its id.
fn partition(id: &str) -> u32 {
    strive_core::root_partition(id, Options::default().partitions)
}

impl Model {
    /// A model of a store of `partitions` partitions, just deployed.
    fn deployed(partitions: u32) -> Model {
        let mut log = vec![0; partitions.max(1) as usize];
        log[0] = 1;
        Model {
            log,
            ..Model::default()
        }
    }

    /// Appends one event to `id`'s partition; returns its position.
    fn append(&mut self, id: &str) -> (u32, u64) {
        let p = partition(id);
        self.log[p as usize] += 1;
        (p, self.log[p as usize])
    }

    fn current(&self, id: &str) -> Option<State> {
        self.instances
            .get(id)
            .and_then(|states| states.last().copied())
    }

    fn decide(&self, fire: &Fire) -> Expect {
        if let Some(command_id) = &fire.command_id
            && let Some((earlier, partition, gseq)) = self.commands.get(command_id)
        {
            return if earlier.request() == fire.request() {
                Expect::Replayed {
                    partition: *partition,
                    gseq: *gseq,
                }
            } else {
                Expect::Reused
            };
        }
        let Some(state) = self.current(fire.id) else {
            return Expect::UnknownInstance;
        };
        let (from_ok, roles, to): (bool, &[&str], &'static str) = match fire.event {
            "go" => (state.stage == "a", &["r1"], "b"),
            "back" => (state.stage == "b", &["r2"], "a"),
            "note" => (state.stage != "c", &["r1", "r2"], state.stage),
            "finish" => (state.stage == "b", &["r2"], "c"),
            _ => return Expect::UnknownEvent,
        };
        if state.stage == "c" {
            return Expect::Finished;
        }
        if !from_ok {
            return Expect::NotInStage;
        }
        if !roles.contains(&fire.role) {
            return Expect::Role;
        }
        if fire.event == "note" && !(0..=9).contains(&fire.n) {
            return Expect::Payload;
        }
        if fire.event == "back" && state.count >= 3 {
            return Expect::Guard;
        }
        let count = state.count + if fire.event == "note" { fire.n } else { 0 };
        Expect::Accepted { stage: to, count }
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::deployed(Options::default().partitions)).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        let fire = (
            prop::sample::select(IDS),
            prop::sample::select(EVENTS),
            prop::sample::select(ROLES),
            // Mostly small notes, so that counts often land right on the
            // guard's threshold (3), where an off-by-one would show.
            prop_oneof![3 => 0i64..3, 1 => -1i64..11],
            prop::option::of(0u8..6),
        )
            .prop_map(|(id, event, role, n, key)| {
                Step::Fire(Fire {
                    id,
                    event,
                    role,
                    n,
                    command_id: key.map(|k| format!("k{k}")),
                })
            });
        let mut choices: Vec<(u32, BoxedStrategy<Step>)> = vec![
            (
                2,
                prop::sample::select(IDS)
                    .prop_map(|id| Step::Start { id })
                    .boxed(),
            ),
            (10, fire.boxed()),
            (1, Just(Step::Reopen).boxed()),
        ];
        let keys: Vec<String> = state.commands.keys().cloned().collect();
        if !keys.is_empty() {
            choices.push((
                2,
                prop::sample::select(keys)
                    .prop_map(|command_id| Step::Retry { command_id })
                    .boxed(),
            ));
        }
        let points: Vec<(&'static str, u64)> = state
            .instances
            .iter()
            .flat_map(|(id, states)| (1..=states.len() as u64).map(move |seq| (*id, seq)))
            .collect();
        if !points.is_empty() {
            choices.push((
                1,
                prop::sample::select(points)
                    .prop_map(|(id, seq)| Step::ReplayTo { id, seq })
                    .boxed(),
            ));
        }
        prop::strategy::Union::new_weighted(choices).boxed()
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        match step {
            Step::Start { id } => {
                if !state.instances.contains_key(id) {
                    state.append(id);
                    state.instances.insert(
                        id,
                        vec![State {
                            stage: "a",
                            seq: 1,
                            count: 0,
                        }],
                    );
                }
            }
            Step::Fire(fire) => {
                if let Expect::Accepted { stage, count } = state.decide(fire) {
                    let (partition, gseq) = state.append(fire.id);
                    if let Some(states) = state.instances.get_mut(fire.id) {
                        let seq = states.len() as u64 + 1;
                        states.push(State { stage, seq, count });
                    }
                    if let Some(key) = &fire.command_id {
                        state
                            .commands
                            .insert(key.clone(), (fire.clone(), partition, gseq));
                    }
                }
            }
            Step::Retry { .. } | Step::Reopen | Step::ReplayTo { .. } => {}
        }
        state
    }
}

struct Sut {
    dir: tempfile::TempDir,
    engine: Option<Engine>,
    /// The model before the step being applied: what to expect.
    before: Model,
}

impl Sut {
    fn engine(&self) -> &Engine {
        self.engine
            .as_ref()
            .expect("the engine is open between steps")
    }

    fn open(path: &std::path::Path) -> Engine {
        // Buffered keeps a thousand cases fast; durability is the crash
        // test's job. Dropping the engine flushes, so reopens see everything.
        // sled lets go of its file lock shortly after the last handle is
        // dropped, not always at once (its I/O threads hold on a moment
        // longer, more so on a busy machine): wait for it, a few seconds
        // at most.
        for _ in 0..200 {
            match Engine::open(
                path,
                Options {
                    durability: Durability::Buffered,
                    ..Options::default()
                },
            ) {
                Err(OpenError::Locked { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(25))
                }
                other => return other.expect("open"),
            }
        }
        panic!("the store stayed locked for 5 s after the engine was dropped")
    }
}

fn actor(role: &str) -> Actor {
    Actor::new(format!("actor-{role}"), &[role])
}

fn classify(result: &Result<strive_store::Outcome, CommandError>) -> Expect {
    match result {
        Ok(outcome) if outcome.replayed => Expect::Replayed {
            partition: outcome.partition,
            gseq: outcome.gseq,
        },
        Ok(_) => Expect::Accepted {
            stage: "?",
            count: 0,
        },
        Err(CommandError::UnknownInstance { .. }) => Expect::UnknownInstance,
        Err(CommandError::InstanceExists { .. }) => Expect::InstanceExists,
        Err(CommandError::CommandIdReused { .. }) => Expect::Reused,
        Err(error) => match error.rejection() {
            Some(Rejection::UnknownEvent { .. }) => Expect::UnknownEvent,
            Some(Rejection::Finished { .. }) => Expect::Finished,
            Some(Rejection::NotAllowedInStage { .. }) => Expect::NotInStage,
            Some(Rejection::RoleNotAllowed { .. }) => Expect::Role,
            Some(Rejection::InvalidPayload { .. }) => Expect::Payload,
            Some(Rejection::GuardFailed { .. }) => Expect::Guard,
            _ => panic!("unexpected error: {error}"),
        },
    }
}

fn fire(engine: &Engine, fire: &Fire) -> Result<strive_store::Outcome, CommandError> {
    engine.fire(
        fire.id,
        fire.event,
        &actor(fire.role),
        fire.payload(),
        CommandOptions {
            expected_seq: None,
            command_id: fire.command_id.clone(),
            signature: None,
        },
    )
}

/// Rebuilds an instance at `seq` from its events alone, through the core's
/// transition function.
fn replay(engine: &Engine, id: &str, seq: u64) -> State {
    let workflow: std::sync::Arc<Workflow> = engine.workflow("model", Some(1)).expect("deployed");
    let history: Vec<Event> = engine
        .history(id)
        .expect("history")
        .into_iter()
        .map(|e| e.event)
        .collect();
    let start = &history[0];
    assert_eq!(start.kind, EventKind::Start);
    let data: Map<String, Value> = start.payload["data"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut instance = workflow
        .new_instance(id, 1, &data, None, start.at)
        .expect("replays the start");
    instance.seq = 1;
    for event in history.iter().take(seq as usize).skip(1) {
        let command = CoreCommand {
            event: &event.event,
            actor: &event.actor,
            payload: &event.payload,
            now: event.at,
        };
        let accepted = workflow
            .fire(&instance, &command, &Value::Null)
            .expect("a recorded event replays");
        assert_eq!(accepted.to, event.to, "replay reaches the recorded stage");
        assert_eq!(
            accepted.effects, event.effects,
            "replay applies the recorded effects"
        );
        instance = workflow.advance(&instance, &accepted, event.at);
    }
    let stage = ["a", "b", "c"]
        .into_iter()
        .find(|s| *s == instance.stage)
        .expect("a model stage");
    State {
        stage,
        seq: instance.seq,
        count: instance.data["count"].as_i64().unwrap_or(-1),
    }
}

impl StateMachineTest for Sut {
    type SystemUnderTest = Sut;
    type Reference = Reference;

    fn init_test(model: &Model) -> Sut {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Sut::open(&dir.path().join("db"));
        engine
            .deploy(MODEL, &Actor::new("admin", &["admin"]))
            .expect("deploy");
        Sut {
            dir,
            engine: Some(engine),
            before: model.clone(),
        }
    }

    fn apply(mut sut: Sut, model: &Model, step: Step) -> Sut {
        STEPS.fetch_add(1, Ordering::Relaxed);
        let before = std::mem::take(&mut sut.before);
        let engine = sut.engine();
        let sizes = crate::util::sizes(engine);
        match &step {
            Step::Start { id } => {
                let result = engine.start(
                    "model",
                    id,
                    &actor("r1"),
                    Map::new(),
                    None,
                    CommandOptions::default(),
                );
                if before.instances.contains_key(id) {
                    assert_eq!(classify(&result), Expect::InstanceExists);
                } else {
                    assert_eq!(result.expect("a new instance starts").stage, "a");
                }
            }
            Step::Fire(f) => {
                let expected = before.decide(f);
                let result = fire(engine, f);
                match (&expected, &result) {
                    (Expect::Accepted { stage, count }, Ok(outcome)) if !outcome.replayed => {
                        assert_eq!(outcome.stage, *stage);
                        let mut grown = sizes.clone();
                        grown[partition(f.id) as usize] += 1;
                        assert_eq!(
                            crate::util::sizes(engine),
                            grown,
                            "an accepted command appends one event to its partition"
                        );
                        let snapshot = engine.instance(f.id).expect("read").expect("exists");
                        assert_eq!(snapshot.instance.data["count"].as_i64(), Some(*count));
                    }
                    _ => {
                        assert_eq!(classify(&result), expected, "{f:?}");
                        assert_eq!(
                            crate::util::sizes(engine),
                            sizes,
                            "{expected:?} must append nothing"
                        );
                    }
                }
            }
            Step::Retry { command_id } => {
                let (original, partition, gseq) = before
                    .commands
                    .get(command_id)
                    .expect("a recorded command")
                    .clone();
                let result = fire(engine, &original);
                assert_eq!(classify(&result), Expect::Replayed { partition, gseq });
                assert_eq!(crate::util::sizes(engine), sizes, "a retry writes nothing");
            }
            Step::Reopen => {
                sut.engine = None;
                sut.engine = Some(Sut::open(&sut.dir.path().join("db")));
            }
            Step::ReplayTo { id, seq } => {
                let expected = before.instances[id][*seq as usize - 1];
                assert_eq!(replay(sut.engine(), id, *seq), expected);
            }
        }
        sut.before = model.clone();
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        let engine = sut.engine();
        assert_eq!(
            crate::util::sizes(engine),
            model.log,
            "each partition's log holds exactly the accepted commands routed to it"
        );
        for (id, states) in &model.instances {
            let state = states.last().expect("at least the start");
            let snapshot = engine
                .instance(id)
                .expect("read")
                .expect("the engine has the instance");
            let i = &snapshot.instance;
            assert_eq!(
                (i.stage.as_str(), i.seq, i.data["count"].as_i64()),
                (state.stage, state.seq, Some(state.count))
            );
        }
        for id in IDS {
            if !model.instances.contains_key(id) {
                assert!(engine.instance(id).expect("read").is_none());
            }
        }
    }
}

fn cases() -> u32 {
    std::env::var("STRIVE_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000)
}

/// Steps applied to the engine in all cases, for the figures in
/// `docs/guarantees.md`.
static STEPS: AtomicU64 = AtomicU64::new(0);

/// What `prop_state_machine!` expands to, spelled out so that the number of
/// steps checked can be reported once the cases pass.
#[test]
fn the_engine_behaves_like_the_model() {
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let result = runner.run(
        &<Reference as ReferenceStateMachine>::sequential_strategy(1..40),
        |(initial, steps, seen)| {
            Sut::test_sequential(config.clone(), initial, steps, seen);
            Ok(())
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    println!(
        "model: {} cases, {} steps checked against the model",
        cases(),
        STEPS.load(Ordering::Relaxed)
    );
}

/// The model's own decisions, pinned on a few cases so a wrong model cannot
/// make the property vacuous.
#[test]
fn the_model_decides_as_the_definition_says() {
    let mut model = Model::deployed(1);
    model.instances.insert(
        "i0",
        vec![State {
            stage: "a",
            seq: 1,
            count: 0,
        }],
    );
    let f = |event, role, n| Fire {
        id: "i0",
        event,
        role,
        n,
        command_id: None,
    };
    assert_eq!(model.decide(&f("go", "r2", 0)), Expect::Role);
    assert_eq!(model.decide(&f("finish", "r2", 0)), Expect::NotInStage);
    assert_eq!(model.decide(&f("note", "r1", 10)), Expect::Payload);
    assert_eq!(model.decide(&f("bogus", "r1", 0)), Expect::UnknownEvent);
    assert_eq!(model.decide(&f("note", "r3", 4)), Expect::Role);
    assert_eq!(
        model.decide(&f("note", "r2", 4)),
        Expect::Accepted {
            stage: "a",
            count: 4
        }
    );
    model.instances.insert(
        "i0",
        vec![State {
            stage: "b",
            seq: 2,
            count: 3,
        }],
    );
    assert_eq!(model.decide(&f("back", "r2", 0)), Expect::Guard);
}
