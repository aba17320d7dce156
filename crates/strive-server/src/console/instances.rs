//! The instances list: by workflow, stage, parent and text, paged in id
//! order through `Engine::list`.

use axum::extract::State;
use axum::response::IntoResponse;
use maud::{Markup, html};
use serde::Deserialize;
use strive_store::{Engine, ListQuery, Snapshot};

use super::layout::{self, Lang, th, th_num, when};
use super::session::Viewer;
use super::{Failure, Page};
use crate::problem::Problem;
use crate::routes::Q;
use crate::state::{Shared, blocking};

/// Rows on one page.
const PAGE: usize = 50;
/// The most instances one page reads while it looks for text matches.
const SCAN: usize = 5_000;

/// The list's filters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    workflow: Option<String>,
    stage: Option<String>,
    parent: Option<String>,
    q: Option<String>,
    after: Option<String>,
}

impl Filters {
    fn given(value: &Option<String>) -> Option<String> {
        value
            .as_ref()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn matches(&self, snapshot: &Snapshot) -> bool {
        let instance = &snapshot.instance;
        let stage_ok = Filters::given(&self.stage).is_none_or(|s| instance.stage == s);
        let text_ok = Filters::given(&self.q).is_none_or(|q| {
            let q = q.to_lowercase();
            instance.id.to_lowercase().contains(&q)
                || serde_json::Value::Object(instance.data.clone())
                    .to_string()
                    .to_lowercase()
                    .contains(&q)
        });
        stage_ok && text_ok
    }
}

/// One page of matching instances and where the next starts.
fn find(engine: &Engine, filters: &Filters) -> Result<(Vec<Snapshot>, Option<String>), Problem> {
    let workflow = Filters::given(&filters.workflow);
    let parent = Filters::given(&filters.parent);
    // The store indexes stages per workflow; with a parent, the stage is
    // matched here.
    let stage = Filters::given(&filters.stage).filter(|_| parent.is_none() && workflow.is_some());
    let mut after = Filters::given(&filters.after);
    let mut found = Vec::new();
    let mut scanned = 0;
    loop {
        let query = ListQuery {
            workflow: workflow.clone(),
            stage: stage.clone(),
            parent: parent.clone(),
            after: after.clone(),
            limit: Some(PAGE),
        };
        let page = engine.list(&query)?;
        scanned += page.items.len();
        for snapshot in page.items {
            let id = snapshot.instance.id.clone();
            if filters.matches(&snapshot) {
                found.push(snapshot);
            }
            after = Some(id);
            if found.len() == PAGE {
                return Ok((found, page.next.and(after)));
            }
        }
        if page.next.is_none() {
            return Ok((found, None));
        }
        if scanned >= SCAN {
            return Ok((found, after));
        }
    }
}

/// `GET /instances`: the filter form and one page.
pub(crate) async fn page(
    State(state): State<Shared>,
    viewer: Viewer,
    Q(filters): Q<Filters>,
) -> Page {
    viewer.user()?;
    let lang = viewer.lang;
    let engine = state.engine.clone();
    let (rows, next, workflows, filters) = blocking(move || {
        let workflows = engine.workflows()?;
        let (rows, next) = find(&engine, &filters)?;
        Ok((rows, next, workflows, filters))
    })
    .await
    .map_err(|p| Failure::problem(lang, p))?;
    let chosen = Filters::given(&filters.workflow);
    let stages: Vec<(String, String)> = chosen
        .as_deref()
        .and_then(|w| state.engine.workflow(w, None))
        .map(|w| {
            w.definition()
                .stages
                .iter()
                .map(|s| (s.id.clone(), lang.label(s.label.as_ref(), &s.id).to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let value = |v: &Option<String>| Filters::given(v).unwrap_or_default();
    let body = html! {
        h1 { (lang.t("实例", "Instances")) }
        form.filters method="get" action="/instances" role="search" aria-label=(lang.t("筛选实例", "Filter instances")) {
            label { (lang.t("流程", "Workflow")) " "
                select name="workflow" {
                    option value="" { (lang.t("全部", "All")) }
                    @for w in &workflows {
                        option value=(w.workflow) selected[chosen.as_deref() == Some(w.workflow.as_str())] { (w.workflow) }
                    }
                }
            }
            label { (lang.t("阶段", "Stage")) " "
                select name="stage" disabled[stages.is_empty()] {
                    option value="" { (lang.t("全部", "All")) }
                    @for (id, label) in &stages {
                        option value=(id) selected[value(&filters.stage) == *id] { (label) }
                    }
                }
            }
            label { (lang.t("上级实例", "Parent")) " " input type="text" name="parent" value=(value(&filters.parent)); }
            label { (lang.t("文字", "Text")) " " input type="search" name="q" value=(value(&filters.q)); }
            button type="submit" { (lang.t("筛选", "Filter")) }
        }
        (table(&state.engine, lang, &rows))
        @if let Some(next) = next {
            p { a rel="next" href={ "/instances?workflow=" (layout::encode(&value(&filters.workflow)))
                "&stage=" (layout::encode(&value(&filters.stage)))
                "&parent=" (layout::encode(&value(&filters.parent)))
                "&q=" (layout::encode(&value(&filters.q)))
                "&after=" (layout::encode(&next)) } { (lang.t("下一页 →", "Next page →")) } }
        }
    };
    Ok(layout::page(&viewer, lang.t("实例", "Instances"), body).into_response())
}

/// The page's rows, or a line saying there are none.
fn table(engine: &Engine, lang: Lang, rows: &[Snapshot]) -> Markup {
    html! {
    @if rows.is_empty() {
        p.none { (lang.t("没有符合条件的实例。", "No instance matches.")) }
    } @else {
        table.list {
            thead { tr { (th("ID")) (th(lang.t("流程", "Workflow"))) (th(lang.t("阶段", "Stage"))) (th(lang.t("上级", "Parent"))) (th_num(lang.t("事件数", "Events"))) (th(lang.t("更新于", "Updated"))) } }
            tbody {
                @for s in rows {
                    @let i = &s.instance;
                    tr {
                        td { a href={ "/instances/" (layout::encode(&i.id)) } { (i.id) } }
                        td { (i.workflow) " v" (i.version) }
                        td { (stage_label(engine, lang, &i.workflow, i.version, &i.stage)) }
                        td { @if let Some(p) = &i.parent { a href={ "/instances/" (layout::encode(p)) } { (p) } } }
                        td.num { (i.seq) }
                        td { (when(i.updated_at)) }
                    }
                }
            }
        }
    }
    }
}

/// A stage's label in `workflow`'s definition `version`.
pub(crate) fn stage_label(
    engine: &Engine,
    lang: Lang,
    workflow: &str,
    version: u32,
    stage: &str,
) -> String {
    engine
        .workflow(workflow, Some(version))
        .and_then(|w| {
            w.definition()
                .stages
                .iter()
                .find(|s| s.id == stage)
                .map(|s| lang.label(s.label.as_ref(), stage).to_owned())
        })
        .unwrap_or_else(|| stage.to_owned())
}
