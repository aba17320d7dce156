//! strive's HTTP/JSON service (issue #11): every engine operation under
//! `/v1`, bearer-token identity, RFC 9457 problems with the engine's stable
//! codes, an OpenAPI 3.1 document generated from the types, server-sent
//! events, and a background task that fires deadlines on time.
//!
//! It knows the engine only through `strive_store::Engine`'s public API,
//! as any embedding service would.
//!
//! ```no_run
//! use strive_server::{Background, Config, TokenFile, TokenRequest};
//! use strive_store::{Engine, Options};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::open("strive.db", Options::default())?;
//! let tokens = TokenFile::beside(std::path::Path::new("strive.db"));
//! let admin = tokens.issue(
//!     &TokenRequest { actor: "admin".into(), roles: vec!["admin".into()], expires_at: None },
//!     jiff::Timestamp::now(),
//! )?;
//! let server = Background::start(engine, tokens, Config::default())?;
//! println!("curl -H 'Authorization: Bearer {}' http://{}/v1/workflows", admin.token, server.addr());
//! server.stop()?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod console;
mod cursor;
mod metrics;
mod model;
mod openapi;
mod problem;
mod routes;
mod state;
mod tokens;
pub mod witness;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use strive_store::Engine;
use tokio::sync::watch;

pub use model::{
    CheckpointBody, DefinitionBody, DeployRequest, DueBody, EventBody, EventPage, ExportFormat,
    FireRequest, GrantBody, GrantRequest, InstanceBody, InstancePage, IssueRequest, IssuedBody,
    KeyBody, KeyRequest, OutcomeBody, PartitionHeadBody, ReceiptBody, ReplayBody,
    ReportFormatParam, SignatureBody, StartRequest, TokenBody, VerifyJob,
};
pub use openapi::openapi_json;
pub use problem::{Problem, ProblemDetails};
pub use tokens::{
    ADMIN_ROLE, Issued, TOKEN_FILE, TokenError, TokenFile, TokenRecord, TokenRequest,
};

use crate::state::{Limiter, Loaded, Shared, State};

/// How a server runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a request may take until its response's head.
    pub request_timeout: Duration,
    /// Requests a second each token may send on average; 0 for no limit.
    pub rate_limit: f64,
    /// How many requests a token may send at once above the average.
    pub burst: f64,
    /// How often due deadlines are fired.
    pub tick: Duration,
    /// A witness to serve beside the store, under `/witness` (its
    /// submission prefix), when the operator runs one here.
    pub witness: Option<Arc<witness::WitnessService>>,
    /// Whether the server fires due deadlines by itself. `strive demo
    /// --serve` turns it off: the demo runs on a simulated calendar, and
    /// the wall clock would fire every deadline it left pending.
    pub fire_deadlines: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            body_limit: 2 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            rate_limit: 1000.0,
            burst: 2000.0,
            tick: Duration::from_secs(1),
            witness: None,
            fire_deadlines: true,
        }
    }
}

/// Serving failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// The token file could not be read.
    Tokens(TokenError),
    /// The runtime or the connection loop failed.
    Io {
        /// What failed.
        message: String,
    },
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Bind { addr, message } => write!(
                f,
                "cannot listen on {addr}: {message}; choose another --listen address"
            ),
            ServeError::Tokens(e) => e.fmt(f),
            ServeError::Io { message } => write!(f, "the server failed: {message}"),
        }
    }
}

impl std::error::Error for ServeError {}

impl From<TokenError> for ServeError {
    fn from(e: TokenError) -> ServeError {
        ServeError::Tokens(e)
    }
}

fn io(e: impl fmt::Display) -> ServeError {
    ServeError::Io {
        message: e.to_string(),
    }
}

/// Serves `engine` on `listener` until `signal` completes, then stops
/// taking connections, ends event streams and waits for requests in
/// flight (commands included) to finish.
pub async fn serve(
    engine: Engine,
    tokens: TokenFile,
    config: Config,
    listener: tokio::net::TcpListener,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop, shutdown) = watch::channel(false);
    let state: Shared = Arc::new(State {
        engine,
        limiter: Limiter::new(config.rate_limit, config.burst),
        config,
        token_file: tokens,
        tokens: RwLock::new(Loaded::default()),
        metrics: Default::default(),
        jobs: Mutex::new(HashMap::new()),
        shutdown,
        sessions: Default::default(),
    });
    state.reload_tokens()?;
    let background = tokio::spawn(background(state.clone()));
    let app = routes::router(state.clone());
    let graceful = async move {
        signal.await;
        tracing::info!("shutting down: draining requests in flight");
        let _ = stop.send(true);
    };
    // Small answers go out at once rather than wait for the client's ACK
    // (Nagle), which would add tens of milliseconds to a keep-alive call.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(graceful)
        .await;
    background.abort();
    served.map_err(io)
}

/// The server's own work: fire due deadlines on time, and read the token
/// file again when it changes.
async fn background(state: Shared) {
    let mut tick = tokio::time::interval(state.config.tick);
    let mut reload = tokio::time::interval(state::TOKEN_RELOAD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => fire_due(&state).await,
            _ = reload.tick() => {
                let worker = state.clone();
                match tokio::task::spawn_blocking(move || worker.reload_tokens()).await {
                    Ok(Ok(true)) => tracing::info!("token file reloaded"),
                    Ok(Ok(false)) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "the token file does not read; keeping the tokens read before"),
                    Err(error) => tracing::warn!(%error, "reloading the token file failed"),
                }
            }
        }
    }
}

async fn fire_due(state: &Shared) {
    if state.shutting_down() || !state.config.fire_deadlines {
        return;
    }
    let engine = state.engine.clone();
    let fired = tokio::task::spawn_blocking(move || engine.fire_due(jiff::Timestamp::now())).await;
    match fired {
        Ok(Ok(fired)) => {
            for f in fired {
                match &f.result {
                    Ok(outcome) => {
                        state.metrics.command("deadline", "ok");
                        tracing::info!(instance = %f.instance, event = %f.event, stage = %outcome.stage, "deadline fired");
                    }
                    Err(error) => {
                        state.metrics.command("deadline", "rejected");
                        tracing::warn!(instance = %f.instance, event = %f.event, %error, "deadline refused");
                    }
                }
            }
        }
        Ok(Err(error)) => tracing::warn!(%error, "firing due deadlines failed"),
        Err(error) => tracing::warn!(%error, "firing due deadlines failed"),
    }
}

/// Serves until SIGINT or SIGTERM: what `strive serve` runs. `ready` is
/// called with the bound address once the server listens.
pub fn run(
    engine: Engine,
    tokens: TokenFile,
    config: Config,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    run_until(engine, tokens, config, ready, termination())
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Bind {
            addr,
            message: e.to_string(),
        })
}

/// Completes on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn termination() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}

/// A server on its own thread, for tests, examples and benchmarks.
#[derive(Debug)]
pub struct Background {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServeError>>>,
}

impl Background {
    /// Starts serving `engine` (on `config.listen`; port 0 picks a free one).
    pub fn start(
        engine: Engine,
        tokens: TokenFile,
        config: Config,
    ) -> Result<Background, ServeError> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, bound) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("strive-server".to_owned())
            .spawn(move || {
                let failed = ready.clone();
                let listening = |addr| {
                    let _ = ready.send(Ok(addr));
                };
                let result = run_until(engine, tokens, config, listening, async {
                    let _ = stopped.await;
                });
                if let Err(error) = &result {
                    let _ = failed.send(Err(error.to_string()));
                }
                result
            })
            .map_err(io)?;
        let addr = bound
            .recv()
            .map_err(io)?
            .map_err(|message| ServeError::Io { message })?;
        Ok(Background {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts down gracefully and waits until the engine is released.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.halt()
    }

    fn halt(&mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| io("the server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.halt();
    }
}

/// Serves on a runtime of its own until `signal`; `ready` gets the bound
/// address once the server listens.
fn run_until(
    engine: Engine,
    tokens: TokenFile,
    config: Config,
    ready: impl FnOnce(SocketAddr),
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(io)?;
    runtime.block_on(async move {
        let listener = bind(config.listen).await?;
        ready(listener.local_addr().map_err(io)?);
        serve(engine, tokens, config, listener, signal).await
    })
}
