//! strive over HTTP (issue #11): durable fires sent to `strive serve`'s
//! route `POST /v1/instances/{id}/events` from keep-alive connections, one
//! per caller, beside the library's callers in the same run.
//!
//! The server runs in this process on a loopback port (`Background`), so
//! the clients, the server's runtime and the engine's writer share the
//! machine's cores, as a service and its callers on one host would. Each
//! caller is a thread with its own `ureq` agent, which keeps its one
//! connection open between calls; each call is measured from the request
//! sent to the response's body read.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strive_server::{Background, Config, TokenFile, TokenRequest};
use strive_store::{Engine, Options};

use crate::Fallible;
use crate::fixture;
use crate::strive::{Run, Setup};

/// `connections` callers fire `next` over HTTP on their own instances of
/// a fresh store made as `setup` says, for `setup.budget`.
pub fn fire(setup: &Setup<'_>, connections: usize) -> Fallible<Run> {
    let holder = tempfile::tempdir_in(setup.dir)?;
    let path = holder.path().join("store");
    crate::strive::prepare(&path, setup.instances, setup.partitions)?;
    let engine = Engine::open(
        &path,
        Options {
            partitions: setup.partitions,
            ..Options::default()
        },
    )?;
    let tokens = TokenFile::beside(&path);
    let actor = fixture::actor();
    let issued = tokens.issue(
        &TokenRequest {
            actor: actor.id.clone(),
            roles: actor.roles.iter().map(ToString::to_string).collect(),
            expires_at: None,
        },
        jiff::Timestamp::now(),
    )?;
    let config = Config {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        // The benchmark measures the engine behind the routes, not the
        // per-token rate limit a deployment sets.
        rate_limit: 0.0,
        fire_deadlines: false,
        ..Config::default()
    };
    let server = Background::start(engine, tokens, config)?;
    let calls = Calls {
        base: format!("http://{}/v1/instances/", server.addr()),
        authorization: format!("Bearer {}", issued.token),
        body: serde_json::json!({"event": "next", "payload": fixture::payload()}).to_string(),
    };
    let run = drive(&calls, setup, connections);
    server.stop()?;
    run
}

/// What every call sends: the route's prefix, the token, the body.
struct Calls {
    base: String,
    authorization: String,
    body: String,
}

/// Runs the callers against the server for `setup.budget`.
fn drive(calls: &Calls, setup: &Setup<'_>, connections: usize) -> Fallible<Run> {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(connections + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..connections)
            .map(|c| {
                let (stop, barrier) = (&stop, &barrier);
                scope.spawn(move || caller(calls, setup.instances, (c, connections), stop, barrier))
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(setup.budget);
        stop.store(true, Ordering::Relaxed);
        let mut latencies = Vec::new();
        for handle in handles {
            latencies.extend(handle.join().map_err(|_| "an HTTP caller panicked")??);
        }
        let elapsed = start.elapsed();
        latencies.sort_unstable();
        Ok(Run {
            per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
            latencies,
        })
    })
}

/// One caller: the instances `c`, `c + n`, ... in turn over one
/// keep-alive connection, until `stop`. Returns each call's latency in
/// microseconds; a call that is not answered 200 ends the run with what
/// the server said.
fn caller(
    calls: &Calls,
    instances: usize,
    (c, n): (usize, usize),
    stop: &AtomicBool,
    barrier: &Barrier,
) -> Fallible<Vec<u32>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let urls: Vec<String> = (c..instances)
        .step_by(n)
        .map(|i| format!("{}{}/events", calls.base, fixture::instance_id(i)))
        .collect();
    if urls.is_empty() {
        return Err("more HTTP callers than instances".into());
    }
    let mut latencies = Vec::with_capacity(1 << 14);
    barrier.wait();
    let mut turn = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let url = &urls[turn % urls.len()];
        turn += 1;
        let start = Instant::now();
        let mut response = agent
            .post(url)
            .header("Authorization", &calls.authorization)
            .content_type("application/json")
            .send(calls.body.as_str())?;
        // Reading the body to its end lets the agent reuse the connection.
        let answer = response.body_mut().read_to_string()?;
        if response.status() != 200 {
            return Err(format!("{url} answered {}: {answer}", response.status()).into());
        }
        let micros = start.elapsed().as_micros();
        latencies.push(u32::try_from(micros).unwrap_or(u32::MAX));
    }
    Ok(latencies)
}
