//! Access (admins only): the grants the audit log records and the tokens
//! the server accepts, through the API's own handlers and their admin
//! check.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Lang, th, when};
use super::session::Viewer;
use super::{Failure, Page};
use crate::model::{GrantBody, GrantRequest, GrantsParams, IssueRequest, IssuedBody, TokenBody};
use crate::routes::{P, Q, admin, grants};
use crate::state::Shared;

/// `GET /access`: grants and tokens; refused to callers without `admin`.
pub(crate) async fn page(State(state): State<Shared>, viewer: Viewer) -> Page {
    render(&state, &viewer, None).await
}

async fn render(state: &Shared, viewer: &Viewer, issued: Option<IssuedBody>) -> Page {
    let user = viewer.user()?.clone();
    let lang = viewer.lang;
    let held = grants::grants(
        State(state.clone()),
        user.caller(),
        Q(GrantsParams { actor: None }),
    )
    .await
    .map_err(|p| Failure::problem(lang, p))?
    .0;
    let tokens = admin::tokens(State(state.clone()), user.caller())
        .await
        .map_err(|p| Failure::problem(lang, p))?
        .0;
    let body = html! {
        h1 { (lang.t("权限", "Access")) }
        (grants_section(lang, &user.csrf, &held))
        (tokens_section(lang, &user.csrf, &tokens, issued.as_ref()))
    };
    Ok(layout::page(viewer, lang.t("权限", "Access"), body).into_response())
}

fn grants_section(lang: Lang, csrf: &str, held: &[GrantBody]) -> Markup {
    html! {
    section aria-labelledby="grants-h" {
        h2 #grants-h { (lang.t("角色授予（记录在审计日志中）", "Grants (recorded in the audit log)")) }
        @if held.is_empty() {
            p.none { (lang.t("没有授予记录：服务器按令牌的角色行事。", "No grant is recorded: the server acts on the tokens' roles.")) }
        } @else {
            table {
                thead { tr { (th(lang.t("执行人", "Actor"))) (th(lang.t("角色", "Role"))) (th(lang.t("范围", "On"))) (th(lang.t("授予人", "By"))) (th(lang.t("时间", "At"))) (th(lang.t("操作", "Action"))) } }
                tbody {
                    @for g in held {
                        tr { td { (g.actor) } td { (g.role) }
                             td { @if let Some(on) = &g.on { a href={ "/instances/" (layout::encode(on)) } { (on) } } @else { (lang.t("全部", "everywhere")) } }
                             td { (g.by) } td { (when(g.at)) }
                             td { form.inline method="post" action="/access/grants" {
                                 input type="hidden" name="csrf" value=(csrf);
                                 input type="hidden" name="change" value="revoke";
                                 input type="hidden" name="actor" value=(g.actor);
                                 input type="hidden" name="role" value=(g.role);
                                 input type="hidden" name="on" value=(g.on.clone().unwrap_or_default());
                                 button type="submit" aria-label={ (lang.t("撤销授予 ", "Revoke grant ")) (g.actor) " " (g.role) } { (lang.t("撤销", "Revoke")) }
                             } } }
                    }
                }
            }
        }
        form.filters method="post" action="/access/grants" aria-label=(lang.t("授予角色", "Grant a role")) {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="change" value="grant";
            label { (lang.t("执行人", "Actor")) " " input type="text" name="actor" required; }
            label { (lang.t("角色", "Role")) " " input type="text" name="role" required; }
            label { (lang.t("范围（实例，可选）", "On (an instance, optional)")) " " input type="text" name="on"; }
            button type="submit" { (lang.t("授予", "Grant")) }
        }
        p.help { (lang.t("每次授予和撤销都是审计日志访问链中的一个事件。", "Each grant and revocation is an event in the audit log's access chain.")) }
    }
    }
}

fn tokens_section(
    lang: Lang,
    csrf: &str,
    tokens: &[TokenBody],
    issued: Option<&IssuedBody>,
) -> Markup {
    html! {
    section aria-labelledby="tokens-h" {
        h2 #tokens-h { (lang.t("令牌", "Tokens")) }
        table {
            thead { tr { (th("ID")) (th(lang.t("执行人", "Actor"))) (th(lang.t("角色", "Roles"))) (th(lang.t("签发", "Issued"))) (th(lang.t("到期", "Expires"))) (th(lang.t("状态", "State"))) } }
            tbody {
                @for t in tokens {
                    tr { td { code { (t.id) } } td { (t.actor) } td { (t.roles.join(", ")) } td { (when(t.issued_at)) }
                         td { @if let Some(at) = t.expires_at { (when(at)) } @else { "—" } }
                         td { @if t.revoked_at.is_some() { (lang.t("已撤销", "revoked")) } @else {
                             form.inline method="post" action={ "/access/tokens/" (layout::encode(&t.id)) "/revoke" } {
                                 input type="hidden" name="csrf" value=(csrf);
                                 button type="submit" aria-label={ (lang.t("撤销令牌 ", "Revoke token ")) (t.id) } { (lang.t("撤销", "Revoke")) }
                             }
                         } } }
                }
            }
        }
        @if let Some(issued) = issued {
            p.ok role="status" data-testid="issued" {
                (lang.t("新令牌（只显示这一次，请转交本人）：", "The new token (shown this once; hand it to its holder): "))
                code { (issued.token) }
            }
        }
        form.filters method="post" action="/access/tokens" aria-label=(lang.t("签发令牌", "Issue a token")) {
            input type="hidden" name="csrf" value=(csrf);
            label { (lang.t("执行人", "Actor")) " " input type="text" name="actor" required; }
            label { (lang.t("角色（逗号分隔）", "Roles (comma-separated)")) " " input type="text" name="roles" required; }
            label { (lang.t("到期（可选，RFC 3339）", "Expires (optional, RFC 3339)")) " " input type="text" name="expires_at"; }
            button type="submit" { (lang.t("签发", "Issue")) }
        }
    }
    }
}

/// The issue form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct IssueForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    roles: String,
    #[serde(default)]
    expires_at: String,
}

/// `POST /access/tokens`: issues a token through the API's own issue, and
/// shows it once.
pub(crate) async fn issue(
    State(state): State<Shared>,
    viewer: Viewer,
    Form(form): Form<IssueForm>,
) -> Page {
    let user = viewer.check_csrf(&form.csrf)?.clone();
    let request = IssueRequest {
        actor: form.actor.trim().to_owned(),
        roles: form
            .roles
            .split(',')
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .collect(),
        expires_at: Some(form.expires_at.trim().to_owned()).filter(|e| !e.is_empty()),
    };
    let issued = admin::issue_token(&state, &user.caller(), request)
        .await
        .map_err(|p| Failure::problem(viewer.lang, p))?;
    let mut page = render(&state, &viewer, Some(issued)).await?;
    // The token is shown once: no cache may keep the page.
    if let Ok(value) = "no-store".parse() {
        page.headers_mut()
            .insert(axum::http::header::CACHE_CONTROL, value);
    }
    *page.status_mut() = StatusCode::CREATED;
    Ok(page)
}

/// The revoke form's field.
#[derive(Debug, Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /access/tokens/{id}/revoke`: the API's revoke.
pub(crate) async fn revoke(
    State(state): State<Shared>,
    viewer: Viewer,
    P(id): P<String>,
    Form(form): Form<RevokeForm>,
) -> Page {
    let user = viewer.check_csrf(&form.csrf)?.clone();
    // The revoked record is the API's answer; the page lists it anew.
    let _revoked = admin::revoke(State(state), user.caller(), P(id))
        .await
        .map_err(|p| Failure::problem(viewer.lang, p))?;
    Ok(Redirect::to("/access").into_response())
}

/// The grant form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct GrantForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    change: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    on: String,
}

/// `POST /access/grants`: grants or revokes a role through the API's own
/// change, recorded in the access chain.
pub(crate) async fn change(
    State(state): State<Shared>,
    viewer: Viewer,
    Form(form): Form<GrantForm>,
) -> Page {
    let user = viewer.check_csrf(&form.csrf)?.clone();
    let request = GrantRequest {
        actor: form.actor.trim().to_owned(),
        role: form.role.trim().to_owned(),
        on: Some(form.on.trim().to_owned()).filter(|o| !o.is_empty()),
    };
    let grant = match form.change.as_str() {
        "grant" => true,
        "revoke" => false,
        _ => {
            return Err(
                viewer.failure(StatusCode::BAD_REQUEST, "the form must say grant or revoke")
            );
        }
    };
    grants::change(&state, &user.caller(), request, grant)
        .await
        .map_err(|p| Failure::problem(viewer.lang, p))?;
    Ok(Redirect::to("/access").into_response())
}
