//! `strive witness …` (issue #14 item 2): running a witness that cosigns a
//! log's checkpoints only when they extend the last one it cosigned (C2SP
//! tlog-witness, tlog-cosignature), and the log's side, `strive witness
//! cosign`, which presents the store's checkpoint to witnesses with the
//! consistency proofs they ask for. The rules are `strive_audit::Witness`
//! and `strive_audit::Policy`; the state file and the HTTP call are
//! `strive_server::witness`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Subcommand;
use serde_json::json;
use strive_audit::{AddCheckpoint, Checkpoint, Policy, Witness, WitnessKey};
use strive_server::witness::{self as service, WitnessError, WitnessService};

use super::audit::{check_origin, read_signing_key, read_verifier_key};
use crate::cli::{TextOrJson, is_json};
use crate::commands::open;
use crate::failure::{Failure, Outcome};
use crate::files::{MAX_SMALL_FILE, OutFile, read_bounded};
use crate::output;

/// How long the log waits for one witness.
const WITNESS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Creates a witness: its key (FILE and FILE.pub, the vkey for
    /// policies) and its empty state file.
    Init {
        /// The state file to create (outside any store).
        #[arg(long)]
        state: PathBuf,
        /// Where to write the witness's private key.
        #[arg(long)]
        key: PathBuf,
        /// The witness's name, a schema-less URL such as `w1.example`.
        #[arg(long)]
        name: String,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Starts witnessing a log: its origin and the public key (from
    /// `strive keygen`) that signs its checkpoints.
    AddLog {
        /// The witness's state file.
        #[arg(long)]
        state: PathBuf,
        /// The log's origin, as its checkpoints name it.
        #[arg(long)]
        origin: String,
        /// The log's public key file.
        #[arg(long)]
        log_key: PathBuf,
    },
    /// Answers one add-checkpoint request offline: reads it (a file, or
    /// stdin), prints the cosignature line, or exits 1 with the refusal.
    AddCheckpoint {
        /// The witness's state file.
        #[arg(long)]
        state: PathBuf,
        /// The witness's private key.
        #[arg(long)]
        key: PathBuf,
        /// The request; stdin when absent.
        #[arg(long)]
        request: Option<PathBuf>,
    },
    /// Serves the witness over HTTP (POST /add-checkpoint) until SIGINT or
    /// SIGTERM.
    Serve {
        /// The witness's state file.
        #[arg(long)]
        state: PathBuf,
        /// The witness's private key.
        #[arg(long)]
        key: PathBuf,
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:7879")]
        listen: SocketAddr,
    },
    /// The log's side: signs the store's checkpoint, presents it to each
    /// witness with the consistency proof it asks for, and writes the
    /// checkpoint with every cosignature it got.
    Cosign {
        /// The log's signing key (from `strive keygen`).
        #[arg(long)]
        key: PathBuf,
        /// The log's name in the checkpoint.
        #[arg(long, default_value = "strive")]
        origin: String,
        /// A witness's submission prefix (`http://host:port`); repeatable.
        #[arg(long = "witness", value_name = "URL")]
        witnesses: Vec<String>,
        /// A witness policy: its witnesses with URLs are asked too, and the
        /// cosignatures must satisfy its quorum.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Write the cosigned checkpoint here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Output format of the summary.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
}

impl WitnessCommand {
    /// Whether the command was asked for JSON.
    pub fn json(&self) -> bool {
        match self {
            WitnessCommand::Init { format, .. } | WitnessCommand::Cosign { format, .. } => {
                is_json(*format)
            }
            _ => false,
        }
    }
}

/// Runs a witness command.
pub fn run(db: &Path, command: &WitnessCommand, json: bool) -> Outcome {
    match command {
        WitnessCommand::Init {
            state, key, name, ..
        } => init(state, key, name, json),
        WitnessCommand::AddLog {
            state,
            origin,
            log_key,
        } => add_log(state, origin, log_key),
        WitnessCommand::AddCheckpoint {
            state,
            key,
            request,
        } => add_checkpoint(state, key, request.as_deref()),
        WitnessCommand::Serve { state, key, listen } => serve(state, key, *listen),
        WitnessCommand::Cosign {
            key,
            origin,
            witnesses,
            policy,
            out,
            ..
        } => cosign(
            db,
            &CosignRequest {
                key,
                origin,
                witnesses,
                policy: policy.as_deref(),
                out: out.as_deref(),
            },
            json,
        ),
    }
}

fn state_failure(error: WitnessError) -> Failure {
    match error {
        WitnessError::Refused(refusal) => Failure::new(
            "witness_refused",
            format!("refused (HTTP {}): {refusal}", refusal.status()),
        ),
        other => Failure::new("witness_state", other.to_string()),
    }
}

/// Reads a witness's private key file.
pub(crate) fn read_witness_key(path: &Path) -> Result<WitnessKey, Failure> {
    let text = read_bounded(path, MAX_SMALL_FILE)?;
    WitnessKey::parse(&text).map_err(|e| {
        Failure::new(
            "key",
            format!(
                "{}: {e}; make one with `strive witness init`",
                path.display()
            ),
        )
    })
}

fn init(state: &Path, key_path: &Path, name: &str, json: bool) -> Outcome {
    if state.exists() {
        return Err(Failure::usage(format!(
            "{} exists: a witness that forgets what it cosigned could cosign a rolled-back \
             log, so init never overwrites a state",
            state.display()
        )));
    }
    let key = WitnessKey::generate(name).map_err(|e| Failure::usage(format!("--name: {e}")))?;
    let public = key.verifier().encode();
    let mut private = OutFile::create(key_path)?;
    std::io::Write::write_all(&mut private, format!("{}\n", key.encode()).as_bytes())
        .map_err(|e| Failure::new("io", format!("{}: {e}", key_path.display())))?;
    private.commit(false, 0o600)?;
    let public_path = PathBuf::from(format!("{}.pub", key_path.display()));
    let mut file = OutFile::create(&public_path)?;
    std::io::Write::write_all(&mut file, format!("{public}\n").as_bytes())
        .map_err(|e| Failure::new("io", format!("{}: {e}", public_path.display())))?;
    file.commit(false, 0o644)?;
    service::save(state, &Witness::new()).map_err(state_failure)?;
    if json {
        output::json(&json!({
            "state": state.display().to_string(), "key": key_path.display().to_string(),
            "public_key": public,
        }));
    } else {
        output::line(format!(
            "witness {name}: state {}, key {} (secret), vkey {} for policies:\n{public}",
            state.display(),
            key_path.display(),
            public_path.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

fn add_log(state: &Path, origin: &str, log_key: &Path) -> Outcome {
    check_origin(origin)?;
    let key = read_verifier_key(log_key)?;
    service::update(state, |witness| {
        witness
            .add_log(origin, &key)
            .map_err(|e| WitnessError::State {
                path: state.to_owned(),
                message: e.to_string(),
            })
    })
    .map_err(state_failure)?;
    output::line(format!("witnessing {origin:?}, signed by {}", key.name()));
    Ok(ExitCode::SUCCESS)
}

fn add_checkpoint(state: &Path, key: &Path, request: Option<&Path>) -> Outcome {
    let key = read_witness_key(key)?;
    let body = match request {
        Some(path) => read_bounded(path, strive_audit::MAX_REQUEST_BYTES as u64)?,
        None => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|e| Failure::new("io", format!("cannot read the request: {e}")))?;
            text
        }
    };
    let service = WitnessService::new(key, state.to_owned());
    let line = service
        .add_checkpoint(&body, now())
        .map_err(state_failure)?;
    output::text(&line);
    Ok(ExitCode::SUCCESS)
}

fn now() -> u64 {
    jiff::Timestamp::now().as_second().max(0) as u64
}

fn serve(state: &Path, key: &Path, listen: SocketAddr) -> Outcome {
    let key = read_witness_key(key)?;
    // Read the state once now, so a missing or damaged file fails at start.
    service::load(state).map_err(state_failure)?;
    let name = key.name().to_owned();
    let service = Arc::new(WitnessService::new(key, state.to_owned()));
    service::run(service, listen, |addr| {
        output::line(format!("listening on http://{addr}"));
        output::line(format!("witness {name}: POST http://{addr}/add-checkpoint"));
    })
    .map_err(|e| Failure::new("serve", e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

/// What `strive witness cosign` is asked for.
struct CosignRequest<'a> {
    key: &'a Path,
    origin: &'a str,
    witnesses: &'a [String],
    policy: Option<&'a Path>,
    out: Option<&'a Path>,
}

/// What one witness answered.
struct Answer {
    url: String,
    result: Result<String, String>,
}

fn cosign(db: &Path, request: &CosignRequest<'_>, json: bool) -> Outcome {
    check_origin(request.origin)?;
    let key = read_signing_key(request.key)?;
    let policy = request
        .policy
        .map(|path| {
            let text = read_bounded(path, MAX_SMALL_FILE)?;
            Policy::parse(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
        })
        .transpose()?;
    let mut urls: Vec<String> = request.witnesses.to_vec();
    if let Some(policy) = &policy {
        urls.extend(policy.witnesses().filter_map(|w| w.url.clone()));
    }
    // A witness named twice (on the command line and in the policy) is
    // asked once.
    let mut seen = std::collections::HashSet::new();
    urls.retain(|url| seen.insert(url.trim_end_matches('/').to_owned()));
    if urls.is_empty() {
        return Err(Failure::usage(
            "name the witnesses: --witness URL, or a --policy whose witness lines give URLs",
        ));
    }
    let engine = open(db)?;
    if engine.partitions() > 1 {
        return Err(Failure::usage(format!(
            "{} has {} partitions; witnessing a store of several partitions is not supported \
             yet (its combined root has no RFC 6962 consistency proof)",
            db.display(),
            engine.partitions()
        )));
    }
    let heads = engine
        .partition_heads()
        .map_err(|e| Failure::new("corrupt", e.to_string()))?;
    let checkpoint = Checkpoint::of_heads(request.origin, &heads)
        .map_err(|e| Failure::new("corrupt", e.to_string()))?;
    let note = checkpoint.to_note(Some(&key));
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(WITNESS_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let answers: Vec<Answer> = urls
        .iter()
        .map(|url| Answer {
            url: url.clone(),
            result: ask_witness(&agent, url, &engine, &checkpoint, &note),
        })
        .collect();
    let mut cosigned = note.clone();
    for answer in &answers {
        if let Ok(lines) = &answer.result {
            cosigned.push_str(lines);
        }
    }
    let parsed = Checkpoint::parse(&cosigned).map_err(|e| {
        Failure::new(
            "witness",
            format!("a witness answered with a bad line: {e}"),
        )
    })?;
    let satisfied = policy.as_ref().map(|p| p.check(&parsed));
    write_note(request.out, &cosigned)?;
    report(&answers, &checkpoint, satisfied.as_ref(), json);
    let refused = answers.iter().any(|a| a.result.is_err());
    match satisfied {
        Some(Err(error)) => Err(Failure::new("witness_policy", error.to_string())),
        _ if refused => Ok(ExitCode::FAILURE),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn write_note(out: Option<&Path>, note: &str) -> Result<(), Failure> {
    match out {
        Some(path) => {
            let mut file = OutFile::create(path)?;
            std::io::Write::write_all(&mut file, note.as_bytes())
                .map_err(|e| Failure::new("io", format!("cannot write {}: {e}", path.display())))?;
            file.commit(true, 0o644)
        }
        None => {
            output::text(note);
            Ok(())
        }
    }
}

fn report(
    answers: &[Answer],
    checkpoint: &Checkpoint,
    satisfied: Option<&Result<strive_audit::PolicyReport, strive_audit::PolicyError>>,
    json: bool,
) {
    if json {
        let witnesses: Vec<_> = answers
            .iter()
            .map(|a| match &a.result {
                Ok(_) => json!({"url": a.url, "cosigned": true}),
                Err(reason) => json!({"url": a.url, "cosigned": false, "reason": reason}),
            })
            .collect();
        output::json(&json!({
            "origin": checkpoint.origin, "size": checkpoint.size,
            "witnesses": witnesses,
            "policy_satisfied": satisfied.map(|s| s.is_ok()),
        }));
        return;
    }
    for answer in answers {
        match &answer.result {
            Ok(_) => output::note(format!(
                "{}: cosigned {} events of {:?}",
                answer.url, checkpoint.size, checkpoint.origin
            )),
            Err(reason) => output::note(format!("{}: refused: {reason}", answer.url)),
        }
    }
}

/// Presents the checkpoint to the witness at `url`: first from the size
/// it says it cosigned last (learned from its 409 answer to `old 0`, as
/// C2SP clients do), with the consistency proof from there.
fn ask_witness(
    agent: &ureq::Agent,
    url: &str,
    engine: &strive_store::Engine,
    checkpoint: &Checkpoint,
    note: &str,
) -> Result<String, String> {
    let endpoint = format!("{}/add-checkpoint", url.trim_end_matches('/'));
    let mut old = 0;
    // Two rounds: the first learns the witness's size, the second proves
    // consistency from it. A third conflict means the witness moved on
    // between them (another log process presented a newer checkpoint).
    for _ in 0..3 {
        let proof = if old == 0 {
            Vec::new()
        } else {
            engine
                .consistency_proof(old, checkpoint.size)
                .map_err(|e| format!("cannot prove consistency from {old}: {e}"))?
        };
        let body = AddCheckpoint {
            old,
            proof,
            checkpoint: note.to_owned(),
        }
        .encode();
        let mut response = agent
            .post(&endpoint)
            .header("content-type", "text/plain")
            .send(body.as_bytes())
            .map_err(|e| format!("cannot reach the witness: {e}"))?;
        let status = response.status().as_u16();
        let reason = response
            .headers()
            .get("x-witness-reason")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("cannot read the witness's answer: {e}"))?;
        match status {
            200 => return Ok(text),
            409 => {
                let size: u64 = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("a 409 answer without a size: {text:?}"))?;
                if size > checkpoint.size {
                    return Err(format!(
                        "the witness has cosigned {size} events of {:?}, and this store has \
                         only {}: the store was rolled back (restored from an older backup?) \
                         or forked",
                        checkpoint.origin, checkpoint.size
                    ));
                }
                if size == old {
                    return Err(reason.unwrap_or_else(|| {
                        format!("the witness holds another root at size {size}: a fork")
                    }));
                }
                old = size;
            }
            _ => {
                return Err(format!(
                    "HTTP {status}: {}",
                    reason.unwrap_or_else(|| text.trim().to_owned())
                ));
            }
        }
    }
    Err("the witness kept moving on; try again".to_owned())
}

/// Reads a witness policy file for `verify`, `verify-bundle` and
/// `verify-receipt`.
pub(crate) fn read_policy(path: &Path) -> Result<Policy, Failure> {
    let text = read_bounded(path, MAX_SMALL_FILE)?;
    Policy::parse(&text).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

/// Checks a checkpoint note against a witness policy: the failure says
/// which quorum failed and who did cosign.
pub(crate) fn check_policy(policy: &Policy, path: &Path, text: &str) -> Result<String, Failure> {
    let signed = Checkpoint::parse(text)
        .map_err(|e| Failure::new("checkpoint", format!("{}: {e}", path.display())))?;
    let report = policy
        .check(&signed)
        .map_err(|e| Failure::new("witness_policy", format!("{}: {e}", path.display())))?;
    let names: Vec<String> = report
        .cosigned
        .iter()
        .map(|(name, at)| {
            let when = jiff::Timestamp::from_second(*at as i64)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| at.to_string());
            format!("{name} at {when}")
        })
        .collect();
    Ok(if names.is_empty() {
        "not required to be cosigned (the policy's quorum is none)".to_owned()
    } else {
        format!("cosigned by {}", names.join(", "))
    })
}
