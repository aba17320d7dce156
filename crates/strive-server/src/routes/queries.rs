//! The queries: definitions, instances, histories and the log of every
//! partition.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use strive_store::{Engine, ListQuery, StorageError, StoredEvent};

use crate::cursor::Cursor;
use crate::model::{
    DefinitionBody, EventBody, EventPage, EventsParams, HistoryParams, InstanceBody, InstancePage,
    ListParams,
};
use crate::openapi::QueryProblems;
use crate::problem::Problem;
use crate::routes::commands::etag;
use crate::routes::{P, Q, page_size};
use crate::state::{Caller, Shared, blocking};

/// The latest version of every deployed workflow.
#[utoipa::path(get, path = "/v1/workflows", tag = "definitions",
    responses((status = 200, description = "the workflows", body = Vec<DefinitionBody>), QueryProblems))]
pub(crate) async fn workflows(
    State(state): State<Shared>,
    _caller: Caller,
) -> Result<Json<Vec<DefinitionBody>>, Problem> {
    let engine = state.engine.clone();
    let infos = blocking(move || engine.workflows().map_err(Problem::from)).await?;
    Ok(Json(infos.into_iter().map(DefinitionBody::from).collect()))
}

/// Every version of one workflow.
#[utoipa::path(get, path = "/v1/workflows/{workflow}/versions", tag = "definitions",
    params(("workflow" = String, Path, description = "the workflow")),
    responses((status = 200, description = "its versions", body = Vec<DefinitionBody>), QueryProblems))]
pub(crate) async fn versions(
    State(state): State<Shared>,
    _caller: Caller,
    P(workflow): P<String>,
) -> Result<Json<Vec<DefinitionBody>>, Problem> {
    let engine = state.engine.clone();
    let name = workflow.clone();
    let infos = blocking(move || engine.versions(&name).map_err(Problem::from)).await?;
    if infos.is_empty() {
        return Err(unknown_workflow(&workflow));
    }
    Ok(Json(infos.into_iter().map(DefinitionBody::from).collect()))
}

/// One version's definition document, as deployed.
#[utoipa::path(get, path = "/v1/workflows/{workflow}/versions/{version}", tag = "definitions",
    params(("workflow" = String, Path, description = "the workflow"),
           ("version" = u32, Path, description = "the version, from 1")),
    responses((status = 200, description = "the definition", body = Object), QueryProblems))]
pub(crate) async fn definition(
    State(state): State<Shared>,
    _caller: Caller,
    P((workflow, version)): P<(String, u32)>,
) -> Result<Json<Value>, Problem> {
    let engine = state.engine.clone();
    let name = workflow.clone();
    let found = blocking(move || engine.definition(&name, version).map_err(Problem::from)).await?;
    found.map(Json).ok_or_else(|| unknown_workflow(&workflow))
}

fn unknown_workflow(workflow: &str) -> Problem {
    Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "unknown_workflow",
        format!("no workflow `{workflow}` (or no such version) is deployed; see GET /v1/workflows"),
    )
}

fn unknown_instance(id: &str) -> Problem {
    Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "unknown_instance",
        format!("no instance `{id}`; check the id with GET /v1/instances"),
    )
}

/// An instance now: stage, data, version, sequence, deadline, children.
/// Its ETag is its sequence, for `If-Match` on the next fire.
#[utoipa::path(get, path = "/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path, description = "the instance")),
    responses((status = 200, description = "the instance", body = InstanceBody,
               headers(("ETag" = String, description = "the instance's sequence"))), QueryProblems))]
pub(crate) async fn show(
    State(state): State<Shared>,
    _caller: Caller,
    P(id): P<String>,
) -> Result<Response, Problem> {
    let engine = state.engine.clone();
    let name = id.clone();
    let found = blocking(move || engine.instance(&name).map_err(Problem::from)).await?;
    let snapshot = found.ok_or_else(|| unknown_instance(&id))?;
    let body = InstanceBody::from(snapshot);
    Ok((etag(body.seq), Json(body)).into_response())
}

/// A page of instances, by workflow and stage or by parent, in id order.
#[utoipa::path(get, path = "/v1/instances", tag = "instances", params(ListParams),
    responses((status = 200, description = "a page", body = InstancePage), QueryProblems))]
pub(crate) async fn list(
    State(state): State<Shared>,
    _caller: Caller,
    Q(params): Q<ListParams>,
) -> Result<Json<InstancePage>, Problem> {
    if params.stage.is_some() && params.workflow.is_none() && params.parent.is_none() {
        return Err(Problem::bad_request("stage needs workflow (or parent)"));
    }
    let query = ListQuery {
        workflow: params.workflow,
        stage: params.stage,
        parent: params.parent,
        after: params.after,
        limit: Some(page_size(params.limit)?),
    };
    let engine = state.engine.clone();
    let page = blocking(move || engine.list(&query).map_err(Problem::from)).await?;
    Ok(Json(InstancePage::from(page)))
}

/// A page of an instance's history (or of `@workflow/<id>`'s deploys).
#[utoipa::path(get, path = "/v1/instances/{id}/history", tag = "instances",
    params(("id" = String, Path, description = "the instance, or @workflow/<id> (URL-encoded)"), HistoryParams),
    responses((status = 200, description = "a page of events; `next` is the `after` of the next page", body = EventPage), QueryProblems))]
pub(crate) async fn history(
    State(state): State<Shared>,
    _caller: Caller,
    P(id): P<String>,
    Q(params): Q<HistoryParams>,
) -> Result<Json<EventPage>, Problem> {
    let limit = page_size(params.limit)?;
    let after = params.after.unwrap_or(0);
    let engine = state.engine.clone();
    let name = id.clone();
    let (events, next) = blocking(move || {
        let page = history_page(&engine, &name, after, limit)?;
        if page.0.is_empty() && after == 0 && engine.instance(&name)?.is_none() {
            return Err(unknown_instance(&name));
        }
        Ok(page)
    })
    .await?;
    Ok(Json(EventPage {
        items: events.into_iter().map(EventBody::from).collect(),
        next,
        cursor: None,
    }))
}

/// Every event of `id`, in order. The one place that calls
/// `Engine::history`, so that a paged history in the store changes only
/// this function.
pub(crate) fn history_all(engine: &Engine, id: &str) -> Result<Vec<StoredEvent>, StorageError> {
    engine.history(id)
}

/// The events of `id` after sequence `after`, at most `limit`, and the
/// `after` of the next page.
pub(crate) fn history_page(
    engine: &Engine,
    id: &str,
    after: u64,
    limit: usize,
) -> Result<(Vec<StoredEvent>, Option<u64>), StorageError> {
    let mut events: Vec<StoredEvent> = history_all(engine, id)?
        .into_iter()
        .filter(|e| e.event.seq > after)
        .take(limit.saturating_add(1))
        .collect();
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| e.event.seq)
    } else {
        None
    };
    Ok((events, next))
}

/// A page of the log from a position in every partition: each
/// partition's events in its log order, partition after partition.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsParams),
    responses((status = 200, description = "a page of events; `cursor` (and, with one partition, `next`) is the `from` of the next page", body = EventPage), QueryProblems))]
pub(crate) async fn events(
    State(state): State<Shared>,
    _caller: Caller,
    Q(params): Q<EventsParams>,
) -> Result<Json<EventPage>, Problem> {
    let limit = page_size(params.limit)?;
    let engine = state.engine.clone();
    let mut cursor = Cursor::parse_from(params.from.as_deref().unwrap_or(""), engine.partitions())?;
    let (events, cursor) = blocking(move || {
        let events = log_page(&engine, &mut cursor, limit).map_err(Problem::from)?;
        let more = (0..cursor.partitions()).any(|p| cursor.next(p) <= engine.last_gseq_in(p));
        Ok((events, more.then_some(cursor)))
    })
    .await?;
    Ok(Json(EventPage {
        items: events.into_iter().map(EventBody::from).collect(),
        // With one partition the number clients read before partitions
        // existed; with more, only the cursor says where every log is.
        next: cursor
            .as_ref()
            .filter(|c| c.partitions() == 1)
            .map(|c| c.next(0)),
        cursor: cursor.map(|c| c.to_from()),
    }))
}

/// Up to `limit` durable events from `cursor` on, partition by partition,
/// with `cursor` moved past them.
fn log_page(
    engine: &Engine,
    cursor: &mut Cursor,
    limit: usize,
) -> Result<Vec<StoredEvent>, StorageError> {
    let mut events = Vec::new();
    for partition in 0..cursor.partitions() {
        let room = limit.saturating_sub(events.len());
        if room == 0 {
            break;
        }
        for stored in engine
            .events_in(partition, cursor.next(partition))
            .take(room)
        {
            let stored = stored?;
            cursor.read(partition, stored.event.gseq);
            events.push(stored);
        }
    }
    Ok(events)
}
