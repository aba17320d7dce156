//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with PM4Py that `.ci/setup-pm4py.sh` makes
/// (`STRIVE_PM4PY_PYTHON`), or `None` after a note that `check` did not
/// run; under CI it must be there, so a missing one fails the test.
pub fn pm4py_python(check: &str) -> Option<std::ffi::OsString> {
    let python = std::env::var_os("STRIVE_PM4PY_PYTHON");
    if python.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the PM4Py check: .ci/setup-pm4py.sh exports STRIVE_PM4PY_PYTHON"
        );
        eprintln!(
            "note: the {check} did not run; `source .ci/setup-pm4py.sh` installs PM4Py and sets STRIVE_PM4PY_PYTHON"
        );
    }
    python
}

/// Runs the PM4Py check `script` (under `tests/data/audit`) with `args`
/// and returns the JSON figures it prints last; a failing check fails the
/// test with its output.
pub fn pm4py_figures(
    python: &std::ffi::OsStr,
    script: &str,
    args: &[&std::ffi::OsStr],
) -> serde_json::Value {
    let output = Command::new(python)
        .arg(root().join("tests/data/audit").join(script))
        .args(args)
        .output()
        .expect("the PM4Py python runs");
    assert!(output.status.success(), "{}", text(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .expect("the check prints its figures")
}

/// Runs the `strive` binary built for these tests on the store `db`.
pub fn strive(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strive"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("STRIVE_DB")
        .output()
        .expect("the strive binary runs")
}

/// `strive verify --format json EXTRA` on `db`: the exit code and the
/// report.
pub fn verify_report(db: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["verify", "--format", "json"];
    args.extend_from_slice(extra);
    let output = strive(db, &args);
    let report =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)));
    (output.status.code(), report)
}

/// Rewrites event `gseq` of `instance`'s partition with `alter`, fixing up
/// what hashes show (the stored digest and the instance's head), as a
/// forger holding the store would.
pub fn forge_event(
    db: &Path,
    instance: &str,
    gseq: u64,
    alter: impl FnOnce(&mut strive_core::Event),
) {
    use strive_store::Backend;
    let backend = strive_store::SledBackend::open(db).expect("raw open");
    let partition = strive_store::raw::partition_of(&backend, instance)
        .expect("read")
        .expect("a record");
    let value = strive_store::raw::event_in(&backend, partition, gseq)
        .expect("read")
        .expect("exists");
    let mut event = strive_core::Event::decode(&value[32..]).expect("decodes");
    alter(&mut event);
    let bytes = event.encode();
    let mut forged = strive_core::event_digest(&bytes).to_vec();
    forged.extend_from_slice(&bytes);
    strive_store::raw::put_event_in(&backend, partition, gseq, Some(forged)).expect("rewrite");
    let key = format!("i{instance}\0").into_bytes();
    let stored = backend.get(&key).expect("read").expect("a snapshot");
    let mut record: serde_json::Value = serde_json::from_slice(&stored).expect("json");
    record["instance"]["head"] = serde_json::json!(strive_core::event_hash(&bytes));
    let record = serde_json::to_vec(&record).expect("json");
    backend.apply(vec![(key, Some(record))]).expect("write");
    backend.flush().expect("flush");
}

/// A command's stdout and stderr, for messages and `contains` checks.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Deletes every state record of the closed store `db`, keeping only the
/// log (blocks `b`, tiles `r`), the format record and the partition count,
/// so that its next open rebuilds the state by deciding every logged
/// command again. Returns how many records went.
pub fn keep_only_the_log(db: &Path) -> usize {
    use strive_store::{Backend, SledBackend, Write};
    let backend = SledBackend::open(db).expect("raw open");
    let state: Vec<Write> = backend
        .range(&[], &[0xFF])
        .map(|entry| entry.expect("read").0)
        .filter(|key| {
            !matches!(key[0], b'b' | b'r')
                && key.as_slice() != b"mformat"
                && key.as_slice() != b"mpartitions"
        })
        .map(|key| (key, None))
        .collect();
    assert!(!state.is_empty(), "a store has state records");
    let removed = state.len();
    backend.apply(state).expect("write");
    backend.flush().expect("flush");
    removed
}

/// Copies a directory tree (a closed store, say).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Every durable event of every partition, partition by partition, each
/// partition's in log order: what a test that once read "the global log"
/// reads in a store of any number of partitions.
pub fn every_event(engine: &strive_store::Engine) -> Vec<strive_store::StoredEvent> {
    (0..engine.partitions())
        .flat_map(|p| engine.events_in(p, 1))
        .collect::<Result<_, _>>()
        .expect("every event reads")
}

/// Each partition's durable size, by partition.
pub fn sizes(engine: &strive_store::Engine) -> Vec<u64> {
    (0..engine.partitions())
        .map(|p| engine.last_gseq_in(p))
        .collect()
}

/// The PostgreSQL server the PostgreSQL tests use (issue #15):
/// `STRIVE_POSTGRES_URL`, else the local server's `postgres` database.
pub fn postgres_server() -> String {
    std::env::var("STRIVE_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/postgres".to_owned())
}

/// Where a test keeps its store: a temporary directory, or a fresh
/// PostgreSQL database dropped when this is dropped.
pub struct TestStore {
    /// `--db` for the CLI: a path, or a database URL.
    pub location: PathBuf,
    _dir: Option<tempfile::TempDir>,
    _database: Option<strive_store::TemporaryDatabase>,
}

impl TestStore {
    /// A store in the backend the suite runs on: a database on the server
    /// in `STRIVE_TEMPORARY_URL` when it is set (the PostgreSQL matrix,
    /// `.ci/check-postgres.sh`), else a directory.
    pub fn new() -> TestStore {
        match std::env::var(strive_store::TEMPORARY_URL_VAR) {
            Ok(server) => TestStore::database_on(&server).expect("the matrix's server is up"),
            Err(_) => TestStore::directory(),
        }
    }

    /// A store in a new temporary directory.
    pub fn directory() -> TestStore {
        let dir = tempfile::tempdir().expect("tempdir");
        TestStore {
            location: dir.path().join("db"),
            _dir: Some(dir),
            _database: None,
        }
    }

    /// A fresh database on [`postgres_server`], or `None` after a note
    /// that `test` did not run because no server answers; under CI the
    /// server must answer, so a missing one fails the test.
    pub fn postgres(test: &str) -> Option<TestStore> {
        let server = postgres_server();
        match TestStore::database_on(&server) {
            Ok(store) => Some(store),
            Err(error) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must run the PostgreSQL tests ({test}): {error}"
                );
                eprintln!("note: {test} skipped: no PostgreSQL server answers: {error}");
                None
            }
        }
    }

    fn database_on(server: &str) -> Result<TestStore, strive_store::OpenError> {
        let database = strive_store::TemporaryDatabase::create(server)?;
        Ok(TestStore {
            location: PathBuf::from(database.url()),
            _dir: None,
            _database: Some(database),
        })
    }

    /// The location as text (for `Engine::open_url`).
    pub fn url(&self) -> &str {
        self.location.to_str().expect("a UTF-8 location")
    }

    /// Opens the store (creating it) with `options`.
    pub fn open(&self, options: strive_store::Options) -> strive_store::Engine {
        self.open_with(options).expect("the store opens")
    }

    /// Opens the store (creating it) with `options`, or says why not.
    pub fn open_with(
        &self,
        options: strive_store::Options,
    ) -> Result<strive_store::Engine, strive_store::OpenError> {
        strive_store::Engine::open_url(self.url(), options)
    }
}

/// A small deterministic generator, so a failing run can be repeated.
pub struct Lcg(pub u64);

impl Lcg {
    /// A number below `bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound.max(1)
    }
}

/// A bearer token for `actor` in `roles`, never expiring, issued into `file`.
pub fn issue_token(file: &strive_server::TokenFile, actor: &str, roles: &[&str]) -> String {
    let request = strive_server::TokenRequest {
        actor: actor.to_owned(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        expires_at: None,
    };
    file.issue(&request, jiff::Timestamp::now())
        .expect("a token")
        .token
}

/// A store at `db` holding a whole demo campaign of `options`, run on the
/// demo's simulated calendar (the engine keeps that clock).
pub fn demo_store(db: &Path, options: &strive_campaign::DemoOptions) -> strive_store::Engine {
    let clock = std::sync::Arc::new(strive_store::ManualClock::new(strive_campaign::demo_start()));
    let engine = strive_store::Engine::open(
        db,
        strive_store::Options {
            clock: clock.clone(),
            ..strive_store::Options::default()
        },
    )
    .expect("the store opens");
    strive_campaign::run_demo(&engine, &clock, options, |_| {}).expect("the campaign runs");
    engine
}

/// A `strive` process that serves: it printed `listening on URL` first.
/// Killed on drop. Its stdout stays open: a strive whose stdout is closed
/// stops quietly at its next line.
pub struct Serving {
    child: std::process::Child,
    /// Where it listens (`http://host:port`).
    pub url: String,
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `strive --db DB ARGS` and waits for its `listening on` line.
pub fn serving(db: &Path, args: &[&str]) -> Serving {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_strive"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("STRIVE_SERVER")
        .env_remove("STRIVE_DB")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("strive starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the address");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("expected `listening on`, got {line:?}"))
        .to_owned();
    Serving {
        child,
        url,
        _stdout: stdout,
    }
}
