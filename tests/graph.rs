//! The workflows under workflows/, their diagrams and the JSON Schema.
//!
//! Diagrams are insta snapshots under tests/snapshots/ (review changes with
//! `cargo insta review`, or accept them all with `INSTA_UPDATE=always`). The
//! generated files checked into docs/ (the schema, the Mermaid blocks of
//! docs/workflows.md) are compared with what the code generates now, and
//! rewritten instead when `UPDATE_EXPECT=1` is set.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use strive_core::{Catalog, Definition, check, json_schema, parse, to_dot, to_mermaid};

use crate::util::root;

const LANGUAGES: [&str; 2] = ["en", "zh"];

/// Every workflow file, sorted by name, with its text.
fn workflow_files() -> Vec<(PathBuf, String)> {
    let dir = root().join("workflows");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no workflow in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            (path, text)
        })
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Parses one workflow file, failing the test with its diagnostics.
fn parse_file(name: &str, text: &str) -> Definition {
    match parse(Some(name), text) {
        Ok(parsed) => parsed.definition,
        Err(diagnostics) => panic!(
            "{name} does not parse:\n{}",
            diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        ),
    }
}

/// Every workflow, parsed.
fn workflows() -> Vec<Definition> {
    workflow_files()
        .iter()
        .map(|(path, text)| parse_file(&file_name(path), text))
        .collect()
}

/// Compares a generated file with the one checked in; with `UPDATE_EXPECT=1`
/// writes it instead.
pub(crate) fn expect_file(relative: &str, actual: &str) {
    let path = root().join(relative);
    let expected = fs::read_to_string(&path).unwrap_or_default();
    if expected == actual {
        return;
    }
    if std::env::var_os("UPDATE_EXPECT").is_some_and(|value| value == "1") {
        fs::write(&path, actual).unwrap_or_else(|error| panic!("{relative}: {error}"));
        return;
    }
    panic!(
        "{relative} is stale: it differs from what the code generates now. \
         Regenerate it with `UPDATE_EXPECT=1 cargo test --test integration graph` \
         and review the diff."
    );
}

#[test]
fn workflows_parse_and_point_at_the_schema() {
    for (path, text) in workflow_files() {
        let name = file_name(&path);
        let definition = parse_file(&name, &text);
        assert_eq!(
            format!("{}.json", definition.id),
            name,
            "a workflow file is named after its id"
        );
        assert_eq!(
            definition.schema.as_deref(),
            Some("../docs/workflow.schema.json"),
            "{name}"
        );
    }
}

/// Every workflow passes the validator without a warning, with all of them
/// in the catalog, so that spawns and `children_*` guards across the campaign
/// workflows are checked against each other.
#[test]
fn workflows_pass_the_validator() {
    let mut catalog = Catalog::new();
    for definition in workflows() {
        catalog.add(&definition);
    }
    for (path, text) in workflow_files() {
        let name = file_name(&path);
        let diagnostics = check(Some(&name), &text, &catalog);
        assert!(
            diagnostics.is_empty(),
            "{name}:\n{}",
            diagnostics
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn diagrams() {
    for definition in workflows() {
        for lang in LANGUAGES {
            let id = &definition.id;
            insta::assert_snapshot!(format!("{id}.{lang}.dot"), to_dot(&definition, lang));
            insta::assert_snapshot!(format!("{id}.{lang}.mmd"), to_mermaid(&definition, lang));
        }
    }
}

#[test]
fn schema_file_is_up_to_date() {
    let text = serde_json::to_string_pretty(&json_schema()).expect("a schema serialises");
    expect_file("docs/workflow.schema.json", &format!("{text}\n"));
}

#[test]
fn workflows_validate_against_the_schema() {
    let schema = json_schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema");
    for (path, text) in workflow_files() {
        let value: Value = serde_json::from_str(&text).expect("workflow files are JSON");
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|error| format!("  {}: {error}", error.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{} does not follow the schema:\n{}",
            path.display(),
            errors.join("\n")
        );
    }

    // The schema is not vacuous: misspelt keys, at the top and inside a
    // flattened type, and a wrong type are refused, as the parser refuses them.
    let (_, text) = &workflow_files()[0];
    let good: Value = serde_json::from_str(text).expect("JSON");
    let mut misspelt = good.clone();
    misspelt["stagse"] = Value::Array(Vec::new());
    let mut misspelt_field = good.clone();
    misspelt_field["data"][0]["requried"] = Value::Bool(true);
    let mut wrong_kind = good;
    wrong_kind["stages"][0]["kind"] = Value::from("finale");
    for bad in [misspelt, misspelt_field, wrong_kind] {
        assert!(!validator.is_valid(&bad), "the schema accepts {bad}");
        assert!(
            parse(None, &bad.to_string()).is_err(),
            "the parser accepts {bad}"
        );
    }
}

/// The marker before each generated diagram in docs/workflows.md, such as
/// `<!-- mermaid: org-campaign zh -->`, followed by a ```mermaid block.
const MARKER: &str = "<!-- mermaid: ";

/// docs/workflows.md with each marked Mermaid block replaced by what
/// `to_mermaid` generates now, and the (id, lang) pairs it found.
fn regenerate_workflows_md(
    doc: &str,
    workflows: &[Definition],
) -> Result<(String, Vec<(String, String)>), String> {
    let mut out = String::new();
    let mut found = Vec::new();
    let mut lines = doc.split_inclusive('\n');
    while let Some(line) = lines.next() {
        out.push_str(line);
        let Some(rest) = line.trim_end().strip_prefix(MARKER) else {
            continue;
        };
        let Some((id, lang)) = rest
            .strip_suffix("-->")
            .and_then(|rest| rest.trim().split_once(' '))
        else {
            return Err(format!("malformed marker: {line}"));
        };
        let definition = workflows
            .iter()
            .find(|definition| definition.id == id)
            .ok_or_else(|| format!("{line}: no workflow `{id}`"))?;
        if lines.next().map(str::trim_end) != Some("```mermaid") {
            return Err(format!(
                "{line}: the next line must open a ```mermaid block"
            ));
        }
        // Skip the old block, up to and including its closing fence.
        if !lines.by_ref().any(|line| line.trim_end() == "```") {
            return Err(format!("{line}: the ```mermaid block is not closed"));
        }
        out.push_str("```mermaid\n");
        out.push_str(&to_mermaid(definition, lang));
        out.push_str("```\n");
        found.push((id.to_owned(), lang.to_owned()));
    }
    Ok((out, found))
}

#[test]
fn workflows_md_diagrams_are_up_to_date() {
    let workflows = workflows();
    let doc = fs::read_to_string(root().join("docs/workflows.md")).unwrap_or_default();
    let (regenerated, found) = match regenerate_workflows_md(&doc, &workflows) {
        Ok(result) => result,
        Err(error) => panic!("docs/workflows.md: {error}"),
    };
    for definition in &workflows {
        assert!(
            found.contains(&(definition.id.clone(), "en".to_owned())),
            "docs/workflows.md has no English diagram of {}: add a section with \
             `{MARKER}{} en -->` followed by an empty ```mermaid block, then run \
             `UPDATE_EXPECT=1 cargo test --test integration graph`",
            definition.id,
            definition.id
        );
    }
    expect_file("docs/workflows.md", &regenerated);
}

#[test]
fn regenerating_replaces_only_the_marked_blocks() {
    let workflows = workflows();
    let id = &workflows[0].id;
    let doc = format!(
        "# Title\n\n{MARKER}{id} en -->\n```mermaid\nstale\n```\n\n```mermaid\nuntouched\n```\n"
    );
    let (regenerated, found) = regenerate_workflows_md(&doc, &workflows).expect("regenerates");
    assert_eq!(found, [(id.clone(), "en".to_owned())]);
    assert_eq!(
        regenerated,
        format!(
            "# Title\n\n{MARKER}{id} en -->\n```mermaid\n{}```\n\n```mermaid\nuntouched\n```\n",
            to_mermaid(&workflows[0], "en")
        )
    );
    assert!(regenerate_workflows_md(&format!("{MARKER}nope en -->\n"), &workflows).is_err());
}

/// The DOT of every workflow renders with Graphviz: `dot -Tsvg` accepts it
/// and draws one node per stage. CI installs Graphviz
/// (`.ci/setup-graphviz.sh`) and must run this; elsewhere, without `dot`, the
/// test says so and checks nothing more.
#[test]
fn dot_renders_with_graphviz() {
    let available = std::process::Command::new("dot")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success());
    if !available {
        assert!(
            std::env::var_os("CI").is_none(),
            "Graphviz `dot` is missing in CI: .ci/setup-graphviz.sh should install it"
        );
        eprintln!("note: Graphviz `dot` is not installed; the DOT render check was skipped");
        return;
    }
    for definition in workflows() {
        for lang in LANGUAGES {
            let dot = to_dot(&definition, lang);
            let mut child = std::process::Command::new("dot")
                .arg("-Tsvg")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn dot");
            std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), dot.as_bytes())
                .expect("write DOT");
            let out = child.wait_with_output().expect("dot ran");
            let id = &definition.id;
            assert!(
                out.status.success(),
                "{id} ({lang}): dot refused the diagram: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let svg = String::from_utf8_lossy(&out.stdout);
            let nodes = svg.matches("class=\"node\"").count();
            assert!(
                nodes >= definition.stages.len(),
                "{id} ({lang}): {nodes} nodes drawn for {} stages",
                definition.stages.len()
            );
        }
    }
}
