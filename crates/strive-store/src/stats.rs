//! The engine's own counters (issue #11): commit group sizes and flush
//! latencies, kept in atomics by the flusher (`writer/pipeline.rs`) and
//! read by [`crate::Engine::stats`], for a service's metrics. Cumulative
//! histograms, as Prometheus counts them: each bucket counts the
//! observations at or below its bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds of the group size histogram, in commands.
pub const GROUP_SIZE_BOUNDS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// The upper bounds of the flush latency histogram, in seconds.
pub const FLUSH_SECONDS_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 5.0,
];

/// The counters, shared by the flusher and readers.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    groups: AtomicU64,
    commands: AtomicU64,
    group_buckets: [AtomicU64; GROUP_SIZE_BOUNDS.len()],
    flushes: AtomicU64,
    flush_micros: AtomicU64,
    flush_buckets: [AtomicU64; FLUSH_SECONDS_BOUNDS.len()],
}

impl Stats {
    /// Counts a commit group of `commands` commands (refused ones included:
    /// they wait for the group like the others).
    pub(crate) fn group(&self, commands: usize) {
        let size = commands as u64;
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(size, Ordering::Relaxed);
        for (bound, count) in GROUP_SIZE_BOUNDS.iter().zip(&self.group_buckets) {
            if size <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts one flush that took `took`.
    pub(crate) fn flush(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.flush_micros.fetch_add(micros, Ordering::Relaxed);
        for (bound, count) in FLUSH_SECONDS_BOUNDS.iter().zip(&self.flush_buckets) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> EngineStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EngineStats {
            groups: load(&self.groups),
            commands: load(&self.commands),
            group_size_buckets: GROUP_SIZE_BOUNDS
                .iter()
                .zip(&self.group_buckets)
                .map(|(bound, count)| (*bound, load(count)))
                .collect(),
            flushes: load(&self.flushes),
            flush_seconds_sum: load(&self.flush_micros) as f64 / 1e6,
            flush_seconds_buckets: FLUSH_SECONDS_BOUNDS
                .iter()
                .zip(&self.flush_buckets)
                .map(|(bound, count)| (*bound, load(count)))
                .collect(),
        }
    }
}

/// What the engine has written since it was opened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EngineStats {
    /// Commit groups written.
    pub groups: u64,
    /// Commands in them (the sum of the group sizes).
    pub commands: u64,
    /// `(bound, groups of at most bound commands)`, cumulative, over
    /// [`GROUP_SIZE_BOUNDS`].
    pub group_size_buckets: Vec<(u64, u64)>,
    /// Flushes made (one per group that wrote, in the flushed mode).
    pub flushes: u64,
    /// The time they took in all, in seconds.
    pub flush_seconds_sum: f64,
    /// `(bound in seconds, flushes that took at most that)`, cumulative,
    /// over [`FLUSH_SECONDS_BOUNDS`].
    pub flush_seconds_buckets: Vec<(f64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histograms_are_cumulative() {
        let stats = Stats::default();
        stats.group(1);
        stats.group(3);
        stats.group(2000);
        stats.flush(Duration::from_micros(700));
        let seen = stats.snapshot();
        assert_eq!((seen.groups, seen.commands), (3, 2004));
        assert_eq!(seen.group_size_buckets[0], (1, 1));
        assert_eq!(seen.group_size_buckets[2], (4, 2));
        assert_eq!(
            seen.group_size_buckets[10],
            (1024, 2),
            "2000 is above every bound"
        );
        assert_eq!(seen.flushes, 1);
        assert_eq!(seen.flush_seconds_buckets[0], (0.0005, 0));
        assert_eq!(seen.flush_seconds_buckets[1], (0.001, 1));
    }
}
