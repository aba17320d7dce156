//! The OpenAPI 3.1 document, generated from the handlers' annotations and
//! the body types (utoipa), and the problem responses each kind of route
//! can give.

use std::collections::BTreeMap;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::model;
use crate::problem::ProblemDetails;
use crate::routes::{admin, audit, commands, grants, keys, queries, stream};

/// What each status means, for the problem responses.
fn meaning(status: u16) -> &'static str {
    match status {
        400 => "bad request: a malformed body, header or parameter, or an input over a limit",
        401 => "no valid bearer token: missing, unknown, expired or revoked",
        403 => "the token's actor lacks a role this needs, or a grant of a role it acts in",
        404 => "no such instance, workflow, job, token or grant",
        409 => {
            "the instance exists already, the Idempotency-Key was used for another command, or the grant is held already (or is the last admin's)"
        }
        412 => "the instance is not at the expected sequence (If-Match)",
        413 => "the body is larger than the server's limit",
        422 => "the workflow definition refused the command (or the definition is invalid)",
        429 => "the token's rate limit is spent; retry after a second",
        _ => "the store is unavailable, the request timed out, or the server is shutting down",
    }
}

fn problems(statuses: &[u16]) -> BTreeMap<String, RefOr<Response>> {
    statuses
        .iter()
        .map(|status| {
            let response = ResponseBuilder::new()
                .description(meaning(*status))
                .content(
                    crate::problem::PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(RefOr::<Schema>::Ref(Ref::from_schema_name("Problem"))))
                        .build(),
                )
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

macro_rules! problem_set {
    ($(#[$doc:meta])* $name:ident = [$($status:literal),*]) => {
        $(#[$doc])*
        pub(crate) struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                problems(&[$($status),*])
            }
        }
    };
}

problem_set!(
    /// What a command can answer besides success.
    CommandProblems = [400, 401, 403, 404, 409, 412, 413, 422, 429, 500, 503]
);
problem_set!(
    /// What a deploy can answer besides success.
    DeployProblems = [400, 401, 403, 413, 422, 429, 500, 503]
);
problem_set!(
    /// What a read can answer besides success.
    QueryProblems = [400, 401, 404, 429, 500, 503]
);
problem_set!(
    /// What changing and listing grants can answer besides success.
    GrantProblems = [400, 401, 403, 404, 409, 413, 429, 500, 503]
);
problem_set!(
    /// What token management can answer besides success.
    AdminProblems = [400, 401, 403, 404, 413, 429, 500, 503]
);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "strive",
        description = "An embedded workflow engine with a verifiable audit trail, over HTTP. \
            Every request but /healthz and /readyz carries a bearer token; the token's actor \
            and roles act, never a field of the body, and the grants recorded in the audit log \
            authorize those roles. Errors are RFC 9457 problem details \
            with the engine's stable codes.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        commands::deploy, queries::workflows, queries::versions, queries::definition,
        commands::start, queries::list, queries::show, commands::fire, commands::lifecycle, queries::history,
        audit::replay, audit::receipt, queries::events, stream::stream, audit::start_verify, audit::verify_job,
        audit::checkpoint, audit::export, audit::report, audit::pledges,
        admin::issue, admin::tokens, admin::revoke, grants::grant, grants::grants,
        grants::revoke, keys::register, keys::retire, keys::keys, admin::openapi,
        admin::healthz, admin::readyz, admin::metrics,
    ),
    components(schemas(
        ProblemDetails, model::OutcomeBody, model::InstanceBody, model::DueBody, model::InstancePage,
        model::DefinitionBody, model::EventBody, model::EventPage, model::StartRequest,
        model::FireRequest, model::LifecycleBody, model::DeployRequest, model::ReplayBody, model::ReceiptBody, model::CheckpointBody, model::PartitionHeadBody,
        model::VerifyJob, model::ExportFormat, model::ReportFormatParam, model::IssueRequest,
        model::TokenBody, model::IssuedBody, model::GrantRequest, model::GrantBody,
        model::SignatureBody, model::KeyRequest, model::KeyBody,
    )),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct Api;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document, pretty-printed, as checked in at docs/openapi.json.
pub fn openapi_json() -> String {
    let mut document = Api::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut text = document.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
