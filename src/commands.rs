//! What each command does: call the libraries and hand results to `output`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value, json};
use strive_core::{Catalog, Diagnostic, Severity};
use strive_store::{
    Actor, CommandError, CommandOptions, DeployError, Engine, ListQuery, OpenError, Options,
    StorageError,
};

use crate::cli::{ActorArgs, Cli, Command, Format};
use crate::output;

/// Why a command failed, ready to print.
#[derive(Debug)]
pub struct Failure {
    /// A stable, snake-case kind for tools.
    pub kind: &'static str,
    /// What happened and what to do.
    pub message: String,
    /// Structured details for `--format json`.
    pub details: Option<Value>,
    /// Whether to print JSON.
    pub json: bool,
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            details: None,
            json: false,
            code: 1,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            ..Failure::new("usage", message)
        }
    }

    /// 1 for refusals and failures, 2 for usage errors.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl From<StorageError> for Failure {
    fn from(error: StorageError) -> Failure {
        Failure::new("storage", error.to_string())
    }
}

impl From<OpenError> for Failure {
    fn from(error: OpenError) -> Failure {
        let kind = match error {
            OpenError::Locked { .. } => "locked",
            OpenError::UnsupportedFormat { .. } => "unsupported_format",
            OpenError::NotEmpty { .. } => "not_empty",
            OpenError::NotAStore { .. } => "not_a_store",
            OpenError::Io { .. } => "io",
            _ => "open",
        };
        let mut message = error.to_string();
        if kind == "locked" {
            // Issue #11: a running `strive serve` holds its store.
            message.push_str("; if `strive serve` holds it, send the command there with --server URL --token TOKEN");
        }
        Failure::new(kind, message)
    }
}

impl From<DeployError> for Failure {
    fn from(error: DeployError) -> Failure {
        let (kind, details) = match &error {
            DeployError::Invalid { diagnostics } => {
                ("invalid_definition", serde_json::to_value(diagnostics).ok())
            }
            DeployError::NotGranted { missing } => {
                ("not_granted", serde_json::to_value(missing).ok())
            }
            _ => ("invalid_definition", None),
        };
        Failure {
            details,
            ..Failure::new(kind, error.to_string())
        }
    }
}

impl From<CommandError> for Failure {
    fn from(error: CommandError) -> Failure {
        let (kind, details) = match &error {
            CommandError::Rejected { reason, .. } => {
                ("rejected", serde_json::to_value(reason.as_ref()).ok())
            }
            CommandError::ParentRejected { reason, .. } => (
                "parent_rejected",
                serde_json::to_value(reason.as_ref()).ok(),
            ),
            CommandError::UnknownInstance { .. } => ("unknown_instance", None),
            CommandError::UnknownWorkflow { .. } => ("unknown_workflow", None),
            CommandError::InstanceExists { .. } => ("instance_exists", None),
            CommandError::Conflict {
                expected, actual, ..
            } => (
                "conflict",
                Some(json!({"expected": expected, "actual": actual})),
            ),
            CommandError::CommandIdReused { .. } => ("command_id_reused", None),
            CommandError::LimitExceeded { .. } => ("limit_exceeded", None),
            CommandError::InvalidId { .. } => ("invalid_id", None),
            CommandError::ReservedActor { .. } => ("reserved_actor", None),
            CommandError::NotDue { .. } => ("not_due", None),
            CommandError::Confusable { .. } => ("confusable_id", None),
            CommandError::NotGranted { missing } => {
                ("not_granted", serde_json::to_value(missing).ok())
            }
            CommandError::Storage(_) => ("storage", None),
            _ => ("command", None),
        };
        Failure {
            details,
            ..Failure::new(kind, error.to_string())
        }
    }
}

type Outcome = Result<ExitCode, Failure>;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Outcome {
    let json = cli.format == Some(Format::Json);
    let result = dispatch(&cli, json);
    result.map_err(|failure| Failure { json, ..failure })
}

fn dispatch(cli: &Cli, json: bool) -> Outcome {
    crate::client::check_supported(cli)?;
    match &cli.command {
        Command::Validate { files } => validate(files, json),
        Command::Graph { file, lang } => {
            let (_, parsed) = read_definition(file)?;
            let text = match cli.format {
                Some(Format::Dot) => strive_core::to_dot(&parsed.definition, lang.code()),
                None | Some(Format::Mermaid) => {
                    strive_core::to_mermaid(&parsed.definition, lang.code())
                }
                Some(other) => {
                    return Err(Failure::usage(format!(
                        "graph prints --format dot or mermaid, not {other:?}"
                    )));
                }
            };
            output::line(text.trim_end());
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            output::json(&strive_core::json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy { files, actor } => deploy(&cli.db, files, actor, json),
        Command::Init { partitions } => init(&cli.db, *partitions, json),
        Command::Start {
            workflow,
            instance,
            actor,
            data,
            parent,
            command_id,
        } => {
            let engine = crate::client::store_for_writing(cli)?;
            let data = match parse_json("--data", data.as_deref())? {
                Value::Null => Map::new(),
                Value::Object(map) => map,
                _ => return Err(Failure::usage("--data must be a JSON object")),
            };
            let options = CommandOptions {
                expected_seq: None,
                command_id: command_id.clone(),
            };
            let outcome = engine.start(
                workflow,
                instance,
                &actor_of(cli, actor)?,
                data,
                parent.as_deref(),
                options,
            )?;
            print_outcome(&outcome, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Fire {
            instance,
            event,
            actor,
            payload,
            expect_seq,
            command_id,
        } => {
            let engine = crate::client::store_for_writing(cli)?;
            let payload = parse_json("--payload", payload.as_deref())?;
            let options = CommandOptions {
                expected_seq: *expect_seq,
                command_id: command_id.clone(),
            };
            let outcome = engine.fire(instance, event, &actor_of(cli, actor)?, payload, options)?;
            print_outcome(&outcome, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { instance } => {
            let engine = crate::client::store(cli)?;
            let snapshot = engine.instance(instance)?.ok_or_else(|| {
                Failure::new(
                    "unknown_instance",
                    format!(
                        "no instance `{}`; check the id with `strive list`",
                        shown(instance)
                    ),
                )
            })?;
            if json {
                output::json(&snapshot);
            } else {
                let i = &snapshot.instance;
                output::line(format!("{} ({} v{})", shown(&i.id), i.workflow, i.version));
                output::line(format!(
                    "  stage:    {}{}",
                    i.stage,
                    if i.finished { " (finished)" } else { "" }
                ));
                output::line(format!("  seq:      {}", i.seq));
                output::line(format!("  head:     {}", i.head));
                output::line(format!("  started:  {}", i.created_at));
                output::line(format!("  updated:  {}", i.updated_at));
                if let Some(parent) = &i.parent {
                    output::line(format!("  parent:   {}", shown(parent)));
                }
                if let Some(due) = &snapshot.due {
                    output::line(format!("  deadline: {} fires `{}`", due.at, due.event));
                }
                if !snapshot.children.is_empty() {
                    output::line(format!(
                        "  children: {}",
                        shown(&snapshot.children.join(", "))
                    ));
                }
                output::line(format!(
                    "  data:     {}",
                    serde_json::to_string_pretty(&i.data)
                        .unwrap_or_default()
                        .replace('\n', "\n            ")
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List {
            workflow,
            stage,
            parent,
            after,
            limit,
        } => {
            if *limit == 0 {
                return Err(Failure::usage(
                    "--limit 0 would list nothing; give 1 or more",
                ));
            }
            if stage.is_some() && workflow.is_none() && parent.is_none() {
                return Err(Failure::usage("--stage needs --workflow (or --parent)"));
            }
            let engine = crate::client::store(cli)?;
            let page = engine.list(&ListQuery {
                workflow: workflow.clone(),
                stage: stage.clone(),
                parent: parent.clone(),
                after: after.clone(),
                limit: Some(*limit),
            })?;
            if json {
                output::json(&page);
            } else {
                for s in &page.items {
                    let i = &s.instance;
                    output::line(format!(
                        "{:<24} {:<20} {:<16} seq {:<4} {}",
                        shown(&i.id),
                        i.workflow,
                        i.stage,
                        i.seq,
                        i.updated_at
                    ));
                }
                if let Some(next) = &page.next {
                    output::line(format!("... more: --after {}", shown(next)));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::History { instance } => {
            let engine = crate::client::store(cli)?;
            let history = engine.history(instance)?;
            if history.is_empty() && engine.instance(instance)?.is_none() {
                return Err(Failure::new(
                    "unknown_instance",
                    format!("no history for `{}`", shown(instance)),
                ));
            }
            if json {
                let events: Vec<Value> = history
                    .iter()
                    .map(|e| json!({"hash": e.hash, "event": e.event}))
                    .collect();
                output::json(&events);
            } else {
                for stored in &history {
                    let e = &stored.event;
                    let from = e.from.as_deref().unwrap_or("-");
                    output::line(format!(
                        "#{:<3} g{:<6} {} {}[{}] {} -> {} {} {}",
                        e.seq,
                        e.gseq,
                        e.at,
                        shown(&e.actor.id),
                        shown(&e.actor.roles.join(",")),
                        from,
                        if e.to.is_empty() { "-" } else { &e.to },
                        e.event,
                        if e.payload.is_null() {
                            String::new()
                        } else {
                            shown(&e.payload.to_string()).into_owned()
                        }
                    ));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Versions { workflow } => {
            let engine = crate::client::store(cli)?;
            let infos = match workflow {
                Some(workflow) => engine.versions(workflow)?,
                None => engine.workflows()?,
            };
            if let (Some(workflow), true) = (workflow, infos.is_empty()) {
                return Err(Failure::new(
                    "unknown_workflow",
                    format!(
                        "no workflow `{}` is deployed; see `strive versions`",
                        shown(workflow)
                    ),
                ));
            }
            if json {
                output::json(&infos);
            } else {
                for info in &infos {
                    output::line(format!(
                        "{} v{} {} deployed {}",
                        info.workflow, info.version, info.hash, info.deployed_at
                    ));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => crate::serve_cmd::serve(&cli.db, args),
        Command::Token(command) => crate::serve_cmd::token(&cli.db, command, json),
        Command::Stress {
            threads,
            max,
            buffered,
        } => crate::stress::run(&cli.db, *threads, *max, *buffered),
        Command::Audit(command) => crate::audit_cmd::run(cli, command, json),
        Command::Campaign(command) => crate::campaign_cmd::run(cli, command, json),
        Command::Store(command) => crate::store_cmd::run(cli, command, json),
        Command::Grant(command) => crate::grant_cmd::run(&cli.db, command, json),
        Command::Tick { now } => {
            let clock = jiff::Timestamp::now();
            let now = match now {
                Some(text) => parse_time("--now", text)?,
                None => clock,
            };
            // The clock is the engine's: a deadline fires when it is due,
            // not when a caller says it is (issue #17).
            if now > clock {
                return Err(Failure::new(
                    "future_time",
                    format!(
                        "--now {now} is after the clock ({clock}); deadlines fire when they are due, \
                         so give a time up to now or leave --now out"
                    ),
                ));
            }
            let engine = open_for_writing(&cli.db)?;
            let fired = engine.fire_due(now)?;
            if json {
                let rows: Vec<Value> = fired
                    .iter()
                    .map(|f| match &f.result {
                        Ok(outcome) => json!({"instance": f.instance, "event": f.event, "due": f.due, "outcome": outcome}),
                        Err(error) => json!({"instance": f.instance, "event": f.event, "due": f.due, "error": error.to_string()}),
                    })
                    .collect();
                output::json(&rows);
            } else {
                for f in &fired {
                    match &f.result {
                        Ok(outcome) => output::line(format!(
                            "{}: {} (due {}) -> {}",
                            f.instance, f.event, f.due, outcome.stage
                        )),
                        Err(error) => output::line(format!(
                            "{}: {} (due {}) refused: {error}",
                            f.instance, f.event, f.due
                        )),
                    }
                }
                output::line(format!("{} deadline(s) fired", fired.len()));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Opens the existing store at `path` for a command that only reads it.
pub(crate) fn open(path: &Path) -> Result<crate::files::Opened, Failure> {
    crate::files::open_existing(path)
}

/// Opens the store at `path` for a command that writes, creating it in a
/// missing or empty directory.
pub(crate) fn open_for_writing(path: &Path) -> Result<Engine, Failure> {
    crate::files::open_or_create(path, Options::default())
}

/// The actor of a local command; with --server the token's actor acts
/// and `--actor` and `--role` are not needed.
fn actor_of(cli: &Cli, args: &ActorArgs) -> Result<Actor, Failure> {
    match &args.actor {
        Some(id) if !args.roles.is_empty() => Ok(Actor {
            id: id.clone(),
            roles: args.roles.clone(),
        }),
        _ if cli.server.is_some() => Ok(Actor::new("", &[])),
        _ => Err(Failure::usage(
            "--actor and --role are required (with --server, the token's actor acts)",
        )),
    }
}

/// Parses a payload or initial data given as text, with the one strict
/// JSON reader (a key given twice is refused, with its pointer).
fn parse_json(flag: &str, text: Option<&str>) -> Result<Value, Failure> {
    match text {
        None => Ok(Value::Null),
        Some(text) => strive_core::json::from_str(text)
            .map_err(|e| Failure::usage(format!("{flag} is not valid JSON: {e}"))),
    }
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

/// `strive init`: creates an empty store where nothing else is.
fn init(db: &Path, partitions: u32, json: bool) -> Outcome {
    if partitions != 1 {
        return Err(Failure::usage(format!(
            "--partitions {partitions}: this strive makes stores of 1 partition only \
             (storage format 2 brings more); leave --partitions out"
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
    drop(open_for_writing(db)?);
    if json {
        output::json(&json!({"created": db.display().to_string(), "partitions": partitions}));
    } else {
        output::line(format!(
            "created an empty strive store at {} ({partitions} partition); deploy workflows with `strive deploy --db {} FILE...`",
            db.display(),
            db.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `--now`, `--at` or `--as-of` with the core's one time reader.
pub(crate) fn parse_time(flag: &str, text: &str) -> Result<jiff::Timestamp, Failure> {
    strive_core::time::parse(text).map_err(|e| Failure::usage(format!("{flag}: {e}")))
}

/// Prints a user-supplied string escaped (issue #17): a newline or a bidi
/// control in an id must not forge or reorder a line of text output.
fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    strive_core::id::escape(text)
}

/// Reads and parses one definition; diagnostics become the failure.
fn read_definition(path: &Path) -> Result<(String, strive_core::Parsed), Failure> {
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

fn validate(files: &[PathBuf], json: bool) -> Outcome {
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

fn deploy(db: &Path, files: &[PathBuf], actor: &str, json: bool) -> Outcome {
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

fn print_outcome(outcome: &strive_store::Outcome, json: bool) {
    if json {
        output::json(outcome);
    } else {
        let replayed = if outcome.replayed {
            " (retry: original outcome)"
        } else {
            ""
        };
        output::line(format!(
            "{}: {} -> {} (seq {}, gseq {}, hash {}){replayed}",
            shown(&outcome.instance),
            outcome.event,
            outcome.stage,
            outcome.seq,
            outcome.gseq,
            outcome.hash
        ));
    }
}
