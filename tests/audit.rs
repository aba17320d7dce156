//! The auditor's toolkit (issue #4) on a real store: replay and time
//! travel, conformance, tamper detection through `strive verify` (one case
//! per kind of tampering, on copies of the store), a randomized mutation
//! test, signed checkpoints, offline bundle verification, the Python
//! verifier printed in `docs/audit.md`, and PM4Py reading the XES and PNML
//! exports.
//!
//! The store is a seeded campaign (three organisations, twelve members)
//! followed by the organisation scenario of `tests/cli.rs`, built once and
//! copied by each test that alters it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::{Map, Value, json};
use strive_audit::{At, Checkpoint, ProblemCode, VerifyOptions};
use strive_store::{
    Actor, Backend, CommandOptions, Engine, Entry, ManualClock, Options, SledBackend, StorageError,
    Write, raw,
};

use crate::cli::{deploy_and_start_o1, scenario, workflow_files};
use crate::util::{copy_dir, strive, text};

/// The shared store, closed, and what is known about it. sled locks a
/// store while it is open, so tests never open it: each works on a copy.
struct Fixture {
    /// The store after the whole run.
    db: PathBuf,
    /// A copy of the store taken after the campaign and before the
    /// organisation scenario: an older backup.
    backup: PathBuf,
    /// `strive checkpoint` of the whole store: what an auditor kept.
    checkpoint: PathBuf,
    /// Events in the store.
    events: u64,
    /// Events in the backup.
    backup_events: u64,
    /// `strive checkpoint` of the backup: an older checkpoint.
    old_checkpoint: PathBuf,
    /// Events of instances (not deployments): what CSV and XES hold.
    instance_events: u64,
}

/// The fixture, in a store of the default number of partitions (4 under
/// `STRIVE_PARTITIONS=4`).
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| build_fixture(Options::default().partitions))
}

/// The fixture in a store of one partition, for the tests that tamper
/// with the log's records below the engine: `strive_store::raw` addresses
/// one log's positions (partition 0's), and their expectations name
/// positions in it. The same store as [`fixture`] when the default is one
/// partition.
fn one_log_fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    if Options::default().partitions == 1 {
        return fixture();
    }
    FIXTURE.get_or_init(|| build_fixture(1))
}

fn build_fixture(partitions: u32) -> Fixture {
    // One directory per test process, since several test runs may share
    // the target directory; those of processes that are gone are removed.
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("audit-fixture-")
            .and_then(|rest| rest.split('-').next())
            && Path::new("/proc/self").exists()
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = tmp.join(format!(
        "audit-fixture-{}-p{partitions}",
        std::process::id()
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).expect("remove an old fixture");
    }
    std::fs::create_dir_all(&dir).expect("fixture dir");
    let db = dir.join("db");
    let backup = dir.join("backup");
    let clock = Arc::new(ManualClock::new(strive_campaign::demo_start()));
    let options = || Options {
        clock: clock.clone(),
        partitions,
        ..Options::default()
    };
    let engine = Engine::open(&db, options()).expect("open");
    let summary = strive_campaign::run_demo(
        &engine,
        &clock,
        &strive_campaign::DemoOptions::new(3, 12).with_seed(7),
        |_| {},
    )
    .expect("the campaign runs");
    // The campaign ends: the leading group closes the members, then the
    // organisations (whose guard waits for their members), then the
    // bureau, so that every trace reaches a terminal stage.
    clock.set(summary.finished + jiff::SignedDuration::from_hours(1));
    let leading_group = Actor::new("leading-group", &["leading_group"]);
    for workflow in ["member-pledge", "org-campaign", "bureau-campaign"] {
        let page = engine
            .list(&strive_store::ListQuery {
                workflow: Some(workflow.to_owned()),
                ..strive_store::ListQuery::default()
            })
            .expect("list");
        for snapshot in &page.items {
            engine
                .fire(
                    &snapshot.instance.id,
                    "close",
                    &leading_group,
                    Value::Null,
                    CommandOptions::default(),
                )
                .unwrap_or_else(|e| panic!("close {}: {e}", snapshot.instance.id));
        }
    }
    let backup_events = engine.total_events();
    drop(engine);
    copy_dir(&db, &backup);

    // Later: the document workflow is deployed and one more organisation
    // goes through the whole campaign, rectification included.
    clock.set(summary.finished + jiff::SignedDuration::from_hours(24));
    let engine = Engine::open(&db, options()).expect("reopen");
    deploy_and_start_o1(&engine);
    for s in scenario() {
        s.fire(&engine)
            .unwrap_or_else(|e| panic!("{} {}: {e}", s.instance, s.event));
    }
    // And a document goes through section review.
    engine
        .start(
            "document-approval",
            "doc-1",
            &Actor::new("wang", &["author"]),
            Map::new(),
            None,
            CommandOptions::default(),
        )
        .expect("start the document");
    for (event, actor, payload) in [
        (
            "submit",
            Actor::new("wang", &["author"]),
            json!({"title": "关于表彰先进基层党组织的决定", "body": "……"}),
        ),
        (
            "approve",
            Actor::new("li", &["section_chief"]),
            json!({"opinion": "同意"}),
        ),
    ] {
        engine
            .fire("doc-1", event, &actor, payload, CommandOptions::default())
            .unwrap_or_else(|e| panic!("doc-1 {event}: {e}"));
    }
    let events = engine.total_events();
    let instance_events = every_event(&engine)
        .filter(|e| e.as_ref().is_ok_and(|e| !e.event.instance.starts_with('@')))
        .count() as u64;
    drop(engine);
    let checkpoint = dir.join("checkpoint");
    let output = strive(&db, &["checkpoint"]);
    assert_success(&output);
    std::fs::write(&checkpoint, &output.stdout).expect("write the checkpoint");
    let old_checkpoint = dir.join("old-checkpoint");
    let output = strive(&backup, &["checkpoint"]);
    assert_success(&output);
    std::fs::write(&old_checkpoint, &output.stdout).expect("write the checkpoint");
    Fixture {
        db,
        backup,
        checkpoint,
        events,
        backup_events,
        old_checkpoint,
        instance_events,
    }
}

/// Every partition's events in turn, from partition 0 (whose log holds
/// the deployments): the whole log, however many partitions it has.
fn every_event(
    engine: &Engine,
) -> impl Iterator<Item = Result<strive_store::StoredEvent, strive_store::StorageError>> + '_ {
    (0..engine.partitions()).flat_map(move |p| engine.events_in(p, 1))
}

/// A private copy of the fixture's store.
fn copy_of_store(dir: &Path) -> PathBuf {
    copy_of(fixture(), dir)
}

/// A private copy of `fixture`'s store.
fn copy_of(fixture: &Fixture, dir: &Path) -> PathBuf {
    let db = dir.join("db");
    copy_dir(&fixture.db, &db);
    db
}

fn assert_success(output: &Output) {
    assert!(output.status.success(), "{}", text(output));
}

// --- Raw access to a copy of the store, below the engine. ---

fn string_key(prefix: u8, parts: &[&str]) -> Vec<u8> {
    let mut key = vec![prefix];
    for part in parts {
        key.extend_from_slice(part.as_bytes());
        key.push(0);
    }
    key
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// The event stored at `gseq` in `backend`, as `digest || bytes` and
/// decoded (format 2 keeps events in blocks: `strive_store::raw` reads and
/// rewrites them per log position, as a forger with the files could).
fn raw_event(backend: &dyn Backend, gseq: u64) -> (Vec<u8>, strive_core::Event) {
    let value = raw::event(backend, gseq)
        .expect("read")
        .expect("the event exists");
    let event = strive_core::Event::decode(&value[32..]).expect("decodes");
    (value, event)
}

/// Replaces (or with `None` removes) the event at `gseq`.
fn put_event(backend: &dyn Backend, gseq: u64, value: Option<Vec<u8>>) {
    raw::put_event(backend, gseq, value).expect("rewrite the log");
}

/// Opens a closed store's sled directory to alter it.
fn with_raw(db: &Path, alter: impl FnOnce(&SledBackend)) {
    let backend = SledBackend::open(db).expect("open the copy raw");
    alter(&backend);
    backend.flush().expect("flush");
}

/// Runs `strive verify` and returns its exit code and output.
fn verify_cli(db: &Path, since: Option<&Path>) -> (i32, String) {
    let mut args = vec!["verify".to_owned()];
    if let Some(since) = since {
        args.push("--since".to_owned());
        args.push(since.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = strive(db, &args);
    (output.status.code().unwrap_or(-1), text(&output))
}

/// The store's events of `instance`, as (gseq, seq) from the chain index.
fn chain_of(backend: &dyn Backend, instance: &str) -> Vec<(u64, u64)> {
    raw::chain(backend, instance).expect("read the chain")
}

// --- The store as it is. ---

#[test]
fn the_untouched_store_verifies_and_every_export_runs() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of_store(dir.path());
    let (code, out) = verify_cli(&db, Some(&f.checkpoint));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("everything holds"), "{out}");
    assert!(out.contains(&format!("{} events", f.events)), "{out}");
    // An older checkpoint is a prefix of today's log.
    let (code, out) = verify_cli(&db, Some(&f.old_checkpoint));
    assert_eq!(code, 0, "{out}");

    let csv = strive(&db, &["export", "--format", "csv"]);
    assert_success(&csv);
    let rows = String::from_utf8_lossy(&csv.stdout).matches("\r\n").count() as u64;
    assert_eq!(
        rows,
        1 + f.instance_events,
        "a header and one row per event"
    );
    let xes = strive(&db, &["export", "--format", "xes"]);
    assert_success(&xes);
    let xes = String::from_utf8_lossy(&xes.stdout);
    assert_eq!(xes.matches("<event>").count() as u64, f.instance_events);
    assert!(xes.contains("key=\"org:resource\""));
    // From a later position: only the instances with events since (o1, m1
    // and doc-1, started after the backup), no empty traces.
    // With several partitions, `--since` is a position in each partition's
    // log: the traces are those of the instances with an event there.
    let since = if Options::default().partitions == 1 {
        f.backup_events + 1
    } else {
        3
    };
    let recent = strive(
        &db,
        &["export", "--format", "xes", "--since", &since.to_string()],
    );
    assert_success(&recent);
    let recent = String::from_utf8_lossy(&recent.stdout);
    let engine = Engine::open_existing(&db, Options::default()).expect("open");
    let mut later: Vec<String> = every_event(&engine)
        .map(|e| e.expect("read").event)
        .filter(|e| e.gseq >= since && !e.instance.starts_with('@'))
        .map(|e| e.instance)
        .collect();
    later.sort();
    later.dedup();
    drop(engine);
    if Options::default().partitions == 1 {
        assert_eq!(later.len(), 3, "o1, m1 and doc-1: {later:?}");
    }
    assert_eq!(recent.matches("<trace>").count(), later.len(), "{recent}");
    let pnml = strive(&db, &["export-model", "org-campaign", "--format", "pnml"]);
    assert_success(&pnml);
    let pnml = String::from_utf8_lossy(&pnml.stdout);
    assert!(pnml.contains("<initialMarking>") && pnml.contains("<finalmarkings>"));
}

#[test]
fn replay_at_any_point_equals_the_history_and_the_end_equals_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of_store(dir.path());
    let engine = Engine::open(&db, Options::default()).expect("open");
    let events = || every_event(&engine).map(|e| e.map(|e| (e.hash, e.bytes)));
    for id in ["o1", "m1"] {
        let history = engine.history(id).expect("history");
        assert!(history.len() > 5, "{id} has a history");
        for stored in &history {
            let at_seq =
                strive_audit::replay(events(), id, At::Seq(stored.event.seq)).expect("replays");
            assert!(at_seq.problems.is_empty(), "{:?}", at_seq.problems);
            assert_eq!(at_seq.instance.seq, stored.event.seq);
            assert_eq!(at_seq.instance.stage, stored.event.to);
            assert_eq!(at_seq.instance.head, stored.hash);
            assert_eq!(at_seq.gseq, stored.event.gseq);
            // At a time: the last event recorded at or before it.
            let last = history
                .iter()
                .rfind(|e| e.event.at <= stored.event.at)
                .expect("at least this one");
            let at_time =
                strive_audit::replay(events(), id, At::Time(stored.event.at)).expect("replays");
            assert_eq!(at_time.instance.seq, last.event.seq);
            assert_eq!(at_time.instance.head, last.hash);
        }
        let end = strive_audit::replay(events(), id, At::End).expect("replays");
        let snapshot = engine.instance(id).expect("read").expect("exists");
        assert_eq!(
            strive_audit::differences(&end.instance, &snapshot.instance),
            Vec::<String>::new()
        );
        assert_eq!(end.instance, snapshot.instance);
    }
    // The campaign's instances too, and the CLI says the same.
    let page = engine
        .list(&strive_store::ListQuery::default())
        .expect("list");
    assert!(page.items.len() > 10);
    for snapshot in &page.items {
        let end = strive_audit::replay(events(), &snapshot.instance.id, At::End).expect("replays");
        assert_eq!(end.instance, snapshot.instance, "{}", snapshot.instance.id);
    }
    let third = engine.history("o1").expect("history")[2].clone();
    drop(engine);
    let output = strive(&db, &["replay", "o1", "--at-seq", "3", "--format", "json"]);
    assert_success(&output);
    let value: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(value["instance"]["stage"], json!(third.event.to));
    assert_eq!(value["instance"]["head"], json!(third.hash));
    // A child alone, whose parent the replay does not follow.
    for id in ["o1", "m1"] {
        let output = strive(&db, &["replay", id]);
        assert_success(&output);
        assert!(
            text(&output).contains("equals the stored snapshot"),
            "{}",
            text(&output)
        );
    }
}

/// An in-memory copy of a store, for running verification in-process on
/// many altered copies.
struct Memory(RwLock<BTreeMap<Vec<u8>, Vec<u8>>>);

impl Backend for Memory {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.0.read().expect("lock").get(key).cloned())
    }

    fn range<'a>(
        &'a self,
        start: &[u8],
        end: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Entry, StorageError>> + 'a> {
        let entries: Vec<Result<Entry, StorageError>> = self
            .0
            .read()
            .expect("lock")
            .range(start.to_vec()..end.to_vec())
            .map(|(k, v)| Ok((k.clone(), v.clone())))
            .collect();
        Box::new(entries.into_iter())
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StorageError> {
        let mut map = self.0.write().expect("lock");
        for (key, value) in writes {
            match value {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn size_on_disk(&self) -> Option<u64> {
        None
    }
}

/// Every record of a closed store.
fn load(db: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let backend = SledBackend::open(db).expect("open raw");
    backend
        .range(&[], &[0xFF])
        .map(|entry| entry.expect("read"))
        .collect()
}

/// Verifies a store held in memory, exactly as `strive verify` does.
fn verify_in_memory(
    records: BTreeMap<Vec<u8>, Vec<u8>>,
    since: Option<Checkpoint>,
) -> strive_audit::Report {
    verify_in_memory_with(
        records,
        VerifyOptions {
            since,
            ..VerifyOptions::default()
        },
    )
}

/// Verifies a store held in memory with `options`.
fn verify_in_memory_with(
    records: BTreeMap<Vec<u8>, Vec<u8>>,
    options: VerifyOptions,
) -> strive_audit::Report {
    let engine = Engine::with_backend(
        Arc::new(Memory(RwLock::new(records))),
        None,
        Options::default(),
    )
    .expect("open in memory");
    strive_audit::store::verify(&engine, options, |_| {})
}

#[test]
fn conformance_catches_an_event_the_definition_forbids_even_when_rehashed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of(one_log_fixture(), dir.path());
    let mut records = load(&db);
    assert!(verify_in_memory(records.clone(), None).ok());
    // A forger with write access rewrites o1's last event (`close`, which
    // only the leading group may fire) as done by an evaluator, and fixes
    // up everything hashes can show: the stored hash and the snapshot's head.
    let memory = Memory(RwLock::new(records.clone()));
    let (gseq, seq) = *chain_of(&memory, "o1").last().expect("a chain");
    let (_, mut event) = raw_event(&memory, gseq);
    assert_eq!(event.event, "close");
    event.actor = Actor::new("e1", &["evaluator"]);
    let bytes = event.encode();
    let digest = strive_core::event_digest(&bytes);
    let mut value = digest.to_vec();
    value.extend_from_slice(&bytes);
    put_event(&memory, gseq, Some(value));
    records = memory.0.read().expect("lock").clone();
    let key = string_key(b'i', &["o1"]);
    let mut record: Value = serde_json::from_slice(&records[&key]).expect("json");
    record["instance"]["head"] = json!(strive_core::event_hash(&bytes));
    records.insert(key, serde_json::to_vec(&record).expect("json"));

    let report = verify_in_memory(records, None);
    let nonconforming: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.code == ProblemCode::Nonconforming)
        .collect();
    assert_eq!(nonconforming.len(), 1, "{:#?}", report.problems);
    let problem = nonconforming[0];
    assert_eq!(problem.instance.as_deref(), Some("o1"));
    assert_eq!(problem.seq, Some(seq));
    assert_eq!(problem.gseq, Some(gseq));
    assert_eq!(
        problem.rule.as_deref(),
        Some("role_not_allowed"),
        "{problem}"
    );
}

// --- Tampering with a copy of the store, caught by `strive verify`. ---

/// The first event of `instance` with a non-empty object payload.
fn event_with_payload(backend: &dyn Backend, instance: &str) -> (u64, u64) {
    chain_of(backend, instance)
        .into_iter()
        .find(|(gseq, _)| {
            raw_event(backend, *gseq)
                .1
                .payload
                .as_object()
                .is_some_and(|o| !o.is_empty())
        })
        .expect("an event with a payload")
}

#[test]
fn a_flipped_byte_in_a_payload_is_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of(one_log_fixture(), dir.path());
    let mut target = (0, 0);
    with_raw(&db, |raw| {
        target = event_with_payload(raw, "o1");
        let (mut value, _) = raw_event(raw, target.0);
        let text = String::from_utf8(value[32..].to_vec()).expect("utf-8");
        let at = 32 + text.find("\"payload\":{").expect("a payload") + 13;
        value[at] ^= 0x01;
        put_event(raw, target.0, Some(value));
    });
    let (code, out) = verify_cli(&db, None);
    assert_eq!(code, 1, "{out}");
    let expected = format!("[hash_mismatch] o1 #{} (gseq {})", target.1, target.0);
    assert!(out.contains(&expected), "{expected} in:\n{out}");
}

#[test]
fn a_deleted_event_is_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of(one_log_fixture(), dir.path());
    let mut target = (0, 0);
    with_raw(&db, |raw| {
        target = chain_of(raw, "o1")[3];
        put_event(raw, target.0, None);
    });
    let (code, out) = verify_cli(&db, None);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "event {} is missing from the global log",
            target.0
        )),
        "{out}"
    );
    assert!(out.contains("[chain_broken] o1"), "{out}");
    assert!(
        out.contains(&format!("#{} follows #{}", target.1 + 1, target.1 - 1)),
        "{out}"
    );
}

#[test]
fn two_swapped_events_are_caught() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of(one_log_fixture(), dir.path());
    let mut pair = (0, 0);
    with_raw(&db, |raw| {
        let chain = chain_of(raw, "o1");
        pair = (chain[2].0, chain[4].0);
        let (a, _) = raw_event(raw, pair.0);
        let (b, _) = raw_event(raw, pair.1);
        put_event(raw, pair.0, Some(b));
        put_event(raw, pair.1, Some(a));
    });
    let (code, out) = verify_cli(&db, None);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[sequence_order]"), "{out}");
    assert!(out.contains("[chain_broken] o1"), "{out}");
    assert!(
        out.contains(&format!("global position {}", pair.0)),
        "{out}"
    );
}

#[test]
fn a_truncated_tail_is_caught_against_the_checkpoint() {
    let f = one_log_fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of(one_log_fixture(), dir.path());
    let cut = f.events - 3;
    // The forger removes the last three events. In format 2 the log ends
    // with its last block, so no counter is left to wind back.
    with_raw(&db, |raw| {
        for gseq in (cut + 1..=f.events).rev() {
            put_event(raw, gseq, None);
        }
        assert_eq!(raw::last(raw).expect("read"), cut);
    });
    let (code, out) = verify_cli(&db, Some(&f.checkpoint));
    assert_eq!(code, 1, "{out}");
    let expected = format!(
        "[checkpoint_inconsistent]: the checkpoint covers {} events, but the log holds only {cut}",
        f.events
    );
    assert!(out.contains(&expected), "{expected} in:\n{out}");
}

#[test]
fn a_deleted_instance_is_caught_against_the_checkpoint() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of_store(dir.path());
    // m1 goes entirely: its events, its chain, its snapshot and its index
    // entries, as if it had never been started.
    let mut chain = Vec::new();
    with_raw(&db, |raw| {
        chain = chain_of(raw, "m1");
        for (gseq, _) in &chain {
            put_event(raw, *gseq, None);
        }
        let mut writes: Vec<Write> = Vec::new();
        writes.push((string_key(b'i', &["m1"]), None));
        for prefix in [b'w', b'f', b'p', b'c'] {
            let start = vec![prefix];
            for entry in raw.range(&start, &prefix_end(&start)) {
                let (key, _) = entry.expect("read");
                if key.windows(3).any(|w| w == b"m1\0") {
                    writes.push((key, None));
                }
            }
        }
        raw.apply(writes).expect("write");
    });
    assert!(chain.len() > 3);
    let (code, out) = verify_cli(&db, Some(&f.checkpoint));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[checkpoint_inconsistent]"), "{out}");
    assert!(
        out.contains(&format!(
            "event {} is missing from the global log",
            chain[0].0
        )),
        "{out}"
    );
}

#[test]
fn an_older_backup_passes_alone_and_is_caught_against_the_checkpoint() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let restored = dir.path().join("db");
    copy_dir(&f.backup, &restored);
    // The backup is a consistent store of its own: only the checkpoint the
    // auditor kept shows that events were lost.
    let (code, out) = verify_cli(&restored, None);
    assert_eq!(code, 0, "{out}");
    let (code, out) = verify_cli(&restored, Some(&f.checkpoint));
    assert_eq!(code, 1, "{out}");
    // With several partitions, each partition's log is checked against
    // the checkpoint's head of it.
    let expected = if Options::default().partitions == 1 {
        format!(
            "[checkpoint_inconsistent]: the checkpoint covers {} events, but the log holds only {}",
            f.events, f.backup_events
        )
    } else {
        "events were removed (a truncation, a deleted instance or an older backup)".to_owned()
    };
    assert!(out.contains(&expected), "{expected} in:\n{out}");
}

/// A small deterministic generator (SplitMix64), so that the mutations are
/// the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

/// A small store in memory for the randomized test: the document approval
/// workflow (one small definition, since every verification compiles each
/// deployed definition again) with twelve documents taking every path:
/// approved, returned and resubmitted, rejected, withdrawn.
fn small_store() -> BTreeMap<Vec<u8>, Vec<u8>> {
    let memory = Arc::new(Memory(RwLock::new(BTreeMap::new())));
    // One partition: the parallel verifier (which this store exercises)
    // and `strive_store::raw` both work on one log.
    let options = Options {
        partitions: 1,
        ..Options::default()
    };
    let engine = Engine::with_backend(memory.clone(), None, options).expect("open in memory");
    let (name, text) = workflow_files()
        .into_iter()
        .find(|(name, _)| name.contains("document-approval"))
        .expect("the document workflow");
    engine
        .deploy_all(&[(Some(&name), &text)], &Actor::new("admin", &["admin"]))
        .expect("deploy");
    let author = Actor::new("wang", &["author"]);
    let chief = Actor::new("li", &["section_chief"]);
    let director = Actor::new("zhao", &["director"]);
    let fire = |id: &str, event: &str, actor: &Actor, payload: Value| {
        engine
            .fire(id, event, actor, payload, CommandOptions::default())
            .unwrap_or_else(|e| panic!("{id} {event}: {e}"));
    };
    let submit = json!({"title": "关于开展创先争优活动的通知", "body": "各支部：……"});
    let opinion = |text: &str| json!({"opinion": text});
    for n in 0..12 {
        let id = format!("doc-{n}");
        engine
            .start(
                "document-approval",
                &id,
                &author,
                Map::new(),
                None,
                CommandOptions::default(),
            )
            .expect("start");
        fire(&id, "submit", &author, submit.clone());
        match n % 4 {
            0 => {
                fire(&id, "approve", &chief, opinion("同意"));
                fire(&id, "approve", &director, opinion("同意印发"));
            }
            1 => {
                fire(&id, "return", &chief, opinion("请补充时间安排"));
                fire(&id, "submit", &author, submit.clone());
                fire(&id, "approve", &chief, opinion("同意"));
                fire(&id, "return", &director, opinion("再斟酌"));
            }
            2 => fire(&id, "reject", &chief, opinion("不宜印发")),
            _ => fire(&id, "withdraw", &author, Value::Null),
        }
    }
    drop(engine);
    memory.0.read().expect("lock").clone()
}

#[test]
fn a_thousand_random_mutations_are_all_caught() {
    let base = small_store();
    let size = raw::last(&Memory(RwLock::new(base.clone()))).expect("read");
    assert!(verify_in_memory(base.clone(), None).ok());
    // One engine reads every altered copy: the engine reads records from
    // its backend as it goes, except the sequence counter, which it reads
    // once when it opens, so a copy with a rewound counter gets its own.
    let shared = Arc::new(Memory(RwLock::new(base.clone())));
    let engine = Engine::with_backend(shared.clone(), None, Options::default()).expect("open");
    let mut rng = Rng(0x5EED_2026);
    let mut tried = [0u32; 4];
    let mut false_accepts = Vec::new();
    for n in 0..1000 {
        let copy = Memory(RwLock::new(base.clone()));
        let (kind, what) = mutate(&mut rng, &copy, size);
        tried[kind] += 1;
        let records = copy.0.into_inner().expect("lock");
        // A truncated log is opened afresh: the engine takes the log's end
        // from the store when it opens, as `strive verify` would.
        let report = if kind == 3 {
            verify_in_memory(records, None)
        } else {
            *shared.0.write().expect("lock") = records;
            strive_audit::store::verify(&engine, VerifyOptions::default(), |_| {})
        };
        if report.ok() {
            false_accepts.push(format!("mutation {n}: {what}"));
        }
    }
    eprintln!(
        "1000 mutations over a store of {size} events: {} byte flips, {} deletions, {} swaps, {} truncations; {} accepted",
        tried[0],
        tried[1],
        tried[2],
        tried[3],
        false_accepts.len()
    );
    assert!(
        tried.iter().all(|&t| t > 150),
        "every kind is tried: {tried:?}"
    );
    assert_eq!(false_accepts, Vec::<String>::new());
}

/// One random mutation of the log in `copy` (of `size` events): a flipped
/// bit, a deleted event, two swapped events or a truncated tail. Returns
/// its kind (0-3) and what it did.
fn mutate(rng: &mut Rng, copy: &Memory, size: u64) -> (usize, String) {
    let kind = (rng.next() % 4) as usize;
    let what = match kind {
        0 => {
            let gseq = rng.between(1, size);
            let (mut value, _) = raw_event(copy, gseq);
            let at = rng.between(0, value.len() as u64 - 1) as usize;
            let bit = 1u8 << rng.between(0, 7);
            value[at] ^= bit;
            put_event(copy, gseq, Some(value));
            format!("flip bit {bit:#04x} of byte {at} of event {gseq}")
        }
        1 => {
            let gseq = rng.between(1, size);
            put_event(copy, gseq, None);
            format!("delete event {gseq}")
        }
        2 => {
            let a = rng.between(1, size);
            let mut b = rng.between(1, size - 1);
            if b >= a {
                b += 1;
            }
            let (va, _) = raw_event(copy, a);
            let (vb, _) = raw_event(copy, b);
            put_event(copy, a, Some(vb));
            put_event(copy, b, Some(va));
            format!("swap events {a} and {b}")
        }
        _ => {
            let from = rng.between(2, size);
            for gseq in (from..=size).rev() {
                put_event(copy, gseq, None);
            }
            format!("truncate from event {from}")
        }
    };
    (kind, what)
}

/// Issue #10 item 6: verification spread over threads reports exactly
/// what the sequential verifier reports, problem for problem and in the
/// same order, with the same counts and root: on the untouched stores and
/// on random mutations of them. The fixture's organisations spawn members
/// and are notified by them, so families of instances spread over shards.
#[test]
fn parallel_and_sequential_verify_report_the_same_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture_records = load(&copy_of(one_log_fixture(), dir.path()));
    let mut rng = Rng(0x0A11_C0DE);
    let mut fell_back = 0;
    for (name, base, mutations) in [
        ("small store", small_store(), 120),
        ("fixture", fixture_records, 40),
    ] {
        let size = raw::last(&Memory(RwLock::new(base.clone()))).expect("read");
        for n in 0..=mutations {
            let copy = Memory(RwLock::new(base.clone()));
            let what = if n == 0 {
                "untouched".to_owned()
            } else {
                mutate(&mut rng, &copy, size).1
            };
            let records = copy.0.into_inner().expect("lock");
            let sequential = verify_with_jobs(records.clone(), 1);
            assert_eq!(sequential.jobs, 1);
            if n == 0 {
                assert!(sequential.ok(), "{name}: {:?}", sequential.problems);
            } else {
                assert!(!sequential.ok(), "{name}: {what} is caught");
            }
            for jobs in [2, 4] {
                let parallel = verify_with_jobs(records.clone(), jobs);
                if n == 0 {
                    // An untouched log never needs the sequential fallback.
                    assert_eq!(parallel.jobs, jobs, "{name}");
                }
                if parallel.jobs == 1 {
                    fell_back += 1;
                }
                assert_eq!(
                    serde_json::to_value(&parallel).expect("report"),
                    serde_json::to_value(&sequential).expect("report"),
                    "{name}, {what}, {jobs} jobs"
                );
                assert_eq!(parallel.problems, sequential.problems);
            }
        }
    }
    eprintln!("{fell_back} parallel runs fell back to a sequential one");
}

/// Verifies a store held in memory on `jobs` threads.
fn verify_with_jobs(records: BTreeMap<Vec<u8>, Vec<u8>>, jobs: usize) -> strive_audit::Report {
    verify_in_memory_with(
        records,
        VerifyOptions {
            jobs,
            ..VerifyOptions::default()
        },
    )
}

// --- Checkpoints, bundles, the Python verifier, PM4Py. ---

#[test]
fn signed_checkpoints_round_trip_and_a_wrong_key_is_refused() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of_store(dir.path());
    let path = |name: &str| dir.path().join(name).display().to_string();
    assert_success(&strive(&db, &["keygen", "--out", &path("key")]));
    assert_success(&strive(
        &db,
        &["keygen", "--out", &path("other"), "--name", "other"],
    ));
    // A key inside the store is refused: whoever alters the store could
    // sign with it.
    let inside = db.join("key").display().to_string();
    let refused = strive(&db, &["keygen", "--out", &inside]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let signed = strive(&db, &["checkpoint", "--key", &path("key")]);
    assert_success(&signed);
    let note = String::from_utf8(signed.stdout).expect("utf-8");
    // An unnamed key is named by its fingerprint (issue #17).
    assert!(note.contains("\n\n\u{2014} strive-"), "{note}");
    std::fs::write(path("cp"), &note).expect("write");
    let checked = strive(
        &db,
        &[
            "verify",
            "--since",
            &path("cp"),
            "--public-key",
            &path("key.pub"),
        ],
    );
    assert_success(&checked);
    // The same checkpoint read with another key.
    let wrong = strive(
        &db,
        &[
            "verify",
            "--since",
            &path("cp"),
            "--public-key",
            &path("other.pub"),
        ],
    );
    assert_eq!(wrong.status.code(), Some(1), "{}", text(&wrong));
    assert!(
        text(&wrong).contains("carries no signature by key `other`"),
        "{}",
        text(&wrong)
    );
    // The checkpoint altered after signing (a smaller size).
    let lines: Vec<&str> = note.lines().collect();
    let altered = note.replacen(
        &format!("\n{}\n", lines[1]),
        &format!("\n{}\n", f.backup_events),
        1,
    );
    assert_ne!(altered, note);
    std::fs::write(path("altered"), &altered).expect("write");
    let forged = strive(
        &db,
        &[
            "verify",
            "--since",
            &path("altered"),
            "--public-key",
            &path("key.pub"),
        ],
    );
    assert_eq!(forged.status.code(), Some(1), "{}", text(&forged));
    assert!(
        text(&forged).contains("does not verify"),
        "{}",
        text(&forged)
    );
    // The library: the note parses back to the same checkpoint.
    let public = std::fs::read_to_string(path("key.pub")).expect("read");
    let key = strive_audit::VerifierKey::parse(&public).expect("a public key");
    let checkpoint = Checkpoint::parse_verified(&note, &key).expect("verifies");
    assert_eq!(checkpoint.size, f.events);
}

/// A complete export of the fixture's store, with the altered copy: one
/// approval's opinion changed in the bytes, the stored hash left alone.
fn bundles(dir: &Path) -> (PathBuf, PathBuf) {
    let db = copy_of_store(&dir.join("export"));
    let bundle = dir.join("bundle.jsonl");
    let out = bundle.display().to_string();
    assert_success(&strive(&db, &["export", "--out", &out]));
    let text = std::fs::read_to_string(&bundle).expect("read");
    let needle = r#"\"opinion\":\"同意\""#;
    assert!(text.contains(needle), "the bundle holds an approval");
    let altered = dir.join("altered.jsonl");
    std::fs::write(
        &altered,
        text.replacen(needle, r#"\"opinion\":\"不同意\""#, 1),
    )
    .expect("write");
    (bundle, altered)
}

#[test]
fn verify_bundle_accepts_an_export_and_refuses_an_altered_one() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of_store(dir.path());
    let (bundle, altered) = bundles(dir.path());
    let run = |file: &Path, checkpoint: &Path| {
        strive(
            &db,
            &[
                "verify-bundle",
                &file.display().to_string(),
                "--checkpoint",
                &checkpoint.display().to_string(),
            ],
        )
    };
    let ok = run(&bundle, &f.checkpoint);
    assert_success(&ok);
    assert!(text(&ok).contains("everything holds"), "{}", text(&ok));
    // An older checkpoint: the complete bundle proves it extends it.
    let extends = run(&bundle, &f.old_checkpoint);
    assert_success(&extends);
    assert!(
        text(&extends).contains(&format!(
            "{} events are newer than your checkpoint",
            f.events - f.backup_events
        )),
        "{}",
        text(&extends)
    );
    // Extracts: one member (whose parent is left out), one workflow.
    for filter in [["--instance", "m1"], ["--workflow", "member-pledge"]] {
        let extract = dir.path().join("extract.jsonl");
        let out = extract.display().to_string();
        let mut args = vec!["export", "--out", &out];
        args.extend(filter);
        assert_success(&strive(&db, &args));
        let checked = run(&extract, &f.checkpoint);
        assert_success(&checked);
        assert!(
            text(&checked).contains("replayed: everything holds"),
            "{}",
            text(&checked)
        );
    }
    let refused = run(&altered, &f.checkpoint);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("[hash_mismatch] doc-"),
        "{}",
        text(&refused)
    );
    // A bundle cut short loses its checkpoint.
    let content = std::fs::read_to_string(&bundle).expect("read");
    let cut = dir.path().join("cut.jsonl");
    let kept: Vec<&str> = content.lines().take(content.lines().count() - 1).collect();
    std::fs::write(&cut, kept.join("\n")).expect("write");
    let short = run(&cut, &f.checkpoint);
    assert_eq!(short.status.code(), Some(1), "{}", text(&short));
    assert!(text(&short).contains("cut short"), "{}", text(&short));
}

/// The bundle with `instance`'s last event dated before the one it
/// follows, re-encoded and rehashed as a forger would: only the rule that
/// time never goes backwards (and the proofs) can catch it.
fn backdated(bundle: &Path, instance: &str, into: &Path) {
    let text = std::fs::read_to_string(bundle).expect("read");
    let mut lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let decode = |line: &Value| {
        strive_core::Event::decode(line["bytes"].as_str().expect("bytes").as_bytes())
            .expect("an event")
    };
    let positions: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i]["type"] == "event" && decode(&lines[i]).instance == instance)
        .collect();
    let [.., before, last] = positions[..] else {
        panic!("{instance} has two events in the bundle");
    };
    let mut event = decode(&lines[last]);
    event.at = decode(&lines[before]).at - jiff::SignedDuration::from_hours(1);
    let bytes = event.encode();
    let line = &mut lines[last];
    let digest: String = strive_core::event_digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    line["hash"] = json!(digest);
    line["bytes"] = json!(String::from_utf8(bytes).expect("UTF-8"));
    let out: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(into, out.join("\n") + "\n").expect("write");
}

#[test]
fn verify_bundle_refuses_a_bundle_whose_time_goes_backwards() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let (bundle, _) = bundles(dir.path());
    let back = dir.path().join("backwards.jsonl");
    backdated(&bundle, "doc-1", &back);
    let refused = strive(
        &f.db,
        &[
            "verify-bundle",
            &back.display().to_string(),
            "--checkpoint",
            &f.checkpoint.display().to_string(),
        ],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("[time_backwards] doc-1 #3"),
        "{}",
        text(&refused)
    );
    // The independent verifier in the docs catches it too.
    let script = dir.path().join("strive-verify.py");
    std::fs::write(&script, python_verifier()).expect("write");
    let python = Command::new("python3")
        .arg(&script)
        .arg(&back)
        .arg(&f.checkpoint)
        .output()
        .expect("python3 runs");
    assert_eq!(python.status.code(), Some(1), "{}", text(&python));
    assert!(
        text(&python).contains("doc-1 #3") && text(&python).contains("is before its predecessor's"),
        "{}",
        text(&python)
    );
}

/// The verifier printed in docs/audit.md, as printed.
pub(crate) fn python_verifier() -> String {
    let doc = std::fs::read_to_string(crate::util::root().join("docs/audit.md")).expect("docs");
    let start = doc
        .find("```python\n# strive-verify.py")
        .expect("docs/audit.md holds the verifier")
        + "```python\n".len();
    let end = start + doc[start..].find("\n```").expect("the block ends");
    doc[start..end].to_owned()
}

#[test]
fn the_python_verifier_in_the_docs_accepts_an_export_and_refuses_an_altered_one() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let (bundle, altered) = bundles(dir.path());
    let script = dir.path().join("strive-verify.py");
    std::fs::write(&script, python_verifier()).expect("write");
    let run = |file: &Path| {
        Command::new("python3")
            .arg(&script)
            .arg(file)
            .arg(&f.checkpoint)
            .output()
            .expect("python3 runs")
    };
    let ok = run(&bundle);
    assert_success(&ok);
    assert!(
        text(&ok).contains(&format!("{} events", f.events))
            && text(&ok).contains("everything holds"),
        "{}",
        text(&ok)
    );
    let refused = run(&altered);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("the bytes do not hash to"),
        "{}",
        text(&refused)
    );
    // One deleted event line is one cause: a missing position, a broken
    // chain, and roots that no longer match; not a problem at every event
    // after it (issue #14 item 6: it once gave thousands).
    let content = std::fs::read_to_string(&bundle).expect("read");
    let mut lines: Vec<&str> = content.lines().collect();
    let middle = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"type\":\"event\""))
        .map(|(i, _)| i)
        .nth(f.events as usize / 3)
        .expect("an event line");
    lines.remove(middle);
    let deleted = dir.path().join("deleted.jsonl");
    std::fs::write(&deleted, lines.join("\n") + "\n").expect("write");
    let quiet = run(&deleted);
    assert_eq!(quiet.status.code(), Some(1), "{}", text(&quiet));
    let problems = String::from_utf8_lossy(&quiet.stdout).lines().count() - 1;
    assert!(
        (1..=4).contains(&problems),
        "{problems} problems for one deleted line:\n{}",
        text(&quiet)
    );
    assert!(text(&quiet).contains("are missing"), "{}", text(&quiet));
}

#[test]
fn pm4py_reads_the_xes_and_replays_the_designed_models() {
    let Some(python) = crate::util::pm4py_python("PM4Py check") else {
        return;
    };
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_of_store(dir.path());
    let xes = dir.path().join("log.xes");
    assert_success(&strive(
        &db,
        &[
            "export",
            "--format",
            "xes",
            "--out",
            &xes.display().to_string(),
        ],
    ));
    let events = f.instance_events;
    let mut models = Vec::new();
    for workflow in ["org-campaign", "member-pledge", "bureau-campaign"] {
        let pnml = strive(&db, &["export-model", workflow, "--format", "pnml"]);
        assert_success(&pnml);
        let path = dir.path().join(format!("{workflow}.pnml"));
        std::fs::write(&path, &pnml.stdout).expect("write");
        models.push(format!("{workflow}={}", path.display()));
    }
    let count = events.to_string();
    let mut args: Vec<&std::ffi::OsStr> = vec![xes.as_os_str(), count.as_ref()];
    args.extend(models.iter().map(std::ffi::OsStr::new));
    let figures = crate::util::pm4py_figures(&python, "pm4py_check.py", &args);
    eprintln!("pm4py: {figures}");
    for workflow in ["org-campaign", "member-pledge", "bureau-campaign"] {
        assert_eq!(figures["workflows"][workflow]["log_fitness"], json!(1.0));
    }
    assert_eq!(figures["events"], json!(events));
    let forged = figures["nonconforming"]["log_fitness"]
        .as_f64()
        .expect("a fitness");
    assert!(forged < 1.0, "{figures}");
}
