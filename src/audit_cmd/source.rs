//! Feeds the auditor's toolkit from a store, through `Engine`'s public API
//! only. The tamper tests include this file (`#[path]`), so they run the
//! very code `strive verify` runs.

use strive_audit::{EventRun, Report, VerifyOptions};
use strive_store::{Engine, ListQuery, Snapshot, StorageError};

/// How many snapshots to read per page.
const PAGE: usize = 512;

/// Every snapshot in id order, a page at a time. A page that cannot be
/// read ends the walk with its error: the store gives no way to skip one
/// corrupt record (see the report on `Engine::list`).
pub fn snapshots(engine: &Engine) -> impl Iterator<Item = Result<Snapshot, StorageError>> + '_ {
    let mut after: Option<String> = None;
    let mut page: std::vec::IntoIter<Snapshot> = Vec::new().into_iter();
    let mut done = false;
    std::iter::from_fn(move || {
        loop {
            if let Some(snapshot) = page.next() {
                return Some(Ok(snapshot));
            }
            if done {
                return None;
            }
            let query = ListQuery {
                after: after.clone(),
                limit: Some(PAGE),
                ..ListQuery::default()
            };
            match engine.list(&query) {
                Ok(next) => {
                    done = next.next.is_none();
                    after = next.items.last().map(|s| s.instance.id.clone());
                    if after.is_none() {
                        done = true;
                    }
                    page = next.items.into_iter();
                }
                Err(error) => {
                    done = true;
                    return Some(Err(error));
                }
            }
        }
    })
}

/// The blocks of `partition`'s log, as the auditor's toolkit reads them.
pub fn runs(
    engine: &Engine,
    partition: u32,
) -> impl Iterator<Item = Result<EventRun, StorageError>> + '_ {
    engine.blocks(partition, 1).map(|block| {
        block.map(|block| {
            let (digests, data, spans) = block.into_parts();
            EventRun::from_parts(digests, data, spans)
        })
    })
}

/// Verifies the store behind `engine`: every event record in global order,
/// block by block (on `options.jobs` threads), then every snapshot.
/// `progress` is called with the number of events read after each block.
pub fn verify(engine: &Engine, options: VerifyOptions, progress: impl FnMut(u64)) -> Report {
    let options = VerifyOptions {
        expected_size: Some(engine.last_gseq()),
        ..options
    };
    // One stream per partition; stores have one partition today.
    let read = || runs(engine, 0);
    let snapshots = snapshots(engine).map(|item| item.map(|s| (s.instance, s.due)));
    strive_audit::verify_runs(read, snapshots, options, progress)
}
