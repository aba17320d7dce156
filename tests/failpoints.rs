//! Failpoints (issue #6): the `strive` binary is stopped at exact points of
//! a write, a checkpoint and an export (`strive_store::fail_point!`, on in
//! the binary `cargo test` builds, absent from `cargo build`). The process
//! aborts there, as abruptly as SIGKILL: no destructor runs, nothing is
//! flushed. After each crash the store must reopen, `strive verify` must
//! pass, and retrying the command id that was in flight must leave exactly
//! one event with that id.
//!
//! Every test first checks that the process died by SIGABRT and logged the
//! failpoint's name, so a failpoint that no longer fires (renamed, moved,
//! compiled out) fails the test instead of silently testing nothing.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Map, Value, json};
use strive_store::failpoints::{CRASH_AT, REACHED};
use strive_store::{Actor, CommandOptions, Engine, Options};

/// A ticket that takes notes until it is closed.
const TICKET: &str = r#"{
  "id": "ticket",
  "title": "ticket",
  "roles": [{"id": "clerk"}],
  "stages": [{"id": "open", "kind": "initial"}, {"id": "done", "kind": "terminal"}],
  "transitions": [
    {"event": "note", "from": "open", "roles": ["clerk"],
     "payload": [{"id": "text", "type": "string", "required": true}]},
    {"event": "close", "from": "open", "to": "done", "roles": ["clerk"]}
  ]
}"#;

/// The command id in flight when the process crashes.
const COMMAND_ID: &str = "note-in-flight";

/// SIGABRT, which `std::process::abort` raises.
const SIGABRT: i32 = 6;

fn strive(db: &Path, args: &[&str], crash_at: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strive"));
    command
        .arg("--db")
        .arg(db)
        .args(args)
        .env("STRIVE_LOG", "error")
        .env_remove(CRASH_AT)
        .env_remove("FAILPOINTS");
    if let Some(point) = crash_at {
        command.env(CRASH_AT, point);
    }
    // The test opens the store in-process too; sled lets go of its lock
    // shortly after the last handle is dropped, not at once, so a process
    // started right after may find the store still locked: wait for it.
    for _ in 0..200 {
        let output = command.output().expect("the strive binary runs");
        if !String::from_utf8_lossy(&output.stderr).contains("in use by another process") {
            return output;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("the store stayed locked for 5 s after the test closed it");
}

/// Fails unless the process aborted at `point`.
fn assert_crashed_at(output: &Output, point: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        Some(SIGABRT),
        "the process was meant to abort at failpoint {point}, but exited with {} (stderr: {stderr})",
        output.status
    );
    assert!(
        stderr.contains(&format!("{REACHED}{point}")),
        "aborted, but not at failpoint {point}: {stderr}"
    );
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {}:\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A store with the ticket deployed, `t1` started and `notes` notes on it.
fn store(notes: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let engine = Engine::open(&db, Options::default()).expect("open");
    engine
        .deploy(TICKET, &Actor::new("admin", &["admin"]))
        .expect("deploy");
    let clerk = Actor::new("li", &["clerk"]);
    engine
        .start(
            "ticket",
            "t1",
            &clerk,
            Map::new(),
            None,
            CommandOptions::default(),
        )
        .expect("start");
    for n in 0..notes {
        engine
            .fire(
                "t1",
                "note",
                &clerk,
                json!({"text": format!("note {n}: {}", "x".repeat(40))}),
                CommandOptions::default(),
            )
            .expect("note");
    }
    (dir, db)
}

/// The note that is in flight, as CLI arguments.
const NOTE: &[&str] = &[
    "fire",
    "t1",
    "note",
    "--actor",
    "li",
    "--role",
    "clerk",
    "--payload",
    r#"{"text": "in flight"}"#,
    "--command-id",
    COMMAND_ID,
    "--format",
    "json",
];

/// Events recorded with the in-flight command id.
fn in_flight_events(db: &Path) -> usize {
    let engine = Engine::open(db, Options::default()).expect("the store reopens after the crash");
    crate::util::every_event(&engine)
        .into_iter()
        .filter(|stored| stored.event.command_id.as_deref() == Some(COMMAND_ID))
        .count()
}

/// After a crash: verify passes, the retry succeeds, and exactly one event
/// carries the command id. Returns whether the retry was answered from the
/// record of the first attempt.
fn recover(db: &Path) -> bool {
    assert_ok(&strive(db, &["verify"], None), "verify after the crash");
    let retry = strive(db, NOTE, None);
    assert_ok(&retry, "the retry");
    let outcome: Value = serde_json::from_slice(&retry.stdout).expect("a JSON outcome");
    assert_eq!(outcome["event"], "note", "{outcome}");
    assert_ok(&strive(db, &["verify"], None), "verify after the retry");
    assert_eq!(
        in_flight_events(db),
        1,
        "the retried command id must yield exactly one event"
    );
    outcome["replayed"] == json!(true)
}

#[test]
fn a_crash_between_the_atomic_write_and_the_flush_loses_no_consistency() {
    let (_dir, db) = store(3);
    let crashed = strive(&db, NOTE, Some("group-before-flush"));
    assert_crashed_at(&crashed, "group-before-flush");
    assert!(
        crashed.stdout.is_empty(),
        "nothing may be acknowledged before the flush"
    );
    // The write may or may not have reached the disk; either is consistent,
    // and the retry settles it.
    let before = in_flight_events(&db);
    assert!(before <= 1, "{before} events for one command");
    let replayed = recover(&db);
    assert_eq!(
        replayed,
        before == 1,
        "the retry must replay exactly when the first attempt survived"
    );
}

#[test]
fn a_crash_after_the_flush_before_the_acknowledgement_keeps_the_event() {
    let (_dir, db) = store(3);
    let crashed = strive(&db, NOTE, Some("group-after-flush"));
    assert_crashed_at(&crashed, "group-after-flush");
    assert!(crashed.stdout.is_empty(), "the caller heard nothing back");
    // Flushed means durable, acknowledged or not.
    assert_eq!(in_flight_events(&db), 1, "the flushed event is lost");
    assert!(
        recover(&db),
        "the retry must return the original outcome, not write again"
    );
}

#[test]
fn a_crash_in_the_middle_of_a_checkpoint_leaves_the_store_intact() {
    let (_dir, db) = store(3);
    assert_ok(&strive(&db, NOTE, None), "the note");
    let crashed = strive(&db, &["checkpoint"], Some("checkpoint-middle"));
    assert_crashed_at(&crashed, "checkpoint-middle");
    assert!(
        crashed.stdout.is_empty(),
        "no partial checkpoint may be printed"
    );
    assert!(recover(&db), "the note was acknowledged before the crash");
    assert_ok(&strive(&db, &["checkpoint"], None), "a checkpoint after");
}

#[test]
fn a_crash_in_the_middle_of_an_export_leaves_the_store_intact_and_no_partial_bundle() {
    // Enough events that part of the bundle reaches the file before the
    // crash (the export writes through an 8 KiB buffer).
    let (dir, db) = store(200);
    assert_ok(&strive(&db, NOTE, None), "the note");
    let checkpoint = strive(&db, &["checkpoint"], None);
    assert_ok(&checkpoint, "the checkpoint");
    let checkpoint_file = dir.path().join("checkpoint.txt");
    std::fs::write(&checkpoint_file, &checkpoint.stdout).expect("write the checkpoint");
    let bundle = dir.path().join("bundle.jsonl");
    let bundle_arg = bundle.to_str().expect("a UTF-8 path");
    let crashed = strive(&db, &["export", "--out", bundle_arg], Some("export-middle"));
    assert_crashed_at(&crashed, "export-middle");
    // The bundle is written to a temporary file beside it and renamed once
    // whole (issue #17), so the crash leaves no bundle, never half of one.
    assert!(!bundle.exists(), "the crash left a partial bundle");
    assert!(recover(&db), "the note was acknowledged before the crash");
    let whole = strive(&db, &["export", "--out", bundle_arg], None);
    assert_ok(&whole, "an export after");
    assert_ok(
        &strive(
            &db,
            &[
                "verify-bundle",
                bundle_arg,
                "--checkpoint",
                checkpoint_file.to_str().expect("a UTF-8 path"),
            ],
            None,
        ),
        "the whole bundle verifies",
    );
}
