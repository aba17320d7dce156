//! Deciding lifecycle operations (issue #13, item 3): suspend, resume,
//! cancel and terminate, through the core's rules
//! (`strive_core::Workflow::lifecycle`), with the instance's descendants
//! following in the same write. A parent and its children share a
//! partition, so one writer records them all, atomically.
//!
//! Deadlines: a suspended instance keeps its deadline in its record but
//! not in the deadline index, so `fire_due` does not see it; a resume puts
//! it back with the same due time, so one that fell due meanwhile fires at
//! the next deadline run. A cancelled or terminated instance loses it.

use jiff::Timestamp;
use strive_core::{
    Actor, Cause, Event, EventKind, LifecycleCommand, Operation, Status, lifecycle_applied,
    lifecycle_payload,
};

use crate::error::CommandError;
use crate::keys;
use crate::records::{InstanceRecord, Outcome};

use super::decide::{corrupt, load_for_command, moved_outcome, running_workflow, save_moved};
use super::txn::Txn;

/// A lifecycle operation asked of one instance.
pub(super) struct Asked<'c> {
    pub(super) id: &'c str,
    pub(super) op: Operation,
    pub(super) actor: &'c Actor,
    pub(super) reason: &'c str,
    pub(super) expected_seq: Option<u64>,
    pub(super) command_id: Option<&'c str>,
    pub(super) clock: Timestamp,
}

/// Decides `asked`: the instance's event, then its descendants' (each
/// caused by it) as their parents' definitions say they follow.
pub(super) fn decide(txn: &mut Txn<'_>, asked: &Asked<'_>) -> Result<Outcome, CommandError> {
    let id = asked.id;
    let (record, compiled) = load_for_command(txn, id, asked.expected_seq)?;
    let current = &record.instance;
    let now = asked.clock.max(current.updated_at);
    let command = LifecycleCommand {
        op: asked.op,
        actor: asked.actor,
        reason: asked.reason,
        now,
    };
    let status =
        compiled
            .lifecycle(current, &command)
            .map_err(|reason| CommandError::Rejected {
                instance: id.to_owned(),
                event: asked.op.as_str().to_owned(),
                reason: Box::new(reason),
            })?;
    let change = Change {
        op: asked.op,
        actor: asked.actor,
        reason: asked.reason,
        command_id: asked.command_id,
        cause: None,
    };
    let outcome = apply(txn, &record, status, &change, now);
    if compiled.children_follow(asked.op) {
        let cause = Cause {
            instance: id.to_owned(),
            seq: outcome.seq,
        };
        follow(txn, id, &change, cause, asked.clock)?;
    }
    Ok(outcome)
}

/// What one lifecycle event records besides the instance.
struct Change<'c> {
    op: Operation,
    actor: &'c Actor,
    reason: &'c str,
    command_id: Option<&'c str>,
    cause: Option<Cause>,
}

/// The descendants of `root` that follow: each child of an instance whose
/// definition says children follow the operation, visited depth first (in
/// the order of their index keys), gets its own event when the operation
/// applies to it, caused by the root's event. A child it does not apply
/// to (finished, or already in the status) gets none, but its own
/// children are still visited, so a terminate reaches every descendant.
/// The replayer expects exactly this set (`strive_audit`'s replay).
fn follow(
    txn: &mut Txn<'_>,
    root: &str,
    change: &Change<'_>,
    cause: Cause,
    clock: Timestamp,
) -> Result<(), CommandError> {
    let followed = Change {
        cause: Some(cause),
        command_id: None,
        ..*change
    };
    let mut stack = vec![root.to_owned()];
    while let Some(parent) = stack.pop() {
        let prefix = keys::key(keys::CHILD, &[&parent]);
        let children: Vec<String> = txn
            .scan(&prefix)?
            .into_iter()
            .map(|(key, _)| keys::tail(&key, prefix.len()))
            .collect();
        // Pushed in reverse, so that children are visited in key order.
        for child in children.into_iter().rev() {
            let record = txn.load_own(&child)?.ok_or_else(|| {
                corrupt(
                    &keys::key(keys::INSTANCE, &[&child]),
                    format!("child {child} of {parent} is indexed but has no record"),
                )
            })?;
            let compiled = running_workflow(txn, &record)?;
            if let Ok(status) = compiled.lifecycle_applies(&record.instance, change.op) {
                let now = clock.max(record.instance.updated_at);
                apply(txn, &record, status, &followed, now);
            }
            if compiled.children_follow(change.op) {
                stack.push(child);
            }
        }
    }
    Ok(())
}

/// Appends the lifecycle event of `record`'s instance, which leaves it in
/// `status`, and saves it with its deadline armed, disarmed or dropped.
fn apply(
    txn: &mut Txn<'_>,
    record: &InstanceRecord,
    status: Status,
    change: &Change<'_>,
    now: Timestamp,
) -> Outcome {
    let current = &record.instance;
    let mut next = lifecycle_applied(current, status, now);
    let event = Event {
        v: strive_core::EVENT_FORMAT,
        gseq: 0,
        partition: 0,
        instance: current.id.clone(),
        seq: next.seq,
        prev: current.head.clone(),
        kind: EventKind::Lifecycle,
        workflow: current.workflow.clone(),
        version: current.version,
        definition_hash: current.definition_hash.clone(),
        from: Some(current.stage.clone()),
        event: change.op.as_str().to_owned(),
        transition: None,
        to: current.stage.clone(),
        actor: change.actor.clone(),
        at: now,
        command_id: change.command_id.map(str::to_owned),
        payload: lifecycle_payload(change.reason),
        effects: Vec::new(),
        cause: change.cause.clone(),
        // Lifecycle operations are not signed (only starts and fires are).
        signature: None,
    };
    let (position, hash) = txn.append(event);
    next.head = hash.clone();
    let id = current.id.as_str();
    let due = match (&record.due, status) {
        (None, _) => None,
        (Some(due), Status::Running) => {
            txn.put(keys::deadline(due.at.as_microsecond(), id), Vec::new());
            Some(due.clone())
        }
        (Some(due), Status::Suspended) => {
            txn.delete(keys::deadline(due.at.as_microsecond(), id));
            Some(due.clone())
        }
        (Some(due), Status::Cancelled | Status::Terminated) => {
            txn.delete(keys::deadline(due.at.as_microsecond(), id));
            None
        }
    };
    let outcome = moved_outcome(change.op.as_str(), &next, position, hash, txn.partition);
    save_moved(txn, record, next, due, position);
    outcome
}
