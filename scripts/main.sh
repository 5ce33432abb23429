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
# LSE-D/LSE-C need a SyncNet. The official syncnet_v2 cannot be downloaded here, so unless it is
# registered (gsbench weights add syncnet-v2 FILE), train OUR SyncNet on the dataset's train split:
# it is stored as syncnet-gsbench-<sha8> and every LSE on the leaderboard names it (never comparable
# with papers' LSE). A finished one in OUT/weights is kept (delete it to retrain). 300 steps (not the
# command's 1500) keep the demo's CPU time down: ~1.5 CPU-s per step on this 2-core machine.
export GSBENCH_WEIGHTS="$OUT/weights${GSBENCH_WEIGHTS:+:$GSBENCH_WEIGHTS}"
syncnet=syncnet-v2
if ! $gsbench weights find syncnet-v2 >/dev/null 2>&1; then
  trained=$(ls "$OUT"/weights/syncnet-gsbench-*.pt 2>/dev/null | head -n 1 || true)
  if [ -z "$trained" ]; then
    $gsbench weights train-syncnet "$OUT/dataset" --out "$OUT/weights" --steps "${GSBENCH_SYNCNET_STEPS:-300}"
    trained=$(ls "$OUT"/weights/syncnet-gsbench-*.pt | head -n 1)
  fi
  syncnet=$(basename "$trained" .pt)
  echo "LSE-D/LSE-C: scored with $syncnet (trained here on the dataset, not the official syncnet_v2)" >&2
fi
# a failed job is recorded in its results.json and shown on the leaderboard; exit non-zero after publishing
run_status=0
$gsbench run --method all --data "$OUT/dataset" --runs "$OUT/runs" --budget "$BUDGET" --syncnet "$syncnet" \
  || run_status=$?
$gsbench leaderboard publish --runs "$OUT/runs" --out "$OUT/leaderboards" --site "$OUT/site"
echo "leaderboard site (open in a browser, works offline): $OUT/site/index.html"
exit "$run_status"
