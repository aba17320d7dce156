//! Telling a strive store from anything else on disk (issue #17), so that
//! reading commands never create a store, writing commands create one only
//! where nothing else is, and no file is written inside a store.
//!
//! A store is a directory holding the backend's files; sled's are `conf`
//! and `db`. [`is_store`] is the one place that knows this, so storage
//! format 2 changes only it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::backend::Backend;
use crate::error::OpenError;

/// What is at a path given as a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// Nothing: a store may be created here.
    Missing,
    /// An empty directory: a store may be created here.
    Empty,
    /// A strive store.
    Store,
    /// A file, or something else that is not a directory.
    NotADirectory,
    /// A directory that holds files but is not a strive store.
    OtherDirectory,
}

/// The files every strive store holds.
const MARKERS: [&str; 2] = ["conf", "db"];

/// Whether `dir` is a strive store.
pub fn is_store(dir: &Path) -> bool {
    MARKERS.iter().all(|name| dir.join(name).is_file())
}

/// What is at `path`.
pub fn probe(path: &Path) -> Result<Place, OpenError> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Place::Missing),
        Err(error) => return Err(io_error(path, &error)),
    };
    if !metadata.is_dir() {
        return Ok(Place::NotADirectory);
    }
    if is_store(path) {
        return Ok(Place::Store);
    }
    let mut entries = fs::read_dir(path).map_err(|e| io_error(path, &e))?;
    Ok(if entries.next().is_none() {
        Place::Empty
    } else {
        Place::OtherDirectory
    })
}

/// Refuses `path` unless it is a strive store: what reading commands open.
pub fn require_store(path: &Path) -> Result<(), OpenError> {
    match probe(path)? {
        Place::Store => Ok(()),
        place => Err(not_a_store(path, place)),
    }
}

/// Refuses a store that holds nothing at all, not even the format record
/// every store gets when it is first opened: its files were overwritten or
/// truncated, and the backend reads them as empty (issue #17). A reading
/// command would otherwise verify it as an empty log that "holds".
/// [`Engine::open_existing`](crate::Engine::open_existing) checks it on the
/// backend it then runs on.
pub(crate) fn require_records(backend: &dyn Backend, path: &Path) -> Result<(), OpenError> {
    if backend.range(&[], &[0xFF]).next().is_none() {
        return Err(OpenError::NotAStore {
            path: path.to_owned(),
            found: "its files hold no records, not even the format record every strive \
                    store has: they were overwritten or truncated; restore the store from a \
                    backup, or verify an exported bundle with `strive verify-bundle`",
        });
    }
    Ok(())
}

/// Refuses `path` unless it is a store or a store may be created there (it
/// is missing or an empty directory): what writing commands open.
pub fn require_store_or_room(path: &Path) -> Result<Place, OpenError> {
    match probe(path)? {
        place @ (Place::Store | Place::Missing | Place::Empty) => Ok(place),
        place => Err(not_a_store(path, place)),
    }
}

fn not_a_store(path: &Path, place: Place) -> OpenError {
    let found = match place {
        Place::Missing => "nothing is there",
        Place::Empty => "it is an empty directory",
        Place::NotADirectory => "it is a file, not a directory",
        _ => "it is a directory that holds other files",
    };
    OpenError::NotAStore {
        path: path.to_owned(),
        found,
    }
}

/// The store that `path` (a file to be written, which need not exist yet)
/// would be inside, if any: its nearest ancestor that is a store.
pub fn store_containing(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    // Resolve symbolic links in the part that exists, so a link into a
    // store is caught too.
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?;
    }
    let mut resolved = existing.canonicalize().ok()?;
    for part in rest.into_iter().rev() {
        resolved.push(part);
    }
    resolved
        .ancestors()
        .skip(1)
        .find(|dir| is_store(dir))
        .map(Path::to_owned)
}

/// Whether files can be created in the directory `dir` (not so on a
/// read-only mount, in an immutable directory or without permission).
pub fn writable(dir: &Path) -> bool {
    let probe = dir.join(format!(".strive-probe-{}", std::process::id()));
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => fs::remove_file(&probe).is_ok(),
        Err(_) => false,
    }
}

/// Copies the store at `from` into the directory `to` (which must exist),
/// file by file: how reading commands open a store they cannot write to.
pub fn copy_store(from: &Path, to: &Path) -> Result<(), OpenError> {
    let entries = fs::read_dir(from).map_err(|e| io_error(from, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(from, &e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| io_error(&source, &e))?;
        if kind.is_dir() {
            fs::create_dir(&target).map_err(|e| io_error(&target, &e))?;
            copy_store(&source, &target)?;
        } else if kind.is_file() {
            fs::copy(&source, &target).map_err(|e| io_error(&source, &e))?;
        }
    }
    Ok(())
}

fn io_error(path: &Path, error: &io::Error) -> OpenError {
    OpenError::Io {
        path: path.to_owned(),
        message: crate::error::describe_io(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) {
        for name in MARKERS {
            fs::write(dir.join(name), b"").expect("write");
        }
    }

    #[test]
    fn places_are_told_apart() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        assert_eq!(probe(&root.join("none")), Ok(Place::Missing));
        assert_eq!(probe(root), Ok(Place::Empty));
        fs::write(root.join("notes.txt"), "x").expect("write");
        assert_eq!(probe(root), Ok(Place::OtherDirectory));
        assert_eq!(probe(&root.join("notes.txt")), Ok(Place::NotADirectory));
        let db = root.join("db");
        fs::create_dir(&db).expect("mkdir");
        store(&db);
        assert_eq!(probe(&db), Ok(Place::Store));
        assert!(require_store(root).is_err());
        assert!(require_store_or_room(&root.join("notes.txt")).is_err());
        assert_eq!(require_store_or_room(&root.join("new")), Ok(Place::Missing));
    }

    #[test]
    fn a_path_inside_a_store_is_found_through_missing_parts_and_links() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let db = tmp.path().join("db");
        fs::create_dir_all(db.join("blobs")).expect("mkdir");
        store(&db);
        let canonical = db.canonicalize().expect("canonical");
        assert_eq!(store_containing(&db.join("conf")), Some(canonical.clone()));
        assert_eq!(
            store_containing(&db.join("blobs/new/deeper.txt")),
            Some(canonical.clone())
        );
        assert_eq!(store_containing(&tmp.path().join("report.html")), None);
        #[cfg(unix)]
        {
            let link = tmp.path().join("link");
            std::os::unix::fs::symlink(&db, &link).expect("symlink");
            assert_eq!(store_containing(&link.join("x")), Some(canonical));
        }
    }

    #[test]
    fn a_store_is_copied_file_by_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (from, to) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir_all(from.join("blobs")).expect("mkdir");
        fs::create_dir(&to).expect("mkdir");
        store(&from);
        fs::write(from.join("blobs/1"), "blob").expect("write");
        copy_store(&from, &to).expect("copies");
        assert!(is_store(&to));
        assert_eq!(
            fs::read_to_string(to.join("blobs/1")).ok().as_deref(),
            Some("blob")
        );
        assert!(writable(&to));
    }
}
