//! The organisation campaign through every stage, including a rectification
//! loop, driven once through the library and once through the `strive`
//! binary from the same list of steps (issue #3); and the CLI's contract:
//! exit codes, JSON output, a database in use.

use std::process::Output;

use serde_json::{Map, Value, json};
use strive_store::{Actor, CommandOptions, Engine, Options};

use crate::util::{root, strive};

/// One command of the scenario and the stage the instance must be in after.
pub struct Step {
    pub instance: &'static str,
    pub event: &'static str,
    pub actor: &'static str,
    pub role: &'static str,
    pub payload: Value,
    pub stage: &'static str,
}

impl Step {
    /// Fires this step on `engine` as its actor in its role.
    pub fn fire(
        &self,
        engine: &Engine,
    ) -> Result<strive_store::Outcome, strive_store::CommandError> {
        engine.fire(
            self.instance,
            self.event,
            &Actor::new(self.actor, &[self.role]),
            self.payload.clone(),
            CommandOptions::default(),
        )
    }
}

fn step(
    instance: &'static str,
    event: &'static str,
    actor: &'static str,
    role: &'static str,
    payload: Value,
    stage: &'static str,
) -> Step {
    Step {
        instance,
        event,
        actor,
        role,
        payload,
        stage,
    }
}

fn scores(level: i64, satisfied: bool) -> Value {
    json!({"leadership": level, "members": level, "mechanism": level,
           "performance": level, "response": level, "satisfied": satisfied})
}

fn member_scores(level: i64) -> Value {
    json!({"study": level, "performance": level, "service": level,
           "discipline": level, "integrity": level, "satisfied": true})
}

/// One organisation with one member: a first evaluation that fails, a
/// rectification loop, then commendation and closing.
pub fn scenario() -> Vec<Step> {
    let mut steps = vec![
        step(
            "o1",
            "mobilise",
            "sec",
            "branch_secretary",
            json!({"members": [{"id": "m1"}]}),
            "commitment",
        ),
        step(
            "o1",
            "publish_plan",
            "sec",
            "branch_secretary",
            json!({"plan": "学习强化，服务群众"}),
            "comment",
        ),
        step(
            "o1",
            "add_comment",
            "pc",
            "party_committee",
            json!({"author": "pc", "text": "方向明确"}),
            "comment",
        ),
        step(
            "o1",
            "open_evaluation",
            "lg",
            "leading_group",
            Value::Null,
            "evaluation",
        ),
    ];
    for n in ["e1", "e2", "e3", "e4", "e5"] {
        steps.push(step(
            "o1",
            "evaluate",
            n,
            "evaluator",
            scores(60, false),
            "evaluation",
        ));
    }
    steps.extend([
        step(
            "o1",
            "close_evaluation",
            "lg",
            "leading_group",
            Value::Null,
            "rectification",
        ),
        step(
            "o1",
            "add_problem",
            "lg",
            "leading_group",
            json!({"id": "p1", "text": "窗口服务效率低", "due": "2026-08-31T00:00:00+08:00"}),
            "rectification",
        ),
        step(
            "o1",
            "close_problem",
            "aud",
            "auditor",
            json!({"id": "p1", "note": "已整改"}),
            "rectification",
        ),
        step(
            "o1",
            "rectified",
            "lg",
            "leading_group",
            Value::Null,
            "commitment",
        ),
        step(
            "o1",
            "publish_plan",
            "sec",
            "branch_secretary",
            json!({"plan": "第二轮方案"}),
            "comment",
        ),
        step(
            "o1",
            "add_comment",
            "pc",
            "party_committee",
            json!({"author": "pc", "text": "整改到位"}),
            "comment",
        ),
        step(
            "o1",
            "open_evaluation",
            "lg",
            "leading_group",
            Value::Null,
            "evaluation",
        ),
        // The member's own pledge, commented, evaluated and commended.
        step(
            "m1",
            "submit_pledge",
            "m1",
            "member",
            json!({"pledge": "带头学习"}),
            "comment",
        ),
        step(
            "m1",
            "add_comment",
            "pc",
            "party_committee",
            json!({"author": "pc", "text": "好"}),
            "comment",
        ),
        step(
            "m1",
            "open_evaluation",
            "sec",
            "branch_secretary",
            Value::Null,
            "evaluation",
        ),
    ]);
    for n in ["e1", "e2", "e3", "e4", "e5"] {
        steps.push(step(
            "m1",
            "evaluate",
            n,
            "evaluator",
            member_scores(90),
            "evaluation",
        ));
    }
    steps.push(step(
        "m1",
        "close_evaluation",
        "sec",
        "branch_secretary",
        Value::Null,
        "commended",
    ));
    for n in ["e1", "e2", "e3", "e4", "e5", "e6"] {
        steps.push(step(
            "o1",
            "evaluate",
            n,
            "evaluator",
            scores(92, true),
            "evaluation",
        ));
    }
    steps.extend([
        step(
            "o1",
            "close_evaluation",
            "lg",
            "leading_group",
            Value::Null,
            "commended",
        ),
        // The organisation closes only once its members' pledges have.
        step(
            "m1",
            "close",
            "sec",
            "branch_secretary",
            Value::Null,
            "closed",
        ),
        step("o1", "close", "lg", "leading_group", Value::Null, "closed"),
    ]);
    steps
}

/// The organisation's initial data: the mobilisation deadline, and five
/// evaluators instead of the default ten so that the scenario stays short.
pub const START_DATA: &str =
    r#"{"mobilisation_due": "2026-05-31T23:59:59+08:00", "min_evaluators": 5}"#;

/// Deploys every workflow file as the admin, then starts the organisation
/// `o1` of `scenario()` with `START_DATA` as the leading group.
pub fn deploy_and_start_o1(engine: &Engine) -> strive_store::Outcome {
    let files = workflow_files();
    let inputs: Vec<(Option<&str>, &str)> = files
        .iter()
        .map(|(n, t)| (Some(n.as_str()), t.as_str()))
        .collect();
    engine
        .deploy_all(&inputs, &Actor::new("admin", &["admin"]))
        .expect("deploy");
    let data: Map<String, Value> = serde_json::from_str(START_DATA).expect("json");
    engine
        .start(
            "org-campaign",
            "o1",
            &Actor::new("lg", &["leading_group"]),
            data,
            None,
            CommandOptions::default(),
        )
        .expect("start")
}

pub fn workflow_files() -> Vec<(String, String)> {
    [
        "member-pledge",
        "org-campaign",
        "bureau-campaign",
        "document-approval",
    ]
    .iter()
    .map(|name| {
        let path = root().join("workflows").join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path).expect("workflow file");
        (path.display().to_string(), text)
    })
    .collect()
}

#[test]
fn org_campaign_through_the_library() {
    let engine = Engine::temporary().expect("engine");
    let started = deploy_and_start_o1(&engine);
    assert_eq!(started.stage, "mobilisation");
    for (n, s) in scenario().into_iter().enumerate() {
        let outcome = s
            .fire(&engine)
            .unwrap_or_else(|e| panic!("step {n} ({} {}): {e}", s.instance, s.event));
        assert_eq!(
            outcome.stage, s.stage,
            "step {n} ({} {})",
            s.instance, s.event
        );
    }
    let org = engine.instance("o1").expect("read").expect("exists");
    assert!(org.instance.finished);
    assert_eq!(org.instance.data["round"], json!(2));
    // Five first-round evaluations were cleared when the second opened, and
    // the six second-round evaluators count once each.
    assert_eq!(
        org.instance.data["evaluations"].as_object().map(Map::len),
        Some(6)
    );
    assert_eq!(org.children, ["m1"]);
    let stages: Vec<String> = engine
        .history("o1")
        .expect("history")
        .iter()
        .map(|e| e.event.to.clone())
        .collect();
    for stage in [
        "mobilisation",
        "commitment",
        "comment",
        "evaluation",
        "rectification",
        "commended",
        "closed",
    ] {
        assert!(
            stages.iter().any(|s| s == stage),
            "the history passes through {stage}"
        );
    }
}

fn json_out(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn org_campaign_through_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let files: Vec<String> = workflow_files().into_iter().map(|(path, _)| path).collect();
    let mut args = vec!["deploy", "--format", "json"];
    args.extend(files.iter().map(String::as_str));
    let deployed = strive(&db, &args);
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    assert_eq!(json_out(&deployed).as_array().map(Vec::len), Some(4));
    let started = strive(
        &db,
        &[
            "start",
            "org-campaign",
            "o1",
            "--actor",
            "lg",
            "--role",
            "leading_group",
            "--data",
            START_DATA,
            "--format",
            "json",
        ],
    );
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    assert_eq!(json_out(&started)["stage"], json!("mobilisation"));
    for (n, s) in scenario().into_iter().enumerate() {
        let payload = s.payload.to_string();
        let mut args = vec![
            "fire", s.instance, s.event, "--actor", s.actor, "--role", s.role, "--format", "json",
        ];
        if !s.payload.is_null() {
            args.extend(["--payload", payload.as_str()]);
        }
        let output = strive(&db, &args);
        assert!(
            output.status.success(),
            "step {n} ({} {}): {}",
            s.instance,
            s.event,
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(json_out(&output)["stage"], json!(s.stage), "step {n}");
    }
    let shown = json_out(&strive(&db, &["show", "o1", "--format", "json"]));
    assert_eq!(shown["stage"], json!("closed"));
    assert_eq!(shown["finished"], json!(true));
    let history = json_out(&strive(&db, &["history", "o1", "--format", "json"]));
    let events = history.as_array().expect("a list of events");
    assert_eq!(
        events.len(),
        1 + scenario().iter().filter(|s| s.instance == "o1").count()
    );
    assert!(
        events
            .iter()
            .all(|e| e["hash"].as_str().map(str::len) == Some(64))
    );
    let listed = json_out(&strive(
        &db,
        &["list", "--workflow", "member-pledge", "--format", "json"],
    ));
    assert_eq!(listed["items"][0]["id"], json!("m1"));
    let text = strive(&db, &["history", "o1"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("rectified"));
}

#[test]
fn a_rejection_exits_1_with_its_typed_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let files: Vec<String> = workflow_files().into_iter().map(|(path, _)| path).collect();
    let mut args = vec!["deploy"];
    args.extend(files.iter().map(String::as_str));
    assert!(strive(&db, &args).status.success());
    assert!(
        strive(
            &db,
            &[
                "start",
                "org-campaign",
                "o1",
                "--actor",
                "lg",
                "--role",
                "leading_group",
                "--data",
                START_DATA
            ]
        )
        .status
        .success()
    );
    let denied = strive(
        &db,
        &[
            "fire",
            "o1",
            "mobilise",
            "--actor",
            "x",
            "--role",
            "evaluator",
            "--payload",
            r#"{"members": [{"id": "m1"}]}"#,
            "--format",
            "json",
        ],
    );
    assert_eq!(denied.status.code(), Some(1));
    let body = json_out(&denied);
    assert_eq!(body["error"]["kind"], json!("rejected"));
    assert_eq!(body["error"]["details"]["kind"], json!("role_not_allowed"));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("branch_secretary"),
        "names the allowed role"
    );
    // Nothing was written: o1 is still at its start event.
    let shown = json_out(&strive(&db, &["show", "o1", "--format", "json"]));
    assert_eq!(shown["seq"], json!(1));
    let conflict = strive(
        &db,
        &[
            "fire",
            "o1",
            "mobilise",
            "--actor",
            "s",
            "--role",
            "branch_secretary",
            "--payload",
            r#"{"members": [{"id": "m1"}]}"#,
            "--expect-seq",
            "5",
        ],
    );
    assert_eq!(conflict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&conflict.stderr).contains("expected 5"));
    let retry = [
        "fire",
        "o1",
        "mobilise",
        "--actor",
        "s",
        "--role",
        "branch_secretary",
        "--payload",
        r#"{"members": [{"id": "m1"}]}"#,
        "--command-id",
        "k1",
        "--format",
        "json",
    ];
    let first = json_out(&strive(&db, &retry));
    let again = json_out(&strive(&db, &retry));
    assert_eq!(first["gseq"], again["gseq"]);
    assert_eq!(again["replayed"], json!(true));
}

#[test]
fn usage_errors_exit_2_and_invalid_definitions_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    assert_eq!(strive(&db, &["fire", "o1"]).status.code(), Some(2));
    assert_eq!(
        strive(&db, &["tick", "--now", "tomorrow"]).status.code(),
        Some(2)
    );
    let bad = root().join("tests/data/definitions/013-unknown-stage-in-to.json");
    let validated = strive(
        &db,
        &["validate", "--format", "json", bad.to_str().expect("utf-8")],
    );
    assert_eq!(validated.status.code(), Some(1));
    let report = json_out(&validated);
    assert!(report["errors"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(report["files"][0]["diagnostics"][0]["code"], json!("S002"));
    let deployed = strive(&db, &["deploy", bad.to_str().expect("utf-8")]);
    assert_eq!(deployed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&deployed.stderr).contains("S002"));
}

#[test]
fn a_database_in_use_is_named_not_hung() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("db");
    let _held = Engine::open(&db, Options::default()).expect("open");
    let output = strive(&db, &["list"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("in use") && stderr.contains(&db.display().to_string()),
        "{stderr}"
    );
}

/// A reader that closes the pipe early (`strive schema | head -1`) ends
/// strive quietly with success, not with a panic on the failed write.
#[test]
fn a_closed_stdout_pipe_is_not_a_panic() {
    for _ in 0..5 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_strive"))
            .arg("schema")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn strive");
        // Closing the read end at once makes strive's first write fail
        // with a broken pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("strive ran");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
