//! strive's integration tests: one binary, one module per area.

mod audit;
mod authorization;
mod campaign;
mod cli;
mod console;
mod corpus;
mod crash;
mod engine;
mod failpoints;
mod fuzz_corpus;
mod graph;
mod hostile;
mod http;
mod limits;
mod model;
mod ocel;
mod partitions;
mod receipt;
mod simulate;
mod storage;
mod util;
