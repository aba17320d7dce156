//! strive's pure core: the workflow language, its validator, guards, the
//! transition function and the audit model. It does no I/O: time and the
//! state of child instances come in as arguments, so the engine, replay and
//! tests all run the same code.
//!
//! ```
//! use serde_json::{Map, Value, json};
//! use strive_core::{Actor, Catalog, Command, Workflow, check, definition_hash, parse};
//!
//! let text = r#"{
//!   "id": "pledge", "title": {"zh": "承诺", "en": "Pledge"},
//!   "roles": [{"id": "member"}],
//!   "data": [{"id": "text", "type": "string"}],
//!   "stages": [
//!     {"id": "open", "kind": "initial"},
//!     {"id": "published", "kind": "terminal"}
//!   ],
//!   "transitions": [{
//!     "event": "publish", "from": "open", "to": "published", "roles": ["member"],
//!     "payload": [{"id": "text", "type": "string", "required": true, "min_length": 1}],
//!     "effects": [{"op": "set", "var": "text", "value": {"var": "payload.text"}}]
//!   }]
//! }"#;
//!
//! // Admins: diagnostics with codes, lines and JSON pointers.
//! assert!(check(Some("pledge.json"), text, &Catalog::new()).is_empty());
//!
//! // Services (through the engine) and auditors (through replay): the same
//! // pure transition function.
//! let parsed = parse(Some("pledge.json"), text).expect("parses");
//! let hash = definition_hash(&parsed.value);
//! let workflow = Workflow::compile(parsed.definition, hash).expect("compiles");
//! let now = "2026-05-01T08:00:00Z".parse().expect("a time");
//! let instance = workflow.new_instance("m-1", 1, &Map::new(), None, now).expect("starts");
//!
//! let member = Actor::new("m-1", &["member"]);
//! let payload = json!({"text": "带头学习"});
//! let command = Command { event: "publish", actor: &member, payload: &payload, now };
//! let accepted = workflow.fire(&instance, &command, &Value::Null).expect("allowed");
//! let next = workflow.advance(&instance, &accepted, now);
//! assert_eq!(next.stage, "published");
//! assert_eq!(next.data["text"], json!("带头学习"));
//! ```
#![deny(missing_docs)]

pub mod access;
mod audit;
mod definition;
mod diagnostic;
mod fuzz;
mod guard;
pub mod id;
pub mod json;
pub mod keys;
mod lifecycle;
mod load;
mod machine;
mod migrate;
mod render;
mod schema;
pub mod signing;
mod source;
pub mod time;
mod tlog;
mod types;
mod validate;

pub use access::{
    ACCESS_SUBJECT, ADMIN_ROLE, Access, AccessError, AccessView, Change, Grant, Held,
};
pub use audit::{
    Cause, DEFINITION_TAG, EVENT_FORMAT, EVENT_TAG, Event, EventKind, GENESIS,
    WORKFLOW_SUBJECT_PREFIX, canonical_definition, definition_hash, event_digest, event_hash,
    root_partition,
};
pub use definition::{
    ANY_STAGE, ChildPolicy, Deadline, Definition, Effect, ElementType, Field, Label, Lifecycle,
    Role, SYSTEM_ROLE, Spawn, Stage, StageKind, StageSet, Transition, TypeSpec, ValueType,
};
pub use diagnostic::{Code, Diagnostic, Severity, has_errors};
#[doc(hidden)]
pub use fuzz::{fuzz_definition, fuzz_guard};
pub use guard::{CUSTOM_OPERATORS, ChildRef, Expr, ExprError, Reads, VarRef, reads};
pub use keys::{KeyError, VerifierKey};
pub use lifecycle::{
    LifecycleCommand, MAX_REASON_CHARS, Operation, Status, UnknownOperation, lifecycle_applied,
    lifecycle_payload, lifecycle_reason, refuses_children,
};
pub use load::{MAX_DEFINITION_BYTES, MAX_DEPTH, MAX_ID_BYTES, MAX_ITEMS, Parsed, parse};
pub use machine::{
    Accepted, Actor, AppliedEffect, ChildSpec, Command, CompileError, DeadlineError, Due, Instance,
    MAX_DEADLINE_YEARS, Rejection, SpawnRequest, Workflow, children_summary,
};
pub use migrate::{Migrated, MigrationPlan, PlanError, Selection};
pub use render::{to_dot, to_mermaid};
pub use schema::json_schema;
pub use signing::{
    ActorKey, COMMAND_SIGNATURE_TAG, Claim, CommandSignature, KeyChange, KeyState, KeyView,
    SIGNATURE_WINDOW, SignatureError, SignedKind, check_key_change, check_signature, start_payload,
};
pub use source::{Position, SourceMap};
pub use tlog::{
    AppendUndo, Hash, HeadsError, PARTITIONS_TAG, PartitionHead, ProofError, StreamingProof,
    StreamingRoot, TILE_WIDTH, TileId, TileLog, TileReader, TileWrite, TlogError, check_heads,
    combined_head, decode_tile, empty_root, encode_tile, leaf_hash, node_hash, verify_consistency,
    verify_inclusion,
};
pub use types::{MAX_SAFE_INTEGER, TypeMismatch, check as check_value, check_fields, zero_value};
pub use validate::{Catalog, check, validate};
