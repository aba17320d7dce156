//! The limits: what the disk and raw sled can do with records the size of
//! strive's events, before any engine logic.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::Fallible;

/// Runs `step` (which does some operations and returns how many) until
/// `budget` has passed; returns operations per second.
pub fn rate(budget: Duration, mut step: impl FnMut() -> Fallible<u64>) -> Fallible<f64> {
    let start = Instant::now();
    let mut ops = 0u64;
    loop {
        ops += step()?;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return Ok(ops as f64 / elapsed.as_secs_f64());
        }
    }
}

/// `write` + `fdatasync` of `batch` records at a time, appending to a log
/// file on the store's disk: records per second.
pub fn fdatasync(dir: &Path, record: &[u8], batch: usize, budget: Duration) -> Fallible<f64> {
    let path = dir.join(format!("fdatasync-{batch}.log"));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let buffer: Vec<u8> = record.repeat(batch);
    let result = rate(budget, || {
        file.write_all(&buffer)?;
        file.sync_data()?;
        Ok(batch as u64)
    });
    drop(file);
    std::fs::remove_file(&path)?;
    result
}

/// `write` + `fdatasync` of one record at a time, overwriting a file
/// preallocated (and synced) beforehand, as sled's log and SQLite's
/// reused WAL do: the file's size never changes, so `fdatasync` has no
/// metadata to journal and costs one device cache flush. Records per
/// second.
pub fn fdatasync_preallocated(dir: &Path, record: &[u8], budget: Duration) -> Fallible<f64> {
    use std::os::unix::fs::FileExt;
    const SIZE: u64 = 64 << 20;
    let path = dir.join("fdatasync-preallocated.log");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    // Write the whole file (not `set_len`, which leaves unwritten extents
    // whose first write is a metadata change again).
    let chunk = vec![0u8; 1 << 20];
    for offset in (0..SIZE).step_by(chunk.len()) {
        file.write_all_at(&chunk, offset)?;
    }
    file.sync_all()?;
    let length = record.len() as u64;
    let mut offset = 0u64;
    let result = rate(budget, || {
        if offset + length > SIZE {
            offset = 0;
        }
        file.write_all_at(record, offset)?;
        file.sync_data()?;
        offset += length;
        Ok(1)
    });
    drop(file);
    std::fs::remove_file(&path)?;
    result
}

fn sled_open(path: &Path) -> Fallible<sled::Db> {
    Ok(sled::Config::new()
        .path(path)
        .flush_every_ms(Some(500))
        .open()?)
}

/// One `insert` + `flush` per record.
pub fn sled_insert_flush(dir: &Path, record: &[u8], budget: Duration) -> Fallible<f64> {
    let db = sled_open(&dir.join("sled-insert"))?;
    let mut n = 0u64;
    let result = rate(budget, || {
        n += 1;
        db.insert(n.to_be_bytes(), record)?;
        db.flush()?;
        Ok(1)
    });
    drop(db);
    std::fs::remove_dir_all(dir.join("sled-insert"))?;
    result
}

/// `batch` inserts in one `apply_batch`, then `flush`: records per second.
pub fn sled_batch_flush(
    dir: &Path,
    record: &[u8],
    batch: usize,
    budget: Duration,
) -> Fallible<f64> {
    let db = sled_open(&dir.join("sled-batch"))?;
    let mut n = 0u64;
    let result = rate(budget, || {
        let mut writes = sled::Batch::default();
        for _ in 0..batch {
            n += 1;
            writes.insert(&n.to_be_bytes(), record);
        }
        db.apply_batch(writes)?;
        db.flush()?;
        Ok(batch as u64)
    });
    drop(db);
    std::fs::remove_dir_all(dir.join("sled-batch"))?;
    result
}

/// The naive engine: per transition, one sled transaction over an
/// instances tree and an events tree (read the state, check it, write the
/// state, append the event keyed by instance and sequence), then `flush`.
pub fn sled_naive(
    dir: &Path,
    event: &[u8],
    snapshot: &[u8],
    instances: usize,
    budget: Duration,
) -> Fallible<f64> {
    use sled::Transactional;
    use sled::transaction::ConflictableTransactionError;

    let path = dir.join("sled-naive");
    let db = sled_open(&path)?;
    let states = db.open_tree("instances")?;
    let events = db.open_tree("events")?;
    let ids: Vec<String> = (0..instances).map(crate::fixture::instance_id).collect();
    let mut seqs = vec![1u64; instances];
    for id in &ids {
        let mut state = 1u64.to_be_bytes().to_vec();
        state.extend_from_slice(snapshot);
        states.insert(id.as_bytes(), state)?;
    }
    db.flush()?;
    let mut turn = 0usize;
    let result = rate(budget, || {
        let index = turn % instances;
        turn += 1;
        let id = ids[index].as_bytes();
        let expected = seqs[index];
        (&states, &events)
            .transaction(|(states, events)| {
                let current = states
                    .get(id)?
                    .ok_or(ConflictableTransactionError::Abort("missing instance"))?;
                let seq = u64::from_be_bytes(current[..8].try_into().unwrap_or_default());
                if seq != expected {
                    return Err(ConflictableTransactionError::Abort("sequence moved"));
                }
                let mut state = (seq + 1).to_be_bytes().to_vec();
                state.extend_from_slice(snapshot);
                states.insert(id, state)?;
                let mut key = id.to_vec();
                key.push(0);
                key.extend_from_slice(&(seq + 1).to_be_bytes());
                events.insert(key, event)?;
                Ok(())
            })
            .map_err(|e| format!("naive transaction: {e:?}"))?;
        db.flush()?;
        seqs[index] += 1;
        Ok(1)
    });
    drop((states, events, db));
    std::fs::remove_dir_all(&path)?;
    result
}

/// What sled can do with exactly the writes store format 1 made for a
/// transition, without any engine logic: per transition the event under its
/// global sequence (hash + bytes), the chain entry, the instance snapshot,
/// and the stage index moved (one delete, one insert); `per_batch`
/// transitions per `apply_batch`, then `flush`. Transitions per second: the
/// ceiling of format 1's group commit on sled, kept as the baseline format 2
/// (blocks, state written back) was built to beat.
pub fn sled_shaped(
    dir: &Path,
    event: &[u8],
    snapshot: &[u8],
    instances: usize,
    per_batch: usize,
    budget: Duration,
) -> Fallible<f64> {
    fn key(prefix: u8, parts: &[&str]) -> Vec<u8> {
        let mut key = vec![prefix];
        for part in parts {
            key.extend_from_slice(part.as_bytes());
            key.push(0);
        }
        key
    }
    let path = dir.join(format!("sled-shaped-{per_batch}"));
    let db = sled_open(&path)?;
    let ids: Vec<String> = (0..instances).map(crate::fixture::instance_id).collect();
    let stages = ["s0", "s1", "s2", "s3", "s4"];
    let mut seqs = vec![1u64; instances];
    let mut value = vec![0u8; 32];
    value.extend_from_slice(event);
    let (mut gseq, mut turn) = (0u64, 0usize);
    let result = rate(budget, || {
        let mut writes = sled::Batch::default();
        for _ in 0..per_batch {
            let index = turn % instances;
            turn += 1;
            let id = ids[index].as_str();
            gseq += 1;
            seqs[index] += 1;
            let seq = seqs[index];
            writes.insert(
                [&[b'e'][..], &gseq.to_be_bytes()].concat(),
                value.as_slice(),
            );
            let mut chain = key(b'c', &[id]);
            chain.extend_from_slice(&seq.to_be_bytes());
            writes.insert(chain, &gseq.to_be_bytes());
            writes.insert(key(b'i', &[id]), snapshot);
            let (from, to) = (stages[seq as usize % 5], stages[(seq as usize + 1) % 5]);
            writes.remove(key(b'w', &["bench", from, id]));
            writes.insert(key(b'w', &["bench", to, id]), &[]);
        }
        writes.insert(b"mgseq", &gseq.to_be_bytes());
        db.apply_batch(writes)?;
        db.flush()?;
        Ok(per_batch as u64)
    });
    drop(db);
    std::fs::remove_dir_all(&path)?;
    result
}
