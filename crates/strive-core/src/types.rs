//! Checking JSON values against declared types, and the zero value of each
//! type. Used for payloads, initial data, defaults and effect results.

use serde_json::{Map, Value};

use crate::definition::{Field, TypeSpec, ValueType};

/// Why a value does not fit its type: the JSON pointer inside the value
/// (empty for the value itself) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMismatch {
    /// Where inside the checked value the problem is.
    pub pointer: String,
    /// What is wrong, such as "expected an integer, got \"ten\"".
    pub reason: String,
}

/// The value a variable has when its declaration gives no default.
pub fn zero_value(spec: &TypeSpec) -> Value {
    match spec.ty {
        ValueType::String => Value::String(String::new()),
        ValueType::Integer => Value::from(0),
        ValueType::Number => Value::from(0.0),
        ValueType::Boolean => Value::Bool(false),
        ValueType::List => Value::Array(Vec::new()),
        ValueType::Map => Value::Object(Map::new()),
        ValueType::Timestamp | ValueType::Object | ValueType::Any => Value::Null,
    }
}

/// The initial value of a variable: its default, or the zero value.
pub(crate) fn initial_value(field: &Field) -> Value {
    field
        .default
        .clone()
        .unwrap_or_else(|| zero_value(&field.spec))
}

/// Checks `value` against `spec`. `null` fits nullable types only: timestamps,
/// objects and `any` (a timestamp or object that is not set yet).
///
/// An integer given as input is a JSON integer within
/// ±[`MAX_SAFE_INTEGER`]: `3.0`, `1e3` and integers too large for a double
/// to hold exactly are refused (issue #17).
pub fn check(spec: &TypeSpec, value: &Value) -> Result<(), TypeMismatch> {
    check_in(spec, value, Integers::Exact)
}

/// As [`check`], for values the engine computed itself (effects): there a
/// whole float such as `3.0`, which arithmetic in guards may give, counts
/// as an integer.
pub(crate) fn check_computed(spec: &TypeSpec, value: &Value) -> Result<(), TypeMismatch> {
    check_in(spec, value, Integers::Whole)
}

/// The largest integer accepted in an integer variable, 2^53 - 1: every
/// JSON reader (JavaScript's, Python's, strive's guards) holds it exactly.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Integers {
    Exact,
    Whole,
}

fn check_in(spec: &TypeSpec, value: &Value, integers: Integers) -> Result<(), TypeMismatch> {
    // An explicit stack keeps hostile nesting from overflowing the stack.
    let mut stack: Vec<(&TypeSpec, &Value, String)> = vec![(spec, value, String::new())];
    while let Some((spec, value, pointer)) = stack.pop() {
        let fail = |reason: String| {
            Err(TypeMismatch {
                pointer: pointer.clone(),
                reason,
            })
        };
        match (spec.ty, value) {
            (ValueType::Any, _) => {}
            (ValueType::Timestamp | ValueType::Object, Value::Null) => {}
            (ValueType::String, Value::String(text)) => {
                let chars = text.chars().count() as u64;
                if let Some(min) = spec.min_length
                    && chars < min
                {
                    return fail(format!(
                        "is {chars} characters long; at least {min} are required"
                    ));
                }
                if let Some(max) = spec.max_length
                    && chars > max
                {
                    return fail(format!(
                        "is {chars} characters long; at most {max} are allowed"
                    ));
                }
            }
            (ValueType::Integer, Value::Number(number)) if number.is_i64() || number.is_u64() => {
                if number
                    .as_i64()
                    .is_none_or(|n| n.unsigned_abs() > MAX_SAFE_INTEGER as u64)
                {
                    return fail(format!(
                        "is {number}, outside the integer range -{MAX_SAFE_INTEGER} to {MAX_SAFE_INTEGER}"
                    ));
                }
                check_bounds(spec, number.as_f64().unwrap_or(0.0)).or_else(fail)?;
            }
            (ValueType::Integer, Value::Number(number)) if integers == Integers::Exact => {
                return fail(format!(
                    "expected an integer written without a fraction or exponent, within \
                     -{MAX_SAFE_INTEGER} to {MAX_SAFE_INTEGER}; got {number}"
                ));
            }
            (ValueType::Integer, Value::Number(number)) => {
                // 3.0 is an integer; 3.5 is not.
                match number.as_f64() {
                    Some(float) if float.fract() == 0.0 && float.is_finite() => {
                        check_bounds(spec, float).or_else(fail)?;
                    }
                    _ => return fail(format!("expected an integer, got {number}")),
                }
            }
            (ValueType::Number, Value::Number(number)) => {
                check_bounds(spec, number.as_f64().unwrap_or(0.0)).or_else(fail)?;
            }
            (ValueType::Boolean, Value::Bool(_)) => {}
            (ValueType::Timestamp, Value::String(text)) => {
                if let Err(error) = crate::time::parse(text) {
                    return fail(error.to_string());
                }
            }
            (ValueType::List, Value::Array(items)) => {
                if let Some(max) = spec.max_items
                    && items.len() as u64 > max
                {
                    return fail(format!(
                        "has {} items; at most {max} are allowed",
                        items.len()
                    ));
                }
                if let Some(element) = &spec.items {
                    for (index, item) in items.iter().enumerate() {
                        stack.push((&element.spec, item, format!("{pointer}/{index}")));
                    }
                }
            }
            (ValueType::Map, Value::Object(map)) => {
                if let Some(element) = &spec.values {
                    for (key, item) in map {
                        stack.push((&element.spec, item, format!("{pointer}/{}", escape(key))));
                    }
                }
            }
            (ValueType::Object, Value::Object(map)) => {
                let fields = spec.fields.as_deref().unwrap_or(&[]);
                if let Err(mismatch) = check_fields(fields, map) {
                    return Err(TypeMismatch {
                        pointer: format!("{pointer}{}", mismatch.pointer),
                        reason: mismatch.reason,
                    });
                }
                for field in fields {
                    if let Some(item) = map.get(&field.id)
                        && !item.is_null()
                    {
                        stack.push((
                            &field.spec,
                            item,
                            format!("{pointer}/{}", escape(&field.id)),
                        ));
                    }
                }
            }
            (expected, got) => {
                return fail(format!(
                    "expected {}, got {}",
                    article(expected),
                    describe(got)
                ));
            }
        }
        if let Some(allowed) = &spec.one_of
            && !allowed.iter().any(|a| same_value(a, value))
        {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return fail(format!("must be one of {}, got {value}", list.join(", ")));
        }
    }
    Ok(())
}

/// Checks that `map` has every required field, no undeclared field, and
/// values of the declared types. This is how payloads are checked.
pub fn check_fields(fields: &[Field], map: &Map<String, Value>) -> Result<(), TypeMismatch> {
    for key in map.keys() {
        if !fields.iter().any(|field| &field.id == key) {
            let declared: Vec<&str> = fields.iter().map(|f| f.id.as_str()).collect();
            return Err(TypeMismatch {
                pointer: format!("/{}", escape(key)),
                reason: if declared.is_empty() {
                    "is not declared: this event takes no fields".to_owned()
                } else {
                    format!("is not declared; the fields are: {}", declared.join(", "))
                },
            });
        }
    }
    for field in fields {
        match map.get(&field.id) {
            None | Some(Value::Null) if field.required => {
                return Err(TypeMismatch {
                    pointer: format!("/{}", escape(&field.id)),
                    reason: "is required".to_owned(),
                });
            }
            None | Some(Value::Null) => {}
            Some(value) => check(&field.spec, value).map_err(|mismatch| TypeMismatch {
                pointer: format!("/{}{}", escape(&field.id), mismatch.pointer),
                reason: mismatch.reason,
            })?,
        }
    }
    Ok(())
}

/// JSON equality, except that numbers compare by value: `1` is `1.0`.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn check_bounds(spec: &TypeSpec, number: f64) -> Result<(), String> {
    if let Some(min) = spec.min
        && number < min
    {
        return Err(format!("is {number}; the minimum is {min}"));
    }
    if let Some(max) = spec.max
        && number > max
    {
        return Err(format!("is {number}; the maximum is {max}"));
    }
    Ok(())
}

fn escape(key: &str) -> String {
    crate::source::escape_token(key)
}

fn article(ty: ValueType) -> &'static str {
    match ty {
        ValueType::String => "a string",
        ValueType::Integer => "an integer",
        ValueType::Number => "a number",
        ValueType::Boolean => "a boolean",
        ValueType::Timestamp => "an RFC 3339 timestamp",
        ValueType::List => "a list",
        ValueType::Map => "a map (JSON object)",
        ValueType::Object => "an object",
        ValueType::Any => "any value",
    }
}

/// Names the JSON type of `value`, for messages.
pub(crate) fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(value: Value) -> TypeSpec {
        serde_json::from_value(value).expect("a valid type spec")
    }

    #[test]
    fn integers_strings_and_bounds() {
        let score = spec(json!({"type": "integer", "min": 0, "max": 100}));
        assert!(check(&score, &json!(80)).is_ok());
        // Input is exact (issue #17); what effects compute may be a whole float.
        assert!(check(&score, &json!(80.0)).is_err());
        assert!(check_computed(&score, &json!(80.0)).is_ok());
        let any = spec(json!({"type": "integer"}));
        for hostile in [
            json!(1e3),
            json!(12345678901234567890123.0),
            json!(9007199254740992_i64),
        ] {
            assert!(check(&any, &hostile).is_err(), "{hostile}");
        }
        assert!(check(&any, &json!(-9007199254740991_i64)).is_ok());
        assert!(check(&score, &json!(80.5)).is_err());
        assert!(check(&score, &json!(101)).is_err());
        assert!(check(&score, &json!("80")).is_err());
        let text = spec(json!({"type": "string", "max_length": 3}));
        assert!(check(&text, &json!("动员部")).is_ok());
        assert!(check(&text, &json!("动员部署")).is_err());
    }

    #[test]
    fn enums_compare_numbers_by_value() {
        let grade = spec(json!({"type": "number", "enum": [1, 2.5]}));
        assert!(check(&grade, &json!(1.0)).is_ok());
        assert!(check(&grade, &json!(2.5)).is_ok());
        assert!(check(&grade, &json!(3)).is_err());
    }

    #[test]
    fn nested_lists_report_the_pointer() {
        let ids = spec(json!({"type": "list", "items": {"type": "string"}}));
        let mismatch = check(&ids, &json!(["a", 2])).expect_err("mismatch");
        assert_eq!(mismatch.pointer, "/1");
    }

    #[test]
    fn payload_fields() {
        let fields: Vec<Field> = serde_json::from_value(json!([
            {"id": "plan", "type": "string", "required": true},
            {"id": "due", "type": "timestamp"}
        ]))
        .expect("fields");
        let ok = json!({"plan": "x", "due": "2026-05-31T00:00:00Z"});
        assert!(check_fields(&fields, ok.as_object().expect("object")).is_ok());
        let missing = json!({"due": "2026-05-31T00:00:00Z"});
        let err = check_fields(&fields, missing.as_object().expect("object")).expect_err("missing");
        assert_eq!(err.pointer, "/plan");
        let extra = json!({"plan": "x", "planx": 1});
        let err = check_fields(&fields, extra.as_object().expect("object")).expect_err("extra");
        assert_eq!(err.pointer, "/planx");
        let bad_time = json!({"plan": "x", "due": "31 May"});
        assert!(check_fields(&fields, bad_time.as_object().expect("object")).is_err());
    }
}
