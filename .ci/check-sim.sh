#!/usr/bin/env bash
# The deterministic simulation's CI batch (issue #16): `sim::seeds` for
# STRIVE_SIM_SECONDS (40 by default) from seeds `cargo test` does not run
# (its own 10 s batch starts at 0x5eed0000), on its own so that it has the
# machine to itself (with the 10 s batches of `cargo test` and of
# .ci/check-partitions.sh, about 60 s of seeds in CI). It prints the
# seeds, steps per second and faults injected; a failure prints its seed
# and step and how to replay it.
# For a soak, raise the budget: STRIVE_SIM_SECONDS=28800 bash .ci/check-sim.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

export STRIVE_SIM_SECONDS="${STRIVE_SIM_SECONDS:-40}"
export STRIVE_SIM_FIRST_SEED="${STRIVE_SIM_FIRST_SEED:-0x5eed1000}"
cargo test --test integration sim::seeds -- --nocapture
