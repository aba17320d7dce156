//! `strive receipt` and `strive verify-receipt` (issue #14 item 4): a
//! member's proof that one event of theirs was recorded, made from the
//! store and checked offline. The work is in `strive_audit` (`Receipt`,
//! `store::receipt`).

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;
use strive_audit::{Receipt, store};

use super::audit::{check_origin, read_signing_key, read_verifier_key};
use crate::commands::open;
use crate::failure::{Failure, Outcome};
use crate::files::OutFile;
use crate::output;

/// The largest receipt read: an event (payloads up to 256 KiB, escaped)
/// and a proof of at most 64 hashes.
const MAX_RECEIPT: u64 = 4 * 1024 * 1024;

/// What `strive receipt` is asked for.
pub struct ReceiptRequest<'a> {
    /// The event's subject.
    pub instance: &'a str,
    /// Its place in the subject's chain.
    pub seq: u64,
    /// The signing key file for the checkpoint.
    pub key: Option<&'a Path>,
    /// The log's name in the checkpoint.
    pub origin: &'a str,
    /// A checkpoint (usually cosigned) to prove the event to, instead of
    /// one made now.
    pub checkpoint: Option<&'a Path>,
    /// Where to write the receipt (stdout when absent).
    pub out: Option<&'a Path>,
}

/// `strive receipt INSTANCE SEQ`: writes the receipt as one JSON document.
pub fn receipt(db: &Path, request: &ReceiptRequest<'_>) -> Outcome {
    check_origin(request.origin)?;
    let key = request.key.map(read_signing_key).transpose()?;
    let given = request
        .checkpoint
        .map(|path| crate::files::read_bounded(path, crate::files::MAX_SMALL_FILE))
        .transpose()?;
    let engine = open(db)?;
    let receipt = match &given {
        Some(note) => store::receipt_against(&engine, request.instance, request.seq, note),
        None => store::receipt(
            &engine,
            request.instance,
            request.seq,
            request.origin,
            key.as_ref(),
        ),
    }
    .map_err(|e| match e {
        store::ReceiptError::NoSuchEvent { .. } => Failure::new("not_found", e.to_string()),
        store::ReceiptError::Given(_) | store::ReceiptError::Receipt(_) => {
            Failure::new("receipt", chained(&e))
        }
        other => Failure::new("corrupt", chained(&other)),
    })?;
    let text = serde_json::to_string_pretty(&receipt)
        .map_err(|e| Failure::new("internal", format!("cannot encode the receipt: {e}")))?;
    match request.out {
        Some(path) => {
            let mut file = OutFile::create(path)?;
            std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
                .map_err(|e| Failure::new("io", format!("cannot write {}: {e}", path.display())))?;
            file.commit(true, 0o644)?;
        }
        None => output::line(&text),
    }
    Ok(ExitCode::SUCCESS)
}

/// An error's message with each of its causes after a colon.
fn chained(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// What `verify-receipt` checks beside the receipt itself.
pub struct ReceiptChecks<'a> {
    /// The log key that must have signed the receipt's checkpoint.
    pub key: Option<&'a Path>,
    /// A witness policy the receipt's checkpoint must satisfy.
    pub policy: Option<&'a Path>,
    /// A store that must still hold the event (`--check-store`).
    pub store: Option<&'a Path>,
}

/// `strive verify-receipt FILE [--public-key K] [--policy P]
/// [--check-store]`: exit 0 when the receipt proves its event (cosigned as
/// the policy asks, and, with a store, the store still holds it in a log
/// that extends the receipt's checkpoint), 1 with the reason when it does
/// not.
pub fn verify_receipt(file: &Path, checks: &ReceiptChecks<'_>, json: bool) -> Outcome {
    let (public_key, store_path) = (checks.key, checks.store);
    let text = crate::files::read_bounded(file, MAX_RECEIPT)?;
    let receipt: Receipt = serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            "receipt",
            format!(
                "{}: not a receipt ({e}); get one with `strive receipt`",
                file.display()
            ),
        )
    })?;
    let key = public_key.map(read_verifier_key).transpose()?;
    let checked = receipt.verify(key.as_ref());
    let witnessed = match (&checked, checks.policy) {
        (Ok(_), Some(policy)) => Some(super::witness::check_policy(
            &super::witness::read_policy(policy)?,
            file,
            &receipt.checkpoint,
        )?),
        _ => None,
    };
    if let (Ok(_), Some(db)) = (&checked, store_path) {
        let engine = open(db)?;
        if let Some(problem) = store::check_receipt(&engine, &receipt)? {
            return Err(Failure::new(
                "receipt_not_in_store",
                format!(
                    "{}: the receipt holds, but {} does not: {problem}",
                    file.display(),
                    db.display()
                ),
            ));
        }
    }
    match checked {
        Ok(summary) => {
            let event = &summary.event;
            if json {
                output::json(&json!({
                    "ok": true, "instance": event.instance, "seq": event.seq,
                    "event": event.event, "actor": event.actor.id, "at": event.at.to_string(),
                    "partition": event.partition, "gseq": event.gseq,
                    "origin": summary.origin, "checkpoint_size": summary.checkpoint_size,
                    "signed": summary.signed, "store_checked": store_path.is_some(),
                    "witnessed": witnessed,
                }));
            } else {
                output::line(format!(
                    "ok: {}#{} `{}` by {} at {} is event {} of partition {} in the checkpoint \
                     of {} ({} events{}{})",
                    event.instance,
                    event.seq,
                    event.event,
                    event.actor.id,
                    event.at,
                    event.gseq,
                    event.partition,
                    summary.origin,
                    summary.checkpoint_size,
                    if summary.signed {
                        ", signature checked"
                    } else {
                        ", signature not checked: give --public-key"
                    },
                    if store_path.is_some() {
                        "; the store still holds it"
                    } else {
                        ""
                    }
                ));
                if let Some(witnessed) = &witnessed {
                    output::line(format!(
                        "its checkpoint is {witnessed}: the event was recorded no later than \
                         each of those times"
                    ));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(Failure::new(
            "receipt",
            format!("{}: {}", file.display(), chained(&error)),
        )),
    }
}
