//! The auditor's and the campaign's reads: replay, verification as a job,
//! checkpoint, streamed exports, the report and the pledges. The work is
//! strive-audit's and strive-campaign's, fed through `Engine`'s public API
//! by `strive_audit::store`, the very code the CLI runs.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use strive_audit::{At, Checkpoint, Filter, store};
use strive_campaign::{CampaignError, RenderOptions, Report, ReportFormat, ReportOptions};
use strive_store::Engine;
use tokio::sync::mpsc;

use crate::model::{
    CheckpointBody, CheckpointParams, ExportFormat, ExportParams, PartitionHeadBody, PledgeParams,
    ReceiptBody, ReplayBody, ReplayParams, ReportFormatParam, ReportParams, VerifyJob,
};
use crate::openapi::QueryProblems;
use crate::problem::Problem;
use crate::routes::{P, Q, parse_time};
use crate::state::{Caller, Shared, blocking};

/// The most verification jobs kept; the oldest finished ones go first.
const MAX_JOBS: usize = 16;

/// Rebuilds an instance from its events alone, at a sequence or a time;
/// at the end it must equal the stored snapshot.
#[utoipa::path(get, path = "/v1/instances/{id}/replay", tag = "audit",
    params(("id" = String, Path, description = "the instance"), ReplayParams),
    responses((status = 200, description = "the replayed instance", body = ReplayBody), QueryProblems))]
pub(crate) async fn replay(
    State(state): State<Shared>,
    _caller: Caller,
    P(id): P<String>,
    Q(params): Q<ReplayParams>,
) -> Result<Json<ReplayBody>, Problem> {
    let at = match (params.at_seq, params.at.as_deref()) {
        (Some(_), Some(_)) => return Err(Problem::bad_request("give at_seq or at, not both")),
        (Some(seq), None) => At::Seq(seq),
        (None, Some(text)) => At::Time(parse_time("at", text)?),
        (None, None) => At::End,
    };
    let engine = state.engine.clone();
    blocking(move || replayed(&engine, &id, at)).await.map(Json)
}

fn replayed(engine: &Engine, id: &str, at: At) -> Result<ReplayBody, Problem> {
    // The one replay `strive replay` runs: only the deployments and the
    // instance's and its descendants' chains (issue #10), checked against
    // the snapshot at the end.
    let result = store::replay(engine, id, at).map_err(|e| match e {
        strive_audit::ReplayError::NotFound { .. } => {
            Problem::new(StatusCode::NOT_FOUND, "unknown_instance", e.to_string())
        }
        strive_audit::ReplayError::BeforeStart { .. } => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "before_start",
            e.to_string(),
        ),
        _ => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "storage", e.to_string()),
    })?;
    Ok(ReplayBody {
        instance: serde_json::to_value(&result.replayed.instance).unwrap_or(Value::Null),
        gseq: result.replayed.gseq,
        matches_snapshot: result.matches_snapshot,
        problems: result
            .problems
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .collect(),
    })
}

/// A verification in progress or done.
pub(crate) struct Job {
    id: String,
    total: u64,
    read: AtomicU64,
    done: Mutex<Option<(bool, Value, String)>>,
}

impl Job {
    /// The job as the API and the console show it.
    pub(crate) fn body(&self) -> VerifyJob {
        let done = self.done.lock().ok().and_then(|d| d.clone());
        VerifyJob {
            id: self.id.clone(),
            state: if done.is_some() { "done" } else { "running" }.to_owned(),
            read: self.read.load(Ordering::Relaxed),
            total: self.total,
            ok: done.as_ref().map(|d| d.0),
            report: done.as_ref().map(|d| d.1.clone()),
            summary: done.map(|d| d.2),
        }
    }
}

/// Starts verifying the whole store (hashes, chains, each partition's
/// sequence, heads, replay against snapshots, conformance, the Merkle
/// roots), as `strive verify` does. Poll the job's `Location` for progress.
#[utoipa::path(post, path = "/v1/verify", tag = "audit",
    responses((status = 202, description = "started; poll the Location", body = VerifyJob,
               headers(("Location" = String, description = "the job"))), QueryProblems))]
pub(crate) async fn start_verify(
    State(state): State<Shared>,
    _caller: Caller,
) -> Result<Response, Problem> {
    let job = spawn_verify(&state, strive_audit::VerifyOptions::default())?;
    let location = format!("/v1/verify/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job.body()),
    )
        .into_response())
}

/// Starts a verification job with `options` (the console's check of a
/// kept checkpoint passes `since`), and keeps it for polling.
pub(crate) fn spawn_verify(
    state: &Shared,
    options: strive_audit::VerifyOptions,
) -> Result<Arc<Job>, Problem> {
    let total = state.engine.total_events();
    let job = Arc::new(Job {
        id: format!("v{total}-{:x}", rand_u32()),
        total,
        read: AtomicU64::new(0),
        done: Mutex::new(None),
    });
    if let Ok(mut jobs) = state.jobs.lock() {
        if jobs.len() >= MAX_JOBS {
            forget_finished(&mut jobs);
        }
        if jobs.len() >= MAX_JOBS {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many verifications are running; wait for one to finish",
            ));
        }
        jobs.insert(job.id.clone(), job.clone());
    }
    let engine = state.engine.clone();
    let worker = job.clone();
    tokio::task::spawn_blocking(move || {
        let report = strive_audit::store::verify(&engine, options, |read| {
            worker.read.store(read, Ordering::Relaxed);
        });
        let mut value = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
            map.insert("ok".to_owned(), json!(report.ok()));
            map.insert("lines".to_owned(), json!(lines));
        }
        if let Ok(mut done) = worker.done.lock() {
            *done = Some((report.ok(), value, report.to_string()));
        }
    });
    Ok(job)
}

/// The verification job `id`, if it is kept.
pub(crate) fn find_job(state: &Shared, id: &str) -> Option<Arc<Job>> {
    state
        .jobs
        .lock()
        .ok()
        .and_then(|jobs| jobs.get(id).cloned())
}

fn forget_finished(jobs: &mut HashMap<String, Arc<Job>>) {
    jobs.retain(|_, job| job.done.lock().map(|d| d.is_none()).unwrap_or(false));
}

fn rand_u32() -> u32 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    u32::from_le_bytes(bytes)
}

/// A verification job's progress, and its report when done.
#[utoipa::path(get, path = "/v1/verify/{job}", tag = "audit",
    params(("job" = String, Path, description = "the job's id")),
    responses((status = 200, description = "the job", body = VerifyJob), QueryProblems))]
pub(crate) async fn verify_job(
    State(state): State<Shared>,
    _caller: Caller,
    P(id): P<String>,
) -> Result<Json<VerifyJob>, Problem> {
    find_job(&state, &id)
        .map(|j| Json(j.body()))
        .ok_or_else(|| {
            Problem::not_found(format!(
                "no verification job `{id}`; start one with POST /v1/verify"
            ))
        })
}

/// A checkpoint of the log now (origin, size, Merkle root), unsigned: sign
/// it offline with `strive checkpoint --key` on a copy, or keep it as is.
#[utoipa::path(get, path = "/v1/checkpoint", tag = "audit", params(CheckpointParams),
    responses((status = 200, description = "the checkpoint", body = CheckpointBody), QueryProblems))]
pub(crate) async fn checkpoint(
    State(state): State<Shared>,
    _caller: Caller,
    Q(params): Q<CheckpointParams>,
) -> Result<Json<CheckpointBody>, Problem> {
    let origin = params.origin.unwrap_or_else(|| "strive".to_owned());
    if origin.is_empty() || origin.contains('\n') {
        return Err(Problem::bad_request("origin must be one non-empty line"));
    }
    let engine = state.engine.clone();
    // The stored Merkle tiles give each partition's root in O(log N)
    // reads, as `strive checkpoint` reads them; verification recomputes
    // them.
    let heads = blocking(move || engine.partition_heads().map_err(Problem::from)).await?;
    let checkpoint = Checkpoint::of_heads(origin, &heads)
        .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, "corrupt", e.to_string()))?;
    let note = checkpoint.to_note(None);
    Ok(Json(CheckpointBody {
        root: hex::encode(checkpoint.root),
        origin: checkpoint.origin,
        size: checkpoint.size,
        note,
        partitions: heads
            .iter()
            .map(|h| PartitionHeadBody {
                partition: h.partition,
                size: h.size,
                root: hex::encode(h.root),
            })
            .collect(),
    }))
}

/// Chunks written by a blocking export, sent to the response body.
struct Chunks {
    sender: mpsc::Sender<Bytes>,
    buffer: Vec<u8>,
}

impl Write for Chunks {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.sender
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

/// Streams events out: the JSONL audit bundle (default), CSV, XES or OCEL
/// 2.0, as `strive export` writes them.
#[utoipa::path(get, path = "/v1/export", tag = "audit", params(ExportParams),
    responses((status = 200, description = "the export, streamed", content((String = "application/jsonl"), (String = "text/csv"), (String = "application/xml"), (Object = "application/json"))), QueryProblems))]
pub(crate) async fn export(
    State(state): State<Shared>,
    _caller: Caller,
    Q(params): Q<ExportParams>,
) -> Result<Response, Problem> {
    let format = params.format.unwrap_or(ExportFormat::Jsonl);
    let filter = Filter {
        workflow: params.workflow,
        instance: params.instance,
        since: params.since,
    };
    let engine = state.engine.clone();
    if let Some(id) = &filter.instance {
        let (engine, id) = (engine.clone(), id.clone());
        let found = blocking(move || engine.instance(&id).map_err(Problem::from)).await?;
        if found.is_none() {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "unknown_instance",
                "no such instance",
            ));
        }
    }
    let (sender, mut receiver) = mpsc::channel::<Bytes>(8);
    tokio::task::spawn_blocking(move || {
        let sink = Chunks {
            sender,
            buffer: Vec::with_capacity(1 << 16),
        };
        let format = match format {
            ExportFormat::Jsonl => store::Format::Jsonl,
            ExportFormat::Csv => store::Format::Csv,
            ExportFormat::Xes => store::Format::Xes,
            ExportFormat::Ocel => {
                // The mapping is the campaign's, as `strive export --format
                // ocel` uses by default; it is checked by the tests.
                match strive_audit::Mapping::from_json(strive_campaign::OCEL_MAPPING) {
                    Ok(mapping) => {
                        if let Err(error) = store::export_ocel(&engine, sink, &filter, mapping) {
                            tracing::warn!(%error, "the export stopped");
                        }
                    }
                    Err(error) => tracing::error!(%error, "the campaign's OCEL mapping"),
                }
                return;
            }
        };
        let export = store::Export {
            format,
            filter: &filter,
            origin: "strive",
            key: None,
            from: None,
        };
        if let Err(error) = store::export(&engine, sink, &export) {
            // The head is sent already: the body ends early, and the
            // bundle's missing summary line tells a reader it is cut.
            tracing::warn!(%error, "the export stopped");
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| {
        receiver
            .poll_recv(cx)
            .map(|chunk| chunk.map(Ok::<_, std::io::Error>))
    });
    let content_type = match format {
        ExportFormat::Jsonl => "application/jsonl",
        ExportFormat::Ocel => "application/json",
        ExportFormat::Csv => "text/csv; charset=utf-8",
        ExportFormat::Xes => "application/xml",
    };
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(body),
    )
        .into_response())
}

/// A receipt for event `seq` of the instance: its exact bytes and an
/// inclusion proof to a checkpoint of every partition now, for its member
/// to keep and check offline (`strive verify-receipt`).
#[utoipa::path(get, path = "/v1/instances/{id}/events/{seq}/receipt", tag = "audit",
    params(("id" = String, Path, description = "the instance"),
           ("seq" = u64, Path, description = "the event's sequence number in the instance"),
           CheckpointParams),
    responses((status = 200, description = "the receipt", body = ReceiptBody), QueryProblems))]
pub(crate) async fn receipt(
    State(state): State<Shared>,
    _caller: Caller,
    P((id, seq)): P<(String, u64)>,
    Q(params): Q<CheckpointParams>,
) -> Result<Json<ReceiptBody>, Problem> {
    let origin = params.origin.unwrap_or_else(|| "strive".to_owned());
    if origin.is_empty() || origin.contains('\n') {
        return Err(Problem::bad_request("origin must be one non-empty line"));
    }
    let engine = state.engine.clone();
    let receipt = blocking(move || {
        store::receipt(&engine, &id, seq, &origin, None).map_err(|e| match e {
            store::ReceiptError::NoSuchEvent { .. } => {
                Problem::new(StatusCode::NOT_FOUND, "unknown_event", e.to_string())
            }
            store::ReceiptError::Storage(e) => Problem::from(e),
            other => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "corrupt",
                other.to_string(),
            ),
        })
    })
    .await?;
    Ok(Json(ReceiptBody {
        format: receipt.format,
        instance: receipt.instance,
        seq: receipt.seq,
        partition: receipt.partition,
        gseq: receipt.gseq,
        hash: receipt.hash,
        event: receipt.event,
        proof: receipt.proof,
        checkpoint: receipt.checkpoint,
    }))
}

pub(crate) fn campaign_problem(error: CampaignError) -> Problem {
    let (status, code) = match &error {
        CampaignError::UnknownWorkflow { .. } => (StatusCode::NOT_FOUND, "unknown_workflow"),
        CampaignError::InvalidOptions { .. } => (StatusCode::BAD_REQUEST, "bad_request"),
        CampaignError::Storage(e) => return Problem::from(e.clone()),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "campaign"),
    };
    Problem::new(status, code, error.to_string())
}

fn rendered(format: ReportFormatParam) -> (ReportFormat, &'static str) {
    match format {
        ReportFormatParam::Text => (ReportFormat::Text, "text/plain; charset=utf-8"),
        ReportFormatParam::Json => (ReportFormat::Json, "application/json"),
        ReportFormatParam::Csv => (ReportFormat::Csv, "text/csv; charset=utf-8"),
        ReportFormatParam::Html => (ReportFormat::Html, "text/html; charset=utf-8"),
    }
}

/// The campaign report: stage counts, overdue units, commended units with
/// scores, open rectification items.
#[utoipa::path(get, path = "/v1/report", tag = "campaign", params(ReportParams),
    responses((status = 200, description = "the report", content((Object = "application/json"), (String = "text/plain"), (String = "text/csv"), (String = "text/html"))), QueryProblems))]
pub(crate) async fn report(
    State(state): State<Shared>,
    _caller: Caller,
    Q(params): Q<ReportParams>,
) -> Result<Response, Problem> {
    let mut options = ReportOptions::default();
    if let Some(workflow) = params.workflow {
        options = options.workflow(workflow);
    }
    if let Some(text) = &params.as_of {
        options = options.as_of(parse_time("as_of", text)?);
    }
    let (format, content_type) = rendered(params.format.unwrap_or(ReportFormatParam::Json));
    let limit = params.limit.unwrap_or(0);
    let engine = state.engine.clone();
    let text = blocking(move || {
        let report = Report::build(&engine, &options).map_err(campaign_problem)?;
        Ok(report.render(format, &RenderOptions::limit(limit)))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// Every published plan and pledge, as the masses see them.
#[utoipa::path(get, path = "/v1/pledges", tag = "campaign", params(PledgeParams),
    responses((status = 200, description = "the pledges", content(([Object] = "application/json"), (String = "text/plain"), (String = "text/csv"), (String = "text/html"))), QueryProblems))]
pub(crate) async fn pledges(
    State(state): State<Shared>,
    _caller: Caller,
    Q(params): Q<PledgeParams>,
) -> Result<Response, Problem> {
    let (format, content_type) = rendered(params.format.unwrap_or(ReportFormatParam::Json));
    let engine = state.engine.clone();
    let text = blocking(move || {
        let pledges = strive_campaign::pledges(&engine, params.organisation.as_deref())
            .map_err(campaign_problem)?;
        Ok(strive_campaign::render_pledges(&pledges, format))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}
