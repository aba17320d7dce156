//! Seeded values for the fields a definition declares: the initial data of
//! a start and the payload of a fire, generated from the definition's own
//! JSON so that any workflow can be driven (the campaign's, in the tests).

use jiff::{SignedDuration, Timestamp};
use serde_json::{Map, Value, json};

/// Generates values for declared fields.
pub(super) struct Values<'a> {
    pub(super) rng: &'a mut fastrand::Rng,
    pub(super) now: Timestamp,
    /// The counter fresh ids are numbered from.
    pub(super) next_id: &'a mut u64,
    /// The keys of the target instance's maps (problem ids, say), which an
    /// `id` field names half the time so that guards on them can pass.
    pub(super) known_keys: Vec<String>,
    /// The fresh ids given to list items (children a spawn will start).
    pub(super) fresh: Vec<String>,
}

impl Values<'_> {
    /// Values for `fields` (a definition's `data` or a transition's
    /// `payload`): every required field, half of the optional ones.
    pub(super) fn fields(&mut self, fields: Option<&Value>, in_item: bool) -> Map<String, Value> {
        let mut out = Map::new();
        for field in fields.and_then(Value::as_array).into_iter().flatten() {
            let Some(id) = field.get("id").and_then(Value::as_str) else {
                continue;
            };
            let required = field.get("required").and_then(Value::as_bool) == Some(true);
            if !required && self.rng.bool() {
                continue;
            }
            out.insert(id.to_owned(), self.value(field, id, in_item));
        }
        out
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        *self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    /// A value of the type `spec` declares; `name` is the field's id.
    fn value(&mut self, spec: &Value, name: &str, in_item: bool) -> Value {
        if let Some(choices) = spec.get("one_of").and_then(Value::as_array)
            && !choices.is_empty()
        {
            return choices[self.rng.usize(..choices.len())].clone();
        }
        let number =
            |key: &str, default: f64| spec.get(key).and_then(Value::as_f64).unwrap_or(default);
        match spec.get("type").and_then(Value::as_str).unwrap_or("any") {
            "string" if name == "id" && in_item => {
                let id = self.fresh_id("x");
                self.fresh.push(id.clone());
                Value::String(id)
            }
            "string" if name == "id" => {
                if !self.known_keys.is_empty() && self.rng.bool() {
                    let keys = &self.known_keys;
                    Value::String(keys[self.rng.usize(..keys.len())].clone())
                } else {
                    Value::String(self.fresh_id("p"))
                }
            }
            "string" => Value::String(format!("{name}-{}", self.rng.u32(..1000))),
            "integer" => {
                let (min, max) = (number("min", 0.0) as i64, number("max", 100.0) as i64);
                json!(self.rng.i64(min..=max.max(min)))
            }
            "number" => json!(self.rng.f64() * number("max", 100.0)),
            "boolean" => json!(self.rng.bool()),
            "timestamp" => {
                let days = self.rng.i64(0..60);
                let at = self
                    .now
                    .checked_add(SignedDuration::from_hours(24 * days))
                    .unwrap_or(self.now);
                Value::String(at.to_string())
            }
            "list" => {
                let most = number("max_items", 3.0).clamp(1.0, 3.0) as usize;
                let items = spec.get("items").cloned().unwrap_or(Value::Null);
                (0..self.rng.usize(1..=most))
                    .map(|_| self.value(&items, "", true))
                    .collect()
            }
            "map" => {
                let values = spec.get("values").cloned().unwrap_or(Value::Null);
                let key = self.fresh_id("k");
                Value::Object(Map::from_iter([(key, self.value(&values, "", in_item))]))
            }
            "object" => Value::Object(self.fields(spec.get("fields"), in_item)),
            _ => Value::Null,
        }
    }
}

/// The keys of every map in `data`, one level down (problem ids, say).
pub(super) fn map_keys(data: &Map<String, Value>) -> Vec<String> {
    data.values()
        .filter_map(Value::as_object)
        .flat_map(|map| map.keys().cloned())
        .collect()
}
