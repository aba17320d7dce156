//! The auditor's commands (issue #4): replay, verify, checkpoint, keygen,
//! export, export-model and verify-bundle. Glue: the work is in
//! `strive-audit`, whose `store` module feeds it from the store (the same
//! code `strive serve` runs).

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Subcommand;
use serde_json::{Value, json};
use strive_audit::{
    At, Checkpoint, Filter, Problem, SigningKey, VerifierKey, VerifyOptions, store,
};
use strive_store::Engine;

use crate::cli::{Cli, ExportFormat, ModelFormat, TextOrJson, is_json};
use crate::commands::open;
use crate::failure::{Failure, Outcome};
use crate::files::{MAX_SMALL_FILE, OutFile, read_bounded};
use crate::output;

/// What `verify` says of a store that ran on a manual clock.
const MANUAL_CLOCK_NOTE: &str = "note: this store ran on a manual clock (a simulation): its \
     event times are the simulation's, and deadlines fired when the simulation said, not the world";

/// The origin checkpoints name when `--origin` is not given.
const DEFAULT_ORIGIN: &str = "strive";

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Rebuilds an instance's state from its events alone, at any point in
    /// its history; at the end it must equal the stored snapshot.
    Replay {
        /// The instance.
        instance: String,
        /// Stop after the instance's event with this sequence number.
        #[arg(long, conflicts_with = "at")]
        at_seq: Option<u64>,
        /// Stop at this time (RFC 3339, or a date for the end of that day, UTC).
        #[arg(long)]
        at: Option<String>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Checks the whole store: hashes, chains, the global sequence, heads,
    /// replay against snapshots, conformance and the Merkle root; exit 1
    /// with every problem listed.
    Verify {
        /// A checkpoint kept earlier: the log must extend it.
        #[arg(long)]
        since: Option<PathBuf>,
        /// The public key that must have signed that checkpoint.
        #[arg(long, requires = "since")]
        public_key: Option<PathBuf>,
        /// A witness policy that checkpoint must satisfy: k of its
        /// witnesses cosigned it (docs/audit.md, "Witnesses").
        #[arg(long, requires = "since")]
        policy: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
        /// Threads to verify on: 0 for one per core, 1 for sequentially
        /// (the report is the same).
        #[arg(long, default_value_t = 0)]
        jobs: usize,
        /// Report every start or fire by an actor holding a registered key
        /// that is not signed (`unsigned`), as for a store opened with
        /// `require_signatures`. Signatures present are checked always.
        #[arg(long)]
        require_signatures: bool,
    },
    /// Prints a checkpoint of the log (origin, size, root), optionally signed.
    Checkpoint {
        /// The signing key file (from `strive keygen`), kept outside the store.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The log's name in the checkpoint.
        #[arg(long, default_value = DEFAULT_ORIGIN)]
        origin: String,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Makes an Ed25519 key pair for signing checkpoints: FILE and FILE.pub.
    Keygen {
        /// Where to write the private key (never inside the store).
        #[arg(long)]
        out: PathBuf,
        /// The key's name, shown on signature lines; `strive-` and the
        /// key's fingerprint when absent, so that two keys never share one.
        #[arg(long)]
        name: Option<String>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Streams events out: --format jsonl (the audit bundle, default), csv, xes or ocel.
    Export(ExportArgs),
    /// Writes a workflow definition as a PNML Petri net.
    ExportModel {
        /// The workflow.
        workflow: String,
        /// The version; the latest when absent.
        #[arg(long)]
        version: Option<u32>,
        /// What to write.
        #[arg(long, value_enum)]
        format: Option<ModelFormat>,
    },
    /// Writes a receipt for one event: its exact bytes and an inclusion
    /// proof to a checkpoint of the log now, for its member to keep.
    Receipt {
        /// The event's instance.
        instance: String,
        /// The event's sequence number in the instance.
        seq: u64,
        /// The signing key file for the receipt's checkpoint.
        #[arg(long, conflicts_with = "checkpoint")]
        key: Option<PathBuf>,
        /// The log's name in the checkpoint.
        #[arg(long, default_value = DEFAULT_ORIGIN)]
        origin: String,
        /// Prove the event to this checkpoint (one witnesses cosigned, from
        /// `strive witness cosign`) instead of one made now: its
        /// cosignatures then date the event.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Checks a receipt offline: the event's bytes, its proof, the
    /// checkpoint and (with --public-key) the checkpoint's signature.
    VerifyReceipt {
        /// The receipt file.
        file: PathBuf,
        /// The public key that must have signed the receipt's checkpoint.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// A witness policy the receipt's checkpoint must satisfy; the
        /// cosignatures' times then bound when the event was recorded.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Also check the store (--db): its log still extends the
        /// receipt's checkpoint and holds the event where it was.
        #[arg(long)]
        check_store: bool,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Publishes the log as static files: the checkpoint, the C2SP
    /// tlog-tiles tiles and the entry bundles, for any web server.
    Publish {
        /// The directory to write (created if missing; republishing
        /// updates it).
        dir: PathBuf,
        /// The signing key for the checkpoint.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The log's name in the checkpoint.
        #[arg(long, default_value = DEFAULT_ORIGIN)]
        origin: String,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Checks an exported JSONL bundle without the database.
    VerifyBundle {
        /// The bundle.
        file: PathBuf,
        /// A checkpoint you kept, that the bundle must match or extend.
        #[arg(long)]
        checkpoint: PathBuf,
        /// The public key that must have signed that checkpoint.
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// A witness policy that checkpoint must satisfy.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
}

/// `strive export`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Only instances of this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only this instance.
    #[arg(long)]
    pub instance: Option<String>,
    /// Only events from this global position on.
    #[arg(long)]
    pub since: Option<u64>,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sign the bundle's checkpoint with this key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The log's name in the bundle's checkpoint.
    #[arg(long, default_value = DEFAULT_ORIGIN)]
    pub origin: String,
    /// Add a consistency proof from this earlier checkpoint to the bundle.
    #[arg(long)]
    pub from_checkpoint: Option<PathBuf>,
    /// What to write.
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// With `--format ocel`: which objects each event concerns (a JSON
    /// mapping, docs/audit.md "OCEL 2.0"); the campaign's by default.
    #[arg(long, value_name = "FILE")]
    pub ocel_map: Option<PathBuf>,
}

impl AuditCommand {
    /// Whether the command was asked for JSON.
    pub fn json(&self) -> bool {
        match self {
            AuditCommand::Replay { format, .. }
            | AuditCommand::Verify { format, .. }
            | AuditCommand::Checkpoint { format, .. }
            | AuditCommand::Keygen { format, .. }
            | AuditCommand::VerifyReceipt { format, .. }
            | AuditCommand::Publish { format, .. }
            | AuditCommand::VerifyBundle { format, .. } => is_json(*format),
            AuditCommand::Receipt { .. } => false,
            AuditCommand::Export(_) | AuditCommand::ExportModel { .. } => false,
        }
    }
}

pub fn run(cli: &Cli, command: &AuditCommand, json: bool) -> Outcome {
    match command {
        AuditCommand::Replay {
            instance,
            at_seq,
            at,
            ..
        } => replay(&cli.db, instance, *at_seq, at.as_deref(), json),
        AuditCommand::Verify {
            since,
            public_key,
            policy,
            jobs,
            require_signatures,
            ..
        } => match crate::client::Remote::from_cli(cli)? {
            Some(remote) => crate::client::verify(&remote, json),
            None => verify(
                &cli.db,
                &Kept {
                    checkpoint: since.as_deref(),
                    key: public_key.as_deref(),
                    policy: policy.as_deref(),
                },
                VerifyOptions {
                    jobs: *jobs,
                    require_signatures: *require_signatures,
                    ..VerifyOptions::default()
                },
                json,
            ),
        },
        AuditCommand::Checkpoint { key, origin, .. } => {
            checkpoint(cli, key.as_deref(), origin, json)
        }
        AuditCommand::Keygen { out, name, .. } => keygen(out, name.as_deref(), json),
        AuditCommand::Export(args) => export(&cli.db, args),
        AuditCommand::ExportModel {
            workflow, version, ..
        } => {
            // PNML is the one format (`--format pnml` may still be said).
            let engine = open(&cli.db)?;
            let version = match version {
                Some(version) => *version,
                None => engine
                    .versions(workflow)?
                    .last()
                    .map(|info| info.version)
                    .ok_or_else(|| unknown_workflow(workflow))?,
            };
            let value = engine
                .definition(workflow, version)?
                .ok_or_else(|| unknown_workflow(workflow))?;
            let definition: strive_core::Definition =
                serde_json::from_value(value).map_err(|e| {
                    Failure::new(
                        "corrupt",
                        format!(
                            "the stored definition of {workflow} v{version} does not read: {e}"
                        ),
                    )
                })?;
            output::line(strive_audit::to_pnml(&definition).trim_end());
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Publish {
            dir, key, origin, ..
        } => super::publish::publish(&cli.db, dir, key.as_deref(), origin, json),
        AuditCommand::VerifyBundle {
            file,
            checkpoint,
            public_key,
            policy,
            ..
        } => verify_bundle(
            file,
            &Kept {
                checkpoint: Some(checkpoint),
                key: public_key.as_deref(),
                policy: policy.as_deref(),
            },
            json,
        ),
        AuditCommand::Receipt {
            instance,
            seq,
            key,
            origin,
            checkpoint,
            out,
        } => super::receipt::receipt(
            &cli.db,
            &super::receipt::ReceiptRequest {
                instance,
                seq: *seq,
                key: key.as_deref(),
                origin,
                checkpoint: checkpoint.as_deref(),
                out: out.as_deref(),
            },
        ),
        AuditCommand::VerifyReceipt {
            file,
            public_key,
            policy,
            check_store,
            ..
        } => super::receipt::verify_receipt(
            file,
            &super::receipt::ReceiptChecks {
                key: public_key.as_deref(),
                policy: policy.as_deref(),
                store: check_store.then_some(cli.db.as_path()),
            },
            json,
        ),
    }
}

/// `strive export`: the store's events as a bundle, CSV, XES or OCEL, to a file
/// (written whole through a rename) or stdout.
fn export(db: &Path, args: &ExportArgs) -> Outcome {
    let ExportArgs {
        workflow,
        instance,
        since,
        out,
        key,
        origin,
        from_checkpoint,
        format,
        ocel_map,
    } = args;
    let filter = Filter {
        workflow: workflow.clone(),
        instance: instance.clone(),
        since: *since,
    };
    let format = match format {
        None | Some(ExportFormat::Jsonl) => store::Format::Jsonl,
        Some(ExportFormat::Csv) => store::Format::Csv,
        Some(ExportFormat::Xes) => store::Format::Xes,
        Some(ExportFormat::Ocel) => return export_ocel(db, args, &filter),
    };
    let signing = key.as_deref().map(read_signing_key).transpose()?;
    check_origin(origin)?;
    let from = from_checkpoint
        .as_deref()
        .map(|p| {
            let unchecked = Kept {
                checkpoint: Some(p),
                key: None,
                policy: None,
            };
            read_checkpoint(p, &unchecked).map(|read| read.checkpoint)
        })
        .transpose()?;
    if ocel_map.is_some() {
        return Err(Failure::usage("--ocel-map goes with --format ocel only"));
    }
    let engine = open(db)?;
    check_filter(&engine, &filter)?;
    if let (Some(from), Some(path)) = (&from, from_checkpoint) {
        check_earlier(&engine, from, path, origin)?;
    }
    let mut file = out.as_deref().map(OutFile::create).transpose()?;
    let sink: Box<dyn Write + '_> = match &mut file {
        Some(file) => Box::new(file),
        None => Box::new(output::stream()),
    };
    let started = Instant::now();
    let export = store::Export {
        format,
        filter: &filter,
        origin,
        key: signing.as_ref(),
        from: from.as_ref(),
    };
    let events = store::export(&engine, sink, &export).map_err(export_failure)?;
    if let Some(file) = file {
        file.commit(true, 0o644)?;
    }
    tracing::info!(
        events,
        format = format.name(),
        seconds = started.elapsed().as_secs_f64(),
        "exported"
    );
    Ok(ExitCode::SUCCESS)
}

fn io_failure(what: &str, error: std::io::Error) -> Failure {
    Failure::new(
        "io",
        format!("{what}: {}", strive_store::describe_io(&error)),
    )
}

/// Refuses an origin a checkpoint cannot carry as its one first line.
pub(super) fn check_origin(origin: &str) -> Result<(), Failure> {
    strive_audit::check_origin(origin).map_err(|e| Failure::usage(format!("--origin: {e}")))
}

/// `strive export --format ocel`: an OCEL 2.0 log of the store's instance
/// events, every partition's, with the campaign's object mapping unless
/// `--ocel-map` names another. A bundle's options (a key, a checkpoint to
/// extend) do not apply to it and are refused.
fn export_ocel(db: &Path, args: &ExportArgs, filter: &Filter) -> Outcome {
    if args.key.is_some() || args.from_checkpoint.is_some() {
        return Err(Failure::usage(
            "--key and --from-checkpoint seal audit bundles; OCEL logs are not sealed \
             (export a bundle beside it to prove its events)",
        ));
    }
    let text = match &args.ocel_map {
        Some(path) => read_bounded(path, MAX_SMALL_FILE)?,
        None => strive_campaign::OCEL_MAPPING.to_owned(),
    };
    let mapping = strive_audit::Mapping::from_json(&text).map_err(|e| {
        let place = args
            .ocel_map
            .as_deref()
            .map_or("the campaign's OCEL mapping".to_owned(), |p| {
                p.display().to_string()
            });
        Failure::new("ocel-map", format!("{place}: {e}"))
    })?;
    let engine = open(db)?;
    check_filter(&engine, filter)?;
    let mut file = args.out.as_deref().map(OutFile::create).transpose()?;
    let sink: Box<dyn Write + '_> = match &mut file {
        Some(file) => Box::new(file),
        None => Box::new(output::stream()),
    };
    let started = Instant::now();
    let summary = store::export_ocel(&engine, sink, filter, mapping).map_err(export_failure)?;
    if let Some(file) = file {
        file.commit(true, 0o644)?;
    }
    tracing::info!(
        events = summary.events,
        objects = summary.objects,
        format = "ocel",
        seconds = started.elapsed().as_secs_f64(),
        "exported"
    );
    Ok(ExitCode::SUCCESS)
}

/// Refuses an export filter that names a workflow or instance the store
/// does not have: an empty export would look like a quiet history.
fn check_filter(engine: &Engine, filter: &Filter) -> Result<(), Failure> {
    if let Some(id) = &filter.instance
        && engine.instance(id)?.is_none()
    {
        return Err(Failure::new(
            "unknown_instance",
            format!(
                "no instance `{}`; check the id with `strive list`",
                strive_core::id::escape(id)
            ),
        ));
    }
    if let Some(workflow) = &filter.workflow
        && engine.versions(workflow)?.is_empty()
    {
        return Err(unknown_workflow(workflow));
    }
    Ok(())
}

/// Refuses a `--from-checkpoint` of another log (its origin differs, its
/// number of partitions differs, or a partition's root is not this log's
/// root of it at its size) or from this log's future (a partition of it is
/// larger than this log's). Roots are compared through consistency proofs
/// from the stored tiles, in O(log N) reads per partition.
fn check_earlier(
    engine: &Engine,
    from: &Checkpoint,
    path: &Path,
    origin: &str,
) -> Result<(), Failure> {
    let heads = engine.tree_heads().map_err(corrupt)?;
    let old = from
        .heads()
        .map_err(|e| Failure::new("checkpoint", format!("{}: {e}", path.display())))?;
    let problem = if from.origin != origin {
        format!(
            "is a checkpoint of the log `{}`, not of `{}`; pass --origin {} if that is this log",
            strive_core::id::escape(&from.origin),
            strive_core::id::escape(origin),
            strive_core::id::escape(&from.origin)
        )
    } else if old.len() != heads.len() {
        format!(
            "is a checkpoint of a log of {} partition(s), but this store has {}: it is not an \
             earlier checkpoint of this store",
            old.len(),
            heads.len()
        )
    } else if let Some(problem) = old
        .iter()
        .zip(&heads)
        .find_map(|(old, head)| earlier_problem(engine, old, head, heads.len() > 1).transpose())
    {
        problem?
    } else {
        return Ok(());
    };
    Err(Failure::new(
        "checkpoint",
        format!("{} {problem}", path.display()),
    ))
}

/// Why the kept head `old` of a partition is not an earlier head of this
/// store's partition with `head`, if it is not.
fn earlier_problem(
    engine: &Engine,
    old: &strive_core::PartitionHead,
    head: &strive_store::TreeHead,
    several: bool,
) -> Result<Option<String>, Failure> {
    let (log, of) = if several {
        (
            format!("partition {}'s log", old.partition),
            format!(" of partition {}", old.partition),
        )
    } else {
        ("this log".to_owned(), String::new())
    };
    if old.size > head.size {
        return Ok(Some(format!(
            "has {} events{of}, but {log} has only {}: it is not an earlier checkpoint of this store",
            old.size, head.size
        )));
    }
    let proof = match old.size {
        0 => Vec::new(),
        size => engine.consistency_proof_in(old.partition, size, head.size)?,
    };
    let extends =
        strive_core::verify_consistency(old.size, &old.root, head.size, &head.root, &proof).is_ok();
    Ok((!extends).then(|| {
        format!(
            "has the root of another log: the first {} events of {log} do not hash to it, so \
             it is not an earlier checkpoint of this store (or the store was rewritten since; \
             `strive verify --since` says which)",
            old.size
        )
    }))
}

fn unknown_workflow(workflow: &str) -> Failure {
    Failure::new(
        "unknown_workflow",
        format!("no workflow `{workflow}` (or no such version); see `strive versions`"),
    )
}

fn read_text(path: &Path) -> Result<String, Failure> {
    crate::files::read_bounded(path, crate::files::MAX_SMALL_FILE)
}

pub(super) fn read_signing_key(path: &Path) -> Result<SigningKey, Failure> {
    SigningKey::parse(&read_text(path)?).map_err(|e| {
        Failure::new(
            "key",
            format!("{}: {e}; make one with `strive keygen`", path.display()),
        )
    })
}

pub(super) fn read_verifier_key(path: &Path) -> Result<VerifierKey, Failure> {
    VerifierKey::parse(&read_text(path)?).map_err(|e| {
        Failure::new(
            "key",
            format!(
                "{}: {e}; pass the .pub file `strive keygen` wrote",
                path.display()
            ),
        )
    })
}

/// A checkpoint the auditor kept or was given, with what must hold of it.
struct Kept<'a> {
    /// The checkpoint file.
    checkpoint: Option<&'a Path>,
    /// The log key that must have signed it.
    key: Option<&'a Path>,
    /// The witness policy it must satisfy.
    policy: Option<&'a Path>,
}

/// A kept checkpoint as read, and who witnessed it when a policy asked.
struct Read {
    checkpoint: Checkpoint,
    witnessed: Option<String>,
}

/// Reads a checkpoint file, checking its signature when a key is given
/// and its cosignatures when a witness policy is.
fn read_checkpoint(path: &Path, kept: &Kept<'_>) -> Result<Read, Failure> {
    let text = read_text(path)?;
    let bad = |e: strive_audit::CheckpointError| {
        Failure::new("checkpoint", format!("{}: {e}", path.display()))
    };
    let checkpoint = match kept.key {
        Some(key) => Checkpoint::parse_verified(&text, &read_verifier_key(key)?).map_err(bad)?,
        None => Checkpoint::parse(&text).map_err(bad)?.checkpoint,
    };
    let witnessed = kept
        .policy
        .map(|policy| {
            let policy = super::witness::read_policy(policy)?;
            super::witness::check_policy(&policy, path, &text)
        })
        .transpose()?;
    Ok(Read {
        checkpoint,
        witnessed,
    })
}

fn print_problems(problems: &[Problem]) {
    for problem in problems {
        output::line(problem);
    }
}

/// `--at`: an RFC 3339 time, or a date meaning the end of that day (UTC).
fn parse_time(text: &str) -> Result<jiff::Timestamp, Failure> {
    // jiff reads a date out of a whole date-time too, so only a bare
    // YYYY-MM-DD is taken as a date.
    let date = (text.len() == 10)
        .then(|| text.parse::<jiff::civil::Date>().ok())
        .flatten();
    let Some(date) = date else {
        return crate::commands::parse_time("--at", text);
    };
    jiff::tz::TimeZone::UTC
        .to_timestamp(date.to_datetime(jiff::civil::time(23, 59, 59, 999_999_999)))
        .map_err(|_| {
            Failure::usage(format!(
                "--at {text:?} is outside the supported range of times, {} to {}",
                jiff::Timestamp::MIN,
                jiff::Timestamp::MAX
            ))
        })
}

fn replay(db: &Path, instance: &str, at_seq: Option<u64>, at: Option<&str>, json: bool) -> Outcome {
    let at = match (at_seq, at) {
        (Some(seq), _) => At::Seq(seq),
        (None, Some(text)) => At::Time(parse_time(text)?),
        (None, None) => At::End,
    };
    let engine = open(db)?;
    let store::Replay {
        replayed,
        matches_snapshot: matches,
        problems,
    } = store::replay(&engine, instance, at).map_err(|e| {
        let kind = match e {
            strive_audit::ReplayError::NotFound { .. } => "unknown_instance",
            _ => "replay",
        };
        Failure::new(kind, e.to_string())
    })?;
    let i = &replayed.instance;
    if json {
        output::json(&json!({
            "instance": i, "gseq": replayed.gseq,
            "matches_snapshot": matches, "problems": problems,
        }));
    } else {
        output::line(format!(
            "{} ({} v{}) replayed to #{} (gseq {})",
            i.id, i.workflow, i.version, i.seq, replayed.gseq
        ));
        output::line(format!(
            "  stage:    {}{}",
            i.stage,
            if i.finished { " (finished)" } else { "" }
        ));
        output::line(format!("  head:     {}", i.head));
        output::line(format!("  updated:  {}", i.updated_at));
        output::line(format!(
            "  data:     {}",
            serde_json::to_string_pretty(&i.data)
                .unwrap_or_default()
                .replace('\n', "\n            ")
        ));
        if matches == Some(true) {
            output::line("  equals the stored snapshot");
        }
        print_problems(&problems);
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify(db: &Path, kept: &Kept<'_>, options: VerifyOptions, json: bool) -> Outcome {
    let read = kept
        .checkpoint
        .map(|p| read_checkpoint(p, kept))
        .transpose()?;
    let witnessed = read.as_ref().and_then(|r| r.witnessed.clone());
    let since = read.map(|r| r.checkpoint);
    let engine = open(db)?;
    let bar = output::progress(engine.total_events(), "verifying");
    let started = Instant::now();
    let report = store::verify(&engine, VerifyOptions { since, ..options }, |read| {
        if let Some(bar) = &bar {
            bar.set_position(read);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    // A simulation's times are its own (issue #17): the auditor is told.
    let manual = engine.ran_on_manual_clock()?;
    if json {
        let mut value = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("ok".to_owned(), json!(report.ok()));
            map.insert("seconds".to_owned(), json!(seconds));
            map.insert("manual_clock".to_owned(), json!(manual));
            map.insert("witnessed".to_owned(), json!(witnessed));
        }
        output::json(&value);
    } else {
        print_problems(&report.problems);
        if manual {
            output::line(MANUAL_CLOCK_NOTE);
        }
        if let Some(witnessed) = &witnessed {
            output::line(format!("the checkpoint kept is {witnessed}"));
        }
        output::line(format!(
            "{report} ({:.1} MB in {seconds:.2} s)",
            report.bytes as f64 / 1e6
        ));
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn checkpoint(cli: &Cli, key: Option<&Path>, origin: &str, json: bool) -> Outcome {
    check_origin(origin)?;
    let key = key.map(read_signing_key).transpose()?;
    let checkpoint = match crate::client::Remote::from_cli(cli)? {
        Some(remote) => crate::client::checkpoint(&remote, origin)?,
        None => {
            let engine = open(&cli.db)?;
            // The stored Merkle tiles give the root in O(log N) reads;
            // `verify` recomputes it from the events.
            let heads = engine.partition_heads().map_err(corrupt)?;
            strive_store::fail_point!("checkpoint-middle");
            Checkpoint::of_heads(origin, &heads)
                .map_err(|e| Failure::new("corrupt", e.to_string()))?
        }
    };
    let note = checkpoint.to_note(key.as_ref());
    if json {
        output::json(&json!({
            "origin": checkpoint.origin, "size": checkpoint.size,
            "root": checkpoint.root.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "note": note,
        }));
    } else {
        // Without a signature the trailing blank line is dropped: the bare
        // body is a checkpoint too.
        output::line(note.trim_end_matches('\n'));
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(out: &Path, name: Option<&str>, json: bool) -> Outcome {
    let key = SigningKey::generate(name.unwrap_or(DEFAULT_ORIGIN))
        .map_err(|e| Failure::new("key", e.to_string()))?;
    // Two keys both named `strive` would make "no signature by key
    // `strive`" useless, so an unnamed key is named by its fingerprint.
    let key = match name {
        Some(_) => key,
        None => {
            let id = key.verifier().key_id();
            let fingerprint: String = id.iter().map(|b| format!("{b:02x}")).collect();
            key.renamed(&format!("{DEFAULT_ORIGIN}-{fingerprint}"))
                .map_err(|e| Failure::new("key", e.to_string()))?
        }
    };
    let public_path = PathBuf::from(format!("{}.pub", out.display()));
    // Keys inside the store would let whoever alters the store re-sign it;
    // the one rule for written files refuses that, and never overwrites.
    crate::files::write_whole(out, format!("{}\n", key.encode()).as_bytes(), false, 0o600)?;
    let verifier = key.verifier().encode();
    crate::files::write_whole(
        &public_path,
        format!("{verifier}\n").as_bytes(),
        false,
        0o644,
    )?;
    if json {
        output::json(&json!({
            "private_key": out, "public_key_file": public_path, "public_key": verifier,
            "name": key.name(),
        }));
    } else {
        output::line(format!(
            "wrote {} (private: keep it outside the store) and {} (give it to auditors):",
            out.display(),
            public_path.display()
        ));
        output::line(verifier);
    }
    Ok(ExitCode::SUCCESS)
}

fn corrupt(error: strive_store::StorageError) -> Failure {
    Failure::new(
        "corrupt",
        format!("{error}; run `strive verify` to see what is wrong"),
    )
}

/// An export that stopped: a closed pipe ends quietly, as every
/// command's output does; a store that cannot be read says where to look.
fn export_failure(error: store::ExportError) -> Failure {
    match error {
        store::ExportError::Write(error) => {
            output::quiet_on_closed_pipe(&error);
            io_failure("cannot write the export", error)
        }
        store::ExportError::Storage(error) => corrupt(error),
        other => Failure::new("export", other.to_string()),
    }
}

fn verify_bundle(file: &Path, kept: &Kept<'_>, json: bool) -> Outcome {
    let checkpoint = kept
        .checkpoint
        .ok_or_else(|| Failure::usage("--checkpoint is required"))?;
    let Read {
        checkpoint: trusted,
        witnessed,
    } = read_checkpoint(checkpoint, kept)?;
    let input =
        File::open(file).map_err(|e| io_failure(&format!("cannot open {}", file.display()), e))?;
    let report = strive_audit::verify_bundle(BufReader::new(input), &trusted)
        .map_err(|e| Failure::new("io", e.to_string()))?;
    if json {
        let mut value = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("ok".to_owned(), json!(report.ok()));
            map.insert("witnessed".to_owned(), json!(witnessed));
        }
        output::json(&value);
    } else {
        print_problems(&report.problems);
        if let Some(witnessed) = &witnessed {
            output::line(format!("the checkpoint kept is {witnessed}"));
        }
        output::line(format!(
            "{} events of {} subjects, {} heads proven in a log of {} events{}{}: {}",
            report.events,
            report.subjects,
            report.proven,
            report.size,
            if report.replayed {
                ", replayed"
            } else {
                ", not replayed (exported --since)"
            },
            if report.newer_than_checkpoint > 0 {
                format!(
                    "; {} events are newer than your checkpoint",
                    report.newer_than_checkpoint
                )
            } else {
                String::new()
            },
            if report.ok() {
                "everything holds".to_owned()
            } else {
                format!("{} problem(s)", report.problems.len())
            }
        ));
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
