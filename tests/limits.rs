//! Limits (issue #6): each oversized or overdeep input gets a typed error,
//! never a stack overflow, and leaves the store exactly as it was, through
//! the library and through the `strive` binary. The validator's own
//! diagnostics for these limits (L001–L004) are in the corpus
//! (`tests/data/definitions/`); here they go through `deploy`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Map, Value, json};
use strive_core::Diagnostic;
use strive_store::{
    Actor, CommandError, CommandOptions, DeployError, Engine, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH,
    Options,
};

/// A workflow whose `stash` event takes anything, so only the limits stand
/// between a hostile payload and the store.
const STASH: &str = r#"{
  "id": "stash",
  "title": "stash",
  "roles": [{"id": "clerk"}],
  "data": [{"id": "blob", "type": "any"}],
  "stages": [{"id": "open", "kind": "initial"}, {"id": "done", "kind": "terminal"}],
  "transitions": [
    {"event": "stash", "from": "open", "roles": ["clerk"],
     "payload": [{"id": "blob", "type": "any"}]},
    {"event": "close", "from": "open", "to": "done", "roles": ["clerk"]}
  ]
}"#;

fn clerk() -> Actor {
    Actor::new("li", &["clerk"])
}

fn admin() -> Actor {
    Actor::new("admin", &["admin"])
}

/// A store with the stash workflow and one instance, `s1`.
fn engine() -> (tempfile::TempDir, Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = Engine::open(dir.path().join("db"), Options::default()).expect("open");
    engine.deploy(STASH, &admin()).expect("deploy");
    engine
        .start(
            "stash",
            "s1",
            &clerk(),
            Map::new(),
            None,
            CommandOptions::default(),
        )
        .expect("start");
    (dir, engine)
}

/// Everything a refused command could have changed: every event's hash,
/// the last position, every instance's snapshot, every workflow version.
fn fingerprint(engine: &Engine) -> String {
    let hashes: Vec<String> = crate::util::every_event(engine)
        .into_iter()
        .map(|stored| stored.hash)
        .collect();
    let instances: Vec<String> = ["s1", "s2", "s3"]
        .iter()
        .map(|id| format!("{:?}", engine.instance(id).expect("read")))
        .collect();
    format!(
        "{:?} {hashes:?} {instances:?} {:?}",
        crate::util::sizes(engine),
        engine.versions("stash").expect("versions")
    )
}

/// JSON nested `depth` arrays deep, built without recursion.
fn deep_value(depth: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    value
}

/// A definition with `padding` bytes of description and a guard nested
/// `depth` arrays deep (0 for none).
fn definition(id: &str, padding: usize, depth: usize) -> String {
    let guard = if depth > 0 {
        format!(
            r#", "guard": {{"and": {}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"id": "{id}", "title": "t", "description": "{}",
  "roles": [{{"id": "a"}}],
  "stages": [{{"id": "s0", "kind": "initial"}}, {{"id": "s1", "kind": "terminal"}}],
  "transitions": [{{"event": "e", "from": "s0", "to": "s1", "roles": ["a"]{guard}}}]}}"#,
        "x".repeat(padding)
    )
}

/// The codes of an `Invalid` deploy's error diagnostics.
fn codes(error: &DeployError) -> Vec<String> {
    match error {
        DeployError::Invalid { diagnostics } => diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d: &Diagnostic| d.code.as_str().to_owned())
            .collect(),
        other => panic!("expected diagnostics, got {other}"),
    }
}

fn strive(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strive"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env("STRIVE_LOG", "error")
        .output()
        .expect("the strive binary runs")
}

/// The store as the CLI sees it: its checkpoint (size and Merkle root of
/// every event) and the instance's snapshot.
fn cli_fingerprint(db: &Path) -> String {
    let checkpoint = strive(db, &["checkpoint"]);
    let show = strive(db, &["show", "s1", "--format", "json"]);
    assert!(checkpoint.status.success() && show.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&checkpoint.stdout),
        String::from_utf8_lossy(&show.stdout)
    )
}

/// A CLI store like `engine()`'s, made through the CLI.
fn cli_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let file = dir.path().join("stash.json");
    std::fs::write(&file, STASH).expect("write");
    let file = file.to_str().expect("a UTF-8 path");
    assert!(strive(&db, &["deploy", file]).status.success());
    let started = strive(
        &db,
        &["start", "stash", "s1", "--actor", "li", "--role", "clerk"],
    );
    assert!(started.status.success());
    (dir, db)
}

/// The error kind of a `--format json` failure.
fn error_kind(output: &Output) -> String {
    let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    value["error"]["kind"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn payloads_and_initial_data_over_256_kib_are_refused() {
    let (_dir, engine) = engine();
    let before = fingerprint(&engine);
    // One byte over: the JSON of {"blob":"xxx..."} is 11 bytes of frame.
    let over = "x".repeat(MAX_PAYLOAD_BYTES - 11 + 1);
    let fired = engine.fire(
        "s1",
        "stash",
        &clerk(),
        json!({"blob": over}),
        CommandOptions::default(),
    );
    assert!(
        matches!(
            fired,
            Err(CommandError::LimitExceeded { actual, limit, .. })
                if actual == MAX_PAYLOAD_BYTES + 1 && limit == MAX_PAYLOAD_BYTES
        ),
        "{fired:?}"
    );
    let mut data = Map::new();
    data.insert("blob".to_owned(), json!(over));
    let started = engine.start(
        "stash",
        "s2",
        &clerk(),
        data,
        None,
        CommandOptions::default(),
    );
    assert!(
        matches!(started, Err(CommandError::LimitExceeded { .. })),
        "{started:?}"
    );
    assert_eq!(fingerprint(&engine), before, "a refusal changed the store");
    // At the limit exactly, it is accepted: the limit is where it says.
    let at = "x".repeat(MAX_PAYLOAD_BYTES - 11);
    engine
        .fire(
            "s1",
            "stash",
            &clerk(),
            json!({"blob": at}),
            CommandOptions::default(),
        )
        .expect("a payload of exactly 256 KiB is accepted");
}

#[test]
fn definitions_over_1_mib_are_refused() {
    let (dir, engine) = engine();
    let before = fingerprint(&engine);
    let small = definition("big", 0, 0);
    let text = definition("big", 1024 * 1024 + 1 - small.len(), 0);
    assert_eq!(text.len(), 1024 * 1024 + 1);
    let error = engine.deploy(&text, &admin()).expect_err("too large");
    assert_eq!(codes(&error), ["L001"], "{error}");
    assert_eq!(fingerprint(&engine), before);
    assert!(engine.versions("big").expect("versions").is_empty());
    drop(engine);
    // And through the binary: exit 1, the diagnostic, nothing deployed.
    let (_cli_dir, db) = cli_store();
    let before = cli_fingerprint(&db);
    let file = dir.path().join("big.json");
    std::fs::write(&file, &text).expect("write");
    let deployed = strive(&db, &["deploy", file.to_str().expect("a UTF-8 path")]);
    assert_eq!(deployed.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&deployed.stdout).contains("L001")
            || String::from_utf8_lossy(&deployed.stderr).contains("L001")
    );
    assert_eq!(cli_fingerprint(&db), before);
}

#[test]
fn nesting_over_64_is_refused() {
    let (_dir, engine) = engine();
    let before = fingerprint(&engine);
    // The guard's arrays start at the fifth level (the file, the
    // transitions, a transition, its guard): 61 of them make 65.
    let error = engine
        .deploy(&definition("deep", 0, 61), &admin())
        .expect_err("too deep");
    assert_eq!(codes(&error), ["L002"], "{error}");
    assert_eq!(fingerprint(&engine), before);
    // 64 levels are within the limit.
    engine
        .deploy(&definition("deep", 0, 60), &admin())
        .expect("64 levels are within the limit");
}

#[test]
fn ids_over_128_bytes_are_refused() {
    let (_dir, engine) = engine();
    let before = fingerprint(&engine);
    // 43 three-byte characters: 129 bytes, though only 43 characters.
    let long = "优".repeat(43);
    assert_eq!(long.len(), 129);
    let started = engine.start(
        "stash",
        &long,
        &clerk(),
        Map::new(),
        None,
        CommandOptions::default(),
    );
    assert!(
        matches!(started, Err(CommandError::InvalidId { .. })),
        "{started:?}"
    );
    let fired = engine.fire(
        "s1",
        "stash",
        &clerk(),
        json!({}),
        CommandOptions {
            expected_seq: None,
            command_id: Some(long.clone()),
            signature: None,
        },
    );
    assert!(
        matches!(fired, Err(CommandError::InvalidId { .. })),
        "{fired:?}"
    );
    let error = engine
        .deploy(&definition(&"w".repeat(129), 0, 0), &admin())
        .expect_err("too long");
    assert_eq!(codes(&error), ["L004"], "{error}");
    assert_eq!(fingerprint(&engine), before);
    // 128 bytes exactly is an id.
    let limit = format!("{}ab", "优".repeat(42));
    assert_eq!(limit.len(), 128);
    engine
        .start(
            "stash",
            &limit,
            &clerk(),
            Map::new(),
            None,
            CommandOptions {
                expected_seq: None,
                command_id: Some(limit.clone()),
                signature: None,
            },
        )
        .expect("a 128-byte id and command id are accepted");
    drop(engine);
    let (_cli_dir, db) = cli_store();
    let before = cli_fingerprint(&db);
    let started = strive(
        &db,
        &[
            "start", "stash", &long, "--actor", "li", "--role", "clerk", "--format", "json",
        ],
    );
    assert_eq!(started.status.code(), Some(1));
    assert_eq!(error_kind(&started), "invalid_id");
    assert_eq!(cli_fingerprint(&db), before);
}

#[test]
fn json_nested_10000_deep_is_refused_without_overflowing() {
    let (_dir, engine) = engine();
    let before = fingerprint(&engine);
    // A definition: found by an iterative scan before any parser recurses.
    let text = format!(
        r#"{{"id": "x", "title": {}{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let error = engine.deploy(&text, &admin()).expect_err("too deep");
    assert_eq!(codes(&error), ["L002"], "{error}");
    // A payload and initial data handed over as values.
    let fired = engine.fire(
        "s1",
        "stash",
        &clerk(),
        // Not `json!`, which would serialize the value, recursively.
        Value::Object(Map::from_iter([("blob".to_owned(), deep_value(10_000))])),
        CommandOptions::default(),
    );
    assert!(
        matches!(fired, Err(CommandError::LimitExceeded { .. })),
        "{fired:?}"
    );
    let mut data = Map::new();
    data.insert("blob".to_owned(), deep_value(10_000));
    let started = engine.start(
        "stash",
        "s2",
        &clerk(),
        data,
        None,
        CommandOptions::default(),
    );
    assert!(
        matches!(started, Err(CommandError::LimitExceeded { .. })),
        "{started:?}"
    );
    assert_eq!(fingerprint(&engine), before);
    drop(engine);
    // Through the binary: a usage error for the payload and the data, the
    // validator's L002 for a definition file.
    let (dir, db) = cli_store();
    let before = cli_fingerprint(&db);
    let deep = format!(
        r#"{{"blob": {}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let fired = strive(
        &db,
        &[
            "fire",
            "s1",
            "stash",
            "--actor",
            "li",
            "--role",
            "clerk",
            "--payload",
            &deep,
            "--format",
            "json",
        ],
    );
    assert_eq!(fired.status.code(), Some(2), "{fired:?}");
    assert_eq!(error_kind(&fired), "usage");
    let started = strive(
        &db,
        &[
            "start", "stash", "s2", "--actor", "li", "--role", "clerk", "--format", "json",
            "--data", &deep,
        ],
    );
    assert_eq!(started.status.code(), Some(2), "{started:?}");
    let file = dir.path().join("deep.json");
    std::fs::write(&file, &text).expect("write");
    let deployed = strive(&db, &["deploy", file.to_str().expect("a UTF-8 path")]);
    assert_eq!(deployed.status.code(), Some(1), "{deployed:?}");
    assert_eq!(cli_fingerprint(&db), before);
}

#[test]
fn payloads_nested_over_64_are_refused_so_every_event_stays_readable() {
    // 126 levels fit in 256 KiB and once were accepted, leaving an event
    // that serde_json (128 levels at most) could never read back.
    let (_dir, engine) = engine();
    let payload = |depth| Value::Object(Map::from_iter([("blob".to_owned(), deep_value(depth))]));
    let before = fingerprint(&engine);
    for depth in [MAX_PAYLOAD_DEPTH, 126, 1_000] {
        let fired = engine.fire(
            "s1",
            "stash",
            &clerk(),
            payload(depth),
            CommandOptions::default(),
        );
        assert!(
            matches!(fired, Err(CommandError::LimitExceeded { actual, limit, .. })
                if actual == depth + 1 && limit == MAX_PAYLOAD_DEPTH),
            "{fired:?}"
        );
    }
    assert_eq!(fingerprint(&engine), before);
    // 64 levels in all are accepted, and the event reads back.
    engine
        .fire(
            "s1",
            "stash",
            &clerk(),
            payload(MAX_PAYLOAD_DEPTH - 1),
            CommandOptions::default(),
        )
        .expect("64 levels are within the limit");
    assert_eq!(engine.history("s1").expect("readable").len(), 2);
}
