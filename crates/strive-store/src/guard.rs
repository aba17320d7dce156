//! The engine's own rules on who may act and when (issue #17), checked at
//! the public entry points before a command reaches the writer:
//!
//! - ids and actors are in their canonical form (`strive_core::id`);
//! - the `system` actor and the `system` role are the engine's: deadline,
//!   notification and spawn events come only from the engine, so no caller
//!   may claim either;
//! - a deadline fires only once the engine's clock has reached it;
//! - a store that ever ran on a manual clock (a simulation) says so, for
//!   good: its times are the simulation's, not the world's.

use std::borrow::Cow;

use strive_core::{Actor, SYSTEM_ROLE, id};

use crate::backend::{Backend, Write};
use crate::error::{CommandError, StorageError};

/// `actor` in canonical form, if a caller may act as it.
pub(crate) fn caller(actor: &Actor) -> Result<Actor, CommandError> {
    let actor = id::canonical_actor(actor).map_err(|error| CommandError::InvalidId {
        id: actor_text(actor),
        reason: error.reason(),
    })?;
    let reserved = |text: &str| id::skeleton(text) == id::skeleton(SYSTEM_ROLE);
    if reserved(&actor.id) || actor.roles.iter().any(|role| reserved(role)) {
        return Err(CommandError::ReservedActor { actor: actor.id });
    }
    Ok(actor)
}

/// The actor as given, shortened, for a message about it.
fn actor_text(actor: &Actor) -> String {
    let mut text: String = actor.id.chars().take(140).collect();
    if actor.roles.len() > id::MAX_ROLES {
        text.push_str(&format!(" with {} roles", actor.roles.len()));
    }
    text
}

/// An instance or command id in canonical form, if it is acceptable.
pub(crate) fn instance_id(text: &str) -> Result<Cow<'_, str>, CommandError> {
    let canonical = id::canonical(text).map_err(|error| CommandError::InvalidId {
        id: text.chars().take(140).collect(),
        reason: error.reason(),
    })?;
    if canonical.starts_with('@') {
        return Err(CommandError::InvalidId {
            id: canonical.into_owned(),
            reason: "ids may not start with `@`, which marks definition histories",
        });
    }
    Ok(canonical)
}

/// Refuses a command id outside the id rule, as ids are: it is recorded
/// and printed like them.
pub(crate) fn command_id(options: &crate::records::CommandOptions) -> Result<(), CommandError> {
    match &options.command_id {
        Some(text) => canonical_id(text),
        None => Ok(()),
    }
}

/// Refuses an id that is not already canonical: what the writer checks of
/// every id it records, spawned children's included.
pub(crate) fn canonical_id(text: &str) -> Result<(), CommandError> {
    let canonical = id::canonical(text).map_err(|error| CommandError::InvalidId {
        id: text.chars().take(140).collect(),
        reason: error.reason(),
    })?;
    if canonical != text {
        return Err(CommandError::InvalidId {
            id: text.chars().take(140).collect(),
            reason: "ids must be in Unicode NFC",
        });
    }
    Ok(())
}

/// Refuses to fire the deadline stored under `key` (for `instance`) before
/// the engine's clock `now` has reached it: an event is never recorded
/// before it was due, whatever time the caller of `fire_due` names.
pub(crate) fn due_by(key: &[u8], instance: &str, now: jiff::Timestamp) -> Result<(), CommandError> {
    let due = crate::keys::parse_deadline(key)
        .and_then(|(at, _)| jiff::Timestamp::from_microsecond(at).ok());
    match due {
        Some(due) if due > now => Err(CommandError::NotDue {
            instance: instance.to_owned(),
            due,
            now,
        }),
        _ => Ok(()),
    }
}

/// The meta record marking a store that ran on a manual clock.
const MANUAL_CLOCK: &str = "clock";

/// Records, once and for good, that the store behind `backend` runs on a
/// manual clock when `clock` is one: a simulation may name any time, so
/// an auditor must be able to tell its store from one kept by the system
/// clock (issue #17). A store opened on the system clock is left as it is.
pub(crate) fn record_clock(
    backend: &dyn Backend,
    clock: &dyn crate::records::Clock,
) -> Result<(), StorageError> {
    if !clock.is_manual() || ran_on_manual_clock(backend)? {
        return Ok(());
    }
    backend.apply(vec![(
        crate::keys::meta(MANUAL_CLOCK),
        Some(b"manual".to_vec()),
    )])?;
    backend.flush()
}

/// Whether the store behind `backend` ever ran on a manual clock.
pub(crate) fn ran_on_manual_clock(backend: &dyn Backend) -> Result<bool, StorageError> {
    Ok(backend.get(&crate::keys::meta(MANUAL_CLOCK))?.is_some())
}

/// The writes that carry the manual-clock mark into a copy of the store
/// (`strive backup`), so that a copy never hides it.
pub(crate) fn clock_mark(backend: &dyn Backend) -> Result<Vec<Write>, StorageError> {
    let key = crate::keys::meta(MANUAL_CLOCK);
    Ok(backend
        .get(&key)?
        .map(|value| (key, Some(value)))
        .into_iter()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_may_not_be_the_system() {
        for actor in [
            Actor::new("system", &["chief"]),
            Actor::new("li", &["chief", "system"]),
            Actor::new("sуstem", &["chief"]),
        ] {
            assert!(
                matches!(caller(&actor), Err(CommandError::ReservedActor { .. })),
                "{actor:?}"
            );
        }
        assert_eq!(
            caller(&Actor::new("li", &["chief"])),
            Ok(Actor::new("li", &["chief"]))
        );
    }

    #[test]
    fn hostile_ids_are_invalid_ids() {
        for text in ["", "a\nb", "@workflow/x", "a b", "../x"] {
            assert!(
                matches!(instance_id(text), Err(CommandError::InvalidId { .. })),
                "{text:?}"
            );
        }
        assert_eq!(instance_id("branch-7").as_deref(), Ok("branch-7"));
    }

    #[test]
    fn a_deadline_is_not_fired_before_it_is_due() {
        let at = |text: &str| text.parse::<jiff::Timestamp>().expect("time");
        let key = crate::keys::deadline(at("2026-06-01T00:00:00Z").as_microsecond(), "x");
        assert!(matches!(
            due_by(&key, "x", at("2026-05-31T23:59:59Z")),
            Err(CommandError::NotDue { .. })
        ));
        assert_eq!(due_by(&key, "x", at("2026-06-01T00:00:00Z")), Ok(()));
    }

    #[test]
    fn recorded_ids_must_be_canonical() {
        assert!(canonical_id("e\u{301}").is_err());
        assert_eq!(canonical_id("\u{e9}"), Ok(()));
    }
}
