//! The write pipeline's second stage: flush applied groups in order and
//! answer their callers. A caller hears back only once its group is durable
//! (in the default mode), and groups are answered in the order they were
//! applied, so even a refusal is never reported before the writes it was
//! decided against are durable.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use crate::backend::Backend;
use crate::error::StorageError;
use crate::records::Durability;

use super::Shared;

/// A processed command waiting for its group to be written.
pub(crate) type Finish = Box<dyn FnOnce(Option<&StorageError>) + Send>;

/// A decided and applied group on its way to its callers.
pub(crate) struct Job {
    pub(crate) finishes: Vec<Finish>,
    /// The last log position the group applied, if it wrote.
    pub(crate) applied: Option<u64>,
    /// Why applying failed.
    pub(crate) failure: Option<StorageError>,
}

pub(crate) struct Flusher {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) durability: Durability,
    pub(crate) partition: u32,
}

impl Flusher {
    pub(crate) fn run(self, jobs: Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            self.finish(job);
        }
    }

    pub(crate) fn finish(&self, mut job: Job) {
        // The group is applied: any flush that starts from now on makes it
        // durable.
        let ticket = self.shared.flush_ticket();
        if job.failure.is_none() {
            // A flush covers everything applied before it, so a failure of
            // an earlier group's flush fails this one too: acknowledge
            // nothing after it.
            let poisoned = self.shared.poisoned.lock().ok().and_then(|p| p.clone());
            if let (Some(_), Some(cause)) = (job.applied, poisoned) {
                job.failure = Some(StorageError::Poisoned { cause });
            }
        }
        if job.failure.is_none()
            && let Some(last) = job.applied
        {
            // The crash tests stop here: the group is applied, not flushed.
            crate::fail_point!("group-before-flush");
            let flushed = match self.durability {
                Durability::Flushed => self.shared.flush_covering(ticket, &*self.backend),
                Durability::Buffered => Ok(()),
            };
            match flushed {
                Err(error) => {
                    tracing::error!(%error, "group flush failed; refusing further writes");
                    self.shared.poison(&error);
                    job.failure = Some(error);
                }
                Ok(()) => {
                    // And here: flushed, nobody acknowledged yet.
                    crate::fail_point!("group-after-flush");
                    self.shared.committed_up_to(self.partition, last);
                }
            }
        }
        self.shared.stats.group(job.finishes.len());
        for finish in job.finishes {
            finish(job.failure.as_ref());
        }
    }
}
