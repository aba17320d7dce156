//! The PostgreSQL backend (issue #15): the engine's ordered key space as
//! one table of `(key BYTEA PRIMARY KEY, value BYTEA)`, every
//! [`Backend::apply`] one statement in its own transaction.
//!
//! - **Ordering.** PostgreSQL orders `bytea` by its bytes (memcmp, then
//!   length), which is the order the engine's keys are designed for
//!   (`keys.rs`), so a key range is one index range scan.
//! - **Durability.** [`Backend::apply`] commits with
//!   `synchronous_commit = off`, so the writer goes on deciding the next
//!   group at once, and [`Backend::flush`] commits a transaction with
//!   `synchronous_commit = on`, which waits until the WAL is on disk up to
//!   its commit record, and so every group applied before it: an
//!   acknowledged group (the default `Durability::Flushed`) is durable.
//!   One flush covers the groups of every partition applied before it, as
//!   sled's does. A connection lost between the two is handled in
//!   `unflushed.rs`: the backend never reports durable a group the server
//!   may have lost.
//! - **Connections.** A small pool: each call takes an idle connection or
//!   opens one, and gives it back; a connection the server closed is
//!   dropped. The engine calls from its writer threads (one per partition)
//!   and from readers, so the pool holds about P + readers connections.
//! - **Reconnecting.** A call whose connection was lost (the server
//!   restarted, say) is retried on a new connection for up to
//!   [`RECONNECT_WAIT`], once the groups applied and not yet flushed are
//!   found still there. Retrying `apply` is safe although the first
//!   attempt's COMMIT may have landed: a batch is a set of puts and deletes
//!   of fixed keys, and only the engine's writer writes them, so applying it
//!   twice leaves what applying it once leaves.
//! - **Schema.** Versioned migrations carried by this module
//!   ([`MIGRATIONS`]), recorded in `strive_schema`; a database migrated by
//!   a newer strive is refused rather than written.
//!
//! **Architecture Invariant:** this module is the only code that knows
//! PostgreSQL; it sees keys and values, never events.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls, Statement};

use super::{Backend, Entry, SharedHead, SharedLog, Write};
use crate::error::{OpenError, StorageError};
use crate::url::redact;
use unflushed::{Unflushed, Unsettled};

mod unflushed;

/// The schema migrations, in order: version, what it does, its SQL. A
/// database records each version it has in `strive_schema`; opening
/// applies the missing ones in one transaction. Append only: a released
/// migration never changes.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "the ordered key-value table every record of a store lives in",
        "CREATE TABLE strive_kv (key BYTEA PRIMARY KEY, value BYTEA NOT NULL)",
    ),
    (
        2,
        "a view of the records by kind (the key's first byte) and size, for operators",
        "CREATE VIEW strive_records AS \
         SELECT chr(get_byte(key, 0)) AS kind, key, octet_length(value) AS bytes FROM strive_kv",
    ),
    (
        3,
        "the owner row whose epoch fences a process that lost its hold on the store",
        "CREATE TABLE strive_owner (id INT PRIMARY KEY, epoch BIGINT NOT NULL); \
         INSERT INTO strive_owner (id, epoch) VALUES (1, 0)",
    ),
    (
        4,
        "the row a flush writes, so that its commit has WAL to wait for",
        "CREATE TABLE strive_flush (epoch BIGINT PRIMARY KEY, flushes BIGINT NOT NULL)",
    ),
    (
        5,
        "the partitions' head rows that processes sharing a store append under, and the owner's mode",
        "CREATE TABLE strive_head (partition INT PRIMARY KEY, size BIGINT NOT NULL, \
         stamp BIGINT NOT NULL); \
         ALTER TABLE strive_owner ADD COLUMN shared BOOLEAN NOT NULL DEFAULT false",
    ),
];

/// The URL parameter that opens a store for several processes at once
/// (`?shared=true`; docs/storage.md, "Several processes"). strive's own,
/// taken out of the URL before the rest goes to the client library.
pub const SHARED_PARAMETER: &str = "shared";

/// The advisory lock a process holds on the store while it has it open:
/// "strive" in ASCII. Advisory locks are per database, so stores in other
/// databases of the server do not collide.
const OWNER_LOCK: i64 = 0x7374_7269_7665;

/// How long `open` waits for the owner lock, for the case of a process
/// just killed whose connection the server has not yet closed.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// How often a writing backend makes sure it still holds the owner lock.
const OWNER_CHECK: Duration = Duration::from_secs(1);

/// How long a call whose connection was lost keeps trying to reconnect.
pub const RECONNECT_WAIT: Duration = Duration::from_secs(30);

/// Rows a range scan reads per query: a page of blocks is a few MB at most.
const PAGE_ROWS: i64 = 256;

/// Idle connections kept for reuse; more are closed when given back.
const MAX_IDLE: usize = 32;

/// A connection with the backend's statements prepared on it.
struct Conn {
    client: Client,
    get: Statement,
    range: Statement,
    last: Statement,
    apply: Statement,
    /// Makes a partition's head row if it is missing.
    made: Statement,
    /// Locks a partition's head row.
    lock: Statement,
    /// Moves a partition's head, if it is where the appender found it.
    advance: Statement,
}

impl Conn {
    fn open(config: &postgres::Config) -> Result<Conn, postgres::Error> {
        let mut client = config.connect(NoTls)?;
        // Applies commit without waiting for the disk; `flush` waits.
        client.batch_execute("SET synchronous_commit = off")?;
        Ok(Conn {
            get: client.prepare("SELECT value FROM strive_kv WHERE key = $1")?,
            range: client.prepare(
                "SELECT key, value FROM strive_kv WHERE key >= $1 AND key < $2 \
                 ORDER BY key LIMIT $3",
            )?,
            last: client.prepare(
                "SELECT key, value FROM strive_kv WHERE key >= $1 AND key < $2 \
                 ORDER BY key DESC LIMIT 1",
            )?,
            // A whole batch is one statement, so one round trip in its own
            // (implicit) transaction: the fence reads the owner epoch under
            // a shared row lock (the writers of one process do not wait for
            // each other; a new owner's epoch update waits for them), and
            // the deletes and puts happen only when it is this process's.
            // The arrays travel as parameters, so a group of any size is
            // one statement. Keys are deduplicated before, so no row is
            // both deleted and inserted.
            apply: client.prepare(
                "WITH fence AS (SELECT epoch FROM strive_owner WHERE id = 1 FOR SHARE), \
                 removed AS (DELETE FROM strive_kv WHERE key = ANY($2::BYTEA[]) \
                   AND (SELECT epoch FROM fence) = $1 RETURNING 1), \
                 written AS (INSERT INTO strive_kv (key, value) \
                   SELECT * FROM unnest($3::BYTEA[], $4::BYTEA[]) \
                   WHERE (SELECT epoch FROM fence) = $1 \
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value RETURNING 1) \
                 SELECT (SELECT epoch FROM fence), \
                   (SELECT count(*) FROM removed), (SELECT count(*) FROM written)",
            )?,
            // A missing row is made with size -1 (not recorded: the log
            // says) by one statement, and locked by the next, which sees
            // it (a statement does not see the rows its own CTEs insert);
            // a row a racing process is making is waited for.
            made: client.prepare(
                "INSERT INTO strive_head (partition, size, stamp) VALUES ($1, -1, 0) \
                 ON CONFLICT (partition) DO NOTHING",
            )?,
            lock: client
                .prepare("SELECT size, stamp FROM strive_head WHERE partition = $1 FOR UPDATE")?,
            advance: client.prepare(
                "UPDATE strive_head SET size = $2, stamp = $3 \
                 WHERE partition = $1 AND size = $4 AND stamp = $5",
            )?,
            client,
        })
    }
}

/// A new, empty database on a server, dropped (with `WITH (FORCE)`) when
/// this is dropped: what temporary stores and the tests' stores live in.
pub struct TemporaryDatabase {
    /// The server's database that this was created from, to drop from.
    admin: postgres::Config,
    name: String,
    /// The database's URL.
    url: String,
}

impl TemporaryDatabase {
    /// Creates a database with a fresh name on the server at `server_url`
    /// (a URL of any of its databases, which is connected to first).
    pub fn create(server_url: &str) -> Result<TemporaryDatabase, OpenError> {
        let admin = parse(server_url)?;
        let shown = redact(server_url);
        let name = temporary_name();
        let mut client = admin
            .connect(NoTls)
            .map_err(|error| server_error(&shown, &error))?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(|error| server_error(&shown, &error))?;
        // The URL of the new database: the server's, with the database
        // (the path after the authority) replaced.
        let base = match server_url.split_once("://") {
            Some((scheme, rest)) => {
                let authority = rest.split(['/', '?']).next().unwrap_or(rest);
                format!("{scheme}://{authority}")
            }
            None => server_url.to_owned(),
        };
        Ok(TemporaryDatabase {
            admin,
            url: format!("{base}/{name}"),
            name,
        })
    }

    /// The new database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TemporaryDatabase {
    fn drop(&mut self) {
        let dropped = self.admin.connect(NoTls).and_then(|mut client| {
            client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
        });
        if let Err(error) = dropped {
            tracing::warn!(
                database = %self.name,
                error = %describe(&error),
                "could not drop a temporary database; drop it by hand"
            );
        }
    }
}

/// The PostgreSQL backend. See the module documentation.
pub struct PostgresBackend {
    config: postgres::Config,
    /// The URL without its password, for messages.
    shown: String,
    idle: Mutex<Vec<Conn>>,
    /// The connection holding the owner lock (see [`PostgresBackend::open`]),
    /// and when it was last seen alive.
    owner: Mutex<(Option<Client>, Instant)>,
    /// The owner epoch this process took; a write finding another is fenced.
    epoch: i64,
    /// Whether other processes may write the store at once (the owner lock
    /// is then taken shared, and groups append under their partition's
    /// head lock: [`SharedLog`]).
    shared: bool,
    /// This process's row of `strive_flush`: the epoch, or when shared (all
    /// sharers hold one epoch) a key of its own, so that two processes'
    /// flushes never wait on one row.
    flush_key: i64,
    /// The connections holding a partition's head lock, by partition.
    locked: Mutex<HashMap<u32, Conn>>,
    /// The groups applied and not yet flushed.
    unflushed: Unflushed,
    /// Dropped after everything else: the database of a temporary store.
    _temporary: Option<TemporaryDatabase>,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

fn parse(url: &str) -> Result<postgres::Config, OpenError> {
    let (url, _) = split_shared(url)?;
    url.parse::<postgres::Config>()
        .map_err(|error| OpenError::Url {
            url: redact(&url),
            message: error.to_string(),
        })
}

/// `url` without strive's [`SHARED_PARAMETER`], and whether it asked for a
/// shared store (`true` or `false`; anything else is refused).
fn split_shared(url: &str) -> Result<(String, bool), OpenError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), false));
    };
    let mut shared = false;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((SHARED_PARAMETER, value)) => {
                shared = match value {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(OpenError::Url {
                            url: redact(url),
                            message: format!(
                                "{SHARED_PARAMETER}={value}: write {SHARED_PARAMETER}=true \
                                 (several processes write the store) or {SHARED_PARAMETER}=false"
                            ),
                        });
                    }
                }
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, shared))
}

/// Whether an error means the connection is gone, so a new one may work.
fn lost(error: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // Class 08 (connection exceptions) and 57P0x (the server shutting
        // down or restarting: admin_shutdown, crash_shutdown,
        // cannot_connect_now).
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
        // No SQL state: the error came from the socket, not the server.
        None => true,
    }
}

fn server_error(shown: &str, error: &postgres::Error) -> OpenError {
    OpenError::Server {
        url: shown.to_owned(),
        message: describe(error),
    }
}

/// A PostgreSQL error in one line, with the server's detail when it sent
/// one.
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            let mut source = std::error::Error::source(error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            text
        }
    }
}

impl PostgresBackend {
    /// Connects to the database at `url` (`postgres://user@host:port/db`),
    /// brings its schema up to date and takes the store for this process.
    ///
    /// One process writes a store at a time (docs/scale.md, "Many
    /// processes"): the backend holds a session advisory lock on the
    /// database for as long as it lives, so a second process is refused
    /// with [`OpenError::Locked`], as a second open of a sled directory
    /// is. The lock alone cannot be trusted across a lost connection (the
    /// server lets go of it, and another process may take it while this one
    /// still writes), so taking the store also raises the epoch in
    /// `strive_owner`, and every `apply` checks, in its own transaction and
    /// under a row lock, that the epoch is still the one it took. A process
    /// that lost the store is fenced: its writes fail and the engine
    /// refuses further ones until reopened. Nothing is forked.
    ///
    /// With `?shared=true` ([`SHARED_PARAMETER`]) the store is opened for
    /// several processes at once instead: the owner lock is taken shared
    /// (a process opening it alone is refused while sharers run, and the
    /// reverse), and every group appends under its partition's head lock
    /// ([`Backend::shared_log`]; docs/storage.md, "Several processes").
    pub fn open(url: &str) -> Result<PostgresBackend, OpenError> {
        let config = parse(url)?;
        let (_, shared) = split_shared(url)?;
        PostgresBackend::connect(config, redact(url), None, shared)
    }

    /// A store in a new, empty database on the server at `server_url`
    /// (any database of it, to connect to first), dropped when the backend
    /// is dropped. For tests and demos, like [`crate::SledBackend::temporary`].
    pub fn temporary(server_url: &str) -> Result<PostgresBackend, OpenError> {
        let database = TemporaryDatabase::create(server_url)?;
        let config = parse(database.url())?;
        let shown = redact(database.url());
        PostgresBackend::connect(config, shown, Some(database), false)
    }

    fn connect(
        config: postgres::Config,
        shown: String,
        temporary: Option<TemporaryDatabase>,
        shared: bool,
    ) -> Result<PostgresBackend, OpenError> {
        let mut client = config
            .connect(NoTls)
            .map_err(|error| server_error(&shown, &error))?;
        migrate(&mut client, &shown)?;
        let epoch = take_store(&mut client, &shown, shared)?;
        let backend = PostgresBackend {
            config,
            shown,
            idle: Mutex::new(Vec::new()),
            owner: Mutex::new((Some(client), Instant::now())),
            unflushed: Unflushed::default(),
            epoch,
            shared,
            flush_key: if shared { -process_key() } else { epoch },
            locked: Mutex::new(HashMap::new()),
            _temporary: temporary,
        };
        let conn =
            Conn::open(&backend.config).map_err(|error| server_error(&backend.shown, &error))?;
        backend.give_back(conn);
        Ok(backend)
    }

    /// The URL, without its password.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// The name of the database this backend is connected to.
    pub fn database(&self) -> Option<&str> {
        self.config.get_dbname()
    }

    fn take(&self) -> Result<Conn, postgres::Error> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        match idle {
            Some(conn) if !conn.client.is_closed() => Ok(conn),
            _ => Conn::open(&self.config),
        }
    }

    fn give_back(&self, conn: Conn) {
        if conn.client.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(conn);
        }
    }

    /// Runs `call` on a pooled connection; when the connection is lost,
    /// again on a new one, until [`RECONNECT_WAIT`] has passed.
    fn with<T>(
        &self,
        what: &str,
        mut call: impl FnMut(&mut Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, StorageError> {
        let (value, conn) = self.holding(what, |conn| call(conn))?;
        self.give_back(conn);
        Ok(value)
    }

    /// [`PostgresBackend::with`], keeping the connection: the caller gives
    /// it back (or drops it, ending what it holds on the server).
    fn holding<T>(
        &self,
        what: &str,
        mut call: impl FnMut(&mut Conn) -> Result<T, postgres::Error>,
    ) -> Result<(T, Conn), StorageError> {
        let deadline = Instant::now() + RECONNECT_WAIT;
        let mut pause = Duration::from_millis(20);
        loop {
            let result = match self.unflushed.settle(|key| self.read_back(key)) {
                Err(Unsettled::Lost(why)) => {
                    return Err(StorageError::Backend {
                        message: format!(
                            "PostgreSQL at {} lost writes that were applied but not yet durable \
                             when the connection was lost ({why}); nothing after them was \
                             acknowledged: reopen the store, which recovers from what the server \
                             kept",
                            self.shown
                        ),
                    });
                }
                Err(Unsettled::Read(error)) => Err(error),
                // A connection that failed a call may be left inside an
                // aborted transaction: it is dropped, not given back.
                Ok(()) => self
                    .take()
                    .and_then(|mut conn| call(&mut conn).map(|value| (value, conn))),
            };
            match result {
                Ok(value) => return Ok(value),
                Err(error) if lost(&error) && Instant::now() < deadline => {
                    self.unflushed.connection_lost();
                    tracing::warn!(
                        url = %self.shown,
                        what,
                        error = %describe(&error),
                        "lost the PostgreSQL connection; reconnecting"
                    );
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(error) => {
                    return Err(StorageError::Backend {
                        message: format!(
                            "PostgreSQL at {} failed to {what}: {}; check that the server runs \
                             and accepts connections",
                            self.shown,
                            describe(&error)
                        ),
                    });
                }
            }
        }
    }

    /// The value at `key`, read on a pooled connection without retrying:
    /// what settling a doubt reads.
    fn read_back(&self, key: &[u8]) -> Result<Option<Vec<u8>>, postgres::Error> {
        let mut conn = self.take()?;
        let row = conn.client.query_opt(&conn.get, &[&key]);
        self.give_back(conn);
        Ok(row?.map(|row| row.get(0)))
    }

    /// Takes the owner lock again when its connection was lost (the server
    /// restarted, say), so that a second process is refused again rather
    /// than taking over. Checked at most once per [`OWNER_CHECK`]; safety
    /// does not depend on it, since the epoch fences every write.
    fn keep_owner_lock(&self) {
        let Ok(mut owner) = self.owner.lock() else {
            return;
        };
        if owner.1.elapsed() < OWNER_CHECK {
            return;
        }
        owner.1 = Instant::now();
        if let Some(client) = &mut owner.0
            && client.is_valid(OWNER_CHECK).is_ok()
        {
            return;
        }
        owner.0 = None;
        let shared = self.shared;
        let taken = self.config.connect(NoTls).and_then(|mut client| {
            let row = client.query_one(lock_query(shared), &[&OWNER_LOCK])?;
            Ok(row.get::<_, bool>(0).then_some(client))
        });
        match taken {
            Ok(Some(client)) => {
                tracing::info!(url = %self.shown, "took the owner lock again after losing its connection");
                owner.0 = Some(client);
            }
            Ok(None) => tracing::warn!(
                url = %self.shown,
                "another process holds the owner lock; this one's writes are fenced if it took over"
            ),
            Err(error) => tracing::warn!(
                url = %self.shown,
                error = %describe(&error),
                "cannot take the owner lock again yet"
            ),
        }
    }

    /// One page of `start <= key < end`.
    fn page(&self, start: &[u8], end: &[u8]) -> Result<Vec<Entry>, StorageError> {
        self.with("read a key range", |conn| {
            let rows = conn
                .client
                .query(&conn.range, &[&start, &end, &PAGE_ROWS])?;
            Ok(rows
                .into_iter()
                .map(|row| (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1)))
                .collect())
        })
    }
}

/// A fresh database name: the process, the time and a counter, so that
/// tests running at once never collide.
fn temporary_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "strive_tmp_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The query that tries the owner lock: exclusive for a process that
/// writes the store alone, shared for one of several.
fn lock_query(shared: bool) -> &'static str {
    if shared {
        "SELECT pg_try_advisory_lock_shared($1)"
    } else {
        "SELECT pg_try_advisory_lock($1)"
    }
}

/// A number for this process's open of a store: the process id and the
/// time, positive.
fn process_key() -> i64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or_default();
    ((i64::from(std::process::id()) << 40) ^ nanos).abs().max(1)
}

/// Takes the owner lock on `client`'s session (shared when `shared`),
/// waiting up to [`LOCK_WAIT`] for a holder that is going away, then takes
/// the owner epoch; returns the epoch this process now holds.
///
/// A process that writes alone raises the epoch, which fences everyone
/// who wrote before. A sharer raises it only when the store was last
/// taken by a process alone (fencing that one), and then forgets the
/// partitions' head rows, which a process alone does not keep; sharers
/// after it take the same epoch.
fn take_store(client: &mut Client, shown: &str, shared: bool) -> Result<i64, OpenError> {
    let failed = |error: postgres::Error| server_error(shown, &error);
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let row = client
            .query_one(lock_query(shared), &[&OWNER_LOCK])
            .map_err(failed)?;
        if row.get::<_, bool>(0) {
            break;
        }
        if Instant::now() >= deadline {
            return Err(OpenError::Locked { path: shown.into() });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !shared {
        let row = client
            .query_one(
                "UPDATE strive_owner SET epoch = epoch + 1, shared = false WHERE id = 1 \
                 RETURNING epoch",
                &[],
            )
            .map_err(failed)?;
        return Ok(row.get(0));
    }
    let mut transaction = client.transaction().map_err(failed)?;
    let row = transaction
        .query_one(
            "SELECT epoch, shared FROM strive_owner WHERE id = 1 FOR UPDATE",
            &[],
        )
        .map_err(failed)?;
    let (mut epoch, was_shared): (i64, bool) = (row.get(0), row.get(1));
    if !was_shared {
        transaction
            .batch_execute(
                "UPDATE strive_owner SET epoch = epoch + 1, shared = true WHERE id = 1; \
                 DELETE FROM strive_head",
            )
            .map_err(failed)?;
        epoch += 1;
    }
    transaction.commit().map_err(failed)?;
    Ok(epoch)
}

/// Applies the migrations the database lacks, in one transaction. Two
/// processes migrating at once: the second's insert of a version collides
/// on `strive_schema`'s key, and it tries again and finds the work done.
fn migrate(client: &mut Client, shown: &str) -> Result<(), OpenError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match migrate_once(client, shown) {
            Err(OpenError::Server { .. }) if attempts < 3 => continue,
            result => return result,
        }
    }
}

fn migrate_once(client: &mut Client, shown: &str) -> Result<(), OpenError> {
    let failed = |error: postgres::Error| server_error(shown, &error);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS strive_schema (\
             version INT PRIMARY KEY, description TEXT NOT NULL, \
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .map_err(failed)?;
    let mut transaction = client.transaction().map_err(failed)?;
    let applied: Vec<i32> = transaction
        .query("SELECT version FROM strive_schema", &[])
        .map_err(failed)?
        .into_iter()
        .map(|row| row.get(0))
        .collect();
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if let Some(&newer) = applied.iter().find(|&&v| v > known) {
        return Err(OpenError::Schema {
            url: shown.to_owned(),
            found: newer,
            supported: known,
        });
    }
    for (version, description, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        transaction.batch_execute(sql).map_err(failed)?;
        transaction
            .execute(
                "INSERT INTO strive_schema (version, description) VALUES ($1, $2)",
                &[version, description],
            )
            .map_err(failed)?;
        tracing::info!(url = %shown, version, description, "migrated the PostgreSQL schema");
    }
    transaction.commit().map_err(failed)
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // Our own connections go before a temporary database is dropped,
        // so that the drop does not have to end them.
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
        if let Ok(mut owner) = self.owner.lock() {
            owner.0.take();
        }
    }
}

/// A range scan read in pages of [`PAGE_ROWS`], each page a query of its
/// own that resumes after the last key of the one before (keyset paging),
/// so no connection or transaction stays open while the caller iterates.
struct Pages<'a> {
    backend: &'a PostgresBackend,
    /// Where the next page starts (inclusive).
    next: Vec<u8>,
    end: Vec<u8>,
    buffer: VecDeque<Entry>,
    done: bool,
}

impl Iterator for Pages<'_> {
    type Item = Result<Entry, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            match self.backend.page(&self.next, &self.end) {
                Ok(page) => {
                    self.done = (page.len() as i64) < PAGE_ROWS;
                    if let Some((last, _)) = page.last() {
                        // The smallest key after `last`.
                        self.next = last.clone();
                        self.next.push(0);
                    }
                    self.buffer = page.into();
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}

impl Backend for PostgresBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.with("read a key", |conn| {
            let row = conn.client.query_opt(&conn.get, &[&key])?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn range<'a>(
        &'a self,
        start: &[u8],
        end: &[u8],
    ) -> Box<dyn Iterator<Item = Result<Entry, StorageError>> + 'a> {
        Box::new(Pages {
            backend: self,
            next: start.to_vec(),
            end: end.to_vec(),
            buffer: VecDeque::new(),
            done: start >= end,
        })
    }

    fn last_in(&self, start: &[u8], end: &[u8]) -> Result<Option<Entry>, StorageError> {
        self.with("read the last key of a range", |conn| {
            let row = conn.client.query_opt(&conn.last, &[&start, &end])?;
            Ok(row.map(|row| (row.get(0), row.get(1))))
        })
    }

    fn apply(&self, writes: Vec<Write>) -> Result<(), StorageError> {
        let Some(batch) = Rows::of(writes) else {
            return Ok(());
        };
        self.keep_owner_lock();
        let fenced = self.with("apply a batch", |conn| batch.apply(conn, self.epoch))?;
        match fenced {
            None => {
                self.unflushed.applied(batch.sample.0, batch.sample.1);
                Ok(())
            }
            Some(epoch) => Err(self.fenced(epoch)),
        }
    }

    /// Commits a transaction with `synchronous_commit = on` that writes
    /// this process's row of `strive_flush` (a transaction that wrote no
    /// WAL does not wait for the disk, even with a transaction id): the
    /// WAL is then on disk up to its commit record, and every group applied
    /// before it is durable.
    fn flush(&self) -> Result<(), StorageError> {
        let covered = self.unflushed.generation();
        // A sharer flushes even with nothing of its own pending: its
        // writers decide against what other processes applied, which must
        // be durable before an answer decided against it is given.
        if !self.unflushed.pending() && !self.shared {
            return Ok(());
        }
        // One round trip: the statements travel as one simple query. The
        // epoch is this process's own integer, so it is written inline.
        let flush = format!(
            "BEGIN; SET LOCAL synchronous_commit = on; \
             INSERT INTO strive_flush (epoch, flushes) VALUES ({}, 1) \
             ON CONFLICT (epoch) DO UPDATE SET flushes = strive_flush.flushes + 1; COMMIT",
            self.flush_key
        );
        self.with("flush (wait for the WAL to reach the disk)", |conn| {
            conn.client.batch_execute(&flush)
        })?;
        self.unflushed.flushed(covered);
        Ok(())
    }

    fn shared_log(&self) -> Option<&dyn SharedLog> {
        self.shared.then_some(self as &dyn SharedLog)
    }

    fn size_on_disk(&self) -> Option<u64> {
        self.with("measure the table", |conn| {
            let row = conn
                .client
                .query_one("SELECT pg_total_relation_size('strive_kv')", &[])?;
            Ok(row.get::<_, i64>(0))
        })
        .ok()
        .and_then(|bytes| u64::try_from(bytes).ok())
    }
}

/// A batch as the apply statement takes it: the writes deduplicated (as
/// in sled's batch the last write of a key wins, and one INSERT may not
/// touch a row twice), split into deletes and puts, and its sample for
/// `unflushed` (its last write).
struct Rows {
    deletes: Vec<Vec<u8>>,
    put_keys: Vec<Vec<u8>>,
    put_values: Vec<Vec<u8>>,
    sample: (Vec<u8>, Option<Vec<u8>>),
}

impl Rows {
    /// The rows of `writes`; `None` when there are none.
    fn of(writes: Vec<Write>) -> Option<Rows> {
        let last: BTreeMap<Vec<u8>, Option<Vec<u8>>> = writes.into_iter().collect();
        let sample = last
            .iter()
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone()))?;
        let mut rows = Rows {
            deletes: Vec::new(),
            put_keys: Vec::new(),
            put_values: Vec::new(),
            sample,
        };
        for (key, value) in last {
            match value {
                Some(value) => {
                    rows.put_keys.push(key);
                    rows.put_values.push(value);
                }
                None => rows.deletes.push(key),
            }
        }
        Some(rows)
    }

    /// Runs the apply statement on `conn` for the owner `epoch`; returns
    /// the epoch found when it is another (the statement then wrote
    /// nothing: its DELETE and INSERT found the epoch not this process's).
    fn apply(&self, conn: &mut Conn, epoch: i64) -> Result<Option<i64>, postgres::Error> {
        let row = conn.client.query_one(
            &conn.apply,
            &[&epoch, &self.deletes, &self.put_keys, &self.put_values],
        )?;
        let found: i64 = row.get(0);
        Ok((found != epoch).then_some(found))
    }
}

impl PostgresBackend {
    /// The error of a write fenced by the owner epoch `epoch`.
    fn fenced(&self, epoch: i64) -> StorageError {
        StorageError::Backend {
            message: format!(
                "another strive process took over the store {} (owner epoch {epoch}; this \
                 process held {}), so this one may no longer write it; nothing of this batch \
                 was written: stop one of the processes, or send commands to the one that \
                 runs with --server",
                self.shown, self.epoch
            ),
        }
    }

    /// The connection holding `partition`'s head lock, taken out.
    fn locked_conn(&self, partition: u32) -> Option<Conn> {
        self.locked.lock().ok()?.remove(&partition)
    }
}

/// A partition or a head's number as PostgreSQL stores it.
fn column(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A group of a shared store: the head row of its partition is locked
/// with `SELECT … FOR UPDATE` in a transaction on a connection of its own,
/// which the append then commits after moving the head with an `UPDATE …
/// WHERE size = $from AND stamp = $from`, under the owner epoch's fence.
impl SharedLog for PostgresBackend {
    fn lock(&self, partition: u32) -> Result<Option<SharedHead>, StorageError> {
        self.keep_owner_lock();
        let key = i32::try_from(partition).unwrap_or(i32::MAX);
        let (head, conn) = self.holding("lock a partition's head", |conn| {
            conn.client.batch_execute("BEGIN")?;
            conn.client.execute(&conn.made, &[&key])?;
            let row = conn.client.query_one(&conn.lock, &[&key])?;
            Ok((row.get::<_, i64>(0), row.get::<_, i64>(1)))
        })?;
        if let Some(stale) = self
            .locked
            .lock()
            .ok()
            .and_then(|mut locked| locked.insert(partition, conn))
        {
            // The writer locks once per group; a lock left over from a
            // group that did not finish ends with its connection.
            drop(stale);
        }
        let (size, stamp) = head;
        Ok(u64::try_from(size).ok().map(|size| SharedHead {
            size,
            stamp: u64::try_from(stamp).unwrap_or_default(),
        }))
    }

    fn append(
        &self,
        partition: u32,
        writes: Vec<Write>,
        from: Option<SharedHead>,
        to: SharedHead,
    ) -> Result<(), StorageError> {
        let Some(mut conn) = self.locked_conn(partition) else {
            return Err(StorageError::Backend {
                message: format!(
                    "internal error: partition {partition}'s head of {} is appended to without \
                     its lock; reopen the store",
                    self.shown
                ),
            });
        };
        let batch = Rows::of(writes);
        let key = i32::try_from(partition).unwrap_or(i32::MAX);
        let (from_size, from_stamp) = from.map_or((-1, 0), |h| (column(h.size), column(h.stamp)));
        // No retry on another connection: the lock and the transaction
        // are this connection's, and a lost one took them with it.
        let appended = (|| -> Result<Result<(), StorageError>, postgres::Error> {
            if let Some(batch) = &batch
                && let Some(epoch) = batch.apply(&mut conn, self.epoch)?
            {
                return Ok(Err(self.fenced(epoch)));
            }
            let moved = conn.client.execute(
                &conn.advance,
                &[
                    &key,
                    &column(to.size),
                    &column(to.stamp),
                    &from_size,
                    &from_stamp,
                ],
            )?;
            if moved != 1 {
                return Ok(Err(StorageError::Backend {
                    message: format!(
                        "partition {partition}'s head of {} is not where this process locked it \
                         ({from:?}); nothing of this batch was written: reopen the store",
                        self.shown
                    ),
                }));
            }
            conn.client.batch_execute("COMMIT")?;
            Ok(Ok(()))
        })();
        match appended {
            Ok(Ok(())) => {
                if let Some(batch) = batch {
                    self.unflushed.applied(batch.sample.0, batch.sample.1);
                }
                self.give_back(conn);
                Ok(())
            }
            // The connection is dropped: the server rolls the transaction
            // back and lets go of the lock.
            Ok(Err(error)) => Err(error),
            Err(error) => Err(StorageError::Backend {
                message: format!(
                    "PostgreSQL at {} failed to append to partition {partition}: {}; the \
                     batch may or may not have been written, and nothing of it was \
                     acknowledged: reopen the store",
                    self.shown,
                    describe(&error)
                ),
            }),
        }
    }

    fn unlock(&self, partition: u32) {
        if let Some(mut conn) = self.locked_conn(partition)
            && conn.client.batch_execute("ROLLBACK").is_ok()
        {
            self.give_back(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_from_one() {
        for (index, (version, _, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version as usize, index + 1);
        }
    }
}
