//! The "create excellence, strive to be the best" campaign (创先争优) on
//! strive: its three workflows, a seeded simulation of a whole campaign,
//! the public list of pledges, and the campaign report.
//!
//! A bureau deploys the campaign to its grassroots organisations; each
//! organisation mobilises its party members; organisations publish plans
//! and members pledge; the party group comments; the masses evaluate on the
//! "five good" and the "five take the lead"; the evaluation commends or
//! sends to rectification; rectified units go round again; the leading group
//! selects and honours. `docs/campaign.md` walks through the rules.
//!
//! Run a small campaign and read its report:
//!
//! ```
//! use std::sync::Arc;
//!
//! use strive_campaign::{DemoOptions, RenderOptions, Report, ReportFormat, ReportOptions};
//! use strive_store::{Engine, ManualClock, Options};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The demo runs on a simulated calendar: the engine reads a clock the
//! // demo sets before each step.
//! let clock = Arc::new(ManualClock::new(strive_campaign::demo_start()));
//! let engine = Engine::temporary_with(Options { clock: clock.clone(), ..Options::default() })?;
//!
//! let options = DemoOptions::new(3, 18).with_seed(7);
//! let summary = strive_campaign::run_demo(&engine, &clock, &options, |_progress| {})?;
//! assert_eq!(summary.instances, 1 + 3 + 18);
//!
//! let report = Report::build(&engine, &ReportOptions::default().as_of(summary.finished))?;
//! let text = report.render(ReportFormat::Text, &RenderOptions::default());
//! assert!(text.contains("阶段统计 Stage counts"));
//! let html = report.render(ReportFormat::Html, &RenderOptions::default());
//! assert!(html.contains("<svg") && !html.contains("<script"));
//! # Ok(())
//! # }
//! ```
//!
//! The library prints nothing: renderers return strings, the demo reports
//! progress through a callback, and it logs through `tracing` only.
#![deny(missing_docs)]

mod calendar;
mod content;
mod demo;
mod diagram;
mod error;
mod html;
mod pledges;
mod render;
mod report;
mod scores;
mod table;
mod workflows;

pub use demo::{DEMO_BUREAU, DemoOptions, DemoSummary, Progress, demo_start, run_demo};
pub use diagram::{DIAGRAM_CSS, workflow_svg};
pub use error::CampaignError;
pub use pledges::{PublicPledge, pledges, render_pledges};
pub use render::{RenderOptions, ReportFormat};
pub use report::{
    Bilingual, CampaignSummary, CommendedUnit, OpenItem, OverdueStatus, OverdueUnit, Report,
    ReportOptions, StageCount, UnitRef, WorkflowStages,
};
pub use scores::{CriterionMean, Scores};
pub use workflows::{BUREAU, DEFINITIONS, MEMBER, ORGANISATION, deploy_workflows};

/// Which objects the campaign's events concern, for `strive export
/// --format ocel` (read by `strive_audit::Mapping::from_json`): the bureau,
/// organisations and members are instances; an evaluation also concerns
/// its evaluator, a comment is an object of its own about the unit it was
/// written on, and a rectification item is opened by `add_problem` and
/// closed by `close_problem` (docs/audit.md, "OCEL 2.0").
pub const OCEL_MAPPING: &str = include_str!("ocel.json");
