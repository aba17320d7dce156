//! The workload every benchmark shares: a six-stage cycle whose transitions
//! each check a guard and apply an effect, the same shape as the XState
//! machine of the peer benchmark.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use strive_core::{Actor, Command, Event, EventKind, GENESIS, Instance, Workflow};

/// Five working stages in a cycle plus a terminal one: six states. Every
/// `next` checks a guard on the data and increments a counter by the
/// payload's amount (XState: a guard and an `assign`).
pub fn definition() -> String {
    let stages = ["s0", "s1", "s2", "s3", "s4"];
    let mut transitions: Vec<Value> = stages
        .iter()
        .enumerate()
        .map(|(index, from)| {
            let to = stages[(index + 1) % stages.len()];
            json!({
                "id": format!("t{index}"), "event": "next", "from": from, "to": to,
                "roles": ["clerk"],
                "payload": [{"id": "amount", "type": "integer", "min": 0, "max": 1000, "required": true}],
                "guard": {"<": [{"var": "data.count"}, 1_000_000_000]},
                "effects": [{"op": "increment", "var": "count", "by": {"var": "payload.amount"}}]
            })
        })
        .collect();
    transitions.push(json!({"event": "close", "from": "*", "to": "closed", "roles": ["clerk"]}));
    let mut all_stages: Vec<Value> = stages
        .iter()
        .enumerate()
        .map(|(index, id)| {
            if index == 0 {
                json!({"id": id, "kind": "initial"})
            } else {
                json!({"id": id})
            }
        })
        .collect();
    all_stages.push(json!({"id": "closed", "kind": "terminal"}));
    json!({
        "id": "bench",
        "title": "Benchmark cycle",
        "roles": [{"id": "clerk"}],
        "data": [
            {"id": "count", "type": "integer"},
            {"id": "owner", "type": "string"}
        ],
        "stages": all_stages,
        "transitions": transitions
    })
    .to_string()
}

/// The compiled workflow, as the engine compiles it on deploy.
pub fn workflow() -> Arc<Workflow> {
    let text = definition();
    let parsed = match strive_core::parse(None, &text) {
        Ok(parsed) => parsed,
        Err(diagnostics) => panic!("the bench workflow parses: {diagnostics:?}"),
    };
    let hash = strive_core::definition_hash(&parsed.value);
    match Workflow::compile(parsed.definition, hash) {
        Ok(workflow) => Arc::new(workflow),
        Err(error) => panic!("the bench workflow compiles: {error}"),
    }
}

/// The actor every benchmark fires as.
pub fn actor() -> Actor {
    Actor::new("clerk-0042", &["clerk"])
}

/// The payload of every `next`.
pub fn payload() -> Value {
    json!({"amount": 1})
}

/// The initial data of an instance.
pub fn initial_data(id: &str) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("owner".to_owned(), Value::from(format!("owner of {id}")));
    data
}

/// Instance ids as a service would name them.
pub fn instance_id(n: usize) -> String {
    format!("order-{n:08}")
}

/// A typical `next` event as the engine stores it, and the instance
/// snapshot after it: the record sizes the baselines write.
pub fn sample_records() -> (Vec<u8>, Vec<u8>) {
    let workflow = workflow();
    let now: jiff::Timestamp = "2026-05-01T08:00:00Z".parse().unwrap_or_default();
    let id = instance_id(42);
    let Ok(mut instance) = workflow.new_instance(&id, 1, &initial_data(&id), None, now) else {
        panic!("the bench instance starts");
    };
    instance.seq = 1;
    instance.head = GENESIS.replace('0', "a");
    let payload = payload();
    let actor = actor();
    let command = Command {
        event: "next",
        actor: &actor,
        payload: &payload,
        now,
    };
    let accepted = match workflow.fire(&instance, &command, &Value::Null) {
        Ok(accepted) => accepted,
        Err(rejection) => panic!("the bench event fires: {rejection}"),
    };
    let next = workflow.advance(&instance, &accepted, now);
    let event = event_of(&instance, &next, &accepted, &actor, &payload, now);
    let snapshot = serde_json::to_vec(&json!({"v": 1, "instance": next})).unwrap_or_default();
    (event.encode(), snapshot)
}

fn event_of(
    before: &Instance,
    after: &Instance,
    accepted: &strive_core::Accepted,
    actor: &Actor,
    payload: &Value,
    now: jiff::Timestamp,
) -> Event {
    Event {
        v: strive_core::EVENT_FORMAT,
        gseq: 123_456,
        partition: 0,
        instance: before.id.clone(),
        seq: after.seq,
        prev: before.head.clone(),
        kind: EventKind::Fire,
        workflow: before.workflow.clone(),
        version: before.version,
        definition_hash: before.definition_hash.clone(),
        from: Some(accepted.from.clone()),
        event: "next".to_owned(),
        transition: Some(accepted.transition.clone()),
        to: accepted.to.clone(),
        actor: actor.clone(),
        at: now,
        command_id: None,
        payload: payload.clone(),
        effects: accepted.effects.clone(),
        cause: None,
        signature: None,
    }
}
