//! What each command does: call the libraries and hand results to
//! `output`. One module per family of commands; this one dispatches the
//! parsed command line to them and holds what several share.

pub(crate) mod audit;
pub(crate) mod campaign;
pub(crate) mod deadlines;
pub(crate) mod definitions;
pub(crate) mod grants;
pub(crate) mod instances;
pub(crate) mod keys;
pub(crate) mod lifecycle;
pub(crate) mod migrate;
pub(crate) mod publish;
pub(crate) mod receipt;
pub(crate) mod serve;
pub(crate) mod simulate;
pub(crate) mod store;
pub(crate) mod stress;
pub(crate) mod witness;

use std::path::Path;

use serde_json::Value;
use strive_store::{Actor, Engine, Operation, Options};

use crate::cli::{ActorArgs, Cli, Command};
use crate::failure::{Failure, Outcome};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Outcome {
    let json = cli.command.json();
    let result = dispatch(&cli, json);
    result.map_err(|failure| Failure { json, ..failure })
}

fn dispatch(cli: &Cli, json: bool) -> Outcome {
    crate::client::check_supported(cli)?;
    match &cli.command {
        Command::Validate { files, .. } => definitions::validate(files, json),
        Command::Graph { file, lang, format } => definitions::graph(file, *lang, *format),
        Command::Schema => definitions::schema(),
        Command::Deploy { files, actor, .. } => definitions::deploy(&cli.db, files, actor, json),
        Command::Init { partitions, .. } => store::init(&cli.db, *partitions, json),
        Command::Start(args) => instances::start(cli, args, json),
        Command::Fire(args) => instances::fire(cli, args, json),
        Command::Suspend(args) => lifecycle::run(cli, Operation::Suspend, args, json),
        Command::Resume(args) => lifecycle::run(cli, Operation::Resume, args, json),
        Command::Cancel(args) => lifecycle::run(cli, Operation::Cancel, args, json),
        Command::Terminate(args) => lifecycle::run(cli, Operation::Terminate, args, json),
        Command::Show { instance, .. } => instances::show(cli, instance, json),
        Command::List(args) => instances::list(cli, args, json),
        Command::History { instance, .. } => instances::history(cli, instance, json),
        Command::Versions { workflow, .. } => instances::versions(cli, workflow.as_deref(), json),
        Command::Tick { now, .. } => deadlines::tick(cli, now.as_deref(), json),
        Command::Serve(args) => serve::serve(&cli.db, args),
        Command::Token(command) => serve::token(&cli.db, command, json),
        Command::Stress {
            threads,
            max,
            buffered,
            prefix,
        } => stress::run(&cli.db, *threads, *max, *buffered, prefix.as_deref()),
        Command::Simulate(args) => simulate::simulate(&cli.db, args),
        Command::Migrate(args) => migrate::migrate(cli, args, json),
        Command::Audit(command) => audit::run(cli, command, json),
        Command::Campaign(command) => campaign::run(cli, command, json),
        Command::Store(command) => store::run(cli, command, json),
        Command::Grant(command) => grants::run(cli, command, json),
        Command::Key(command) => keys::run(cli, command, json),
        Command::Witness(command) => witness::run(&cli.db, command, json),
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
pub(crate) fn actor_of(cli: &Cli, args: &ActorArgs) -> Result<Actor, Failure> {
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
pub(crate) fn parse_json(flag: &str, text: Option<&str>) -> Result<Value, Failure> {
    match text {
        None => Ok(Value::Null),
        Some(text) => strive_core::json::from_str(text)
            .map_err(|e| Failure::usage(format!("{flag} is not valid JSON: {e}"))),
    }
}

/// Parses `--now`, `--at` or `--as-of` with the core's one time reader.
pub(crate) fn parse_time(flag: &str, text: &str) -> Result<jiff::Timestamp, Failure> {
    strive_core::time::parse(text).map_err(|e| Failure::usage(format!("{flag}: {e}")))
}

/// Prints a user-supplied string escaped (issue #17): a newline or a bidi
/// control in an id must not forge or reorder a line of text output.
pub(crate) fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    strive_core::id::escape(text)
}
