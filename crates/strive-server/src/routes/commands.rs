//! The commands: deploy, start, fire and lifecycle operations. The actor is always the token's.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use strive_store::CommandOptions;

use crate::model::{
    DefinitionBody, DeployRequest, FireRequest, LifecycleBody, OutcomeBody, StartRequest,
};
use crate::openapi::{CommandProblems, DeployProblems};
use crate::problem::Problem;
use crate::routes::{JsonBody, P, RawBody};
use crate::state::{Caller, Shared, blocking};

/// The header that carries a command id.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Deploys definitions as new versions, all or none (admin only). The body
/// is one definition document (diagnostics' lines refer to the body as
/// sent), or `{"definitions": [...]}` (each is re-serialised, pretty, and
/// its diagnostics refer to that text, named `definitions/<i>`).
#[utoipa::path(
    post, path = "/v1/definitions", tag = "definitions",
    request_body(content = DeployRequest, description = "one definition document, or several under `definitions`"),
    responses((status = 201, description = "deployed (or unchanged)", body = Vec<DefinitionBody>), DeployProblems)
)]
pub(crate) async fn deploy(
    State(state): State<Shared>,
    caller: Caller,
    RawBody(body): RawBody,
) -> Result<Response, Problem> {
    caller.require_admin(&state)?;
    let texts = definition_texts(&body)?;
    let engine = state.engine.clone();
    let actor = caller.actor();
    let result = blocking(move || {
        let inputs: Vec<(Option<&str>, &str)> = texts
            .iter()
            .map(|(n, t)| (Some(n.as_str()), t.as_str()))
            .collect();
        engine.deploy_all(&inputs, &actor).map_err(Problem::from)
    })
    .await;
    count(&state, "deploy", &result);
    let infos: Vec<DefinitionBody> = result?.into_iter().map(DefinitionBody::from).collect();
    Ok((StatusCode::CREATED, Json(infos)).into_response())
}

/// The definitions of a deploy body, each as text with a name for its
/// diagnostics.
fn definition_texts(body: &[u8]) -> Result<Vec<(String, String)>, Problem> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Problem::bad_request("the body must be UTF-8 JSON"))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Problem::bad_request(format!("the body is not JSON: {e}")))?;
    match value.get("definitions") {
        Some(Value::Array(_)) => {
            let batch: DeployRequest = serde_json::from_value(value.clone())
                .map_err(|e| Problem::bad_request(e.to_string()))?;
            batch
                .definitions
                .iter()
                .enumerate()
                .map(|(i, definition)| {
                    serde_json::to_string_pretty(definition)
                        .map(|t| (format!("definitions/{i}"), t))
                        .map_err(|e| Problem::bad_request(e.to_string()))
                })
                .collect()
        }
        Some(_) => Err(Problem::bad_request("`definitions` must be an array")),
        None => Ok(vec![("body".to_owned(), text.to_owned())]),
    }
}

/// Starts an instance of a workflow's latest version, as the token's actor.
#[utoipa::path(
    post, path = "/v1/instances", tag = "instances",
    request_body = StartRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "a command id: a retry with the same key returns the first outcome")),
    responses((status = 201, description = "started", body = OutcomeBody,
               headers(("ETag" = String, description = "the instance's sequence"))), CommandProblems)
)]
pub(crate) async fn start(
    State(state): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<StartRequest>,
) -> Result<Response, Problem> {
    let options = CommandOptions {
        expected_seq: None,
        command_id: idempotency_key(&headers)?,
        signature: body.signature.clone().map(Into::into),
    };
    let engine = state.engine.clone();
    let actor = caller.actor();
    let result = blocking(move || {
        let data = body.data.unwrap_or_else(Map::new);
        engine
            .start(
                &body.workflow,
                &body.id,
                &actor,
                data,
                body.parent.as_deref(),
                options,
            )
            .map_err(Problem::from)
    })
    .await;
    count(&state, "start", &result);
    let outcome = OutcomeBody::from(result?);
    let location = format!("/v1/instances/{}", outcome.instance);
    let mut response = (StatusCode::CREATED, etag(outcome.seq), Json(outcome)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// Fires an event on an instance, as the token's actor. The expected
/// sequence comes as `If-Match` (the ETag of `GET /v1/instances/{id}`) or
/// as `expected_seq` in the body.
#[utoipa::path(
    post, path = "/v1/instances/{id}/events", tag = "instances",
    request_body = FireRequest,
    params(
        ("id" = String, Path, description = "the instance"),
        ("If-Match" = Option<String>, Header, description = "the expected sequence, as an ETag: \"3\""),
        ("Idempotency-Key" = Option<String>, Header, description = "a command id: a retry with the same key returns the first outcome"),
    ),
    responses((status = 200, description = "fired", body = OutcomeBody,
               headers(("ETag" = String, description = "the instance's sequence"))), CommandProblems)
)]
pub(crate) async fn fire(
    State(state): State<Shared>,
    caller: Caller,
    P(id): P<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<FireRequest>,
) -> Result<Response, Problem> {
    let options = CommandOptions {
        expected_seq: expected_seq(&headers, body.expected_seq)?,
        command_id: idempotency_key(&headers)?,
        signature: body.signature.clone().map(Into::into),
    };
    // Awaited, not run on the blocking pool: no thread waits per command
    // in flight while the writer's group becomes durable.
    let result = state
        .engine
        .fire_pending(&id, &body.event, &caller.actor(), body.payload, options)
        .await
        .map_err(Problem::from);
    count(&state, "fire", &result);
    let outcome = OutcomeBody::from(result?);
    Ok((etag(outcome.seq), Json(outcome)).into_response())
}

/// Suspends, resumes, cancels or terminates an instance with a reason, as
/// the token's actor, whose roles the definition's `lifecycle` section
/// must allow. Descendants follow in the same write as the definitions
/// declare. A refusal is a problem with code `rejected` and the
/// rejection's `kind` in its details (`suspended`, `ended`,
/// `lifecycle_not_allowed`, `lifecycle_role_not_allowed`,
/// `invalid_reason`).
#[utoipa::path(
    post, path = "/v1/instances/{id}/lifecycle", tag = "instances",
    request_body = LifecycleBody,
    params(
        ("id" = String, Path, description = "the instance"),
        ("If-Match" = Option<String>, Header, description = "the expected sequence, as an ETag: \"3\""),
        ("Idempotency-Key" = Option<String>, Header, description = "a command id: a retry with the same key returns the first outcome"),
    ),
    responses((status = 200, description = "done", body = OutcomeBody,
               headers(("ETag" = String, description = "the instance's sequence"))), CommandProblems)
)]
pub(crate) async fn lifecycle(
    State(state): State<Shared>,
    caller: Caller,
    P(id): P<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<LifecycleBody>,
) -> Result<Response, Problem> {
    let options = CommandOptions {
        expected_seq: expected_seq(&headers, body.expected_seq)?,
        command_id: idempotency_key(&headers)?,
        ..CommandOptions::default()
    };
    let engine = state.engine.clone();
    let actor = caller.actor();
    let op = body.op;
    let result = blocking(move || {
        let request = strive_store::LifecycleRequest {
            instance: &id,
            op: body.op,
            actor: &actor,
            reason: &body.reason,
            options,
        };
        engine.lifecycle(&request).map_err(Problem::from)
    })
    .await;
    count(&state, op.as_str(), &result);
    let outcome = OutcomeBody::from(result?);
    Ok((etag(outcome.seq), Json(outcome)).into_response())
}

fn count<T>(state: &Shared, kind: &'static str, result: &Result<T, Problem>) {
    match result {
        Ok(_) => state.metrics.command(kind, "ok"),
        Err(problem) => state.metrics.command(kind, &problem.code),
    }
}

/// An instance's sequence as an ETag.
pub(crate) fn etag(seq: u64) -> [(header::HeaderName, String); 1] {
    [(header::ETAG, format!("\"{seq}\""))]
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    headers
        .get(IDEMPOTENCY_KEY)
        .map(|value| {
            value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| Problem::bad_request("Idempotency-Key must be visible ASCII"))
        })
        .transpose()
}

/// The expected sequence from `If-Match` (`"3"`, or `*` for any) and the
/// body; when both are given they must agree.
fn expected_seq(headers: &HeaderMap, body: Option<u64>) -> Result<Option<u64>, Problem> {
    let header = match headers.get(header::IF_MATCH) {
        None => None,
        Some(value) => {
            let text = value.to_str().unwrap_or("").trim();
            if text == "*" {
                None
            } else {
                let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
                Some(bare.parse::<u64>().map_err(|_| {
                    Problem::bad_request(format!(
                        "If-Match {text:?} is not an instance's ETag; send the ETag of GET /v1/instances/{{id}}, such as \"3\""
                    ))
                })?)
            }
        }
    };
    match (header, body) {
        (Some(a), Some(b)) if a != b => Err(Problem::bad_request(format!(
            "If-Match says sequence {a} but expected_seq says {b}; send one"
        ))),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_and_the_body_agree_or_are_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(expected_seq(&headers, Some(4)).ok(), Some(Some(4)));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"3\""));
        assert_eq!(expected_seq(&headers, None).ok(), Some(Some(3)));
        assert_eq!(expected_seq(&headers, Some(3)).ok(), Some(Some(3)));
        assert!(expected_seq(&headers, Some(4)).is_err());
        headers.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        assert_eq!(expected_seq(&headers, None).ok(), Some(None));
        headers.insert(header::IF_MATCH, HeaderValue::from_static("\"x\""));
        assert!(expected_seq(&headers, None).is_err());
    }

    #[test]
    fn a_deploy_body_is_one_definition_or_a_batch() {
        let one = definition_texts(br#"{"id": "a"}"#).expect("one");
        assert_eq!(one, vec![("body".to_owned(), r#"{"id": "a"}"#.to_owned())]);
        let two = definition_texts(br#"{"definitions": [{"id": "a"}, {"id": "b"}]}"#).expect("two");
        assert_eq!(two.len(), 2);
        assert!(definition_texts(br#"{"definitions": 3}"#).is_err());
        assert!(definition_texts(b"nope").is_err());
    }
}
