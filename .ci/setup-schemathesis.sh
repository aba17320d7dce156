# Sourced by .ci/run before `cargo test`: makes a Python virtual environment
# with schemathesis for the OpenAPI conformance test of the HTTP service in
# tests/http.rs, and exports STRIVE_SCHEMATHESIS so that the test runs (under
# CI=true it fails without it).
#
# The venv lives under target/ so that `cargo clean` removes it, and it is
# reused when it already has the pinned version.

strive_st_version="4.32.5"
strive_st_venv="$(pwd)/target/schemathesis-venv"
strive_st_bin="$strive_st_venv/bin/schemathesis"

if [ -x "$strive_st_bin" ] &&
  "$strive_st_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('schemathesis') == '$strive_st_version' else 1)" 2>/dev/null; then
  echo "schemathesis $strive_st_version already in $strive_st_venv"
else
  echo "installing schemathesis $strive_st_version into $strive_st_venv"
  strive_st_start=$SECONDS
  mkdir -p "$(pwd)/target"
  if ! python3 -m venv "$strive_st_venv"; then
    # Debian and Ubuntu ship venv's pip bootstrap separately.
    echo "python3 -m venv failed; installing python3-venv with apt-get"
    strive_st_sudo=""
    [ "$(id -u)" -eq 0 ] || strive_st_sudo="sudo"
    $strive_st_sudo apt-get install -y -qq python3-venv
    rm -rf "$strive_st_venv"
    python3 -m venv "$strive_st_venv"
  fi
  "$strive_st_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$strive_st_version"
  echo "schemathesis installed in $((SECONDS - strive_st_start)) s"
fi

export STRIVE_SCHEMATHESIS="$strive_st_bin"
