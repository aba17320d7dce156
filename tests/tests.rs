//! strive's integration tests: one binary, one module per area.

mod audit;
mod authorization;
mod campaign;
mod cli;
mod corpus;
mod crash;
mod engine;
mod failpoints;
mod fuzz_corpus;
mod graph;
mod hostile;
mod http;
mod limits;
mod migrate;
mod model;
mod ocel;
mod partitions;
mod postgres;
mod publish;
mod receipt;
mod sim;
mod simulate;
mod storage;
mod util;
mod versions;
mod witness;
