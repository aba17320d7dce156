//! Offline verification of a JSONL audit bundle against a checkpoint the
//! auditor kept: no database needed.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use serde::Serialize;
use serde_json::Value;
use strive_core::{Due, Event, GENESIS, Instance, event_digest};

use crate::checkpoint::Checkpoint;
use crate::export::BUNDLE_FORMAT;
use crate::merkle::{Hash, MerkleLog, verify_consistency, verify_inclusion};
use crate::problem::{Problem, ProblemCode};
use crate::replay::{Replayer, differences};

/// What verifying a bundle found.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    /// Events in the bundle.
    pub events: u64,
    /// Subjects (instances and workflows) in the bundle.
    pub subjects: u64,
    /// Heads proven to be in the log.
    pub proven: u64,
    /// Whether the bundle holds the whole log (so its root was recomputed).
    pub complete: bool,
    /// Whether the events were replayed (not when exported `--since`).
    pub replayed: bool,
    /// The bundle's checkpoint size.
    pub size: u64,
    /// Events newer than the trusted checkpoint: proven against the
    /// bundle's own checkpoint, which was shown to extend the trusted one.
    pub newer_than_checkpoint: u64,
    /// Every problem found.
    pub problems: Vec<Problem>,
}

impl BundleReport {
    /// Whether everything holds.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Why a bundle could not be read at all.
#[derive(Debug)]
#[non_exhaustive]
pub enum BundleError {
    /// Reading failed.
    Io {
        /// The 1-based line being read.
        line: usize,
        /// The error.
        source: std::io::Error,
    },
}

impl std::fmt::Display for BundleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BundleError::Io { line, source } => {
                write!(f, "cannot read the bundle at line {line}: {source}")
            }
        }
    }
}

impl std::error::Error for BundleError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BundleError::Io { source, .. } => Some(source),
        }
    }
}

struct Head {
    seq: u64,
    gseq: u64,
    hash: String,
}

struct Proof {
    seq: u64,
    hash: String,
    index: u64,
    size: u64,
    path: Vec<Hash>,
}

fn hash_of(text: &str) -> Option<Hash> {
    hex::decode(text).ok()?.try_into().ok()
}

fn hashes(value: &Value) -> Option<Vec<Hash>> {
    value
        .as_array()?
        .iter()
        .map(|h| h.as_str().and_then(hash_of))
        .collect()
}

/// Checks a bundle read from `input` against `trusted`, a checkpoint the
/// auditor kept (whose signature the caller has checked): every hash, every
/// chain, the replay and conformance of complete instances, each head's
/// inclusion in the log, and that the bundle's log extends `trusted`.
pub fn verify_bundle(
    input: impl BufRead,
    trusted: &Checkpoint,
) -> Result<BundleReport, BundleError> {
    let mut problems = Vec::new();
    let malformed = |line: usize, message: String| {
        Problem::new(
            ProblemCode::BundleMalformed,
            format!("line {line}: {message}"),
        )
    };
    let mut heads: BTreeMap<String, Head> = BTreeMap::new();
    let mut proofs: HashMap<String, Proof> = HashMap::new();
    let mut consistency: Option<(u64, Hash, u64, Vec<Hash>)> = None;
    let mut checkpoint: Option<Checkpoint> = None;
    let mut snapshots: Vec<(Instance, Option<Due>)> = Vec::new();
    let mut replayer = Replayer::new();
    let mut access = crate::access::AccessCheck::default();
    let mut log = MerkleLog::new();
    let (mut complete, mut replay) = (false, true);
    let mut header_seen = false;
    let mut last_gseq = 0;
    let mut events = 0;
    for (index, text) in input.lines().enumerate() {
        let number = index + 1;
        let text = text.map_err(|source| BundleError::Io {
            line: number,
            source,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(e) => {
                problems.push(malformed(number, format!("not JSON: {e}")));
                continue;
            }
        };
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !header_seen && kind != "header" {
            problems.push(malformed(
                number,
                "the bundle must start with its header".to_owned(),
            ));
            header_seen = true;
        }
        match kind {
            "header" => {
                header_seen = true;
                if value.get("format").and_then(Value::as_str) != Some(BUNDLE_FORMAT) {
                    problems.push(malformed(
                        number,
                        format!(
                            "not a {BUNDLE_FORMAT} bundle; this verifier reads only that format"
                        ),
                    ));
                }
                complete = value
                    .get("complete")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                // A filtered bundle is an extract: its instances' parents
                // may be left out.
                if !complete {
                    replayer = Replayer::extract();
                }
                let since = value
                    .pointer("/filter/since")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                // Instances exported from a later position have no start
                // event to replay from.
                replay = since <= 1;
            }
            "event" => {
                events += 1;
                let (Some(stored), Some(bytes)) = (
                    value.get("hash").and_then(Value::as_str),
                    value.get("bytes").and_then(Value::as_str),
                ) else {
                    problems.push(malformed(
                        number,
                        "an event line needs `hash` and `bytes`".to_owned(),
                    ));
                    continue;
                };
                let bytes = bytes.as_bytes();
                let digest = event_digest(bytes);
                let hash = hex::encode(digest);
                let event = match Event::decode(bytes) {
                    Ok(event) => event,
                    Err(e) => {
                        problems.push(Problem::new(
                            ProblemCode::UnreadableEvent,
                            format!("line {number}: the event does not decode: {e}"),
                        ));
                        continue;
                    }
                };
                let at = |code, message: String| {
                    Problem::new(code, message).at(&event.instance, event.seq, event.gseq)
                };
                if hash != stored {
                    problems.push(at(
                        ProblemCode::HashMismatch,
                        format!("the bundle says {stored}, the bytes hash to {hash}"),
                    ));
                }
                if value.get("gseq").and_then(Value::as_u64) != Some(event.gseq) {
                    problems.push(at(
                        ProblemCode::BundleMalformed,
                        "the line's gseq differs from the event's".to_owned(),
                    ));
                }
                let expected = last_gseq + 1;
                if event.gseq <= last_gseq || (complete && event.gseq != expected) {
                    problems.push(at(
                        if event.gseq <= last_gseq {
                            ProblemCode::SequenceOrder
                        } else {
                            ProblemCode::SequenceGap
                        },
                        format!("global position {} follows {last_gseq}", event.gseq),
                    ));
                }
                last_gseq = last_gseq.max(event.gseq);
                if complete {
                    log.push(digest);
                }
                match heads.get(&event.instance) {
                    None if event.seq != 1 && replay => problems.push(at(
                        ProblemCode::ChainBroken,
                        format!(
                            "the chain starts at #{}: earlier events are missing",
                            event.seq
                        ),
                    )),
                    None if event.seq == 1 && event.prev != GENESIS => problems.push(at(
                        ProblemCode::ChainBroken,
                        "the first event's prev must be 64 zeros".to_owned(),
                    )),
                    None => {}
                    Some(head) if event.seq != head.seq + 1 || event.prev != head.hash => problems
                        .push(at(
                            ProblemCode::ChainBroken,
                            format!(
                                "#{} with prev {} does not follow #{} {}",
                                event.seq, event.prev, head.seq, head.hash
                            ),
                        )),
                    Some(_) => {}
                }
                heads.insert(
                    event.instance.clone(),
                    Head {
                        seq: event.seq,
                        gseq: event.gseq,
                        hash: hash.clone(),
                    },
                );
                if replay {
                    problems.extend(replayer.apply(&hash, &event));
                }
                // Only a complete bundle has every ancestor's start event
                // that an instance grant is checked through.
                if complete && replay {
                    problems.extend(access.event(&event));
                }
            }
            "snapshot" => match (
                value
                    .get("instance")
                    .cloned()
                    .map(serde_json::from_value::<Instance>),
                serde_json::from_value::<Option<Due>>(
                    value.get("due").cloned().unwrap_or(Value::Null),
                ),
            ) {
                (Some(Ok(instance)), Ok(due)) => snapshots.push((instance, due)),
                _ => problems.push(malformed(
                    number,
                    "a snapshot line needs an `instance`".to_owned(),
                )),
            },
            "proof" => {
                let parsed = (|| {
                    Some((
                        value.get("subject")?.as_str()?.to_owned(),
                        Proof {
                            seq: value.get("seq")?.as_u64()?,
                            hash: value.get("hash")?.as_str()?.to_owned(),
                            index: value.get("index")?.as_u64()?,
                            size: value.get("size")?.as_u64()?,
                            path: hashes(value.get("path")?)?,
                        },
                    ))
                })();
                match parsed {
                    Some((subject, proof)) => {
                        proofs.insert(subject, proof);
                    }
                    None => {
                        problems.push(malformed(number, "a proof line is incomplete".to_owned()))
                    }
                }
            }
            "consistency" => {
                let parsed = (|| {
                    Some((
                        value.get("old_size")?.as_u64()?,
                        hash_of(value.get("old_root")?.as_str()?)?,
                        value.get("size")?.as_u64()?,
                        hashes(value.get("path")?)?,
                    ))
                })();
                match parsed {
                    Some(found) => consistency = Some(found),
                    None => problems.push(malformed(
                        number,
                        "a consistency line is incomplete".to_owned(),
                    )),
                }
            }
            "checkpoint" => {
                match value
                    .get("text")
                    .and_then(Value::as_str)
                    .map(Checkpoint::parse)
                {
                    Some(Ok(signed)) => checkpoint = Some(signed.checkpoint),
                    Some(Err(e)) => problems.push(malformed(number, e.to_string())),
                    None => problems.push(malformed(
                        number,
                        "a checkpoint line needs `text`".to_owned(),
                    )),
                }
            }
            other => problems.push(malformed(number, format!("unknown line type {other:?}"))),
        }
    }
    if replay {
        for (snapshot, due) in &snapshots {
            if let Some(replayed) = replayer.instance(&snapshot.id) {
                let mut found = differences(replayed, snapshot);
                if replayer.due(&snapshot.id) != due.as_ref() {
                    found.push("due: the pending deadline differs from replay".to_owned());
                }
                if !found.is_empty() {
                    problems.push(
                        Problem::new(ProblemCode::SnapshotMismatch, found.join("; "))
                            .on(&snapshot.id),
                    );
                }
            }
        }
        problems.extend(replayer.unmet());
    }
    let Some(bundled) = checkpoint else {
        problems.push(Problem::new(
            ProblemCode::BundleMalformed,
            "the bundle ends without its checkpoint: it was cut short".to_owned(),
        ));
        return Ok(BundleReport {
            events,
            subjects: heads.len() as u64,
            proven: 0,
            complete,
            replayed: replay,
            size: 0,
            newer_than_checkpoint: 0,
            problems,
        });
    };
    // The bundle's log must be the trusted one, or extend it.
    if bundled.size < trusted.size {
        problems.push(Problem::new(
            ProblemCode::CheckpointInconsistent,
            format!(
                "the bundle's log has {} events, fewer than the {} of your checkpoint: ask for a fresh export",
                bundled.size, trusted.size
            ),
        ));
    } else if bundled.size == trusted.size {
        if bundled.root != trusted.root {
            problems.push(Problem::new(
                ProblemCode::CheckpointInconsistent,
                "the bundle's root differs from your checkpoint's at the same size: the log was rewritten"
                    .to_owned(),
            ));
        }
    } else {
        match &consistency {
            Some((old_size, old_root, size, path))
                if *old_size == trusted.size && *old_root == trusted.root && *size == bundled.size =>
            {
                if verify_consistency(trusted.size, &trusted.root, bundled.size, &bundled.root, path)
                    .is_err()
                {
                    problems.push(Problem::new(
                        ProblemCode::CheckpointInconsistent,
                        "the bundle's log does not extend your checkpoint: events you saw were altered or removed"
                            .to_owned(),
                    ));
                }
            }
            // A complete bundle holds every leaf, so the proof can be
            // computed here from the events themselves (the root they
            // give is checked against the bundle's checkpoint below).
            _ if complete => {
                // Every log extends the empty one.
                let empty = trusted.size == 0 && trusted.root == crate::merkle::empty_root();
                let proven = log.prove_consistency(trusted.size).is_some_and(|path| {
                    let root = log.root();
                    verify_consistency(trusted.size, &trusted.root, log.size(), &root, &path)
                        .is_ok()
                });
                let extends = empty || proven;
                if !extends {
                    problems.push(Problem::new(
                        ProblemCode::CheckpointInconsistent,
                        format!(
                            "the bundle's events do not extend your checkpoint: some of the first {} events were altered, removed or reordered",
                            trusted.size
                        ),
                    ));
                }
            }
            _ => problems.push(Problem::new(
                ProblemCode::CheckpointInconsistent,
                format!(
                    "the bundle's log ({} events) is newer than your checkpoint ({}) and carries no consistency proof from it; export with `--from-checkpoint YOUR_CHECKPOINT`",
                    bundled.size, trusted.size
                ),
            )),
        }
    }
    if complete && (log.size() != bundled.size || log.root() != bundled.root) {
        problems.push(Problem::new(
            ProblemCode::CheckpointInconsistent,
            format!(
                "the bundle's {} events hash to root {} but its checkpoint says {} events, root {}",
                log.size(),
                hex::encode(log.root()),
                bundled.size,
                hex::encode(bundled.root)
            ),
        ));
    }
    let mut proven = 0;
    for (subject, head) in &heads {
        let Some(proof) = proofs.get(subject) else {
            problems.push(
                Problem::new(
                    ProblemCode::ProofInvalid,
                    "no inclusion proof of the head".to_owned(),
                )
                .on(subject),
            );
            continue;
        };
        let leaf = hash_of(&head.hash).unwrap_or_default();
        let fits = proof.seq == head.seq
            && proof.hash == head.hash
            && proof.index + 1 == head.gseq
            && proof.size == bundled.size;
        if !fits
            || verify_inclusion(&bundled.root, bundled.size, proof.index, &leaf, &proof.path)
                .is_err()
        {
            problems.push(
                Problem::new(
                    ProblemCode::ProofInvalid,
                    format!(
                        "the head #{} {} is not proven to be event {} of the checkpoint's log",
                        head.seq, head.hash, head.gseq
                    ),
                )
                .on(subject),
            );
        } else {
            proven += 1;
        }
    }
    Ok(BundleReport {
        events,
        subjects: heads.len() as u64,
        proven,
        complete,
        replayed: replay,
        size: bundled.size,
        newer_than_checkpoint: last_gseq.saturating_sub(trusted.size),
        problems,
    })
}
