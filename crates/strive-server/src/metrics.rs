//! Prometheus metrics in the text exposition format: commands by kind and
//! result, rejections by code, request latency, and the engine's own commit
//! group sizes and flush latencies (`Engine::stats`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use strive_store::EngineStats;

/// The upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// The server's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    commands: Mutex<BTreeMap<(&'static str, String), u64>>,
    rejections: Mutex<BTreeMap<String, u64>>,
    statuses: Mutex<BTreeMap<u16, u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Metrics {
    /// Counts a command (`deploy`, `start`, `fire`) and its result: `ok` or
    /// the problem code.
    pub(crate) fn command(&self, kind: &'static str, result: &str) {
        if let Ok(mut map) = self.commands.lock() {
            *map.entry((kind, result.to_owned())).or_default() += 1;
        }
        if result != "ok" {
            self.rejection(result);
        }
    }

    /// Counts a refused request by its problem code.
    pub(crate) fn rejection(&self, code: &str) {
        if let Ok(mut map) = self.rejections.lock() {
            *map.entry(code.to_owned()).or_default() += 1;
        }
    }

    /// Records a finished request.
    pub(crate) fn request(&self, status: u16, took: Duration) {
        if let Ok(mut map) = self.statuses.lock() {
            *map.entry(status).or_default() += 1;
        }
        let seconds = took.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The text exposition format, with the engine's `stats`.
    pub(crate) fn render(&self, events: u64, stats: &EngineStats) -> String {
        let mut out = String::new();
        engine_histograms(&mut out, stats);
        let _ = writeln!(
            out,
            "# HELP strive_commands_total Commands by kind and result."
        );
        let _ = writeln!(out, "# TYPE strive_commands_total counter");
        if let Ok(map) = self.commands.lock() {
            for ((kind, result), n) in map.iter() {
                let _ = writeln!(
                    out,
                    "strive_commands_total{{kind=\"{kind}\",result=\"{result}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP strive_rejections_total Refused requests by problem code."
        );
        let _ = writeln!(out, "# TYPE strive_rejections_total counter");
        if let Ok(map) = self.rejections.lock() {
            for (code, n) in map.iter() {
                let _ = writeln!(out, "strive_rejections_total{{code=\"{code}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP strive_http_responses_total Responses by status."
        );
        let _ = writeln!(out, "# TYPE strive_http_responses_total counter");
        if let Ok(map) = self.statuses.lock() {
            for (status, n) in map.iter() {
                let _ = writeln!(
                    out,
                    "strive_http_responses_total{{status=\"{status}\"}} {n}"
                );
            }
        }
        Histogram {
            name: "strive_http_request_duration_seconds",
            help: "Time to the response's head.",
            buckets: BUCKETS
                .iter()
                .zip(&self.buckets)
                .map(|(bound, count)| (bound.to_string(), count.load(Ordering::Relaxed)))
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum: (self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6).to_string(),
        }
        .write(&mut out);
        let _ = writeln!(
            out,
            "# HELP strive_log_events The events in the log, over every partition."
        );
        let _ = writeln!(out, "# TYPE strive_log_events gauge");
        let _ = writeln!(out, "strive_log_events {events}");
        out
    }
}

/// A histogram to write: cumulative buckets by upper bound, the count of
/// observations (the `+Inf` bucket) and their sum.
struct Histogram<'a> {
    name: &'a str,
    help: &'a str,
    buckets: Vec<(String, u64)>,
    count: u64,
    sum: String,
}

impl Histogram<'_> {
    fn write(&self, out: &mut String) {
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}", self.help);
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, count) in &self.buckets {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// The engine's commit group sizes and flush latencies, as histograms.
fn engine_histograms(out: &mut String, stats: &EngineStats) {
    Histogram {
        name: "strive_commit_group_size",
        help: "Commands per commit group (one batch, one flush).",
        buckets: stats
            .group_size_buckets
            .iter()
            .map(|(bound, count)| (bound.to_string(), *count))
            .collect(),
        count: stats.groups,
        sum: stats.commands.to_string(),
    }
    .write(out);
    Histogram {
        name: "strive_flush_duration_seconds",
        help: "Time the store took to make a commit group durable.",
        buckets: stats
            .flush_seconds_buckets
            .iter()
            .map(|(bound, count)| (bound.to_string(), *count))
            .collect(),
        count: stats.flushes,
        sum: stats.flush_seconds_sum.to_string(),
    }
    .write(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative() {
        let metrics = Metrics::default();
        metrics.request(200, Duration::from_micros(1500));
        metrics.request(412, Duration::from_millis(30));
        metrics.command("fire", "conflict");
        let engine = strive_store::Engine::temporary().expect("an engine");
        let text = metrics.render(7, &engine.stats());
        assert!(text.contains("le=\"0.002\"} 1\n"), "{text}");
        assert!(text.contains("le=\"0.05\"} 2\n"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("strive_rejections_total{code=\"conflict\"} 1"));
        assert!(text.contains("strive_commands_total{kind=\"fire\",result=\"conflict\"} 1"));
        assert!(text.contains("strive_log_events 7"));
        assert!(
            text.contains("strive_commit_group_size_count 0\n"),
            "{text}"
        );
        assert!(
            text.contains("strive_flush_duration_seconds_bucket{le=\"+Inf\"} 0\n"),
            "{text}"
        );
    }
}
