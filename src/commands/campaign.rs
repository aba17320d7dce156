//! The campaign's commands (issue #5): `demo`, `report` and `pledges`.
//! Glue: the simulation, the report and the public list of pledges are in
//! `strive-campaign`; the demo's verification is the auditor's own
//! (`strive_audit::store::verify`), so the demo checks its store exactly as
//! `strive verify` would.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Subcommand;
use serde_json::{Value, json};
use strive_audit::VerifyOptions;
use strive_campaign::{
    CampaignError, DemoOptions, DemoSummary, Progress, RenderOptions, Report, ReportFormat,
    ReportOptions,
};
use strive_store::{Durability, ManualClock, Options};

use crate::cli::{Cli, ReportFormat as ReportFormatArg, TextOrJson, is_json};
use crate::commands::open;
use crate::failure::{Failure, Outcome};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Runs a whole simulated campaign (a bureau, its organisations and
    /// their members, through every stage), prints the report and verifies
    /// the store. Uses a temporary database unless --db or STRIVE_DB names one.
    Demo {
        /// How many grassroots organisations.
        #[arg(long, default_value_t = 12)]
        organisations: usize,
        /// How many party members in all, spread over the organisations.
        #[arg(long, default_value_t = 150)]
        members: usize,
        /// The seed: the same seed gives the same campaign, event for event.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// How many threads submit the commands of one simulated moment.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// At most this many rows per table of the printed report; 0 for all.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Then serve the console (and the API) on the demo's store until
        /// Ctrl-C, with sign-in tokens for the demo's people printed.
        #[arg(long)]
        serve: bool,
        /// Where --serve listens.
        #[arg(long, default_value = "127.0.0.1:7878", requires = "serve")]
        listen: std::net::SocketAddr,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// The campaign report: stage counts, overdue units, commended units
    /// with their scores, open rectification items. --format text, json,
    /// csv or html (one self-contained page with the workflow diagrams).
    Report {
        /// Only this workflow (e.g. org-campaign); every deployed one when absent.
        #[arg(long)]
        workflow: Option<String>,
        /// Write the report to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Report as of this time (RFC 3339); when absent, now or the last
        /// recorded event, whichever is later.
        #[arg(long)]
        as_of: Option<String>,
        /// At most this many rows per table in text and HTML; 0 for all.
        #[arg(long, default_value_t = 0)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<ReportFormatArg>,
    },
    /// Every published plan and pledge, as the masses see them (no scores,
    /// no evaluators). --format text, json, csv or html.
    Pledges {
        /// Only this organisation's.
        #[arg(long)]
        organisation: Option<String>,
        /// Write to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<ReportFormatArg>,
    },
}

impl CampaignCommand {
    /// Whether the command was asked for JSON.
    pub fn json(&self) -> bool {
        match self {
            CampaignCommand::Demo { format, .. } => is_json(*format),
            CampaignCommand::Report { format, .. } | CampaignCommand::Pledges { format, .. } => {
                *format == Some(ReportFormatArg::Json)
            }
        }
    }
}

pub fn run(cli: &Cli, command: &CampaignCommand, json: bool) -> Outcome {
    match command {
        CampaignCommand::Demo {
            organisations,
            members,
            seed,
            concurrency,
            limit,
            serve,
            listen,
            ..
        } => {
            let options = DemoOptions::new(*organisations, *members)
                .with_seed(*seed)
                .with_concurrency(*concurrency);
            let db = cli.db_given.then_some(cli.db.as_path());
            demo(db, &options, *limit, json, serve.then_some(*listen))
        }
        CampaignCommand::Report {
            workflow,
            out,
            as_of,
            limit,
            format,
        } => {
            let format = report_format(*format);
            let mut options = ReportOptions::default();
            if let Some(workflow) = workflow {
                options = options.workflow(workflow.clone());
            }
            if let Some(text) = as_of {
                options = options.as_of(crate::commands::parse_time("--as-of", text)?);
            }
            let engine = open(&cli.db)?;
            let report = Report::build(&engine, &options).map_err(failure)?;
            let text = report.render(format, &RenderOptions::limit(*limit));
            emit(&text, out.as_deref(), json)
        }
        CampaignCommand::Pledges {
            organisation,
            out,
            format,
        } => {
            let format = report_format(*format);
            let engine = open(&cli.db)?;
            let pledges =
                strive_campaign::pledges(&engine, organisation.as_deref()).map_err(failure)?;
            let text = strive_campaign::render_pledges(&pledges, format);
            emit(&text, out.as_deref(), json)
        }
    }
}

/// The demo: simulate, report, verify, and with `serve` serve the console
/// on the store. Exit 1 when verification finds a problem, so that a
/// script can rely on the exit code.
fn demo(
    db: Option<&Path>,
    options: &DemoOptions,
    limit: usize,
    json: bool,
    serve: Option<std::net::SocketAddr>,
) -> Outcome {
    // A temporary directory lives until the end of this function: the
    // report and the verification read the store before it is removed.
    let temporary;
    let path = match db {
        Some(path) => path.to_path_buf(),
        None => {
            temporary = tempfile::Builder::new()
                .prefix("strive-demo-")
                .tempdir()
                .map_err(|e| {
                    Failure::new(
                        "io",
                        format!(
                            "cannot make a temporary directory for the demo ({e}); give one with --db DIR"
                        ),
                    )
                })?;
            temporary.path().join("campaign.db")
        }
    };
    let clock = Arc::new(ManualClock::new(strive_campaign::demo_start()));
    // The demo is a bulk import into a new store: were it to crash, one
    // runs it again. Buffered writes spare it a flush per group commit,
    // which at 100,000 members is most of its time; the store is flushed
    // when the engine closes.
    let engine = crate::files::open_or_create(
        &path,
        Options {
            clock: clock.clone(),
            durability: Durability::Buffered,
            ..Options::default()
        },
    )?;

    let started = Instant::now();
    let mut bars = PhaseBars::default();
    let summary =
        strive_campaign::run_demo(&engine, &clock, options, |progress| bars.update(progress))
            .map_err(failure)?;
    bars.finish();
    let simulated = started.elapsed().as_secs_f64();

    let report = Report::build(&engine, &ReportOptions::default().as_of(summary.finished))
        .map_err(failure)?;

    let verify_started = Instant::now();
    let bar = progress_bar(engine.total_events(), "核验 Verifying");
    let verification = strive_audit::store::verify(&engine, VerifyOptions::default(), |read| {
        if let Some(bar) = &bar {
            bar.set_position(read);
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let verified = verify_started.elapsed().as_secs_f64();

    if json {
        output::json(&json!({
            "demo": summary,
            "database": db.map(|p| p.display().to_string()),
            "seconds": {"simulation": simulated, "verification": verified},
            "events_per_second": per_second(summary.events, simulated),
            "report": serde_json::to_value(&report).unwrap_or(Value::Null),
            "verification": {
                "ok": verification.ok(),
                "events": verification.events,
                "instances": verification.instances,
                "snapshots": verification.snapshots,
                "root": verification.root,
                "problems": verification.problems,
            },
        }));
    } else {
        output::line(
            report
                .render(ReportFormat::Text, &RenderOptions::limit(limit))
                .trim_end(),
        );
        output::line("");
        for line in summary_lines(&summary, simulated) {
            output::line(line);
        }
        output::line(match db {
            Some(path) => format!(
                "  数据库 Database: {} (strive report --db {} --format html --out report.html)",
                path.display(),
                path.display()
            ),
            None => {
                "  数据库 Database: temporary, removed on exit (keep one with --db DIR)".to_owned()
            }
        });
        output::line("");
        for problem in &verification.problems {
            output::line(problem);
        }
        output::line(format!(
            "核验 Verification{}: {verification} ({verified:.2} s)",
            if verification.ok() {
                " ✓"
            } else {
                " ✗ FAILED"
            }
        ));
    }
    if let Some(listen) = serve {
        serve_console(engine, &path, listen, json)?;
    }
    Ok(if verification.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The demo's people who sign in to the console: the admin (who also
/// leads), the leading group's director, and the inspector who audits.
const CONSOLE_PEOPLE: &[(&str, &[&str])] = &[
    ("admin", &["admin", "leading_group"]),
    ("director-wang", &["leading_group"]),
    ("inspector-zhao", &["auditor"]),
];

/// `demo --serve`: tokens for the demo's people, then the server (the
/// console at `/`, the API under `/v1`) until Ctrl-C. The demo's engine
/// keeps its simulated clock, so what is fired in the console happens at
/// the demo's end, and the server fires no deadline by the wall clock.
fn serve_console(
    engine: strive_store::Engine,
    path: &Path,
    listen: std::net::SocketAddr,
    json: bool,
) -> Result<(), Failure> {
    // With --format json stdout holds one document: the address and the
    // tokens go to stderr then.
    let say = |text: String| {
        if json {
            output::note(text);
        } else {
            output::line(text);
        }
    };
    let tokens = strive_server::TokenFile::beside(path);
    let now = jiff::Timestamp::now();
    let mut issued = Vec::new();
    for (actor, roles) in CONSOLE_PEOPLE {
        let request = strive_server::TokenRequest {
            actor: (*actor).to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            expires_at: None,
        };
        let token = tokens
            .issue(&request, now)
            .map_err(|e| Failure::new("token", e.to_string()))?;
        issued.push((*actor, roles.join(","), token.token));
    }
    let config = strive_server::Config {
        listen,
        fire_deadlines: false,
        ..strive_server::Config::default()
    };
    strive_server::run(engine, tokens, config, |addr| {
        say(String::new());
        say(format!(
            "控制台 Console: http://{addr}/  (Ctrl-C 停止 to stop)"
        ));
        say("登录令牌 Sign-in tokens:".to_owned());
        for (actor, roles, token) in &issued {
            say(format!("  {actor} ({roles}): {token}"));
        }
    })
    .map_err(|e| Failure::new("serve", e.to_string()))
}

/// What the demo did, for people.
fn summary_lines(summary: &DemoSummary, seconds: f64) -> Vec<String> {
    let rate = per_second(summary.events, seconds);
    vec![
        format!(
            "演示 Demo: seed {}, {} organisations, {} members, {} instances",
            summary.seed, summary.organisations, summary.members, summary.instances
        ),
        format!(
            "  {} events in {seconds:.2} s ({rate:.0} events/s); {} commands, {} evaluations ({} resubmitted)",
            summary.events, summary.commands, summary.evaluations, summary.resubmissions
        ),
        format!(
            "  整改 Rectified: {} organisations ({} evaluated again), {} members ({} evaluated again)",
            summary.organisations_rectified,
            summary.organisations_evaluated_again,
            summary.members_rectified,
            summary.members_evaluated_again
        ),
        format!(
            "  督办 Escalations: {}; evaluations closed by their deadline: {}; honoured: {} organisations, {} members",
            summary.escalations,
            summary.closed_by_deadline,
            summary.organisations_honoured,
            summary.members_honoured
        ),
    ]
}

fn per_second(events: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        events as f64 / seconds
    } else {
        0.0
    }
}

/// One progress bar per phase of the demo, on stderr when it is a terminal.
#[derive(Default)]
struct PhaseBars {
    phase: usize,
    bar: Option<indicatif::ProgressBar>,
}

impl PhaseBars {
    fn update(&mut self, progress: &Progress<'_>) {
        if progress.phase_number != self.phase {
            self.finish();
            self.phase = progress.phase_number;
            self.bar = progress_bar(
                progress.total,
                &format!(
                    "[{}/{}] {}",
                    progress.phase_number, progress.phases, progress.phase
                ),
            );
        }
        if let Some(bar) = &self.bar {
            bar.set_length(progress.total);
            bar.set_position(progress.done);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

/// A progress bar on stderr, only when it is a terminal: the phase on one
/// line, the bar as wide as the terminal on the next, so that the bilingual
/// phase names never wrap the bar.
fn progress_bar(total: u64, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg}\n[{wide_bar}] {human_pos}/{human_len} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    Some(bar)
}

fn report_format(format: Option<ReportFormatArg>) -> ReportFormat {
    match format {
        None | Some(ReportFormatArg::Text) => ReportFormat::Text,
        Some(ReportFormatArg::Json) => ReportFormat::Json,
        Some(ReportFormatArg::Csv) => ReportFormat::Csv,
        Some(ReportFormatArg::Html) => ReportFormat::Html,
    }
}

/// Writes `text` to `out`, or prints it.
fn emit(text: &str, out: Option<&Path>, json: bool) -> Outcome {
    match out {
        None => output::line(text.trim_end()),
        Some(path) => {
            crate::files::write_whole(path, text.as_bytes(), true, 0o644)?;
            // JSON goes to the file; stdout still says where, as JSON.
            if json {
                output::json(&json!({"out": path.display().to_string(), "bytes": text.len()}));
            } else {
                output::line(format!("wrote {} ({} bytes)", path.display(), text.len()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn failure(error: CampaignError) -> Failure {
    let kind = match &error {
        CampaignError::InvalidOptions { .. } => return Failure::usage(error.to_string()),
        CampaignError::NotEmpty { .. } => "not_empty",
        CampaignError::UnknownWorkflow { .. } => "unknown_workflow",
        CampaignError::Deploy(_) => "invalid_definition",
        CampaignError::Storage(_) => "storage",
        _ => "campaign",
    };
    Failure::new(kind, error.to_string())
}
