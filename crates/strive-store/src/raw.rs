//! Raw access to a closed store's log, for the tamper tests: what a forger
//! with write access to the files could do to the events, expressed per
//! log position whatever the block layout. Compiled only with the
//! `failpoints` feature, which only the tests turn on.

use crate::backend::Backend;
use crate::block::{self, DEFAULT_CODEC};
use crate::error::StorageError;
use crate::keys;
use crate::log::LogReader;
use crate::records::InstanceRecord;

/// The event at `position` of partition 0's log as `digest (32 bytes) ||
/// canonical bytes`.
pub fn event(backend: &dyn Backend, position: u64) -> Result<Option<Vec<u8>>, StorageError> {
    event_in(backend, 0, position)
}

/// The event at `position` of `partition`'s log, as [`event`] gives it.
pub fn event_in(
    backend: &dyn Backend,
    partition: u32,
    position: u64,
) -> Result<Option<Vec<u8>>, StorageError> {
    let log = LogReader {
        backend,
        partition,
        cache: None,
    };
    let Some((first, block)) = log.block_at(position)? else {
        return Ok(None);
    };
    let index = (position - first) as usize;
    let mut value = block.digests[index].to_vec();
    value.extend_from_slice(&block.events[index]);
    Ok(Some(value))
}

/// Replaces the event at `position` of partition 0's log by `value`
/// (`digest || bytes`, taken as is, so a forger may store any digest), or
/// removes it with `None`, leaving a gap at its position.
pub fn put_event(
    backend: &dyn Backend,
    position: u64,
    value: Option<Vec<u8>>,
) -> Result<(), StorageError> {
    put_event_in(backend, 0, position, value)
}

/// [`put_event`] in `partition`'s log.
pub fn put_event_in(
    backend: &dyn Backend,
    partition: u32,
    position: u64,
    value: Option<Vec<u8>>,
) -> Result<(), StorageError> {
    let log = LogReader {
        backend,
        partition,
        cache: None,
    };
    let Some((first, decoded)) = log.block_at(position)? else {
        return Err(StorageError::Corrupt {
            key: format!("event {position}"),
            message: "no such event".to_owned(),
        });
    };
    let index = (position - first) as usize;
    let mut events: Vec<([u8; 32], Vec<u8>)> = decoded
        .digests
        .iter()
        .copied()
        .zip(decoded.events.iter().cloned())
        .collect();
    let mut writes = vec![(keys::block(partition, first), None)];
    let encode = |events: &[([u8; 32], Vec<u8>)]| {
        let refs: Vec<([u8; 32], &[u8])> = events.iter().map(|(d, b)| (*d, b.as_slice())).collect();
        block::encode(&refs, DEFAULT_CODEC)
    };
    match value {
        Some(value) => {
            let mut digest = [0; 32];
            digest.copy_from_slice(value.get(..32).unwrap_or(&[0; 32]));
            events[index] = (digest, value.get(32..).unwrap_or_default().to_vec());
            writes[0] = (keys::block(partition, first), Some(encode(&events)));
        }
        None => {
            let after = events.split_off(index + 1);
            events.pop();
            if !events.is_empty() {
                writes.push((keys::block(partition, first), Some(encode(&events))));
            }
            if !after.is_empty() {
                writes.push((keys::block(partition, position + 1), Some(encode(&after))));
            }
        }
    }
    backend.apply(writes)
}

/// The log positions of `instance`'s events, as (position, seq), from the
/// store's chain (its chunks and its snapshot's tail).
pub fn chain(backend: &dyn Backend, instance: &str) -> Result<Vec<(u64, u64)>, StorageError> {
    let key = keys::key(keys::INSTANCE, &[instance]);
    let Some(bytes) = backend.get(&key)? else {
        return Ok(Vec::new());
    };
    let record: InstanceRecord =
        serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
            key: keys::show(&key),
            message: e.to_string(),
        })?;
    let mut positions = Vec::new();
    let prefix = keys::key(keys::CHAIN, &[instance]);
    for entry in backend.range(&prefix, &keys::prefix_end(&prefix)) {
        let (_, value) = entry?;
        positions.extend(value.chunks_exact(8).filter_map(keys::u64_value));
    }
    positions.extend(record.chain);
    Ok(positions.into_iter().zip(1..).collect())
}

/// The last position of partition 0's log (0 when empty).
pub fn last(backend: &dyn Backend) -> Result<u64, StorageError> {
    last_in(backend, 0)
}

/// The last position of `partition`'s log (0 when empty).
pub fn last_in(backend: &dyn Backend, partition: u32) -> Result<u64, StorageError> {
    LogReader {
        backend,
        partition,
        cache: None,
    }
    .last()
}

/// The partition whose log holds `instance`'s events, from its stored
/// record (`None` for an unknown instance).
pub fn partition_of(backend: &dyn Backend, instance: &str) -> Result<Option<u32>, StorageError> {
    let key = keys::key(keys::INSTANCE, &[instance]);
    let Some(bytes) = backend.get(&key)? else {
        return Ok(None);
    };
    let record: InstanceRecord =
        serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
            key: keys::show(&key),
            message: e.to_string(),
        })?;
    Ok(Some(record.partition))
}
