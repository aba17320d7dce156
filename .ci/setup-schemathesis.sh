# Sourced by .ci/run before `cargo test`: makes a Python virtual environment
# with schemathesis for the OpenAPI conformance test of the HTTP service in
# tests/http.rs, and exports STRIVE_SCHEMATHESIS so that the test runs (under
# CI=true it fails without it).

# shellcheck source=.ci/python-venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/python-venv.sh"

strive_st_version="4.32.5"
strive_python_venv schemathesis-venv schemathesis "$strive_st_version" \
  "import importlib.metadata as m, sys; sys.exit(0 if m.version('schemathesis') == '$strive_st_version' else 1)"

export STRIVE_SCHEMATHESIS="$strive_venv/bin/schemathesis"
