//! Types and values: every type spec in a definition (S018), and whether a
//! value fits a type (for defaults here and literal effect values in
//! `transitions`).

use serde_json::Value;

use super::Checker;
use crate::definition::{Definition, Field, TypeSpec, ValueType};
use crate::diagnostic::Code;

/// What owns a type spec, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    /// An instance variable (`/data/i`).
    Variable,
    /// A payload field (`/transitions/i/payload/k`).
    Payload,
    /// A field of an `object` type.
    ObjectField,
    /// The element type of a list (`items`) or map (`values`).
    Element,
}

impl Owner {
    pub(super) fn noun(self) -> &'static str {
        match self {
            Owner::Variable => "variable",
            Owner::Payload => "payload field",
            Owner::ObjectField => "field",
            Owner::Element => "element type",
        }
    }
}

/// One type spec in a definition with where it stands.
pub(super) struct SpecAt<'a> {
    pub(super) spec: &'a TypeSpec,
    /// The pointer of the object the spec is flattened into.
    pub(super) pointer: String,
    /// The named field owning the spec, if any (element types have none).
    pub(super) field: Option<&'a Field>,
    pub(super) owner: Owner,
}

/// Every type spec of the definition, nested ones included, in document
/// order. Iterative, so hostile nesting cannot overflow the stack.
pub(super) fn all_specs(def: &Definition) -> Vec<SpecAt<'_>> {
    let mut roots: Vec<SpecAt<'_>> = Vec::new();
    for (i, field) in def.data.iter().enumerate() {
        roots.push(SpecAt {
            spec: &field.spec,
            pointer: format!("/data/{i}"),
            field: Some(field),
            owner: Owner::Variable,
        });
    }
    for (i, transition) in def.transitions.iter().enumerate() {
        for (k, field) in transition.payload.iter().enumerate() {
            roots.push(SpecAt {
                spec: &field.spec,
                pointer: format!("/transitions/{i}/payload/{k}"),
                field: Some(field),
                owner: Owner::Payload,
            });
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<SpecAt<'_>> = roots.into_iter().rev().collect();
    while let Some(at) = stack.pop() {
        let mut children = Vec::new();
        if let Some(items) = &at.spec.items {
            children.push(element(&items.spec, format!("{}/items", at.pointer)));
        }
        if let Some(values) = &at.spec.values {
            children.push(element(&values.spec, format!("{}/values", at.pointer)));
        }
        for (k, field) in at.spec.fields.iter().flatten().enumerate() {
            children.push(SpecAt {
                spec: &field.spec,
                pointer: format!("{}/fields/{k}", at.pointer),
                field: Some(field),
                owner: Owner::ObjectField,
            });
        }
        stack.extend(children.into_iter().rev());
        out.push(at);
    }
    out
}

fn element(spec: &TypeSpec, pointer: String) -> SpecAt<'_> {
    SpecAt {
        spec,
        pointer,
        field: None,
        owner: Owner::Element,
    }
}

/// S018 for every type spec: bounds that fit the type, bounds in order,
/// enums and defaults that fit.
pub(super) fn check(ck: &mut Checker<'_>) {
    for at in all_specs(ck.def) {
        misplaced_bounds(ck, &at);
        bounds_order(ck, &at);
        enum_values(ck, &at);
        default_value(ck, &at);
    }
}

/// Which keys each type accepts besides `type`, for messages.
fn allowed(ty: ValueType) -> &'static str {
    match ty {
        ValueType::String => "min_length, max_length and enum",
        ValueType::Integer | ValueType::Number => "min, max and enum",
        ValueType::List => "items and max_items",
        ValueType::Map => "values",
        ValueType::Object => "fields",
        ValueType::Boolean | ValueType::Timestamp | ValueType::Any => "no bounds",
    }
}

fn misplaced_bounds(ck: &mut Checker<'_>, at: &SpecAt<'_>) {
    use ValueType::{Integer, List, Map, Number, Object, String};
    let s = at.spec;
    let ty = s.ty;
    let numeric = matches!(ty, Integer | Number);
    let checks = [
        ("min", s.min.is_some(), numeric, "integer and number"),
        ("max", s.max.is_some(), numeric, "integer and number"),
        ("min_length", s.min_length.is_some(), ty == String, "string"),
        ("max_length", s.max_length.is_some(), ty == String, "string"),
        ("max_items", s.max_items.is_some(), ty == List, "list"),
        ("items", s.items.is_some(), ty == List, "list"),
        ("values", s.values.is_some(), ty == Map, "map"),
        ("fields", s.fields.is_some(), ty == Object, "object"),
        (
            "enum",
            s.one_of.is_some(),
            matches!(ty, String | Integer | Number),
            "string, integer and number",
        ),
    ];
    for (key, present, fits, types) in checks {
        if present && !fits {
            ck.report(
                Code::InvalidType,
                &format!("{}/{key}", at.pointer),
                format!(
                    "{} has type {}, but `{key}` applies only to {types}; \
                     remove `{key}` or change the type ({} takes {})",
                    describe(at),
                    ty.name(),
                    ty.name(),
                    allowed(ty)
                ),
            );
        }
    }
}

fn bounds_order(ck: &mut Checker<'_>, at: &SpecAt<'_>) {
    let s = at.spec;
    if let (Some(min), Some(max)) = (s.min, s.max)
        && min > max
    {
        ck.report(
            Code::InvalidType,
            &format!("{}/min", at.pointer),
            format!(
                "{}: `min` {min} is above `max` {max}, so no value fits; swap them",
                describe(at)
            ),
        );
    }
    if let (Some(min), Some(max)) = (s.min_length, s.max_length)
        && min > max
    {
        ck.report(
            Code::InvalidType,
            &format!("{}/min_length", at.pointer),
            format!(
                "{}: `min_length` {min} is above `max_length` {max}, so no string fits; \
                 swap them",
                describe(at)
            ),
        );
    }
}

fn enum_values(ck: &mut Checker<'_>, at: &SpecAt<'_>) {
    let Some(values) = &at.spec.one_of else {
        return;
    };
    if values.is_empty() {
        ck.report(
            Code::InvalidType,
            &format!("{}/enum", at.pointer),
            format!(
                "{}: `enum` is empty, so no value fits; list the allowed values or remove it",
                describe(at)
            ),
        );
        return;
    }
    for (k, value) in values.iter().enumerate() {
        if let Some((_, reason)) = misfit_ignoring_enum(at.spec, value) {
            ck.report(
                Code::InvalidType,
                &format!("{}/enum/{k}", at.pointer),
                format!(
                    "{}: enum value {value} does not fit the type: {reason}; \
                     fix the value or the type",
                    describe(at)
                ),
            );
        }
    }
}

fn default_value(ck: &mut Checker<'_>, at: &SpecAt<'_>) {
    let Some(default) = at.field.and_then(|field| field.default.as_ref()) else {
        return;
    };
    if let Some((pointer, reason)) = misfit(at.spec, default) {
        ck.report(
            Code::InvalidType,
            &format!("{}/default{pointer}", at.pointer),
            format!(
                "the default of {} does not fit its type: {reason}; \
                 change the default or the type",
                describe(at)
            ),
        );
    }
}

/// "variable `score`", "payload field `plan`", "element type".
fn describe(at: &SpecAt<'_>) -> String {
    match at.field {
        Some(field) => format!("{} `{}`", at.owner.noun(), field.id),
        None => format!("the {}", at.owner.noun()),
    }
}

/// Why `value` does not fit `spec`, in the words of the engine's own type
/// check, so that the validator accepts exactly what the engine accepts:
/// `None` when it fits, else the pointer inside `value` and the reason.
pub(super) fn misfit(spec: &TypeSpec, value: &Value) -> Option<(String, String)> {
    let mismatch = crate::types::check(spec, value).err()?;
    // The engine's reasons read "expected an integer, got ..." or "is 101;
    // the maximum is 100": the latter needs a subject.
    let reason = match (
        mismatch.pointer.is_empty(),
        mismatch.reason.starts_with("expected"),
    ) {
        (true, true) => mismatch.reason,
        (true, false) => format!("it {}", mismatch.reason),
        (false, _) => format!("at {}: {}", mismatch.pointer, mismatch.reason),
    };
    Some((mismatch.pointer, reason))
}

/// "a string", "an integer", ... for messages.
pub(super) fn a_type(ty: ValueType) -> String {
    let name = ty.name();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// As [`misfit`], without the enum: for checking the enum's own values.
fn misfit_ignoring_enum(spec: &TypeSpec, value: &Value) -> Option<(String, String)> {
    let mut spec = spec.clone();
    spec.one_of = None;
    misfit(&spec, value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: Value) -> TypeSpec {
        serde_json::from_value(value).expect("a type spec")
    }

    #[test]
    fn misfit_points_inside_the_value() {
        let list = spec(
            json!({"type": "list", "items": {"type": "object", "fields": [
                {"id": "score", "type": "integer", "min": 0, "max": 100, "required": true}
            ]}}),
        );
        assert_eq!(misfit(&list, &json!([{"score": 90}])), None);
        let found = misfit(&list, &json!([{"score": 90}, {"score": 101}]));
        assert_eq!(found.map(|(p, _)| p), Some("/1/score".to_owned()));
    }

    #[test]
    fn enum_values_are_checked_without_the_enum() {
        let grade = spec(json!({"type": "string", "enum": ["good", "fair"]}));
        assert!(misfit(&grade, &json!("poor")).is_some());
        assert_eq!(misfit_ignoring_enum(&grade, &json!("poor")), None);
        assert!(misfit_ignoring_enum(&grade, &json!(3)).is_some());
    }
}
