# Sourced by .ci/run before `cargo test`: installs what the console's
# browser test in tests/console.rs needs (issue #12) and exports
# STRIVE_CHROMIUM so that the test runs (under CI=true it fails without it):
# Debian's chromium, the Noto CJK fonts (the test checks that Chinese text
# renders with real glyphs), node, and playwright-core and axe-core from
# npm at the versions tests/console/package-lock.json pins, into
# tests/console/node_modules (git-ignored). Each step is skipped when its
# result is already there, so a warm machine spends about a second here.

strive_console_setup() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  local wanted=()
  command -v chromium >/dev/null 2>&1 || wanted+=(chromium)
  fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || wanted+=(fonts-noto-cjk)
  command -v node >/dev/null 2>&1 || wanted+=(nodejs)
  command -v npm >/dev/null 2>&1 || wanted+=(npm)
  if [ "${#wanted[@]}" -gt 0 ]; then
    echo "setup-console: apt-get install ${wanted[*]}"
    # Time-boxed: a stuck mirror must not eat CI's budget.
    timeout 600 apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null &&
      DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${wanted[@]}" >/dev/null ||
      echo "setup-console: installing ${wanted[*]} failed; the browser test will say so"
  fi
  local modules="$here/tests/console/node_modules"
  local stamp="$modules/.package-lock.json"
  if [ ! -f "$stamp" ] || ! cmp -s "$here/tests/console/package-lock.json" "$modules/.strive-lock"; then
    echo "setup-console: npm ci in tests/console"
    if (cd "$here/tests/console" && timeout 300 npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
      cp "$here/tests/console/package-lock.json" "$modules/.strive-lock"
    else
      echo "setup-console: npm ci failed; the browser test will say so"
    fi
  fi
  if command -v chromium >/dev/null 2>&1; then
    STRIVE_CHROMIUM="$(command -v chromium)"
    export STRIVE_CHROMIUM
  fi
}

strive_console_setup
unset -f strive_console_setup
