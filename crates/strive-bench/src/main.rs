//! `strive-bench`: measures strive side by side with the store's limits and
//! its peers, in one run on one disk, and prints one table with ratios to
//! the baselines (issue #7). Not a timed test: it reports, it does not fail
//! on a missed target (pass `--check` to exit 1 on one).
//!
//! ```text
//! strive-bench [--quick | --large] [--demo] [--json] [--dir DIR] [--only SECTIONS] [--budget-ms N] [--repeats N] [--partitions N] [--check]
//! ```
//!
//! `--quick` takes seconds (what CI runs; the demo runs at 12
//! organisations), the default a few minutes, `--large` adds 10M events and
//! the demo at 5,000 organisations / 100,000 members, which `--demo` adds
//! alone. `--dir` is where the stores go (default:
//! `$CARGO_TARGET_DIR/strive-bench`, else `target/strive-bench`); the
//! fdatasync baselines write there too, so every figure is of one disk.
//! `--only` takes a comma-separated list of limits, peers, strive, http, postgres, eval,
//! compression, blobs, scale, audit, demo; `--budget-ms` and `--repeats` override how long each
//! measurement runs and how often it is repeated. `--partitions N` makes
//! the stores of the strive, scale and audit rows with N partitions
//! (instances spread over them by their root; the default is one), and
//! with one, a row of 64 durable callers on 4 partitions runs beside the
//! 64-caller row.

mod audit;
mod blobs;
mod compression;
mod fixture;
mod http;
mod limits;
mod postgres;
mod report;
mod scale;
mod sqlite;
mod strive;
mod xstate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use report::Report;

/// Every error ends the run with a message.
pub type Fallible<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quick,
    Default,
    Large,
}

struct Config {
    mode: Mode,
    dir: PathBuf,
    json: bool,
    check: bool,
    only: Option<Vec<String>>,
    budget_ms: Option<u64>,
    repeats: Option<usize>,
    /// The demo's (organisations, members), when it runs.
    demo: Option<(usize, usize)>,
    /// The partitions of the stores the strive, scale and audit rows make.
    partitions: u32,
}

impl Config {
    fn repeats(&self) -> usize {
        self.repeats
            .unwrap_or(if self.mode == Mode::Quick { 1 } else { 3 })
    }

    /// How long one measurement runs.
    fn budget(&self) -> Duration {
        if let Some(ms) = self.budget_ms {
            return Duration::from_millis(ms);
        }
        match self.mode {
            Mode::Quick => Duration::from_millis(200),
            _ => Duration::from_millis(2000),
        }
    }

    fn wants(&self, section: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|s| s == section))
    }

    /// The demo whose events the compression study compresses.
    fn compression_demo(&self) -> (usize, usize) {
        match self.mode {
            Mode::Quick => QUICK_DEMO,
            _ => COMPRESSION_DEMO,
        }
    }

    /// How long one compression or decompression pass over the sample
    /// repeats (a pass runs at least once).
    fn compression_budget(&self) -> Duration {
        self.budget() / 8
    }

    /// Bytes written per value size in the blobs section.
    fn blob_bytes(&self) -> usize {
        match self.mode {
            Mode::Quick => 2 << 20,
            _ => 32 << 20,
        }
    }

    /// The store sizes of the scale section.
    fn sizes(&self) -> Vec<(&'static str, usize)> {
        match self.mode {
            Mode::Quick => vec![("10k", 10_000)],
            Mode::Default => vec![("10k", 10_000), ("1M", 1_000_000)],
            Mode::Large => vec![("10k", 10_000), ("1M", 1_000_000), ("10M", 10_000_000)],
        }
    }
}

/// The demo of the issue: organisations and members.
const FULL_DEMO: (usize, usize) = (5_000, 100_000);
/// The demo the quick configuration runs.
const QUICK_DEMO: (usize, usize) = (12, 150);

/// The demo whose events the compression study uses by default.
const COMPRESSION_DEMO: (usize, usize) = (50, 1_000);

/// Instances the transition benchmarks cycle through.
const INSTANCES: usize = 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("probe-open") {
        return match args.get(1).map(|p| scale::probe_main(Path::new(p))) {
            Some(Ok(line)) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Some(Err(error)) => {
                eprintln!("probe-open: {error}");
                ExitCode::FAILURE
            }
            None => {
                eprintln!("usage: strive-bench probe-open STORE");
                ExitCode::from(2)
            }
        };
    }
    let config = match parse(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("strive-bench: {message}");
            eprintln!(
                "usage: strive-bench [--quick | --large] [--demo] [--json] [--dir DIR] [--only SECTIONS] [--budget-ms N] [--repeats N] [--partitions N] [--check]"
            );
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(report) => {
            if config.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(error) => {
                        eprintln!("strive-bench: {error}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.render());
            }
            let missed = report.ratios.iter().any(|r| r.met == Some(false))
                || report.bounds.iter().any(|b| b.met == Some(false));
            if config.check && missed {
                eprintln!("strive-bench: a target was missed");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("strive-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<Config, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"));
    let mut config = Config {
        mode: Mode::Default,
        dir: target.join("strive-bench"),
        json: false,
        check: false,
        only: None,
        budget_ms: None,
        repeats: None,
        demo: None,
        partitions: 1,
    };
    let mut demo = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => config.mode = Mode::Quick,
            "--large" => config.mode = Mode::Large,
            "--json" => config.json = true,
            "--check" => config.check = true,
            "--demo" => demo = true,
            "--dir" => config.dir = PathBuf::from(args.next().ok_or("--dir needs a directory")?),
            "--only" => {
                let list = args.next().ok_or("--only needs a list of sections")?;
                config.only = Some(list.split(',').map(str::to_owned).collect());
            }
            "--budget-ms" => {
                let ms = args.next().ok_or("--budget-ms needs a number")?;
                config.budget_ms = Some(ms.parse().map_err(|_| "--budget-ms needs a number")?);
            }
            "--repeats" => {
                let n = args.next().ok_or("--repeats needs a number")?;
                config.repeats = Some(n.parse().map_err(|_| "--repeats needs a number")?);
            }
            "--partitions" => {
                let n = args.next().ok_or("--partitions needs a number")?;
                config.partitions = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=strive_store::MAX_PARTITIONS).contains(n))
                    .ok_or(format!(
                        "--partitions needs a number from 1 to {}",
                        strive_store::MAX_PARTITIONS
                    ))?;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    // The quick configuration runs the demo small, so that CI exercises it.
    config.demo = match (demo, config.mode) {
        (true, _) | (_, Mode::Large) => Some(FULL_DEMO),
        (false, Mode::Quick) => Some(QUICK_DEMO),
        (false, Mode::Default) => None,
    };
    Ok(config)
}

/// Runs `measure` `repeats` times and collects the figures.
fn repeat(repeats: usize, mut measure: impl FnMut() -> Fallible<f64>) -> Fallible<Vec<f64>> {
    (0..repeats).map(|_| measure()).collect()
}

/// Runs of callers `repeats` times: each run's rate, and the last run
/// (for its latencies).
fn repeat_runs(
    repeats: usize,
    mut measure: impl FnMut() -> Fallible<strive::Run>,
) -> Fallible<(Vec<f64>, Option<strive::Run>)> {
    let mut samples = Vec::new();
    let mut kept = None;
    for _ in 0..repeats {
        let run = measure()?;
        samples.push(run.per_second);
        kept = Some(run);
    }
    Ok((samples, kept))
}

fn run(config: &Config) -> Fallible<Report> {
    std::fs::create_dir_all(&config.dir)?;
    let work = tempfile::tempdir_in(&config.dir)?;
    let dir = work.path();
    let mut report = Report::default();
    facts(&mut report, config, dir);
    let (event, snapshot) = fixture::sample_records();
    report.fact("event_bytes", event.len().to_string());
    report.fact("snapshot_bytes", snapshot.len().to_string());
    let (budget, repeats) = (config.budget(), config.repeats());
    let started = Instant::now();

    if config.wants("limits") {
        progress("limits");
        let s = "limits";
        let samples = repeat(repeats, || limits::fdatasync(dir, &event, 1, budget))?;
        report.add(
            "limits.fdatasync.1",
            s,
            "fdatasync per record",
            "rec/s",
            samples,
        );
        let samples = repeat(repeats, || {
            limits::fdatasync_preallocated(dir, &event, budget)
        })?;
        report.add(
            "limits.fdatasync.1.prealloc",
            s,
            "fdatasync per record, preallocated file",
            "rec/s",
            samples,
        );
        report.note("overwrites in place: no size change, no journal commit");
        let samples = repeat(repeats, || limits::fdatasync(dir, &event, 1024, budget))?;
        report.add(
            "limits.fdatasync.1024",
            s,
            "fdatasync per 1,024 records",
            "rec/s",
            samples,
        );
        let samples = repeat(repeats, || limits::sled_insert_flush(dir, &event, budget))?;
        report.add(
            "limits.sled.insert",
            s,
            "sled insert + flush",
            "rec/s",
            samples,
        );
        let samples = repeat(repeats, || {
            limits::sled_naive(dir, &event, &snapshot, INSTANCES, budget)
        })?;
        report.add(
            "limits.sled.naive",
            s,
            "sled 2-tree txn + flush (naive)",
            "tr/s",
            samples,
        );
        let samples = repeat(repeats, || {
            limits::sled_batch_flush(dir, &event, 1000, budget)
        })?;
        report.add(
            "limits.sled.batch",
            s,
            "sled batch of 1,000 + flush",
            "rec/s",
            samples,
        );
        for per_batch in [64usize, 1000] {
            let samples = repeat(repeats, || {
                limits::sled_shaped(dir, &event, &snapshot, INSTANCES, per_batch, budget)
            })?;
            report.add(
                &format!("limits.sled.shaped.{per_batch}"),
                s,
                &format!("sled, format 1's 5 writes/transition, {per_batch}/batch + flush"),
                "tr/s",
                samples,
            );
        }
        report.note("the ceiling of group commit on sled for format 1's layout");
    }

    if config.wants("peers") {
        progress("peers");
        let s = "peers";
        let work = sqlite::Workload {
            event: &event,
            snapshot: &snapshot,
            instances: INSTANCES,
            budget,
        };
        for (schema, name, label) in [
            (sqlite::Schema::Keyed, "keyed", "log keyed (instance, seq)"),
            (sqlite::Schema::AppendOrder, "append", "append log + index"),
            (
                sqlite::Schema::MemoryState,
                "memory",
                "state in memory, append log + index, snapshot upserts",
            ),
        ] {
            for per_commit in [1usize, 1000] {
                let samples = repeat(repeats, || {
                    sqlite::transitions(dir, schema, per_commit, &work)
                })?;
                report.add(
                    &format!("peers.sqlite.{name}.{per_commit}"),
                    s,
                    &format!("SQLite WAL FULL, {label}, {per_commit}/commit"),
                    "tr/s",
                    samples,
                );
            }
        }
        match xstate::run(&config.dir.join("node"), budget, repeats)? {
            Ok(measured) => {
                report.add(
                    "peers.xstate",
                    s,
                    "XState v5 actor.send (in memory)",
                    "tr/s",
                    vec![measured.ops_per_s],
                );
                report.note(measured.versions);
            }
            Err(note) => report.skip("peers.xstate", s, "XState v5 actor.send", "tr/s", &note),
        }
    }

    // The library's callers and the HTTP service's fire on the same setup.
    let setup = strive::Setup {
        dir,
        server: None,
        instances: INSTANCES,
        partitions: config.partitions,
        budget,
    };
    let on = partitions_label(config.partitions);
    if config.wants("strive") {
        progress("strive");
        let s = "strive";
        let mut runs = Vec::new();
        for callers in [1usize, 4, 16, 64] {
            let (samples, kept) = repeat_runs(repeats, || {
                strive::fire(&setup, callers, strive::Mode::Flushed)
            })?;
            report.add(
                &format!("strive.durable.c{callers}"),
                s,
                &format!("durable fire, {callers} caller(s){on}"),
                "tr/s",
                samples,
            );
            if let Some(run) = kept {
                runs.push((callers, run));
            }
        }
        if config.partitions == 1 {
            let four = strive::Setup {
                partitions: 4,
                ..setup
            };
            let samples = repeat(repeats, || {
                Ok(strive::fire(&four, 64, strive::Mode::Flushed)?.per_second)
            })?;
            report.add(
                "strive.durable.c64.p4",
                s,
                "durable fire, 64 callers, 4 partitions",
                "tr/s",
                samples,
            );
            report.note("a writer thread per partition; instances spread by their root");
        }
        let samples = repeat(repeats, || {
            Ok(strive::fire(&setup, 64, strive::Mode::Buffered)?.per_second)
        })?;
        report.add(
            "strive.bulk.c64",
            s,
            &format!("bulk (Buffered), 64 callers{on}"),
            "tr/s",
            samples,
        );
        for callers in [1usize, 64] {
            let samples = repeat(repeats, || {
                Ok(strive::fire(&setup, callers, strive::Mode::Synced)?.per_second)
            })?;
            report.add(
                &format!("strive.synced.c{callers}"),
                s,
                &format!("durable + fdatasync, {callers} caller(s){on}"),
                "tr/s",
                samples,
            );
            report.note("sled's flush + fdatasync of its log file (power-loss durable)");
        }
        for (callers, run) in &runs {
            if [1, 64].contains(callers) {
                for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
                    report.add(
                        &format!("strive.latency.c{callers}.{name}"),
                        s,
                        &format!("durable fire latency {name}, {callers} caller(s)"),
                        "ms",
                        vec![run.quantile_ms(q)],
                    );
                }
            }
        }
    }

    if config.wants("http") {
        progress("http");
        let s = "http";
        for connections in [1usize, 64] {
            let client = http::Client::for_connections(connections);
            let (samples, kept) = repeat_runs(repeats, || http::fire(&setup, connections, client))?;
            report.add(
                &format!("http.durable.c{connections}"),
                s,
                &format!(
                    "durable fire over HTTP, {connections} keep-alive connection(s), {}{on}",
                    client.name()
                ),
                "tr/s",
                samples,
            );
            if let Some(run) = kept {
                for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
                    report.add(
                        &format!("http.latency.c{connections}.{name}"),
                        s,
                        &format!("HTTP fire latency {name}, {connections} connection(s)"),
                        "ms",
                        vec![run.quantile_ms(q)],
                    );
                }
            }
        }
        report.note(
            "strive serve in this process on loopback; wrk -t2 (when installed) or ureq threads",
        );
    }

    if config.wants("postgres") {
        progress("postgres");
        postgres_rows(&mut report, config, &event, &snapshot)?;
    }

    if config.wants("eval") {
        progress("eval");
        let samples = repeat(repeats, || strive::in_memory(budget))?;
        report.add(
            "eval.memory",
            "in memory",
            "Workflow::fire + advance (guard + effect)",
            "tr/s",
            samples,
        );
    }

    if config.wants("compression") {
        progress("compression");
        compression::section(
            &mut report,
            dir,
            config.compression_demo(),
            config.compression_budget(),
        )?;
    }

    if config.wants("blobs") {
        progress("blobs");
        blobs::section(&mut report, dir, config.blob_bytes())?;
    }

    let mut largest: Option<PathBuf> = None;
    if config.wants("scale") || config.wants("audit") {
        progress("scale");
        let s = "scale";
        for (label, events) in config.sizes() {
            let path = dir.join(format!("scale-{label}"));
            let fill_rate = scale::fill(&path, events, config.partitions)?;
            let disk = scale::disk_bytes(&path)? as f64;
            let engine = strive_store::Engine::open(&path, strive_store::Options::default())?;
            let mut encoded = 0u64;
            let mut stored_events = 0u64;
            audit::scan(&engine, |_, bytes| {
                encoded += bytes.len() as u64;
                stored_events += 1;
                Ok(())
            })?;
            drop(engine);
            let backend = strive_store::SledBackend::open(&path)?;
            // Every record's key and value: what the layout stores, before
            // sled's own overhead.
            let mut live = 0u64;
            for entry in strive_store::Backend::range(&backend, b"", &[0xff; 8]) {
                let (key, value) = entry?;
                live += (key.len() + value.len()) as u64;
            }
            drop(backend);
            let probe = scale::probe(&path)?;
            let key = format!("scale.{label}");
            report.add(
                &format!("{key}.fill"),
                s,
                &format!("{label}: bulk fill{}", partitions_label(config.partitions)),
                "ev/s",
                vec![fill_rate],
            );
            report.add(
                &format!("{key}.open"),
                s,
                &format!("{label}: open"),
                "ms",
                vec![probe.open_ms],
            );
            report.note(format!("first durable fire {:.1} ms", probe.first_fire_ms));
            report.add(
                &format!("{key}.rss"),
                s,
                &format!("{label}: RSS after open + fire"),
                "MB",
                vec![probe.rss_mb],
            );
            report.note(format!("peak {:.0} MB", probe.peak_rss_mb));
            one_instance_rows(&mut report, &key, label, &probe);
            report.add(
                &format!("{key}.disk"),
                s,
                &format!("{label}: disk per event"),
                "B/ev",
                vec![disk / stored_events.max(1) as f64],
            );
            report.note(format!(
                "{stored_events} events, {:.0} MB on disk, encoded event {:.0} B",
                disk / 1e6,
                encoded as f64 / stored_events.max(1) as f64
            ));
            report.add(
                &format!("{key}.live_ratio"),
                s,
                &format!("{label}: live keys + values / encoded event bytes"),
                "x",
                vec![live as f64 / encoded.max(1) as f64],
            );
            report.note("what strive's layout stores; the rest of the disk is sled's");
            report.add(
                &format!("{key}.disk_ratio"),
                s,
                &format!("{label}: disk / encoded event bytes"),
                "x",
                vec![disk / encoded.max(1) as f64],
            );
            if let Some(previous) = largest.replace(path) {
                std::fs::remove_dir_all(previous)?;
            }
        }
    }

    if config.wants("audit")
        && let Some(path) = &largest
    {
        progress("audit");
        audit::rows(&mut report, path, dir, repeats)?;
    }

    if let Some((organisations, members)) = config.demo
        && config.wants("demo")
    {
        progress("demo");
        let run = scale::demo(&dir.join("demo"), organisations, members)?;
        report.add(
            "scale.demo",
            "scale",
            &format!(
                "demo, {} organisations / {} members",
                report::format_count(organisations),
                report::format_count(members)
            ),
            "s",
            vec![run.seconds],
        );
        report.note(format!(
            "{} events, {:.0} ev/s durable, {:.0} MB on disk ({:.0} B/ev)",
            run.events,
            run.events as f64 / run.seconds,
            run.disk as f64 / 1e6,
            run.disk as f64 / run.events.max(1) as f64
        ));
        report.add(
            "scale.demo.disk",
            "scale",
            "demo: disk",
            "MB",
            vec![run.disk as f64 / 1e6],
        );
    } else if config.wants("demo") {
        report.skip(
            "scale.demo",
            "scale",
            "demo, 5,000 organisations / 100,000 members",
            "s",
            "not run: pass --demo (about 15 minutes on 2 cores)",
        );
    }

    targets(&mut report, config.demo == Some(FULL_DEMO));
    report.fact(
        "wall_seconds",
        format!("{:.1}", started.elapsed().as_secs_f64()),
    );
    report.fact("load_after", load_average());
    Ok(report)
}

/// The scale rows that format 2 makes independent of the log's size: a
/// checkpoint (O(log N) tile reads) and one instance's history and replay
/// (its own events), timed in the probe's fresh process.
fn one_instance_rows(report: &mut Report, key: &str, label: &str, probe: &scale::Probe) {
    let s = "scale";
    report.add(
        &format!("{key}.checkpoint"),
        s,
        &format!("{label}: checkpoint (Engine::tree_head)"),
        "ms",
        vec![probe.checkpoint_ms],
    );
    report.note(format!(
        "best of 5; first after open {:.2} ms",
        probe.checkpoint_cold_ms
    ));
    report.add(
        &format!("{key}.history"),
        s,
        &format!("{label}: one instance's history"),
        "ms",
        vec![probe.history_ms],
    );
    report.note(format!(
        "{:.0} events, best of 5; first after open {:.2} ms",
        probe.history_events, probe.history_cold_ms
    ));
    report.add(
        &format!("{key}.replay_one"),
        s,
        &format!("{label}: one instance's history + replay"),
        "ms",
        vec![probe.replay_one_ms],
    );
    report.note("Replayer::scoped over the deployments and Engine::history, best of 5");
}

/// The PostgreSQL rows (issue #15): strive on its PostgreSQL backend with
/// 1 and 64 durable callers, the naive engine on the same server with 1
/// and 64 connections, and pgbench TPC-B with 64 clients as the ceiling;
/// skipped, saying why, when no server answers.
fn postgres_rows(
    report: &mut Report,
    config: &Config,
    event: &[u8],
    snapshot: &[u8],
) -> Fallible<()> {
    let s = "postgres";
    let server = postgres::server();
    let (budget, repeats) = (config.budget(), config.repeats());
    if let Err(note) = postgres::reachable(&server) {
        for key in [
            "postgres.durable.c64",
            "postgres.naive.c64",
            "postgres.pgbench.c64",
            "postgres.p2.alone",
            "postgres.p2.shared2",
        ] {
            report.skip(key, s, key, "tr/s", &note);
        }
        return Ok(());
    }
    for callers in [1usize, 64] {
        let setup = strive::Setup {
            dir: &config.dir,
            server: Some(&server),
            instances: INSTANCES,
            partitions: 1,
            budget,
        };
        let samples = repeat(repeats, || {
            Ok(strive::fire(&setup, callers, strive::Mode::Flushed)?.per_second)
        })?;
        report.add(
            &format!("postgres.durable.c{callers}"),
            s,
            &format!("strive on PostgreSQL, durable fire, {callers} caller(s)"),
            "tr/s",
            samples,
        );
    }
    report.note("a group per transaction; commit with synchronous_commit = on");
    sharing_rows(report, &server, budget, repeats)?;
    let work = sqlite::Workload {
        event,
        snapshot,
        instances: INSTANCES,
        budget,
    };
    for callers in [1usize, 64] {
        let samples = repeat(repeats, || postgres::naive(&server, &work, callers))?;
        report.add(
            &format!("postgres.naive.c{callers}"),
            s,
            &format!("naive engine on PostgreSQL, 1 txn/transition, {callers} connection(s)"),
            "tr/s",
            samples,
        );
    }
    let scale = if config.mode == Mode::Quick { 1 } else { 10 };
    match postgres::pgbench(&server, 64, scale, budget)? {
        Ok(tps) => {
            report.add(
                "postgres.pgbench.c64",
                s,
                "pgbench TPC-B, 64 clients (the server's ceiling)",
                "txn/s",
                vec![tps],
            );
            report.note(format!("scale {scale}; 5 statements per transaction"));
        }
        Err(note) => report.skip("postgres.pgbench.c64", s, "pgbench TPC-B", "txn/s", &note),
    }
    Ok(())
}

/// Issue #15's "two engine processes on different partitions ≥ 1.0× one
/// process": a store of two partitions and 64 durable callers, written by
/// one engine alone, by one sharer, and by two sharers (one partition
/// each), side by side in one run.
fn sharing_rows(
    report: &mut Report,
    server: &str,
    budget: std::time::Duration,
    repeats: usize,
) -> Fallible<()> {
    use postgres::Sharing;
    let s = "postgres";
    for (key, sharing, label) in [
        ("postgres.p2.alone", Sharing::Alone, "one engine alone"),
        (
            "postgres.p2.shared1",
            Sharing::OneSharer,
            "one engine, shared",
        ),
        (
            "postgres.p2.shared2",
            Sharing::TwoSharers,
            "two engines, shared, one partition each",
        ),
    ] {
        let samples = repeat(repeats, || {
            postgres::sharing(server, sharing, 64, INSTANCES, budget)
        })?;
        report.add(
            key,
            s,
            &format!("strive on PostgreSQL, 2 partitions, 64 callers: {label}"),
            "tr/s",
            samples,
        );
    }
    report.note("each group under its partition's head lock when shared (?shared=true)");
    Ok(())
}

/// The targets of issue #10 (format 2), as ratios and bounds. The SQLite
/// baseline is the append-order log at 1,000 per commit, as the issue
/// names it; the state-in-memory peer is shown beside it without a target.
/// The demo's bounds hold only for the full demo (`full_demo`).
fn targets(report: &mut Report, full_demo: bool) {
    let sqlite = "peers.sqlite.append.1000";
    report.ratio("strive.durable.c64", sqlite, Some(2.0));
    report.ratio("strive.durable.c64", "peers.sqlite.memory.1000", None);
    report.ratio("strive.durable.c64", "limits.sled.naive", Some(20.0));
    report.ratio("strive.durable.c64.p4", "strive.durable.c64", None);
    report.ratio("strive.durable.c1", "limits.fdatasync.1", Some(0.8));
    report.ratio("strive.durable.c1", "peers.sqlite.append.1", None);
    report.ratio("strive.durable.c64", "limits.sled.shaped.64", None);
    report.ratio("strive.bulk.c64", "limits.sled.shaped.1000", None);
    report.ratio("strive.synced.c1", "limits.fdatasync.1", Some(0.8));
    report.ratio("strive.synced.c1", "limits.fdatasync.1.prealloc", None);
    report.ratio("strive.synced.c64", sqlite, Some(1.5));
    report.ratio("strive.synced.c64", "peers.sqlite.memory.1000", None);
    report.ratio("eval.memory", "peers.xstate", Some(4.0));
    // Issue #11's targets for the HTTP service.
    report.ratio("http.durable.c64", "strive.durable.c64", Some(0.5));
    report.ratio("http.durable.c1", "strive.durable.c1", None);
    report.bound("http.latency.c64.p99", "<", 20.0);
    // Issue #15's targets for the PostgreSQL backend.
    report.ratio("postgres.durable.c64", "postgres.naive.c1", Some(10.0));
    report.ratio("postgres.durable.c64", "postgres.naive.c64", None);
    report.ratio("postgres.durable.c64", sqlite, Some(1.0));
    report.ratio("postgres.durable.c64", "postgres.pgbench.c64", None);
    report.ratio("postgres.durable.c64", "strive.durable.c64", None);
    report.ratio("postgres.p2.shared2", "postgres.p2.alone", Some(1.0));
    report.ratio("postgres.p2.shared2", "postgres.p2.shared1", None);
    report.bound("audit.replay", ">=", 1_000_000.0);
    report.bound("audit.replay_core", ">=", 1_000_000.0);
    report.bound("audit.verify.mb", ">=", 300.0);
    for label in ["1M", "10M"] {
        report.bound(&format!("scale.{label}.disk_ratio"), "<=", 1.0);
    }
    report.bound("scale.10M.rss", "<=", 300.0);
    report.bound("scale.10M.open", "<", 1000.0);
    for label in ["1M", "10M"] {
        report.bound(&format!("scale.{label}.checkpoint"), "<", 10.0);
        report.bound(&format!("scale.{label}.history"), "<", 10.0);
        report.bound(&format!("scale.{label}.replay_one"), "<", 10.0);
    }
    if full_demo {
        report.bound("scale.demo", "<=", 180.0);
        report.bound("scale.demo.disk", "<=", 1000.0);
    }
    // Bounds on rows that were not measured say nothing.
    let measured: Vec<String> = report
        .rows
        .iter()
        .filter(|r| r.value.is_some())
        .map(|r| r.key.clone())
        .collect();
    report.bounds.retain(|b| measured.contains(&b.row));
    report
        .ratios
        .retain(|r| measured.contains(&r.row) && measured.contains(&r.baseline));
}

/// What a row's label adds for a store of `partitions` partitions:
/// nothing for one.
fn partitions_label(partitions: u32) -> String {
    if partitions == 1 {
        String::new()
    } else {
        format!(", {partitions} partitions")
    }
}

fn progress(section: &str) {
    eprintln!("strive-bench: {section}...");
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Machine facts for the report.
fn facts(report: &mut Report, config: &Config, dir: &Path) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    report.fact("cpu", model);
    report.fact(
        "cores",
        std::thread::available_parallelism()
            .map(|n| n.to_string())
            .unwrap_or_default(),
    );
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{} MB", kb / 1024))
        .unwrap_or_default();
    report.fact("memory", memory);
    report.fact(
        "kernel",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
    );
    report.fact("dir", dir.display().to_string());
    report.fact("filesystem", filesystem_of(dir));
    report.fact("mode", format!("{:?}", config.mode));
    report.fact("repeats", config.repeats().to_string());
    report.fact("partitions", config.partitions.to_string());
    report.fact("budget_ms", config.budget().as_millis().to_string());
    report.fact("sqlite", rusqlite::version());
    report.fact("load_before", load_average());
}

/// The mount that holds `dir`: device and filesystem type.
fn filesystem_of(dir: &Path) -> String {
    let Ok(dir) = dir.canonicalize() else {
        return String::new();
    };
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            (parts.len() >= 3 && dir.starts_with(parts[1])).then(|| {
                (
                    parts[1].len(),
                    format!("{} {} on {}", parts[0], parts[2], parts[1]),
                )
            })
        })
        .max()
        .map(|(_, text)| text)
        .unwrap_or_default()
}
