//! Audit work over a stored log: replay (re-running the transition function
//! over the recorded events and checking it reaches the recorded results),
//! verify (hashes and chain links over the stored bytes), export (JSONL).
//!
//! The events are read straight from the store's `e` records (key layout in
//! `docs/storage.md`), as an auditor's tool does with a closed store.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{Map, Value};
use strive_core::{Command, Definition, Event, EventKind, Instance, Workflow};
use strive_store::{Backend, SledBackend};

use crate::Fallible;

/// Every stored event, as (gseq, stored value = 32-byte hash + bytes),
/// passed to `visit` in global order.
pub fn scan(backend: &SledBackend, mut visit: impl FnMut(&[u8]) -> Fallible<()>) -> Fallible<()> {
    for entry in backend.range(b"e", b"f") {
        let (_, value) = entry?;
        visit(&value)?;
    }
    Ok(())
}

/// The state a replay keeps: compiled definitions and every instance.
#[derive(Default)]
pub struct Replay {
    workflows: HashMap<String, HashMap<u32, Arc<Workflow>>>,
    instances: HashMap<String, Instance>,
    /// Children per parent, by (workflow, stage): what guards read.
    children: HashMap<String, HashMap<(String, String), u64>>,
    pub events: u64,
}

impl Replay {
    /// Applies one event, checking that the transition function reproduces
    /// it.
    pub fn apply(&mut self, event: &Event, hash: &str) -> Fallible<()> {
        self.events += 1;
        match event.kind {
            EventKind::Deploy => {
                let definition: Definition = serde_json::from_value(event.payload.clone())?;
                let hash = strive_core::definition_hash(&event.payload);
                if hash != event.definition_hash {
                    return Err(format!("deploy {}: definition hash differs", event.gseq).into());
                }
                let workflow = Workflow::compile(definition, hash)?;
                self.workflows
                    .entry(event.workflow.clone())
                    .or_default()
                    .insert(event.version, Arc::new(workflow));
            }
            EventKind::Start => {
                let workflow = self.workflow(event)?;
                let empty = Map::new();
                let data = event.payload["data"].as_object().unwrap_or(&empty);
                let parent = event.payload["parent"].as_str();
                let mut instance = workflow
                    .new_instance(&event.instance, event.version, data, parent, event.at)
                    .map_err(|r| format!("start {}: {r}", event.gseq))?;
                if instance.stage != event.to {
                    return Err(format!("start {}: stage differs", event.gseq).into());
                }
                instance.seq = 1;
                instance.head = hash.to_owned();
                if let Some(parent) = parent {
                    *self
                        .children
                        .entry(parent.to_owned())
                        .or_default()
                        .entry((instance.workflow.clone(), instance.stage.clone()))
                        .or_default() += 1;
                }
                self.instances.insert(event.instance.clone(), instance);
            }
            EventKind::Fire => {
                let workflow = self.workflow(event)?;
                let summary = self.summary(&event.instance);
                let current = self
                    .instances
                    .get_mut(&event.instance)
                    .ok_or_else(|| format!("fire {}: unknown instance", event.gseq))?;
                if current.head != event.prev || current.seq + 1 != event.seq {
                    return Err(format!("fire {}: chain broken", event.gseq).into());
                }
                let command = Command {
                    event: &event.event,
                    actor: &event.actor,
                    payload: &event.payload,
                    now: event.at,
                };
                let accepted = workflow
                    .fire(current, &command, &summary)
                    .map_err(|r| format!("fire {}: refused on replay: {r}", event.gseq))?;
                if accepted.to != event.to || accepted.effects != event.effects {
                    return Err(format!("fire {}: outcome differs on replay", event.gseq).into());
                }
                let mut next = workflow.advance(current, &accepted, event.at);
                next.head.clear();
                next.head.push_str(hash);
                *current = next;
                let next = &*current;
                if accepted.moves()
                    && let Some(parent) = &next.parent
                    && let Some(counts) = self.children.get_mut(parent)
                {
                    if let Some(count) =
                        counts.get_mut(&(next.workflow.clone(), accepted.from.clone()))
                    {
                        *count = count.saturating_sub(1);
                    }
                    *counts
                        .entry((next.workflow.clone(), next.stage.clone()))
                        .or_default() += 1;
                }
            }
        }
        Ok(())
    }

    fn workflow(&self, event: &Event) -> Fallible<Arc<Workflow>> {
        Ok(self
            .workflows
            .get(&event.workflow)
            .and_then(|versions| versions.get(&event.version))
            .cloned()
            .ok_or_else(|| format!("event {}: definition not deployed", event.gseq))?)
    }

    /// The `children` value guards read, as the engine builds it.
    fn summary(&self, parent: &str) -> Value {
        let Some(counts) = self.children.get(parent) else {
            return Value::Null;
        };
        let mut summary = Map::new();
        for ((workflow, stage), count) in counts {
            if *count == 0 {
                continue;
            }
            let entry = summary
                .entry(workflow.clone())
                .or_insert_with(|| serde_json::json!({"total": 0, "stages": {}}));
            let total = entry["total"].as_u64().unwrap_or(0) + count;
            entry["total"] = Value::from(total);
            entry["stages"][stage] = Value::from(*count);
        }
        Value::Object(summary)
    }
}

/// Replay from the store: read, decode, re-run. Returns (events, seconds).
pub fn replay(backend: &SledBackend) -> Fallible<(u64, f64)> {
    let start = Instant::now();
    let mut replay = Replay::default();
    scan(backend, |value| {
        let (hash, bytes) = value.split_at(32);
        let event = Event::decode(bytes)?;
        replay.apply(&event, &hex::encode(hash))
    })?;
    Ok((replay.events, start.elapsed().as_secs_f64()))
}

/// The replay loop alone, over up to `limit` events decoded beforehand.
pub fn replay_core(backend: &SledBackend, limit: usize) -> Fallible<(u64, f64)> {
    let mut decoded: Vec<(Event, String)> = Vec::new();
    for entry in backend.range(b"e", b"f").take(limit) {
        let (_, value) = entry?;
        let (hash, bytes) = value.split_at(32);
        decoded.push((Event::decode(bytes)?, hex::encode(hash)));
    }
    let start = Instant::now();
    let mut replay = Replay::default();
    for (event, hash) in &decoded {
        replay.apply(event, hash)?;
    }
    Ok((replay.events, start.elapsed().as_secs_f64()))
}

/// The fields of an event's head that chain links need.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    instance: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    prev: Cow<'a, str>,
}

/// The canonical encoding starts `{"v":N,"gseq":N,"instance":"...",
/// "seq":N,"prev":"<64 hex>",` (fields in declaration order, see
/// `strive_core::Event`): read those from the prefix without parsing the
/// rest. `None` when the prefix is not in that form (an instance id with
/// an escape, say); the caller then parses the whole event.
fn fast_head(bytes: &[u8]) -> Option<(&str, u64, [u8; 32])> {
    fn number(bytes: &[u8], at: &mut usize) -> Option<u64> {
        let start = *at;
        let mut value = 0u64;
        while let Some(digit) = bytes.get(*at).filter(|b| b.is_ascii_digit()) {
            value = value
                .checked_mul(10)?
                .checked_add(u64::from(digit - b'0'))?;
            *at += 1;
        }
        (*at > start).then_some(value)
    }
    fn literal(bytes: &[u8], at: &mut usize, text: &[u8]) -> Option<()> {
        bytes.get(*at..*at + text.len()).filter(|b| *b == text)?;
        *at += text.len();
        Some(())
    }
    let mut at = 0;
    literal(bytes, &mut at, b"{\"v\":")?;
    number(bytes, &mut at)?;
    literal(bytes, &mut at, b",\"gseq\":")?;
    number(bytes, &mut at)?;
    literal(bytes, &mut at, b",\"instance\":\"")?;
    let start = at;
    let length = bytes
        .get(start..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\')?;
    if bytes[start + length] != b'"' {
        return None;
    }
    let instance = std::str::from_utf8(&bytes[start..start + length]).ok()?;
    at = start + length + 1;
    literal(bytes, &mut at, b",\"seq\":")?;
    let seq = number(bytes, &mut at)?;
    literal(bytes, &mut at, b",\"prev\":\"")?;
    let mut prev = [0u8; 32];
    hex::decode_to_slice(bytes.get(at..at + 64)?, &mut prev).ok()?;
    bytes.get(at + 64).filter(|b| **b == b'"')?;
    Some((instance, seq, prev))
}

/// What a verify pass found.
pub struct Verified {
    pub events: u64,
    pub bytes: u64,
    pub seconds: f64,
}

/// Recomputes every event's hash over its stored bytes and checks every
/// chain link (`prev` is the subject's previous hash, `seq` counts up).
pub fn verify(backend: &SledBackend) -> Fallible<Verified> {
    let start = Instant::now();
    let mut heads: HashMap<String, ([u8; 32], u64)> = HashMap::new();
    let (mut events, mut total) = (0u64, 0u64);
    scan(backend, |value| {
        let (stored, bytes) = value.split_at(32);
        let digest = strive_core::event_digest(bytes);
        if digest.as_slice() != stored {
            return Err(format!("event {}: hash mismatch", events + 1).into());
        }
        let parsed;
        let (instance, seq, prev) = match fast_head(bytes) {
            Some((instance, seq, prev)) => (Cow::Borrowed(instance), seq, prev),
            None => {
                parsed = serde_json::from_slice::<Head<'_>>(bytes)?;
                let mut prev = [0u8; 32];
                hex::decode_to_slice(parsed.prev.as_bytes(), &mut prev)?;
                (parsed.instance.clone(), parsed.seq, prev)
            }
        };
        match heads.get_mut(instance.as_ref()) {
            Some((last, last_seq)) => {
                if *last != prev || *last_seq + 1 != seq {
                    return Err(format!("{instance}: chain broken at {seq}").into());
                }
                *last = digest;
                *last_seq = seq;
            }
            None => {
                if prev != [0u8; 32] || seq != 1 {
                    return Err(format!("{instance}: chain does not start at 1").into());
                }
                heads.insert(instance.into_owned(), (digest, seq));
            }
        }
        events += 1;
        total += bytes.len() as u64;
        Ok(())
    })?;
    Ok(Verified {
        events,
        bytes: total,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Writes every event as a JSON line `{"gseq", "hash", "event"}`, with the
/// stored bytes embedded as they are. Returns (events, seconds).
pub fn export(backend: &SledBackend, to: &Path) -> Fallible<(u64, f64)> {
    let start = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(to)?);
    let mut events = 0u64;
    let mut hex_buffer = [0u8; 64];
    for entry in backend.range(b"e", b"f") {
        let (key, value) = entry?;
        let gseq = u64::from_be_bytes(key.get(1..9).ok_or("short key")?.try_into()?);
        let (hash, bytes) = value.split_at(32);
        hex::encode_to_slice(hash, &mut hex_buffer)?;
        write!(out, "{{\"gseq\":{gseq},\"hash\":\"")?;
        out.write_all(&hex_buffer)?;
        out.write_all(b"\",\"event\":")?;
        out.write_all(bytes)?;
        out.write_all(b"}\n")?;
        events += 1;
    }
    out.flush()?;
    Ok((events, start.elapsed().as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_head_reads_what_serde_reads() {
        let (bytes, _) = crate::fixture::sample_records();
        let (instance, seq, prev) = fast_head(&bytes).expect("canonical prefix");
        let head: Head<'_> = serde_json::from_slice(&bytes).expect("parses");
        assert_eq!(instance, head.instance);
        assert_eq!(seq, head.seq);
        assert_eq!(hex::encode(prev), head.prev);
        // An escaped id falls back to the full parse.
        let escaped = String::from_utf8(bytes)
            .expect("utf-8")
            .replace("order-00000042", "order-\\\"42");
        assert!(fast_head(escaped.as_bytes()).is_none());
    }
}
