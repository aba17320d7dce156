//! Guards and effect values: JSON Logic expressions evaluated by
//! `datalogic-rs`, extended with operators for aggregates over recorded
//! entries and for child instances.
//!
//! An expression is evaluated against a context object:
//!
//! | key | holds |
//! |---|---|
//! | `data` | the instance's variables |
//! | `payload` | the event's payload |
//! | `actor` | `{"id": ..., "roles": [...]}` |
//! | `stage` | the current stage id |
//! | `now` | the command's time, RFC 3339 |
//! | `instance` | `{"id": ..., "parent": ...}` |
//! | `children` | per child workflow: `{"total": n, "stages": {stage: n}}` |
//!
//! strive's own operators (arguments are evaluated first, as for any
//! operator):
//!
//! | operator | result |
//! |---|---|
//! | `{"count": [c]}` | entries in a list or map (0 for null) |
//! | `{"entries": [c]}` | a map's values as a list (a list is returned as is) |
//! | `{"sum": [c, "path"]}` | sum of the numbers at `path` in each entry (0 when empty) |
//! | `{"mean": [c, "path"]}` | mean of those numbers (null when empty) |
//! | `{"min_of": [c, "path"]}`, `{"max_of": [c, "path"]}` | smallest, largest (null when empty) |
//! | `{"share": [c, "path", op, value]}` | the share (0 to 1) of entries whose value at `path` compares with `value` by `op` (`==`, `!=`, `>`, `>=`, `<`, `<=`); 0 when empty |
//! | `{"children_total": ["wf"]}` | how many children of workflow `wf` |
//! | `{"children_in": ["wf", stages]}` | how many of them are in one of `stages` |
//! | `{"children_share": ["wf", stages]}` | that number over the total (0 with no children) |
//! | `{"children_all_in": ["wf", stages]}` | true when there is at least one child and all are in `stages` |
//!
//! `path` is a dot-separated path inside each entry; omit it (or give `""`)
//! to use the entry itself.

use std::sync::{Arc, OnceLock};

use datalogic_rs::bumpalo::Bump;
use datalogic_rs::datavalue::NumberValue;
use datalogic_rs::operator::EvalContext;
use datalogic_rs::{ArenaExt, CustomOperator, DataValue, Engine, Logic};
use serde_json::Value;

/// A compiled JSON Logic expression, with its source kept for audit and
/// error messages.
#[derive(Clone)]
pub struct Expr {
    logic: Arc<Logic>,
    /// For a top-level `and`, each conjunct compiled on its own so a false
    /// guard can say which part failed.
    conjuncts: Vec<(Value, Arc<Logic>)>,
    source: Value,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({})", self.source)
    }
}

/// Why an expression could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExprError {
    /// What went wrong, in the guard library's words.
    pub message: String,
}

impl std::fmt::Display for ExprError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExprError {}

fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        Engine::builder()
            .add_operator("count", Aggregate::Count)
            .add_operator("entries", Aggregate::Entries)
            .add_operator("sum", Aggregate::Sum)
            .add_operator("mean", Aggregate::Mean)
            .add_operator("min_of", Aggregate::Min)
            .add_operator("max_of", Aggregate::Max)
            .add_operator("share", Share)
            .add_operator("children_total", Children::Total)
            .add_operator("children_in", Children::In)
            .add_operator("children_share", Children::Share)
            .add_operator("children_all_in", Children::AllIn)
            .build()
    })
}

/// The names of strive's own operators.
pub const CUSTOM_OPERATORS: &[&str] = &[
    "count",
    "entries",
    "sum",
    "mean",
    "min_of",
    "max_of",
    "share",
    "children_total",
    "children_in",
    "children_share",
    "children_all_in",
];

impl Expr {
    /// Compiles `source`. Unknown operators and malformed arguments are
    /// errors here, at load time, not when an instance first fires.
    pub fn compile(source: &Value) -> Result<Expr, ExprError> {
        let compile = |value: &Value| {
            engine().compile_arc(value).map_err(|error| ExprError {
                message: error.to_string(),
            })
        };
        if let Some((name, pointer)) = reads(source).unknown_operators.first() {
            return Err(ExprError {
                message: format!("unknown operator `{name}` at {pointer}"),
            });
        }
        let logic = compile(source)?;
        let mut conjuncts = Vec::new();
        if let Some(Value::Array(parts)) = source
            .as_object()
            .and_then(|map| (map.len() == 1).then(|| map.get("and")).flatten())
        {
            for part in parts {
                conjuncts.push((part.clone(), compile(part)?));
            }
        }
        Ok(Expr {
            logic,
            conjuncts,
            source: source.clone(),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Evaluates the expression against `context`.
    pub fn eval(&self, context: &Value) -> Result<Value, ExprError> {
        eval_logic(&self.logic, context)
    }

    /// Evaluates the expression as a condition (JSON Logic truthiness). On
    /// false, returns the part that failed: the first false conjunct of a
    /// top-level `and`, or the whole expression.
    pub fn test(&self, context: &Value) -> Result<Result<(), Value>, ExprError> {
        let arena = Bump::new();
        if self.conjuncts.is_empty() {
            let result = engine()
                .evaluate(&self.logic, context, &arena)
                .map_err(to_expr_error)?;
            return Ok(if engine().truthy(result) {
                Ok(())
            } else {
                Err(self.source.clone())
            });
        }
        // Convert the context once for all conjuncts.
        let data: &DataValue<'_> = arena.alloc(DataValue::from_serde_value_in(context, &arena));
        for (part, logic) in &self.conjuncts {
            let result = engine()
                .evaluate(logic, data, &arena)
                .map_err(to_expr_error)?;
            if !engine().truthy(result) {
                return Ok(Err(part.clone()));
            }
        }
        Ok(Ok(()))
    }
}

impl Expr {
    /// Evaluates against a context already converted into `arena` (see
    /// [`borrowed`]): the transition function converts the context once
    /// for a guard and every effect, instead of once per expression.
    pub(crate) fn eval_in<'a>(
        &'a self,
        context: &'a DataValue<'a>,
        arena: &'a Bump,
    ) -> Result<Value, ExprError> {
        let result = engine()
            .evaluate(&self.logic, context, arena)
            .map_err(to_expr_error)?;
        Ok(result.to_serde_value())
    }

    /// [`Expr::test`] against a context already converted into `arena`.
    pub(crate) fn test_in<'a>(
        &'a self,
        context: &'a DataValue<'a>,
        arena: &'a Bump,
    ) -> Result<Result<(), Value>, ExprError> {
        if self.conjuncts.is_empty() {
            let result = engine()
                .evaluate(&self.logic, context, arena)
                .map_err(to_expr_error)?;
            return Ok(if engine().truthy(result) {
                Ok(())
            } else {
                Err(self.source.clone())
            });
        }
        for (part, logic) in &self.conjuncts {
            let result = engine()
                .evaluate(logic, context, arena)
                .map_err(to_expr_error)?;
            if !engine().truthy(result) {
                return Ok(Err(part.clone()));
            }
        }
        Ok(Ok(()))
    }
}

/// A JSON value as a guard reads it, built in `arena` but borrowing its
/// strings and keys from `value` instead of copying them.
pub(crate) fn borrowed<'a>(value: &'a Value, arena: &'a Bump) -> DataValue<'a> {
    match value {
        Value::Null => DataValue::Null,
        Value::Bool(b) => DataValue::Bool(*b),
        Value::Number(n) => DataValue::Number(number(n)),
        Value::String(s) => DataValue::String(s),
        Value::Array(items) => DataValue::Array(
            arena.alloc_slice_fill_iter(items.iter().map(|item| borrowed(item, arena))),
        ),
        Value::Object(map) => DataValue::Object(borrowed_map(map, arena)),
    }
}

/// The pairs of a JSON object, borrowed as in [`borrowed`].
pub(crate) fn borrowed_map<'a>(
    map: &'a serde_json::Map<String, Value>,
    arena: &'a Bump,
) -> &'a [(&'a str, DataValue<'a>)] {
    arena.alloc_slice_fill_iter(
        map.iter()
            .map(|(key, value)| (key.as_str(), borrowed(value, arena))),
    )
}

/// The same number conversion datalogic-rs applies to serde_json input.
fn number(n: &serde_json::Number) -> NumberValue {
    if let Some(i) = n.as_i64() {
        NumberValue::Integer(i)
    } else if let Some(u) = n.as_u64() {
        NumberValue::Float(u as f64)
    } else {
        NumberValue::Float(n.as_f64().unwrap_or(0.0))
    }
}

thread_local! {
    /// A bump arena reused across evaluations on this thread, so that an
    /// evaluation does not allocate and free its first chunk every time.
    static ARENA: std::cell::Cell<Option<Bump>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with this thread's evaluation arena, reset afterwards.
pub(crate) fn with_arena<T>(f: impl FnOnce(&Bump) -> T) -> T {
    let mut arena = ARENA.with(|cell| cell.take()).unwrap_or_default();
    let result = f(&arena);
    arena.reset();
    // A re-entrant call found no arena and made its own; keep either.
    ARENA.with(|cell| cell.set(Some(arena)));
    result
}

/// Which parts of the context an expression reads. Computed once at
/// compile time so that the transition function builds only those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Needs {
    /// Everything: the expression reads a computed or empty path, or uses
    /// an operator whose reads the walk cannot follow.
    pub(crate) all: bool,
    /// Bits of the roots read: see the `ROOT_*` constants.
    pub(crate) roots: u8,
    /// The instance variables read (`None`: all of `data`; empty when
    /// `data` is not read).
    pub(crate) data: Option<Vec<String>>,
}

pub(crate) const ROOT_DATA: u8 = 1;
pub(crate) const ROOT_PAYLOAD: u8 = 1 << 1;
pub(crate) const ROOT_ACTOR: u8 = 1 << 2;
pub(crate) const ROOT_STAGE: u8 = 1 << 3;
pub(crate) const ROOT_NOW: u8 = 1 << 4;
pub(crate) const ROOT_INSTANCE: u8 = 1 << 5;
pub(crate) const ROOT_CHILDREN: u8 = 1 << 6;

impl Needs {
    /// Nothing at all.
    pub(crate) fn nothing() -> Needs {
        Needs {
            all: false,
            roots: 0,
            data: Some(Vec::new()),
        }
    }

    /// Everything the context holds.
    pub(crate) fn everything() -> Needs {
        Needs {
            all: true,
            roots: u8::MAX,
            data: None,
        }
    }

    /// Whether root `bit` is read.
    pub(crate) fn reads(&self, bit: u8) -> bool {
        self.all || self.roots & bit != 0
    }

    /// Adds what `other` reads.
    pub(crate) fn merge(&mut self, other: &Needs) {
        self.all |= other.all;
        self.roots |= other.roots;
        self.data = match (self.data.take(), &other.data) {
            (Some(mut mine), Some(theirs)) => {
                for key in theirs {
                    if !mine.contains(key) {
                        mine.push(key.clone());
                    }
                }
                Some(mine)
            }
            _ => None,
        };
    }

    fn path(&mut self, path: &str) {
        let mut steps = path.split('.');
        let bit = match steps.next().unwrap_or_default() {
            "" => {
                self.all = true;
                return;
            }
            "data" => {
                match (steps.next(), &mut self.data) {
                    (Some(var), Some(vars)) if !var.is_empty() => {
                        if !vars.iter().any(|v| v == var) {
                            vars.push(var.to_owned());
                        }
                    }
                    (Some(_), None) => {}
                    _ => self.data = None,
                }
                ROOT_DATA
            }
            "payload" => ROOT_PAYLOAD,
            "actor" => ROOT_ACTOR,
            "stage" => ROOT_STAGE,
            "now" => ROOT_NOW,
            "instance" => ROOT_INSTANCE,
            "children" => ROOT_CHILDREN,
            // Not in the context: reads null whatever is built.
            _ => return,
        };
        self.roots |= bit;
    }
}

/// What parts of the context `expr` reads. Conservative: anything the walk
/// does not understand reads everything.
pub(crate) fn needs(expr: &Value) -> Needs {
    let mut needs = Needs::nothing();
    let mut stack = vec![expr];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) if map.len() == 1 => {
                let Some((op, args)) = map.iter().next() else {
                    continue;
                };
                match op.as_str() {
                    "var" => match args {
                        Value::String(path) => needs.path(path),
                        Value::Array(items) => match items.first() {
                            Some(Value::String(path)) => {
                                needs.path(path);
                                stack.extend(items.iter().skip(1));
                            }
                            _ => needs.all = true,
                        },
                        _ => needs.all = true,
                    },
                    "missing" | "missing_some" => {
                        let names: Vec<&Value> = match (op.as_str(), args) {
                            ("missing", Value::Array(items)) => items.iter().collect(),
                            ("missing", other) => vec![other],
                            (_, Value::Array(items)) => items
                                .get(1)
                                .and_then(Value::as_array)
                                .map(|names| names.iter().collect())
                                .unwrap_or_default(),
                            _ => Vec::new(),
                        };
                        if names.iter().all(|n| n.is_string()) && !names.is_empty() {
                            for name in names {
                                needs.path(name.as_str().unwrap_or_default());
                            }
                        } else {
                            needs.all = true;
                        }
                    }
                    name if SCOPED.contains(&name) => {
                        // Later arguments read each element, not the context.
                        if let Value::Array(items) = args
                            && let Some(first) = items.first()
                        {
                            stack.push(first);
                            // `reduce`'s initial value is read in the context.
                            if name == "reduce"
                                && let Some(initial) = items.get(2)
                            {
                                stack.push(initial);
                            }
                        } else {
                            needs.all = true;
                        }
                    }
                    name if name.starts_with("children_") => {
                        needs.roots |= ROOT_CHILDREN;
                        stack.push(args);
                    }
                    name if CUSTOM_OPERATORS.contains(&name) => stack.push(args),
                    name if is_operator(name) && !READS_CONTEXT.contains(&name) => {
                        stack.push(args);
                    }
                    _ => needs.all = true,
                }
            }
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    if needs.all {
        return Needs::everything();
    }
    needs
}

/// Built-in operators that read the context by paths the walk does not
/// follow (`val` and `exists` take path segments, may climb scopes).
const READS_CONTEXT: &[&str] = &["val", "exists"];

fn eval_logic(logic: &Logic, context: &Value) -> Result<Value, ExprError> {
    let arena = Bump::new();
    let result = engine()
        .evaluate(logic, context, &arena)
        .map_err(to_expr_error)?;
    Ok(result.to_serde_value())
}

fn to_expr_error(error: datalogic_rs::Error) -> ExprError {
    ExprError {
        message: error.to_string(),
    }
}

/// A variable an expression reads, with the JSON pointer (relative to the
/// expression) of the `var` that reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarRef {
    /// The dot-separated path, such as `data.plan` or `payload.score`.
    pub path: String,
    /// Where the reference stands inside the expression.
    pub pointer: String,
}

/// A reference to a child workflow from a `children_*` operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRef {
    /// The child workflow's id, when written as a literal.
    pub workflow: String,
    /// The stages named, when written as literals.
    pub stages: Vec<String>,
    /// Where the operator stands inside the expression.
    pub pointer: String,
}

/// What an expression reads, found by walking it without evaluating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    /// Variables read in the expression's own scope. Variables inside the
    /// per-element argument of `map`, `filter`, `reduce`, `all`, `some` and
    /// `none` refer to the element and are not listed.
    pub vars: Vec<VarRef>,
    /// Child workflows and stages read.
    pub children: Vec<ChildRef>,
    /// Operators neither JSON Logic nor strive defines, with where they
    /// stand. datalogic-rs 5.4 accepts these at compile time and fails only
    /// when they run, so the walk catches them at load time instead.
    pub unknown_operators: Vec<(String, String)>,
}

/// Operators whose arguments after the first are evaluated per element.
const SCOPED: &[&str] = &["map", "filter", "reduce", "all", "some", "none"];

/// Lists what `expr` reads. Iterative, so hostile nesting cannot overflow the
/// stack (definitions are also limited to a depth of 64).
pub fn reads(expr: &Value) -> Reads {
    let mut reads = Reads::default();
    let mut stack: Vec<(&Value, String)> = vec![(expr, String::new())];
    while let Some((value, pointer)) = stack.pop() {
        match value {
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    stack.push((item, format!("{pointer}/{index}")));
                }
            }
            Value::Object(map) => {
                if map.len() == 1
                    && let Some((op, args)) = map.iter().next()
                {
                    let args_pointer = format!("{pointer}/{}", crate::source::escape_token(op));
                    match op.as_str() {
                        "var" => {
                            let path = match args {
                                Value::String(path) => Some(path.clone()),
                                Value::Array(items) => {
                                    items.first().and_then(|first| match first {
                                        Value::String(path) => Some(path.clone()),
                                        _ => None,
                                    })
                                }
                                Value::Number(n) => Some(n.to_string()),
                                _ => None,
                            };
                            if let Some(path) = path {
                                reads.vars.push(VarRef {
                                    path,
                                    pointer: args_pointer,
                                });
                            } else if let Value::Array(items) = args {
                                // A computed path: check what computes it.
                                for (index, item) in items.iter().enumerate() {
                                    stack.push((item, format!("{args_pointer}/{index}")));
                                }
                            } else if !args.is_null() {
                                stack.push((args, args_pointer));
                            }
                            continue;
                        }
                        "missing" | "missing_some" => {
                            let names: Vec<&Value> = match (op.as_str(), args) {
                                ("missing", Value::Array(items)) => items.iter().collect(),
                                ("missing", other) => vec![other],
                                (_, Value::Array(items)) => items
                                    .get(1)
                                    .and_then(Value::as_array)
                                    .map(|names| names.iter().collect())
                                    .unwrap_or_default(),
                                _ => Vec::new(),
                            };
                            for name in names {
                                if let Value::String(path) = name {
                                    reads.vars.push(VarRef {
                                        path: path.clone(),
                                        pointer: args_pointer.clone(),
                                    });
                                }
                            }
                            continue;
                        }
                        name if SCOPED.contains(&name) => {
                            if let Value::Array(items) = args
                                && let Some(first) = items.first()
                            {
                                stack.push((first, format!("{args_pointer}/0")));
                            }
                            continue;
                        }
                        name if !is_operator(name) => {
                            reads
                                .unknown_operators
                                .push((name.to_owned(), pointer.clone()));
                        }
                        name if name.starts_with("children_") => {
                            let items = match args {
                                Value::Array(items) => items.as_slice(),
                                other => std::slice::from_ref(other),
                            };
                            if let Some(Value::String(workflow)) = items.first() {
                                let stages = match items.get(1) {
                                    Some(Value::String(stage)) => vec![stage.clone()],
                                    Some(Value::Array(stages)) => stages
                                        .iter()
                                        .filter_map(|s| s.as_str().map(str::to_owned))
                                        .collect(),
                                    _ => Vec::new(),
                                };
                                reads.children.push(ChildRef {
                                    workflow: workflow.clone(),
                                    stages,
                                    pointer: pointer.clone(),
                                });
                            }
                        }
                        _ => {}
                    }
                    stack.push((args, args_pointer));
                } else {
                    for (key, item) in map {
                        stack.push((
                            item,
                            format!("{pointer}/{}", crate::source::escape_token(key)),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    // The walk is a stack; report in document order.
    reads.vars.reverse();
    reads.children.reverse();
    reads.unknown_operators.reverse();
    reads
}

/// Whether `name` is an operator of JSON Logic (as datalogic-rs implements
/// it) or of strive.
fn is_operator(name: &str) -> bool {
    CUSTOM_OPERATORS.contains(&name) || engine().builtin_operator_names().any(|op| op == name)
}

// ---------------------------------------------------------------------------
// strive's operators
// ---------------------------------------------------------------------------

/// The entries of a list or a map, in order; nothing for anything else.
fn entries<'a>(value: &'a DataValue<'a>) -> Vec<&'a DataValue<'a>> {
    match value {
        DataValue::Array(items) => items.iter().collect(),
        DataValue::Object(pairs) => pairs.iter().map(|(_, value)| value).collect(),
        _ => Vec::new(),
    }
}

/// Follows a dot-separated path inside an entry.
fn at_path<'a>(entry: &'a DataValue<'a>, path: &str) -> Option<&'a DataValue<'a>> {
    if path.is_empty() {
        return Some(entry);
    }
    let mut current = entry;
    for step in path.split('.') {
        current = match current {
            DataValue::Object(pairs) => {
                pairs.iter().find(|(key, _)| *key == step).map(|(_, v)| v)?
            }
            DataValue::Array(items) => items.get(step.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn path_arg<'a>(args: &[&'a DataValue<'a>], index: usize) -> Result<&'a str, datalogic_rs::Error> {
    match args.get(index) {
        None | Some(DataValue::Null) => Ok(""),
        Some(DataValue::String(path)) => Ok(path),
        Some(_) => Err(datalogic_rs::Error::invalid_arguments(
            "the path argument must be a string such as \"scores.study\"",
        )),
    }
}

#[derive(Clone, Copy)]
enum Aggregate {
    Count,
    Entries,
    Sum,
    Mean,
    Min,
    Max,
}

impl CustomOperator for Aggregate {
    fn evaluate<'a>(
        &self,
        args: &[&'a DataValue<'a>],
        _ctx: &mut EvalContext<'_, 'a>,
        arena: &'a Bump,
    ) -> datalogic_rs::Result<&'a DataValue<'a>> {
        let collection = args.first().copied().unwrap_or(arena.null());
        let items = entries(collection);
        match self {
            Aggregate::Count => return Ok(arena.i64(items.len() as i64)),
            Aggregate::Entries => {
                let values: Vec<DataValue<'a>> = items.into_iter().cloned().collect();
                return Ok(arena.array(&values));
            }
            _ => {}
        }
        let path = path_arg(args, 1)?;
        let numbers: Vec<f64> = items
            .into_iter()
            .filter_map(|entry| at_path(entry, path))
            .filter_map(DataValue::as_f64)
            .collect();
        let result = match self {
            Aggregate::Sum => Some(numbers.iter().sum::<f64>()),
            Aggregate::Mean => {
                (!numbers.is_empty()).then(|| numbers.iter().sum::<f64>() / numbers.len() as f64)
            }
            Aggregate::Min => numbers.iter().copied().reduce(f64::min),
            Aggregate::Max => numbers.iter().copied().reduce(f64::max),
            Aggregate::Count | Aggregate::Entries => None,
        };
        Ok(match result {
            Some(number) => arena.f64(number),
            None => arena.null(),
        })
    }
}

struct Share;

impl CustomOperator for Share {
    fn evaluate<'a>(
        &self,
        args: &[&'a DataValue<'a>],
        _ctx: &mut EvalContext<'_, 'a>,
        arena: &'a Bump,
    ) -> datalogic_rs::Result<&'a DataValue<'a>> {
        if args.len() != 4 {
            return Err(datalogic_rs::Error::invalid_arguments(
                "share takes [collection, path, operator, value]",
            ));
        }
        let items = entries(args[0]);
        let path = path_arg(args, 1)?;
        let Some(op) = args[2].as_str() else {
            return Err(datalogic_rs::Error::invalid_arguments(
                "share's operator must be one of == != > >= < <=",
            ));
        };
        let target = args[3];
        if items.is_empty() {
            return Ok(arena.f64(0.0));
        }
        let mut hits = 0usize;
        for entry in &items {
            let Some(value) = at_path(entry, path) else {
                continue;
            };
            if compare(value, op, target)? {
                hits += 1;
            }
        }
        Ok(arena.f64(hits as f64 / items.len() as f64))
    }
}

fn compare(left: &DataValue<'_>, op: &str, right: &DataValue<'_>) -> datalogic_rs::Result<bool> {
    let ordering = match (left.as_f64(), right.as_f64()) {
        (Some(l), Some(r)) => l.partial_cmp(&r),
        _ => match (left, right) {
            (DataValue::String(l), DataValue::String(r)) => Some(l.cmp(r)),
            (DataValue::Bool(l), DataValue::Bool(r)) => Some(l.cmp(r)),
            (DataValue::Null, DataValue::Null) => Some(std::cmp::Ordering::Equal),
            _ => None,
        },
    };
    use std::cmp::Ordering::{Equal, Greater, Less};
    Ok(match op {
        "==" => ordering == Some(Equal),
        "!=" => ordering != Some(Equal),
        ">" => ordering == Some(Greater),
        ">=" => matches!(ordering, Some(Greater | Equal)),
        "<" => ordering == Some(Less),
        "<=" => matches!(ordering, Some(Less | Equal)),
        _ => {
            return Err(datalogic_rs::Error::invalid_arguments(
                "share's operator must be one of == != > >= < <=",
            ));
        }
    })
}

#[derive(Clone, Copy)]
enum Children {
    Total,
    In,
    Share,
    AllIn,
}

impl CustomOperator for Children {
    fn evaluate<'a>(
        &self,
        args: &[&'a DataValue<'a>],
        ctx: &mut EvalContext<'_, 'a>,
        arena: &'a Bump,
    ) -> datalogic_rs::Result<&'a DataValue<'a>> {
        let Some(workflow) = args.first().and_then(|w| w.as_str()) else {
            return Err(datalogic_rs::Error::invalid_arguments(
                "children operators take the child workflow's id first",
            ));
        };
        let summary = at_path(ctx.root_input(), "children").and_then(|children| match children {
            DataValue::Object(pairs) => pairs.iter().find(|(k, _)| *k == workflow).map(|(_, v)| v),
            _ => None,
        });
        let total = summary
            .and_then(|s| at_path(s, "total"))
            .and_then(DataValue::as_f64)
            .unwrap_or(0.0);
        if let Children::Total = self {
            return Ok(arena.i64(total as i64));
        }
        let stages: Vec<&str> = match args.get(1) {
            Some(DataValue::String(stage)) => vec![stage],
            Some(DataValue::Array(stages)) => stages.iter().filter_map(DataValue::as_str).collect(),
            _ => {
                return Err(datalogic_rs::Error::invalid_arguments(
                    "children operators take a stage or a list of stages second",
                ));
            }
        };
        let in_stages: f64 = stages
            .iter()
            .filter_map(|stage| {
                summary
                    .and_then(|s| at_path(s, "stages"))
                    .and_then(|by_stage| match by_stage {
                        DataValue::Object(pairs) => {
                            pairs.iter().find(|(k, _)| k == stage).map(|(_, v)| v)
                        }
                        _ => None,
                    })
                    .and_then(DataValue::as_f64)
            })
            .sum();
        Ok(match self {
            Children::In => arena.i64(in_stages as i64),
            Children::Share if total > 0.0 => arena.f64(in_stages / total),
            Children::Share => arena.f64(0.0),
            Children::AllIn => arena.bool(total > 0.0 && in_stages >= total),
            Children::Total => arena.i64(total as i64),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(expr: Value, context: Value) -> Value {
        match Expr::compile(&expr).and_then(|e| e.eval(&context)) {
            Ok(value) => value,
            Err(error) => panic!("{expr}: {error}"),
        }
    }

    #[test]
    fn custom_operators_do_not_shadow_builtins() {
        let builtins: Vec<&str> = engine().builtin_operator_names().collect();
        for name in CUSTOM_OPERATORS {
            assert!(!builtins.contains(name), "{name} is a builtin");
        }
    }

    #[test]
    fn aggregates_over_a_map_of_entries() {
        let context = json!({"data": {"evaluations": {
            "ann": {"scores": {"study": 90}, "satisfied": true},
            "bob": {"scores": {"study": 70}, "satisfied": false},
            "cai": {"scores": {"study": 80}, "satisfied": true},
            "dan": {"scores": {"study": 60}, "satisfied": true}
        }}});
        let evals = json!({"var": "data.evaluations"});
        assert_eq!(eval(json!({"count": [evals]}), context.clone()), json!(4));
        let number = |expr: Value| eval(expr, context.clone()).as_f64();
        assert_eq!(number(json!({"mean": [evals, "scores.study"]})), Some(75.0));
        assert_eq!(
            number(json!({"min_of": [evals, "scores.study"]})),
            Some(60.0)
        );
        assert_eq!(
            number(json!({"max_of": [evals, "scores.study"]})),
            Some(90.0)
        );
        assert_eq!(number(json!({"sum": [evals, "scores.study"]})), Some(300.0));
        assert_eq!(
            eval(
                json!({"share": [evals, "satisfied", "==", true]}),
                context.clone()
            ),
            json!(0.75)
        );
        assert_eq!(
            eval(
                json!({"share": [evals, "scores.study", ">=", 80]}),
                context.clone()
            ),
            json!(0.5)
        );
        assert_eq!(
            eval(json!({"mean": [{"var": "data.none"}, "x"]}), context),
            Value::Null
        );
    }

    #[test]
    fn children_operators() {
        let context = json!({"children": {"member": {"total": 4, "stages": {"commended": 3, "rectification": 1}}}});
        assert_eq!(
            eval(json!({"children_total": ["member"]}), context.clone()),
            json!(4)
        );
        assert_eq!(
            eval(
                json!({"children_in": ["member", ["commended"]]}),
                context.clone()
            ),
            json!(3)
        );
        assert_eq!(
            eval(
                json!({"children_share": ["member", "commended"]}),
                context.clone()
            ),
            json!(0.75)
        );
        assert_eq!(
            eval(
                json!({"children_all_in": ["member", ["commended", "rectification"]]}),
                context.clone()
            ),
            json!(true)
        );
        assert_eq!(
            eval(json!({"children_all_in": ["org", ["done"]]}), context),
            json!(false)
        );
    }

    #[test]
    fn a_false_guard_names_the_failing_conjunct() {
        let guard = json!({"and": [
            {">=": [{"count": [{"var": "data.e"}]}, 2]},
            {">=": [{"mean": [{"var": "data.e"}, "s"]}, 80]}
        ]});
        let expr = Expr::compile(&guard).expect("compiles");
        let context = json!({"data": {"e": {"a": {"s": 70}, "b": {"s": 80}}}});
        let failed = expr
            .test(&context)
            .expect("evaluates")
            .expect_err("is false");
        assert_eq!(
            failed,
            json!({">=": [{"mean": [{"var": "data.e"}, "s"]}, 80]})
        );
        let context = json!({"data": {"e": {"a": {"s": 90}, "b": {"s": 80}}}});
        assert_eq!(expr.test(&context).expect("evaluates"), Ok(()));
    }

    #[test]
    fn unknown_operators_are_found_by_the_walk() {
        let found = reads(&json!({"and": [{"avrage": [1, 2]}, {"==": [1, 1]}]}));
        assert_eq!(
            found.unknown_operators,
            [("avrage".to_owned(), "/and/0".to_owned())]
        );
        assert!(Expr::compile(&json!({"avrage": [1, 2]})).is_err());
    }

    #[test]
    fn reads_lists_outer_scope_variables_only() {
        let expr = json!({"and": [
            {"==": [{"var": "payload.verdict"}, "pass"]},
            {"all": [{"var": "data.problems"}, {"var": "closed"}]},
            {"missing": ["data.plan"]},
            {"children_all_in": ["member", ["commended", "closed"]]}
        ]});
        let reads = reads(&expr);
        let paths: Vec<&str> = reads.vars.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["payload.verdict", "data.problems", "data.plan"]);
        assert_eq!(reads.vars[0].pointer, "/and/0/==/0/var");
        assert_eq!(reads.children.len(), 1);
        assert_eq!(reads.children[0].workflow, "member");
        assert_eq!(reads.children[0].stages, ["commended", "closed"]);
    }
}
