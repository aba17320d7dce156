//! The OCEL 2.0 export (issue #14 item 1) on a seeded campaign, through the
//! binary: every instance event is there once with its subject, every
//! relation names an object that is there, the objects are the ones the
//! store holds (instances, evaluators, comments, rectification items), the
//! filters select as for the other exports, bad options are refused with a
//! message, and PM4Py reads the log and discovers an object-centric
//! directly-follows graph from it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use serde_json::Value;
use strive_store::EventKind;

use crate::util::{copy_dir, strive, text};

/// The campaign's store, closed, and what its events say the OCEL log must
/// hold, counted from the store itself.
struct Fixture {
    db: PathBuf,
    /// Instance events (starts and fires), every partition's.
    events: u64,
    /// Instances per workflow.
    instances: BTreeMap<String, u64>,
    /// Distinct actors of `evaluate` events.
    evaluators: u64,
    /// `add_comment` events.
    comments: u64,
    /// Distinct `(instance, problem id)` of `add_problem` events.
    items: u64,
    /// Instance events of `member-pledge`.
    member_events: u64,
}

/// The seeded campaign's store, closed (shared with `tests/receipt.rs`):
/// copy it before opening, since sled locks an open store.
pub(crate) fn campaign_store() -> &'static Path {
    &fixture().db
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(build_fixture)
}

fn build_fixture() -> Fixture {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("ocel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("fixture dir");
    let db = dir.join("db");
    let engine =
        crate::util::demo_store(&db, &strive_campaign::DemoOptions::new(3, 12).with_seed(7));
    let mut fixture = Fixture {
        db: db.clone(),
        events: 0,
        instances: BTreeMap::new(),
        evaluators: 0,
        comments: 0,
        items: 0,
        member_events: 0,
    };
    let mut evaluators = BTreeSet::new();
    let mut items = BTreeSet::new();
    for partition in 0..engine.partitions() {
        for stored in engine.events_in(partition, 1) {
            let event = stored.expect("read").event;
            if !matches!(event.kind, EventKind::Start | EventKind::Fire) {
                continue;
            }
            fixture.events += 1;
            if event.workflow == "member-pledge" {
                fixture.member_events += 1;
            }
            match (event.kind, event.event.as_str()) {
                (EventKind::Start, _) => {
                    *fixture.instances.entry(event.workflow.clone()).or_default() += 1;
                }
                (_, "evaluate") => {
                    evaluators.insert(event.actor.id.clone());
                }
                (_, "add_comment") => fixture.comments += 1,
                (_, "add_problem") => {
                    items.insert((event.instance.clone(), event.payload["id"].to_string()));
                }
                _ => {}
            }
        }
    }
    fixture.evaluators = evaluators.len() as u64;
    fixture.items = items.len() as u64;
    assert!(
        fixture.comments > 0 && fixture.items > 0 && fixture.evaluators > 0,
        "the seeded campaign comments, evaluates and rectifies"
    );
    fixture
}

/// Exports the fixture's store (a private copy: sled locks an open store)
/// with `args` after `export --format ocel`.
fn export(dir: &Path, args: &[&str]) -> Output {
    let db = dir.join("db");
    if !db.exists() {
        copy_dir(&fixture().db, &db);
    }
    let mut all = vec!["export", "--format", "ocel"];
    all.extend_from_slice(args);
    strive(&db, &all)
}

fn parse(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(output));
    serde_json::from_slice(&output.stdout).expect("the OCEL log is JSON")
}

fn array<'a>(log: &'a Value, key: &str) -> &'a Vec<Value> {
    log[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is an array"))
}

fn count_type(log: &Value, kind: &str) -> u64 {
    array(log, "objects")
        .iter()
        .filter(|o| o["type"] == kind)
        .count() as u64
}

#[test]
fn the_ocel_log_holds_every_instance_event_and_the_objects_they_concern() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = parse(&export(dir.path(), &[]));
    let events = array(&log, "events");
    assert_eq!(events.len() as u64, f.events);
    let ids: BTreeSet<&str> = array(&log, "objects")
        .iter()
        .map(|o| o["id"].as_str().expect("an object id"))
        .collect();
    assert_eq!(
        ids.len(),
        array(&log, "objects").len(),
        "object ids are unique"
    );
    let mut event_ids = BTreeSet::new();
    for event in events {
        assert!(event_ids.insert(event["id"].as_str().expect("an event id")));
        let relations = event["relationships"].as_array().expect("relationships");
        let subjects = relations
            .iter()
            .filter(|r| r["qualifier"] == "subject")
            .count();
        assert_eq!(subjects, 1, "{event}");
        for relation in relations {
            let target = relation["objectId"].as_str().expect("objectId");
            assert!(ids.contains(target), "{target} is not an object: {event}");
        }
    }
    for object in array(&log, "objects") {
        for relation in object["relationships"].as_array().expect("relationships") {
            let target = relation["objectId"].as_str().expect("objectId");
            assert!(ids.contains(target), "{target} is not an object: {object}");
        }
    }
    for (workflow, kind) in [
        ("bureau-campaign", "bureau"),
        ("org-campaign", "organisation"),
        ("member-pledge", "member"),
    ] {
        assert_eq!(count_type(&log, kind), f.instances[workflow], "{kind}");
    }
    assert_eq!(count_type(&log, "evaluator"), f.evaluators);
    assert_eq!(count_type(&log, "comment"), f.comments);
    assert_eq!(count_type(&log, "rectification item"), f.items);
    // Every attribute an event or object carries is declared by its type.
    for (items, types) in [("events", "eventTypes"), ("objects", "objectTypes")] {
        let declared: BTreeMap<&str, BTreeSet<&str>> = array(&log, types)
            .iter()
            .map(|t| {
                let names = t["attributes"]
                    .as_array()
                    .expect("attributes")
                    .iter()
                    .map(|a| a["name"].as_str().expect("a name"))
                    .collect();
                (t["name"].as_str().expect("a type name"), names)
            })
            .collect();
        for item in array(&log, items) {
            let kind = item["type"].as_str().expect("a type");
            for attribute in item["attributes"].as_array().expect("attributes") {
                let name = attribute["name"].as_str().expect("a name");
                assert!(declared[kind].contains(name), "{kind}.{name} undeclared");
            }
        }
    }
    // A rectification item's status changes over time, opened then closed.
    let closed = array(&log, "objects").iter().any(|o| {
        let statuses: Vec<&Value> = o["attributes"]
            .as_array()
            .expect("attributes")
            .iter()
            .filter(|a| a["name"] == "status")
            .map(|a| &a["value"])
            .collect();
        statuses == ["open", "closed"]
    });
    assert!(closed, "some rectification item is opened, then closed");
}

#[test]
fn the_ocel_log_takes_the_filters_of_the_other_exports() {
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = parse(&export(dir.path(), &["--workflow", "member-pledge"]));
    assert_eq!(array(&log, "events").len() as u64, f.member_events);
    assert!(array(&log, "events").iter().all(|e| {
        e["attributes"]
            .as_array()
            .expect("attributes")
            .iter()
            .any(|a| a["name"] == "workflow" && a["value"] == "member-pledge")
    }));
    let one = parse(&export(dir.path(), &["--instance", "org-01"]));
    assert!(!array(&one, "events").is_empty());
    assert!(array(&one, "events").iter().all(|e| {
        e["relationships"]
            .as_array()
            .expect("relationships")
            .iter()
            .any(|r| r["qualifier"] == "subject" && r["objectId"] == "org-01")
    }));
    let unknown = export(dir.path(), &["--workflow", "no-such-workflow"]);
    assert!(!unknown.status.success(), "{}", text(&unknown));
}

#[test]
fn bad_ocel_options_are_refused_with_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let map = dir.path().join("map.json");
    std::fs::write(&map, r#"{"object_type": {"org-campaign": "organisation"}}"#).expect("write");
    let cases: [(&[&str], &str); 3] = [
        (&["--ocel-map", &map.display().to_string()], "map.json"),
        (&["--key", "nothing"], "--key and --from-checkpoint"),
        (&["--ocel-map", "/no/such/file"], "/no/such/file"),
    ];
    for (args, says) in cases {
        let output = export(dir.path(), args);
        assert!(!output.status.success(), "{args:?}: {}", text(&output));
        assert!(text(&output).contains(says), "{args:?}: {}", text(&output));
    }
    let db = dir.path().join("db");
    let not_ocel = strive(&db, &["export", "--ocel-map", &map.display().to_string()]);
    assert!(
        text(&not_ocel).contains("--format ocel"),
        "{}",
        text(&not_ocel)
    );
    // A mapping of the user's own is used as given.
    let own = dir.path().join("own.json");
    std::fs::write(&own, r#"{"object_types": {"org-campaign": "unit"}}"#).expect("write");
    let log = parse(&export(
        dir.path(),
        &["--ocel-map", &own.display().to_string()],
    ));
    assert_eq!(
        count_type(&log, "unit"),
        fixture().instances["org-campaign"]
    );
    assert_eq!(count_type(&log, "comment"), 0);
}

#[test]
fn pm4py_reads_the_ocel_log_and_discovers_an_object_centric_graph() {
    let Some(python) = crate::util::pm4py_python("PM4Py OCEL check") else {
        return;
    };
    let f = fixture();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.json");
    let output = export(dir.path(), &["--out", &path.display().to_string()]);
    assert!(output.status.success(), "{}", text(&output));
    let figures = crate::util::pm4py_figures(&python, "pm4py_ocel_check.py", &[path.as_os_str()]);
    eprintln!("pm4py ocel: {figures}");
    assert_eq!(figures["events"], f.events);
    assert_eq!(
        figures["object_types"]["member"],
        f.instances["member-pledge"]
    );
    assert_eq!(figures["object_types"]["evaluator"], f.evaluators);
    assert_eq!(figures["object_types"]["comment"], f.comments);
    assert_eq!(figures["object_types"]["rectification item"], f.items);
    assert_eq!(figures["qualifiers"]["subject"], f.events);
    for kind in ["organisation", "member"] {
        let edges = figures["ocdfg_edges"][kind].as_u64().unwrap_or(0);
        assert!(edges > 0, "{kind} has directly-follows edges: {figures}");
    }
}
