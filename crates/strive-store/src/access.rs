//! The engine's grants API (issue #11): recording grants and revocations
//! in the access chain, listing the grants held, and checking an actor
//! against them. The writer decides changes (`writer/access.rs`) by the
//! core's rules (`strive_core::access`).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use strive_core::access::{self, Change, Grant};
use strive_core::{Actor, id};

use crate::engine::Engine;
use crate::error::{CommandError, StorageError};
use crate::keys;
use crate::records::Outcome;
use crate::writer::{
    AccessRead, AccessStore, Cmd, GrantRecord, KeyRecord, Reply, Request, access_scope, actor_keys,
};

/// A grant held, with when and by whom it was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantInfo {
    /// Who holds which role where.
    #[serde(flatten)]
    pub grant: Grant,
    /// The log position of the grant event.
    pub since: u64,
    /// When it was granted.
    pub at: Timestamp,
    /// The admin who granted it.
    pub by: String,
}

/// One of an actor's keys, held or retired, with when and by whom it was
/// registered (issue #11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// The actor who holds (or held) it.
    pub actor: String,
    /// Its id, 8 hex digits: what a signature names it by.
    pub key: String,
    /// The public key as text (a vkey).
    pub vkey: String,
    /// The log position of its registration.
    pub since: u64,
    /// When it was registered.
    pub at: Timestamp,
    /// The admin who registered it.
    pub by: String,
    /// The log position of its retirement, once retired.
    pub retired: Option<u64>,
}

impl KeyInfo {
    fn of(actor: &str, record: KeyRecord) -> KeyInfo {
        KeyInfo {
            actor: actor.to_owned(),
            key: record.id,
            vkey: record.vkey,
            since: record.since,
            at: record.at,
            by: record.by,
            retired: record.retired,
        }
    }
}

impl AccessRead for Engine {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(key)
    }
}

impl Engine {
    /// Records that `grant.actor` holds `grant.role` (everywhere, or on
    /// `grant.on` and its descendants), as an event of the access chain
    /// `@access` acted by `actor`, who must be an admin: acting as `admin`
    /// and holding a global `admin` grant, or anyone acting as `admin`
    /// while nobody holds one yet (the bootstrap). Returns once durable.
    pub fn grant(&self, grant: &Grant, actor: &Actor) -> Result<Outcome, CommandError> {
        self.change_access(Change::Grant, grant, actor)
    }

    /// Revokes a held grant, as an event of the access chain; the same
    /// rule as [`Engine::grant`] says who may. The last global `admin`
    /// grant is not revoked.
    pub fn revoke(&self, grant: &Grant, actor: &Actor) -> Result<Outcome, CommandError> {
        self.change_access(Change::Revoke, grant, actor)
    }

    fn change_access(
        &self,
        change: Change,
        grant: &Grant,
        actor: &Actor,
    ) -> Result<Outcome, CommandError> {
        let actor = crate::guard::caller(actor)?;
        let grant = canonical_grant(grant)?;
        let cmd = Cmd::Access {
            change,
            grant,
            actor,
        };
        // The access chain is a global subject: it lives in partition 0.
        self.send(0, |reply| Request {
            cmd,
            reply: Reply::Command(reply),
        })?
    }

    /// Registers `key` (a public key's text, a vkey: `strive key generate`
    /// prints one) as held by `holder`, as an event of the access chain
    /// acted by `actor`, who must be an admin as for [`Engine::grant`].
    /// From then on the engine checks `holder`'s signatures against it
    /// (and, with `Options::require_signatures`, asks for one). A key is
    /// registered to one actor once; a retired key never again.
    pub fn register_key(
        &self,
        holder: &str,
        key: &strive_core::VerifierKey,
        actor: &Actor,
    ) -> Result<Outcome, CommandError> {
        self.change_key(strive_core::KeyChange::Register, holder, key, actor)
    }

    /// Retires `holder`'s key, as an event of the access chain: signatures
    /// by it are refused from then on, and `verify` reports any by it
    /// later in the log. The same rule as [`Engine::grant`] says who may.
    pub fn retire_key(
        &self,
        holder: &str,
        key: &strive_core::VerifierKey,
        actor: &Actor,
    ) -> Result<Outcome, CommandError> {
        self.change_key(strive_core::KeyChange::Retire, holder, key, actor)
    }

    fn change_key(
        &self,
        change: strive_core::KeyChange,
        holder: &str,
        key: &strive_core::VerifierKey,
        actor: &Actor,
    ) -> Result<Outcome, CommandError> {
        let actor = crate::guard::caller(actor)?;
        let holder = id::canonical(holder).map_err(|error| CommandError::InvalidId {
            id: holder.chars().take(140).collect(),
            reason: error.reason(),
        })?;
        let cmd = Cmd::Key {
            change,
            key: strive_core::ActorKey {
                actor: holder.into_owned(),
                vkey: key.encode(),
            },
            actor,
        };
        // Keys are in the access chain, a global subject: partition 0.
        self.send(0, |reply| Request {
            cmd,
            reply: Reply::Command(reply),
        })?
    }

    /// Every key registered, held or retired, in (actor, registration)
    /// order; only `holder`'s when given.
    pub fn keys(&self, holder: Option<&str>) -> Result<Vec<KeyInfo>, StorageError> {
        if let Some(holder) = holder {
            let stored = actor_keys(self, holder)?;
            return Ok(stored
                .keys
                .into_iter()
                .map(|record| KeyInfo::of(holder, record))
                .collect());
        }
        let mut all = Vec::new();
        for entry in self.scan(&[keys::ACTOR_KEYS]) {
            let (key, value) = entry?;
            let holder = String::from_utf8_lossy(
                key.get(1..key.len().saturating_sub(1)).unwrap_or_default(),
            )
            .into_owned();
            let stored: crate::writer::ActorKeysRecord =
                serde_json::from_slice(&value).map_err(|e| StorageError::Corrupt {
                    key: keys::show(&key),
                    message: e.to_string(),
                })?;
            all.extend(
                stored
                    .keys
                    .into_iter()
                    .map(|record| KeyInfo::of(&holder, record)),
            );
        }
        Ok(all)
    }

    /// The grants held now, in (actor, role, instance) order; only
    /// `actor`'s when given.
    pub fn grants(&self, actor: Option<&str>) -> Result<Vec<GrantInfo>, StorageError> {
        let prefix = match actor {
            Some(actor) => keys::key(keys::GRANT, &[actor]),
            None => vec![keys::GRANT],
        };
        self.scan(&prefix)
            .map(|entry| {
                let (key, value) = entry?;
                let corrupt = |message: String| StorageError::Corrupt {
                    key: keys::show(&key),
                    message,
                };
                let parts: Vec<&[u8]> = key
                    .get(1..)
                    .unwrap_or_default()
                    .split(|&b| b == 0)
                    .collect();
                let text = |i: usize| {
                    String::from_utf8_lossy(parts.get(i).copied().unwrap_or_default()).into_owned()
                };
                let on = text(2);
                let record: GrantRecord =
                    serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?;
                Ok(GrantInfo {
                    grant: Grant {
                        actor: text(0),
                        role: text(1),
                        on: (!on.is_empty()).then_some(on),
                    },
                    since: record.since,
                    at: record.at,
                    by: record.by,
                })
            })
            .collect()
    }

    /// Checks `actor` against the grants held now, as the engine does for a
    /// command when it enforces grants: `Err(CommandError::NotGranted)`
    /// names the first role `actor` claims without a grant, globally or on
    /// `instance` (or one of its ancestors). For services that check before
    /// acting, and for the HTTP server's own admin routes.
    pub fn authorize(&self, actor: &Actor, instance: Option<&str>) -> Result<(), CommandError> {
        let scope = match instance {
            Some(instance) => {
                let parent = AccessRead::parent(self, instance)?;
                access_scope(self, instance, parent)?
            }
            None => Vec::new(),
        };
        match access::missing(&AccessStore(self), actor, &scope)? {
            None => Ok(()),
            Some(missing) => Err(CommandError::NotGranted { missing }),
        }
    }

    /// Whether `actor` may change grants now: it acts as `admin` and holds
    /// a global `admin` grant, or nobody holds one yet.
    pub fn may_administer(&self, actor: &Actor) -> Result<bool, StorageError> {
        access::may_administer(&AccessStore(self), actor)
    }
}

/// A grant's ids in canonical form, refused as ids are when they break the
/// id rule.
fn canonical_grant(grant: &Grant) -> Result<Grant, CommandError> {
    let canonical = |text: &str| {
        id::canonical(text)
            .map(|c| c.into_owned())
            .map_err(|error| CommandError::InvalidId {
                id: text.chars().take(140).collect(),
                reason: error.reason(),
            })
    };
    Ok(Grant {
        actor: canonical(&grant.actor)?,
        role: canonical(&grant.role)?,
        on: grant
            .on
            .as_deref()
            .map(|on| crate::guard::instance_id(on).map(|c| c.into_owned()))
            .transpose()?,
    })
}
