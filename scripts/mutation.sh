#!/usr/bin/env bash
# Mutation testing of the scoring code (issue 25) with mutmut 3, in a scratch copy of a git revision.
#
#   scripts/mutation.sh [TARGET...]
#
# TARGET: a module file or a folder under the repository; default: the modules whose score the README
# states (benchmark/metrics, benchmark/protocols.py, benchmark/results.py, benchmark/runner.py,
# leaderboards). mutmut changes one operator, constant or call at a time (a "mutant") and runs the tests
# that execute the changed function; a mutant no test notices "survives". Each target is tested by the
# test files listed for it in tests_for() below.
#
# Not part of the default test run (.ci/run): everything takes hours on 2 cores. Needs the `mutation`
# extra: pip install -e '.[test,mutation]'. Nothing in the working tree is touched: the revision is
# exported to a scratch folder, where mutmut writes its mutants/ folder.
#
# Environment:
#   MUTATION_REF   git revision to test (default HEAD)
#   MUTATION_DIR   scratch folder (default: a new temporary folder); kept, so that `mutmut show NAME` and
#                  `mutmut results --all true` can be run there afterwards
#   MUTATION_JOBS  mutants tested in parallel (default: the number of CPUs)
#   MUTATION_NAMES mutant name patterns to test (default: all of the targets), e.g.
#                  'leaderboards.publish.x_rank_rows*' for one function
#   MUTATION_TIMEOUT  stop testing mutants after this long (timeout(1) syntax, e.g. 25m; default: no limit);
#                  the score is then over the mutants tested so far, and says how many were not
#
# Prints every mutant that was not killed and the mutation score
#   killed / (mutants - equivalent)
# where "equivalent" are the mutants reviewed as equivalent (the code behaves the same) in
# scripts/mutation_equivalent.txt (one mutant name a line, then the reason). Timeouts count as killed,
# as mutmut counts them; "no tests" and "suspicious" count as not killed.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
mutmut="$(dirname "$python")/mutmut"
[ -x "$mutmut" ] || { echo "error: mutmut not installed; run: pip install -e '.[test,mutation]'" >&2; exit 2; }
ref="${MUTATION_REF:-HEAD}"
jobs="${MUTATION_JOBS:-$(nproc)}"
scratch="${MUTATION_DIR:-$(mktemp -d -t gsbench-mutation.XXXXXX)}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(benchmark/metrics benchmark/protocols.py benchmark/results.py benchmark/runner.py leaderboards)
fi

tests_for() {  # the test files that exercise a target
    case "$1" in
        benchmark/metrics) for m in image lmd mouth compute lpips_metric syncnet media train_syncnet; do
                               tests_for "benchmark/metrics/$m.py"; done ;;
        benchmark/metrics/image.py) echo tests/benchmark/test_metrics_image.py tests/benchmark/test_metric_definitions.py ;;
        benchmark/metrics/lmd.py) echo tests/benchmark/test_metrics_lmd.py tests/benchmark/test_metric_definitions.py ;;
        benchmark/metrics/mouth.py) echo tests/benchmark/test_metrics_mouth.py ;;
        benchmark/metrics/compute.py) echo tests/benchmark/test_metrics_compute.py \
            tests/benchmark/test_metric_definitions.py tests/benchmark/test_metrics_mouth.py ;;
        benchmark/metrics/lpips_metric.py) echo tests/benchmark/test_metrics_lpips.py ;;
        benchmark/metrics/syncnet.py) echo tests/benchmark/test_metrics_syncnet.py ;;
        benchmark/metrics/media.py) echo tests/benchmark/test_reliability.py tests/benchmark/test_metrics_compute.py ;;
        benchmark/metrics/train_syncnet.py) echo tests/benchmark/test_metrics_train_syncnet.py ;;
        benchmark/protocols.py) echo tests/benchmark/test_leakage.py tests/benchmark/test_protocol_contracts.py \
            tests/benchmark/test_dataset_reader.py \
            tests/benchmark/test_compositing.py tests/benchmark/test_scoring_path.py ;;
        benchmark/results.py) echo tests/benchmark/test_metric_definitions.py tests/leaderboards/test_conventions.py \
            tests/benchmark/test_scoring_path.py ;;
        benchmark/runner.py) echo tests/benchmark/test_scoring_path.py tests/benchmark/test_runner.py \
            tests/benchmark/test_reliability.py tests/benchmark/test_compositing.py ;;
        leaderboards/publish.py) echo tests/leaderboards/test_leaderboard_publish.py tests/leaderboards/test_ranks.py \
            tests/leaderboards/test_conventions.py ;;
        leaderboards|leaderboards/*) echo tests/leaderboards ;;
        *) echo "error: no tests listed for $1 in scripts/mutation.sh" >&2; exit 2 ;;
    esac
}

selection=()
for target in "${targets[@]}"; do
    read -r -a files <<< "$(tests_for "$target" | tr '\n' ' ')"
    selection+=("${files[@]}")
done
mapfile -t selection < <(printf '%s\n' "${selection[@]}" | sort -u)

echo "mutation: $ref -> $scratch (targets: ${targets[*]}; ${jobs} parallel)"
mkdir -p "$scratch"
git -C "$repo" archive "$ref" | tar -x -C "$scratch"
{
    echo "[mutmut]"
    echo "source_paths ="
    printf '    %s\n' "${targets[@]}"
    # the other packages come from the scratch copy too, not from the editable install
    echo "also_copy ="
    printf '    %s\n' gsbench tracking avatars capture_tools benchmark leaderboards
    echo "pytest_add_cli_args_test_selection ="
    printf '    %s\n' "${selection[@]}"
    echo "pytest_add_cli_args ="
    printf '    %s\n' -q -p no:cacheprovider -m "not slow and not gpu"
} > "$scratch/setup.cfg"
# mutmut reads [tool.mutmut] of pyproject.toml before setup.cfg; the project keeps none
cd "$scratch"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
read -r -a names <<< "${MUTATION_NAMES:-}"
timeout --signal=INT "${MUTATION_TIMEOUT:-0}" "$mutmut" run --max-children "$jobs" "${names[@]}" \
    > "$scratch/mutmut-run.log" 2>&1 || true
"$mutmut" results --all true > "$scratch/mutmut-results.txt"
"$python" - "$repo/scripts/mutation_equivalent.txt" "$scratch/mutmut-results.txt" <<'PY'
import collections
import sys
from pathlib import Path

equivalent = {
    line.split()[0]
    for line in Path(sys.argv[1]).read_text().splitlines()
    if line.strip() and not line.startswith("#")
}
status = {}
for line in Path(sys.argv[2]).read_text().splitlines():
    name, _, verdict = line.strip().rpartition(": ")
    if name:
        status[name] = verdict
counts = collections.Counter(status.values())
scored = {n: v for n, v in status.items() if n not in equivalent and v != "not checked"}
killed = sum(v in ("killed", "timeout") for v in scored.values())
for name, verdict in sorted(scored.items()):
    if verdict not in ("killed", "timeout"):
        print(f"{verdict:>10}  {name}")
print(f"mutants: {dict(counts)}; equivalent (excluded): {len(set(status) & equivalent)}")
if counts.get("not checked"):
    print(f"not tested (outside MUTATION_NAMES or past MUTATION_TIMEOUT): {counts['not checked']}")
if scored:
    print(f"mutation score: {killed}/{len(scored)} = {100 * killed / len(scored):.1f} %")
PY
echo "details: cd $scratch && $mutmut show MUTANT_NAME"
