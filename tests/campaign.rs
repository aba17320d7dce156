//! Placeholder: filled by the campaign work.
