//! Scale: a store filled with N events (instances of ten events each,
//! written in interleaved rounds as a service would), then its disk use per
//! event, and the time and memory a fresh process needs to open it.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use strive_store::{CommandOptions, Durability, Engine, Options};

use crate::Fallible;
use crate::fixture;

/// Events per instance: a start and nine fires.
const PER_INSTANCE: usize = 10;
/// Instances each filling thread keeps in flight.
const WINDOW: usize = 256;

/// Fills a fresh store of `partitions` partitions at `path` with about
/// `events` events in the bulk mode. Returns the fill rate in events per
/// second.
pub fn fill(path: &Path, events: usize, partitions: u32) -> Fallible<f64> {
    let instances = (events / PER_INSTANCE).max(1);
    let start = Instant::now();
    let engine = Engine::open(
        path,
        Options {
            durability: Durability::Buffered,
            partitions,
            ..Options::default()
        },
    )?;
    engine.deploy(
        &fixture::definition(),
        &strive_store::Actor::new("admin", &["admin"]),
    )?;
    let threads = 8;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let actor = fixture::actor();
                let mine: Vec<usize> = (t..instances).step_by(threads).collect();
                for window in mine.chunks(WINDOW) {
                    for &n in window {
                        let id = fixture::instance_id(n);
                        engine
                            .start(
                                "bench",
                                &id,
                                &actor,
                                fixture::initial_data(&id),
                                None,
                                CommandOptions::default(),
                            )
                            .map_err(|e| e.to_string())?;
                    }
                    for _ in 1..PER_INSTANCE {
                        for &n in window {
                            engine
                                .fire(
                                    &fixture::instance_id(n),
                                    "next",
                                    &actor,
                                    fixture::payload(),
                                    CommandOptions::default(),
                                )
                                .map_err(|e| e.to_string())?;
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| "a filling thread panicked")??;
    }
    drop(engine);
    Ok((instances * PER_INSTANCE) as f64 / start.elapsed().as_secs_f64())
}

/// Bytes of the files under `dir`.
pub fn disk_bytes(dir: &Path) -> Fallible<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            disk_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// What a fresh process measured opening a store.
pub struct Probe {
    pub open_ms: f64,
    pub first_fire_ms: f64,
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
    /// `Engine::tree_head` (what `strive checkpoint` signs), best of a few.
    pub checkpoint_ms: f64,
    /// The first `Engine::tree_head` after opening.
    pub checkpoint_cold_ms: f64,
    /// `Engine::history` of one instance, best of a few.
    pub history_ms: f64,
    /// The first `Engine::history` of that instance.
    pub history_cold_ms: f64,
    /// The events in that history.
    pub history_events: f64,
    /// The events of one instance read and re-run by `strive_audit::Replayer`.
    pub replay_one_ms: f64,
}

/// Opens the store at `path` in a child process (`strive-bench
/// probe-open`), so that the memory figures are the engine's alone.
pub fn probe(path: &Path) -> Fallible<Probe> {
    let output = Command::new(std::env::current_exe()?)
        .arg("probe-open")
        .arg(path)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "probe-open failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let get = |key: &str| report[key].as_f64().ok_or(format!("probe: no {key}"));
    Ok(Probe {
        open_ms: get("open_ms")?,
        first_fire_ms: get("first_fire_ms")?,
        rss_mb: get("rss_mb")?,
        peak_rss_mb: get("peak_rss_mb")?,
        checkpoint_ms: get("checkpoint_ms")?,
        checkpoint_cold_ms: get("checkpoint_cold_ms")?,
        history_ms: get("history_ms")?,
        history_cold_ms: get("history_cold_ms")?,
        history_events: get("history_events")?,
        replay_one_ms: get("replay_one_ms")?,
    })
}

/// How often the per-call timings of [`probe_main`] repeat: the first call
/// reads from disk, the best of the rest from sled's cache.
const PROBE_CALLS: usize = 5;

/// The best of [`PROBE_CALLS`] runs of `call`, in milliseconds, and the
/// first (cold) one.
fn best_ms(mut call: impl FnMut() -> Fallible<()>) -> Fallible<(f64, f64)> {
    let mut best = f64::INFINITY;
    let mut first = f64::NAN;
    for n in 0..PROBE_CALLS {
        let start = Instant::now();
        call()?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if n == 0 {
            first = ms;
        }
        best = best.min(ms);
    }
    Ok((best, first))
}

/// The child's side of [`probe`]: open, fire once durably, then time a
/// checkpoint and one instance's history and replay, which format 2 makes
/// O(log N) and O(own events); report.
pub fn probe_main(path: &Path) -> Fallible<String> {
    let start = Instant::now();
    let engine = Engine::open(path, Options::default())?;
    let open_ms = start.elapsed().as_secs_f64() * 1000.0;
    let start = Instant::now();
    engine.fire(
        &fixture::instance_id(0),
        "next",
        &fixture::actor(),
        fixture::payload(),
        CommandOptions::default(),
    )?;
    let first_fire_ms = start.elapsed().as_secs_f64() * 1000.0;
    let (checkpoint_ms, checkpoint_cold_ms) = best_ms(|| {
        engine.tree_head()?;
        Ok(())
    })?;
    // An instance in the middle of the fill: its events are spread over the
    // log like any other's.
    let one = fixture::instance_id(engine.total_events() as usize / PER_INSTANCE / 2);
    let mut own_events = 0;
    let (history_ms, history_cold_ms) = best_ms(|| {
        own_events = engine.history(&one)?.len();
        Ok(())
    })?;
    let (replay_one_ms, _) = best_ms(|| {
        // What one instance's replay needs: its workflow's deployments
        // (their own chain) and its events, in log order.
        let mut events = engine.history("@workflow/bench")?;
        events.extend(engine.history(&one)?);
        // Partition 0 holds the deployments; with several partitions the
        // instance's own are in its root's, each in its own order.
        events.sort_by_key(|stored| (stored.event.partition, stored.event.gseq));
        let mut replayer = strive_audit::Replayer::scoped(&one);
        for stored in events {
            if let Some(problem) = replayer.apply(&stored.hash, &stored.event).first() {
                return Err(format!("replay of {one} found a problem: {problem:?}").into());
            }
        }
        Ok(())
    })?;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    };
    let report = serde_json::json!({
        "open_ms": open_ms,
        "first_fire_ms": first_fire_ms,
        "rss_mb": field("VmRSS:"),
        "peak_rss_mb": field("VmHWM:"),
        "checkpoint_ms": checkpoint_ms,
        "checkpoint_cold_ms": checkpoint_cold_ms,
        "history_ms": history_ms,
        "history_cold_ms": history_cold_ms,
        "history_events": own_events,
        "replay_one_ms": replay_one_ms,
    });
    drop(engine);
    Ok(report.to_string())
}

/// What a demo run measured.
pub struct DemoRun {
    pub seconds: f64,
    pub events: u64,
    pub disk: u64,
}

/// Runs the seeded campaign simulation (`strive_campaign::run_demo`, its
/// default seed and 8 submitting threads) at `organisations` /
/// `members` on a fresh durable store at `path`, then removes the store.
pub fn demo(path: &Path, organisations: usize, members: usize) -> Fallible<DemoRun> {
    let clock = std::sync::Arc::new(strive_store::ManualClock::new(strive_campaign::demo_start()));
    let engine = Engine::open(
        path,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    )?;
    let start = Instant::now();
    let summary = strive_campaign::run_demo(
        &engine,
        &clock,
        &strive_campaign::DemoOptions::new(organisations, members),
        |_| {},
    )?;
    let seconds = start.elapsed().as_secs_f64();
    drop(engine);
    let disk = disk_bytes(path)?;
    std::fs::remove_dir_all(path)?;
    Ok(DemoRun {
        seconds,
        events: summary.events,
        disk,
    })
}
