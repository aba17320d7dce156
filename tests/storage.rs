//! Storage format 2 (issue #10): the upgrade of a format-1 store, backup
//! and import, recovery of the state from the log, paged histories, the
//! stored Merkle tree, a backend that fails, and the rule that only the
//! backend module knows sled.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::json;
use strive_store::{
    Actor, Backend, CommandError, CommandOptions, Engine, Hooked, Hooks, OpenError, Options,
    SledBackend, StorageError,
};

use crate::cli::{deploy_and_start_o1, scenario};
use crate::util::{copy_dir, root, strive, text};

fn ok(output: &Output) -> String {
    assert!(output.status.success(), "{}", text(output));
    text(output)
}

/// The size and root lines of `strive checkpoint`.
fn checkpoint_of(db: &Path) -> String {
    let out = ok(&strive(db, &["checkpoint"]));
    out.lines().skip(1).take(2).collect::<Vec<_>>().join("\n")
}

/// A store with the organisation scenario run through it, closed.
fn scenario_store(dir: &Path) -> PathBuf {
    let db = dir.join("store");
    let engine = Engine::open(&db, Options::default()).expect("open");
    deploy_and_start_o1(&engine);
    for step in scenario() {
        step.fire(&engine)
            .unwrap_or_else(|e| panic!("{} {}: {e}", step.instance, step.event));
    }
    drop(engine);
    db
}

fn format1_fixture(dir: &Path) -> PathBuf {
    let old = dir.join("format1");
    copy_dir(&root().join("tests/data/fixtures/format1"), &old);
    old
}

#[test]
fn a_format_1_store_is_refused_with_the_upgrade_command_and_upgrades_to_the_same_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = format1_fixture(dir.path());
    // Opening it as it is names the way forward and changes nothing.
    let refused = strive(&old, &["list"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("strive upgrade"),
        "{}",
        text(&refused)
    );

    let new = dir.path().join("format2");
    let out = ok(&strive(
        &old,
        &[
            "upgrade",
            &old.display().to_string(),
            &new.display().to_string(),
        ],
    ));
    assert!(
        out.contains("109 events, each decided again and checked"),
        "{out}"
    );
    // The same log: the checkpoint strive 0.1 printed for it still holds.
    let kept = std::fs::read_to_string(root().join("tests/data/fixtures/format1.checkpoint"))
        .expect("fixture checkpoint");
    let kept: Vec<&str> = kept.lines().skip(1).take(2).collect();
    assert_eq!(checkpoint_of(&new), kept.join("\n"));
    let since = root().join("tests/data/fixtures/format1.checkpoint");
    let verified = ok(&strive(
        &new,
        &["verify", "--since", &since.display().to_string()],
    ));
    assert!(verified.contains("everything holds"), "{verified}");

    // Idempotency records and the pending deadline came across.
    let retried = ok(&strive(
        &new,
        &[
            "fire",
            "doc-1",
            "submit",
            "--actor",
            "li",
            "--role",
            "author",
            "--command-id",
            "submit-doc-1",
            "--payload",
            r#"{"title":"t","body":"b"}"#,
        ],
    ));
    assert!(retried.contains("original outcome"), "{retried}");
    let shown = ok(&strive(&new, &["show", "doc-1"]));
    assert!(shown.contains("fires `review_overdue`"), "{shown}");
    // Upgrading into a store that holds data is refused.
    let again = strive(
        &old,
        &[
            "upgrade",
            &old.display().to_string(),
            &new.display().to_string(),
        ],
    );
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert!(
        text(&again).contains("already holds a store"),
        "{}",
        text(&again)
    );
}

#[test]
fn an_altered_format_1_event_stops_the_upgrade() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = format1_fixture(dir.path());
    {
        // Rewrite event 50's actor and fix up its stored hash: only deciding
        // its command again shows that the definition forbids it.
        let backend = SledBackend::open(&old).expect("raw open");
        let mut key = vec![b'e'];
        key.extend_from_slice(&50u64.to_be_bytes());
        let value = backend.get(&key).expect("read").expect("event 50");
        let mut event = strive_core::Event::decode(&value[32..]).expect("decode");
        event.payload = json!({"forged": true});
        let bytes = event.encode();
        let mut forged = strive_core::event_digest(&bytes).to_vec();
        forged.extend_from_slice(&bytes);
        backend.apply(vec![(key, Some(forged))]).expect("write");
        backend.flush().expect("flush");
    }
    let new = dir.path().join("format2");
    let out = strive(
        &old,
        &[
            "upgrade",
            &old.display().to_string(),
            &new.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("event 50"), "{}", text(&out));
}

#[test]
fn import_of_an_export_gives_the_same_checkpoint_and_an_altered_bundle_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = scenario_store(dir.path());
    let bundle = dir.path().join("bundle.jsonl");
    ok(&strive(
        &db,
        &["export", "--out", &bundle.display().to_string()],
    ));
    let imported = dir.path().join("imported");
    ok(&strive(
        &imported,
        &["import", &bundle.display().to_string()],
    ));
    assert_eq!(checkpoint_of(&imported), checkpoint_of(&db));
    assert!(ok(&strive(&imported, &["verify"])).contains("everything holds"));

    let text_of = std::fs::read_to_string(&bundle).expect("bundle");
    let altered = dir.path().join("altered.jsonl");
    std::fs::write(
        &altered,
        text_of.replacen("\\\"plan\\\"", "\\\"plam\\\"", 1),
    )
    .expect("write");
    let refused_into = dir.path().join("refused");
    let out = strive(&refused_into, &["import", &altered.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("nothing was imported"),
        "{}",
        text(&out)
    );
    assert!(!refused_into.exists(), "a refused import creates no store");
}

#[test]
fn a_backup_taken_while_writers_run_verifies_and_is_a_prefix_of_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path().join("live"), Options::default()).expect("open");
    deploy_and_start_o1(&engine);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let author = Actor::new(format!("a{w}"), &["author"]);
                for n in 0..40 {
                    let id = format!("doc-{w}-{n}");
                    engine
                        .start(
                            "document-approval",
                            &id,
                            &author,
                            serde_json::from_value(json!({"title": "t", "body": "b"}))
                                .expect("data"),
                            None,
                            CommandOptions::default(),
                        )
                        .expect("start");
                }
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let copy = dir.path().join("copy");
    let copied = engine.backup(&copy).expect("backup");
    for writer in writers {
        writer.join().expect("writer");
    }
    let live_heads = engine.tree_heads().expect("heads");
    let restored = Engine::open(&copy, Options::default()).expect("open the copy");
    let heads = restored.tree_heads().expect("heads");
    assert_eq!(
        heads.len(),
        live_heads.len(),
        "the copy has every partition"
    );
    assert_eq!(heads.iter().map(|h| h.size).sum::<u64>(), copied);
    // Each partition of the copy is a prefix of the live partition's log.
    for (partition, (head, live)) in (0u32..).zip(heads.iter().zip(&live_heads)) {
        let proof = engine
            .consistency_proof_in(partition, head.size, live.size)
            .expect("proof");
        strive_audit::verify_consistency(head.size, &head.root, live.size, &live.root, &proof)
            .unwrap_or_else(|e| {
                panic!("partition {partition} of the copy is not a prefix of the live log: {e}")
            });
    }
    drop(restored);
    assert!(ok(&strive(&copy, &["verify"])).contains("everything holds"));
}

#[test]
fn the_state_is_rebuilt_from_the_log_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = scenario_store(dir.path());
    let before = ok(&strive(&db, &["list", "--format", "json"]));
    let history = ok(&strive(&db, &["history", "o1", "--format", "json"]));
    // Every snapshot, index, idempotency record and definition goes.
    crate::util::keep_only_the_log(&db);
    assert_eq!(ok(&strive(&db, &["list", "--format", "json"])), before);
    assert_eq!(
        ok(&strive(&db, &["history", "o1", "--format", "json"])),
        history
    );
    assert!(ok(&strive(&db, &["verify"])).contains("everything holds"));
}

/// A workflow with a record-only event, to make long histories.
pub(crate) const NOTES: &str = r#"{
  "id": "notes", "title": "Notes", "roles": [{"id": "clerk"}],
  "stages": [{"id": "open", "kind": "initial"}, {"id": "closed", "kind": "terminal"}],
  "transitions": [
    {"event": "note", "from": "open", "roles": ["clerk"]},
    {"event": "close", "from": "open", "to": "closed", "roles": ["clerk"]}
  ]
}"#;

/// A temporary engine with `NOTES` deployed, and its clerk.
fn notes_engine() -> (Engine, Actor) {
    let engine = Engine::temporary().expect("engine");
    engine
        .deploy(NOTES, &Actor::new("admin", &["admin"]))
        .expect("deploy");
    (engine, Actor::new("li", &["clerk"]))
}

#[test]
fn histories_page_through_only_their_own_events() {
    let (engine, clerk) = notes_engine();
    for id in ["doc", "other"] {
        engine
            .start(
                "notes",
                id,
                &clerk,
                Default::default(),
                None,
                CommandOptions::default(),
            )
            .expect("start");
    }
    // More events than two chain chunks hold, interleaved with another
    // instance's, so that the chain has full chunks and a tail.
    for _ in 0..150 {
        for id in ["doc", "other"] {
            engine
                .fire(id, "note", &clerk, json!(null), CommandOptions::default())
                .expect("note");
        }
    }
    let all = engine.history("doc").expect("history");
    assert_eq!(all.len(), 151);
    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = engine.history_page("doc", after, 7).expect("page");
        if page.is_empty() {
            break;
        }
        after = page.last().expect("last").event.seq;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    for (n, event) in all.iter().enumerate() {
        assert_eq!(event.event.seq, n as u64 + 1);
        assert_eq!(event.event.instance, "doc");
    }
}

#[test]
fn proofs_come_from_the_stored_tree_and_verify() {
    let engine = Engine::temporary().expect("engine");
    deploy_and_start_o1(&engine);
    for step in scenario() {
        step.fire(&engine).expect("step");
    }
    let mut proofs = 0;
    for partition in 0..engine.partitions() {
        proofs += proofs_of_partition(&engine, partition);
    }
    assert!(proofs >= 6, "only {proofs} proofs were checked");
}

/// Checks `partition`'s stored root and a few inclusion and consistency
/// proofs against its events; returns how many proofs were checked.
fn proofs_of_partition(engine: &Engine, partition: u32) -> usize {
    let head = engine.tree_head_in(partition).expect("head");
    let digests: Vec<_> = engine
        .events_in(partition, 1)
        .map(|event| strive_core::event_digest(&event.expect("event").bytes))
        .collect();
    assert_eq!(digests.len() as u64, head.size);
    let root_of = |size: usize| {
        let mut root = strive_core::StreamingRoot::new();
        for digest in &digests[..size] {
            root.push(digest);
        }
        root.root()
    };
    assert_eq!(
        root_of(digests.len()),
        head.root,
        "partition {partition}: stored tiles and recomputed root agree"
    );
    let mut proofs = 0;
    let mut positions = vec![1, 2, head.size / 2, head.size];
    positions.retain(|&gseq| (1..=head.size).contains(&gseq));
    for gseq in positions {
        let event = engine
            .event_in(partition, gseq)
            .expect("read")
            .expect("event");
        let proof = engine
            .inclusion_proof_in(partition, gseq, head.size)
            .expect("proof");
        strive_audit::verify_inclusion(
            &head.root,
            head.size,
            gseq - 1,
            &strive_core::event_digest(&event.bytes),
            &proof,
        )
        .expect("inclusion");
        proofs += 1;
    }
    let mut olds = vec![1, 5, head.size.saturating_sub(1)];
    olds.retain(|&old| (1..=head.size).contains(&old));
    for old in olds {
        let proof = engine
            .consistency_proof_in(partition, old, head.size)
            .expect("proof");
        strive_audit::verify_consistency(
            old,
            &root_of(old as usize),
            head.size,
            &head.root,
            &proof,
        )
        .expect("consistency");
        proofs += 1;
    }
    proofs
}

/// Hooks that fail the `n`th apply or flush of the backend they wrap,
/// once, and count them.
struct Faulty {
    applies: AtomicU64,
    flushes: AtomicU64,
    fail_apply: u64,
    fail_flush: u64,
}

impl Hooks for Faulty {
    fn before_apply(&self) -> Result<(), StorageError> {
        if self.applies.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_apply {
            return Err(StorageError::Backend {
                message: "injected apply failure".to_owned(),
            });
        }
        Ok(())
    }

    fn before_flush(&self) -> Result<(), StorageError> {
        if self.flushes.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_flush {
            return Err(StorageError::Backend {
                message: "injected flush failure".to_owned(),
            });
        }
        Ok(())
    }
}

/// Runs the scenario against a backend that fails the `fail_apply`th apply
/// or the `fail_flush`th flush: the command of that group fails, every
/// later one is refused, and after reopening `verify` passes and every
/// acknowledged event is there.
fn survives_a_failure(fail_apply: u64, fail_flush: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("store");
    let faulty = Faulty {
        applies: AtomicU64::new(0),
        flushes: AtomicU64::new(0),
        fail_apply,
        fail_flush,
    };
    let backend = Arc::new(Hooked::new(SledBackend::open(&db).expect("open"), faulty));
    let engine = Engine::with_backend(backend.clone(), Some(db.clone()), Options::default())
        .expect("engine");
    deploy_and_start_o1(&engine);
    let mut acknowledged = Vec::new();
    let mut failed = None;
    for (n, step) in scenario().into_iter().enumerate() {
        match step.fire(&engine) {
            Ok(outcome) => {
                assert!(failed.is_none(), "step {n} acknowledged after a failure");
                acknowledged.push(outcome);
            }
            Err(CommandError::Storage(error)) => {
                if failed.is_some() {
                    assert!(
                        matches!(error, StorageError::Poisoned { .. }),
                        "later writes are refused as poisoned: {error}"
                    );
                }
                failed.get_or_insert(n);
            }
            Err(other) => panic!("step {n}: {other}"),
        }
    }
    assert!(failed.is_some(), "the injected failure was reached");
    drop(engine);
    drop(backend);
    let reopened = Engine::open(&db, Options::default()).expect("reopen");
    for outcome in &acknowledged {
        let event = reopened
            .event_in(outcome.partition, outcome.gseq)
            .expect("read")
            .expect("an acknowledged event is there");
        assert_eq!(event.hash, outcome.hash);
    }
    drop(reopened);
    assert!(ok(&strive(&db, &["verify"])).contains("everything holds"));
}

#[test]
fn a_failed_apply_poisons_the_engine_and_loses_nothing_acknowledged() {
    for n in [4, 9] {
        survives_a_failure(n, u64::MAX);
    }
}

#[test]
fn a_failed_flush_poisons_the_engine_and_loses_nothing_acknowledged() {
    for n in [5, 10] {
        survives_a_failure(u64::MAX, n);
    }
}

#[test]
fn a_store_that_opens_only_for_reading_refuses_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = scenario_store(dir.path());
    {
        // The log of o1's partition loses its last event (o1's last) but
        // the state still names it.
        let backend = SledBackend::open(&db).expect("raw open");
        let partition = strive_store::raw::partition_of(&backend, "o1")
            .expect("read")
            .expect("a record");
        let last = strive_store::raw::last_in(&backend, partition).expect("last");
        strive_store::raw::put_event_in(&backend, partition, last, None).expect("cut");
        backend.flush().expect("flush");
    }
    let engine = Engine::open(&db, Options::default()).expect("opens for reading");
    assert!(engine.instance("o1").expect("read").is_some());
    let refused = scenario()[0].fire(&engine).expect_err("refused");
    assert!(
        matches!(
            refused,
            CommandError::Storage(StorageError::Poisoned { .. })
        ),
        "{refused}"
    );
    drop(engine);
    let out = strive(&db, &["verify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn opening_a_store_from_an_unknown_future_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("store");
    {
        let backend = SledBackend::open(&db).expect("raw open");
        backend
            .apply(vec![(
                b"mformat".to_vec(),
                Some(7u32.to_be_bytes().to_vec()),
            )])
            .expect("write");
        backend.flush().expect("flush");
    }
    let refused = Engine::open(&db, Options::default()).expect_err("refused");
    assert!(
        matches!(refused, OpenError::UnsupportedFormat { found: 7, .. }),
        "{refused}"
    );
}

/// Only the backend module knows sled (rust-analyzer's tidy checks): the
/// benchmark harness, which measures raw sled as a baseline, is exempt.
#[test]
fn only_the_backend_module_names_sled() {
    let mut offenders = Vec::new();
    let allowed = [
        root().join("crates/strive-store/src/backend.rs"),
        root().join("crates/strive-bench"),
    ];
    let mut stack = vec![
        root().join("crates"),
        root().join("src"),
        root().join("tests"),
    ];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if allowed.iter().any(|a| path.starts_with(a)) {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let source = std::fs::read_to_string(&path).expect("read");
                if source.contains(concat!("sled", "::")) {
                    offenders.push(path.display().to_string());
                }
            }
        }
    }
    assert_eq!(
        offenders,
        Vec::<String>::new(),
        "sled named outside the backend"
    );
}

/// Issue #17: an id that looks like an existing instance's of the same
/// workflow (the same Unicode confusable skeleton) is refused; the index
/// behind it is state, so recovery rebuilds it from the log.
#[test]
fn an_id_confusable_with_an_existing_instance_is_refused() {
    let (engine, clerk) = notes_engine();
    let start = |id: &str| {
        engine.start(
            "notes",
            id,
            &clerk,
            Default::default(),
            None,
            CommandOptions::default(),
        )
    };
    start("branch-7").expect("start");
    // A Cyrillic а (U+0430) in place of the Latin a.
    let refused = start("br\u{0430}nch-7").expect_err("confusable");
    assert!(
        matches!(&refused, CommandError::Confusable { existing, .. } if existing == "branch-7"),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("can be mistaken for"),
        "{refused}"
    );
    // The same id again is a duplicate, not a look-alike; a distinct id is fine.
    assert!(matches!(
        start("branch-7"),
        Err(CommandError::InstanceExists { .. })
    ));
    start("branch-8").expect("a distinct id");
}

/// Issue #17 for the new commands: a mistyped source is not turned into an
/// empty store, and a new store is never made inside a directory that holds
/// other files.
#[test]
fn upgrade_and_import_touch_nothing_that_is_not_theirs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("typo");
    let new = dir.path().join("new");
    let out = strive(
        &missing,
        &[
            "upgrade",
            &missing.display().to_string(),
            &new.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!missing.exists(), "the mistyped source stays missing");
    assert!(!new.exists(), "nothing is made for a refused upgrade");

    let old = format1_fixture(dir.path());
    let foreign = dir.path().join("papers");
    std::fs::create_dir_all(&foreign).expect("mkdir");
    std::fs::write(foreign.join("notes.txt"), "mine").expect("write");
    let out = strive(
        &old,
        &[
            "upgrade",
            &old.display().to_string(),
            &foreign.display().to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let left: Vec<_> = std::fs::read_dir(&foreign)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("notes.txt")]);
}

/// `verify` on a store that is being written (a server's verify job):
/// the snapshots are read after the log, so instances started or fired
/// meanwhile have snapshots ahead of the log it read. Each is checked
/// against its own history at its own sequence instead, and nothing is
/// reported. At P = 1 and P = 3, while four writers start and fire.
#[test]
fn verify_while_writers_run_reports_nothing_written_meanwhile() {
    for partitions in [1, 3] {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = Options {
            partitions,
            ..Options::default()
        };
        let engine = Engine::open(dir.path().join("live"), options).expect("open");
        engine
            .deploy(NOTES, &Actor::new("admin", &["admin"]))
            .expect("deploy");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (engine, stop) = (engine.clone(), stop.clone());
                std::thread::spawn(move || {
                    let clerk = Actor::new(format!("c{w}"), &["clerk"]);
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let id = format!("n-{w}-{}", n / 8);
                        if n % 8 == 0 {
                            let data = serde_json::Map::new();
                            engine
                                .start("notes", &id, &clerk, data, None, Default::default())
                                .expect("start");
                        } else {
                            engine
                                .fire(&id, "note", &clerk, json!({}), Default::default())
                                .expect("note");
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        // Each round reads the whole store, which grows: a dozen rounds
        // see a few hundred snapshots written meanwhile (before the fix,
        // a round within the first ten reported them).
        let mut rechecked = 0;
        for round in 0..12 {
            let report = strive_audit::store::verify(&engine, Default::default(), |_| {});
            assert!(
                report.ok(),
                "P={partitions}, round {round}: {:?}",
                report.problems
            );
            rechecked += report.rechecked;
        }
        assert!(
            rechecked > 0,
            "P={partitions}: no snapshot was written during a verification, so this test checked nothing"
        );
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for writer in writers {
            writer.join().expect("writer");
        }
        let report = strive_audit::store::verify(&engine, Default::default(), |_| {});
        assert!(report.ok(), "at rest: {:?}", report.problems);
        assert_eq!(report.size, engine.total_events());
    }
}
