#!/usr/bin/env bash
# The GPU check, in one call on a machine with a CUDA device (a lent one gives ~15 minutes in all):
#   1. install the 'gpu' extra (gsplat) unless it is importable: from wheels (--wheels DIR, no network, e.g. a
#      lent machine whose own python already has torch) or with pip (pip install -e '.[gpu]');
#   2. say which backend `auto` picks and why (gsbench doctor's probe; builds gsplat's kernels on first use);
#   3. run the `gpu` tests (gsplat against the CPU backend; each method's smoke budget on CUDA);
#   4. run one `paper`-budget job of one method on the default dataset under a time limit;
#   5. print the figures: train time, render FPS, PSNR beside the CPU `quick` run of the same job.
# --dry-run checks everything that needs no GPU, prints the plan and exits 0; without --dry-run on a machine
# with no CUDA device it does the same, then stops with exit code 3 before installing or running anything.
#
#   bash scripts/gpu_check.sh [--dry-run] [--python PY] [--wheels DIR] [--data DATASET] [--method M]
#       [--protocol P] [--subject S] [--cpu-results FILE] [--out DIR] [--test-limit S] [--job-limit S]
#       [--set METHOD.paper.KEY=VALUE ...]
#   bash scripts/gpu_check.sh --report JOB_DIR [--cpu-results FILE]   # the figures of a finished job only
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

DRY_RUN=0
PY="${GSBENCH_PYTHON:-}"
WHEELS=""
DATA="out/dataset"  # where scripts/main.sh puts the default dataset
METHOD="audio-plane"
PROTOCOL="mono-front"
SUBJECT=""
CPU_RESULTS=""
OUT="${OUT:-/tmp/gsbench-gpu-check}"
TEST_LIMIT=240
JOB_LIMIT=420
SETS=()
REPORT=""

die() { echo "gpu_check: $*" >&2; exit 2; }
print_figures() {  # JOB_DIR CPU_RESULTS JOB_EXIT: the figures table of a paper job beside the CPU quick run
"$PY" - "$1" "$2" "$3" <<'PY'
import json
import sys
from pathlib import Path

job_dir, cpu_path, job_rc = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]


def figures(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    psnr = (doc.get("metrics") or {}).get("psnr") or {}
    timing = doc.get("timing") or {}
    return {
        "status": doc.get("status"),
        "budget": doc.get("budget"),
        "device": doc.get("device"),
        "rasterizer": (doc.get("method_info") or {}).get("rasterizer", ""),
        "train_s": timing.get("train_seconds"),
        "render_fps": timing.get("render_fps"),
        "psnr": psnr.get("value"),
        "error": doc.get("error"),
    }


gpu, cpu = figures(job_dir / "results.json"), figures(cpu_path)
if gpu is None:
    print(f"no results.json in {job_dir} (job exit {job_rc}); last lines of its log:")
    log = job_dir / "log.txt"
    print("\n".join(log.read_text().splitlines()[-15:]) if log.exists() else "  (no log.txt)")
rows = [("this job", gpu), ("CPU reference", cpu)]
print(f"{'run':14s} {'budget':7s} {'status':7s} {'device':24s} {'rasterizer':10s} {'train s':>9s} {'fps':>7s} "
      f"{'PSNR':>7s}")
for name, fig in rows:
    if fig is None:
        print(f"{name:14s} (none)")
        continue

    def num(value, digits):
        return "-" if value is None else f"{value:.{digits}f}"

    print(f"{name:14s} {fig['budget'] or '-':7s} {fig['status'] or '-':7s} {fig['device'] or '-':24s} "
          f"{fig['rasterizer'] or '-':10s} {num(fig['train_s'], 1):>9s} {num(fig['render_fps'], 1):>7s} "
          f"{num(fig['psnr'], 2):>7s}")
if gpu and gpu["error"]:
    print(f"this job's error: {gpu['error']} (traceback in {job_dir / 'log.txt'})")
if gpu and cpu and gpu["psnr"] is not None and cpu["psnr"] is not None:
    print(f"PSNR {gpu['budget']} - {cpu['budget']}: {gpu['psnr'] - cpu['psnr']:+.2f} dB")
PY
}

while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --python) PY="${2:?--python needs a path}"; shift ;;
    --wheels) WHEELS="${2:?--wheels needs a folder}"; shift ;;
    --data) DATA="${2:?--data needs a dataset folder}"; shift ;;
    --method) METHOD="${2:?}"; shift ;;
    --protocol) PROTOCOL="${2:?}"; shift ;;
    --subject) SUBJECT="${2:?}"; shift ;;
    --cpu-results) CPU_RESULTS="${2:?}"; shift ;;
    --out) OUT="${2:?}"; shift ;;
    --test-limit) TEST_LIMIT="${2:?}"; shift ;;
    --job-limit) JOB_LIMIT="${2:?}"; shift ;;
    --set) SETS+=(--set "${2:?}"); shift ;;
    --report) REPORT="${2:?--report needs a job folder}"; shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
command -v "$PY" >/dev/null || die "no python at '$PY' (--python PY)"
if [ -n "$REPORT" ]; then  # only the figures of an existing job folder (e.g. one a lent machine sent back)
  print_figures "$REPORT" "${CPU_RESULTS:-/nonexistent}" 0
  exit 0
fi

echo "== gsbench GPU check ($( [ "$DRY_RUN" = 1 ] && echo "dry run" || echo "run" ), $(date -u +%FT%TZ))"
problems=()  # block every step
job_problems=()  # block step 4 only (the tests of the rasterizer need none of it)

# Preflight: everything that needs no GPU.
torch_line="$("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda or "cpu-only", int(torch.cuda.is_available()), torch.cuda.device_count())' 2>/dev/null)" ||
  die "$PY cannot import torch"
read -r TORCH_VERSION TORCH_CUDA HAS_CUDA DEVICE_COUNT <<<"$torch_line"
echo "python:   $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
echo "torch:    $TORCH_VERSION (built with CUDA $TORCH_CUDA), CUDA devices visible: $DEVICE_COUNT"
NVCC="$(command -v nvcc || true)"
if [ -z "$NVCC" ] && [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ]; then NVCC="${CUDA_HOME:-/usr/local/cuda}/bin/nvcc"; fi
if [ -n "$NVCC" ]; then
  echo "nvcc:     $NVCC ($("$NVCC" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p'))"
else
  echo "nvcc:     not found (gsplat compiles its CUDA kernels with it on first use)"
  problems+=("no nvcc: gsplat cannot build its kernels (install the CUDA toolkit matching torch's CUDA $TORCH_CUDA)")
fi
GSPLAT="$("$PY" -c 'import gsplat; print(gsplat.__version__)' 2>/dev/null || true)"
if [ -n "$GSPLAT" ]; then
  echo "gsplat:   $GSPLAT (installed)"
  INSTALL="none (gsplat $GSPLAT is importable)"
elif [ -n "$WHEELS" ]; then
  ls "$WHEELS"/gsplat-*.whl >/dev/null 2>&1 || die "no gsplat wheel in $WHEELS"
  SITE="$OUT/site"
  INSTALL="$PY -m pip install --no-index --no-deps --target $SITE $WHEELS/*.whl; PYTHONPATH=$SITE"
  echo "gsplat:   not installed; from $(cd "$WHEELS" && ls ./*.whl | tr '\n' ' ')"
else
  INSTALL="$PY -m pip install -e '.[gpu]'"
  echo "gsplat:   not installed; the extra will be: $(sed -n 's/^gpu = \(.*\)$/\1/p' pyproject.toml)"
fi
missing_modules="$(PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" "$PY" - <<'PY'
import importlib
for module in ("avatars.render.backend", "pytest", "benchmark.runner", "benchmark.cli"):
    try:
        importlib.import_module(module)
    except Exception as error:  # report every missing piece, not just the first
        print(f"{module} ({type(error).__name__}: {error})".splitlines()[0][:200])
PY
)" || true
if [ -n "$missing_modules" ]; then
  while IFS= read -r line; do
    case "$line" in
      benchmark.*) job_problems+=("cannot import $line") ;;
      *) problems+=("cannot import $line") ;;
    esac
  done <<<"$missing_modules"
fi
if [ -f "$DATA/dataset.json" ]; then
  [ -n "$SUBJECT" ] || SUBJECT="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["subjects"][0])' "$DATA/dataset.json" 2>/dev/null || echo s01)"
  DATASET_NAME="$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["name"])' "$DATA/dataset.json" 2>/dev/null || basename "$(dirname "$DATA")")"
  echo "dataset:  $DATA ($DATASET_NAME), subject $SUBJECT"
else
  SUBJECT="${SUBJECT:-s01}"
  DATASET_NAME="$(basename "$(dirname "$DATA")")"
  echo "dataset:  $DATA (missing: no dataset.json)"
  job_problems+=("no dataset at $DATA (--data DATASET; scripts/main.sh builds the default one in out/dataset)")
fi
# scripts/main.sh's quick run of every method, unless --cpu-results names another results.json
[ -n "$CPU_RESULTS" ] || CPU_RESULTS="out/runs/$DATASET_NAME/$PROTOCOL/$METHOD/$SUBJECT/results.json"
CPU_QUICK="gsbench run --method $METHOD --data $DATA --budget quick --protocol $PROTOCOL --subject $SUBJECT --runs out/runs"
if [ -f "$CPU_RESULTS" ]; then
  echo "cpu ref:  $CPU_RESULTS"
else
  echo "cpu ref:  $CPU_RESULTS (missing: the PSNR comparison will be left out; make it with: $CPU_QUICK)"
fi
RUNS="$OUT/runs"
JOB="$PY -m benchmark run --method $METHOD --data $DATA --budget paper --protocol $PROTOCOL --subject $SUBJECT"
JOB="$JOB --device cuda --runs $RUNS --no-videos --force${SETS[*]:+ ${SETS[*]}}"

echo "plan:"
echo "  1. install: $INSTALL"
echo "  2. probe:   avatars.render.backend.choose_backend('cuda') (builds gsplat's kernels on first use)"
echo "  3. tests:   timeout $TEST_LIMIT $PY -m pytest -q -m gpu tests"
echo "  4. job:     timeout $JOB_LIMIT $JOB"
echo "  5. figures: train s, render fps, PSNR of $RUNS/$DATASET_NAME/$PROTOCOL/$METHOD/$SUBJECT/results.json vs $CPU_RESULTS"
if [ ${#problems[@]} -gt 0 ]; then
  echo "problems (nothing can run):"
  printf '  - %s\n' "${problems[@]}"
fi
if [ ${#job_problems[@]} -gt 0 ]; then
  echo "problems (step 4 will be skipped):"
  printf '  - %s\n' "${job_problems[@]}"
fi

if [ "$HAS_CUDA" != 1 ]; then
  if [ "$TORCH_CUDA" = cpu-only ]; then why="torch $TORCH_VERSION is a CPU-only build"; else why="torch.cuda.is_available() is False"; fi
  if [ "$DRY_RUN" = 1 ]; then
    echo "dry run: no CUDA device here ($why); on a CUDA machine the steps above would run. Nothing was installed or run."
    exit 0
  fi
  echo "gpu_check: no CUDA device here ($why): nothing was installed or run; the CPU rasterizer is what gsbench uses on this machine (gsbench doctor says why)." >&2
  exit 3
fi
if [ "$DRY_RUN" = 1 ]; then
  echo "dry run: a CUDA device is here; nothing was installed or run."
  exit 0
fi
[ ${#problems[@]} -eq 0 ] || { echo "gpu_check: fix the problems above first" >&2; exit 2; }

mkdir -p "$OUT"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
echo "== 1. install"
if [ -z "$GSPLAT" ]; then
  if [ -n "$WHEELS" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-cache-dir --target "$SITE" "$WHEELS"/*.whl
    export PYTHONPATH="$PYTHONPATH:$SITE"
  else
    "$PY" -m pip install -q -e ".[gpu]"
  fi
fi
echo "== 2. probe"
start=$(date +%s)
probe="$("$PY" -c '
from avatars.render.backend import choose_backend
choice = choose_backend("cuda")
print(choice.backend)
print(f"{choice.label}: {choice.reason}")
if choice.error:
    print(choice.error)
')" || { echo "gpu_check: the backend probe crashed" >&2; exit 4; }
echo "$probe" | sed -n '2,$p'
echo "   probe (incl. any gsplat kernel build): $(( $(date +%s) - start )) s"
if [ "$(echo "$probe" | head -n 1)" != gsplat ]; then
  echo "gpu_check: the gsplat backend is not usable here (above); the gpu tests and the paper job were not run" >&2
  exit 4
fi
echo "== 3. gpu tests"
start=$(date +%s)
set +e
# a test module whose imports are missing here (a lent machine's own python) is reported, the others run
timeout "$TEST_LIMIT" "$PY" -m pytest -q -m gpu -p no:cacheprovider --continue-on-collection-errors tests 2>&1 |
  tail -n 25
tests_rc=${PIPESTATUS[0]}
set -e
echo "   gpu tests: exit $tests_rc in $(( $(date +%s) - start )) s"
echo "== 4. paper job (limit $JOB_LIMIT s)"
if [ ${#job_problems[@]} -gt 0 ]; then
  echo "   skipped:"; printf '   - %s\n' "${job_problems[@]}"
  job_rc=5
else
  start=$(date +%s)
  set +e
  # shellcheck disable=SC2086
  timeout "$JOB_LIMIT" $JOB >"$OUT/job.log" 2>&1
  job_rc=$?
  set -e
  echo "   job: exit $job_rc in $(( $(date +%s) - start )) s$( [ "$job_rc" = 124 ] && echo " (stopped by the time limit)")"
fi
echo "== 5. figures"
print_figures "$RUNS/$DATASET_NAME/$PROTOCOL/$METHOD/$SUBJECT" "$CPU_RESULTS" "$job_rc"
[ "$tests_rc" = 0 ] && [ "$job_rc" = 0 ] || exit 1
