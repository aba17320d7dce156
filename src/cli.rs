//! The command line, declared with clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// strive: an embedded workflow engine with a verifiable audit trail.
#[derive(Debug, Parser)]
#[command(name = "strive", version, about, long_about = None)]
pub struct Cli {
    /// The database: a directory (sled), or a PostgreSQL database URL,
    /// postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, global = true, env = "STRIVE_DB", default_value = "strive.db")]
    pub db: PathBuf,

    /// Send the command to this `strive serve` instead of opening --db.
    #[arg(long, global = true, env = "STRIVE_SERVER")]
    pub server: Option<String>,

    /// The bearer token for --server.
    #[arg(long, global = true, env = "STRIVE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    #[command(subcommand)]
    pub command: Command,

    /// Whether `--db` or `STRIVE_DB` was given rather than defaulted: the
    /// demo uses a temporary database unless one was named (issue #5).
    #[arg(skip)]
    pub db_given: bool,
}

impl Cli {
    /// Parses the command line, noting whether the database was named.
    pub fn parse_args() -> Result<Cli, clap::Error> {
        use clap::parser::ValueSource;
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches()?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.db_given = matches!(
            matches.value_source("db"),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        );
        Ok(cli)
    }
}

/// `--format` of the commands that print for people or for tools. Each
/// command declares the formats it writes, so clap refuses any other as
/// a usage error before any work starts (issue #11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TextOrJson {
    /// For people (the default).
    Text,
    /// For tools: one JSON document on stdout, failures included.
    Json,
}

/// Whether `format` asks for JSON.
pub fn is_json(format: Option<TextOrJson>) -> bool {
    format == Some(TextOrJson::Json)
}

/// `graph --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// A Mermaid `stateDiagram-v2` (the default).
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// `export --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// The JSONL audit bundle (the default).
    Jsonl,
    /// One CSV row per event.
    Csv,
    /// An IEEE 1849 XES event log.
    Xes,
    /// An OCEL 2.0 object-centric event log (JSON).
    Ocel,
}

/// `export-model --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelFormat {
    /// A PNML Petri net (the default, and the only one).
    Pnml,
}

/// `report --format` and `pledges --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// For people (the default).
    Text,
    /// One JSON document.
    Json,
    /// CSV tables.
    Csv,
    /// One self-contained HTML page.
    Html,
}

/// Label language for diagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Chinese.
    Zh,
    /// English.
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Checks workflow definitions; exit 1 when any has an error.
    Validate {
        /// Definition files. They are checked together, so one may spawn another.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Draws a workflow as Graphviz DOT or a Mermaid state diagram.
    Graph {
        /// The definition file.
        file: PathBuf,
        /// The language of labels.
        #[arg(long, value_enum, default_value_t = Lang::En)]
        lang: Lang,
        /// The diagram's format.
        #[arg(long, value_enum)]
        format: Option<GraphFormat>,
    },
    /// Prints the JSON Schema of the workflow language.
    Schema,
    /// Creates an empty store at --db (a missing or empty directory).
    Init {
        /// How many partitions (1 to 256), each with its own log and writer;
        /// fixed for the store's life.
        #[arg(long, env = "STRIVE_PARTITIONS", default_value_t = 1)]
        partitions: u32,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Validates and deploys definitions as new versions, all or none.
    Deploy {
        /// Definition files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Who deploys (recorded in the audit trail).
        #[arg(long, default_value = "admin")]
        actor: String,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Starts an instance of a workflow's latest version.
    Start(StartArgs),
    /// Fires an event on an instance.
    Fire(FireArgs),
    /// Suspends a running instance with a reason: its commands are refused
    /// and its deadline waits until it is resumed (docs/evolution.md,
    /// "Lifecycle").
    Suspend(LifecycleArgs),
    /// Resumes a suspended instance; a deadline that fell due meanwhile
    /// fires at the next `strive tick`.
    Resume(LifecycleArgs),
    /// Cancels an instance with a reason: an orderly end; its children
    /// follow as its definition declares.
    Cancel(LifecycleArgs),
    /// Terminates an instance with a reason: a forced end that reaches
    /// every descendant.
    Terminate(LifecycleArgs),
    /// Shows an instance: stage, data, version, sequence, deadline, children.
    Show {
        /// The instance.
        instance: String,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Lists instances, by workflow and stage or by parent.
    List(ListArgs),
    /// Shows an instance's history, in order.
    History {
        /// The instance (or `@workflow/<id>` for a workflow's deployments).
        instance: String,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Lists deployed workflows, or one workflow's versions.
    Versions {
        /// The workflow; all workflows when absent.
        workflow: Option<String>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Fires every deadline that is due.
    Tick {
        /// The time to fire deadlines up to (RFC 3339); now when absent.
        #[arg(long)]
        now: Option<String>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Test tool: fires transitions from several threads, printing each
    /// acknowledgement, until killed or `--max` commands are acknowledged.
    #[command(hide = true)]
    Stress {
        /// Writer threads.
        #[arg(long, default_value_t = 4)]
        threads: usize,
        /// Stop after this many acknowledged commands.
        #[arg(long)]
        max: Option<u64>,
        /// Acknowledge before flushing (the crash test's negative control).
        #[arg(long)]
        buffered: bool,
        /// Instance ids begin with this instead of the run's own prefix,
        /// so that two writers race on the same instances.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Serves the store over HTTP/JSON until SIGINT or SIGTERM (docs/http.md).
    Serve(crate::commands::serve::ServeArgs),
    /// Issues, revokes and lists the bearer tokens of `strive serve`.
    #[command(subcommand)]
    Token(crate::commands::serve::TokenCommand),
    /// Re-runs the recorded commands of a workflow's instances against a
    /// new definition, writing nothing: what it would change (exit 1) or
    /// that nothing would (exit 0).
    Simulate(crate::commands::simulate::SimulateArgs),
    /// Moves running instances to another version of their workflow by a
    /// plan: every instance is checked first, and a refused plan changes
    /// nothing (docs/evolution.md).
    Migrate(crate::commands::migrate::MigrateArgs),
    #[command(flatten)]
    Audit(crate::commands::audit::AuditCommand),
    #[command(flatten)]
    Campaign(crate::commands::campaign::CampaignCommand),
    #[command(flatten)]
    Store(crate::commands::store::StoreCommand),
    #[command(flatten)]
    Grant(crate::commands::grants::GrantCommand),
    /// Actors' Ed25519 keys, with which they sign their commands:
    /// generate, register, retire, list (docs/audit.md, "Signed
    /// commands").
    #[command(subcommand)]
    Key(crate::commands::keys::KeyCommand),
    /// Runs a witness that cosigns a log's checkpoints only when they
    /// extend the last one it cosigned, or presents the store's checkpoint
    /// to witnesses (docs/audit.md, "Witnesses").
    #[command(subcommand)]
    Witness(crate::commands::witness::WitnessCommand),
}

impl Command {
    /// Whether the command was asked for JSON: then its failure is printed
    /// as JSON on stdout too.
    pub fn json(&self) -> bool {
        match self {
            Command::Validate { format, .. }
            | Command::Init { format, .. }
            | Command::Deploy { format, .. }
            | Command::Show { format, .. }
            | Command::History { format, .. }
            | Command::Versions { format, .. }
            | Command::Tick { format, .. }
            | Command::Start(StartArgs { format, .. })
            | Command::Fire(FireArgs { format, .. })
            | Command::Suspend(LifecycleArgs { format, .. })
            | Command::Resume(LifecycleArgs { format, .. })
            | Command::Cancel(LifecycleArgs { format, .. })
            | Command::Terminate(LifecycleArgs { format, .. })
            | Command::List(ListArgs { format, .. }) => is_json(*format),
            Command::Token(command) => command.json(),
            Command::Simulate(args) => args.json(),
            Command::Migrate(args) => args.json(),
            Command::Audit(command) => command.json(),
            Command::Campaign(command) => command.json(),
            Command::Store(command) => command.json(),
            Command::Grant(command) => command.json(),
            Command::Key(command) => command.json(),
            Command::Witness(command) => command.json(),
            Command::Graph { .. }
            | Command::Schema
            | Command::Stress { .. }
            | Command::Serve(_) => false,
        }
    }
}

/// `strive start`'s arguments.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// The workflow.
    pub workflow: String,
    /// The new instance's id.
    pub instance: String,
    #[command(flatten)]
    pub actor: ActorArgs,
    /// Initial data, a JSON object over the declared defaults.
    #[arg(long)]
    pub data: Option<String>,
    /// The parent instance.
    #[arg(long)]
    pub parent: Option<String>,
    /// An idempotency key: a retry with the same key returns the first outcome.
    #[arg(long)]
    pub command_id: Option<String>,
    /// Signs the start with the actor's private key in FILE (`strive key
    /// generate`); the key stays here, only the signature is sent.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<TextOrJson>,
}

/// `strive fire`'s arguments.
#[derive(Debug, clap::Args)]
pub struct FireArgs {
    /// The instance.
    pub instance: String,
    /// The event.
    pub event: String,
    #[command(flatten)]
    pub actor: ActorArgs,
    /// The payload, a JSON object.
    #[arg(long)]
    pub payload: Option<String>,
    /// Refuse unless the instance is at this sequence number.
    #[arg(long)]
    pub expect_seq: Option<u64>,
    /// An idempotency key: a retry with the same key returns the first outcome.
    #[arg(long)]
    pub command_id: Option<String>,
    /// Signs the fire with the actor's private key in FILE (`strive key
    /// generate`); the key stays here, only the signature is sent.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<std::path::PathBuf>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<TextOrJson>,
}

/// The arguments of `strive suspend`, `resume`, `cancel` and `terminate`.
#[derive(Debug, clap::Args)]
pub struct LifecycleArgs {
    /// The instance.
    pub instance: String,
    /// Why, recorded in the audit log (1 to 1000 characters).
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub actor: ActorArgs,
    /// Refuse unless the instance is at this sequence number.
    #[arg(long)]
    pub expect_seq: Option<u64>,
    /// An idempotency key: a retry with the same key returns the first outcome.
    #[arg(long)]
    pub command_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<TextOrJson>,
}

/// `strive list`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this workflow.
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only this stage.
    #[arg(long)]
    pub stage: Option<String>,
    /// Only children of this instance.
    #[arg(long)]
    pub parent: Option<String>,
    /// Start after this id (the `next` of the previous page).
    #[arg(long)]
    pub after: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: Option<TextOrJson>,
}

#[derive(Debug, clap::Args)]
pub struct ActorArgs {
    /// Who acts (with --server, the token's actor acts instead).
    #[arg(long)]
    pub actor: Option<String>,
    /// A role the actor acts in; repeat for several.
    #[arg(long = "role")]
    pub roles: Vec<String>,
}
