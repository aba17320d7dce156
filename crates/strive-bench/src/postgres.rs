//! The PostgreSQL rows (issue #15): strive on its PostgreSQL backend, a
//! naive engine on the same server (one transaction per transition: read
//! the state row under a lock, write it, append the event), and pgbench's
//! TPC-B as the server's ceiling. Every store is a fresh database, dropped
//! after its run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use strive_store::TemporaryDatabase;

use crate::Fallible;

/// The server the rows run on: `STRIVE_POSTGRES_URL`, else the local one.
pub fn server() -> String {
    std::env::var("STRIVE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".to_owned())
}

/// Whether the server answers; the reason it does not, otherwise.
pub fn reachable(server: &str) -> Result<(), String> {
    Client::connect(server, NoTls)
        .map(drop)
        .map_err(|error| format!("no PostgreSQL server at {server} ({error})"))
}

/// The naive engine: `callers` threads, each with its own connection and
/// its own instances, each transition one transaction. Transitions per
/// second over `budget`.
pub fn naive(server: &str, work: &crate::sqlite::Workload<'_>, callers: usize) -> Fallible<f64> {
    let database = TemporaryDatabase::create(server)?;
    let mut setup = Client::connect(database.url(), NoTls)?;
    setup.batch_execute(
        "CREATE TABLE instances (id TEXT PRIMARY KEY, stage INT NOT NULL, seq BIGINT NOT NULL, \
         state BYTEA NOT NULL); \
         CREATE TABLE events (gseq BIGSERIAL PRIMARY KEY, instance TEXT NOT NULL, \
         seq BIGINT NOT NULL, body BYTEA NOT NULL); \
         CREATE INDEX events_by_instance ON events (instance, seq);",
    )?;
    let ids: Vec<String> = (0..work.instances)
        .map(crate::fixture::instance_id)
        .collect();
    setup.execute(
        "INSERT INTO instances SELECT id, 0, 1, $2 FROM unnest($1::TEXT[]) AS id",
        &[&ids, &work.snapshot],
    )?;
    drop(setup);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(callers + 1));
    let handles: Vec<_> = (0..callers)
        .map(|c| {
            let mine: Vec<String> = ids.iter().skip(c).step_by(callers).cloned().collect();
            let (stop, done, barrier) = (stop.clone(), done.clone(), barrier.clone());
            let (url, snapshot, event) = (
                database.url().to_owned(),
                work.snapshot.to_vec(),
                work.event.to_vec(),
            );
            std::thread::spawn(move || -> Result<(), String> {
                let mut client = Client::connect(&url, NoTls).map_err(|e| e.to_string())?;
                barrier.wait();
                let mut turn = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let id = &mine[turn % mine.len()];
                    turn += 1;
                    transition(&mut client, id, &snapshot, &event).map_err(|e| e.to_string())?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    std::thread::sleep(work.budget);
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    for handle in handles {
        handle.join().map_err(|_| "a caller panicked")??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64())
}

/// One transition of the naive engine, in its own transaction.
fn transition(
    client: &mut Client,
    id: &str,
    snapshot: &[u8],
    event: &[u8],
) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    let row = tx.query_one(
        "SELECT stage, seq FROM instances WHERE id = $1 FOR UPDATE",
        &[&id],
    )?;
    let (stage, seq): (i32, i64) = (row.get(0), row.get(1));
    tx.execute(
        "UPDATE instances SET stage = $2, seq = $3, state = $4 WHERE id = $1",
        &[&id, &((stage + 1) % 5), &(seq + 1), &snapshot],
    )?;
    tx.execute(
        "INSERT INTO events (instance, seq, body) VALUES ($1, $2, $3)",
        &[&id, &(seq + 1), &event],
    )?;
    tx.commit()
}

/// pgbench's TPC-B-like script with `clients` clients on a fresh database
/// at `scale`, for `budget` (whole seconds, at least 1): transactions per
/// second, or why it could not run.
pub fn pgbench(
    server: &str,
    clients: usize,
    scale: u32,
    budget: Duration,
) -> Fallible<Result<f64, String>> {
    if std::process::Command::new("pgbench")
        .arg("--version")
        .output()
        .is_err()
    {
        return Ok(Err("pgbench is not installed".to_owned()));
    }
    let database = TemporaryDatabase::create(server)?;
    let url = database.url();
    let init = std::process::Command::new("pgbench")
        .args(["-i", "-q", "-s", &scale.to_string(), url])
        .output()?;
    if !init.status.success() {
        return Ok(Err(format!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        )));
    }
    let seconds = budget.as_secs().max(1).to_string();
    let run = std::process::Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &seconds,
            url,
        ])
        .output()?;
    let out = String::from_utf8_lossy(&run.stdout);
    let tps = out
        .lines()
        .find_map(|line| line.strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse::<f64>().ok());
    Ok(tps.ok_or_else(|| format!("no tps in pgbench's output: {out}")))
}

/// How the engines of [`sharing`] hold a store of two partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// One engine that opened the store alone (the owner lock).
    Alone,
    /// One engine that opened it shared (`?shared=true`), writing both
    /// partitions.
    OneSharer,
    /// Two engines that opened it shared, each writing its own partition:
    /// issue #15's "two engine processes on different partitions".
    TwoSharers,
}

/// Durable fires per second from `callers` callers on a fresh store of two
/// partitions held as `sharing` says: the callers are split over the
/// engines, and with two engines each fires only the instances of its own
/// partition, so the two never wait for each other's head lock. The two
/// engines share nothing in memory, as two processes would not.
pub fn sharing(
    server: &str,
    sharing: Sharing,
    callers: usize,
    instances: usize,
    budget: Duration,
) -> Fallible<f64> {
    let database = TemporaryDatabase::create(server)?;
    crate::strive::prepare(std::path::Path::new(database.url()), instances, 2)?;
    let options = strive_store::Options {
        partitions: 2,
        ..strive_store::Options::default()
    };
    let shared = format!("{}?{}=true", database.url(), strive_store::SHARED_PARAMETER);
    let engines = match sharing {
        Sharing::Alone => vec![strive_store::Engine::open_url(database.url(), options)?],
        Sharing::OneSharer => vec![strive_store::Engine::open_url(&shared, options)?],
        Sharing::TwoSharers => vec![
            strive_store::Engine::open_url(&shared, options.clone())?,
            strive_store::Engine::open_url(&shared, options)?,
        ],
    };
    let count = engines.len();
    // Caller c fires through engine c % count; with two engines, only on
    // the instances of that engine's partition.
    let ids: Vec<(u32, String)> = (0..instances)
        .map(|n| {
            let id = crate::fixture::instance_id(n);
            (strive_core::root_partition(&id, 2), id)
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(callers + 1));
    let handles: Vec<_> = (0..callers)
        .map(|c| {
            let engine = engines[c % count].clone();
            let mine: Vec<String> = ids
                .iter()
                .filter(|(p, _)| count == 1 || *p as usize == c % count)
                .skip(c / count)
                .step_by(callers.div_ceil(count))
                .map(|(_, id)| id.clone())
                .collect();
            let (stop, done, barrier) = (stop.clone(), done.clone(), barrier.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let actor = crate::fixture::actor();
                barrier.wait();
                let mut turn = 0usize;
                while !stop.load(Ordering::Relaxed) && !mine.is_empty() {
                    let id = &mine[turn % mine.len()];
                    turn += 1;
                    engine
                        .fire(
                            id,
                            "next",
                            &actor,
                            crate::fixture::payload(),
                            strive_store::CommandOptions::default(),
                        )
                        .map_err(|e| e.to_string())?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    std::thread::sleep(budget);
    stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    for handle in handles {
        handle.join().map_err(|_| "a caller panicked")??;
    }
    drop(engines);
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64())
}
