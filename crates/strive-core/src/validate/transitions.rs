//! Each transition on its own: its stages (S002, S010, S023, S013 for an
//! empty `from`), roles (S003, S021), expressions, effects (S004, S020) and
//! spawn target (S006).

use serde_json::Value;

use super::types::misfit;
use super::{Checker, expressions};
use crate::definition::{
    ANY_STAGE, Effect, ElementType, Field, StageSet, Transition, TypeSpec, ValueType,
};
use crate::diagnostic::Code;

pub(super) fn check(ck: &mut Checker<'_>) {
    let def = ck.def;
    for (i, transition) in def.transitions.iter().enumerate() {
        let base = format!("/transitions/{i}");
        from(ck, transition, &base);
        to(ck, transition, &base);
        roles(ck, transition, &base);
        if let Some(guard) = &transition.guard {
            expressions::check(ck, guard, &format!("{base}/guard"), transition);
        }
        for (j, effect) in transition.effects.iter().enumerate() {
            self::effect(ck, transition, effect, &format!("{base}/effects/{j}"));
        }
        if let Some(spawn) = &transition.spawn {
            let known = spawn.workflow == def.id || ck.catalog.contains(&spawn.workflow);
            if !known {
                let hint = ck.hint(&spawn.workflow, ck.catalog.ids());
                ck.report(
                    Code::UnknownWorkflow,
                    &format!("{base}/spawn/workflow"),
                    format!(
                        "transition `{}` spawns children of workflow `{}`, which is not \
                         known{hint}; deploy that workflow first (or check it together \
                         with this one), or fix the id",
                        transition.name(),
                        spawn.workflow
                    ),
                );
            }
            let pointer = format!("{base}/spawn/children");
            expressions::check(ck, &spawn.children, &pointer, transition);
        }
    }
}

fn from(ck: &mut Checker<'_>, transition: &Transition, base: &str) {
    let named: Vec<(&str, String)> = match &transition.from {
        StageSet::One(id) => vec![(id.as_str(), format!("{base}/from"))],
        StageSet::Many(ids) if ids.is_empty() => {
            ck.report(
                Code::NeverFires,
                &format!("{base}/from"),
                format!(
                    "transition `{}` has an empty `from` list, so it can never fire; \
                     list the stages it leaves from, or write \"*\"",
                    transition.name()
                ),
            );
            Vec::new()
        }
        StageSet::Many(ids) => ids
            .iter()
            .enumerate()
            .map(|(k, id)| (id.as_str(), format!("{base}/from/{k}")))
            .collect(),
    };
    let mixed = named.len() > 1;
    for (id, pointer) in named {
        if id == ANY_STAGE {
            if mixed {
                ck.report(
                    Code::ReservedName,
                    &pointer,
                    "`*` already means every non-terminal stage and cannot be mixed with \
                     stage ids; write \"from\": \"*\" or list the stages",
                );
            }
        } else {
            from_stage(ck, transition, id, &pointer);
        }
    }
}

fn from_stage(ck: &mut Checker<'_>, transition: &Transition, id: &str, pointer: &str) {
    match ck.stages.get(id).copied() {
        None => {
            let hint = ck.hint(id, ck.stages.keys().copied());
            ck.report(
                Code::UnknownStage,
                pointer,
                format!(
                    "transition `{}` leaves from stage `{id}`, which is not declared{hint}; \
                     declare it under `stages` or fix the name",
                    transition.name()
                ),
            );
        }
        Some(index) if ck.is_terminal(index) => ck.report(
            Code::TransitionFromTerminal,
            pointer,
            format!(
                "transition `{}` leaves from `{id}`, a terminal stage: instances there are \
                 finished and accept no event; remove `{id}` from `from`, or make the \
                 stage \"normal\" if instances must go on from it",
                transition.name()
            ),
        ),
        Some(_) => {}
    }
}

fn to(ck: &mut Checker<'_>, transition: &Transition, base: &str) {
    let Some(id) = &transition.to else {
        return;
    };
    let pointer = format!("{base}/to");
    if id == ANY_STAGE {
        ck.report(
            Code::ReservedName,
            &pointer,
            "`*` can only appear in `from`; `to` names one stage, or is left out for an \
             event that only records data",
        );
    } else if !ck.stages.contains_key(id.as_str()) {
        let hint = ck.hint(id, ck.stages.keys().copied());
        ck.report(
            Code::UnknownStage,
            &pointer,
            format!(
                "transition `{}` goes to stage `{id}`, which is not declared{hint}; \
                 declare it under `stages` or fix the name",
                transition.name()
            ),
        );
    }
}

fn roles(ck: &mut Checker<'_>, transition: &Transition, base: &str) {
    if transition.roles.is_empty() {
        ck.report(
            Code::NoRoles,
            &format!("{base}/roles"),
            format!(
                "transition `{}` allows no role, so nobody can fire it; list the roles \
                 that may (\"system\" for a deadline event)",
                transition.name()
            ),
        );
    }
    for (k, role) in transition.roles.iter().enumerate() {
        if ck.roles.contains(role.as_str()) {
            continue;
        }
        let system = if role == crate::definition::SYSTEM_ROLE {
            " (the engine fires deadline events as `system`, but the role must be \
             declared like any other)"
        } else {
            ""
        };
        let hint = ck.hint(role, ck.roles.iter().copied());
        ck.report(
            Code::UnknownRole,
            &format!("{base}/roles/{k}"),
            format!(
                "role `{role}` is not declared{hint}; add {{\"id\": \"{role}\"}} to `roles` \
                 or fix the name{system}"
            ),
        );
    }
}

fn effect(ck: &mut Checker<'_>, transition: &Transition, effect: &Effect, pointer: &str) {
    for (key, value) in effect.expressions() {
        expressions::check(ck, value, &format!("{pointer}/{key}"), transition);
    }
    let var = effect.var();
    let Some(field) = ck.vars.get(var).copied() else {
        let hint = match var.strip_prefix("data.") {
            Some(bare) => format!(" (effects name the variable without `data.`: `{bare}`)"),
            None => ck.hint(var, ck.vars.keys().copied()),
        };
        ck.report(
            Code::UnknownVariable,
            &format!("{pointer}/var"),
            format!(
                "this effect changes `{var}`, which is not a declared variable{hint}; \
                 declare it under `data` or fix the name"
            ),
        );
        return;
    };
    ck.use_var(var);
    effect_fits(ck, effect, field, pointer);
}

/// S020: the operation fits the variable's type, and literal values fit it
/// too (expressions are only known when they run).
fn effect_fits(ck: &mut Checker<'_>, effect: &Effect, field: &Field, pointer: &str) {
    use ValueType::{Any, Integer, List, Map, Number};
    let ty = field.spec.ty;
    let (op, fits, needs) = match effect {
        Effect::Append { .. } => ("append", matches!(ty, List | Any), "a list"),
        Effect::Increment { .. } => (
            "increment",
            matches!(ty, Integer | Number | Any),
            "a number",
        ),
        Effect::Put { .. } => ("put", matches!(ty, Map | Any), "a map"),
        Effect::Remove { .. } => ("remove", matches!(ty, Map | Any), "a map"),
        Effect::Set { .. } | Effect::Reset { .. } => ("set", true, ""),
    };
    if !fits {
        ck.report(
            Code::EffectTypeMismatch,
            &format!("{pointer}/op"),
            format!(
                "`{op}` needs {needs} variable, but `{}` is {}; use `set`, or change \
                 the variable's type",
                field.id,
                super::types::a_type(ty)
            ),
        );
        return;
    }
    let (key, literal, spec) = match effect {
        Effect::Set { value, .. } => ("value", value, Some(&field.spec)),
        Effect::Append { value, .. } => ("value", value, element(&field.spec.items)),
        Effect::Put { value, .. } => ("value", value, element(&field.spec.values)),
        Effect::Increment { by: Some(by), .. } => {
            increment_by(ck, field, by, pointer);
            return;
        }
        _ => return,
    };
    // Only scalars are surely literals: arrays and objects may hold
    // expressions, and null may be a deliberate reset.
    if !is_scalar(literal) {
        return;
    }
    if let Some((_, reason)) = spec.and_then(|spec| misfit(spec, literal)) {
        ck.report(
            Code::EffectTypeMismatch,
            &format!("{pointer}/{key}"),
            format!(
                "the literal {literal} does not fit variable `{}`: {reason}; \
                 fix the value or the variable's type",
                field.id
            ),
        );
    }
}

/// The type of a list's or map's elements, when declared.
fn element(element: &Option<Box<ElementType>>) -> Option<&TypeSpec> {
    element.as_deref().map(|element| &element.spec)
}

fn increment_by(ck: &mut Checker<'_>, field: &Field, by: &Value, pointer: &str) {
    if !is_scalar(by) {
        return;
    }
    let whole = by.is_i64() || by.is_u64() || by.as_f64().is_some_and(|n| n.fract() == 0.0);
    let reason = match by.as_f64() {
        None => format!(
            "`by` must be a number, found {}",
            crate::types::describe(by)
        ),
        Some(_) if field.spec.ty == ValueType::Integer && !whole => {
            format!("`{}` is an integer, but `by` is {by}", field.id)
        }
        Some(_) => return,
    };
    ck.report(
        Code::EffectTypeMismatch,
        &format!("{pointer}/by"),
        format!("{reason}; give a whole number (or an expression)"),
    );
}

fn is_scalar(value: &Value) -> bool {
    matches!(value, Value::Bool(_) | Value::Number(_) | Value::String(_))
}
