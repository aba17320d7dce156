//! The version an instance starts on (issue #13 item 5): chosen when its
//! start is decided, recorded in the start event, and used again when the
//! log is decided anew (recovery, import). On a store of several
//! partitions, a definition deployed in partition 0 becomes visible to the
//! others only once durable, so "the latest version" differs between the
//! first decision and a later one; replay must take the recorded version,
//! or a store whose state is rebuilt from its log would refuse to open.

use serde_json::{Map, json};
use strive_store::{Actor, CommandOptions, Engine, Options};

/// A parent that spawns one child per id in its payload.
const PARENT: &str = r#"{
  "id": "circular", "title": "Circular", "roles": [{"id": "office"}],
  "stages": [{"id": "open", "kind": "initial"}, {"id": "sent"}, {"id": "done", "kind": "terminal"}],
  "transitions": [
    {"event": "send", "from": "open", "to": "sent", "roles": ["office"],
     "payload": [{"id": "parts", "type": "list", "items": {"type": "string"}, "required": true}],
     "spawn": {"workflow": "part", "children": {"var": "payload.parts"}}},
    {"event": "finish", "from": "sent", "to": "done", "roles": ["office"]}
  ]
}"#;

/// The child, in two versions that differ in their title.
fn part(title: &str) -> String {
    format!(
        r#"{{
  "id": "part", "title": "{title}", "roles": [{{"id": "office"}}],
  "stages": [{{"id": "draft", "kind": "initial"}}, {{"id": "final", "kind": "terminal"}}],
  "transitions": [{{"event": "finish", "from": "draft", "to": "final", "roles": ["office"]}}]
}}"#
    )
}

fn office() -> Actor {
    Actor::new("li", &["office"])
}

#[test]
fn a_rebuilt_store_keeps_the_versions_its_instances_started_on() {
    for partitions in [1, 4] {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("store");
        let admin = Actor::new("admin", &["admin"]);
        let mut started = Vec::new();
        {
            let engine = Engine::open(
                &db,
                Options {
                    partitions,
                    ..Options::default()
                },
            )
            .expect("open");
            engine.deploy(&part("Part v1"), &admin).expect("v1");
            engine.deploy(PARENT, &admin).expect("parent");
            // Parents in every partition, each spawning children on v1,
            // then v2 deployed and more started: roots and children on it.
            for round in 0..2 {
                for n in 0..6 {
                    let id = format!("c{round}-{n}");
                    engine
                        .start(
                            "circular",
                            &id,
                            &office(),
                            Map::new(),
                            None,
                            CommandOptions::default(),
                        )
                        .expect("start");
                    engine
                        .fire(
                            &id,
                            "send",
                            &office(),
                            json!({"parts": [format!("{id}-a"), format!("{id}-b")]}),
                            CommandOptions::default(),
                        )
                        .expect("send");
                    engine
                        .start(
                            "part",
                            &format!("{id}-root"),
                            &office(),
                            Map::new(),
                            None,
                            CommandOptions::default(),
                        )
                        .expect("a root part");
                }
                if round == 0 {
                    engine.deploy(&part("Part v2"), &admin).expect("v2");
                }
            }
            for round in 0..2 {
                for n in 0..6 {
                    for suffix in ["a", "b", "root"] {
                        let id = format!("c{round}-{n}-{suffix}");
                        let version = engine
                            .instance(&id)
                            .expect("read")
                            .expect("exists")
                            .instance
                            .version;
                        started.push((id, version));
                    }
                }
            }
        }
        assert!(started.iter().any(|(_, v)| *v == 1) && started.iter().any(|(_, v)| *v == 2));
        // The state goes; the next open decides every logged command again.
        crate::util::keep_only_the_log(&db);
        let engine = Engine::open_existing(&db, Options::default())
            .unwrap_or_else(|e| panic!("P={partitions}: the rebuilt store opens: {e}"));
        // It opens for writing: nothing in the log was refused.
        engine
            .start(
                "circular",
                "after",
                &office(),
                Map::new(),
                None,
                CommandOptions::default(),
            )
            .unwrap_or_else(|e| panic!("P={partitions}: the rebuilt store takes writes: {e}"));
        for (id, version) in &started {
            let now = engine
                .instance(id)
                .expect("read")
                .unwrap_or_else(|| panic!("P={partitions}: {id} is gone after the rebuild"))
                .instance
                .version;
            assert_eq!(now, *version, "P={partitions}: {id} started on v{version}");
        }
    }
}
