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
use strive_core::{ACCESS_SUBJECT, Actor, Event, GENESIS};

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
        Cmd::Access { .. } | Cmd::Deadline { .. } => None,
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
        kind: change.kind(),
        workflow: String::new(),
        version: 0,
        definition_hash: String::new(),
        from: None,
        event: change.name().to_owned(),
        transition: None,
        to: String::new(),
        actor: actor.clone(),
        at,
        command_id: None,
        payload: serde_json::to_value(grant).unwrap_or(Value::Null),
        effects: Vec::new(),
        cause: None,
    };
    let (gseq, hash) = txn.append(event);
    let mut admins = last.admins;
    match change {
        Change::Grant => {
            let record = GrantRecord {
                v: STORE_FORMAT,
                since: gseq,
                at,
                by: actor.id.clone(),
            };
            txn.put(keys::grant(grant), to_json(&record));
            admins += u64::from(access::is_global_admin(grant));
        }
        Change::Revoke => {
            txn.delete(keys::grant(grant));
            admins = admins.saturating_sub(u64::from(access::is_global_admin(grant)));
        }
    }
    let head = AccessHead {
        v: STORE_FORMAT,
        seq,
        head: hash.clone(),
        at: Some(at),
        admins,
    };
    txn.put(vec![keys::ACCESS], to_json(&head));
    Ok(Outcome {
        instance: ACCESS_SUBJECT.to_owned(),
        event: change.name().to_owned(),
        stage: String::new(),
        seq,
        gseq,
        partition: txn.partition,
        hash,
        finished: false,
        replayed: false,
    })
}

/// The grant a recorded access event carries.
pub(crate) fn recorded_grant(payload: &Value) -> Result<Grant, String> {
    serde_json::from_value(payload.clone()).map_err(|e| format!("its grant does not parse: {e}"))
}
