//! Migration of running instances (issue #13 item 1) through the binary:
//! a version 2 of the document approval renames a stage and a variable and
//! adds one; a plan moves the running documents (a finished one stays),
//! `--dry-run` writes nothing, the migration is recorded as one `migrate`
//! event per instance, `verify` and replay accept it, the documents go on
//! under version 2, a store rebuilt from its log keeps them there, and
//! every plan of the corpus (tests/data/migrations) gives its expected
//! outcome, each faulty one refused with nothing written.

use std::path::Path;

use serde_json::{Value, json};

use crate::util::{root, strive, text};

fn ok(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{}", text(output));
    text(output)
}

/// Version 2: `section_review` is `office_review`, `opinions` is
/// `comments`, and documents have a `priority`.
fn version_2() -> String {
    let v1 =
        std::fs::read_to_string(root().join("workflows/document-approval.json")).expect("workflow");
    let renamed = v1
        .replace("section_review", "office_review")
        .replace("\"opinions\"", "\"comments\"")
        .replace("data.opinions", "data.comments");
    let mut definition: Value = serde_json::from_str(&renamed).expect("JSON");
    definition["data"].as_array_mut().expect("data").push(
        json!({"id": "priority", "type": "string", "enum": ["normal", "urgent"],
                     "default": "normal"}),
    );
    serde_json::to_string_pretty(&definition).expect("JSON")
}

fn plan(changes: Value) -> Value {
    let mut plan = json!({
        "workflow": "document-approval", "from_version": 1, "to_version": 2,
        "reason": "the office reviews now, and urgency is tracked",
        "stages": {"section_review": "office_review"},
        "renames": {"opinions": "comments"},
        "defaults": {"priority": "normal"}
    });
    if let (Value::Object(plan), Value::Object(changes)) = (&mut plan, changes) {
        for (key, value) in changes {
            plan.insert(key, value);
        }
    }
    plan
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).expect("written");
    path.display().to_string()
}

fn as_actor<'a>(args: &[&'a str], who: &'a str, role: &'a str) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--actor", who, "--role", role]);
    all
}

/// A store with three documents: one in draft, one in review, one approved.
fn store(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("store");
    let workflow = root().join("workflows/document-approval.json");
    ok(&strive(&db, &["deploy", workflow.to_str().expect("utf-8")]));
    for id in ["doc-a", "doc-b", "doc-c"] {
        ok(&strive(
            &db,
            &as_actor(&["start", "document-approval", id], "li", "author"),
        ));
    }
    let submit = json!({"title": "通知", "body": "正文"}).to_string();
    for id in ["doc-b", "doc-c"] {
        ok(&strive(
            &db,
            &as_actor(
                &["fire", id, "submit", "--payload", &submit],
                "li",
                "author",
            ),
        ));
    }
    let opinion = json!({"opinion": "同意"}).to_string();
    ok(&strive(
        &db,
        &as_actor(
            &["fire", "doc-c", "approve", "--payload", &opinion],
            "wang",
            "section_chief",
        ),
    ));
    ok(&strive(
        &db,
        &as_actor(
            &["fire", "doc-c", "approve", "--payload", &opinion],
            "zhao",
            "director",
        ),
    ));
    let v2 = dir.join("v2.json");
    std::fs::write(&v2, version_2()).expect("v2");
    ok(&strive(&db, &["deploy", v2.to_str().expect("utf-8")]));
    db
}

fn show(db: &Path, id: &str) -> Value {
    serde_json::from_str(&ok(&strive(db, &["show", id, "--format", "json"]))).expect("JSON")
}

#[test]
fn running_instances_migrate_and_go_on_under_the_new_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = store(dir.path());
    let plan_file = write(dir.path(), "plan.json", &plan(json!({})));
    let events = |db: &Path| ok(&strive(db, &["export"])).lines().count();
    let before = events(&db);

    let dry = ok(&strive(
        &db,
        &["migrate", "--plan", &plan_file, "--dry-run"],
    ));
    assert!(
        dry.contains(
            "doc-b: `section_review` v1 -> `office_review` v2; opinions renamed to comments; \
             +priority = \"normal\""
        ) && dry.contains("2 instance(s) of document-approval would move from v1 to v2"),
        "{dry}"
    );
    assert!(!dry.contains("doc-c"), "a finished document stays: {dry}");
    assert_eq!(events(&db), before, "a dry run writes nothing");

    let done = ok(&strive(
        &db,
        &as_actor(&["migrate", "--plan", &plan_file], "admin", "admin"),
    ));
    assert!(
        done.contains("2 instance(s) of document-approval moved"),
        "{done}"
    );
    let b = show(&db, "doc-b");
    assert_eq!(
        (b["version"].as_u64(), b["stage"].as_str()),
        (Some(2), Some("office_review"))
    );
    assert_eq!(b["data"]["priority"], json!("normal"));
    assert!(b["data"].get("opinions").is_none() && b["data"].get("comments").is_some());
    assert_eq!(show(&db, "doc-c")["version"].as_u64(), Some(1));
    let history = ok(&strive(&db, &["history", "doc-b"]));
    assert!(history.contains("migrate"), "{history}");
    assert!(ok(&strive(&db, &["verify"])).contains("everything holds"));
    let replayed = ok(&strive(&db, &["replay", "doc-b"]));
    assert!(
        replayed.contains("equals the stored snapshot"),
        "{replayed}"
    );

    // Version 2's transitions now apply: the office approves.
    let opinion = json!({"opinion": "同意"}).to_string();
    ok(&strive(
        &db,
        &as_actor(
            &["fire", "doc-b", "approve", "--payload", &opinion],
            "wang",
            "section_chief",
        ),
    ));
    assert_eq!(show(&db, "doc-b")["stage"], json!("director_review"));
    // Migrating again finds nothing left on version 1 that runs.
    let again = ok(&strive(
        &db,
        &as_actor(
            &["migrate", "--plan", &plan_file, "--dry-run"],
            "admin",
            "admin",
        ),
    ));
    assert!(again.contains("0 instance(s)"), "{again}");

    // Rebuilt from its log, the store decides each migrate event again.
    let listed = ok(&strive(&db, &["list", "--format", "json"]));
    crate::util::keep_only_the_log(&db);
    assert_eq!(ok(&strive(&db, &["list", "--format", "json"])), listed);
    assert!(ok(&strive(&db, &["verify"])).contains("everything holds"));
}

// --- The plan corpus: tests/data/migrations (README.md there). ---

fn corpus_dir() -> std::path::PathBuf {
    root().join("tests/data/migrations")
}

/// The `.json` plans directly in `dir`, sorted by name.
fn plans_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .expect("the corpus directory")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    found.sort();
    found
}

/// What the engine says of a plan, in the corpus's words: for a refused
/// plan one line, `plan POINTER` (the plan is inconsistent with the two
/// versions, or does not parse: `plan ""`) or `instance ID` (one selected
/// instance cannot move); for an accepted one, each move as `ID FROM ->
/// TO` and the variables that change. Messages are left out, as in the
/// definition corpus: callers rely on where, not on wording.
fn outcome(engine: &strive_store::Engine, text: &str) -> String {
    let refused = |error: &strive_store::PlanError| match error {
        strive_store::PlanError::Plan { pointer, .. } if pointer.is_empty() => {
            "plan \"\"\n".to_owned()
        }
        strive_store::PlanError::Plan { pointer, .. } => format!("plan {pointer}\n"),
        strive_store::PlanError::Instance { instance, .. } => format!("instance {instance}\n"),
        other => format!("refused {other}\n"),
    };
    let plan = match strive_store::MigrationPlan::from_json(text) {
        Ok(plan) => plan,
        Err(error) => return refused(&error),
    };
    match engine.migrate_dry_run(&plan) {
        Ok(moves) => moves
            .iter()
            .map(|m| {
                let changes: Vec<&str> = m.changes.keys().map(String::as_str).collect();
                format!(
                    "{} {} -> {} changes [{}]\n",
                    m.instance,
                    m.from_stage,
                    m.to_stage,
                    changes.join(", ")
                )
            })
            .collect(),
        Err(strive_store::CommandError::Migration { reason }) => refused(&reason),
        // A selected instance that does not exist is refused before any
        // rule is applied to it.
        Err(strive_store::CommandError::UnknownInstance { instance }) => {
            format!("instance {instance}\n")
        }
        Err(other) => format!("error {other}\n"),
    }
}

/// Compares (or with `UPDATE_EXPECT=1` rewrites) `path`'s `.expected`.
fn check_expected(path: &Path, actual: &str, failures: &mut Vec<String>) {
    let expected_path = path.with_extension("expected");
    if std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1") {
        std::fs::write(&expected_path, actual).expect("write the expectation");
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}:\n  expected {expected:?}\n  got      {actual:?}",
            path.display()
        ));
    }
}

#[test]
fn the_plan_corpus_gives_its_expected_outcomes_and_refused_plans_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = store(dir.path());
    let before = ok(&strive(&db, &["export"]));
    let (refused, valid) = (
        plans_in(&corpus_dir()),
        plans_in(&corpus_dir().join("valid")),
    );
    assert!(
        refused.len() >= 12 && valid.len() >= 3,
        "the corpus is there"
    );
    let mut failures = Vec::new();
    {
        let engine = strive_store::Engine::open_existing(&db, strive_store::Options::default())
            .expect("open");
        for (path, must_refuse) in refused
            .iter()
            .map(|p| (p, true))
            .chain(valid.iter().map(|p| (p, false)))
        {
            let said = outcome(&engine, &std::fs::read_to_string(path).expect("read"));
            let is_refusal = said.starts_with("plan ") || said.starts_with("instance ");
            if is_refusal != must_refuse {
                failures.push(format!("{}: {said}", path.display()));
            }
            check_expected(path, &said, &mut failures);
        }
    }
    // Through the binary too: every refused plan exits non-zero, with
    // nothing written.
    for path in &refused {
        let file = path.display().to_string();
        let output = strive(
            &db,
            &as_actor(&["migrate", "--plan", &file], "admin", "admin"),
        );
        assert!(!output.status.success(), "{file}: {}", text(&output));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        ok(&strive(&db, &["export"])),
        before,
        "no refused plan wrote anything"
    );
}
