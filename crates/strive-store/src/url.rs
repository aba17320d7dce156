//! Opening a store named by a location that is a directory or a database
//! URL (issue #15): `postgres://…` (or `postgresql://…`) opens the
//! PostgreSQL backend, anything else is a sled directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::backend::Backend;
use crate::engine::Engine;
use crate::error::OpenError;
use crate::records::Options;

/// The environment variable that makes [`Engine::temporary`] create its
/// store as a fresh database on this PostgreSQL server (a URL of any of
/// its databases) instead of a temporary sled directory. It is how the
/// engine suites run against PostgreSQL (`.ci/check-postgres.sh`), as
/// `STRIVE_PARTITIONS` runs them on four partitions.
pub const TEMPORARY_URL_VAR: &str = "STRIVE_TEMPORARY_URL";

/// The cargo feature that adds the PostgreSQL backend.
#[cfg(not(feature = "postgres"))]
const FEATURE: &str = "postgres";

/// Whether `location` is a database URL rather than a path.
pub fn is_database_url(location: &str) -> bool {
    ["postgres://", "postgresql://"]
        .iter()
        .any(|scheme| location.starts_with(scheme))
}

impl Engine {
    /// Opens the store at `location`: a database URL
    /// (`postgres://USER@HOST:PORT/DATABASE`, with the `postgres` feature),
    /// or else a directory, as [`Engine::open`]. A database without a
    /// store gets one, as an empty directory does.
    pub fn open_url(location: &str, options: Options) -> Result<Engine, OpenError> {
        if !is_database_url(location) {
            return Engine::open(location, options);
        }
        open_database(location, options, false)
    }

    /// Opens the existing store at `location` for a command that reads
    /// it, as [`Engine::open_existing`]: a database that holds no store is
    /// refused, not given one.
    pub fn open_existing_url(location: &str, options: Options) -> Result<Engine, OpenError> {
        if !is_database_url(location) {
            return Engine::open_existing(location, options);
        }
        open_database(location, options, true)
    }
}

fn open_database(location: &str, options: Options, existing: bool) -> Result<Engine, OpenError> {
    let (backend, shown) = database_backend(location)?;
    if existing {
        crate::probe::require_records(&*backend, &shown)?;
    }
    Engine::with_backend(backend, Some(shown), options)
}

/// The backend of the database at `url`, and how to show it (without its
/// password).
#[cfg(feature = "postgres")]
pub(crate) fn database_backend(url: &str) -> Result<(Arc<dyn Backend>, PathBuf), OpenError> {
    let backend = crate::backend::postgres::PostgresBackend::open(url)?;
    let shown = PathBuf::from(backend.url());
    Ok((Arc::new(backend), shown))
}

#[cfg(not(feature = "postgres"))]
pub(crate) fn database_backend(url: &str) -> Result<(Arc<dyn Backend>, PathBuf), OpenError> {
    Err(OpenError::NoBackend {
        url: redact(url),
        feature: FEATURE,
    })
}

/// The temporary engine [`Engine::temporary_with`] makes when
/// [`TEMPORARY_URL_VAR`] is set: a fresh database on that server, dropped
/// with the engine. `None` when the variable is not set.
pub(crate) fn temporary_database(options: &Options) -> Option<Result<Engine, OpenError>> {
    let server = std::env::var(TEMPORARY_URL_VAR).ok()?;
    Some(temporary_on(&server, options.clone()))
}

#[cfg(feature = "postgres")]
fn temporary_on(server: &str, options: Options) -> Result<Engine, OpenError> {
    let backend = crate::backend::postgres::PostgresBackend::temporary(server)?;
    // Temporary stores keep `path()` empty, as sled's do; the database is
    // named in the backend's messages.
    Engine::with_backend(Arc::new(backend), None, options)
}

#[cfg(not(feature = "postgres"))]
fn temporary_on(server: &str, _options: Options) -> Result<Engine, OpenError> {
    Err(OpenError::NoBackend {
        url: redact(server),
        feature: FEATURE,
    })
}

/// `url` without the password, if it has one.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(cut) => rest.split_at(cut),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// A location's text, when it is one (a path that is not UTF-8 is never a
/// URL).
pub fn location_text(location: &Path) -> Option<&str> {
    location.to_str().filter(|text| is_database_url(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://li:secret@db.example:5432/strive"),
            "postgres://li:***@db.example:5432/strive"
        );
        assert_eq!(
            redact("postgres://root@127.0.0.1/test"),
            "postgres://root@127.0.0.1/test"
        );
        assert_eq!(
            redact("postgres://127.0.0.1/test"),
            "postgres://127.0.0.1/test"
        );
    }

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_database_url("postgres://127.0.0.1/test"));
        assert!(is_database_url("postgresql://127.0.0.1/test"));
        assert!(!is_database_url("strive.db"));
        assert!(!is_database_url("/var/lib/postgres/strive.db"));
    }
}
