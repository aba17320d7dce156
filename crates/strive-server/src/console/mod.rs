//! The console (issue #12): server-rendered HTML pages for the leading
//! group, reviewers, members and auditors, mounted at `/` beside the API.
//!
//! Everything it serves is in the binary: the pages are maud templates
//! (checked at compile time, every interpolation escaped), the stylesheet
//! and the one small script are `include_str!`ed. The script only adds
//! conveniences (the time-travel slider's live update, the verification's
//! progress); every page and form works without it.
//!
//! It reads and writes through the same engine calls and the same handlers
//! as `/v1`: the report and the pledges are strive-campaign's, replay and
//! verification strive-audit's, and a fire is `Engine::fire` as the token's
//! actor. Sign-in takes a bearer token and keeps it in a server-side
//! session behind an HTTP-only, SameSite=Strict cookie; every form carries
//! the session's CSRF token.

mod access;
mod audit;
mod dashboard;
mod definitions;
mod instance;
mod instances;
mod layout;
mod pledges;
mod session;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub(crate) use session::Sessions;

use crate::problem::Problem;
use crate::state::Shared;

use layout::Lang;

/// The console's stylesheet.
const CSS: &str = include_str!("assets/console.css");
/// The console's script: progressive enhancement only.
const JS: &str = include_str!("assets/console.js");

/// The console's routes, to merge into the server's router.
pub(crate) fn router() -> Router<Shared> {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/signin", get(session::form).post(session::sign_in))
        .route("/signout", post(session::sign_out))
        .route("/lang/{code}", get(session::language))
        .route("/instances", get(instances::page))
        .route("/instances/{id}", get(instance::page))
        .route("/instances/{id}/at", get(instance::at))
        .route("/instances/{id}/fire", post(instance::fire))
        .route("/audit", get(audit::page))
        .route("/audit/verify", post(audit::verify))
        .route("/audit/verify/{job}", get(audit::job))
        .route("/audit/download/{format}", get(audit::download))
        .route("/definitions", get(definitions::page))
        .route("/definitions/{workflow}", get(definitions::workflow))
        .route("/access", get(access::page))
        .route("/access/tokens", post(access::issue))
        .route("/access/grants", post(access::change))
        .route("/access/tokens/{id}/revoke", post(access::revoke))
        .route("/pledges", get(pledges::page))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .layer(axum::middleware::map_response(protect))
}

/// The content security policy of every console response: everything from
/// this server, scripts only from its one file (no inline script), no
/// framing by other sites, forms only to this server. Inline styles stay
/// allowed for the bars' widths and the diagram.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

async fn protect(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    response
}

async fn css() -> Response {
    // The console's rules, then the diagram's, which strive-campaign keeps
    // for the report and the console alike.
    static WHOLE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let whole = WHOLE.get_or_init(|| format!("{CSS}\n{}", strive_campaign::DIAGRAM_CSS));
    asset("text/css; charset=utf-8", whole)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Why a page cannot be shown: rendered as a page of its own, in the
/// viewer's language, with the status that says so.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    lang: Lang,
    message: String,
}

impl Failure {
    fn new(status: StatusCode, lang: Lang, message: impl Into<String>) -> Failure {
        Failure {
            status,
            lang,
            message: message.into(),
        }
    }

    /// The engine's or the API's refusal, in its own words.
    fn problem(lang: Lang, problem: Problem) -> Failure {
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Failure::new(status, lang, problem.detail.clone())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = layout::failure_page(self.lang, self.status, &self.message);
        (self.status, body).into_response()
    }
}

/// What a console handler returns.
type Page = Result<Response, Failure>;
