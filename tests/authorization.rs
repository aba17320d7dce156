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
    let before = engine.last_gseq();
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
    assert_eq!(engine.last_gseq(), before, "a refused command appended");
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
