//! Placeholder: filled by the failpoints work.
