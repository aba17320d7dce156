//! Health, readiness, metrics, the OpenAPI document, and tokens.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::model::{IssueRequest, IssuedBody, TokenBody};
use crate::openapi::{AdminProblems, QueryProblems};
use crate::problem::Problem;
use crate::routes::{JsonBody, P, parse_time};
use crate::state::{Caller, Shared, blocking};
use crate::tokens::TokenRequest;

/// Whether the process is alive. Needs no token.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "alive", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// Whether the server takes requests: not while it shuts down. Needs no
/// token.
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, description = "ready", body = String, content_type = "text/plain"),
              (status = 503, description = "shutting down", body = crate::problem::ProblemDetails, content_type = "application/problem+json")))]
pub(crate) async fn readyz(State(state): State<Shared>) -> Response {
    if state.shutting_down() {
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        )
        .into_response();
    }
    "ready\n".into_response()
}

/// Prometheus metrics: commands, rejections by code, request latency,
/// commit group sizes and flush latency.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "the text exposition format", body = String, content_type = "text/plain"), QueryProblems))]
pub(crate) async fn metrics(State(state): State<Shared>, _caller: Caller) -> Response {
    let text = state
        .metrics
        .render(state.engine.total_events(), &state.engine.stats());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "health",
    responses((status = 200, description = "the document", body = Object), QueryProblems))]
pub(crate) async fn openapi(_caller: Caller) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi_json(),
    )
        .into_response()
}

/// Issues a token (admin only). The token is in the answer, once; only its
/// hash is kept.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = IssueRequest,
    responses((status = 201, description = "issued", body = IssuedBody), AdminProblems))]
pub(crate) async fn issue(
    State(state): State<Shared>,
    caller: Caller,
    JsonBody(body): JsonBody<IssueRequest>,
) -> Result<Response, Problem> {
    let body = issue_token(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Issues a token for an admin caller: `POST /v1/tokens` and the
/// console's access page.
pub(crate) async fn issue_token(
    state: &Shared,
    caller: &Caller,
    body: IssueRequest,
) -> Result<IssuedBody, Problem> {
    caller.require_admin(state)?;
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|text| parse_time("expires_at", text))
        .transpose()?;
    let request = TokenRequest {
        actor: body.actor,
        roles: body.roles,
        expires_at,
    };
    let worker = state.clone();
    let issued = blocking(move || {
        let issued = worker.token_file.issue(&request, jiff::Timestamp::now())?;
        worker.reload_tokens()?;
        Ok(issued)
    })
    .await?;
    Ok(IssuedBody {
        token: issued.token,
        record: TokenBody::from(issued.record),
    })
}

/// Every token (admin only), without secrets or hashes.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    responses((status = 200, description = "the tokens", body = Vec<TokenBody>), AdminProblems))]
pub(crate) async fn tokens(
    State(state): State<Shared>,
    caller: Caller,
) -> Result<Json<Vec<TokenBody>>, Problem> {
    caller.require_admin(&state)?;
    let records = state
        .tokens
        .read()
        .map(|t| t.index.records())
        .unwrap_or_default();
    Ok(Json(records.into_iter().map(TokenBody::from).collect()))
}

/// Revokes a token (admin only); it stops working at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "the token's id")),
    responses((status = 200, description = "revoked", body = TokenBody), AdminProblems))]
pub(crate) async fn revoke(
    State(state): State<Shared>,
    caller: Caller,
    P(id): P<String>,
) -> Result<Json<TokenBody>, Problem> {
    caller.require_admin(&state)?;
    let worker = state.clone();
    let record = blocking(move || {
        let record = worker.token_file.revoke(&id, jiff::Timestamp::now())?;
        worker.reload_tokens()?;
        Ok(record)
    })
    .await?;
    Ok(Json(TokenBody::from(record)))
}
