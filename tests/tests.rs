//! strive's integration tests: one binary, one module per area.

mod authorization;
mod cli;
mod corpus;
mod crash;
mod engine;
mod fuzz_corpus;
mod graph;
mod model;
mod util;
