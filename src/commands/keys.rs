//! `strive key generate`, `register`, `retire` and `list` (issue #11):
//! actors' Ed25519 keys, with which they sign their commands
//! (`strive fire --sign-key FILE`). Glue: the rules are the engine's
//! (`Engine::register_key`, `retire_key`, `keys`) and the core's
//! (`strive_core::signing`). Over HTTP the same is `/v1/keys`
//! (docs/http.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;
use strive_audit::SigningKey;
use strive_core::{ADMIN_ROLE, Claim, CommandSignature, SignedKind, VerifierKey};
use strive_store::{Actor, KeyInfo};

use crate::cli::{TextOrJson, is_json};
use crate::client::Remote;
use crate::failure::Failure;
use crate::output;

/// `strive key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Makes a new Ed25519 key for an actor: writes the private key to
    /// FILE (mode 0600; keep it where the actor is, never in the store)
    /// and prints the public key (the vkey) to register.
    Generate {
        /// The actor the key is for; the key is named after it.
        #[arg(long)]
        actor: String,
        /// Where to write the private key. Refused if it exists.
        #[arg(long)]
        out: PathBuf,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Registers an actor's public key in the access chain (`@access`):
    /// from then on its signatures are checked against it. Admins only.
    Register {
        #[command(flatten)]
        key: KeyArgs,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Retires an actor's key: it signs nothing from then on, and is never
    /// registered again. Admins only.
    Retire {
        #[command(flatten)]
        key: KeyArgs,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
    /// Prints the `signature` field of a command signed with a private
    /// key, for a client that sends the command itself (curl): `{"key",
    /// "sig", "at"}`. It binds the time now; send the command within 5
    /// minutes.
    Sign(SignArgs),
    /// Lists the keys registered, held and retired.
    List {
        /// Only this actor's.
        #[arg(long)]
        actor: Option<String>,
        /// Output format.
        #[arg(long, value_enum)]
        format: Option<TextOrJson>,
    },
}

impl KeyCommand {
    /// Whether the command was asked for JSON.
    pub fn json(&self) -> bool {
        match self {
            KeyCommand::Generate { format, .. }
            | KeyCommand::Register { format, .. }
            | KeyCommand::Retire { format, .. }
            | KeyCommand::List { format, .. } => is_json(*format),
            KeyCommand::Sign(_) => true,
        }
    }
}

/// Which key of which actor, and the admin who acts.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// The actor who holds the key.
    #[arg(long)]
    actor: String,
    /// The public key (the vkey `strive key generate` printed), or
    /// `@FILE` to read it from a file.
    #[arg(long)]
    vkey: String,
    /// The admin who makes the change (recorded in the audit trail); acts
    /// as `admin`. `admin` when absent; with --server the token's actor.
    #[arg(long)]
    by: Option<String>,
}

/// `strive key sign`'s arguments: the command as it will be sent.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The actor's private key (`strive key generate`).
    #[arg(long)]
    key: PathBuf,
    /// The instance.
    instance: String,
    /// The event, or `start` for a start (then give --workflow and
    /// --version, and --payload is the initial data).
    event: String,
    #[command(flatten)]
    actor: crate::cli::ActorArgs,
    /// The payload (or a start's initial data), a JSON object.
    #[arg(long)]
    payload: Option<String>,
    /// The expected sequence the command gives (`If-Match`).
    #[arg(long)]
    expect_seq: Option<u64>,
    /// The command id the command gives (`Idempotency-Key`).
    #[arg(long)]
    command_id: Option<String>,
    /// A start's workflow.
    #[arg(long, requires = "version")]
    workflow: Option<String>,
    /// A start's version: the workflow's latest, which the start takes.
    #[arg(long, requires = "workflow")]
    version: Option<u32>,
    /// A start's parent.
    #[arg(long)]
    parent: Option<String>,
}

/// `strive key sign`: the signature of the command `args` describes.
fn sign_command(args: &SignArgs) -> Result<(), Failure> {
    let actor = match &args.actor.actor {
        Some(id) if !args.actor.roles.is_empty() => Actor {
            id: id.clone(),
            roles: args.actor.roles.clone(),
        },
        _ => {
            return Err(Failure::usage(
                "--actor and --role are required: the signature binds them",
            ));
        }
    };
    let given = crate::commands::parse_json("--payload", args.payload.as_deref())?;
    let (kind, payload) = match (&args.workflow, args.version, args.event.as_str()) {
        (Some(workflow), Some(version), "start") => {
            let data = match given {
                Value::Null => serde_json::Map::new(),
                Value::Object(map) => map,
                _ => return Err(Failure::usage("--payload must be a JSON object")),
            };
            let payload = strive_core::start_payload(&data, args.parent.as_deref());
            (SignedKind::Start { workflow, version }, payload)
        }
        (None, None, event) if event != "start" => (SignedKind::Fire, given),
        _ => {
            return Err(Failure::usage(
                "a start is signed with `start --workflow W --version V`, and only a start \
                 takes --workflow and --version",
            ));
        }
    };
    let claim = Claim {
        kind,
        event: &args.event,
        payload: &payload,
        expected_seq: args.expect_seq,
        ..claim(&actor, &args.instance, args.command_id.as_deref())?
    };
    let signature = sign(&args.key, &claim)?;
    output::json(
        &serde_json::json!({"key": signature.key, "sig": signature.sig,
        "at": signature.at}),
    );
    Ok(())
}

/// Runs one of the key commands against the store at `--db`, or with
/// `--server` against the server that holds it.
pub fn run(cli: &crate::cli::Cli, command: &KeyCommand, json: bool) -> Result<ExitCode, Failure> {
    let remote = Remote::from_cli(cli)?;
    match command {
        KeyCommand::Generate { actor, out, .. } => generate(actor, out, json)?,
        KeyCommand::Sign(args) => sign_command(args)?,
        KeyCommand::Register { key, .. } => change(cli, remote.as_ref(), key, false, json)?,
        KeyCommand::Retire { key, .. } => change(cli, remote.as_ref(), key, true, json)?,
        KeyCommand::List { actor, .. } => {
            let keys = match &remote {
                Some(remote) => remote.keys(actor.as_deref())?,
                None => crate::commands::open(&cli.db)?.keys(actor.as_deref())?,
            };
            print_keys(&keys, json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn generate(actor: &str, out: &Path, json: bool) -> Result<(), Failure> {
    let key = SigningKey::generate(actor).map_err(|e| {
        Failure::new(
            "key",
            format!("{e}; a key is named after its actor, so the actor id must be one word"),
        )
    })?;
    // The one rule for written files: never inside a store, never over
    // an existing file, and here readable by the owner only.
    crate::files::write_whole(out, format!("{}\n", key.encode()).as_bytes(), false, 0o600)?;
    let vkey = key.verifier().encode();
    if json {
        output::json(&serde_json::json!({
            "actor": actor,
            "private_key": out.display().to_string(),
            "vkey": vkey,
            "key": hex_id(&key.verifier()),
        }));
    } else {
        output::line(&vkey);
    }
    Ok(())
}

fn change(
    cli: &crate::cli::Cli,
    remote: Option<&Remote>,
    args: &KeyArgs,
    retire: bool,
    json: bool,
) -> Result<(), Failure> {
    let text = match args.vkey.strip_prefix('@') {
        Some(path) => crate::files::read_bounded(Path::new(path), crate::files::MAX_SMALL_FILE)?,
        None => args.vkey.clone(),
    };
    let vkey = VerifierKey::parse(&text).map_err(|e| {
        Failure::usage(format!(
            "--vkey: {e}; give the public key `strive key generate` printed"
        ))
    })?;
    let outcome = match remote {
        Some(_) if args.by.is_some() => {
            return Err(Failure::usage(
                "--by does not go with --server: the token's actor makes the change",
            ));
        }
        Some(remote) => remote.change_key(&args.actor, &vkey, retire)?,
        None => {
            let engine = crate::commands::open_for_writing(&cli.db)?;
            let admin = Actor::new(args.by.as_deref().unwrap_or(ADMIN_ROLE), &[ADMIN_ROLE]);
            if retire {
                engine.retire_key(&args.actor, &vkey, &admin)
            } else {
                engine.register_key(&args.actor, &vkey, &admin)
            }
            .map_err(crate::commands::grants::failure)?
        }
    };
    if json {
        output::json(&outcome);
    } else {
        output::line(format!(
            "{}: key {} of {} (@access #{}, event {})",
            if retire { "retired" } else { "registered" },
            hex_id(&vkey),
            strive_core::id::escape(&args.actor),
            outcome.seq,
            outcome.gseq
        ));
    }
    Ok(())
}

fn print_keys(keys: &[KeyInfo], json: bool) {
    if json {
        output::json(&keys);
        return;
    }
    if keys.is_empty() {
        output::line("no keys");
    }
    for key in keys {
        let state = match key.retired {
            Some(at) => format!("retired at event {at}"),
            None => "held".to_owned(),
        };
        output::line(format!(
            "{} {} {state} (registered by {} at {}, event {}): {}",
            strive_core::id::escape(&key.actor),
            key.key,
            strive_core::id::escape(&key.by),
            key.at,
            key.since,
            key.vkey
        ));
    }
}

fn hex_id(key: &VerifierKey) -> String {
    key.key_id().iter().map(|b| format!("{b:02x}")).collect()
}

/// What a signed command binds besides its own fields: the actor and its
/// roles, the instance, the command id, and the time of signing, which
/// makes the signature good for `strive_core::SIGNATURE_WINDOW` only.
pub(crate) fn claim<'a>(
    actor: &'a Actor,
    instance: &'a str,
    command_id: Option<&'a str>,
) -> Result<Claim<'a>, Failure> {
    if actor.id.is_empty() {
        return Err(Failure::usage(
            "--sign-key needs --actor and --role, as the token has them with --server: the \
             signature binds who acts in which roles",
        ));
    }
    Ok(Claim {
        origin: None,
        kind: SignedKind::Fire,
        instance,
        event: "",
        payload: &Value::Null,
        expected_seq: None,
        command_id,
        actor,
        at: Some(jiff::Timestamp::now()),
    })
}

/// Reads the private key of `--sign-key` and signs `claim` with it: the
/// key stays in this process, only the signature goes to the engine or
/// the server.
pub(crate) fn sign(path: &Path, claim: &Claim<'_>) -> Result<CommandSignature, Failure> {
    let key = crate::commands::audit::read_signing_key(path)?;
    Ok(claim.sign(key.verifier().key_id(), |message| key.sign(message)))
}
