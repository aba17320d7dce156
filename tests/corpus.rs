//! The data-driven corpus of definitions (tests/data/definitions, described
//! in its README.md), and the checks that keep docs/workflow-language.md in
//! step with the validator.
//!
//! `UPDATE_EXPECT=1 cargo test --test integration corpus` rewrites the
//! `.expected` files from what the validator says; review the diff.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use strive_core::{Catalog, Code, Diagnostic, has_errors, parse};

fn corpus_dir() -> PathBuf {
    crate::util::root().join("tests/data/definitions")
}

/// One invalid case: its file name, its text (read, or generated from a
/// `.gen` marker) and its `.expected` file.
struct Case {
    name: String,
    text: String,
    expected: PathBuf,
}

/// The files with `extension` directly in `dir`, sorted by name.
fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect();
    found.sort();
    found
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn cases() -> Vec<Case> {
    let dir = corpus_dir();
    let mut cases = Vec::new();
    for path in files(&dir, "json").into_iter().chain(files(&dir, "gen")) {
        let name = file_name(&path);
        let text = if name.ends_with(".gen") {
            generate(&read(&path)).unwrap_or_else(|error| panic!("{name}: {error}"))
        } else {
            read(&path)
        };
        cases.push(Case {
            name,
            text,
            expected: path.with_extension("expected"),
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// The valid definitions: `valid/*.json`, with their names.
fn valid_cases() -> Vec<(String, String)> {
    files(&corpus_dir().join("valid"), "json")
        .iter()
        .map(|path| (format!("valid/{}", file_name(path)), read(path)))
        .collect()
}

/// Every workflow in the corpus, its valid definitions and workflows/, so
/// that spawn targets and children guards can be checked.
fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    let dirs = [
        corpus_dir(),
        corpus_dir().join("valid"),
        crate::util::root().join("workflows"),
    ];
    for path in dirs.iter().flat_map(|dir| files(dir, "json")) {
        if let Ok(parsed) = parse(None, &read(&path)) {
            catalog.add(&parsed.definition);
        }
    }
    catalog
}

/// A `.gen` marker's definition. Each line is `key value`; `#` starts a
/// comment. Keys: `stages N` (default 2), `transitions N` (default 1),
/// `depth N` (a guard nested N arrays deep), `bytes N` (a description padded
/// so the file has at least N bytes).
fn generate(spec: &str) -> Result<String, String> {
    let (mut stages, mut transitions, mut depth, mut bytes) = (2usize, 1usize, 0usize, 0usize);
    for line in spec.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(' ')
            .ok_or_else(|| format!("`{line}`: expected `key value`"))?;
        let value: usize = value
            .trim()
            .parse()
            .map_err(|error| format!("`{line}`: {error}"))?;
        match key {
            "stages" => stages = value.max(2),
            "transitions" => transitions = value,
            "depth" => depth = value,
            "bytes" => bytes = value,
            other => return Err(format!("unknown key `{other}`")),
        }
    }
    let stage_lines: Vec<String> = (0..stages)
        .map(|i| match i {
            0 => "    {\"id\": \"s0\", \"kind\": \"initial\"}".to_owned(),
            i if i + 1 == stages => format!("    {{\"id\": \"s{i}\", \"kind\": \"terminal\"}}"),
            i => format!("    {{\"id\": \"s{i}\"}}"),
        })
        .collect();
    let guard = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let transition_lines: Vec<String> = (0..transitions)
        .map(|k| {
            let from = k % (stages - 1);
            let guard = if k == 0 && depth > 0 {
                format!(", \"guard\": {{\"and\": {guard}}}")
            } else {
                String::new()
            };
            format!(
                "    {{\"event\": \"e{k}\", \"from\": \"s{from}\", \"to\": \"s{}\", \
                 \"roles\": [\"admin\"]{guard}}}",
                from + 1
            )
        })
        .collect();
    let body = |padding: &str| {
        format!(
            "{{\n  \"id\": \"generated\",\n  \"title\": \"generated\",\n  \
             \"description\": \"{padding}\",\n  \"roles\": [{{\"id\": \"admin\"}}],\n  \
             \"stages\": [\n{}\n  ],\n  \"transitions\": [\n{}\n  ]\n}}\n",
            stage_lines.join(",\n"),
            transition_lines.join(",\n")
        )
    };
    let unpadded = body("").len();
    Ok(body(&"x".repeat(bytes.saturating_sub(unpadded))))
}

/// `S002 error 12:17 /transitions/3/to`: code, severity, line:column (`?:?`
/// when unknown) and pointer (`""` for the whole document).
fn expect_line(diagnostic: &Diagnostic) -> String {
    let position = match (diagnostic.line, diagnostic.column) {
        (Some(line), Some(column)) => format!("{line}:{column}"),
        _ => "?:?".to_owned(),
    };
    let pointer = if diagnostic.pointer.is_empty() {
        "\"\""
    } else {
        diagnostic.pointer.as_str()
    };
    format!(
        "{} {} {position} {pointer}",
        diagnostic.code, diagnostic.severity
    )
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("{}\n", expect_line(d)))
        .collect()
}

/// Lines only expected (`-`) and only found (`+`, with the message).
fn diff(expected: &str, diagnostics: &[Diagnostic]) -> String {
    let mut missing: Vec<&str> = expected
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut extra = Vec::new();
    for diagnostic in diagnostics {
        let line = expect_line(diagnostic);
        match missing.iter().position(|m| *m == line) {
            Some(index) => {
                missing.remove(index);
            }
            None => extra.push(format!("{line}    # {}", diagnostic.message)),
        }
    }
    let mut out = String::new();
    for line in missing {
        let _ = writeln!(out, "  - {line}");
    }
    for line in extra {
        let _ = writeln!(out, "  + {line}");
    }
    out
}

fn update_requested() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some_and(|value| value == "1")
}

#[test]
fn check() {
    let catalog = catalog();
    let update = update_requested();
    let mut failures = String::new();
    for case in cases() {
        let found = strive_core::check(Some(&case.name), &case.text, &catalog);
        if update {
            fs::write(&case.expected, render(&found))
                .unwrap_or_else(|error| panic!("{}: {error}", case.expected.display()));
            continue;
        }
        if found.is_empty() {
            let _ = writeln!(
                failures,
                "{}: no diagnostics; an invalid case must fail (valid ones go in valid/)",
                case.name
            );
            continue;
        }
        let Ok(expected) = fs::read_to_string(&case.expected) else {
            let _ = writeln!(failures, "{}: no .expected file", case.name);
            continue;
        };
        let difference = diff(&expected, &found);
        if !difference.is_empty() {
            let _ = writeln!(failures, "{}:\n{difference}", case.name);
        }
    }
    for (name, text) in valid_cases() {
        let found = strive_core::check(Some(&name), &text, &catalog);
        if has_errors(&found) {
            let _ = writeln!(failures, "{name}: a valid definition has errors:");
            for diagnostic in found.iter().filter(|d| d.is_error()) {
                let _ = writeln!(failures, "  {diagnostic}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "corpus mismatches (- expected, + found):\n{failures}\nIf the new output is right, \
         run `UPDATE_EXPECT=1 cargo test --test integration corpus` and review the diff."
    );
}

#[test]
fn every_code_has_a_case() {
    let mut covered = BTreeSet::new();
    for path in files(&corpus_dir(), "expected") {
        for line in read(&path).lines() {
            if let Some(code) = line.split_whitespace().next().and_then(Code::parse) {
                covered.insert(code);
            }
        }
    }
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|code| !covered.contains(*code))
        .map(|code| code.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "codes without a corpus case: {}",
        missing.join(", ")
    );
}

#[test]
fn corpus_has_enough_cases() {
    let count = cases().len();
    assert!(count >= 45, "only {count} invalid cases");
    assert!(!valid_cases().is_empty(), "no valid definitions");
}

/// Changes one value at a time in each valid definition (and drops one
/// member or element at a time) and checks the validator still answers.
/// A panic anywhere fails the test with the mutation that caused it.
#[test]
fn mutations_never_panic() {
    let replacements = [
        Value::Null,
        Value::from(-1.5),
        Value::from(""),
        Value::from("*"),
        Value::Array(Vec::new()),
        serde_json::json!({"var": "payload"}),
    ];
    let catalog = catalog();
    for (name, text) in valid_cases() {
        let Ok(root) = serde_json::from_str::<Value>(&text) else {
            panic!("{name} is not JSON");
        };
        for pointer in pointers(&root) {
            for replacement in &replacements {
                let mut mutated = root.clone();
                if let Some(slot) = mutated.pointer_mut(&pointer) {
                    *slot = replacement.clone();
                }
                let text = serde_json::to_string_pretty(&mutated).unwrap_or_default();
                let _ = strive_core::check(Some(&name), &text, &catalog);
            }
            let mut dropped = root.clone();
            remove(&mut dropped, &pointer);
            let text = serde_json::to_string_pretty(&dropped).unwrap_or_default();
            let _ = strive_core::check(Some(&name), &text, &catalog);
        }
    }
}

/// Definitions within the limits but built to make a careless validator
/// quadratic: many wildcard transitions for one event, many deadlines
/// taken by many transitions, long role and stage lists. They must be
/// checked, with their findings, in about the time of an ordinary file.
#[test]
fn hostile_definitions_are_checked() {
    let n = 5_000;
    let stage = |i: usize| match i {
        0 => "{\"id\": \"s0\", \"kind\": \"initial\"}".to_owned(),
        i if i + 1 == n => format!("{{\"id\": \"s{i}\", \"kind\": \"terminal\"}}"),
        i => {
            format!("{{\"id\": \"s{i}\", \"deadline\": {{\"after\": \"P1D\", \"event\": \"e\"}}}}")
        }
    };
    let stages: Vec<String> = (0..n).map(stage).collect();
    let mut transitions: Vec<String> = (0..n - 1)
        .map(|i| {
            format!(
                "{{\"event\": \"e\", \"from\": \"s{i}\", \"to\": \"s{}\", \"roles\": [\"a\"]}}",
                i + 1
            )
        })
        .collect();
    transitions.extend((0..n).map(|_| {
        "{\"event\": \"e\", \"from\": \"*\", \"to\": \"s1\", \"roles\": [\"a\"]}".to_owned()
    }));
    let text = format!(
        "{{\"id\": \"hostile\", \"title\": \"t\", \"roles\": [{{\"id\": \"a\"}}], \
         \"stages\": [{}], \"transitions\": [{}]}}",
        stages.join(","),
        transitions.join(",")
    );
    let found = strive_core::check(None, &text, &Catalog::new());
    let codes: BTreeSet<&str> = found.iter().map(|d| d.code.as_str()).collect();
    // Every deadline's event is taken without `system`; every wildcard
    // transition is shadowed by the chain; the wildcard closes cycles.
    assert_eq!(
        codes.into_iter().collect::<Vec<_>>(),
        ["S013", "S022", "W101"]
    );
    assert_eq!(
        found
            .iter()
            .filter(|d| d.code == Code::DeadlineNotSystem)
            .count(),
        n - 2
    );
}

/// Every JSON pointer in `value` except the root.
fn pointers(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(value, String::new())];
    while let Some((value, pointer)) = stack.pop() {
        let children: Vec<(&Value, String)> = match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (item, format!("{pointer}/{i}")))
                .collect(),
            Value::Object(map) => map
                .iter()
                .map(|(key, item)| {
                    let key = key.replace('~', "~0").replace('/', "~1");
                    (item, format!("{pointer}/{key}"))
                })
                .collect(),
            _ => Vec::new(),
        };
        for (child, child_pointer) in children {
            out.push(child_pointer.clone());
            stack.push((child, child_pointer));
        }
    }
    out
}

fn remove(root: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    match root.pointer_mut(parent) {
        Some(Value::Array(items)) => {
            if let Ok(index) = last.parse::<usize>()
                && index < items.len()
            {
                items.remove(index);
            }
        }
        Some(Value::Object(map)) => {
            map.remove(&last);
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// docs/workflow-language.md
// ---------------------------------------------------------------------------

/// Codes whose failing example cannot be shown in a page: a file over 1 MiB,
/// more than 10,000 stages. The corpus generates them instead.
const UNDOCUMENTABLE: &[Code] = &[Code::FileTooLarge, Code::TooMany];

fn language_doc() -> String {
    read(&crate::util::root().join("docs/workflow-language.md"))
}

/// The example blocks tagged ```json strive-valid or ```json strive-invalid
/// CODE: (line of the fence, tag, code if any, text).
fn examples(doc: &str) -> Vec<(usize, String, Option<String>, String)> {
    let mut found = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let Some(tag) = line.trim().strip_prefix("```json strive-") else {
            continue;
        };
        let mut words = tag.split_whitespace();
        let kind = words.next().unwrap_or("").to_owned();
        let code = words.next().map(str::to_owned);
        let mut text = String::new();
        for (_, line) in lines.by_ref() {
            if line.trim() == "```" {
                break;
            }
            text.push_str(line);
            text.push('\n');
        }
        found.push((number + 1, kind, code, text));
    }
    found
}

#[test]
fn docs_have_a_heading_per_code() {
    let doc = language_doc();
    let headings: BTreeSet<&str> = doc
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .filter_map(|heading| heading.split_whitespace().next())
        .collect();
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|code| code.as_str())
        .filter(|code| !headings.contains(code))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/workflow-language.md has no `### CODE` heading for: {}",
        missing.join(", ")
    );
}

#[test]
fn docs_examples_check() {
    let doc = language_doc();
    let mut failures = String::new();
    let mut shown = BTreeSet::new();
    let catalog = Catalog::new();
    for (line, kind, code, text) in examples(&doc) {
        let found = strive_core::check(None, &text, &catalog);
        let codes: Vec<&str> = found.iter().map(|d| d.code.as_str()).collect();
        match (kind.as_str(), code.as_deref().and_then(Code::parse)) {
            ("valid", None) if has_errors(&found) => {
                let _ = writeln!(failures, "line {line}: strive-valid example has errors:");
                for diagnostic in found.iter().filter(|d| d.is_error()) {
                    let _ = writeln!(failures, "  {diagnostic}");
                }
            }
            ("valid", None) => {}
            ("invalid", Some(code)) => {
                shown.insert(code);
                if !codes.contains(&code.as_str()) {
                    let _ = writeln!(
                        failures,
                        "line {line}: strive-invalid {code} example gives [{}] instead",
                        codes.join(", ")
                    );
                }
            }
            _ => {
                let _ = writeln!(
                    failures,
                    "line {line}: unknown tag `strive-{kind}{}`; use strive-valid or \
                     strive-invalid CODE",
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                );
            }
        }
    }
    let unshown: Vec<&str> = Code::ALL
        .iter()
        .filter(|code| !shown.contains(*code) && !UNDOCUMENTABLE.contains(code))
        .map(|code| code.as_str())
        .collect();
    if !unshown.is_empty() {
        let _ = writeln!(
            failures,
            "no ```json strive-invalid example for: {}",
            unshown.join(", ")
        );
    }
    assert!(
        failures.is_empty(),
        "docs/workflow-language.md:\n{failures}"
    );
}
