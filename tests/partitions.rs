//! Partitions (issue #10 item 5): a store of P partitions routes each root
//! instance to the partition its id hashes to, keeps a child in its root's
//! partition, numbers each partition's log on its own, and loses nothing
//! acknowledged across a reopen.

use std::path::Path;

use serde_json::{Map, json};
use strive_store::{Actor, CommandError, CommandOptions, Engine, OpenError, Options, StoredEvent};

use crate::storage::NOTES;
use crate::util::{TestStore, strive, text};

fn with_partitions(partitions: u32) -> Options {
    Options {
        partitions,
        ..Options::default()
    }
}

fn clerk() -> Actor {
    Actor::new("li", &["clerk"])
}

/// Deploys `NOTES` and starts `roots` root instances, each noted once.
fn fill(engine: &Engine, roots: usize) {
    engine
        .deploy(NOTES, &Actor::new("admin", &["admin"]))
        .expect("deploy");
    for i in 0..roots {
        let id = format!("doc-{i}");
        engine
            .start(
                "notes",
                &id,
                &clerk(),
                Map::new(),
                None,
                CommandOptions::default(),
            )
            .expect("start");
        engine
            .fire(
                &id,
                "note",
                &clerk(),
                json!(null),
                CommandOptions::default(),
            )
            .expect("note");
    }
}

/// Every partition's events, checked to be numbered 1, 2, ... in it.
fn partition_logs(engine: &Engine) -> Vec<Vec<StoredEvent>> {
    (0..engine.partitions())
        .map(|p| {
            let events: Vec<StoredEvent> = engine
                .events_in(p, 1)
                .collect::<Result<_, _>>()
                .expect("read");
            for (i, stored) in events.iter().enumerate() {
                assert_eq!(stored.event.gseq, i as u64 + 1, "partition {p} is gapless");
                assert_eq!(stored.event.partition, p, "the event names its partition");
            }
            assert_eq!(events.len() as u64, engine.last_gseq_in(p));
            events
        })
        .collect()
}

#[test]
fn roots_spread_over_partitions_each_with_its_own_gapless_log() {
    let engine = Engine::temporary_with(with_partitions(4)).expect("engine");
    assert_eq!(engine.partitions(), 4);
    fill(&engine, 24);
    let logs = partition_logs(&engine);
    // The deployment is a global subject: partition 0's.
    assert_eq!(logs[0][0].event.instance, "@workflow/notes");
    let used = logs.iter().filter(|log| !log.is_empty()).count();
    assert!(used >= 3, "24 roots over 4 partitions use {used} of them");
    assert_eq!(engine.total_events(), 1 + 24 * 2);
    for i in 0..24 {
        let id = format!("doc-{i}");
        let history = engine.history(&id).expect("history");
        assert_eq!(history.len(), 2);
        let p = strive_core::root_partition(&id, 4);
        assert!(
            history.iter().all(|e| e.event.partition == p),
            "{id} is in {p}"
        );
    }
    // Each partition has its own tree head, over its own events.
    let heads = engine.tree_heads().expect("heads");
    let sizes: Vec<u64> = heads.iter().map(|h| h.size).collect();
    let lengths: Vec<u64> = logs.iter().map(|l| l.len() as u64).collect();
    assert_eq!(sizes, lengths);
}

#[test]
fn a_child_is_written_in_its_parents_partition() {
    let engine = Engine::temporary_with(with_partitions(4)).expect("engine");
    fill(&engine, 1);
    let parent = strive_core::root_partition("doc-0", 4);
    // Pick a child id that would hash elsewhere as a root.
    let child = (0..64)
        .map(|i| format!("part-{i}"))
        .find(|id| strive_core::root_partition(id, 4) != parent)
        .expect("an id of another partition");
    let outcome = engine
        .start(
            "notes",
            &child,
            &clerk(),
            Map::new(),
            Some("doc-0"),
            CommandOptions::default(),
        )
        .expect("child");
    let fired = engine
        .fire(
            &child,
            "note",
            &clerk(),
            json!(null),
            CommandOptions::default(),
        )
        .expect("note the child");
    assert_eq!(outcome.partition, parent, "the outcome names the partition");
    let history = engine.history(&child).expect("history");
    assert!(history.iter().all(|e| e.event.partition == parent));
    assert_eq!(history[0].event.gseq, outcome.gseq);
    assert_eq!(fired.gseq, outcome.gseq + 1);
    partition_logs(&engine);
}

#[test]
fn the_same_id_or_a_look_alike_is_refused_in_any_partition() {
    let engine = Engine::temporary_with(with_partitions(4)).expect("engine");
    fill(&engine, 1);
    let parent = strive_core::root_partition("doc-0", 4);
    let root = (0..64)
        .map(|i| format!("branch-{i}"))
        .find(|id| strive_core::root_partition(id, 4) != parent)
        .expect("an id of another partition");
    engine
        .start(
            "notes",
            &root,
            &clerk(),
            Map::new(),
            None,
            CommandOptions::default(),
        )
        .expect("root");
    // As a child of doc-0 it would be written by another partition's
    // writer: still refused, as the same id and as a look-alike.
    let again = engine.start(
        "notes",
        &root,
        &clerk(),
        Map::new(),
        Some("doc-0"),
        CommandOptions::default(),
    );
    assert!(
        matches!(again, Err(CommandError::InstanceExists { .. })),
        "{again:?}"
    );
    let look_alike = root.replacen('a', "\u{430}", 1);
    let refused = engine.start(
        "notes",
        &look_alike,
        &clerk(),
        Map::new(),
        Some("doc-0"),
        CommandOptions::default(),
    );
    assert!(
        matches!(refused, Err(CommandError::Confusable { .. })),
        "{refused:?}"
    );
}

#[test]
fn a_reopened_store_keeps_its_partitions_and_every_acknowledged_event() {
    let store = TestStore::new();
    let before = {
        let engine = store.open_with(with_partitions(4)).expect("open");
        fill(&engine, 12);
        partition_logs(&engine)
    };
    // Opened with the default options, the store still has 4 partitions.
    let engine = store.open_with(Options::default()).expect("reopen");
    assert_eq!(engine.partitions(), 4);
    let after = partition_logs(&engine);
    let hashes = |logs: &[Vec<StoredEvent>]| -> Vec<Vec<String>> {
        logs.iter()
            .map(|l| l.iter().map(|e| e.hash.clone()).collect())
            .collect()
    };
    assert_eq!(hashes(&before), hashes(&after));
    engine
        .fire(
            "doc-3",
            "close",
            &clerk(),
            json!(null),
            CommandOptions::default(),
        )
        .expect("writable after reopen");
    drop(engine);
    reopen_and_check_closed(&store);
}

fn reopen_and_check_closed(store: &TestStore) {
    let engine = store.open(Options::default());
    let snapshot = engine.instance("doc-3").expect("read").expect("exists");
    assert_eq!(snapshot.instance.stage, "closed");
}

#[test]
fn the_number_of_partitions_is_bounded_with_a_clear_error() {
    for bad in [0, strive_store::MAX_PARTITIONS + 1] {
        let error = Engine::temporary_with(with_partitions(bad)).expect_err("refused");
        assert!(matches!(error, OpenError::Partitions { .. }), "{error:?}");
        assert!(error.to_string().contains("1 to 256 partitions"), "{error}");
    }
    assert_eq!(
        Engine::temporary_with(with_partitions(256))
            .expect("256")
            .partitions(),
        256
    );
}

/// A closed store of 4 partitions with 12 noted roots.
fn closed_store(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("store");
    let engine = Engine::open(&db, with_partitions(4)).expect("open");
    fill(&engine, 12);
    drop(engine);
    db
}

fn ok(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{}", text(output));
    text(output)
}

#[test]
fn a_checkpoint_of_4_partitions_verifies_and_a_changed_partition_root_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = closed_store(dir.path());
    let note = ok(&strive(&db, &["checkpoint"]));
    let lines: Vec<&str> = note.lines().collect();
    assert_eq!(
        lines[1], "25",
        "the total size: 1 deployment and 12 x 2 events"
    );
    let partition_lines: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("partition "))
        .collect();
    assert_eq!(partition_lines.len(), 4, "{note}");
    let verified = ok(&strive(&db, &["verify"]));
    assert!(verified.contains("everything holds"), "{verified}");
    let file = dir.path().join("checkpoint");
    std::fs::write(&file, format!("{note}\n")).expect("write");
    let since = ok(&strive(
        &db,
        &["verify", "--since", &file.display().to_string()],
    ));
    assert!(since.contains("everything holds"), "{since}");

    // One partition's root changed: the combined root no longer matches.
    let mut altered: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let index = altered
        .iter()
        .position(|l| l.starts_with("partition 1 "))
        .expect("line");
    let mut parts: Vec<String> = altered[index].split(' ').map(str::to_owned).collect();
    parts[3] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned();
    altered[index] = parts.join(" ");
    std::fs::write(&file, format!("{}\n\n", altered.join("\n"))).expect("write");
    let refused = strive(&db, &["verify", "--since", &file.display().to_string()]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("partitions do not hold together"),
        "{}",
        text(&refused)
    );

    // The same change with the combined root recomputed over it: a well
    // formed checkpoint of another log, which partition 1 does not extend.
    let original = strive_audit::Checkpoint::parse(&format!("{note}\n"))
        .expect("parse")
        .checkpoint;
    let mut heads = original.heads().expect("heads");
    heads[1].root = [0; 32];
    let forged = strive_audit::Checkpoint::of_heads(lines[0], &heads).expect("heads");
    std::fs::write(&file, forged.to_note(None)).expect("write");
    let refused = strive(&db, &["verify", "--since", &file.display().to_string()]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("partition 1's log is not an extension of the checkpoint"),
        "{}",
        text(&refused)
    );
}

#[test]
fn every_partitions_state_is_rebuilt_from_its_log_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = closed_store(dir.path());
    let before = ok(&strive(&db, &["list", "--format", "json"]));
    // Keep only the logs (blocks `b`, tiles `r`), the format and the
    // number of partitions: every state record and applied marker goes.
    let removed = crate::util::keep_only_the_log(&db);
    assert!(removed > 10, "{removed} state records");
    assert_eq!(ok(&strive(&db, &["list", "--format", "json"])), before);
    assert!(ok(&strive(&db, &["verify"])).contains("everything holds"));
    let engine = Engine::open(&db, Options::default()).expect("reopen");
    assert_eq!(engine.partitions(), 4);
    assert_eq!(engine.total_events(), 25);
}

#[test]
fn a_backup_of_4_partitions_reopens_with_every_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = closed_store(dir.path());
    let copy = dir.path().join("copy");
    let engine = Engine::open(&db, Options::default()).expect("open");
    assert_eq!(engine.backup(&copy).expect("backup"), 25);
    let heads = engine.tree_heads().expect("heads");
    drop(engine);
    let restored = Engine::open(&copy, Options::default()).expect("open the copy");
    assert_eq!(restored.partitions(), 4);
    assert_eq!(restored.tree_heads().expect("heads"), heads);
    assert_eq!(
        restored
            .instance("doc-5")
            .expect("read")
            .expect("rebuilt")
            .instance
            .seq,
        2
    );
}

/// `strive checkpoint` of `db`, written to `file`.
fn keep_checkpoint(db: &Path, file: &Path) -> String {
    let note = ok(&strive(db, &["checkpoint"]));
    std::fs::write(file, format!("{note}\n")).expect("write the checkpoint");
    note
}

/// `strive export` of `db` to `file`, with `args`.
fn export(db: &Path, file: &Path, args: &[&str]) {
    let out = file.display().to_string();
    let mut all = vec!["export", "--out", &out];
    all.extend(args);
    ok(&strive(db, &all));
}

fn verify_bundle(db: &Path, bundle: &Path, checkpoint: &Path) -> std::process::Output {
    strive(
        db,
        &[
            "verify-bundle",
            &bundle.display().to_string(),
            "--checkpoint",
            &checkpoint.display().to_string(),
        ],
    )
}

/// The bundle with one event's bytes changed (the clerk's name in a
/// root's first event), its stored hash left alone.
fn altered(bundle: &Path, into: &Path) {
    let text = std::fs::read_to_string(bundle).expect("read");
    let needle = r#"\"id\":\"li\""#;
    assert!(text.contains(needle), "the bundle holds the clerk's events");
    std::fs::write(into, text.replacen(needle, r#"\"id\":\"lu\""#, 1)).expect("write");
}

#[test]
fn a_bundle_of_4_partitions_verifies_and_imports_to_the_same_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = closed_store(dir.path());
    let cp = dir.path().join("cp");
    let note = keep_checkpoint(&db, &cp);
    let bundle = dir.path().join("bundle.jsonl");
    export(&db, &bundle, &[]);
    let content = std::fs::read_to_string(&bundle).expect("read");
    let lines: Vec<serde_json::Value> = content
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines[0]["partitions"], 4, "{}", lines[0]);
    let events: Vec<&serde_json::Value> = lines.iter().filter(|l| l["type"] == "event").collect();
    assert_eq!(events.len(), 25, "every event of every partition");
    let partitions: Vec<u64> = events
        .iter()
        .map(|l| l["partition"].as_u64().expect("partition"))
        .collect();
    assert!(
        partitions.is_sorted(),
        "partition by partition: {partitions:?}"
    );
    assert!(partitions.iter().any(|&p| p > 0), "{partitions:?}");
    let checked = ok(&verify_bundle(&db, &bundle, &cp));
    assert!(
        checked
            .contains("25 events of 13 subjects, 13 heads proven in a log of 25 events, replayed"),
        "{checked}"
    );
    assert!(checked.contains("everything holds"), "{checked}");

    // store -> bundle -> import gives the same checkpoint, partitions and all.
    let imported = dir.path().join("imported");
    ok(&strive(
        &imported,
        &["import", &bundle.display().to_string()],
    ));
    assert_eq!(ok(&strive(&imported, &["checkpoint"])), note);
    let engine = Engine::open_existing(&imported, Options::default()).expect("open");
    assert_eq!(engine.partitions(), 4);
    drop(engine);

    // One altered event: refused by verify-bundle and by import.
    let bad = dir.path().join("altered.jsonl");
    altered(&bundle, &bad);
    let refused = verify_bundle(&db, &bad, &cp);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("[hash_mismatch] doc-"),
        "{}",
        text(&refused)
    );
    assert!(
        text(&refused).contains("of partition"),
        "{}",
        text(&refused)
    );
    let not_imported = dir.path().join("not-imported");
    let refused = strive(&not_imported, &["import", &bad.display().to_string()]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("does not verify"),
        "{}",
        text(&refused)
    );
}

#[test]
fn extracts_and_later_bundles_of_4_partitions_verify_against_a_kept_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = closed_store(dir.path());
    let old = dir.path().join("old");
    keep_checkpoint(&db, &old);
    // Later: more events in every partition.
    let engine = Engine::open(&db, Options::default()).expect("open");
    for i in 0..12 {
        engine
            .fire(
                &format!("doc-{i}"),
                "note",
                &clerk(),
                json!(null),
                CommandOptions::default(),
            )
            .expect("note");
    }
    drop(engine);
    let now = dir.path().join("now");
    keep_checkpoint(&db, &now);

    // Extracts: one instance, and everything from position 3 of each log.
    for filter in [&["--instance", "doc-5"][..], &["--since", "3"][..]] {
        let extract = dir.path().join("extract.jsonl");
        export(&db, &extract, filter);
        let checked = ok(&verify_bundle(&db, &extract, &now));
        assert!(
            checked.contains("everything holds"),
            "{filter:?}: {checked}"
        );
    }

    // A bundle newer than the kept checkpoint proves it extends it, from
    // its consistency lines (one per partition) or from its events.
    let bundle = dir.path().join("bundle.jsonl");
    export(
        &db,
        &bundle,
        &["--from-checkpoint", &old.display().to_string()],
    );
    let content = std::fs::read_to_string(&bundle).expect("read");
    assert_eq!(
        content.matches(r#""type":"consistency""#).count(),
        4,
        "{content}"
    );
    let checked = ok(&verify_bundle(&db, &bundle, &old));
    assert!(
        checked.contains("12 events are newer than your checkpoint"),
        "{checked}"
    );
    let filtered = dir.path().join("filtered.jsonl");
    export(
        &db,
        &filtered,
        &[
            "--workflow",
            "notes",
            "--from-checkpoint",
            &old.display().to_string(),
        ],
    );
    ok(&verify_bundle(&db, &filtered, &old));

    // A kept checkpoint of one partition is not one of this store.
    let single = dir.path().join("single");
    std::fs::write(
        &single,
        "strive\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
    )
    .expect("write");
    let refused = strive(
        &db,
        &["export", "--from-checkpoint", &single.display().to_string()],
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("1 partition(s), but this store has 4"),
        "{}",
        text(&refused)
    );
    let refused = verify_bundle(&db, &bundle, &single);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("[checkpoint_inconsistent]: your checkpoint is of a log of 1 partition(s), the bundle's of 4"),
        "{}",
        text(&refused)
    );
}

#[test]
fn the_python_verifier_in_the_docs_checks_a_bundle_of_4_partitions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = closed_store(dir.path());
    let cp = dir.path().join("cp");
    keep_checkpoint(&db, &cp);
    let bundle = dir.path().join("bundle.jsonl");
    export(&db, &bundle, &[]);
    let bad = dir.path().join("altered.jsonl");
    altered(&bundle, &bad);
    let script = dir.path().join("strive-verify.py");
    std::fs::write(&script, crate::audit::python_verifier()).expect("write");
    let run = |file: &Path| {
        std::process::Command::new("python3")
            .arg(&script)
            .arg(file)
            .arg(&cp)
            .output()
            .expect("python3 runs")
    };
    let checked = ok(&run(&bundle));
    assert!(checked.contains("25 events in 4 partitions"), "{checked}");
    assert!(checked.contains("everything holds"), "{checked}");
    let refused = run(&bad);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("the bytes do not hash to"),
        "{}",
        text(&refused)
    );
}

/// Verify of a store of 4 partitions decodes on every core (the blocks of
/// each partition's log hashed and decoded ahead of the checks) and
/// reports exactly what a sequential run reports, problem for problem, on
/// the store as written and on copies with an event altered, removed or
/// moved in one partition's log.
#[test]
fn verify_of_4_partitions_on_every_core_reports_what_a_sequential_run_does() {
    use strive_store::{Backend, SledBackend, raw};
    let dir = tempfile::tempdir().expect("tempdir");
    let db = closed_store(dir.path());
    let report = |db: &Path, jobs: usize| {
        let engine = Engine::open_existing(db, Options::default()).expect("open");
        let options = strive_audit::VerifyOptions {
            jobs,
            ..strive_audit::VerifyOptions::default()
        };
        let report = strive_audit::store::verify(&engine, options, |_| {});
        serde_json::to_value(&report).expect("json")
    };
    let tamper = |name: &str, alter: &dyn Fn(&SledBackend)| {
        let copy = dir.path().join(name);
        crate::util::copy_dir(&db, &copy);
        let backend = SledBackend::open(&copy).expect("raw open");
        alter(&backend);
        backend.flush().expect("flush");
        drop(backend);
        copy
    };
    let flipped = tamper("flipped", &|backend| {
        let mut value = raw::event_in(backend, 2, 2)
            .expect("read")
            .expect("an event");
        let at = value.len() - 5;
        value[at] ^= 0x01;
        raw::put_event_in(backend, 2, 2, Some(value)).expect("write");
    });
    let removed = tamper("removed", &|backend| {
        raw::put_event_in(backend, 1, 1, None).expect("write");
    });
    let moved = tamper("moved", &|backend| {
        let value = raw::event_in(backend, 3, 1)
            .expect("read")
            .expect("an event");
        let last = raw::last_in(backend, 0).expect("read");
        raw::put_event_in(backend, 0, last, Some(value)).expect("write");
    });
    for (what, store) in [
        ("as written", &db),
        ("a flipped byte", &flipped),
        ("a removed event", &removed),
        ("an event moved to another partition", &moved),
    ] {
        let sequential = report(store, 1);
        let parallel = report(store, 2);
        assert_eq!(sequential, parallel, "{what}");
        let problems = sequential["problems"].as_array().map_or(0, Vec::len);
        assert_eq!(
            problems == 0,
            what == "as written",
            "{what}: {sequential:#}"
        );
    }
}
