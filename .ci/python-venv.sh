# Sourced by the .ci/setup-*.sh scripts that need a Python tool: the one
# shape of a pinned virtual environment under target/ (so that `cargo clean`
# removes it), reused when it already holds the pinned version.
#
#   strive_python_venv NAME PACKAGE VERSION CHECK
#
# makes target/NAME with PACKAGE==VERSION unless CHECK (Python code that
# exits 0 when the installed version is right) passes there already, and
# leaves the venv's directory in $strive_venv.

strive_python_venv() {
  local name="$1" package="$2" version="$3" check="$4"
  strive_venv="$(pwd)/target/$name"
  local python="$strive_venv/bin/python"
  # A venv copied or moved from another directory still imports its
  # packages, but its scripts' `#!` lines name the old place and do not
  # run: reuse it only where it was made (pip's script says where).
  if [ -x "$python" ] && "$python" -c "$check" 2>/dev/null \
    && head -n 1 "$strive_venv/bin/pip" 2>/dev/null | grep -qF "$python"; then
    echo "$package $version already in $strive_venv"
    return 0
  fi
  echo "installing $package $version into $strive_venv"
  local start=$SECONDS
  mkdir -p "$(pwd)/target"
  rm -rf "$strive_venv"
  if ! python3 -m venv "$strive_venv"; then
    # Debian and Ubuntu ship venv's pip bootstrap separately.
    echo "python3 -m venv failed; installing python3-venv with apt-get"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq python3-venv
    rm -rf "$strive_venv"
    python3 -m venv "$strive_venv"
  fi
  "$python" -m pip install --quiet --disable-pip-version-check "$package==$version"
  echo "$package installed in $((SECONDS - start)) s"
}
