//! What verification finds wrong: one [`Problem`] per fault, with a stable
//! code tools can rely on and the place it was found.

use std::fmt;

use serde::Serialize;

/// The kind of a problem. The snake-case names are stable; callers match on
/// them, not on the wording of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemCode {
    /// An event record could not be read or decoded.
    UnreadableEvent,
    /// The stored hash is not the hash of the stored bytes.
    HashMismatch,
    /// Global sequence numbers are missing.
    SequenceGap,
    /// A global sequence number is repeated or out of order.
    SequenceOrder,
    /// A subject's chain is broken: a sequence number skipped or repeated,
    /// or `prev` not the hash of the previous event.
    ChainBroken,
    /// An event is dated before the previous event of its subject.
    TimeBackwards,
    /// An event names a definition version that was not deployed, or whose
    /// hash differs.
    DefinitionMismatch,
    /// The definition in force would have refused the event.
    Nonconforming,
    /// The definition accepts the event but with another outcome (another
    /// transition, stage or effects) than the one recorded.
    OutcomeMismatch,
    /// A spawn or parent notification the definition implies is missing,
    /// or an event claims a cause that did not produce it.
    CauseMismatch,
    /// A snapshot's head or sequence is not its chain's last event.
    HeadMismatch,
    /// A snapshot differs from the state replayed from the events.
    SnapshotMismatch,
    /// An instance has events but no snapshot.
    MissingSnapshot,
    /// A snapshot has no events.
    SnapshotWithoutHistory,
    /// The log ends before the store's own sequence counter.
    LogTruncated,
    /// The log is not an extension of the checkpoint given.
    CheckpointInconsistent,
    /// A Merkle inclusion proof does not verify.
    ProofInvalid,
    /// A bundle is malformed or incomplete.
    BundleMalformed,
    /// An event's actor claims a role it held no grant of, globally or on
    /// the instance or an ancestor, when it acted (issue #11).
    NotGranted,
    /// A grant or revocation in the access chain breaks the access rules
    /// (not made by an admin, a grant made twice, a revocation of what is
    /// not held) or does not carry a grant.
    AccessRefused,
    /// An instance is not in the partition its root ancestor routes to
    /// (`strive_core::root_partition`), or its events are in more than
    /// one partition's log.
    WrongPartition,
    /// An event's signature does not hold: it does not verify over the
    /// command the event records (forged, or moved from another event), or
    /// names a key its actor did not hold then (unknown or retired), or is
    /// malformed or dated too far from the event. `rule` says which
    /// (`strive_core::SignatureError::code`).
    BadSignature,
    /// An actor's start or fire carries no signature although the actor
    /// held a key, and the verification was asked to require signatures.
    Unsigned,
}

impl ProblemCode {
    /// The stable snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::UnreadableEvent => "unreadable_event",
            ProblemCode::HashMismatch => "hash_mismatch",
            ProblemCode::SequenceGap => "sequence_gap",
            ProblemCode::SequenceOrder => "sequence_order",
            ProblemCode::ChainBroken => "chain_broken",
            ProblemCode::TimeBackwards => "time_backwards",
            ProblemCode::DefinitionMismatch => "definition_mismatch",
            ProblemCode::Nonconforming => "nonconforming",
            ProblemCode::OutcomeMismatch => "outcome_mismatch",
            ProblemCode::CauseMismatch => "cause_mismatch",
            ProblemCode::HeadMismatch => "head_mismatch",
            ProblemCode::SnapshotMismatch => "snapshot_mismatch",
            ProblemCode::MissingSnapshot => "missing_snapshot",
            ProblemCode::SnapshotWithoutHistory => "snapshot_without_history",
            ProblemCode::LogTruncated => "log_truncated",
            ProblemCode::CheckpointInconsistent => "checkpoint_inconsistent",
            ProblemCode::ProofInvalid => "proof_invalid",
            ProblemCode::BundleMalformed => "bundle_malformed",
            ProblemCode::NotGranted => "not_granted",
            ProblemCode::AccessRefused => "access_refused",
            ProblemCode::WrongPartition => "wrong_partition",
            ProblemCode::BadSignature => "bad_signature",
            ProblemCode::Unsigned => "unsigned",
        }
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fault found, with where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What kind of fault.
    pub code: ProblemCode,
    /// The instance (or `@workflow/<id>` subject), when one is concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The event's sequence number in its instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The event's global sequence number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gseq: Option<u64>,
    /// The rule broken, for conformance problems: the refusal's kind
    /// (`guard_failed`, `role_not_allowed`, ...) or the field that differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// What is wrong, for people.
    pub message: String,
}

impl Problem {
    /// A problem of `code` described by `message`, not tied to a place.
    pub fn new(code: ProblemCode, message: impl Into<String>) -> Problem {
        Problem {
            code,
            instance: None,
            seq: None,
            gseq: None,
            rule: None,
            message: message.into(),
        }
    }

    /// The same problem, at an event.
    pub fn at(mut self, instance: &str, seq: u64, gseq: u64) -> Problem {
        self.instance = Some(instance.to_owned());
        self.seq = Some(seq);
        self.gseq = Some(gseq);
        self
    }

    /// The same problem, about an instance.
    pub fn on(mut self, instance: &str) -> Problem {
        self.instance = Some(instance.to_owned());
        self
    }

    /// The same problem, at a global position.
    pub fn at_gseq(mut self, gseq: u64) -> Problem {
        self.gseq = Some(gseq);
        self
    }

    /// The same problem, naming the rule broken.
    pub fn rule(mut self, rule: impl Into<String>) -> Problem {
        self.rule = Some(rule.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.code)?;
        if let Some(instance) = &self.instance {
            write!(f, " {instance}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, " #{seq}")?;
        }
        if let Some(gseq) = self.gseq {
            write!(f, " (gseq {gseq})")?;
        }
        if let Some(rule) = &self.rule {
            write!(f, " rule {rule}")?;
        }
        write!(f, ": {}", self.message)
    }
}
