//! Blocks: the events of a commit group stored together in a few sled
//! records instead of one record each (issue #10).
//!
//! A block value is
//!
//! ```text
//! version u8 (2) | codec u8 | count u32 | raw length u32 | count x 32-byte event digests | payload
//! ```
//!
//! (numbers big-endian), where the payload, once decompressed, is each
//! event's canonical bytes preceded by their length (u32). The digests stay
//! outside the compressed payload: they do not compress, and the verifier and
//! the Merkle tiles need them without decompressing anything. Decompression
//! gives back the exact bytes that were hashed: nothing re-encodes an event.

use std::cell::RefCell;

use crate::error::StorageError;

thread_local! {
    // A zstd context costs an allocation of some hundred kilobytes and its
    // initialisation; blocks are small, so making one per block dominated
    // reading the log (issue #10's audit figures). One per thread is kept.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        RefCell::new(zstd::bulk::Compressor::new(1).ok());
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        RefCell::new(zstd::bulk::Decompressor::new().ok());
}

fn zstd_compress(raw: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|cell| match cell.borrow_mut().as_mut() {
        Some(compressor) => compressor.compress(raw).unwrap_or_default(),
        None => zstd::bulk::compress(raw, 1).unwrap_or_default(),
    })
}

fn zstd_decompress(payload: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| match cell.borrow_mut().as_mut() {
        Some(decompressor) => decompressor.decompress(payload, capacity),
        None => zstd::bulk::decompress(payload, capacity),
    })
}

/// The block layout version.
const BLOCK_VERSION: u8 = 2;

/// The fixed header: version, codec, count, raw length.
const HEADER: usize = 10;

/// The largest stored block value the writer aims for. sled 0.34 keeps a
/// leaf of up to 16 entries (it splits above that) inline in its log only
/// while the serialized leaf fits in a quarter of a 512 KiB segment
/// (`pagecache/logger.rs`, `over_blob_threshold`); beyond that every rewrite
/// of the leaf goes to a blob file of its own. 16 blocks of 7 KiB stay
/// under that. A single event larger than this still makes a block of one.
pub(crate) const MAX_BLOCK_BYTES: usize = 7 * 1024;

/// The most decompressed bytes a block may claim, so that a damaged length
/// cannot make the reader allocate without bound.
const MAX_RAW_BYTES: usize = 64 * 1024 * 1024;

/// How a block's payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    /// Stored as is.
    None = 0,
    /// LZ4 (lz4_flex, block format).
    Lz4 = 1,
    /// Zstandard (level 1).
    Zstd = 2,
}

impl Codec {
    fn from_byte(byte: u8) -> Option<Codec> {
        match byte {
            0 => Some(Codec::None),
            1 => Some(Codec::Lz4),
            2 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// The codec new blocks are written with (chosen by measurement, see
/// docs/performance.md, "Compression of event blocks").
pub(crate) const DEFAULT_CODEC: Codec = Codec::Zstd;

/// A decoded block: the digests and exact bytes of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) digests: Vec<[u8; 32]>,
    pub(crate) events: Vec<Vec<u8>>,
}

/// Encodes events (digest, canonical bytes) into one block value.
pub(crate) fn encode(events: &[([u8; 32], &[u8])], codec: Codec) -> Vec<u8> {
    let raw_len: usize = events.iter().map(|(_, bytes)| 4 + bytes.len()).sum();
    let mut raw = Vec::with_capacity(raw_len);
    for (_, bytes) in events {
        raw.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        raw.extend_from_slice(bytes);
    }
    let payload = match codec {
        Codec::None => raw.clone(),
        Codec::Lz4 => lz4_flex::block::compress(&raw),
        // Level 1: the writer compresses on the commit path, where speed
        // matters more than the last few percent of ratio.
        Codec::Zstd => zstd_compress(&raw),
    };
    // A codec that fails or expands the data is not worth its cost.
    let (codec, payload) = if payload.is_empty() && !raw.is_empty() || payload.len() >= raw.len() {
        (Codec::None, raw)
    } else {
        (codec, payload)
    };
    let mut value = Vec::with_capacity(HEADER + 32 * events.len() + payload.len());
    value.push(BLOCK_VERSION);
    value.push(codec as u8);
    value.extend_from_slice(&(events.len() as u32).to_be_bytes());
    value.extend_from_slice(&(raw_len as u32).to_be_bytes());
    for (digest, _) in events {
        value.extend_from_slice(digest);
    }
    value.extend_from_slice(&payload);
    value
}

/// Splits a group's events into block values of at most
/// [`MAX_BLOCK_BYTES`] each (a single larger event makes a block of one),
/// returning each block's event count with its value.
pub(crate) fn encode_group(events: &[([u8; 32], &[u8])], codec: Codec) -> Vec<(usize, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![events];
    while let Some(part) = pending.pop() {
        if part.is_empty() {
            continue;
        }
        let value = encode(part, codec);
        if value.len() <= MAX_BLOCK_BYTES || part.len() == 1 {
            out.push((part.len(), value));
        } else {
            let (left, right) = part.split_at(part.len() / 2);
            // Depth first, left before right, so blocks come out in order.
            pending.push(right);
            pending.push(left);
        }
    }
    out
}

/// The number of events in a block value, from its header alone.
pub(crate) fn count(value: &[u8]) -> Option<u64> {
    let bytes = value.get(2..6)?;
    Some(u64::from(u32::from_be_bytes(bytes.try_into().ok()?)))
}

/// The digests of a block's events, without decompressing the payload.
pub(crate) fn digests(value: &[u8], key: &str) -> Result<Vec<[u8; 32]>, StorageError> {
    let (n, _, _) = header(value, key)?;
    let area = value
        .get(HEADER..HEADER + 32 * n)
        .ok_or_else(|| corrupt(key, "the block is shorter than its digests"))?;
    Ok(area
        .chunks_exact(32)
        .map(|chunk| {
            let mut digest = [0; 32];
            digest.copy_from_slice(chunk);
            digest
        })
        .collect())
}

/// A block decompressed but not cut into events: its digests, its raw
/// payload, and where in the payload each event's exact bytes are. The bulk
/// reader (`scan.rs`) hands this on as is, so reading the log costs one
/// allocation per block rather than one per event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawBlock {
    pub(crate) digests: Vec<[u8; 32]>,
    pub(crate) raw: Vec<u8>,
    pub(crate) spans: Vec<std::ops::Range<usize>>,
}

/// Decodes a whole block value.
pub(crate) fn decode(value: &[u8], key: &str) -> Result<Block, StorageError> {
    let RawBlock {
        digests,
        raw,
        spans,
    } = decode_raw(value, key)?;
    let events = spans.into_iter().map(|span| raw[span].to_vec()).collect();
    Ok(Block { digests, events })
}

/// Decompresses a block value and finds its events' bytes, checking that
/// the lengths account for the payload exactly.
pub(crate) fn decode_raw(value: &[u8], key: &str) -> Result<RawBlock, StorageError> {
    let (n, codec, raw_len) = header(value, key)?;
    let digests = digests(value, key)?;
    let payload = value.get(HEADER + 32 * n..).unwrap_or_default();
    let raw = match codec {
        Codec::None => payload.to_vec(),
        Codec::Lz4 => lz4_flex::block::decompress(payload, raw_len)
            .map_err(|e| corrupt(key, &format!("the block does not decompress: {e}")))?,
        Codec::Zstd => zstd_decompress(payload, raw_len)
            .map_err(|e| corrupt(key, &format!("the block does not decompress: {e}")))?,
    };
    if raw.len() != raw_len {
        return Err(corrupt(
            key,
            &format!(
                "the block decompresses to {} bytes, not the {raw_len} it records",
                raw.len()
            ),
        ));
    }
    let mut spans = Vec::with_capacity(n);
    let mut at = 0usize;
    for _ in 0..n {
        let len = raw
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| corrupt(key, "the block ends inside an event's length"))?
            as usize;
        let start = at + 4;
        let end = start
            .checked_add(len)
            .filter(|end| *end <= raw.len())
            .ok_or_else(|| corrupt(key, "the block ends inside an event"))?;
        spans.push(start..end);
        at = end;
    }
    if at != raw.len() {
        return Err(corrupt(key, "the block has bytes after its last event"));
    }
    Ok(RawBlock {
        digests,
        raw,
        spans,
    })
}

fn header(value: &[u8], key: &str) -> Result<(usize, Codec, usize), StorageError> {
    if value.len() < HEADER {
        return Err(corrupt(key, "the block is shorter than its header"));
    }
    if value[0] != BLOCK_VERSION {
        return Err(corrupt(
            key,
            &format!(
                "unknown block version {} (expected {BLOCK_VERSION})",
                value[0]
            ),
        ));
    }
    let codec = Codec::from_byte(value[1])
        .ok_or_else(|| corrupt(key, &format!("unknown block codec {}", value[1])))?;
    let n = count(value).unwrap_or(0) as usize;
    let raw_len = value
        .get(6..10)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .unwrap_or(0) as usize;
    if n == 0 {
        return Err(corrupt(key, "the block holds no event"));
    }
    if raw_len > MAX_RAW_BYTES {
        return Err(corrupt(
            key,
            &format!("the block claims {raw_len} bytes, more than any block holds"),
        ));
    }
    Ok((n, codec, raw_len))
}

fn corrupt(key: &str, message: &str) -> StorageError {
    StorageError::Corrupt {
        key: key.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<([u8; 32], Vec<u8>)> {
        (0..n)
            .map(|i| {
                let bytes = format!(
                    r#"{{"v":1,"gseq":{i},"instance":"org-{i}","payload":{{"note":"{}"}}}}"#,
                    "x".repeat(i % 300)
                )
                .into_bytes();
                (strive_core::event_digest(&bytes), bytes)
            })
            .collect()
    }

    #[test]
    fn every_codec_round_trips_the_exact_bytes() {
        let events = sample(40);
        let refs: Vec<_> = events.iter().map(|(d, b)| (*d, b.as_slice())).collect();
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd] {
            let value = encode(&refs, codec);
            let block = decode(&value, "b").expect("decodes");
            assert_eq!(block.events.len(), 40);
            for (i, (digest, bytes)) in events.iter().enumerate() {
                assert_eq!(&block.events[i], bytes, "{codec:?}");
                assert_eq!(&block.digests[i], digest);
            }
            assert_eq!(digests(&value, "b").expect("digests"), block.digests);
        }
    }

    #[test]
    fn groups_split_into_blocks_under_the_cap_in_order() {
        let events = sample(500);
        let refs: Vec<_> = events.iter().map(|(d, b)| (*d, b.as_slice())).collect();
        let blocks = encode_group(&refs, Codec::Zstd);
        assert!(blocks.len() > 1);
        let mut all = Vec::new();
        for (n, value) in &blocks {
            assert!(value.len() <= MAX_BLOCK_BYTES);
            let block = decode(value, "b").expect("decodes");
            assert_eq!(block.events.len(), *n);
            all.extend(block.events);
        }
        let expected: Vec<_> = events.into_iter().map(|(_, b)| b).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn damaged_blocks_are_errors_not_panics() {
        let events = sample(10);
        let refs: Vec<_> = events.iter().map(|(d, b)| (*d, b.as_slice())).collect();
        let value = encode(&refs, Codec::Zstd);
        for cut in 0..value.len() {
            assert!(decode(&value[..cut], "b").is_err(), "cut at {cut}");
        }
        // A damaged header is refused; a damaged payload may decode to other
        // bytes (the stored digests then disagree, which `verify` reports),
        // but never panics.
        for at in [0, 1] {
            let mut bad = value.clone();
            bad[at] ^= 0x5A;
            assert!(decode(&bad, "b").is_err(), "flip at {at}");
        }
        for at in HEADER + 320..value.len() {
            let mut bad = value.clone();
            bad[at] ^= 0x5A;
            let _ = decode(&bad, "b");
        }
    }
}
