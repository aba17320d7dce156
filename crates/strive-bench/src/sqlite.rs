//! The SQLite peer: the same transition pattern (read the state, check it,
//! write the state, append the event) in WAL mode with `synchronous=FULL`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::Fallible;
use crate::limits::rate;

/// Where the event log lives.
#[derive(Debug, Clone, Copy)]
pub enum Schema {
    /// `events` keyed by `(instance, seq)` (a clustered `WITHOUT ROWID`
    /// table): appends from many instances land all over the tree.
    Keyed,
    /// `events` in append order (`gseq INTEGER PRIMARY KEY`) with an index
    /// on `(instance, seq)`.
    AppendOrder,
}

/// Transitions per second, committing every `per_commit` transitions.
pub fn transitions(
    dir: &Path,
    schema: Schema,
    per_commit: usize,
    event: &[u8],
    snapshot: &[u8],
    instances: usize,
    budget: Duration,
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
        Schema::AppendOrder => {
            "CREATE TABLE events(gseq INTEGER PRIMARY KEY, instance TEXT NOT NULL, \
             seq INTEGER NOT NULL, body BLOB NOT NULL); \
             CREATE INDEX events_by_instance ON events(instance, seq);"
        }
    };
    connection.execute_batch(&format!(
        "CREATE TABLE instances(id TEXT PRIMARY KEY, stage TEXT NOT NULL, \
         seq INTEGER NOT NULL, state BLOB NOT NULL); {events}"
    ))?;
    let ids: Vec<String> = (0..instances).map(crate::fixture::instance_id).collect();
    {
        let tx = connection.transaction()?;
        for id in &ids {
            tx.execute(
                "INSERT INTO instances(id, stage, seq, state) VALUES (?1, 's0', 1, ?2)",
                params![id, snapshot],
            )?;
        }
        tx.commit()?;
    }
    let stages = ["s0", "s1", "s2", "s3", "s4"];
    let mut turn = 0usize;
    let result = rate(budget, || {
        let tx = connection.transaction()?;
        {
            let mut read = tx.prepare_cached("SELECT stage, seq FROM instances WHERE id = ?1")?;
            let mut write = tx.prepare_cached(
                "UPDATE instances SET stage = ?2, seq = ?3, state = ?4 WHERE id = ?1",
            )?;
            let mut append =
                tx.prepare_cached("INSERT INTO events(instance, seq, body) VALUES (?1, ?2, ?3)")?;
            for _ in 0..per_commit {
                let id = &ids[turn % instances];
                turn += 1;
                let (stage, seq): (String, i64) = read
                    .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?
                    .ok_or("missing instance")?;
                let index = stages
                    .iter()
                    .position(|s| *s == stage)
                    .ok_or("unknown stage")?;
                let next = stages[(index + 1) % stages.len()];
                write.execute(params![id, next, seq + 1, snapshot])?;
                append.execute(params![id, seq + 1, event])?;
            }
        }
        tx.commit()?;
        Ok(per_commit as u64)
    });
    drop(connection);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    result
}
