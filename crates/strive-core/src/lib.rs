//! strive's pure core: the workflow language, its validator, guards, the
//! transition function and the audit model. It does no I/O.
#![deny(missing_docs)]

mod definition;
mod diagnostic;
mod guard;
mod load;
mod source;

pub use definition::{
    ANY_STAGE, Deadline, Definition, Effect, ElementType, Field, Label, Role, SYSTEM_ROLE, Spawn,
    Stage, StageKind, StageSet, Transition, TypeSpec, ValueType,
};
pub use diagnostic::{Code, Diagnostic, Severity, has_errors};
pub use guard::{CUSTOM_OPERATORS, ChildRef, Expr, ExprError, Reads, VarRef, reads};
pub use load::{MAX_DEFINITION_BYTES, MAX_DEPTH, MAX_ID_BYTES, MAX_ITEMS, Parsed, parse};
pub use source::{Position, SourceMap};
