//! `strive grant`, `strive revoke` and `strive grants` (issue #11): the
//! access chain from the command line. Glue: the rules are the engine's
//! (`Engine::grant`, `Engine::revoke`, `Engine::grants`). Over HTTP the
//! same is `/v1/grants` (docs/http.md).

use std::process::ExitCode;

use clap::Subcommand;
use strive_core::{ADMIN_ROLE, Grant};
use strive_store::{Actor, CommandError};

use crate::cli::{Cli, TextOrJson, is_json};
use crate::client::Remote;
use crate::failure::Failure;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum GrantCommand {
    /// Grants a role to an actor, everywhere or on one instance and its
    /// descendants; recorded in the audit log's access chain (`@access`).
    Grant {
        #[command(flatten)]
        grant: GrantArgs,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Revokes a grant; recorded in the access chain too.
    Revoke {
        #[command(flatten)]
        grant: GrantArgs,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Lists the grants held now.
    Grants {
        /// Only this actor's.
        #[arg(long)]
        actor: Option<String>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
}

impl GrantCommand {
    /// Whether the command was asked for JSON.
    pub fn json(&self) -> bool {
        match self {
            GrantCommand::Grant { format, .. }
            | GrantCommand::Revoke { format, .. }
            | GrantCommand::Grants { format, .. } => is_json(*format),
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct GrantArgs {
    /// Who holds the role.
    actor: String,
    /// The role.
    role: String,
    /// Only on this instance and its descendants; everywhere when absent.
    #[arg(long)]
    on: Option<String>,
    /// The admin who makes the change (recorded in the audit trail); acts
    /// as `admin`, and must hold a global `admin` grant once anyone does.
    /// `admin` when absent; with --server the token's actor makes it.
    #[arg(long)]
    by: Option<String>,
}

impl GrantArgs {
    fn grant(&self) -> Grant {
        Grant {
            actor: self.actor.clone(),
            role: self.role.clone(),
            on: self.on.clone(),
        }
    }

    fn admin(&self) -> Actor {
        Actor::new(self.by.as_deref().unwrap_or(ADMIN_ROLE), &[ADMIN_ROLE])
    }
}

/// Runs one of the grant commands against the store at `--db`, or with
/// `--server` against the server that holds it.
pub fn run(cli: &Cli, command: &GrantCommand, json: bool) -> Result<ExitCode, Failure> {
    let remote = Remote::from_cli(cli)?;
    match command {
        GrantCommand::Grant { grant, .. } => change(cli, remote.as_ref(), grant, false, json)?,
        GrantCommand::Revoke { grant, .. } => change(cli, remote.as_ref(), grant, true, json)?,
        GrantCommand::Grants { actor, .. } => {
            let grants = match &remote {
                Some(remote) => remote.grants(actor.as_deref())?,
                None => crate::commands::open(&cli.db)?.grants(actor.as_deref())?,
            };
            if json {
                output::json(&grants);
            } else if grants.is_empty() {
                output::line("no grants");
            } else {
                for held in &grants {
                    output::line(format!(
                        "{} (granted by {} at {}, event {})",
                        held.grant,
                        strive_core::id::escape(&held.by),
                        held.at,
                        held.since
                    ));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Records a grant, or with `revoke` its revocation, and prints the event.
fn change(
    cli: &Cli,
    remote: Option<&Remote>,
    args: &GrantArgs,
    revoke: bool,
    json: bool,
) -> Result<(), Failure> {
    let grant = args.grant();
    let outcome = match remote {
        Some(_) if args.by.is_some() => {
            return Err(Failure::usage(
                "--by does not go with --server: the token's actor makes the change",
            ));
        }
        Some(remote) => remote.change_grant(&grant, revoke)?,
        None => {
            let engine = crate::commands::open_for_writing(&cli.db)?;
            if revoke {
                engine.revoke(&grant, &args.admin())
            } else {
                engine.grant(&grant, &args.admin())
            }
            .map_err(failure)?
        }
    };
    if json {
        output::json(&outcome);
    } else {
        output::line(format!(
            "{}: {grant} (@access #{}, event {})",
            if revoke { "revoked" } else { "granted" },
            outcome.seq,
            outcome.gseq
        ));
    }
    Ok(())
}

/// A refused change of grants or keys, with its stable kind.
pub(crate) fn failure(error: CommandError) -> Failure {
    match &error {
        CommandError::Access { reason } => {
            let kind = match reason {
                strive_core::AccessError::NotAdmin { .. } => "not_admin",
                strive_core::AccessError::AlreadyGranted { .. } => "already_granted",
                strive_core::AccessError::NotGranted { .. } => "no_such_grant",
                strive_core::AccessError::LastAdmin { .. } => "last_admin",
                strive_core::AccessError::KeyKnown { .. } => "key_known",
                strive_core::AccessError::KeyNotHeld { .. } => "no_such_key",
                strive_core::AccessError::BadKey { .. } => "bad_key",
                _ => "access_refused",
            };
            Failure::new(kind, error.to_string())
        }
        _ => Failure::from(error),
    }
}
