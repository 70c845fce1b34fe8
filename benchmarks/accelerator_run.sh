#!/usr/bin/env bash
# One call on an accelerator machine (no network needed): the test suite, the notebook's 2000-epoch
# reproduction of both losses, `mlpnn-jax train` to 98%, and the benchmark table, all into one folder.
#
#   bash benchmarks/accelerator_run.sh [OUT_DIR]       # default: $OUT, else accelerator-run-TIMESTAMP
#   QUICK=1 bash benchmarks/accelerator_run.sh DIR     # a smoke test of the script itself (CPU is fine)
#
# Needs mlpnn-jax installed with a JAX for the accelerator (README: "jax[cuda13]" or "jax[tpu]").
# Every step runs even if an earlier one fails; summary.txt lists each step's exit code and seconds.
set -u
cd "$(dirname "$0")/.."
out=${1:-${OUT:-accelerator-run-$(date +%Y%m%d-%H%M%S)}}
mkdir -p "$out"
summary="$out/summary.txt"
: >"$summary"
epochs=2000; quick_tests=()
if [ "${QUICK:-0}" = 1 ]; then epochs=20; quick_tests=(-k "not two_processes and not four_devices"); fi
export PYTHONUNBUFFERED=1

step() {  # step NAME COMMAND...: runs it, logs to OUT/NAME.log, records exit code and time
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name: $*" | tee -a "$summary"
  "$@" >"$out/$name.log" 2>&1
  local rc=$?
  echo "   exit $rc, $((SECONDS - t0)) s" | tee -a "$summary"
}

{
  date -u +"date %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
} >"$out/environment.txt" 2>&1
cat "$out/environment.txt" >>"$summary"

step tests python3 -m pytest -q -p no:cacheprovider "${quick_tests[@]}"  # on CPU: tests/conftest.py
# the gradient-equivalence and reproduction tests again, on the accelerator (JAX_PLATFORMS='' picks it),
# in one process (-n 0): not one pytest-xdist worker per core, each with its own share of the device
step tests_accelerator env JAX_PLATFORMS= python3 -m pytest -q -p no:cacheprovider -n 0 tests/test_gradients.py tests/test_reproduce.py
step reproduce_f64 mlpnn-jax reproduce --loss both --epochs "$epochs" --dtype float64 --out "$out/reproduce_f64"
step reproduce_f32 mlpnn-jax reproduce --loss both --epochs "$epochs" --dtype float32 --out "$out/reproduce_f32"
step train mlpnn-jax train --target-accuracy 0.98 --out "$out/train" --overwrite
step train_deterministic mlpnn-jax train --target-accuracy 0.98 --deterministic --out "$out/train_det" --overwrite
if [ "${QUICK:-0}" = 1 ]; then
  step bench python3 benchmarks/bench.py --quick --json "$out/bench.json"
else
  step bench python3 benchmarks/bench.py --json "$out/bench.json"
fi
echo "wrote $out" | tee -a "$summary"
