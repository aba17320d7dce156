//! The leading group's dashboard: strive-campaign's report (the very
//! computation behind `strive report`), drawn as bars and tables.

use axum::extract::State;
use axum::response::IntoResponse;
use maud::{Markup, html};
use serde::Deserialize;
use strive_campaign::{Bilingual, Report, ReportOptions, UnitRef};

use super::Page;
use super::layout::{self, Lang, th, th_num, when};
use super::session::Viewer;
use crate::routes::{Q, parse_time};
use crate::state::{Shared, blocking};

/// The dashboard's query: the report's time, by default now or the last
/// event, whichever is later (as `strive report`).
#[derive(Debug, Deserialize)]
pub(crate) struct DashboardParams {
    as_of: Option<String>,
}

/// `GET /`: the dashboard.
pub(crate) async fn page(
    State(state): State<Shared>,
    viewer: Viewer,
    Q(params): Q<DashboardParams>,
) -> Page {
    viewer.user()?;
    let lang = viewer.lang;
    let mut options = ReportOptions::default();
    if let Some(text) = params.as_of.as_deref().filter(|t| !t.is_empty()) {
        let at = parse_time("as_of", text).map_err(|p| super::Failure::problem(lang, p))?;
        options = options.as_of(at);
    }
    let engine = state.engine.clone();
    let report = blocking(move || {
        Report::build(&engine, &options).map_err(crate::routes::audit::campaign_problem)
    })
    .await
    .map_err(|p| super::Failure::problem(lang, p))?;
    let body = html! {
        h1 { (lang.t("总览", "Dashboard")) }
        p.meta { (lang.t("截至 ", "As of ")) (when(report.as_of)) " · "
            (report.instances) (lang.t(" 个实例，", " instances, ")) (report.events) (lang.t(" 个事件", " events")) }
        (progress(lang, &report))
        (stage_bars(lang, &report))
        (overdue(lang, &report))
        (commended(lang, &report))
        (open_items(lang, &report))
    };
    Ok(layout::page(&viewer, lang.t("总览", "Dashboard"), body).into_response())
}

fn both(lang: Lang, text: &Bilingual) -> &str {
    match lang {
        Lang::Zh => &text.zh,
        Lang::En => &text.en,
    }
}

fn unit(lang: Lang, unit: &UnitRef) -> Markup {
    let name = unit.name.as_ref().map(|n| both(lang, n));
    html! {
        a href={ "/instances/" (layout::encode(&unit.instance)) } { (name.unwrap_or(&unit.instance)) }
        @if name.is_some() { " " span.id { (unit.instance) } }
    }
}

/// Evaluation progress per campaign: closed evaluations of deployed units.
fn progress(lang: Lang, report: &Report) -> Markup {
    html! {
        section aria-labelledby="progress-h" {
            h2 #progress-h { (lang.t("评议进度", "Evaluation progress")) }
            @if report.campaigns.is_empty() {
                p.none { (lang.t("还没有活动。", "No campaign yet.")) }
            }
            @for c in &report.campaigns {
                @let done = c.evaluations_closed.max(0);
                @let total = c.deployed.max(0);
                // Closed evaluations count rounds: a rectified unit is
                // evaluated again, so they may outnumber the units.
                div.progress-row {
                    span { (c.instance) " · " (both(lang, &c.stage_label)) }
                    span data-testid="evaluations" {
                        (lang.t("部署单位 ", "Units deployed ")) strong { (total) }
                        (lang.t("，已结束评议 ", ", evaluations closed ")) strong { (done) }
                        (lang.t(" 次", "")) }
                }
                p.meta {
                    (lang.t("表彰单位 ", "Organisations honoured ")) (c.organisations_honoured)
                    (lang.t("，表彰党员 ", ", members honoured ")) (c.members_honoured)
                }
            }
        }
    }
}

/// Each workflow's stage counts as horizontal bars.
fn stage_bars(lang: Lang, report: &Report) -> Markup {
    html! {
        section aria-labelledby="stages-h" {
            h2 #stages-h { (lang.t("各阶段数量", "Stage counts")) }
            @for wf in &report.workflows {
                @let max = wf.stages.iter().map(|s| s.count).max().unwrap_or(0).max(1);
                h3 { (both(lang, &wf.title)) " " span.id { (wf.workflow) " v" (wf.version) } }
                table.bars data-workflow=(wf.workflow) {
                    caption.sr { (both(lang, &wf.title)) }
                    thead { tr { (th(lang.t("阶段", "Stage"))) (th_num(lang.t("数量", "Count"))) th scope="col" { span.sr { (lang.t("比例", "Share")) } } } }
                    tbody {
                        @for s in &wf.stages {
                            tr data-stage=(s.stage) {
                                td {
                                    a href={ "/instances?workflow=" (layout::encode(&wf.workflow)) "&stage=" (layout::encode(&s.stage)) } { (both(lang, &s.label)) }
                                }
                                td.num data-testid="count" { (s.count) }
                                td.barcell { div.bar style={ "width:" (s.count * 100 / max) "%" } {} }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Units that went overdue, with how many days.
fn overdue(lang: Lang, report: &Report) -> Markup {
    html! {
        section aria-labelledby="overdue-h" {
            h2 #overdue-h { (lang.t("逾期单位", "Overdue units")) }
            @if report.overdue.is_empty() {
                p.none { (lang.t("没有逾期。", "Nothing is overdue.")) }
            } @else {
                table {
                    thead { tr { (th(lang.t("单位", "Unit"))) (th(lang.t("事项", "What"))) (th(lang.t("逾期起", "Overdue since"))) (th_num(lang.t("逾期天数", "Days overdue"))) (th(lang.t("状态", "Status"))) } }
                    tbody {
                        @for o in &report.overdue {
                            @let days = (report.as_of.as_second() - o.since.as_second()).max(0) / 86_400;
                            tr {
                                td { (unit(lang, &o.unit)) }
                                td { (both(lang, &o.reason)) }
                                td { (when(o.since)) }
                                td.num { (days) }
                                td { (both(lang, &o.status.label())) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The commended units with their scores.
fn commended(lang: Lang, report: &Report) -> Markup {
    html! {
        section aria-labelledby="commended-h" {
            h2 #commended-h { (lang.t("评选表彰名单", "Commended")) }
            @if report.commended.is_empty() {
                p.none { (lang.t("还没有表彰。", "None commended yet.")) }
            } @else {
                table {
                    thead { tr { (th(lang.t("单位", "Unit"))) (th_num(lang.t("轮次", "Round"))) (th_num(lang.t("评议人数", "Evaluators"))) (th_num(lang.t("满意率", "Satisfied"))) (th_num(lang.t("总分", "Overall"))) (th(lang.t("已表彰", "Honoured"))) } }
                    tbody {
                        @for c in &report.commended {
                            tr {
                                td { (unit(lang, &c.unit)) }
                                td.num { (c.round) }
                                td.num { (c.scores.evaluators) }
                                td.num { (c.scores.satisfied_share.map(|s| format!("{:.0}%", s * 100.0)).unwrap_or_default()) }
                                td.num { (c.scores.overall.map(|s| format!("{s:.2}")).unwrap_or_default()) }
                                td { @if c.honoured { (lang.t("是", "yes")) } @else { (lang.t("否", "no")) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Open rectification items and when they are due.
fn open_items(lang: Lang, report: &Report) -> Markup {
    html! {
        section aria-labelledby="items-h" {
            h2 #items-h { (lang.t("未完成的整改事项", "Open rectification items")) }
            @if report.open_items.is_empty() {
                p.none { (lang.t("没有未完成的整改事项。", "No open rectification item.")) }
            } @else {
                table {
                    thead { tr { (th(lang.t("单位", "Unit"))) (th(lang.t("事项", "Item"))) (th(lang.t("期限", "Due"))) (th_num(lang.t("逾期天数", "Days overdue"))) } }
                    tbody {
                        @for item in &report.open_items {
                            tr.overdue[item.overdue] {
                                td { (unit(lang, &item.unit)) }
                                td { (item.text) " " span.id { (item.problem) } }
                                td { (when(item.due)) }
                                td.num { @if item.overdue { (item.days_overdue) } @else { "—" } }
                            }
                        }
                    }
                }
            }
        }
    }
}
