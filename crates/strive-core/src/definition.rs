//! The workflow language: the serde types of one JSON workflow document.
//!
//! These types are the single source of truth for the format. The JSON Schema
//! (`strive schema`, `docs/workflow.schema.json`) is generated from them with
//! `schemars`, so the schema and the parser cannot drift apart.
//!
//! Every struct denies unknown fields: a misspelt key is a structure error with
//! its JSON path, never silently ignored.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The role that fires deadline events. Deadlines are fired by the engine, not
/// by a person, so the role is reserved for that purpose.
pub const SYSTEM_ROLE: &str = "system";

/// The `from` wildcard meaning "any non-terminal stage".
pub const ANY_STAGE: &str = "*";

/// One workflow: its stages, the transitions between them, the roles that may
/// fire them and the data that instances carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "strive workflow definition")]
pub struct Definition {
    /// The JSON Schema this file follows, for editors. Ignored by strive.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The workflow's id, used to deploy it and to start instances of it.
    pub id: String,
    /// A short title, plain or per language.
    pub title: Label,
    /// A longer description, plain or per language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Label>,
    /// The roles that may act in this workflow, declared once.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// The typed variables every instance carries, with their defaults.
    #[serde(default)]
    pub data: Vec<Field>,
    /// The stages an instance moves through.
    pub stages: Vec<Stage>,
    /// The transitions between stages, and the events that only record data.
    #[serde(default)]
    pub transitions: Vec<Transition>,
    /// Who may suspend, resume, cancel and terminate instances, and whether
    /// their children follow. Absent: nobody may (docs/evolution.md,
    /// "Lifecycle").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
}

/// The lifecycle section: the roles that may use each operation on an
/// instance, and what its children do then.
///
/// `cancel` is an orderly end an authorised role asks for: children follow
/// as `children` says. `terminate` is a forced end: it always reaches every
/// descendant, whatever `children` says.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// The roles that may suspend a running instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suspend: Vec<String>,
    /// The roles that may resume a suspended instance.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resume: Vec<String>,
    /// The roles that may cancel an instance (an orderly end).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cancel: Vec<String>,
    /// The roles that may terminate an instance (a forced end that always
    /// reaches every descendant).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terminate: Vec<String>,
    /// Whether children follow a suspend, resume or cancel of their parent
    /// (`follow`, the default) or keep running (`keep`).
    #[serde(default)]
    pub children: ChildPolicy,
}

/// What an instance's children do when it is suspended, resumed or
/// cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChildPolicy {
    /// The children (and theirs, as their own definitions say) get the same
    /// operation, in the same write.
    #[default]
    Follow,
    /// The children keep running; a cancelled parent is no longer notified.
    Keep,
}

/// A human-readable label: a plain string, or a map from language code
/// (`zh`, `en`, ...) to text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Label {
    /// One text for every language.
    Plain(String),
    /// A text per language code.
    Localized(BTreeMap<String, String>),
}

impl Label {
    /// The text for `lang`, falling back to English, then to any language.
    pub fn get(&self, lang: &str) -> &str {
        match self {
            Label::Plain(text) => text,
            Label::Localized(map) => map
                .get(lang)
                .or_else(|| map.get("en"))
                .or_else(|| map.values().next())
                .map(String::as_str)
                .unwrap_or(""),
        }
    }
}

/// A role that actors may hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// The role's id, as actors present it.
    pub id: String,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// What the role is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Label>,
}

/// The type of a value in instance data or in a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// A UTF-8 string.
    String,
    /// A whole number (64-bit signed).
    Integer,
    /// Any JSON number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// An RFC 3339 timestamp string, such as `2026-05-31T23:59:59+08:00`.
    Timestamp,
    /// A JSON array whose elements follow `items`.
    List,
    /// A JSON object with arbitrary keys whose values follow `values`.
    Map,
    /// A JSON object with the declared `fields`.
    Object,
    /// Any JSON value; nothing is checked.
    Any,
}

impl ValueType {
    /// The name used in the language.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Integer => "integer",
            ValueType::Number => "number",
            ValueType::Boolean => "boolean",
            ValueType::Timestamp => "timestamp",
            ValueType::List => "list",
            ValueType::Map => "map",
            ValueType::Object => "object",
            ValueType::Any => "any",
        }
    }
}

/// A named, typed value: an instance variable, a payload field, or a field of
/// an `object` type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The field's name, as guards and effects read it (`data.<id>`,
    /// `payload.<id>`).
    pub id: String,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// What the field holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Label>,
    /// For payload and object fields: the field must be present (and not
    /// null). Instance variables always exist, with their default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// For instance variables: the initial value. Without one, the type's
    /// zero value is used (empty string, 0, false, empty list or map, null for
    /// timestamps and objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// The value's type and bounds.
    #[serde(flatten)]
    pub spec: TypeSpec,
}

/// A type with its bounds. Only the bounds that fit the type may be given.
///
/// It is always flattened into a struct that denies unknown fields ([`Field`]
/// or [`ElementType`]), which is where misspelt keys are caught: serde checks
/// the leftovers of a flattened struct in the outer one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TypeSpec {
    /// The value's type.
    #[serde(rename = "type")]
    pub ty: ValueType,
    /// For numbers: the smallest allowed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// For numbers: the largest allowed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// For strings: the fewest characters allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    /// For strings: the most characters allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    /// For lists: the most elements allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
    /// For strings and numbers: the only values allowed.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "enum")]
    pub one_of: Option<Vec<Value>>,
    /// For lists: the type of each element.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<ElementType>>,
    /// For maps: the type of each value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Box<ElementType>>,
    /// For objects: the declared fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<Field>>,
}

/// The type of a list element or a map value: a [`TypeSpec`] without a name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ElementType {
    /// The element's type and bounds.
    #[serde(flatten)]
    pub spec: TypeSpec,
}

/// Where an instance is in its workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The stage's id.
    pub id: String,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// What happens in this stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Label>,
    /// `initial` (exactly one), `normal`, or `terminal` (instances there are
    /// finished).
    #[serde(default)]
    pub kind: StageKind,
    /// When the stage is overdue, and the event the engine fires then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Deadline>,
}

/// The kind of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// Where every instance starts. Exactly one stage is initial.
    Initial,
    /// An ordinary stage.
    #[default]
    Normal,
    /// A final stage: an instance here is finished and accepts no event.
    Terminal,
}

/// A stage deadline. Exactly one of `at`, `after` and `at_data` is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deadline {
    /// An absolute RFC 3339 time, such as `2026-05-31T23:59:59+08:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// An ISO 8601 duration after the instance enters the stage, such as
    /// `P14D` or `PT48H`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// The name of a `timestamp` instance variable holding the due time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_data: Option<String>,
    /// The event the engine fires, as the `system` role, when the deadline
    /// passes while the instance is still in the stage.
    pub event: String,
}

/// A transition: an event that, fired by an allowed role in a `from` stage
/// with a valid payload and a true guard, applies its effects and moves the
/// instance to `to` (or keeps it where it is when `to` is absent).
///
/// When several transitions share an event, they are tried in document order
/// and the first whose stage, role and guard match wins, like the rules of a
/// Step Functions `Choice` state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// An optional id naming this transition in diagnostics and audit
    /// records; defaults to the event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The event that fires this transition.
    pub event: String,
    /// A human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    /// What the transition means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Label>,
    /// The stage or stages it leaves from; `"*"` is any non-terminal stage.
    pub from: StageSet,
    /// The stage it goes to. Absent: the event only records data and the
    /// instance stays in its stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The roles allowed to fire it.
    pub roles: Vec<String>,
    /// The fields the event's payload may carry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub payload: Vec<Field>,
    /// A JSON Logic expression that must be true for the transition to fire.
    /// It reads `data`, `payload`, `actor`, `stage`, `now` and `children`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub guard: Option<Value>,
    /// What the transition does to the instance data, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub effects: Vec<Effect>,
    /// Child instances of another workflow to start when this fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn: Option<Spawn>,
    /// An event to fire on the parent instance, in the same atomic write, when
    /// this transition fires. The parent's event is recorded in its history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_parent: Option<String>,
}

impl Transition {
    /// The transition's id: its `id`, or its event when it has none.
    pub fn name(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.event)
    }
}

/// One stage, several stages, or `"*"` (any non-terminal stage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StageSet {
    /// One stage id, or `"*"`.
    One(String),
    /// Several stage ids.
    Many(Vec<String>),
}

impl StageSet {
    /// The stage ids as written (`"*"` is returned as is).
    pub fn ids(&self) -> &[String] {
        match self {
            StageSet::One(id) => std::slice::from_ref(id),
            StageSet::Many(ids) => ids,
        }
    }

    /// Whether this set is the `"*"` wildcard.
    pub fn is_any(&self) -> bool {
        self.ids().iter().any(|id| id == ANY_STAGE)
    }
}

/// A change to instance data. Values are JSON Logic expressions evaluated
/// against the same context as the guard, so `{"var": "payload.plan"}` copies
/// a payload field and a plain string or number is a literal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Effect {
    /// Sets a variable to a value.
    Set {
        /// The instance variable to change.
        var: String,
        /// The new value (a JSON Logic expression).
        #[schemars(with = "Value")]
        value: Value,
    },
    /// Resets a variable to its default.
    Reset {
        /// The instance variable to reset.
        var: String,
    },
    /// Appends a value to a list variable.
    Append {
        /// The list variable.
        var: String,
        /// The element to append (a JSON Logic expression).
        #[schemars(with = "Value")]
        value: Value,
    },
    /// Adds to a number variable.
    Increment {
        /// The number variable.
        var: String,
        /// How much to add (a JSON Logic expression); 1 when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schemars(with = "Option<Value>")]
        by: Option<Value>,
    },
    /// Puts an entry into a map variable under a key, replacing any earlier
    /// entry under the same key. Keyed by `{"var": "actor.id"}`, this makes
    /// each actor count once: a resubmission replaces the earlier one.
    Put {
        /// The map variable.
        var: String,
        /// The entry's key (a JSON Logic expression yielding a string).
        #[schemars(with = "Value")]
        key: Value,
        /// The entry's value (a JSON Logic expression).
        #[schemars(with = "Value")]
        value: Value,
    },
    /// Removes an entry from a map variable.
    Remove {
        /// The map variable.
        var: String,
        /// The key to remove (a JSON Logic expression yielding a string).
        #[schemars(with = "Value")]
        key: Value,
    },
}

impl Effect {
    /// The variable this effect changes.
    pub fn var(&self) -> &str {
        match self {
            Effect::Set { var, .. }
            | Effect::Reset { var }
            | Effect::Append { var, .. }
            | Effect::Increment { var, .. }
            | Effect::Put { var, .. }
            | Effect::Remove { var, .. } => var,
        }
    }

    /// The JSON Logic expressions this effect evaluates, with the key each
    /// sits under (for JSON pointers in diagnostics).
    pub fn expressions(&self) -> Vec<(&'static str, &Value)> {
        match self {
            Effect::Set { value, .. } | Effect::Append { value, .. } => vec![("value", value)],
            Effect::Reset { .. } => Vec::new(),
            Effect::Increment { by, .. } => by.iter().map(|by| ("by", by)).collect(),
            Effect::Put { key, value, .. } => vec![("key", key), ("value", value)],
            Effect::Remove { key, .. } => vec![("key", key)],
        }
    }
}

/// Child instances to start when a transition fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spawn {
    /// The child workflow's id.
    pub workflow: String,
    /// A JSON Logic expression yielding a list. Each element is either a
    /// child instance id (a string) or an object `{"id": ..., "data": {...}}`
    /// giving the child's id and initial data.
    #[schemars(with = "Value")]
    pub children: Value,
}
