//! A whole campaign, simulated: a bureau, its organisations and their
//! members go through mobilisation, public pledges, leadership comment,
//! mass evaluation, rectification and a second round, and selection.
//!
//! The simulation is a **plan** of commands at simulated times, executed
//! against an [`Engine`] whose clock the demo sets before each step. Steps
//! run in time order; the commands of one step touch different instances,
//! or the same instance in plan order, so they may run on several threads
//! (sharing the engine's group commits) without changing the outcome. Before
//! each step the engine's deadlines are fired up to the step's time, as a
//! service's periodic tick would, and every midnight has a tick of its own.
//!
//! The plan is made in three phases, each from what the store says after
//! the previous one (who was commended, who must rectify), never from a
//! prediction of the guards: the workflows decide, the demo only acts.
//!
//! Everything random is drawn from generators seeded by the demo's seed and
//! the purpose (which unit, which round, which evaluator), so a seed gives
//! the same campaign, event for event, whatever the thread count.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value, json};
use strive_core::Actor;
use strive_store::{CommandOptions, Engine, ManualClock};

use crate::calendar::{self, DAY, HOUR, Minute};
use crate::content::{self, rng_for};
use crate::error::CampaignError;
use crate::scores::Criteria;
use crate::workflows::{self, BUREAU, MEMBER, ORGANISATION};

/// The bureau's instance id in the demo.
pub const DEMO_BUREAU: &str = "bureau-2026";

/// The most organisations one `deploy` event lists (the workflow's
/// `max_items`); more are deployed in batches.
const DEPLOY_BATCH: usize = 1000;
/// The most members one organisation may list at mobilisation.
const MAX_MEMBERS_PER_ORGANISATION: usize = 1000;

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DemoOptions {
    /// How many grassroots organisations (at least 1).
    pub organisations: usize,
    /// How many party members in all, spread over the organisations (at
    /// least one each, at most 1,000 each).
    pub members: usize,
    /// The seed: the same seed gives the same campaign.
    pub seed: u64,
    /// How many threads submit the commands of one step (64 by default:
    /// the engine's writer commits whatever is queued as one group, so more
    /// callers in flight means fewer, larger groups; 64 halved the demo's
    /// time against 8 at 200 organisations and 4,000 members).
    pub concurrency: usize,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            organisations: 12,
            members: 150,
            seed: 2026,
            concurrency: 64,
        }
    }
}

impl DemoOptions {
    /// Options for `organisations` organisations and `members` members,
    /// with the default seed and concurrency.
    pub fn new(organisations: usize, members: usize) -> DemoOptions {
        DemoOptions {
            organisations,
            members,
            ..DemoOptions::default()
        }
    }

    /// The same options with another seed.
    pub fn with_seed(self, seed: u64) -> DemoOptions {
        DemoOptions { seed, ..self }
    }

    /// The same options with another number of submitting threads.
    pub fn with_concurrency(self, concurrency: usize) -> DemoOptions {
        DemoOptions {
            concurrency,
            ..self
        }
    }
}

/// Where the simulation is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// The phase, in Chinese and English.
    pub phase: &'a str,
    /// Which phase, from 1.
    pub phase_number: usize,
    /// How many phases there are.
    pub phases: usize,
    /// Commands of this phase done.
    pub done: u64,
    /// Commands this phase has.
    pub total: u64,
}

/// What a demo did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DemoSummary {
    /// The seed used.
    pub seed: u64,
    /// Organisations simulated.
    pub organisations: usize,
    /// Members simulated.
    pub members: usize,
    /// Instances started: the bureau, the organisations and the members.
    pub instances: u64,
    /// Events in the store at the end.
    pub events: u64,
    /// Commands the demo fired (deadlines and notifications not included).
    pub commands: u64,
    /// Evaluations submitted, resubmissions included.
    pub evaluations: u64,
    /// Evaluations that replaced the same evaluator's earlier one.
    pub resubmissions: u64,
    /// Escalations recorded by the system when a deadline passed.
    pub escalations: u64,
    /// Evaluations closed by their 30-day deadline rather than by a person.
    pub closed_by_deadline: u64,
    /// Organisations sent to rectification by the first round.
    pub organisations_rectified: u64,
    /// Organisations rectified and evaluated again.
    pub organisations_evaluated_again: u64,
    /// Members sent to rectification by the first round.
    pub members_rectified: u64,
    /// Members rectified and evaluated again.
    pub members_evaluated_again: u64,
    /// Organisations honoured in the selection.
    pub organisations_honoured: u64,
    /// Members honoured in the selection.
    pub members_honoured: u64,
    /// The simulated time the campaign started.
    pub started: Timestamp,
    /// The simulated time the demo stopped: the report's "as of".
    pub finished: Timestamp,
}

/// The simulated time a demo starts at (6 May 2026, 09:00 China time).
/// Open the engine with a [`ManualClock`] at this time.
pub fn demo_start() -> Timestamp {
    calendar::timestamp(START)
}

/// 6 May, 09:00: the bureau's mobilisation meeting.
const START: Minute = 5 * DAY + 9 * HOUR;
/// 31 May, 23:59:59: "mobilisation must be completed within May".
const MOBILISATION_DUE: &str = "2026-05-31T23:59:59+08:00";

/// Day of the campaign (0 is 1 May) of a date in 2026, May to December.
fn day_of(month: usize, day: i64) -> i64 {
    const MONTH_START: [i64; 13] = [0, 0, 0, 0, 0, 0, 31, 61, 92, 123, 153, 184, 214];
    MONTH_START.get(month).copied().unwrap_or(0) + day - 1
}

/// Runs a whole campaign on `engine`, which must be empty and opened with
/// `clock` (set to [`demo_start`]). Calls `progress` after each step.
pub fn run_demo(
    engine: &Engine,
    clock: &ManualClock,
    options: &DemoOptions,
    mut progress: impl FnMut(&Progress<'_>),
) -> Result<DemoSummary, CampaignError> {
    let roster = Roster::new(options)?;
    if engine.total_events() != 0 {
        return Err(CampaignError::NotEmpty {
            events: engine.total_events(),
        });
    }
    let mut run = Run {
        engine,
        clock,
        roster: &roster,
        concurrency: options.concurrency.max(1),
        summary: DemoSummary {
            seed: options.seed,
            organisations: roster.orgs.len(),
            members: roster.members.len(),
            instances: 0,
            events: 0,
            commands: 0,
            evaluations: 0,
            resubmissions: 0,
            escalations: 0,
            closed_by_deadline: 0,
            organisations_rectified: 0,
            organisations_evaluated_again: 0,
            members_rectified: 0,
            members_evaluated_again: 0,
            organisations_honoured: 0,
            members_honoured: 0,
            started: calendar::timestamp(START),
            finished: calendar::timestamp(START),
        },
    };
    clock.set(calendar::timestamp(START));
    workflows::deploy_workflows(engine, &Actor::new("admin", &["admin"]))?;
    engine
        .start(
            BUREAU,
            DEMO_BUREAU,
            &Who::Director.actor(&roster),
            Map::new(),
            None,
            CommandOptions::default(),
        )
        .map_err(|source| CampaignError::Command {
            instance: DEMO_BUREAU.to_owned(),
            event: "start".to_owned(),
            at: calendar::timestamp(START),
            source: Box::new(source),
        })?;

    const PHASES: [&str; 3] = [
        "动员、承诺与首轮评议 Mobilisation, pledges, first round",
        "整改与再评议 Rectification, second round",
        "评选表彰 Selection and commendation",
    ];
    let mut report = |number: usize, done: u64, total: u64| {
        progress(&Progress {
            phase: PHASES.get(number - 1).copied().unwrap_or(""),
            phase_number: number,
            phases: PHASES.len(),
            done,
            total,
        });
    };

    let plan = roster.first_round();
    run.execute(&plan, &mut |done, total| report(1, done, total))?;
    tracing::info!(
        phase = 1,
        commands = plan.commands,
        events = engine.total_events(),
        "the demo's first round is done"
    );

    let after_first = run.read_units()?;
    run.summary.organisations_rectified = after_first.count(Kind::Org, "rectification");
    run.summary.members_rectified = after_first.count(Kind::Member, "rectification");
    let plan = roster.second_round(&after_first);
    run.summary.organisations_evaluated_again = plan.again_orgs;
    run.summary.members_evaluated_again = plan.again_members;
    run.execute(&plan.plan, &mut |done, total| report(2, done, total))?;
    tracing::info!(
        phase = 2,
        commands = plan.plan.commands,
        events = engine.total_events(),
        "the demo's second round is done"
    );

    let after_second = run.read_units()?;
    let plan = roster.selection(engine, &after_second)?;
    run.summary.organisations_honoured = plan.honoured_orgs;
    run.summary.members_honoured = plan.honoured_members;
    run.execute(&plan.plan, &mut |done, total| report(3, done, total))?;
    tracing::info!(
        phase = 3,
        commands = plan.plan.commands,
        events = engine.total_events(),
        "the demo's selection is done"
    );

    run.summary.instances = 1 + (roster.orgs.len() + roster.members.len()) as u64;
    run.summary.events = engine.total_events();
    run.summary.finished = calendar::timestamp(END);
    Ok(run.summary)
}

/// 30 November, 18:00: the demo stops and reports.
const END: Minute = 214 * DAY - DAY + 18 * HOUR; // 30 November

// ---------------------------------------------------------------------------
// Who takes part
// ---------------------------------------------------------------------------

struct OrgUnit {
    id: String,
    zh: String,
    en: String,
    members: std::ops::Range<usize>,
    quality: f64,
}

struct MemberUnit {
    id: String,
    name: String,
    org: usize,
    quality: f64,
}

/// Everyone in the campaign, drawn from the seed.
struct Roster {
    seed: u64,
    orgs: Vec<OrgUnit>,
    members: Vec<MemberUnit>,
    /// How many of the masses take part in evaluation.
    public: usize,
    /// Organisations that mobilise after 31 May.
    late_mobilisers: Vec<bool>,
    /// Organisations whose leadership comment comes late.
    late_comments: Vec<bool>,
    /// Organisations whose evaluation is left to close by its deadline.
    deadline_closed: Vec<bool>,
}

/// Tags that keep the generators of different purposes apart.
mod tag {
    pub(super) const SIZE: u64 = 1;
    pub(super) const QUALITY: u64 = 2;
    pub(super) const NAME: u64 = 3;
    pub(super) const ORG_PLAN: u64 = 4;
    pub(super) const MEMBER_PLAN: u64 = 5;
    pub(super) const EVALUATION: u64 = 6;
    pub(super) const TEXT: u64 = 7;
    pub(super) const SHUFFLE: u64 = 8;
    pub(super) const RECTIFY: u64 = 9;
    pub(super) const HONOUR: u64 = 10;
}

fn digits(n: usize) -> usize {
    n.max(1).to_string().len()
}

/// A draw from a normal distribution (Box-Muller).
fn normal(rng: &mut fastrand::Rng, mean: f64, sd: f64) -> f64 {
    let u1 = rng.f64().max(f64::MIN_POSITIVE);
    let u2 = rng.f64();
    mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

impl Roster {
    fn new(options: &DemoOptions) -> Result<Roster, CampaignError> {
        let n = options.organisations;
        let m = options.members;
        if n == 0 {
            return Err(CampaignError::InvalidOptions {
                message: "--organisations must be at least 1".to_owned(),
            });
        }
        if m < n {
            return Err(CampaignError::InvalidOptions {
                message: format!(
                    "--members {m} is fewer than --organisations {n}: every organisation needs at least one member"
                ),
            });
        }
        if m > n * MAX_MEMBERS_PER_ORGANISATION {
            return Err(CampaignError::InvalidOptions {
                message: format!(
                    "--members {m} over {n} organisation(s) is more than {MAX_MEMBERS_PER_ORGANISATION} per organisation, \
                     the most one mobilisation lists; add organisations"
                ),
            });
        }
        let seed = options.seed;
        // Organisations differ in size: weights from 0.5 to 1.5, then
        // every organisation gets at least one member and at most the
        // mobilisation's limit.
        let mut rng = rng_for(seed, &[tag::SIZE]);
        let weights: Vec<f64> = (0..n).map(|_| 0.5 + rng.f64()).collect();
        let total: f64 = weights.iter().sum();
        let mut sizes: Vec<usize> = weights
            .iter()
            .map(|w| ((w / total) * (m - n) as f64).floor() as usize + 1)
            .map(|size| size.min(MAX_MEMBERS_PER_ORGANISATION))
            .collect();
        let mut assigned: usize = sizes.iter().sum();
        let mut index = 0;
        while assigned < m {
            if let Some(size) = sizes.get_mut(index % n)
                && *size < MAX_MEMBERS_PER_ORGANISATION
            {
                *size += 1;
                assigned += 1;
            }
            index += 1;
        }
        let org_width = digits(n).max(2);
        let member_width = digits(sizes.iter().copied().max().unwrap_or(1)).max(2);
        let mut orgs = Vec::with_capacity(n);
        let mut members = Vec::with_capacity(m);
        for (o, size) in sizes.iter().enumerate() {
            let id = format!("org-{:0org_width$}", o + 1);
            let (zh, en) = content::organisation_name(o);
            let mut quality = rng_for(seed, &[tag::QUALITY, 0, o as u64]);
            let org_quality = normal(&mut quality, 86.0, 3.5);
            let first = members.len();
            for k in 0..*size {
                let index = members.len();
                let mut q = rng_for(seed, &[tag::QUALITY, 1, index as u64]);
                let mut name = rng_for(seed, &[tag::NAME, index as u64]);
                members.push(MemberUnit {
                    id: format!("{id}-m{:0member_width$}", k + 1),
                    name: content::person_name(&mut name),
                    org: o,
                    quality: org_quality + normal(&mut q, 0.5, 3.5),
                });
            }
            orgs.push(OrgUnit {
                id,
                zh,
                en,
                members: first..members.len(),
                quality: org_quality,
            });
        }
        // A seeded shuffle decides which organisations are late, so that the
        // default campaign always has some of each.
        let mut order: Vec<usize> = (0..n).collect();
        rng_for(seed, &[tag::SHUFFLE]).shuffle(&mut order);
        let share = |fraction: f64| {
            if n < 3 {
                0
            } else {
                ((n as f64 * fraction).round() as usize).max(1)
            }
        };
        let (late, comments, deadline) = (share(0.1), share(0.15), share(0.1));
        let mut late_mobilisers = vec![false; n];
        let mut late_comments = vec![false; n];
        let mut deadline_closed = vec![false; n];
        for (position, o) in order.iter().enumerate() {
            if position < late {
                late_mobilisers[*o] = true;
            } else if position < late + comments {
                late_comments[*o] = true;
            } else if position < late + comments + deadline {
                deadline_closed[*o] = true;
            }
        }
        Ok(Roster {
            seed,
            orgs,
            members,
            public: (m / 2).max(60),
            late_mobilisers,
            late_comments,
            deadline_closed,
        })
    }

    /// The instance id of a target.
    fn id(&self, target: Target) -> &str {
        match target {
            Target::Bureau => DEMO_BUREAU,
            Target::Org(o) => self.orgs.get(o).map_or("", |u| &u.id),
            Target::Member(i) => self.members.get(i).map_or("", |u| &u.id),
        }
    }

    fn org_members(&self, o: usize) -> std::ops::Range<usize> {
        self.orgs
            .get(o)
            .map(|org| org.members.clone())
            .unwrap_or(0..0)
    }
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target {
    Bureau,
    Org(usize),
    Member(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Director,
    PartyGroup,
    Inspector,
    Secretary(usize),
    Member(usize),
    Public(usize),
}

impl Who {
    fn actor(self, roster: &Roster) -> Actor {
        match self {
            Who::Director => Actor::new("director-wang", &["leading_group"]),
            Who::PartyGroup => Actor::new("party-group-li", &["party_committee"]),
            Who::Inspector => Actor::new("inspector-zhao", &["auditor"]),
            Who::Secretary(o) => Actor::new(
                format!("{}-secretary", roster.orgs.get(o).map_or("", |u| &u.id)),
                &["branch_secretary"],
            ),
            Who::Member(i) => Actor::new(roster.members.get(i).map_or("", |u| &u.id), &["member"]),
            Who::Public(p) => Actor::new(format!("public-{:05}", p + 1), &["evaluator"]),
        }
    }

    /// How a comment's author signs.
    fn signature(self, roster: &Roster) -> String {
        match self {
            Who::Director => "王建华（局长、活动领导小组组长）".to_owned(),
            Who::PartyGroup => "李国强（机关总支书记）".to_owned(),
            Who::Secretary(o) => format!("{}书记", roster.orgs.get(o).map_or("", |u| &u.zh)),
            _ => String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Act {
    Deploy(std::ops::Range<usize>),
    Mobilise,
    PublishPlan {
        round: i64,
    },
    SubmitPledge {
        round: i64,
    },
    Comment {
        round: i64,
    },
    OpenEvaluation,
    Evaluate {
        scores: [u8; 5],
        satisfied: bool,
        remark: Option<&'static str>,
    },
    CloseEvaluation,
    AddProblem {
        round: i64,
        n: usize,
        due: Minute,
    },
    CloseProblem {
        round: i64,
        n: usize,
    },
    Rectified,
    StartCommendation,
    Honour {
        citation: String,
    },
}

impl Act {
    fn event(&self) -> &'static str {
        match self {
            Act::Deploy(_) => "deploy",
            Act::Mobilise => "mobilise",
            Act::PublishPlan { .. } => "publish_plan",
            Act::SubmitPledge { .. } => "submit_pledge",
            Act::Comment { .. } => "add_comment",
            Act::OpenEvaluation => "open_evaluation",
            Act::Evaluate { .. } => "evaluate",
            Act::CloseEvaluation => "close_evaluation",
            Act::AddProblem { .. } => "add_problem",
            Act::CloseProblem { .. } => "close_problem",
            Act::Rectified => "rectified",
            Act::StartCommendation => "start_commendation",
            Act::Honour { .. } => "honour",
        }
    }
}

#[derive(Debug, Clone)]
struct Cmd {
    target: Target,
    who: Who,
    act: Act,
}

const ORG_CRITERIA: [&str; 5] = [
    "leadership",
    "members",
    "mechanism",
    "performance",
    "response",
];
const MEMBER_CRITERIA: [&str; 5] = ["study", "performance", "service", "discipline", "integrity"];

impl Cmd {
    fn instance<'r>(&self, roster: &'r Roster) -> &'r str {
        roster.id(self.target)
    }

    /// The payload, made when the command runs so that the plan stays
    /// small at scale.
    fn payload(&self, roster: &Roster) -> Value {
        let seed = roster.seed;
        let (kind, index) = match self.target {
            Target::Bureau => (0, 0),
            Target::Org(o) => (1, o as u64),
            Target::Member(i) => (2, i as u64),
        };
        match &self.act {
            Act::Deploy(range) => {
                let organisations: Vec<Value> = roster
                    .orgs
                    .get(range.clone())
                    .unwrap_or_default()
                    .iter()
                    .map(|org| {
                        json!({"id": org.id, "data": {
                            "mobilisation_due": MOBILISATION_DUE,
                            "name": {"zh": org.zh, "en": org.en}
                        }})
                    })
                    .collect();
                json!({ "organisations": organisations })
            }
            Act::Mobilise => {
                let Target::Org(o) = self.target else {
                    return Value::Null;
                };
                let members: Vec<Value> = roster
                    .members
                    .get(roster.org_members(o))
                    .unwrap_or_default()
                    .iter()
                    .map(|m| json!({"id": m.id, "data": {"name": m.name}}))
                    .collect();
                json!({ "members": members })
            }
            Act::PublishPlan { round } => {
                let mut rng = rng_for(seed, &[tag::TEXT, 1, index, *round as u64]);
                let name = match self.target {
                    Target::Org(o) => roster.orgs.get(o).map_or("", |u| &u.zh),
                    _ => "",
                };
                json!({ "plan": content::plan(&mut rng, name, *round) })
            }
            Act::SubmitPledge { round } => {
                let mut rng = rng_for(seed, &[tag::TEXT, 2, index, *round as u64]);
                json!({ "pledge": content::pledge(&mut rng, *round) })
            }
            Act::Comment { round } => {
                let mut rng = rng_for(seed, &[tag::TEXT, 3, kind, index, *round as u64]);
                json!({"author": self.who.signature(roster), "text": content::comment(&mut rng)})
            }
            Act::Evaluate {
                scores,
                satisfied,
                remark,
            } => {
                let names = if kind == 1 {
                    ORG_CRITERIA
                } else {
                    MEMBER_CRITERIA
                };
                let mut payload = Map::new();
                for (name, score) in names.iter().zip(scores) {
                    payload.insert((*name).to_owned(), Value::from(*score));
                }
                payload.insert("satisfied".to_owned(), Value::Bool(*satisfied));
                if let Some(remark) = remark {
                    payload.insert("remarks".to_owned(), Value::from(*remark));
                }
                Value::Object(payload)
            }
            Act::AddProblem { round, n, due } => {
                let mut rng = rng_for(seed, &[tag::TEXT, 4, kind, index, *round as u64, *n as u64]);
                json!({
                    "id": format!("R{round}-{n}"),
                    "text": content::problem(&mut rng, kind == 1),
                    "due": calendar::rfc3339(*due),
                })
            }
            Act::CloseProblem { round, n } => {
                let mut rng = rng_for(seed, &[tag::TEXT, 5, kind, index, *round as u64, *n as u64]);
                json!({"id": format!("R{round}-{n}"), "note": content::fix(&mut rng)})
            }
            Act::Honour { citation } => json!({ "citation": citation }),
            Act::OpenEvaluation
            | Act::CloseEvaluation
            | Act::Rectified
            | Act::StartCommendation => Value::Null,
        }
    }
}

/// Commands by simulated time, each time's in plan order.
#[derive(Default)]
struct Plan {
    steps: BTreeMap<Minute, Vec<Cmd>>,
    commands: u64,
    evaluations: u64,
    resubmissions: u64,
}

impl Plan {
    /// Drops the commands after `end`.
    fn truncate_after(&mut self, end: Minute) {
        let later = self.steps.split_off(&(end + 1));
        for cmd in later.values().flatten() {
            self.commands -= 1;
            if matches!(cmd.act, Act::Evaluate { .. }) {
                self.evaluations -= 1;
            }
        }
    }

    fn add(&mut self, at: Minute, target: Target, who: Who, act: Act) {
        self.commands += 1;
        self.steps
            .entry(at)
            .or_default()
            .push(Cmd { target, who, act });
    }

    /// Plans one round of evaluation of a unit: each evaluator once, in
    /// `[from, to)` days after `base`, some resubmitting a few days later.
    #[allow(clippy::too_many_arguments)]
    fn evaluations(
        &mut self,
        roster: &Roster,
        target: Target,
        round: i64,
        base: Minute,
        window: std::ops::Range<i64>,
        quality: f64,
        evaluators: &[Who],
    ) {
        let (kind, index) = match target {
            Target::Org(o) => (1, o as u64),
            Target::Member(i) => (2, i as u64),
            Target::Bureau => (0, 0),
        };
        // Each unit is stronger on some criteria than on others.
        let mut bias = rng_for(roster.seed, &[tag::QUALITY, 2, kind, index]);
        let offsets: [f64; 5] = std::array::from_fn(|_| normal(&mut bias, 0.0, 2.0));
        for (slot, who) in evaluators.iter().enumerate() {
            let mut rng = rng_for(
                roster.seed,
                &[tag::EVALUATION, kind, index, round as u64, slot as u64],
            );
            let day = base + rng.i64(window.clone()) * DAY + rng.i64(8..21) * HOUR;
            let act = draw_scores(&mut rng, quality, &offsets);
            self.add(day, target, *who, act);
            self.evaluations += 1;
            // One in twenty changes their mind: the later entry replaces the
            // earlier, and both stay in the history.
            if rng.u32(..20) == 0 {
                let later = day + rng.i64(1..3) * DAY;
                let act = draw_scores(&mut rng, quality, &offsets);
                self.add(later, target, *who, act);
                self.evaluations += 1;
                self.resubmissions += 1;
            }
        }
    }
}

/// One evaluator's scores: the unit's quality, its bias per criterion, and
/// the evaluator's own view. Satisfied when their own average is decent.
fn draw_scores(rng: &mut fastrand::Rng, quality: f64, offsets: &[f64; 5]) -> Act {
    let view = normal(rng, 0.0, 3.0);
    let scores: [u8; 5] = std::array::from_fn(|c| {
        let score = quality + offsets.get(c).copied().unwrap_or(0.0) + view + normal(rng, 0.0, 4.0);
        score.round().clamp(40.0, 100.0) as u8
    });
    let mean = scores.iter().map(|s| f64::from(*s)).sum::<f64>() / 5.0;
    let satisfied = mean + normal(rng, 0.0, 3.0) >= 77.0;
    Act::Evaluate {
        scores,
        satisfied,
        remark: content::remark(rng),
    }
}

/// Draws `count` distinct evaluators among `pool` of the masses.
fn masses(rng: &mut fastrand::Rng, pool: usize, count: usize) -> Vec<Who> {
    let mut chosen: Vec<usize> = Vec::with_capacity(count);
    while chosen.len() < count.min(pool) {
        let p = rng.usize(..pool);
        if !chosen.contains(&p) {
            chosen.push(p);
        }
    }
    chosen.into_iter().map(Who::Public).collect()
}

/// Up to `count` of an organisation's members other than `except`.
fn fellows(
    rng: &mut fastrand::Rng,
    members: std::ops::Range<usize>,
    except: Option<usize>,
    count: usize,
) -> Vec<Who> {
    let mut pool: Vec<usize> = members.filter(|m| Some(*m) != except).collect();
    rng.shuffle(&mut pool);
    pool.truncate(count);
    pool.sort_unstable();
    pool.into_iter().map(Who::Member).collect()
}

fn hour(rng: &mut fastrand::Rng) -> Minute {
    rng.i64(9..17) * HOUR + rng.i64(0..4) * 15
}

// ---------------------------------------------------------------------------
// The three phases
// ---------------------------------------------------------------------------

struct SecondRound {
    plan: Plan,
    again_orgs: u64,
    again_members: u64,
}

struct Selection {
    plan: Plan,
    honoured_orgs: u64,
    honoured_members: u64,
}

impl Roster {
    /// Deployment, mobilisation (some late), pledges (some late), plans,
    /// comments (some late), the first round of evaluation and its close
    /// (some by the deadline).
    fn first_round(&self) -> Plan {
        let mut plan = Plan::default();
        let deploy_at = START + 30;
        for first in (0..self.orgs.len()).step_by(DEPLOY_BATCH) {
            let range = first..(first + DEPLOY_BATCH).min(self.orgs.len());
            // The first batch moves the bureau to "running"; later batches
            // are `deploy_more`, the same event from there.
            plan.add(deploy_at, Target::Bureau, Who::Director, Act::Deploy(range));
        }
        for (o, org) in self.orgs.iter().enumerate() {
            let mut rng = rng_for(self.seed, &[tag::ORG_PLAN, o as u64]);
            let mobilise_day = if self.late_mobilisers.get(o) == Some(&true) {
                day_of(6, rng.i64(2..10))
            } else {
                day_of(5, rng.i64(8..30))
            };
            let m = mobilise_day * DAY;
            plan.add(
                m + hour(&mut rng),
                Target::Org(o),
                Who::Secretary(o),
                Act::Mobilise,
            );
            let members = self.org_members(o);
            self.plan_members(&mut plan, o, members.clone(), m, 1);

            // The organisation publishes its plan once its members have
            // pledged, and the party group comments on it.
            let plan_day = m + rng.i64(10..13) * DAY;
            plan.add(
                plan_day + hour(&mut rng),
                Target::Org(o),
                Who::Secretary(o),
                Act::PublishPlan { round: 1 },
            );
            let comment_day = if self.late_comments.get(o) == Some(&true) {
                plan_day + rng.i64(15..18) * DAY
            } else {
                plan_day + rng.i64(1..9) * DAY
            };
            let commenter = if rng.bool() {
                Who::PartyGroup
            } else {
                Who::Director
            };
            plan.add(
                comment_day + hour(&mut rng),
                Target::Org(o),
                commenter,
                Act::Comment { round: 1 },
            );
            // The mass evaluation opens after the members' (day 20).
            let open = (comment_day + DAY).max(m + 21 * DAY) + 9 * HOUR;
            plan.add(open, Target::Org(o), Who::Director, Act::OpenEvaluation);
            let evaluators = self.org_evaluators(o, 1);
            plan.evaluations(
                self,
                Target::Org(o),
                1,
                open - 9 * HOUR,
                1..13,
                org.quality,
                &evaluators,
            );
            // Closed by the leading group after the members' evaluations
            // have closed (day 35), or left to the 30-day deadline.
            if self.deadline_closed.get(o) != Some(&true) {
                let close = (open - 9 * HOUR + 16 * DAY).max(m + 36 * DAY) + 11 * HOUR;
                plan.add(close, Target::Org(o), Who::Director, Act::CloseEvaluation);
            }
        }
        plan
    }

    /// A round of the members of organisation `o` (or some of them),
    /// entering their pledge stage at `m`: pledge (some late), comment,
    /// evaluation, close.
    fn plan_members(
        &self,
        plan: &mut Plan,
        o: usize,
        members: impl Iterator<Item = usize>,
        m: Minute,
        round: i64,
    ) {
        let (open_day, last_day, close_day) = if round == 1 {
            (20, 30, 35)
        } else {
            (10, 18, 22)
        };
        for i in members {
            let mut rng = rng_for(self.seed, &[tag::MEMBER_PLAN, i as u64, round as u64]);
            // One in twenty pledges after the 14-day deadline has escalated.
            let pledge_day = if round == 1 && rng.u32(..20) == 0 {
                15 + rng.i64(0..3)
            } else if round == 1 {
                rng.i64(1..11)
            } else {
                rng.i64(1..7)
            };
            let pledged = m + pledge_day * DAY;
            plan.add(
                pledged + hour(&mut rng),
                Target::Member(i),
                Who::Member(i),
                Act::SubmitPledge { round },
            );
            let commenter = if rng.u32(..3) == 0 {
                Who::PartyGroup
            } else {
                Who::Secretary(o)
            };
            plan.add(
                pledged + rng.i64(1..3) * DAY + hour(&mut rng),
                Target::Member(i),
                commenter,
                Act::Comment { round },
            );
            let open = m + open_day * DAY + 9 * HOUR;
            plan.add(
                open,
                Target::Member(i),
                Who::Secretary(o),
                Act::OpenEvaluation,
            );
            let evaluators = self.member_evaluators(o, i, round);
            let quality = self.members.get(i).map_or(80.0, |u| u.quality) + improvement(round);
            plan.evaluations(
                self,
                Target::Member(i),
                round,
                m + open_day * DAY,
                1..(last_day - open_day + 1),
                quality,
                &evaluators,
            );
            plan.add(
                m + close_day * DAY + 10 * HOUR,
                Target::Member(i),
                Who::Secretary(o),
                Act::CloseEvaluation,
            );
        }
    }

    /// An organisation is evaluated by 14 to 22 people: up to six of its own
    /// members, the rest the masses it serves.
    fn org_evaluators(&self, o: usize, round: i64) -> Vec<Who> {
        let mut rng = rng_for(self.seed, &[tag::EVALUATION, 9, o as u64, round as u64]);
        let count = rng.usize(14..23);
        let mut who = fellows(&mut rng, self.org_members(o), None, 6);
        let rest = count.saturating_sub(who.len());
        who.extend(masses(&mut rng, self.public, rest));
        who
    }

    /// A member is evaluated by 7 to 11 people: up to five fellow members,
    /// never themself, and the masses.
    fn member_evaluators(&self, o: usize, i: usize, round: i64) -> Vec<Who> {
        let mut rng = rng_for(self.seed, &[tag::EVALUATION, 8, i as u64, round as u64]);
        let count = rng.usize(7..12);
        let mut who = fellows(&mut rng, self.org_members(o), Some(i), 5);
        let rest = count.saturating_sub(who.len());
        who.extend(masses(&mut rng, self.public, rest));
        who
    }

    /// The selection opens; every unit in rectification names its
    /// problems, fixes them (some late, a few not at all) and, once all
    /// are closed, goes round again on a common calendar.
    fn second_round(&self, units: &Units) -> SecondRound {
        let mut plan = Plan::default();
        let opens = day_of(8, 17) * DAY + 9 * HOUR + 30;
        plan.add(opens, Target::Bureau, Who::Director, Act::StartCommendation);
        let rectified_at = day_of(10, 9) * DAY + 10 * HOUR;
        let mut again_orgs = 0;
        let mut again_members = 0;
        let mut again_by_org: HashMap<usize, Vec<usize>> = HashMap::new();
        for target in units.in_stage("rectification") {
            let stalled = self.rectify(&mut plan, target, 1, day_of(8, 18), None);
            if stalled {
                continue;
            }
            match target {
                Target::Org(o) => {
                    plan.add(rectified_at, target, Who::Director, Act::Rectified);
                    again_orgs += 1;
                    self.plan_org_round_two(&mut plan, o, rectified_at - 10 * HOUR);
                }
                Target::Member(i) => {
                    let o = self.members.get(i).map_or(0, |u| u.org);
                    plan.add(rectified_at, target, Who::Secretary(o), Act::Rectified);
                    again_members += 1;
                    again_by_org.entry(o).or_default().push(i);
                }
                Target::Bureau => {}
            }
        }
        let mut orgs: Vec<_> = again_by_org.into_iter().collect();
        orgs.sort_unstable();
        for (o, members) in orgs {
            self.plan_members(
                &mut plan,
                o,
                members.into_iter(),
                rectified_at - 10 * HOUR,
                2,
            );
        }
        SecondRound {
            plan,
            again_orgs,
            again_members,
        }
    }

    /// Plans a unit's rectification: one to three problems named from day
    /// `from`, each due 20 to 35 days later, each closed by an inspector
    /// (one in five late). A stalled unit (about one in eight, or `stall`)
    /// leaves its last problem open. Returns whether it stalled.
    fn rectify(
        &self,
        plan: &mut Plan,
        target: Target,
        round: i64,
        from: i64,
        stall: Option<bool>,
    ) -> bool {
        let (kind, index, namer, fixer) = match target {
            Target::Org(o) => (1, o as u64, Who::PartyGroup, Who::Inspector),
            Target::Member(i) => {
                let o = self.members.get(i).map_or(0, |u| u.org);
                (2, i as u64, Who::Secretary(o), Who::Inspector)
            }
            Target::Bureau => return false,
        };
        let mut rng = rng_for(self.seed, &[tag::RECTIFY, kind, index, round as u64]);
        let stalled = stall.unwrap_or_else(|| rng.u32(..8) == 0);
        let problems = rng.usize(1..4);
        let named = from * DAY + hour(&mut rng);
        for n in 1..=problems {
            let due = from * DAY + rng.i64(20..36) * DAY + 17 * HOUR + 30;
            plan.add(named, target, namer, Act::AddProblem { round, n, due });
            if stalled && n == problems {
                continue;
            }
            let closed = if rng.u32(..5) == 0 {
                due + rng.i64(2..7) * DAY - 8 * HOUR
            } else {
                due - rng.i64(1..16) * DAY - 5 * HOUR
            };
            plan.add(
                closed.max(named + DAY),
                target,
                fixer,
                Act::CloseProblem { round, n },
            );
        }
        stalled
    }

    /// An organisation's second round, from `base` (the day it was
    /// rectified): plan, comment, evaluation, close after its members'.
    fn plan_org_round_two(&self, plan: &mut Plan, o: usize, base: Minute) {
        let mut rng = rng_for(self.seed, &[tag::ORG_PLAN, o as u64, 2]);
        let published = base + rng.i64(8..10) * DAY;
        plan.add(
            published + hour(&mut rng),
            Target::Org(o),
            Who::Secretary(o),
            Act::PublishPlan { round: 2 },
        );
        let commented = published + rng.i64(1..4) * DAY;
        plan.add(
            commented + hour(&mut rng),
            Target::Org(o),
            Who::PartyGroup,
            Act::Comment { round: 2 },
        );
        let open = base + 13 * DAY + 9 * HOUR;
        plan.add(open, Target::Org(o), Who::Director, Act::OpenEvaluation);
        let evaluators = self.org_evaluators(o, 2);
        let quality = self.orgs.get(o).map_or(80.0, |u| u.quality) + improvement(2);
        plan.evaluations(
            self,
            Target::Org(o),
            2,
            base + 13 * DAY,
            1..12,
            quality,
            &evaluators,
        );
        plan.add(
            base + 28 * DAY + 11 * HOUR,
            Target::Org(o),
            Who::Director,
            Act::CloseEvaluation,
        );
    }

    /// Units that failed again name their problems (some still open at
    /// the end); the leading group honours the best third of commended
    /// organisations and the best tenth of commended members.
    fn selection(&self, engine: &Engine, units: &Units) -> Result<Selection, CampaignError> {
        let mut plan = Plan::default();
        for (target, unit) in &units.units {
            if unit.stage == "rectification" && unit.round >= 2 {
                let (kind, index) = target_index(*target);
                let mut rng = rng_for(self.seed, &[tag::RECTIFY, 3, u64::from(kind), index as u64]);
                self.rectify(&mut plan, *target, 2, day_of(11, 9), Some(rng.bool()));
            }
        }
        let honour_day = day_of(11, 16) * DAY;
        let org_criteria = criteria(engine, ORGANISATION);
        let member_criteria = criteria(engine, MEMBER);
        let mut ranked_orgs = Vec::new();
        let mut ranked_members = Vec::new();
        for (target, unit) in &units.units {
            if unit.stage != "commended" {
                continue;
            }
            let (criteria, ranked) = match target {
                Target::Org(_) => (&org_criteria, &mut ranked_orgs),
                Target::Member(_) => (&member_criteria, &mut ranked_members),
                Target::Bureau => continue,
            };
            let Some(criteria) = criteria else { continue };
            let scores = criteria.scores(unit.evaluations.as_ref());
            ranked.push((
                scores.overall.unwrap_or(0.0),
                scores.satisfied_share.unwrap_or(0.0),
                *target,
            ));
        }
        // Best first; ties go to the lower id, so the choice is stable.
        let order = |a: &(f64, f64, Target), b: &(f64, f64, Target)| {
            b.0.total_cmp(&a.0)
                .then(target_index(a.2).cmp(&target_index(b.2)))
        };
        ranked_orgs.sort_by(order);
        ranked_members.sort_by(order);
        let org_count = ranked_orgs.len().div_ceil(3);
        let member_count = ranked_members.len().div_ceil(10);
        for (slot, (overall, satisfied, target)) in ranked_orgs.iter().take(org_count).enumerate() {
            let Target::Org(o) = target else { continue };
            let mut rng = rng_for(self.seed, &[tag::HONOUR, 1, *o as u64]);
            let name = self.orgs.get(*o).map_or("", |u| &u.zh);
            let citation = content::organisation_citation(&mut rng, name, *overall, *satisfied);
            let at = honour_day + 10 * HOUR + slot as i64 * 5;
            plan.add(at, *target, Who::Director, Act::Honour { citation });
        }
        for (slot, (overall, satisfied, target)) in
            ranked_members.iter().take(member_count).enumerate()
        {
            let Target::Member(i) = target else { continue };
            let mut rng = rng_for(self.seed, &[tag::HONOUR, 2, *i as u64]);
            let name = self.members.get(*i).map_or("", |u| &u.name);
            let citation = content::member_citation(&mut rng, name, *overall, *satisfied);
            let at = honour_day + 14 * HOUR + (slot as i64 / 60) * 5;
            plan.add(at, *target, Who::Director, Act::Honour { citation });
        }
        // The demo stops at END: what would come later (problems fixed in
        // December) stays open, and a last tick escalates what fell due.
        plan.truncate_after(END);
        plan.steps.entry(END).or_default();
        Ok(Selection {
            plan,
            honoured_orgs: org_count as u64,
            honoured_members: member_count as u64,
        })
    }
}

/// Rectified units did their homework: the second round scores higher.
fn improvement(round: i64) -> f64 {
    if round >= 2 { 5.0 } else { 0.0 }
}

fn target_index(target: Target) -> (u8, usize) {
    match target {
        Target::Bureau => (0, 0),
        Target::Org(o) => (1, o),
        Target::Member(i) => (2, i),
    }
}

fn criteria(engine: &Engine, workflow: &str) -> Option<Criteria> {
    engine
        .workflow(workflow, None)
        .and_then(|w| Criteria::of(w.definition()))
}

// ---------------------------------------------------------------------------
// Reading the store between phases
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Org,
    Member,
}

struct UnitState {
    stage: String,
    round: i64,
    evaluations: Option<Value>,
}

/// Every organisation's and member's state, in id order.
struct Units {
    units: Vec<(Target, UnitState)>,
}

impl Units {
    fn in_stage<'a>(&'a self, stage: &'a str) -> impl Iterator<Item = Target> + 'a {
        self.units
            .iter()
            .filter(move |(_, unit)| unit.stage == stage)
            .map(|(target, _)| *target)
    }

    fn count(&self, kind: Kind, stage: &str) -> u64 {
        self.units
            .iter()
            .filter(|(target, unit)| {
                unit.stage == stage
                    && matches!(
                        (kind, target),
                        (Kind::Org, Target::Org(_)) | (Kind::Member, Target::Member(_))
                    )
            })
            .count() as u64
    }
}

// ---------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------

struct Run<'a> {
    engine: &'a Engine,
    clock: &'a ManualClock,
    roster: &'a Roster,
    concurrency: usize,
    summary: DemoSummary,
}

/// The deadline events that escalate (the others close an evaluation).
const ESCALATIONS: [&str; 3] = ["mobilisation_overdue", "pledge_overdue", "comment_overdue"];

impl Run<'_> {
    fn read_units(&self) -> Result<Units, CampaignError> {
        let mut units = Vec::with_capacity(self.roster.orgs.len() + self.roster.members.len());
        let targets = (0..self.roster.orgs.len())
            .map(Target::Org)
            .chain((0..self.roster.members.len()).map(Target::Member));
        for target in targets {
            let id = self.roster.id(target);
            let Some(snapshot) = self.engine.instance(id)? else {
                continue;
            };
            let data = snapshot.instance.data;
            units.push((
                target,
                UnitState {
                    stage: snapshot.instance.stage,
                    round: data.get("round").and_then(Value::as_i64).unwrap_or(1),
                    evaluations: data.get("evaluations").cloned(),
                },
            ));
        }
        Ok(Units { units })
    }

    /// Runs a plan: for every step time and every midnight in between,
    /// fire what is due, then the step's commands.
    fn execute(
        &mut self,
        plan: &Plan,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), CampaignError> {
        self.summary.commands += plan.commands;
        self.summary.evaluations += plan.evaluations;
        self.summary.resubmissions += plan.resubmissions;
        let (Some(first), Some(last)) = (plan.steps.keys().next(), plan.steps.keys().next_back())
        else {
            return Ok(());
        };
        let mut times: Vec<Minute> = plan.steps.keys().copied().collect();
        let mut midnight = (first / DAY + 1) * DAY;
        while midnight <= *last {
            times.push(midnight);
            midnight += DAY;
        }
        times.sort_unstable();
        times.dedup();
        let empty = Vec::new();
        let mut done = 0;
        progress(done, plan.commands);
        for time in times {
            let stamp = calendar::timestamp(time);
            self.clock.set(stamp);
            self.tick(stamp)?;
            let commands = plan.steps.get(&time).unwrap_or(&empty);
            if commands.is_empty() {
                continue;
            }
            self.step(commands, stamp)?;
            done += commands.len() as u64;
            progress(done, plan.commands);
        }
        Ok(())
    }

    fn tick(&mut self, now: Timestamp) -> Result<(), CampaignError> {
        for fired in self.engine.fire_due(now)? {
            match fired.result {
                Ok(_) if ESCALATIONS.contains(&fired.event.as_str()) => {
                    self.summary.escalations += 1
                }
                Ok(_) if fired.event == "close_evaluation" => self.summary.closed_by_deadline += 1,
                Ok(_) => {}
                Err(source) => {
                    return Err(CampaignError::Deadline {
                        instance: fired.instance,
                        event: fired.event,
                        source: Box::new(source),
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs one step's commands: those of one instance in plan order, the
    /// instances on up to `concurrency` threads.
    fn step(&self, commands: &[Cmd], at: Timestamp) -> Result<(), CampaignError> {
        let mut groups: Vec<Vec<&Cmd>> = Vec::new();
        let mut by_target: HashMap<Target, usize> = HashMap::new();
        for cmd in commands {
            let slot = *by_target.entry(cmd.target).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            if let Some(group) = groups.get_mut(slot) {
                group.push(cmd);
            }
        }
        let run_group = |group: &[&Cmd]| -> Result<(), CampaignError> {
            for cmd in group {
                self.fire(cmd, at)?;
            }
            Ok(())
        };
        let threads = self.concurrency.min(groups.len());
        if threads <= 1 {
            return groups.iter().try_for_each(|group| run_group(group));
        }
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<CampaignError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(group) = groups.get(index) else {
                            break;
                        };
                        if let Err(error) = run_group(group) {
                            if let Ok(mut slot) = failure.lock() {
                                slot.get_or_insert(error);
                            }
                            // Stop handing out work; the others finish theirs.
                            next.store(groups.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                });
            }
        });
        match failure.into_inner() {
            Ok(Some(error)) => Err(error),
            _ => Ok(()),
        }
    }

    fn fire(&self, cmd: &Cmd, at: Timestamp) -> Result<(), CampaignError> {
        let instance = cmd.instance(self.roster);
        let event = cmd.act.event();
        self.engine
            .fire(
                instance,
                event,
                &cmd.who.actor(self.roster),
                cmd.payload(self.roster),
                CommandOptions::default(),
            )
            .map(|_| ())
            .map_err(|source| CampaignError::Command {
                instance: instance.to_owned(),
                event: event.to_owned(),
                at,
                source: Box::new(source),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_spread_over_every_organisation() {
        let roster = Roster::new(&DemoOptions::new(12, 150)).expect("a roster");
        assert_eq!(roster.members.len(), 150);
        assert!(roster.orgs.iter().all(|o| !o.members.is_empty()));
        assert_eq!(roster.orgs[0].id, "org-01");
        assert_eq!(roster.members[0].id, "org-01-m01");
        assert_eq!(roster.late_mobilisers.iter().filter(|l| **l).count(), 1);
        assert!(Roster::new(&DemoOptions::new(3, 2)).is_err());
        assert!(Roster::new(&DemoOptions::new(1, 1001)).is_err());
        assert!(Roster::new(&DemoOptions::new(0, 0)).is_err());
    }

    #[test]
    fn the_calendar_helpers_name_the_right_days() {
        assert_eq!(day_of(5, 1), 0);
        assert_eq!(day_of(6, 1), 31);
        assert_eq!(day_of(11, 30), 213);
        assert_eq!(calendar::rfc3339(END), "2026-11-30T18:00:00+08:00");
    }
}
