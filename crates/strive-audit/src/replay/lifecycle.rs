//! Replaying lifecycle events (issue #13, item 3): the operation asked of
//! an instance must be one its definition allows the actor, and apply to
//! the instance's status; the descendants that follow must be exactly
//! those the writer's rule picks (`strive_store`'s `writer/lifecycle.rs`),
//! each with an event caused by the asked one, by the same actor, with the
//! same reason.

use strive_core::{
    Event, Instance, LifecycleCommand, Operation, Status, Workflow, lifecycle_applied,
    lifecycle_reason,
};

use super::Replayer;
use crate::problem::{Problem, ProblemCode};

/// A descendant's lifecycle event the log must hold: caused by the asked
/// event, with its operation, actor and reason.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Follower {
    cause: (String, u64),
    op: Operation,
    actor: strive_core::Actor,
    reason: String,
}

impl Replayer {
    /// A `lifecycle` event: decided again by the core's rules, then the
    /// instance takes the status it leaves.
    pub(super) fn lifecycle(&mut self, hash: &str, event: &Event, problems: &mut Vec<Problem>) {
        let here = |code, message: String| {
            Problem::new(code, message)
                .at(&event.instance, event.seq, event.gseq)
                .rule("lifecycle")
        };
        let Some(current) = self.instances.get(&event.instance).cloned() else {
            problems.push(here(
                ProblemCode::Nonconforming,
                "a lifecycle event on an instance that was never started".to_owned(),
            ));
            self.broken.insert((event.instance.clone(), event.seq));
            return;
        };
        let workflow = self.workflow_at(
            &current.workflow,
            current.version,
            &current.definition_hash,
            event,
            problems,
        );
        let decided = match (event.event.parse::<Operation>(), &workflow) {
            (Err(error), _) => Err(error.to_string()),
            (Ok(_), None) => Err("its definition is not deployed".to_owned()),
            (Ok(op), Some(workflow)) => self
                .decide_lifecycle(event, &current, op, workflow)
                .map(|status| (op, status)),
        };
        let stage = Some(current.stage.as_str());
        let recorded = (event.from.as_deref(), event.to.as_str());
        let decided = decided.and_then(|decided| {
            if recorded == (stage, current.stage.as_str()) {
                Ok(decided)
            } else {
                Err(format!(
                    "a lifecycle event keeps the instance in `{}`, this one records from {:?} \
                     to `{}`",
                    current.stage, recorded.0, recorded.1
                ))
            }
        });
        let status = match decided {
            Ok((op, status)) => {
                if event.cause.is_none()
                    && let Some(workflow) = &workflow
                    && workflow.children_follow(op)
                {
                    self.expect_followers(event, op);
                }
                status
            }
            Err(message) => {
                problems.push(here(ProblemCode::Nonconforming, message));
                self.broken.insert((event.instance.clone(), event.seq));
                event
                    .event
                    .parse::<Operation>()
                    .map_or(current.status, Operation::status_after)
            }
        };
        let mut next = lifecycle_applied(&current, status, event.at);
        next.seq = event.seq;
        next.head = hash.to_owned();
        // An ended instance's deadline never fires; a suspended one's
        // waits with its due time (the store keeps it in its record).
        if status.has_ended() {
            self.set_due(&event.instance, None);
        }
        self.instances.insert(event.instance.clone(), next);
    }

    /// The status `event` leaves the instance in, if the rules allow it:
    /// asked (no cause) by an actor the definition allows, or following
    /// the asked event it names as its cause.
    fn decide_lifecycle(
        &mut self,
        event: &Event,
        current: &Instance,
        op: Operation,
        workflow: &Workflow,
    ) -> Result<Status, String> {
        let reason = lifecycle_reason(&event.payload).unwrap_or_default();
        let Some(cause) = &event.cause else {
            let command = LifecycleCommand {
                op,
                actor: &event.actor,
                reason,
                now: event.at,
            };
            return workflow.lifecycle(current, &command).map_err(|rejection| {
                format!(
                    "{} v{} would refuse `{op}` by {}: {rejection}",
                    current.workflow, current.version, event.actor.id
                )
            });
        };
        let expected = self.followers.remove(&event.instance);
        let key = (cause.instance.clone(), cause.seq);
        let follows = expected.as_ref().is_some_and(|f| {
            f.cause == key && f.op == op && f.actor == event.actor && f.reason == reason
        });
        // The cause's own problem was reported; a scoped replay or an
        // extract may not hold the cause at all.
        if !follows && !self.broken.contains(&key) && self.instances.contains_key(&cause.instance) {
            return Err(format!(
                "claims to follow `{op}` of {}#{}, which this instance does not follow with \
                 that actor and reason",
                cause.instance, cause.seq
            ));
        }
        workflow
            .lifecycle_applies(current, op)
            .map_err(|rejection| format!("it cannot follow `{op}`: {rejection}"))
    }

    /// Records the descendants of `event`'s instance that must follow it,
    /// by the writer's rule: depth first through every instance whose
    /// definition says its children follow, each child the operation
    /// applies to.
    fn expect_followers(&mut self, event: &Event, op: Operation) {
        let expected = Follower {
            cause: (event.instance.clone(), event.seq),
            op,
            actor: event.actor.clone(),
            reason: lifecycle_reason(&event.payload)
                .unwrap_or_default()
                .to_owned(),
        };
        let mut stack = vec![event.instance.clone()];
        while let Some(parent) = stack.pop() {
            let Some(children) = self.kids.get(&parent) else {
                continue;
            };
            for child in children.clone() {
                let Some(instance) = self.instances.get(&child) else {
                    continue;
                };
                let key = (instance.workflow.clone(), instance.version);
                let Some(workflow) = self.workflows.get(&key).cloned() else {
                    continue;
                };
                if workflow.lifecycle_applies(instance, op).is_ok() {
                    self.followers.insert(child.clone(), expected.clone());
                }
                if workflow.children_follow(op) {
                    stack.push(child);
                }
            }
        }
    }

    /// The followers the log lacks, for [`Replayer::unmet`].
    pub(super) fn unmet_followers(&self) -> Vec<Problem> {
        self.followers
            .iter()
            .map(|(child, expected)| {
                Problem::new(
                    ProblemCode::CauseMismatch,
                    format!(
                        "{}#{} ({}) is followed by its descendant `{child}`, but the log has no \
                         lifecycle event for it",
                        expected.cause.0, expected.cause.1, expected.op
                    ),
                )
                .on(&expected.cause.0)
                .rule("lifecycle")
            })
            .collect()
    }
}
