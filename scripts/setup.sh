#!/usr/bin/env bash
# One-time (and idempotent) set-up on a fresh machine: system library, virtualenv, gsbench + test deps.
# Re-running is cheap: pip runs again only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${GSBENCH_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

"$PYTHON" - <<'PY' || { echo "gsbench needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

# open3d's wheel links libusb-1.0 (Debian/Ubuntu package libusb-1.0-0).
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing libusb-1.0-0 (needed by open3d)" >&2
    (apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q libusb-1.0-0 >/dev/null; }) ||
      echo "warning: could not install libusb-1.0-0; run: sudo apt-get install -y libusb-1.0-0" >&2
  else
    echo "open3d needs libusb-1.0; run: sudo apt-get install -y libusb-1.0-0" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"

# test: pytest + ruff; ray: the Ray executor, whose test runs a local Ray instance.
EXTRAS="test,ray"
stamp="$VENV/.gsbench-setup-stamp"
want="$( (cat pyproject.toml; echo "$EXTRAS") | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing gsbench and its dependencies into $VENV (first time: a few minutes)" >&2
  log="$VENV/pip-install.log"
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[$EXTRAS]" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "pip install failed; full log: $log" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi
