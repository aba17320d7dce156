//! strive itself: durable fires from concurrent callers (group commit), the
//! buffered bulk mode, latency, and the transition function alone.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::Value;
use strive_core::Command;
use strive_store::{
    Actor, CommandOptions, Durability, Engine, Hooked, Hooks, Options, SledBackend, StorageError,
};

use crate::Fallible;
use crate::fixture;

/// What a run of concurrent callers measured.
pub struct Run {
    pub per_second: f64,
    /// Every call's latency, in microseconds, sorted.
    pub latencies: Vec<u32>,
    /// The quantiles (0 to 1) and their latencies in microseconds that a
    /// load generator reported, when it gives no call's latency (wrk).
    pub reported: Vec<(f64, u32)>,
}

impl Run {
    /// The latency at quantile `q` (0 to 1), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if let Some((_, micros)) = self.reported.iter().find(|(at, _)| *at == q) {
            return f64::from(*micros) / 1000.0;
        }
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies[index]) / 1000.0
    }
}

/// Where and on what a run of callers fires: the directory for its
/// store, the instances cycled through, the store's partitions (fixed when
/// the store is made; instances spread over them by their root,
/// `strive_core::root_partition`, as the engine places them) and how long
/// each run lasts.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    pub dir: &'a Path,
    /// When set, each store is a fresh database on this PostgreSQL server
    /// (a URL of any of its databases) instead of a directory in `dir`.
    pub server: Option<&'a str>,
    pub instances: usize,
    pub partitions: u32,
    pub budget: Duration,
}

/// Opens a fresh store of `partitions` partitions at `path` with the bench
/// workflow deployed and `instances` instances started (in the buffered
/// mode, to set up fast).
pub fn prepare(path: &Path, instances: usize, partitions: u32) -> Fallible<()> {
    let engine = open(
        path,
        Options {
            durability: Durability::Buffered,
            partitions,
            ..Options::default()
        },
    )?;
    engine.deploy(&fixture::definition(), &Actor::new("admin", &["admin"]))?;
    let threads = 4.min(instances.max(1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || -> Result<(), String> {
                let actor = fixture::actor();
                for n in (t..instances).step_by(threads) {
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
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| "a setup thread panicked")??;
    }
    Ok(())
}

/// Opens the store at `location`: a directory, or a database URL.
fn open(location: &Path, options: Options) -> Fallible<Engine> {
    Ok(match strive_store::location_text(location) {
        Some(url) => Engine::open_url(url, options)?,
        None => Engine::open(location, options)?,
    })
}

/// sled 0.34's `flush` writes its log with `sync_file_range`, which
/// neither flushes the drive's write cache nor the file's metadata. These
/// hooks add an `fdatasync` of sled's log file after every flush: what a
/// commit that survives power loss costs on this disk. Bench only.
struct Synced {
    log: std::fs::File,
}

impl Hooks for Synced {
    fn after_flush(&self) -> Result<(), StorageError> {
        self.log.sync_data().map_err(|e| StorageError::Backend {
            message: e.to_string(),
        })
    }
}

/// How a benchmark engine makes writes durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Durability::Flushed` (sled's flush).
    Flushed,
    /// sled's flush plus `fdatasync` (see [`Synced`]).
    Synced,
    /// `Durability::Buffered`.
    Buffered,
}

/// `callers` threads fire `next` on their own instances of a fresh store
/// made as `setup` says, for `setup.budget`.
pub fn fire(setup: &Setup<'_>, callers: usize, mode: Mode) -> Fallible<Run> {
    let Setup {
        dir,
        server,
        instances,
        partitions,
        budget,
    } = *setup;
    let holder = tempfile::tempdir_in(dir)?;
    // Dropped at the end of the run, after the engine: the database goes.
    let database = server
        .map(strive_store::TemporaryDatabase::create)
        .transpose()?;
    let path = match &database {
        Some(database) => std::path::PathBuf::from(database.url()),
        None => holder.path().join("store"),
    };
    prepare(&path, instances, partitions)?;
    let options = Options {
        durability: if mode == Mode::Buffered {
            Durability::Buffered
        } else {
            Durability::Flushed
        },
        partitions,
        ..Options::default()
    };
    let engine = if mode == Mode::Synced {
        let inner = SledBackend::open(&path)?;
        let log = std::fs::File::open(path.join("db"))?;
        Engine::with_backend(
            std::sync::Arc::new(Hooked::new(inner, Synced { log })),
            Some(path.clone()),
            options,
        )?
    } else {
        open(&path, options)?
    };
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(callers + 1));
    let handles: Vec<_> = (0..callers)
        .map(|c| {
            let (engine, stop, barrier) = (engine.clone(), stop.clone(), barrier.clone());
            std::thread::spawn(move || -> Result<Vec<u32>, String> {
                let actor = fixture::actor();
                let mine: Vec<String> = (c..instances)
                    .step_by(callers)
                    .map(fixture::instance_id)
                    .collect();
                let mut latencies = Vec::with_capacity(1 << 16);
                barrier.wait();
                let mut turn = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let id = &mine[turn % mine.len()];
                    turn += 1;
                    let start = Instant::now();
                    engine
                        .fire(
                            id,
                            "next",
                            &actor,
                            fixture::payload(),
                            CommandOptions::default(),
                        )
                        .map_err(|e| e.to_string())?;
                    let micros = start.elapsed().as_micros();
                    latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
                }
                Ok(latencies)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    std::thread::sleep(budget);
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for handle in handles {
        latencies.extend(handle.join().map_err(|_| "a caller panicked")??);
    }
    let elapsed = start.elapsed();
    drop(engine);
    latencies.sort_unstable();
    Ok(Run {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies,
        reported: Vec::new(),
    })
}

/// `Workflow::fire` + `advance` on one instance, no store: transitions per
/// second of the transition function itself.
pub fn in_memory(budget: Duration) -> Fallible<f64> {
    let workflow = fixture::workflow();
    let now: jiff::Timestamp = "2026-05-01T08:00:00Z".parse()?;
    let id = fixture::instance_id(1);
    let mut instance = workflow
        .new_instance(&id, 1, &fixture::initial_data(&id), None, now)
        .map_err(|e| e.to_string())?;
    let actor: Actor = fixture::actor();
    let payload = fixture::payload();
    let children = Value::Null;
    let mut fired = 0u64;
    let rate = crate::limits::rate(budget, || {
        for _ in 0..1000 {
            let command = Command {
                event: "next",
                actor: &actor,
                payload: &payload,
                now,
            };
            let accepted = workflow
                .fire(&instance, &command, &children)
                .map_err(|e| e.to_string())?;
            instance = workflow.advance(&instance, &accepted, now);
        }
        fired += 1000;
        Ok(1000)
    })?;
    // The guard ran and the effect applied every time.
    if instance.data["count"] != fired {
        return Err(format!("count is {}, expected {fired}", instance.data["count"]).into());
    }
    Ok(rate)
}
