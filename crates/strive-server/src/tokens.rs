//! Bearer tokens: issued by an admin, kept only as SHA-256 hashes in a
//! `tokens.json` beside the store's data, with an expiry and a revocation.
//!
//! The file is rewritten whole through a temporary file and a rename, so a
//! reader (the server reloading it) sees the old or the new list, never
//! half of one. sled keeps its own files (`conf`, `db`, `blobs/`, `snap.*`)
//! in the store directory and leaves other names alone (the test
//! `the_token_file_lives_beside_sled` checks it).

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strive_store::Actor;

/// The token file's name inside the store directory.
pub const TOKEN_FILE: &str = "tokens.json";

/// The format version of the token file.
const TOKEN_FORMAT: u32 = 1;

/// The prefix of every token, so that a leaked one is recognisable (secret
/// scanners look for such prefixes).
const TOKEN_PREFIX: &str = "strive_";

/// The role that may deploy and manage tokens over HTTP.
pub const ADMIN_ROLE: &str = "admin";

/// The role only the engine acts in; no token carries it.
const SYSTEM_ROLE: &str = "system";

/// A token as kept: never the token itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The token's public id, for listing and revoking.
    pub id: String,
    /// The SHA-256 of the token, in hex.
    pub hash: String,
    /// The actor every command sent with the token acts as.
    pub actor: String,
    /// The roles the actor acts in: the grant, for now.
    pub roles: Vec<String>,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it stops working, if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

impl TokenRecord {
    /// The actor a command sent with this token acts as.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.actor.clone(),
            roles: self.roles.clone(),
        }
    }

    /// Whether it holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// A newly issued token: the secret, shown once, and its record.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The bearer token. It is not stored anywhere; whoever loses it asks
    /// for a new one.
    pub token: String,
    /// What is stored.
    pub record: TokenRecord,
}

/// What a new token is for.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// The actor.
    pub actor: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
}

/// Reading or changing the token file failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The file does not hold a token list this version reads.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No token has this id.
    Unknown {
        /// The id.
        id: String,
    },
    /// The request for a token is not acceptable.
    Invalid {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Io { path, message } => {
                write!(f, "cannot use the token file {}: {message}", path.display())
            }
            TokenError::Corrupt { path, message } => write!(
                f,
                "the token file {} does not read ({message}); restore it from a backup or remove it and issue new tokens",
                path.display()
            ),
            TokenError::Unknown { id } => {
                write!(
                    f,
                    "no token `{id}`; list them with `strive token list` or GET /v1/tokens"
                )
            }
            TokenError::Invalid { reason } => write!(f, "cannot issue this token: {reason}"),
        }
    }
}

impl std::error::Error for TokenError {}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileBody {
    v: u32,
    tokens: Vec<TokenRecord>,
}

/// The token file of one store.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    /// The token file of the store at `store` (its directory).
    pub fn beside(store: &Path) -> TokenFile {
        TokenFile {
            path: store.join(TOKEN_FILE),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every token record; none when the file does not exist yet.
    pub fn load(&self) -> Result<Vec<TokenRecord>, TokenError> {
        let text = match std::fs::read(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let body: FileBody = serde_json::from_slice(&text).map_err(|e| TokenError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        if body.v != TOKEN_FORMAT {
            return Err(TokenError::Corrupt {
                path: self.path.clone(),
                message: format!("format {} where {TOKEN_FORMAT} was expected", body.v),
            });
        }
        Ok(body.tokens)
    }

    /// Issues a token and records its hash.
    pub fn issue(&self, request: &TokenRequest, now: Timestamp) -> Result<Issued, TokenError> {
        check_request(request, now)?;
        let mut records = self.load()?;
        let secret = random_hex(32)?;
        let token = format!("{TOKEN_PREFIX}{secret}");
        let record = TokenRecord {
            id: random_hex(6)?,
            hash: hash(&token),
            actor: request.actor.clone(),
            roles: request.roles.clone(),
            issued_at: now,
            expires_at: request.expires_at,
            revoked_at: None,
        };
        records.push(record.clone());
        self.save(&records)?;
        Ok(Issued { token, record })
    }

    /// Revokes the token `id`; revoking it again changes nothing.
    pub fn revoke(&self, id: &str, now: Timestamp) -> Result<TokenRecord, TokenError> {
        let mut records = self.load()?;
        let record = records
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| TokenError::Unknown { id: id.to_owned() })?;
        record.revoked_at.get_or_insert(now);
        let revoked = record.clone();
        self.save(&records)?;
        Ok(revoked)
    }

    fn save(&self, records: &[TokenRecord]) -> Result<(), TokenError> {
        let body = FileBody {
            v: TOKEN_FORMAT,
            tokens: records.to_vec(),
        };
        let text = serde_json::to_vec_pretty(&body).map_err(|e| TokenError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let temporary = self.path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary).map_err(|e| self.io(e))?;
        file.write_all(&text).map_err(|e| self.io(e))?;
        file.sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&temporary, &self.path).map_err(|e| self.io(e))
    }

    fn io(&self, error: std::io::Error) -> TokenError {
        TokenError::Io {
            path: self.path.clone(),
            message: error.to_string(),
        }
    }
}

fn check_request(request: &TokenRequest, now: Timestamp) -> Result<(), TokenError> {
    let invalid = |reason: &str| {
        Err(TokenError::Invalid {
            reason: reason.to_owned(),
        })
    };
    if request.actor.is_empty() || request.actor.len() > 128 {
        return invalid("the actor id must be 1 to 128 bytes long");
    }
    if request.roles.is_empty() || request.roles.len() > 64 {
        return invalid("a token needs 1 to 64 roles");
    }
    if request
        .roles
        .iter()
        .any(|r| r.is_empty() || r.len() > 128 || r.contains(','))
    {
        return invalid("each role must be 1 to 128 bytes long, without commas");
    }
    if request.actor == SYSTEM_ROLE || request.roles.iter().any(|r| r == SYSTEM_ROLE) {
        return invalid("`system` belongs to the engine; no token acts as it");
    }
    if request.expires_at.is_some_and(|at| at <= now) {
        return invalid("the expiry is in the past");
    }
    Ok(())
}

/// The SHA-256 of a token, in hex: what is stored and looked up.
fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, TokenError> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).map_err(|e| TokenError::Invalid {
        reason: format!("the system has no randomness to give: {e}"),
    })?;
    Ok(hex::encode(buffer))
}

/// Why a request is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Missing,
    Unknown,
    Expired,
    Revoked,
}

/// The tokens the server accepts, indexed by hash.
#[derive(Debug, Default)]
pub(crate) struct Index {
    by_hash: HashMap<String, TokenRecord>,
}

impl Index {
    pub(crate) fn new(records: Vec<TokenRecord>) -> Index {
        Index {
            by_hash: records.into_iter().map(|r| (r.hash.clone(), r)).collect(),
        }
    }

    /// The record of a presented token, if it is valid at `now`.
    pub(crate) fn authenticate(
        &self,
        token: Option<&str>,
        now: Timestamp,
    ) -> Result<TokenRecord, Refusal> {
        let token = token.ok_or(Refusal::Missing)?;
        let record = self.by_hash.get(&hash(token)).ok_or(Refusal::Unknown)?;
        if record.revoked_at.is_some() {
            return Err(Refusal::Revoked);
        }
        if record.expires_at.is_some_and(|at| at <= now) {
            return Err(Refusal::Expired);
        }
        Ok(record.clone())
    }

    /// Every record, in id order, for listing.
    pub(crate) fn records(&self) -> Vec<TokenRecord> {
        let mut records: Vec<TokenRecord> = self.by_hash.values().cloned().collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a time")
    }

    #[test]
    fn tokens_are_kept_as_hashes_and_expire_and_revoke() {
        let dir = tempfile::tempdir().expect("a directory");
        let file = TokenFile::beside(dir.path());
        let now = at("2026-05-06T09:00:00Z");
        let request = TokenRequest {
            actor: "li".to_owned(),
            roles: vec!["branch_secretary".to_owned()],
            expires_at: Some(at("2026-06-01T00:00:00Z")),
        };
        let issued = file.issue(&request, now).expect("issued");
        let text = std::fs::read_to_string(file.path()).expect("the file");
        assert!(
            !text.contains(&issued.token),
            "the secret must not be stored"
        );
        assert!(text.contains(&issued.record.hash));

        let index = Index::new(file.load().expect("loads"));
        let record = index
            .authenticate(Some(&issued.token), now)
            .expect("accepted");
        assert_eq!(record.actor().id, "li");
        assert_eq!(index.authenticate(None, now), Err(Refusal::Missing));
        assert_eq!(
            index.authenticate(Some("strive_nope"), now),
            Err(Refusal::Unknown)
        );
        assert_eq!(
            index.authenticate(Some(&issued.token), at("2026-06-01T00:00:00Z")),
            Err(Refusal::Expired)
        );

        file.revoke(&issued.record.id, now).expect("revoked");
        let index = Index::new(file.load().expect("loads"));
        assert_eq!(
            index.authenticate(Some(&issued.token), now),
            Err(Refusal::Revoked)
        );
        assert!(matches!(
            file.revoke("nope", now),
            Err(TokenError::Unknown { .. })
        ));
    }

    #[test]
    fn bad_requests_are_refused() {
        let dir = tempfile::tempdir().expect("a directory");
        let file = TokenFile::beside(dir.path());
        let now = at("2026-05-06T09:00:00Z");
        let cases = [
            ("", vec!["member"], None),
            ("li", vec![], None),
            ("li", vec!["system"], None),
            ("system", vec!["member"], None),
            ("li", vec!["a,b"], None),
            ("li", vec!["member"], Some(at("2026-05-01T00:00:00Z"))),
        ];
        for (actor, roles, expires_at) in cases {
            let request = TokenRequest {
                actor: actor.to_owned(),
                roles: roles.into_iter().map(str::to_owned).collect(),
                expires_at,
            };
            let result = file.issue(&request, now);
            assert!(
                matches!(result, Err(TokenError::Invalid { .. })),
                "{request:?} gave {result:?}"
            );
        }
        assert!(!file.path().exists(), "a refused token writes nothing");
    }
}
