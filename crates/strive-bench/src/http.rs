//! strive over HTTP (issue #11): durable fires sent to `strive serve`'s
//! route `POST /v1/instances/{id}/events` from keep-alive connections, one
//! per caller, beside the library's callers in the same run.
//!
//! The server runs in this process on a loopback port (`Background`), so
//! the clients, the server's runtime and the engine's writer share the
//! machine's cores, as a service and its callers on one host would. The
//! load comes from wrk (Debian's `wrk`) when it is installed: a separate
//! process, two threads driving every connection on epoll, the usual
//! HTTP load generator. Without it, each caller is a thread of this
//! process with its own `ureq` agent, which keeps its one connection open
//! between calls; 64 such threads take CPU the server would have (the row
//! says which client ran). Each call is measured from the request sent to
//! the response read.

use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strive_server::{Background, Config, TokenFile, TokenRequest};
use strive_store::{Engine, Options};

use crate::Fallible;
use crate::fixture;
use crate::strive::{Run, Setup};

/// The load generator that drove a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// wrk, in a process of its own.
    Wrk,
    /// ureq threads in this process.
    Ureq,
}

impl Client {
    /// wrk when it is on the `PATH` and `connections` need it (one
    /// connection is a plain loop, cheapest from this process), else ureq.
    pub fn for_connections(connections: usize) -> Client {
        let installed = std::process::Command::new("wrk")
            .arg("--version")
            .output()
            .is_ok();
        if connections > 1 && installed {
            Client::Wrk
        } else {
            Client::Ureq
        }
    }

    /// The client's name, for the rows' labels.
    pub fn name(self) -> &'static str {
        match self {
            Client::Wrk => "wrk",
            Client::Ureq => "ureq",
        }
    }
}

/// `connections` callers fire `next` over HTTP on their own instances of
/// a fresh store made as `setup` says, for `setup.budget`, driven by
/// `client`.
pub fn fire(setup: &Setup<'_>, connections: usize, client: Client) -> Fallible<Run> {
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
    let run = match client {
        Client::Wrk => wrk(&calls, setup, connections, holder.path()),
        Client::Ureq => drive(&calls, setup, connections),
    };
    server.stop()?;
    run
}

/// Runs wrk against the server for `setup.budget` with a script that
/// fires on the instances in turn, and reads its figures back (wrk gives
/// a latency distribution, not every call's latency).
fn wrk(calls: &Calls, setup: &Setup<'_>, connections: usize, dir: &Path) -> Fallible<Run> {
    let paths: Vec<String> = (0..setup.instances)
        .map(|i| format!("\"/v1/instances/{}/events\"", fixture::instance_id(i)))
        .collect();
    let script = format!(
        "wrk.method = \"POST\"\n\
         wrk.headers[\"Authorization\"] = \"{}\"\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.body = '{}'\n\
         local paths = {{{}}}\n\
         local n = 0\n\
         request = function()\n  n = n + 1\n  return wrk.format(nil, paths[(n % #paths) + 1])\nend\n",
        calls.authorization,
        calls.body,
        paths.join(", ")
    );
    let script_path = dir.join("fire.lua");
    std::fs::write(&script_path, script)?;
    let origin = calls.base.trim_end_matches("/v1/instances/");
    let seconds = setup.budget.as_secs().max(1);
    let output = std::process::Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .args(["--latency", "--timeout", "30s", "-s"])
        .arg(&script_path)
        .arg(origin)
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    parse_wrk(&text)
}

/// wrk's `--latency` report: requests per second and the 50% and 99%
/// latencies. Any answer that is not 2xx or 3xx, or a socket error, makes
/// the run fail: a figure with refusals in it measures the wrong thing.
fn parse_wrk(text: &str) -> Fallible<Run> {
    let field = |label: &str| {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(label).map(str::trim))
    };
    if let Some(count) = field("Non-2xx or 3xx responses:") {
        return Err(format!("wrk saw {count} refused calls:\n{text}").into());
    }
    if let Some(errors) = field("Socket errors:") {
        return Err(format!("wrk saw socket errors ({errors}):\n{text}").into());
    }
    let per_second: f64 = field("Requests/sec:")
        .ok_or_else(|| format!("no Requests/sec in wrk's report:\n{text}"))?
        .parse()?;
    let micros = |quantile: &str| -> Fallible<u32> {
        let value =
            field(quantile).ok_or_else(|| format!("no {quantile} latency in wrk's report"))?;
        let (number, factor) = if let Some(n) = value.strip_suffix("us") {
            (n, 1.0)
        } else if let Some(n) = value.strip_suffix("ms") {
            (n, 1_000.0)
        } else if let Some(n) = value.strip_suffix('s') {
            (n, 1_000_000.0)
        } else {
            return Err(format!("wrk's {quantile} latency reads {value:?}").into());
        };
        let micros = number.parse::<f64>()? * factor;
        Ok(micros.round() as u32)
    };
    Ok(Run {
        per_second,
        latencies: Vec::new(),
        reported: vec![(0.5, micros("50%")?), (0.99, micros("99%")?)],
    })
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
            reported: Vec::new(),
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

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 10s test @ http://127.0.0.1:40000
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    11.57ms    5.33ms  60.00ms   75.00%
    Req/Sec     2.78k   250.00     3.20k    70.00%
  Latency Distribution
     50%   10.70ms
     75%   13.00ms
     90%   17.00ms
     99%   38.20ms
  55340 requests in 10.00s, 20.00MB read
Requests/sec:   5534.12
Transfer/sec:      2.00MB
";

    #[test]
    fn wrk_reports_are_read_and_refusals_fail_the_run() {
        let run = parse_wrk(REPORT).expect("a report");
        assert!((run.per_second - 5534.12).abs() < 1e-6);
        assert!((run.quantile_ms(0.5) - 10.7).abs() < 1e-9);
        assert!((run.quantile_ms(0.99) - 38.2).abs() < 1e-9);
        let refused = REPORT.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 12\nRequests/sec",
        );
        assert!(parse_wrk(&refused).is_err());
        assert!(parse_wrk("garbage").is_err());
    }
}
