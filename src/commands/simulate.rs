//! `strive simulate NEW.json` (issue #13 item 2): what a new definition
//! would have done to the instances already running, from their recorded
//! commands, writing nothing. The work is `strive_audit::Simulation`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use strive_audit::{Selection, Simulation, SimulationReport, store};
use strive_core::{Catalog, Diagnostic, Severity};

use crate::cli::{TextOrJson, is_json};
use crate::commands::open;
use crate::failure::{Failure, Outcome};
use crate::output;

/// `strive simulate`'s arguments.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The new definition (a workflow JSON file).
    pub file: PathBuf,
    /// The workflow to simulate: must be the definition's own id (a check
    /// against simulating the wrong file).
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only these instances (repeat the option); every instance of the
    /// workflow when absent.
    #[arg(long = "instance")]
    pub instances: Vec<String>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<TextOrJson>,
}

impl SimulateArgs {
    /// Whether JSON was asked for.
    pub fn json(&self) -> bool {
        is_json(self.format)
    }
}

/// Exit 0 when the new definition would have done exactly what was
/// recorded, 1 when it changes some instance's history (each listed), or
/// when it or the store cannot be read.
pub fn simulate(db: &Path, args: &SimulateArgs) -> Outcome {
    let (text, parsed) = super::definitions::read_definition(&args.file)?;
    let workflow = parsed.definition.id.clone();
    if let Some(asked) = &args.workflow
        && *asked != workflow
    {
        return Err(Failure::usage(format!(
            "{} defines `{workflow}`, not `{asked}`; give the file of `{asked}`",
            args.file.display()
        )));
    }
    let engine = open(db)?;
    check_definition(&engine, &args.file, &text)?;
    if engine.versions(&workflow)?.is_empty() {
        return Err(Failure::new(
            "unknown_workflow",
            format!(
                "{db} has no workflow `{workflow}` to simulate",
                db = db.display()
            ),
        ));
    }
    for id in &args.instances {
        match engine.instance(id)? {
            Some(s) if s.instance.workflow == workflow => {}
            Some(s) => {
                return Err(Failure::usage(format!(
                    "{id} is an instance of `{}`, not of `{workflow}`",
                    s.instance.workflow
                )));
            }
            None => {
                return Err(Failure::new(
                    "not_found",
                    format!("no instance `{id}`; `strive list --workflow {workflow}` lists them"),
                ));
            }
        }
    }
    let selection = if args.instances.is_empty() {
        Selection::All
    } else {
        Selection::Instances(args.instances.iter().cloned().collect::<BTreeSet<_>>())
    };
    let definition = serde_json::to_value(&parsed.definition)
        .map_err(|e| Failure::new("internal", format!("cannot encode the definition: {e}")))?;
    let simulation = Simulation::new(definition, selection)
        .map_err(|e| Failure::new("invalid_definition", e.to_string()))?;
    let report = store::simulate(&engine, simulation)?;
    if args.json() {
        output::json(&report);
    } else {
        print(&report);
    }
    Ok(if report.unchanged() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Refuses a definition the validator refuses, with its diagnostics,
/// against a catalog of every workflow the store holds (so spawns of
/// deployed children resolve).
fn check_definition(engine: &strive_store::Engine, file: &Path, text: &str) -> Result<(), Failure> {
    let mut catalog = Catalog::new();
    for info in engine.workflows()? {
        if let Some(value) = engine.definition(&info.workflow, info.version)?
            && let Ok(definition) = serde_json::from_value(value)
        {
            catalog.add(&definition);
        }
    }
    let name = file.display().to_string();
    if let Ok(parsed) = strive_core::parse(Some(&name), text) {
        catalog.add(&parsed.definition);
    }
    let errors: Vec<Diagnostic> = strive_core::check(Some(&name), text, &catalog)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = errors.iter().map(Diagnostic::to_string).collect();
    Err(Failure {
        details: serde_json::to_value(&errors).ok(),
        ..Failure::new("invalid_definition", lines.join("\n"))
    })
}

fn print(report: &SimulationReport) {
    let short: String = report.definition_hash.chars().take(12).collect();
    output::line(format!(
        "simulated {} (definition {short}) over {} instances, {} events: {}",
        report.workflow,
        report.instances,
        report.events,
        if report.unchanged() {
            "nothing would change".to_owned()
        } else {
            format!("{} would change", report.diverged.len())
        }
    ));
    for d in &report.diverged {
        let place = match (d.seq, &d.event) {
            (Some(seq), Some(event)) => format!("#{seq} {event}"),
            (Some(seq), None) => format!("#{seq}"),
            _ => "at the end".to_owned(),
        };
        let rule = d
            .rule
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        output::line(format!(
            "  {}  {place}: {}{rule}: {}",
            strive_core::id::escape(&d.instance),
            d.code.as_str(),
            d.message
        ));
    }
    for problem in &report.others {
        output::line(format!("  (other) {problem}"));
    }
    if !report.by_rule.is_empty() {
        let rules: Vec<String> = report
            .by_rule
            .iter()
            .map(|(rule, n)| format!("{rule} {n}"))
            .collect();
        output::line(format!("by rule: {}", rules.join(", ")));
    }
}
