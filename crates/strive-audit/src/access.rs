//! The access check of verification (issue #11): replays the access chain
//! (`@access`) alongside the log and checks each event's actor against the
//! grants held when it acted, by the core's rules (`strive_core::access`),
//! the very ones the engine's writer applies.
//!
//! What it checks, from the first grant in the log on (a log without
//! grants predates access control and is not checked; docs/audit.md):
//!
//! - every grant and revocation was made by an admin and was a real change
//!   (`access_refused` otherwise);
//! - every other event's actor held a grant of each role it claims,
//!   globally, or on the instance or one of its ancestors for instance
//!   events (`not_granted` otherwise). The engine's `system` actor needs
//!   none.
//!
//! It also checks actors' signatures (`strive_core::signing`): every
//! signed start or fire against the key the chain says its actor held at
//! that point (`bad_signature`, with the rule broken), and, when asked,
//! that an actor holding a key signed (`unsigned`). Key registrations and
//! retirements are access events too, checked like grants
//! (`access_refused`), but they do not turn the grant checks on.
//!
//! It reports events without a grant whether or not the store enforced
//! grants when they were written: a store that records grants says who may
//! act, and an auditor must see an event outside them.

use std::collections::{HashMap, VecDeque};

use serde_json::Value;
use strive_core::access::{self, Access, Change, Grant};
use strive_core::{ACCESS_SUBJECT, ActorKey, Event, EventKind, KeyChange};

use crate::problem::{Problem, ProblemCode};

/// How many ancestors a scope walk follows: a bound against a cycle in a
/// forged log, far above any real tree.
const MAX_ANCESTORS: usize = 1024;

/// The grants as replayed so far, and each instance's parent.
#[derive(Debug, Default)]
pub(crate) struct AccessCheck {
    access: Access,
    parents: HashMap<String, Option<String>>,
    /// Set at the first grant: from there on every event is checked.
    active: bool,
    /// The access chain's events applied so far (partition 0's check
    /// keeps them for the other partitions').
    changes: Vec<Event>,
    /// For a partition other than 0: partition 0's grants, applied as the
    /// partition's events reach their times.
    pending: VecDeque<Event>,
    /// Whether an unsigned command by an actor holding a key is a problem
    /// (`VerifyOptions::require_signatures`).
    pub(crate) require_signatures: bool,
}

impl AccessCheck {
    /// The access chain's events this check has applied, in log order.
    pub(crate) fn changes(&self) -> &[Event] {
        &self.changes
    }

    /// Makes this the check of a partition other than 0, whose grants are
    /// `changes`, partition 0's access chain.
    ///
    /// A writer of another partition sees a grant once it is durable, so
    /// its events are never earlier than the grants they rely on: each
    /// grant is applied once the partition's events reach its time. A
    /// revocation is not applied: the writer may act on a grant until the
    /// revocation is durable, and the log records no order between the two
    /// logs that would tell a use just before it from one just after. So
    /// in those partitions the check is that each actor had been granted
    /// the role by the time it acted (docs/audit.md, "The access chain").
    pub(crate) fn follow(&mut self, changes: &[Event]) {
        self.pending = changes
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Grant | EventKind::RegisterKey))
            .cloned()
            .collect();
    }

    /// Applies the pending grants dated at or before `event`'s time.
    fn catch_up(&mut self, event: &Event) {
        while self.pending.front().is_some_and(|g| g.at <= event.at) {
            let Some(change) = self.pending.pop_front() else {
                break;
            };
            if change.kind == EventKind::RegisterKey {
                if let Ok(key) = serde_json::from_value::<ActorKey>(change.payload.clone()) {
                    self.access.apply_key(KeyChange::Register, &key);
                }
            } else if let Ok(payload) = serde_json::from_value::<Grant>(change.payload.clone()) {
                self.active = true;
                self.access
                    .apply(Change::Grant, &payload, change.gseq, &change.actor.id);
            }
        }
    }

    /// Checks the next event of the log, in global order, and applies it
    /// if it changes grants.
    pub(crate) fn event(&mut self, event: &Event) -> Vec<Problem> {
        let here = |code, message: String| {
            Problem::new(code, message).at(&event.instance, event.seq, event.gseq)
        };
        self.catch_up(event);
        if let Some(change) = Change::of(event.kind) {
            self.active = true;
            self.changes.push(event.clone());
            return self
                .change(change, event)
                .err()
                .map(|message| here(ProblemCode::AccessRefused, message))
                .into_iter()
                .collect();
        }
        if let Some(change) = KeyChange::of(event.kind) {
            self.changes.push(event.clone());
            return self
                .key_change(change, event)
                .err()
                .map(|message| here(ProblemCode::AccessRefused, message))
                .into_iter()
                .collect();
        }
        let mut problems: Vec<Problem> = self.signature(event).into_iter().collect();
        let parent = match event.kind {
            EventKind::Start => {
                let parent = event
                    .payload
                    .get("parent")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                self.parents.insert(event.instance.clone(), parent.clone());
                parent
            }
            _ => self.parents.get(&event.instance).cloned().flatten(),
        };
        if !self.active {
            return problems;
        }
        // Deployments and migrations act on a workflow, not an instance:
        // the actor's roles must be granted globally, as the engine asks.
        let scope = match event.kind {
            EventKind::Deploy | EventKind::Migrate => Vec::new(),
            _ => self.scope(&event.instance, parent),
        };
        let Ok(missing) = access::missing(&self.access, &event.actor, &scope);
        problems.extend(missing.map(|grant| {
            here(
                ProblemCode::NotGranted,
                format!("the actor held no grant of the role it acted in: {grant} was missing"),
            )
        }));
        problems
    }

    /// The problem with `event`'s signature, by the rule the engine's
    /// writer applied (`strive_core::check_signature`), against the keys
    /// the access chain gave its actor up to here.
    fn signature(&self, event: &Event) -> Option<Problem> {
        let Ok(checked) =
            strive_core::check_signature(&self.access, event, self.require_signatures);
        let error = checked.err()?;
        let code = match error {
            strive_core::SignatureError::Required { .. } => ProblemCode::Unsigned,
            _ => ProblemCode::BadSignature,
        };
        Some(
            Problem::new(
                code,
                format!("the command's signature does not hold: {error}"),
            )
            .at(&event.instance, event.seq, event.gseq)
            .rule(error.code()),
        )
    }

    /// Checks and applies a key's registration or retirement, as
    /// [`AccessCheck::change`] does a grant.
    fn key_change(&mut self, change: KeyChange, event: &Event) -> Result<(), String> {
        let key: ActorKey = access_payload(event, change.name(), "an actor's key")?;
        let Ok(checked) = strive_core::check_key_change(&self.access, change, &key, &event.actor);
        self.access.apply_key(change, &key);
        checked.map_err(|reason| format!("the engine would have refused it: {reason}"))
    }

    /// Checks and applies a grant or revocation; the problem's message if
    /// it breaks the rules. A refused change is applied all the same, as
    /// recorded, so one bad grant is reported once, not at every event
    /// that relies on it.
    fn change(&mut self, change: Change, event: &Event) -> Result<(), String> {
        let grant: Grant = access_payload(event, change.name(), "a grant")?;
        let Ok(checked) = access::check_change(&self.access, change, &grant, &event.actor);
        self.access
            .apply(change, &grant, event.gseq, &event.actor.id);
        checked.map_err(|reason| format!("the engine would have refused it: {reason}"))
    }

    /// `first` and its ancestors as the log has them, nearest first.
    fn scope(&self, first: &str, mut parent: Option<String>) -> Vec<String> {
        let mut scope = vec![first.to_owned()];
        while let Some(id) = parent.take() {
            if scope.len() > MAX_ANCESTORS || scope.contains(&id) {
                break;
            }
            parent = self.parents.get(&id).cloned().flatten();
            scope.push(id);
        }
        scope
    }
}

/// The payload of an access event named `name`, which must be in the
/// access chain and carry `what`.
fn access_payload<T: serde::de::DeserializeOwned>(
    event: &Event,
    name: &str,
    what: &str,
) -> Result<T, String> {
    if event.instance != ACCESS_SUBJECT {
        return Err(format!(
            "a {name} event belongs to the access chain `{ACCESS_SUBJECT}`"
        ));
    }
    serde_json::from_value(event.payload.clone())
        .map_err(|e| format!("its payload is not {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use strive_core::{Actor, GENESIS};

    use super::*;

    fn event(gseq: u64, instance: &str, kind: EventKind, actor: Actor, payload: Value) -> Event {
        Event {
            v: 1,
            gseq,
            partition: 0,
            instance: instance.into(),
            seq: 1,
            prev: GENESIS.into(),
            kind,
            workflow: String::new(),
            version: 0,
            definition_hash: String::new(),
            from: None,
            event: String::new(),
            transition: None,
            to: String::new(),
            actor,
            at: "2026-05-01T08:00:00Z".parse().expect("time"),
            command_id: None,
            payload,
            effects: vec![],
            cause: None,
            signature: None,
        }
    }

    #[test]
    fn events_are_checked_from_the_first_grant_on() {
        let mut check = AccessCheck::default();
        let li = Actor::new("li", &["secretary"]);
        let start = |gseq, id: &str, parent: Option<&str>| {
            event(
                gseq,
                id,
                EventKind::Start,
                li.clone(),
                json!({"data": {}, "parent": parent}),
            )
        };
        // Before any grant: not checked.
        assert!(check.event(&start(1, "org-1", None)).is_empty());
        assert!(check.event(&start(2, "org-2", None)).is_empty());
        let root = Actor::new("root", &["admin"]);
        let grant = |gseq, payload| {
            event(
                gseq,
                ACCESS_SUBJECT,
                EventKind::Grant,
                root.clone(),
                payload,
            )
        };
        assert!(
            check
                .event(&grant(
                    3,
                    json!({"actor": "root", "role": "admin", "on": null})
                ))
                .is_empty()
        );
        assert!(
            check
                .event(&grant(
                    4,
                    json!({"actor": "li", "role": "secretary", "on": "org-1"})
                ))
                .is_empty()
        );
        assert!(check.event(&start(5, "m-1", Some("org-1"))).is_empty());
        let sibling = check.event(&start(6, "m-2", Some("org-2")));
        assert_eq!(sibling.len(), 1);
        assert_eq!(sibling[0].code, ProblemCode::NotGranted);
        // A grant twice is refused, and so is a payload that is no grant.
        let twice = check.event(&grant(
            7,
            json!({"actor": "li", "role": "secretary", "on": "org-1"}),
        ));
        assert_eq!(twice[0].code, ProblemCode::AccessRefused);
        let junk = check.event(&grant(8, json!({"who": "li"})));
        assert_eq!(junk[0].code, ProblemCode::AccessRefused);
    }
}
