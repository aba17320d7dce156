//! What-if simulation (issue #13 item 2) through the binary, on copies of a
//! seeded campaign's store: a stricter definition names exactly the
//! organisations whose recorded commendation it would have refused (worked
//! out here from their histories), at the event where each diverges; the
//! deployed definition changes nothing; selections, bad definitions and
//! mismatched options are refused; and the store is left exactly as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::ocel::campaign_store;
use crate::util::{copy_dir, root, strive, text};

/// For each organisation, its `close_evaluation` events that commended it,
/// each with its seq and how many distinct evaluators it counted (the
/// evaluations are a map by evaluator, reset by `open_evaluation`).
fn commendations(db: &Path) -> BTreeMap<String, Vec<(u64, usize)>> {
    let mut out = BTreeMap::new();
    for org in ["org-01", "org-02", "org-03"] {
        let history = strive(db, &["history", org, "--format", "json"]);
        assert!(history.status.success(), "{}", text(&history));
        let events: Value = serde_json::from_slice(&history.stdout).expect("json");
        let mut evaluators = BTreeSet::new();
        let mut closes = Vec::new();
        for event in events.as_array().expect("events") {
            let event = event.get("event").unwrap_or(event);
            match event["event"].as_str().expect("a name") {
                "open_evaluation" => evaluators.clear(),
                "evaluate" => {
                    evaluators.insert(event["actor"]["id"].as_str().expect("actor").to_owned());
                }
                "close_evaluation" if event["to"] == "commended" => {
                    closes.push((event["seq"].as_u64().expect("seq"), evaluators.len()));
                }
                _ => {}
            }
        }
        out.insert(org.to_owned(), closes);
    }
    out
}

/// The organisation workflow with `min_evaluators` defaulting to `min`.
fn stricter(dir: &Path, min: usize) -> std::path::PathBuf {
    let text = std::fs::read_to_string(root().join("workflows/org-campaign.json")).expect("read");
    let mut definition: Value = serde_json::from_str(&text).expect("json");
    for variable in definition["data"].as_array_mut().expect("data") {
        if variable["id"] == "min_evaluators" {
            variable["default"] = Value::from(min);
        }
    }
    let path = dir.join("stricter.json");
    std::fs::write(&path, definition.to_string()).expect("write");
    path
}

fn store_copy(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("db");
    copy_dir(campaign_store(), &db);
    db
}

#[test]
fn a_stricter_definition_names_exactly_the_instances_it_would_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = store_copy(dir.path());
    let closes = commendations(&db);
    // The strictest bar some commendation still clears: every organisation
    // commended with fewer evaluators than that would have been sent to
    // rectification instead.
    let min = closes
        .values()
        .flatten()
        .map(|(_, n)| *n)
        .max()
        .expect("a commendation");
    let expected: BTreeMap<String, u64> = closes
        .iter()
        .filter_map(|(org, closes)| {
            closes
                .iter()
                .find(|(_, n)| *n < min)
                .map(|(seq, _)| (org.clone(), *seq))
        })
        .collect();
    assert!(
        !expected.is_empty() && expected.len() < closes.len(),
        "the seeded campaign splits at {min} evaluators: {closes:?}"
    );
    let before = strive(&db, &["checkpoint"]);
    let file = stricter(dir.path(), min);
    let output = strive(
        &db,
        &[
            "simulate",
            file.to_str().expect("utf-8"),
            "--format",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    let diverged: BTreeMap<String, u64> = report["diverged"]
        .as_array()
        .expect("diverged")
        .iter()
        .map(|d| {
            assert_eq!(d["code"], "outcome_mismatch", "{d}");
            assert_eq!(d["event"], "close_evaluation", "{d}");
            (
                d["instance"].as_str().expect("instance").to_owned(),
                d["seq"].as_u64().expect("seq"),
            )
        })
        .collect();
    assert_eq!(diverged, expected, "{report}");
    assert_eq!(report["instances"], 3);
    // The store is exactly as it was.
    assert_eq!(strive(&db, &["checkpoint"]).stdout, before.stdout);
    // The text form names them too.
    let output = strive(&db, &["simulate", file.to_str().expect("utf-8")]);
    for org in expected.keys() {
        assert!(text(&output).contains(org.as_str()), "{}", text(&output));
    }
}

#[test]
fn the_deployed_definition_changes_nothing_and_selections_narrow_the_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = store_copy(dir.path());
    let deployed = root().join("workflows/org-campaign.json");
    let output = strive(&db, &["simulate", deployed.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("nothing would change"),
        "{}",
        text(&output)
    );
    // One instance, under a bar no organisation clears.
    let file = stricter(dir.path(), 1000);
    let output = strive(
        &db,
        &[
            "simulate",
            file.to_str().expect("utf-8"),
            "--instance",
            "org-02",
            "--format",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let report: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(report["instances"], 1);
    let names: Vec<&str> = report["diverged"]
        .as_array()
        .expect("diverged")
        .iter()
        .map(|d| d["instance"].as_str().expect("instance"))
        .collect();
    assert_eq!(names, ["org-02"]);
}

#[test]
fn simulations_that_cannot_run_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = store_copy(dir.path());
    let file = stricter(dir.path(), 12);
    let file = file.to_str().expect("utf-8");
    let broken = dir.path().join("broken.json");
    let text_of = std::fs::read_to_string(root().join("workflows/org-campaign.json"))
        .expect("read")
        .replace("\"to\": \"commended\"", "\"to\": \"no_such_stage\"");
    std::fs::write(&broken, text_of).expect("write");
    let cases: [(&[&str], Option<i32>, &str); 4] = [
        (
            &["simulate", file, "--workflow", "member-pledge"],
            Some(2),
            "defines `org-campaign`",
        ),
        (
            &["simulate", file, "--instance", "org-01-m01"],
            Some(2),
            "an instance of `member-pledge`",
        ),
        (
            &["simulate", file, "--instance", "org-99"],
            Some(1),
            "no instance `org-99`",
        ),
        (
            &["simulate", broken.to_str().expect("utf-8")],
            Some(1),
            "no_such_stage",
        ),
    ];
    for (args, code, says) in cases {
        let output = strive(&db, args);
        assert_eq!(output.status.code(), code, "{args:?}: {}", text(&output));
        assert!(text(&output).contains(says), "{args:?}: {}", text(&output));
    }
}
