#!/usr/bin/env bash
# One-time (and idempotent) set-up on a fresh machine: system library, virtualenv, gsbench + test deps.
# Re-running is cheap: pip runs again only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${GSBENCH_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

# The 'gpu' extra (gsplat, the CUDA rasterizer) goes in where this machine has a CUDA device and a CUDA toolkit
# (gsplat compiles its kernels with nvcc on first use), or when asked: GSBENCH_GPU=1 installs it, GSBENCH_GPU=0
# never does. Elsewhere nothing GPU-related is installed and the CPU rasterizer runs, as before.
# `bash scripts/setup.sh --gpu-plan` prints this decision and exits (installs nothing).
gpu_device() {  # nvidia-smi lists a GPU, or the venv's torch (if installed) sees one
  { command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; } ||
    { [ -x "$VENV/bin/python" ] &&
      "$VENV/bin/python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; }
}
gpu_toolkit() {  # nvcc on PATH or in $CUDA_HOME/bin (default /usr/local/cuda)
  command -v nvcc >/dev/null || [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]
}
gpu_plan() {  # prints the decision to stderr; succeeds when the gpu extra is to be installed
  case "${GSBENCH_GPU:-auto}" in
    1) echo "GSBENCH_GPU=1: installing the gpu extra (gsplat)" >&2 ;;
    0) echo "GSBENCH_GPU=0: the gpu extra (gsplat) is not installed; nothing changes (CPU rasterizer)" >&2; return 1 ;;
    auto)
      if gpu_device && gpu_toolkit; then
        echo "CUDA device and toolkit found: installing the gpu extra (gsplat)" >&2
      elif gpu_device; then
        echo "note: a CUDA device but no CUDA toolkit (nvcc): the gpu extra (gsplat) is not installed;" \
          "nothing changes (CPU rasterizer). Install the toolkit, then GSBENCH_GPU=1 bash scripts/setup.sh" >&2
        return 1
      else
        echo "note: no CUDA device: the gpu extra (gsplat) is not installed; nothing changes (CPU rasterizer;" \
          "GSBENCH_GPU=1 installs it anyway)" >&2
        return 1
      fi ;;
    *) echo "GSBENCH_GPU must be 1, 0 or unset, not '${GSBENCH_GPU}'" >&2; exit 2 ;;
  esac
}
if [ "${1:-}" = "--gpu-plan" ]; then
  if gpu_plan; then echo "gpu extra: install"; else echo "gpu extra: skip"; fi
  exit 0
fi

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

# The leaderboard site's browser test (tests/leaderboards/test_site.py) drives Debian's chromium; without
# it that test is skipped. Best effort: a failure is a warning, never a failed set-up.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && [ -z "${GSBENCH_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (for the leaderboard site's browser test)" >&2
    (timeout 600 apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 ||
      { timeout 120 apt-get update -q >/dev/null 2>&1 &&
        timeout 600 apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }) ||
      echo "warning: could not install chromium; the site's browser test will be skipped" >&2
  else
    echo "note: no chromium; the site's browser test is skipped (sudo apt-get install -y chromium)" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"

# test: pytest + ruff; ray: the Ray executor, whose test runs a local Ray instance; fan: what the 2D-FAN
# LMD backend needs besides face-alignment itself (installed below without its dependencies).
EXTRAS="test,ray,fan"
if gpu_plan; then EXTRAS="$EXTRAS,gpu"; fi
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
  # face-alignment's own requirements would replace numpy 1.26 by numpy 2 and add opencv-python beside
  # opencv-contrib-python; its real dependencies come with the 'fan' extra above.
  if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps face-alignment==1.5.0 >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "pip install of face-alignment failed; full log: $log" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
fi
