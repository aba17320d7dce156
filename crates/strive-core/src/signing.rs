//! Actors' signatures on their commands (issue #11, item 5): an actor who
//! holds an Ed25519 key signs what it asks, the engine's writer checks the
//! signature before it writes anything, the signature is kept with the
//! event, and `verify` checks it again against the key the access chain
//! says the actor held at that point.
//!
//! Everything here is pure and is called by all three sides: the signer
//! (the CLI, or any client) builds the message from what it asks
//! ([`Claim::message`]), the writer and the verifier rebuild it from the
//! event that records the command ([`Claim::of_event`]) and check it with
//! [`check_signature`], over a [`KeyView`] (the writer's stored keys, or an
//! [`crate::Access`] replayed from the log).
//!
//! ## The message
//!
//! ```text
//! "strive/command-signature/v1" || 0x00 || canonical JSON of
//! {"actor":{"id":..,"roles":[..]},"at":..,"command_id":..,"event":..,
//!  "expected_seq":..,"instance":..,"kind":"start"|"fire","origin":..,
//!  "payload":..,"v":1,"version":..,"workflow":..}
//! ```
//!
//! Keys sorted, no white space, every key present (`null` when absent), the
//! payload's objects with sorted keys: serde_json's output, which is also
//! what `json.dumps(m, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)` gives for integer and string payloads. For a start
//! the payload is `{"data": <initial data>, "parent": <parent or null>}`
//! and `workflow`/`version` name the version started; for a fire they are
//! `null`. The tag makes the bytes useless as anything else a strive key
//! signs: a checkpoint note's text never starts with it.
//!
//! ## Keys
//!
//! An actor's key is an Ed25519 note key (`crate::keys`, algorithm 0x01),
//! registered by an admin in the access chain ([`ActorKey`], the payload of
//! `register_key` and `retire_key` events). A signature names its key by
//! the key's 4-byte note key id. A retired key stays retired: it cannot be
//! registered again, so a signature by it is never valid after retirement.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{Event, EventKind};
use crate::keys::VerifierKey;
use crate::machine::Actor;

/// The domain tag that starts every command-signature message.
pub const COMMAND_SIGNATURE_TAG: &[u8] = b"strive/command-signature/v1\0";

/// The format version inside the message.
const MESSAGE_FORMAT: u32 = 1;

/// How far the time a signer states ([`CommandSignature::at`]) may be
/// from the engine's time of the event, either way: a signature made with
/// a time is good for this long, so a captured one cannot be used much
/// later (or earlier).
pub const SIGNATURE_WINDOW: SignedDuration = SignedDuration::from_mins(5);

/// An actor's signature on a command, as kept with the event that records
/// the command (the optional `signature` field of [`Event`], part of the
/// hashed bytes). Besides the signature it keeps what the signer bound
/// that the event does not otherwise record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSignature {
    /// The signing key's id: the 8 hex digits of its note key id.
    pub key: String,
    /// The Ed25519 signature of the message, standard base64.
    pub sig: String,
    /// The log's name the signer meant (a checkpoint origin), if it named
    /// one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The sequence number the signer expected the instance at (0 for a
    /// start: "must not exist"), if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_seq: Option<u64>,
    /// When the signer says it signed, if it said; it must be within
    /// [`SIGNATURE_WINDOW`] of the event's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

/// What a signature binds: everything the command asks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim<'a> {
    /// The log's name, when the signer names one.
    pub origin: Option<&'a str>,
    /// A start or a fire.
    pub kind: SignedKind<'a>,
    /// The instance started or fired on.
    pub instance: &'a str,
    /// The event's name (`start` for starts).
    pub event: &'a str,
    /// The payload: a fire's payload, or a start's `{"data", "parent"}`
    /// ([`start_payload`]).
    pub payload: &'a Value,
    /// The expected sequence number, when given.
    pub expected_seq: Option<u64>,
    /// The command id, when given.
    pub command_id: Option<&'a str>,
    /// The actor and the roles it acts in.
    pub actor: &'a Actor,
    /// When the signer signed, when it says.
    pub at: Option<Timestamp>,
}

/// Which command is signed, with what only a start binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedKind<'a> {
    /// A start of `workflow` at `version`.
    Start {
        /// The workflow.
        workflow: &'a str,
        /// The version started (the latest when the command is decided).
        version: u32,
    },
    /// A fire.
    Fire,
}

/// The message's JSON, with its fields in sorted order so that serde's
/// declaration order is the sorted order other languages produce.
#[derive(Serialize)]
struct Message<'a> {
    actor: &'a Actor,
    at: Option<Timestamp>,
    command_id: Option<&'a str>,
    event: &'a str,
    expected_seq: Option<u64>,
    instance: &'a str,
    kind: &'static str,
    origin: Option<&'a str>,
    payload: &'a Value,
    v: u32,
    version: Option<u32>,
    workflow: Option<&'a str>,
}

/// The payload a start's signature binds (and its event records): the
/// initial data as given and the parent.
pub fn start_payload(data: &serde_json::Map<String, Value>, parent: Option<&str>) -> Value {
    serde_json::json!({"data": data, "parent": parent})
}

impl<'a> Claim<'a> {
    /// The bytes the actor signs.
    pub fn message(&self) -> Vec<u8> {
        let (kind, workflow, version) = match self.kind {
            SignedKind::Start { workflow, version } => ("start", Some(workflow), Some(version)),
            SignedKind::Fire => ("fire", None, None),
        };
        let message = Message {
            actor: self.actor,
            at: self.at,
            command_id: self.command_id,
            event: self.event,
            expected_seq: self.expected_seq,
            instance: self.instance,
            kind,
            origin: self.origin,
            payload: self.payload,
            v: MESSAGE_FORMAT,
            version,
            workflow,
        };
        let mut bytes = COMMAND_SIGNATURE_TAG.to_vec();
        // Serializing strings, numbers, timestamps and JSON values cannot
        // fail.
        bytes.extend(serde_json::to_vec(&message).unwrap_or_default());
        bytes
    }

    /// The claim the event records, with what `signature` adds; `None`
    /// for an event that records no actor's command (deployments, grants,
    /// migrations, and events another event caused).
    pub fn of_event(event: &'a Event, signature: &'a CommandSignature) -> Option<Claim<'a>> {
        let kind = match event.kind {
            EventKind::Start => SignedKind::Start {
                workflow: &event.workflow,
                version: event.version,
            },
            EventKind::Fire => SignedKind::Fire,
            _ => return None,
        };
        if event.cause.is_some() {
            return None;
        }
        Some(Claim {
            origin: signature.origin.as_deref(),
            kind,
            instance: &event.instance,
            event: &event.event,
            payload: &event.payload,
            expected_seq: signature.expected_seq,
            command_id: event.command_id.as_deref(),
            actor: &event.actor,
            at: signature.at,
        })
    }

    /// Signs the claim with a function that signs bytes (the key stays with
    /// the caller), as kept with the event.
    pub fn sign(&self, key_id: [u8; 4], sign: impl FnOnce(&[u8]) -> [u8; 64]) -> CommandSignature {
        CommandSignature {
            key: hex::encode(key_id),
            sig: BASE64.encode(sign(&self.message())),
            origin: self.origin.map(str::to_owned),
            expected_seq: self.expected_seq,
            at: self.at,
        }
    }
}

/// Why a signature, or its absence, is refused. Each has a stable code
/// ([`SignatureError::code`]) that the engine, the server and `verify`
/// report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureError {
    /// The actor holds a key and the engine requires signatures, but the
    /// command is not signed.
    Required {
        /// The actor.
        actor: String,
    },
    /// The actor holds no key with this id.
    UnknownKey {
        /// The actor.
        actor: String,
        /// The key id given.
        key: String,
    },
    /// The actor's key with this id was retired.
    RetiredKey {
        /// The actor.
        actor: String,
        /// The key id.
        key: String,
    },
    /// The signature does not verify: the command differs from what was
    /// signed, or another key signed it.
    BadSignature {
        /// The actor.
        actor: String,
        /// The key id.
        key: String,
    },
    /// The signature's fields are not well formed, or it is on a command
    /// that cannot be signed.
    Malformed {
        /// What is wrong.
        message: String,
    },
    /// The time the signer stated is too far from the engine's.
    Stale {
        /// The signer's time.
        signed: Timestamp,
        /// The event's time.
        at: Timestamp,
    },
}

impl SignatureError {
    /// The stable code: `signature_required`, `unknown_key`,
    /// `retired_key`, `bad_signature`, `malformed_signature`,
    /// `stale_signature`.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::Required { .. } => "signature_required",
            SignatureError::UnknownKey { .. } => "unknown_key",
            SignatureError::RetiredKey { .. } => "retired_key",
            SignatureError::BadSignature { .. } => "bad_signature",
            SignatureError::Malformed { .. } => "malformed_signature",
            SignatureError::Stale { .. } => "stale_signature",
        }
    }
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escape = crate::id::escape;
        match self {
            SignatureError::Required { actor } => write!(
                f,
                "{} holds a registered key, and this engine requires its commands to be \
                 signed; sign it (`--sign-key FILE`)",
                escape(actor)
            ),
            SignatureError::UnknownKey { actor, key } => write!(
                f,
                "{} holds no key with id {key}; register its public key first (`strive key \
                 register`), or sign with a key it holds",
                escape(actor)
            ),
            SignatureError::RetiredKey { actor, key } => write!(
                f,
                "{}'s key {key} was retired and signs nothing any more; sign with a key it \
                 holds",
                escape(actor)
            ),
            SignatureError::BadSignature { actor, key } => write!(
                f,
                "the signature by {}'s key {key} does not verify: the command is not the one \
                 that was signed (instance, event, payload, expected sequence, command id, \
                 roles, or a start's version), or another key signed it; sign the command \
                 again",
                escape(actor)
            ),
            SignatureError::Malformed { message } => {
                write!(f, "the signature is not well formed: {message}")
            }
            SignatureError::Stale { signed, at } => write!(
                f,
                "the signature says it was made at {signed}, more than {} minutes from the \
                 engine's time {at}; sign it again with the current time",
                SIGNATURE_WINDOW.as_mins()
            ),
        }
    }
}

impl std::error::Error for SignatureError {}

/// An actor's key as the access chain records it: the payload of
/// `register_key` and `retire_key` events, so its serialized form is part
/// of the hashed event format.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActorKey {
    /// The actor who holds the key.
    pub actor: String,
    /// The public key as text (a vkey, `NAME+KEYID+BASE64`).
    pub vkey: String,
}

impl ActorKey {
    /// The key's id (8 hex digits), when its text is a note key.
    pub fn key_id(&self) -> Result<String, crate::KeyError> {
        Ok(hex::encode(VerifierKey::parse(&self.vkey)?.key_id()))
    }
}

/// Whether an event registers or retires a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChange {
    /// A key is registered.
    Register,
    /// A key is retired.
    Retire,
}

impl KeyChange {
    /// The change an event of `kind` records, if it is a key event.
    pub fn of(kind: EventKind) -> Option<KeyChange> {
        match kind {
            EventKind::RegisterKey => Some(KeyChange::Register),
            EventKind::RetireKey => Some(KeyChange::Retire),
            _ => None,
        }
    }

    /// The kind of event that records this change.
    pub fn kind(self) -> EventKind {
        match self {
            KeyChange::Register => EventKind::RegisterKey,
            KeyChange::Retire => EventKind::RetireKey,
        }
    }

    /// The event name recorded (`register_key` or `retire_key`).
    pub fn name(self) -> &'static str {
        match self {
            KeyChange::Register => "register_key",
            KeyChange::Retire => "retire_key",
        }
    }
}

/// What is known of one of an actor's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Registered and not retired: its public key as text.
    Held(String),
    /// Retired.
    Retired,
}

/// What the signature rules read: an actor's keys. The engine reads its
/// stored keys; an auditor an [`crate::Access`] replayed from the log.
pub trait KeyView {
    /// What reading can fail with.
    type Error;

    /// The state of `actor`'s key with id `key` (8 hex digits), if it was
    /// ever registered.
    fn key(&self, actor: &str, key: &str) -> Result<Option<KeyState>, Self::Error>;

    /// Whether `actor` holds a key now.
    fn has_key(&self, actor: &str) -> Result<bool, Self::Error>;
}

/// Checks that `by` may make `change` to `key` now: the actor is an admin
/// ([`crate::access::may_administer`]), the key text is a note key, a
/// registered key is new to the actor (never registered, so never
/// retired), and a retired key is held. The outer error is the view's.
pub fn check_key_change<V>(
    view: &V,
    change: KeyChange,
    key: &ActorKey,
    by: &Actor,
) -> Result<Result<(), crate::AccessError>, <V as KeyView>::Error>
where
    V: KeyView + crate::AccessView<Error = <V as KeyView>::Error>,
{
    use crate::AccessError;
    let reserved = crate::id::skeleton(&key.actor) == crate::id::skeleton(crate::SYSTEM_ROLE);
    if reserved {
        return Ok(Err(AccessError::ReservedKey { key: key.clone() }));
    }
    if !crate::access::may_administer(view, by)? {
        return Ok(Err(AccessError::NotAdmin {
            actor: by.id.clone(),
        }));
    }
    let id = match key.key_id() {
        Ok(id) => id,
        Err(error) => {
            return Ok(Err(AccessError::BadKey {
                key: key.clone(),
                message: error.to_string(),
            }));
        }
    };
    let state = view.key(&key.actor, &id)?;
    Ok(match (change, state) {
        (KeyChange::Register, None) => Ok(()),
        (KeyChange::Register, Some(_)) => Err(AccessError::KeyKnown { key: key.clone() }),
        (KeyChange::Retire, Some(KeyState::Held(held))) if held == key.vkey => Ok(()),
        (KeyChange::Retire, _) => Err(AccessError::KeyNotHeld { key: key.clone() }),
    })
}

/// Checks the signature on `event`, the first event of an actor's command:
/// a signature names a key the actor holds, which verifies the message the
/// event and the signature's fields make, with a time (if stated) within
/// [`SIGNATURE_WINDOW`] and an expected sequence (if stated) that the
/// event's sequence follows; an unsigned event is refused only when
/// `require` is set and the actor holds a key. The outer error is the
/// view's.
pub fn check_signature<V: KeyView>(
    view: &V,
    event: &Event,
    require: bool,
) -> Result<Result<(), SignatureError>, V::Error> {
    let actor = &event.actor.id;
    let Some(signature) = &event.signature else {
        if require && Claim::of_event(event, &EMPTY).is_some() && view.has_key(actor)? {
            return Ok(Err(SignatureError::Required {
                actor: actor.clone(),
            }));
        }
        return Ok(Ok(()));
    };
    let Some(claim) = Claim::of_event(event, signature) else {
        return Ok(Err(SignatureError::Malformed {
            message: format!(
                "a `{}` event records no actor's start or fire, so it carries no signature",
                event.event
            ),
        }));
    };
    if let Err(error) = check_fields(event, signature) {
        return Ok(Err(error));
    }
    let vkey = match view.key(actor, &signature.key)? {
        None => {
            return Ok(Err(SignatureError::UnknownKey {
                actor: actor.clone(),
                key: signature.key.clone(),
            }));
        }
        Some(KeyState::Retired) => {
            return Ok(Err(SignatureError::RetiredKey {
                actor: actor.clone(),
                key: signature.key.clone(),
            }));
        }
        Some(KeyState::Held(vkey)) => vkey,
    };
    let bad = || SignatureError::BadSignature {
        actor: actor.clone(),
        key: signature.key.clone(),
    };
    let Ok(key) = VerifierKey::parse(&vkey) else {
        return Ok(Err(bad()));
    };
    let Ok(bytes) = BASE64.decode(&signature.sig) else {
        return Ok(Err(SignatureError::Malformed {
            message: "the signature is not standard base64".to_owned(),
        }));
    };
    if hex::encode(key.key_id()) != signature.key || !key.verifies(&claim.message(), &bytes) {
        return Ok(Err(bad()));
    }
    Ok(Ok(()))
}

/// An empty signature, to ask [`Claim::of_event`] whether an event is an
/// actor's command at all.
const EMPTY: CommandSignature = CommandSignature {
    key: String::new(),
    sig: String::new(),
    origin: None,
    expected_seq: None,
    at: None,
};

/// The rules on a signature's own fields, which need no key.
fn check_fields(event: &Event, signature: &CommandSignature) -> Result<(), SignatureError> {
    if signature.key.len() != 8 || hex::decode(&signature.key).is_err() {
        return Err(SignatureError::Malformed {
            message: format!("the key id {:?} is not 8 hex digits", signature.key),
        });
    }
    if let Some(expected) = signature.expected_seq
        && expected.checked_add(1) != Some(event.seq)
    {
        return Err(SignatureError::Malformed {
            message: format!(
                "it says the instance was expected at #{expected}, but the event is #{}",
                event.seq
            ),
        });
    }
    if let Some(signed) = signature.at {
        let apart = event.at.duration_since(signed).abs();
        if apart > SIGNATURE_WINDOW {
            return Err(SignatureError::Stale {
                signed,
                at: event.at,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_message_is_tagged_sorted_json_with_every_field() {
        let actor = Actor::new("li", &["chief"]);
        let payload = json!({"z": 1, "a": "学"});
        let claim = Claim {
            origin: None,
            kind: SignedKind::Fire,
            instance: "doc-1",
            event: "approve",
            payload: &payload,
            expected_seq: Some(2),
            command_id: Some("c-1"),
            actor: &actor,
            at: None,
        };
        let message = claim.message();
        let text = std::str::from_utf8(&message).expect("utf-8");
        assert_eq!(
            text,
            "strive/command-signature/v1\0{\"actor\":{\"id\":\"li\",\"roles\":[\"chief\"]},\
             \"at\":null,\"command_id\":\"c-1\",\"event\":\"approve\",\"expected_seq\":2,\
             \"instance\":\"doc-1\",\"kind\":\"fire\",\"origin\":null,\
             \"payload\":{\"a\":\"学\",\"z\":1},\"v\":1,\"version\":null,\"workflow\":null}"
        );
        let start = Claim {
            kind: SignedKind::Start {
                workflow: "w",
                version: 3,
            },
            ..claim
        };
        assert_ne!(start.message(), message);
    }

    /// The event a signed fire records, signed by `key` (seed) as li.
    fn signed_event(seed: u8, payload: Value) -> (Event, ActorKey) {
        use ed25519_dalek::Signer;
        let secret = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let public = VerifierKey::new("li", secret.verifying_key()).expect("a key");
        let mut event: Event = serde_json::from_value(json!({
            "v": 1, "gseq": 9, "instance": "doc-1", "seq": 2, "prev": crate::GENESIS,
            "kind": "fire", "workflow": "w", "version": 1, "definition_hash": "h",
            "from": "draft", "event": "submit", "transition": "submit", "to": "review",
            "actor": {"id": "li", "roles": ["author"]}, "at": "2026-05-01T08:00:00Z",
            "payload": payload
        }))
        .expect("an event");
        let at: Timestamp = "2026-05-01T07:58:00Z".parse().expect("a time");
        let claim = Claim {
            origin: None,
            kind: SignedKind::Fire,
            instance: "doc-1",
            event: "submit",
            payload: &event.payload,
            expected_seq: Some(1),
            command_id: None,
            actor: &event.actor,
            at: Some(at),
        };
        let signature = claim.sign(public.key_id(), |m| secret.sign(m).to_bytes());
        event.signature = Some(signature);
        let key = ActorKey {
            actor: "li".to_owned(),
            vkey: public.encode(),
        };
        (event, key)
    }

    fn check(access: &crate::Access, event: &Event, require: bool) -> Result<(), &'static str> {
        let Ok(checked) = check_signature(access, event, require);
        checked.map_err(|e| e.code())
    }

    #[test]
    fn a_signature_holds_only_for_its_command_and_a_held_key() {
        let (event, key) = signed_event(1, json!({"title": "t"}));
        let mut access = crate::Access::new();
        assert_eq!(check(&access, &event, false), Err("unknown_key"));
        access.apply_key(KeyChange::Register, &key);
        assert_eq!(check(&access, &event, true), Ok(()));
        // The payload altered, the expected sequence moved, the roles
        // widened: each breaks it.
        let mut altered = event.clone();
        altered.payload = json!({"title": "T"});
        assert_eq!(check(&access, &altered, false), Err("bad_signature"));
        let mut moved = event.clone();
        moved.seq = 3;
        assert_eq!(check(&access, &moved, false), Err("malformed_signature"));
        let mut widened = event.clone();
        widened.actor.roles.push("director".to_owned());
        assert_eq!(check(&access, &widened, false), Err("bad_signature"));
        // Signed two minutes before the event: within the window; an
        // hour after it is not.
        let mut late = event.clone();
        late.at = "2026-05-01T09:00:00Z".parse().expect("a time");
        assert_eq!(check(&access, &late, false), Err("stale_signature"));
        // Unsigned, it is asked for one only when signatures are required.
        let mut stripped = event.clone();
        stripped.signature = None;
        assert_eq!(check(&access, &stripped, false), Ok(()));
        assert_eq!(check(&access, &stripped, true), Err("signature_required"));
        access.apply_key(KeyChange::Retire, &key);
        assert_eq!(check(&access, &event, false), Err("retired_key"));
        assert_eq!(
            check(&access, &stripped, true),
            Ok(()),
            "li holds no key now"
        );
    }

    #[test]
    fn keys_are_registered_once_by_an_admin_and_retired_when_held() {
        let (_, key) = signed_event(1, Value::Null);
        let mut access = crate::Access::new();
        let admin = Actor::new("root", &[crate::ADMIN_ROLE]);
        let change = |access: &crate::Access, change, key: &ActorKey, by: &Actor| {
            let Ok(checked) = check_key_change(access, change, key, by);
            checked
        };
        assert_eq!(
            change(&access, KeyChange::Retire, &key, &admin),
            Err(crate::AccessError::KeyNotHeld { key: key.clone() })
        );
        assert_eq!(change(&access, KeyChange::Register, &key, &admin), Ok(()));
        access.apply_key(KeyChange::Register, &key);
        assert!(matches!(
            change(&access, KeyChange::Register, &key, &admin),
            Err(crate::AccessError::KeyKnown { .. })
        ));
        access.apply_key(KeyChange::Retire, &key);
        assert!(
            matches!(
                change(&access, KeyChange::Register, &key, &admin),
                Err(crate::AccessError::KeyKnown { .. })
            ),
            "a retired key never again"
        );
        let clerk = Actor::new("li", &["clerk"]);
        assert!(matches!(
            change(&access, KeyChange::Register, &key, &clerk),
            Err(crate::AccessError::NotAdmin { .. })
        ));
        let junk = ActorKey {
            actor: "li".to_owned(),
            vkey: "not a key".to_owned(),
        };
        assert!(matches!(
            change(&access, KeyChange::Register, &junk, &admin),
            Err(crate::AccessError::BadKey { .. })
        ));
        let system = ActorKey {
            actor: "system".to_owned(),
            ..key
        };
        assert!(matches!(
            change(&access, KeyChange::Register, &system, &admin),
            Err(crate::AccessError::ReservedKey { .. })
        ));
    }
}
