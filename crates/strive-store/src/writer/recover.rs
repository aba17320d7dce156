//! Re-deciding recorded events: the log is the source of truth, and the
//! state is what deciding its commands again produces.
//!
//! Three callers: **recovery** at open replays the events after the last
//! write-back into the memtable; **upgrade** (format 1 to 2) and **import**
//! (from an audit bundle) replay a whole log and write it as they go. Each
//! recorded command is rebuilt from its first event, decided by the same
//! code as a new command (`decide.rs`) at the recorded time, and the events
//! that produces must equal the recorded ones byte for byte (the engine's
//! decisions are deterministic in the state, the command and the clock).
//! So a replay also checks every event, against the definitions, the
//! transition function and the chain; a mismatch is refused, never guessed
//! at.

use std::collections::VecDeque;
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::{Map, Value};
use strive_core::{Actor, Change, Definition, EventKind, Workflow};

use crate::error::StorageError;
use crate::keys;
use crate::records::{CommandOptions, InstanceRecord, StoredEvent};

use super::Writer;
use super::decide::{Cmd, Decided, Prepared};
use super::txn::GroupState;

/// How many recorded commands are replayed between two writes.
const REPLAY_GROUP: usize = 512;

impl Writer {
    /// Replays recorded `events`, which must start at this writer's next
    /// position. With `write_log`, they are also appended to the log (an
    /// upgrade or an import); without, the log holds them already (a
    /// recovery). Returns how many events were replayed.
    pub(crate) fn replay_recorded(
        &mut self,
        events: impl Iterator<Item = Result<StoredEvent, StorageError>>,
        write_log: bool,
    ) -> Result<u64, StorageError> {
        // A recorded command was accepted when it was logged, whether or not
        // the engine enforced grants then (that is not recorded), and the
        // check writes nothing: replay does not check grants again.
        // Nor signatures: a recorded signature is kept, byte for byte, not
        // checked again (in a store of several partitions, partition 0's
        // keys may not be rebuilt yet when another partition replays), and
        // a missing one is not asked for; `verify` checks them.
        let enforce = std::mem::replace(&mut self.options.enforce_grants, false);
        let require = std::mem::replace(&mut self.options.require_signatures, false);
        let replaying = std::mem::replace(&mut self.replaying, true);
        let replayed = self.replay_logged(events, write_log);
        self.options.enforce_grants = enforce;
        self.options.require_signatures = require;
        self.replaying = replaying;
        replayed
    }

    fn replay_logged(
        &mut self,
        events: impl Iterator<Item = Result<StoredEvent, StorageError>>,
        write_log: bool,
    ) -> Result<u64, StorageError> {
        let mut events = events.peekable();
        let mut replayed = 0;
        let mut group = GroupState::default();
        let mut commands = 0;
        let mut start = self.next_position;
        while let Some(first) = events.next() {
            let first = first?;
            // The events a command caused follow its first event; they
            // are read now, for the versions its starts took.
            let mut recorded = VecDeque::from([first]);
            while let Some(caused) =
                events.next_if(|e| e.as_ref().is_ok_and(|e| e.event.cause.is_some()))
            {
                recorded.push_back(caused?);
            }
            group.pinned = pinned_versions(&recorded);
            let first = &recorded[0];
            let expected = self.next_position;
            if first.event.gseq != expected {
                return Err(mismatch(
                    first,
                    format!(
                        "the log has position {} where {expected} was due",
                        first.event.gseq
                    ),
                ));
            }
            let (cmd, clock) = self.command_of(first, &group)?;
            let (decided, produced) = self.process(cmd, clock, &mut group);
            group.pinned.clear();
            refuse_refusal(&recorded[0], &decided)?;
            while recorded.len() < produced {
                match events.next() {
                    Some(event) => recorded.push_back(event?),
                    None => break,
                }
            }
            let made = &group.events[group.events.len() - produced..];
            check_same(made, &recorded)?;
            replayed += produced as u64;
            commands += 1;
            if commands == REPLAY_GROUP || group.unlogged {
                self.settle(std::mem::take(&mut group), start, write_log)?;
                start = self.next_position;
                commands = 0;
            }
        }
        self.settle(group, start, write_log)?;
        Ok(replayed)
    }

    /// Makes a replayed group part of the state (and of the log).
    fn settle(
        &mut self,
        group: GroupState,
        start: u64,
        write_log: bool,
    ) -> Result<(), StorageError> {
        let mut group = group;
        let claims = std::mem::take(&mut group.claims);
        let settled = self.settle_claimed(group, start, write_log);
        self.shared.release(&claims);
        settled
    }

    fn settle_claimed(
        &mut self,
        group: GroupState,
        start: u64,
        write_log: bool,
    ) -> Result<(), StorageError> {
        if group.events.is_empty() && group.writes.is_empty() {
            return Ok(());
        }
        if write_log {
            self.apply(group, start)?;
            return Ok(());
        }
        self.memtable().extend(group.writes);
        self.cache.extend(group.instances);
        for (workflow, version) in group.installed {
            self.shared
                .install(workflow, version, self.next_position - 1);
        }
        Ok(())
    }

    /// The command whose first recorded event is `event`, and its clock.
    fn command_of(
        &self,
        event: &StoredEvent,
        group: &GroupState,
    ) -> Result<(Cmd, Timestamp), StorageError> {
        let e = &event.event;
        if e.cause.is_some() {
            return Err(mismatch(
                event,
                "an event caused by another must follow its cause in the log".to_owned(),
            ));
        }
        // A signature binds the expected sequence it was made with, which
        // only the signature records; the check it passed passes again.
        let options = CommandOptions {
            expected_seq: e.signature.as_ref().and_then(|s| s.expected_seq),
            command_id: e.command_id.clone(),
            signature: e.signature.clone(),
        };
        let cmd = match e.kind {
            EventKind::Deploy => Cmd::Deploy {
                items: vec![prepared(event)?],
                actor: e.actor.clone(),
            },
            EventKind::Start => Cmd::Start {
                workflow: e.workflow.clone(),
                instance: e.instance.clone(),
                actor: e.actor.clone(),
                data: match e.payload.get("data") {
                    Some(Value::Object(data)) => data.clone(),
                    _ => Map::new(),
                },
                parent: e
                    .payload
                    .get("parent")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                options,
            },
            EventKind::Grant | EventKind::Revoke => Cmd::Access {
                change: match e.kind {
                    EventKind::Grant => Change::Grant,
                    _ => Change::Revoke,
                },
                grant: super::access::recorded_grant(&e.payload)
                    .map_err(|message| mismatch(event, message))?,
                actor: e.actor.clone(),
            },
            EventKind::RegisterKey | EventKind::RetireKey => Cmd::Key {
                change: match e.kind {
                    EventKind::RegisterKey => strive_core::KeyChange::Register,
                    _ => strive_core::KeyChange::Retire,
                },
                key: super::access::recorded_key(&e.payload)
                    .map_err(|message| mismatch(event, message))?,
                actor: e.actor.clone(),
            },
            // One event per migrated instance, each decided again on its
            // own: the plan in its payload moves just that instance, and
            // a migration is deterministic in the instance and the plan.
            EventKind::Migrate => Cmd::Migrate {
                plan: std::sync::Arc::new(
                    strive_core::MigrationPlan::from_payload(&e.payload)
                        .map_err(|error| mismatch(event, error.to_string()))?,
                ),
                instances: vec![e.instance.clone()],
                actor: e.actor.clone(),
            },
            // The operation asked of this instance; its descendants'
            // events (caused by this one) are decided again with it.
            EventKind::Lifecycle => Cmd::Lifecycle {
                instance: e.instance.clone(),
                op: e
                    .event
                    .parse()
                    .map_err(|error: strive_core::UnknownOperation| {
                        mismatch(event, error.to_string())
                    })?,
                actor: e.actor.clone(),
                reason: strive_core::lifecycle_reason(&e.payload)
                    .unwrap_or_default()
                    .to_owned(),
                options,
            },
            EventKind::Fire => match self.deadline_key(event, group)? {
                Some(key) => Cmd::Deadline {
                    key,
                    instance: e.instance.clone(),
                },
                None => Cmd::Fire {
                    instance: e.instance.clone(),
                    event: e.event.clone(),
                    actor: e.actor.clone(),
                    payload: e.payload.clone(),
                    options,
                },
            },
        };
        Ok((cmd, e.at))
    }

    /// The deadline entry a recorded event fired, if it is the engine's
    /// firing of its instance's pending deadline.
    fn deadline_key(
        &self,
        event: &StoredEvent,
        group: &GroupState,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let e = &event.event;
        if e.actor != Actor::system() {
            return Ok(None);
        }
        let Some(record) = self.record(&e.instance, group)? else {
            return Ok(None);
        };
        Ok(record
            .due
            .as_ref()
            .filter(|due| due.event == e.event)
            .map(|due| keys::deadline(due.at.as_microsecond(), &e.instance)))
    }

    /// An instance record as the replay has it so far.
    fn record(
        &self,
        id: &str,
        group: &GroupState,
    ) -> Result<Option<Arc<InstanceRecord>>, StorageError> {
        if let Some(record) = group
            .instances
            .get(id)
            .map(|saved| &saved.record)
            .or_else(|| self.cache.get(id))
        {
            return Ok(Some(record.clone()));
        }
        let key = keys::key(keys::INSTANCE, &[id]);
        let bytes = match group.writes.get(&key) {
            Some(value) => value.clone(),
            None => self.shared.memtables.get(&*self.backend, &key)?,
        };
        match bytes {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(|r| Some(Arc::new(r)))
                .map_err(|e| StorageError::Corrupt {
                    key: keys::show(&key),
                    message: e.to_string(),
                }),
        }
    }
}

/// The definition a recorded deploy event carries, compiled.
fn prepared(event: &StoredEvent) -> Result<Prepared, StorageError> {
    let e = &event.event;
    let definition: Definition = serde_json::from_value(e.payload.clone())
        .map_err(|error| mismatch(event, format!("its definition does not parse: {error}")))?;
    let workflow = Workflow::compile(definition, e.definition_hash.clone()).map_err(|error| {
        mismatch(
            event,
            format!("its definition does not compile: {}", error.message),
        )
    })?;
    if strive_core::definition_hash(&e.payload) != e.definition_hash {
        return Err(mismatch(
            event,
            "its definition does not have the hash it records".to_owned(),
        ));
    }
    Ok(Prepared {
        workflow: Arc::new(workflow),
        value: e.payload.clone(),
    })
}

fn refuse_refusal(event: &StoredEvent, decided: &Decided) -> Result<(), StorageError> {
    let refusal = match decided {
        Decided::Deploy(Err(error)) => error.to_string(),
        Decided::Command(Err(error)) => error.to_string(),
        Decided::Deadline(Err(error)) => error.to_string(),
        Decided::Migrate(Err(error)) => error.to_string(),
        Decided::Deadline(Ok(None)) => "the deadline it fires is not pending".to_owned(),
        Decided::Deploy(Ok(infos)) if infos.iter().all(|i| i.unchanged) => {
            "it deploys a definition that was already deployed".to_owned()
        }
        Decided::Command(Ok(outcome)) if outcome.replayed => {
            "it reuses a command id already recorded".to_owned()
        }
        _ => return Ok(()),
    };
    Err(mismatch(
        event,
        format!("the engine refuses it when its command is decided again: {refusal}"),
    ))
}

/// Checks that re-deciding produced exactly the recorded events.
/// The version each workflow's instances were started on by one recorded
/// command (its start events, its children's and any its notifications
/// spawned): what `Txn::latest` gives while the command is decided again.
fn pinned_versions(recorded: &VecDeque<StoredEvent>) -> std::collections::HashMap<String, u32> {
    recorded
        .iter()
        .filter(|e| e.event.kind == EventKind::Start)
        .map(|e| (e.event.workflow.clone(), e.event.version))
        .collect()
}

fn check_same(
    made: &[super::txn::Appended],
    recorded: &VecDeque<StoredEvent>,
) -> Result<(), StorageError> {
    for (i, made) in made.iter().enumerate() {
        let Some(recorded) = recorded.get(i) else {
            return Err(StorageError::Corrupt {
                key: format!("event {}", made.position),
                message: "the log ends where its command produced more events".to_owned(),
            });
        };
        if made.bytes != recorded.bytes {
            return Err(mismatch(
                recorded,
                "it differs from what its command produces when decided again".to_owned(),
            ));
        }
        if hex::encode(made.digest) != recorded.hash {
            return Err(mismatch(
                recorded,
                "its stored hash is not the hash of its bytes".to_owned(),
            ));
        }
    }
    if recorded.len() > made.len() {
        return Err(mismatch(
            &recorded[made.len()],
            "its command does not produce it when decided again".to_owned(),
        ));
    }
    Ok(())
}

fn mismatch(event: &StoredEvent, message: String) -> StorageError {
    StorageError::Corrupt {
        key: format!(
            "event {} ({} #{})",
            event.event.gseq, event.event.instance, event.event.seq
        ),
        message,
    }
}
