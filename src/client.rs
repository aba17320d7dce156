//! The CLI as a client of `strive serve` (issue #11): with `--server URL`
//! (or `STRIVE_SERVER`) and `--token` (or `STRIVE_TOKEN`), the commands
//! that support it send their request over HTTP instead of opening the
//! store, get the engine's own types back, and print them exactly as the
//! local command does. The actor is the token's; `--actor` and `--role`
//! are not sent.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use strive_store::{
    Actor, CommandOptions, DefinitionInfo, Event, ListQuery, Outcome, Page, Snapshot, StoredEvent,
};

use crate::cli::Cli;
use crate::commands::open;
use crate::commands::witness::WitnessCommand;
use crate::failure::Failure;
use crate::output;

/// Where commands go: the store itself, or a server that holds it.
pub enum Store {
    /// The store, opened by this process.
    Local(crate::files::Opened),
    /// A running `strive serve`.
    Remote(Remote),
}

/// Opens the store, or connects to the server when `--server` is given.
pub fn store(cli: &Cli) -> Result<Store, Failure> {
    match Remote::from_cli(cli)? {
        Some(remote) => Ok(Store::Remote(remote)),
        None => Ok(Store::Local(open(&cli.db)?)),
    }
}

/// The store for a command that writes: with `--server`, the server; else
/// the local store, created in a missing or empty directory.
pub fn store_for_writing(cli: &Cli) -> Result<Store, Failure> {
    match Remote::from_cli(cli)? {
        Some(remote) => Ok(Store::Remote(remote)),
        None => Ok(Store::Local(
            crate::commands::open_for_writing(&cli.db)?.into(),
        )),
    }
}

impl Store {
    pub fn start(
        &self,
        workflow: &str,
        instance: &str,
        actor: &Actor,
        data: Map<String, Value>,
        parent: Option<&str>,
        options: CommandOptions,
    ) -> Result<Outcome, Failure> {
        match self {
            Store::Local(engine) => {
                Ok(engine.start(workflow, instance, actor, data, parent, options)?)
            }
            Store::Remote(remote) => {
                let body = json!({"workflow": workflow, "id": instance, "data": data,
                    "parent": parent, "signature": signature_body(&options)});
                remote.send("POST", "/v1/instances", Some(&body), &options)
            }
        }
    }

    pub fn fire(
        &self,
        instance: &str,
        event: &str,
        actor: &Actor,
        payload: Value,
        options: CommandOptions,
    ) -> Result<Outcome, Failure> {
        match self {
            Store::Local(engine) => Ok(engine.fire(instance, event, actor, payload, options)?),
            Store::Remote(remote) => {
                let path = format!("/v1/instances/{}/events", segment(instance));
                let body = json!({"event": event, "payload": payload,
                    "signature": signature_body(&options)});
                remote.send("POST", &path, Some(&body), &options)
            }
        }
    }

    /// Suspends, resumes, cancels or terminates an instance
    /// (`POST /v1/instances/{id}/lifecycle` with `--server`).
    pub fn lifecycle(
        &self,
        request: &strive_store::LifecycleRequest<'_>,
    ) -> Result<Outcome, Failure> {
        match self {
            Store::Local(engine) => Ok(engine.lifecycle(request)?),
            Store::Remote(remote) => {
                let path = format!("/v1/instances/{}/lifecycle", segment(request.instance));
                let body = json!({"op": request.op, "reason": request.reason});
                remote.send("POST", &path, Some(&body), &request.options)
            }
        }
    }

    pub fn instance(&self, id: &str) -> Result<Option<Snapshot>, Failure> {
        match self {
            Store::Local(engine) => Ok(engine.instance(id)?),
            Store::Remote(remote) => {
                let path = format!("/v1/instances/{}", segment(id));
                match remote.get(&path) {
                    Err(failure) if failure.kind == "unknown_instance" => Ok(None),
                    other => other.map(Some),
                }
            }
        }
    }

    pub fn list(&self, query: &ListQuery) -> Result<Page, Failure> {
        match self {
            Store::Local(engine) => Ok(engine.list(query)?),
            Store::Remote(remote) => {
                let mut params = Vec::new();
                let pairs = [
                    ("workflow", &query.workflow),
                    ("stage", &query.stage),
                    ("parent", &query.parent),
                    ("after", &query.after),
                ];
                for (name, value) in pairs {
                    if let Some(value) = value {
                        params.push(format!("{name}={}", segment(value)));
                    }
                }
                if let Some(limit) = query.limit {
                    params.push(format!("limit={}", limit.min(1000)));
                }
                remote.get(&format!("/v1/instances?{}", params.join("&")))
            }
        }
    }

    /// The whole history, page by page from a server.
    pub fn history(&self, id: &str) -> Result<Vec<StoredEvent>, Failure> {
        let remote = match self {
            Store::Local(engine) => return Ok(engine.history(id)?),
            Store::Remote(remote) => remote,
        };
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let path = format!(
                "/v1/instances/{}/history?limit=1000&after={after}",
                segment(id)
            );
            let page: Value = match remote.get(&path) {
                Err(failure) if failure.kind == "unknown_instance" => return Ok(events),
                other => other?,
            };
            for item in page["items"].as_array().into_iter().flatten() {
                let event: Event = serde_json::from_value(item["event"].clone())
                    .map_err(|e| bad_answer(&path, e))?;
                events.push(StoredEvent {
                    hash: item["hash"].as_str().unwrap_or_default().to_owned(),
                    bytes: event.encode(),
                    event,
                });
            }
            match page["next"].as_u64() {
                Some(next) => after = next,
                None => return Ok(events),
            }
        }
    }

    pub fn versions(&self, workflow: &str) -> Result<Vec<DefinitionInfo>, Failure> {
        match self {
            Store::Local(engine) => Ok(engine.versions(workflow)?),
            Store::Remote(remote) => {
                match remote.get(&format!("/v1/workflows/{}/versions", segment(workflow))) {
                    Err(failure) if failure.kind == "unknown_workflow" => Ok(Vec::new()),
                    other => other,
                }
            }
        }
    }

    pub fn workflows(&self) -> Result<Vec<DefinitionInfo>, Failure> {
        match self {
            Store::Local(engine) => Ok(engine.workflows()?),
            Store::Remote(remote) => remote.get("/v1/workflows"),
        }
    }
}

/// A server and the token to show it.
pub struct Remote {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Remote {
    /// The server named by `--server`, if any.
    pub fn from_cli(cli: &Cli) -> Result<Option<Remote>, Failure> {
        let Some(server) = &cli.server else {
            return Ok(None);
        };
        let token = cli.token.clone().ok_or_else(|| {
            Failure::usage(
                "--server needs a bearer token: --token or STRIVE_TOKEN (see `strive token issue`)",
            )
        })?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Ok(Some(Remote {
            base: server.trim_end_matches('/').to_owned(),
            token,
            agent,
        }))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.send("GET", path, None, &CommandOptions::default())
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        options: &CommandOptions,
    ) -> Result<T, Failure> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let result = if method == "GET" {
            self.agent.get(&url).header("Authorization", &auth).call()
        } else {
            let mut request = self.agent.post(&url).header("Authorization", &auth);
            if let Some(seq) = options.expected_seq {
                request = request.header("If-Match", &format!("\"{seq}\""));
            }
            if let Some(key) = &options.command_id {
                request = request.header("Idempotency-Key", key);
            }
            request.send_json(body.unwrap_or(&Value::Null))
        };
        let mut response = result.map_err(|e| {
            Failure::new(
                "server_unreachable",
                format!(
                    "cannot reach the server at {}: {e}; is `strive serve` running there?",
                    self.base
                ),
            )
        })?;
        let status = response.status();
        let value: Value = response
            .body_mut()
            .read_json()
            .map_err(|e| bad_answer(path, e))?;
        if status.is_success() {
            return serde_json::from_value(value).map_err(|e| bad_answer(path, e));
        }
        Err(problem_failure(&value, status.as_u16()))
    }
}

/// A command's signature as the server takes it (`SignatureBody`): the
/// expected sequence it binds travels as the command's own `If-Match`.
fn signature_body(options: &CommandOptions) -> Value {
    match &options.signature {
        Some(signature) => json!({"key": signature.key, "sig": signature.sig,
            "origin": signature.origin, "at": signature.at}),
        None => Value::Null,
    }
}

impl Remote {
    /// `strive key register` / `strive key retire --server`: the change,
    /// made by the token's actor (an admin), through `/v1/keys`.
    pub fn change_key(
        &self,
        actor: &str,
        vkey: &strive_core::VerifierKey,
        retire: bool,
    ) -> Result<Outcome, Failure> {
        let path = if retire {
            "/v1/keys/retire"
        } else {
            "/v1/keys"
        };
        let body = json!({"actor": actor, "vkey": vkey.encode()});
        self.send("POST", path, Some(&body), &CommandOptions::default())
    }

    /// `strive key list --server`: the keys registered (only `actor`'s).
    pub fn keys(&self, actor: Option<&str>) -> Result<Vec<strive_store::KeyInfo>, Failure> {
        let path = match actor {
            Some(actor) => format!("/v1/keys?actor={}", segment(actor)),
            None => "/v1/keys".to_owned(),
        };
        self.get(&path)
    }

    /// `strive grant` / `strive revoke --server`: the change, made by the
    /// token's actor (an admin), through `/v1/grants`.
    pub fn change_grant(
        &self,
        grant: &strive_core::Grant,
        revoke: bool,
    ) -> Result<Outcome, Failure> {
        let path = if revoke {
            "/v1/grants/revoke"
        } else {
            "/v1/grants"
        };
        let body = json!({"actor": grant.actor, "role": grant.role, "on": grant.on});
        self.send("POST", path, Some(&body), &CommandOptions::default())
    }

    /// `strive grants --server`: the grants held now (only `actor`'s).
    pub fn grants(&self, actor: Option<&str>) -> Result<Vec<strive_store::GrantInfo>, Failure> {
        let path = match actor {
            Some(actor) => format!("/v1/grants?actor={}", segment(actor)),
            None => "/v1/grants".to_owned(),
        };
        self.get(&path)
    }
}

/// A problem from the server as the failure the local command would give:
/// the same kind (the problem's stable code) and message.
fn problem_failure(problem: &Value, status: u16) -> Failure {
    let code = problem["code"].as_str().unwrap_or("server").to_owned();
    let detail = problem["detail"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("the server answered {status}"));
    // Failure kinds are static strings; the CLI reports one failure and
    // exits, so leaking this one code is bounded.
    let mut failure = Failure::new(Box::leak(code.into_boxed_str()), detail);
    failure.details = problem.get("details").cloned();
    failure
}

fn bad_answer(path: &str, error: impl std::fmt::Display) -> Failure {
    Failure::new(
        "server_answer",
        format!(
            "the server's answer to {path} does not read: {error}; is it a strive server of the same version?"
        ),
    )
}

/// Percent-encodes `text` for one path segment or query value.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `strive verify --server`: runs the server's verification job, shows
/// nothing until it is done, and prints what `strive verify` prints.
pub fn verify(remote: &Remote, json: bool) -> Result<ExitCode, Failure> {
    let started = Instant::now();
    let mut job: Value = remote.send("POST", "/v1/verify", None, &CommandOptions::default())?;
    let bar = output::progress(job["total"].as_u64().unwrap_or(0), "verifying");
    while job["state"] == "running" {
        std::thread::sleep(Duration::from_millis(100));
        let path = format!("/v1/verify/{}", job["id"].as_str().unwrap_or_default());
        job = remote.get(&path)?;
        if let Some(bar) = &bar {
            bar.set_position(job["read"].as_u64().unwrap_or(0));
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut report = job["report"].clone();
    let ok = job["ok"].as_bool().unwrap_or(false);
    let lines: Vec<String> = report["lines"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    if json {
        if let Value::Object(map) = &mut report {
            map.remove("lines");
            map.insert("seconds".to_owned(), json!(seconds));
        }
        output::json(&report);
    } else {
        for line in &lines {
            output::line(line);
        }
        output::line(format!(
            "{} ({:.1} MB in {seconds:.2} s)",
            job["summary"].as_str().unwrap_or_default(),
            report["bytes"].as_f64().unwrap_or(0.0) / 1e6
        ));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The server's partition heads, for `strive checkpoint --server`: the
/// same checkpoint `strive checkpoint` makes of the store itself. A server
/// from before partitions sends only the size and root of its one log.
pub fn checkpoint(remote: &Remote, origin: &str) -> Result<strive_audit::Checkpoint, Failure> {
    const PATH: &str = "/v1/checkpoint";
    let body: Value = remote.get(&format!("{PATH}?origin={}", segment(origin)))?;
    let head = |value: &Value, partition: u32| {
        let root = value["root"]
            .as_str()
            .and_then(hex_hash)
            .ok_or_else(|| bad_answer(PATH, "no root"))?;
        let size = value["size"]
            .as_u64()
            .ok_or_else(|| bad_answer(PATH, "no size"))?;
        Ok::<_, Failure>(strive_core::PartitionHead {
            partition,
            size,
            root,
        })
    };
    let heads = match body["partitions"].as_array() {
        Some(partitions) if !partitions.is_empty() => partitions
            .iter()
            .map(|p| {
                let partition = p["partition"]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad_answer(PATH, "a partition without its number"))?;
                head(p, partition)
            })
            .collect::<Result<Vec<_>, _>>()?,
        _ => vec![head(&body, 0)?],
    };
    strive_audit::Checkpoint::of_heads(origin, &heads).map_err(|e| bad_answer(PATH, e))
}

/// 32 bytes from 64 hex digits.
fn hex_hash(hex: &str) -> Option<[u8; 32]> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()?;
    <[u8; 32]>::try_from(bytes).ok()
}

/// Refuses `--server` for commands that do not go through it yet, rather
/// than quietly opening the local store.
pub fn check_supported(cli: &Cli) -> Result<(), Failure> {
    use crate::cli::Command;
    use crate::commands::audit::AuditCommand;
    if cli.server.is_none() {
        return Ok(());
    }
    let supported = matches!(
        &cli.command,
        Command::Start { .. }
            | Command::Fire { .. }
            | Command::Suspend(_)
            | Command::Resume(_)
            | Command::Cancel(_)
            | Command::Terminate(_)
            | Command::Show { .. }
            | Command::List { .. }
            | Command::History { .. }
            | Command::Versions { .. }
            | Command::Validate { .. }
            | Command::Graph { .. }
            | Command::Schema
            | Command::Audit(AuditCommand::Verify { since: None, .. })
            | Command::Audit(AuditCommand::Checkpoint { .. })
            | Command::Audit(AuditCommand::VerifyReceipt {
                check_store: false,
                ..
            })
            | Command::Grant(_)
            | Command::Key(_)
            // A witness keeps its own state, never a store.
            | Command::Witness(
                WitnessCommand::Init { .. }
                    | WitnessCommand::AddLog { .. }
                    | WitnessCommand::AddCheckpoint { .. }
                    | WitnessCommand::Serve { .. }
            )
    );
    if supported {
        Ok(())
    } else {
        Err(Failure::usage(
            "this command does not work with --server yet; use the HTTP API (docs/http.md) or run it where the store is",
        ))
    }
}
