//! Errors as RFC 9457 problem details (`application/problem+json`), each
//! with the engine's stable code. [`status_of`] is the one table from
//! engine errors to HTTP statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use strive_store::{AccessError, CommandError, DeployError, Rejection, StorageError};
use utoipa::ToSchema;

use crate::tokens::TokenError;

/// The media type of problem details.
pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// A problem (RFC 9457), boxed: every handler's `Result` carries one, and
/// a small error keeps the common `Ok` path small.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem(Box<ProblemDetails>);

impl std::ops::Deref for Problem {
    type Target = ProblemDetails;

    fn deref(&self) -> &ProblemDetails {
        &self.0
    }
}

/// A problem detail (RFC 9457), as sent.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemDetails {
    /// A URI naming the kind of problem: `urn:strive:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened here and what to do.
    pub detail: String,
    /// The stable code tools rely on (the same as the CLI's error kinds).
    pub code: String,
    /// Structured details: a rejection's reason, a definition's
    /// diagnostics, the expected and actual sequence of a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

impl Problem {
    /// A problem with `status`, stable `code` and `detail`.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Problem {
        Problem(Box::new(ProblemDetails {
            kind: format!("urn:strive:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            details: None,
        }))
    }

    /// The same problem with structured details.
    pub fn with_details(mut self, details: Option<Value>) -> Problem {
        self.0.details = details;
        self
    }

    /// What went wrong, as the `detail` member says it.
    #[cfg(test)]
    pub(crate) fn detail(&self) -> &str {
        &self.0.detail
    }

    pub(crate) fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }

    pub(crate) fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub(crate) fn forbidden(role: &str) -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the `{role}` role, which the token does not hold; ask an admin"),
        )
    }

    pub(crate) fn internal(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// An engine error, as one value the table can map.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EngineError<'a> {
    Command(&'a CommandError),
    Deploy(&'a DeployError),
    Storage(&'a StorageError),
    Token(&'a TokenError),
}

/// The HTTP status and stable code of every engine error: the one table.
pub(crate) fn status_of(error: EngineError<'_>) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match error {
        EngineError::Command(error) => match error {
            // Not holding a role the definition asks for is a refusal of
            // the caller, not of the request's content.
            CommandError::Rejected { reason, .. }
                if matches!(
                    reason.as_ref(),
                    Rejection::RoleNotAllowed { .. } | Rejection::LifecycleRoleNotAllowed { .. }
                ) =>
            {
                (S::FORBIDDEN, "rejected")
            }
            // The instance's lifecycle status refuses the command: the
            // request may be right, the instance is not in a state to take
            // it (details.kind says which: suspended, ended,
            // lifecycle_not_allowed).
            CommandError::Rejected { reason, .. }
                if matches!(
                    reason.as_ref(),
                    Rejection::Suspended { .. }
                        | Rejection::Ended { .. }
                        | Rejection::LifecycleNotAllowed { .. }
                ) =>
            {
                (S::CONFLICT, "rejected")
            }
            CommandError::Rejected { .. } => (S::UNPROCESSABLE_ENTITY, "rejected"),
            CommandError::ParentRejected { .. } => (S::UNPROCESSABLE_ENTITY, "parent_rejected"),
            CommandError::UnknownInstance { .. } => (S::NOT_FOUND, "unknown_instance"),
            CommandError::UnknownWorkflow { .. } => (S::NOT_FOUND, "unknown_workflow"),
            CommandError::InstanceExists { .. } => (S::CONFLICT, "instance_exists"),
            CommandError::Conflict { .. } => (S::PRECONDITION_FAILED, "conflict"),
            CommandError::CommandIdReused { .. } => (S::CONFLICT, "command_id_reused"),
            CommandError::LimitExceeded { .. } => (S::BAD_REQUEST, "limit_exceeded"),
            CommandError::InvalidId { .. } => (S::BAD_REQUEST, "invalid_id"),
            CommandError::ReservedActor { .. } => (S::FORBIDDEN, "reserved_actor"),
            CommandError::NotDue { .. } => (S::CONFLICT, "not_due"),
            CommandError::Confusable { .. } => (S::CONFLICT, "confusable_id"),
            // The definition cannot give the stage it enters a deadline
            // from this data at this time: the request's content is wrong.
            CommandError::Deadline { .. } => (S::UNPROCESSABLE_ENTITY, "deadline"),
            CommandError::NotGranted { .. } => (S::FORBIDDEN, "not_granted"),
            CommandError::Access { reason } => match reason {
                AccessError::NotAdmin { .. } => (S::FORBIDDEN, "not_admin"),
                AccessError::AlreadyGranted { .. } => (S::CONFLICT, "already_granted"),
                AccessError::NotGranted { .. } => (S::NOT_FOUND, "no_such_grant"),
                AccessError::LastAdmin { .. } => (S::CONFLICT, "last_admin"),
                AccessError::Reserved { .. } => (S::FORBIDDEN, "reserved_actor"),
                AccessError::ReservedKey { .. } => (S::FORBIDDEN, "reserved_actor"),
                AccessError::KeyKnown { .. } => (S::CONFLICT, "key_known"),
                AccessError::KeyNotHeld { .. } => (S::NOT_FOUND, "no_such_key"),
                AccessError::BadKey { .. } => (S::BAD_REQUEST, "bad_key"),
                _ => (S::FORBIDDEN, "access_refused"),
            },
            // A malformed signature is a wrong request; any other refusal
            // is the actor's key not vouching for this command.
            CommandError::Signature { reason } => match reason {
                strive_core::SignatureError::Malformed { .. } => (S::BAD_REQUEST, reason.code()),
                _ => (S::FORBIDDEN, reason.code()),
            },
            CommandError::Storage(error) => status_of(EngineError::Storage(error)),
            CommandError::Migration { .. } => (S::UNPROCESSABLE_ENTITY, "migration_refused"),
            _ => (S::INTERNAL_SERVER_ERROR, "command"),
        },
        EngineError::Deploy(error) => match error {
            DeployError::Invalid { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_definition"),
            DeployError::Compile { .. } => (S::UNPROCESSABLE_ENTITY, "invalid_definition"),
            DeployError::Storage(error) => status_of(EngineError::Storage(error)),
            DeployError::NotGranted { .. } => (S::FORBIDDEN, "not_granted"),
            _ => (S::INTERNAL_SERVER_ERROR, "deploy"),
        },
        EngineError::Storage(error) => match error {
            StorageError::Backend { .. } => (S::SERVICE_UNAVAILABLE, "storage"),
            StorageError::Poisoned { .. } => (S::SERVICE_UNAVAILABLE, "storage_poisoned"),
            StorageError::Closed => (S::SERVICE_UNAVAILABLE, "closed"),
            StorageError::Corrupt { .. } => (S::INTERNAL_SERVER_ERROR, "corrupt"),
            // A caller's argument outside the log: the request is wrong,
            // not the store.
            StorageError::InvalidArgument { .. } => (S::BAD_REQUEST, "invalid_argument"),
            _ => (S::INTERNAL_SERVER_ERROR, "storage"),
        },
        EngineError::Token(error) => match error {
            TokenError::Unknown { .. } => (S::NOT_FOUND, "unknown_token"),
            TokenError::Invalid { .. } => (S::BAD_REQUEST, "invalid_token_request"),
            TokenError::Io { .. } => (S::SERVICE_UNAVAILABLE, "token_file"),
            TokenError::Corrupt { .. } => (S::INTERNAL_SERVER_ERROR, "token_file"),
        },
    }
}

fn details(error: EngineError<'_>) -> Option<Value> {
    match error {
        EngineError::Command(error) => match error {
            CommandError::Rejected { reason, .. } | CommandError::ParentRejected { reason, .. } => {
                serde_json::to_value(reason.as_ref()).ok()
            }
            CommandError::Conflict {
                expected, actual, ..
            } => Some(serde_json::json!({"expected": expected, "actual": actual})),
            CommandError::NotGranted { missing } => serde_json::to_value(missing).ok(),
            _ => None,
        },
        EngineError::Deploy(DeployError::NotGranted { missing }) => {
            serde_json::to_value(missing).ok()
        }
        EngineError::Deploy(DeployError::Invalid { diagnostics }) => {
            serde_json::to_value(diagnostics).ok()
        }
        _ => None,
    }
}

fn problem(error: EngineError<'_>, detail: String) -> Problem {
    let (status, code) = status_of(error);
    Problem::new(status, code, detail).with_details(details(error))
}

impl From<CommandError> for Problem {
    fn from(error: CommandError) -> Problem {
        problem(EngineError::Command(&error), error.to_string())
    }
}

impl From<DeployError> for Problem {
    fn from(error: DeployError) -> Problem {
        problem(EngineError::Deploy(&error), error.to_string())
    }
}

impl From<StorageError> for Problem {
    fn from(error: StorageError) -> Problem {
        problem(EngineError::Storage(&error), error.to_string())
    }
}

impl From<TokenError> for Problem {
    fn from(error: TokenError) -> Problem {
        problem(EngineError::Token(&error), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strive_core::{Diagnostic, SignatureError};

    fn reject(reason: Rejection) -> CommandError {
        CommandError::Rejected {
            instance: "i".to_owned(),
            event: "e".to_owned(),
            reason: Box::new(reason),
        }
    }

    fn grant() -> strive_core::Grant {
        strive_core::Grant::everywhere("li", "admin")
    }

    fn access(reason: AccessError) -> CommandError {
        CommandError::Access { reason }
    }

    fn key() -> strive_core::ActorKey {
        strive_core::ActorKey {
            actor: "li".to_owned(),
            vkey: "li+00000000+AA".to_owned(),
        }
    }

    fn li() -> String {
        "li".to_owned()
    }

    fn signature(reason: SignatureError) -> CommandError {
        CommandError::Signature { reason }
    }

    /// Every variant of every engine error family, with the status it must
    /// get: a new variant shows up here as a failing `_` arm.
    #[test]
    fn every_engine_error_has_its_status() {
        let backend = StorageError::Backend {
            message: "disk".to_owned(),
        };
        let commands = [
            (
                reject(Rejection::RoleNotAllowed {
                    event: "e".to_owned(),
                    roles: vec![],
                    allowed: vec![],
                }),
                403,
            ),
            (
                reject(Rejection::Finished {
                    stage: "s".to_owned(),
                }),
                422,
            ),
            (
                CommandError::ParentRejected {
                    parent: "p".to_owned(),
                    event: "e".to_owned(),
                    reason: Box::new(Rejection::Finished {
                        stage: "s".to_owned(),
                    }),
                },
                422,
            ),
            (
                CommandError::UnknownInstance {
                    instance: "i".to_owned(),
                },
                404,
            ),
            (
                CommandError::UnknownWorkflow {
                    workflow: "w".to_owned(),
                },
                404,
            ),
            (
                CommandError::InstanceExists {
                    instance: "i".to_owned(),
                },
                409,
            ),
            (
                CommandError::Conflict {
                    instance: "i".to_owned(),
                    expected: 1,
                    actual: 2,
                },
                412,
            ),
            (
                CommandError::CommandIdReused {
                    command_id: "c".to_owned(),
                },
                409,
            ),
            (
                CommandError::LimitExceeded {
                    what: "w",
                    actual: 2,
                    limit: 1,
                },
                400,
            ),
            (
                CommandError::InvalidId {
                    id: "".to_owned(),
                    reason: "r",
                },
                400,
            ),
            (
                CommandError::ReservedActor {
                    actor: "system".to_owned(),
                },
                403,
            ),
            (
                CommandError::Confusable {
                    instance: "a".to_owned(),
                    existing: "b".to_owned(),
                },
                409,
            ),
            (
                CommandError::NotDue {
                    instance: "i".to_owned(),
                    due: jiff::Timestamp::UNIX_EPOCH,
                    now: jiff::Timestamp::UNIX_EPOCH,
                },
                409,
            ),
            (
                CommandError::Deadline {
                    instance: "i".to_owned(),
                    reason: strive_core::DeadlineError {
                        stage: "s".to_owned(),
                        reason: "r",
                    },
                },
                422,
            ),
            (
                CommandError::NotGranted {
                    missing: strive_core::Grant::on("li", "chief", "org-1"),
                },
                403,
            ),
            (
                access(AccessError::NotAdmin {
                    actor: "eve".to_owned(),
                }),
                403,
            ),
            (access(AccessError::AlreadyGranted { grant: grant() }), 409),
            (access(AccessError::NotGranted { grant: grant() }), 404),
            (access(AccessError::LastAdmin { grant: grant() }), 409),
            (access(AccessError::Reserved { grant: grant() }), 403),
            (access(AccessError::ReservedKey { key: key() }), 403),
            (
                access(AccessError::BadKey {
                    key: key(),
                    message: "m".to_owned(),
                }),
                400,
            ),
            (access(AccessError::KeyKnown { key: key() }), 409),
            (access(AccessError::KeyNotHeld { key: key() }), 404),
            (signature(SignatureError::Required { actor: li() }), 403),
            (
                signature(SignatureError::UnknownKey {
                    actor: li(),
                    key: "k".to_owned(),
                }),
                403,
            ),
            (
                signature(SignatureError::RetiredKey {
                    actor: li(),
                    key: "k".to_owned(),
                }),
                403,
            ),
            (
                signature(SignatureError::BadSignature {
                    actor: li(),
                    key: "k".to_owned(),
                }),
                403,
            ),
            (
                signature(SignatureError::Malformed {
                    message: "m".to_owned(),
                }),
                400,
            ),
            (
                signature(SignatureError::Stale {
                    signed: jiff::Timestamp::UNIX_EPOCH,
                    at: jiff::Timestamp::UNIX_EPOCH,
                }),
                403,
            ),
            (CommandError::Storage(backend.clone()), 503),
        ];
        for (error, status) in commands {
            let problem = Problem::from(error.clone());
            assert_eq!(problem.status, status, "{error:?}");
            assert_eq!(problem.kind, format!("urn:strive:problem:{}", problem.code));
        }
        let deploys = [
            (
                DeployError::Invalid {
                    diagnostics: Vec::<Diagnostic>::new(),
                },
                422,
            ),
            (
                DeployError::Compile {
                    workflow: "w".to_owned(),
                    message: "m".to_owned(),
                },
                422,
            ),
            (DeployError::Storage(StorageError::Closed), 503),
            (DeployError::NotGranted { missing: grant() }, 403),
        ];
        for (error, status) in deploys {
            assert_eq!(Problem::from(error.clone()).status, status, "{error:?}");
        }
        let storage = [
            (backend, 503),
            (
                StorageError::Poisoned {
                    cause: "c".to_owned(),
                },
                503,
            ),
            (StorageError::Closed, 503),
            (
                StorageError::Corrupt {
                    key: "k".to_owned(),
                    message: "m".to_owned(),
                },
                500,
            ),
            (
                StorageError::InvalidArgument {
                    argument: "tree size",
                    message: "m".to_owned(),
                },
                400,
            ),
        ];
        for (error, status) in storage {
            assert_eq!(Problem::from(error.clone()).status, status, "{error:?}");
        }
        let tokens = [
            (TokenError::Unknown { id: "x".to_owned() }, 404),
            (
                TokenError::Invalid {
                    reason: "r".to_owned(),
                },
                400,
            ),
            (
                TokenError::Io {
                    path: "p".into(),
                    message: "m".to_owned(),
                },
                503,
            ),
        ];
        for (error, status) in tokens {
            assert_eq!(Problem::from(error.clone()).status, status, "{error:?}");
        }
    }

    #[test]
    fn a_conflict_carries_both_sequences() {
        let problem = Problem::from(CommandError::Conflict {
            instance: "i".to_owned(),
            expected: 1,
            actual: 2,
        });
        assert_eq!(problem.code, "conflict");
        assert_eq!(
            problem.details,
            Some(serde_json::json!({"expected": 1, "actual": 2}))
        );
    }
}
