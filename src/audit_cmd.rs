//! The auditor's commands (issue #4): replay, verify, checkpoint, keygen,
//! export, export-model and verify-bundle. Glue: the work is in
//! `strive-audit`; `source` feeds it from the store.

pub(crate) mod source;

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Subcommand;
use serde_json::{Value, json};
use strive_audit::{
    At, BundleWriter, Checkpoint, CsvWriter, Filter, Problem, SigningKey, VerifierKey,
    VerifyOptions, XesWriter,
};
use strive_store::{Engine, ListQuery, Snapshot};

use crate::cli::{Cli, Format};
use crate::commands::{Failure, open};
use crate::files::OutFile;
use crate::output;

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
        /// Threads to verify on: 0 for one per core, 1 for sequentially
        /// (the report is the same).
        #[arg(long, default_value_t = 0)]
        jobs: usize,
    },
    /// Prints a checkpoint of the log (origin, size, root), optionally signed.
    Checkpoint {
        /// The signing key file (from `strive keygen`), kept outside the store.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The log's name in the checkpoint.
        #[arg(long, default_value = DEFAULT_ORIGIN)]
        origin: String,
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
    },
    /// Streams events out: --format jsonl (the audit bundle, default), csv or xes.
    Export {
        /// Only instances of this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only this instance.
        #[arg(long)]
        instance: Option<String>,
        /// Only events from this global position on.
        #[arg(long)]
        since: Option<u64>,
        /// Write here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Sign the bundle's checkpoint with this key.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The log's name in the bundle's checkpoint.
        #[arg(long, default_value = DEFAULT_ORIGIN)]
        origin: String,
        /// Add a consistency proof from this earlier checkpoint to the bundle.
        #[arg(long)]
        from_checkpoint: Option<PathBuf>,
    },
    /// Writes a workflow definition as a PNML Petri net.
    ExportModel {
        /// The workflow.
        workflow: String,
        /// The version; the latest when absent.
        #[arg(long)]
        version: Option<u32>,
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
    },
}

type Outcome = Result<ExitCode, Failure>;

pub fn run(cli: &Cli, command: &AuditCommand, json: bool) -> Outcome {
    match command {
        AuditCommand::Replay {
            instance,
            at_seq,
            at,
        } => replay(&cli.db, instance, *at_seq, at.as_deref(), json),
        AuditCommand::Verify {
            since,
            public_key,
            jobs,
        } => match crate::client::Remote::from_cli(cli)? {
            Some(remote) => crate::client::verify(&remote, json),
            None => verify(
                &cli.db,
                since.as_deref(),
                public_key.as_deref(),
                *jobs,
                json,
            ),
        },
        AuditCommand::Checkpoint { key, origin } => checkpoint(cli, key.as_deref(), origin, json),
        AuditCommand::Keygen { out, name } => keygen(out, name.as_deref(), json),
        AuditCommand::Export {
            workflow,
            instance,
            since,
            out,
            key,
            origin,
            from_checkpoint,
        } => {
            let filter = Filter {
                workflow: workflow.clone(),
                instance: instance.clone(),
                since: *since,
            };
            let signing = key.as_deref().map(read_signing_key).transpose()?;
            check_origin(origin)?;
            let from = from_checkpoint
                .as_deref()
                .map(|p| read_checkpoint(p, None))
                .transpose()?;
            let engine = open(&cli.db)?;
            check_filter(&engine, &filter)?;
            if let (Some(from), Some(path)) = (&from, from_checkpoint) {
                check_earlier(from, path, origin, engine.last_gseq())?;
            }
            let mut file = out.as_deref().map(OutFile::create).transpose()?;
            let sink: Box<dyn Write + '_> = match &mut file {
                Some(file) => Box::new(file),
                None => Box::new(output::stream()),
            };
            let started = Instant::now();
            let (events, what) = match cli.format {
                None | Some(Format::Jsonl) => export_bundle(
                    &engine,
                    sink,
                    filter,
                    origin,
                    signing.as_ref(),
                    from.as_ref(),
                )?,
                Some(Format::Csv) => (export_csv(&engine, sink, &filter)?, "csv"),
                Some(Format::Xes) => (export_xes(&engine, sink, &filter)?, "xes"),
                Some(other) => {
                    return Err(Failure::usage(format!(
                        "export writes --format jsonl, csv or xes, not {other:?}"
                    )));
                }
            };
            if let Some(file) = file {
                file.commit(true, 0o644)?;
            }
            tracing::info!(
                events,
                format = what,
                seconds = started.elapsed().as_secs_f64(),
                "exported"
            );
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::ExportModel { workflow, version } => {
            match cli.format {
                None | Some(Format::Pnml) => {}
                Some(other) => {
                    return Err(Failure::usage(format!(
                        "export-model writes --format pnml, not {other:?}"
                    )));
                }
            }
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
        AuditCommand::VerifyBundle {
            file,
            checkpoint,
            public_key,
        } => verify_bundle(file, checkpoint, public_key.as_deref(), json),
    }
}

fn io_failure(what: &str, error: std::io::Error) -> Failure {
    Failure::new(
        "io",
        format!("{what}: {}", strive_store::describe_io(&error)),
    )
}

/// Refuses an origin a checkpoint cannot carry as its one first line.
fn check_origin(origin: &str) -> Result<(), Failure> {
    strive_audit::check_origin(origin).map_err(|e| Failure::usage(format!("--origin: {e}")))
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

/// Refuses a `--from-checkpoint` of another log (its origin differs) or
/// from this log's future (it is larger than the log).
fn check_earlier(from: &Checkpoint, path: &Path, origin: &str, size: u64) -> Result<(), Failure> {
    let problem = if from.origin != origin {
        format!(
            "is a checkpoint of the log `{}`, not of `{}`; pass --origin {} if that is this log",
            strive_core::id::escape(&from.origin),
            strive_core::id::escape(origin),
            strive_core::id::escape(&from.origin)
        )
    } else if from.size > size {
        format!(
            "has {} events, but this log has only {size}: it is not an earlier checkpoint of this store",
            from.size
        )
    } else {
        return Ok(());
    };
    Err(Failure::new(
        "checkpoint",
        format!("{} {problem}", path.display()),
    ))
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

fn read_signing_key(path: &Path) -> Result<SigningKey, Failure> {
    SigningKey::parse(&read_text(path)?).map_err(|e| {
        Failure::new(
            "key",
            format!("{}: {e}; make one with `strive keygen`", path.display()),
        )
    })
}

fn read_verifier_key(path: &Path) -> Result<VerifierKey, Failure> {
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

/// Reads a checkpoint file, checking its signature when a key is given.
fn read_checkpoint(path: &Path, key: Option<&Path>) -> Result<Checkpoint, Failure> {
    let text = read_text(path)?;
    let bad = |e: strive_audit::CheckpointError| {
        Failure::new("checkpoint", format!("{}: {e}", path.display()))
    };
    match key {
        Some(key) => Checkpoint::parse_verified(&text, &read_verifier_key(key)?).map_err(bad),
        None => Ok(Checkpoint::parse(&text).map_err(bad)?.checkpoint),
    }
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
    let events = scoped_events(&engine, instance)?
        .into_iter()
        .map(|e| Ok::<_, strive_store::StorageError>((e.hash, e.bytes)));
    let replayed = strive_audit::replay(events, instance, at).map_err(|e| {
        let kind = match e {
            strive_audit::ReplayError::NotFound { .. } => "unknown_instance",
            _ => "replay",
        };
        Failure::new(kind, e.to_string())
    })?;
    let mut problems = replayed.problems.clone();
    // The whole history must give the stored snapshot.
    let mut matches = None;
    if at == At::End {
        let differences = match engine.instance(instance)? {
            Some(snapshot) => strive_audit::differences(&replayed.instance, &snapshot.instance),
            None => vec!["the store has no snapshot of it".to_owned()],
        };
        matches = Some(differences.is_empty());
        if !differences.is_empty() {
            problems.push(
                Problem::new(
                    strive_audit::ProblemCode::SnapshotMismatch,
                    differences.join("; "),
                )
                .on(instance),
            );
        }
    }
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

/// The events a replay of `instance` reads, in log order: every deployment
/// (definitions), the instance's own history and its descendants' (guards
/// may read children), each read through its chain, so replaying one
/// instance costs its own events, not the whole log (issue #10).
fn scoped_events(
    engine: &Engine,
    instance: &str,
) -> Result<Vec<strive_store::StoredEvent>, Failure> {
    let mut events = Vec::new();
    for workflow in engine.workflows()? {
        let subject = format!(
            "{}{}",
            strive_core::WORKFLOW_SUBJECT_PREFIX,
            workflow.workflow
        );
        events.extend(engine.history(&subject).map_err(corrupt)?);
    }
    let mut pending = vec![instance.to_owned()];
    while let Some(id) = pending.pop() {
        events.extend(engine.history(&id).map_err(corrupt)?);
        let mut after = None;
        loop {
            let page = engine.list(&ListQuery {
                parent: Some(id.clone()),
                after: after.take(),
                limit: Some(512),
                ..ListQuery::default()
            })?;
            pending.extend(page.items.into_iter().map(|s| s.instance.id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    }
    events.sort_by_key(|e| e.event.gseq);
    Ok(events)
}

fn verify(db: &Path, since: Option<&Path>, key: Option<&Path>, jobs: usize, json: bool) -> Outcome {
    let since = since.map(|p| read_checkpoint(p, key)).transpose()?;
    let engine = open(db)?;
    let bar = output::progress(engine.last_gseq(), "verifying");
    let started = Instant::now();
    let report = source::verify(
        &engine,
        VerifyOptions {
            since,
            jobs,
            ..VerifyOptions::default()
        },
        |read| {
            if let Some(bar) = &bar {
                bar.set_position(read);
            }
        },
    );
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    if json {
        let mut value = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("ok".to_owned(), json!(report.ok()));
            map.insert("seconds".to_owned(), json!(seconds));
        }
        output::json(&value);
    } else {
        print_problems(&report.problems);
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
            let head = engine.tree_head().map_err(corrupt)?;
            strive_store::fail_point!("checkpoint-middle");
            Checkpoint::new(origin, head.size, head.root)
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

fn write_failure(error: std::io::Error) -> Failure {
    output::quiet_on_closed_pipe(&error);
    io_failure("cannot write the export", error)
}

fn export_bundle(
    engine: &Engine,
    sink: Box<dyn Write + '_>,
    filter: Filter,
    origin: &str,
    key: Option<&SigningKey>,
    from: Option<&Checkpoint>,
) -> Result<(u64, &'static str), Failure> {
    let prover = Box::new(StoreProver(engine.clone()));
    let mut writer = BundleWriter::with_prover(sink, filter, prover).map_err(write_failure)?;
    for item in engine.events(1) {
        let stored = item.map_err(corrupt)?;
        writer
            .event(&stored.hash, &stored.bytes, &stored.event)
            .map_err(write_failure)?;
    }
    strive_store::fail_point!("export-middle");
    for id in writer.instances() {
        if let Some(snapshot) = engine.instance(&id)? {
            writer
                .snapshot(&snapshot.instance, snapshot.due.as_ref())
                .map_err(write_failure)?;
        }
    }
    let (_, _, summary) = writer.finish(origin, key, from).map_err(write_failure)?;
    Ok((summary.events, "jsonl"))
}

/// The store's Merkle tiles as a bundle's source of proofs (O(log N) reads
/// each), so an export never holds the tree.
struct StoreProver(Engine);

impl strive_audit::Prover for StoreProver {
    fn inclusion(&self, index: u64, size: u64) -> std::io::Result<Vec<strive_audit::Hash>> {
        self.0
            .inclusion_proof(index + 1, size)
            .map_err(std::io::Error::other)
    }

    fn consistency(&self, old: u64, new: u64) -> std::io::Result<Vec<strive_audit::Hash>> {
        self.0
            .consistency_proof(old, new)
            .map_err(std::io::Error::other)
    }
}

fn export_csv(engine: &Engine, sink: Box<dyn Write + '_>, filter: &Filter) -> Result<u64, Failure> {
    let mut writer = CsvWriter::new(sink).map_err(write_failure)?;
    for item in engine.events(filter.since.unwrap_or(1)) {
        let stored = item.map_err(corrupt)?;
        if filter.matches(&stored.event) {
            writer
                .row(&stored.hash, &stored.event)
                .map_err(write_failure)?;
        }
    }
    Ok(writer.finish().map_err(write_failure)?.1)
}

/// XES groups events by trace, so it walks instances (in id order) and
/// reads one history at a time.
fn export_xes(engine: &Engine, sink: Box<dyn Write + '_>, filter: &Filter) -> Result<u64, Failure> {
    let name = filter.workflow.as_deref().unwrap_or("strive");
    let mut writer = XesWriter::new(sink, name).map_err(write_failure)?;
    let mut trace = |snapshot: &Snapshot| -> Result<(), Failure> {
        let history = engine.history(&snapshot.instance.id).map_err(corrupt)?;
        let events: Vec<(&str, &strive_core::Event)> = history
            .iter()
            .filter(|e| filter.matches(&e.event))
            .map(|e| (e.hash.as_str(), &e.event))
            .collect();
        // With --since, an instance with nothing new gets no empty trace.
        if events.is_empty() {
            return Ok(());
        }
        writer
            .trace(&snapshot.instance, events)
            .map_err(write_failure)
    };
    match &filter.instance {
        Some(id) => {
            let snapshot = engine
                .instance(id)?
                .ok_or_else(|| Failure::new("unknown_instance", format!("no instance `{id}`")))?;
            trace(&snapshot)?;
        }
        None => {
            let mut after = None;
            loop {
                let page = engine.list(&ListQuery {
                    workflow: filter.workflow.clone(),
                    after: after.take(),
                    limit: Some(512),
                    ..ListQuery::default()
                })?;
                for snapshot in &page.items {
                    trace(snapshot)?;
                }
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
        }
    }
    Ok(writer.finish().map_err(write_failure)?.1)
}

fn verify_bundle(file: &Path, checkpoint: &Path, key: Option<&Path>, json: bool) -> Outcome {
    let trusted = read_checkpoint(checkpoint, key)?;
    let input =
        File::open(file).map_err(|e| io_failure(&format!("cannot open {}", file.display()), e))?;
    let report = strive_audit::verify_bundle(BufReader::new(input), &trusted)
        .map_err(|e| Failure::new("io", e.to_string()))?;
    if json {
        let mut value = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("ok".to_owned(), json!(report.ok()));
        }
        output::json(&value);
    } else {
        print_problems(&report.problems);
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
