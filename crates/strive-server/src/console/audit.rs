//! The auditor's page: verification with live progress (the API's
//! verification jobs), the last checkpoint, the check of a checkpoint the
//! auditor kept (verification `since` it), and the downloads (the API's
//! streamed exports).

use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use strive_audit::{Checkpoint, VerifyOptions};

use super::layout::{self, Lang};
use super::session::Viewer;
use super::{Failure, Page};
use crate::model::{CheckpointParams, ExportFormat, ExportParams, VerifyJob};
use crate::routes::audit::{self as api, find_job, spawn_verify};
use crate::routes::{P, Q};
use crate::state::Shared;

/// The page's query: the verification job to show.
#[derive(Debug, Deserialize)]
pub(crate) struct JobParams {
    job: Option<String>,
}

/// `GET /audit`.
pub(crate) async fn page(
    State(state): State<Shared>,
    viewer: Viewer,
    Q(params): Q<JobParams>,
) -> Page {
    let user = viewer.user()?.clone();
    let lang = viewer.lang;
    let checkpoint = api::checkpoint(
        State(state.clone()),
        user.caller(),
        Q(CheckpointParams { origin: None }),
    )
    .await
    .map_err(|p| Failure::problem(lang, p))?
    .0;
    let job = params
        .job
        .as_deref()
        .and_then(|id| find_job(&state, id))
        .map(|j| j.body());
    let body = html! {
        h1 { (lang.t("审计", "Audit")) }
        section aria-labelledby="verify-h" {
            h2 #verify-h { (lang.t("核验整个存储", "Verify the whole store")) }
            p { (lang.t("检查哈希、链、序号、默克尔根，并从事件重放每个实例与快照比对（与 strive verify 相同）。",
                "Checks hashes, chains, sequences and the Merkle roots, and replays every instance against its snapshot (as `strive verify` does).")) }
            form method="post" action="/audit/verify" {
                input type="hidden" name="csrf" value=(user.csrf);
                input type="hidden" name="checkpoint" value="";
                button type="submit" { (lang.t("开始核验", "Run verification")) }
            }
            @if let Some(job) = &job { (job_view(lang, job)) }
        }
        section aria-labelledby="checkpoint-h" {
            h2 #checkpoint-h { (lang.t("最新检查点", "The last checkpoint")) }
            dl.facts {
                dt { (lang.t("名称", "Origin")) } dd { (checkpoint.origin) }
                dt { (lang.t("事件数", "Size")) } dd data-testid="checkpoint-size" { (checkpoint.size) }
                dt { (lang.t("默克尔根", "Merkle root")) } dd { code.hash { (checkpoint.root) } }
            }
            details {
                summary { (lang.t("检查点原文（请保存）", "The checkpoint note (keep it)")) }
                pre.json tabindex="0" { (checkpoint.note) }
            }
        }
        section aria-labelledby="kept-h" {
            h2 #kept-h { (lang.t("核对保存的检查点", "Check a checkpoint you kept")) }
            form method="post" action="/audit/verify" {
                input type="hidden" name="csrf" value=(user.csrf);
                label for="kept" { (lang.t("粘贴之前保存的检查点原文：日志必须是它的延续。", "Paste a checkpoint note you kept earlier: the log must extend it.")) }
                textarea #kept name="checkpoint" rows="5" required {}
                button type="submit" { (lang.t("核对", "Check")) }
            }
        }
        section aria-labelledby="download-h" {
            h2 #download-h { (lang.t("下载", "Downloads")) }
            ul.downloads {
                li { a href="/audit/download/jsonl" download="strive-bundle.jsonl" { (lang.t("审计包 (JSONL)", "Audit bundle (JSONL)")) } }
                li { a href="/audit/download/xes" download="strive.xes" { "XES" } }
                li { a href="/audit/download/csv" download="strive.csv" { "CSV" } }
                li { a href="/audit/download/ocel" download="strive-ocel.json" { "OCEL 2.0" } }
            }
        }
    };
    Ok(layout::page(&viewer, lang.t("审计", "Audit"), body).into_response())
}

fn job_view(lang: Lang, job: &VerifyJob) -> maud::Markup {
    let done = job.state == "done";
    html! {
        div.job #job data-job=(job.id) data-done=(if done { "true" } else { "false" }) aria-live="polite" {
            label for="job-progress" { (lang.t("核验进度", "Verification progress")) }
            progress #job-progress max=(job.total.max(1)) value=(job.read) {}
            span.num #job-count { (job.read) " / " (job.total) }
            @if let (Some(ok), Some(summary)) = (job.ok, &job.summary) {
                @if ok {
                    p.ok data-testid="verify-result" { "✓ " (lang.t("核验通过：", "Verified: ")) (summary) }
                } @else {
                    p.alert role="alert" data-testid="verify-result" { "✗ " (lang.t("发现问题：", "Problems found: ")) (summary) }
                    @if let Some(lines) = job.report.as_ref().and_then(|r| r.get("lines")).and_then(|l| l.as_array()) {
                        ul { @for line in lines { li { (layout::json_inline(line)) } } }
                    }
                }
            }
        }
    }
}

/// The verification form: the CSRF token and, to check a kept
/// checkpoint, its note.
#[derive(Debug, Deserialize)]
pub(crate) struct VerifyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    checkpoint: String,
}

/// `POST /audit/verify`: starts a verification job and shows it.
pub(crate) async fn verify(
    State(state): State<Shared>,
    viewer: Viewer,
    Form(form): Form<VerifyForm>,
) -> Page {
    viewer.check_csrf(&form.csrf)?;
    let lang = viewer.lang;
    let text = form.checkpoint.replace("\r\n", "\n");
    let since = if text.trim().is_empty() {
        None
    } else {
        let text = if text.ends_with('\n') {
            text
        } else {
            format!("{text}\n")
        };
        let parsed = Checkpoint::parse(&text).map_err(|e| {
            viewer.failure(
                StatusCode::BAD_REQUEST,
                format!(
                    "{}{e}",
                    lang.t("检查点读不出来：", "The checkpoint does not read: ")
                ),
            )
        })?;
        Some(parsed.checkpoint)
    };
    let options = VerifyOptions {
        since,
        ..VerifyOptions::default()
    };
    let job = spawn_verify(&state, options).map_err(|p| Failure::problem(lang, p))?;
    Ok(Redirect::to(&format!(
        "/audit?job={}#job",
        layout::encode(&job.body().id)
    ))
    .into_response())
}

/// `GET /audit/verify/{job}`: the job's progress as JSON, for the page's
/// script.
pub(crate) async fn job(
    State(state): State<Shared>,
    viewer: Viewer,
    P(id): P<String>,
) -> Result<Json<VerifyJob>, Failure> {
    viewer.user()?;
    find_job(&state, &id)
        .map(|j| Json(j.body()))
        .ok_or_else(|| viewer.failure(StatusCode::NOT_FOUND, "no such verification job"))
}

/// `GET /audit/download/{format}`: the API's streamed export.
pub(crate) async fn download(
    State(state): State<Shared>,
    viewer: Viewer,
    P(format): P<String>,
) -> Result<Response, Failure> {
    let user = viewer.user()?.clone();
    let (format, name) = match format.as_str() {
        "jsonl" => (ExportFormat::Jsonl, "strive-bundle.jsonl"),
        "csv" => (ExportFormat::Csv, "strive.csv"),
        "xes" => (ExportFormat::Xes, "strive.xes"),
        "ocel" => (ExportFormat::Ocel, "strive-ocel.json"),
        _ => {
            return Err(viewer.failure(
                StatusCode::NOT_FOUND,
                "no such format; choose jsonl, csv, xes or ocel",
            ));
        }
    };
    let params = ExportParams {
        format: Some(format),
        workflow: None,
        instance: None,
        since: None,
    };
    let mut response = api::export(State(state), user.caller(), Q(params))
        .await
        .map_err(|p| Failure::problem(viewer.lang, p))?;
    if let Ok(value) = format!("attachment; filename=\"{name}\"").parse() {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
