//! The transition function: given a workflow, an instance and a command, it
//! either accepts (the instance's next state and what to record) or rejects
//! with a typed reason. It does no I/O, so the engine, replay and tests all
//! run the same code.

use std::collections::HashMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use datalogic_rs::DataValue;
use datalogic_rs::bumpalo::Bump;

use crate::definition::{ANY_STAGE, Definition, Effect, Field, StageKind, ValueType};
use crate::guard::{self, Expr, ExprError, Needs};
use crate::lifecycle::Status;
use crate::types::{self, TypeMismatch};

/// The most years a deadline may lie after entering its stage (S025).
pub const MAX_DEADLINE_YEARS: i16 = 1000;

/// Whether `span` stays within [`MAX_DEADLINE_YEARS`] from any start: it
/// is measured from 2000-01-01 in UTC, and its calendar units are counted
/// as they fall there.
pub(crate) fn span_in_range(span: jiff::Span) -> bool {
    // 2000-01-01T00:00:00Z.
    let start = Timestamp::from_second(946_684_800)
        .map(|start| start.to_zoned_datetime(jiff::tz::TimeZone::UTC));
    let limit = jiff::civil::date(2000 + MAX_DEADLINE_YEARS, 1, 1);
    match start.and_then(|start| start.checked_add(span)) {
        Ok(end) => end.date() <= limit,
        Err(_) => false,
    }
}

/// A deadline that cannot be computed (issue #17).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadlineError {
    /// The stage whose deadline it is.
    pub stage: String,
    /// Why.
    pub reason: &'static str,
}

impl std::fmt::Display for DeadlineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the deadline of stage `{}` cannot be computed: {}",
            self.stage, self.reason
        )
    }
}

impl std::error::Error for DeadlineError {}

/// Who fires a command: an id and the roles the caller vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The actor's id, such as a staff number.
    pub id: String,
    /// The roles the actor acts in.
    pub roles: Vec<String>,
}

impl Actor {
    /// An actor with `id` acting in `roles`.
    pub fn new(id: impl Into<String>, roles: &[&str]) -> Actor {
        Actor {
            id: id.into(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        }
    }

    /// The `system` actor that fires deadline events.
    pub fn system() -> Actor {
        Actor::new(
            crate::definition::SYSTEM_ROLE,
            &[crate::definition::SYSTEM_ROLE],
        )
    }
}

/// An instance of a workflow: where it is and what it has recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// The instance's id, unique in the store.
    pub id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// The definition version it is pinned to.
    pub version: u32,
    /// The hash of that definition version.
    pub definition_hash: String,
    /// The current stage.
    pub stage: String,
    /// The instance variables.
    pub data: Map<String, Value>,
    /// The number of events in this instance's history (1 after start).
    pub seq: u64,
    /// The hash of the last event in this instance's history.
    pub head: String,
    /// The parent instance, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// When the instance was started.
    pub created_at: Timestamp,
    /// When its last event was recorded.
    pub updated_at: Timestamp,
    /// When it entered its current stage.
    pub stage_entered_at: Timestamp,
    /// Whether it is in a terminal stage.
    pub finished: bool,
    /// Whether it runs, is suspended, or was cancelled or terminated
    /// (left out of records while it runs, so older records read as
    /// running).
    #[serde(default, skip_serializing_if = "Status::is_running")]
    pub status: Status,
}

/// A command to fire an event on an instance.
#[derive(Debug, Clone, Copy)]
pub struct Command<'a> {
    /// The event's name.
    pub event: &'a str,
    /// Who fires it.
    pub actor: &'a Actor,
    /// The event's payload: an object, or null for none.
    pub payload: &'a Value,
    /// The command's time, from the engine's clock.
    pub now: Timestamp,
}

/// Why a command was refused. A refused command changes nothing.
///
/// Serialized (for `--format json`) with a `kind` tag in snake case, such as
/// `{"kind": "role_not_allowed", "event": ..., "roles": [...], "allowed": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rejection {
    /// No transition of the workflow handles this event.
    UnknownEvent {
        /// The event.
        event: String,
    },
    /// Transitions handle the event, but none from the current stage.
    NotAllowedInStage {
        /// The event.
        event: String,
        /// The instance's stage.
        stage: String,
        /// The stages the event can fire from.
        allowed_from: Vec<String>,
    },
    /// The event can fire from this stage, but not by the actor's roles.
    RoleNotAllowed {
        /// The event.
        event: String,
        /// The actor's roles.
        roles: Vec<String>,
        /// The roles that may fire it from this stage.
        allowed: Vec<String>,
    },
    /// The payload does not fit the event's declared fields.
    InvalidPayload {
        /// The event.
        event: String,
        /// The JSON pointer of the offending field inside the payload.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Every transition that could fire has a false guard.
    GuardFailed {
        /// The event.
        event: String,
        /// Each candidate transition and the part of its guard that was false.
        failed: Vec<(String, Value)>,
    },
    /// A guard or effect could not be evaluated on this data.
    EvaluationFailed {
        /// The transition.
        transition: String,
        /// What failed.
        message: String,
    },
    /// The instance is in a terminal stage and accepts no event.
    Finished {
        /// The terminal stage.
        stage: String,
    },
    /// Initial data or spawned children's data does not fit the declared
    /// variables.
    InvalidData {
        /// The JSON pointer of the offending variable.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The instance is suspended: it accepts no event until it is resumed.
    Suspended {
        /// The event refused.
        event: String,
    },
    /// The instance was cancelled or terminated and accepts nothing.
    Ended {
        /// `cancelled` or `terminated`.
        status: Status,
    },
    /// The lifecycle operation does not apply to the instance's status
    /// (resuming a running instance, suspending a suspended one).
    LifecycleNotAllowed {
        /// The operation.
        op: String,
        /// The instance's status.
        status: Status,
    },
    /// The actor's roles may not use the lifecycle operation.
    LifecycleRoleNotAllowed {
        /// The operation.
        op: String,
        /// The actor's roles.
        roles: Vec<String>,
        /// The roles the definition's `lifecycle` section allows for it.
        allowed: Vec<String>,
    },
    /// A lifecycle operation's reason is empty or too long.
    InvalidReason {
        /// The operation.
        op: String,
        /// The most characters a reason may have.
        limit: usize,
    },
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::UnknownEvent { event } => {
                write!(
                    f,
                    "the workflow has no event `{event}`; check the event name"
                )
            }
            Rejection::NotAllowedInStage {
                event,
                stage,
                allowed_from,
            } => write!(
                f,
                "event `{event}` cannot fire in stage `{stage}`; it fires from: {}",
                allowed_from.join(", ")
            ),
            Rejection::RoleNotAllowed {
                event,
                roles,
                allowed,
            } => write!(
                f,
                "roles [{}] may not fire `{event}` here; allowed roles: {}",
                roles.join(", "),
                allowed.join(", ")
            ),
            Rejection::InvalidPayload {
                event,
                field,
                reason,
            } => write!(f, "payload of `{event}`: field `{field}` {reason}"),
            Rejection::GuardFailed { event, failed } => {
                write!(f, "the guard of `{event}` is false")?;
                for (transition, part) in failed {
                    write!(f, "; transition `{transition}` failed on {part}")?;
                }
                Ok(())
            }
            Rejection::EvaluationFailed {
                transition,
                message,
            } => write!(
                f,
                "transition `{transition}` could not be evaluated: {message}"
            ),
            Rejection::Finished { stage } => write!(
                f,
                "the instance is finished (terminal stage `{stage}`) and accepts no event"
            ),
            Rejection::InvalidData { field, reason } => {
                write!(f, "initial data: variable `{field}` {reason}")
            }
            Rejection::Suspended { event } => write!(
                f,
                "the instance is suspended and accepts no event (`{event}` refused); resume it \
                 first (`strive resume`)"
            ),
            Rejection::Ended { status } => write!(
                f,
                "the instance was {status} and accepts nothing more; start a new instance \
                 if the work must go on"
            ),
            Rejection::LifecycleNotAllowed { op, status } => write!(
                f,
                "an instance that is {status} cannot be {}",
                past_participle(op)
            ),
            Rejection::LifecycleRoleNotAllowed { op, roles, allowed } => {
                write!(
                    f,
                    "roles [{}] may not {op} this instance; ",
                    roles.join(", ")
                )?;
                if allowed.is_empty() {
                    write!(
                        f,
                        "the definition allows no role to; add `lifecycle.{op}` to it"
                    )
                } else {
                    write!(f, "allowed roles: {}", allowed.join(", "))
                }
            }
            Rejection::InvalidReason { op, limit } => write!(
                f,
                "{op} needs a reason of 1 to {limit} characters, recorded in the audit log; \
                 give one with --reason"
            ),
        }
    }
}

impl std::error::Error for Rejection {}

/// `suspend` as "suspended", for messages.
fn past_participle(op: &str) -> String {
    match op {
        "suspend" => "suspended".to_owned(),
        "resume" => "resumed".to_owned(),
        "cancel" => "cancelled".to_owned(),
        "terminate" => "terminated".to_owned(),
        other => format!("given `{other}`"),
    }
}

/// An effect as applied, with its expressions evaluated: what the audit
/// trail records, so an auditor sees every change without re-evaluating.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedEffect {
    /// `set`, `reset`, `append`, `increment`, `put` or `remove`.
    pub op: String,
    /// The variable changed.
    pub var: String,
    /// The map key, for `put` and `remove`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The value set, appended or put; the amount added for `increment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// A child instance to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChildSpec {
    /// The child instance's id.
    pub id: String,
    /// Its initial data.
    pub data: Map<String, Value>,
}

/// Children to start, all of one workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpawnRequest {
    /// The child workflow.
    pub workflow: String,
    /// The children.
    pub children: Vec<ChildSpec>,
}

/// A stage deadline that is due at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    /// When it is due.
    pub at: Timestamp,
    /// The event fired then.
    pub event: String,
}

/// What an accepted command does.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The transition that fired (its id, or its event).
    pub transition: String,
    /// The stage before.
    pub from: String,
    /// The stage after (the same stage for events that only record data).
    pub to: String,
    /// The instance's data after the effects.
    pub data: Map<String, Value>,
    /// The effects, evaluated.
    pub effects: Vec<AppliedEffect>,
    /// Children to start in the same write.
    pub spawn: Option<SpawnRequest>,
    /// An event to fire on the parent in the same write.
    pub notify_parent: Option<String>,
}

impl Accepted {
    /// Whether the instance changes stage.
    pub fn moves(&self) -> bool {
        self.from != self.to
    }
}

struct CompiledTransition {
    name: String,
    from_any: bool,
    from: Vec<String>,
    to: Option<String>,
    roles: Vec<String>,
    payload: Vec<Field>,
    guard: Option<Expr>,
    effects: Vec<(Effect, Vec<Expr>)>,
    spawn: Option<(String, Expr)>,
    notify_parent: Option<String>,
}

/// The transitions an event may fire, and what of the context their
/// expressions read (so that firing builds only that).
struct EventTransitions {
    transitions: Vec<usize>,
    needs: Needs,
    /// Whether any of them has a guard, an effect or a spawn.
    evaluates: bool,
}

/// A definition compiled for execution: stages indexed, transitions grouped
/// by event, expressions compiled. Build it from a validated definition.
pub struct Workflow {
    definition: Definition,
    hash: String,
    initial: String,
    kinds: HashMap<String, StageKind>,
    by_event: HashMap<String, EventTransitions>,
    transitions: Vec<CompiledTransition>,
    variables: HashMap<String, usize>,
    reads_children: bool,
}

impl fmt::Debug for Workflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workflow")
            .field("id", &self.definition.id)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Why a definition could not be compiled. Validation reports these faults
/// with positions first; this is the last line of defence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompileError {
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the definition cannot run: {}", self.message)
    }
}

impl std::error::Error for CompileError {}

impl Workflow {
    /// Compiles `definition`, whose content hash is `hash` (see
    /// [`crate::definition_hash`]). The definition should have passed
    /// validation; faults that would make execution ambiguous are refused.
    pub fn compile(definition: Definition, hash: String) -> Result<Workflow, CompileError> {
        let err = |message: String| CompileError { message };
        let mut kinds = HashMap::new();
        let mut initial = None;
        for stage in &definition.stages {
            kinds.insert(stage.id.clone(), stage.kind);
            if stage.kind == StageKind::Initial {
                if initial.is_some() {
                    return Err(err("more than one initial stage".to_owned()));
                }
                initial = Some(stage.id.clone());
            }
        }
        let initial = initial.ok_or_else(|| err("no initial stage".to_owned()))?;
        let compile = |what: &str, value: &Value| {
            Expr::compile(value).map_err(|e| err(format!("{what}: {e}")))
        };
        let mut by_event: HashMap<String, EventTransitions> = HashMap::new();
        let mut transitions = Vec::new();
        for (index, t) in definition.transitions.iter().enumerate() {
            let name = t.name().to_owned();
            let guard = t
                .guard
                .as_ref()
                .map(|g| compile(&format!("guard of `{name}`"), g))
                .transpose()?;
            let mut effects = Vec::new();
            for effect in &t.effects {
                let exprs = effect
                    .expressions()
                    .into_iter()
                    .map(|(key, value)| compile(&format!("effect {key} of `{name}`"), value))
                    .collect::<Result<Vec<_>, _>>()?;
                effects.push((effect.clone(), exprs));
            }
            let spawn = t
                .spawn
                .as_ref()
                .map(|s| {
                    Ok::<_, CompileError>((s.workflow.clone(), compile("spawn", &s.children)?))
                })
                .transpose()?;
            for stage in t.from.ids().iter().chain(t.to.iter()) {
                if stage != ANY_STAGE && !kinds.contains_key(stage) {
                    return Err(err(format!(
                        "transition `{name}` names unknown stage `{stage}`"
                    )));
                }
            }
            let mut needs = Needs::nothing();
            let sources = t
                .guard
                .iter()
                .chain(
                    t.effects
                        .iter()
                        .flat_map(|e| e.expressions().into_iter().map(|(_, v)| v)),
                )
                .chain(t.spawn.iter().map(|s| &s.children));
            let mut evaluates = false;
            for source in sources {
                needs.merge(&guard::needs(source));
                evaluates = true;
            }
            let entry = by_event
                .entry(t.event.clone())
                .or_insert_with(|| EventTransitions {
                    transitions: Vec::new(),
                    needs: Needs::nothing(),
                    evaluates: false,
                });
            entry.transitions.push(index);
            entry.needs.merge(&needs);
            entry.evaluates |= evaluates;
            transitions.push(CompiledTransition {
                name,
                from_any: t.from.is_any(),
                from: t.from.ids().to_vec(),
                to: t.to.clone(),
                roles: t.roles.clone(),
                payload: t.payload.clone(),
                guard,
                effects,
                spawn,
                notify_parent: t.notify_parent.clone(),
            });
        }
        let variables = definition
            .data
            .iter()
            .enumerate()
            .map(|(index, field)| (field.id.clone(), index))
            .collect();
        let reads_children = by_event
            .values()
            .any(|e| e.needs.reads(guard::ROOT_CHILDREN));
        Ok(Workflow {
            definition,
            hash,
            initial,
            kinds,
            by_event,
            transitions,
            variables,
            reads_children,
        })
    }

    /// The definition.
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    /// The workflow's id.
    pub fn id(&self) -> &str {
        &self.definition.id
    }

    /// The definition's content hash.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The initial stage.
    pub fn initial_stage(&self) -> &str {
        &self.initial
    }

    /// Whether `stage` is terminal.
    pub fn is_terminal(&self, stage: &str) -> bool {
        self.kinds.get(stage) == Some(&StageKind::Terminal)
    }

    /// Whether a terminal stage can be reached from `stage`, whatever the
    /// guards (the can-finish check a migration makes of the stage it
    /// moves an instance to).
    pub fn can_finish_from(&self, stage: &str) -> bool {
        let mut catalog = crate::Catalog::new();
        catalog.add(&self.definition);
        catalog.reaches_terminal(&self.definition.id, stage)
    }

    /// Whether the workflow declares `stage`.
    pub fn has_stage(&self, stage: &str) -> bool {
        self.kinds.contains_key(stage)
    }

    /// Whether any transition handles `event`.
    pub fn has_event(&self, event: &str) -> bool {
        self.by_event.contains_key(event)
    }

    /// Whether any guard or effect may read `children`: when none does, a
    /// caller of [`Workflow::fire`] can pass `Value::Null` instead of
    /// summarising the instance's children.
    pub fn reads_children(&self) -> bool {
        self.reads_children
    }

    /// The data a new instance starts with: declared defaults overridden by
    /// `initial`. Undeclared variables and values of the wrong type are
    /// refused.
    pub fn initial_data(
        &self,
        initial: &Map<String, Value>,
    ) -> Result<Map<String, Value>, Rejection> {
        let mut data = Map::new();
        for field in &self.definition.data {
            data.insert(field.id.clone(), types::initial_value(field));
        }
        for (key, value) in initial {
            let Some(&index) = self.variables.get(key) else {
                let declared: Vec<&str> =
                    self.definition.data.iter().map(|f| f.id.as_str()).collect();
                return Err(Rejection::InvalidData {
                    field: key.clone(),
                    reason: format!(
                        "is not declared; the variables are: {}",
                        declared.join(", ")
                    ),
                });
            };
            let field = &self.definition.data[index];
            types::check(&field.spec, value).map_err(|m| Rejection::InvalidData {
                field: format!("{key}{}", m.pointer),
                reason: m.reason,
            })?;
            data.insert(key.clone(), value.clone());
        }
        Ok(data)
    }

    /// The deadline of `stage` for an instance that entered it at
    /// `entered_at` with `data`, if the stage has one and it can be computed.
    pub fn deadline(
        &self,
        stage: &str,
        entered_at: Timestamp,
        data: &Map<String, Value>,
    ) -> Option<Due> {
        self.checked_deadline(stage, entered_at, data)
            .ok()
            .flatten()
    }

    /// As [`Workflow::deadline`], but a deadline that cannot be computed is
    /// an error, not silence (issue #17): a duration that carries it out
    /// of the range of times, or an `at_data` variable that holds no time.
    pub fn checked_deadline(
        &self,
        stage: &str,
        entered_at: Timestamp,
        data: &Map<String, Value>,
    ) -> Result<Option<Due>, DeadlineError> {
        let Some(deadline) = self
            .definition
            .stages
            .iter()
            .find(|s| s.id == stage)
            .and_then(|s| s.deadline.as_ref())
        else {
            return Ok(None);
        };
        let error = |reason: &'static str| DeadlineError {
            stage: stage.to_owned(),
            reason,
        };
        let at = if let Some(at) = &deadline.at {
            at.parse::<Timestamp>()
                .map_err(|_| error("its `at` is not a time"))?
        } else if let Some(after) = &deadline.after {
            let span: jiff::Span = after
                .parse()
                .map_err(|_| error("its `after` is not a duration"))?;
            entered_at
                .to_zoned_datetime(jiff::tz::TimeZone::UTC)
                .checked_add(span)
                .map_err(|_| error("its `after` carries it outside the range of times"))?
                .timestamp()
        } else if let Some(var) = &deadline.at_data {
            match data.get(var) {
                None | Some(Value::Null) => return Ok(None),
                Some(value) => value
                    .as_str()
                    .and_then(|text| text.parse::<Timestamp>().ok())
                    .ok_or_else(|| error("its `at_data` variable holds no time"))?,
            }
        } else {
            return Ok(None);
        };
        Ok(Some(Due {
            at,
            event: deadline.event.clone(),
        }))
    }

    /// Decides what `command` does to `instance`. `children` summarises the
    /// instance's children per workflow (`{"wf": {"total": n, "stages":
    /// {...}}}`) for guards that read them; pass `Value::Null` when the
    /// instance has none.
    pub fn fire(
        &self,
        instance: &Instance,
        command: &Command<'_>,
        children: &Value,
    ) -> Result<Accepted, Rejection> {
        let event = command.event;
        let Some(candidates) = self.by_event.get(event) else {
            return Err(Rejection::UnknownEvent {
                event: event.to_owned(),
            });
        };
        if instance.finished || self.is_terminal(&instance.stage) {
            return Err(Rejection::Finished {
                stage: instance.stage.clone(),
            });
        }
        match instance.status {
            Status::Running => {}
            Status::Suspended => {
                return Err(Rejection::Suspended {
                    event: event.to_owned(),
                });
            }
            status @ (Status::Cancelled | Status::Terminated) => {
                return Err(Rejection::Ended { status });
            }
        }
        // Filtered without collecting: the accepted path allocates nothing
        // here; only the rejections list what was possible.
        let stage = instance.stage.as_str();
        let all = || {
            candidates
                .transitions
                .iter()
                .map(|&index| &self.transitions[index])
        };
        let in_stage = |t: &CompiledTransition| t.from_any || t.from.iter().any(|s| s == stage);
        let permitted = |t: &CompiledTransition| {
            in_stage(t) && t.roles.iter().any(|r| command.actor.roles.contains(r))
        };
        if !all().any(in_stage) {
            let mut allowed_from: Vec<String> =
                all().flat_map(|t| t.from.iter().cloned()).collect();
            allowed_from.sort();
            allowed_from.dedup();
            return Err(Rejection::NotAllowedInStage {
                event: event.to_owned(),
                stage: instance.stage.clone(),
                allowed_from,
            });
        }
        if !all().any(permitted) {
            let mut allowed: Vec<String> = all()
                .filter(|t| in_stage(t))
                .flat_map(|t| t.roles.iter().cloned())
                .collect();
            allowed.sort();
            allowed.dedup();
            return Err(Rejection::RoleNotAllowed {
                event: event.to_owned(),
                roles: command.actor.roles.clone(),
                allowed,
            });
        }
        let empty = Map::new();
        let payload = match command.payload {
            Value::Null => &empty,
            Value::Object(map) => map,
            other => {
                return Err(Rejection::InvalidPayload {
                    event: event.to_owned(),
                    field: String::new(),
                    reason: format!("must be an object, got {}", types::describe(other)),
                });
            }
        };
        guard::with_arena(|arena| {
            // The context is built once, in the arena, borrowing from the
            // instance and the command, and only the parts the event's
            // expressions read.
            let context: &DataValue<'_> = if candidates.evaluates {
                arena.alloc(context(
                    instance,
                    command,
                    payload,
                    children,
                    &candidates.needs,
                    arena,
                ))
            } else {
                arena.alloc(DataValue::Null)
            };
            let mut failed = Vec::new();
            let mut payload_error = None;
            for transition in all().filter(|t| permitted(t)) {
                if let Err(mismatch) = types::check_fields(&transition.payload, payload) {
                    payload_error.get_or_insert(mismatch);
                    continue;
                }
                if let Some(guard) = &transition.guard {
                    match guard.test_in(context, arena) {
                        Ok(Ok(())) => {}
                        Ok(Err(part)) => {
                            failed.push((transition.name.clone(), part));
                            continue;
                        }
                        Err(error) => return Err(evaluation_failed(transition, error)),
                    }
                }
                return self.accept(instance, transition, context, arena);
            }
            if failed.is_empty()
                && let Some(TypeMismatch { pointer, reason }) = payload_error
            {
                return Err(Rejection::InvalidPayload {
                    event: event.to_owned(),
                    field: pointer,
                    reason,
                });
            }
            Err(Rejection::GuardFailed {
                event: event.to_owned(),
                failed,
            })
        })
    }

    fn accept<'a>(
        &self,
        instance: &Instance,
        transition: &'a CompiledTransition,
        context: &'a DataValue<'a>,
        arena: &'a Bump,
    ) -> Result<Accepted, Rejection> {
        let mut data = instance.data.clone();
        let mut applied = Vec::with_capacity(transition.effects.len());
        for (effect, exprs) in &transition.effects {
            let mut values = Vec::with_capacity(exprs.len());
            for expr in exprs {
                values.push(
                    expr.eval_in(context, arena)
                        .map_err(|e| evaluation_failed(transition, e))?,
                );
            }
            let effect = self
                .apply_effect(&mut data, effect, values)
                .map_err(|message| Rejection::EvaluationFailed {
                    transition: transition.name.clone(),
                    message,
                })?;
            applied.push(effect);
        }
        let spawn = match &transition.spawn {
            None => None,
            Some((workflow, expr)) => {
                let list = expr
                    .eval_in(context, arena)
                    .map_err(|e| evaluation_failed(transition, e))?;
                Some(SpawnRequest {
                    workflow: workflow.clone(),
                    children: children_of(&list).map_err(|message| {
                        Rejection::EvaluationFailed {
                            transition: transition.name.clone(),
                            message,
                        }
                    })?,
                })
            }
        };
        Ok(Accepted {
            transition: transition.name.clone(),
            from: instance.stage.clone(),
            to: transition
                .to
                .clone()
                .unwrap_or_else(|| instance.stage.clone()),
            data,
            effects: applied,
            spawn,
            notify_parent: transition.notify_parent.clone(),
        })
    }

    /// Applies one effect whose expressions evaluated to `values`, checking
    /// the result against the variable's type.
    fn apply_effect(
        &self,
        data: &mut Map<String, Value>,
        effect: &Effect,
        mut values: Vec<Value>,
    ) -> Result<AppliedEffect, String> {
        let var = effect.var();
        let field = self
            .variables
            .get(var)
            .map(|&index| &self.definition.data[index])
            .ok_or_else(|| format!("variable `{var}` is not declared"))?;
        let mut take = || values.pop().unwrap_or(Value::Null);
        let check = |spec: &crate::definition::TypeSpec, value: &Value| {
            types::check_computed(spec, value)
                .map_err(|m| format!("`{var}`{}: {}", m.pointer, m.reason))
        };
        let slot = data
            .entry(var.to_owned())
            .or_insert_with(|| types::initial_value(field));
        let applied = match effect {
            Effect::Set { .. } => {
                let value = take();
                check(&field.spec, &value)?;
                *slot = value.clone();
                AppliedEffect {
                    op: "set".into(),
                    var: var.into(),
                    key: None,
                    value: Some(value),
                }
            }
            Effect::Reset { .. } => {
                let value = types::initial_value(field);
                *slot = value.clone();
                AppliedEffect {
                    op: "reset".into(),
                    var: var.into(),
                    key: None,
                    value: Some(value),
                }
            }
            Effect::Append { .. } => {
                let value = take();
                if let Some(items) = &field.spec.items {
                    check(&items.spec, &value)?;
                }
                let Value::Array(list) = slot else {
                    return Err(format!("`{var}` is not a list"));
                };
                if let Some(max) = field.spec.max_items
                    && list.len() as u64 >= max
                {
                    return Err(format!("`{var}` already holds its maximum of {max} items"));
                }
                list.push(value.clone());
                AppliedEffect {
                    op: "append".into(),
                    var: var.into(),
                    key: None,
                    value: Some(value),
                }
            }
            Effect::Increment { by, .. } => {
                let amount = if by.is_some() { take() } else { Value::from(1) };
                let current = slot.as_f64().unwrap_or(0.0);
                let Some(delta) = amount.as_f64() else {
                    return Err(format!("increment of `{var}` by a non-number {amount}"));
                };
                let next = if field.spec.ty == ValueType::Integer {
                    match (slot.as_i64(), amount.as_i64()) {
                        (Some(a), Some(b)) => Value::from(
                            a.checked_add(b)
                                .ok_or_else(|| format!("`{var}` overflows"))?,
                        ),
                        _ => return Err(format!("increment of integer `{var}` by {amount}")),
                    }
                } else {
                    serde_json::Number::from_f64(current + delta)
                        .map(Value::Number)
                        .ok_or_else(|| format!("`{var}` is not a finite number"))?
                };
                check(&field.spec, &next)?;
                *slot = next;
                AppliedEffect {
                    op: "increment".into(),
                    var: var.into(),
                    key: None,
                    value: Some(amount),
                }
            }
            Effect::Put { .. } => {
                let value = take();
                let key = key_string(take())?;
                if let Some(values) = &field.spec.values {
                    check(&values.spec, &value)?;
                }
                let Value::Object(map) = slot else {
                    return Err(format!("`{var}` is not a map"));
                };
                map.insert(key.clone(), value.clone());
                AppliedEffect {
                    op: "put".into(),
                    var: var.into(),
                    key: Some(key),
                    value: Some(value),
                }
            }
            Effect::Remove { .. } => {
                let key = key_string(take())?;
                let Value::Object(map) = slot else {
                    return Err(format!("`{var}` is not a map"));
                };
                map.remove(&key);
                AppliedEffect {
                    op: "remove".into(),
                    var: var.into(),
                    key: Some(key),
                    value: None,
                }
            }
        };
        Ok(applied)
    }
}

/// The children summary [`Workflow::fire`] takes, `{"wf": {"total": n,
/// "stages": {"stage": n}}}`, from `(child workflow, stage, count)` counts:
/// the one shape the engine's writer and the auditor's replay both build,
/// so a guard reads the same children in either (an empty object when
/// there are none).
pub fn children_summary<'a>(counts: impl IntoIterator<Item = (&'a str, &'a str, u64)>) -> Value {
    let mut summary = Map::new();
    for (workflow, stage, count) in counts {
        let entry = summary
            .entry(workflow.to_owned())
            .or_insert_with(|| serde_json::json!({"total": 0, "stages": {}}));
        if let Some(total) = entry.get_mut("total") {
            *total = Value::from(total.as_u64().unwrap_or(0) + count);
        }
        if let Some(Value::Object(stages)) = entry.get_mut("stages") {
            stages.insert(stage.to_owned(), Value::from(count));
        }
    }
    Value::Object(summary)
}

/// The object guards and effects are evaluated against, built in `arena`
/// with the parts `needs` names:
///
/// `{"data", "payload", "actor", "stage", "now", "instance": {"id",
/// "parent"}, "children"}`.
fn context<'a>(
    instance: &'a Instance,
    command: &Command<'a>,
    payload: &'a Map<String, Value>,
    children: &'a Value,
    needs: &Needs,
    arena: &'a Bump,
) -> DataValue<'a> {
    let mut pairs = [("", DataValue::Null); 7];
    let mut len = 0;
    let mut push = |key: &'a str, value: DataValue<'a>| {
        pairs[len] = (key, value);
        len += 1;
    };
    if needs.reads(guard::ROOT_DATA) {
        let data = match &needs.data {
            None => guard::borrowed_map(&instance.data, arena),
            Some(vars) => {
                let present = vars
                    .iter()
                    .filter(|v| instance.data.contains_key(v.as_str()))
                    .count();
                let mut read = vars.iter().filter_map(|v| {
                    instance
                        .data
                        .get_key_value(v.as_str())
                        .map(|(k, value)| (k.as_str(), guard::borrowed(value, arena)))
                });
                &*arena.alloc_slice_fill_with(present, |_| {
                    read.next().unwrap_or(("", DataValue::Null))
                })
            }
        };
        push("data", DataValue::Object(data));
    }
    if needs.reads(guard::ROOT_PAYLOAD) {
        push(
            "payload",
            DataValue::Object(guard::borrowed_map(payload, arena)),
        );
    }
    if needs.reads(guard::ROOT_ACTOR) {
        let actor = command.actor;
        let roles = arena.alloc_slice_fill_iter(
            actor
                .roles
                .iter()
                .map(|role| DataValue::String(role.as_str())),
        );
        let fields = arena.alloc([
            ("id", DataValue::String(actor.id.as_str())),
            ("roles", DataValue::Array(roles)),
        ]);
        push("actor", DataValue::Object(fields));
    }
    if needs.reads(guard::ROOT_STAGE) {
        push("stage", DataValue::String(instance.stage.as_str()));
    }
    if needs.reads(guard::ROOT_NOW) {
        push(
            "now",
            DataValue::String(arena.alloc_str(&command.now.to_string())),
        );
    }
    if needs.reads(guard::ROOT_INSTANCE) {
        let parent = instance
            .parent
            .as_deref()
            .map_or(DataValue::Null, DataValue::String);
        let fields = arena.alloc([
            ("id", DataValue::String(instance.id.as_str())),
            ("parent", parent),
        ]);
        push("instance", DataValue::Object(fields));
    }
    if needs.reads(guard::ROOT_CHILDREN) {
        push("children", guard::borrowed(children, arena));
    }
    DataValue::Object(arena.alloc_slice_copy(&pairs[..len]))
}

fn evaluation_failed(transition: &CompiledTransition, error: ExprError) -> Rejection {
    Rejection::EvaluationFailed {
        transition: transition.name.clone(),
        message: error.message,
    }
}

/// A map key from an evaluated expression: a string, or a number written out.
fn key_string(value: Value) -> Result<String, String> {
    match value {
        Value::String(key) if !key.is_empty() => Ok(key),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(format!("a map key must be a non-empty string, got {other}")),
    }
}

/// The children a spawn expression yields: ids, or `{"id", "data"}` objects;
/// null yields none.
fn children_of(list: &Value) -> Result<Vec<ChildSpec>, String> {
    // An optional list left out of the payload spawns nothing.
    if list.is_null() {
        return Ok(Vec::new());
    }
    let Value::Array(items) = list else {
        return Err(format!("spawn must yield a list of child ids, got {list}"));
    };
    let children = items
        .iter()
        .map(|item| match item {
            Value::String(id) => Ok(ChildSpec {
                id: id.clone(),
                data: Map::new(),
            }),
            Value::Object(object) => {
                let id = object
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("spawned child {item} has no string `id`"))?;
                let data = match object.get("data") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(data)) => data.clone(),
                    Some(other) => {
                        return Err(format!(
                            "spawned child `{id}` has data {other}, not an object"
                        ));
                    }
                };
                Ok(ChildSpec {
                    id: id.to_owned(),
                    data,
                })
            }
            other => Err(format!(
                "a spawned child must be an id or an object, got {other}"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A repeated id is the caller's slip, not a clash with an existing
    // instance, so it is named as such (issue #17).
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = children
        .iter()
        .find(|child| !seen.insert(child.id.as_str()))
    {
        return Err(format!(
            "the child id `{}` is given twice; give each child once",
            crate::id::escape(&twice.id)
        ));
    }
    Ok(children)
}

impl Workflow {
    /// A new instance in the initial stage, before its start event is
    /// recorded (`seq` 0, `head` [`crate::GENESIS`]). `version` is the
    /// deployed version this workflow was loaded as.
    pub fn new_instance(
        &self,
        id: &str,
        version: u32,
        initial: &Map<String, Value>,
        parent: Option<&str>,
        now: Timestamp,
    ) -> Result<Instance, Rejection> {
        Ok(Instance {
            id: id.to_owned(),
            workflow: self.definition.id.clone(),
            version,
            definition_hash: self.hash.clone(),
            stage: self.initial.clone(),
            data: self.initial_data(initial)?,
            seq: 0,
            head: crate::audit::GENESIS.to_owned(),
            parent: parent.map(str::to_owned),
            created_at: now,
            updated_at: now,
            stage_entered_at: now,
            finished: self.is_terminal(&self.initial),
            status: Status::Running,
        })
    }

    /// The instance after `accepted` at `now`, before its event's hash is
    /// known: the caller sets `head` once the event is encoded.
    pub fn advance(&self, instance: &Instance, accepted: &Accepted, now: Timestamp) -> Instance {
        self.advanced(instance, accepted, accepted.data.clone(), now)
    }

    /// [`Workflow::advance`], moving the new data out of `accepted` (which
    /// is left with empty data) instead of cloning it: for callers that are
    /// done with `accepted.data`, like the engine's writer and the
    /// replayer. The instance is the same as `advance` gives; the data is
    /// the largest part of it, and this saves one copy of it per event.
    pub fn advance_taking(
        &self,
        instance: &Instance,
        accepted: &mut Accepted,
        now: Timestamp,
    ) -> Instance {
        let data = std::mem::take(&mut accepted.data);
        self.advanced(instance, accepted, data, now)
    }

    /// The instance after `accepted`, with `data` (the accepted data).
    fn advanced(
        &self,
        instance: &Instance,
        accepted: &Accepted,
        data: Map<String, Value>,
        now: Timestamp,
    ) -> Instance {
        let moves = accepted.moves();
        // Field by field: `..instance.clone()` would clone the old data
        // only to drop it.
        Instance {
            id: instance.id.clone(),
            workflow: instance.workflow.clone(),
            version: instance.version,
            definition_hash: instance.definition_hash.clone(),
            stage: accepted.to.clone(),
            data,
            seq: instance.seq + 1,
            head: instance.head.clone(),
            parent: instance.parent.clone(),
            created_at: instance.created_at,
            updated_at: now,
            stage_entered_at: if moves {
                now
            } else {
                instance.stage_entered_at
            },
            finished: self.is_terminal(&accepted.to),
            status: instance.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_children_summary_totals_each_workflow_over_its_stages() {
        let summary = children_summary([
            ("member-pledge", "closed", 3),
            ("member-pledge", "pledge", 2),
            ("review", "draft", 1),
        ]);
        assert_eq!(
            summary,
            json!({
                "member-pledge": {"total": 5, "stages": {"closed": 3, "pledge": 2}},
                "review": {"total": 1, "stages": {"draft": 1}}
            })
        );
        assert_eq!(children_summary([]), json!({}));
    }

    fn workflow() -> Workflow {
        let value = json!({
            "id": "review",
            "title": "review",
            "roles": [{"id": "author"}, {"id": "evaluator"}, {"id": "chair"}, {"id": "system"}],
            "data": [
                {"id": "plan", "type": "string"},
                {"id": "round", "type": "integer"},
                {"id": "scores", "type": "map", "values": {"type": "object", "fields": [
                    {"id": "score", "type": "integer", "min": 0, "max": 100}
                ]}},
                {"id": "log", "type": "list", "items": {"type": "string"}}
            ],
            "stages": [
                {"id": "draft", "kind": "initial", "deadline": {"after": "P14D", "event": "overdue"}},
                {"id": "evaluation"},
                {"id": "passed", "kind": "terminal"},
                {"id": "failed", "kind": "terminal"}
            ],
            "transitions": [
                {"event": "submit", "from": "draft", "to": "evaluation", "roles": ["author"],
                 "payload": [{"id": "plan", "type": "string", "required": true, "min_length": 1}],
                 "effects": [{"op": "set", "var": "plan", "value": {"var": "payload.plan"}},
                             {"op": "increment", "var": "round"}]},
                {"event": "overdue", "from": "draft", "roles": ["system"],
                 "effects": [{"op": "append", "var": "log", "value": "overdue"}]},
                {"event": "score", "from": "evaluation", "roles": ["evaluator"],
                 "payload": [{"id": "score", "type": "integer", "min": 0, "max": 100, "required": true}],
                 "effects": [{"op": "put", "var": "scores", "key": {"var": "actor.id"},
                              "value": {"var": "payload"}}]},
                {"id": "pass", "event": "decide", "from": "evaluation", "to": "passed", "roles": ["chair"],
                 "guard": {"and": [{">=": [{"count": [{"var": "data.scores"}]}, 2]},
                                   {">=": [{"mean": [{"var": "data.scores"}, "score"]}, 80]}]}},
                {"id": "fail", "event": "decide", "from": "evaluation", "to": "failed", "roles": ["chair"],
                 "guard": {">=": [{"count": [{"var": "data.scores"}]}, 2]}}
            ]
        });
        let definition: Definition = serde_json::from_value(value.clone()).expect("definition");
        Workflow::compile(definition, crate::audit::definition_hash(&value)).expect("compiles")
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn fire(
        w: &Workflow,
        i: &Instance,
        event: &str,
        actor: &Actor,
        payload: Value,
    ) -> Result<Instance, Rejection> {
        let command = Command {
            event,
            actor,
            payload: &payload,
            now: at("2026-05-02T00:00:00Z"),
        };
        let mut accepted = w.fire(i, &command, &Value::Null)?;
        let next = w.advance(i, &accepted, command.now);
        // The engine's and the replayer's path gives the very same instance.
        let taken = w.advance_taking(i, &mut accepted, command.now);
        assert_eq!(taken, next, "advance_taking is advance");
        assert!(accepted.data.is_empty(), "the data was moved out");
        Ok(next)
    }

    #[test]
    fn a_full_run_with_one_vote_per_evaluator() {
        let w = workflow();
        let i = w
            .new_instance("r1", 1, &Map::new(), None, at("2026-05-01T00:00:00Z"))
            .expect("starts");
        assert_eq!(i.stage, "draft");
        let author = Actor::new("li", &["author"]);
        let i = fire(&w, &i, "submit", &author, json!({"plan": "study"})).expect("submit");
        assert_eq!((i.stage.as_str(), i.seq), ("evaluation", 1));
        assert_eq!(i.data["plan"], json!("study"));
        assert_eq!(i.data["round"], json!(1));
        let ann = Actor::new("ann", &["evaluator"]);
        let bob = Actor::new("bob", &["evaluator"]);
        let i = fire(&w, &i, "score", &ann, json!({"score": 60})).expect("ann");
        // Ann changes her mind: her entry is replaced, not added.
        let i = fire(&w, &i, "score", &ann, json!({"score": 90})).expect("ann again");
        let chair = Actor::new("chen", &["chair"]);
        let early =
            fire(&w, &i, "decide", &chair, Value::Null).expect_err("one vote is not enough");
        let Rejection::GuardFailed { failed, .. } = early else {
            panic!("{early:?}")
        };
        assert_eq!(failed.len(), 2);
        let i = fire(&w, &i, "score", &bob, json!({"score": 80})).expect("bob");
        assert_eq!(i.data["scores"].as_object().map(Map::len), Some(2));
        let done = fire(&w, &i, "decide", &chair, Value::Null).expect("decide");
        assert_eq!(done.stage, "passed");
        assert!(done.finished);
        let after = fire(&w, &done, "score", &bob, json!({"score": 1})).expect_err("finished");
        assert!(matches!(after, Rejection::Finished { .. }));
    }

    #[test]
    fn first_matching_guard_wins_in_document_order() {
        let w = workflow();
        let i = w
            .new_instance("r1", 1, &Map::new(), None, at("2026-05-01T00:00:00Z"))
            .expect("starts");
        let i = fire(
            &w,
            &i,
            "submit",
            &Actor::new("li", &["author"]),
            json!({"plan": "p"}),
        )
        .expect("submit");
        let i = fire(
            &w,
            &i,
            "score",
            &Actor::new("a", &["evaluator"]),
            json!({"score": 50}),
        )
        .expect("a");
        let i = fire(
            &w,
            &i,
            "score",
            &Actor::new("b", &["evaluator"]),
            json!({"score": 70}),
        )
        .expect("b");
        let done =
            fire(&w, &i, "decide", &Actor::new("c", &["chair"]), Value::Null).expect("decide");
        assert_eq!(done.stage, "failed");
    }

    #[test]
    fn typed_rejections() {
        let w = workflow();
        let i = w
            .new_instance("r1", 1, &Map::new(), None, at("2026-05-01T00:00:00Z"))
            .expect("starts");
        let author = Actor::new("li", &["author"]);
        let evaluator = Actor::new("x", &["evaluator"]);
        let cases: Vec<(&str, &Actor, Value)> = vec![
            ("nope", &author, Value::Null),
            ("score", &author, json!({"score": 1})),
            ("submit", &evaluator, json!({"plan": "p"})),
            ("submit", &author, json!({"plan": ""})),
            ("submit", &author, json!({"plan": "p", "extra": 1})),
            ("submit", &author, json!([1])),
        ];
        let found: Vec<&'static str> = cases
            .into_iter()
            .map(
                |(event, actor, payload)| match fire(&w, &i, event, actor, payload) {
                    Err(Rejection::UnknownEvent { .. }) => "unknown",
                    Err(Rejection::NotAllowedInStage { .. }) => "stage",
                    Err(Rejection::RoleNotAllowed { .. }) => "role",
                    Err(Rejection::InvalidPayload { .. }) => "payload",
                    other => panic!("unexpected {other:?}"),
                },
            )
            .collect();
        assert_eq!(
            found,
            ["unknown", "stage", "role", "payload", "payload", "payload"]
        );
    }

    #[test]
    fn effects_are_type_checked() {
        let w = workflow();
        let i = w
            .new_instance("r1", 1, &Map::new(), None, at("2026-05-01T00:00:00Z"))
            .expect("starts");
        let i = fire(
            &w,
            &i,
            "submit",
            &Actor::new("li", &["author"]),
            json!({"plan": "p"}),
        )
        .expect("submit");
        // The payload schema bounds the score, so the put's value check is
        // reached only through initial data; check initial data instead.
        let bad = w.new_instance(
            "r2",
            1,
            &json!({"round": "one"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            None,
            i.created_at,
        );
        assert!(matches!(bad, Err(Rejection::InvalidData { .. })));
        let unknown = w.new_instance(
            "r3",
            1,
            &json!({"nope": 1}).as_object().cloned().unwrap_or_default(),
            None,
            i.created_at,
        );
        assert!(matches!(unknown, Err(Rejection::InvalidData { .. })));
    }

    #[test]
    fn deadline_spans_are_bounded() {
        for (text, fits) in [
            ("P14D", true),
            ("P1000Y", true),
            ("P1001Y", false),
            ("P9000Y", false),
        ] {
            let span: jiff::Span = text.parse().expect("a span");
            assert_eq!(span_in_range(span), fits, "{text}");
        }
    }

    #[test]
    fn deadlines_after_entering_a_stage() {
        let w = workflow();
        let i = w
            .new_instance("r1", 1, &Map::new(), None, at("2026-05-01T00:00:00Z"))
            .expect("starts");
        let due = w
            .deadline(&i.stage, i.stage_entered_at, &i.data)
            .expect("a deadline");
        assert_eq!(
            due,
            Due {
                at: at("2026-05-15T00:00:00Z"),
                event: "overdue".into()
            }
        );
        let i = fire(&w, &i, "overdue", &Actor::system(), Value::Null).expect("system fires");
        assert_eq!(i.stage, "draft");
        assert_eq!(i.stage_entered_at, at("2026-05-01T00:00:00Z"));
        assert_eq!(i.data["log"], json!(["overdue"]));
        assert!(
            w.deadline("evaluation", i.stage_entered_at, &i.data)
                .is_none()
        );
    }
}
