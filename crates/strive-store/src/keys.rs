//! The key layout of store format 2. Every record lives in one ordered
//! keyspace, partitioned by a one-byte prefix, so that one atomic batch
//! covers them all. Numbers are big-endian so that key order is numeric
//! order; strings are ended by a 0 byte (ids may not contain one), so that
//! a prefix of ids never interleaves with another id. `docs/storage.md`
//! describes each record.
//!
//! Two kinds of record: the **log** (blocks of events and the Merkle tiles,
//! `b` and `r`), written with every commit group, and the **state**
//! (snapshots, indexes, idempotency records, definitions), which the log
//! determines and which is written back in batches (`writer::memtable`).

/// Metadata: `m` + name.
pub(crate) const META: u8 = b'm';
/// Definitions: `d` + workflow + 0 + version (u32).
pub(crate) const DEFINITION: u8 = b'd';
/// Definition hash to version: `h` + hash.
pub(crate) const DEFINITION_HASH: u8 = b'h';
/// Format-1 events: `e` + global sequence (u64). Read only by the upgrade.
pub(crate) const EVENT_V1: u8 = b'e';
/// Blocks of events: `b` + partition (u32) + first sequence (u64).
pub(crate) const BLOCK: u8 = b'b';
/// Merkle tiles: `r` + partition (u32) + level (u8) + index (u64).
pub(crate) const TILE: u8 = b'r';
/// Instance snapshots: `i` + instance.
pub(crate) const INSTANCE: u8 = b'i';
/// Full chunks of an instance's chain: `c` + instance + 0 + chunk (u32) ->
/// the log positions of [`CHAIN_CHUNK`] of its events.
pub(crate) const CHAIN: u8 = b'c';

/// How many log positions a full chain chunk holds.
pub(crate) const CHAIN_CHUNK: u64 = 64;
/// Idempotency records: `k` + command id.
pub(crate) const COMMAND: u8 = b'k';
/// Deadlines by due time: `t` + due (i64 microseconds, sign-flipped) + instance.
pub(crate) const DEADLINE: u8 = b't';
/// Instances by workflow and stage: `w` + workflow + 0 + stage + 0 + instance.
pub(crate) const BY_STAGE: u8 = b'w';
/// Instances by workflow: `f` + workflow + 0 + instance.
pub(crate) const BY_WORKFLOW: u8 = b'f';
/// Children by parent: `p` + parent + 0 + child.
pub(crate) const CHILD: u8 = b'p';
/// Confusable skeletons: `s` + workflow + 0 + skeleton + 0 -> instance id.
pub(crate) const SKELETON: u8 = b's';
/// Grants held (issue #11): `g` + actor + 0 + role + 0 + instance (empty
/// for a global grant) + 0 -> when and by whom it was granted.
pub(crate) const GRANT: u8 = b'g';
/// The head of the access chain (`@access`): the single key `a` -> its
/// last sequence number, hash and time, and the count of global admin
/// grants.
pub(crate) const ACCESS: u8 = b'a';
/// Actors' keys (issue #11): `y` + actor -> every key the actor was
/// registered, held or retired (`writer::access::ActorKeys`).
pub(crate) const ACTOR_KEYS: u8 = b'y';
/// Children counts: `n` + parent + 0 + child workflow + 0 + stage -> u64.
pub(crate) const CHILD_COUNT: u8 = b'n';

/// The key of a grant.
pub(crate) fn grant(grant: &strive_core::Grant) -> Vec<u8> {
    key(
        GRANT,
        &[&grant.actor, &grant.role, grant.on.as_deref().unwrap_or("")],
    )
}

/// The metadata key holding the store format version.
pub(crate) fn meta(name: &str) -> Vec<u8> {
    let mut key = vec![META];
    key.extend_from_slice(name.as_bytes());
    key
}

/// A key made of a prefix and string parts, each ended by 0.
pub(crate) fn key(prefix: u8, parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
    key.push(prefix);
    for part in parts {
        key.extend_from_slice(part.as_bytes());
        key.push(0);
    }
    key
}

pub(crate) fn definition(workflow: &str, version: u32) -> Vec<u8> {
    let mut k = key(DEFINITION, &[workflow]);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// A format-1 event key.
pub(crate) fn event_v1(gseq: u64) -> Vec<u8> {
    let mut k = vec![EVENT_V1];
    k.extend_from_slice(&gseq.to_be_bytes());
    k
}

/// The prefix of one partition's blocks.
pub(crate) fn blocks(partition: u32) -> Vec<u8> {
    let mut k = vec![BLOCK];
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// The block of `partition` whose first event is at `first`.
pub(crate) fn block(partition: u32, first: u64) -> Vec<u8> {
    let mut k = blocks(partition);
    k.extend_from_slice(&first.to_be_bytes());
    k
}

/// The first sequence number of a block key.
pub(crate) fn block_first(key: &[u8]) -> Option<u64> {
    u64_value(key.get(5..)?)
}

/// The tile `(level, index)` of `partition`'s Merkle log.
pub(crate) fn tile(partition: u32, level: u8, index: u64) -> Vec<u8> {
    let mut k = vec![TILE];
    k.extend_from_slice(&partition.to_be_bytes());
    k.push(level);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Chunk `chunk` of the chain of `instance`.
pub(crate) fn chain_chunk(instance: &str, chunk: u32) -> Vec<u8> {
    let mut k = key(CHAIN, &[instance]);
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// The metadata key of a partition: `m` + name + partition.
pub(crate) fn meta_partition(name: &str, partition: u32) -> Vec<u8> {
    let mut k = meta(name);
    k.push(0);
    k.extend_from_slice(&partition.to_be_bytes());
    k
}

/// Microseconds since the epoch, with the sign bit flipped so that
/// big-endian byte order is numeric order for negative times too.
pub(crate) fn deadline(due_micros: i64, instance: &str) -> Vec<u8> {
    let mut k = vec![DEADLINE];
    k.extend_from_slice(&((due_micros as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(instance.as_bytes());
    k
}

/// The due time and instance of a deadline key.
pub(crate) fn parse_deadline(key: &[u8]) -> Option<(i64, String)> {
    let due = key.get(1..9)?;
    let due = u64::from_be_bytes(due.try_into().ok()?) ^ (1 << 63);
    let instance = String::from_utf8(key.get(9..)?.to_vec()).ok()?;
    Some((due as i64, instance))
}

/// The end of the range of keys that start with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xFF: the range runs to the end of the keyspace.
    vec![0xFF; prefix.len() + 1]
}

/// The last string part of a key made by [`key`] from `prefix_len` bytes on.
pub(crate) fn tail(key: &[u8], prefix_len: usize) -> String {
    let rest = key.get(prefix_len..).unwrap_or_default();
    let rest = rest.strip_suffix(&[0]).unwrap_or(rest);
    String::from_utf8_lossy(rest).into_owned()
}

/// A key printed readably for error messages.
pub(crate) fn show(key: &[u8]) -> String {
    key.iter()
        .map(|&b| {
            if b.is_ascii_graphic() {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

pub(crate) fn u64_value(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_keys_sort_by_time_and_round_trip() {
        let early = deadline(-5, "b");
        let late = deadline(1_000, "a");
        assert!(early < late);
        assert_eq!(parse_deadline(&late), Some((1_000, "a".to_owned())));
        assert_eq!(parse_deadline(&early), Some((-5, "b".to_owned())));
    }

    #[test]
    fn ids_that_are_prefixes_do_not_interleave() {
        // "org-1" and "org-10": the 0 terminator keeps their chains apart.
        let a = chain_chunk("org-1", 2);
        let b = chain_chunk("org-10", 1);
        let a_end = prefix_end(&key(CHAIN, &["org-1"]));
        assert!(a < a_end && !(b >= key(CHAIN, &["org-1"]) && b < a_end));
        assert_eq!(prefix_end(&[b'a', 0xFF]), vec![b'b']);
    }

    #[test]
    fn block_keys_sort_by_partition_then_sequence() {
        assert!(block(0, 300) < block(0, 301));
        assert!(block(0, u64::MAX) < block(1, 1));
        assert_eq!(block_first(&block(3, 77)), Some(77));
        assert!(tile(0, 0, 5) < tile(0, 1, 0));
    }
}
