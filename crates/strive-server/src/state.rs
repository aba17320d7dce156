//! What every handler shares: the engine, the accepted tokens, the rate
//! limiter, the metrics, the verification jobs and the shutdown signal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use strive_store::{Actor, CommandError, Engine, Grant};
use tokio::sync::watch;

use crate::Config;
use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::routes::audit::Job;
use crate::tokens::{ADMIN_ROLE, Index, Refusal, TokenFile, TokenRecord};

/// The state of a running server.
pub(crate) struct State {
    pub(crate) engine: Engine,
    pub(crate) config: Config,
    pub(crate) token_file: TokenFile,
    pub(crate) tokens: RwLock<Loaded>,
    pub(crate) limiter: Limiter,
    pub(crate) metrics: Metrics,
    pub(crate) jobs: Mutex<HashMap<String, Arc<Job>>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) sessions: crate::console::Sessions,
}

/// The handlers' handle on the state.
pub(crate) type Shared = Arc<State>;

/// The tokens as last read, and what the file looked like then.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) index: Index,
    pub(crate) stamp: Option<(SystemTime, u64)>,
}

impl State {
    /// Reads the token file again if it changed since it was last read
    /// (the CLI's `strive token issue` writes it while the server runs).
    pub(crate) fn reload_tokens(&self) -> Result<bool, crate::TokenError> {
        let stamp = std::fs::metadata(self.token_file.path())
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let unchanged = self
            .tokens
            .read()
            .map(|t| t.stamp == stamp)
            .unwrap_or(false);
        if unchanged {
            return Ok(false);
        }
        let records = self.token_file.load()?;
        if let Ok(mut tokens) = self.tokens.write() {
            tokens.index = Index::new(records);
            tokens.stamp = stamp;
        }
        Ok(true)
    }

    /// The record of the token `presented`, or the problem that refuses
    /// it: the one check of a token, for a bearer header and for a
    /// console session alike.
    pub(crate) fn authenticate(&self, presented: Option<&str>) -> Result<TokenRecord, Problem> {
        let authenticate = || match self.tokens.read() {
            Ok(tokens) => tokens.index.authenticate(presented, jiff::Timestamp::now()),
            Err(_) => Err(Refusal::Unknown),
        };
        let mut result = authenticate();
        // A token issued a moment ago by `strive token issue` works at once:
        // an unknown token makes the server look at the file (a stat, and
        // a read only when it changed) before it refuses.
        if result == Err(Refusal::Unknown) && matches!(self.reload_tokens(), Ok(true)) {
            result = authenticate();
        }
        result.map_err(|refusal| {
            self.metrics.rejection(refusal_code(refusal));
            refused(refusal)
        })
    }

    pub(crate) fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Who sent a request: the token's record. Extracting it authenticates the
/// request and spends one unit of the token's rate limit.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) TokenRecord);

impl Caller {
    /// The actor commands act as: the token's, whatever the body says.
    pub(crate) fn actor(&self) -> Actor {
        self.0.actor()
    }

    /// Refuses callers without the admin role. The token's `admin` role is
    /// only the bootstrap (issue #11): when the engine enforces grants and
    /// an admin is granted, the token's actor must hold a global `admin`
    /// grant too.
    pub(crate) fn require_admin(&self, state: &State) -> Result<(), Problem> {
        if !self.0.has_role(ADMIN_ROLE) {
            return Err(Problem::forbidden(ADMIN_ROLE));
        }
        if !state.engine.enforces_grants() {
            return Ok(());
        }
        let admin = Actor::new(self.0.actor.clone(), &[ADMIN_ROLE]);
        if state.engine.may_administer(&admin)? {
            Ok(())
        } else {
            Err(Problem::from(CommandError::NotGranted {
                missing: Grant::everywhere(admin.id, ADMIN_ROLE),
            }))
        }
    }
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Caller, Problem> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let record = state.authenticate(presented)?;
        if !state.limiter.allow(&record.id) {
            state.metrics.rejection("rate_limited");
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "this token sent more requests than its rate limit allows; slow down and retry after a second",
            ));
        }
        Ok(Caller(record))
    }
}

fn refusal_code(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Missing => "unauthenticated",
        Refusal::Unknown => "token_invalid",
        Refusal::Expired => "token_expired",
        Refusal::Revoked => "token_revoked",
    }
}

fn refused(refusal: Refusal) -> Problem {
    let detail = match refusal {
        Refusal::Missing => {
            "this needs a bearer token (Authorization: Bearer ...); ask an admin for one (`strive token issue`)"
        }
        Refusal::Unknown => "the bearer token is not one this server issued; check it",
        Refusal::Expired => "the bearer token has expired; ask an admin for a new one",
        Refusal::Revoked => "the bearer token was revoked; ask an admin for a new one",
    };
    Problem::new(StatusCode::UNAUTHORIZED, refusal_code(refusal), detail)
}

/// A token bucket per token: `rate` requests a second on average, bursts
/// of up to `burst`. A few lines of our own rather than a crate: the
/// limit is keyed by token id, which the authentication step has already.
pub(crate) struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub(crate) fn new(rate: f64, burst: f64) -> Limiter {
        Limiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one unit of `key`'s bucket, if it has one.
    pub(crate) fn allow(&self, key: &str) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        let (level, last) = buckets.entry(key.to_owned()).or_insert((self.burst, now));
        let refilled =
            (*level + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if refilled >= 1.0 {
            *level = refilled - 1.0;
            true
        } else {
            *level = refilled;
            false
        }
    }
}

/// Runs blocking engine work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Problem::internal(format!("the engine call failed: {e}")))?
}

/// How often the token file is checked for changes.
pub(crate) const TOKEN_RELOAD: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_allows_a_burst_then_refuses() {
        let limiter = Limiter::new(1.0, 3.0);
        let allowed = (0..5).filter(|_| limiter.allow("t")).count();
        assert_eq!(allowed, 3);
        assert!(limiter.allow("other"), "buckets are per token");
        assert!(Limiter::new(0.0, 1.0).allow("t"), "rate 0 means no limit");
    }
}
