//! Authorization (issue #6): no command from a role that the definition does
//! not allow ever changes an instance. Checked exhaustively at every step of
//! the organisation campaign, for every event and every set of one or two
//! roles disjoint from those allowed, and for random role names.

use proptest::prelude::*;
use serde_json::Value;
use strive_core::{ANY_STAGE, Definition, StageKind};
use strive_store::{Actor, CommandOptions, Durability, Engine, Options};

use crate::cli::{deploy_and_start_o1, scenario};

/// The roles that may fire `event` from `stage`, by the definition.
fn allowed(definition: &Definition, event: &str, stage: &str) -> Vec<String> {
    let terminal = definition
        .stages
        .iter()
        .any(|s| s.id == stage && s.kind == StageKind::Terminal);
    definition
        .transitions
        .iter()
        .filter(|t| t.event == event)
        .filter(|t| {
            t.from
                .ids()
                .iter()
                .any(|f| f == stage || (f == ANY_STAGE && !terminal))
        })
        .flat_map(|t| t.roles.iter().cloned())
        .collect()
}

fn engine() -> Engine {
    let engine = Engine::temporary_with(Options {
        durability: Durability::Buffered,
        ..Options::default()
    })
    .expect("engine");
    deploy_and_start_o1(&engine);
    engine
}

/// Fires `event` on `instance` as `roles` and checks it is refused and the
/// log is unchanged. Returns whether the definition allows any of `roles`.
fn refused_unless_allowed(
    engine: &Engine,
    instance: &str,
    event: &str,
    roles: &[&str],
    payload: &Value,
) -> bool {
    let snapshot = engine.instance(instance).expect("read").expect("exists");
    let workflow = engine
        .workflow(&snapshot.instance.workflow, Some(snapshot.instance.version))
        .expect("deployed");
    let allowed = allowed(workflow.definition(), event, &snapshot.instance.stage);
    if roles.iter().any(|r| allowed.iter().any(|a| a == r)) {
        return true;
    }
    let before = crate::util::sizes(engine);
    let result = engine.fire(
        instance,
        event,
        &Actor::new("intruder", roles),
        payload.clone(),
        CommandOptions::default(),
    );
    assert!(
        result.is_err(),
        "{roles:?} fired `{event}` on {instance} in {}",
        snapshot.instance.stage
    );
    assert_eq!(
        crate::util::sizes(engine),
        before,
        "a refused command appended"
    );
    assert_eq!(
        engine.instance(instance).expect("read").as_ref(),
        Some(&snapshot),
        "a refused command changed {instance}"
    );
    false
}

#[test]
fn no_unallowed_role_changes_an_instance_at_any_stage() {
    let engine = engine();
    let definition = engine
        .workflow("org-campaign", None)
        .expect("deployed")
        .definition()
        .clone();
    let mut events: Vec<String> = definition
        .transitions
        .iter()
        .map(|t| t.event.clone())
        .collect();
    let member_events: Vec<String> = engine
        .workflow("member-pledge", None)
        .expect("deployed")
        .definition()
        .transitions
        .iter()
        .map(|t| t.event.clone())
        .collect();
    events.extend(member_events);
    events.sort();
    events.dedup();
    let mut roles: Vec<String> = definition.roles.iter().map(|r| r.id.clone()).collect();
    roles.push("nobody".to_owned());
    let mut tried = 0usize;
    for step in scenario() {
        for event in &events {
            for (i, a) in roles.iter().enumerate() {
                for b in roles.iter().skip(i) {
                    let set = if a == b {
                        vec![a.as_str()]
                    } else {
                        vec![a.as_str(), b.as_str()]
                    };
                    // The real payload, so only the role can be the reason.
                    let payload = if *event == step.event {
                        step.payload.clone()
                    } else {
                        Value::Null
                    };
                    if !refused_unless_allowed(&engine, step.instance, event, &set, &payload) {
                        tried += 1;
                    }
                }
            }
        }
        step.fire(&engine).expect("the allowed step");
    }
    assert!(tried > 10_000, "only {tried} refused commands were tried");
    println!("authorization: {tried} unallowed commands refused, nothing written");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_role_names_never_fire(roles in prop::collection::vec("[a-z_]{1,12}", 0..4), prefix in 0usize..20) {
        let engine = engine();
        for step in scenario().into_iter().take(prefix) {
            step.fire(&engine).expect("the allowed step");
        }
        let step = &scenario()[prefix];
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        refused_unless_allowed(&engine, step.instance, step.event, &roles, &step.payload);
    }
}

// --- Grants (issue #11): roles held by actors, recorded in the audit log. ---

mod grants {
    use std::path::Path;

    use serde_json::{Value, json};
    use strive_store::{
        AccessError, Actor, CommandError, CommandOptions, DeployError, Engine, EventKind, Grant,
        Options,
    };

    use crate::util::{strive, text};

    /// Branches and their members: `note` is anyone's with the clerk role.
    const BRANCH: &str = r#"{
      "id": "branch", "title": "Branch", "roles": [{"id": "clerk"}, {"id": "chief"}],
      "stages": [{"id": "open", "kind": "initial"}, {"id": "closed", "kind": "terminal"}],
      "transitions": [
        {"event": "note", "from": "open", "roles": ["clerk", "chief"]},
        {"event": "close", "from": "open", "to": "closed", "roles": ["chief"]}
      ]
    }"#;

    fn root() -> Actor {
        Actor::new("root", &["admin"])
    }

    fn li() -> Actor {
        Actor::new("li", &["clerk"])
    }

    fn enforcing() -> Options {
        Options {
            enforce_grants: true,
            ..Options::default()
        }
    }

    fn note(engine: &Engine, instance: &str, actor: &Actor) -> Result<u64, CommandError> {
        engine
            .fire(
                instance,
                "note",
                actor,
                json!({}),
                CommandOptions::default(),
            )
            .map(|outcome| outcome.gseq)
    }

    /// Root granted admin, BRANCH deployed, org-07 and org-08 started with
    /// a member each (m-1 under org-07, m-2 under org-08).
    fn branches(engine: &Engine) {
        engine
            .grant(&Grant::everywhere("root", "admin"), &root())
            .expect("the first admin grants itself");
        engine.deploy(BRANCH, &root()).expect("deploys");
        for (id, parent) in [
            ("org-07", None),
            ("org-08", None),
            ("m-1", Some("org-07")),
            ("m-2", Some("org-08")),
        ] {
            engine
                .start(
                    "branch",
                    id,
                    &root(),
                    Default::default(),
                    parent,
                    CommandOptions::default(),
                )
                .unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }

    /// Runs `strive verify --format json` on a closed store.
    fn verify(db: &Path) -> (Option<i32>, Value) {
        crate::util::verify_report(db, &[])
    }

    #[test]
    fn grants_are_events_of_the_access_chain_and_are_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("store");
        let engine = Engine::open(&db, Options::default()).expect("open");
        let secretary = Grant::on("li", "clerk", "org-07");
        let temporary = Grant::everywhere("wang", "chief");
        engine
            .grant(&Grant::everywhere("root", "admin"), &root())
            .expect("the bootstrap grant");
        engine.grant(&secretary, &root()).expect("grant");
        engine.grant(&temporary, &root()).expect("grant");
        engine.revoke(&temporary, &root()).expect("revoke");
        // Claiming admin is not enough once an admin is granted, a grant is
        // made once, and the last admin stays.
        let refused = [
            engine.grant(
                &Grant::everywhere("eve", "chief"),
                &Actor::new("eve", &["admin"]),
            ),
            engine.grant(&secretary, &root()),
            engine.revoke(&temporary, &root()),
            engine.revoke(&Grant::everywhere("root", "admin"), &root()),
            engine.grant(&Grant::everywhere("eve", "system"), &root()),
        ];
        let reasons: Vec<_> = refused
            .iter()
            .map(|r| match r {
                Err(CommandError::Access { reason }) => reason.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(
            matches!(reasons[0], AccessError::NotAdmin { .. }),
            "{reasons:?}"
        );
        assert!(matches!(reasons[1], AccessError::AlreadyGranted { .. }));
        assert!(matches!(reasons[2], AccessError::NotGranted { .. }));
        assert!(matches!(reasons[3], AccessError::LastAdmin { .. }));
        assert!(matches!(reasons[4], AccessError::Reserved { .. }));
        assert_eq!(engine.last_gseq(), 4, "refused changes write nothing");

        let events: Vec<_> = engine.events(1).map(|e| e.expect("read").event).collect();
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Grant,
                EventKind::Grant,
                EventKind::Grant,
                EventKind::Revoke
            ]
        );
        assert!(events.iter().all(|e| e.instance == "@access"));
        assert_eq!(
            events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(
            events[1].payload,
            json!({"actor": "li", "role": "clerk", "on": "org-07"})
        );
        let held = |engine: &Engine| -> Vec<Grant> {
            engine
                .grants(None)
                .expect("grants")
                .into_iter()
                .map(|g| g.grant)
                .collect()
        };
        let expected = vec![secretary.clone(), Grant::everywhere("root", "admin")];
        assert_eq!(held(&engine), expected);
        assert_eq!(engine.grants(Some("li")).expect("li's")[0].since, 2);
        drop(engine);

        // Keep only the log: the grants are decided again from their events,
        // byte for byte, or the store would open for reading only.
        crate::util::keep_only_the_log(&db);
        let engine = Engine::open(&db, Options::default()).expect("reopen");
        assert_eq!(held(&engine), expected);
        let next = engine
            .grant(&Grant::everywhere("wang", "chief"), &root())
            .expect("the rebuilt store takes writes");
        assert_eq!((next.instance.as_str(), next.seq), ("@access", 5));
        drop(engine);
        let (code, report) = verify(&db);
        assert_eq!(code, Some(0), "{report:#}");
    }

    #[test]
    fn enforcement_is_off_by_default_and_on_refuses_what_is_not_granted() {
        // Off: the service's word on roles is taken, grants or not.
        let loose = Engine::temporary().expect("engine");
        branches(&loose);
        loose
            .grant(&Grant::on("li", "clerk", "org-07"), &root())
            .expect("grant");
        assert!(note(&loose, "org-08", &li()).is_ok());

        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("store");
        let engine = Engine::open(&db, enforcing()).expect("open");
        assert!(engine.enforces_grants());
        // Even the deployer needs its grant.
        let refused = engine.deploy(BRANCH, &root());
        assert_eq!(
            refused.err(),
            Some(DeployError::NotGranted {
                missing: Grant::everywhere("root", "admin")
            })
        );
        branches(&engine);
        engine
            .grant(&Grant::on("li", "clerk", "org-07"), &root())
            .expect("grant");
        // The branch and its member, not the sibling branch or its member.
        assert!(note(&engine, "org-07", &li()).is_ok());
        assert!(note(&engine, "m-1", &li()).is_ok());
        let before = crate::util::sizes(&engine);
        for instance in ["org-08", "m-2"] {
            assert_eq!(
                note(&engine, instance, &li()),
                Err(CommandError::NotGranted {
                    missing: Grant::on("li", "clerk", instance)
                })
            );
        }
        // Every role claimed needs its grant.
        let both = Actor::new("li", &["clerk", "chief"]);
        assert_eq!(
            note(&engine, "org-07", &both),
            Err(CommandError::NotGranted {
                missing: Grant::on("li", "chief", "org-07")
            })
        );
        let message = note(&engine, "org-08", &li())
            .expect_err("refused")
            .to_string();
        assert!(
            message.contains("strive grant li clerk --on org-08"),
            "{message}"
        );
        assert_eq!(
            crate::util::sizes(&engine),
            before,
            "refused commands write nothing"
        );
        assert_eq!(engine.authorize(&li(), Some("m-1")), Ok(()));
        assert!(engine.authorize(&li(), None).is_err());

        engine
            .revoke(&Grant::on("li", "clerk", "org-07"), &root())
            .expect("revoke");
        assert!(
            note(&engine, "org-07", &li()).is_err(),
            "a revoked grant no longer covers"
        );
        drop(engine);
        // Recovery does not check grants again: what was logged stays.
        let engine = Engine::open(&db, enforcing()).expect("reopen");
        assert!(note(&engine, "org-07", &li()).is_err());
        drop(engine);
        let (code, report) = verify(&db);
        assert_eq!(code, Some(0), "{report:#}");
    }

    #[test]
    fn verify_catches_an_event_whose_actor_lacked_the_grant() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("store");
        let engine = Engine::open(&db, enforcing()).expect("open");
        branches(&engine);
        engine
            .grant(&Grant::on("li", "clerk", "org-07"), &root())
            .expect("grant");
        let gseq = note(&engine, "org-07", &li()).expect("granted");
        drop(engine);
        let (code, report) = verify(&db);
        assert_eq!(code, Some(0), "{report:#}");

        // A forger rewrites li's event as eve's, who holds no grant, and
        // fixes up all that hashes show: the stored hash and the head.
        crate::util::forge_event(&db, "org-07", gseq, |event| {
            event.actor = Actor::new("eve", &["clerk"]);
        });
        let (code, report) = verify(&db);
        assert_eq!(code, Some(1), "{report:#}");
        let problems = report["problems"].as_array().expect("problems");
        assert_eq!(problems.len(), 1, "{report:#}");
        assert_eq!(problems[0]["code"], "not_granted");
        assert_eq!(problems[0]["gseq"], gseq);
        assert_eq!(problems[0]["instance"], "org-07");

        // The bundle's verifier catches it too.
        let bundle = dir.path().join("bundle.jsonl");
        let checkpoint = dir.path().join("checkpoint");
        let bundle_text = bundle.display().to_string();
        let checkpoint_text = checkpoint.display().to_string();
        let saved = strive(&db, &["checkpoint"]);
        assert!(saved.status.success(), "{}", text(&saved));
        std::fs::write(&checkpoint, &saved.stdout).expect("keep the checkpoint");
        let exported = strive(&db, &["export", "--out", &bundle_text]);
        assert!(exported.status.success(), "{}", text(&exported));
        let checked = strive(
            &db,
            &[
                "verify-bundle",
                &bundle_text,
                "--checkpoint",
                &checkpoint_text,
            ],
        );
        assert_eq!(checked.status.code(), Some(1), "{}", text(&checked));
        assert!(
            text(&checked).contains("[not_granted] org-07"),
            "{}",
            text(&checked)
        );
    }
}
