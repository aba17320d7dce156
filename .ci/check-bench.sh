#!/usr/bin/env bash
# The benchmark harness's quick configuration (issue #7), so that it never
# rots: every section runs end to end (limits, SQLite, XState when node is
# there, strive, strive over HTTP (wrk when installed, else ureq threads),
# strive on PostgreSQL (skipped, saying why, without a
# server), in-memory evaluation, the compression study of format 2's
# event blocks, sled's blob threshold, a 10k-event store, audit work, a small
# demo). It fails when the harness errors, never on slow figures: CI builds
# it in the dev profile (dependencies at opt-level 1, sharing what
# `cargo test` compiled; a release build compiles SQLite's C and the whole
# tree again, minutes more), so its figures mean nothing.
# docs/performance.md has the real figures and how to take them.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
cargo build --quiet -p strive-bench
echo "built in $((SECONDS - start)) s"
cargo run --quiet -p strive-bench -- --quick | tee "$out"
for section in limits peers strive http postgres "in memory" compression "sled blobs" scale audit; do
  if ! grep -q -- "^-- $section" "$out"; then
    echo "check-bench: the table has no '$section' section" >&2
    exit 1
  fi
done
echo "check-bench: the harness ran in $((SECONDS - start)) s (figures from a dev build, not checked)"
