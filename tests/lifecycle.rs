//! Lifecycle operations (issue #13, item 3): suspend, resume, cancel and
//! terminate, each with a reason, decided by the definitions' `lifecycle`
//! sections. A suspended instance refuses its commands and its deadline
//! waits (one that falls due meanwhile fires at the first deadline run
//! after the resume, also across a reopen); a cancelled or terminated one
//! refuses everything and its deadline never fires; children follow as
//! the parent's definition declares, in the same write. After each, the
//! store verifies and a store rebuilt from its log is the same; a forged
//! lifecycle event, or a command moved before a resume, is caught by
//! verify. The library suites run at one and at four partitions.

use std::path::Path;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use strive_store::{
    Actor, Backend, Clock, CommandError, CommandOptions, Engine, ManualClock, Options, Rejection,
    SledBackend, Status,
};

use crate::util::{serving, strive, text};

/// A task, spawned by a case; its deadline sets `late`.
fn task() -> Value {
    json!({
        "id": "task", "title": "task",
        "roles": [{"id": "worker"}, {"id": "admin"}, {"id": "system"}],
        "data": [{"id": "late", "type": "boolean"}],
        "stages": [
            {"id": "open", "kind": "initial", "deadline": {"after": "PT1H", "event": "late"}},
            {"id": "done", "kind": "terminal"}
        ],
        "transitions": [
            {"event": "finish", "from": "open", "to": "done", "roles": ["worker"],
             "notify_parent": "task_done"},
            {"event": "late", "from": "open", "roles": ["system"],
             "effects": [{"op": "set", "var": "late", "value": true}]}
        ],
        "lifecycle": {"suspend": ["admin"], "resume": ["admin"], "cancel": ["admin"],
                      "terminate": ["admin"]}
    })
}

/// A case of workflow `id` whose children do as `children` says: clerks
/// may suspend, only admins resume, cancel and terminate.
fn case(id: &str, children: &str) -> Value {
    json!({
        "id": id, "title": "case",
        "roles": [{"id": "clerk"}, {"id": "admin"}, {"id": "system"}],
        "data": [{"id": "late", "type": "boolean"}, {"id": "done", "type": "integer"}],
        "stages": [
            {"id": "open", "kind": "initial", "deadline": {"after": "PT2H", "event": "late"}},
            {"id": "work"},
            {"id": "closed", "kind": "terminal"}
        ],
        "transitions": [
            {"event": "assign", "from": "open", "to": "work", "roles": ["clerk"],
             "payload": [{"id": "tasks", "type": "list", "items": {"type": "string"},
                          "required": true}],
             "spawn": {"workflow": "task", "children": {"var": "payload.tasks"}}},
            {"event": "note", "from": "*", "roles": ["clerk"]},
            {"event": "task_done", "from": "work", "roles": ["system"],
             "payload": [{"id": "child", "type": "string"}, {"id": "workflow", "type": "string"},
                         {"id": "stage", "type": "string"}],
             "effects": [{"op": "increment", "var": "done"}]},
            {"event": "close", "from": "work", "to": "closed", "roles": ["clerk"]},
            {"event": "late", "from": "open", "roles": ["system"],
             "effects": [{"op": "set", "var": "late", "value": true}]}
        ],
        "lifecycle": {"suspend": ["clerk", "admin"], "resume": ["admin"], "cancel": ["admin"],
                      "terminate": ["admin"], "children": children}
    })
}

fn t0() -> Timestamp {
    "2026-06-01T08:00:00Z".parse().expect("a time")
}

fn clerk() -> Actor {
    Actor::new("li", &["clerk"])
}

fn admin() -> Actor {
    Actor::new("root", &["admin"])
}

fn worker() -> Actor {
    Actor::new("wu", &["worker"])
}

fn options(clock: &Arc<ManualClock>, partitions: u32) -> Options {
    Options {
        clock: clock.clone(),
        partitions,
        ..Options::default()
    }
}

/// A store at `db` with `task`, `case` (children follow) and `kept`
/// (children keep running) deployed.
fn open(db: &Path, clock: &Arc<ManualClock>, partitions: u32) -> Engine {
    let engine = Engine::open(db, options(clock, partitions)).expect("open");
    for definition in [task(), case("case", "follow"), case("kept", "keep")] {
        engine
            .deploy(&definition.to_string(), &admin())
            .expect("deploys");
    }
    engine
}

fn start(engine: &Engine, workflow: &str, id: &str) {
    engine
        .start(
            workflow,
            id,
            &clerk(),
            serde_json::Map::new(),
            None,
            CommandOptions::default(),
        )
        .expect("starts");
}

fn fire(engine: &Engine, id: &str, event: &str, actor: &Actor) -> Result<(), CommandError> {
    let payload = if event == "assign" {
        json!({"tasks": [format!("{id}-t1"), format!("{id}-t2")]})
    } else {
        Value::Null
    };
    engine
        .fire(id, event, actor, payload, CommandOptions::default())
        .map(|_| ())
}

fn status(engine: &Engine, id: &str) -> Status {
    engine
        .instance(id)
        .expect("reads")
        .expect("exists")
        .instance
        .status
}

/// The rejection's `kind`, the stable code callers read.
fn refusal(result: Result<impl std::fmt::Debug, CommandError>) -> String {
    match result {
        Err(error) => {
            let rejection: &Rejection = error.rejection().expect("a rejection");
            serde_json::to_value(rejection).expect("JSON")["kind"]
                .as_str()
                .expect("a kind")
                .to_owned()
        }
        Ok(done) => panic!("expected a refusal, got {done:?}"),
    }
}

/// Verifies the engine's store; panics with the problems if any.
fn assert_verifies(engine: &Engine) {
    let report =
        strive_audit::store::verify(engine, strive_audit::VerifyOptions::default(), |_| {});
    assert!(report.ok(), "{:#?}", report.problems);
}

/// Rebuilds the closed store `db` from its log alone and checks that its
/// instances are what they were.
fn assert_rebuilds(db: &Path, clock: &Arc<ManualClock>, partitions: u32, ids: &[&str]) {
    let before: Vec<Value> = {
        let engine = Engine::open(db, options(clock, partitions)).expect("open");
        ids.iter()
            .map(|id| json!(engine.instance(id).expect("reads")))
            .collect()
    };
    assert!(crate::util::keep_only_the_log(db) > 0);
    let engine = Engine::open(db, options(clock, partitions)).expect("reopen");
    let after: Vec<Value> = ids
        .iter()
        .map(|id| json!(engine.instance(id).expect("reads")))
        .collect();
    assert_eq!(after, before, "the rebuilt state is the state");
    assert_verifies(&engine);
}

fn suspended_instances_refuse_commands_until_resumed(partitions: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = open(&db, &clock, partitions);
    start(&engine, "case", "c1");
    let outcome = engine
        .suspend("c1", &clerk(), "waiting for the audit")
        .expect("suspends");
    assert_eq!((outcome.event.as_str(), outcome.seq), ("suspend", 2));
    assert_eq!(status(&engine, "c1"), Status::Suspended);
    assert_eq!(refusal(fire(&engine, "c1", "note", &clerk())), "suspended");
    assert_eq!(
        refusal(engine.suspend("c1", &admin(), "again")),
        "lifecycle_not_allowed"
    );
    // Clerks may suspend, not resume; nobody resumes without a reason.
    assert_eq!(
        refusal(engine.resume("c1", &clerk(), "done")),
        "lifecycle_role_not_allowed"
    );
    assert_eq!(
        refusal(engine.resume("c1", &admin(), " ")),
        "invalid_reason"
    );
    let history = engine.history("c1").expect("history");
    assert_eq!(history.len(), 2, "refusals write nothing");
    assert_eq!(
        history[1].event.payload,
        json!({"reason": "waiting for the audit"})
    );
    engine
        .resume("c1", &admin(), "the audit is over")
        .expect("resumes");
    assert_eq!(status(&engine, "c1"), Status::Running);
    fire(&engine, "c1", "note", &clerk()).expect("runs again");
    assert_eq!(
        refusal(engine.resume("c1", &admin(), "twice")),
        "lifecycle_not_allowed"
    );
    assert_verifies(&engine);
    drop(engine);
    assert_rebuilds(&db, &clock, partitions, &["c1"]);
}

#[test]
fn suspended_instances_refuse_commands_until_resumed_p1() {
    suspended_instances_refuse_commands_until_resumed(1);
}

#[test]
fn suspended_instances_refuse_commands_until_resumed_p4() {
    suspended_instances_refuse_commands_until_resumed(4);
}

/// The deadline of `c1` is due at t0 + 2h. Suspended at t0 + 1h, it does
/// not fire at t0 + 3h, nor after a reopen; resumed, it fires at the next
/// run with its due time unchanged. `c2`'s (cancelled) never fires.
fn deadlines_wait_while_suspended(partitions: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = open(&db, &clock, partitions);
    start(&engine, "case", "c1");
    start(&engine, "case", "c2");
    let due = t0() + SignedDuration::from_hours(2);
    clock.set(t0() + SignedDuration::from_hours(1));
    engine.suspend("c1", &clerk(), "paused").expect("suspends");
    engine.cancel("c2", &admin(), "withdrawn").expect("cancels");
    clock.set(t0() + SignedDuration::from_hours(3));
    assert!(engine.fire_due(clock.now()).expect("runs").is_empty());
    drop(engine);
    let engine = Engine::open(&db, options(&clock, partitions)).expect("reopen");
    assert!(engine.fire_due(clock.now()).expect("runs").is_empty());
    let snapshot = engine.instance("c1").expect("reads").expect("exists");
    assert_eq!(snapshot.due.as_ref().map(|d| d.at), Some(due), "it waits");
    assert_eq!(snapshot.instance.data["late"], json!(false));
    assert_eq!(
        engine.instance("c2").expect("reads").expect("exists").due,
        None
    );
    engine.resume("c1", &admin(), "go on").expect("resumes");
    let fired = engine.fire_due(clock.now()).expect("runs");
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!((fired[0].instance.as_str(), fired[0].due), ("c1", due));
    assert!(fired[0].result.is_ok(), "{fired:?}");
    let c1 = engine.instance("c1").expect("reads").expect("exists");
    assert_eq!(c1.instance.data["late"], json!(true));
    assert_eq!(refusal(fire(&engine, "c2", "note", &clerk())), "ended");
    assert_verifies(&engine);
    drop(engine);
    assert_rebuilds(&db, &clock, partitions, &["c1", "c2"]);
}

#[test]
fn deadlines_wait_while_suspended_and_fire_on_resume_p1() {
    deadlines_wait_while_suspended(1);
}

#[test]
fn deadlines_wait_while_suspended_and_fire_on_resume_p4() {
    deadlines_wait_while_suspended(4);
}

/// `case` children follow: a cancel takes the open task along (the
/// finished one stays done). `kept` children keep running: the task goes
/// on and, its parent ended, notifies nobody. A terminate reaches every
/// descendant whatever the definition says.
fn children_follow_as_declared(partitions: u32) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = open(&db, &clock, partitions);
    for (workflow, id) in [("case", "a"), ("kept", "k"), ("kept", "x")] {
        start(&engine, workflow, id);
        fire(&engine, id, "assign", &clerk()).expect("assigns");
    }
    fire(&engine, "a-t2", "finish", &worker()).expect("finishes");
    engine.suspend("a", &clerk(), "paused").expect("suspends");
    assert_eq!(
        status(&engine, "a-t1"),
        Status::Suspended,
        "children follow"
    );
    assert_eq!(
        refusal(fire(&engine, "a-t1", "finish", &worker())),
        "suspended"
    );
    engine
        .cancel("a", &admin(), "the case is withdrawn")
        .expect("cancels");
    assert_eq!(status(&engine, "a"), Status::Cancelled);
    assert_eq!(status(&engine, "a-t1"), Status::Cancelled);
    assert_eq!(
        status(&engine, "a-t2"),
        Status::Running,
        "finished stays done"
    );
    let t1 = engine.history("a-t1").expect("history");
    let cause = t1
        .last()
        .and_then(|e| e.event.cause.clone())
        .expect("caused");
    assert_eq!((cause.instance.as_str(), cause.seq), ("a", 5));
    assert_eq!(refusal(fire(&engine, "a-t1", "finish", &worker())), "ended");
    let late_child = engine.start(
        "task",
        "a-t3",
        &clerk(),
        serde_json::Map::new(),
        Some("a"),
        CommandOptions::default(),
    );
    assert_eq!(
        refusal(late_child),
        "ended",
        "an ended parent takes no child"
    );

    engine.cancel("k", &admin(), "withdrawn").expect("cancels");
    assert_eq!(status(&engine, "k-t1"), Status::Running, "children keep");
    let parent_events = engine.history("k").expect("history").len();
    fire(&engine, "k-t1", "finish", &worker()).expect("a kept child finishes");
    assert_eq!(
        engine.history("k").expect("history").len(),
        parent_events,
        "an ended parent is not notified"
    );

    engine
        .terminate("x", &admin(), "fraud")
        .expect("terminates");
    for id in ["x", "x-t1", "x-t2"] {
        assert_eq!(status(&engine, id), Status::Terminated, "{id}");
    }
    // Every task's deadline is due now; only k-t2's (still running) fires.
    clock.set(t0() + SignedDuration::from_hours(3));
    let fired: Vec<String> = engine
        .fire_due(clock.now())
        .expect("runs")
        .into_iter()
        .map(|f| f.instance)
        .collect();
    assert_eq!(fired, ["k-t2"]);
    assert_verifies(&engine);
    drop(engine);
    let ids = [
        "a", "a-t1", "a-t2", "k", "k-t1", "k-t2", "x", "x-t1", "x-t2",
    ];
    assert_rebuilds(&db, &clock, partitions, &ids);
}

#[test]
fn children_follow_as_their_parents_definition_declares_p1() {
    children_follow_as_declared(1);
}

#[test]
fn children_follow_as_their_parents_definition_declares_p4() {
    children_follow_as_declared(4);
}

#[test]
fn a_workflow_without_a_lifecycle_section_allows_no_operation() {
    let engine = Engine::temporary().expect("engine");
    let mut plain = task();
    plain.as_object_mut().expect("object").remove("lifecycle");
    engine
        .deploy(&plain.to_string(), &admin())
        .expect("deploys");
    engine
        .start(
            "task",
            "t",
            &worker(),
            serde_json::Map::new(),
            None,
            CommandOptions::default(),
        )
        .expect("starts");
    let refused = engine.terminate("t", &admin(), "no");
    let message = match &refused {
        Err(error) => error.to_string(),
        Ok(_) => String::new(),
    };
    assert!(message.contains("add `lifecycle.terminate`"), "{message}");
    assert_eq!(refusal(refused), "lifecycle_role_not_allowed");
}

// --- Tampering, caught by `strive verify`. ---

/// A closed one-partition store where `c1` was suspended, resumed, then
/// fired on. Returns the positions of the suspend and the resume.
fn tamper_store(db: &Path) -> (u64, u64) {
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = open(db, &clock, 1);
    start(&engine, "case", "c1");
    let suspend = engine
        .suspend("c1", &clerk(), "paused")
        .expect("suspends")
        .gseq;
    let resume = engine
        .resume("c1", &admin(), "go on")
        .expect("resumes")
        .gseq;
    fire(&engine, "c1", "note", &clerk()).expect("fires");
    (suspend, resume)
}

/// Rewrites the event at `gseq` as `forge` makes it, rehashed as a forger
/// with the files would.
fn forge(db: &Path, gseq: u64, forge: impl FnOnce(&mut strive_core::Event)) {
    let backend = SledBackend::open(db).expect("raw open");
    let value = strive_store::raw::event(&backend, gseq)
        .expect("read")
        .expect("exists");
    let mut event = strive_core::Event::decode(&value[32..]).expect("decodes");
    forge(&mut event);
    let bytes = event.encode();
    let mut forged = strive_core::event_digest(&bytes).to_vec();
    forged.extend_from_slice(&bytes);
    strive_store::raw::put_event(&backend, gseq, Some(forged)).expect("rewrite");
    backend.flush().expect("flush");
}

fn verify_fails_with(db: &Path, expected: &str) {
    let output = strive(db, &["verify"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains(expected), "{}", text(&output));
}

#[test]
fn verify_catches_a_lifecycle_event_by_a_role_the_definition_does_not_allow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let (_, resume) = tamper_store(&db);
    assert!(strive(&db, &["verify"]).status.success());
    // Only admins may resume; the forger records a clerk.
    forge(&db, resume, |event| event.actor = clerk());
    verify_fails_with(&db, "may not resume");
}

#[test]
fn verify_catches_a_command_moved_before_the_resume() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let (_, resume) = tamper_store(&db);
    // The resume is rewritten as the clerk's note (same place in the
    // chain): the note now comes while the case is suspended.
    forge(&db, resume, |event| {
        event.kind = strive_core::EventKind::Fire;
        event.event = "note".to_owned();
        event.transition = Some("note".to_owned());
        event.actor = clerk();
        event.payload = Value::Null;
    });
    verify_fails_with(&db, "the instance is suspended");
}

#[test]
fn verify_catches_a_child_that_claims_to_follow_a_parent_it_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let clock = Arc::new(ManualClock::new(t0()));
    let engine = open(&db, &clock, 1);
    start(&engine, "case", "a");
    fire(&engine, "a", "assign", &clerk()).expect("assigns");
    let suspend = engine
        .suspend("a", &clerk(), "paused")
        .expect("suspends")
        .gseq;
    drop(engine);
    // The children's events follow the parent's at the next positions;
    // the forger changes one child's reason.
    forge(&db, suspend + 1, |event| {
        assert!(event.cause.is_some(), "{event:?}");
        event.payload = json!({"reason": "something else"});
    });
    verify_fails_with(&db, "which this instance does not follow");
}

// --- The CLI, locally and through `strive serve`. ---

#[test]
fn the_cli_suspends_resumes_and_cancels_locally_and_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let files: Vec<String> = [("task", task()), ("case", case("case", "follow"))]
        .iter()
        .map(|(name, definition)| {
            let path = dir.path().join(format!("{name}.json"));
            std::fs::write(&path, definition.to_string()).expect("write");
            path.display().to_string()
        })
        .collect();
    let run = |args: &[&str]| {
        let output = strive(&db, args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        text(&output)
    };
    run(&["deploy", &files[0], &files[1]]);
    run(&["start", "case", "c1", "--actor", "li", "--role", "clerk"]);
    let suspended = run(&[
        "suspend",
        "c1",
        "--reason",
        "waiting for the audit",
        "--actor",
        "li",
        "--role",
        "clerk",
    ]);
    assert!(
        suspended.starts_with("c1: suspend -> open (seq 2"),
        "{suspended}"
    );
    let shown = run(&["show", "c1"]);
    assert!(shown.contains("status:   suspended"), "{shown}");
    assert!(shown.contains("(waits until resumed)"), "{shown}");
    let refused = strive(
        &db,
        &["fire", "c1", "note", "--actor", "li", "--role", "clerk"],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("the instance is suspended"),
        "{}",
        text(&refused)
    );
    let refused = strive(
        &db,
        &[
            "resume", "c1", "--reason", "r", "--actor", "li", "--role", "clerk", "--format", "json",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("lifecycle_role_not_allowed"),
        "{}",
        text(&refused)
    );
    run(&[
        "resume", "c1", "--reason", "over", "--actor", "root", "--role", "admin",
    ]);
    assert!(run(&["verify"]).contains("everything holds"));

    // Over HTTP, as the token's actor (`strive serve` enforces grants).
    run(&["grant", "li", "clerk"]);
    run(&["grant", "root", "admin"]);
    let issue = |actor: &str, roles: &str| {
        let issued = run(&["token", "issue", "--actor", actor, "--roles", roles]);
        issued.lines().last().unwrap_or_default().trim().to_owned()
    };
    let (clerk_token, admin_token) = (issue("li", "clerk"), issue("root", "admin"));
    let server = serving(&db, &["serve", "--listen", "127.0.0.1:0"]);
    let remote = |token: &str, args: &[&str]| {
        let mut all = vec!["--server", server.url.as_str(), "--token", token];
        all.extend_from_slice(args);
        strive(&db, &all)
    };
    let suspended = remote(&clerk_token, &["suspend", "c1", "--reason", "again"]);
    assert!(suspended.status.success(), "{}", text(&suspended));
    assert!(
        text(&suspended).starts_with("c1: suspend -> open"),
        "{}",
        text(&suspended)
    );
    let refused = remote(&clerk_token, &["fire", "c1", "note"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("suspended"), "{}", text(&refused));
    let refused = remote(&clerk_token, &["cancel", "c1", "--reason", "no"]);
    assert!(
        text(&refused).contains("may not cancel"),
        "{}",
        text(&refused)
    );
    let cancelled = remote(&admin_token, &["cancel", "c1", "--reason", "withdrawn"]);
    assert!(cancelled.status.success(), "{}", text(&cancelled));
    let shown = remote(&clerk_token, &["show", "c1", "--format", "json"]);
    let shown: Value = serde_json::from_slice(&shown.stdout).expect("JSON");
    assert_eq!(shown["status"], json!("cancelled"), "{shown}");
    // The raw route answers a refusal with an RFC 9457 problem.
    let answer = ureq::post(&format!("{}/v1/instances/c1/lifecycle", server.url))
        .header("Authorization", &format!("Bearer {admin_token}"))
        .config()
        .http_status_as_error(false)
        .build()
        .send_json(json!({"op": "resume", "reason": "undo"}))
        .expect("an answer");
    assert_eq!(answer.status().as_u16(), 409);
    let mut answer = answer;
    let problem: Value = answer.body_mut().read_json().expect("a problem");
    assert_eq!(problem["code"], json!("rejected"), "{problem}");
    assert_eq!(
        problem["details"]["kind"],
        json!("lifecycle_not_allowed"),
        "{problem}"
    );
    drop(server);
}
