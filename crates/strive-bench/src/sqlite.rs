//! The SQLite peer: the same transition pattern (read the state, check it,
//! write the state, append the event) in WAL mode with `synchronous=FULL`,
//! and the stronger shape an engine built on SQLite would take: the
//! instances' state kept in memory, so that a commit only appends the
//! events and upserts the snapshots that changed.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::Fallible;
use crate::limits::rate;

/// Where the event log lives and where the state is read from.
#[derive(Debug, Clone, Copy)]
pub enum Schema {
    /// `events` keyed by `(instance, seq)` (a clustered `WITHOUT ROWID`
    /// table): appends from many instances land all over the tree.
    Keyed,
    /// `events` in append order (`gseq INTEGER PRIMARY KEY`) with an index
    /// on `(instance, seq)`.
    AppendOrder,
    /// The append-order log of [`Schema::AppendOrder`], with the state of
    /// every instance kept in a `HashMap` in the bench process: a
    /// transition is checked against memory, and a commit appends its
    /// events and upserts each changed instance's snapshot once.
    MemoryState,
}

/// What every SQLite run writes: strive's record sizes over `instances`
/// instances, for `budget`.
pub struct Workload<'a> {
    pub event: &'a [u8],
    pub snapshot: &'a [u8],
    pub instances: usize,
    pub budget: Duration,
}

/// The stages of the bench workflow's cycle.
const STAGES: [&str; 5] = ["s0", "s1", "s2", "s3", "s4"];

/// Transitions per second, committing every `per_commit` transitions.
pub fn transitions(
    dir: &Path,
    schema: Schema,
    per_commit: usize,
    work: &Workload<'_>,
) -> Fallible<f64> {
    let path = dir.join(format!("sqlite-{schema:?}-{per_commit}.db"));
    let mut connection = Connection::open(&path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    let events = match schema {
        Schema::Keyed => {
            "CREATE TABLE events(instance TEXT NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, \
             PRIMARY KEY (instance, seq)) WITHOUT ROWID;"
        }
        Schema::AppendOrder | Schema::MemoryState => {
            "CREATE TABLE events(gseq INTEGER PRIMARY KEY, instance TEXT NOT NULL, \
             seq INTEGER NOT NULL, body BLOB NOT NULL); \
             CREATE INDEX events_by_instance ON events(instance, seq);"
        }
    };
    connection.execute_batch(&format!(
        "CREATE TABLE instances(id TEXT PRIMARY KEY, stage TEXT NOT NULL, \
         seq INTEGER NOT NULL, state BLOB NOT NULL); {events}"
    ))?;
    let ids: Vec<String> = (0..work.instances)
        .map(crate::fixture::instance_id)
        .collect();
    {
        let tx = connection.transaction()?;
        for id in &ids {
            tx.execute(
                "INSERT INTO instances(id, stage, seq, state) VALUES (?1, 's0', 1, ?2)",
                params![id, work.snapshot],
            )?;
        }
        tx.commit()?;
    }
    let result = match schema {
        Schema::Keyed | Schema::AppendOrder => {
            stored_state(&mut connection, &ids, per_commit, work)
        }
        Schema::MemoryState => memory_state(&mut connection, &ids, per_commit, work),
    };
    drop(connection);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    result
}

/// Appends one event to the log (either schema).
const APPEND: &str = "INSERT INTO events(instance, seq, body) VALUES (?1, ?2, ?3)";

/// Runs `group` in a transaction, commits, and again until `budget` has
/// passed: transitions per second, at `per_commit` per group.
fn groups(
    connection: &mut Connection,
    per_commit: usize,
    budget: Duration,
    mut group: impl FnMut(&Transaction<'_>) -> Fallible<()>,
) -> Fallible<f64> {
    rate(budget, || {
        let tx = connection.transaction()?;
        group(&tx)?;
        tx.commit()?;
        Ok(per_commit as u64)
    })
}

/// Every transition reads the instance's row, checks it, updates it and
/// appends the event.
fn stored_state(
    connection: &mut Connection,
    ids: &[String],
    per_commit: usize,
    work: &Workload<'_>,
) -> Fallible<f64> {
    let mut turn = 0usize;
    groups(connection, per_commit, work.budget, |tx| {
        let mut read = tx.prepare_cached("SELECT stage, seq FROM instances WHERE id = ?1")?;
        let mut write = tx.prepare_cached(
            "UPDATE instances SET stage = ?2, seq = ?3, state = ?4 WHERE id = ?1",
        )?;
        let mut append = tx.prepare_cached(APPEND)?;
        for _ in 0..per_commit {
            let id = &ids[turn % ids.len()];
            turn += 1;
            let (stage, seq): (String, i64) = read
                .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?
                .ok_or("missing instance")?;
            let index = STAGES
                .iter()
                .position(|s| *s == stage)
                .ok_or("unknown stage")?;
            let next = STAGES[(index + 1) % STAGES.len()];
            write.execute(params![id, next, seq + 1, work.snapshot])?;
            append.execute(params![id, seq + 1, work.event])?;
        }
        Ok(())
    })
}

/// The state lives in memory (stage and sequence per instance id, as an
/// engine's cache would hold them); a commit appends the group's events
/// and then upserts each changed instance's snapshot once, in key order.
fn memory_state(
    connection: &mut Connection,
    ids: &[String],
    per_commit: usize,
    work: &Workload<'_>,
) -> Fallible<f64> {
    let mut states: HashMap<&str, (usize, i64)> =
        ids.iter().map(|id| (id.as_str(), (0, 1))).collect();
    let mut changed: BTreeSet<&str> = BTreeSet::new();
    let mut turn = 0usize;
    groups(connection, per_commit, work.budget, |tx| {
        let mut append = tx.prepare_cached(APPEND)?;
        let mut upsert = tx.prepare_cached(
            "INSERT INTO instances(id, stage, seq, state) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT(id) DO UPDATE SET stage = excluded.stage, seq = excluded.seq, \
             state = excluded.state",
        )?;
        for _ in 0..per_commit {
            let id = ids[turn % ids.len()].as_str();
            turn += 1;
            let (stage, seq) = states.get_mut(id).ok_or("missing instance")?;
            *stage = (*stage + 1) % STAGES.len();
            *seq += 1;
            append.execute(params![id, *seq, work.event])?;
            changed.insert(id);
        }
        for id in std::mem::take(&mut changed) {
            let (stage, seq) = states.get(id).ok_or("missing instance")?;
            upsert.execute(params![id, STAGES[*stage], *seq, work.snapshot])?;
        }
        Ok(())
    })
}
