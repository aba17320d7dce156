//! Audit work over a stored log, through the auditor's toolkit
//! (`strive-audit`) as the `strive audit` commands use it: replay
//! (re-running the transition function over the recorded events and
//! checking it reaches the recorded results), verify (hashes, sequence,
//! chain links, Merkle log, replay, snapshots) through the very code of
//! `strive verify` (`strive_audit::store::verify`) on every core and on
//! one, XES export. Plus the integrity check alone (hashes and chain links)
//! over the blocks as the engine stores them (layout in `docs/storage.md`),
//! and, for comparison, replay and verify through `Engine::events` as they
//! read the log before issue #10 item 6 (one decoded `StoredEvent` at a
//! time).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use serde::Deserialize;
use strive_audit::{Replayer, Verifier, VerifyOptions, XesWriter};
use strive_store::{Engine, ListQuery, StorageError, StoredEvent};

use crate::Fallible;
use crate::report::Report;

/// The audit rows, over the store at `path` (`dir` holds the export).
pub fn rows(report: &mut Report, path: &Path, dir: &Path, repeats: usize) -> Fallible<()> {
    let engine = Engine::open(path, strive_store::Options::default())?;
    let mut rates: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut stored_events = 0;
    for _ in 0..repeats {
        let checked = verify_integrity(&engine)?;
        rates
            .entry("integrity")
            .or_default()
            .push(checked.mb_per_s());
    }
    let jobs = std::thread::available_parallelism().map_or(1, usize::from);
    for _ in 0..repeats {
        let (events, seconds) = replay(&engine, 0)?;
        stored_events = events;
        rates
            .entry("replay")
            .or_default()
            .push(events as f64 / seconds);
        let (events, seconds) = replay(&engine, 1)?;
        rates
            .entry("replay.seq")
            .or_default()
            .push(events as f64 / seconds);
        let (events, seconds) = replay_events(&engine)?;
        rates
            .entry("replay.events")
            .or_default()
            .push(events as f64 / seconds);
        let (events, seconds) = replay_core(&engine, 200_000)?;
        rates
            .entry("core")
            .or_default()
            .push(events as f64 / seconds);
        let verified = verify(&engine, 0)?;
        rates.entry("verify").or_default().push(verified.mb_per_s());
        rates
            .entry("verify.ev")
            .or_default()
            .push(verified.events as f64 / verified.seconds);
        rates
            .entry("verify.seq")
            .or_default()
            .push(verify(&engine, 1)?.mb_per_s());
        rates
            .entry("verify.events")
            .or_default()
            .push(verify_events(&engine)?.mb_per_s());
        let out = dir.join("export.xes");
        let (events, seconds) = export_xes(&engine, &out)?;
        rates
            .entry("xes")
            .or_default()
            .push(events as f64 / seconds);
        std::fs::remove_file(out)?;
    }
    drop(engine);
    let mut take = |key: &str| rates.remove(key).unwrap_or_default();
    let s = "audit";
    report.add(
        "audit.replay",
        s,
        "replay: read blocks + decode + re-run (every core)",
        "ev/s",
        take("replay"),
    );
    report.note(format!(
        "strive_audit::replay_runs over Engine::blocks, {jobs} threads, {stored_events} events"
    ));
    report.add(
        "audit.replay.seq",
        s,
        "replay: read blocks + decode + re-run (one core)",
        "ev/s",
        take("replay.seq"),
    );
    report.add(
        "audit.replay.events",
        s,
        "replay over Engine::events (before #10.6)",
        "ev/s",
        take("replay.events"),
    );
    report.note("one decoded StoredEvent at a time, as replay read the log before");
    report.add(
        "audit.replay_core",
        s,
        "replay: re-run only (decoded)",
        "ev/s",
        take("core"),
    );
    report.note("strive_audit::Replayer over up to 200k events decoded beforehand");
    report.add(
        "audit.verify.mb",
        s,
        "verify (strive audit verify, every core)",
        "MB/s",
        take("verify"),
    );
    report.note(format!(
        "--jobs 0 ({jobs} threads): hashes, gseq, chains, Merkle log, replay, snapshots"
    ));
    report.add(
        "audit.verify.events",
        s,
        "verify (strive audit verify, every core)",
        "ev/s",
        take("verify.ev"),
    );
    report.add(
        "audit.verify.seq.mb",
        s,
        "verify --jobs 1 (one core)",
        "MB/s",
        take("verify.seq"),
    );
    report.add(
        "audit.verify.before.mb",
        s,
        "verify over Engine::events (before #10.6)",
        "MB/s",
        take("verify.events"),
    );
    report.note("Verifier::decoded_event per StoredEvent, one core");
    report.add(
        "audit.integrity.mb",
        s,
        "integrity only: hashes + chain links",
        "MB/s",
        take("integrity"),
    );
    report.note("SHA-256 of every stored event and its chain link over the blocks, no decode");
    report.add(
        "audit.export.xes",
        s,
        "export XES (strive_audit::XesWriter)",
        "ev/s",
        take("xes"),
    );
    Ok(())
}

/// Every stored event, with its stored digest and exact bytes, passed to
/// `visit` in log order (partition by partition), read a block at a time
/// (`Engine::blocks`).
pub fn scan(
    engine: &Engine,
    mut visit: impl FnMut(&[u8; 32], &[u8]) -> Fallible<()>,
) -> Fallible<()> {
    for partition in 0..engine.partitions() {
        for block in engine.blocks(partition, 1) {
            for (digest, bytes) in block?.events() {
                visit(digest, bytes)?;
            }
        }
    }
    Ok(())
}

/// Replay from the store's blocks on `jobs` threads (0: one per core)
/// through [`strive_audit::replay_runs`]: every event decoded and re-run
/// through the core's transition function, which must reach the recorded
/// result. Returns (events, seconds).
pub fn replay(engine: &Engine, jobs: usize) -> Fallible<(u64, f64)> {
    let start = Instant::now();
    // Replay checks no sequence, so the partitions' logs can follow one
    // another: partition 0 first, whose log holds the deployments.
    let report = strive_audit::replay_runs(
        || (0..engine.partitions()).flat_map(|p| strive_audit::store::runs(engine, p)),
        jobs,
    );
    if let Some(problem) = report.problems.first() {
        return Err(format!("replay found a problem: {problem:?}").into());
    }
    Ok((report.events, start.elapsed().as_secs_f64()))
}

/// Replay as it read the log before issue #10 item 6: every event through
/// `Engine::events` (decoded into a `StoredEvent`, its digest in hex).
/// Returns (events, seconds).
pub fn replay_events(engine: &Engine) -> Fallible<(u64, f64)> {
    let start = Instant::now();
    let mut replayer = Replayer::new();
    let mut events = 0u64;
    for item in all_events(engine) {
        let stored = item?;
        let problems = replayer.apply(&stored.hash, &stored.event);
        if let Some(problem) = problems.first() {
            return Err(format!("replay found a problem: {problem:?}").into());
        }
        events += 1;
    }
    Ok((events, start.elapsed().as_secs_f64()))
}

/// Every stored event through `Engine::events_in`, partition by partition
/// from partition 0 (whose log holds the deployments).
fn all_events(engine: &Engine) -> impl Iterator<Item = Result<StoredEvent, StorageError>> + '_ {
    (0..engine.partitions()).flat_map(|p| engine.events_in(p, 1))
}

/// The replay loop alone ([`strive_audit::Replayer`]), over up to `limit`
/// events read and decoded beforehand. Returns (events, seconds).
pub fn replay_core(engine: &Engine, limit: usize) -> Fallible<(u64, f64)> {
    let decoded: Vec<StoredEvent> = all_events(engine).take(limit).collect::<Result<_, _>>()?;
    let start = Instant::now();
    let mut replayer = Replayer::new();
    for stored in &decoded {
        let problems = replayer.apply(&stored.hash, &stored.event);
        if let Some(problem) = problems.first() {
            return Err(format!("replay found a problem: {problem:?}").into());
        }
    }
    Ok((decoded.len() as u64, start.elapsed().as_secs_f64()))
}

/// What `strive audit verify` does, through its own code
/// (`strive_audit::store::verify`): the log's blocks checked on `jobs` threads
/// (0: one per core; hashes, global sequence, chain links, Merkle log,
/// replay), then every snapshot compared with its replayed state.
pub fn verify(engine: &Engine, jobs: usize) -> Fallible<Verified> {
    let start = Instant::now();
    let report = strive_audit::store::verify(
        engine,
        VerifyOptions {
            jobs,
            ..VerifyOptions::default()
        },
        |_| {},
    );
    Verified::of(&report, start)
}

/// Verify as it read the log before issue #10 item 6: every event through
/// `Engine::events`, fed to [`strive_audit::Verifier`] on one thread.
pub fn verify_events(engine: &Engine) -> Fallible<Verified> {
    let start = Instant::now();
    let partitions = engine.partitions();
    let mut verifier = Verifier::new(VerifyOptions {
        expected_size: Some(engine.total_events()),
        expected_sizes: if partitions > 1 {
            (0..partitions).map(|p| engine.last_gseq_in(p)).collect()
        } else {
            Vec::new()
        },
        ..VerifyOptions::default()
    });
    for partition in 0..partitions {
        verifier.partition(partition);
        for item in engine.events_in(partition, 1) {
            let stored = item?;
            verifier.decoded_event(&stored.hash, &stored.bytes, &stored.event);
        }
    }
    let mut after: Option<String> = None;
    loop {
        let page = engine.list(&ListQuery {
            after: after.take(),
            limit: Some(512),
            ..ListQuery::default()
        })?;
        for snapshot in &page.items {
            verifier.snapshot(&snapshot.instance, snapshot.due.as_ref());
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let report = verifier.finish();
    Verified::of(&report, start)
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

impl Verified {
    /// The figures of a verification that started at `start`, which must
    /// have found nothing.
    fn of(report: &strive_audit::Report, start: Instant) -> Fallible<Verified> {
        if !report.ok() {
            return Err(format!("verify found problems: {:?}", report.problems.first()).into());
        }
        Ok(Verified {
            events: report.events,
            bytes: report.bytes,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds
    }
}

/// The integrity check alone: recomputes every event's hash over its
/// stored bytes and checks every chain link (`prev` is the subject's
/// previous hash, `seq` counts up), reading only the head of each event.
pub fn verify_integrity(engine: &Engine) -> Fallible<Verified> {
    let start = Instant::now();
    let mut heads: HashMap<String, ([u8; 32], u64)> = HashMap::new();
    let (mut events, mut total) = (0u64, 0u64);
    scan(engine, |stored, bytes| {
        let digest = strive_core::event_digest(bytes);
        if digest != *stored {
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

/// The XES export as `strive audit export --format xes` does it: instances
/// in id order, each with its history, through [`strive_audit::XesWriter`].
/// Returns (events, seconds).
pub fn export_xes(engine: &Engine, to: &Path) -> Fallible<(u64, f64)> {
    let start = Instant::now();
    let out = BufWriter::with_capacity(1 << 20, std::fs::File::create(to)?);
    let mut writer = XesWriter::new(out, "bench")?;
    let mut after: Option<String> = None;
    loop {
        let page = engine.list(&ListQuery {
            after: after.take(),
            limit: Some(512),
            ..ListQuery::default()
        })?;
        for snapshot in &page.items {
            let history = engine.history(&snapshot.instance.id)?;
            writer.trace(
                &snapshot.instance,
                history.iter().map(|e| (e.hash.as_str(), &e.event)),
            )?;
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let (mut out, events) = writer.finish()?;
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
