//! Public commitments as the masses see them: each organisation's published
//! implementation plan and each member's pledge, with where they stand, and
//! nothing the masses do not see (no scores, no evaluators).

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;
use strive_store::{Engine, ListQuery, Snapshot};

use crate::error::CampaignError;
use crate::html::escape;
use crate::render::{ReportFormat, csv_cell};
use crate::report::{Bilingual, stage_label};
use crate::workflows::{MEMBER, ORGANISATION};

/// A published plan or pledge.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PublicPledge {
    /// The organisation.
    pub organisation: String,
    /// Its name.
    pub organisation_name: Option<Bilingual>,
    /// The member, for a pledge; none for the organisation's plan.
    pub member: Option<String>,
    /// The member's name.
    pub name: Option<String>,
    /// The round the text was published for.
    pub round: i64,
    /// The plan or the pledge, as published.
    pub text: String,
    /// Where the organisation or member stands now.
    pub stage: String,
    /// The stage, for people.
    pub stage_label: Bilingual,
}

const PAGE: usize = 500;

/// Every published plan and pledge, organisation by organisation (or of
/// one organisation), each organisation's plan first.
pub fn pledges(
    engine: &Engine,
    organisation: Option<&str>,
) -> Result<Vec<PublicPledge>, CampaignError> {
    let org_definition = engine
        .workflow(ORGANISATION, None)
        .map(|w| w.definition().clone());
    let member_definition = engine
        .workflow(MEMBER, None)
        .map(|w| w.definition().clone());
    let (Some(org_definition), Some(member_definition)) = (org_definition, member_definition)
    else {
        return Err(CampaignError::UnknownWorkflow {
            workflow: ORGANISATION.to_owned(),
            deployed: engine
                .workflows()?
                .into_iter()
                .map(|i| i.workflow)
                .collect(),
        });
    };
    let organisations: Vec<Snapshot> = match organisation {
        Some(id) => match engine.instance(id)? {
            Some(snapshot) if snapshot.instance.workflow == ORGANISATION => vec![snapshot],
            _ => {
                return Err(CampaignError::InvalidOptions {
                    message: format!(
                        "no organisation `{id}`; list them with `strive list --workflow {ORGANISATION}`"
                    ),
                });
            }
        },
        None => all(
            engine,
            ListQuery {
                workflow: Some(ORGANISATION.to_owned()),
                ..ListQuery::default()
            },
        )?,
    };
    let mut out = Vec::new();
    for org in organisations {
        let data = &org.instance.data;
        let org_name = name(data.get("name"));
        let round = data.get("round").and_then(Value::as_i64).unwrap_or(1);
        if let Some(plan) = data
            .get("plan")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            out.push(PublicPledge {
                organisation: org.instance.id.clone(),
                organisation_name: org_name.clone(),
                member: None,
                name: None,
                round,
                text: plan.to_owned(),
                stage: org.instance.stage.clone(),
                stage_label: stage_label(&org_definition, &org.instance.stage),
            });
        }
        let members = all(
            engine,
            ListQuery {
                parent: Some(org.instance.id.clone()),
                workflow: Some(MEMBER.to_owned()),
                ..ListQuery::default()
            },
        )?;
        for member in members {
            let data = &member.instance.data;
            let Some(pledge) = data
                .get("pledge")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
            else {
                continue;
            };
            out.push(PublicPledge {
                organisation: org.instance.id.clone(),
                organisation_name: org_name.clone(),
                member: Some(member.instance.id.clone()),
                name: data.get("name").and_then(Value::as_str).map(str::to_owned),
                round: data.get("round").and_then(Value::as_i64).unwrap_or(1),
                text: pledge.to_owned(),
                stage: member.instance.stage.clone(),
                stage_label: stage_label(&member_definition, &member.instance.stage),
            });
        }
    }
    Ok(out)
}

fn all(engine: &Engine, query: ListQuery) -> Result<Vec<Snapshot>, CampaignError> {
    let mut items = Vec::new();
    let mut after = None;
    loop {
        let page = engine.list(&ListQuery {
            after: after.take(),
            limit: Some(PAGE),
            ..query.clone()
        })?;
        items.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(items),
        }
    }
}

fn name(value: Option<&Value>) -> Option<Bilingual> {
    let names = value?.as_object()?;
    Some(Bilingual::new(
        names.get("zh").and_then(Value::as_str).unwrap_or_default(),
        names.get("en").and_then(Value::as_str).unwrap_or_default(),
    ))
}

/// Renders published pledges in `format`.
pub fn render_pledges(pledges: &[PublicPledge], format: ReportFormat) -> String {
    match format {
        ReportFormat::Json => {
            // Strings and numbers only: serialization cannot fail.
            let mut text = serde_json::to_string_pretty(pledges).unwrap_or_default();
            text.push('\n');
            text
        }
        ReportFormat::Csv => {
            let mut out = String::from("organisation,member,name,round,stage,text\n");
            for p in pledges {
                let round = p.round.to_string();
                let cells = [
                    p.organisation.as_str(),
                    p.member.as_deref().unwrap_or(""),
                    p.name.as_deref().unwrap_or(""),
                    round.as_str(),
                    p.stage.as_str(),
                    p.text.as_str(),
                ];
                let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
                out.push_str(&line.join(","));
                out.push('\n');
            }
            out
        }
        ReportFormat::Text => {
            let mut out = String::from("公开承诺 Public commitments, as published to the masses\n");
            for p in pledges {
                match &p.member {
                    None => {
                        let _ = write!(
                            out,
                            "\n{} {} — {}\n  实施方案 Plan (第{}轮 round {}): {}\n",
                            p.organisation,
                            p.organisation_name
                                .as_ref()
                                .map(Bilingual::both)
                                .unwrap_or_default(),
                            p.stage_label.both(),
                            p.round,
                            p.round,
                            p.text
                        );
                    }
                    Some(member) => {
                        let _ = writeln!(
                            out,
                            "  {member} {} [{}, 第{}轮 round {}]: {}",
                            p.name.as_deref().unwrap_or(""),
                            p.stage_label.zh,
                            p.round,
                            p.round,
                            p.text
                        );
                    }
                }
            }
            out
        }
        ReportFormat::Html => {
            let mut out = String::from(
                "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n<meta charset=\"utf-8\">\n<title>公开承诺 Public commitments</title>\n<style>\
                 body{font-family:\"Noto Sans CJK SC\",\"PingFang SC\",\"Microsoft YaHei\",Arial,sans-serif;max-width:1100px;margin:24px auto;padding:0 24px;color:#1f2d3d}\
                 h1 .en,h2 .en{color:#5b6b7f;font-weight:400;margin-left:8px;font-size:60%}\
                 table{border-collapse:collapse;width:100%;font-size:14px}td,th{border-bottom:1px solid #e3e8ee;padding:6px 8px;text-align:left;vertical-align:top}\
                 th{background:#eef2f7}.plan{background:#fbf7ef}\
                 </style>\n</head>\n<body>\n<h1>公开承诺<span class=\"en\">Public commitments</span></h1>\n",
            );
            let mut open = false;
            let mut current: Option<&str> = None;
            for p in pledges {
                if current != Some(p.organisation.as_str()) {
                    current = Some(p.organisation.as_str());
                    if open {
                        out.push_str("</tbody></table>\n");
                    }
                    let _ = write!(
                        out,
                        "<h2>{} {}<span class=\"en\">{}</span></h2>\n<table><thead><tr><th>党员 Member</th><th>阶段 Stage</th><th>承诺 Pledge</th></tr></thead><tbody>\n",
                        escape(&p.organisation),
                        escape(
                            p.organisation_name
                                .as_ref()
                                .map(|n| n.zh.as_str())
                                .unwrap_or("")
                        ),
                        escape(
                            p.organisation_name
                                .as_ref()
                                .map(|n| n.en.as_str())
                                .unwrap_or("")
                        ),
                    );
                    open = true;
                }
                let who = match &p.member {
                    None => "实施方案 Plan".to_owned(),
                    Some(member) => format!("{member} {}", p.name.as_deref().unwrap_or("")),
                };
                let _ = writeln!(
                    out,
                    "<tr{}><td>{}</td><td>{}</td><td>{}</td></tr>",
                    if p.member.is_none() {
                        " class=\"plan\""
                    } else {
                        ""
                    },
                    escape(&who),
                    escape(&p.stage_label.both()),
                    escape(&p.text)
                );
            }
            if open {
                out.push_str("</tbody></table>\n");
            }
            out.push_str("</body>\n</html>\n");
            out
        }
    }
}
