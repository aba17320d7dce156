//! `strive stress`: fires transitions from several threads and prints one
//! line per acknowledged command, flushed at once. The crash tests kill it
//! with SIGKILL at random moments and check that every acknowledged
//! command survived. Hidden from `--help`: it is a test tool.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};
use strive_store::{Actor, CommandError, CommandOptions, Durability, Engine, OpenError, Options};

use crate::failure::Failure;

/// A ring that never finishes: a -go-> b -back-> a, and `note` anywhere.
const RING: &str = r#"{
  "id": "stress-ring",
  "title": "stress ring",
  "roles": [{"id": "worker"}],
  "data": [{"id": "count", "type": "integer"}],
  "stages": [
    {"id": "a", "kind": "initial"}, {"id": "b"}, {"id": "done", "kind": "terminal"}
  ],
  "transitions": [
    {"event": "go", "from": "a", "to": "b", "roles": ["worker"]},
    {"event": "back", "from": "b", "to": "a", "roles": ["worker"],
     "guard": {"<": [{"var": "data.count"}, 1000000000]}},
    {"event": "note", "from": "*", "roles": ["worker"],
     "payload": [{"id": "n", "type": "integer", "required": true}],
     "effects": [{"op": "increment", "var": "count", "by": {"var": "payload.n"}}]},
    {"event": "finish", "from": "b", "to": "done", "roles": ["worker"]}
  ]
}"#;

/// Runs `threads` writers until killed, or until `max` commands were
/// acknowledged in all. Each acknowledgement prints
/// `ack <instance> <seq> <gseq> <hash>`. Instance ids begin with `prefix`
/// when given (two writers given one race on the same instances), else
/// with a prefix of this run's own.
pub fn run(
    db: &std::path::Path,
    threads: usize,
    max: Option<u64>,
    buffered: bool,
    prefix: Option<&str>,
) -> Result<ExitCode, Failure> {
    let options = Options {
        durability: if buffered {
            Durability::Buffered
        } else {
            Durability::Flushed
        },
        ..Options::default()
    };
    // The crash test opens the store itself between runs; sled releases
    // its lock a moment after the test's handle is dropped, so a run that
    // starts right then waits for it rather than acknowledging nothing.
    let mut attempts = 0;
    let engine = loop {
        let opened = match strive_store::location_text(db) {
            Some(url) => Engine::open_url(url, options.clone()),
            None => Engine::open(db, options.clone()),
        };
        match opened {
            Err(OpenError::Locked { .. }) if attempts < 200 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => break other?,
        }
    };
    let admin = Actor::new("stress", &["admin"]);
    engine.deploy(RING, &admin)?;
    let acknowledged = AtomicU64::new(0);
    let out = Mutex::new(std::io::stdout());
    // A fresh prefix per run, so instances of earlier (killed) runs on the
    // same database are never started twice.
    let run_id = match prefix {
        Some(prefix) => prefix.to_owned(),
        None => format!("r{}", engine.total_events()),
    };
    std::thread::scope(|scope| {
        for thread in 0..threads.max(1) {
            let (engine, out, acknowledged) = (&engine, &out, &acknowledged);
            let prefix = format!("{run_id}-t{thread}");
            scope.spawn(move || writer(engine, out, acknowledged, max, &prefix));
        }
    });
    Ok(ExitCode::SUCCESS)
}

fn writer(
    engine: &Engine,
    out: &Mutex<std::io::Stdout>,
    acknowledged: &AtomicU64,
    max: Option<u64>,
    prefix: &str,
) {
    let worker = Actor::new(prefix, &["worker"]);
    let mut instance = 0u64;
    loop {
        let id = format!("{prefix}-{instance}");
        instance += 1;
        let mut step = 0u64;
        let mut result = engine.start(
            "stress-ring",
            &id,
            &worker,
            Map::new(),
            None,
            CommandOptions::default(),
        );
        // Each instance takes a few dozen events, then the next begins.
        while step < 40 {
            match result {
                Ok(outcome) => {
                    if let Ok(mut out) = out.lock() {
                        let _ = writeln!(
                            out,
                            "ack {} {} {}:{} {}",
                            outcome.instance,
                            outcome.seq,
                            outcome.partition,
                            outcome.gseq,
                            outcome.hash
                        );
                        let _ = out.flush();
                    }
                    let done = acknowledged.fetch_add(1, Ordering::SeqCst) + 1;
                    if max.is_some_and(|max| done >= max) {
                        return;
                    }
                }
                Err(CommandError::Storage(error)) => {
                    tracing::error!(%error, "stress writer stops");
                    return;
                }
                Err(error) => tracing::warn!(%error, "refused"),
            }
            let (event, payload): (&str, Value) = match step % 3 {
                0 => ("go", Value::Null),
                1 => ("note", json!({"n": step})),
                _ => ("back", Value::Null),
            };
            step += 1;
            result = engine.fire(&id, event, &worker, payload, CommandOptions::default());
        }
    }
}
