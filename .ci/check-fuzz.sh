#!/usr/bin/env bash
# Time-boxed fuzzing (issue #6): each cargo-fuzz target runs for
# STRIVE_FUZZ_SECONDS (60 by default) when a nightly toolchain is present.
# Stable `cargo test` replays the committed corpus in every run anyway
# (tests/fuzz_corpus.rs); this looks for new inputs. A crash fails CI and
# leaves the input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${STRIVE_FUZZ_SECONDS:-60}"

# .ci/run denies warnings for the stable build; a nightly compiler may warn
# about lints stable does not have yet, which must not fail the fuzzing.
unset RUSTFLAGS

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: no nightly toolchain, so no fuzzing here; the corpus was replayed by cargo test"
  exit 0
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  started=$SECONDS
  cargo install cargo-fuzz --locked
  echo "fuzz: installed cargo-fuzz in $((SECONDS - started)) s"
fi

# Optimised, with debug assertions (an arithmetic overflow panics, so the
# fuzzer finds it) and without the address sanitizer: strive forbids
# unsafe code, and without it each target runs about four times as many
# inputs in its minute. STRIVE_FUZZ_FLAGS overrides, e.g. "-O" for ASan.
read -r -a flags <<<"${STRIVE_FUZZ_FLAGS:--O -a -s none}"

cd fuzz
started=$SECONDS
cargo +nightly fuzz build "${flags[@]}"
echo "fuzz: built the targets in $((SECONDS - started)) s"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo +nightly fuzz list); do
  # New inputs go to a scratch directory (listed first), so CI never grows
  # the committed corpus; the committed one seeds the run.
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  if ! cargo +nightly fuzz run "${flags[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $target FAILED; the input is in fuzz/artifacts/$target/"
    exit 1
  fi
  # libFuzzer's last line reads "Done N runs in S second(s)".
  echo "fuzz: $target: $(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
done
