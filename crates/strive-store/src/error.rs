//! Errors, one enum per family of operations, and an umbrella [`Error`].

use std::fmt;
use std::path::PathBuf;

use strive_core::{Diagnostic, Rejection};

/// The storage layer failed. The engine refuses writes after a failed write
/// or flush until it is reopened ([`StorageError::Poisoned`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StorageError {
    /// The backend reported an I/O or internal error.
    Backend {
        /// What the backend said.
        message: String,
    },
    /// Stored bytes could not be decoded: the store is damaged or was
    /// written by something else.
    Corrupt {
        /// The key whose value is bad, printed readably.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// An earlier write or flush failed, so the engine no longer knows what
    /// is durable and refuses further writes.
    Poisoned {
        /// The failure that poisoned the engine.
        cause: String,
    },
    /// The engine was shut down.
    Closed,
    /// A caller's argument is outside what the store holds (a proof asked
    /// for a tree larger than the log, say): the request is wrong, the
    /// store is fine.
    InvalidArgument {
        /// The argument, as the caller named it.
        argument: &'static str,
        /// What is wrong with it and what would do.
        message: String,
    },
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Backend { message } => {
                write!(f, "storage error: {}", readable(message))
            }
            StorageError::Corrupt { key, message } => write!(
                f,
                "the store is damaged at key {key}: {message}; run `strive verify` and restore from a backup"
            ),
            StorageError::Poisoned { cause } => write!(
                f,
                "the engine refuses writes after a failed write ({}); close and reopen the database",
                readable(cause)
            ),
            StorageError::Closed => f.write_str("the engine is shut down; open it again"),
            StorageError::InvalidArgument { argument, message } => {
                write!(f, "invalid {argument}: {message}")
            }
        }
    }
}

impl std::error::Error for StorageError {}

/// A backend's message without its internals, with what to do added where
/// the cause is known (issue #17): sled appends a debug-printed backtrace
/// to a corruption, and says nothing to do on a full disk.
fn readable(message: &str) -> String {
    let message = match message.find(" backtrace ") {
        Some(cut) => &message[..cut],
        None => message,
    };
    let advice = if message.contains("No space left") || message.contains("os error 28") {
        "; the disk is full: free space and retry"
    } else if message.contains("Read corrupted data") {
        "; the store is damaged: run `strive verify`, and restore from a backup or an exported bundle"
    } else if message.contains("Read-only file system") || message.contains("os error 30") {
        "; the store is on read-only media: reading commands work on it, writing ones need a writable copy"
    } else if message.contains("Permission denied") || message.contains("os error 13") {
        "; permission denied: run as a user who may write the store"
    } else {
        ""
    };
    format!("{message}{advice}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_messages_lose_internals_and_gain_advice() {
        let corrupt = StorageError::Backend {
            message: "Read corrupted data at file offset Some(77) backtrace Backtrace { .. }"
                .to_owned(),
        };
        let text = corrupt.to_string();
        assert!(!text.contains("Backtrace"), "{text}");
        assert!(text.contains("restore from a backup"), "{text}");
        let full = StorageError::Poisoned {
            cause: "IO error: No space left on device (os error 28)".to_owned(),
        };
        assert!(full.to_string().contains("free space and retry"));
    }
}

/// Opening a database failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process has the database open.
    Locked {
        /// The database.
        path: PathBuf,
    },
    /// The database was written in a format this version does not know.
    UnsupportedFormat {
        /// The database.
        path: PathBuf,
        /// The format found.
        found: u32,
        /// The format this version reads and writes.
        supported: u32,
    },
    /// A deployed definition no longer compiles.
    Definition {
        /// The workflow.
        workflow: String,
        /// The version.
        version: u32,
        /// Why.
        message: String,
    },
    /// A new store was to be made where a store or other data already is.
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// The storage layer failed.
    Storage(StorageError),
    /// The path is not a strive store (and the command does not create one
    /// there): nothing is there, or something else is (issue #17).
    NotAStore {
        /// The path given.
        path: PathBuf,
        /// What is there instead.
        found: &'static str,
    },
    /// A new store was asked for with a number of partitions out of range.
    Partitions {
        /// The number asked for.
        requested: u32,
        /// The most allowed ([`crate::MAX_PARTITIONS`]).
        limit: u32,
    },
    /// The file system refused an operation on a path.
    Io {
        /// The path.
        path: PathBuf,
        /// What failed, in words (see [`describe_io`]).
        message: String,
    },
    /// A database URL that cannot be read (issue #15).
    Url {
        /// The URL, without its password.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The database server could not be reached, or refused (issue #15).
    Server {
        /// The URL, without its password.
        url: String,
        /// What the server or the connection said.
        message: String,
    },
    /// The database's schema was migrated by a newer strive (issue #15).
    Schema {
        /// The URL, without its password.
        url: String,
        /// The newest schema version found.
        found: i32,
        /// The newest version this strive knows.
        supported: i32,
    },
    /// A database URL was given to a strive built without that backend.
    NoBackend {
        /// The URL, without its password.
        url: String,
        /// The cargo feature that adds the backend.
        feature: &'static str,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Locked { path } => write!(
                f,
                "the database {} is in use by another process; stop it or use another --db",
                path.display()
            ),
            OpenError::UnsupportedFormat {
                path,
                found,
                supported,
            } if *found == 1 && *supported == 2 => write!(
                f,
                "the database {} has store format 1, which this strive (format {supported}) no longer writes; \
                 convert it with `strive upgrade {} NEW-DIR` (it verifies every event on the way) and use NEW-DIR",
                path.display(),
                path.display()
            ),
            OpenError::UnsupportedFormat {
                path,
                found,
                supported,
            } => write!(
                f,
                "the database {} has format version {found}, but this strive reads version {supported}; \
                 use a strive release that matches the database",
                path.display()
            ),
            OpenError::Definition {
                workflow,
                version,
                message,
            } => write!(
                f,
                "stored definition {workflow} v{version} does not compile: {message}"
            ),
            OpenError::NotEmpty { path } => write!(
                f,
                "{} already holds a store; give a new or empty directory for the new one",
                path.display()
            ),
            OpenError::Storage(error) => error.fmt(f),
            OpenError::NotAStore { path, found } => write!(
                f,
                "{} is not a strive store ({found}); check --db or STRIVE_DB, or create a store \
                 with `strive init --db {}` (deploy, start, fire, tick and demo create one in a \
                 missing or empty directory)",
                path.display(),
                path.display()
            ),
            OpenError::Partitions { requested, limit } => write!(
                f,
                "a store has 1 to {limit} partitions, not {requested}; choose a number in that \
                 range (about one per core the writers may use)"
            ),
            OpenError::Io { path, message } => write!(f, "{}: {message}", path.display()),
            OpenError::Url { url, message } => write!(
                f,
                "{url} is not a database URL strive can use ({message}); write it as \
                 postgres://USER@HOST:PORT/DATABASE"
            ),
            OpenError::Server { url, message } => write!(
                f,
                "cannot open the PostgreSQL database {url}: {message}; check that the server \
                 runs and accepts connections (on Debian: `pg_ctlcluster 15 main start`), that \
                 the database exists and that the user may connect to it"
            ),
            OpenError::Schema {
                url,
                found,
                supported,
            } => write!(
                f,
                "the database {url} has strive schema version {found}, but this strive knows \
                 versions up to {supported}; use a strive release that matches the database"
            ),
            OpenError::NoBackend { url, feature } => write!(
                f,
                "{url} names a database, but this strive was built without the `{feature}` \
                 feature; build it with `--features {feature}`, or give a directory"
            ),
        }
    }
}

/// An I/O error in words that say what to do, never the debug form of the
/// error (issue #17).
pub fn describe_io(error: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match error.kind() {
        K::NotFound => "no such file or directory".to_owned(),
        K::PermissionDenied => {
            "permission denied; run as a user who may access it, or work on a copy".to_owned()
        }
        K::ReadOnlyFilesystem => {
            "the file system is read-only; work on a copy on writable storage".to_owned()
        }
        K::StorageFull | K::QuotaExceeded => {
            "the disk is full (or the quota is used up); free space and retry".to_owned()
        }
        K::NotADirectory => "a part of the path is a file, not a directory".to_owned(),
        K::IsADirectory => "it is a directory, not a file".to_owned(),
        K::AlreadyExists => "it exists already".to_owned(),
        _ => error.to_string(),
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Storage(error) => Some(error),
            _ => None,
        }
    }
}

impl From<StorageError> for OpenError {
    fn from(error: StorageError) -> OpenError {
        OpenError::Storage(error)
    }
}

/// Deploying a definition failed. Nothing was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeployError {
    /// The definition has errors. Every diagnostic, warnings included, is
    /// listed with its file, line and JSON pointer.
    Invalid {
        /// The diagnostics.
        diagnostics: Vec<Diagnostic>,
    },
    /// The definition passed validation but cannot run.
    Compile {
        /// The workflow.
        workflow: String,
        /// Why.
        message: String,
    },
    /// The storage layer failed.
    Storage(StorageError),
    /// The engine enforces grants, and the deploying actor does not hold
    /// a global grant of a role it claims (issue #11). Nothing was stored.
    NotGranted {
        /// The grant that is missing.
        missing: strive_core::Grant,
    },
}

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployError::Invalid { diagnostics } => {
                let errors = diagnostics.iter().filter(|d| d.is_error()).count();
                write!(
                    f,
                    "the definition has {errors} error(s); fix them and deploy again"
                )?;
                for diagnostic in diagnostics {
                    write!(f, "\n  {diagnostic}")?;
                }
                Ok(())
            }
            DeployError::Compile { workflow, message } => {
                write!(f, "workflow {workflow} cannot run: {message}")
            }
            DeployError::Storage(error) => error.fmt(f),
            DeployError::NotGranted { missing } => not_granted(f, missing),
        }
    }
}

impl std::error::Error for DeployError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DeployError::Storage(error) => Some(error),
            _ => None,
        }
    }
}

impl From<StorageError> for DeployError {
    fn from(error: StorageError) -> DeployError {
        DeployError::Storage(error)
    }
}

/// A command (start or fire) was refused. A refused command changes nothing
/// in the store.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CommandError {
    /// The workflow definition refused the command.
    Rejected {
        /// The instance.
        instance: String,
        /// The event (`start` for starts).
        event: String,
        /// Why (boxed: rejections are rare, and a small error keeps the
        /// `Result` of every command small).
        reason: Box<Rejection>,
    },
    /// No instance has this id.
    UnknownInstance {
        /// The id.
        instance: String,
    },
    /// No workflow with this id is deployed.
    UnknownWorkflow {
        /// The id.
        workflow: String,
    },
    /// An instance with this id exists already.
    InstanceExists {
        /// The id.
        instance: String,
    },
    /// The instance is not at the expected sequence number: someone else
    /// changed it first. Read it again and decide anew.
    Conflict {
        /// The instance.
        instance: String,
        /// The sequence number the caller expected.
        expected: u64,
        /// The instance's actual sequence number.
        actual: u64,
    },
    /// The command id was used before for a different command.
    CommandIdReused {
        /// The command id.
        command_id: String,
    },
    /// An input is over a limit.
    LimitExceeded {
        /// What is too large.
        what: &'static str,
        /// Its size.
        actual: usize,
        /// The limit.
        limit: usize,
    },
    /// An id is not acceptable.
    InvalidId {
        /// The id.
        id: String,
        /// Why.
        reason: &'static str,
    },
    /// The parent instance refused the event a child's transition notified
    /// it of, so the child's transition was refused too.
    ParentRejected {
        /// The parent.
        parent: String,
        /// The parent's event.
        event: String,
        /// Why the parent refused it.
        reason: Box<Rejection>,
    },
    /// The storage layer failed; the command may not have been recorded.
    Storage(StorageError),
    /// A caller acted as the engine's own `system` actor or role, which only
    /// the engine uses, for deadlines, notifications and spawns (issue #17).
    ReservedActor {
        /// The actor id given.
        actor: String,
    },
    /// A deadline was asked to fire before it is due by the engine's clock
    /// (issue #17). Nothing was written; the deadline stays.
    NotDue {
        /// The instance.
        instance: String,
        /// When it is due.
        due: jiff::Timestamp,
        /// The engine's clock.
        now: jiff::Timestamp,
    },
    /// A new instance's id looks like an existing instance's of the same
    /// workflow (the same Unicode confusable skeleton, UTS #39): `branch-7`
    /// with a Cyrillic `а`, say (issue #17). Nothing was written.
    Confusable {
        /// The id given.
        instance: String,
        /// The existing instance it can be mistaken for.
        existing: String,
    },
    /// The deadline of the stage the command would enter cannot be
    /// computed at run time: its duration carries it past the end of the
    /// supported range of times, or its `at_data` variable holds no time
    /// (issue #17). Nothing was written. A missing (or null) `at_data`
    /// time is no error: the stage then has no deadline.
    Deadline {
        /// The instance.
        instance: String,
        /// Why the deadline cannot be computed.
        reason: strive_core::DeadlineError,
    },
    /// The engine enforces grants, and the actor does not hold a grant of
    /// a role it claims, globally or on the instance or one of its
    /// ancestors (issue #11). Nothing was written.
    NotGranted {
        /// The grant that is missing: on the instance acted on, or global
        /// for a subject that is not an instance.
        missing: strive_core::Grant,
    },
    /// A grant or revocation was refused by the access rules (issue #11).
    /// Nothing was written.
    Access {
        /// Why.
        reason: strive_core::AccessError,
    },
    /// A migration plan was refused, for the plan or for one instance it
    /// selects. Nothing was written: a plan migrates all or none.
    Migration {
        /// Why.
        reason: strive_core::PlanError,
    },
    /// The command's signature was refused, or it lacks one it needs
    /// (issue #11; `reason.code()` is the stable code). Nothing was
    /// written.
    Signature {
        /// Why.
        reason: strive_core::SignatureError,
    },
}

impl CommandError {
    /// The workflow's reason, when the definition refused the command (for
    /// this instance or, through a notification, for its parent).
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            CommandError::Rejected { reason, .. } | CommandError::ParentRejected { reason, .. } => {
                Some(reason)
            }
            _ => None,
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Rejected {
                instance,
                event,
                reason,
            } => write!(f, "{instance}: `{event}` rejected: {reason}"),
            CommandError::UnknownInstance { instance } => {
                write!(
                    f,
                    "no instance `{instance}`; check the id with `strive list`"
                )
            }
            CommandError::UnknownWorkflow { workflow } => {
                write!(
                    f,
                    "no workflow `{workflow}` is deployed; deploy it with `strive deploy`"
                )
            }
            CommandError::InstanceExists { instance } => {
                write!(
                    f,
                    "an instance `{instance}` exists already; choose another id"
                )
            }
            CommandError::Conflict {
                instance,
                expected,
                actual,
            } => write!(
                f,
                "{instance} is at sequence {actual}, not the expected {expected}: it changed meanwhile; \
                 read it again and retry"
            ),
            CommandError::CommandIdReused { command_id } => write!(
                f,
                "command id `{command_id}` was already used for a different command; use a new id"
            ),
            CommandError::LimitExceeded {
                what,
                actual,
                limit,
            } => write!(f, "{what} is {actual}; the limit is {limit}"),
            CommandError::InvalidId { id, reason } => write!(
                f,
                "invalid id \"{}\": {reason}",
                strive_core::id::escape(id)
            ),
            CommandError::ParentRejected {
                parent,
                event,
                reason,
            } => write!(f, "parent {parent} refused `{event}`: {reason}"),
            CommandError::Storage(error) => error.fmt(f),
            CommandError::ReservedActor { actor } => write!(
                f,
                "actor {:?} acts as `system`, the engine's own actor and role: deadline, \
                 notification and spawn events come only from the engine; act under your own \
                 id and the roles the workflow gives you",
                strive_core::id::escape(actor)
            ),
            CommandError::NotDue { instance, due, now } => write!(
                f,
                "{instance}: its deadline is due at {due}, after the engine's clock ({now}); \
                 it fires when it is due, not earlier"
            ),
            CommandError::Confusable { instance, existing } => write!(
                f,
                "instance id {} can be mistaken for the existing instance {} of the same \
                 workflow (they look alike); choose an id that does not",
                strive_core::id::escape(instance),
                strive_core::id::escape(existing)
            ),
            CommandError::Deadline { instance, reason } => write!(
                f,
                "{}: {reason}; the command would leave it without its deadline, so it is \
                 refused. Give the deadline's variable a time within the supported range, or \
                 deploy a version whose deadline stays within it",
                strive_core::id::escape(instance)
            ),
            CommandError::NotGranted { missing } => not_granted(f, missing),
            CommandError::Access { reason } => reason.fmt(f),
            CommandError::Signature { reason } => reason.fmt(f),
            CommandError::Migration { reason } => write!(
                f,
                "the migration is refused, and no instance moved: {reason}; fix the plan and \
                 try `strive migrate --dry-run` first"
            ),
        }
    }
}

/// The message of a missing grant: which, and the command that records it.
fn not_granted(f: &mut fmt::Formatter<'_>, missing: &strive_core::Grant) -> fmt::Result {
    let actor = strive_core::id::escape(&missing.actor);
    let role = strive_core::id::escape(&missing.role);
    match &missing.on {
        Some(on) => write!(
            f,
            "{actor} acts as `{role}` but holds no grant of it on {on}, its ancestors or \
             everywhere; an admin can grant it: strive grant {actor} {role} --on {on}",
            on = strive_core::id::escape(on)
        ),
        None => write!(
            f,
            "{actor} acts as `{role}` but holds no global grant of it; an admin can grant it: \
             strive grant {actor} {role}"
        ),
    }
}

impl std::error::Error for CommandError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CommandError::Rejected { reason, .. } | CommandError::ParentRejected { reason, .. } => {
                Some(reason.as_ref())
            }
            CommandError::Storage(error) => Some(error),
            // `Deadline` and `Access` print their reason in their own
            // message, so they do not chain it as a source as well.
            _ => None,
        }
    }
}

impl From<StorageError> for CommandError {
    fn from(error: StorageError) -> CommandError {
        CommandError::Storage(error)
    }
}

/// Any error of the engine.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Opening failed.
    Open(OpenError),
    /// Deploying failed.
    Deploy(DeployError),
    /// A command was refused.
    Command(CommandError),
    /// Storage failed.
    Storage(StorageError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open(e) => e.fmt(f),
            Error::Deploy(e) => e.fmt(f),
            Error::Command(e) => e.fmt(f),
            Error::Storage(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Open(e) => Some(e),
            Error::Deploy(e) => Some(e),
            Error::Command(e) => Some(e),
            Error::Storage(e) => Some(e),
        }
    }
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Error {
        Error::Open(e)
    }
}

impl From<DeployError> for Error {
    fn from(e: DeployError) -> Error {
        Error::Deploy(e)
    }
}

impl From<CommandError> for Error {
    fn from(e: CommandError) -> Error {
        Error::Command(e)
    }
}

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Error {
        Error::Storage(e)
    }
}
