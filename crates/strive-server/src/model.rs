//! The request and response bodies of the API. The OpenAPI document is
//! generated from these types; each converts from the engine's type at the
//! edge, so the wire format changes only when this file does.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use strive_store::{DefinitionInfo, Outcome, Page, Snapshot, StoredEvent};
use utoipa::{IntoParams, ToSchema};

use crate::tokens::TokenRecord;

/// What an accepted start or fire produced.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutcomeBody {
    /// The instance.
    pub instance: String,
    /// The event's name (`start` for a start).
    pub event: String,
    /// The stage the instance is in now.
    pub stage: String,
    /// The instance's sequence number after the event (its ETag).
    pub seq: u64,
    /// The event's position in its partition's log (with one partition,
    /// the whole log).
    pub gseq: u64,
    /// The partition whose log holds the event (0 in a store of one).
    #[serde(default)]
    pub partition: u32,
    /// The event's hash.
    pub hash: String,
    /// Whether the instance is finished.
    pub finished: bool,
    /// Whether this is the outcome of an earlier command with the same
    /// `Idempotency-Key`, returned without writing anything.
    pub replayed: bool,
}

impl From<Outcome> for OutcomeBody {
    fn from(o: Outcome) -> OutcomeBody {
        OutcomeBody {
            instance: o.instance,
            event: o.event,
            stage: o.stage,
            seq: o.seq,
            gseq: o.gseq,
            partition: o.partition,
            hash: o.hash,
            finished: o.finished,
            replayed: o.replayed,
        }
    }
}

/// A pending deadline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DueBody {
    /// When it is due (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// The event fired then.
    pub event: String,
}

/// An instance now.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstanceBody {
    /// The instance's id.
    pub id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// The definition version it is pinned to.
    pub version: u32,
    /// The hash of that definition version.
    pub definition_hash: String,
    /// The current stage.
    pub stage: String,
    /// The instance variables.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    /// The number of events in its history (its ETag).
    pub seq: u64,
    /// The hash of its last event.
    pub head: String,
    /// The parent instance, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// When it was started.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    /// When its last event was recorded.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: jiff::Timestamp,
    /// When it entered its current stage.
    #[schema(value_type = String, format = DateTime)]
    pub stage_entered_at: jiff::Timestamp,
    /// Whether it is in a terminal stage.
    pub finished: bool,
    /// `running`, `suspended`, `cancelled` or `terminated`.
    #[schema(value_type = String)]
    pub status: strive_store::Status,
    /// Its pending deadline, if any (while suspended, it waits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<DueBody>,
    /// Its children's ids, in id order.
    pub children: Vec<String>,
}

impl From<Snapshot> for InstanceBody {
    fn from(s: Snapshot) -> InstanceBody {
        let i = s.instance;
        InstanceBody {
            id: i.id,
            workflow: i.workflow,
            version: i.version,
            definition_hash: i.definition_hash,
            stage: i.stage,
            data: i.data,
            seq: i.seq,
            head: i.head,
            parent: i.parent,
            created_at: i.created_at,
            updated_at: i.updated_at,
            stage_entered_at: i.stage_entered_at,
            finished: i.finished,
            status: i.status,
            due: s.due.map(|d| DueBody {
                at: d.at,
                event: d.event,
            }),
            children: s.children,
        }
    }
}

/// A page of instances.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InstancePage {
    /// The instances, in id order.
    pub items: Vec<InstanceBody>,
    /// The `after` of the next page, if there is one.
    pub next: Option<String>,
}

impl From<Page> for InstancePage {
    fn from(page: Page) -> InstancePage {
        InstancePage {
            items: page.items.into_iter().map(InstanceBody::from).collect(),
            next: page.next,
        }
    }
}

/// A deployed definition version.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DefinitionBody {
    /// The workflow.
    pub workflow: String,
    /// The version, from 1.
    pub version: u32,
    /// The definition's content hash.
    pub hash: String,
    /// When it was deployed.
    #[schema(value_type = String, format = DateTime)]
    pub deployed_at: jiff::Timestamp,
    /// The deploy event's position in the log of partition 0, which
    /// records every deployment.
    pub gseq: u64,
    /// Whether this deploy found the same content deployed already.
    pub unchanged: bool,
}

impl From<DefinitionInfo> for DefinitionBody {
    fn from(d: DefinitionInfo) -> DefinitionBody {
        DefinitionBody {
            workflow: d.workflow,
            version: d.version,
            hash: d.hash,
            deployed_at: d.deployed_at,
            gseq: d.gseq,
            unchanged: d.unchanged,
        }
    }
}

/// One event of the audit trail, with the hash stored with it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventBody {
    /// The hash stored with the event.
    pub hash: String,
    /// The event: `gseq`, `instance`, `seq`, `prev`, `kind`, `workflow`,
    /// `version`, `event`, `from`, `to`, `actor`, `at`, `payload`, ...
    /// (docs/audit.md). Its exact bytes are in the JSONL export.
    #[schema(value_type = Object)]
    pub event: Value,
}

impl From<StoredEvent> for EventBody {
    fn from(stored: StoredEvent) -> EventBody {
        EventBody {
            hash: stored.hash,
            event: serde_json::to_value(&stored.event).unwrap_or(Value::Null),
        }
    }
}

/// A page of events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// The events, in order.
    pub items: Vec<EventBody>,
    /// Where the next page starts (`after` for history; `from` for the
    /// log of a store of one partition), if there is one.
    pub next: Option<u64>,
    /// For the log, in a store of any number of partitions: the `from` of
    /// the next page (`partition:position` pairs; with one partition a
    /// number), if there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// Starts an instance. An `actor` field, if sent, is ignored: the token
/// says who acts.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct StartRequest {
    /// The workflow (its latest version runs).
    pub workflow: String,
    /// The new instance's id.
    pub id: String,
    /// Initial data over the declared defaults.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Map<String, Value>>,
    /// The parent instance.
    #[serde(default)]
    pub parent: Option<String>,
    /// The actor's signature on the start (docs/http.md, "Signed
    /// commands"), made where its key is; the key never comes here.
    #[serde(default)]
    pub signature: Option<SignatureBody>,
}

/// An actor's signature on a command: the key id and the Ed25519
/// signature of the command's message (docs/audit.md, "Signed commands"),
/// with the origin and time the signer bound, if any. The expected
/// sequence it binds is the command's own (`If-Match` or `expected_seq`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct SignatureBody {
    /// The signing key's id, 8 hex digits.
    pub key: String,
    /// The signature, standard base64 of 64 bytes.
    pub sig: String,
    /// The log's name the signer bound, if any.
    #[serde(default)]
    pub origin: Option<String>,
    /// When the signer signed, RFC 3339, if it bound a time.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub at: Option<jiff::Timestamp>,
}

impl From<SignatureBody> for strive_core::CommandSignature {
    fn from(body: SignatureBody) -> strive_core::CommandSignature {
        strive_core::CommandSignature {
            key: body.key,
            sig: body.sig,
            origin: body.origin,
            expected_seq: None,
            at: body.at,
        }
    }
}

/// Fires an event. An `actor` field, if sent, is ignored: the token says
/// who acts.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct FireRequest {
    /// The event.
    pub event: String,
    /// The payload, an object (or null for none).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Value,
    /// Refuse unless the instance is at this sequence (as `If-Match`).
    #[serde(default)]
    pub expected_seq: Option<u64>,
    /// The actor's signature on the fire (docs/http.md, "Signed
    /// commands").
    #[serde(default)]
    pub signature: Option<SignatureBody>,
}

/// Suspends, resumes, cancels or terminates an instance.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct LifecycleBody {
    /// `suspend`, `resume`, `cancel` or `terminate`.
    #[schema(value_type = String)]
    pub op: strive_store::Operation,
    /// Why, recorded in the event (1 to 1000 characters).
    pub reason: String,
    /// Refuse unless the instance is at this sequence (as `If-Match`).
    #[serde(default)]
    pub expected_seq: Option<u64>,
}

/// Deploys several definitions, all or none.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct DeployRequest {
    /// The definition documents.
    #[schema(value_type = Vec<Object>)]
    pub definitions: Vec<Value>,
}

/// Which instances to list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Only this workflow.
    pub workflow: Option<String>,
    /// Only this stage (with `workflow` or `parent`).
    pub stage: Option<String>,
    /// Only children of this instance.
    pub parent: Option<String>,
    /// Start after this id (the `next` of the previous page).
    pub after: Option<String>,
    /// At most this many (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A page of a history.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// Start after the event with this sequence number.
    pub after: Option<u64>,
    /// At most this many (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A page of the log of every partition.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsParams {
    /// Where to start, inclusive: with one partition a position (from 1);
    /// with any number `partition:position` pairs, comma-separated, a
    /// partition not named starting at 1 (docs/http.md).
    pub from: Option<String>,
    /// At most this many (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// Where a stream of events starts.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamParams {
    /// Where to start, inclusive, as for `GET /v1/events`;
    /// `Last-Event-ID` wins.
    pub from: Option<String>,
}

/// Where a replay stops.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReplayParams {
    /// Stop after the instance's event with this sequence number.
    pub at_seq: Option<u64>,
    /// Stop at this time (RFC 3339).
    pub at: Option<String>,
}

/// An instance rebuilt from its events alone.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplayBody {
    /// The rebuilt instance.
    #[schema(value_type = Object)]
    pub instance: Value,
    /// The position of the last event replayed in its partition's log.
    pub gseq: u64,
    /// At the end of the history: whether it equals the stored snapshot.
    pub matches_snapshot: Option<bool>,
    /// What replay found wrong.
    #[schema(value_type = Vec<Object>)]
    pub problems: Vec<Value>,
}

/// A checkpoint of the log of every partition (C2SP), unsigned.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CheckpointBody {
    /// The log's name.
    pub origin: String,
    /// How many events the log holds.
    pub size: u64,
    /// The Merkle root, hex.
    pub root: String,
    /// The checkpoint note, as `strive checkpoint` prints it.
    pub note: String,
    /// Each partition's head, by partition: one in a store of one
    /// partition (the size and root above); with more, `size` is their
    /// total and `root` their combined root (docs/audit.md).
    pub partitions: Vec<PartitionHeadBody>,
}

/// One partition's Merkle log head.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PartitionHeadBody {
    /// The partition.
    pub partition: u32,
    /// How many events its log holds.
    pub size: u64,
    /// Its Merkle root, hex.
    pub root: String,
}

/// The log's name in a checkpoint.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CheckpointParams {
    /// The log's name (default `strive`).
    pub origin: Option<String>,
}

/// A receipt for one event (`strive-receipt/v1`, docs/audit.md
/// "Receipts"): check it offline with `strive verify-receipt`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReceiptBody {
    /// `strive-receipt/v1`.
    pub format: String,
    /// The event's instance.
    pub instance: String,
    /// Its place in the instance's chain.
    pub seq: u64,
    /// The partition whose log holds it.
    pub partition: u32,
    /// Its position in that log.
    pub gseq: u64,
    /// Its hash, hex.
    pub hash: String,
    /// Its exact stored bytes, as text.
    pub event: String,
    /// The inclusion proof to the partition's root, hex hashes.
    pub proof: Vec<String>,
    /// The checkpoint note the proof leads to (unsigned from the server:
    /// compare it with a checkpoint you trust).
    pub checkpoint: String,
}

/// How far a verification job is.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VerifyJob {
    /// The job's id.
    pub id: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Events read so far.
    pub read: u64,
    /// Events to read.
    pub total: u64,
    /// When done: whether everything holds.
    pub ok: Option<bool>,
    /// When done: the report, as `strive verify --format json` prints it.
    #[schema(value_type = Option<Object>)]
    pub report: Option<Value>,
    /// When done: the report's summary line.
    pub summary: Option<String>,
}

/// What to export.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportParams {
    /// `jsonl` (the audit bundle, default), `csv` or `xes`.
    pub format: Option<ExportFormat>,
    /// Only instances of this workflow.
    pub workflow: Option<String>,
    /// Only this instance.
    pub instance: Option<String>,
    /// Only events from this global position on.
    pub since: Option<u64>,
}

/// An export's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// The JSONL audit bundle.
    Jsonl,
    /// One CSV row per event.
    Csv,
    /// An IEEE 1849 XES event log.
    Xes,
    /// An OCEL 2.0 object-centric event log (JSON), with the campaign's
    /// object mapping.
    Ocel,
}

/// A report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormatParam {
    /// For people.
    Text,
    /// For tools.
    Json,
    /// One row per unit.
    Csv,
    /// One self-contained page.
    Html,
}

/// Which report.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportParams {
    /// Only this workflow.
    pub workflow: Option<String>,
    /// As of this time (RFC 3339).
    pub as_of: Option<String>,
    /// `json` (default), `text`, `csv` or `html`.
    pub format: Option<ReportFormatParam>,
    /// At most this many rows per table in text and HTML; 0 for all.
    pub limit: Option<usize>,
}

/// Whose pledges.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PledgeParams {
    /// Only this organisation's.
    pub organisation: Option<String>,
    /// `json` (default), `text`, `csv` or `html`.
    pub format: Option<ReportFormatParam>,
}

/// Asks for a token.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct IssueRequest {
    /// The actor every command sent with the token acts as.
    pub actor: String,
    /// The roles it acts in.
    pub roles: Vec<String>,
    /// When it expires (RFC 3339); never when absent.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// A token as listed: its hash is never shown, nor kept the token.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenBody {
    /// The token's id.
    pub id: String,
    /// The actor.
    pub actor: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// When it was issued.
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: jiff::Timestamp,
    /// When it expires, if ever.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<jiff::Timestamp>,
    /// When it was revoked, if it was.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<jiff::Timestamp>,
}

impl From<TokenRecord> for TokenBody {
    fn from(r: TokenRecord) -> TokenBody {
        TokenBody {
            id: r.id,
            actor: r.actor,
            roles: r.roles,
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// A new token: the secret is shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct IssuedBody {
    /// The bearer token.
    pub token: String,
    /// Its record.
    pub record: TokenBody,
}

/// Asks for a grant, or its revocation: `actor` holds `role` everywhere, or
/// on the instance `on` and its descendants.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct GrantRequest {
    /// Who holds the role.
    pub actor: String,
    /// The role.
    pub role: String,
    /// Only on this instance and its descendants; everywhere when absent.
    #[serde(default)]
    pub on: Option<String>,
}

impl From<GrantRequest> for strive_store::Grant {
    fn from(r: GrantRequest) -> strive_store::Grant {
        strive_store::Grant {
            actor: r.actor,
            role: r.role,
            on: r.on,
        }
    }
}

/// A grant held, with when and by whom it was made.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GrantBody {
    /// Who holds the role.
    pub actor: String,
    /// The role.
    pub role: String,
    /// The instance it is limited to (with its descendants); everywhere
    /// when null.
    pub on: Option<String>,
    /// The log position of the grant event.
    pub since: u64,
    /// When it was granted.
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// The admin who granted it.
    pub by: String,
}

impl From<strive_store::GrantInfo> for GrantBody {
    fn from(g: strive_store::GrantInfo) -> GrantBody {
        GrantBody {
            actor: g.grant.actor,
            role: g.grant.role,
            on: g.grant.on,
            since: g.since,
            at: g.at,
            by: g.by,
        }
    }
}

/// Asks to register or retire an actor's public key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct KeyRequest {
    /// The actor who holds the key.
    pub actor: String,
    /// The public key as text (a vkey, `NAME+KEYID+BASE64`), as `strive
    /// key generate` prints it.
    pub vkey: String,
}

/// One of an actor's keys, held or retired.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyBody {
    /// The actor who holds (or held) it.
    pub actor: String,
    /// Its id, 8 hex digits: what signatures name it by.
    pub key: String,
    /// The public key as text.
    pub vkey: String,
    /// The log position of its registration.
    pub since: u64,
    /// When it was registered.
    #[schema(value_type = String, format = DateTime)]
    pub at: jiff::Timestamp,
    /// The admin who registered it.
    pub by: String,
    /// The log position of its retirement, once retired.
    pub retired: Option<u64>,
}

impl From<strive_store::KeyInfo> for KeyBody {
    fn from(k: strive_store::KeyInfo) -> KeyBody {
        KeyBody {
            actor: k.actor,
            key: k.key,
            vkey: k.vkey,
            since: k.since,
            at: k.at,
            by: k.by,
            retired: k.retired,
        }
    }
}

/// Which grants (or keys) to list.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct GrantsParams {
    /// Only this actor's.
    pub actor: Option<String>,
}
