//! Grants: which actor holds which role, everywhere or on one instance and
//! its descendants (issue #11). The rules are here, as pure functions over
//! an [`AccessView`], so that the engine's writer (deciding a command, over
//! its stored grants) and the auditor (replaying the access chain, over an
//! [`Access`] in memory) apply exactly the same ones.
//!
//! Every grant and revocation is an event of the access chain, the global
//! subject [`ACCESS_SUBJECT`]; its payload is the [`Grant`]. The rules:
//!
//! - an actor acting in a role must hold a grant of that role to itself,
//!   globally or on the instance acted on or one of its ancestors
//!   ([`missing`]); the engine's own `system` actor needs none;
//! - only an admin changes grants: an actor claiming [`ADMIN_ROLE`] that
//!   holds a global admin grant, or any actor claiming it while nobody holds
//!   one yet (the bootstrap: the first admin grants itself)
//!   ([`may_administer`], [`check_change`]);
//! - a grant is recorded once, only a held grant is revoked, and the last
//!   global admin grant is not revoked (that would reopen the bootstrap).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::audit::EventKind;
use crate::definition::SYSTEM_ROLE;
use crate::machine::Actor;

/// The subject whose chain records every grant and revocation.
pub const ACCESS_SUBJECT: &str = "@access";

/// The role that changes grants (and deploys, and manages tokens).
pub const ADMIN_ROLE: &str = "admin";

/// One grant: `actor` holds `role`, everywhere (`on` is `None`) or on the
/// instance `on` and its descendants. It is the payload of grant and revoke
/// events, so its serialized form is part of the hashed event format.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grant {
    /// Who holds the role.
    pub actor: String,
    /// The role.
    pub role: String,
    /// The instance it is limited to, with its descendants; `None` for
    /// everywhere.
    #[serde(default)]
    pub on: Option<String>,
}

impl Grant {
    /// `actor` holds `role` everywhere.
    pub fn everywhere(actor: impl Into<String>, role: impl Into<String>) -> Grant {
        Grant {
            actor: actor.into(),
            role: role.into(),
            on: None,
        }
    }

    /// `actor` holds `role` on `instance` and its descendants.
    pub fn on(
        actor: impl Into<String>,
        role: impl Into<String>,
        instance: impl Into<String>,
    ) -> Grant {
        Grant {
            actor: actor.into(),
            role: role.into(),
            on: Some(instance.into()),
        }
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actor = crate::id::escape(&self.actor);
        let role = crate::id::escape(&self.role);
        match &self.on {
            None => write!(f, "{actor} as {role} everywhere"),
            Some(on) => write!(
                f,
                "{actor} as {role} on {} and its descendants",
                crate::id::escape(on)
            ),
        }
    }
}

/// Whether an event grants or revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A grant is recorded.
    Grant,
    /// A grant is revoked.
    Revoke,
}

impl Change {
    /// The change an event of `kind` records, if it is an access event.
    pub fn of(kind: EventKind) -> Option<Change> {
        match kind {
            EventKind::Grant => Some(Change::Grant),
            EventKind::Revoke => Some(Change::Revoke),
            _ => None,
        }
    }

    /// The kind of event that records this change.
    pub fn kind(self) -> EventKind {
        match self {
            Change::Grant => EventKind::Grant,
            Change::Revoke => EventKind::Revoke,
        }
    }

    /// The event name recorded (`grant` or `revoke`).
    pub fn name(self) -> &'static str {
        match self {
            Change::Grant => "grant",
            Change::Revoke => "revoke",
        }
    }
}

/// Why a change of grants is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccessError {
    /// The actor changing grants is not an admin.
    NotAdmin {
        /// The actor.
        actor: String,
    },
    /// The grant is recorded already.
    AlreadyGranted {
        /// The grant.
        grant: Grant,
    },
    /// The grant to revoke is not held.
    NotGranted {
        /// The grant.
        grant: Grant,
    },
    /// The grant is the last global admin grant.
    LastAdmin {
        /// The grant.
        grant: Grant,
    },
    /// The grant names the engine's own `system` actor or role.
    Reserved {
        /// The grant.
        grant: Grant,
    },
    /// A key is registered to the engine's own `system` actor.
    ReservedKey {
        /// The key.
        key: crate::ActorKey,
    },
    /// The key text is not an Ed25519 note key.
    BadKey {
        /// The key.
        key: crate::ActorKey,
        /// What is wrong with it.
        message: String,
    },
    /// The actor holds this key already, or held it and it was retired
    /// (a retired key is never registered again).
    KeyKnown {
        /// The key.
        key: crate::ActorKey,
    },
    /// The key to retire is not held by the actor.
    KeyNotHeld {
        /// The key.
        key: crate::ActorKey,
    },
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::NotAdmin { actor } => write!(
                f,
                "{} may not change grants: only an actor acting as `{ADMIN_ROLE}` that holds \
                 a global `{ADMIN_ROLE}` grant may (or anyone acting as `{ADMIN_ROLE}` before \
                 the first admin is granted); ask an admin",
                crate::id::escape(actor)
            ),
            AccessError::AlreadyGranted { grant } => {
                write!(f, "{grant} is granted already; nothing to do")
            }
            AccessError::NotGranted { grant } => write!(
                f,
                "{grant} is not granted, so it cannot be revoked; list the grants with \
                 `strive grants`"
            ),
            AccessError::LastAdmin { grant } => write!(
                f,
                "{grant} is the last global `{ADMIN_ROLE}` grant; grant another admin first"
            ),
            AccessError::Reserved { grant } => write!(
                f,
                "{grant} names `{SYSTEM_ROLE}`, the engine's own actor and role, which no \
                 grant gives"
            ),
            AccessError::ReservedKey { key } => write!(
                f,
                "`{SYSTEM_ROLE}` is the engine's own actor, which signs nothing; register {}'s \
                 key to another actor",
                crate::id::escape(&key.vkey)
            ),
            AccessError::BadKey { key, message } => write!(
                f,
                "{} is not an actor's public key ({message}); give the vkey `strive key \
                 generate` printed",
                crate::id::escape(&key.vkey)
            ),
            AccessError::KeyKnown { key } => write!(
                f,
                "{} holds or held the key {} already (a retired key is never registered \
                 again); generate a new key",
                crate::id::escape(&key.actor),
                crate::id::escape(&key.vkey)
            ),
            AccessError::KeyNotHeld { key } => write!(
                f,
                "{} does not hold the key {}, so it cannot be retired; list the keys with \
                 `strive key list`",
                crate::id::escape(&key.actor),
                crate::id::escape(&key.vkey)
            ),
        }
    }
}

impl std::error::Error for AccessError {}

/// What the rules read: whether a grant is held, and how many global admin
/// grants there are. The engine reads its stored grants; an auditor an
/// [`Access`] replayed from the log.
pub trait AccessView {
    /// What reading can fail with.
    type Error;

    /// Whether `grant` is held now.
    fn holds(&self, grant: &Grant) -> Result<bool, Self::Error>;

    /// How many global [`ADMIN_ROLE`] grants are held now.
    fn admins(&self) -> Result<u64, Self::Error>;
}

/// The first role `actor` claims without holding it, as the grant that is
/// missing (limited to the instance acted on, when there is one). `scope`
/// is the instance acted on followed by its ancestors, nearest first; it
/// is empty for global subjects (deployments), which need global grants.
pub fn missing<V: AccessView>(
    view: &V,
    actor: &Actor,
    scope: &[String],
) -> Result<Option<Grant>, V::Error> {
    if *actor == Actor::system() {
        return Ok(None);
    }
    'roles: for role in &actor.roles {
        let mut grant = Grant::everywhere(actor.id.clone(), role.clone());
        if view.holds(&grant)? {
            continue;
        }
        for instance in scope {
            grant.on = Some(instance.clone());
            if view.holds(&grant)? {
                continue 'roles;
            }
        }
        grant.on = scope.first().cloned();
        return Ok(Some(grant));
    }
    Ok(None)
}

/// Whether `actor` may change grants: it acts as [`ADMIN_ROLE`], and holds
/// a global admin grant or nobody does yet.
pub fn may_administer<V: AccessView>(view: &V, actor: &Actor) -> Result<bool, V::Error> {
    if !actor.roles.iter().any(|role| role == ADMIN_ROLE) {
        return Ok(false);
    }
    if view.admins()? == 0 {
        return Ok(true);
    }
    view.holds(&Grant::everywhere(actor.id.clone(), ADMIN_ROLE))
}

/// Checks that `by` may make `change` to `grant` now. The outer error is
/// the view's; the inner one the refusal.
pub fn check_change<V: AccessView>(
    view: &V,
    change: Change,
    grant: &Grant,
    by: &Actor,
) -> Result<Result<(), AccessError>, V::Error> {
    let reserved = |text: &str| crate::id::skeleton(text) == crate::id::skeleton(SYSTEM_ROLE);
    if reserved(&grant.actor) || reserved(&grant.role) {
        return Ok(Err(AccessError::Reserved {
            grant: grant.clone(),
        }));
    }
    if !may_administer(view, by)? {
        return Ok(Err(AccessError::NotAdmin {
            actor: by.id.clone(),
        }));
    }
    let held = view.holds(grant)?;
    Ok(match change {
        Change::Grant if held => Err(AccessError::AlreadyGranted {
            grant: grant.clone(),
        }),
        Change::Revoke if !held => Err(AccessError::NotGranted {
            grant: grant.clone(),
        }),
        Change::Revoke if is_global_admin(grant) && view.admins()? <= 1 => {
            Err(AccessError::LastAdmin {
                grant: grant.clone(),
            })
        }
        _ => Ok(()),
    })
}

/// Whether `grant` is a global admin grant (which the admin count counts).
pub fn is_global_admin(grant: &Grant) -> bool {
    grant.role == ADMIN_ROLE && grant.on.is_none()
}

/// When and by whom a held grant was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The log position of the grant event.
    pub since: u64,
    /// The admin who granted it.
    pub by: String,
}

/// The grants held at one log position, replayed from the access chain: what
/// an auditor checks each event against.
#[derive(Debug, Clone, Default)]
pub struct Access {
    held: BTreeMap<Grant, Held>,
    admins: u64,
    /// Actors' keys by (actor, key id): held (with the vkey) or retired.
    keys: BTreeMap<(String, String), crate::KeyState>,
}

impl Access {
    /// No grants.
    pub fn new() -> Access {
        Access::default()
    }

    /// Applies a change already checked (or recorded): a grant made at log
    /// position `gseq` by `by`, or a revocation.
    pub fn apply(&mut self, change: Change, grant: &Grant, gseq: u64, by: &str) {
        let global_admin = is_global_admin(grant);
        match change {
            Change::Grant => {
                let held = Held {
                    since: gseq,
                    by: by.to_owned(),
                };
                if self.held.insert(grant.clone(), held).is_none() && global_admin {
                    self.admins += 1;
                }
            }
            Change::Revoke => {
                if self.held.remove(grant).is_some() && global_admin {
                    self.admins = self.admins.saturating_sub(1);
                }
            }
        }
    }

    /// Applies a key change already checked (or recorded). A key whose
    /// text is not a note key is ignored: no signature can name it.
    pub fn apply_key(&mut self, change: crate::KeyChange, key: &crate::ActorKey) {
        let Ok(id) = key.key_id() else {
            return;
        };
        let state = match change {
            crate::KeyChange::Register => crate::KeyState::Held(key.vkey.clone()),
            crate::KeyChange::Retire => crate::KeyState::Retired,
        };
        self.keys.insert((key.actor.clone(), id), state);
    }

    /// Every grant held, in order, with when it was made.
    pub fn grants(&self) -> impl Iterator<Item = (&Grant, &Held)> {
        self.held.iter()
    }

    /// Whether no grant was ever applied or all were revoked.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

impl AccessView for Access {
    type Error = Infallible;

    fn holds(&self, grant: &Grant) -> Result<bool, Infallible> {
        Ok(self.held.contains_key(grant))
    }

    fn admins(&self) -> Result<u64, Infallible> {
        Ok(self.admins)
    }
}

impl crate::KeyView for Access {
    type Error = Infallible;

    fn key(&self, actor: &str, key: &str) -> Result<Option<crate::KeyState>, Infallible> {
        Ok(self.keys.get(&(actor.to_owned(), key.to_owned())).cloned())
    }

    fn has_key(&self, actor: &str) -> Result<bool, Infallible> {
        let first = (actor.to_owned(), String::new());
        Ok(self
            .keys
            .range(first..)
            .take_while(|((holder, _), _)| holder == actor)
            .any(|(_, state)| matches!(state, crate::KeyState::Held(_))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T>(result: Result<T, Infallible>) -> T {
        match result {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    #[test]
    fn an_instance_grant_covers_descendants_and_not_siblings() {
        let mut access = Access::new();
        access.apply(
            Change::Grant,
            &Grant::on("li", "branch_secretary", "org-07"),
            3,
            "admin",
        );
        let li = Actor::new("li", &["branch_secretary"]);
        let member = ["m-1".to_owned(), "org-07".to_owned(), "root".to_owned()];
        assert_eq!(ok(missing(&access, &li, &member)), None);
        let sibling = ["org-08".to_owned(), "root".to_owned()];
        assert_eq!(
            ok(missing(&access, &li, &sibling)),
            Some(Grant::on("li", "branch_secretary", "org-08"))
        );
        assert_eq!(
            ok(missing(&access, &li, &[])),
            Some(Grant::everywhere("li", "branch_secretary"))
        );
        assert_eq!(ok(missing(&access, &Actor::system(), &[])), None);
    }

    #[test]
    fn the_first_admin_bootstraps_then_only_admins_change_grants() {
        let mut access = Access::new();
        let root = Actor::new("root", &[ADMIN_ROLE]);
        let first = Grant::everywhere("root", ADMIN_ROLE);
        assert_eq!(
            ok(check_change(&access, Change::Grant, &first, &root)),
            Ok(())
        );
        access.apply(Change::Grant, &first, 1, "root");
        // Claiming admin is no longer enough once an admin is granted.
        let other = Actor::new("eve", &[ADMIN_ROLE]);
        let grant = Grant::everywhere("eve", "chief");
        assert!(matches!(
            ok(check_change(&access, Change::Grant, &grant, &other)),
            Err(AccessError::NotAdmin { .. })
        ));
        assert_eq!(
            ok(check_change(&access, Change::Grant, &grant, &root)),
            Ok(())
        );
        assert!(matches!(
            ok(check_change(&access, Change::Grant, &first, &root)),
            Err(AccessError::AlreadyGranted { .. })
        ));
        assert!(matches!(
            ok(check_change(&access, Change::Revoke, &first, &root)),
            Err(AccessError::LastAdmin { .. })
        ));
        assert!(matches!(
            ok(check_change(&access, Change::Revoke, &grant, &root)),
            Err(AccessError::NotGranted { .. })
        ));
        let system = Grant::everywhere("li", SYSTEM_ROLE);
        assert!(matches!(
            ok(check_change(&access, Change::Grant, &system, &root)),
            Err(AccessError::Reserved { .. })
        ));
    }

    #[test]
    fn the_payload_form_is_stable() {
        let text = serde_json::to_string(&Grant::on("li", "chief", "org-1")).expect("json");
        assert_eq!(text, r#"{"actor":"li","role":"chief","on":"org-1"}"#);
        let global = serde_json::to_string(&Grant::everywhere("li", "chief")).expect("json");
        assert_eq!(global, r#"{"actor":"li","role":"chief","on":null}"#);
    }
}
