//! strive's embedded engine: workflow instances kept in sled, advanced by
//! the core's transition function, durable once acknowledged, with a
//! hash-chained audit trail.
//!
//! ```
//! use serde_json::json;
//! use strive_store::{Actor, CommandOptions, Engine};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::temporary()?;
//! let admin = Actor::new("admin", &["admin"]);
//! engine.deploy(r#"{
//!   "id": "approval", "title": "Approval",
//!   "roles": [{"id": "author"}, {"id": "chief"}],
//!   "stages": [
//!     {"id": "draft", "kind": "initial"},
//!     {"id": "approved", "kind": "terminal"}
//!   ],
//!   "transitions": [
//!     {"event": "approve", "from": "draft", "to": "approved", "roles": ["chief"]}
//!   ]
//! }"#, &admin)?;
//!
//! let author = Actor::new("li", &["author"]);
//! engine.start("approval", "doc-1", &author, Default::default(), None, CommandOptions::default())?;
//!
//! // The author may not approve: a typed rejection, and nothing is written.
//! let refused = engine.fire("doc-1", "approve", &author, json!(null), CommandOptions::default());
//! assert!(refused.is_err());
//!
//! let chief = Actor::new("wang", &["chief"]);
//! let outcome = engine.fire("doc-1", "approve", &chief, json!(null), CommandOptions {
//!     expected_seq: Some(1),
//!     command_id: Some("approve-doc-1".into()),
//!     ..CommandOptions::default()
//! })?;
//! assert_eq!(outcome.stage, "approved");
//! assert_eq!(engine.history("doc-1")?.len(), 2);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod access;
mod backend;
mod block;
mod convert;
mod engine;
mod error;
#[cfg(feature = "failpoints")]
#[doc(hidden)]
pub mod failpoints;
mod guard;
mod keys;
mod lifecycle;
mod log;
mod migrate;
mod pending;
pub mod probe;
#[cfg(feature = "failpoints")]
#[doc(hidden)]
pub mod raw;
mod records;
mod scan;
#[cfg(feature = "sim")]
pub mod sim;
mod state;
mod stats;
mod url;
mod writer;

pub use access::{GrantInfo, KeyInfo};
#[cfg(feature = "postgres")]
pub use backend::postgres::{
    MIGRATIONS, PostgresBackend, RECONNECT_WAIT, SHARED_PARAMETER, TemporaryDatabase,
};
pub use backend::{Backend, Entry, Hooked, Hooks, SharedHead, SharedLog, SledBackend, Write};
pub use convert::Converted;
pub use engine::{Engine, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH, Subscription, TreeHead};
pub use error::{CommandError, DeployError, Error, OpenError, StorageError, describe_io};
pub use lifecycle::LifecycleRequest;
pub use migrate::{MAX_MIGRATED, PlannedMove};
pub use pending::Pending;
pub use records::{
    Clock, CommandOptions, DeadlineFired, DefinitionInfo, Durability, ListQuery, MAX_PARTITIONS,
    ManualClock, Options, Outcome, PARTITIONS_VAR, Page, STORE_FORMAT, Snapshot, StoredEvent,
    SystemClock,
};
pub use scan::{Blocks, ScannedBlock};
pub use stats::{EngineStats, FLUSH_SECONDS_BOUNDS, GROUP_SIZE_BOUNDS};
pub use strive_core::{
    AccessError, Actor, Event, EventKind, Grant, Instance, MigrationPlan, Operation, PlanError,
    Rejection, Status,
};
pub use url::{TEMPORARY_URL_VAR, is_database_url, location_text};

/// Marks a point where the crash tests can stop the process
/// (`strive_store::failpoints`); compiles to nothing without the
/// `failpoints` feature.
#[cfg(feature = "failpoints")]
#[doc(hidden)]
#[macro_export]
macro_rules! fail_point {
    ($name:literal) => {
        $crate::failpoints::reached($name)
    };
}

/// Marks a point where the crash tests can stop the process; compiles to
/// nothing without the `failpoints` feature, as here.
#[cfg(not(feature = "failpoints"))]
#[doc(hidden)]
#[macro_export]
macro_rules! fail_point {
    ($name:literal) => {};
}
