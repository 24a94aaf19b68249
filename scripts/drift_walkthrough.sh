#!/usr/bin/env bash
# The drift walk-through of docs/guide/monitoring.md, end to end, in a folder of its own (default
# ./walkthrough): a shop whose tastes change on day 60, a production model trained
# before the change, served; the monitor alerting; a warm-started retrain promoted
# by the guard; the monitor and the service seeing the new version.
#   bash scripts/drift_walkthrough.sh [FOLDER]
set -euo pipefail
RECSYS="${RECSYS:-recsys}"
DIR="${1:-walkthrough}"
PORT="${PORT:-8765}"
mkdir -p "$DIR" && cd "$DIR"
CUT=(split.val_cutoff=2026-02-23T00:00:00Z split.test_cutoff=2026-03-02T00:00:00Z)

echo "== 1. a shop with shocks from day 60, and a model trained on the days before it"
"$RECSYS" datasets synth data=synth_drift
"$RECSYS" ingest data=synth_drift
"$RECSYS" split data=synth_drift "${CUT[@]}"
"$RECSYS" features data=synth_drift "${CUT[@]}"
"$RECSYS" train data=synth_drift "${CUT[@]}" model=als part=val+test
RUN=$(ls -d runs/als/*/ | tail -1)        # the refit: trained on everything before day 60
"$RECSYS" export "$RUN" --name shop-als   # pushed to ./registry as version 1
"$RECSYS" registry promote shop-als 1 --alias production

echo "== 2. serve it"
"$RECSYS" serve serve.auth=false --port "$PORT" > serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "localhost:$PORT/readyz" > /dev/null && break; sleep 1; done
curl -s "localhost:$PORT/version"; echo

echo "== 3. the monitor sees the shock (exit 3: an alert)"
"$RECSYS" monitor --model shop-als || echo "monitor exit code: $?"

echo "== 4. retrain: warm start from production, guarded promotion"
"$RECSYS" retrain --model shop-als
"$RECSYS" retrain --model shop-als        # the same lake again: nothing new

echo "== 5. the service takes the new version; the monitor compares it with the lake"
curl -s -X POST "localhost:$PORT/admin/reload"; echo
curl -s "localhost:$PORT/version"; echo
"$RECSYS" monitor --model shop-als || echo "monitor exit code: $?"
"$RECSYS" registry list shop-als
