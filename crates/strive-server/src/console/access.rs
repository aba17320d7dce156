//! Access (admins only): the grants the audit log records and the tokens
//! the server accepts, through the API's own handlers and their admin
//! check.

use axum::extract::State;
use axum::response::IntoResponse;
use maud::html;

use super::layout::{self, th, when};
use super::session::Viewer;
use super::{Failure, Page};
use crate::model::GrantsParams;
use crate::routes::{Q, admin, grants};
use crate::state::Shared;

/// `GET /access`: grants and tokens; refused to callers without `admin`.
pub(crate) async fn page(State(state): State<Shared>, viewer: Viewer) -> Page {
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
        section aria-labelledby="grants-h" {
            h2 #grants-h { (lang.t("角色授予（记录在审计日志中）", "Grants (recorded in the audit log)")) }
            @if held.is_empty() {
                p.none { (lang.t("没有授予记录：服务器按令牌的角色行事。", "No grant is recorded: the server acts on the tokens' roles.")) }
            } @else {
                table {
                    thead { tr { (th(lang.t("执行人", "Actor"))) (th(lang.t("角色", "Role"))) (th(lang.t("范围", "On"))) (th(lang.t("授予人", "By"))) (th(lang.t("时间", "At"))) } }
                    tbody {
                        @for g in &held {
                            tr { td { (g.actor) } td { (g.role) }
                                 td { @if let Some(on) = &g.on { a href={ "/instances/" (layout::encode(on)) } { (on) } } @else { (lang.t("全部", "everywhere")) } }
                                 td { (g.by) } td { (when(g.at)) } }
                        }
                    }
                }
            }
            p.help { (lang.t("授予和撤销用 strive grant / strive revoke 或 POST /v1/grants。", "Grant and revoke with `strive grant` / `strive revoke` or POST /v1/grants.")) }
        }
        section aria-labelledby="tokens-h" {
            h2 #tokens-h { (lang.t("令牌", "Tokens")) }
            table {
                thead { tr { (th("ID")) (th(lang.t("执行人", "Actor"))) (th(lang.t("角色", "Roles"))) (th(lang.t("签发", "Issued"))) (th(lang.t("到期", "Expires"))) (th(lang.t("状态", "State"))) } }
                tbody {
                    @for t in &tokens {
                        tr { td { code { (t.id) } } td { (t.actor) } td { (t.roles.join(", ")) } td { (when(t.issued_at)) }
                             td { @if let Some(at) = t.expires_at { (when(at)) } @else { "—" } }
                             td { @if t.revoked_at.is_some() { (lang.t("已撤销", "revoked")) } @else { (lang.t("有效", "active")) } } }
                    }
                }
            }
        }
    };
    Ok(layout::page(&viewer, lang.t("权限", "Access"), body).into_response())
}
