#!/usr/bin/env bash
# Training throughput of the neural models on the 10-million-event synthetic shop,
# on a GPU and, in the same run, on that machine's CPU as the reference: the GPU
# half of issue 4's speed bar, as one prepared script for the `device` tool.
#
# Here, once:        scripts/device_wheels.sh          (wheels the GPU image lacks, ~58 MiB)
# Then, via device:  run(command="bash scripts/device_throughput.sh", carry=[".device"], timeout_s=600)
# Results in $OUT:   log.txt and one JSON per bench_training.py call (see BENCHMARKS.md).
#
# Rehearsed on the CPU with a small shop:
#   OUT=/tmp/dt PY=.venv/bin/python N_EVENTS=50000 ACCELERATORS=cpu bash scripts/device_throughput.sh
set -euo pipefail
OUT=${OUT:-/tmp/recsys-device-out}
PY=${PY:-python3}
N_EVENTS=${N_EVENTS:-10000000}
ACCELERATORS=${ACCELERATORS:-gpu cpu}
DEPS=${DEPS:-/tmp/recsys-deps}
SHOP=${SHOP:-/tmp/recsys-shop}
STEPS=${STEPS:-50}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

if ! "$PY" -c "import polars, hydra, typer" 2>/dev/null; then
    "$PY" -m pip install --quiet --no-deps --no-index --target "$DEPS" .device/wheels/*.whl
    export PYTHONPATH="$DEPS:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
"$PY" -c "import os, torch; print(f'torch {torch.__version__}, cuda {torch.cuda.is_available()}, {os.cpu_count()} cpus')"

start=$SECONDS
data="paths.data_dir=$SHOP"
"$PY" -m recsys_cli datasets synth "$data" "data.generator.n_events=$N_EVENTS" data.generator.n_days=180 \
    data.generator.start=2024-01-01
"$PY" -m recsys_cli ingest "$data"
"$PY" -m recsys_cli split "$data"
"$PY" -m recsys_cli features "$data"
echo "shop of $N_EVENTS events ready in $((SECONDS - start)) s"

features="$SHOP/features/synth/global_temporal-engagement/default/fold-0/val"
bench() { "$PY" scripts/bench_training.py --features "$features" --steps "$STEPS" "$@"; }
for acc in $ACCELERATORS; do
    bench --accelerator "$acc" --models bpr_mf two_tower --out "$OUT/$acc-bpr_mf-two_tower.json"
    bench --accelerator "$acc" --models sasrec --override model.negatives=256 --out "$OUT/$acc-sasrec-256.json"
    if [ "$acc" = gpu ]; then  # the full softmax over the 82k-item catalogue: too slow to time on a CPU
        bench --accelerator gpu --models sasrec --out "$OUT/gpu-sasrec-full.json"
    fi
done
echo "done in $((SECONDS - start)) s"
