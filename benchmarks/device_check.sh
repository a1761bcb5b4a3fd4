#!/usr/bin/env bash
# GPU check in one script (about 8 minutes): the throughput table (quickstart, small, garg_linear
# in float32 and bfloat16, batch 64 and 512) and the garg_linear_cpu recipe for 2 minutes of
# training with its learning curve, printed as one report.
#
#   bash benchmarks/device_check.sh            # on a machine with one GPU and JAX installed
#   OUT=/some/dir bash benchmarks/device_check.sh
#
# Installs the project without touching the preinstalled JAX when its other dependencies are
# missing. Each stage has its own time limit so that the whole stays under 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"

if ! "$PY" -c "import flax, optax, orbax.checkpoint, hydra, matplotlib, tqdm" 2>/dev/null; then
  # --no-deps for the project itself keeps the image's JAX; the rest installs as usual.
  "$PY" -m pip install -q "flax>=0.12.8,<0.13" "optax>=0.2.5,<0.3" \
    "orbax-checkpoint>=0.11.20,<0.13" "hydra-core>=1.3.2,<1.4" matplotlib tqdm
  "$PY" -m pip install -q --no-deps -e .
fi
"$PY" -c "import jax; d = jax.devices(); print('[check]', jax.__version__, d); \
assert d[0].platform == 'gpu', 'no GPU visible'"

# 1. Throughput: 3 configs x 2 dtypes x 2 batch sizes = 12 rows (about 20-30 s each).
timeout 330 "$PY" benchmarks/train_throughput.py --repeats 3 --peak-seconds 0.3 \
  --dtypes float32 bfloat16 --batch-sizes 64 512 --json "$OUT/throughput.json" \
  > "$OUT/throughput.md" 2> "$OUT/throughput.log" || echo "[check] throughput: exit $?"

# 2. The CPU recipe on the GPU for at most 2 minutes of training (checkpoints every 600 steps).
timeout 150 "$PY" -m icl_regression.train preset=garg_linear_cpu progress=false \
  hydra.run.dir="$OUT/garg_linear_cpu" > "$OUT/train.log" 2>&1 || echo "[check] train: exit $?"
timeout 60 "$PY" benchmarks/learning_curve.py "$OUT/garg_linear_cpu" --n-prompts 2000 \
  > "$OUT/curve.md" 2> "$OUT/curve.log" || echo "[check] learning curve: exit $?"

echo "## Throughput ($(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1))"
cat "$OUT/throughput.md"
echo
echo "## garg_linear_cpu on this GPU (2-minute cap)"
grep -v '^{' "$OUT/curve.md" || true
tail -1 "$OUT/garg_linear_cpu/metrics.jsonl" 2>/dev/null || true
echo "[check] logs in $OUT"
