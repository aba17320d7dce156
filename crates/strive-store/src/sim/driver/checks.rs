//! The checks of the store against what the clients were told, run after
//! every open and at the end of a run.

use std::collections::BTreeMap;

use super::World;

impl World<'_> {
    /// Every check of the store against the model.
    pub(super) fn check_all(&mut self) -> Result<(), String> {
        self.check_acknowledged()?;
        self.check_instances()?;
        let engine = self.engine()?;
        (self.verify)(engine).map_err(|e| format!("verify failed: {e}"))?;
        // Idempotency records survive: two acknowledged commands with ids,
        // sent again, answer as they first did.
        for _ in 0..2 {
            self.retry_acknowledged()?;
        }
        Ok(())
    }

    /// Every acknowledged event is in the log at its acknowledged position,
    /// with its acknowledged hash.
    fn check_acknowledged(&self) -> Result<(), String> {
        let engine = self.engine()?;
        for ack in &self.model.acks {
            let outcome = &ack.outcome;
            let stored = engine
                .event_in(outcome.partition, outcome.gseq)
                .map_err(|e| format!("reading event {}: {e}", outcome.gseq))?;
            let Some(stored) = stored else {
                return Err(format!(
                    "the acknowledged event {} {} (seq {}) at {}:{} is lost",
                    outcome.instance, outcome.event, outcome.seq, outcome.partition, outcome.gseq
                ));
            };
            if stored.hash != outcome.hash
                || stored.event.instance != outcome.instance
                || stored.event.seq != outcome.seq
            {
                return Err(format!(
                    "position {}:{} holds {} seq {} ({}), not the acknowledged {} seq {} ({})",
                    outcome.partition,
                    outcome.gseq,
                    stored.event.instance,
                    stored.event.seq,
                    stored.hash,
                    outcome.instance,
                    outcome.seq,
                    outcome.hash
                ));
            }
        }
        Ok(())
    }

    /// Every known instance's chain is whole and ends at its snapshot, and
    /// no fired deadline came back.
    fn check_instances(&self) -> Result<(), String> {
        let engine = self.engine()?;
        let mut highest: BTreeMap<&str, u64> = BTreeMap::new();
        for ack in &self.model.acks {
            let seq = highest.entry(ack.outcome.instance.as_str()).or_default();
            *seq = (*seq).max(ack.outcome.seq);
        }
        for id in &self.model.ids {
            let Some(snapshot) = engine.instance(id).map_err(|e| e.to_string())? else {
                return Err(format!("the instance {id} is lost"));
            };
            let history = engine.history(id).map_err(|e| e.to_string())?;
            let mut prev = strive_core::GENESIS.to_owned();
            for (stored, seq) in history.iter().zip(1u64..) {
                if stored.event.seq != seq || stored.event.prev != prev {
                    return Err(format!("the chain of {id} breaks at seq {seq}"));
                }
                prev = stored.hash.clone();
            }
            let instance = &snapshot.instance;
            if history.len() as u64 != instance.seq || prev != instance.head {
                return Err(format!(
                    "the snapshot of {id} is at seq {} but its chain has {} events",
                    instance.seq,
                    history.len()
                ));
            }
            if history
                .last()
                .is_some_and(|last| last.event.to != instance.stage)
            {
                return Err(format!(
                    "the snapshot of {id} is not where its last event left it"
                ));
            }
            if instance.seq < highest.get(id.as_str()).copied().unwrap_or(0) {
                return Err(format!("the snapshot of {id} lost acknowledged events"));
            }
            if let Some(due) = &snapshot.due
                && self
                    .model
                    .fired
                    .contains(&(id.clone(), due.at.as_microsecond()))
            {
                return Err(format!("the fired deadline of {id} due {} is back", due.at));
            }
        }
        Ok(())
    }
}
