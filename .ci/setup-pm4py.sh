# Sourced by .ci/run before `cargo test`: makes a Python virtual environment
# with PM4Py for the XES/PNML conformance test in tests/audit.rs, and exports
# STRIVE_PM4PY_PYTHON so that the test runs (under CI=true it fails without it).
#
# PM4Py is AGPL-3.0. It is an external tool the test runs as a separate
# process; strive never links, vendors or ships it.
#
# The venv lives under target/ so that `cargo clean` removes it, and it is
# reused when it already has the pinned version.

strive_pm4py_version="2.7.23.11"
strive_pm4py_venv="$(pwd)/target/pm4py-venv"
strive_pm4py_python="$strive_pm4py_venv/bin/python"

if [ -x "$strive_pm4py_python" ] &&
  "$strive_pm4py_python" -c "import pm4py, sys; sys.exit(0 if pm4py.__version__ == '$strive_pm4py_version' else 1)" 2>/dev/null; then
  echo "pm4py $strive_pm4py_version already in $strive_pm4py_venv"
else
  echo "installing pm4py $strive_pm4py_version into $strive_pm4py_venv"
  strive_pm4py_start=$SECONDS
  mkdir -p "$(pwd)/target"
  if ! python3 -m venv "$strive_pm4py_venv"; then
    # Debian and Ubuntu ship venv's pip bootstrap separately.
    echo "python3 -m venv failed; installing python3-venv with apt-get"
    strive_pm4py_sudo=""
    [ "$(id -u)" -eq 0 ] || strive_pm4py_sudo="sudo"
    $strive_pm4py_sudo apt-get install -y -qq python3-venv
    rm -rf "$strive_pm4py_venv"
    python3 -m venv "$strive_pm4py_venv"
  fi
  "$strive_pm4py_python" -m pip install --quiet --disable-pip-version-check \
    "pm4py==$strive_pm4py_version"
  echo "pm4py installed in $((SECONDS - strive_pm4py_start)) s"
fi

export STRIVE_PM4PY_PYTHON="$strive_pm4py_python"
