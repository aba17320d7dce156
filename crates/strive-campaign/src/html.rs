//! The report as one self-contained HTML page: inline CSS, inline SVG
//! diagrams, no script, no font or image fetched from anywhere.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::calendar;
use crate::render::{
    RenderOptions, limited, name_zh, overdue_days, overdue_organisations, percent, score, thousands,
};
use crate::report::{Bilingual, OverdueStatus, Report};

/// Escapes text for HTML and SVG content and attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
:root { --ink: #1f2d3d; --muted: #5b6b7f; --line: #dde3ea; --red: #b3261e; --blue: #2456a6; --bg: #f4f6f9; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font-family: "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei", "Helvetica Neue", Arial, sans-serif;
  font-size: 14px; line-height: 1.5; }
.banner { background: linear-gradient(90deg, #9e1c17, #c8372d); color: #fff; padding: 26px 0 22px; }
.wrap { max-width: 1240px; margin: 0 auto; padding: 0 32px; }
h1 { margin: 0; font-size: 28px; letter-spacing: 1px; }
h1 .en { display: block; font-size: 16px; font-weight: 400; letter-spacing: 0; opacity: .92; }
.meta { margin: 8px 0 0; opacity: .92; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(165px, 1fr)); gap: 12px; margin: 20px 0 6px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 12px 16px; }
.card .n { font-size: 26px; font-weight: 700; line-height: 1.2; }
.card .n small { font-size: 14px; font-weight: 400; color: var(--muted); }
.card .l { color: var(--muted); font-size: 13px; }
.card.alert .n { color: var(--red); }
section { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 18px 22px 20px; margin: 18px 0; }
h2 { font-size: 20px; margin: 0 0 14px; border-left: 4px solid var(--red); padding-left: 10px; }
h2 .en, h3 .en { color: var(--muted); font-weight: 400; margin-left: 8px; }
h2 .en { font-size: 15px; }
h3 { font-size: 16px; margin: 18px 0 8px; }
h3 .en { font-size: 13px; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th { text-align: left; background: #eef2f7; font-weight: 600; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: bottom; white-space: nowrap; }
th .en { display: block; font-weight: 400; color: var(--muted); font-size: 11.5px; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
td { padding: 5px 8px; border-bottom: 1px solid #edf0f4; vertical-align: top; }
tbody tr:nth-child(even) td { background: #fafbfd; }
td .en { color: var(--muted); font-size: 12px; }
td.id, td.nowrap { white-space: nowrap; }
tbody tr.honoured td, tbody tr.cite td { background: #fffaf0; }
tbody tr.honoured td { border-bottom: none; }
tbody tr.cite td { padding-top: 0; font-size: 12.5px; color: #3b4a5c; }
tbody tr.cite td .label { color: #8a5a00; margin-right: 6px; }
.bar { height: 12px; background: linear-gradient(90deg, #2456a6, #5b8bd6); border-radius: 6px; min-width: 2px; }
.badge { display: inline-block; padding: 0 8px; border-radius: 10px; font-size: 12px; white-space: nowrap; }
.badge.red { background: #fde7e6; color: var(--red); }
.badge.amber { background: #fff3da; color: #8a5a00; }
.badge.green { background: #e5f5ea; color: #1d6b35; }
.star { color: #c99400; font-size: 16px; }
.none { color: var(--muted); }
.more { color: var(--muted); font-size: 12.5px; margin: 8px 0 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; font-weight: 600; }
.legend { color: var(--muted); font-size: 12.5px; margin: 6px 0 0; }
footer { color: var(--muted); font-size: 12.5px; padding: 8px 0 40px; }
"#;

fn heading(out: &mut String, level: u8, zh: &str, en: &str) {
    let _ = write!(
        out,
        r#"<h{level}>{}<span class="en">{}</span></h{level}>"#,
        escape(zh),
        escape(en)
    );
}

fn th(zh: &str, en: &str, numeric: bool) -> String {
    format!(
        r#"<th{}>{}<span class="en">{}</span></th>"#,
        if numeric { r#" class="num""# } else { "" },
        escape(zh),
        escape(en)
    )
}

fn td(text: &str) -> String {
    format!("<td>{}</td>", escape(text))
}

/// An instance id: never broken over lines.
fn td_id(text: &str) -> String {
    format!(r#"<td class="id">{}</td>"#, escape(text))
}

fn td_num(text: &str) -> String {
    format!(r#"<td class="num">{}</td>"#, escape(text))
}

fn td_both(text: &Bilingual) -> String {
    if text.zh == text.en {
        td(&text.zh)
    } else {
        format!(
            r#"<td>{}<br><span class="en">{}</span></td>"#,
            escape(&text.zh),
            escape(&text.en)
        )
    }
}

fn more(out: &mut String, total: usize, shown: usize) {
    if shown < total {
        let _ = write!(
            out,
            r#"<p class="more">另有 {} 行未列出 · {} more rows not shown (<code>--limit 0</code> shows all)</p>"#,
            total - shown,
            total - shown
        );
    }
}

/// The part of a title after its colon: `创先争优：基层党组织` → `基层党组织`.
fn short(title: &str) -> &str {
    title
        .rsplit_once('：')
        .or_else(|| title.rsplit_once(": "))
        .map_or(title, |(_, rest)| rest)
}

impl Report {
    /// The report as one self-contained HTML page.
    pub fn to_html(&self, options: &RenderOptions) -> String {
        let mut out = String::with_capacity(64 * 1024);
        out.push_str("<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n");
        out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        out.push_str(
            "<title>创先争优活动报告 · Strive for excellence: campaign report</title>\n<style>",
        );
        out.push_str(STYLE);
        out.push_str(crate::diagram::DIAGRAM_CSS);
        out.push_str("</style>\n</head>\n<body>\n");

        let _ = write!(
            out,
            r#"<div class="banner"><div class="wrap"><h1>创先争优活动报告<span class="en">Strive for excellence: campaign report</span></h1><p class="meta">截至 As of {} (UTC+8) · 实例 {} instances · 事件 {} events</p></div></div>"#,
            escape(&calendar::display(self.as_of)),
            thousands(self.instances),
            thousands(self.events)
        );
        out.push_str(r#"<div class="wrap">"#);

        // Cards: instances per workflow, then what needs attention.
        out.push_str(r#"<div class="cards">"#);
        for workflow in &self.workflows {
            let _ = write!(
                out,
                r#"<div class="card"><div class="n">{}</div><div class="l">{} · {}</div></div>"#,
                thousands(workflow.total),
                escape(short(&workflow.title.zh)),
                escape(short(&workflow.title.en))
            );
        }
        let honoured = self.commended.iter().filter(|c| c.honoured).count();
        let still = self
            .overdue
            .iter()
            .filter(|o| o.status != OverdueStatus::Resolved)
            .count();
        let overdue_items = self.open_items.iter().filter(|i| i.overdue).count();
        let _ = write!(
            out,
            r#"<div class="card"><div class="n">{} <small>★ {}</small></div><div class="l">评为先进、优秀 · commended (honoured)</div></div>"#,
            thousands(self.commended.len() as u64),
            thousands(honoured as u64)
        );
        let _ = write!(
            out,
            r#"<div class="card{}"><div class="n">{} <small>/ {}</small></div><div class="l">逾期未完成 / 督办 · overdue still open / escalated</div></div>"#,
            if still > 0 { " alert" } else { "" },
            thousands(still as u64),
            thousands(self.overdue.len() as u64)
        );
        let _ = write!(
            out,
            r#"<div class="card{}"><div class="n">{} <small>/ {}</small></div><div class="l">整改问题 逾期 / 未销号 · items overdue / open</div></div>"#,
            if overdue_items > 0 { " alert" } else { "" },
            thousands(overdue_items as u64),
            thousands(self.open_items.len() as u64)
        );
        out.push_str("</div>");

        for campaign in &self.campaigns {
            out.push_str("<section>");
            heading(&mut out, 2, "局机关", "The bureau");
            out.push_str(r#"<dl class="facts">"#);
            let overdue = overdue_organisations(&campaign.overdue_organisations, options, "；");
            let facts = [
                ("流程 Instance", campaign.instance.clone()),
                ("阶段 Stage", campaign.stage_label.both()),
                (
                    "已部署组织 Organisations deployed",
                    thousands(campaign.deployed.max(0) as u64),
                ),
                (
                    "已结束的组织评议 Evaluation rounds closed",
                    thousands(campaign.evaluations_closed.max(0) as u64),
                ),
                (
                    "表彰先进组织 Organisations honoured",
                    thousands(campaign.organisations_honoured.max(0) as u64),
                ),
                (
                    "表彰优秀党员 Members honoured",
                    thousands(campaign.members_honoured.max(0) as u64),
                ),
                (
                    "动员逾期组织 Overdue with mobilisation",
                    if overdue.is_empty() {
                        "无 none".to_owned()
                    } else {
                        overdue
                    },
                ),
            ];
            for (label, value) in facts {
                let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(label), escape(&value));
            }
            out.push_str("</dl></section>");
        }

        out.push_str("<section>");
        heading(
            &mut out,
            2,
            "流程图",
            "Workflow diagrams, with instances per stage",
        );
        for (workflow, definition) in self.workflows.iter().zip(&self.definitions) {
            let counts: HashMap<String, u64> = workflow
                .stages
                .iter()
                .map(|s| (s.stage.clone(), s.count))
                .collect();
            heading(
                &mut out,
                3,
                &workflow.title.zh,
                &format!(
                    "{} ({} v{})",
                    workflow.title.en, workflow.workflow, workflow.version
                ),
            );
            out.push_str(r#"<div class="diagram-wrap">"#);
            out.push_str(&crate::diagram::svg(definition, &counts));
            out.push_str("</div>");
        }
        out.push_str(r#"<p class="legend">红色数字：该阶段的实例数 · Red numbers: instances in the stage. 双线框：结束阶段 · Double border: a final stage. ↺：只记录数据、不改变阶段的事件 · ↺: events that record data and keep the stage. 期限：到期由系统触发的事件 · 期限: the event the system fires when the deadline passes.</p>"#);
        out.push_str("</section>");

        out.push_str("<section>");
        heading(&mut out, 2, "一、阶段统计", "Stage counts");
        for workflow in &self.workflows {
            heading(
                &mut out,
                3,
                &workflow.title.zh,
                &format!("{} · {}", workflow.title.en, thousands(workflow.total)),
            );
            let most = workflow
                .stages
                .iter()
                .map(|s| s.count)
                .max()
                .unwrap_or(0)
                .max(1);
            let _ = write!(
                out,
                r#"<table><thead><tr>{}{}<th style="width:45%"></th></tr></thead><tbody>"#,
                th("阶段", "Stage", false),
                th("数量", "Count", true),
            );
            for stage in &workflow.stages {
                let width = stage.count as f64 * 100.0 / most as f64;
                let bar = if stage.count > 0 {
                    format!(r#"<div class="bar" style="width:{width:.1}%"></div>"#)
                } else {
                    String::new()
                };
                let _ = write!(
                    out,
                    "<tr>{}{}<td>{bar}</td></tr>",
                    td_both(&stage.label),
                    td_num(&thousands(stage.count))
                );
            }
            out.push_str("</tbody></table>");
            if !workflow.statuses.is_empty() {
                let _ = write!(
                    out,
                    "<p>{}</p>",
                    escape(&crate::render::statuses_line(&workflow.statuses))
                );
            }
        }
        out.push_str("</section>");

        out.push_str("<section>");
        heading(
            &mut out,
            2,
            &format!("二、逾期单位（{}）", self.overdue.len()),
            "Overdue units: escalated by the system when a deadline passed",
        );
        if self.overdue.is_empty() {
            out.push_str(r#"<p class="none">无 None.</p>"#);
        } else {
            let _ = write!(
                out,
                "<table><thead><tr>{}{}{}{}{}{}</tr></thead><tbody>",
                th("单位", "Unit", false),
                th("名称", "Name", false),
                th("逾期事项", "Overdue", false),
                th("督办时间", "Since", false),
                th("当前阶段", "Stage now", false),
                th("状态", "Status", false)
            );
            let shown = limited(&self.overdue, options);
            for row in shown {
                let status = row.status.label();
                let class = match row.status {
                    OverdueStatus::Escalated | OverdueStatus::Pending => "red",
                    OverdueStatus::Resolved => "green",
                };
                let _ = write!(
                    out,
                    r#"<tr>{}{}{}{}{}<td><span class="badge {class}">{}</span><br><span class="en">{}</span></td></tr>"#,
                    td_id(&row.unit.instance),
                    td(&name_zh(&row.unit)),
                    td_both(&row.reason),
                    td(&calendar::display(row.since)),
                    td_both(&row.stage_label),
                    escape(&status.zh),
                    escape(&status.en)
                );
            }
            out.push_str("</tbody></table>");
            more(&mut out, self.overdue.len(), shown.len());
        }
        out.push_str("</section>");

        out.push_str("<section>");
        heading(
            &mut out,
            2,
            "三、评为先进、优秀的单位",
            "Commended units, with their scores (★ honoured in the selection)",
        );
        let mut any = false;
        for workflow in &self.workflows {
            let rows = self.commended_in(&workflow.workflow);
            let Some(first) = rows.first() else { continue };
            any = true;
            let honoured = rows.iter().filter(|c| c.honoured).count();
            heading(
                &mut out,
                3,
                &format!("{}（{}，表彰 {}）", workflow.title.zh, rows.len(), honoured),
                &format!(
                    "{}: {} commended, {} honoured",
                    workflow.title.en,
                    rows.len(),
                    honoured
                ),
            );
            let members = workflow.workflow != crate::ORGANISATION
                && rows.iter().any(|c| c.unit.parent_name.is_some());
            out.push_str("<table><thead><tr>");
            out.push_str(&th("单位", "Unit", false));
            out.push_str(&th("名称", "Name", false));
            if members {
                out.push_str(&th("所在组织", "Organisation", false));
            }
            out.push_str(&th("轮次", "Round", true));
            out.push_str(&th("表彰", "Honoured", false));
            out.push_str(&th("评议人数", "Evaluators", true));
            out.push_str(&th("满意率", "Satisfied", true));
            for criterion in &first.scores.criteria {
                out.push_str(&th(&criterion.zh, &criterion.id, true));
            }
            out.push_str(&th("平均", "Overall", true));
            out.push_str("</tr></thead><tbody>");
            let columns = 7 + usize::from(members) + first.scores.criteria.len();
            let shown = limited(&rows, options);
            for row in shown {
                // An honoured unit's citation reads as a line of its own
                // under its scores, rather than squeezing the score columns.
                let citation = row.citation.as_deref().filter(|c| !c.is_empty());
                out.push_str(if citation.is_some() {
                    r#"<tr class="honoured">"#
                } else {
                    "<tr>"
                });
                out.push_str(&td_id(&row.unit.instance));
                match &row.unit.name {
                    Some(name) if name.zh == name.en => {
                        let _ = write!(out, r#"<td class="nowrap">{}</td>"#, escape(&name.zh));
                    }
                    Some(name) => out.push_str(&td_both(name)),
                    None => out.push_str(&td("")),
                }
                if members {
                    let organisation = row
                        .unit
                        .parent_name
                        .as_ref()
                        .map(|n| n.zh.clone())
                        .unwrap_or_default();
                    let _ = write!(out, r#"<td class="nowrap">{}</td>"#, escape(&organisation));
                }
                out.push_str(&td_num(&row.round.to_string()));
                out.push_str(if row.honoured {
                    r#"<td><span class="star">★</span></td>"#
                } else {
                    "<td></td>"
                });
                out.push_str(&td_num(&row.scores.evaluators.to_string()));
                out.push_str(&td_num(&percent(row.scores.satisfied_share)));
                for criterion in &row.scores.criteria {
                    out.push_str(&td_num(&score(criterion.mean)));
                }
                let _ = write!(
                    out,
                    r#"<td class="num"><b>{}</b></td>"#,
                    escape(&score(row.scores.overall))
                );
                out.push_str("</tr>");
                if let Some(citation) = citation {
                    let _ = write!(
                        out,
                        r#"<tr class="cite"><td></td><td colspan="{}"><span class="label">先进事迹 Citation</span>{}</td></tr>"#,
                        columns - 1,
                        escape(citation)
                    );
                }
            }
            out.push_str("</tbody></table>");
            more(&mut out, rows.len(), shown.len());
        }
        if !any {
            out.push_str(r#"<p class="none">无 None.</p>"#);
        }
        out.push_str("</section>");

        out.push_str("<section>");
        heading(
            &mut out,
            2,
            &format!(
                "四、未销号的整改问题（{}，逾期 {}）",
                self.open_items.len(),
                overdue_items
            ),
            "Open rectification items",
        );
        if self.open_items.is_empty() {
            out.push_str(r#"<p class="none">无 None.</p>"#);
        } else {
            let _ = write!(
                out,
                "<table><thead><tr>{}{}{}{}{}{}</tr></thead><tbody>",
                th("单位", "Unit", false),
                th("名称", "Name", false),
                th("编号", "Item", false),
                th("问题", "Problem", false),
                th("整改期限", "Due", false),
                th("状态", "Status", false)
            );
            let shown = limited(&self.open_items, options);
            for item in shown {
                let status = if item.overdue {
                    let (zh, en) = overdue_days(item.days_overdue);
                    format!(
                        r#"<span class="badge red">{}</span><br><span class="en">{}</span>"#,
                        escape(&zh),
                        escape(&en)
                    )
                } else {
                    r#"<span class="badge amber">未到期</span><br><span class="en">not yet due</span>"#.to_owned()
                };
                let _ = write!(
                    out,
                    "<tr>{}{}{}{}{}<td>{status}</td></tr>",
                    td_id(&item.unit.instance),
                    td(&name_zh(&item.unit)),
                    td(&item.problem),
                    td(&item.text),
                    td(&calendar::display_date(item.due)),
                );
            }
            out.push_str("</tbody></table>");
            more(&mut out, self.open_items.len(), shown.len());
        }
        out.push_str("</section>");

        let _ = write!(
            out,
            "<footer>由 strive 根据审计日志生成 · Generated by strive from the audit log ({} events). 每个事件都有哈希链，可用 <code>strive verify</code> 独立核验 · Every event is hash-chained; check them independently with <code>strive verify</code>.</footer>",
            thousands(self.events)
        );
        out.push_str("</div>\n</body>\n</html>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(short("创先争优：基层党组织"), "基层党组织");
        assert_eq!(short("Strive for excellence: the bureau"), "the bureau");
        assert_eq!(short("Review"), "Review");
    }
}
