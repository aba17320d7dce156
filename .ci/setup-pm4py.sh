# Sourced by .ci/run before `cargo test`: makes a Python virtual environment
# with PM4Py for the XES/PNML conformance test in tests/audit.rs, and exports
# STRIVE_PM4PY_PYTHON so that the test runs (under CI=true it fails without it).
#
# PM4Py is AGPL-3.0. It is an external tool the test runs as a separate
# process; strive never links, vendors or ships it.

# shellcheck source=.ci/python-venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/python-venv.sh"

strive_pm4py_version="2.7.23.11"
strive_python_venv pm4py-venv pm4py "$strive_pm4py_version" \
  "import pm4py, sys; sys.exit(0 if pm4py.__version__ == '$strive_pm4py_version' else 1)"

export STRIVE_PM4PY_PYTHON="$strive_venv/bin/python"
