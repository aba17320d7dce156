//! The report as text, JSON and CSV (HTML is in `html.rs`).

use std::fmt::Write as _;

use crate::calendar;
use crate::report::{Report, UnitRef};
use crate::table::{Table, truncate};

/// How to render a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportFormat {
    /// Aligned tables for a terminal, in Chinese and English.
    Text,
    /// The report model as one JSON document.
    Json,
    /// One row per fact: `section,workflow,instance,parent,stage,field,value`.
    Csv,
    /// One self-contained HTML page with the workflow diagrams and tables.
    Html,
}

/// Options of rendering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenderOptions {
    /// At most this many rows per table in text and HTML (JSON and CSV are
    /// always complete); all when none.
    pub limit: Option<usize>,
}

impl RenderOptions {
    /// At most `limit` rows per table; 0 means all.
    pub fn limit(limit: usize) -> RenderOptions {
        RenderOptions {
            limit: (limit > 0).then_some(limit),
        }
    }
}

impl Report {
    /// The report in `format`.
    pub fn render(&self, format: ReportFormat, options: &RenderOptions) -> String {
        match format {
            ReportFormat::Text => self.to_text(options),
            ReportFormat::Json => self.to_json(),
            ReportFormat::Csv => self.to_csv(),
            ReportFormat::Html => self.to_html(options),
        }
    }

    /// Pretty JSON of the report model.
    pub fn to_json(&self) -> String {
        // The model holds strings, numbers and timestamps only: it always
        // serializes (serde_json writes a non-finite float as null).
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The report for a terminal.
    pub fn to_text(&self, options: &RenderOptions) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "创先争优活动报告  Strive for excellence: campaign report"
        );
        let _ = writeln!(
            out,
            "截至 As of {} (UTC+8) · 实例 instances {} · 事件 events {}",
            calendar::display(self.as_of),
            thousands(self.instances),
            thousands(self.events)
        );

        for campaign in &self.campaigns {
            let _ = writeln!(
                out,
                "\n局机关 The bureau: {} — {}",
                campaign.instance,
                campaign.stage_label.both()
            );
            let overdue = overdue_organisations(&campaign.overdue_organisations, options, "; ");
            let mut table = Table::new(&[("项目", "Item", false), ("数量", "Count", true)]);
            for (zh, en, value) in [
                ("已部署组织", "organisations deployed", campaign.deployed),
                (
                    "已结束的组织评议",
                    "evaluation rounds closed",
                    campaign.evaluations_closed,
                ),
                (
                    "表彰先进组织",
                    "organisations honoured",
                    campaign.organisations_honoured,
                ),
                (
                    "表彰优秀党员",
                    "members honoured",
                    campaign.members_honoured,
                ),
                (
                    "动员逾期组织",
                    "overdue with mobilisation",
                    campaign.overdue_organisations.len() as i64,
                ),
            ] {
                table.row(vec![format!("{zh} {en}"), value.to_string()]);
            }
            out.push_str(&table.render("  "));
            if !overdue.is_empty() {
                let _ = writeln!(out, "  动员逾期 Overdue: {overdue}");
            }
        }

        let _ = writeln!(out, "\n一、阶段统计 Stage counts");
        for workflow in &self.workflows {
            let _ = writeln!(
                out,
                "\n  {} ({} v{}): {}",
                workflow.title.both(),
                workflow.workflow,
                workflow.version,
                thousands(workflow.total)
            );
            let most = workflow.stages.iter().map(|s| s.count).max().unwrap_or(0);
            let mut table = Table::new(&[
                ("阶段", "Stage", false),
                ("数量", "Count", true),
                ("", "", false),
            ]);
            for stage in &workflow.stages {
                table.row(vec![
                    stage.label.both(),
                    thousands(stage.count),
                    bar(stage.count, most, 30),
                ]);
            }
            out.push_str(&table.render("    "));
            if !workflow.statuses.is_empty() {
                let _ = writeln!(out, "    {}", statuses_line(&workflow.statuses));
            }
        }

        let open_overdue = self
            .overdue
            .iter()
            .filter(|o| o.status != crate::OverdueStatus::Resolved)
            .count();
        let _ = writeln!(
            out,
            "\n二、逾期单位 Overdue units: {} (未完成 still open {open_overdue})",
            self.overdue.len()
        );
        if self.overdue.is_empty() {
            let _ = writeln!(out, "  无 None.");
        } else {
            let mut table = Table::new(&[
                ("单位", "Unit", false),
                ("名称", "Name", false),
                ("逾期事项", "Overdue", false),
                ("督办时间", "Since", false),
                ("当前阶段", "Stage now", false),
                ("状态", "Status", false),
            ]);
            let shown = limited(&self.overdue, options);
            for row in shown {
                let status = row.status.label();
                table.row(vec![
                    row.unit.instance.clone(),
                    truncate(&name_zh(&row.unit), 24),
                    row.reason.both(),
                    calendar::display(row.since),
                    row.stage_label.zh.clone(),
                    format!("{} {}", status.zh, status.en),
                ]);
            }
            out.push_str(&table.render("  "));
            more(&mut out, self.overdue.len(), shown.len());
        }

        let _ = writeln!(
            out,
            "\n三、评为先进、优秀的单位 Commended units, with their scores"
        );
        let mut any = false;
        for workflow in &self.workflows {
            let rows = self.commended_in(&workflow.workflow);
            let Some(first) = rows.first() else { continue };
            any = true;
            let honoured = rows.iter().filter(|c| c.honoured).count();
            let _ = writeln!(
                out,
                "\n  {}: {} (表彰 honoured ★ {honoured})",
                workflow.title.both(),
                rows.len()
            );
            let members = rows
                .iter()
                .any(|c| c.unit.parent_name.is_some() && workflow.workflow != crate::ORGANISATION);
            let mut columns: Vec<(String, String, bool)> = vec![
                ("单位".into(), "Unit".into(), false),
                ("名称".into(), "Name".into(), false),
            ];
            if members {
                columns.push(("所在组织".into(), "Organisation".into(), false));
            }
            columns.extend([
                ("轮次".into(), "Round".into(), true),
                ("表彰".into(), "Honoured".into(), false),
                ("评议人数".into(), "Evaluators".into(), true),
                ("满意率".into(), "Satisfied".into(), true),
            ]);
            for criterion in &first.scores.criteria {
                columns.push((criterion.zh.clone(), criterion.id.clone(), true));
            }
            columns.push(("平均".into(), "Overall".into(), true));
            let mut table = Table::with_columns(columns);
            let shown = limited(&rows, options);
            for row in shown {
                let mut cells = vec![row.unit.instance.clone(), truncate(&name_zh(&row.unit), 24)];
                if members {
                    cells.push(truncate(
                        &row.unit
                            .parent_name
                            .as_ref()
                            .map(|n| n.zh.clone())
                            .unwrap_or_default(),
                        24,
                    ));
                }
                cells.extend([
                    row.round.to_string(),
                    if row.honoured {
                        "★".to_owned()
                    } else {
                        String::new()
                    },
                    row.scores.evaluators.to_string(),
                    percent(row.scores.satisfied_share),
                ]);
                for criterion in &row.scores.criteria {
                    cells.push(score(criterion.mean));
                }
                cells.push(score(row.scores.overall));
                table.row(cells);
            }
            out.push_str(&table.render("  "));
            more(&mut out, rows.len(), shown.len());
        }
        if !any {
            let _ = writeln!(out, "  无 None.");
        }

        let overdue_items = self.open_items.iter().filter(|i| i.overdue).count();
        let _ = writeln!(
            out,
            "\n四、未销号的整改问题 Open rectification items: {} (逾期 overdue {overdue_items})",
            self.open_items.len()
        );
        if self.open_items.is_empty() {
            let _ = writeln!(out, "  无 None.");
        } else {
            let mut table = Table::new(&[
                ("单位", "Unit", false),
                ("名称", "Name", false),
                ("编号", "Item", false),
                ("问题", "Problem", false),
                ("整改期限", "Due", false),
                ("状态", "Status", false),
            ]);
            let shown = limited(&self.open_items, options);
            for item in shown {
                table.row(vec![
                    item.unit.instance.clone(),
                    truncate(&name_zh(&item.unit), 24),
                    item.problem.clone(),
                    truncate(&item.text, 40),
                    calendar::display_date(item.due),
                    if item.overdue {
                        let (zh, en) = overdue_days(item.days_overdue);
                        format!("{zh} {en}")
                    } else {
                        "未到期 not yet due".to_owned()
                    },
                ]);
            }
            out.push_str(&table.render("  "));
            more(&mut out, self.open_items.len(), shown.len());
        }
        out
    }

    /// One row per fact, for spreadsheets and scripts:
    /// `section,workflow,instance,parent,stage,field,value`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("section,workflow,instance,parent,stage,field,value\n");
        let mut row = |section: &str,
                       unit: Option<&UnitRef>,
                       workflow: &str,
                       stage: &str,
                       field: &str,
                       value: &str| {
            let (instance, parent) = match unit {
                Some(unit) => (unit.instance.as_str(), unit.parent.as_deref().unwrap_or("")),
                None => ("", ""),
            };
            let cells = [section, workflow, instance, parent, stage, field, value];
            let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        };
        row("report", None, "", "", "as_of", &self.as_of.to_string());
        row(
            "report",
            None,
            "",
            "",
            "instances",
            &self.instances.to_string(),
        );
        row("report", None, "", "", "events", &self.events.to_string());
        for campaign in &self.campaigns {
            let unit = UnitRef {
                instance: campaign.instance.clone(),
                workflow: campaign.workflow.clone(),
                name: None,
                parent: None,
                parent_name: None,
            };
            let w = campaign.workflow.as_str();
            let s = campaign.stage.as_str();
            row(
                "campaign",
                Some(&unit),
                w,
                s,
                "deployed",
                &campaign.deployed.to_string(),
            );
            row(
                "campaign",
                Some(&unit),
                w,
                s,
                "evaluations_closed",
                &campaign.evaluations_closed.to_string(),
            );
            row(
                "campaign",
                Some(&unit),
                w,
                s,
                "organisations_honoured",
                &campaign.organisations_honoured.to_string(),
            );
            row(
                "campaign",
                Some(&unit),
                w,
                s,
                "members_honoured",
                &campaign.members_honoured.to_string(),
            );
            for overdue in &campaign.overdue_organisations {
                row(
                    "campaign",
                    Some(&unit),
                    w,
                    s,
                    "overdue_organisation",
                    &overdue.instance,
                );
            }
        }
        for workflow in &self.workflows {
            for stage in &workflow.stages {
                row(
                    "stage_count",
                    None,
                    &workflow.workflow,
                    &stage.stage,
                    "count",
                    &stage.count.to_string(),
                );
            }
            for (status, count) in &workflow.statuses {
                row(
                    "status_count",
                    None,
                    &workflow.workflow,
                    "",
                    status,
                    &count.to_string(),
                );
            }
        }
        for o in &self.overdue {
            let (w, s) = (o.unit.workflow.as_str(), o.stage.as_str());
            row("overdue", Some(&o.unit), w, s, "event", &o.event);
            row(
                "overdue",
                Some(&o.unit),
                w,
                s,
                "since",
                &o.since.to_string(),
            );
            row("overdue", Some(&o.unit), w, s, "stage_then", &o.stage_then);
            row("overdue", Some(&o.unit), w, s, "status", &o.unit_status());
        }
        for c in &self.commended {
            let (w, s) = (c.unit.workflow.as_str(), c.stage.as_str());
            if let Some(name) = &c.unit.name {
                row("commended", Some(&c.unit), w, s, "name", &name.zh);
            }
            row(
                "commended",
                Some(&c.unit),
                w,
                s,
                "round",
                &c.round.to_string(),
            );
            row(
                "commended",
                Some(&c.unit),
                w,
                s,
                "honoured",
                &c.honoured.to_string(),
            );
            row(
                "commended",
                Some(&c.unit),
                w,
                s,
                "evaluators",
                &c.scores.evaluators.to_string(),
            );
            if let Some(share) = c.scores.satisfied_share {
                row(
                    "commended",
                    Some(&c.unit),
                    w,
                    s,
                    "satisfied_share",
                    &share.to_string(),
                );
            }
            for criterion in &c.scores.criteria {
                if let Some(mean) = criterion.mean {
                    row(
                        "commended",
                        Some(&c.unit),
                        w,
                        s,
                        &format!("mean.{}", criterion.id),
                        &mean.to_string(),
                    );
                }
            }
            if let Some(overall) = c.scores.overall {
                row(
                    "commended",
                    Some(&c.unit),
                    w,
                    s,
                    "overall",
                    &overall.to_string(),
                );
            }
            if let Some(citation) = &c.citation {
                row("commended", Some(&c.unit), w, s, "citation", citation);
            }
        }
        for item in &self.open_items {
            let (w, s) = (item.unit.workflow.as_str(), item.stage.as_str());
            let p = &item.problem;
            row(
                "open_item",
                Some(&item.unit),
                w,
                s,
                &format!("{p}.text"),
                &item.text,
            );
            row(
                "open_item",
                Some(&item.unit),
                w,
                s,
                &format!("{p}.due"),
                &item.due.to_string(),
            );
            row(
                "open_item",
                Some(&item.unit),
                w,
                s,
                &format!("{p}.days_overdue"),
                &item.days_overdue.to_string(),
            );
        }
        out
    }
}

impl crate::report::OverdueUnit {
    fn unit_status(&self) -> String {
        match self.status {
            crate::OverdueStatus::Escalated => "escalated",
            crate::OverdueStatus::Resolved => "resolved",
            crate::OverdueStatus::Pending => "pending",
        }
        .to_owned()
    }
}

/// A CSV cell, quoted when it holds a comma, a quote or a line break
/// (RFC 4180).
pub(crate) fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The rows a table shows under `options`.
pub(crate) fn limited<'a, T>(rows: &'a [T], options: &RenderOptions) -> &'a [T] {
    match options.limit {
        Some(limit) if limit < rows.len() => rows.get(..limit).unwrap_or(rows),
        _ => rows,
    }
}

fn more(out: &mut String, total: usize, shown: usize) {
    if shown < total {
        let _ = writeln!(
            out,
            "  … 另有 {} 行 {} more rows (--limit 0 shows all)",
            total - shown,
            total - shown
        );
    }
}

/// The most organisations the bureau's roll-up names; the overdue table
/// lists them all.
const OVERDUE_NAMED: usize = 12;

/// The organisations overdue with mobilisation, named up to the row limit
/// (and never more than [`OVERDUE_NAMED`], since the overdue table has
/// every one), then how many more.
pub(crate) fn overdue_organisations(
    units: &[UnitRef],
    options: &RenderOptions,
    separator: &str,
) -> String {
    let cap = options
        .limit
        .map_or(OVERDUE_NAMED, |l| l.min(OVERDUE_NAMED));
    let mut named: Vec<String> = units
        .iter()
        .take(cap)
        .map(|unit| format!("{} {}", unit.instance, name_zh(unit)))
        .collect();
    if units.len() > cap {
        let rest = units.len() - cap;
        named.push(format!(
            "… 另有 {rest} 个 {rest} more (二、逾期单位 Overdue units)"
        ));
    }
    named.join(separator)
}

/// How long an item is overdue, in Chinese and English: whole days, and
/// "less than a day" rather than "0 days".
pub(crate) fn overdue_days(days: i64) -> (String, String) {
    match days {
        ..=0 => (
            "逾期不足1天".to_owned(),
            "less than a day overdue".to_owned(),
        ),
        1 => ("逾期1天".to_owned(), "1 day overdue".to_owned()),
        n => (format!("逾期{n}天"), format!("{n} days overdue")),
    }
}

/// The unit's Chinese name, or nothing.
pub(crate) fn name_zh(unit: &UnitRef) -> String {
    unit.name.as_ref().map(|n| n.zh.clone()).unwrap_or_default()
}

/// `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn score(value: Option<f64>) -> String {
    value
        .map(|v| format!("{v:.1}"))
        .unwrap_or_else(|| "-".to_owned())
}

pub(crate) fn percent(value: Option<f64>) -> String {
    value
        .map(|v| format!("{:.0}%", v * 100.0))
        .unwrap_or_else(|| "-".to_owned())
}

fn bar(count: u64, most: u64, width: u64) -> String {
    if most == 0 || count == 0 {
        return String::new();
    }
    let cells = (count * width).div_ceil(most);
    "█".repeat(cells as usize)
}

/// The instances a lifecycle operation set aside, for people:
/// `暂停 suspended 2 · 已取消 cancelled 1`.
pub(crate) fn statuses_line(statuses: &std::collections::BTreeMap<String, u64>) -> String {
    statuses
        .iter()
        .map(|(status, count)| {
            let zh = match status.as_str() {
                "suspended" => "暂停",
                "cancelled" => "已取消",
                "terminated" => "已终止",
                _ => "",
            };
            format!("{zh} {status} {}", thousands(*count))
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_cells_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234), "1,234");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(overdue_days(0).1, "less than a day overdue");
        assert_eq!(overdue_days(1).1, "1 day overdue");
        assert_eq!(
            overdue_days(83),
            ("逾期83天".to_owned(), "83 days overdue".to_owned())
        );
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(percent(Some(0.875)), "88%");
        assert_eq!(score(None), "-");
    }
}
