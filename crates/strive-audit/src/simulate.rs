//! What-if simulation (issue #13 item 2): every recorded command of a
//! workflow's instances re-run, in memory, against a new definition, to see
//! what it would have done to the campaign already running. Nothing is
//! written.
//!
//! It is replay with one substitution, so it runs the exact transition
//! function, conformance checks and children bookkeeping that `verify`
//! runs: the new definition is deployed, in the replayer only, as a
//! version no store can hold ([`SIMULATED_VERSION`]), and every event of
//! the selected instances is re-tagged with that version and its hash
//! before it is applied. Where the recorded outcome and the new
//! definition's disagree, replay reports a conformance problem: the command
//! would be refused (`nonconforming`, with the refusal's kind) or would
//! have another outcome (`outcome_mismatch`: another transition, stage or
//! effects). The first such problem of each instance is its divergence.
//! Children of other workflows run on their recorded definitions, so a
//! parent whose new definition spawns or notifies differently shows as a
//! `cause_mismatch` on either side.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::Value;
use strive_core::{
    Definition, Event, EventKind, WORKFLOW_SUBJECT_PREFIX, Workflow, definition_hash,
};

use crate::problem::{Problem, ProblemCode};
use crate::replay::Replayer;

/// The version the new definition is deployed as inside a simulation:
/// past any a store assigns, so it never meets a recorded one.
pub const SIMULATED_VERSION: u32 = u32::MAX;

/// Which instances of the workflow to re-run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every instance of the workflow.
    All,
    /// These instances only (the others keep their recorded definition).
    Instances(BTreeSet<String>),
}

/// The first place an instance's history departs from what the new
/// definition would do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// The instance.
    pub instance: String,
    /// The event's sequence number in the instance.
    pub seq: Option<u64>,
    /// The event's position in its partition's log.
    pub gseq: Option<u64>,
    /// The event's name (`start` for the start).
    pub event: Option<String>,
    /// `nonconforming` (refused), `outcome_mismatch` (another outcome) or
    /// `cause_mismatch` (spawns or notifications that differ).
    pub code: ProblemCode,
    /// The refusal's kind or the field that differs.
    pub rule: Option<String>,
    /// What would happen instead, in words.
    pub message: String,
}

/// What a simulation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimulationReport {
    /// The workflow simulated.
    pub workflow: String,
    /// The new definition's hash.
    pub definition_hash: String,
    /// Instances of the workflow re-run.
    pub instances: u64,
    /// Events of theirs re-run.
    pub events: u64,
    /// Instances whose history the new definition would change, in id
    /// order, each at its first divergence.
    pub diverged: Vec<Divergence>,
    /// Divergences per code and rule (`nonconforming/guard_failed`, ...).
    pub by_rule: BTreeMap<String, u64>,
    /// Problems of instances not simulated (children on their recorded
    /// definitions) that the new definition causes, in log order.
    pub others: Vec<Problem>,
}

impl SimulationReport {
    /// Whether the new definition would have done exactly what was
    /// recorded.
    pub fn unchanged(&self) -> bool {
        self.diverged.is_empty() && self.others.is_empty()
    }
}

/// Why a simulation cannot run.
#[derive(Debug)]
#[non_exhaustive]
pub enum SimulateError {
    /// The new definition does not compile.
    Definition {
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for SimulateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimulateError::Definition { message } => write!(
                f,
                "the new definition cannot run: {message}; `strive validate` says where"
            ),
        }
    }
}

impl std::error::Error for SimulateError {}

/// A simulation in progress: feed it the log's events in order with
/// [`Simulation::event`], then [`Simulation::finish`].
pub struct Simulation {
    workflow: String,
    definition: Value,
    hash: String,
    selection: Selection,
    replayer: Replayer,
    deployed: bool,
    instances: BTreeSet<String>,
    events: u64,
    diverged: BTreeMap<String, Divergence>,
    others: Vec<Problem>,
}

impl fmt::Debug for Simulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulation")
            .field("workflow", &self.workflow)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl Simulation {
    /// A simulation of `definition` (a workflow definition as JSON) over
    /// the instances of its workflow that `selection` names.
    pub fn new(definition: Value, selection: Selection) -> Result<Simulation, SimulateError> {
        let hash = definition_hash(&definition);
        let parsed: Definition =
            serde_json::from_value(definition.clone()).map_err(|e| SimulateError::Definition {
                message: e.to_string(),
            })?;
        let workflow =
            Workflow::compile(parsed, hash.clone()).map_err(|e| SimulateError::Definition {
                message: e.to_string(),
            })?;
        Ok(Simulation {
            workflow: workflow.id().to_owned(),
            definition,
            hash,
            selection,
            replayer: Replayer::new(),
            deployed: false,
            instances: BTreeSet::new(),
            events: 0,
            diverged: BTreeMap::new(),
            others: Vec::new(),
        })
    }

    /// The workflow the definition is of.
    pub fn workflow(&self) -> &str {
        &self.workflow
    }

    fn selected(&self, event: &Event) -> bool {
        event.workflow == self.workflow
            && matches!(event.kind, EventKind::Start | EventKind::Fire)
            && match &self.selection {
                Selection::All => true,
                Selection::Instances(ids) => ids.contains(&event.instance),
            }
    }

    /// Applies the next event of the log (whose stored hash is `hash`).
    /// Deployments of every workflow come through as recorded, so that
    /// children run on their own definitions.
    pub fn event(&mut self, hash: &str, event: &Event) {
        if !self.selected(event) {
            let problems = self.replayer.apply(hash, event);
            if event.kind == EventKind::Deploy && event.workflow == self.workflow {
                self.deploy_new();
            }
            self.keep(problems, Some(Applied::of(event, false)));
            return;
        }
        if !self.deployed {
            // An instance before any deployment of its workflow cannot be
            // in a verified log; deploy anyway, so its events still run.
            self.deploy_new();
        }
        self.instances.insert(event.instance.clone());
        self.events += 1;
        let mut simulated = event.clone();
        simulated.version = SIMULATED_VERSION;
        simulated.definition_hash.clone_from(&self.hash);
        let problems = self.replayer.apply(hash, &simulated);
        self.keep(problems, Some(Applied::of(event, true)));
    }

    /// Deploys the new definition in the replayer, once, as
    /// [`SIMULATED_VERSION`].
    fn deploy_new(&mut self) {
        if self.deployed {
            return;
        }
        self.deployed = true;
        let deploy = Event {
            v: strive_core::EVENT_FORMAT,
            gseq: 0,
            partition: 0,
            instance: format!("{WORKFLOW_SUBJECT_PREFIX}{}", self.workflow),
            seq: u64::from(SIMULATED_VERSION),
            prev: strive_core::GENESIS.to_owned(),
            kind: EventKind::Deploy,
            workflow: self.workflow.clone(),
            version: SIMULATED_VERSION,
            definition_hash: self.hash.clone(),
            from: None,
            event: "deploy".to_owned(),
            transition: None,
            to: String::new(),
            actor: strive_core::Actor::new("simulation", &["admin"]),
            at: jiff::Timestamp::UNIX_EPOCH,
            command_id: None,
            payload: self.definition.clone(),
            effects: Vec::new(),
            cause: None,
            signature: None,
        };
        // The definition compiled in `new`, so its deployment conforms.
        let _ = self.replayer.apply("", &deploy);
    }

    /// Files each problem under the instance it concerns: a simulated
    /// instance keeps its first, others' are kept in order. `applied` is
    /// the event whose replay found them (none after the last event).
    fn keep(&mut self, problems: Vec<Problem>, applied: Option<Applied<'_>>) {
        for problem in problems {
            let here = applied.as_ref();
            let instance = problem
                .instance
                .clone()
                .or_else(|| here.map(|a| a.instance.to_owned()))
                .unwrap_or_default();
            let ours = self.instances.contains(&instance)
                || here.is_some_and(|a| a.simulated && a.instance == instance);
            if !ours {
                self.others.push(problem);
                continue;
            }
            let name = here
                .filter(|a| a.instance == instance && problem.seq == Some(a.seq))
                .map(|a| a.name.to_owned());
            self.diverged.entry(instance.clone()).or_insert(Divergence {
                instance,
                seq: problem.seq,
                gseq: problem.gseq,
                event: name,
                code: problem.code,
                rule: problem.rule.clone(),
                message: problem.message,
            });
        }
    }

    /// Ends the simulation: what the new definition would change.
    pub fn finish(mut self) -> SimulationReport {
        let unmet = self.replayer.unmet();
        self.keep(unmet, None);
        let mut by_rule = BTreeMap::new();
        for divergence in self.diverged.values() {
            let key = match &divergence.rule {
                Some(rule) => format!("{}/{rule}", divergence.code.as_str()),
                None => divergence.code.as_str().to_owned(),
            };
            *by_rule.entry(key).or_insert(0) += 1;
        }
        SimulationReport {
            workflow: self.workflow,
            definition_hash: self.hash,
            instances: self.instances.len() as u64,
            events: self.events,
            diverged: self.diverged.into_values().collect(),
            by_rule,
            others: self.others,
        }
    }
}

/// The event whose replay found some problems, and whether it was re-run
/// on the new definition.
struct Applied<'a> {
    instance: &'a str,
    seq: u64,
    name: &'a str,
    simulated: bool,
}

impl<'a> Applied<'a> {
    fn of(event: &'a Event, simulated: bool) -> Applied<'a> {
        Applied {
            instance: &event.instance,
            seq: event.seq,
            name: &event.event,
            simulated,
        }
    }
}
