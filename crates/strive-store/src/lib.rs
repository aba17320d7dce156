//! strive's embedded engine.
