//! Actors' keys (issue #11): registered and retired in the audit log's
//! access chain by the engine, behind the admin role, like grants. The
//! engine decides who may (`Engine::register_key`); these handlers only
//! carry the request there. The private keys never come here: actors sign
//! where they are and send the signature with the command
//! (`SignatureBody`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::model::{GrantsParams, KeyBody, KeyRequest, OutcomeBody};
use crate::openapi::GrantProblems;
use crate::problem::Problem;
use crate::routes::{JsonBody, Q};
use crate::state::{Caller, Shared, blocking};

/// Registers an actor's public key (admin only), as an event of the
/// access chain `@access`.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = KeyRequest,
    responses((status = 201, description = "registered: the access chain's new event", body = OutcomeBody), GrantProblems))]
pub(crate) async fn register(
    State(state): State<Shared>,
    caller: Caller,
    JsonBody(body): JsonBody<KeyRequest>,
) -> Result<Response, Problem> {
    let outcome = change(&state, &caller, body, false).await?;
    Ok((StatusCode::CREATED, Json(outcome)).into_response())
}

/// Retires an actor's key (admin only), as an event of the access chain.
#[utoipa::path(post, path = "/v1/keys/retire", tag = "keys", request_body = KeyRequest,
    responses((status = 200, description = "retired: the access chain's new event", body = OutcomeBody), GrantProblems))]
pub(crate) async fn retire(
    State(state): State<Shared>,
    caller: Caller,
    JsonBody(body): JsonBody<KeyRequest>,
) -> Result<Json<OutcomeBody>, Problem> {
    change(&state, &caller, body, true).await.map(Json)
}

async fn change(
    state: &Shared,
    caller: &Caller,
    body: KeyRequest,
    retire: bool,
) -> Result<OutcomeBody, Problem> {
    caller.require_admin(state)?;
    let vkey = strive_core::VerifierKey::parse(&body.vkey).map_err(|e| {
        Problem::bad_request(format!(
            "`vkey`: {e}; give the public key `strive key generate` printed"
        ))
    })?;
    let engine = state.engine.clone();
    let actor = caller.actor();
    let outcome = blocking(move || {
        let result = if retire {
            engine.retire_key(&body.actor, &vkey, &actor)
        } else {
            engine.register_key(&body.actor, &vkey, &actor)
        };
        result.map_err(Problem::from)
    })
    .await?;
    Ok(OutcomeBody::from(outcome))
}

/// The keys registered, held and retired (admin only), optionally one
/// actor's.
#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(GrantsParams),
    responses((status = 200, description = "the keys", body = Vec<KeyBody>), GrantProblems))]
pub(crate) async fn keys(
    State(state): State<Shared>,
    caller: Caller,
    Q(params): Q<GrantsParams>,
) -> Result<Json<Vec<KeyBody>>, Problem> {
    caller.require_admin(&state)?;
    let engine = state.engine.clone();
    let keys =
        blocking(move || engine.keys(params.actor.as_deref()).map_err(Problem::from)).await?;
    Ok(Json(keys.into_iter().map(KeyBody::from).collect()))
}
