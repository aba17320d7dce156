//! Running a witness (C2SP tlog-witness): its state file, kept outside any
//! store, and its one HTTP call, `POST <prefix>/add-checkpoint`. The rules
//! are `strive_audit::Witness`'s; this module only reads and persists its
//! state around each request, so `strive witness add` (offline) and
//! `strive witness serve` share one implementation and one file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use strive_audit::{AddCheckpoint, MAX_REQUEST_BYTES, Refusal, Witness, WitnessKey};

use crate::ServeError;

/// Why a witness could not answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum WitnessError {
    /// The witness refused to cosign, as C2SP tlog-witness asks.
    Refused(Refusal),
    /// Its state file could not be read or written.
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl std::fmt::Display for WitnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WitnessError::Refused(refusal) => refusal.fmt(f),
            WitnessError::State { path, message } => {
                write!(f, "the witness state {}: {message}", path.display())
            }
        }
    }
}

impl std::error::Error for WitnessError {}

/// A witness: its key and its state file. Requests are answered one at a
/// time, under this process's lock and an exclusive lock on the state
/// file, so two processes sharing the file cannot both cosign from the
/// same old size (the race C2SP tlog-witness warns of).
#[derive(Debug)]
pub struct WitnessService {
    key: WitnessKey,
    path: PathBuf,
    lock: Mutex<()>,
}

impl WitnessService {
    /// The witness with `key`, keeping its state at `path` (which
    /// `strive witness init` creates).
    pub fn new(key: WitnessKey, path: PathBuf) -> WitnessService {
        WitnessService {
            key,
            path,
            lock: Mutex::new(()),
        }
    }

    /// The witness's key.
    pub fn key(&self) -> &WitnessKey {
        &self.key
    }

    /// Answers one `add-checkpoint` request body at `now` (seconds since
    /// the epoch): the cosignature line, persisted before it is returned.
    pub fn add_checkpoint(&self, body: &str, now: u64) -> Result<String, WitnessError> {
        let request = AddCheckpoint::parse(body).map_err(WitnessError::Refused)?;
        let _held = self
            .lock
            .lock()
            .map_err(|_| self.state_error("a lock is poisoned"))?;
        update(&self.path, |witness| {
            witness
                .add_checkpoint(&self.key, &request, now)
                .map_err(WitnessError::Refused)
        })
    }

    fn state_error(&self, message: impl std::fmt::Display) -> WitnessError {
        WitnessError::State {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }
}

/// Reads the state at `path`, applies `change` and, when it succeeds,
/// writes the new state durably (a temporary file, fsync, rename, fsync of
/// the directory) before returning; all under an exclusive lock on
/// `path.lock`. A refused change writes nothing.
pub fn update<T>(
    path: &Path,
    change: impl FnOnce(&mut Witness) -> Result<T, WitnessError>,
) -> Result<T, WitnessError> {
    let state_error = |message: String| WitnessError::State {
        path: path.to_owned(),
        message,
    };
    let lock_path = sibling(path, ".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| state_error(format!("cannot open {}: {e}", lock_path.display())))?;
    lock.lock()
        .map_err(|e| state_error(format!("cannot lock {}: {e}", lock_path.display())))?;
    let mut witness = load(path)?;
    let result = change(&mut witness)?;
    save(path, &witness)?;
    drop(lock);
    Ok(result)
}

/// Reads a witness state file.
pub fn load(path: &Path) -> Result<Witness, WitnessError> {
    let text = std::fs::read_to_string(path).map_err(|e| WitnessError::State {
        path: path.to_owned(),
        message: format!("{e}; create it with `strive witness init`"),
    })?;
    Witness::parse(&text).map_err(|e| WitnessError::State {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Writes a witness state file durably: a crash leaves the old state or
/// the new one, never a mix, and the new one is on disk before this
/// returns (a witness must persist before it answers).
pub fn save(path: &Path, witness: &Witness) -> Result<(), WitnessError> {
    let state_error = |message: String| WitnessError::State {
        path: path.to_owned(),
        message,
    };
    let temporary = sibling(path, ".tmp");
    let mut file = File::create(&temporary)
        .map_err(|e| state_error(format!("cannot write {}: {e}", temporary.display())))?;
    file.write_all(witness.to_text().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| state_error(format!("cannot write {}: {e}", temporary.display())))?;
    std::fs::rename(&temporary, path).map_err(|e| state_error(e.to_string()))?;
    if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(directory)
            .and_then(|d| d.sync_all())
            .map_err(|e| state_error(format!("cannot sync {}: {e}", directory.display())))?;
    }
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The witness's routes: `POST /add-checkpoint`, to nest under a prefix.
pub fn router(service: Arc<WitnessService>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(service)
}

async fn add_checkpoint(State(service): State<Arc<WitnessService>>, body: Bytes) -> Response {
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "the request is not UTF-8\n".to_owned(),
        );
    };
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    let answer = tokio::task::spawn_blocking(move || service.add_checkpoint(&text, now)).await;
    match answer {
        Ok(Ok(line)) => plain(StatusCode::OK, line),
        Ok(Err(WitnessError::Refused(refusal))) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = plain(status, refusal.body());
            if let Refusal::Conflict { .. } = refusal {
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/x.tlog.size"),
                );
            }
            // Why, for people reading the exchange; the body stays what
            // C2SP asks for.
            if let Ok(reason) = HeaderValue::from_str(&refusal.to_string()) {
                response.headers_mut().insert("x-witness-reason", reason);
            }
            response
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "the witness could not answer");
            plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n"))
        }
        Err(error) => plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
    }
}

fn plain(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Serves a witness alone (no store) on `listen`, under `/` (so its
/// submission prefix is the server's address), until SIGINT or SIGTERM.
/// `ready` is called with the bound address.
pub fn run(
    service: Arc<WitnessService>,
    listen: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(crate::io)?;
    runtime.block_on(async move {
        let listener = crate::bind(listen).await?;
        let addr = listener.local_addr().map_err(crate::io)?;
        ready(addr);
        axum::serve(listener, router(service))
            .with_graceful_shutdown(crate::termination())
            .await
            .map_err(crate::io)
    })
}
