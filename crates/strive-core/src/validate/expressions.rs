//! Guard and effect expressions: valid JSON Logic (S016), what they read
//! (S004, S014) and the child workflows they name (S006, S024).

use serde_json::Value;

use super::{Checker, list_ids};
use crate::definition::Transition;
use crate::diagnostic::Code;
use crate::guard::{CUSTOM_OPERATORS, ChildRef, Expr, reads};
use crate::load::MAX_DEPTH;
use crate::source::escape_token;

/// What a guard may read besides `data.<variable>`, `payload.<field>` and
/// `children...`, for messages.
const CONTEXT: &str = "data, data.<variable>, payload, payload.<field>, actor, actor.id, \
                       actor.roles, stage, now, instance, instance.id, instance.parent or \
                       children";

/// Checks the expression `expr` at `pointer`, evaluated when `transition`
/// fires (its payload is the one the expression can read).
pub(super) fn check(ck: &mut Checker<'_>, expr: &Value, pointer: &str, transition: &Transition) {
    // The loader refuses deeper documents; a hand-built definition could
    // still hold one, and JSON Logic compilation recurses.
    if depth(expr) > MAX_DEPTH {
        ck.report(
            Code::InvalidExpression,
            pointer,
            format!("the expression is nested deeper than {MAX_DEPTH}; simplify it"),
        );
        return;
    }
    let found = reads(expr);
    // Expr::compile also refuses unknown operators, but names only the
    // first; the walk below reports each where it stands.
    if found.unknown_operators.is_empty()
        && let Err(error) = Expr::compile(expr)
    {
        invalid(ck, expr, pointer, &error.to_string());
    }
    for (name, at) in &found.unknown_operators {
        let hint = ck.hint(name, CUSTOM_OPERATORS.iter().copied().chain(COMMON));
        ck.report(
            Code::InvalidExpression,
            &format!("{pointer}{at}"),
            format!(
                "unknown operator `{name}`{hint}; use a JSON Logic operator or one of \
                 strive's: {}",
                CUSTOM_OPERATORS.join(", ")
            ),
        );
    }
    for var in &found.vars {
        var_path(
            ck,
            &var.path,
            &format!("{pointer}{}", var.pointer),
            transition,
        );
    }
    for child in &found.children {
        child_operator(ck, expr, pointer, child);
    }
}

/// S016 for an expression JSON Logic refuses. The usual cause is an object
/// with several keys, such as two comparisons written side by side; say so
/// where it stands, since the library's message does not.
fn invalid(ck: &mut Checker<'_>, expr: &Value, pointer: &str, error: &str) {
    if let Some((at, keys)) = several_keys(expr) {
        ck.report(
            Code::InvalidExpression,
            &format!("{pointer}{at}"),
            format!(
                "an operation is an object with exactly one key, the operator, but this one \
                 has {}; to require several conditions, list them in {{\"and\": [...]}}",
                list_ids(keys.iter().map(String::as_str), 5)
            ),
        );
        return;
    }
    ck.report(
        Code::InvalidExpression,
        pointer,
        format!(
            "this is not valid JSON Logic ({error}); see \"Guards\" in \
             docs/workflow-language.md"
        ),
    );
}

/// The first object (in document order) with more than one key, with its
/// pointer relative to `expr` and its keys.
fn several_keys(expr: &Value) -> Option<(String, Vec<String>)> {
    let mut stack = vec![(expr, String::new())];
    while let Some((value, pointer)) = stack.pop() {
        let children: Vec<(&Value, String)> = match value {
            Value::Object(map) if map.len() > 1 => {
                return Some((pointer, map.keys().cloned().collect()));
            }
            Value::Object(map) => map
                .iter()
                .map(|(key, item)| (item, format!("{pointer}/{}", escape_token(key))))
                .collect(),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, format!("{pointer}/{i}")))
                .collect(),
            _ => Vec::new(),
        };
        stack.extend(children.into_iter().rev());
    }
    None
}

/// Common JSON Logic operators, for "did you mean" hints.
const COMMON: [&str; 14] = [
    "var", "and", "or", "if", "==", "!=", "<", "<=", ">", ">=", "in", "missing", "map", "filter",
];

/// The nesting depth of arrays and objects in `value`, without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// S004, S014, S006, S024 for one `var` path read at `pointer`.
fn var_path(ck: &mut Checker<'_>, path: &str, pointer: &str, transition: &Transition) {
    let (root, rest) = match path.split_once('.') {
        Some((root, rest)) => (root, Some(rest)),
        None => (path, None),
    };
    let first = rest.map(|rest| rest.split('.').next().unwrap_or(rest));
    match (root, first) {
        ("data", Some(name)) if !name.is_empty() => data_var(ck, name, pointer),
        ("payload", Some(name)) if !name.is_empty() => payload_field(ck, name, pointer, transition),
        ("actor", None | Some("id" | "roles")) if rest == first => {}
        // The whole data or payload object, such as an effect recording
        // every field of an evaluation at once.
        ("data" | "payload", None) => {}
        ("stage" | "now", None) => {}
        ("instance", None | Some("id" | "parent")) if rest == first => {}
        ("children", None) => {}
        ("children", Some(_)) => children_path(ck, rest.unwrap_or(""), pointer),
        _ => ck.report(
            Code::UnknownVariable,
            pointer,
            format!("`{path}` is not something an expression can read; read {CONTEXT}"),
        ),
    }
}

fn data_var(ck: &mut Checker<'_>, name: &str, pointer: &str) {
    if ck.vars.contains_key(name) {
        ck.use_var(name);
        return;
    }
    let hint = ck.hint(name, ck.vars.keys().copied());
    ck.report(
        Code::UnknownVariable,
        pointer,
        format!(
            "`data.{name}` reads variable `{name}`, which is not declared{hint}; \
             declare it under `data` or fix the name"
        ),
    );
}

fn payload_field(ck: &mut Checker<'_>, name: &str, pointer: &str, transition: &Transition) {
    if transition.payload.iter().any(|field| field.id == name) {
        return;
    }
    let declared = transition.payload.iter().map(|field| field.id.as_str());
    let hint = ck.hint(name, declared.clone());
    ck.report(
        Code::UnknownPayloadField,
        pointer,
        format!(
            "`payload.{name}`: transition `{}` declares no payload field `{name}`{hint} \
             (it declares {}); add it to the transition's `payload` or fix the name",
            transition.name(),
            list_ids(declared, 10)
        ),
    );
}

/// `children.<workflow>[.stages.<stage>...]` read through `var`.
fn children_path(ck: &mut Checker<'_>, rest: &str, pointer: &str) {
    let mut steps = rest.split('.');
    let workflow = steps.next().unwrap_or("");
    let Some(stages) = ck.workflow_stages(workflow) else {
        unknown_workflow(ck, workflow, pointer);
        return;
    };
    if let (Some("stages"), Some(stage)) = (steps.next(), steps.next())
        && !stages.contains(&stage)
    {
        unknown_child_stage(ck, workflow, stage, &stages, pointer);
    }
}

/// S006 and S024 for a `children_*` operator.
fn child_operator(ck: &mut Checker<'_>, expr: &Value, pointer: &str, child: &ChildRef) {
    let op_pointer = format!("{pointer}{}", child.pointer);
    let Some((op, args)) = expr
        .pointer(&child.pointer)
        .and_then(Value::as_object)
        .and_then(|map| map.iter().next())
    else {
        return;
    };
    let args_pointer = format!("{op_pointer}/{}", escape_token(op));
    let (workflow_pointer, stages_arg) = match args {
        Value::Array(items) => (format!("{args_pointer}/0"), items.get(1)),
        _ => (args_pointer.clone(), None),
    };
    let Some(stages) = ck.workflow_stages(&child.workflow) else {
        unknown_workflow(ck, &child.workflow, &workflow_pointer);
        return;
    };
    let named: Vec<(&str, String)> = match stages_arg {
        Some(Value::String(stage)) => vec![(stage.as_str(), format!("{args_pointer}/1"))],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(k, item)| Some((item.as_str()?, format!("{args_pointer}/1/{k}"))))
            .collect(),
        _ => Vec::new(),
    };
    let mut known = true;
    for (stage, at) in &named {
        if !stages.contains(stage) {
            unknown_child_stage(ck, &child.workflow, stage, &stages, at);
            known = false;
        }
    }
    if op == "children_all_in" && known && !named.is_empty() {
        let awaited: Vec<&str> = named.iter().map(|(stage, _)| *stage).collect();
        stranded(ck, &child.workflow, &awaited, &op_pointer);
    }
}

/// W105 when a child of `workflow` can come to rest outside `awaited`
/// without ever having been there (the hierarchy-aware part of can-finish).
fn stranded(ck: &mut Checker<'_>, workflow: &str, awaited: &[&str], pointer: &str) {
    let stage = if workflow == ck.def.id {
        // A workflow that is its own child: read it from itself.
        let mut own = super::Catalog::new();
        own.add(ck.def);
        own.stranding_stage(workflow, awaited).map(str::to_owned)
    } else {
        ck.catalog
            .stranding_stage(workflow, awaited)
            .map(str::to_owned)
    };
    if let Some(stage) = stage {
        ck.report(
            Code::ChildrenMayNeverArrive,
            pointer,
            format!(
                "this waits for every `{workflow}` child to be in {}, but a child can reach                  `{stage}` without passing through them, and none of them can be reached                  from `{stage}`: once one child is there, the guard never holds; wait for                  `{stage}` too, or add a way from `{stage}` to one of them",
                list_ids(awaited.iter().copied(), 10)
            ),
        );
    }
}

fn unknown_workflow(ck: &mut Checker<'_>, workflow: &str, pointer: &str) {
    let hint = ck.hint(workflow, ck.catalog.ids());
    ck.report(
        Code::UnknownWorkflow,
        pointer,
        format!(
            "workflow `{workflow}` is not known{hint}; deploy it first (or check it \
             together with this one), or fix the id"
        ),
    );
}

fn unknown_child_stage(
    ck: &mut Checker<'_>,
    workflow: &str,
    stage: &str,
    stages: &[&str],
    pointer: &str,
) {
    let hint = ck.hint(stage, stages.iter().copied());
    ck.report(
        Code::UnknownChildStage,
        pointer,
        format!(
            "workflow `{workflow}` has no stage `{stage}`{hint}; its stages are {}",
            list_ids(stages.iter().copied(), 20)
        ),
    );
}
