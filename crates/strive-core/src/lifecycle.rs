//! Lifecycle operations (issue #13, item 3): suspend, resume, cancel and
//! terminate an instance, each with a reason, as pure rules the engine's
//! writer, recovery and the replayer all call.
//!
//! - **suspend** pauses a running instance: its commands are refused with
//!   [`Rejection::Suspended`] and its deadline waits. The deadline keeps its
//!   due time: one that falls due meanwhile fires at the first deadline run
//!   after the resume (docs/evolution.md, "Lifecycle", says why).
//! - **resume** lets a suspended instance run again.
//! - **cancel** is an orderly end an authorised role asks for: the instance
//!   refuses everything from then on, its deadline never fires, and its
//!   children follow as the definition's `lifecycle.children` says.
//! - **terminate** is a forced end: like cancel, but it always reaches
//!   every descendant, whatever their definitions say.
//!
//! Each operation is an [`crate::EventKind::Lifecycle`] event whose `event`
//! is the operation's name and whose payload is `{"reason": ...}`. A child
//! that follows gets its own event, caused by its parent's.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::definition::ChildPolicy;
use crate::machine::{Actor, Instance, Rejection, Workflow};

/// The longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// Where an instance is in its lifecycle. Finishing (reaching a terminal
/// stage) is recorded apart, in [`Instance::finished`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// It accepts commands and its deadline is pending.
    #[default]
    Running,
    /// It refuses commands and its deadline waits until it is resumed.
    Suspended,
    /// It was cancelled: it refuses everything, for good.
    Cancelled,
    /// It was terminated: it refuses everything, for good.
    Terminated,
}

impl Status {
    /// Whether this is [`Status::Running`] (left out of stored records).
    pub fn is_running(&self) -> bool {
        *self == Status::Running
    }

    /// Whether the instance was cancelled or terminated.
    pub fn has_ended(self) -> bool {
        matches!(self, Status::Cancelled | Status::Terminated)
    }

    /// The status as written in records and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Suspended => "suspended",
            Status::Cancelled => "cancelled",
            Status::Terminated => "terminated",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lifecycle operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Pause a running instance.
    Suspend,
    /// Let a suspended instance run again.
    Resume,
    /// End an instance in an orderly way; children follow as declared.
    Cancel,
    /// End an instance by force, with every descendant.
    Terminate,
}

impl Operation {
    /// Every operation, in the order the language lists them.
    pub const ALL: [Operation; 4] = [
        Operation::Suspend,
        Operation::Resume,
        Operation::Cancel,
        Operation::Terminate,
    ];

    /// The operation's name: the event name its events record.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Suspend => "suspend",
            Operation::Resume => "resume",
            Operation::Cancel => "cancel",
            Operation::Terminate => "terminate",
        }
    }

    /// The status an instance has after the operation.
    pub fn status_after(self) -> Status {
        match self {
            Operation::Suspend => Status::Suspended,
            Operation::Resume => Status::Running,
            Operation::Cancel => Status::Cancelled,
            Operation::Terminate => Status::Terminated,
        }
    }

    /// Whether the operation applies to an unfinished instance in `status`.
    pub fn applies_to(self, status: Status) -> bool {
        match self {
            Operation::Suspend => status == Status::Running,
            Operation::Resume => status == Status::Suspended,
            Operation::Cancel | Operation::Terminate => !status.has_ended(),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a lifecycle operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOperation(pub String);

impl fmt::Display for UnknownOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a lifecycle operation; use suspend, resume, cancel or terminate",
            crate::id::escape(&self.0)
        )
    }
}

impl std::error::Error for UnknownOperation {}

impl FromStr for Operation {
    type Err = UnknownOperation;

    fn from_str(name: &str) -> Result<Operation, UnknownOperation> {
        Operation::ALL
            .into_iter()
            .find(|op| op.as_str() == name)
            .ok_or_else(|| UnknownOperation(name.to_owned()))
    }
}

/// A lifecycle operation asked of an instance.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleCommand<'a> {
    /// The operation.
    pub op: Operation,
    /// Who asks.
    pub actor: &'a Actor,
    /// Why, as the event records it.
    pub reason: &'a str,
    /// The command's time, from the engine's clock.
    pub now: Timestamp,
}

/// The payload a lifecycle event records.
pub fn lifecycle_payload(reason: &str) -> Value {
    json!({ "reason": reason })
}

/// The reason a lifecycle event's payload records, if it has one.
pub fn lifecycle_reason(payload: &Value) -> Option<&str> {
    payload.get("reason").and_then(Value::as_str)
}

impl Workflow {
    /// Decides whether `command` may change `instance`'s lifecycle: the
    /// actor holds a role the definition allows for the operation, the
    /// reason is given, and the operation applies to the instance's status.
    /// Returns the status after.
    pub fn lifecycle(
        &self,
        instance: &Instance,
        command: &LifecycleCommand<'_>,
    ) -> Result<Status, Rejection> {
        let op = command.op;
        let allowed = self.lifecycle_roles(op);
        if !allowed.iter().any(|r| command.actor.roles.contains(r)) {
            return Err(Rejection::LifecycleRoleNotAllowed {
                op: op.as_str().to_owned(),
                roles: command.actor.roles.clone(),
                allowed: allowed.to_vec(),
            });
        }
        let reason = command.reason.trim();
        if reason.is_empty() || command.reason.chars().count() > MAX_REASON_CHARS {
            return Err(Rejection::InvalidReason {
                op: op.as_str().to_owned(),
                limit: MAX_REASON_CHARS,
            });
        }
        self.lifecycle_applies(instance, op)
    }

    /// Whether `op` applies to `instance` as it is (unfinished, in a status
    /// the operation leaves from); the status after. No role is checked:
    /// this is the rule for a child that follows its parent too.
    pub fn lifecycle_applies(
        &self,
        instance: &Instance,
        op: Operation,
    ) -> Result<Status, Rejection> {
        if instance.finished || self.is_terminal(&instance.stage) {
            return Err(Rejection::Finished {
                stage: instance.stage.clone(),
            });
        }
        if !op.applies_to(instance.status) {
            return Err(Rejection::LifecycleNotAllowed {
                op: op.as_str().to_owned(),
                status: instance.status,
            });
        }
        Ok(op.status_after())
    }

    /// Whether the children of an instance of this workflow follow `op`:
    /// terminate always reaches them; the others as `lifecycle.children`
    /// says.
    pub fn children_follow(&self, op: Operation) -> bool {
        op == Operation::Terminate
            || self
                .definition()
                .lifecycle
                .as_ref()
                .is_none_or(|l| l.children == ChildPolicy::Follow)
    }

    /// The roles the definition allows for `op` (none without a
    /// `lifecycle` section).
    pub fn lifecycle_roles(&self, op: Operation) -> &[String] {
        let Some(lifecycle) = &self.definition().lifecycle else {
            return &[];
        };
        match op {
            Operation::Suspend => &lifecycle.suspend,
            Operation::Resume => &lifecycle.resume,
            Operation::Cancel => &lifecycle.cancel,
            Operation::Terminate => &lifecycle.terminate,
        }
    }
}

/// Why no child may be started under a parent in `status`, if none may:
/// a suspended parent takes no new work until it is resumed, an ended one
/// never again. The writer refuses such a start and the replayer flags
/// one in a log.
pub fn refuses_children(status: Status) -> Option<Rejection> {
    match status {
        Status::Running => None,
        Status::Suspended => Some(Rejection::Suspended {
            event: "start".to_owned(),
        }),
        ended @ (Status::Cancelled | Status::Terminated) => {
            Some(Rejection::Ended { status: ended })
        }
    }
}

/// The instance after a lifecycle event at `now` that leaves it in
/// `status`, before the event's hash is known (the caller sets `head`).
/// The stage, data and deadline are untouched.
pub fn lifecycle_applied(instance: &Instance, status: Status, now: Timestamp) -> Instance {
    Instance {
        seq: instance.seq + 1,
        updated_at: now,
        status,
        ..instance.clone()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn workflow(lifecycle: Value) -> Workflow {
        let text = json!({
            "id": "w", "title": "w",
            "roles": [{"id": "admin"}, {"id": "clerk"}],
            "stages": [{"id": "a", "kind": "initial"}, {"id": "z", "kind": "terminal"}],
            "transitions": [{"event": "go", "from": "a", "to": "z", "roles": ["clerk"]}],
            "lifecycle": lifecycle
        })
        .to_string();
        let parsed = crate::parse(None, &text).expect("parses");
        Workflow::compile(parsed.definition, "h".into()).expect("compiles")
    }

    #[test]
    fn each_operation_leaves_from_its_statuses_only() {
        let w = workflow(json!({"suspend": ["admin"], "resume": ["admin"], "cancel": ["admin"]}));
        let now = "2026-05-01T08:00:00Z".parse().expect("a time");
        let admin = Actor::new("a", &["admin"]);
        let clerk = Actor::new("c", &["clerk"]);
        let mut instance = w
            .new_instance("i", 1, &Map::new(), None, now)
            .expect("starts");
        let ask = |op, actor| LifecycleCommand {
            op,
            actor,
            reason: "audit",
            now,
        };
        assert!(matches!(
            w.lifecycle(&instance, &ask(Operation::Resume, &admin)),
            Err(Rejection::LifecycleNotAllowed { .. })
        ));
        assert!(matches!(
            w.lifecycle(&instance, &ask(Operation::Suspend, &clerk)),
            Err(Rejection::LifecycleRoleNotAllowed { .. })
        ));
        assert!(matches!(
            w.lifecycle(&instance, &ask(Operation::Terminate, &admin)),
            Err(Rejection::LifecycleRoleNotAllowed { .. })
        ));
        let status = w.lifecycle(&instance, &ask(Operation::Suspend, &admin));
        assert_eq!(status, Ok(Status::Suspended));
        instance = lifecycle_applied(&instance, Status::Suspended, now);
        assert_eq!(instance.seq, 1);
        assert!(matches!(
            w.lifecycle(
                &instance,
                &LifecycleCommand {
                    reason: "  ",
                    ..ask(Operation::Resume, &admin)
                }
            ),
            Err(Rejection::InvalidReason { .. })
        ));
        assert_eq!(
            w.lifecycle(&instance, &ask(Operation::Cancel, &admin)),
            Ok(Status::Cancelled)
        );
        assert!(w.children_follow(Operation::Cancel));
        assert!(workflow(json!({"children": "keep"})).children_follow(Operation::Terminate));
        assert!(!workflow(json!({"children": "keep"})).children_follow(Operation::Cancel));
    }

    #[test]
    fn operations_parse_from_their_names() {
        for op in Operation::ALL {
            assert_eq!(op.as_str().parse::<Operation>(), Ok(op));
        }
        assert!("pause".parse::<Operation>().is_err());
    }
}
