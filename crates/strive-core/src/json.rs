//! The one strict JSON reader for text that people give strive: workflow
//! definitions, payloads and initial data (issue #17). It reads exactly what
//! serde_json reads, and refuses what serde_json silently accepts: an object
//! that names a key twice (serde_json keeps the last one), and a byte-order
//! mark in front of the document.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::source::escape_token;

/// Why a text is not strict JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonError {
    /// The text begins with a byte-order mark (U+FEFF).
    ByteOrderMark,
    /// An object names the same key twice.
    DuplicateKey {
        /// The JSON pointer (RFC 6901) of the repeated key.
        pointer: String,
        /// The line of the second occurrence, from 1.
        line: usize,
        /// Its column, from 1.
        column: usize,
    },
    /// The text is not JSON.
    Syntax {
        /// What serde_json said, without its position.
        message: String,
        /// The line, from 1 (0 when unknown).
        line: usize,
        /// The column, from 1.
        column: usize,
    },
}

impl JsonError {
    /// The line and column of the error, when known.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            JsonError::ByteOrderMark => Some((1, 1)),
            JsonError::DuplicateKey { line, column, .. }
            | JsonError::Syntax { line, column, .. } => (*line > 0).then_some((*line, *column)),
        }
    }

    /// The JSON pointer the error is about; empty for the whole text.
    pub fn pointer(&self) -> &str {
        match self {
            JsonError::DuplicateKey { pointer, .. } => pointer,
            _ => "",
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::ByteOrderMark => f.write_str(
                "the text starts with a byte-order mark (U+FEFF); save it as UTF-8 without a BOM",
            ),
            JsonError::DuplicateKey { pointer, .. } => write!(
                f,
                "the key at {pointer} is given twice in its object; keep one (JSON readers disagree on which wins)"
            ),
            JsonError::Syntax { message, .. } => write!(f, "invalid JSON: {message}"),
        }
    }
}

impl std::error::Error for JsonError {}

/// Parses `text` as JSON, refusing a byte-order mark and repeated keys.
///
/// ```
/// let error = strive_core::json::from_str(r#"{"a": 1, "b": {"c": 2, "c": 3}}"#).unwrap_err();
/// assert_eq!(error.pointer(), "/b/c");
/// ```
pub fn from_str(text: &str) -> Result<Value, JsonError> {
    if text.starts_with('\u{feff}') {
        return Err(JsonError::ByteOrderMark);
    }
    let duplicate = RefCell::new(None);
    let mut reader = serde_json::Deserializer::from_str(text);
    let seed = Strict {
        pointer: String::new(),
        duplicate: &duplicate,
    };
    let result = seed.deserialize(&mut reader).and_then(|value| {
        reader.end()?;
        Ok(value)
    });
    match result {
        Ok(value) => Ok(value),
        Err(error) => Err(match duplicate.into_inner() {
            Some(pointer) => JsonError::DuplicateKey {
                pointer,
                line: error.line(),
                column: error.column(),
            },
            None => JsonError::Syntax {
                message: without_position(&error),
                line: error.line(),
                column: error.column(),
            },
        }),
    }
}

/// serde_json appends " at line L column C"; the error carries them apart.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

/// Builds a [`Value`] like serde_json's own, knowing where it is so that a
/// repeated key can be named by its pointer.
struct Strict<'a> {
    pointer: String,
    duplicate: &'a RefCell<Option<String>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let seed = Strict {
                pointer: format!("{}/{}", self.pointer, items.len()),
                duplicate: self.duplicate,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let pointer = format!("{}/{}", self.pointer, escape_token(&key));
            if !seen.insert(key.clone()) {
                *self.duplicate.borrow_mut() = Some(pointer.clone());
                return Err(de::Error::custom(format!("duplicate key at {pointer}")));
            }
            let seed = Strict {
                pointer,
                duplicate: self.duplicate,
            };
            let value = map.next_value_seed(seed)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_serde_json_reads() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c/d": "~"}"#;
        let expected: Value = serde_json::from_str(text).expect("json");
        assert_eq!(from_str(text), Ok(expected));
    }

    #[test]
    fn a_repeated_key_is_named_by_its_pointer_and_line() {
        for (text, pointer, line) in [
            ("{\"a\": 1,\n \"a\": 2}", "/a", 2),
            ("[{}, {\"x\": {\"y~/\": 1, \"y~/\": 1}}]", "/1/x/y~0~1", 1),
        ] {
            match from_str(text) {
                Err(JsonError::DuplicateKey {
                    pointer: found,
                    line: at,
                    ..
                }) => assert_eq!((found.as_str(), at), (pointer, line), "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_byte_order_mark_is_named() {
        assert_eq!(from_str("\u{feff}{}"), Err(JsonError::ByteOrderMark));
        assert!(
            JsonError::ByteOrderMark
                .to_string()
                .contains("byte-order mark")
        );
    }

    #[test]
    fn syntax_errors_and_trailing_text_are_refused() {
        for text in ["{", "{} {}", "[1,]", ""] {
            assert!(
                matches!(from_str(text), Err(JsonError::Syntax { .. })),
                "{text}"
            );
        }
        assert_eq!(from_str(" 1 "), Ok(json!(1)));
    }
}
