//! Files the commands read and write, and the stores they open (issue #17).
//! One rule each, used by every command:
//!
//! - a file strive writes (`--out`, keys) is never inside a store, and is
//!   written to a temporary file in the same directory and renamed over the
//!   target, so a crash leaves the old file or the new one, never half;
//! - a file strive reads is a regular file, read with its size limit
//!   applied while reading, so a FIFO or `/dev/zero` is refused at once;
//! - reading commands open only an existing store, through a temporary copy
//!   when the store is on read-only media; writing commands create a store
//!   only where nothing else is;
//! - a `--db` that is a database URL (`postgres://…`, issue #15) opens
//!   that database: the rules about files and directories do not apply.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use strive_store::{Engine, OpenError, Options, probe};

use crate::failure::Failure;
use crate::output;

/// The largest checkpoint, key or other small text file read.
pub const MAX_SMALL_FILE: u64 = 64 * 1024;

/// Reads the regular file `path` as UTF-8, refusing it past `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<String, Failure> {
    let failure =
        |message: String| Failure::new("io", format!("cannot read {}: {message}", path.display()));
    // Checked before opening, since opening a FIFO waits for a writer.
    let metadata = std::fs::metadata(path).map_err(|e| failure(strive_store::describe_io(&e)))?;
    if !metadata.is_file() {
        return Err(failure(
            "it is not a regular file (a directory, FIFO or device); give a file".to_owned(),
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| failure(strive_store::describe_io(&e)))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failure(strive_store::describe_io(&e)))?;
    if bytes.len() as u64 > limit {
        return Err(Failure {
            kind: "too_large",
            ..failure(format!("it is larger than the limit of {limit} bytes"))
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        failure(format!(
            "it is not UTF-8 (byte {}); save it as UTF-8",
            e.utf8_error().valid_up_to()
        ))
    })
}

/// A file being written: a temporary file beside the target, renamed over
/// it by [`OutFile::commit`]; dropped without committing, it disappears.
pub struct OutFile {
    writer: std::io::BufWriter<tempfile::NamedTempFile>,
    target: PathBuf,
}

impl Write for OutFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.writer.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

impl OutFile {
    /// Starts writing `target`, unless it is inside a store or a directory.
    pub fn create(target: &Path) -> Result<OutFile, Failure> {
        check_target(target)?;
        let directory = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let temporary = tempfile::Builder::new()
            .prefix(".strive-")
            .suffix(".tmp")
            .tempfile_in(directory)
            .map_err(|e| write_error(target, &e))?;
        Ok(OutFile {
            writer: std::io::BufWriter::with_capacity(1 << 16, temporary),
            target: target.to_owned(),
        })
    }

    /// Flushes the file to disk and renames it over the target; with
    /// `overwrite` false, refuses a target that exists.
    pub fn commit(self, overwrite: bool, mode: u32) -> Result<(), Failure> {
        let target = self.target;
        let temporary = self
            .writer
            .into_inner()
            .map_err(|e| write_error(&target, e.error()))?;
        let file = temporary.as_file();
        set_mode(file, mode).map_err(|e| write_error(&target, &e))?;
        file.sync_all().map_err(|e| write_error(&target, &e))?;
        let persisted = if overwrite {
            temporary.persist(&target)
        } else {
            temporary.persist_noclobber(&target)
        };
        persisted.map_err(|e| write_error(&target, &e.error))?;
        Ok(())
    }
}

#[cfg(unix)]
fn set_mode(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_: &std::fs::File, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// Writes `text` to `target` in one piece (see [`OutFile`]).
pub fn write_whole(target: &Path, text: &[u8], overwrite: bool, mode: u32) -> Result<(), Failure> {
    let mut out = OutFile::create(target)?;
    out.write_all(text).map_err(|e| write_error(target, &e))?;
    out.commit(overwrite, mode)
}

/// Refuses a target inside a store (writing there would damage it) and a
/// target that is a directory.
fn check_target(target: &Path) -> Result<(), Failure> {
    if let Some(store) = probe::store_containing(target) {
        // A usage error, as keygen's refusal was before issue #17: the
        // path given is wrong.
        return Err(Failure {
            kind: "inside_store",
            ..Failure::usage(format!(
                "{} is inside the strive store {}; writing there would damage it. Write outside the store",
                target.display(),
                store.display()
            ))
        });
    }
    if target.is_dir() {
        return Err(Failure::new(
            "io",
            format!("{} is a directory; name a file", target.display()),
        ));
    }
    Ok(())
}

fn write_error(target: &Path, error: &std::io::Error) -> Failure {
    Failure::new(
        "io",
        format!(
            "cannot write {}: {}",
            target.display(),
            strive_store::describe_io(error)
        ),
    )
}

/// An engine over a store, and the temporary copy it reads when the store
/// itself is on read-only media. The engine is dropped before the copy.
pub struct Opened {
    engine: Engine,
    _copy: Option<tempfile::TempDir>,
}

impl From<Engine> for Opened {
    /// A store opened in place (for writing).
    fn from(engine: Engine) -> Opened {
        Opened {
            engine,
            _copy: None,
        }
    }
}

impl std::ops::Deref for Opened {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

/// Opens the existing store at `db` for a reading command. When files
/// cannot be created there (a read-only mount, an immutable directory, no
/// permission), it opens a temporary copy instead and says so on stderr.
pub fn open_existing(db: &Path) -> Result<Opened, Failure> {
    if let Some(url) = strive_store::location_text(db) {
        let engine = Engine::open_existing_url(url, Options::default())?;
        return Ok(engine.into());
    }
    probe::require_store(db).map_err(|e| open_failure(db, e))?;
    if probe::writable(db) {
        let engine =
            Engine::open_existing(db, Options::default()).map_err(|e| open_failure(db, e))?;
        return Ok(Opened {
            engine,
            _copy: None,
        });
    }
    let copy = tempfile::Builder::new()
        .prefix("strive-readonly-")
        .tempdir()
        .map_err(|e| {
            Failure::new(
                "read_only",
                format!(
                    "{} is read-only and no temporary copy can be made ({}); verify a writable copy \
                     of it, or an exported bundle with `strive verify-bundle`",
                    db.display(),
                    strive_store::describe_io(&e)
                ),
            )
        })?;
    probe::copy_store(db, copy.path()).map_err(|e| open_failure(db, e))?;
    output::note(format!(
        "{} is read-only; reading a temporary copy of it in {}",
        db.display(),
        copy.path().display()
    ));
    let engine =
        Engine::open_existing(copy.path(), Options::default()).map_err(|e| open_failure(db, e))?;
    Ok(Opened {
        engine,
        _copy: Some(copy),
    })
}

/// Opens the store at `db` for a writing command, creating it when `db` is
/// missing or an empty directory, never where other files are.
pub fn open_or_create(db: &Path, options: Options) -> Result<Engine, Failure> {
    if let Some(url) = strive_store::location_text(db) {
        return Ok(Engine::open_url(url, options)?);
    }
    probe::require_store_or_room(db).map_err(|e| open_failure(db, e))?;
    open_with(db, options)
}

fn open_with(db: &Path, options: Options) -> Result<Engine, Failure> {
    Engine::open(db, options).map_err(|e| open_failure(db, e))
}

/// An open failure that names the store's path.
fn open_failure(db: &Path, error: OpenError) -> Failure {
    match &error {
        OpenError::Storage(_) => Failure {
            message: format!(
                "cannot open the store {}: {error}; check that it is a strive store, that you \
                 may write to it and that the disk has room",
                db.display()
            ),
            ..Failure::from(error)
        },
        // The other errors name the store already, and some carry advice
        // (a locked store: `--server`).
        _ => Failure::from(error),
    }
}
