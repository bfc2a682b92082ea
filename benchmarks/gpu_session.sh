#!/usr/bin/env bash
# One unattended session on a lent GPU machine that has torch but neither Ray nor a network:
# install the wheels from benchmarks/device_wheels.py (carried in .whl/), then run the PARTS asked
# for, in order, each under its own time limit. Every number lands in $OUT (default ./gpu_out).
#
#   tests         the CUDA-graph tests (tests/test_cuda_graphs.py: graphed groups train what eager ones train)
#   grammar_grid  the default grammar grid (120 members) through the real sweeps/grammar_grid.py, one epoch
#                 (GRID_EPOCHS; all 10 do not fit a lease), eager and then with --cuda-graphs true
#   imdb_grid     the default IMDB grid (90 members) through the real sweeps/imdb_grid.py, the same way
#   pack          the classifier packing curve (benchmarks/gpu_group.py)
#   grammar       bench_grammar_group: the 120 grammar members fused against one at a time (n = GRAMMAR_N),
#                 eager and with CUDA graphs
#
# The grid parts add one row each to $OUT/rows.md (a BENCHMARKS.md table: completed member-epochs
# from the experiment's record over the wall time, Ray's start and the data included). A 15-minute
# lease fits two calls of under 10 minutes, e.g.
#
#   PARTS="tests grammar_grid" bash benchmarks/gpu_session.sh
#   PARTS="imdb_grid" RNNBENCH_IMDB=path/to/aclImdb_labelled.tar.gz bash benchmarks/gpu_session.sh
#
# `CHECK=1` runs a one-minute smoke of the sweeps and the benchmarks instead.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
export RNNBENCH_IMDB=${RNNBENCH_IMDB:-$PWD/.data/aclImdb_labelled.tar.gz}
out=${OUT:-gpu_out}
store=/tmp/rnnbench
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, ray; print('torch', torch.__version__, 'ray', ray.__version__)" | tee -a "$out/gpu.txt"

if [ "${CHECK:-0}" = 1 ]; then
  python3 benchmarks/gpu_group.py --tiny --out "$out/tiny" > "$out/tiny.log" 2>&1; echo "gpu_group tiny exit $?"
  python3 sweeps/imdb_grid.py --preset smoke --epochs 1 --storage $store --name check > "$out/check.log" 2>&1
  echo "check grid exit $?"; tail -25 "$out/check.log"; tail -5 "$out/tiny.log"
  python3 -m benchmarks.bench_grammar_group --device cuda --threads 1 --members 8 --n 2000 --out "$out/grammar_tiny.json" \
    > "$out/grammar_tiny.log" 2>&1; echo "grammar tiny exit $?"; tail -4 "$out/grammar_tiny.log"
  exit 0
fi

# grid NAME SCRIPT [FLAGS...]: GRID_EPOCHS (default 1) epochs of SCRIPT's default grid, timed, and its row in rows.md
grid() {
  local name=$1 script=$2
  shift 2
  local start rc wall done
  start=$(date +%s)
  timeout "${GRID_S:-270}" python3 "$script" --epochs "${GRID_EPOCHS:-1}" --storage $store --name "$name" "$@" > "$out/$name.log" 2>&1
  rc=$?
  wall=$(( $(date +%s) - start ))
  python3 -m rnnbench.results $store/"$name" --export "$out/$name.csv" > "$out/$name.report.txt" 2>&1
  done=$(python3 -c "import pandas; print(len(pandas.read_csv('$out/$name.csv')))" 2>/dev/null || echo 0)
  echo "| $name | ${*:-eager} | exit $rc | $done | $wall | $(python3 -c "print(f'{$done / $wall:.3f}')") |" | tee -a "$out/rows.md"
  grep -v "INFO\|WARNING" "$out/$name.log" | tail -15
}

[ -f "$out/rows.md" ] || echo "| run | flags | end | member-epochs done | wall s | member-epochs/s |" > "$out/rows.md"
for part in ${PARTS:-tests grammar_grid}; do
  case $part in
    tests)
      timeout "${TESTS_S:-180}" python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py > "$out/tests.log" 2>&1
      echo "cuda graph tests exit $?"; tail -15 "$out/tests.log" ;;
    grammar_grid)
      grid grammar_eager sweeps/grammar_grid.py
      grid grammar_graphs sweeps/grammar_grid.py --cuda-graphs true ;;
    imdb_grid)
      python3 -c "from rnnbench.train.classifier import ClassifierConfig, load_data; load_data(ClassifierConfig())"  # tokenized once, before both
      grid imdb_eager sweeps/imdb_grid.py
      grid imdb_graphs sweeps/imdb_grid.py --cuda-graphs true ;;
    pack)
      timeout "${PACK_S:-200}" python3 benchmarks/gpu_group.py --out "$out" --budget-s "${PACK_BUDGET_S:-120}" > "$out/gpu_group.log" 2>&1
      echo "gpu_group exit $?"; cat "$out/gpu_group.txt" ;;
    grammar)
      for flag in "" --cuda-graphs; do
        timeout "${GRAMMAR_S:-240}" python3 -m benchmarks.bench_grammar_group --device cuda --threads 1 --n "${GRAMMAR_N:-30000}" \
          $flag --out "$out/grammar_group$flag.json" > "$out/grammar_group$flag.log" 2>&1
        echo "grammar group $flag exit $?"; tail -4 "$out/grammar_group$flag.log"
      done ;;
    *) echo "unknown part $part; use tests, grammar_grid, imdb_grid, pack or grammar"; exit 2 ;;
  esac
done
cat "$out/rows.md"
