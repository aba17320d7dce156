//! Grants (issue #11): recorded in the audit log's access chain by the
//! engine, behind the admin role. The engine decides who may change them
//! (an admin by the recorded grants, or by the token's `admin` role before
//! the first admin grant: the bootstrap); these handlers only carry the
//! request there and answer with the event recorded.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::model::{GrantBody, GrantRequest, GrantsParams, OutcomeBody};
use crate::openapi::GrantProblems;
use crate::problem::Problem;
use crate::routes::{JsonBody, Q};
use crate::state::{Caller, Shared, blocking};

/// Grants a role (admin only), as an event of the access chain `@access`.
#[utoipa::path(post, path = "/v1/grants", tag = "grants", request_body = GrantRequest,
    responses((status = 201, description = "granted: the access chain's new event", body = OutcomeBody), GrantProblems))]
pub(crate) async fn grant(
    State(state): State<Shared>,
    caller: Caller,
    JsonBody(body): JsonBody<GrantRequest>,
) -> Result<Response, Problem> {
    let outcome = change(&state, &caller, body, true).await?;
    Ok((StatusCode::CREATED, Json(outcome)).into_response())
}

/// Revokes a grant (admin only), as an event of the access chain.
#[utoipa::path(post, path = "/v1/grants/revoke", tag = "grants", request_body = GrantRequest,
    responses((status = 200, description = "revoked: the access chain's new event", body = OutcomeBody), GrantProblems))]
pub(crate) async fn revoke(
    State(state): State<Shared>,
    caller: Caller,
    JsonBody(body): JsonBody<GrantRequest>,
) -> Result<Json<OutcomeBody>, Problem> {
    change(&state, &caller, body, false).await.map(Json)
}

/// Grants (`grant`) or revokes a role for an admin caller: the API's two
/// routes and the console's access page.
pub(crate) async fn change(
    state: &Shared,
    caller: &Caller,
    body: GrantRequest,
    grant: bool,
) -> Result<OutcomeBody, Problem> {
    caller.require_admin(state)?;
    let engine = state.engine.clone();
    let actor = caller.actor();
    let outcome = blocking(move || {
        let wanted = strive_store::Grant::from(body);
        let result = if grant {
            engine.grant(&wanted, &actor)
        } else {
            engine.revoke(&wanted, &actor)
        };
        result.map_err(Problem::from)
    })
    .await?;
    Ok(OutcomeBody::from(outcome))
}

/// The grants held now (admin only), optionally one actor's.
#[utoipa::path(get, path = "/v1/grants", tag = "grants", params(GrantsParams),
    responses((status = 200, description = "the grants", body = Vec<GrantBody>), GrantProblems))]
pub(crate) async fn grants(
    State(state): State<Shared>,
    caller: Caller,
    Q(params): Q<GrantsParams>,
) -> Result<Json<Vec<GrantBody>>, Problem> {
    caller.require_admin(&state)?;
    let engine = state.engine.clone();
    let held = blocking(move || {
        engine
            .grants(params.actor.as_deref())
            .map_err(Problem::from)
    })
    .await?;
    Ok(Json(held.into_iter().map(GrantBody::from).collect()))
}
