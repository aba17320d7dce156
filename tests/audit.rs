//! Placeholder: filled by the audit work.
