//! Why a command failed, ready to print: a stable kind for tools, a
//! message that says what to do, details for `--format json`, and the exit
//! code (1 refused or failed, 2 usage). Every library error converts here.

use std::process::ExitCode;

use serde_json::{Value, json};
use strive_store::{CommandError, DeployError, OpenError, StorageError};

/// What a command returns: its exit code, or why it failed.
pub type Outcome = Result<ExitCode, Failure>;

/// Why a command failed, ready to print.
#[derive(Debug)]
pub struct Failure {
    /// A stable, snake-case kind for tools.
    pub kind: &'static str,
    /// What happened and what to do.
    pub message: String,
    /// Structured details for `--format json`.
    pub details: Option<Value>,
    /// Whether to print JSON.
    pub json: bool,
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn new(kind: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
            details: None,
            json: false,
            code: 1,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            ..Failure::new("usage", message)
        }
    }

    /// 1 for refusals and failures, 2 for usage errors.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl From<StorageError> for Failure {
    fn from(error: StorageError) -> Failure {
        let kind = match error {
            StorageError::InvalidArgument { .. } => "invalid_argument",
            _ => "storage",
        };
        Failure::new(kind, error.to_string())
    }
}

impl From<OpenError> for Failure {
    fn from(error: OpenError) -> Failure {
        let kind = match error {
            OpenError::Locked { .. } => "locked",
            OpenError::UnsupportedFormat { .. } => "unsupported_format",
            OpenError::NotEmpty { .. } => "not_empty",
            OpenError::NotAStore { .. } => "not_a_store",
            OpenError::Io { .. } => "io",
            OpenError::Url { .. } => "bad_url",
            OpenError::Server { .. } => "server_unreachable",
            OpenError::Schema { .. } => "unsupported_schema",
            OpenError::NoBackend { .. } => "no_backend",
            _ => "open",
        };
        let mut message = error.to_string();
        if kind == "locked" {
            // Issue #11: a running `strive serve` holds its store.
            message.push_str("; if `strive serve` holds it, send the command there with --server URL --token TOKEN");
        }
        Failure::new(kind, message)
    }
}

impl From<DeployError> for Failure {
    fn from(error: DeployError) -> Failure {
        let (kind, details) = match &error {
            DeployError::Invalid { diagnostics } => {
                ("invalid_definition", serde_json::to_value(diagnostics).ok())
            }
            DeployError::NotGranted { missing } => {
                ("not_granted", serde_json::to_value(missing).ok())
            }
            _ => ("invalid_definition", None),
        };
        Failure {
            details,
            ..Failure::new(kind, error.to_string())
        }
    }
}

impl From<CommandError> for Failure {
    fn from(error: CommandError) -> Failure {
        let (kind, details) = match &error {
            CommandError::Rejected { reason, .. } => {
                ("rejected", serde_json::to_value(reason.as_ref()).ok())
            }
            CommandError::ParentRejected { reason, .. } => (
                "parent_rejected",
                serde_json::to_value(reason.as_ref()).ok(),
            ),
            CommandError::UnknownInstance { .. } => ("unknown_instance", None),
            CommandError::UnknownWorkflow { .. } => ("unknown_workflow", None),
            CommandError::InstanceExists { .. } => ("instance_exists", None),
            CommandError::Conflict {
                expected, actual, ..
            } => (
                "conflict",
                Some(json!({"expected": expected, "actual": actual})),
            ),
            CommandError::CommandIdReused { .. } => ("command_id_reused", None),
            CommandError::LimitExceeded { .. } => ("limit_exceeded", None),
            CommandError::InvalidId { .. } => ("invalid_id", None),
            CommandError::ReservedActor { .. } => ("reserved_actor", None),
            CommandError::NotDue { .. } => ("not_due", None),
            CommandError::Confusable { .. } => ("confusable_id", None),
            CommandError::Deadline { .. } => ("deadline", None),
            CommandError::NotGranted { missing } => {
                ("not_granted", serde_json::to_value(missing).ok())
            }
            CommandError::Storage(_) => ("storage", None),
            CommandError::Signature { reason } => (reason.code(), None),
            _ => ("command", None),
        };
        Failure {
            details,
            ..Failure::new(kind, error.to_string())
        }
    }
}
