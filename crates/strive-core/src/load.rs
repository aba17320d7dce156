//! Loading a definition from JSON text: limits first, then syntax, then
//! structure, each failure a diagnostic with its file, line and JSON pointer.

use serde_json::Value;

use crate::definition::Definition;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::{self, SourceMap, escape_token};

/// The largest definition accepted, in bytes.
pub const MAX_DEFINITION_BYTES: usize = 1 << 20;
/// The deepest nesting of arrays and objects accepted in a definition.
pub const MAX_DEPTH: usize = 64;
/// The most stages, and separately the most transitions, in a definition.
pub const MAX_ITEMS: usize = 10_000;
/// The longest id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 128;

/// A definition parsed from text, with the map from JSON pointers to lines
/// that the validator uses to place its diagnostics.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// The definition.
    pub definition: Definition,
    /// The definition as a JSON value, exactly as written.
    pub value: Value,
    /// Where each JSON pointer stands in the text.
    pub source: SourceMap,
    /// The file name, when the text came from a file.
    pub file: Option<String>,
}

impl Parsed {
    /// A diagnostic at `pointer`, placed on its line in this file.
    pub fn diagnostic(&self, code: Code, pointer: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(code, pointer, message)
            .at(self.source.position(pointer))
            .in_file(self.file.as_deref())
    }
}

/// Parses `text` as a workflow definition. `file` names it in diagnostics.
///
/// Checks, in order: the size limit, the nesting limit, JSON syntax, and the
/// structure of the language. The first that fails ends loading, since later
/// checks cannot run on text that failed an earlier one. Semantic checks are
/// [`crate::validate`]'s job.
pub fn parse(file: Option<&str>, text: &str) -> Result<Parsed, Vec<Diagnostic>> {
    let fail = |diagnostic: Diagnostic| Err(vec![diagnostic.in_file(file)]);

    if text.len() > MAX_DEFINITION_BYTES {
        return fail(Diagnostic::new(
            Code::FileTooLarge,
            "",
            format!(
                "the definition is {} bytes; the limit is {MAX_DEFINITION_BYTES} (1 MiB). \
                 Split it into several workflows linked by `spawn`",
                text.len()
            ),
        ));
    }

    let (depth, over) = source::max_depth(text, MAX_DEPTH);
    if depth > MAX_DEPTH {
        return fail(
            Diagnostic::new(
                Code::TooDeep,
                "",
                format!(
                    "arrays and objects are nested {depth} deep; the limit is {MAX_DEPTH}. \
                     Simplify the guard or type that nests this deep"
                ),
            )
            .at(over),
        );
    }

    let value: Value = match crate::json::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            let code = match error {
                crate::json::JsonError::DuplicateKey { .. } => Code::DuplicateKey,
                _ => Code::Syntax,
            };
            let position = error
                .position()
                .map(|(line, column)| source::Position { line, column });
            return fail(Diagnostic::new(code, error.pointer(), error.to_string()).at(position));
        }
    };

    let source = SourceMap::new(text);
    let definition: Definition = match serde_path_to_error::deserialize(&value) {
        Ok(definition) => definition,
        Err(error) => {
            let pointer = pointer_of(error.path());
            let inner = error.into_inner();
            let message = structure_message(&inner.to_string());
            let position = if message.starts_with("unknown field") {
                source.key_position(&pointer)
            } else {
                source.position(&pointer)
            };
            return fail(Diagnostic::new(Code::Structure, pointer, message).at(position));
        }
    };

    Ok(Parsed {
        definition,
        value,
        source,
        file: file.map(str::to_owned),
    })
}

/// Rewords serde's messages where they would puzzle an admin.
fn structure_message(message: &str) -> String {
    let message = match message.find(" at line ") {
        Some(cut) => &message[..cut],
        None => message,
    };
    if message.starts_with("data did not match any variant of untagged enum Label") {
        return "a label must be a string or an object of language codes to strings, \
                such as {\"zh\": \"动员部署\", \"en\": \"Mobilisation\"}"
            .to_owned();
    }
    if message.starts_with("data did not match any variant of untagged enum StageSet") {
        return "`from` must be a stage id, \"*\", or a list of stage ids".to_owned();
    }
    message.to_owned()
}

/// Turns serde_path_to_error's path into a JSON pointer.
fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                pointer.push('/');
                pointer.push_str(&escape_token(key));
            }
            Segment::Enum { .. } | Segment::Unknown => {}
        }
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(result: Result<Parsed, Vec<Diagnostic>>) -> Vec<(Code, String, Option<usize>)> {
        match result {
            Ok(_) => Vec::new(),
            Err(diagnostics) => diagnostics
                .into_iter()
                .map(|d| (d.code, d.pointer, d.line))
                .collect(),
        }
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let diagnostics = parse(Some("a.json"), "{\n  \"id\": \"x\",\n  oops\n}").err();
        let Some(diagnostics) = diagnostics else {
            panic!("expected a syntax error")
        };
        assert_eq!(diagnostics[0].code, Code::Syntax);
        assert_eq!(diagnostics[0].line, Some(3));
        assert_eq!(diagnostics[0].file.as_deref(), Some("a.json"));
    }

    #[test]
    fn structure_error_has_pointer_and_line() {
        let text = r#"{
  "id": "x",
  "title": "t",
  "stages": [
    {"id": "a", "kind": "initial"},
    {"id": "b", "kind": "finale"}
  ]
}"#;
        assert_eq!(
            codes(parse(None, text)),
            vec![(Code::Structure, "/stages/1/kind".to_owned(), Some(6))]
        );
    }

    #[test]
    fn unknown_field_points_at_the_key() {
        let text =
            "{\n  \"id\": \"x\",\n  \"title\": \"t\",\n  \"stages\": [],\n  \"stagse\": []\n}";
        let found = codes(parse(None, text));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, Code::Structure);
        assert_eq!(found[0].2, Some(5));
    }

    #[test]
    fn deep_nesting_is_a_limit_not_a_crash() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(codes(parse(None, &text))[0].0, Code::TooDeep);
    }

    #[test]
    fn oversized_file_is_refused_before_parsing() {
        let text = " ".repeat(MAX_DEFINITION_BYTES + 1);
        assert_eq!(codes(parse(None, &text))[0].0, Code::FileTooLarge);
    }
}
