//! Positions in a JSON document: which line and column each JSON pointer
//! starts at, so every diagnostic can say where it is.
//!
//! The scanner is iterative (an explicit stack, no recursion), so a hostile
//! document nested 10,000 deep cannot overflow the stack. It runs only on
//! text that `serde_json` already accepted as JSON, except [`max_depth`],
//! which runs first on any text.

use std::collections::HashMap;

/// A line and column, both counted from 1. Columns count characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters.
    pub column: usize,
}

/// Maps each JSON pointer in a document to where its value starts.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    positions: HashMap<String, Position>,
}

impl SourceMap {
    /// Indexes `text`, which must be valid JSON. Invalid JSON yields a partial
    /// map, never a panic.
    pub fn new(text: &str) -> SourceMap {
        let mut positions = HashMap::new();
        let mut scanner = Scanner::new(text);
        let mut stack: Vec<Frame> = Vec::new();
        // The key read in the innermost object, waiting for its value.
        let mut pending_key: Option<String> = None;
        loop {
            scanner.skip_ws();
            let Some(byte) = scanner.peek() else { break };
            match byte {
                b'{' | b'[' => {
                    let pointer = child_pointer(&mut stack, &mut pending_key);
                    positions.insert(pointer.clone(), scanner.position());
                    scanner.bump();
                    stack.push(if byte == b'{' {
                        Frame::Object(pointer)
                    } else {
                        Frame::Array(pointer, 0)
                    });
                }
                b'}' | b']' => {
                    scanner.bump();
                    stack.pop();
                }
                b',' | b':' => scanner.bump(),
                b'"' => {
                    let start = scanner.position();
                    let text = scanner.string();
                    match stack.last() {
                        Some(Frame::Object(parent)) if pending_key.is_none() => {
                            // A key: remember where it stands too, so that errors
                            // about a key (such as an unknown field) point at it.
                            let pointer = format!("{parent}/{}", escape_token(&text));
                            positions.insert(format!("{pointer}#key"), start);
                            pending_key = Some(text);
                        }
                        _ => {
                            let pointer = child_pointer(&mut stack, &mut pending_key);
                            positions.insert(pointer, start);
                        }
                    }
                }
                _ => {
                    let pointer = child_pointer(&mut stack, &mut pending_key);
                    positions.insert(pointer, scanner.position());
                    scanner.scalar();
                }
            }
        }
        SourceMap { positions }
    }

    /// Where the value at `pointer` starts, or where its closest indexed
    /// ancestor starts when the pointer names something absent (such as a
    /// missing field).
    pub fn position(&self, pointer: &str) -> Option<Position> {
        let mut pointer = pointer;
        loop {
            if let Some(position) = self.positions.get(pointer) {
                return Some(*position);
            }
            match pointer.rfind('/') {
                Some(cut) => pointer = &pointer[..cut],
                None => return self.positions.get("").copied(),
            }
        }
    }

    /// Where the key of the member at `pointer` stands, falling back to its
    /// value's position.
    pub fn key_position(&self, pointer: &str) -> Option<Position> {
        self.positions
            .get(&format!("{pointer}#key"))
            .copied()
            .or_else(|| self.position(pointer))
    }
}

/// An open container while scanning: its pointer and, for arrays, the index
/// of the next element.
enum Frame {
    Object(String),
    Array(String, usize),
}

/// The pointer of the next value inside the innermost open container.
fn child_pointer(stack: &mut [Frame], pending_key: &mut Option<String>) -> String {
    match stack.last_mut() {
        None => String::new(),
        Some(Frame::Object(parent)) => {
            let key = pending_key.take().unwrap_or_default();
            format!("{parent}/{}", escape_token(&key))
        }
        Some(Frame::Array(parent, index)) => {
            let pointer = format!("{parent}/{index}");
            *index += 1;
            pointer
        }
    }
}

/// Escapes one JSON pointer reference token (RFC 6901).
pub(crate) fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The deepest nesting of arrays and objects in `text`, and where it first
/// reaches `limit + 1` if it does. Strings are skipped, so brackets inside
/// them do not count. Works on any text, valid JSON or not.
pub(crate) fn max_depth(text: &str, limit: usize) -> (usize, Option<Position>) {
    let mut scanner = Scanner::new(text);
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut first_over = None;
    while let Some(byte) = scanner.peek() {
        match byte {
            b'"' => {
                scanner.string();
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > deepest {
                    deepest = depth;
                }
                if depth > limit && first_over.is_none() {
                    first_over = Some(scanner.position());
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        scanner.bump();
    }
    (deepest, first_over)
}

/// A byte cursor that tracks lines and character columns.
struct Scanner<'a> {
    bytes: &'a [u8],
    text: &'a str,
    offset: usize,
    line: usize,
    column: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Scanner<'a> {
        Scanner {
            bytes: text.as_bytes(),
            text,
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.offset).copied()
    }

    fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }

    fn bump(&mut self) {
        let Some(byte) = self.peek() else { return };
        self.offset += 1;
        if byte == b'\n' {
            self.line += 1;
            self.column = 1;
        } else if byte & 0xC0 != 0x80 {
            // Count a column per character, not per UTF-8 continuation byte.
            self.column += 1;
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }

    /// Reads a string starting at the opening quote and returns its decoded
    /// text (escapes resolved well enough for pointer tokens).
    fn string(&mut self) -> String {
        self.bump();
        let start = self.offset;
        while let Some(byte) = self.peek() {
            match byte {
                b'\\' => {
                    self.bump();
                    self.bump();
                }
                b'"' => break,
                _ => self.bump(),
            }
        }
        let raw = self.text.get(start..self.offset).unwrap_or("");
        self.bump();
        if raw.contains('\\') {
            serde_json::from_str::<String>(&format!("\"{raw}\"")).unwrap_or_else(|_| raw.to_owned())
        } else {
            raw.to_owned()
        }
    }

    /// Skips a number, `true`, `false` or `null`.
    fn scalar(&mut self) {
        while let Some(byte) = self.peek() {
            if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                break;
            }
            self.bump();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_nested_values_and_keys() {
        let text = "{\n  \"a\": [1, {\"b/c\": true}],\n  \"d\": \"x\"\n}";
        let map = SourceMap::new(text);
        assert_eq!(map.position(""), Some(Position { line: 1, column: 1 }));
        assert_eq!(map.position("/a"), Some(Position { line: 2, column: 8 }));
        assert_eq!(map.position("/a/0"), Some(Position { line: 2, column: 9 }));
        assert_eq!(
            map.position("/a/1/b~1c"),
            Some(Position {
                line: 2,
                column: 20
            })
        );
        assert_eq!(
            map.key_position("/d"),
            Some(Position { line: 3, column: 3 })
        );
        assert_eq!(map.position("/d"), Some(Position { line: 3, column: 8 }));
        // A missing member falls back to its parent.
        assert_eq!(
            map.position("/a/1/zz"),
            Some(Position {
                line: 2,
                column: 12
            })
        );
    }

    #[test]
    fn depth_ignores_brackets_in_strings() {
        assert_eq!(max_depth(r#"{"a": "[[[[", "b": [[1]]}"#, 64).0, 3);
        let deep = "[".repeat(10_000);
        let (depth, over) = max_depth(&deep, 64);
        assert_eq!(depth, 10_000);
        assert_eq!(
            over,
            Some(Position {
                line: 1,
                column: 65
            })
        );
    }

    #[test]
    fn columns_count_characters() {
        let text = "{\"标题\": \"动员\", \"x\": 1}";
        let map = SourceMap::new(text);
        assert_eq!(
            map.position("/x"),
            Some(Position {
                line: 1,
                column: 19
            })
        );
    }
}
