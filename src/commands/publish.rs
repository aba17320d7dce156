//! `strive publish DIR` (issue #14 item 3): the store's log as static
//! files, the checkpoint, the C2SP tlog-tiles tiles and the entry bundles,
//! for any web server or a plain directory. The files come from
//! `strive_audit::store::publish`; this module writes them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use strive_audit::{TileFile, store};

use super::audit::{check_origin, read_signing_key};
use crate::commands::open;
use crate::failure::{Failure, Outcome};
use crate::files::write_whole;
use crate::output;

/// What `strive publish` writes, and how many files.
struct Written {
    written: u64,
    kept: u64,
}

/// Where partition `partition`'s files go: `dir` itself for a store of
/// one partition, `dir/partition/<p>` for each of a larger one.
fn prefix(dir: &Path, partitions: u32, partition: u32) -> PathBuf {
    if partitions == 1 {
        dir.to_owned()
    } else {
        dir.join("partition").join(partition.to_string())
    }
}

/// Writes one file, unless it is full and already there with its length
/// (full tiles and bundles never change, so republishing skips them).
fn write_file(dir: &Path, file: &TileFile, counts: &mut Written) -> std::io::Result<()> {
    let target = dir.join(&file.path);
    if file.full && std::fs::metadata(&target).is_ok_and(|m| m.len() == file.bytes.len() as u64) {
        counts.kept += 1;
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_whole(&target, &file.bytes, true, 0o644).map_err(|f| std::io::Error::other(f.message))?;
    counts.written += 1;
    Ok(())
}

/// `strive publish DIR [--key K] [--origin O]`.
pub fn publish(db: &Path, dir: &Path, key: Option<&Path>, origin: &str, json: bool) -> Outcome {
    check_origin(origin)?;
    let key = key.map(read_signing_key).transpose()?;
    let engine = open(db)?;
    let partitions = engine.partitions();
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::new("io", format!("cannot create {}: {e}", dir.display())))?;
    let mut counts = Written {
        written: 0,
        kept: 0,
    };
    let note = store::publish(&engine, origin, key.as_ref(), &mut |partition, file| {
        write_file(&prefix(dir, partitions, partition), &file, &mut counts)
    })
    .map_err(|e| {
        let mut message = e.to_string();
        if let Some(cause) = std::error::Error::source(&e) {
            message.push_str(&format!(": {cause}"));
        }
        Failure::new("publish", message)
    })?;
    // Last, once every tile it names is in place.
    let checkpoint = dir.join("checkpoint");
    write_whole(&checkpoint, note.as_bytes(), true, 0o644)?;
    let size = engine.total_events();
    if json {
        output::json(&json!({
            "dir": dir.display().to_string(), "events": size, "partitions": partitions,
            "written": counts.written, "unchanged": counts.kept, "checkpoint": note,
        }));
    } else {
        output::line(format!(
            "published {size} events{} to {}: {} files written, {} full ones unchanged; \
             the checkpoint is {}",
            if partitions > 1 {
                format!(" in {partitions} partitions")
            } else {
                String::new()
            },
            dir.display(),
            counts.written,
            counts.kept,
            checkpoint.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}
