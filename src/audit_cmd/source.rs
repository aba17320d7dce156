//! Feeds the auditor's toolkit from a store, through `Engine`'s public API
//! only. The tamper tests include this file (`#[path]`), so they run the
//! very code `strive verify` runs.

use strive_audit::{Report, Verifier, VerifyOptions};
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

/// Verifies the store behind `engine`: every event record in global order,
/// then every snapshot. `progress` is called with the number of events read
/// every 4,096 events.
pub fn verify(engine: &Engine, options: VerifyOptions, mut progress: impl FnMut(u64)) -> Report {
    let partitions = engine.partitions();
    let options = VerifyOptions {
        expected_size: Some(engine.total_events()),
        expected_sizes: if partitions > 1 {
            (0..partitions).map(|p| engine.last_gseq_in(p)).collect()
        } else {
            Vec::new()
        },
        ..options
    };
    let mut verifier = Verifier::new(options);
    let mut read = 0u64;
    // Partition by partition from 0, whose log holds the deployments.
    for partition in 0..partitions {
        verifier.partition(partition);
        for item in engine.events_in(partition, 1) {
            match item {
                Ok(stored) => verifier.decoded_event(&stored.hash, &stored.bytes, &stored.event),
                Err(error) => verifier.unreadable(error),
            }
            read += 1;
            if read.is_multiple_of(4096) {
                progress(read);
            }
        }
    }
    progress(read);
    for item in snapshots(engine) {
        match item {
            Ok(snapshot) => verifier.snapshot(&snapshot.instance, snapshot.due.as_ref()),
            Err(error) => verifier.unreadable_snapshot(error),
        }
    }
    verifier.finish()
}
