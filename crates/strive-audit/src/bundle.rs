//! Offline verification of a JSONL audit bundle against a checkpoint the
//! auditor kept: no database needed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::BufRead;

use serde::Serialize;
use serde_json::Value;
use strive_core::{Due, Event, Instance, PartitionHead, event_digest};

use crate::checkpoint::Checkpoint;
use crate::export::BUNDLE_FORMAT;
use crate::merkle::{Hash, empty_root, verify_consistency, verify_inclusion};
use crate::problem::{Problem, ProblemCode};
use crate::verify::{Stream, Verifier, VerifyOptions};

/// The most partitions a store has (as `strive init --partitions` allows).
const MAX_PARTITIONS: u64 = 256;

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
    /// The bundle's checkpoint size (over every partition).
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

/// A subject's last event in the bundle: what its inclusion proof proves.
struct Head {
    seq: u64,
    gseq: u64,
    partition: u32,
    hash: String,
}

/// A `proof` line.
struct Proof {
    partition: u32,
    seq: u64,
    hash: String,
    index: u64,
    size: u64,
    path: Vec<Hash>,
}

/// A `consistency` line: the proof that the kept checkpoint's head of one
/// partition is a prefix of the bundle's.
struct Consistency {
    old_size: u64,
    old_root: Hash,
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

/// A line's `partition` (absent: 0, as in a bundle of one partition).
fn partition_of(value: &Value) -> Option<u32> {
    match value.get("partition") {
        None => Some(0),
        Some(p) => p.as_u64().and_then(|p| u32::try_from(p).ok()),
    }
}

fn malformed(line: usize, message: impl fmt::Display) -> Problem {
    Problem::new(
        ProblemCode::BundleMalformed,
        format!("line {line}: {message}"),
    )
}

/// A bundle as read so far. The events go through the [`Verifier`] that
/// `strive verify` runs (hashes, each partition's sequence and Merkle
/// log, chains, time, replay, conformance, access, routing), so the two
/// share every rule; what is the bundle's own is here: its lines, the
/// heads' proofs and the checkpoints.
struct Reading {
    verifier: Verifier,
    /// The partitions the header states.
    partitions: u32,
    complete: bool,
    replay: bool,
    header_seen: bool,
    events: u64,
    heads: BTreeMap<String, Head>,
    proofs: HashMap<String, Proof>,
    consistency: BTreeMap<u32, Consistency>,
    checkpoint: Option<Checkpoint>,
}

/// Checks a bundle read from `input` against `trusted`, a checkpoint the
/// auditor kept (whose signature the caller has checked): every hash,
/// every partition's sequence, every chain (time included), the replay
/// and conformance of complete instances, each head's inclusion in its
/// partition's log, the routing of instances to partitions, and that the
/// bundle's log extends `trusted`, partition by partition.
pub fn verify_bundle(
    input: impl BufRead,
    trusted: &Checkpoint,
) -> Result<BundleReport, BundleError> {
    let options = VerifyOptions {
        since: Some(trusted.clone()),
        ..VerifyOptions::default()
    };
    let mut verifier = Verifier::new(options);
    // Until a header says otherwise, the bundle is an extract.
    verifier.rescope(1, false, true);
    let mut reading = Reading {
        verifier,
        partitions: 1,
        complete: false,
        replay: true,
        header_seen: false,
        events: 0,
        heads: BTreeMap::new(),
        proofs: HashMap::new(),
        consistency: BTreeMap::new(),
        checkpoint: None,
    };
    for (index, text) in input.lines().enumerate() {
        let number = index + 1;
        let text = text.map_err(|source| BundleError::Io {
            line: number,
            source,
        })?;
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(value) => reading.line(number, &value),
            Err(e) => reading
                .verifier
                .push(malformed(number, format!("not JSON: {e}"))),
        }
    }
    Ok(reading.finish(trusted))
}

impl Reading {
    fn line(&mut self, number: usize, value: &Value) {
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !self.header_seen && kind != "header" {
            self.verifier
                .push(malformed(number, "the bundle must start with its header"));
            self.header_seen = true;
        }
        match kind {
            "header" => self.header(number, value),
            "event" => self.event(number, value),
            "snapshot" => self.snapshot(number, value),
            "proof" => self.proof(number, value),
            "consistency" => self.consistency(number, value),
            "checkpoint" => match value
                .get("text")
                .and_then(Value::as_str)
                .map(Checkpoint::parse)
            {
                Some(Ok(signed)) => self.checkpoint = Some(signed.checkpoint),
                Some(Err(e)) => self.verifier.push(malformed(number, e)),
                None => self
                    .verifier
                    .push(malformed(number, "a checkpoint line needs `text`")),
            },
            other => self
                .verifier
                .push(malformed(number, format!("unknown line type {other:?}"))),
        }
    }

    fn header(&mut self, number: usize, value: &Value) {
        self.header_seen = true;
        if value.get("format").and_then(Value::as_str) != Some(BUNDLE_FORMAT) {
            self.verifier.push(malformed(
                number,
                format!("not a {BUNDLE_FORMAT} bundle; this verifier reads only that format"),
            ));
        }
        self.complete = value
            .get("complete")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let since = value
            .pointer("/filter/since")
            .and_then(Value::as_u64)
            .unwrap_or(1);
        // Instances exported from a later position have no start event to
        // replay from.
        self.replay = since <= 1;
        self.partitions = match value.get("partitions").map(Value::as_u64) {
            None => 1,
            Some(Some(p)) if (1..=MAX_PARTITIONS).contains(&p) => p as u32,
            Some(_) => {
                self.verifier.push(malformed(
                    number,
                    format!("`partitions` must be 1 to {MAX_PARTITIONS}"),
                ));
                1
            }
        };
        self.verifier
            .rescope(self.partitions, self.complete, self.replay);
    }

    fn event(&mut self, number: usize, value: &Value) {
        self.events += 1;
        let (Some(stored), Some(bytes), Some(partition)) = (
            value.get("hash").and_then(Value::as_str),
            value.get("bytes").and_then(Value::as_str),
            partition_of(value),
        ) else {
            self.verifier.push(malformed(
                number,
                "an event line needs `hash` and `bytes`, and a `partition` that is a number",
            ));
            return;
        };
        let current = self.verifier.current_partition();
        if partition >= self.partitions || partition < current {
            self.verifier.push(malformed(
                number,
                format!(
                    "an event of partition {partition} after partition {current}'s, in a bundle \
                     of {} partition(s): the bundle lists each partition's events in turn, from 0",
                    self.partitions
                ),
            ));
            return;
        }
        if partition > current {
            self.verifier.partition(partition);
        }
        let bytes = bytes.as_bytes();
        let event = match Event::decode(bytes) {
            Ok(event) => event,
            Err(e) => {
                self.verifier
                    .undecodable(bytes, &format!("line {number}: {e}"));
                return;
            }
        };
        if value.get("gseq").and_then(Value::as_u64) != Some(event.gseq) {
            self.verifier.push(
                Problem::new(
                    ProblemCode::BundleMalformed,
                    format!("line {number}: the line's gseq differs from the event's"),
                )
                .at(&event.instance, event.seq, event.gseq),
            );
        }
        self.verifier.decoded_event(stored, bytes, &event);
        self.heads.insert(
            event.instance.clone(),
            Head {
                seq: event.seq,
                gseq: event.gseq,
                partition,
                hash: hex::encode(event_digest(bytes)),
            },
        );
    }

    fn snapshot(&mut self, number: usize, value: &Value) {
        let instance = value
            .get("instance")
            .cloned()
            .map(serde_json::from_value::<Instance>);
        let due =
            serde_json::from_value::<Option<Due>>(value.get("due").cloned().unwrap_or(Value::Null));
        match (instance, due) {
            // Snapshots are compared with replay, which an export from a
            // later position has not.
            (Some(Ok(instance)), Ok(due)) => {
                if self.replay {
                    self.verifier.snapshot(&instance, due.as_ref());
                }
            }
            _ => self
                .verifier
                .push(malformed(number, "a snapshot line needs an `instance`")),
        }
    }

    fn proof(&mut self, number: usize, value: &Value) {
        let parsed = (|| {
            Some((
                value.get("subject")?.as_str()?.to_owned(),
                Proof {
                    partition: partition_of(value)?,
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
                self.proofs.insert(subject, proof);
            }
            None => self
                .verifier
                .push(malformed(number, "a proof line is incomplete")),
        }
    }

    fn consistency(&mut self, number: usize, value: &Value) {
        let parsed = (|| {
            Some((
                partition_of(value)?,
                Consistency {
                    old_size: value.get("old_size")?.as_u64()?,
                    old_root: hash_of(value.get("old_root")?.as_str()?)?,
                    size: value.get("size")?.as_u64()?,
                    path: hashes(value.get("path")?)?,
                },
            ))
        })();
        match parsed {
            Some((partition, found)) => {
                self.consistency.insert(partition, found);
            }
            None => self
                .verifier
                .push(malformed(number, "a consistency line is incomplete")),
        }
    }

    fn finish(self, trusted: &Checkpoint) -> BundleReport {
        let (streams, _, mut problems) = self.verifier.into_parts();
        let mut report = BundleReport {
            events: self.events,
            subjects: self.heads.len() as u64,
            proven: 0,
            complete: self.complete,
            replayed: self.replay,
            size: 0,
            newer_than_checkpoint: 0,
            problems: Vec::new(),
        };
        let Some(bundled) = &self.checkpoint else {
            problems.push(Problem::new(
                ProblemCode::BundleMalformed,
                "the bundle ends without its checkpoint: it was cut short".to_owned(),
            ));
            report.problems = problems;
            return report;
        };
        report.size = bundled.size;
        let logs = Logs {
            streams: &streams,
            complete: self.complete,
            consistency: &self.consistency,
        };
        let heads = logs.check(bundled, trusted, self.partitions, &mut problems);
        if let Some(heads) = &heads {
            report.proven = prove(&self.heads, &self.proofs, heads, &mut problems);
        }
        let trusted_sizes = trusted.heads().unwrap_or_default();
        report.newer_than_checkpoint = streams
            .iter()
            .map(|stream| {
                let old = trusted_sizes
                    .get(stream.partition() as usize)
                    .map_or(0, |head| head.size);
                stream.last_gseq().saturating_sub(old)
            })
            .sum();
        report.problems = problems;
        report
    }
}

/// The bundle's partition logs as read, for the checks against its
/// checkpoint and the kept one.
struct Logs<'a> {
    streams: &'a [Stream],
    complete: bool,
    consistency: &'a BTreeMap<u32, Consistency>,
}

impl Logs<'_> {
    /// Checks the bundle's checkpoint against the events (when complete)
    /// and against `trusted`; returns its partition heads when they can
    /// be read.
    fn check(
        &self,
        bundled: &Checkpoint,
        trusted: &Checkpoint,
        partitions: u32,
        problems: &mut Vec<Problem>,
    ) -> Option<Vec<PartitionHead>> {
        let inconsistent =
            |message: String| Problem::new(ProblemCode::CheckpointInconsistent, message);
        let heads = match bundled.heads() {
            Ok(heads) => heads,
            Err(e) => {
                problems.push(inconsistent(format!("the bundle's checkpoint: {e}")));
                return None;
            }
        };
        if heads.len() != partitions as usize {
            problems.push(Problem::new(
                ProblemCode::BundleMalformed,
                format!(
                    "the header says {partitions} partition(s), but the bundle's checkpoint has {}",
                    heads.len()
                ),
            ));
            return Some(heads);
        }
        if self.complete {
            self.check_roots(bundled, &heads, problems);
        }
        let Ok(kept) = trusted.heads() else {
            // Verifier::new has reported the kept checkpoint unreadable.
            return Some(heads);
        };
        if kept.len() != heads.len() {
            problems.push(inconsistent(format!(
                "your checkpoint is of a log of {} partition(s), the bundle's of {}: it is not a \
                 checkpoint of this log",
                kept.len(),
                heads.len()
            )));
            return Some(heads);
        }
        for (old, new) in kept.iter().zip(&heads) {
            if let Some(problem) = self.extends(old, new, heads.len() > 1) {
                problems.push(problem);
            }
        }
        Some(heads)
    }

    /// A complete bundle's events must give its checkpoint's heads.
    fn check_roots(
        &self,
        bundled: &Checkpoint,
        heads: &[PartitionHead],
        problems: &mut Vec<Problem>,
    ) {
        for (stream, head) in self.streams.iter().zip(heads) {
            let found = stream.head();
            if found.size == head.size && found.root == head.root {
                continue;
            }
            let (size, root) = if heads.len() > 1 {
                (head.size, head.root)
            } else {
                (bundled.size, bundled.root)
            };
            let of = if heads.len() > 1 {
                format!(" of partition {}", head.partition)
            } else {
                String::new()
            };
            problems.push(Problem::new(
                ProblemCode::CheckpointInconsistent,
                format!(
                    "the bundle's {} events{of} hash to root {} but its checkpoint says {size} events, root {}",
                    found.size,
                    hex::encode(found.root),
                    hex::encode(root)
                ),
            ));
        }
    }

    /// Whether the bundle's head `new` of a partition extends the kept
    /// head `old` of it, or the problem that it does not.
    fn extends(&self, old: &PartitionHead, new: &PartitionHead, several: bool) -> Option<Problem> {
        let name = if several {
            format!("partition {}'s log", old.partition)
        } else {
            "the bundle's log".to_owned()
        };
        let inconsistent =
            |message: String| Some(Problem::new(ProblemCode::CheckpointInconsistent, message));
        if new.size < old.size {
            return inconsistent(format!(
                "{name} has {} events, fewer than the {} of your checkpoint: ask for a fresh export",
                new.size, old.size
            ));
        }
        if new.size == old.size {
            return (new.root != old.root).then(|| {
                Problem::new(
                    ProblemCode::CheckpointInconsistent,
                    format!(
                        "{name}'s root differs from your checkpoint's at the same size: the log was rewritten"
                    ),
                )
            });
        }
        // Every log extends the empty one.
        if old.size == 0 && old.root == empty_root() {
            return None;
        }
        match self.consistency.get(&old.partition) {
            Some(line)
                if line.old_size == old.size && line.old_root == old.root && line.size == new.size =>
            {
                verify_consistency(old.size, &old.root, new.size, &new.root, &line.path)
                    .is_err()
                    .then(|| Problem::new(
                        ProblemCode::CheckpointInconsistent,
                        format!("{name} does not extend your checkpoint: events you saw were altered or removed"),
                    ))
            }
            // A complete bundle holds every leaf, so the proof is computed
            // from the events themselves (whose root is checked against
            // the bundle's checkpoint in `check_roots`).
            _ if self.complete => {
                let stream = self.streams.get(old.partition as usize)?;
                let head = stream.head();
                let proven = stream.consistency_proof().is_some_and(|path| {
                    verify_consistency(old.size, &old.root, head.size, &head.root, &path).is_ok()
                });
                (!proven).then(|| Problem::new(
                    ProblemCode::CheckpointInconsistent,
                    format!(
                        "{name}'s events do not extend your checkpoint: some of the first {} events were altered, removed or reordered",
                        old.size
                    ),
                ))
            }
            _ => inconsistent(format!(
                "{name} ({} events) is newer than your checkpoint ({}) and carries no consistency proof from it; export with `--from-checkpoint YOUR_CHECKPOINT`",
                new.size, old.size
            )),
        }
    }
}

/// Checks each subject's head against its inclusion proof in its
/// partition's log of the checkpoint's size; returns how many hold.
fn prove(
    subjects: &BTreeMap<String, Head>,
    proofs: &HashMap<String, Proof>,
    heads: &[PartitionHead],
    problems: &mut Vec<Problem>,
) -> u64 {
    let mut proven = 0;
    for (subject, head) in subjects {
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
        let tree = heads.get(head.partition as usize);
        let fits = proof.seq == head.seq
            && proof.hash == head.hash
            && proof.index.checked_add(1) == Some(head.gseq)
            && proof.partition == head.partition
            && tree.is_some_and(|tree| proof.size == tree.size);
        let holds = tree.is_some_and(|tree| {
            verify_inclusion(&tree.root, tree.size, proof.index, &leaf, &proof.path).is_ok()
        });
        if fits && holds {
            proven += 1;
            continue;
        }
        let of = if heads.len() > 1 {
            format!("partition {}'s", head.partition)
        } else {
            "the checkpoint's".to_owned()
        };
        problems.push(
            Problem::new(
                ProblemCode::ProofInvalid,
                format!(
                    "the head #{} {} is not proven to be event {} of {of} log",
                    head.seq, head.hash, head.gseq
                ),
            )
            .on(subject),
        );
    }
    proven
}

#[cfg(test)]
mod tests {
    use std::io;

    use strive_core::{event_hash, root_partition};

    use super::*;
    use crate::export::{BundleWriter, Filter, Prover};
    use crate::merkle::MerkleLog;
    use crate::verify::tests::routing_log;

    /// Each partition's whole tree, in memory.
    struct Trees(Vec<MerkleLog>);

    impl Prover for Trees {
        fn inclusion(&self, partition: u32, index: u64, _size: u64) -> io::Result<Vec<Hash>> {
            Ok(self.0[partition as usize]
                .prove_inclusion(index)
                .unwrap_or_default())
        }

        fn consistency(&self, _: u32, _: u64, _: u64) -> io::Result<Vec<Hash>> {
            Ok(Vec::new())
        }
    }

    /// A complete bundle of [`routing_log`], verified against its own
    /// checkpoint: the codes of its problems.
    fn bundle_codes(partition: u32) -> Vec<ProblemCode> {
        let logs = routing_log("doc-1", partition, None);
        let trees = logs
            .iter()
            .map(|log| {
                let mut tree = MerkleLog::new();
                for event in log {
                    tree.push(event_digest(&event.encode()));
                }
                tree
            })
            .collect();
        let mut writer =
            BundleWriter::partitioned(Vec::new(), Filter::default(), 4, Box::new(Trees(trees)))
                .expect("header");
        for (p, log) in (0u32..).zip(&logs) {
            writer.partition(p).expect("a partition");
            for event in log {
                let bytes = event.encode();
                writer
                    .event(&event_hash(&bytes), &bytes, event)
                    .expect("an event");
            }
        }
        let (out, checkpoint, _) = writer.finish("test", None, None).expect("finish");
        let report = verify_bundle(out.as_slice(), &checkpoint).expect("reads");
        report.problems.iter().map(|p| p.code).collect()
    }

    #[test]
    fn a_bundle_with_a_misrouted_root_is_refused() {
        let home = root_partition("doc-1", 4);
        let wrong = |codes: &[ProblemCode]| codes.contains(&ProblemCode::WrongPartition);
        let right = bundle_codes(home);
        assert!(right.is_empty(), "{right:?}");
        let moved = bundle_codes((home + 1) % 4);
        assert!(wrong(&moved), "{moved:?}");
    }
}
