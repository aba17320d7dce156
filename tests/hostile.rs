//! The hostile-input suite (issue #17): every case in tests/data/hostile
//! (described in its README.md) runs one command line through the built
//! binary and checks its exit code, a fragment of its message, and, where
//! the case says so, that the store is unchanged and that no file appeared
//! or changed that must not.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use strive_store::{Engine, Options};

fn suite_dir() -> PathBuf {
    crate::util::root().join("tests/data/hostile")
}

/// One case, as `case.json` gives it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    /// `campaign`: a store with the workflows deployed and `o1` started at
    /// `{db}`; `none`: no store.
    store: String,
    /// Command lines run first, each of which must succeed.
    #[serde(default)]
    setup: Vec<Vec<String>>,
    /// Files to make in the case's directory before running: name to text.
    #[serde(default)]
    files: BTreeMap<String, String>,
    /// FIFOs to make there.
    #[serde(default)]
    fifos: Vec<String>,
    /// Files overwritten after the store and the setup are made (to damage
    /// the store): name under the case's directory to text.
    #[serde(default)]
    damage: BTreeMap<String, String>,
    /// The command line, one argument per item.
    args: Vec<String>,
    /// The expected exit code.
    exit: i32,
    /// A fragment of what the command printed (stdout or stderr).
    message: String,
    /// What it prints instead on a store of several partitions
    /// (`STRIVE_PARTITIONS`), when the case's own files (a checkpoint of
    /// one partition) are refused there for that before the rule the case
    /// is about.
    #[serde(default)]
    partitioned_message: Option<String>,
    /// Whether the store must be unchanged (`campaign` stores only).
    #[serde(default)]
    unchanged: bool,
    /// Paths that must not exist afterwards.
    #[serde(default)]
    absent: Vec<String>,
}

/// The paths a case's arguments may name.
struct Places {
    tmp: PathBuf,
    db: PathBuf,
}

impl Places {
    fn expand(&self, text: &str) -> String {
        text.replace("{tmp}", &self.tmp.display().to_string())
            .replace("{db}", &self.db.display().to_string())
            .replace("{suite}", &suite_dir().display().to_string())
            .replace("{root}", &crate::util::root().display().to_string())
    }
}

fn strive(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strive"))
        .args(args)
        .env_remove("STRIVE_DB")
        .env("NO_COLOR", "1")
        .output()
        .expect("the strive binary runs")
}

/// What the store holds, as the auditor's commands print it.
fn state_of(db: &Path) -> Vec<String> {
    let db = db.display().to_string();
    [
        vec!["checkpoint", "--db", &db],
        vec!["export", "--format", "jsonl", "--db", &db],
        vec!["list", "--db", &db],
    ]
    .iter()
    .map(|args| {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let output = strive(&args);
        format!(
            "{} -> {:?}\n{}",
            args.join(" "),
            output.status.code(),
            String::from_utf8_lossy(&output.stdout)
        )
    })
    .collect()
}

fn make_campaign_store(db: &Path) {
    let engine = Engine::open(db, Options::default()).expect("a new store");
    crate::cli::deploy_and_start_o1(&engine);
}

fn prepare(case: &Case, places: &Places) {
    for (name, text) in &case.files {
        let path = places.tmp.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&path, places.expand(text)).expect("write a case file");
    }
    for name in &case.fifos {
        let status = Command::new("mkfifo")
            .arg(places.tmp.join(name))
            .status()
            .expect("mkfifo runs");
        assert!(status.success(), "mkfifo {name}");
    }
    if case.store == "campaign" {
        make_campaign_store(&places.db);
    }
    for step in &case.setup {
        let args: Vec<String> = step.iter().map(|a| places.expand(a)).collect();
        let output = strive(&args);
        assert!(
            output.status.success(),
            "setup {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for (name, text) in &case.damage {
        fs::write(places.tmp.join(name), text).expect("damage a store file");
    }
}

/// Runs one case; returns what is wrong with it, if anything.
fn check(name: &str, case: &Case) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let places = Places {
        tmp: tmp.path().to_owned(),
        db: tmp.path().join("store"),
    };
    prepare(case, &places);
    let before = (case.store == "campaign").then(|| state_of(&places.db));
    let args: Vec<String> = case.args.iter().map(|a| places.expand(a)).collect();
    let output = strive(&args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    let said = format!("{stdout}{stderr}");
    let mut wrong = Vec::new();
    if output.status.code() != Some(case.exit) {
        wrong.push(format!(
            "exit {:?}, expected {}",
            output.status.code(),
            case.exit
        ));
    }
    let partitioned = strive_store::Options::default().partitions > 1;
    let message = match (&case.partitioned_message, partitioned) {
        (Some(message), true) => message,
        _ => &case.message,
    };
    if !said.contains(&places.expand(message)) {
        wrong.push(format!("the message lacks {message:?}"));
    }
    if stderr.contains("panicked") || stderr.contains('\u{1b}') {
        wrong.push("stderr shows a panic or a terminal colour".to_owned());
    }
    if let Some(before) = before
        && case.unchanged
        && state_of(&places.db) != before
    {
        wrong.push("the store changed".to_owned());
    }
    for path in &case.absent {
        let path = places.expand(path);
        if Path::new(&path).exists() {
            wrong.push(format!("{path} exists"));
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        let cut = |text: &str| text.chars().take(1000).collect::<String>();
        Err(format!(
            "{name}: {}\n  args: {args:?}\n  stdout: {}\n  stderr: {}",
            wrong.join("; "),
            cut(&stdout),
            cut(&stderr)
        ))
    }
}

/// Every `case.json` under the suite, by class and case name.
fn cases() -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for class in fs::read_dir(suite_dir())
        .expect("the hostile suite")
        .flatten()
    {
        let Ok(entries) = fs::read_dir(class.path()) else {
            continue;
        };
        for case in entries.flatten() {
            let path = case.path().join("case.json");
            if path.is_file() {
                let name = format!(
                    "{}/{}",
                    class.file_name().to_string_lossy(),
                    case.file_name().to_string_lossy()
                );
                found.push((name, path));
            }
        }
    }
    found.sort();
    found
}

/// Runs `cases`, returning what failed.
fn run_all(cases: &[(String, PathBuf)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, path) in cases {
        let text = fs::read_to_string(path).expect("a case file");
        let case: Case =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(failure) = check(name, &case) {
            failures.push(failure);
        }
    }
    failures
}

#[test]
fn every_hostile_case_is_refused_as_it_says() {
    let cases = cases();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    // Cases are independent (each has its own directory), and most of
    // their time is spent waiting on processes, so four run at once.
    let chunks: Vec<&[(String, PathBuf)]> = cases.chunks(cases.len().div_ceil(4)).collect();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let runs: Vec<_> = chunks
            .iter()
            .map(|chunk| scope.spawn(move || run_all(chunk)))
            .collect();
        runs.into_iter()
            .flat_map(|run| run.join().expect("a case runner"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} hostile cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn every_class_of_the_issue_has_cases() {
    let classes: std::collections::BTreeSet<String> = cases()
        .iter()
        .filter_map(|(name, _)| name.split('/').next().map(str::to_owned))
        .collect();
    for class in [
        "data-loss",
        "fabricated-store",
        "forged-actor",
        "forged-time",
        "canonical",
        "files",
        "checkpoint",
        "messages",
    ] {
        assert!(classes.contains(class), "no cases for {class}");
    }
}

/// A read-only bind mount of a directory, undone on drop.
struct ReadOnlyMount {
    target: PathBuf,
}

impl ReadOnlyMount {
    fn new(source: &Path, target: &Path) -> Option<ReadOnlyMount> {
        fs::create_dir_all(target).ok()?;
        let status = Command::new("mount")
            .args(["--bind", "-o", "ro"])
            .arg(source)
            .arg(target)
            .status()
            .ok()?;
        let mount = ReadOnlyMount {
            target: target.to_owned(),
        };
        // Some kernels take `ro` only on a remount of the bind.
        let read_only = || fs::write(target.join(".probe"), b"").is_err();
        if status.success() && !read_only() {
            let _ = Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(target)
                .status();
        }
        (status.success() && read_only()).then_some(mount)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.target).status();
    }
}

/// An auditor who holds a read-only copy of a store can verify it (issue
/// #17): on a read-only mount `verify` and the other reading commands read
/// a temporary copy and say so; a writing command fails with a message, not
/// a panic, and the store is not touched.
#[test]
fn a_store_on_a_read_only_mount_is_read_through_a_copy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("store");
    make_campaign_store(&db);
    let before = state_of(&db);
    let mounted = tmp.path().join("read-only");
    let Some(_mount) = ReadOnlyMount::new(&db, &mounted) else {
        // Needs root and `mount`; CI runs as root, so there it must work.
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "mount --bind -o ro is not available under CI"
        );
        eprintln!("skipped: mount --bind -o ro is not available here");
        return;
    };
    let run = |args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.extend(["--db".to_owned(), mounted.display().to_string()]);
        strive(&all)
    };
    for args in [
        &["verify"][..],
        &["list"],
        &["checkpoint"],
        &["history", "o1"],
    ] {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is read-only; reading a temporary copy"),
            "{args:?}: {stderr}"
        );
    }
    let verified = run(&["verify"]);
    assert!(String::from_utf8_lossy(&verified.stdout).contains("everything holds"));
    let refused = run(&["tick"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(_mount);
    assert_eq!(state_of(&db), before);
}

/// A workflow whose `finish` the `system` role may take (so a forged
/// `system` finish conforms to the definition) and whose draft has a
/// deadline an hour after it starts.
const TIMED: &str = r#"{
  "id": "timed", "title": "Timed",
  "roles": [{"id": "clerk"}, {"id": "system"}],
  "stages": [
    {"id": "draft", "kind": "initial", "deadline": {"after": "PT1H", "event": "late"}},
    {"id": "done", "kind": "terminal"}
  ],
  "transitions": [
    {"event": "finish", "from": "draft", "to": "done", "roles": ["clerk", "system"]},
    {"event": "late", "from": "draft", "to": "done", "roles": ["system"]}
  ]
}"#;

/// The rules of the conformance problems `events` give, in order.
fn conformance_rules(events: &[strive_store::StoredEvent]) -> Vec<String> {
    let mut replayer = strive_audit::Replayer::new();
    events
        .iter()
        .flat_map(|stored| replayer.apply(&stored.hash, &stored.event))
        .filter_map(|problem| problem.rule)
        .collect()
}

/// Conformance (issue #17): a `system` event with no engine cause, and a
/// deadline event recorded before it was due, are reported even when the
/// definition would have accepted them; the events the engine itself wrote
/// pass, and the engine refuses to fire a deadline early.
#[test]
fn conformance_reports_forged_system_events_and_early_deadlines() {
    use strive_store::{Actor, CommandError, CommandOptions, ManualClock};
    let start: jiff::Timestamp = "2026-05-01T08:00:00Z".parse().expect("a time");
    let clock = std::sync::Arc::new(ManualClock::new(start));
    let engine = Engine::temporary_with(Options {
        clock: clock.clone(),
        ..Options::default()
    })
    .expect("engine");
    engine
        .deploy(TIMED, &Actor::new("admin", &["admin"]))
        .expect("deploy");
    let clerk = Actor::new("li", &["clerk"]);
    for id in ["a", "b"] {
        engine
            .start(
                "timed",
                id,
                &clerk,
                Default::default(),
                None,
                CommandOptions::default(),
            )
            .expect("start");
    }
    engine
        .fire(
            "a",
            "finish",
            &clerk,
            serde_json::Value::Null,
            CommandOptions::default(),
        )
        .expect("finish");
    // Asked to fire at a time past the engine's clock, the engine refuses.
    let early = engine
        .fire_due(start + jiff::SignedDuration::from_hours(2))
        .expect("fire_due");
    assert!(
        matches!(early.as_slice(), [f] if matches!(f.result, Err(CommandError::NotDue { .. }))),
        "{early:?}"
    );
    clock.set(start + jiff::SignedDuration::from_hours(2));
    assert_eq!(
        engine
            .fire_due(strive_store::Clock::now(&*clock))
            .expect("fire_due")
            .len(),
        1
    );

    // Partition 0 (the deployments) first, then the instances' partitions.
    let events = crate::util::every_event(&engine);
    assert!(events.iter().any(|e| e.event.event == "late"), "{events:?}");
    assert_eq!(conformance_rules(&events), Vec::<String>::new());

    let mut forged = events.clone();
    for stored in &mut forged {
        if stored.event.event == "finish" {
            stored.event.actor = Actor::system();
        }
        if stored.event.event == "late" {
            stored.event.at = start + jiff::SignedDuration::from_mins(30);
        }
    }
    assert_eq!(
        conformance_rules(&forged),
        ["engine_cause", "deadline_early"]
    );
}

/// A workflow whose `waiting` stage is due a year after it is entered, and
/// whose `booked` stage is due at the time its `due` variable holds.
const YEARLY: &str = r#"{
  "id": "yearly", "title": "Due a year on",
  "roles": [{"id": "clerk"}, {"id": "system"}],
  "data": [{"id": "due", "type": "timestamp"}],
  "stages": [
    {"id": "draft", "kind": "initial"},
    {"id": "waiting", "deadline": {"after": "P1Y", "event": "late"}},
    {"id": "booked", "deadline": {"at_data": "due", "event": "late"}},
    {"id": "done", "kind": "terminal"}
  ],
  "transitions": [
    {"event": "wait", "from": "draft", "to": "waiting", "roles": ["clerk"]},
    {"event": "book", "from": "draft", "to": "booked", "roles": ["clerk"]},
    {"event": "late", "from": ["waiting", "booked"], "to": "done", "roles": ["system"]}
  ]
}"#;

/// Issue #17: a deadline that cannot be computed at run time (here, a
/// year after a time in the last year jiff can hold) refuses the command
/// with a typed error and writes nothing, where it used to leave the
/// instance silently without its deadline; a missing `at_data` time stays
/// what the workflow language documents, no deadline.
#[test]
fn a_deadline_that_cannot_be_computed_refuses_the_command() {
    use strive_store::{Actor, CommandError, CommandOptions, ManualClock};
    let late: jiff::Timestamp = "9999-06-01T00:00:00Z".parse().expect("a time");
    let clock = std::sync::Arc::new(ManualClock::new(late));
    let engine = Engine::temporary_with(Options {
        clock,
        ..Options::default()
    })
    .expect("engine");
    engine
        .deploy(YEARLY, &Actor::new("admin", &["admin"]))
        .expect("deploy");
    let clerk = Actor::new("li", &["clerk"]);
    let start = |id: &str| {
        engine
            .start(
                "yearly",
                id,
                &clerk,
                Default::default(),
                None,
                CommandOptions::default(),
            )
            .expect("start")
    };
    let fire = |id: &str, event: &str| {
        engine.fire(
            id,
            event,
            &clerk,
            serde_json::Value::Null,
            CommandOptions::default(),
        )
    };
    start("a");
    let before = crate::util::sizes(&engine);
    let refused = fire("a", "wait").expect_err("a deadline past the end of time");
    assert!(
        matches!(&refused, CommandError::Deadline { instance, .. } if instance == "a"),
        "{refused:?}"
    );
    assert!(
        refused.to_string().contains("outside the range of times"),
        "{refused}"
    );
    assert_eq!(
        crate::util::sizes(&engine),
        before,
        "a refused command writes nothing"
    );
    let snapshot = engine.instance("a").expect("read").expect("a");
    assert_eq!(snapshot.instance.stage, "draft");

    start("b");
    let booked = fire("b", "book").expect("no `due` time: no deadline, as documented");
    assert_eq!(booked.stage, "booked");
    let snapshot = engine.instance("b").expect("read").expect("b");
    assert_eq!(snapshot.due, None);
}

/// Review of stop 18: a proof asked for outside the log is the caller's
/// mistake, `StorageError::InvalidArgument`, not a damaged store.
#[test]
fn proofs_outside_the_log_are_invalid_arguments() {
    use strive_store::StorageError;
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = tmp.path().join("store");
    make_campaign_store(&db);
    let engine = Engine::open(&db, Options::default()).expect("open");
    let size = engine.last_gseq();
    let invalid = |result: Result<Vec<strive_core::Hash>, StorageError>| {
        let error = result.expect_err("refused");
        assert!(
            matches!(error, StorageError::InvalidArgument { .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains("damaged"), "{error}");
    };
    invalid(engine.inclusion_proof(0, size));
    invalid(engine.inclusion_proof(size + 1, size));
    invalid(engine.inclusion_proof(1, size + 1));
    invalid(engine.consistency_proof(size, size - 1));
    invalid(engine.consistency_proof(1, size + 1));
    assert!(engine.consistency_proof(1, size).is_ok());
}
