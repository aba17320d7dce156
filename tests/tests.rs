//! strive's integration tests: one binary, one module per area.

mod cli;
mod corpus;
mod engine;
mod graph;
mod util;
