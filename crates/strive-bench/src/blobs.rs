//! Where sled 0.34 moves a page into a blob file of its own, measured
//! (issue #10: format 2's blocks must stay under it).
//!
//! sled 0.34.7 logs a page write as a blob, a file under `blobs/`, when
//! its header (32 bytes) and serialised page exceed `segment_size /
//! MINIMUM_ITEMS_PER_SEGMENT - SEG_HEADER_LEN` = 512 KiB / 4 - 20 =
//! 131,052 bytes with the default segment size (`pagecache/logger.rs`,
//! `reserve_inner`). An insert logs a link (the one key and value); every
//! tenth link (`PAGE_CONSOLIDATION_THRESHOLD`) and every split logs the
//! whole leaf instead, and a leaf splits above 16 entries (`node.rs`,
//! `should_split`), in half. So a leaf of sequential keys grows to 17
//! entries, and the whole-leaf writes of values above ~7.5 KiB cross the
//! threshold long before one value does.

use std::path::Path;
use std::time::Instant;

use crate::Fallible;
use crate::report::{Report, format_count, format_value};
use crate::scale::disk_bytes;

/// The value sizes measured under sequential keys, in KiB.
pub const VALUE_KIB: [usize; 7] = [4, 6, 7, 8, 12, 16, 32];

/// The value sizes measured under scattered keys, in KiB: around the
/// threshold a leaf of 17 entries crosses.
pub const SCATTERED_KIB: [usize; 3] = [6, 7, 8];

/// The order the keys are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// 0, 1, 2, ...: every write lands at the right edge of the tree, as a
    /// log's blocks under their first sequence number would.
    Sequential,
    /// The same keys multiplied by an odd constant (a bijection of u64):
    /// writes land all over the tree, so leaves fill up to 17 entries
    /// before they split.
    Scattered,
}

impl Order {
    fn key(self, n: u64) -> [u8; 8] {
        match self {
            Order::Sequential => n.to_be_bytes(),
            Order::Scattered => n.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes(),
        }
    }
}

/// What writing one value size measured.
pub struct Written {
    /// Value bytes written per second, in MB.
    pub mb_s: f64,
    /// Values written per second.
    pub values_s: f64,
    /// Bytes on disk (every file, `blobs/` included) per value byte,
    /// after the database was closed.
    pub disk_per_byte: f64,
    /// Files in `blobs/` after closing.
    pub blob_files: usize,
    /// Their bytes.
    pub blob_bytes: u64,
    /// The most files `blobs/` held while writing (looked at every 16
    /// values: sled removes a blob once its page is rewritten).
    pub peak_blob_files: usize,
}

/// The files in `dir/blobs` and their bytes.
fn blobs(dir: &Path) -> Fallible<(usize, u64)> {
    match std::fs::read_dir(dir.join("blobs")) {
        Ok(entries) => {
            let (mut files, mut bytes) = (0, 0);
            for entry in entries {
                // sled removes stale blobs while it runs: one listed a
                // moment ago may be gone.
                match entry.and_then(|e| e.metadata()) {
                    Ok(meta) => {
                        files += 1;
                        bytes += meta.len();
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Ok((files, bytes))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok((0, 0)),
        Err(error) => Err(error.into()),
    }
}

/// Writes `total` bytes of `kib`-KiB values under 8-byte keys in `order`
/// into a fresh sled tree at `path` (the default segment size, the cache
/// and flush interval of strive's backend), one insert and one `flush` per
/// value, as a commit group writing one block would; then closes it and
/// counts what is on disk. Removes the tree.
pub fn write(path: &Path, order: Order, kib: usize, total: usize) -> Fallible<Written> {
    let value: Vec<u8> = (0..kib << 10).map(|n| (n * 131 % 251) as u8).collect();
    let count = (total / value.len()).max(1);
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(128 << 20)
        .flush_every_ms(Some(500))
        .open()?;
    let mut peak_blob_files = 0;
    let mut looking = std::time::Duration::ZERO;
    let start = Instant::now();
    for n in 0..count as u64 {
        db.insert(order.key(n), value.as_slice())?;
        db.flush()?;
        if n % 16 == 15 {
            // Looking costs a directory read; it is kept out of the rate.
            let look = Instant::now();
            peak_blob_files = peak_blob_files.max(blobs(path)?.0);
            looking += look.elapsed();
        }
    }
    let seconds = (start.elapsed() - looking).as_secs_f64();
    drop(db);
    let disk = disk_bytes(path)?;
    let (blob_files, blob_bytes) = blobs(path)?;
    std::fs::remove_dir_all(path)?;
    let written = (count * value.len()) as f64;
    Ok(Written {
        mb_s: written / 1e6 / seconds,
        values_s: count as f64 / seconds,
        disk_per_byte: disk as f64 / written,
        blob_files,
        blob_bytes,
        peak_blob_files: peak_blob_files.max(blob_files),
    })
}

/// The largest page sled 0.34 logs inline with the default segment size
/// (512 KiB / 4 - 20 bytes of segment header, less the 32-byte message
/// header): a page whose serialised form is larger goes to a blob file.
pub const INLINE_PAGE_LIMIT: usize = (512 << 10) / 4 - 20 - 32;

/// The blobs section of the table: for each value size in [`VALUE_KIB`],
/// `total` bytes written one value per flush, the rate in MB/s, and the
/// disk per value byte and the blob files in the note and a row.
pub fn section(report: &mut Report, dir: &Path, total: usize) -> Fallible<()> {
    let s = "sled blobs";
    let runs = VALUE_KIB
        .iter()
        .map(|&kib| (Order::Sequential, kib))
        .chain(SCATTERED_KIB.iter().map(|&kib| (Order::Scattered, kib)));
    for (order, kib) in runs {
        let (key, keys) = match order {
            Order::Sequential => ("", "sequential"),
            Order::Scattered => (".scattered", "scattered"),
        };
        let path = dir.join(format!("sled-blobs-{kib}{key}"));
        let written = write(&path, order, kib, total)?;
        report.add(
            &format!("blobs.{kib}k{key}.rate"),
            s,
            &format!("sled, {kib} KiB values under {keys} keys, insert + flush each"),
            "MB/s",
            vec![written.mb_s],
        );
        report.note(format!(
            "{} values/s; blobs/: {} files at peak, {} ({} MB) at close",
            format_value(written.values_s),
            written.peak_blob_files,
            written.blob_files,
            format_value(written.blob_bytes as f64 / 1e6)
        ));
        report.add(
            &format!("blobs.{kib}k{key}.disk"),
            s,
            &format!("sled, {kib} KiB values, {keys} keys: disk / value bytes"),
            "x",
            vec![written.disk_per_byte],
        );
    }
    report.note(format!(
        "{} MB per size; sled logs a page inline up to {} B (header included: 131,052)",
        format_value(total as f64 / 1e6),
        format_count(INLINE_PAGE_LIMIT)
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_stay_inline_and_large_ones_go_to_blobs() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let small = write(&dir.path().join("small"), Order::Sequential, 4, 256 << 10)
            .unwrap_or_else(|e| panic!("4 KiB values: {e}"));
        assert_eq!(small.peak_blob_files, 0, "4 KiB values went to blobs");
        assert!(small.disk_per_byte > 0.0 && small.mb_s > 0.0);
        let large = write(&dir.path().join("large"), Order::Scattered, 160, 1 << 20)
            .unwrap_or_else(|e| panic!("160 KiB values: {e}"));
        assert!(large.peak_blob_files > 0, "160 KiB values stayed inline");
        assert!(large.blob_files == 0 || large.blob_bytes >= 160 << 10);
    }
}
