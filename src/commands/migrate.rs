//! `strive migrate --plan FILE [--dry-run]` (issue #13 item 1): moves
//! running instances to another version of their workflow by a plan. The
//! rules are `strive_core::MigrationPlan`'s; the engine checks the whole
//! plan against every instance before writing (`Engine::migrate`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::json;
use strive_store::{MigrationPlan, PlannedMove};

use crate::cli::{ActorArgs, Cli, TextOrJson, is_json};
use crate::commands::{actor_of, open_for_writing, shown};
use crate::failure::{Failure, Outcome};
use crate::files::{MAX_SMALL_FILE, read_bounded};
use crate::output;

/// `strive migrate`'s arguments.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The plan (docs/evolution.md, "Migrating running instances").
    #[arg(long)]
    pub plan: PathBuf,
    /// Print what would change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub actor: ActorArgs,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<TextOrJson>,
}

impl MigrateArgs {
    /// Whether JSON was asked for.
    pub fn json(&self) -> bool {
        is_json(self.format)
    }
}

fn read_plan(path: &Path) -> Result<MigrationPlan, Failure> {
    let text = read_bounded(path, MAX_SMALL_FILE)?;
    MigrationPlan::from_json(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

/// Runs `strive migrate`.
pub fn migrate(cli: &Cli, args: &MigrateArgs, json: bool) -> Outcome {
    let plan = read_plan(&args.plan)?;
    let engine = open_for_writing(&cli.db)?;
    let moves = if args.dry_run {
        engine.migrate_dry_run(&plan)?
    } else {
        let actor = actor_of(cli, &args.actor)?;
        engine.migrate(&plan, &actor)?
    };
    if json {
        output::json(&json!({
            "plan_hash": plan.hash(), "dry_run": args.dry_run,
            "workflow": plan.workflow, "from_version": plan.from_version,
            "to_version": plan.to_version, "instances": moves,
        }));
    } else {
        for planned in &moves {
            output::line(describe(planned, &plan));
        }
        output::line(format!(
            "{} instance(s) of {} {} from v{} to v{} (plan {})",
            moves.len(),
            plan.workflow,
            if args.dry_run { "would move" } else { "moved" },
            plan.from_version,
            plan.to_version,
            &plan.hash()[..16]
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per instance: its stages, its data changes and its event.
fn describe(planned: &PlannedMove, plan: &MigrationPlan) -> String {
    let mut line = format!(
        "{}: `{}` v{} -> `{}` v{}",
        shown(&planned.instance),
        planned.from_stage,
        plan.from_version,
        planned.to_stage,
        plan.to_version
    );
    for (variable, (old, new)) in &planned.changes {
        let renamed_to = plan.renames.get(variable);
        let renamed_from = plan.renames.iter().find(|(_, to)| *to == variable);
        let change = match (old.is_null(), new.is_null()) {
            // A rename shows once, at its source.
            (true, _) if renamed_from.is_some() => continue,
            (true, _) => format!("+{variable} = {new}"),
            (_, true) => match (renamed_to, plan.drops.get(variable)) {
                (Some(to), _) => format!("{variable} renamed to {to}"),
                (None, Some(reason)) => format!("-{variable} ({reason})"),
                (None, None) => format!("-{variable}"),
            },
            _ => format!("{variable}: {old} -> {new}"),
        };
        line.push_str(&format!("; {change}"));
    }
    if let Some(outcome) = &planned.outcome {
        line.push_str(&format!(" (seq {}, gseq {})", outcome.seq, outcome.gseq));
    }
    line
}
