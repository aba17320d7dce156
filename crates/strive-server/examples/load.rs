//! A bounded load test on loopback (issue #11): durable `fire` through the
//! library with N callers, then through HTTP with N keep-alive
//! connections, in the same run, on fresh stores of their own. Prints
//! throughput, p50 and p99, and the ratio of the two throughputs.
//!
//! ```text
//! cargo run --release -p strive-server --example load -- [--seconds 10] [--connections 64] [--dir DIR]
//! ```
//!
//! With `--external` it serves for `--seconds` after the library phase and
//! prints the URL and a token, for wrk (`crates/strive-server/examples/fire.lua`).
#![allow(clippy::print_stdout)] // An example program: printing is its output.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use strive_server::{Background, Config, TokenFile, TokenRequest};
use strive_store::{Actor, CommandOptions, Engine, Options};

/// One instance per caller, firing a self-loop, so callers never conflict
/// and every command is one durable event.
const COUNTER: &str = r#"{
  "id": "counter", "title": "Counter",
  "roles": [{"id": "clerk"}],
  "stages": [{"id": "open", "kind": "initial"}, {"id": "done", "kind": "terminal"}],
  "transitions": [
    {"event": "tick", "from": "open", "roles": ["clerk"]},
    {"event": "finish", "from": "open", "to": "done", "roles": ["clerk"]}
  ]
}"#;

struct Args {
    /// Serve for an outside load generator (wrk) instead of the built-in
    /// clients: prints the URL and token, serves for `seconds`, then stops.
    external: bool,
    seconds: u64,
    connections: usize,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut args = Args {
        external: false,
        seconds: 10,
        connections: 64,
        dir: None,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        if flag == "--external" {
            args.external = true;
            continue;
        }
        let value = given.next().unwrap_or_default();
        match flag.as_str() {
            "--seconds" => args.seconds = value.parse().unwrap_or(args.seconds),
            "--connections" => args.connections = value.parse().unwrap_or(args.connections),
            "--dir" => args.dir = Some(PathBuf::from(value)),
            _ => println!("ignored: {flag} {value}"),
        }
    }
    args
}

/// A store with the counter deployed and one instance per caller.
fn prepare(dir: &Path, callers: usize) -> Engine {
    let engine = Engine::open(dir, Options::default()).expect("the store opens");
    let admin = Actor::new("admin", &["admin"]);
    engine.deploy(COUNTER, &admin).expect("the counter deploys");
    let clerk = Actor::new("clerk", &["clerk"]);
    for i in 0..callers {
        engine
            .start(
                "counter",
                &format!("c-{i}"),
                &clerk,
                Default::default(),
                None,
                CommandOptions::default(),
            )
            .expect("starts");
    }
    engine
}

/// Runs `callers` threads for `seconds`, each calling `work(i)` in a loop;
/// returns every latency.
fn drive(callers: usize, seconds: u64, work: impl Fn(usize) + Sync) -> (Vec<Duration>, Duration) {
    let barrier = Barrier::new(callers);
    let began = Instant::now();
    let latencies = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..callers)
            .map(|i| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    let end = Instant::now() + Duration::from_secs(seconds);
                    let mut latencies = Vec::new();
                    while Instant::now() < end {
                        let started = Instant::now();
                        work(i);
                        latencies.push(started.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("a caller"))
            .collect::<Vec<_>>()
    });
    (latencies, began.elapsed())
}

fn summary(what: &str, mut latencies: Vec<Duration>, took: Duration) -> f64 {
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let rate = latencies.len() as f64 / took.as_secs_f64();
    println!(
        "{what:<28} {:>8} fires {:>9.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        latencies.len(),
        rate,
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    );
    rate
}

fn main() {
    let args = args();
    let base = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("a directory");
    let n = args.connections;
    println!(
        "durable fire, {n} callers, {} s each, in {}",
        args.seconds,
        base.path().display()
    );

    let library_dir = base.path().join("library");
    let engine = prepare(&library_dir, n);
    let clerk = Actor::new("clerk", &["clerk"]);
    let (latencies, took) = drive(n, args.seconds, |i| {
        engine
            .fire(
                &format!("c-{i}"),
                "tick",
                &clerk,
                Value::Null,
                CommandOptions::default(),
            )
            .expect("fires");
    });
    let library = summary(&format!("library, {n} threads"), latencies, took);
    drop(engine);

    let http_dir = base.path().join("http");
    let engine = prepare(&http_dir, n);
    let tokens = TokenFile::beside(&http_dir);
    let request = TokenRequest {
        actor: "clerk".to_owned(),
        roles: vec!["clerk".to_owned()],
        expires_at: None,
    };
    let token = Arc::new(
        tokens
            .issue(&request, jiff::Timestamp::now())
            .expect("a token")
            .token,
    );
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        rate_limit: 0.0,
        ..Config::default()
    };
    let server = Background::start(engine, tokens, config).expect("the server starts");
    if args.external {
        println!("serving http://{} token {token}", server.addr());
        std::thread::sleep(Duration::from_secs(args.seconds));
        server.stop().expect("the server stops");
        return;
    }
    let agents: Vec<ureq::Agent> = (0..n).map(|_| ureq::Agent::new_with_defaults()).collect();
    let base_url = format!("http://{}", server.addr());
    let body = json!({"event": "tick"});
    let (latencies, took) = drive(n, args.seconds, |i| {
        let response = agents[i]
            .post(&format!("{base_url}/v1/instances/c-{i}/events"))
            .header("Authorization", &format!("Bearer {token}"))
            .send_json(&body)
            .expect("fires over HTTP");
        assert_eq!(response.status(), 200);
    });
    let http = summary(&format!("HTTP, {n} keep-alive conns"), latencies, took);
    server.stop().expect("the server stops");
    println!("HTTP / library throughput: {:.2}", http / library);
}
