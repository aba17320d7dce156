//! Diagnostics: what the loader and the validator say about a definition.
//!
//! Each diagnostic carries a stable [`Code`]; tools and tests rely on codes,
//! never on the wording of messages. Codes are never reused or renumbered.

use std::fmt;

use serde::Serialize;

use crate::source::Position;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A design fault: the definition cannot be deployed.
    Error,
    /// Probably a mistake, but the definition can be deployed.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal, $severity:ident;)*) => {
        /// A stable diagnostic code. `P` codes are about parsing, `L` codes
        /// about limits, `S` codes about the meaning of a definition, `W`
        /// codes are warnings.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as written in diagnostics, such as `S002`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            /// The severity diagnostics with this code have.
            pub fn severity(self) -> Severity {
                match self {
                    $(Code::$variant => Severity::$severity,)*
                }
            }

            /// The code written as `as_str` gives, if there is one.
            pub fn parse(text: &str) -> Option<Code> {
                match text {
                    $($text => Some(Code::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    /// The file is not valid JSON.
    Syntax = "P001", Error;
    /// The JSON does not have the shape of a workflow (missing field, wrong
    /// type, unknown field).
    Structure = "P002", Error;
    /// An object names the same key twice (JSON readers disagree on which
    /// one wins, so strive refuses both).
    DuplicateKey = "P003", Error;
    /// The file is larger than 1 MiB.
    FileTooLarge = "L001", Error;
    /// Arrays and objects are nested deeper than 64.
    TooDeep = "L002", Error;
    /// More than 10,000 stages, or more than 10,000 transitions.
    TooMany = "L003", Error;
    /// An id is longer than 128 bytes.
    IdTooLong = "L004", Error;
    /// Two stages, roles, variables, payload fields or transitions share an id.
    DuplicateId = "S001", Error;
    /// A stage is referenced that is not declared.
    UnknownStage = "S002", Error;
    /// A role is referenced that is not declared.
    UnknownRole = "S003", Error;
    /// A variable is read or written that is not declared.
    UnknownVariable = "S004", Error;
    /// An event is referenced that no transition handles.
    UnknownEvent = "S005", Error;
    /// A workflow is referenced that is not known.
    UnknownWorkflow = "S006", Error;
    /// No stage is `initial`.
    NoInitialStage = "S007", Error;
    /// More than one stage is `initial`.
    SeveralInitialStages = "S008", Error;
    /// No stage is `terminal`.
    NoTerminalStage = "S009", Error;
    /// A transition leaves a terminal stage.
    TransitionFromTerminal = "S010", Error;
    /// A stage cannot be reached from the initial stage.
    UnreachableStage = "S011", Error;
    /// From a stage, no terminal stage can be reached: instances there can
    /// never finish.
    CannotFinish = "S012", Error;
    /// A transition can never fire (an earlier transition for the same event
    /// always wins, its guard is always false, or its stages are unreachable).
    NeverFires = "S013", Error;
    /// A guard or effect reads a payload field the transition does not declare.
    UnknownPayloadField = "S014", Error;
    /// A deadline names an event that cannot fire from its stage.
    DeadlineEvent = "S015", Error;
    /// A guard or effect expression is not valid JSON Logic.
    InvalidExpression = "S016", Error;
    /// An id is empty or has characters outside `A-Z a-z 0-9 _ - . :`.
    InvalidId = "S017", Error;
    /// A type is inconsistent: bounds that do not fit the type, `min` above
    /// `max`, or a default that does not match the type.
    InvalidType = "S018", Error;
    /// A deadline is malformed: not exactly one of `at`, `after`, `at_data`,
    /// an unparseable time or duration, or a variable that is not a timestamp.
    InvalidDeadline = "S019", Error;
    /// An effect does not fit its variable's type (append to a non-list,
    /// increment a non-number, put into a non-map).
    EffectTypeMismatch = "S020", Error;
    /// A transition allows no role.
    NoRoles = "S021", Error;
    /// A deadline event's transition does not allow the `system` role.
    DeadlineNotSystem = "S022", Error;
    /// The reserved `*` is misused: as a stage id, as a `to`, or mixed with
    /// stage ids in a `from` list.
    ReservedName = "S023", Error;
    /// A guard reads children's stages that the child workflow does not have.
    UnknownChildStage = "S024", Error;
    /// A deadline's duration is longer than strive's time range allows
    /// from any time an instance could enter its stage.
    DeadlineOutOfRange = "S025", Error;
    /// A lifecycle operation is allowed to the reserved `system` role: the
    /// engine never suspends, resumes, cancels or terminates on its own.
    LifecycleSystemRole = "S026", Error;
    /// Some role may suspend instances but none may resume them: a
    /// suspended instance could only be ended.
    SuspendWithoutResume = "S027", Error;
    /// A cycle of stages has no guarded transition: an instance may go round
    /// forever with nothing recorded deciding when it leaves.
    UnguardedCycle = "W101", Warning;
    /// A declared role is allowed on no transition.
    UnusedRole = "W102", Warning;
    /// A declared variable is never read or written.
    UnusedVariable = "W103", Warning;
    /// A label is given in one language of `zh`/`en` but not the other.
    MissingTranslation = "W104", Warning;
    /// A guard waits for all children to be in some stages, and a child
    /// can come to rest elsewhere without ever having been in them: once
    /// one does, the transition can never fire.
    ChildrenMayNeverArrive = "W105", Warning;
    /// The `lifecycle` section says what children do, but no transition
    /// spawns any.
    LifecycleChildrenUnused = "W106", Warning;
    /// The `lifecycle` section allows no role any operation.
    LifecycleEmpty = "W107", Warning;
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One finding about a definition, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The stable code.
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong and what to do about it.
    pub message: String,
    /// The file the definition came from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The JSON pointer (RFC 6901) of the offending value; empty for the
    /// whole document.
    pub pointer: String,
    /// The line, from 1, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// The column, from 1, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
}

impl Diagnostic {
    /// A diagnostic with `code`'s severity at `pointer`, not yet placed on a
    /// line (see [`Diagnostic::at`]).
    pub fn new(code: Code, pointer: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: code.severity(),
            message: message.into(),
            file: None,
            pointer: pointer.into(),
            line: None,
            column: None,
        }
    }

    /// Places the diagnostic at `position`.
    pub fn at(mut self, position: Option<Position>) -> Diagnostic {
        if let Some(position) = position {
            self.line = Some(position.line);
            self.column = Some(position.column);
        }
        self
    }

    /// Names the file the diagnostic is about.
    pub fn in_file(mut self, file: Option<&str>) -> Diagnostic {
        self.file = file.map(str::to_owned);
        self
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// Formats as `file:line:column: error[S002]: message (at /pointer)`, the
    /// form editors and terminals turn into links.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, "{line}:{column}:")?;
        }
        if self.file.is_some() || self.line.is_some() {
            f.write_str(" ")?;
        }
        write!(f, "{}[{}]: {}", self.severity, self.code, self.message)?;
        if !self.pointer.is_empty() {
            write!(f, " (at {})", self.pointer)?;
        }
        Ok(())
    }
}

/// Whether any diagnostic in `diagnostics` is an error.
pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(Diagnostic::is_error)
}
