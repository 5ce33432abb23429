#!/usr/bin/env bash
# The README's main command: set up, then run the whole pipeline on the embedded default
# (synthetic 16-camera capture -> ingest -> run every method -> publish the leaderboard).
# OUT (default: out/) holds everything; re-running resumes finished stages and jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT="${1:-out}"
PRESET="${GSBENCH_PRESET:-default}"
BUDGET="${GSBENCH_BUDGET:-quick}"
gsbench=.venv/bin/gsbench
# synth is deterministic (same seed, same bytes) but takes minutes: keep a finished session
# (delete OUT/session to regenerate, e.g. with another GSBENCH_PRESET).
if [ -f "$OUT/session/ground_truth/session.json" ]; then  # written last by synth
  echo "synth: $OUT/session exists, kept (delete it to regenerate)" >&2
else
  $gsbench synth "$OUT/session" --preset "$PRESET"
fi
$gsbench ingest "$OUT/session" -o "$OUT/dataset"
# a failed job is recorded in its results.json and shown on the leaderboard; exit non-zero after publishing
run_status=0
$gsbench run --method all --data "$OUT/dataset" --runs "$OUT/runs" --budget "$BUDGET" || run_status=$?
$gsbench leaderboard publish --runs "$OUT/runs" --out "$OUT/leaderboards"
exit "$run_status"
