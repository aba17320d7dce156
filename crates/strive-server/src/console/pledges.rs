//! The public pledges: every published plan and pledge, as the masses see
//! them (strive-campaign's `pledges`, no scores and no evaluators), with no
//! sign-in.

use axum::extract::State;
use axum::response::IntoResponse;
use maud::html;
use strive_campaign::Bilingual;

use super::layout::{self, Lang, th};
use super::session::Viewer;
use super::{Failure, Page};
use crate::routes::audit::campaign_problem;
use crate::state::{Shared, blocking};

fn pick(lang: Lang, text: &Bilingual) -> &str {
    match lang {
        Lang::Zh => &text.zh,
        Lang::En => &text.en,
    }
}

/// `GET /pledges`: public.
pub(crate) async fn page(State(state): State<Shared>, viewer: Viewer) -> Page {
    let lang = viewer.lang;
    let engine = state.engine.clone();
    let pledges =
        blocking(move || strive_campaign::pledges(&engine, None).map_err(campaign_problem))
            .await
            .map_err(|p| Failure::problem(lang, p))?;
    let body = html! {
        h1 { (lang.t("公开承诺", "Public pledges")) }
        p { (lang.t("各基层党组织公开的创先争优计划和党员承诺，接受群众监督。", "The plans the organisations published and the members' pledges, open to the public.")) }
        @if pledges.is_empty() {
            p.none { (lang.t("还没有公开的承诺。", "Nothing is published yet.")) }
        } @else {
            table.pledges {
                thead { tr { (th(lang.t("组织", "Organisation"))) (th(lang.t("党员", "Member"))) (th(lang.t("轮次", "Round"))) (th(lang.t("承诺", "Pledge"))) (th(lang.t("进展", "Stage"))) } }
                tbody {
                    @for p in &pledges {
                        tr {
                            td { (p.organisation_name.as_ref().map_or(p.organisation.as_str(), |n| pick(lang, n))) }
                            td { @if let Some(name) = &p.name { (name) } @else if p.member.is_some() { "—" } @else { (lang.t("（组织计划）", "(the organisation's plan)")) } }
                            td.num { (p.round) }
                            td { (p.text) }
                            td { (pick(lang, &p.stage_label)) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&viewer, lang.t("公开承诺", "Public pledges"), body).into_response())
}
