//! Sign-in, sessions, CSRF tokens and the language switch.
//!
//! A session keeps the bearer token server-side; the browser holds only a
//! random session id in an HTTP-only, SameSite=Strict cookie, so a script
//! on the page never sees the token. Every request through a session
//! authenticates the token again (`State::authenticate`, the API's own
//! check), so a revoked or expired token ends its sessions at once.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use jiff::{SignedDuration, Timestamp};
use maud::html;
use serde::Deserialize;

use super::layout::{self, Lang};
use super::{Failure, Page};
use crate::routes::P;
use crate::state::{Caller, Shared};
use crate::tokens::TokenRecord;

/// The session cookie.
const SESSION: &str = "strive_session";
/// The cookie that carries the sign-in form's CSRF token (double submit:
/// there is no session yet to keep it in).
const SIGNIN: &str = "strive_signin";
/// The language cookie.
const LANG: &str = "strive_lang";
/// How long a session lasts without a new sign-in.
const LIFETIME: SignedDuration = SignedDuration::from_hours(8);
/// The most sessions kept; past it the expired ones go, then sign-in is
/// refused until some expire.
const MAX_SESSIONS: usize = 10_000;

/// One signed-in browser.
#[derive(Debug, Clone)]
struct Session {
    token: String,
    csrf: String,
    expires: Timestamp,
}

/// The server's sessions, by id.
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn get(&self, id: &str) -> Option<Session> {
        let now = Timestamp::now();
        self.0
            .lock()
            .ok()?
            .get(id)
            .filter(|s| s.expires > now)
            .cloned()
    }

    fn open(&self, token: String) -> Option<String> {
        let now = Timestamp::now();
        let mut sessions = self.0.lock().ok()?;
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| s.expires > now);
        }
        if sessions.len() >= MAX_SESSIONS {
            return None;
        }
        let id = random_hex();
        let session = Session {
            token,
            csrf: random_hex(),
            expires: now.saturating_add(LIFETIME).unwrap_or(now),
        };
        sessions.insert(id.clone(), session);
        Some(id)
    }

    fn close(&self, id: &str) {
        if let Ok(mut sessions) = self.0.lock() {
            sessions.remove(id);
        }
    }
}

/// 128 random bits in hex.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HTTP-only, SameSite=Strict, for the whole site.
fn set_cookie(name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .ok()
}

/// Who is signed in, with the CSRF token of their session.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) record: TokenRecord,
    pub(crate) csrf: String,
}

impl User {
    /// The token's identity as the API's handlers take it.
    pub(crate) fn caller(&self) -> Caller {
        Caller(self.record.clone())
    }

    pub(crate) fn is_admin(&self) -> bool {
        self.record.has_role(crate::tokens::ADMIN_ROLE)
    }
}

/// Who is looking, in which language, at which page.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    pub(crate) lang: Lang,
    pub(crate) user: Option<User>,
    /// The request's path and query, for the language switch to return to.
    pub(crate) here: String,
    /// Whether the session's token is past its rate limit: a session
    /// spends the token's limit as its bearer requests do.
    pub(crate) limited: bool,
}

impl Viewer {
    /// The signed-in user, or the 401 page that asks for a sign-in.
    pub(crate) fn user(&self) -> Result<&User, Failure> {
        if self.limited {
            return Err(Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                self.lang,
                self.lang.t(
                    "请求太频繁，请稍等一秒再试。",
                    "Too many requests from this token; wait a second and retry.",
                ),
            ));
        }
        self.user.as_ref().ok_or_else(|| {
            Failure::new(
                StatusCode::UNAUTHORIZED,
                self.lang,
                self.lang.t(
                    "此页面需要登录：请用管理员签发的令牌登录。",
                    "This page needs a sign-in: sign in with a token an admin issued you.",
                ),
            )
        })
    }

    /// Refuses a form whose CSRF token is not the session's.
    pub(crate) fn check_csrf(&self, presented: &str) -> Result<&User, Failure> {
        let user = self.user()?;
        if constant_time_eq(user.csrf.as_bytes(), presented.as_bytes()) {
            Ok(user)
        } else {
            Err(csrf_refused(self.lang))
        }
    }

    pub(crate) fn failure(&self, status: StatusCode, message: impl Into<String>) -> Failure {
        Failure::new(status, self.lang, message)
    }
}

fn csrf_refused(lang: Lang) -> Failure {
    Failure::new(
        StatusCode::FORBIDDEN,
        lang,
        lang.t(
            "表单的防伪令牌（CSRF）不对：请重新打开页面后再提交。",
            "The form's CSRF token does not match: open the page again and resubmit.",
        ),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Shared,
    ) -> Result<Viewer, Self::Rejection> {
        let lang = cookie(&parts.headers, LANG)
            .and_then(Lang::parse)
            .unwrap_or_default();
        let session = cookie(&parts.headers, SESSION).and_then(|id| state.sessions.get(id));
        // An expired or revoked token ends the session: the API's check,
        // not a copy of it.
        let user = session.and_then(|s| {
            state.authenticate(Some(&s.token)).ok().map(|record| User {
                record,
                csrf: s.csrf,
            })
        });
        let limited = user
            .as_ref()
            .is_some_and(|u| !state.limiter.allow(&u.record.id));
        let here = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        Ok(Viewer {
            lang,
            user,
            here,
            limited,
        })
    }
}

/// `GET /signin`: the sign-in form, with a fresh CSRF cookie.
pub(crate) async fn form(viewer: Viewer) -> Response {
    signin_page(&viewer, StatusCode::OK, None)
}

fn signin_page(viewer: &Viewer, status: StatusCode, error: Option<&str>) -> Response {
    let lang = viewer.lang;
    let csrf = random_hex();
    let body = html! {
        h1 { (lang.t("登录", "Sign in")) }
        @if let Some(error) = error {
            p.alert role="alert" { (error) }
        }
        form.signin method="post" action="/signin" {
            input type="hidden" name="csrf" value=(csrf);
            label for="token" { (lang.t("令牌", "Token")) }
            input #token type="password" name="token" autocomplete="off" required
                aria-describedby="token-help";
            p #token-help .help { (lang.t(
                "管理员用 strive token issue 签发的令牌。令牌只保存在服务器上，浏览器只拿到会话 cookie。",
                "The token an admin issued with `strive token issue`. It stays on the server; the browser gets only a session cookie."))
            }
            button type="submit" { (lang.t("登录", "Sign in")) }
        }
    };
    let page = layout::page(viewer, lang.t("登录", "Sign in"), body);
    let mut response = (status, page).into_response();
    if let Some(value) = set_cookie(SIGNIN, &csrf, 3600) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The sign-in form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    token: String,
    // A missing token is refused as a wrong one, by this module's page.
    #[serde(default)]
    csrf: String,
}

/// `POST /signin`: checks the token as the API does and opens a session.
pub(crate) async fn sign_in(
    State(state): State<Shared>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Page {
    let expected = cookie(&headers, SIGNIN).unwrap_or("");
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return Err(csrf_refused(viewer.lang));
    }
    let token = form.token.trim().to_owned();
    if let Err(problem) = state.authenticate(Some(&token)) {
        return Ok(signin_page(
            &viewer,
            StatusCode::UNAUTHORIZED,
            Some(&problem.detail),
        ));
    }
    // A new sign-in replaces the browser's session, if it had one.
    if let Some(old) = cookie(&headers, SESSION) {
        state.sessions.close(old);
    }
    let id = state.sessions.open(token).ok_or_else(|| {
        viewer.failure(
            StatusCode::SERVICE_UNAVAILABLE,
            viewer.lang.t(
                "会话太多，请稍后再试。",
                "Too many sessions are open; try again later.",
            ),
        )
    })?;
    let mut response = Redirect::to("/").into_response();
    let headers = response.headers_mut();
    if let Some(value) = set_cookie(SESSION, &id, LIFETIME.as_secs()) {
        headers.append(header::SET_COOKIE, value);
    }
    if let Some(value) = set_cookie(SIGNIN, "", 0) {
        headers.append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// A form that carries only the CSRF token.
#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    // A missing token is refused as a wrong one, by this module's page.
    #[serde(default)]
    csrf: String,
}

/// `POST /signout`: ends the session.
pub(crate) async fn sign_out(
    State(state): State<Shared>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Page {
    viewer.check_csrf(&form.csrf)?;
    if let Some(id) = cookie(&headers, SESSION) {
        state.sessions.close(id);
    }
    let mut response = Redirect::to("/pledges").into_response();
    if let Some(value) = set_cookie(SESSION, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Where the language switch returns to.
#[derive(Debug, Deserialize)]
pub(crate) struct Back {
    back: Option<String>,
}

/// `GET /lang/{zh|en}?back=/path`: sets the language cookie and returns.
pub(crate) async fn language(
    P(code): P<String>,
    axum::extract::Query(back): axum::extract::Query<Back>,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or_default();
    // Only a path on this site: never an open redirect.
    let target = back
        .back
        .filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'))
        .unwrap_or_else(|| "/".to_owned());
    let mut response = Redirect::to(&target).into_response();
    if let Some(value) = set_cookie(LANG, lang.code(), 365 * 24 * 3600) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; strive_session=abc; strive_lang=en"),
        );
        assert_eq!(cookie(&headers, SESSION), Some("abc"));
        assert_eq!(cookie(&headers, LANG), Some("en"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
