#!/usr/bin/env bash
# The PostgreSQL matrix (issue #15, "Tests"): the engine suites again, with
# every temporary store and every `TestStore::new()` a fresh PostgreSQL
# database, created and dropped by the test (STRIVE_TEMPORARY_URL,
# crates/strive-store/src/url.rs TEMPORARY_URL_VAR), as
# check-partitions.sh runs them on four partitions. Then the one test that
# restarts the server (tests/crash.rs,
# acknowledged_writes_survive_a_server_restart), alone, since it ends
# every connection to the shared server.
#
# Measured on 1 December 2026 on the 2-core development machine shared
# with three other builds (load average 8 to 9): 96 s and 153 s for the
# whole script with a warm build (75 tests, then the restart test, 7 s).
# The time box, STRIVE_POSTGRES_TIMEOUT seconds (900 by default), is
# several times that, so only a hang trips it.
set -euo pipefail
cd "$(dirname "$0")/.."

source .ci/setup-postgres.sh
limit="${STRIVE_POSTGRES_TIMEOUT:-900}"
started=$SECONDS
STRIVE_TEMPORARY_URL="$STRIVE_POSTGRES_URL" STRIVE_CRASH_CYCLES="${STRIVE_CRASH_CYCLES:-40}" \
  timeout --signal=KILL "$limit" cargo test --test integration -- \
  engine:: partitions:: model:: audit:: crash:: storage:: authorization:: postgres::
if command -v pg_ctlcluster >/dev/null 2>&1; then
  STRIVE_PG_RESTART=1 timeout --signal=KILL "$limit" cargo test --test integration -- \
    --exact crash::acknowledged_writes_survive_a_server_restart
else
  echo "postgres: pg_ctlcluster is missing, so the server-restart test cannot run here"
  [ "${CI:-}" != true ] || exit 1
fi
echo "postgres: the engine suites passed on PostgreSQL in $((SECONDS - started)) s"
