# Sourced by .ci/run: the PostgreSQL server the PostgreSQL tests use
# (issue #15; tests/postgres.rs, tests/util.rs `TestStore::postgres`), at
# 127.0.0.1:5432 with trust authentication, as this project's machines
# carry it. Started when it is installed but down. When no server answers
# after that, the PostgreSQL tests fail under CI=true, saying why.
strive_pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }
if ! strive_pg_up && command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "PostgreSQL is down; starting it (pg_ctlcluster 15 main start)"
  pg_ctlcluster 15 main start || true
  for _ in $(seq 1 30); do
    strive_pg_up && break
    sleep 1
  done
fi
if strive_pg_up; then
  echo "PostgreSQL answers at 127.0.0.1:5432"
else
  echo "PostgreSQL does not answer at 127.0.0.1:5432: the PostgreSQL tests will fail under CI"
fi
export STRIVE_POSTGRES_URL="${STRIVE_POSTGRES_URL:-postgres://root@127.0.0.1:5432/postgres}"
unset -f strive_pg_up
