//! Replay: rebuilding instances from their events alone, through the core's
//! pure transition function, and checking on the way that every event is
//! one the definition in force would have accepted with the outcome
//! recorded (conformance).
//!
//! Events must be fed in global order. That order matters for guards that
//! read an instance's children: the replayer keeps, per parent, how many
//! children of each workflow are in each stage, exactly as the store's `n`
//! counters do at the moment of each event.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use strive_core::{
    Actor, AppliedEffect, Command, Definition, Due, Event, EventKind, Instance, SYSTEM_ROLE,
    WORKFLOW_SUBJECT_PREFIX, Workflow, definition_hash,
};

use crate::problem::{Problem, ProblemCode};

mod lifecycle;

/// Where to stop a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// After the last event.
    End,
    /// After the instance's event with this sequence number.
    Seq(u64),
    /// After the instance's last event recorded at or before this time.
    Time(Timestamp),
}

/// An instance rebuilt from its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Replayed {
    /// The state.
    pub instance: Instance,
    /// The global position of the last event applied to it.
    pub gseq: u64,
    /// Problems found on the way (conformance and links), in order.
    pub problems: Vec<Problem>,
}

/// Why a replay could not produce a state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// The log has no start event for the instance.
    NotFound {
        /// The instance.
        instance: String,
    },
    /// The instance was started after the requested time.
    BeforeStart {
        /// The instance.
        instance: String,
        /// When it was started.
        started: Timestamp,
    },
    /// The events could not be read.
    Source {
        /// The reader's error.
        message: String,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::NotFound { instance } => write!(
                f,
                "the log has no start event for `{instance}`; check the id with `strive list`"
            ),
            ReplayError::BeforeStart { instance, started } => write!(
                f,
                "`{instance}` did not exist yet: it was started at {started}"
            ),
            ReplayError::Source { message } => write!(f, "cannot read the events: {message}"),
        }
    }
}

impl std::error::Error for ReplayError {}

/// A spawn or notification the definition implies: the event it must
/// produce, named by its cause.
#[derive(Debug)]
enum Expected {
    Child {
        cause: (String, u64),
        workflow: String,
        data: Map<String, Value>,
    },
    Notice {
        event: String,
        payload: Value,
    },
}

/// The replayer's and the parallel router's maps, keyed by ids read from
/// the log, looked up several times per event: hashed with aHash, several
/// times cheaper than the standard SipHash on short ids (SipHash was ~20%
/// of the replay shards' time, docs/performance.md) and still keyed at
/// random per process, so a hostile bundle cannot pick ids that collide.
pub(crate) type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;
/// A set hashed as [`FastMap`] is.
pub(crate) type FastSet<K> = HashSet<K, ahash::RandomState>;

/// Rebuilds instances from events fed in global order.
#[derive(Default)]
pub struct Replayer {
    workflows: FastMap<(String, u32), Arc<Workflow>>,
    instances: FastMap<String, Instance>,
    /// Pending deadlines, as the store keeps them with each snapshot.
    dues: FastMap<String, Due>,
    /// Per parent: (child workflow, stage) -> count, as the store's `n` keys.
    children: FastMap<String, BTreeMap<(String, String), u64>>,
    /// Spawned children not started yet, by child id.
    spawns: FastMap<String, Expected>,
    /// Parent notifications not recorded yet, by (parent, cause).
    notices: FastMap<(String, (String, u64)), Expected>,
    /// Each parent's children, in the order they were started.
    kids: FastMap<String, Vec<String>>,
    /// Descendants' lifecycle events not recorded yet, by descendant.
    followers: FastMap<String, lifecycle::Follower>,
    /// Events that did not conform: their consequences are not checked.
    broken: FastSet<(String, u64)>,
    /// When set, only these instances (and children started under them) are
    /// replayed.
    scope: Option<FastSet<String>>,
    /// Whether the events are an extract (a filtered bundle) whose
    /// instances' parents may be left out.
    extract: bool,
    /// Every child id a transition spawned, when asked for: the parallel
    /// verifier checks afterwards that each was started where it was
    /// spawned (`parallel.rs`).
    spawned: Option<Vec<String>>,
}

impl fmt::Debug for Replayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replayer")
            .field("workflows", &self.workflows.len())
            .field("instances", &self.instances.len())
            .finish_non_exhaustive()
    }
}

fn kind_of(rejection: &strive_core::Rejection) -> String {
    serde_json::to_value(rejection)
        .ok()
        .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "rejected".to_owned())
}

impl Replayer {
    /// A replayer of every instance.
    pub fn new() -> Replayer {
        Replayer::default()
    }

    /// A replayer of `instance` and the children started under it, which
    /// its guards may read. Others' events are skipped, deployments kept.
    pub fn scoped(instance: &str) -> Replayer {
        Replayer {
            scope: Some(std::iter::once(instance.to_owned()).collect()),
            ..Replayer::default()
        }
    }

    /// A replayer of an extract of the log, such as a bundle exported
    /// with `--workflow` or `--instance`: every event given is replayed,
    /// but an instance whose parent is not in the extract is not checked
    /// against that parent (its start against the spawn that caused it).
    pub fn extract() -> Replayer {
        Replayer {
            extract: true,
            ..Replayer::default()
        }
    }

    /// Records, from now on, the id of every child a transition spawns.
    pub(crate) fn record_spawns(&mut self) {
        self.spawned.get_or_insert_with(Vec::new);
    }

    /// The ids of the children spawned since [`Replayer::record_spawns`].
    pub(crate) fn spawned(&self) -> &[String] {
        self.spawned.as_deref().unwrap_or_default()
    }

    /// The replayed state of `instance`.
    pub fn instance(&self, instance: &str) -> Option<&Instance> {
        self.instances.get(instance)
    }

    /// The pending deadline of `instance` that replay implies.
    pub fn due(&self, instance: &str) -> Option<&Due> {
        self.dues.get(instance)
    }

    /// Every replayed instance's id.
    pub fn instance_ids(&self) -> impl Iterator<Item = &str> {
        self.instances.keys().map(String::as_str)
    }

    /// Whether `event` concerns what this replayer replays.
    pub fn concerns(&self, event: &Event) -> bool {
        match (&self.scope, event.kind) {
            (
                _,
                EventKind::Grant
                | EventKind::Revoke
                | EventKind::RegisterKey
                | EventKind::RetireKey,
            ) => false,
            (None, _) | (_, EventKind::Deploy) => true,
            (Some(scope), EventKind::Start) => {
                scope.contains(&event.instance)
                    || parent_of(event).is_some_and(|p| scope.contains(p))
            }
            (Some(scope), EventKind::Fire | EventKind::Migrate | EventKind::Lifecycle) => {
                scope.contains(&event.instance)
            }
        }
    }

    /// Applies the event at global position `event.gseq`, whose hash (of
    /// its stored bytes) is `hash`. Returns what does not conform.
    pub fn apply(&mut self, hash: &str, event: &Event) -> Vec<Problem> {
        if !self.concerns(event) {
            return Vec::new();
        }
        let mut problems = Vec::new();
        match event.kind {
            EventKind::Deploy => self.deploy(event, &mut problems),
            EventKind::Start => self.start(hash, event, &mut problems),
            EventKind::Fire => self.fire(hash, event, &mut problems),
            EventKind::Migrate => self.migrate(hash, event, &mut problems),
            EventKind::Lifecycle => self.lifecycle(hash, event, &mut problems),
            // Grants and keys are checked by `access.rs`, not replayed.
            EventKind::Grant
            | EventKind::Revoke
            | EventKind::RegisterKey
            | EventKind::RetireKey => {}
        }
        problems
    }

    /// What the definitions imply but the log does not hold: children
    /// never started, parents never notified. Call after the last event.
    pub fn unmet(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (child, expected) in &self.spawns {
            if let Expected::Child {
                cause, workflow, ..
            } = expected
            {
                problems.push(
                    Problem::new(
                        ProblemCode::CauseMismatch,
                        format!(
                            "{}#{} spawns `{child}` ({workflow}), but the log has no start event for it",
                            cause.0, cause.1
                        ),
                    )
                    .on(&cause.0)
                    .rule("spawn"),
                );
            }
        }
        for ((parent, cause), expected) in &self.notices {
            if let Expected::Notice { event, .. } = expected {
                problems.push(
                    Problem::new(
                        ProblemCode::CauseMismatch,
                        format!(
                            "{}#{} notifies its parent `{parent}` with `{event}`, but the parent has no such event",
                            cause.0, cause.1
                        ),
                    )
                    .on(&cause.0)
                    .rule("notify_parent"),
                );
            }
        }
        problems.extend(self.unmet_followers());
        problems.sort_by(|a, b| a.message.cmp(&b.message));
        problems
    }

    fn deploy(&mut self, event: &Event, problems: &mut Vec<Problem>) {
        let here = |code, message: String| {
            Problem::new(code, message).at(&event.instance, event.seq, event.gseq)
        };
        if event.instance != format!("{WORKFLOW_SUBJECT_PREFIX}{}", event.workflow)
            || event.seq != u64::from(event.version)
        {
            problems.push(here(
                ProblemCode::DefinitionMismatch,
                format!(
                    "a deployment of `{}` v{} must be event #{} of `{WORKFLOW_SUBJECT_PREFIX}{}`",
                    event.workflow, event.version, event.version, event.workflow
                ),
            ));
        }
        let hash = definition_hash(&event.payload);
        if hash != event.definition_hash {
            problems.push(here(
                ProblemCode::DefinitionMismatch,
                format!(
                    "the deployed definition hashes to {hash}, not the recorded {}",
                    event.definition_hash
                ),
            ));
        }
        let compiled = serde_json::from_value::<Definition>(event.payload.clone())
            .map_err(|e| e.to_string())
            .and_then(|d| Workflow::compile(d, hash).map_err(|e| e.to_string()));
        match compiled {
            Ok(workflow) => {
                if workflow.id() != event.workflow {
                    problems.push(here(
                        ProblemCode::DefinitionMismatch,
                        format!(
                            "the deployed definition is `{}`, not `{}`",
                            workflow.id(),
                            event.workflow
                        ),
                    ));
                }
                self.workflows
                    .insert((event.workflow.clone(), event.version), Arc::new(workflow));
            }
            Err(message) => problems.push(here(
                ProblemCode::DefinitionMismatch,
                format!("the deployed definition cannot run: {message}"),
            )),
        }
    }

    fn workflow(&self, event: &Event, problems: &mut Vec<Problem>) -> Option<Arc<Workflow>> {
        self.workflow_at(
            &event.workflow,
            event.version,
            &event.definition_hash,
            event,
            problems,
        )
    }

    /// The deployed workflow `name` v`version`, which must have the
    /// definition hash `hash`; problems are placed at `event`.
    fn workflow_at(
        &self,
        name: &str,
        version: u32,
        hash: &str,
        event: &Event,
        problems: &mut Vec<Problem>,
    ) -> Option<Arc<Workflow>> {
        let found = self.workflows.get(&(name.to_owned(), version)).cloned();
        match &found {
            None => problems.push(
                Problem::new(
                    ProblemCode::DefinitionMismatch,
                    format!("`{name}` v{version} was not deployed before this event"),
                )
                .at(&event.instance, event.seq, event.gseq),
            ),
            Some(workflow) if workflow.hash() != hash => problems.push(
                Problem::new(
                    ProblemCode::DefinitionMismatch,
                    format!(
                        "the event names definition {hash} but `{name}` v{version} is {}",
                        workflow.hash()
                    ),
                )
                .at(&event.instance, event.seq, event.gseq),
            ),
            Some(_) => {}
        }
        found
    }

    fn start(&mut self, hash: &str, event: &Event, problems: &mut Vec<Problem>) {
        let here = |code, message: String| {
            Problem::new(code, message).at(&event.instance, event.seq, event.gseq)
        };
        if let Some(scope) = &mut self.scope {
            scope.insert(event.instance.clone());
        }
        self.check_engine_event(event, problems);
        let empty = Map::new();
        let data = event.payload.get("data").and_then(Value::as_object);
        let parent = parent_of(event);
        if data.is_none() && !event.payload.get("data").is_some_and(Value::is_null) {
            problems.push(
                here(
                    ProblemCode::Nonconforming,
                    "a start payload must be {\"data\": {...}, \"parent\": ...}".to_owned(),
                )
                .rule("start_payload"),
            );
        }
        let data = data.unwrap_or(&empty);
        if self.instances.contains_key(&event.instance) {
            problems.push(here(
                ProblemCode::Nonconforming,
                "the instance was already started".to_owned(),
            ));
        }
        // A scoped replay of a child does not follow its parent (only the
        // instance asked for and its descendants), and an extract may leave
        // the parent out, so the links to such a parent cannot be checked
        // there; a full verification checks them.
        let parent_followed = parent.is_none_or(|p| {
            self.scope.as_ref().is_none_or(|scope| scope.contains(p))
                && (!self.extract || self.instances.contains_key(p))
        });
        if parent_followed {
            if let Some(parent) = parent
                && !self.instances.contains_key(parent)
            {
                problems.push(here(
                    ProblemCode::Nonconforming,
                    format!("the parent `{parent}` was not started before its child"),
                ));
            }
            if let Some(parent) = parent
                && let Some(refusal) = self
                    .instances
                    .get(parent)
                    .and_then(|p| strive_core::refuses_children(p.status))
            {
                problems.push(
                    here(
                        ProblemCode::Nonconforming,
                        format!("the parent `{parent}` takes no child now: {refusal}"),
                    )
                    .rule(kind_of(&refusal)),
                );
            }
            self.check_spawn(event, data, problems);
        }
        let workflow = self.workflow(event, problems);
        let replayed = workflow
            .as_ref()
            .map(|w| w.new_instance(&event.instance, event.version, data, parent, event.at));
        let mut instance = match replayed {
            Some(Ok(instance)) => instance,
            Some(Err(rejection)) => {
                problems.push(
                    here(
                        ProblemCode::Nonconforming,
                        format!("the definition refuses this start: {rejection}"),
                    )
                    .rule(kind_of(&rejection)),
                );
                recorded_start(event, data, parent)
            }
            None => recorded_start(event, data, parent),
        };
        if instance.stage != event.to {
            problems.push(
                here(
                    ProblemCode::OutcomeMismatch,
                    format!(
                        "the instance starts in `{}`, but the event records `{}`",
                        instance.stage, event.to
                    ),
                )
                .rule("to"),
            );
            instance.stage = event.to.clone();
        }
        instance.seq = event.seq;
        instance.head = hash.to_owned();
        let due = workflow.as_ref().and_then(|w| {
            if instance.finished {
                None
            } else {
                w.deadline(&instance.stage, event.at, &instance.data)
            }
        });
        self.set_due(&event.instance, due);
        if let Some(parent) = &instance.parent {
            self.count_child(parent, &instance.workflow, &instance.stage, 1);
            self.kids
                .entry(parent.clone())
                .or_default()
                .push(event.instance.clone());
        }
        self.instances.insert(event.instance.clone(), instance);
    }

    fn check_spawn(
        &mut self,
        event: &Event,
        data: &Map<String, Value>,
        problems: &mut Vec<Problem>,
    ) {
        let Some(cause) = &event.cause else { return };
        let key = (cause.instance.clone(), cause.seq);
        if self.broken.contains(&key) {
            return;
        }
        let here = |message: String| {
            Problem::new(ProblemCode::CauseMismatch, message)
                .at(&event.instance, event.seq, event.gseq)
                .rule("spawn")
        };
        match self.spawns.remove(&event.instance) {
            Some(Expected::Child {
                cause: expected,
                workflow,
                data: expected_data,
            }) => {
                if expected != key || workflow != event.workflow || expected_data != *data {
                    problems.push(here(format!(
                        "started as a child of {}#{}, but that event spawns it as ({workflow}, {}) from {}#{}",
                        cause.instance,
                        cause.seq,
                        Value::Object(expected_data),
                        expected.0,
                        expected.1
                    )));
                }
            }
            _ => problems.push(here(format!(
                "claims to be spawned by {}#{}, which spawns no such child",
                cause.instance, cause.seq
            ))),
        }
    }

    fn fire(&mut self, hash: &str, event: &Event, problems: &mut Vec<Problem>) {
        let here = |code, message: String| {
            Problem::new(code, message).at(&event.instance, event.seq, event.gseq)
        };
        // Taken out of the map rather than cloned (a clone of the whole
        // instance per event was a third of replay's time); `next` goes
        // back in at the end under the same key, so the id is not copied
        // again. Nothing below reads this instance's entry, and the checks
        // below see it absent while it is out, as they always have.
        let Some((key, current)) = self.instances.remove_entry(&event.instance) else {
            problems.push(here(
                ProblemCode::Nonconforming,
                "an event on an instance that was never started".to_owned(),
            ));
            self.broken.insert((event.instance.clone(), event.seq));
            return;
        };
        if (
            event.workflow.as_str(),
            event.version,
            event.definition_hash.as_str(),
        ) != (
            current.workflow.as_str(),
            current.version,
            current.definition_hash.as_str(),
        ) {
            problems.push(here(
                ProblemCode::DefinitionMismatch,
                format!(
                    "the event names {} v{} ({}), but the instance runs {} v{} ({})",
                    event.workflow,
                    event.version,
                    event.definition_hash,
                    current.workflow,
                    current.version,
                    current.definition_hash
                ),
            ));
        }
        self.check_notice(event, problems);
        self.check_engine_event(event, problems);
        // The definition the instance runs decides, whatever the event
        // names (a mismatch was reported above).
        let workflow = self.workflow_at(
            &current.workflow,
            current.version,
            &current.definition_hash,
            event,
            problems,
        );
        // Only a workflow whose expressions read `children` needs them
        // summarised, as in the engine.
        let children = if workflow.as_ref().is_some_and(|w| w.reads_children()) {
            self.children_summary(&event.instance)
        } else {
            Value::Null
        };
        let command = Command {
            event: &event.event,
            actor: &event.actor,
            payload: &event.payload,
            now: event.at,
        };
        let decided = workflow
            .as_ref()
            .map(|w| (w, w.fire(&current, &command, &children)));
        let mut next = match decided {
            Some((workflow, Ok(mut accepted))) => {
                let mut differences = Vec::new();
                if Some(&accepted.transition) != event.transition.as_ref() {
                    differences.push(format!(
                        "transition `{}` fires, the event records {}",
                        accepted.transition,
                        shown(event.transition.as_deref())
                    ));
                }
                if Some(&accepted.from) != event.from.as_ref() {
                    differences.push(format!(
                        "the instance is in `{}`, the event records from {}",
                        accepted.from,
                        shown(event.from.as_deref())
                    ));
                }
                if accepted.to != event.to {
                    differences.push(format!(
                        "it moves to `{}`, the event records `{}`",
                        accepted.to, event.to
                    ));
                }
                if accepted.effects != event.effects {
                    differences.push(format!(
                        "its effects are {}, the event records {}",
                        json!(accepted.effects),
                        json!(event.effects)
                    ));
                }
                if differences.is_empty() {
                    self.expect_consequences(event, &current, &accepted);
                    // Nothing reads `accepted.data` after: move it.
                    workflow.advance_taking(&current, &mut accepted, event.at)
                } else {
                    problems.push(
                        here(ProblemCode::OutcomeMismatch, differences.join("; ")).rule(
                            event
                                .transition
                                .clone()
                                .unwrap_or_else(|| event.event.clone()),
                        ),
                    );
                    self.broken.insert((event.instance.clone(), event.seq));
                    recorded_fire(workflow, &current, event)
                }
            }
            Some((workflow, Err(rejection))) => {
                problems.push(
                    here(
                        ProblemCode::Nonconforming,
                        format!(
                            "{} v{} would refuse `{}` by {}: {rejection}",
                            current.workflow, current.version, event.event, event.actor.id
                        ),
                    )
                    .rule(kind_of(&rejection)),
                );
                self.broken.insert((event.instance.clone(), event.seq));
                recorded_fire(workflow, &current, event)
            }
            None => {
                self.broken.insert((event.instance.clone(), event.seq));
                let mut next = current.clone();
                next.stage = event.to.clone();
                next.seq += 1;
                next
            }
        };
        next.seq = event.seq;
        next.head = hash.to_owned();
        // The store consumes a deadline when the system fires its event
        // (`fire_due`), and sets the next one when the stage changes.
        if self
            .dues
            .get(&event.instance)
            .is_some_and(|due| due.event == event.event && event.actor == Actor::system())
        {
            self.dues.remove(&event.instance);
        }
        if next.stage != current.stage {
            let due = workflow.as_ref().and_then(|w| {
                if next.finished {
                    None
                } else {
                    w.deadline(&next.stage, event.at, &next.data)
                }
            });
            self.set_due(&event.instance, due);
        }
        if next.stage != current.stage
            && let Some(parent) = &next.parent
        {
            self.count_child(parent, &next.workflow, &current.stage, -1);
            self.count_child(parent, &next.workflow, &next.stage, 1);
        }
        self.instances.insert(key, next);
    }

    /// A `migrate` event: the plan in its payload, applied by the core's
    /// rules to the instance as replayed, must give the stage, version and
    /// definition the event records; the instance then runs the target.
    fn migrate(&mut self, hash: &str, event: &Event, problems: &mut Vec<Problem>) {
        let here = |code, message: String| {
            Problem::new(code, message).at(&event.instance, event.seq, event.gseq)
        };
        let Some(current) = self.instances.get(&event.instance).cloned() else {
            problems.push(here(
                ProblemCode::Nonconforming,
                "a migration of an instance that was never started".to_owned(),
            ));
            self.broken.insert((event.instance.clone(), event.seq));
            return;
        };
        let migrated = strive_core::MigrationPlan::from_payload(&event.payload).and_then(|plan| {
            let source = self.workflow_at(
                &current.workflow,
                current.version,
                &current.definition_hash,
                event,
                problems,
            );
            let target = self.workflow_at(
                &event.workflow,
                event.version,
                &event.definition_hash,
                event,
                problems,
            );
            match (source, target) {
                (Some(source), Some(target)) => plan
                    .migrate(&source, &target, &current, event.at)
                    .map(|m| (m, target)),
                _ => Err(strive_core::PlanError::Plan {
                    pointer: String::new(),
                    message: "its definitions are not deployed".to_owned(),
                }),
            }
        });
        let (mut next, target) = match migrated {
            Ok((migrated, target)) => {
                let next = migrated.instance;
                let recorded = (event.from.as_deref(), event.to.as_str(), event.version);
                if recorded
                    != (
                        Some(current.stage.as_str()),
                        next.stage.as_str(),
                        next.version,
                    )
                {
                    problems.push(here(
                        ProblemCode::OutcomeMismatch,
                        format!(
                            "the plan moves it from `{}` to `{}` on v{}, the event records from \
                             {} to `{}` on v{}",
                            current.stage,
                            next.stage,
                            next.version,
                            shown(event.from.as_deref()),
                            event.to,
                            event.version
                        ),
                    ));
                    self.broken.insert((event.instance.clone(), event.seq));
                }
                (next, Some(target))
            }
            Err(error) => {
                problems.push(here(
                    ProblemCode::Nonconforming,
                    format!("the migration does not hold: {error}"),
                ));
                self.broken.insert((event.instance.clone(), event.seq));
                let mut next = current.clone();
                next.stage = event.to.clone();
                next.version = event.version;
                next.definition_hash = event.definition_hash.clone();
                (next, None)
            }
        };
        next.seq = event.seq;
        next.head = hash.to_owned();
        // The target's deadline for the stage, from when it was entered,
        // as the engine sets it.
        let due = target.as_ref().and_then(|w| {
            if next.finished {
                None
            } else {
                w.deadline(&next.stage, next.stage_entered_at, &next.data)
            }
        });
        self.set_due(&event.instance, due);
        if next.stage != current.stage
            && let Some(parent) = &next.parent
        {
            self.count_child(parent, &next.workflow, &current.stage, -1);
            self.count_child(parent, &next.workflow, &next.stage, 1);
        }
        self.instances.insert(event.instance.clone(), next);
    }

    /// Records the children a transition spawns and the notice it sends, so
    /// that their events can be checked against it.
    fn expect_consequences(
        &mut self,
        event: &Event,
        current: &Instance,
        accepted: &strive_core::Accepted,
    ) {
        let cause = (event.instance.clone(), event.seq);
        if let Some(spawn) = &accepted.spawn {
            for child in &spawn.children {
                if let Some(spawned) = &mut self.spawned {
                    spawned.push(child.id.clone());
                }
                self.spawns.insert(
                    child.id.clone(),
                    Expected::Child {
                        cause: cause.clone(),
                        workflow: spawn.workflow.clone(),
                        data: child.data.clone(),
                    },
                );
            }
        }
        if let (Some(notice), Some(parent)) = (&accepted.notify_parent, &current.parent) {
            // Only when the parent is replayed too: a scoped replay of a
            // child does not follow its parent. A cancelled or terminated
            // parent is not notified (the engine skips it too).
            if self
                .instances
                .get(parent)
                .is_some_and(|p| !p.status.has_ended())
            {
                self.notices.insert(
                    (parent.clone(), cause),
                    Expected::Notice {
                        event: notice.clone(),
                        payload: json!({"child": event.instance, "workflow": current.workflow, "stage": accepted.to}),
                    },
                );
            }
        }
    }

    fn check_notice(&mut self, event: &Event, problems: &mut Vec<Problem>) {
        let Some(cause) = &event.cause else { return };
        let key = (cause.instance.clone(), cause.seq);
        if self.broken.contains(&key) {
            return;
        }
        let here = |message: String| {
            Problem::new(ProblemCode::CauseMismatch, message)
                .at(&event.instance, event.seq, event.gseq)
                .rule("notify_parent")
        };
        match self.notices.remove(&(event.instance.clone(), key)) {
            Some(Expected::Notice {
                event: name,
                payload,
            }) => {
                if name != event.event || payload != event.payload || event.actor != Actor::system()
                {
                    problems.push(here(format!(
                        "{}#{} notifies with `{name}` {payload} as the system, the event records `{}` {} by {}",
                        cause.instance, cause.seq, event.event, event.payload, event.actor.id
                    )));
                }
            }
            _ => {
                // A scoped replay does not follow the child that caused it.
                if self.instances.contains_key(&cause.instance) {
                    problems.push(here(format!(
                        "claims to be caused by {}#{}, which notifies no parent",
                        cause.instance, cause.seq
                    )));
                }
            }
        }
    }

    /// Events as the `system` actor or role come only from the engine
    /// (issue #17): a notification (it has a cause, checked by
    /// `check_notice`), a spawn (a start with a cause) or a deadline, which
    /// must be the one due in the instance's stage and be recorded no
    /// earlier than its due time.
    fn check_engine_event(&self, event: &Event, problems: &mut Vec<Problem>) {
        let system = event.actor.id == SYSTEM_ROLE
            || event.actor.roles.iter().any(|role| role == SYSTEM_ROLE);
        if !system || event.cause.is_some() {
            return;
        }
        let here = |message: String, rule: &'static str| {
            Problem::new(ProblemCode::CauseMismatch, message)
                .at(&event.instance, event.seq, event.gseq)
                .rule(rule)
        };
        match self.dues.get(&event.instance) {
            _ if event.kind == EventKind::Start => problems.push(here(
                "a start as `system` without a cause: the engine starts instances only as spawns of a parent's event".to_owned(),
                "engine_cause",
            )),
            Some(due) if due.event == event.event && event.at >= due.at => {}
            Some(due) if due.event == event.event => problems.push(here(
                format!(
                    "the deadline event `{}` is recorded at {}, before it was due at {}",
                    event.event, event.at, due.at
                ),
                "deadline_early",
            )),
            _ => problems.push(here(
                format!(
                    "`{}` is recorded as `system` with no engine cause: no notification, no spawn, \
                     and no deadline firing `{}` was due",
                    event.event, event.event
                ),
                "engine_cause",
            )),
        }
    }

    fn set_due(&mut self, instance: &str, due: Option<Due>) {
        match due {
            Some(due) => {
                self.dues.insert(instance.to_owned(), due);
            }
            None => {
                self.dues.remove(instance);
            }
        }
    }

    fn count_child(&mut self, parent: &str, workflow: &str, stage: &str, delta: i64) {
        let counts = self.children.entry(parent.to_owned()).or_default();
        let key = (workflow.to_owned(), stage.to_owned());
        let next = counts
            .get(&key)
            .copied()
            .unwrap_or(0)
            .saturating_add_signed(delta);
        if next == 0 {
            counts.remove(&key);
        } else {
            counts.insert(key, next);
        }
    }

    /// The children summary guards read (`strive_core::children_summary`,
    /// as the writer builds it), from the counts replayed so far.
    fn children_summary(&self, parent: &str) -> Value {
        strive_core::children_summary(
            self.children
                .get(parent)
                .into_iter()
                .flatten()
                .map(|((workflow, stage), count)| (workflow.as_str(), stage.as_str(), *count)),
        )
    }
}

/// The parent a start event names.
pub(crate) fn parent_of(event: &Event) -> Option<&str> {
    event.payload.get("parent").and_then(Value::as_str)
}

fn shown(value: Option<&str>) -> String {
    value.map_or_else(|| "nothing".to_owned(), |v| format!("`{v}`"))
}

/// The instance a start event records, when the definition cannot rebuild
/// it: so that replay goes on and later problems are not mere echoes.
fn recorded_start(event: &Event, data: &Map<String, Value>, parent: Option<&str>) -> Instance {
    Instance {
        id: event.instance.clone(),
        workflow: event.workflow.clone(),
        version: event.version,
        definition_hash: event.definition_hash.clone(),
        stage: event.to.clone(),
        data: data.clone(),
        seq: event.seq,
        head: String::new(),
        parent: parent.map(str::to_owned),
        created_at: event.at,
        updated_at: event.at,
        stage_entered_at: event.at,
        finished: false,
        status: strive_core::Status::Running,
    }
}

/// The instance after a fire event, taken from what the event records
/// (its stage and evaluated effects) rather than from the definition.
fn recorded_fire(workflow: &Workflow, current: &Instance, event: &Event) -> Instance {
    let mut data = current.data.clone();
    for effect in &event.effects {
        apply_recorded(&mut data, effect);
    }
    let moves = event.to != current.stage;
    Instance {
        stage: event.to.clone(),
        data,
        seq: current.seq + 1,
        updated_at: event.at,
        stage_entered_at: if moves {
            event.at
        } else {
            current.stage_entered_at
        },
        finished: workflow.is_terminal(&event.to),
        ..current.clone()
    }
}

/// Applies an effect as recorded: its values are already evaluated.
fn apply_recorded(data: &mut Map<String, Value>, effect: &AppliedEffect) {
    let value = effect.value.clone().unwrap_or(Value::Null);
    let slot = data.entry(effect.var.clone()).or_insert(Value::Null);
    match (effect.op.as_str(), slot, effect.key.as_ref()) {
        ("set" | "reset", slot, _) => *slot = value,
        ("append", Value::Array(list), _) => list.push(value),
        ("increment", slot, _) => {
            *slot = match (slot.as_i64(), value.as_i64()) {
                (Some(a), Some(b)) => Value::from(a.saturating_add(b)),
                _ => serde_json::Number::from_f64(
                    slot.as_f64().unwrap_or(0.0) + value.as_f64().unwrap_or(0.0),
                )
                .map_or(Value::Null, Value::Number),
            }
        }
        ("put", Value::Object(map), Some(key)) => {
            map.insert(key.clone(), value);
        }
        ("remove", Value::Object(map), Some(key)) => {
            map.remove(key);
        }
        _ => {}
    }
}

/// The fields in which two states of an instance differ, for reports.
pub fn differences(replayed: &Instance, stored: &Instance) -> Vec<String> {
    let mut found = Vec::new();
    let mut check = |field: &str, a: String, b: String| {
        if a != b {
            found.push(format!("{field}: replayed {a}, stored {b}"));
        }
    };
    check(
        "workflow",
        replayed.workflow.clone(),
        stored.workflow.clone(),
    );
    check(
        "version",
        replayed.version.to_string(),
        stored.version.to_string(),
    );
    check(
        "definition_hash",
        replayed.definition_hash.clone(),
        stored.definition_hash.clone(),
    );
    check("stage", replayed.stage.clone(), stored.stage.clone());
    check("seq", replayed.seq.to_string(), stored.seq.to_string());
    check("head", replayed.head.clone(), stored.head.clone());
    check(
        "parent",
        format!("{:?}", replayed.parent),
        format!("{:?}", stored.parent),
    );
    check(
        "created_at",
        replayed.created_at.to_string(),
        stored.created_at.to_string(),
    );
    check(
        "updated_at",
        replayed.updated_at.to_string(),
        stored.updated_at.to_string(),
    );
    check(
        "stage_entered_at",
        replayed.stage_entered_at.to_string(),
        stored.stage_entered_at.to_string(),
    );
    check(
        "finished",
        replayed.finished.to_string(),
        stored.finished.to_string(),
    );
    check(
        "status",
        replayed.status.to_string(),
        stored.status.to_string(),
    );
    if replayed.data != stored.data {
        let mut keys: Vec<&String> = replayed.data.keys().chain(stored.data.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let a = replayed.data.get(key).cloned().unwrap_or(Value::Null);
            let b = stored.data.get(key).cloned().unwrap_or(Value::Null);
            if a != b {
                found.push(format!("data.{key}: replayed {a}, stored {b}"));
            }
        }
    }
    if replayed.id != stored.id {
        found.push(format!(
            "id: replayed {}, stored {}",
            replayed.id, stored.id
        ));
    }
    found
}

/// Replays `instance` from `events` (every event of the log, in global
/// order, as `(stored hash, stored bytes)`) up to `at`.
///
/// Only the instance, its descendants and deployments are replayed, so
/// the cost is one pass over the log with little memory.
pub fn replay<I, E>(events: I, instance: &str, at: At) -> Result<Replayed, ReplayError>
where
    I: IntoIterator<Item = Result<(String, Vec<u8>), E>>,
    E: fmt::Display,
{
    let mut replayer = Replayer::scoped(instance);
    let mut problems = Vec::new();
    let mut last_gseq = 0;
    let mut started: Option<Timestamp> = None;
    for item in events {
        let (hash, bytes) = item.map_err(|e| ReplayError::Source {
            message: e.to_string(),
        })?;
        let event = Event::decode(&bytes).map_err(|e| ReplayError::Source {
            message: format!("an event does not decode: {e}"),
        })?;
        if event.instance == instance {
            let past = match at {
                At::End => false,
                At::Seq(seq) => event.seq > seq,
                At::Time(time) => event.at > time,
            };
            if past {
                if started.is_none() && event.kind == EventKind::Start {
                    started = Some(event.at);
                }
                break;
            }
        }
        let computed = strive_core::event_hash(&bytes);
        if computed != hash {
            problems.push(
                Problem::new(
                    ProblemCode::HashMismatch,
                    format!("stored hash {hash}, hash of the stored bytes {computed}"),
                )
                .at(&event.instance, event.seq, event.gseq),
            );
        }
        let found = replayer.apply(&computed, &event);
        if event.instance == instance {
            problems.extend(found);
            last_gseq = event.gseq;
            if at == At::Seq(event.seq) {
                break;
            }
        }
    }
    match replayer.instance(instance) {
        Some(state) => Ok(Replayed {
            instance: state.clone(),
            gseq: last_gseq,
            problems,
        }),
        None => match started {
            Some(started) => Err(ReplayError::BeforeStart {
                instance: instance.to_owned(),
                started,
            }),
            None => Err(ReplayError::NotFound {
                instance: instance.to_owned(),
            }),
        },
    }
}
