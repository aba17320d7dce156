//! Fuzz entry points, shared by the cargo-fuzz targets in `fuzz/` and the
//! stable test that replays their corpus, so both run exactly this code.
//! They return nothing and must never panic, whatever the input.

use serde_json::{Map, Value, json};

use crate::definition::SYSTEM_ROLE;
use crate::guard::{Expr, reads};
use crate::machine::{Actor, Command, Workflow};
use crate::validate::{Catalog, check};
use crate::{definition_hash, has_errors, parse, to_dot, to_mermaid};

/// Loads, validates and, when valid, compiles `data` as a definition; draws
/// it; starts an instance and fires every event once as every role.
pub fn fuzz_definition(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let diagnostics = check(Some("fuzz.json"), &text, &Catalog::new());
    for diagnostic in &diagnostics {
        let _ = diagnostic.to_string();
    }
    if has_errors(&diagnostics) {
        return;
    }
    let Ok(parsed) = parse(None, &text) else {
        return;
    };
    let _ = to_dot(&parsed.definition, "zh");
    let _ = to_mermaid(&parsed.definition, "en");
    let hash = definition_hash(&parsed.value);
    let Ok(workflow) = Workflow::compile(parsed.definition.clone(), hash) else {
        return;
    };
    let Ok(now) = "2026-05-01T00:00:00Z".parse() else {
        return;
    };
    let Ok(instance) = workflow.new_instance("fuzz", 1, &Map::new(), None, now) else {
        return;
    };
    let mut roles: Vec<String> = parsed
        .definition
        .roles
        .iter()
        .map(|r| r.id.clone())
        .collect();
    roles.push(SYSTEM_ROLE.to_owned());
    let actor = Actor {
        id: "fuzzer".to_owned(),
        roles,
    };
    let children = json!({});
    for transition in &parsed.definition.transitions {
        let payload: Map<String, Value> = transition
            .payload
            .iter()
            .map(|field| (field.id.clone(), crate::types::zero_value(&field.spec)))
            .collect();
        let payload = Value::Object(payload);
        let command = Command {
            event: &transition.event,
            actor: &actor,
            payload: &payload,
            now,
        };
        if let Ok(accepted) = workflow.fire(&instance, &command, &children) {
            let next = workflow.advance(&instance, &accepted, now);
            let _ = workflow.deadline(&next.stage, now, &next.data);
        }
    }
}

/// Compiles `data` as a guard expression (or, given `[expression,
/// context]`, evaluates it against that context) and walks what it reads.
pub fn fuzz_guard(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (expression, context) = match &value {
        Value::Array(pair) if pair.len() == 2 => (&pair[0], pair[1].clone()),
        _ => (
            &value,
            json!({"data": {"evaluations": {"a": {"score": 90, "satisfied": true}}, "round": 1},
                   "payload": {"score": 80}, "actor": {"id": "a", "roles": ["evaluator"]},
                   "stage": "evaluation", "now": "2026-05-01T00:00:00Z",
                   "children": {"member": {"total": 2, "stages": {"commended": 1}}}}),
        ),
    };
    let _ = reads(expression);
    if let Ok(expr) = Expr::compile(expression) {
        let _ = expr.eval(&context);
        let _ = expr.test(&context);
    }
}
