//! Deciding commands: deploy, start, fire and deadlines, through the core's
//! transition function, against a [`Txn`]. The same code decides a new
//! command and re-decides a recorded one on recovery, upgrade and import
//! (`recover.rs`), so the state those rebuild is the state the engine
//! would have kept.

use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use strive_core::{
    Actor, Cause, Command, CommandSignature, Due, Event, EventKind, GENESIS, Instance,
    MigrationPlan, Operation, WORKFLOW_SUBJECT_PREFIX, Workflow,
};

use crate::error::{CommandError, DeployError, StorageError};
use crate::keys;
use crate::records::{
    CommandOptions, CommandRecord, DefinitionInfo, InstanceRecord, Outcome, STORE_FORMAT,
    StoredDefinition,
};

use super::txn::{Txn, to_json};

/// How deep a chain of parent notifications may go.
const MAX_NOTIFY_DEPTH: usize = 16;

/// The longest instance or command id accepted, in bytes.
pub(crate) const MAX_ID_BYTES: usize = 128;

/// A definition checked and compiled by the caller, ready to store.
pub(crate) struct Prepared {
    pub(crate) workflow: Arc<Workflow>,
    pub(crate) value: Value,
}

/// A command, as decided by the writer (without where to answer).
pub(crate) enum Cmd {
    Deploy {
        items: Vec<Prepared>,
        actor: Actor,
    },
    Start {
        workflow: String,
        instance: String,
        actor: Actor,
        data: Map<String, Value>,
        parent: Option<String>,
        options: CommandOptions,
    },
    Fire {
        instance: String,
        event: String,
        actor: Actor,
        payload: Value,
        options: CommandOptions,
    },
    Deadline {
        key: Vec<u8>,
        instance: String,
    },
    /// A grant or revocation (`access.rs`).
    Access {
        change: strive_core::Change,
        grant: strive_core::Grant,
        actor: Actor,
    },
    /// A key's registration or retirement (`access.rs`).
    Key {
        change: strive_core::KeyChange,
        key: strive_core::ActorKey,
        actor: Actor,
    },
    /// Suspends, resumes, cancels or terminates an instance; its children
    /// follow as their definitions declare (`lifecycle.rs`).
    Lifecycle {
        instance: String,
        op: Operation,
        actor: Actor,
        reason: String,
        options: CommandOptions,
    },
    /// Moves instances to another version, all or none.
    Migrate {
        plan: Arc<MigrationPlan>,
        instances: Vec<String>,
        actor: Actor,
    },
}

/// What deciding a command produced.
pub(crate) enum Decided {
    Deploy(Result<Vec<DefinitionInfo>, DeployError>),
    Command(Result<Outcome, CommandError>),
    Deadline(Result<Option<Outcome>, CommandError>),
    Migrate(Result<Vec<Outcome>, CommandError>),
}

impl Decided {
    pub(crate) fn is_ok(&self) -> bool {
        match self {
            Decided::Deploy(result) => result.is_ok(),
            Decided::Command(result) => result.is_ok(),
            Decided::Deadline(result) => result.is_ok(),
            Decided::Migrate(result) => result.is_ok(),
        }
    }
}

/// Decides `cmd` at `clock`. A refused command leaves `txn` as it found it,
/// except a deadline, which is consumed even when its event is refused.
/// With `enforce_grants`, a command whose actor lacks a grant for a role it
/// claims is refused first.
pub(crate) fn decide(txn: &mut Txn<'_>, cmd: Cmd, clock: Timestamp, policy: Policy) -> Decided {
    if policy.enforce_grants
        && let Some(refused) = super::access::refuse(txn, &cmd)
    {
        return refused;
    }
    let decided = match cmd {
        Cmd::Access {
            change,
            grant,
            actor,
        } => Decided::Command(super::access::change(txn, change, &grant, &actor, clock)),
        Cmd::Key { change, key, actor } => {
            Decided::Command(super::access::change_key(txn, change, &key, &actor, clock))
        }
        Cmd::Deploy { items, actor } => Decided::Deploy(deploy(txn, items, &actor, clock)),
        Cmd::Start {
            workflow,
            instance,
            actor,
            data,
            parent,
            options,
        } => {
            let request = json!({"op": "start", "workflow": workflow, "instance": instance,
                "actor": actor, "data": data, "parent": parent});
            let command_id = options.command_id.as_deref();
            Decided::Command(idempotent(txn, command_id, &request, |txn| {
                start(
                    txn,
                    &Start {
                        workflow: &workflow,
                        id: &instance,
                        actor: &actor,
                        data: &data,
                        parent: parent.as_deref(),
                        command_id,
                        cause: None,
                        now: clock,
                        signing: Signing::of(&options, policy),
                    },
                )
            }))
        }
        Cmd::Fire {
            instance,
            event,
            actor,
            payload,
            options,
        } => {
            let request = json!({"op": "fire", "instance": instance, "event": event,
                "actor": actor, "payload": payload});
            let command_id = options.command_id.as_deref();
            Decided::Command(idempotent(txn, command_id, &request, |txn| {
                fire(
                    txn,
                    &Fire {
                        id: &instance,
                        event: &event,
                        actor: &actor,
                        payload: &payload,
                        expected_seq: options.expected_seq,
                        command_id,
                        cause: None,
                        clock,
                        depth: 0,
                        signing: Signing::of(&options, policy),
                    },
                )
            }))
        }
        Cmd::Lifecycle {
            instance,
            op,
            actor,
            reason,
            options,
        } => {
            let request = json!({"op": op.as_str(), "instance": instance, "actor": actor,
                "reason": reason});
            let command_id = options.command_id.as_deref();
            Decided::Command(idempotent(txn, command_id, &request, |txn| {
                super::lifecycle::decide(
                    txn,
                    &super::lifecycle::Asked {
                        id: &instance,
                        op,
                        actor: &actor,
                        reason: &reason,
                        expected_seq: options.expected_seq,
                        command_id,
                        clock,
                    },
                )
            }))
        }
        Cmd::Migrate {
            plan,
            instances,
            actor,
        } => Decided::Migrate(migrate(txn, &plan, &instances, &actor, clock)),
        Cmd::Deadline { key, instance } => {
            // A refused deadline event is consumed all the same, so the
            // deadline fires at most once; its removal is written.
            return Decided::Deadline(deadline(txn, &key, &instance, clock));
        }
    };
    if !decided.is_ok() {
        txn.rollback();
    }
    decided
}

/// The writer's policies a command is decided under.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Policy {
    /// `Options::enforce_grants`.
    pub(crate) enforce_grants: bool,
    /// `Options::require_signatures`.
    pub(crate) require_signatures: bool,
    /// Whether a signature given is checked: not while recorded commands
    /// are decided again, whose signatures `verify` checks.
    pub(crate) check_signatures: bool,
}

/// An actor's command's signature, and whether one is required: what
/// the first event of a start or fire is checked with before it is
/// appended. Events the engine causes (spawned children, notified parents,
/// deadlines) carry none and need none.
#[derive(Debug, Clone, Default)]
struct Signing {
    signature: Option<CommandSignature>,
    require: bool,
    check: bool,
}

impl Signing {
    /// The signing of a command with `options`, its signature bound to
    /// the expected sequence the command gives.
    fn of(options: &CommandOptions, policy: Policy) -> Signing {
        Signing {
            signature: options.signature.clone().map(|signature| CommandSignature {
                expected_seq: options.expected_seq,
                ..signature
            }),
            require: policy.require_signatures,
            check: policy.check_signatures,
        }
    }

    /// Puts the signature on `event` and checks it (or its absence).
    fn sign(&self, txn: &Txn<'_>, event: &mut Event) -> Result<(), CommandError> {
        event.signature = self.signature.clone();
        if !self.check || (event.signature.is_none() && !self.require) {
            return Ok(());
        }
        super::access::check_signed(txn, event, self.require)
    }
}

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

pub(super) fn corrupt(key: &[u8], message: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        key: keys::show(key),
        message: message.into(),
    }
}

/// The digest of a command's request, which a retry with the same command
/// id must match. It leaves out the expected sequence: the log does not
/// record it, and recovery must rebuild the same digest from the log.
fn digest(request: &Value) -> String {
    hex::encode(Sha256::digest(to_json(request)))
}

/// Runs `command` unless `command_id` was used before: then returns the
/// recorded outcome (same request) or refuses (different request).
fn idempotent(
    txn: &mut Txn<'_>,
    command_id: Option<&str>,
    request: &Value,
    command: impl FnOnce(&mut Txn<'_>) -> Result<Outcome, CommandError>,
) -> Result<Outcome, CommandError> {
    let Some(id) = command_id else {
        return command(txn);
    };
    let digest = digest(request);
    let key = keys::key(keys::COMMAND, &[id]);
    if txn.claim(&key, digest.as_bytes()).is_err() {
        // Another partition is recording this command id for another
        // command right now (the same command is routed to one partition).
        return Err(CommandError::CommandIdReused {
            command_id: id.to_owned(),
        });
    }
    if let Some(bytes) = txn.get(&key)? {
        let record: CommandRecord =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, e.to_string()))?;
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
        digest,
        outcome: outcome.clone(),
    };
    txn.put(key, to_json(&record));
    Ok(outcome)
}

fn deploy(
    txn: &mut Txn<'_>,
    items: Vec<Prepared>,
    actor: &Actor,
    clock: Timestamp,
) -> Result<Vec<DefinitionInfo>, DeployError> {
    let mut infos = Vec::with_capacity(items.len());
    for item in items {
        let id = item.workflow.id().to_owned();
        let hash = item.workflow.hash().to_owned();
        let hash_key = keys::key(keys::DEFINITION_HASH, &[&hash]);
        if let Some(bytes) = txn.get(&hash_key)? {
            let known: Value =
                serde_json::from_slice(&bytes).map_err(|e| corrupt(&hash_key, e.to_string()))?;
            let version = known["version"].as_u64().unwrap_or(0) as u32;
            let stored = stored_definition(txn, &id, version)?;
            infos.push(DefinitionInfo {
                unchanged: true,
                ..info(&stored)
            });
            continue;
        }
        let version = txn.scan(&keys::key(keys::DEFINITION, &[&id]))?.len() as u32 + 1;
        let (prev, at) = if version > 1 {
            let last = stored_definition(txn, &id, version - 1)?;
            (last.event_hash, clock.max(last.deployed_at))
        } else {
            (GENESIS.to_owned(), clock)
        };
        let event = Event {
            v: strive_core::EVENT_FORMAT,
            gseq: 0,
            partition: 0,
            instance: format!("{WORKFLOW_SUBJECT_PREFIX}{id}"),
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
            signature: None,
        };
        let (gseq, event_hash) = txn.append(event);
        let stored = StoredDefinition {
            v: STORE_FORMAT,
            workflow: id.clone(),
            version,
            hash: hash.clone(),
            deployed_at: at,
            gseq,
            event_hash,
            definition: item.value,
        };
        txn.put(keys::definition(&id, version), to_json(&stored));
        txn.put(
            hash_key,
            to_json(&json!({"workflow": id, "version": version})),
        );
        txn.installed.push((item.workflow, version));
        infos.push(info(&stored));
    }
    Ok(infos)
}

fn stored_definition(
    txn: &Txn<'_>,
    workflow: &str,
    version: u32,
) -> Result<StoredDefinition, StorageError> {
    let key = keys::definition(workflow, version);
    txn.get(&key)?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| corrupt(&key, "missing definition"))
}

pub(crate) fn info(stored: &StoredDefinition) -> DefinitionInfo {
    DefinitionInfo {
        workflow: stored.workflow.clone(),
        version: stored.version,
        hash: stored.hash.clone(),
        deployed_at: stored.deployed_at,
        gseq: stored.gseq,
        unchanged: false,
    }
}

/// Indexes a new instance: by workflow and stage, under its parent, and
/// its deadline.
fn index_new(
    txn: &mut Txn<'_>,
    instance: &Instance,
    due: Option<&Due>,
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

/// A start to decide.
struct Start<'c> {
    workflow: &'c str,
    id: &'c str,
    actor: &'c Actor,
    data: &'c Map<String, Value>,
    parent: Option<&'c str>,
    command_id: Option<&'c str>,
    cause: Option<Cause>,
    now: Timestamp,
    signing: Signing,
}

fn start(txn: &mut Txn<'_>, cmd: &Start<'_>) -> Result<Outcome, CommandError> {
    let id = cmd.id;
    check_id(id)?;
    let key = keys::key(keys::INSTANCE, &[id]);
    if txn.claim(&key, id.as_bytes()).is_err() || txn.load_instance(id)?.is_some() {
        return Err(CommandError::InstanceExists {
            instance: id.to_owned(),
        });
    }
    let (version, compiled) =
        txn.latest(cmd.workflow)
            .ok_or_else(|| CommandError::UnknownWorkflow {
                workflow: cmd.workflow.to_owned(),
            })?;
    claim_skeleton(txn, cmd.workflow, id)?;
    let partition = match cmd.parent {
        None if strive_core::root_partition(id, txn.shared.partitions()) != txn.partition => {
            // The engine routes a root by its id; only a log whose start
            // sits in another partition (a forged import) gets here.
            return Err(CommandError::Storage(corrupt(
                &key,
                format!(
                    "root instance {id} belongs to partition {}, not {}",
                    strive_core::root_partition(id, txn.shared.partitions()),
                    txn.partition
                ),
            )));
        }
        None => txn.partition,
        Some(parent) => match txn.load_own(parent)? {
            Some(record) => {
                if let Some(reason) = strive_core::refuses_children(record.instance.status) {
                    return Err(CommandError::ParentRejected {
                        parent: parent.to_owned(),
                        event: "start".to_owned(),
                        reason: Box::new(reason),
                    });
                }
                record.partition
            }
            None => {
                return Err(CommandError::UnknownInstance {
                    instance: parent.to_owned(),
                });
            }
        },
    };
    let mut instance = compiled
        .new_instance(id, version, cmd.data, cmd.parent, cmd.now)
        .map_err(|reason| CommandError::Rejected {
            instance: id.to_owned(),
            event: "start".to_owned(),
            reason: Box::new(reason),
        })?;
    let mut event = Event {
        v: strive_core::EVENT_FORMAT,
        gseq: 0,
        partition: 0,
        instance: id.to_owned(),
        seq: 1,
        prev: GENESIS.to_owned(),
        kind: EventKind::Start,
        workflow: cmd.workflow.to_owned(),
        version,
        definition_hash: compiled.hash().to_owned(),
        from: None,
        event: "start".to_owned(),
        transition: None,
        to: instance.stage.clone(),
        actor: cmd.actor.clone(),
        at: cmd.now,
        command_id: cmd.command_id.map(str::to_owned),
        payload: strive_core::start_payload(cmd.data, cmd.parent),
        effects: Vec::new(),
        cause: cmd.cause.clone(),
        signature: None,
    };
    cmd.signing.sign(txn, &mut event)?;
    let (position, hash) = txn.append(event);
    instance.seq = 1;
    instance.head = hash.clone();
    let due = if instance.finished {
        None
    } else {
        due_of(&compiled, &instance, cmd.now)?
    };
    index_new(txn, &instance, due.as_ref())?;
    let outcome = Outcome {
        instance: id.to_owned(),
        event: "start".to_owned(),
        stage: instance.stage.clone(),
        seq: 1,
        gseq: position,
        partition: txn.partition,
        hash,
        finished: instance.finished,
        replayed: false,
    };
    let mut record = InstanceRecord {
        v: STORE_FORMAT,
        instance,
        due,
        partition,
        chain: Vec::new(),
    };
    txn.chain_push(&mut record, 1, position);
    txn.save_instance(record);
    Ok(outcome)
}

/// Refuses an id whose confusable skeleton an existing instance of the same
/// workflow has, and records the new one's.
fn claim_skeleton(txn: &mut Txn<'_>, workflow: &str, id: &str) -> Result<(), CommandError> {
    let key = keys::key(keys::SKELETON, &[workflow, &strive_core::id::skeleton(id)]);
    if let Err(existing) = txn.claim(&key, id.as_bytes()) {
        return Err(CommandError::Confusable {
            instance: id.to_owned(),
            existing: String::from_utf8_lossy(&existing).into_owned(),
        });
    }
    if let Some(existing) = txn.get(&key)? {
        let existing = String::from_utf8_lossy(&existing).into_owned();
        if existing != id {
            return Err(CommandError::Confusable {
                instance: id.to_owned(),
                existing,
            });
        }
    }
    txn.put(key, id.as_bytes().to_vec());
    Ok(())
}

/// A fire to decide.
struct Fire<'c> {
    id: &'c str,
    event: &'c str,
    actor: &'c Actor,
    payload: &'c Value,
    expected_seq: Option<u64>,
    command_id: Option<&'c str>,
    cause: Option<Cause>,
    clock: Timestamp,
    depth: usize,
    signing: Signing,
}

/// The instance a command on `id` acts on, at `expected_seq` when one is
/// given, and the definition version it runs: the start of every command
/// on an existing instance (fire, lifecycle).
pub(super) fn load_for_command(
    txn: &Txn<'_>,
    id: &str,
    expected_seq: Option<u64>,
) -> Result<(Arc<InstanceRecord>, Arc<Workflow>), CommandError> {
    let record = txn
        .load_own(id)?
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
    let compiled = running_workflow(txn, &record)?;
    Ok((record, compiled))
}

/// The compiled definition version an instance runs.
pub(super) fn running_workflow(
    txn: &Txn<'_>,
    record: &InstanceRecord,
) -> Result<Arc<Workflow>, StorageError> {
    let current = &record.instance;
    txn.workflow(&current.workflow, current.version)
        .ok_or_else(|| {
            corrupt(
                &keys::definition(&current.workflow, current.version),
                "the instance's definition version is not deployed",
            )
        })
}

fn fire(txn: &mut Txn<'_>, cmd: &Fire<'_>) -> Result<Outcome, CommandError> {
    let id = cmd.id;
    let (record, compiled) = load_for_command(txn, id, cmd.expected_seq)?;
    let current = &record.instance;
    // Time never runs backwards within an instance.
    let now = cmd.clock.max(current.updated_at);
    // Summarising children reads the store: only for workflows whose
    // guards or effects read them.
    let children = if compiled.reads_children() {
        txn.children_summary(id)?
    } else {
        Value::Null
    };
    let command = Command {
        event: cmd.event,
        actor: cmd.actor,
        payload: cmd.payload,
        now,
    };
    let mut accepted = compiled
        .fire(current, &command, &children)
        .map_err(|reason| CommandError::Rejected {
            instance: id.to_owned(),
            event: cmd.event.to_owned(),
            reason: Box::new(reason),
        })?;
    // Nothing below reads `accepted.data`: the new data moves into `next`.
    let mut next = compiled.advance_taking(current, &mut accepted, now);
    let mut recorded = Event {
        v: strive_core::EVENT_FORMAT,
        gseq: 0,
        partition: 0,
        instance: id.to_owned(),
        seq: next.seq,
        prev: current.head.clone(),
        kind: EventKind::Fire,
        workflow: current.workflow.clone(),
        version: current.version,
        definition_hash: current.definition_hash.clone(),
        from: Some(accepted.from.clone()),
        event: cmd.event.to_owned(),
        transition: Some(accepted.transition.clone()),
        to: accepted.to.clone(),
        actor: cmd.actor.clone(),
        at: now,
        command_id: cmd.command_id.map(str::to_owned),
        payload: cmd.payload.clone(),
        effects: accepted.effects.clone(),
        cause: cmd.cause.clone(),
        signature: None,
    };
    cmd.signing.sign(txn, &mut recorded)?;
    let (position, hash) = txn.append(recorded);
    next.head = hash.clone();
    let due = if accepted.moves() {
        move_stage(txn, &record, &next, &compiled, now)?
    } else {
        record.due.clone()
    };
    let outcome = moved_outcome(cmd.event, &next, position, hash, txn.partition);
    let this_event = Cause {
        instance: id.to_owned(),
        seq: next.seq,
    };
    let parent = next.parent.clone();
    let (child_workflow, stage) = (next.workflow.clone(), next.stage.clone());
    save_moved(txn, &record, next, due, position);
    if let Some(spawn) = &accepted.spawn {
        for child in &spawn.children {
            start(
                txn,
                &Start {
                    workflow: &spawn.workflow,
                    id: &child.id,
                    actor: cmd.actor,
                    data: &child.data,
                    parent: Some(id),
                    command_id: None,
                    cause: Some(this_event.clone()),
                    now,
                    signing: Signing::default(),
                },
            )?;
        }
    }
    if let (Some(parent_event), Some(parent)) = (&accepted.notify_parent, parent)
        && !parent_has_ended(txn, &parent)?
    {
        let notice = Notice {
            parent: &parent,
            event: parent_event,
            cause: this_event,
            workflow: &child_workflow,
            stage: &stage,
            now,
        };
        notify_parent(txn, cmd, notice)?;
    }
    Ok(outcome)
}

/// Moves `ids` (in this order) from the plan's source version to its
/// target, one `migrate` event each, all or none: any refusal refuses the
/// whole command, and `decide` rolls the earlier ones back.
fn migrate(
    txn: &mut Txn<'_>,
    plan: &MigrationPlan,
    ids: &[String],
    actor: &Actor,
    clock: Timestamp,
) -> Result<Vec<Outcome>, CommandError> {
    let refused = |reason| CommandError::Migration { reason };
    let version = |v: u32| {
        txn.workflow(&plan.workflow, v).ok_or_else(|| {
            refused(strive_core::PlanError::Plan {
                pointer: if v == plan.from_version {
                    "/from_version".into()
                } else {
                    "/to_version".into()
                },
                message: format!("{} v{v} is not deployed", plan.workflow),
            })
        })
    };
    let (source, target) = (version(plan.from_version)?, version(plan.to_version)?);
    plan.check(&source, &target).map_err(refused)?;
    let payload = plan.payload();
    let mut outcomes = Vec::with_capacity(ids.len());
    for id in ids {
        let record = txn
            .load_own(id)?
            .ok_or_else(|| CommandError::UnknownInstance {
                instance: id.clone(),
            })?;
        let current = &record.instance;
        let now = clock.max(current.updated_at);
        let mut next = plan
            .migrate(&source, &target, current, now)
            .map_err(refused)?
            .instance;
        let recorded = Event {
            v: strive_core::EVENT_FORMAT,
            gseq: 0,
            partition: 0,
            instance: id.clone(),
            seq: next.seq,
            prev: current.head.clone(),
            kind: EventKind::Migrate,
            workflow: current.workflow.clone(),
            version: plan.to_version,
            definition_hash: target.hash().to_owned(),
            from: Some(current.stage.clone()),
            event: "migrate".to_owned(),
            transition: None,
            to: next.stage.clone(),
            actor: actor.clone(),
            at: now,
            command_id: None,
            payload: payload.clone(),
            effects: Vec::new(),
            cause: None,
            signature: None,
        };
        let (position, hash) = txn.append(recorded);
        next.head = hash.clone();
        // The target's deadline for the stage, counted from when the
        // instance entered it (or entered the mapped stage: now).
        let entered = next.stage_entered_at;
        let due = move_stage(txn, &record, &next, &target, entered)?;
        outcomes.push(moved_outcome(
            "migrate",
            &next,
            position,
            hash,
            txn.partition,
        ));
        save_moved(txn, &record, next, due, position);
    }
    Ok(outcomes)
}

/// What a command that appended `next`'s event at `position` answers.
pub(super) fn moved_outcome(
    event: &str,
    next: &Instance,
    position: u64,
    hash: String,
    partition: u32,
) -> Outcome {
    Outcome {
        instance: next.id.clone(),
        event: event.to_owned(),
        stage: next.stage.clone(),
        seq: next.seq,
        gseq: position,
        partition,
        hash,
        finished: next.finished,
        replayed: false,
    }
}

/// Saves the instance `record` became, `next`, with its deadline and its
/// event at `position` added to its chain.
pub(super) fn save_moved(
    txn: &mut Txn<'_>,
    record: &InstanceRecord,
    next: Instance,
    due: Option<Due>,
    position: u64,
) {
    let seq = next.seq;
    let mut saved = InstanceRecord {
        v: STORE_FORMAT,
        instance: next,
        due,
        partition: record.partition,
        chain: record.chain.clone(),
    };
    txn.chain_push(&mut saved, seq, position);
    txn.save_instance(saved);
}

/// Moves the instance's indexes and deadline from its old stage to its new
/// one; returns the new deadline.
fn move_stage(
    txn: &mut Txn<'_>,
    record: &InstanceRecord,
    next: &Instance,
    compiled: &Workflow,
    now: Timestamp,
) -> Result<Option<Due>, CommandError> {
    let current = &record.instance;
    let id = current.id.as_str();
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
    if let Some(old) = &record.due {
        txn.delete(keys::deadline(old.at.as_microsecond(), id));
    }
    let due = if next.finished {
        None
    } else {
        due_of(compiled, next, now)?
    };
    // A suspended instance (one migrated while suspended) keeps its
    // deadline in its record; it is armed again when it is resumed.
    if let Some(new) = &due
        && next.status.is_running()
    {
        txn.put(keys::deadline(new.at.as_microsecond(), id), Vec::new());
    }
    Ok(due)
}

/// The deadline `instance` gets on entering its stage at `now`. One that
/// cannot be computed refuses the command (issue #17) rather than leave the
/// instance silently without it; a missing `at_data` time is no deadline.
fn due_of(
    compiled: &Workflow,
    instance: &Instance,
    now: Timestamp,
) -> Result<Option<Due>, CommandError> {
    compiled
        .checked_deadline(&instance.stage, now, &instance.data)
        .map_err(|reason| CommandError::Deadline {
            instance: instance.id.clone(),
            reason,
        })
}

/// Whether `parent` was cancelled or terminated: a child that kept running
/// (`lifecycle.children: keep`) no longer notifies it, as there is nothing
/// left for it to do. The replayer expects no notice then either.
fn parent_has_ended(txn: &Txn<'_>, parent: &str) -> Result<bool, StorageError> {
    Ok(txn
        .load_own(parent)?
        .is_some_and(|record| record.instance.status.has_ended()))
}

/// A child's notification of its parent, fired as the engine.
struct Notice<'c> {
    parent: &'c str,
    event: &'c str,
    cause: Cause,
    workflow: &'c str,
    stage: &'c str,
    now: Timestamp,
}

fn notify_parent(
    txn: &mut Txn<'_>,
    cmd: &Fire<'_>,
    notice: Notice<'_>,
) -> Result<(), CommandError> {
    if cmd.depth >= MAX_NOTIFY_DEPTH {
        return Err(CommandError::LimitExceeded {
            what: "the chain of parent notifications",
            actual: cmd.depth + 1,
            limit: MAX_NOTIFY_DEPTH,
        });
    }
    let payload = json!({"child": cmd.id, "workflow": notice.workflow, "stage": notice.stage});
    let system = Actor::system();
    fire(
        txn,
        &Fire {
            id: notice.parent,
            event: notice.event,
            actor: &system,
            payload: &payload,
            expected_seq: None,
            command_id: None,
            cause: Some(notice.cause),
            clock: notice.now,
            depth: cmd.depth + 1,
            signing: Signing::default(),
        },
    )
    .map(|_| ())
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
    })
}

/// Fires a due deadline once: the deadline is consumed whether its event is
/// accepted or not.
fn deadline(
    txn: &mut Txn<'_>,
    key: &[u8],
    id: &str,
    clock: Timestamp,
) -> Result<Option<Outcome>, CommandError> {
    crate::guard::due_by(key, id, clock)?;
    if txn.get(key)?.is_none() {
        // Already fired, or cancelled by a stage change meanwhile.
        return Ok(None);
    }
    // A deadline entry is consumed even when it turns out stale.
    txn.delete(key.to_vec());
    let Some(record) = txn.load_own(id)? else {
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
    let consumed = txn.savepoint();
    let system = Actor::system();
    let fired = fire(
        txn,
        &Fire {
            id,
            event: &due.event,
            actor: &system,
            payload: &Value::Null,
            expected_seq: None,
            command_id: None,
            cause: None,
            clock,
            depth: 0,
            signing: Signing::default(),
        },
    );
    match fired {
        Ok(outcome) => Ok(Some(outcome)),
        Err(error) => {
            tracing::warn!(instance = id, event = %due.event, %error, "deadline event rejected; the deadline is consumed");
            txn.rollback_to(consumed);
            Err(error)
        }
    }
}
