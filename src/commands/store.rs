//! The store's own commands: `init` (issue #17), `upgrade` (format 1 to
//! 2), `backup` and `import` (issue #10).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};
use strive_audit::Checkpoint;
use strive_store::{Converted, Engine, Options, StorageError};

use crate::cli::{Cli, TextOrJson, is_json};
use crate::commands::open;
use crate::failure::{Failure, Outcome};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Converts a format-1 store (strive 0.1) to a new format-2 store,
    /// checking every event on the way; the old store is only read.
    Upgrade {
        /// The format-1 store.
        old: PathBuf,
        /// Where to make the new store (must not exist, or be empty).
        new: PathBuf,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Copies the store's log to a new store while the engine may run; the
    /// copy rebuilds (and so checks) its state from the log when first
    /// opened.
    Backup {
        /// Where to make the copy (must not exist, or be empty).
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Builds a new store (`--db`) from a complete audit bundle, refusing a
    /// bundle that does not verify.
    Import {
        /// The JSONL bundle from `strive export`.
        bundle: PathBuf,
        /// A checkpoint the bundle must match or extend; without it the
        /// bundle is checked against its own checkpoint.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
}

impl StoreCommand {
    /// Whether the command was asked for JSON.
    pub fn json(&self) -> bool {
        match self {
            StoreCommand::Upgrade { format, .. }
            | StoreCommand::Backup { format, .. }
            | StoreCommand::Import { format, .. } => is_json(*format),
        }
    }
}

pub fn run(cli: &Cli, command: &StoreCommand, json: bool) -> Outcome {
    match command {
        StoreCommand::Upgrade { old, new, .. } => upgrade(old, new, json),
        StoreCommand::Backup { dir, .. } => backup(&cli.db, dir, json),
        StoreCommand::Import {
            bundle, checkpoint, ..
        } => import(&cli.db, bundle, checkpoint.as_deref(), json),
    }
}

fn report(what: &str, converted: &Converted, path: &Path, json: bool) {
    let root = hex(&converted.root);
    if json {
        output::json(&json!({
            "store": path, "events": converted.events, "root": root,
            "consumed_deadlines": converted.consumed_deadlines,
        }));
    } else {
        output::line(format!(
            "{what} {}: {} events, each decided again and checked; root {root} at size {}",
            path.display(),
            converted.events,
            converted.events
        ));
    }
}

fn upgrade(old: &Path, new: &Path, json: bool) -> Outcome {
    let (engine, converted) = Engine::upgrade(old, new, Options::default())?;
    let head = engine.tree_head()?;
    if head.root != converted.root || head.size != converted.events {
        return Err(Failure::new(
            "upgrade",
            format!(
                "the new store's root ({} at {}) differs from the old log's; the new store is not to be used",
                hex(&head.root),
                head.size
            ),
        ));
    }
    report("upgraded to", &converted, new, json);
    Ok(ExitCode::SUCCESS)
}

fn backup(db: &Path, dir: &Path, json: bool) -> Outcome {
    let engine = open(db)?;
    let events = engine.backup(dir)?;
    if json {
        output::json(&json!({"backup": dir, "events": events}));
    } else {
        output::line(format!(
            "copied {events} events to {}; open it to rebuild and check its state",
            dir.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn import(db: &Path, bundle: &Path, checkpoint: Option<&Path>, json: bool) -> Outcome {
    let open_bundle = || {
        File::open(bundle)
            .map(BufReader::new)
            .map_err(|e| Failure::new("io", format!("cannot open {}: {e}", bundle.display())))
    };
    let trusted = match checkpoint {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::new("io", format!("cannot read {}: {e}", path.display())))?;
            Checkpoint::parse(&text)
                .map_err(|e| Failure::new("checkpoint", format!("{}: {e}", path.display())))?
                .checkpoint
        }
        None => own_checkpoint(open_bundle()?)?,
    };
    let verified = strive_audit::verify_bundle(open_bundle()?, &trusted)
        .map_err(|e| Failure::new("io", e.to_string()))?;
    if !verified.ok() || !verified.complete {
        for problem in &verified.problems {
            output::line(problem);
        }
        return Err(Failure::new(
            "bundle",
            format!(
                "{} {}; nothing was imported",
                bundle.display(),
                if verified.complete {
                    "does not verify"
                } else {
                    "is an extract (exported with a filter), not a whole log"
                }
            ),
        ));
    }
    // The new store has the bundle's partitions, whatever the default.
    let options = Options {
        partitions: bundle_partitions(open_bundle()?)?,
        ..Options::default()
    };
    let events = bundle_events(open_bundle()?);
    let (engine, converted) = Engine::import(db, events, options)?;
    let heads = engine.partition_heads()?;
    if strive_core::combined_head(&heads).ok() != Some((converted.events, converted.root)) {
        return Err(Failure::new(
            "import",
            "the new store's checkpoint differs from the bundle's log; the new store is not to be used"
                .to_owned(),
        ));
    }
    report("imported into", &converted, db, json);
    Ok(ExitCode::SUCCESS)
}

/// The number of partitions a bundle's header states (1 when it states
/// none, as a bundle of one partition does).
fn bundle_partitions(mut input: impl BufRead) -> Result<u32, Failure> {
    let mut first = String::new();
    input
        .read_line(&mut first)
        .map_err(|e| Failure::new("io", e.to_string()))?;
    let header: Value = serde_json::from_str(&first).unwrap_or(Value::Null);
    Ok(header
        .get("partitions")
        .and_then(Value::as_u64)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(1))
}

/// The checkpoint a bundle carries (its last line).
fn own_checkpoint(input: impl BufRead) -> Result<Checkpoint, Failure> {
    let mut found = None;
    for line in input.lines() {
        let line = line.map_err(|e| Failure::new("io", e.to_string()))?;
        if let Ok(value) = serde_json::from_str::<Value>(&line)
            && value["type"] == "checkpoint"
            && let Some(text) = value["text"].as_str()
        {
            found = Some(
                Checkpoint::parse(text)
                    .map_err(|e| Failure::new("bundle", format!("its checkpoint: {e}")))?
                    .checkpoint,
            );
        }
    }
    found.ok_or_else(|| Failure::new("bundle", "the bundle has no checkpoint line".to_owned()))
}

/// The bundle's events, in order, as (stored hash, exact bytes).
fn bundle_events(
    input: impl BufRead,
) -> impl Iterator<Item = Result<(String, Vec<u8>), StorageError>> {
    input.lines().filter_map(|line| {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                return Some(Err(StorageError::Backend {
                    message: e.to_string(),
                }));
            }
        };
        let value: Value = serde_json::from_str(&line).ok()?;
        if value["type"] != "event" {
            return None;
        }
        let (Some(hash), Some(bytes)) = (value["hash"].as_str(), value["bytes"].as_str()) else {
            return Some(Err(StorageError::Corrupt {
                key: "bundle".to_owned(),
                message: "an event line without hash or bytes".to_owned(),
            }));
        };
        Some(Ok((hash.to_owned(), bytes.as_bytes().to_vec())))
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `strive init`: creates an empty store where nothing else is.
pub(crate) fn init(db: &Path, partitions: u32, json: bool) -> Outcome {
    if !(1..=strive_store::MAX_PARTITIONS).contains(&partitions) {
        return Err(Failure::usage(format!(
            "--partitions {partitions}: a store has 1 to {} partitions; choose a number in \
             that range (about one per core the writers may use)",
            strive_store::MAX_PARTITIONS
        )));
    }
    match strive_store::probe::require_store_or_room(db) {
        Ok(strive_store::probe::Place::Store) => {
            return Err(Failure::new(
                "store_exists",
                format!("{} is a strive store already; nothing to do", db.display()),
            ));
        }
        Ok(_) => {}
        Err(error) => return Err(error.into()),
    }
    let options = strive_store::Options {
        partitions,
        ..strive_store::Options::default()
    };
    drop(crate::files::open_or_create(db, options)?);
    if json {
        output::json(&json!({"created": db.display().to_string(), "partitions": partitions}));
    } else {
        let noun = if partitions == 1 {
            "partition"
        } else {
            "partitions"
        };
        output::line(format!(
            "created an empty strive store at {} ({partitions} {noun}); deploy workflows with `strive deploy --db {} FILE...`",
            db.display(),
            db.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
