//! The campaign report: a model built from the engine's queries, rendered
//! as text, JSON, CSV or one self-contained HTML page.
//!
//! The report reads what the workflows record, by convention rather than by
//! workflow id, so that it works for every version of the campaign's
//! workflows (and reads nothing into others):
//!
//! | data | read as |
//! |---|---|
//! | `name` | the unit's name: a string, or `{"zh", "en"}` |
//! | `escalations` | a deadline escalated the unit; the history says which |
//! | `outcome` = `commended` | the unit was commended by its latest evaluation |
//! | `evaluations` | one entry per evaluator; criteria from the definition |
//! | `honoured`, `citation` | the unit was selected and honoured |
//! | `problems`, `closed_problems` | rectification items, each with a `due` |
//! | `overdue_organisations`, `deployed`, ... | the bureau's roll-up |

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Map, Value};
use strive_core::{Definition, Label, StageKind};
use strive_store::{Engine, ListQuery, Snapshot};

use crate::error::CampaignError;
use crate::scores::{Criteria, Scores};

/// A text in Chinese and English.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Bilingual {
    /// Chinese.
    pub zh: String,
    /// English.
    pub en: String,
}

impl Bilingual {
    /// Both texts.
    pub fn new(zh: impl Into<String>, en: impl Into<String>) -> Bilingual {
        Bilingual {
            zh: zh.into(),
            en: en.into(),
        }
    }

    /// `中文 English`, or one of them when both are the same.
    pub fn both(&self) -> String {
        if self.zh == self.en || self.en.is_empty() {
            self.zh.clone()
        } else if self.zh.is_empty() {
            self.en.clone()
        } else {
            format!("{} {}", self.zh, self.en)
        }
    }
}

/// The (Chinese, English) texts of a label, falling back to `id`.
pub(crate) fn labels(label: Option<&Label>, id: &str) -> (String, String) {
    match label {
        None => (id.to_owned(), id.to_owned()),
        Some(Label::Plain(text)) => (text.clone(), text.clone()),
        Some(label @ Label::Localized(_)) => {
            (label.get("zh").to_owned(), label.get("en").to_owned())
        }
    }
}

fn bilingual(label: Option<&Label>, id: &str) -> Bilingual {
    let (zh, en) = labels(label, id);
    Bilingual { zh, en }
}

/// What to report on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportOptions {
    /// Only this workflow; every deployed workflow when none.
    pub workflow: Option<String>,
    /// The time the report is "as of": what is overdue is overdue then.
    /// When none, now, or the time of the last recorded event if that is
    /// later (a store written with a simulated clock).
    pub as_of: Option<Timestamp>,
}

impl ReportOptions {
    /// Only `workflow`.
    pub fn workflow(self, workflow: impl Into<String>) -> ReportOptions {
        ReportOptions {
            workflow: Some(workflow.into()),
            ..self
        }
    }

    /// As of `at`.
    pub fn as_of(self, at: Timestamp) -> ReportOptions {
        ReportOptions {
            as_of: Some(at),
            ..self
        }
    }
}

/// The campaign report.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// What is overdue is overdue at this time.
    pub as_of: Timestamp,
    /// Instances of the workflows reported on.
    pub instances: u64,
    /// Events in the store.
    pub events: u64,
    /// Each bureau's roll-up.
    pub campaigns: Vec<CampaignSummary>,
    /// Stage counts, per workflow, parents before children.
    pub workflows: Vec<WorkflowStages>,
    /// Units a deadline escalated, and units past a deadline not yet fired.
    pub overdue: Vec<OverdueUnit>,
    /// Units commended by their latest evaluation, with their scores.
    pub commended: Vec<CommendedUnit>,
    /// Rectification items not yet confirmed fixed.
    pub open_items: Vec<OpenItem>,
    #[serde(skip)]
    pub(crate) definitions: Vec<Definition>,
}

/// One bureau's roll-up of its campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CampaignSummary {
    /// The bureau's instance.
    pub instance: String,
    /// Its workflow.
    pub workflow: String,
    /// Its stage.
    pub stage: String,
    /// The stage's label.
    pub stage_label: Bilingual,
    /// Organisations deployed to.
    pub deployed: i64,
    /// Rounds of organisation evaluation closed.
    pub evaluations_closed: i64,
    /// Organisations honoured.
    pub organisations_honoured: i64,
    /// Members honoured.
    pub members_honoured: i64,
    /// The organisations escalated for late mobilisation, in the order
    /// reported.
    pub overdue_organisations: Vec<UnitRef>,
}

/// A unit as the report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UnitRef {
    /// The instance id.
    pub instance: String,
    /// Its workflow.
    pub workflow: String,
    /// Its name, if it has one.
    pub name: Option<Bilingual>,
    /// Its parent instance.
    pub parent: Option<String>,
    /// The parent's name.
    pub parent_name: Option<Bilingual>,
}

/// A workflow's stage counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WorkflowStages {
    /// The workflow.
    pub workflow: String,
    /// Its latest version.
    pub version: u32,
    /// Its title.
    pub title: Bilingual,
    /// How many instances.
    pub total: u64,
    /// Each stage, in the definition's order.
    pub stages: Vec<StageCount>,
    /// How many instances are suspended, cancelled or terminated
    /// (lifecycle operations, issue #13), by status; running ones are
    /// not listed. They are counted in their stages too.
    pub statuses: BTreeMap<String, u64>,
}

/// How many instances are in one stage.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StageCount {
    /// The stage.
    pub stage: String,
    /// Its label.
    pub label: Bilingual,
    /// `initial`, `normal` or `terminal`.
    pub kind: &'static str,
    /// How many instances are in it.
    pub count: u64,
}

/// Whether an overdue unit is still overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OverdueStatus {
    /// Escalated, and still in the stage that was overdue.
    Escalated,
    /// Escalated, and has since moved on.
    Resolved,
    /// Past its deadline, which has not fired yet: run `strive tick`.
    Pending,
}

impl OverdueStatus {
    /// The status for people.
    pub fn label(self) -> Bilingual {
        match self {
            OverdueStatus::Escalated => Bilingual::new("已督办，仍未完成", "escalated, still open"),
            OverdueStatus::Resolved => Bilingual::new("已督办，已完成", "escalated, since done"),
            OverdueStatus::Pending => {
                Bilingual::new("已逾期，待督办", "past due, not yet escalated")
            }
        }
    }
}

/// A unit a deadline escalated (one row per escalation), or one past a
/// deadline that has not fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OverdueUnit {
    /// The unit.
    pub unit: UnitRef,
    /// The deadline's event.
    pub event: String,
    /// What was overdue: the event's label.
    pub reason: Bilingual,
    /// When it was escalated, or when it fell due (pending).
    pub since: Timestamp,
    /// The stage that was overdue.
    pub stage_then: String,
    /// The stage now.
    pub stage: String,
    /// The stage now, for people.
    pub stage_label: Bilingual,
    /// Whether it is still overdue.
    pub status: OverdueStatus,
}

/// A unit commended by its latest evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct CommendedUnit {
    /// The unit.
    pub unit: UnitRef,
    /// Its stage now.
    pub stage: String,
    /// The stage, for people.
    pub stage_label: Bilingual,
    /// The round it was commended in.
    pub round: i64,
    /// Whether the selection honoured it.
    pub honoured: bool,
    /// The citation, if honoured.
    pub citation: Option<String>,
    /// Its evaluation's aggregates.
    pub scores: Scores,
}

/// A rectification item not yet confirmed fixed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct OpenItem {
    /// The unit.
    pub unit: UnitRef,
    /// The unit's stage.
    pub stage: String,
    /// The problem's id.
    pub problem: String,
    /// The problem.
    pub text: String,
    /// When it is due.
    pub due: Timestamp,
    /// Whether it is past due.
    pub overdue: bool,
    /// Whole days past due (0 when not overdue).
    pub days_overdue: i64,
}

impl Report {
    /// The commended units of one workflow, in the report's order: what
    /// every renderer lists under that workflow's heading.
    pub(crate) fn commended_in(&self, workflow: &str) -> Vec<&CommendedUnit> {
        self.commended
            .iter()
            .filter(|c| c.unit.workflow == workflow)
            .collect()
    }

    /// Builds the report from what `engine` holds.
    pub fn build(engine: &Engine, options: &ReportOptions) -> Result<Report, CampaignError> {
        let infos = engine.workflows()?;
        let deployed: Vec<String> = infos.iter().map(|i| i.workflow.clone()).collect();
        if let Some(wanted) = &options.workflow
            && !deployed.contains(wanted)
        {
            return Err(CampaignError::UnknownWorkflow {
                workflow: wanted.clone(),
                deployed,
            });
        }
        let mut definitions: Vec<(u32, Definition)> = infos
            .iter()
            .filter(|info| {
                options
                    .workflow
                    .as_ref()
                    .is_none_or(|w| *w == info.workflow)
            })
            .filter_map(|info| {
                engine
                    .workflow(&info.workflow, Some(info.version))
                    .map(|w| (info.version, w.definition().clone()))
            })
            .collect();
        order_parents_first(&mut definitions);
        let as_of = match options.as_of {
            Some(at) => at,
            None => {
                // The latest of every partition's last event: with several
                // partitions partition 0's alone may be far behind.
                let mut last = None;
                for partition in 0..engine.partitions() {
                    let end = engine.event_in(partition, engine.last_gseq_in(partition))?;
                    last = last.max(end.map(|e| e.event.at));
                }
                last.map_or_else(Timestamp::now, |last| last.max(Timestamp::now()))
            }
        };
        let mut builder = Builder {
            engine,
            as_of,
            names: HashMap::new(),
            report: Report {
                as_of,
                instances: 0,
                events: engine.total_events(),
                campaigns: Vec::new(),
                workflows: Vec::new(),
                overdue: Vec::new(),
                commended: Vec::new(),
                open_items: Vec::new(),
                definitions: Vec::new(),
            },
        };
        for (version, definition) in &definitions {
            builder.workflow(*version, definition)?;
        }
        let order: Vec<&str> = definitions.iter().map(|(_, d)| d.id.as_str()).collect();
        let rank = |workflow: &str| {
            order
                .iter()
                .position(|w| *w == workflow)
                .unwrap_or(usize::MAX)
        };
        let report = &mut builder.report;
        report.overdue.sort_by(|a, b| {
            (rank(&a.unit.workflow), a.since, &a.unit.instance).cmp(&(
                rank(&b.unit.workflow),
                b.since,
                &b.unit.instance,
            ))
        });
        report.commended.sort_by(|a, b| {
            rank(&a.unit.workflow)
                .cmp(&rank(&b.unit.workflow))
                .then(b.honoured.cmp(&a.honoured))
                .then(
                    b.scores
                        .overall
                        .unwrap_or(0.0)
                        .total_cmp(&a.scores.overall.unwrap_or(0.0)),
                )
                .then(a.unit.instance.cmp(&b.unit.instance))
        });
        report.open_items.sort_by(|a, b| {
            (rank(&a.unit.workflow), a.due, &a.unit.instance, &a.problem).cmp(&(
                rank(&b.unit.workflow),
                b.due,
                &b.unit.instance,
                &b.problem,
            ))
        });
        let mut report = builder.report;
        report.definitions = definitions.into_iter().map(|(_, d)| d).collect();
        Ok(report)
    }

    /// The definitions reported on, parents first.
    pub fn definitions(&self) -> &[Definition] {
        &self.definitions
    }
}

/// Sorts workflows so that a workflow comes after those that spawn it: the
/// bureau, then organisations, then members. Ties go by id.
fn order_parents_first(definitions: &mut [(u32, Definition)]) {
    let mut depth: HashMap<String, usize> =
        definitions.iter().map(|(_, d)| (d.id.clone(), 0)).collect();
    // A longest-path pass per workflow is enough for a DAG; the bound stops
    // a workflow that spawns itself from looping.
    for _ in 0..definitions.len() {
        let mut changed = false;
        for (_, parent) in definitions.iter() {
            let parent_depth = depth.get(&parent.id).copied().unwrap_or(0);
            for transition in &parent.transitions {
                if let Some(spawn) = &transition.spawn
                    && spawn.workflow != parent.id
                    && let Some(child) = depth.get_mut(&spawn.workflow)
                    && *child <= parent_depth
                {
                    *child = parent_depth + 1;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    definitions.sort_by(|(_, a), (_, b)| (depth.get(&a.id), &a.id).cmp(&(depth.get(&b.id), &b.id)));
}

struct Builder<'e> {
    engine: &'e Engine,
    as_of: Timestamp,
    /// Names of instances already read, for naming parents.
    names: HashMap<String, Option<Bilingual>>,
    report: Report,
}

/// How many instances one page of the listing reads.
const PAGE: usize = 500;

impl Builder<'_> {
    fn workflow(&mut self, version: u32, definition: &Definition) -> Result<(), CampaignError> {
        let criteria = Criteria::of(definition);
        let mut counts: HashMap<String, u64> = HashMap::new();
        let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
        let mut total = 0;
        let mut after = None;
        loop {
            let page = self.engine.list(&ListQuery {
                workflow: Some(definition.id.clone()),
                after: after.take(),
                limit: Some(PAGE),
                ..ListQuery::default()
            })?;
            for snapshot in &page.items {
                total += 1;
                *counts.entry(snapshot.instance.stage.clone()).or_default() += 1;
                let status = snapshot.instance.status;
                if !status.is_running() {
                    *statuses.entry(status.as_str().to_owned()).or_default() += 1;
                }
                self.instance(definition, criteria.as_ref(), snapshot)?;
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        self.report.instances += total;
        let stages = definition
            .stages
            .iter()
            .map(|stage| StageCount {
                stage: stage.id.clone(),
                label: bilingual(stage.label.as_ref(), &stage.id),
                kind: match stage.kind {
                    StageKind::Initial => "initial",
                    StageKind::Normal => "normal",
                    StageKind::Terminal => "terminal",
                },
                count: counts.get(&stage.id).copied().unwrap_or(0),
            })
            .collect();
        self.report.workflows.push(WorkflowStages {
            workflow: definition.id.clone(),
            version,
            title: bilingual(Some(&definition.title), &definition.id),
            total,
            stages,
            statuses,
        });
        Ok(())
    }

    fn name_of(data: &Map<String, Value>) -> Option<Bilingual> {
        match data.get("name")? {
            Value::String(name) if !name.is_empty() => {
                Some(Bilingual::new(name.clone(), name.clone()))
            }
            Value::Object(names) => {
                let zh = names.get("zh").and_then(Value::as_str).unwrap_or_default();
                let en = names.get("en").and_then(Value::as_str).unwrap_or_default();
                (!zh.is_empty() || !en.is_empty()).then(|| Bilingual::new(zh, en))
            }
            _ => None,
        }
    }

    fn parent_name(&mut self, parent: &str) -> Result<Option<Bilingual>, CampaignError> {
        if let Some(name) = self.names.get(parent) {
            return Ok(name.clone());
        }
        let name = self
            .engine
            .instance(parent)?
            .and_then(|snapshot| Builder::name_of(&snapshot.instance.data));
        self.names.insert(parent.to_owned(), name.clone());
        Ok(name)
    }

    fn unit(&mut self, snapshot: &Snapshot) -> Result<UnitRef, CampaignError> {
        let instance = &snapshot.instance;
        let parent_name = match &instance.parent {
            Some(parent) => self.parent_name(parent)?,
            None => None,
        };
        Ok(UnitRef {
            instance: instance.id.clone(),
            workflow: instance.workflow.clone(),
            name: Builder::name_of(&instance.data),
            parent: instance.parent.clone(),
            parent_name,
        })
    }

    fn instance(
        &mut self,
        definition: &Definition,
        criteria: Option<&Criteria>,
        snapshot: &Snapshot,
    ) -> Result<(), CampaignError> {
        let instance = &snapshot.instance;
        let data = &instance.data;
        let stage_label = stage_label(definition, &instance.stage);
        // Organisations are named once, when read, so that their members'
        // rows need no second read.
        if !snapshot.children.is_empty() {
            self.names
                .insert(instance.id.clone(), Builder::name_of(data));
        }
        let int = |key: &str| data.get(key).and_then(Value::as_i64).unwrap_or(0);

        if let Some(Value::Array(overdue)) = data.get("overdue_organisations") {
            let mut units = Vec::with_capacity(overdue.len());
            for id in overdue.iter().filter_map(Value::as_str) {
                let snapshot = self.engine.instance(id)?;
                units.push(match snapshot {
                    Some(child) => self.unit(&child)?,
                    None => UnitRef {
                        instance: id.to_owned(),
                        workflow: String::new(),
                        name: None,
                        parent: Some(instance.id.clone()),
                        parent_name: None,
                    },
                });
            }
            self.report.campaigns.push(CampaignSummary {
                instance: instance.id.clone(),
                workflow: instance.workflow.clone(),
                stage: instance.stage.clone(),
                stage_label: stage_label.clone(),
                deployed: int("deployed"),
                evaluations_closed: int("evaluations_closed"),
                organisations_honoured: int("organisations_honoured"),
                members_honoured: int("members_honoured"),
                overdue_organisations: units,
            });
        }

        let escalated =
            matches!(data.get("escalations"), Some(Value::Array(list)) if !list.is_empty());
        if escalated {
            let unit = self.unit(snapshot)?;
            for stored in self.engine.history(&instance.id)? {
                let event = &stored.event;
                let escalation = event.actor.id == strive_core::SYSTEM_ROLE
                    && event
                        .effects
                        .iter()
                        .any(|e| e.op == "append" && e.var == "escalations");
                if !escalation {
                    continue;
                }
                let stage_then = event.from.clone().unwrap_or_default();
                let status =
                    if instance.stage == stage_then && instance.stage_entered_at <= event.at {
                        OverdueStatus::Escalated
                    } else {
                        OverdueStatus::Resolved
                    };
                self.report.overdue.push(OverdueUnit {
                    unit: unit.clone(),
                    event: event.event.clone(),
                    reason: transition_label(definition, &event.event),
                    since: event.at,
                    stage_then,
                    stage: instance.stage.clone(),
                    stage_label: stage_label.clone(),
                    status,
                });
            }
        }
        if let Some(due) = &snapshot.due
            && due.at < self.as_of
        {
            let unit = self.unit(snapshot)?;
            self.report.overdue.push(OverdueUnit {
                unit,
                event: due.event.clone(),
                reason: transition_label(definition, &due.event),
                since: due.at,
                stage_then: instance.stage.clone(),
                stage: instance.stage.clone(),
                stage_label: stage_label.clone(),
                status: OverdueStatus::Pending,
            });
        }

        if let (Some(criteria), Some("commended")) =
            (criteria, data.get("outcome").and_then(Value::as_str))
        {
            let unit = self.unit(snapshot)?;
            let honoured = data.get("honoured").and_then(Value::as_bool) == Some(true);
            self.report.commended.push(CommendedUnit {
                unit,
                stage: instance.stage.clone(),
                stage_label: stage_label.clone(),
                round: int("round").max(1),
                honoured,
                citation: data
                    .get("citation")
                    .and_then(Value::as_str)
                    .filter(|c| honoured && !c.is_empty())
                    .map(str::to_owned),
                scores: criteria.scores(data.get(crate::scores::EVALUATIONS)),
            });
        }

        if let Some(Value::Object(problems)) = data.get("problems") {
            let closed = data.get("closed_problems").and_then(Value::as_object);
            for (id, problem) in problems {
                if closed.is_some_and(|closed| closed.contains_key(id)) {
                    continue;
                }
                let Some(due) = problem
                    .get("due")
                    .and_then(Value::as_str)
                    .and_then(|due| due.parse::<Timestamp>().ok())
                else {
                    continue;
                };
                let overdue = due < self.as_of;
                let days_overdue = if overdue {
                    (self.as_of.as_second() - due.as_second()) / 86_400
                } else {
                    0
                };
                let unit = self.unit(snapshot)?;
                self.report.open_items.push(OpenItem {
                    unit,
                    stage: instance.stage.clone(),
                    problem: id.clone(),
                    text: problem
                        .get("text")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    due,
                    overdue,
                    days_overdue,
                });
            }
        }
        Ok(())
    }
}

/// A stage's label.
pub(crate) fn stage_label(definition: &Definition, stage: &str) -> Bilingual {
    let label = definition
        .stages
        .iter()
        .find(|s| s.id == stage)
        .and_then(|s| s.label.as_ref());
    bilingual(label, stage)
}

/// The label of the first transition for `event`.
fn transition_label(definition: &Definition, event: &str) -> Bilingual {
    let label = definition
        .transitions
        .iter()
        .find(|t| t.event == event)
        .and_then(|t| t.label.as_ref());
    bilingual(label, event)
}
