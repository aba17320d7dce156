//! Definitions: every workflow and its versions, one version's diagram
//! and JSON, and the line diff of two versions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::layout::{self, Lang, th, when};
use super::session::Viewer;
use super::{Failure, Page};
use crate::problem::Problem;
use crate::routes::{P, Q};
use crate::state::{Shared, blocking};

/// `GET /definitions`: every workflow's latest version.
pub(crate) async fn page(State(state): State<Shared>, viewer: Viewer) -> Page {
    viewer.user()?;
    let lang = viewer.lang;
    let engine = state.engine.clone();
    let infos = blocking(move || engine.workflows().map_err(Problem::from))
        .await
        .map_err(|p| Failure::problem(lang, p))?;
    let body = html! {
        h1 { (lang.t("流程定义", "Definitions")) }
        table {
            thead { tr { (th(lang.t("流程", "Workflow"))) (th(lang.t("最新版本", "Latest version"))) (th(lang.t("部署于", "Deployed"))) (th(lang.t("哈希", "Hash"))) } }
            tbody {
                @for i in &infos {
                    tr {
                        td { a href={ "/definitions/" (layout::encode(&i.workflow)) } { (i.workflow) } }
                        td.num { (i.version) }
                        td { (when(i.deployed_at)) }
                        td { code.hash { (i.hash.get(..16).unwrap_or(&i.hash)) "…" } }
                    }
                }
            }
        }
    };
    Ok(layout::page(&viewer, lang.t("流程定义", "Definitions"), body).into_response())
}

/// Which version to show, and which to compare it with.
#[derive(Debug, Deserialize)]
pub(crate) struct VersionParams {
    version: Option<u32>,
    against: Option<u32>,
}

/// `GET /definitions/{workflow}`: its versions, one version's diagram and
/// JSON, and a diff against another version.
pub(crate) async fn workflow(
    State(state): State<Shared>,
    viewer: Viewer,
    P(workflow): P<String>,
    Q(params): Q<VersionParams>,
) -> Page {
    viewer.user()?;
    let lang = viewer.lang;
    let engine = state.engine.clone();
    let name = workflow.clone();
    let (versions, shown, against) = blocking(move || {
        let versions = engine.versions(&name)?;
        let latest = versions.last().map(|v| v.version).unwrap_or(1);
        let version = params.version.unwrap_or(latest);
        let shown = engine.definition(&name, version)?;
        let against = match params.against {
            Some(v) => engine.definition(&name, v)?.map(|d| (v, d)),
            None => None,
        };
        Ok((versions, shown.map(|d| (version, d)), against))
    })
    .await
    .map_err(|p| Failure::problem(lang, p))?;
    let (version, document) = shown.ok_or_else(|| {
        viewer.failure(
            StatusCode::NOT_FOUND,
            format!("no workflow `{workflow}` (or no such version) is deployed"),
        )
    })?;
    let svg = state
        .engine
        .workflow(&workflow, Some(version))
        .map(|w| strive_campaign::workflow_svg(w.definition(), &Default::default()));
    let body = html! {
        h1 { (workflow) " v" (version) }
        section aria-labelledby="versions-h" {
            h2 #versions-h { (lang.t("版本", "Versions")) }
            ul.versions {
                @for v in &versions {
                    li {
                        a href={ "/definitions/" (layout::encode(&workflow)) "?version=" (v.version) }
                            aria-current=[(v.version == version).then_some("page")] { "v" (v.version) }
                        " · " (when(v.deployed_at))
                    }
                }
            }
            @if versions.len() > 1 {
                form method="get" action={ "/definitions/" (layout::encode(&workflow)) } {
                    input type="hidden" name="version" value=(version);
                    label for="against" { (lang.t("与此版本比较：", "Compare with version: ")) }
                    select #against name="against" {
                        @for v in versions.iter().filter(|v| v.version != version) {
                            option value=(v.version) selected[against.as_ref().is_some_and(|a| a.0 == v.version)] { "v" (v.version) }
                        }
                    }
                    button type="submit" { (lang.t("比较", "Compare")) }
                }
            }
        }
        @if let Some((v, old)) = &against {
            section aria-labelledby="diff-h" {
                h2 #diff-h { (lang.t("差异", "Difference")) ": v" (v) " → v" (version) }
                (diff(lang, old, &document))
            }
        }
        @if let Some(svg) = &svg {
            section aria-labelledby="diagram-h" {
                h2 #diagram-h { (lang.t("流程图", "Diagram")) }
                div.no-counts { (layout::diagram(svg, None)) }
            }
        }
        section aria-labelledby="json-h" {
            h2 #json-h { "JSON" }
            (layout::json_block(&document))
        }
    };
    Ok(layout::page(&viewer, &workflow, body).into_response())
}

/// The line diff of two pretty-printed definitions.
fn diff(lang: Lang, old: &Value, new: &Value) -> Markup {
    let old = serde_json::to_string_pretty(old).unwrap_or_default();
    let new = serde_json::to_string_pretty(new).unwrap_or_default();
    let changes = similar::TextDiff::from_lines(&old, &new);
    let unified = changes.unified_diff().context_radius(3).to_string();
    html! {
        @if unified.is_empty() {
            p.none { (lang.t("两个版本相同。", "The two versions are the same.")) }
        } @else {
            pre.diff tabindex="0" aria-label=(lang.t("统一格式差异", "Unified diff")) {
                @for line in unified.lines() {
                    @let class = match line.chars().next() { Some('+') => "add", Some('-') => "del", Some('@') => "hunk", _ => "ctx" };
                    span class=(class) { (line) } "\n"
                }
            }
        }
    }
}
