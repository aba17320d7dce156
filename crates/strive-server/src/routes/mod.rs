//! The router: every route under `/v1`, the health checks, and the layers
//! every request passes (request id, tracing span, metrics, timeout, body
//! limit).

pub(crate) mod admin;
pub(crate) mod audit;
pub(crate) mod commands;
pub(crate) mod grants;
pub(crate) mod keys;
pub(crate) mod queries;
pub(crate) mod stream;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

use crate::problem::Problem;
use crate::state::Shared;

/// The header that carries a request's id.
const REQUEST_ID: &str = "x-request-id";

/// Every route, with its layers.
pub(crate) fn router(state: Shared) -> Router {
    let limit = state.config.body_limit;
    let v1 = Router::new()
        .route("/definitions", post(commands::deploy))
        .route("/workflows", get(queries::workflows))
        .route("/workflows/{workflow}/versions", get(queries::versions))
        .route(
            "/workflows/{workflow}/versions/{version}",
            get(queries::definition),
        )
        .route("/instances", post(commands::start).get(queries::list))
        .route("/instances/{id}", get(queries::show))
        .route("/instances/{id}/events", post(commands::fire))
        .route("/instances/{id}/lifecycle", post(commands::lifecycle))
        .route("/instances/{id}/history", get(queries::history))
        .route("/instances/{id}/replay", get(audit::replay))
        .route("/instances/{id}/events/{seq}/receipt", get(audit::receipt))
        .route("/events", get(queries::events))
        .route("/events/stream", get(stream::stream))
        .route("/verify", post(audit::start_verify))
        .route("/verify/{job}", get(audit::verify_job))
        .route("/checkpoint", get(audit::checkpoint))
        .route("/export", get(audit::export))
        .route("/report", get(audit::report))
        .route("/pledges", get(audit::pledges))
        .route("/tokens", post(admin::issue).get(admin::tokens))
        .route("/tokens/{id}", axum::routing::delete(admin::revoke))
        .route("/grants", post(grants::grant).get(grants::grants))
        .route("/grants/revoke", post(grants::revoke))
        .route("/keys", post(keys::register).get(keys::keys))
        .route("/keys/retire", post(keys::retire))
        .route("/openapi.json", get(admin::openapi));
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<Body>| {
        let id = request
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
    });
    let header = axum::http::HeaderName::from_static(REQUEST_ID);
    let mut app = Router::new()
        .nest("/v1", v1)
        .merge(crate::console::router());
    if let Some(witness) = &state.config.witness {
        // The witness keeps its own state and answers without a token, as
        // C2SP tlog-witness asks: the log's signature is its only check.
        app = app.nest_service("/witness", crate::witness::router(witness.clone()));
    }
    app.route("/healthz", get(admin::healthz))
        .route("/readyz", get(admin::readyz))
        .route("/metrics", get(admin::metrics))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(trace)
        .layer(SetRequestIdLayer::new(header, Counter::default()))
        .with_state(state)
}

async fn not_found() -> Problem {
    Problem::not_found("no such route; see /v1/openapi.json for the API")
}

/// Counts each request and its latency, and cuts it off after the
/// request timeout. The timeout runs until the response's head: a stream
/// (events, an export) may go on after it.
async fn observe(
    axum::extract::State(state): axum::extract::State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = match tokio::time::timeout(state.config.request_timeout, next.run(request)).await
    {
        Ok(response) => response,
        Err(_) => {
            state.metrics.rejection("timeout");
            axum::response::IntoResponse::into_response(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the request took longer than the server's timeout; a command may still have been recorded, so retry it with the same Idempotency-Key",
            ))
        }
    };
    state
        .metrics
        .request(response.status().as_u16(), started.elapsed());
    response
}

/// Request ids: a process-unique prefix and a counter, enough to find one
/// request in the logs.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicU64>);

impl MakeRequestId for Counter {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{:x}-{n}", std::process::id());
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// A JSON body whose errors are problem details.
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody<T>, Problem> {
        let RawBody(bytes) = RawBody::from_request(request, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Problem::bad_request(format!("the body is not the JSON expected: {e}")))
    }
}

/// The body's bytes, within the body limit.
pub(crate) struct RawBody(pub(crate) Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<RawBody, Problem> {
        Bytes::from_request(request, state)
            .await
            .map(RawBody)
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the body is larger than the server's limit (--body-limit)",
                    )
                } else {
                    Problem::bad_request(format!("the body cannot be read: {e}"))
                }
            })
    }
}

/// Query parameters whose errors are problem details.
pub(crate) struct Q<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Q<T>, Problem> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| Problem::bad_request(format!("bad query parameters: {}", e.body_text())))
    }
}

/// Path parameters whose errors are problem details.
pub(crate) struct P<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for P<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<P<T>, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| P(p.0))
            .map_err(|e| Problem::bad_request(format!("bad path: {}", e.body_text())))
    }
}

/// A page size from a query: 1 to 1000, 100 by default.
pub(crate) fn page_size(limit: Option<usize>) -> Result<usize, Problem> {
    match limit {
        None => Ok(100),
        Some(n @ 1..=1000) => Ok(n),
        Some(n) => Err(Problem::bad_request(format!(
            "limit {n} is out of range; give 1 to 1000"
        ))),
    }
}

/// An RFC 3339 time from a query parameter.
pub(crate) fn parse_time(name: &str, text: &str) -> Result<jiff::Timestamp, Problem> {
    text.parse().map_err(|e| {
        Problem::bad_request(format!(
            "{name} {text:?} is not an RFC 3339 time ({e}); write e.g. 2026-05-31T23:59:59+08:00"
        ))
    })
}
