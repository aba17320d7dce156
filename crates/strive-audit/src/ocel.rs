//! OCEL 2.0 (object-centric event log) export, in the standard's JSON
//! format: events with their qualified relations to objects, objects with
//! their attribute values over time and their relations to each other.
//!
//! XES knows one case notion, so an evaluation, which concerns a member,
//! the evaluator and the organisation at once, must be flattened to one of
//! them. OCEL keeps them all. Which objects an event concerns is data, a
//! [`Mapping`]: the object type of each workflow's instances, and per event
//! name the further objects it creates or touches (the evaluator of an
//! evaluation, the comment an `add_comment` writes, the rectification item
//! an `add_problem` raises). Every event also concerns its subject (the
//! instance it was fired on, qualifier `subject`) and that instance's
//! parent (qualifier `parent`).
//!
//! The events stream: each is written as it is given, and only the objects
//! (their attribute changes and relations) are held until
//! [`OcelWriter::finish`] writes them with the type declarations after the
//! events. JSON readers do not depend on the order of an object's keys.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Write};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use strive_core::{Event, EventKind};

/// Qualifier of the relation from an event to the instance it was fired on.
pub const SUBJECT: &str = "subject";
/// Qualifier of the relation from an event to its subject's parent, and of
/// the relation from a child instance to its parent.
pub const PARENT: &str = "parent";

/// Qualifier of the relation from an event to the instance whose event
/// caused it (a parent notified by its child, a child started by a spawn).
pub const CAUSE: &str = "cause";

/// Which objects the events of a log concern: read from JSON (see
/// `docs/audit.md`, "OCEL 2.0").
///
/// ```
/// # fn main() -> Result<(), strive_audit::MappingError> {
/// let mapping = strive_audit::Mapping::from_json(r#"{
///     "object_types": {"member-pledge": "member"},
///     "relations": {"evaluate": [
///         {"qualifier": "evaluator", "object_type": "evaluator", "id": "actor"}
///     ]}
/// }"#)?;
/// assert_eq!(mapping.object_type("member-pledge"), "member");
/// assert_eq!(mapping.object_type("document-approval"), "document-approval");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The object type of each workflow's instances. A workflow not named
    /// here gives its instances its own id as their type.
    #[serde(default)]
    pub object_types: BTreeMap<String, String>,
    /// Per event name, the objects an event of that name concerns besides
    /// its subject and the subject's parent.
    #[serde(default)]
    pub relations: BTreeMap<String, Vec<Relation>>,
}

/// One further object an event concerns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    /// The event-to-object qualifier, such as `evaluator` or `author`.
    pub qualifier: String,
    /// The object's type, such as `evaluator` or `comment`.
    pub object_type: String,
    /// Where the object's id comes from.
    pub id: ObjectId,
    /// Payload fields copied to the object as attributes, at the event's
    /// time.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Attributes the event sets on the object, with fixed values (a
    /// rectification item's `status` becoming `closed`, say).
    #[serde(default)]
    pub set: BTreeMap<String, Value>,
    /// The qualifier of a relation from the object to the event's subject
    /// (a comment is `about` the organisation it was written on).
    #[serde(default)]
    pub about: Option<String>,
}

/// Where a related object's id comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectId {
    /// The actor's id: one object per actor and object type, across the
    /// whole log, as `<object type>:<actor id>` (a member who evaluates a
    /// fellow member is an evaluator object beside their member object).
    Actor,
    /// One new object per event: `<instance>#<seq>`.
    Event,
    /// A payload field, within the subject: `<instance>/<value>` (a
    /// problem's id is only unique within its organisation).
    Payload(String),
}

/// Why a mapping could not be read.
#[derive(Debug)]
#[non_exhaustive]
pub enum MappingError {
    /// The text is not a mapping; the message says where.
    Invalid(serde_json::Error),
    /// A relation has an empty qualifier or object type.
    Empty {
        /// The event name whose relation it is.
        event: String,
    },
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MappingError::Invalid(e) => write!(
                f,
                "not an OCEL mapping ({e}); see docs/audit.md, \"OCEL 2.0\", for its fields"
            ),
            MappingError::Empty { event } => write!(
                f,
                "a relation of event `{event}` has an empty qualifier or object type; \
                 give both"
            ),
        }
    }
}

impl std::error::Error for MappingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MappingError::Invalid(e) => Some(e),
            MappingError::Empty { .. } => None,
        }
    }
}

impl Mapping {
    /// Reads a mapping from its JSON text.
    pub fn from_json(text: &str) -> Result<Mapping, MappingError> {
        let mapping: Mapping = serde_json::from_str(text).map_err(MappingError::Invalid)?;
        for (event, relations) in &mapping.relations {
            if relations
                .iter()
                .any(|r| r.qualifier.is_empty() || r.object_type.is_empty())
            {
                return Err(MappingError::Empty {
                    event: event.clone(),
                });
            }
        }
        Ok(mapping)
    }

    /// The object type of `workflow`'s instances.
    pub fn object_type<'a>(&'a self, workflow: &'a str) -> &'a str {
        self.object_types
            .get(workflow)
            .map(String::as_str)
            .unwrap_or(workflow)
    }
}

/// An OCEL attribute type, as the standard names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Float,
    Boolean,
}

impl Kind {
    fn of(value: &Value) -> Kind {
        match value {
            Value::Bool(_) => Kind::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => Kind::Integer,
            Value::Number(_) => Kind::Float,
            _ => Kind::String,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Integer => "integer",
            Kind::Float => "float",
            Kind::Boolean => "boolean",
        }
    }

    /// The kind that holds values of both: an integer widens to a float,
    /// anything else mixed is a string.
    fn join(self, other: Kind) -> Kind {
        match (self, other) {
            (a, b) if a == b => a,
            (Kind::Integer, Kind::Float) | (Kind::Float, Kind::Integer) => Kind::Float,
            _ => Kind::String,
        }
    }
}

/// The attributes a type declares, with the kind each has taken.
type Declared = BTreeMap<String, Kind>;

fn declare(declared: &mut Declared, name: &str, value: &Value) {
    let kind = Kind::of(value);
    declared
        .entry(name.to_owned())
        .and_modify(|k| *k = k.join(kind))
        .or_insert(kind);
}

/// An attribute value as OCEL holds it: a scalar; anything else as its
/// compact JSON text.
fn scalar(value: &Value) -> Value {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => value.clone(),
        other => Value::String(other.to_string()),
    }
}

/// One object, as gathered from the events that concern it.
#[derive(Debug, Default)]
struct Object {
    kind: String,
    /// `(name, time, value)` in the order the events gave them.
    attributes: Vec<(String, String, Value)>,
    relationships: BTreeSet<(String, String)>,
}

/// What an OCEL export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OcelSummary {
    /// Events written.
    pub events: u64,
    /// Objects written.
    pub objects: u64,
}

/// Writes an OCEL 2.0 JSON log as events are given: see the module
/// documentation.
pub struct OcelWriter<W: Write> {
    out: W,
    mapping: Mapping,
    events: u64,
    event_types: BTreeMap<String, Declared>,
    object_types: BTreeMap<String, Declared>,
    objects: BTreeMap<String, Object>,
}

impl<W: Write> fmt::Debug for OcelWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OcelWriter")
            .field("events", &self.events)
            .field("objects", &self.objects.len())
            .finish_non_exhaustive()
    }
}

impl<W: Write> OcelWriter<W> {
    /// Starts the log on `out`.
    pub fn new(mut out: W, mapping: Mapping) -> io::Result<OcelWriter<W>> {
        out.write_all(b"{\"events\":[")?;
        Ok(OcelWriter {
            out,
            mapping,
            events: 0,
            event_types: BTreeMap::new(),
            object_types: BTreeMap::new(),
            objects: BTreeMap::new(),
        })
    }

    /// Writes one instance event (start, fire or lifecycle; others are skipped and
    /// return `false`). `hash` is its stored hash; `parent` is its
    /// instance's parent, if it has one.
    pub fn event(&mut self, hash: &str, event: &Event, parent: Option<&str>) -> io::Result<bool> {
        if !matches!(
            event.kind,
            EventKind::Start | EventKind::Fire | EventKind::Lifecycle
        ) {
            return Ok(false);
        }
        let time = event.at.to_string();
        let mut relationships = vec![(event.instance.clone(), SUBJECT.to_owned())];
        self.subject(event, parent, &time);
        if let Some(parent) = parent {
            relationships.push((parent.to_owned(), PARENT.to_owned()));
        }
        // A notification from a child, or a child started by its parent's
        // event, concerns the instance whose event caused it.
        if let Some(cause) = &event.cause
            && cause.instance != event.instance
            && Some(cause.instance.as_str()) != parent
        {
            relationships.push((cause.instance.clone(), CAUSE.to_owned()));
        }
        // The mapping is taken out while its relations are read, so that
        // the objects they name can be recorded without cloning it.
        let mapping = std::mem::take(&mut self.mapping);
        for relation in mapping.relations.get(&event.event).into_iter().flatten() {
            if let Some(id) = self.related(event, relation, &time) {
                relationships.push((id, relation.qualifier.clone()));
            }
        }
        self.mapping = mapping;
        let attributes = self.event_attributes(hash, event);
        let value = json!({
            "id": format!("{}#{}", event.instance, event.seq),
            "type": event.event,
            "time": time,
            "attributes": attributes
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect::<Vec<_>>(),
            "relationships": relationships
                .iter()
                .map(|(id, qualifier)| json!({"objectId": id, "qualifier": qualifier}))
                .collect::<Vec<_>>(),
        });
        if self.events > 0 {
            self.out.write_all(b",")?;
        }
        self.out.write_all(b"\n")?;
        serde_json::to_writer(&mut self.out, &value)?;
        self.events += 1;
        Ok(true)
    }

    /// The event's own attributes: who, in which roles, the workflow
    /// version and hash, and each top-level payload field.
    fn event_attributes(&mut self, hash: &str, event: &Event) -> Vec<(String, Value)> {
        let mut attributes = vec![
            ("actor".to_owned(), Value::from(event.actor.id.as_str())),
            ("roles".to_owned(), Value::from(event.actor.roles.join(";"))),
            ("stage".to_owned(), Value::from(event.to.as_str())),
            ("workflow".to_owned(), Value::from(event.workflow.as_str())),
            ("version".to_owned(), Value::from(event.version)),
            ("hash".to_owned(), Value::from(hash)),
        ];
        let payload = match (&event.kind, &event.payload) {
            // A start's payload is `{"data": ..., "parent": ...}`: the data
            // become the object's attributes, not the event's.
            (EventKind::Start, _) => None,
            (_, Value::Object(fields)) => Some(fields),
            _ => None,
        };
        for (name, value) in payload.into_iter().flatten() {
            if !value.is_null() {
                attributes.push((format!("payload.{name}"), scalar(value)));
            }
        }
        let declared = self.event_types.entry(event.event.clone()).or_default();
        for (name, value) in &attributes {
            declare(declared, name, value);
        }
        attributes
    }

    /// Records on the subject what the event changed: its stage, and each
    /// variable set to a scalar (a start's initial data, an effect's `set`).
    fn subject(&mut self, event: &Event, parent: Option<&str>, time: &str) {
        let kind = self.mapping.object_type(&event.workflow).to_owned();
        let mut changes: Vec<(String, Value)> = Vec::new();
        if event.from.as_deref() != Some(event.to.as_str()) {
            changes.push(("stage".to_owned(), Value::from(event.to.as_str())));
        }
        if event.kind == EventKind::Start
            && let Some(Value::Object(data)) = event.payload.get("data")
        {
            changes.extend(scalars(data));
        }
        // A lifecycle event changes the object's status (running,
        // suspended, cancelled, terminated).
        if event.kind == EventKind::Lifecycle
            && let Ok(op) = event.event.parse::<strive_core::Operation>()
        {
            changes.push(("status".to_owned(), Value::from(op.status_after().as_str())));
        }
        for effect in &event.effects {
            // Only `set` says the new value; an `increment` records the
            // amount added, which is not the attribute's value.
            if let ("set", Some(value)) = (effect.op.as_str(), &effect.value)
                && !value.is_object()
                && !value.is_array()
            {
                changes.push((effect.var.clone(), value.clone()));
            }
        }
        let object = self.object(&event.instance, &kind);
        if let Some(parent) = parent {
            object
                .relationships
                .insert((parent.to_owned(), PARENT.to_owned()));
        }
        for (name, value) in changes {
            self.change(&event.instance, &kind, name, time, value);
        }
    }

    /// Records the object a relation names, and returns its id (none when
    /// the payload field it reads is missing).
    fn related(&mut self, event: &Event, relation: &Relation, time: &str) -> Option<String> {
        let id = match &relation.id {
            ObjectId::Actor => format!("{}:{}", relation.object_type, event.actor.id),
            ObjectId::Event => format!("{}#{}", event.instance, event.seq),
            ObjectId::Payload(field) => {
                let value = event.payload.get(field)?;
                let text = value.as_str().map(str::to_owned)?;
                format!("{}/{}", event.instance, text)
            }
        };
        let object = self.object(&id, &relation.object_type);
        if let Some(about) = &relation.about {
            object
                .relationships
                .insert((event.instance.clone(), about.clone()));
        }
        let mut changes: Vec<(String, Value)> = relation
            .attributes
            .iter()
            .filter_map(|field| Some((field.clone(), scalar(event.payload.get(field)?))))
            .collect();
        changes.extend(relation.set.iter().map(|(k, v)| (k.clone(), scalar(v))));
        for (name, value) in changes {
            self.change(&id, &relation.object_type, name, time, value);
        }
        Some(id)
    }

    fn object(&mut self, id: &str, kind: &str) -> &mut Object {
        self.object_types.entry(kind.to_owned()).or_default();
        self.objects.entry(id.to_owned()).or_insert_with(|| Object {
            kind: kind.to_owned(),
            ..Object::default()
        })
    }

    fn change(&mut self, id: &str, kind: &str, name: String, time: &str, value: Value) {
        if value.is_null() {
            return;
        }
        let declared = self.object_types.entry(kind.to_owned()).or_default();
        declare(declared, &name, &value);
        let object = self.object(id, kind);
        object.attributes.push((name, time.to_owned(), value));
    }

    /// Writes the objects and the type declarations, flushes, and returns
    /// the output and what was written.
    pub fn finish(mut self) -> io::Result<(W, OcelSummary)> {
        self.out.write_all(b"\n],\"objects\":[")?;
        for (i, (id, object)) in self.objects.iter().enumerate() {
            if i > 0 {
                self.out.write_all(b",")?;
            }
            self.out.write_all(b"\n")?;
            let value = json!({
                "id": id,
                "type": object.kind,
                "attributes": object
                    .attributes
                    .iter()
                    .map(|(name, time, value)| json!({"name": name, "time": time, "value": value}))
                    .collect::<Vec<_>>(),
                "relationships": object
                    .relationships
                    .iter()
                    .map(|(id, qualifier)| json!({"objectId": id, "qualifier": qualifier}))
                    .collect::<Vec<_>>(),
            });
            serde_json::to_writer(&mut self.out, &value)?;
        }
        self.out.write_all(b"\n],\"objectTypes\":")?;
        serde_json::to_writer(&mut self.out, &types(&self.object_types))?;
        self.out.write_all(b",\"eventTypes\":")?;
        serde_json::to_writer(&mut self.out, &types(&self.event_types))?;
        self.out.write_all(b"}\n")?;
        self.out.flush()?;
        let summary = OcelSummary {
            events: self.events,
            objects: self.objects.len() as u64,
        };
        Ok((self.out, summary))
    }
}

/// A start's initial data, as attribute changes: scalars only.
fn scalars(data: &Map<String, Value>) -> impl Iterator<Item = (String, Value)> + '_ {
    data.iter()
        .filter(|(_, v)| !v.is_null() && !v.is_object() && !v.is_array())
        .map(|(k, v)| (k.clone(), v.clone()))
}

fn types(declared: &BTreeMap<String, Declared>) -> Value {
    Value::Array(
        declared
            .iter()
            .map(|(name, attributes)| {
                json!({
                    "name": name,
                    "attributes": attributes
                        .iter()
                        .map(|(a, kind)| json!({"name": a, "type": kind.name()}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_widen_as_values_mix() {
        assert_eq!(Kind::Integer.join(Kind::Float), Kind::Float);
        assert_eq!(Kind::Integer.join(Kind::Boolean), Kind::String);
        assert_eq!(Kind::of(&json!(1.5)), Kind::Float);
        assert_eq!(Kind::of(&json!([1])), Kind::String);
    }

    #[test]
    fn a_mapping_with_an_unknown_field_or_an_empty_qualifier_is_refused() {
        let unknown = Mapping::from_json(r#"{"object_type": {}}"#).expect_err("unknown field");
        assert!(unknown.to_string().contains("object_type"), "{unknown}");
        let empty = Mapping::from_json(
            r#"{"relations": {"evaluate": [{"qualifier": "", "object_type": "x", "id": "actor"}]}}"#,
        )
        .expect_err("empty qualifier");
        assert!(empty.to_string().contains("evaluate"), "{empty}");
    }

    #[test]
    fn non_scalar_values_become_their_json_text() {
        assert_eq!(scalar(&json!({"a": 1})), json!("{\"a\":1}"));
        assert_eq!(scalar(&json!("x")), json!("x"));
    }
}
