//! The definition commands: `validate`, `graph`, `schema` and `deploy`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Value, json};
use strive_core::{Catalog, Diagnostic, Severity};
use strive_store::Actor;

use crate::cli::{GraphFormat, Lang};
use crate::commands::open_for_writing;
use crate::failure::{Failure, Outcome};
use crate::output;

/// `strive graph`: a definition as a Mermaid or DOT diagram.
pub(crate) fn graph(file: &Path, lang: Lang, format: Option<GraphFormat>) -> Outcome {
    let (_, parsed) = read_definition(file)?;
    let text = match format {
        Some(GraphFormat::Dot) => strive_core::to_dot(&parsed.definition, lang.code()),
        None | Some(GraphFormat::Mermaid) => {
            strive_core::to_mermaid(&parsed.definition, lang.code())
        }
    };
    output::line(text.trim_end());
    Ok(ExitCode::SUCCESS)
}

/// `strive schema`: the workflow language's JSON Schema.
pub(crate) fn schema() -> Outcome {
    output::json(&strive_core::json_schema());
    Ok(ExitCode::SUCCESS)
}

/// Reads a definition file, bounded by the definition size limit while
/// reading (one byte over, so the loader's own L001 message still applies).
fn read(path: &Path) -> Result<String, Failure> {
    let limit = strive_core::MAX_DEFINITION_BYTES;
    crate::files::read_bounded(path, limit as u64 + 1).map_err(|failure| match failure.kind {
        "too_large" => Failure::new(
            "invalid_definition",
            format!(
                "{}: error[{}]: the definition is over {limit} bytes (1 MiB); split it into \
                 several workflows linked by `spawn`",
                path.display(),
                strive_core::Code::FileTooLarge
            ),
        ),
        _ => failure,
    })
}

/// Reads and parses one definition; diagnostics become the failure.
pub(crate) fn read_definition(path: &Path) -> Result<(String, strive_core::Parsed), Failure> {
    let text = read(path)?;
    let name = path.display().to_string();
    match strive_core::parse(Some(&name), &text) {
        Ok(parsed) => Ok((text, parsed)),
        Err(diagnostics) => {
            let lines: Vec<String> = diagnostics.iter().map(Diagnostic::to_string).collect();
            Err(Failure {
                details: serde_json::to_value(&diagnostics).ok(),
                ..Failure::new("invalid_definition", lines.join("\n"))
            })
        }
    }
}

pub(crate) fn validate(files: &[PathBuf], json: bool) -> Outcome {
    let mut texts = Vec::with_capacity(files.len());
    for file in files {
        texts.push((file.display().to_string(), read(file)?));
    }
    // Parse all first, so that the catalog knows every workflow given.
    let mut catalog = Catalog::new();
    for (name, text) in &texts {
        if let Ok(parsed) = strive_core::parse(Some(name), text) {
            catalog.add(&parsed.definition);
        }
    }
    let mut reports = Vec::with_capacity(texts.len());
    let (mut errors, mut warnings) = (0, 0);
    for (name, text) in &texts {
        let diagnostics = strive_core::check(Some(name), text, &catalog);
        errors += diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        warnings += diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count();
        reports.push((name, diagnostics));
    }
    if json {
        let files: Vec<Value> = reports
            .iter()
            .map(|(name, diagnostics)| json!({"file": name, "diagnostics": diagnostics}))
            .collect();
        output::json(&json!({"files": files, "errors": errors, "warnings": warnings}));
    } else {
        for (_, diagnostics) in &reports {
            for diagnostic in diagnostics {
                output::line(diagnostic);
            }
        }
        output::line(format!(
            "{} file(s): {errors} error(s), {warnings} warning(s)",
            reports.len()
        ));
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn deploy(db: &Path, files: &[PathBuf], actor: &str, json: bool) -> Outcome {
    let mut texts = Vec::with_capacity(files.len());
    for file in files {
        texts.push((file.display().to_string(), read(file)?));
    }
    let engine = open_for_writing(db)?;
    let inputs: Vec<(Option<&str>, &str)> = texts
        .iter()
        .map(|(n, t)| (Some(n.as_str()), t.as_str()))
        .collect();
    let infos = engine.deploy_all(&inputs, &Actor::new(actor, &["admin"]))?;
    if json {
        output::json(&infos);
    } else {
        for info in &infos {
            if info.unchanged {
                output::line(format!(
                    "{} v{} unchanged ({})",
                    info.workflow, info.version, info.hash
                ));
            } else {
                output::line(format!(
                    "deployed {} v{} ({})",
                    info.workflow, info.version, info.hash
                ));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
