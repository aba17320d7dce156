//! The simulated clients: starts, fires, bursts decided as one group,
//! flusher steps, retries and deadline sweeps, and how their answers are
//! recorded in the model.

use std::collections::BTreeMap;
use std::sync::mpsc::TryRecvError;
use std::time::Duration;

use serde_json::Value;
use strive_core::Actor;

use crate::error::{CommandError, StorageError};
use crate::records::{Clock, CommandOptions, Outcome};
use crate::writer::Cmd;

use super::{ACTORS, Ack, Command, Footprint, InFlight, World, from_allows};
use crate::sim::payload::{Values, map_keys};

impl World<'_> {
    pub(super) fn client_step(&mut self) -> Result<(), String> {
        match self.rng.u32(..100) {
            0..8 => self.start_root(),
            8..50 => self.fire_some(),
            50..58 => self.burst(),
            58..63 => self.flush_some(),
            63..71 => self.retry_acknowledged(),
            71..76 => self.retry_unknown(),
            76..86 => self.fire_due(),
            _ => {
                let minutes = self.rng.u64(1..=360);
                self.clock.advance(Duration::from_secs(minutes * 60));
                Ok(())
            }
        }
    }

    pub(super) fn values(&mut self, known_keys: Vec<String>) -> Values<'_> {
        Values {
            rng: &mut self.rng,
            now: self.clock.now(),
            next_id: &mut self.next_id,
            known_keys,
            fresh: Vec::new(),
        }
    }

    pub(super) fn command_options(&mut self, seq: u64) -> CommandOptions {
        let expected_seq = match self.rng.u32(..10) {
            0..4 => None,
            // A client that raced another one and lost.
            4 => Some(seq + 1),
            _ => Some(seq),
        };
        let command_id = self.rng.bool().then(|| {
            self.next_id += 1;
            format!("cmd-{}", self.next_id)
        });
        CommandOptions {
            expected_seq,
            command_id,
            signature: None,
        }
    }

    pub(super) fn start_root(&mut self) -> Result<(), String> {
        let ids: Vec<String> = self.definitions.keys().cloned().collect();
        let Some(workflow) = ids.get(self.rng.usize(..ids.len().max(1))).cloned() else {
            return Ok(());
        };
        let declared = self
            .definitions
            .get(&workflow)
            .and_then(|d| d.get("data"))
            .cloned();
        let data = self.values(Vec::new()).fields(declared.as_ref(), false);
        self.next_id += 1;
        let instance = format!("r{}", self.next_id);
        let mut options = self.command_options(0);
        options.expected_seq = options.expected_seq.map(|_| 0);
        let actor = Actor::new(ACTORS[self.rng.usize(..ACTORS.len())], &["leading_group"]);
        let command = Command::Start {
            workflow,
            instance,
            actor,
            data,
            options,
        };
        self.send(command, Vec::new())
    }

    /// Fires an event the instance's stage allows (or, now and then, one
    /// it does not) with a generated payload.
    pub(super) fn fire_some(&mut self) -> Result<(), String> {
        match self.pick_fire()? {
            Some((command, fresh)) => self.send(command, fresh),
            None => self.start_root(),
        }
    }

    /// Several clients' fires arrive at once: each partition's share is
    /// decided as one group, the later commands against the earlier ones'
    /// writes (two on one instance with the same expected sequence number:
    /// the second loses the race).
    pub(super) fn burst(&mut self) -> Result<(), String> {
        let mut groups: BTreeMap<u32, Vec<(Command, Vec<String>, Cmd)>> = BTreeMap::new();
        for _ in 0..self.rng.usize(2..=6) {
            let Some((command, fresh)) = self.pick_fire()? else {
                return self.start_root();
            };
            self.report.commands += 1;
            let Command::Fire {
                instance,
                event,
                actor,
                payload,
                options,
            } = command.clone()
            else {
                continue;
            };
            let engine = self.engine()?;
            match engine.fire_cmd(&instance, &event, &actor, payload, options) {
                Ok((partition, cmd)) => {
                    groups
                        .entry(partition)
                        .or_default()
                        .push((command, fresh, cmd));
                }
                Err(refusal) => self.record(command, fresh, Err(refusal), None)?,
            }
        }
        for (partition, group) in groups {
            let (sent, cmds): (Vec<_>, Vec<_>) = group
                .into_iter()
                .map(|(command, fresh, cmd)| ((command, fresh), cmd))
                .unzip();
            let answers = self
                .engine()?
                .apply_group(partition, cmds)
                .map_err(|e| format!("the inline writer is gone: {e}"))?;
            self.report.bursts += 1;
            for ((command, fresh), answer) in sent.into_iter().zip(answers) {
                self.model.in_flight.push(InFlight {
                    command,
                    fresh,
                    answer,
                });
            }
        }
        Ok(())
    }

    /// The flusher's step: one partition's oldest applied group is flushed
    /// and its callers answered.
    pub(super) fn flush_some(&mut self) -> Result<(), String> {
        let engine = self.engine()?;
        let waiting: Vec<u32> = (0..engine.partitions())
            .filter(|p| engine.groups_waiting(*p).unwrap_or(0) > 0)
            .collect();
        let pick = self.rng.usize(..waiting.len().max(1));
        if let Some(partition) = waiting.get(pick) {
            self.engine()?
                .flush_group(*partition)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Adds to the known instances the children acknowledged fires spawned
    /// (when an engine is open to ask).
    pub(super) fn confirm_children(&mut self) -> Result<(), String> {
        let Some(engine) = &self.engine else {
            return Ok(());
        };
        for child in std::mem::take(&mut self.model.children) {
            if engine
                .instance(&child)
                .map_err(|e| e.to_string())?
                .is_some()
            {
                self.model.ids.insert(child);
            }
        }
        Ok(())
    }

    /// Flushes every waiting group of every partition.
    pub(super) fn flush_all(&mut self) -> Result<(), String> {
        let engine = self.engine()?;
        for partition in 0..engine.partitions() {
            while engine.flush_group(partition).map_err(|e| e.to_string())? {}
        }
        self.collect()
    }

    /// Records every answer that arrived. One whose engine is gone was
    /// never answered: its outcome is unknown.
    pub(super) fn collect(&mut self) -> Result<(), String> {
        let in_flight = std::mem::take(&mut self.model.in_flight);
        for waiting in in_flight {
            match waiting.answer.try_recv() {
                Ok(answer) => self.record(waiting.command, waiting.fresh, answer, None)?,
                Err(TryRecvError::Empty) => self.model.in_flight.push(waiting),
                Err(TryRecvError::Disconnected) => {
                    let error = CommandError::Storage(StorageError::Closed);
                    self.record(waiting.command, waiting.fresh, Err(error), None)?;
                }
            }
        }
        Ok(())
    }

    /// The partition `command` goes to.
    pub(super) fn partition_of(&self, command: &Command) -> Result<Option<u32>, String> {
        let engine = self.engine()?;
        Ok(match command {
            Command::Start { instance, .. } => {
                Some(strive_core::root_partition(instance, engine.partitions()))
            }
            Command::Fire {
                instance,
                event,
                actor,
                payload,
                options,
            } => engine
                .fire_cmd(instance, event, actor, payload.clone(), options.clone())
                .ok()
                .map(|(partition, _)| partition),
        })
    }

    /// A fire a client would send now, and the ids it gives children.
    pub(super) fn pick_fire(&mut self) -> Result<Option<(Command, Vec<String>)>, String> {
        let ids: Vec<&String> = self.model.ids.iter().collect();
        let Some(instance) = ids
            .get(self.rng.usize(..ids.len().max(1)))
            .map(|s| (*s).clone())
        else {
            return Ok(None);
        };
        let Some(snapshot) = self
            .engine()?
            .instance(&instance)
            .map_err(|e| e.to_string())?
        else {
            return Err(format!("the acknowledged instance {instance} is missing"));
        };
        let snapshot = snapshot.instance;
        let transitions: Vec<Value> = self
            .definitions
            .get(&snapshot.workflow)
            .and_then(|d| d.get("transitions"))
            .and_then(Value::as_array)
            .map(|all| {
                all.iter()
                    .filter(|t| self.rng.u32(..20) == 0 || from_allows(t, &snapshot.stage))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let Some(transition) = transitions.get(self.rng.usize(..transitions.len().max(1))) else {
            return Ok(None);
        };
        let event = transition
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or("none");
        let roles: Vec<&str> = transition
            .get("roles")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let role = roles
            .get(self.rng.usize(..roles.len().max(1)))
            .copied()
            .unwrap_or("member");
        let who = if self.rng.u32(..3) == 0 {
            instance.clone()
        } else {
            ACTORS[self.rng.usize(..ACTORS.len())].to_owned()
        };
        let mut values = self.values(map_keys(&snapshot.data));
        let payload = Value::Object(values.fields(transition.get("payload"), false));
        let fresh = std::mem::take(&mut values.fresh);
        let command = Command::Fire {
            instance,
            event: event.to_owned(),
            actor: Actor::new(who, &[role]),
            payload,
            options: self.command_options(snapshot.seq),
        };
        Ok(Some((command, fresh)))
    }

    /// Sends an acknowledged command with a command id again: the answer
    /// must be its original outcome, from its idempotency record.
    pub(super) fn retry_acknowledged(&mut self) -> Result<(), String> {
        let retriable: Vec<usize> = (0..self.model.acks.len())
            .filter(|i| self.model.acks[*i].retry.is_some())
            .collect();
        let Some(index) = retriable
            .get(self.rng.usize(..retriable.len().max(1)))
            .copied()
        else {
            return Ok(());
        };
        self.check_replay(index)
    }

    pub(super) fn check_replay(&mut self, index: usize) -> Result<(), String> {
        let Some(Ack {
            outcome,
            retry: Some(command),
        }) = self.model.acks.get(index)
        else {
            return Ok(());
        };
        let (outcome, command) = (outcome.clone(), command.clone());
        self.report.commands += 1;
        match self.execute(&command) {
            Ok(again) => {
                let expected = Outcome {
                    replayed: true,
                    ..outcome
                };
                if again != expected {
                    return Err(format!(
                        "command {:?} retried answered {again:?}, not its first outcome {expected:?}",
                        command.command_id()
                    ));
                }
                self.report.replayed += 1;
                Ok(())
            }
            Err(CommandError::Storage(_)) => Ok(()),
            Err(error) => Err(format!(
                "command {:?} retried was refused ({error}) though it was acknowledged",
                command.command_id()
            )),
        }
    }

    /// Sends again a command whose first try ended in a failure.
    pub(super) fn retry_unknown(&mut self) -> Result<(), String> {
        if self.model.unknown.is_empty() {
            return Ok(());
        }
        let index = self.rng.usize(..self.model.unknown.len());
        let command = self.model.unknown.swap_remove(index);
        self.send(command, Vec::new())
    }

    pub(super) fn execute(&self, command: &Command) -> Result<Outcome, CommandError> {
        let engine = self
            .engine()
            .map_err(|_| CommandError::Storage(StorageError::Closed))?;
        match command.clone() {
            Command::Start {
                workflow,
                instance,
                actor,
                data,
                options,
            } => engine.start(&workflow, &instance, &actor, data, None, options),
            Command::Fire {
                instance,
                event,
                actor,
                payload,
                options,
            } => engine.fire(&instance, &event, &actor, payload, options),
        }
    }

    /// Sends `command` and records its answer; `fresh` are the ids its
    /// payload gave children it may spawn.
    pub(super) fn send(&mut self, command: Command, fresh: Vec<String>) -> Result<(), String> {
        self.report.commands += 1;
        // The command's partition answers its earlier groups first: those
        // are flushed now, so that the footprint is this command's alone.
        if let Some(partition) = self.partition_of(&command)? {
            while self
                .engine()?
                .flush_group(partition)
                .map_err(|e| e.to_string())?
            {}
            self.collect()?;
        }
        let before = self.footprint(command.instance())?;
        let result = self.execute(&command);
        self.record(command, fresh, result, Some(before))
    }

    /// Records the answer to `command`. A refusal must have changed
    /// nothing: with `before` (the command ran alone), its footprint is
    /// checked against the one taken before it ran.
    pub(super) fn record(
        &mut self,
        command: Command,
        fresh: Vec<String>,
        result: Result<Outcome, CommandError>,
        before: Option<Footprint>,
    ) -> Result<(), String> {
        match result {
            Ok(outcome) if outcome.replayed => {
                // A retry of a command whose first answer was lost: it was
                // durable after all, and is acknowledged now.
                self.report.replayed += 1;
                self.model.ids.insert(outcome.instance.clone());
                let id = command.command_id();
                if !self
                    .model
                    .acks
                    .iter()
                    .any(|a| a.retry.as_ref().and_then(Command::command_id) == id)
                {
                    let outcome = Outcome {
                        replayed: false,
                        ..outcome
                    };
                    self.model.acks.push(Ack {
                        outcome,
                        retry: Some(command),
                    });
                }
                Ok(())
            }
            Ok(outcome) => {
                self.report.acknowledged += 1;
                self.model.ids.insert(outcome.instance.clone());
                self.model.children.extend(fresh);
                self.confirm_children()?;
                let retry = command.command_id().is_some().then_some(command);
                self.model.acks.push(Ack { outcome, retry });
                Ok(())
            }
            Err(CommandError::Storage(_)) => {
                if command.command_id().is_some() {
                    self.model.unknown.push(command);
                }
                Ok(())
            }
            Err(refusal) => {
                self.report.refused += 1;
                if let Some(before) = before
                    && self.footprint(command.instance())? != before
                {
                    return Err(format!(
                        "the refused command {command:?} ({refusal}) changed the store"
                    ));
                }
                Ok(())
            }
        }
    }

    /// What a refused command must leave as it found: the batches applied,
    /// each partition's log and `instance`'s snapshot.
    pub(super) fn footprint(&self, instance: &str) -> Result<Footprint, String> {
        let engine = self.engine()?;
        Ok(Footprint {
            applies: self.backend.counts().applies,
            logs: (0..engine.partitions())
                .map(|p| engine.last_gseq_in(p))
                .collect(),
            snapshot: engine.instance(instance).map_err(|e| e.to_string())?,
        })
    }

    /// Fires the deadlines due now; none may fire twice.
    pub(super) fn fire_due(&mut self) -> Result<(), String> {
        self.report.commands += 1;
        let fired = match self.engine()?.fire_due(self.clock.now()) {
            Ok(fired) => fired,
            Err(_) => return Ok(()),
        };
        for deadline in fired {
            let key = (deadline.instance.clone(), deadline.due.as_microsecond());
            let Ok(outcome) = deadline.result else {
                continue;
            };
            if !self.model.fired.insert(key) {
                return Err(format!(
                    "the deadline of {} due {} fired twice",
                    deadline.instance, deadline.due
                ));
            }
            self.report.deadlines += 1;
            self.report.acknowledged += 1;
            self.model.acks.push(Ack {
                outcome,
                retry: None,
            });
        }
        Ok(())
    }
}
