//! The campaign's errors: one enum, with the context an operator needs.

use std::fmt;

use jiff::Timestamp;
use strive_store::{CommandError, DeployError, StorageError};

/// Something the campaign library could not do.
#[derive(Debug)]
#[non_exhaustive]
pub enum CampaignError {
    /// The campaign's workflows could not be deployed.
    Deploy(DeployError),
    /// A command of the simulated campaign was refused or failed. The demo
    /// plans only commands its workflows accept, so this is a bug in the
    /// plan or in the workflows, or a storage failure.
    Command {
        /// The instance.
        instance: String,
        /// The event (`start` for a start).
        event: String,
        /// The simulated time it was fired at.
        at: Timestamp,
        /// Why it failed.
        source: Box<CommandError>,
    },
    /// A deadline the engine fired during the simulation was refused.
    Deadline {
        /// The instance.
        instance: String,
        /// The deadline's event.
        event: String,
        /// Why it was refused.
        source: Box<CommandError>,
    },
    /// Reading or writing the store failed.
    Storage(StorageError),
    /// The demo's options are out of range.
    InvalidOptions {
        /// What is wrong and what would work.
        message: String,
    },
    /// The demo needs an empty store, and this one holds events.
    NotEmpty {
        /// How many events the store holds.
        events: u64,
    },
    /// The report was asked for a workflow that is not deployed.
    UnknownWorkflow {
        /// The workflow asked for.
        workflow: String,
        /// The workflows that are deployed.
        deployed: Vec<String>,
    },
}

impl fmt::Display for CampaignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CampaignError::Deploy(error) => {
                write!(f, "cannot deploy the campaign's workflows: {error}")
            }
            CampaignError::Command {
                instance,
                event,
                at,
                source,
            } => write!(
                f,
                "the campaign's command `{event}` on {instance} at {at} failed: {source}"
            ),
            CampaignError::Deadline {
                instance,
                event,
                source,
            } => write!(
                f,
                "the deadline event `{event}` of {instance} was refused: {source}"
            ),
            CampaignError::Storage(error) => error.fmt(f),
            CampaignError::InvalidOptions { message } => f.write_str(message),
            CampaignError::NotEmpty { events } => write!(
                f,
                "the demo needs an empty database, and this one holds {events} event(s); \
                 give a new directory with --db, or leave --db out to use a temporary one"
            ),
            CampaignError::UnknownWorkflow { workflow, deployed } => write!(
                f,
                "no workflow `{workflow}` is deployed; deployed: {}",
                if deployed.is_empty() {
                    "none (run `strive deploy` or `strive demo --db DIR` first)".to_owned()
                } else {
                    deployed.join(", ")
                }
            ),
        }
    }
}

impl std::error::Error for CampaignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CampaignError::Deploy(error) => Some(error),
            CampaignError::Command { source, .. } | CampaignError::Deadline { source, .. } => {
                Some(source.as_ref())
            }
            CampaignError::Storage(error) => Some(error),
            _ => None,
        }
    }
}

impl From<StorageError> for CampaignError {
    fn from(error: StorageError) -> CampaignError {
        CampaignError::Storage(error)
    }
}

impl From<DeployError> for CampaignError {
    fn from(error: DeployError) -> CampaignError {
        CampaignError::Deploy(error)
    }
}
