//! `strive serve` and `strive token` (issue #11). Glue: the service is
//! `strive-server`; tokens live in the store directory's `tokens.json`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::json;
use strive_server::{Config, TokenFile, TokenRecord, TokenRequest};

use crate::cli::{TextOrJson, is_json};
use crate::failure::{Failure, Outcome};
use crate::output;

/// `strive serve`'s options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where to listen. Put a reverse proxy in front for TLS (docs/http.md).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// The largest request body accepted, in bytes.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    body_limit: usize,
    /// Seconds a request may take until its response starts.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Requests a second each token may send on average (0: no limit).
    #[arg(long, default_value_t = 1000.0)]
    rate_limit: f64,
    /// Seconds between two firings of due deadlines.
    #[arg(long, default_value_t = 1)]
    tick: u64,
    /// Also run a witness under /witness, with this state file (from
    /// `strive witness init`; never inside the store).
    #[arg(long, requires = "witness_key")]
    witness_state: Option<std::path::PathBuf>,
    /// The private key of that witness.
    #[arg(long, requires = "witness_state")]
    witness_key: Option<std::path::PathBuf>,
    /// Refuse an unsigned start or fire by an actor that holds a
    /// registered key (403 `signature_required`; docs/http.md, "Signed
    /// commands").
    #[arg(long)]
    require_signatures: bool,
}

/// The witness `strive serve` runs beside the store, when asked.
fn witness_service(
    args: &ServeArgs,
) -> Result<Option<std::sync::Arc<strive_server::witness::WitnessService>>, Failure> {
    let (Some(state), Some(key)) = (&args.witness_state, &args.witness_key) else {
        return Ok(None);
    };
    let key = crate::commands::witness::read_witness_key(key)?;
    strive_server::witness::load(state)
        .map_err(|e| Failure::new("witness_state", e.to_string()))?;
    Ok(Some(std::sync::Arc::new(
        strive_server::witness::WitnessService::new(key, state.clone()),
    )))
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issues a bearer token for an actor and its roles; prints it once.
    Issue {
        /// The actor every command sent with the token acts as.
        #[arg(long)]
        actor: String,
        /// Its roles, comma-separated (`admin` may deploy and manage tokens).
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// When it expires: an RFC 3339 time, or a span from now such as 30d or 12h.
        #[arg(long)]
        expires: Option<String>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Revokes a token by its id; it stops working within a second.
    Revoke {
        /// The token's id (from `issue` or `list`).
        id: String,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Lists the tokens (ids, actors, roles, expiry; never the secrets).
    List {
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
}

impl TokenCommand {
    /// Whether the command was asked for JSON.
    pub fn json(&self) -> bool {
        match self {
            TokenCommand::Issue { format, .. }
            | TokenCommand::Revoke { format, .. }
            | TokenCommand::List { format } => is_json(*format),
        }
    }
}

/// `strive serve`: serves the store until SIGINT or SIGTERM.
pub fn serve(db: &Path, args: &ServeArgs) -> Outcome {
    // The server writes: it may create the store, as `deploy` may. It
    // enforces the recorded grants: tokens say who acts, grants which
    // roles it may act in (issue #11).
    let options = strive_store::Options {
        enforce_grants: true,
        require_signatures: args.require_signatures,
        ..strive_store::Options::default()
    };
    let engine = crate::files::open_or_create(db, options)?;
    let tokens = TokenFile::beside(db);
    let none = tokens.load().map_err(token_failure)?.is_empty();
    let config = Config {
        listen: args.listen,
        body_limit: args.body_limit,
        request_timeout: Duration::from_secs(args.timeout.max(1)),
        rate_limit: args.rate_limit,
        burst: (args.rate_limit * 2.0).max(1.0),
        tick: Duration::from_secs(args.tick.max(1)),
        witness: witness_service(args)?,
        fire_deadlines: true,
    };
    strive_server::run(engine, tokens, config, |addr| {
        output::line(format!("listening on http://{addr}"));
        if none {
            output::line(format!(
                "no tokens yet: issue one with `strive --db {} token issue --actor admin --roles admin`",
                db.display()
            ));
        }
    })
    .map_err(|e| Failure::new("serve", e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

/// `strive token ...`: works while a server runs (it reloads the file).
pub fn token(db: &Path, command: &TokenCommand, json: bool) -> Outcome {
    if !db.is_dir() {
        return Err(Failure::new(
            "no_store",
            format!(
                "{} is not a store directory; create the store first (`strive --db {} deploy ...`)",
                db.display(),
                db.display()
            ),
        ));
    }
    let file = TokenFile::beside(db);
    let now = jiff::Timestamp::now();
    match command {
        TokenCommand::Issue {
            actor,
            roles,
            expires,
            ..
        } => {
            let expires_at = expires.as_deref().map(|t| expiry(t, now)).transpose()?;
            let request = TokenRequest {
                actor: actor.clone(),
                roles: roles.clone(),
                expires_at,
            };
            let issued = file.issue(&request, now).map_err(token_failure)?;
            if json {
                output::json(
                    &json!({"token": issued.token, "record": strive_server::TokenBody::from(issued.record)}),
                );
            } else {
                output::line(format!(
                    "token {} for {} [{}]{}; keep it secret, it is shown only now:",
                    issued.record.id,
                    issued.record.actor,
                    issued.record.roles.join(","),
                    until(&issued.record)
                ));
                output::line(issued.token);
            }
        }
        TokenCommand::Revoke { id, .. } => {
            let record = file.revoke(id, now).map_err(token_failure)?;
            if json {
                output::json(&strive_server::TokenBody::from(record));
            } else {
                output::line(format!("revoked token {} of {}", record.id, record.actor));
            }
        }
        TokenCommand::List { .. } => {
            let records = file.load().map_err(token_failure)?;
            if json {
                let bodies: Vec<_> = records
                    .into_iter()
                    .map(strive_server::TokenBody::from)
                    .collect();
                output::json(&bodies);
            } else {
                for r in &records {
                    let state = match r.revoked_at {
                        Some(at) => format!(" revoked {at}"),
                        None => until(r),
                    };
                    output::line(format!(
                        "{} {} [{}]{state}",
                        r.id,
                        r.actor,
                        r.roles.join(",")
                    ));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn until(record: &TokenRecord) -> String {
    match record.expires_at {
        Some(at) => format!(" until {at}"),
        None => String::new(),
    }
}

/// `--expires`: an RFC 3339 time or a span from now (30d, 12h, 1w).
fn expiry(text: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, Failure> {
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at);
    }
    let span: jiff::Span = text.parse().map_err(|_| {
        Failure::usage(format!(
            "--expires {text:?} is neither an RFC 3339 time nor a span; write e.g. 30d, 12h or 2026-12-31T00:00:00Z"
        ))
    })?;
    now.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .checked_add(span)
        .map(|z| z.timestamp())
        .map_err(|e| Failure::usage(format!("--expires {text:?}: {e}")))
}

fn token_failure(error: strive_server::TokenError) -> Failure {
    let kind = match error {
        strive_server::TokenError::Unknown { .. } => "unknown_token",
        strive_server::TokenError::Invalid { .. } => "invalid_token_request",
        _ => "token_file",
    };
    Failure::new(kind, error.to_string())
}
