//! The campaign's three workflows, embedded from `workflows/` so that a
//! service deploys exactly the files the repository documents and tests.

use strive_store::{Actor, DefinitionInfo, Engine};

use crate::error::CampaignError;

/// The bureau's campaign: deploys to organisations, counts honours.
pub const BUREAU: &str = "bureau-campaign";
/// One grassroots organisation's campaign; a child of the bureau's.
pub const ORGANISATION: &str = "org-campaign";
/// One party member's pledge; a child of their organisation's campaign.
pub const MEMBER: &str = "member-pledge";

/// The definitions as `(file name, JSON text)`, children first.
pub const DEFINITIONS: [(&str, &str); 3] = [
    (
        "member-pledge.json",
        include_str!("../../../workflows/member-pledge.json"),
    ),
    (
        "org-campaign.json",
        include_str!("../../../workflows/org-campaign.json"),
    ),
    (
        "bureau-campaign.json",
        include_str!("../../../workflows/bureau-campaign.json"),
    ),
];

/// Deploys the three campaign workflows in one atomic write. Deploying the
/// same content again writes nothing and returns the existing versions
/// (`unchanged`).
pub fn deploy_workflows(
    engine: &Engine,
    admin: &Actor,
) -> Result<Vec<DefinitionInfo>, CampaignError> {
    let files: Vec<(Option<&str>, &str)> = DEFINITIONS
        .iter()
        .map(|(name, text)| (Some(*name), *text))
        .collect();
    Ok(engine.deploy_all(&files, admin)?)
}
