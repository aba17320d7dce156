//! Grants in the writer (issue #11): deciding a grant or a revocation as an
//! event of the access chain (`@access`), and, when the engine enforces
//! grants, refusing a command whose actor does not hold a role it claims.
//! The rules are `strive_core::access`'s; this module only reads and
//! writes the stored grants (`keys::GRANT`) and the chain's head
//! (`keys::ACCESS`) through the command's [`Txn`], so that a grant decided
//! earlier in the same group counts, and a refused grant writes nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strive_core::access::{self, AccessView, Change, Grant};
use strive_core::{
    ACCESS_SUBJECT, Actor, ActorKey, Event, EventKind, GENESIS, KeyChange, KeyState, KeyView,
};

use crate::error::{CommandError, DeployError, StorageError};
use crate::keys;
use crate::records::{Outcome, STORE_FORMAT};

use super::decide::{Cmd, Decided};
use super::txn::{Txn, to_json};

/// How many ancestors a scope walk follows before it gives up: a bound
/// against a cycle in damaged records, far above any real tree.
const MAX_ANCESTORS: usize = 1024;

/// A held grant as stored under its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GrantRecord {
    pub(crate) v: u32,
    /// The log position of the grant event.
    pub(crate) since: u64,
    pub(crate) at: Timestamp,
    /// The admin who granted it.
    pub(crate) by: String,
}

/// The head of the access chain, and the number of global admin grants
/// (which the bootstrap rule reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AccessHead {
    pub(crate) v: u32,
    pub(crate) seq: u64,
    pub(crate) head: String,
    pub(crate) at: Option<Timestamp>,
    pub(crate) admins: u64,
}

/// Reads stored state through some layer: a command's [`Txn`], or the
/// engine's committed view.
pub(crate) trait Read {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// The parent of instance `id`, if it exists and has one.
    fn parent(&self, id: &str) -> Result<Option<String>, StorageError> {
        let key = keys::key(keys::INSTANCE, &[id]);
        let Some(bytes) = self.read(&key)? else {
            return Ok(None);
        };
        serde_json::from_slice::<crate::records::InstanceRecord>(&bytes)
            .map(|record| record.instance.parent)
            .map_err(|e| StorageError::Corrupt {
                key: keys::show(&key),
                message: e.to_string(),
            })
    }
}

impl Read for Txn<'_> {
    fn read(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.get(key)
    }

    /// Through the decoded records the writer keeps: an enforced command's
    /// scope walk decodes no JSON for instances it has seen.
    fn parent(&self, id: &str) -> Result<Option<String>, StorageError> {
        Ok(self
            .load_instance(id)?
            .and_then(|record| record.instance.parent.clone()))
    }
}

/// The stored grants as the core's rules read them.
pub(crate) struct View<'r, R: Read + ?Sized>(pub(crate) &'r R);

impl<R: Read + ?Sized> AccessView for View<'_, R> {
    type Error = StorageError;

    fn holds(&self, grant: &Grant) -> Result<bool, StorageError> {
        Ok(self.0.read(&keys::grant(grant))?.is_some())
    }

    fn admins(&self) -> Result<u64, StorageError> {
        Ok(head(self.0)?.admins)
    }
}

/// The access chain's head as stored (empty before the first grant).
pub(crate) fn head<R: Read + ?Sized>(store: &R) -> Result<AccessHead, StorageError> {
    let key = [keys::ACCESS];
    match store.read(&key)? {
        None => Ok(AccessHead::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
            key: keys::show(&key),
            message: e.to_string(),
        }),
    }
}

/// The instance `first` and its ancestors, nearest first, starting the walk
/// at `parent` (the parent `first` has or will have).
pub(crate) fn scope<R: Read + ?Sized>(
    store: &R,
    first: &str,
    parent: Option<String>,
) -> Result<Vec<String>, StorageError> {
    let mut scope = vec![first.to_owned()];
    let mut next = parent;
    while let Some(id) = next.take() {
        if scope.len() > MAX_ANCESTORS || scope.contains(&id) {
            break;
        }
        next = store.parent(&id)?;
        scope.push(id);
    }
    Ok(scope)
}

/// When the engine enforces grants: the refusal of a command whose actor
/// does not hold a role it claims, or `None` when it may go on.
pub(crate) fn refuse(txn: &Txn<'_>, cmd: &Cmd) -> Option<Decided> {
    match cmd {
        Cmd::Deploy { actor, .. } => match access::missing(&View(txn), actor, &[]) {
            Ok(None) => None,
            Ok(Some(missing)) => Some(Decided::Deploy(Err(DeployError::NotGranted { missing }))),
            Err(error) => Some(Decided::Deploy(Err(error.into()))),
        },
        Cmd::Start {
            instance,
            actor,
            parent,
            ..
        } => command(txn, actor, instance, || Ok(parent.clone())),
        Cmd::Fire {
            instance, actor, ..
        }
        | Cmd::Lifecycle {
            instance, actor, ..
        } => command(txn, actor, instance, || txn.parent(instance)),
        // Migrating instances is an admin's act on the workflow: like a
        // deployment, it needs the actor's roles granted globally.
        Cmd::Migrate { actor, .. } => match access::missing(&View(txn), actor, &[]) {
            Ok(None) => None,
            Ok(Some(missing)) => Some(Decided::Migrate(Err(CommandError::NotGranted { missing }))),
            Err(error) => Some(Decided::Migrate(Err(error.into()))),
        },
        Cmd::Access { .. } | Cmd::Key { .. } | Cmd::Deadline { .. } => None,
    }
}

fn command(
    txn: &Txn<'_>,
    actor: &Actor,
    instance: &str,
    parent: impl FnOnce() -> Result<Option<String>, StorageError>,
) -> Option<Decided> {
    let checked = parent()
        .and_then(|parent| scope(txn, instance, parent))
        .and_then(|scope| access::missing(&View(txn), actor, &scope));
    match checked {
        Ok(None) => None,
        Ok(Some(missing)) => Some(Decided::Command(Err(CommandError::NotGranted { missing }))),
        Err(error) => Some(Decided::Command(Err(error.into()))),
    }
}

/// Decides a grant or a revocation by `actor` at `clock`: checks it by the
/// core's rules, appends its event to the access chain and updates the
/// stored grants.
pub(crate) fn change(
    txn: &mut Txn<'_>,
    change: Change,
    grant: &Grant,
    actor: &Actor,
    clock: Timestamp,
) -> Result<Outcome, CommandError> {
    access::check_change(&View(&*txn), change, grant, actor)?
        .map_err(|reason| CommandError::Access { reason })?;
    let payload = serde_json::to_value(grant).unwrap_or(Value::Null);
    let admin = u64::from(access::is_global_admin(grant));
    let admins = |count: u64| match change {
        Change::Grant => count + admin,
        Change::Revoke => count.saturating_sub(admin),
    };
    let link = Link {
        kind: change.kind(),
        name: change.name(),
        payload,
    };
    let (outcome, at) = append_to_chain(txn, link, actor, clock, admins)?;
    match change {
        Change::Grant => {
            let record = GrantRecord {
                v: STORE_FORMAT,
                since: outcome.gseq,
                at,
                by: actor.id.clone(),
            };
            txn.put(keys::grant(grant), to_json(&record));
        }
        Change::Revoke => txn.delete(keys::grant(grant)),
    }
    Ok(outcome)
}

/// One event of the access chain to append: its kind, name and payload.
struct Link {
    kind: EventKind,
    name: &'static str,
    payload: Value,
}

/// Appends `link` to the access chain as acted by `actor` at `clock`, and
/// writes the chain's new head, with the global admin count `admins` makes
/// of the old one. Returns the outcome and the event's time.
fn append_to_chain(
    txn: &mut Txn<'_>,
    link: Link,
    actor: &Actor,
    clock: Timestamp,
    admins: impl FnOnce(u64) -> u64,
) -> Result<(Outcome, Timestamp), CommandError> {
    let last = head(&*txn)?;
    // Time never runs backwards within a chain.
    let at = last.at.map_or(clock, |previous| clock.max(previous));
    let seq = last.seq + 1;
    let event = Event {
        v: strive_core::EVENT_FORMAT,
        gseq: 0,
        partition: 0,
        instance: ACCESS_SUBJECT.to_owned(),
        seq,
        prev: if last.seq == 0 {
            GENESIS.to_owned()
        } else {
            last.head
        },
        kind: link.kind,
        workflow: String::new(),
        version: 0,
        definition_hash: String::new(),
        from: None,
        event: link.name.to_owned(),
        transition: None,
        to: String::new(),
        actor: actor.clone(),
        at,
        command_id: None,
        payload: link.payload,
        effects: Vec::new(),
        cause: None,
        signature: None,
    };
    let (gseq, hash) = txn.append(event);
    let head = AccessHead {
        v: STORE_FORMAT,
        seq,
        head: hash.clone(),
        at: Some(at),
        admins: admins(last.admins),
    };
    txn.put(vec![keys::ACCESS], to_json(&head));
    let outcome = Outcome {
        instance: ACCESS_SUBJECT.to_owned(),
        event: link.name.to_owned(),
        stage: String::new(),
        seq,
        gseq,
        partition: txn.partition,
        hash,
        finished: false,
        replayed: false,
    };
    Ok((outcome, at))
}

// -- actors' keys ------------------------------------------------------------

/// Every key an actor was registered, as stored under `keys::ACTOR_KEYS`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ActorKeys {
    pub(crate) v: u32,
    pub(crate) keys: Vec<KeyRecord>,
}

/// One of an actor's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    /// The key id, 8 hex digits.
    pub(crate) id: String,
    /// The public key as text.
    pub(crate) vkey: String,
    /// The log position of the registration.
    pub(crate) since: u64,
    pub(crate) at: Timestamp,
    /// The admin who registered it.
    pub(crate) by: String,
    /// The log position of the retirement, once retired.
    #[serde(default)]
    pub(crate) retired: Option<u64>,
}

/// The keys `actor` was registered, as stored.
pub(crate) fn actor_keys<R: Read + ?Sized>(
    store: &R,
    actor: &str,
) -> Result<ActorKeys, StorageError> {
    let key = keys::key(keys::ACTOR_KEYS, &[actor]);
    match store.read(&key)? {
        None => Ok(ActorKeys::default()),
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
            key: keys::show(&key),
            message: e.to_string(),
        }),
    }
}

impl<R: Read + ?Sized> KeyView for View<'_, R> {
    type Error = StorageError;

    fn key(&self, actor: &str, key: &str) -> Result<Option<KeyState>, StorageError> {
        let keys = actor_keys(self.0, actor)?;
        Ok(keys
            .keys
            .into_iter()
            .find(|k| k.id == key)
            .map(|k| match k.retired {
                Some(_) => KeyState::Retired,
                None => KeyState::Held(k.vkey),
            }))
    }

    fn has_key(&self, actor: &str) -> Result<bool, StorageError> {
        Ok(actor_keys(self.0, actor)?
            .keys
            .iter()
            .any(|k| k.retired.is_none()))
    }
}

/// Decides a key's registration or retirement by `actor` at `clock`, as an
/// event of the access chain, by the core's rules.
pub(crate) fn change_key(
    txn: &mut Txn<'_>,
    change: KeyChange,
    key: &ActorKey,
    actor: &Actor,
    clock: Timestamp,
) -> Result<Outcome, CommandError> {
    strive_core::check_key_change(&View(&*txn), change, key, actor)?
        .map_err(|reason| CommandError::Access { reason })?;
    // The rules parsed the key already; a key id is what they checked.
    let id = key.key_id().unwrap_or_default();
    let link = Link {
        kind: change.kind(),
        name: change.name(),
        payload: serde_json::to_value(key).unwrap_or(Value::Null),
    };
    let (outcome, at) = append_to_chain(txn, link, actor, clock, |admins| admins)?;
    let mut stored = actor_keys(&*txn, &key.actor)?;
    stored.v = STORE_FORMAT;
    match change {
        KeyChange::Register => stored.keys.push(KeyRecord {
            id,
            vkey: key.vkey.clone(),
            since: outcome.gseq,
            at,
            by: actor.id.clone(),
            retired: None,
        }),
        KeyChange::Retire => {
            for held in stored.keys.iter_mut().filter(|k| k.id == id) {
                held.retired = Some(outcome.gseq);
            }
        }
    }
    txn.put(keys::key(keys::ACTOR_KEYS, &[&key.actor]), to_json(&stored));
    Ok(outcome)
}

/// Checks the signature on `event`, a command's first event about to be
/// appended, against the actor's stored keys, by the core's rule.
pub(crate) fn check_signed(
    txn: &Txn<'_>,
    event: &Event,
    require: bool,
) -> Result<(), CommandError> {
    strive_core::check_signature(&View(txn), event, require)?
        .map_err(|reason| CommandError::Signature { reason })
}

/// The key a recorded key event carries.
pub(crate) fn recorded_key(payload: &Value) -> Result<ActorKey, String> {
    serde_json::from_value(payload.clone()).map_err(|e| format!("its key does not parse: {e}"))
}

/// The grant a recorded access event carries.
pub(crate) fn recorded_grant(payload: &Value) -> Result<Grant, String> {
    serde_json::from_value(payload.clone()).map_err(|e| format!("its grant does not parse: {e}"))
}
