//! The umbrella error: every family of failures in this crate converts
//! into [`Error`], for callers that handle them alike.

use std::fmt;

use crate::bundle::BundleError;
use crate::checkpoint::CheckpointError;
use crate::merkle::ProofError;
use crate::replay::ReplayError;
use strive_core::KeyError;

/// Any failure of the auditor's toolkit.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A checkpoint could not be read or trusted.
    Checkpoint(CheckpointError),
    /// A key could not be made or read.
    Key(KeyError),
    /// A bundle could not be read.
    Bundle(BundleError),
    /// A replay could not produce a state.
    Replay(ReplayError),
    /// A Merkle proof did not verify.
    Proof(ProofError),
    /// Writing an export failed.
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Checkpoint(e) => e.fmt(f),
            Error::Key(e) => e.fmt(f),
            Error::Bundle(e) => e.fmt(f),
            Error::Replay(e) => e.fmt(f),
            Error::Proof(e) => e.fmt(f),
            Error::Io(e) => write!(f, "cannot write the export: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Checkpoint(e) => Some(e),
            Error::Key(e) => Some(e),
            Error::Bundle(e) => Some(e),
            Error::Replay(e) => Some(e),
            Error::Proof(e) => Some(e),
            Error::Io(e) => Some(e),
        }
    }
}

macro_rules! from {
    ($($variant:ident($ty:ty)),*) => {$(
        impl From<$ty> for Error {
            fn from(error: $ty) -> Error {
                Error::$variant(error)
            }
        }
    )*};
}

from!(
    Checkpoint(CheckpointError),
    Key(KeyError),
    Bundle(BundleError),
    Replay(ReplayError),
    Proof(ProofError),
    Io(std::io::Error)
);
