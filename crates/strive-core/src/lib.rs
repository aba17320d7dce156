//! strive's pure core: the workflow language, its validator, guards, the
//! transition function and the audit model. It does no I/O.
#![deny(missing_docs)]

mod audit;
mod definition;
mod diagnostic;
mod guard;
mod load;
mod machine;
mod render;
mod schema;
mod source;
mod types;
mod validate;

pub use audit::{
    Cause, DEFINITION_TAG, EVENT_FORMAT, EVENT_TAG, Event, EventKind, GENESIS,
    WORKFLOW_SUBJECT_PREFIX, canonical_definition, definition_hash, event_digest, event_hash,
};
pub use definition::{
    ANY_STAGE, Deadline, Definition, Effect, ElementType, Field, Label, Role, SYSTEM_ROLE, Spawn,
    Stage, StageKind, StageSet, Transition, TypeSpec, ValueType,
};
pub use diagnostic::{Code, Diagnostic, Severity, has_errors};
pub use guard::{CUSTOM_OPERATORS, ChildRef, Expr, ExprError, Reads, VarRef, reads};
pub use load::{MAX_DEFINITION_BYTES, MAX_DEPTH, MAX_ID_BYTES, MAX_ITEMS, Parsed, parse};
pub use machine::{
    Accepted, Actor, AppliedEffect, ChildSpec, Command, CompileError, Due, Instance, Rejection,
    SpawnRequest, Workflow,
};
pub use render::{to_dot, to_mermaid};
pub use schema::json_schema;
pub use source::{Position, SourceMap};
pub use types::{TypeMismatch, check as check_value, check_fields, zero_value};
pub use validate::{Catalog, check, validate};
