//! The command line, declared with clap.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// strive: an embedded workflow engine with a verifiable audit trail.
#[derive(Debug, Parser)]
#[command(name = "strive", version, about, long_about = None)]
pub struct Cli {
    /// The database directory.
    #[arg(long, global = true, env = "STRIVE_DB", default_value = "strive.db")]
    pub db: PathBuf,

    /// Output format: text or json for every command; dot or mermaid for `graph`.
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,

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

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For tools: one JSON document on stdout.
    Json,
    /// Graphviz DOT (`graph` only).
    Dot,
    /// Mermaid `stateDiagram-v2` (`graph` only).
    Mermaid,
    /// The JSONL audit bundle (`export` only).
    Jsonl,
    /// One CSV row per event (`export` only).
    Csv,
    /// An IEEE 1849 XES event log (`export` only).
    Xes,
    /// One self-contained HTML page (`report` and `pledges` only).
    Html,
    /// A PNML Petri net (`export-model` only).
    Pnml,
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
    },
    /// Draws a workflow as Graphviz DOT or a Mermaid state diagram.
    Graph {
        /// The definition file.
        file: PathBuf,
        /// The language of labels.
        #[arg(long, value_enum, default_value_t = Lang::En)]
        lang: Lang,
    },
    /// Prints the JSON Schema of the workflow language.
    Schema,
    /// Creates an empty store at --db (a missing or empty directory).
    Init {
        /// How many partitions; only 1 for now.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
    },
    /// Validates and deploys definitions as new versions, all or none.
    Deploy {
        /// Definition files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Who deploys (recorded in the audit trail).
        #[arg(long, default_value = "admin")]
        actor: String,
    },
    /// Starts an instance of a workflow's latest version.
    Start {
        /// The workflow.
        workflow: String,
        /// The new instance's id.
        instance: String,
        #[command(flatten)]
        actor: ActorArgs,
        /// Initial data, a JSON object over the declared defaults.
        #[arg(long)]
        data: Option<String>,
        /// The parent instance.
        #[arg(long)]
        parent: Option<String>,
        /// An idempotency key: a retry with the same key returns the first outcome.
        #[arg(long)]
        command_id: Option<String>,
    },
    /// Fires an event on an instance.
    Fire {
        /// The instance.
        instance: String,
        /// The event.
        event: String,
        #[command(flatten)]
        actor: ActorArgs,
        /// The payload, a JSON object.
        #[arg(long)]
        payload: Option<String>,
        /// Refuse unless the instance is at this sequence number.
        #[arg(long)]
        expect_seq: Option<u64>,
        /// An idempotency key: a retry with the same key returns the first outcome.
        #[arg(long)]
        command_id: Option<String>,
    },
    /// Shows an instance: stage, data, version, sequence, deadline, children.
    Show {
        /// The instance.
        instance: String,
    },
    /// Lists instances, by workflow and stage or by parent.
    List {
        /// Only this workflow.
        #[arg(long)]
        workflow: Option<String>,
        /// Only this stage.
        #[arg(long)]
        stage: Option<String>,
        /// Only children of this instance.
        #[arg(long)]
        parent: Option<String>,
        /// Start after this id (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Shows an instance's history, in order.
    History {
        /// The instance (or `@workflow/<id>` for a workflow's deployments).
        instance: String,
    },
    /// Lists deployed workflows, or one workflow's versions.
    Versions {
        /// The workflow; all workflows when absent.
        workflow: Option<String>,
    },
    /// Fires every deadline that is due.
    Tick {
        /// The time to fire deadlines up to (RFC 3339); now when absent.
        #[arg(long)]
        now: Option<String>,
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
    },
    /// Serves the store over HTTP/JSON until SIGINT or SIGTERM (docs/http.md).
    Serve(crate::serve_cmd::ServeArgs),
    /// Issues, revokes and lists the bearer tokens of `strive serve`.
    #[command(subcommand)]
    Token(crate::serve_cmd::TokenCommand),
    #[command(flatten)]
    Audit(crate::audit_cmd::AuditCommand),
    #[command(flatten)]
    Campaign(crate::campaign_cmd::CampaignCommand),
    #[command(flatten)]
    Store(crate::store_cmd::StoreCommand),
    #[command(flatten)]
    Grant(crate::grant_cmd::GrantCommand),
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
