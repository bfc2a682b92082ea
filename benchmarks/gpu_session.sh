#!/usr/bin/env bash
# One unattended session on a lent GPU machine that has torch but neither Ray nor a network:
# install the wheels from benchmarks/device_wheels.py (carried in .whl/), run the default 5-seed
# IMDB grid through the real sweeps/imdb_grid.py, then the packing curve (benchmarks/gpu_group.py),
# then the grammar study's 120 members fused against one at a time (benchmarks/bench_grammar_group.py,
# n cut to GRAMMAR_N words so that it fits the session, eager and with compiled LSTM cells; GRAMMAR=0 skips it).
# Every number lands in $OUT (default ./gpu_out). `CHECK=1` runs a one-minute smoke of both instead.
#
#   RNNBENCH_IMDB=path/to/aclImdb_labelled.tar.gz bash benchmarks/gpu_session.sh
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export RNNBENCH_IMDB=${RNNBENCH_IMDB:-$PWD/.data/aclImdb_labelled.tar.gz}
out=${OUT:-gpu_out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__)" | tee -a "$out/gpu.txt"

if [ "${CHECK:-0}" = 1 ]; then
  python3 benchmarks/gpu_group.py --tiny --out "$out/tiny" > "$out/tiny.log" 2>&1; echo "gpu_group tiny exit $?"
  python3 sweeps/imdb_grid.py --preset smoke --epochs 1 --storage /tmp/rnnbench --name check > "$out/check.log" 2>&1
  echo "check grid exit $?"; tail -25 "$out/check.log"; tail -5 "$out/tiny.log"
  python3 -m benchmarks.bench_grammar_group --device cuda --threads 1 --members 8 --n 2000 --out "$out/grammar_tiny.json" \
    > "$out/grammar_tiny.log" 2>&1; echo "grammar tiny exit $?"; tail -4 "$out/grammar_tiny.log"
  exit 0
fi

start=$(date +%s)
timeout "${GRID_S:-330}" python3 sweeps/imdb_grid.py --storage /tmp/rnnbench --name imdb_grid ${GRID_ARGS:-} > "$out/grid.log" 2>&1
echo "grid exit $? wall $(( $(date +%s) - start )) s" | tee -a "$out/grid.log"
python3 -m rnnbench.results /tmp/rnnbench/imdb_grid --export "$out/grid_rows.csv" > "$out/grid_report.txt" 2>&1
timeout "${PACK_S:-200}" python3 benchmarks/gpu_group.py --out "$out" --budget-s "${PACK_BUDGET_S:-120}" > "$out/gpu_group.log" 2>&1
echo "gpu_group exit $?"
if [ "${GRAMMAR:-1}" = 1 ]; then
  timeout "${GRAMMAR_S:-240}" python3 -m benchmarks.bench_grammar_group --device cuda --threads 1 --n "${GRAMMAR_N:-30000}" \
    --out "$out/grammar_group.json" > "$out/grammar_group.log" 2>&1
  echo "grammar group exit $?"; tail -4 "$out/grammar_group.log"
  timeout "${GRAMMAR_S:-240}" python3 -m benchmarks.bench_grammar_group --device cuda --threads 1 --n "${GRAMMAR_N:-30000}" \
    --compile --no-mixed --out "$out/grammar_group_compiled.json" > "$out/grammar_group_compiled.log" 2>&1
  echo "grammar group, compiled cells, exit $?"; tail -4 "$out/grammar_group_compiled.log"
fi
grep -v "INFO\|WARNING" "$out/grid.log" | tail -40
cat "$out/gpu_group.txt"
