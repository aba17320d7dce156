//! Exports, written as the events stream by: the JSONL audit bundle, CSV
//! and XES (IEEE 1849). No export holds events in memory. The bundle holds
//! one head per exported subject and either the whole Merkle tree (32 bytes
//! per event, [`BundleWriter::new`]) or, given a [`Prover`] over a log that
//! stores its tree (the store's tiles, [`BundleWriter::with_prover`]), only
//! the O(log N) state of the root it recomputes from the events.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::rc::Rc;

use serde_json::{Value, json};
use strive_core::{Due, Event, EventKind, Instance, PartitionHead, event_digest};

use crate::checkpoint::{Checkpoint, SigningKey};
use crate::merkle::{Hash, MerkleLog};
use strive_core::StreamingRoot;

/// Merkle proofs from a log that keeps its tree, for a bundle's heads:
/// each partition's tree (partition 0 in a log of one partition).
pub trait Prover {
    /// The inclusion proof of leaf `index` (0-based) in `partition`'s tree
    /// of `size`.
    fn inclusion(&self, partition: u32, index: u64, size: u64) -> io::Result<Vec<Hash>>;
    /// The proof that `partition`'s tree of `old` leaves is a prefix of its
    /// tree of `new`.
    fn consistency(&self, partition: u32, old: u64, new: u64) -> io::Result<Vec<Hash>>;
}

/// Where a bundle's root and proofs come from.
enum Tree {
    /// The whole tree, built from the events as they stream by.
    Memory(Box<MerkleLog>),
    /// The root recomputed from the events; proofs from the log's own tree
    /// (shared by the partitions' trees). A proof that does not lead to the
    /// recomputed root fails `verify_bundle`, so stored hashes are checked,
    /// never trusted.
    Stored(u32, StreamingRoot, Rc<dyn Prover>),
}

impl Tree {
    fn push(&mut self, digest: Hash) {
        match self {
            Tree::Memory(log) => log.push(digest),
            Tree::Stored(_, root, _) => root.push(&digest),
        }
    }

    fn size(&self) -> u64 {
        match self {
            Tree::Memory(log) => log.size(),
            Tree::Stored(_, root, _) => root.size(),
        }
    }

    fn root(&self) -> Hash {
        match self {
            Tree::Memory(log) => log.root(),
            Tree::Stored(_, root, _) => root.root(),
        }
    }

    fn inclusion(&self, index: u64) -> io::Result<Vec<Hash>> {
        match self {
            Tree::Memory(log) => Ok(log.prove_inclusion(index).unwrap_or_default()),
            Tree::Stored(partition, root, prover) => {
                prover.inclusion(*partition, index, root.size())
            }
        }
    }

    fn consistency(&self, old: u64) -> io::Result<Option<Vec<Hash>>> {
        match self {
            Tree::Memory(log) => Ok(log.prove_consistency(old)),
            Tree::Stored(partition, root, prover) => {
                if old == 0 || old > root.size() {
                    return Ok(None);
                }
                prover.consistency(*partition, old, root.size()).map(Some)
            }
        }
    }
}

/// The format name in a bundle's header line.
pub const BUNDLE_FORMAT: &str = "strive-audit-bundle/v1";

/// Which events to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only instances of this workflow.
    pub workflow: Option<String>,
    /// Only this instance.
    pub instance: Option<String>,
    /// Only events at or after this global position (in a store of several
    /// partitions: at or after it in their partition's log).
    pub since: Option<u64>,
}

impl Filter {
    /// Whether the filter selects everything.
    pub fn is_empty(&self) -> bool {
        self.workflow.is_none() && self.instance.is_none() && self.since.unwrap_or(1) <= 1
    }

    /// Whether an instance event (start, fire, migrate or lifecycle) is selected;
    /// deployments and grants never are (CSV and XES are logs of
    /// instances).
    pub fn matches(&self, event: &Event) -> bool {
        matches!(
            event.kind,
            EventKind::Start | EventKind::Fire | EventKind::Migrate | EventKind::Lifecycle
        ) && self.workflow.as_ref().is_none_or(|w| *w == event.workflow)
            && self.instance.as_ref().is_none_or(|i| *i == event.instance)
            && self.since.is_none_or(|s| event.gseq >= s)
    }

    fn json(&self) -> Value {
        json!({"workflow": self.workflow, "instance": self.instance, "since": self.since})
    }
}

/// Writes the JSONL audit bundle as events stream by. See `docs/audit.md`
/// for the format.
///
/// The bundle carries every deployment (so definitions travel with it), the
/// selected instances and every instance started under them (so that
/// guards reading children replay), the snapshots, an inclusion proof for
/// each subject's head and the checkpoint they are proven against.
pub struct BundleWriter<W: Write> {
    out: W,
    filter: Filter,
    /// Instances selected so far, with their descendants.
    selected: HashSet<String>,
    /// Each partition's tree, by partition.
    logs: Vec<Tree>,
    /// The partition whose events are being given.
    current: usize,
    /// Per exported subject: its last exported event.
    heads: BTreeMap<String, HeadOf>,
    exported: u64,
}

/// A subject's last exported event: what its proof line proves.
struct HeadOf {
    partition: u32,
    seq: u64,
    gseq: u64,
    hash: String,
    /// Its leaf index in its partition's tree.
    index: u64,
}

impl<W: Write> std::fmt::Debug for BundleWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BundleWriter")
            .field("filter", &self.filter)
            .field("exported", &self.exported)
            .finish_non_exhaustive()
    }
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// Events written.
    pub events: u64,
    /// Events in the log (read).
    pub log_size: u64,
    /// Subjects whose heads are proven (bundles only).
    pub proofs: u64,
}

fn line(out: &mut impl Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

impl<W: Write> BundleWriter<W> {
    /// Starts a bundle on `out`: writes the header line. It builds the
    /// Merkle tree of the whole log in memory to prove the heads.
    pub fn new(out: W, filter: Filter) -> io::Result<BundleWriter<W>> {
        BundleWriter::start(out, filter, vec![Tree::Memory(Box::default())])
    }

    /// Starts a bundle of a log of one partition whose proofs come from
    /// `prover`, a log that stores its tree: memory stays O(log N)
    /// whatever the log's size.
    pub fn with_prover(
        out: W,
        filter: Filter,
        prover: Box<dyn Prover>,
    ) -> io::Result<BundleWriter<W>> {
        BundleWriter::partitioned(out, filter, 1, prover)
    }

    /// Starts a bundle of a log of `partitions` partitions (1 to 256) whose
    /// proofs come from `prover`. Give each partition's events in turn,
    /// from partition 0, after [`BundleWriter::partition`].
    pub fn partitioned(
        out: W,
        filter: Filter,
        partitions: u32,
        prover: Box<dyn Prover>,
    ) -> io::Result<BundleWriter<W>> {
        let prover: Rc<dyn Prover> = Rc::from(prover);
        let logs = (0..partitions.max(1))
            .map(|p| Tree::Stored(p, StreamingRoot::new(), prover.clone()))
            .collect();
        BundleWriter::start(out, filter, logs)
    }

    fn start(mut out: W, filter: Filter, logs: Vec<Tree>) -> io::Result<BundleWriter<W>> {
        let mut header = json!({
            "type": "header",
            "format": BUNDLE_FORMAT,
            "event_tag": "strive/event/v1",
            "leaf": "sha256 event digest, RFC 6962",
            "complete": filter.is_empty(),
            "filter": filter.json(),
        });
        // A bundle of one partition stays what it was before partitions.
        if logs.len() > 1 {
            header["partitions"] = json!(logs.len());
        }
        line(&mut out, &header)?;
        Ok(BundleWriter {
            out,
            filter,
            selected: HashSet::new(),
            logs,
            current: 0,
            heads: BTreeMap::new(),
            exported: 0,
        })
    }

    /// The partition whose events are being given.
    pub fn current_partition(&self) -> u32 {
        self.current as u32
    }

    /// Whether the log has several partitions (then lines name theirs).
    fn several(&self) -> bool {
        self.logs.len() > 1
    }

    /// The events given from now on are `partition`'s (partitions are
    /// given in turn, from 0). A partition the log does not have is an
    /// `InvalidInput` error.
    pub fn partition(&mut self, partition: u32) -> io::Result<()> {
        if partition as usize >= self.logs.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the bundle is of a log of {} partition(s), which has no partition {partition}",
                    self.logs.len()
                ),
            ));
        }
        self.current = partition as usize;
        Ok(())
    }

    fn selects(&mut self, event: &Event) -> bool {
        // Deployments and the access chain go into every bundle: replay
        // and the access check need them.
        if matches!(
            event.kind,
            EventKind::Deploy
                | EventKind::Grant
                | EventKind::Revoke
                | EventKind::RegisterKey
                | EventKind::RetireKey
        ) {
            return true;
        }
        if event.kind == EventKind::Start {
            let parent_selected = event
                .payload
                .get("parent")
                .and_then(Value::as_str)
                .is_some_and(|p| self.selected.contains(p));
            let chosen = match (&self.filter.instance, &self.filter.workflow) {
                (Some(instance), _) => *instance == event.instance,
                (None, Some(workflow)) => *workflow == event.workflow,
                (None, None) => true,
            };
            if chosen || parent_selected {
                self.selected.insert(event.instance.clone());
            }
        }
        self.selected.contains(&event.instance) && self.filter.since.is_none_or(|s| event.gseq >= s)
    }

    /// The next event of the log, in global order: every event must be
    /// given, selected or not, since the checkpoint covers the whole log.
    pub fn event(&mut self, stored_hash: &str, bytes: &[u8], event: &Event) -> io::Result<()> {
        let log = &mut self.logs[self.current];
        let index = log.size();
        log.push(event_digest(bytes));
        if !self.selects(event) {
            return Ok(());
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut value =
            json!({"type": "event", "gseq": event.gseq, "hash": stored_hash, "bytes": text});
        if self.several() {
            value["partition"] = json!(self.current);
        }
        line(&mut self.out, &value)?;
        self.heads.insert(
            event.instance.clone(),
            HeadOf {
                partition: self.current as u32,
                seq: event.seq,
                gseq: event.gseq,
                hash: stored_hash.to_owned(),
                index,
            },
        );
        self.exported += 1;
        Ok(())
    }

    /// The instances exported so far, whose snapshots belong in the bundle.
    pub fn instances(&self) -> Vec<String> {
        self.heads
            .keys()
            .filter(|s| !s.starts_with('@'))
            .cloned()
            .collect()
    }

    /// An exported instance's snapshot and pending deadline (after the
    /// last event). A snapshot that moved on past the exported events (the
    /// store was written meanwhile) is left out: it would not match them.
    pub fn snapshot(&mut self, instance: &Instance, due: Option<&Due>) -> io::Result<bool> {
        if self.heads.get(&instance.id).map(|h| h.seq) != Some(instance.seq) {
            return Ok(false);
        }
        line(
            &mut self.out,
            &json!({"type": "snapshot", "instance": instance, "due": due}),
        )?;
        Ok(true)
    }

    /// Writes the proofs and the checkpoint (signed with `key` when given),
    /// and, when `from` is given, a consistency proof from that earlier
    /// checkpoint (one per partition whose log grew from a non-empty one).
    /// Returns the output, the checkpoint and a summary. A `from` of
    /// another number of partitions is an `InvalidInput` error.
    pub fn finish(
        mut self,
        origin: &str,
        key: Option<&SigningKey>,
        from: Option<&Checkpoint>,
    ) -> io::Result<(W, Checkpoint, ExportSummary)> {
        let heads: Vec<PartitionHead> = (0u32..)
            .zip(&self.logs)
            .map(|(partition, log)| PartitionHead {
                partition,
                size: log.size(),
                root: log.root(),
            })
            .collect();
        let checkpoint = Checkpoint::of_heads(origin, &heads)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        for (subject, head) in &self.heads {
            let log = &self.logs[head.partition as usize];
            let path = log.inclusion(head.index)?;
            let mut value = json!({
                "type": "proof", "subject": subject, "seq": head.seq, "gseq": head.gseq,
                "hash": head.hash, "index": head.index, "size": log.size(),
                "path": path.iter().map(hex::encode).collect::<Vec<_>>(),
            });
            if self.several() {
                value["partition"] = json!(head.partition);
            }
            line(&mut self.out, &value)?;
        }
        if let Some(from) = from {
            self.consistency_lines(from)?;
        }
        line(
            &mut self.out,
            &json!({"type": "checkpoint", "text": checkpoint.to_note(key)}),
        )?;
        self.out.flush()?;
        let summary = ExportSummary {
            events: self.exported,
            log_size: checkpoint.size,
            proofs: self.heads.len() as u64,
        };
        Ok((self.out, checkpoint, summary))
    }

    /// A consistency line per partition from `from`'s head of it.
    fn consistency_lines(&mut self, from: &Checkpoint) -> io::Result<()> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
        let old = from.heads().map_err(|e| invalid(e.to_string()))?;
        if old.len() != self.logs.len() {
            return Err(invalid(format!(
                "the earlier checkpoint is of a log of {} partition(s), this one has {}: it is \
                 not a checkpoint of this log",
                old.len(),
                self.logs.len()
            )));
        }
        for head in &old {
            let log = &self.logs[head.partition as usize];
            let Some(path) = log.consistency(head.size)? else {
                continue;
            };
            let mut value = json!({
                "type": "consistency", "old_size": head.size,
                "old_root": hex::encode(head.root), "size": log.size(),
                "path": path.iter().map(hex::encode).collect::<Vec<_>>(),
            });
            if self.several() {
                value["partition"] = json!(head.partition);
            }
            line(&mut self.out, &value)?;
        }
        Ok(())
    }
}

/// The CSV columns, in order. `docs/audit.md` describes each.
pub const CSV_COLUMNS: &[&str] = &[
    "gseq",
    "instance",
    "seq",
    "kind",
    "workflow",
    "version",
    "event",
    "transition",
    "from",
    "to",
    "actor",
    "roles",
    "at",
    "command_id",
    "cause",
    "payload",
    "effects",
    "prev",
    "hash",
    "definition_hash",
];

/// A CSV field quoted as RFC 4180 asks: in double quotes, doubled inside,
/// when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Writes the CSV export: a header row, then one row per event.
pub struct CsvWriter<W: Write> {
    out: W,
    rows: u64,
    /// Whether rows end with the event's partition (a store of several).
    partitioned: bool,
}

impl<W: Write> std::fmt::Debug for CsvWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvWriter")
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<W: Write> CsvWriter<W> {
    /// Starts the CSV on `out`: writes the header row.
    pub fn new(mut out: W) -> io::Result<CsvWriter<W>> {
        out.write_all(CSV_COLUMNS.join(",").as_bytes())?;
        out.write_all(b"\r\n")?;
        Ok(CsvWriter {
            out,
            rows: 0,
            partitioned: false,
        })
    }

    /// Starts the CSV of a store of several partitions: the columns of
    /// [`CSV_COLUMNS`] and a last one, `partition` (`gseq` is the
    /// position in that partition's log).
    pub fn partitioned(mut out: W) -> io::Result<CsvWriter<W>> {
        out.write_all(CSV_COLUMNS.join(",").as_bytes())?;
        out.write_all(b",partition\r\n")?;
        Ok(CsvWriter {
            out,
            rows: 0,
            partitioned: true,
        })
    }

    /// One event's row.
    pub fn row(&mut self, hash: &str, event: &Event) -> io::Result<()> {
        let kind = match event.kind {
            EventKind::Deploy => "deploy",
            EventKind::Start => "start",
            EventKind::Fire => "fire",
            EventKind::Grant => "grant",
            EventKind::Revoke => "revoke",
            EventKind::Migrate => "migrate",
            EventKind::RegisterKey => "register_key",
            EventKind::RetireKey => "retire_key",
            EventKind::Lifecycle => "lifecycle",
        };
        let cause = event
            .cause
            .as_ref()
            .map(|c| format!("{}#{}", c.instance, c.seq))
            .unwrap_or_default();
        let effects = if event.effects.is_empty() {
            String::new()
        } else {
            serde_json::to_string(&event.effects).unwrap_or_default()
        };
        let fields = [
            event.gseq.to_string(),
            event.instance.clone(),
            event.seq.to_string(),
            kind.to_owned(),
            event.workflow.clone(),
            event.version.to_string(),
            event.event.clone(),
            event.transition.clone().unwrap_or_default(),
            event.from.clone().unwrap_or_default(),
            event.to.clone(),
            event.actor.id.clone(),
            event.actor.roles.join(";"),
            event.at.to_string(),
            event.command_id.clone().unwrap_or_default(),
            cause,
            event.payload.to_string(),
            effects,
            event.prev.clone(),
            hash.to_owned(),
            event.definition_hash.clone(),
        ];
        let mut row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        if self.partitioned {
            row.push(event.partition.to_string());
        }
        self.out.write_all(row.join(",").as_bytes())?;
        self.out.write_all(b"\r\n")?;
        self.rows += 1;
        Ok(())
    }

    /// Flushes and returns the output and the number of rows.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.out.flush()?;
        Ok((self.out, self.rows))
    }
}

/// Text escaped for an XML attribute value. Characters XML 1.0 cannot hold
/// at all (most C0 controls) become U+FFFD; tabs and line breaks are
/// written as references so attribute normalisation keeps them.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Writes an XES log (IEEE 1849-2016): one trace per instance, one event
/// per start or fire.
pub struct XesWriter<W: Write> {
    out: W,
    events: u64,
    traces: u64,
}

impl<W: Write> std::fmt::Debug for XesWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XesWriter")
            .field("traces", &self.traces)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// The XES lifecycle extension's transition an event stands for: its
/// standard model has `suspend`, `resume`, `ate_abort` (an activity
/// aborted: a cancel) and `pi_abort` (the whole process instance aborted:
/// a terminate); every other event is a `complete`.
fn xes_transition(event: &Event) -> &'static str {
    if event.kind != EventKind::Lifecycle {
        return "complete";
    }
    match event.event.parse::<strive_core::Operation>() {
        Ok(strive_core::Operation::Suspend) => "suspend",
        Ok(strive_core::Operation::Resume) => "resume",
        Ok(strive_core::Operation::Cancel) => "ate_abort",
        Ok(strive_core::Operation::Terminate) => "pi_abort",
        Err(_) => "unknown",
    }
}

fn attribute(
    out: &mut impl Write,
    indent: &str,
    kind: &str,
    key: &str,
    value: &str,
) -> io::Result<()> {
    writeln!(
        out,
        "{indent}<{kind} key=\"{}\" value=\"{}\"/>",
        xml_escape(key),
        xml_escape(value)
    )
}

impl<W: Write> XesWriter<W> {
    /// Starts the log on `out`, named `name`.
    pub fn new(mut out: W, name: &str) -> io::Result<XesWriter<W>> {
        out.write_all(
            concat!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                "<log xes.version=\"1849-2016\" xes.features=\"nested-attributes\" xmlns=\"http://www.xes-standard.org/\">\n",
                "  <extension name=\"Concept\" prefix=\"concept\" uri=\"http://www.xes-standard.org/concept.xesext\"/>\n",
                "  <extension name=\"Time\" prefix=\"time\" uri=\"http://www.xes-standard.org/time.xesext\"/>\n",
                "  <extension name=\"Lifecycle\" prefix=\"lifecycle\" uri=\"http://www.xes-standard.org/lifecycle.xesext\"/>\n",
                "  <extension name=\"Organizational\" prefix=\"org\" uri=\"http://www.xes-standard.org/org.xesext\"/>\n",
                "  <global scope=\"trace\">\n",
                "    <string key=\"concept:name\" value=\"\"/>\n",
                "  </global>\n",
                "  <global scope=\"event\">\n",
                "    <string key=\"concept:name\" value=\"\"/>\n",
                "    <date key=\"time:timestamp\" value=\"1970-01-01T00:00:00Z\"/>\n",
                "    <string key=\"lifecycle:transition\" value=\"complete\"/>\n",
                "  </global>\n",
                "  <classifier name=\"Activity\" keys=\"concept:name\"/>\n",
                "  <classifier name=\"Activity and lifecycle\" keys=\"concept:name lifecycle:transition\"/>\n",
            )
            .as_bytes(),
        )?;
        attribute(&mut out, "  ", "string", "concept:name", name)?;
        Ok(XesWriter {
            out,
            events: 0,
            traces: 0,
        })
    }

    /// One instance's trace: `events` are its events (stored hash and
    /// decoded event), in order.
    pub fn trace<'a>(
        &mut self,
        instance: &Instance,
        events: impl IntoIterator<Item = (&'a str, &'a Event)>,
    ) -> io::Result<()> {
        let out = &mut self.out;
        out.write_all(b"  <trace>\n")?;
        attribute(out, "    ", "string", "concept:name", &instance.id)?;
        attribute(out, "    ", "string", "strive:workflow", &instance.workflow)?;
        attribute(
            out,
            "    ",
            "int",
            "strive:version",
            &instance.version.to_string(),
        )?;
        attribute(out, "    ", "string", "strive:stage", &instance.stage)?;
        attribute(
            out,
            "    ",
            "string",
            "strive:status",
            instance.status.as_str(),
        )?;
        if let Some(parent) = &instance.parent {
            attribute(out, "    ", "string", "strive:parent", parent)?;
        }
        for (hash, event) in events {
            let name = match event.kind {
                EventKind::Fire => event.transition.as_deref().unwrap_or(&event.event),
                _ => event.event.as_str(),
            };
            out.write_all(b"    <event>\n")?;
            let i = "      ";
            attribute(out, i, "string", "concept:name", name)?;
            attribute(out, i, "date", "time:timestamp", &event.at.to_string())?;
            attribute(
                out,
                i,
                "string",
                "lifecycle:transition",
                xes_transition(event),
            )?;
            attribute(out, i, "string", "org:resource", &event.actor.id)?;
            attribute(out, i, "string", "org:role", &event.actor.roles.join(";"))?;
            attribute(out, i, "string", "strive:event", &event.event)?;
            attribute(out, i, "int", "strive:seq", &event.seq.to_string())?;
            attribute(out, i, "int", "strive:gseq", &event.gseq.to_string())?;
            // In a store of several partitions `gseq` is the position in
            // the event's partition's log (left out for partition 0, as
            // the event's own encoding does).
            if event.partition != 0 {
                attribute(
                    out,
                    i,
                    "int",
                    "strive:partition",
                    &event.partition.to_string(),
                )?;
            }
            if let Some(from) = &event.from {
                attribute(out, i, "string", "strive:from", from)?;
            }
            attribute(out, i, "string", "strive:to", &event.to)?;
            if !event.payload.is_null() {
                attribute(
                    out,
                    i,
                    "string",
                    "strive:payload",
                    &event.payload.to_string(),
                )?;
            }
            if let Some(id) = &event.command_id {
                attribute(out, i, "string", "strive:command_id", id)?;
            }
            attribute(out, i, "string", "strive:hash", hash)?;
            out.write_all(b"    </event>\n")?;
            self.events += 1;
        }
        self.out.write_all(b"  </trace>\n")?;
        self.traces += 1;
        Ok(())
    }

    /// Ends the log; returns the output and the number of events written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.out.write_all(b"</log>\n")?;
        self.out.flush()?;
        Ok((self.out, self.events))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_as_rfc_4180_asks() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("学习"), "学习");
    }

    #[test]
    fn xml_text_is_escaped_and_kept_well_formed() {
        assert_eq!(
            xml_escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;"
        );
        assert_eq!(
            xml_escape("tab\there\nnul\u{0}"),
            "tab&#9;here&#10;nul\u{FFFD}"
        );
        assert_eq!(xml_escape("评议"), "评议");
    }
}
