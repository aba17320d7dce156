//! Guards that can never hold over the declared data domains (issue #13
//! item 4), for S013 and, with those transitions taken out of the stage
//! graph, S012.
//!
//! The engine enforces every declared type and bound on initial data,
//! effects and payloads, so a variable's declaration bounds what a guard can
//! read: an `integer` with `"min": 1` is never 0, a `boolean` is never
//! anything but true or false, a string with an `enum` is one of them. A
//! guard that compares such a value with a literal outside what it can be,
//! or asks for two things of it that exclude each other (`count > 5` and
//! `count < 3`), is false for every instance and every payload.
//!
//! The analysis is sound and incomplete: it says "never" only when that is
//! proven, and "may hold" for anything it does not understand (another
//! operator, a value that may be missing or null, which JSON Logic's loose
//! comparisons would coerce). A finding is therefore always a real fault.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::definition::{Definition, Field, Transition, ValueType};

/// What one analysable variable can be.
#[derive(Debug, Clone, PartialEq)]
enum Domain {
    /// A number in `[lo, hi]` (either end open to infinity), whole when
    /// `integer`.
    Number { lo: f64, hi: f64, integer: bool },
    /// One of these values (booleans, enums).
    OneOf(Vec<Value>),
}

impl Domain {
    /// The domain a declaration gives, when the value always exists and is
    /// of its type: instance variables always do; payload fields only when
    /// required.
    fn of(field: &Field) -> Option<Domain> {
        let spec = &field.spec;
        if let Some(values) = &spec.one_of {
            let mut values = values.clone();
            // A variable without a default starts at its type's zero value,
            // which the enum may not list; it can hold that value too.
            let start = match (&field.default, spec.ty) {
                (Some(default), _) => default.clone(),
                (None, ValueType::String) => Value::from(""),
                (None, ValueType::Integer | ValueType::Number) => Value::from(0),
                (None, _) => return None,
            };
            if !values.contains(&start) {
                values.push(start);
            }
            return Some(Domain::OneOf(values));
        }
        match spec.ty {
            ValueType::Integer | ValueType::Number => Some(Domain::Number {
                lo: spec.min.unwrap_or(f64::NEG_INFINITY),
                hi: spec.max.unwrap_or(f64::INFINITY),
                integer: spec.ty == ValueType::Integer,
            }),
            ValueType::Boolean => Some(Domain::OneOf(vec![Value::Bool(false), Value::Bool(true)])),
            _ => None,
        }
    }

    /// The values of the domain for which `value op literal` holds, or
    /// `None` when the comparison is not one this analysis decides.
    fn restrict(&self, op: Op, literal: &Value) -> Option<Domain> {
        match self {
            Domain::Number { lo, hi, integer } => {
                let x = literal.as_f64()?;
                let (mut lo, mut hi) = (*lo, *hi);
                match op {
                    Op::Lt => hi = hi.min(below(x, *integer)),
                    Op::Le => hi = hi.min(x),
                    Op::Gt => lo = lo.max(above(x, *integer)),
                    Op::Ge => lo = lo.max(x),
                    Op::Eq => {
                        lo = lo.max(x);
                        hi = hi.min(x);
                        if *integer && x.fract() != 0.0 {
                            return Some(Domain::OneOf(Vec::new()));
                        }
                    }
                    // x != literal removes one point: only empty when the
                    // domain was that point.
                    Op::Ne => {
                        if lo == x && hi == x {
                            return Some(Domain::OneOf(Vec::new()));
                        }
                    }
                }
                Some(Domain::Number {
                    lo,
                    hi,
                    integer: *integer,
                })
            }
            Domain::OneOf(values) => {
                // Only same-typed literals: loose equality between a string
                // and a number coerces, which this does not model.
                let comparable = values
                    .iter()
                    .all(|v| std::mem::discriminant(v) == std::mem::discriminant(literal));
                if !comparable {
                    return None;
                }
                let keep: Vec<Value> = match op {
                    Op::Eq => values.iter().filter(|v| *v == literal).cloned().collect(),
                    Op::Ne => values.iter().filter(|v| *v != literal).cloned().collect(),
                    _ => return None,
                };
                Some(Domain::OneOf(keep))
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Domain::Number { lo, hi, .. } => lo > hi,
            Domain::OneOf(values) => values.is_empty(),
        }
    }

    fn describe(&self) -> String {
        match self {
            Domain::Number { lo, hi, .. } => match (lo.is_finite(), hi.is_finite()) {
                (true, true) => format!("between {lo} and {hi}"),
                (true, false) => format!("at least {lo}"),
                (false, true) => format!("at most {hi}"),
                (false, false) => "any number".to_owned(),
            },
            Domain::OneOf(values) => {
                let list: Vec<String> = values.iter().map(Value::to_string).collect();
                format!("one of {}", list.join(", "))
            }
        }
    }
}

/// The largest value below `x` (the next whole number below, for integers).
fn below(x: f64, integer: bool) -> f64 {
    if integer {
        x.ceil() - 1.0
    } else {
        // An open bound: `lo > hi` is then the only empty case that
        // matters, and `x - ε` keeps `x < x` empty.
        x - f64::EPSILON * x.abs().max(1.0)
    }
}

/// The smallest value above `x`.
fn above(x: f64, integer: bool) -> f64 {
    if integer {
        x.floor() + 1.0
    } else {
        x + f64::EPSILON * x.abs().max(1.0)
    }
}

/// The comparisons decided here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "==" | "===" => Op::Eq,
            "!=" | "!==" => Op::Ne,
            _ => return None,
        })
    }

    /// `literal op var` as `var op' literal`.
    fn flipped(self) -> Op {
        match self {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            other => other,
        }
    }

    /// `!(var op literal)` as `var op' literal`.
    fn negated(self) -> Op {
        match self {
            Op::Lt => Op::Ge,
            Op::Le => Op::Gt,
            Op::Gt => Op::Le,
            Op::Ge => Op::Lt,
            Op::Eq => Op::Ne,
            Op::Ne => Op::Eq,
        }
    }
}

/// The declared domains a transition's guard reads: `data.<id>` and
/// `payload.<id>`.
struct Domains<'a> {
    def: &'a Definition,
    transition: &'a Transition,
}

impl Domains<'_> {
    fn of(&self, path: &str) -> Option<Domain> {
        if let Some(id) = path.strip_prefix("data.") {
            return self
                .def
                .data
                .iter()
                .find(|f| f.id == id)
                .and_then(Domain::of);
        }
        let id = path.strip_prefix("payload.")?;
        self.transition
            .payload
            .iter()
            .find(|f| f.id == id && f.required)
            .and_then(Domain::of)
    }
}

/// One comparison of a variable with a literal: `var op literal`.
struct Atom<'a> {
    var: &'a str,
    op: Op,
    literal: &'a Value,
}

/// `{"var": "path"}` (or `{"var": ["path"]}`) without a default.
fn var_path(value: &Value) -> Option<&str> {
    let arg = value.as_object().filter(|o| o.len() == 1)?.get("var")?;
    match arg {
        Value::String(path) => Some(path),
        Value::Array(items) if items.len() == 1 => items.first()?.as_str(),
        _ => None,
    }
}

fn is_literal(value: &Value) -> bool {
    !value.is_object() && !value.is_array()
}

/// The expression as a comparison of a variable with a literal, negated
/// when `negate`.
fn atom(expr: &Value, negate: bool) -> Option<Atom<'_>> {
    let (name, args) = expr.as_object().filter(|o| o.len() == 1)?.iter().next()?;
    if name == "!" {
        let inner = match args {
            Value::Array(items) if items.len() == 1 => items.first()?,
            other => other,
        };
        return atom(inner, !negate);
    }
    let op = Op::parse(name)?;
    let [left, right] = args.as_array()?.as_slice() else {
        return None;
    };
    let (var, op, literal) = match (var_path(left), var_path(right)) {
        (Some(var), None) if is_literal(right) => (var, op, right),
        (None, Some(var)) if is_literal(left) => (var, op.flipped(), left),
        _ => return None,
    };
    let op = if negate { op.negated() } else { op };
    Some(Atom { var, op, literal })
}

/// Why `guard` can never hold for `transition` of `def`, in words, or
/// `None` when it may.
pub(super) fn never_holds(
    guard: &Value,
    def: &Definition,
    transition: &Transition,
) -> Option<String> {
    let domains = Domains { def, transition };
    never(guard, &domains)
}

fn never(expr: &Value, domains: &Domains<'_>) -> Option<String> {
    if let Some(object) = expr.as_object().filter(|o| o.len() == 1)
        && let Some((name, args)) = object.iter().next()
        && let Some(items) = args.as_array()
    {
        match name.as_str() {
            "and" => return conjunction(items, domains),
            "or" if !items.is_empty() => {
                let reasons: Option<Vec<String>> =
                    items.iter().map(|e| never(e, domains)).collect();
                return reasons.map(|r| r.join("; and "));
            }
            _ => {}
        }
    }
    conjunction(std::slice::from_ref(expr), domains)
}

/// Why the conjunction of `items` never holds: one item never does, or
/// the comparisons on one variable leave it nothing it can be.
fn conjunction(items: &[Value], domains: &Domains<'_>) -> Option<String> {
    let mut narrowed: BTreeMap<&str, (Domain, Vec<String>)> = BTreeMap::new();
    for item in items {
        if let Some(atom) = atom(item, false) {
            let Some(domain) = narrowed
                .get(atom.var)
                .map(|(d, _)| d.clone())
                .or_else(|| domains.of(atom.var))
            else {
                continue;
            };
            let declared = domains
                .of(atom.var)
                .map(|d| d.describe())
                .unwrap_or_default();
            let Some(next) = domain.restrict(atom.op, atom.literal) else {
                continue;
            };
            let entry = narrowed
                .entry(atom.var)
                .or_insert_with(|| (next.clone(), Vec::new()));
            entry.0 = next;
            entry.1.push(item.to_string());
            if entry.0.is_empty() {
                let conditions = entry.1.join(" and ");
                return Some(format!(
                    "`{}` is declared {declared}, so {conditions} cannot hold",
                    atom.var
                ));
            }
        } else if items.len() > 1
            && let Some(reason) = never(item, domains)
        {
            return Some(reason);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def() -> (Definition, Transition) {
        let def: Definition = serde_json::from_value(json!({
            "id": "w", "title": "w", "roles": [{"id": "r"}],
            "data": [
                {"id": "score", "type": "integer", "min": 0, "max": 100},
                {"id": "share", "type": "number", "min": 0, "max": 1},
                {"id": "done", "type": "boolean"},
                {"id": "level", "type": "string", "enum": ["a", "b"], "default": "a"},
                {"id": "free", "type": "number"}
            ],
            "stages": [{"id": "s", "kind": "initial"}, {"id": "t", "kind": "terminal"}],
            "transitions": [{"event": "e", "from": "s", "to": "t", "roles": ["r"],
                "payload": [{"id": "n", "type": "integer", "min": 1, "required": true},
                            {"id": "m", "type": "integer", "min": 1}]}]
        }))
        .expect("a definition");
        let transition = def.transitions[0].clone();
        (def, transition)
    }

    #[test]
    fn guards_outside_the_declared_domains_never_hold() {
        let (def, t) = def();
        let never = [
            json!({">": [{"var": "data.score"}, 100]}),
            json!({"<": [{"var": "data.score"}, 0]}),
            json!({"==": [{"var": "data.score"}, 2.5]}),
            json!({"and": [{">": [{"var": "data.free"}, 5]}, {"<": [{"var": "data.free"}, 3]}]}),
            json!({"and": [{">=": [{"var": "data.score"}, 50]}, {"<": [{"var": "data.score"}, 50]}]}),
            json!({"==": [{"var": "data.level"}, "c"]}),
            json!({"<": [{"var": "payload.n"}, 1]}),
            json!({"<": [{"var": "data.share"}, 0]}),
            json!({"<": [101, {"var": "data.score"}]}),
            json!({"or": [{">": [{"var": "data.share"}, 1]}, {"<": [{"var": "data.score"}, 0]}]}),
            json!({"!": [{">=": [{"var": "data.score"}, 0]}]}),
            json!({"and": [{"==": [{"var": "data.done"}, true]}, {"==": [{"var": "data.done"}, false]}]}),
            json!({"and": [{"var": "data.done"}, {"and": [{">": [{"var": "data.score"}, 100]}]}]}),
        ];
        for guard in &never {
            assert!(
                never_holds(guard, &def, &t).is_some(),
                "{guard} can never hold"
            );
        }
        let reason = never_holds(&never[0], &def, &t).expect("a reason");
        assert!(reason.contains("between 0 and 100"), "{reason}");
    }

    #[test]
    fn guards_that_may_hold_or_are_not_understood_are_left_alone() {
        let (def, t) = def();
        let may = [
            json!({">=": [{"var": "data.score"}, 100]}),
            json!({"and": [{">": [{"var": "data.free"}, 3]}, {"<": [{"var": "data.free"}, 5]}]}),
            json!({"<": [{"var": "payload.m"}, 1]}),
            json!({">": [{"var": "data.score"}, {"var": "data.free"}]}),
            json!({"or": [{">": [{"var": "data.share"}, 1]}, {"<": [{"var": "data.score"}, 10]}]}),
            json!({"==": [{"var": "data.level"}, "b"]}),
            json!({"some_operator": [{"var": "data.score"}, 1000]}),
            json!({"!=": [{"var": "data.score"}, 5]}),
            // Another type than the variable's: loose equality coerces.
            json!({"==": [{"var": "data.done"}, "yes"]}),
            json!({">": [2, {"var": "data.share"}]}),
            json!({"<": [{"var": "data.score"}, 1, 5]}),
        ];
        for guard in may {
            assert_eq!(never_holds(&guard, &def, &t), None, "{guard} may hold");
        }
    }
}
