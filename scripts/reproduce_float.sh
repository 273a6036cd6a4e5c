#!/usr/bin/env bash
# Reproduce every float-model figure of docs/RESULTS-float.md, one run at a time.
#
#   scripts/reproduce_float.sh            # all experiments (about 1.5 h on 2 cores)
#   scripts/reproduce_float.sh table1     # or: alignment, hardware, hardware_sweep, ablation,
#                                         #     speed, report (re-render)
#   scripts/reproduce_float.sh full100 [options]   # the paper's full 100-epoch protocol (below)
#
# Results go to results/<experiment>/*.json (one file per run, written by
# 'ddfa train --json'), reports (table.md and PNG plots) to results/<experiment>/report/.
# Batch-64 runs use one torch thread (--threads 1): when other jobs hold the cores a second
# OpenMP thread loses far more to waiting than it gains; batch-of-one runs use one thread
# by default. The full 100-epoch protocol of the paper's Table I is
# 'scripts/reproduce_float.sh full100' (about ten days of one core; --print lists it).
set -euo pipefail
cd "$(dirname "$0")/.."
export DDFA_DATA_DIR="${DDFA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
DDFA="${DDFA:-.venv/bin/ddfa}"
PY="${PY:-.venv/bin/python}"
SEEDS="${SEEDS:-0 1 2}"

train() {  # train OUT.json ARGS...  (skips a run whose JSON records this very command; FORCE=1 reruns)
  local out="$1"; shift
  local cmd="ddfa train --no-progress $* --json $out"
  if [[ "${FORCE:-0}" != 1 && -s "$out" ]] && "$PY" -c 'import json, sys
sys.exit(json.load(open(sys.argv[1])).get("command") != sys.argv[2])' "$out" "$cmd"; then
    echo "have $out"; return
  fi
  "$DDFA" train --no-progress "$@" --json "$out"
}

# (a) Table I, reduced protocol: no BN, paper setting (Adam 1e-4, batch 64, Gaussian v,
#     Adam feedback alpha 1e-4, lr decay 0.95/epoch), 3 epochs x 3 seeds, four algorithms.
table1() {
  for spec in "mnist 1x800" "mnist 2x800" "fashion-mnist 2x800"; do
    set -- $spec
    for seed in $SEEDS; do
      for algo in bp dfa dkp ddfa; do
        train "results/table1/$1-$2-$algo-s$seed.json" --algo "$algo" --dataset "$1" --arch "$2" \
          --setting paper --epochs 3 --seed "$seed" --threads 1
      done
    done
  done
  report_table1
}
report_table1() {
  "$DDFA" report results/table1 --out results/table1/report \
    --title "Reduced Table I (no BN): 3 epochs, paper setting, seeds $SEEDS"
}

# (b) Gradient alignment after one epoch of MNIST, 3 hidden layers of 800, paper setting.
alignment() {
  for seed in $SEEDS; do
    for algo in bp dfa dkp ddfa; do
      train "results/alignment/mnist-3x800-$algo-s$seed.json" --algo "$algo" --dataset mnist --arch 3x800 \
        --setting paper --epochs 1 --seed "$seed" --threads 1
    done
  done
  report_alignment
}
report_alignment() {
  "$DDFA" report results/alignment --out results/alignment/report \
    --title "Alignment after one epoch, MNIST 3x800, paper setting"
}

# (c) Training throughput in one run (paper 2x800 batch 64: DDFA vs BP; hardware 1x800 batch 1).
speed() {
  "$PY" scripts/speed_float.py --out results/speed/speed.json
}

# (d) The hardware setting worth building: MNIST 784-128-10, batch of one, SGD eta = 2^-8,
#     Rademacher v, moving-average feedback alpha = 2^-8, no BN, 3 epochs (the ulx3s-85f
#     fixed-point default uses the same eta and alpha: arith.lr_shift = alpha_shift = 8).
hardware() {
  for seed in $SEEDS; do
    for algo in bp dfa ddfa; do
      train "results/hardware/mnist-784-128-10-$algo-s$seed.json" --algo "$algo" --dataset mnist \
        --arch 784-128-10 --setting hardware --lr 0.00390625 --alpha 0.00390625 --epochs 3 --seed "$seed"
    done
  done
  report_hardware
}
report_hardware() {
  "$DDFA" report results/hardware --out results/hardware/report \
    --title "Hardware setting: MNIST 784-128-10, batch 1, SGD 2^-8, Rademacher, EMA 2^-8, 3 epochs"
}

# (d') Sensitivity of (d): two more seeds of the setting, the previous feedback rate
#      alpha = 2^-6, and the learning rate one step either side (at alpha = 2^-6); same
#      network, 3 epochs, batch of one.
hardware_sweep() {
  local d=results/hardware-sweep H="--dataset mnist --arch 784-128-10 --setting hardware --epochs 3"
  for seed in 3 4; do
    for algo in dfa ddfa; do
      train $d/lr2e-8-alpha2e-8-$algo-s$seed.json --algo $algo $H --lr 0.00390625 --alpha 0.00390625 --seed $seed
    done
  done
  for seed in 0 1 2 3 4; do
    train $d/lr2e-8-ddfa-s$seed.json --algo ddfa $H --lr 0.00390625 --alpha 0.015625 --seed $seed
  done
  for seed in $SEEDS; do
    for algo in dfa ddfa; do
      train $d/lr2e-7-$algo-s$seed.json --algo $algo $H --lr 0.0078125 --alpha 0.015625 --seed $seed
      train $d/lr2e-9-$algo-s$seed.json --algo $algo $H --lr 0.001953125 --alpha 0.015625 --seed $seed
    done
  done
  report_hardware_sweep
}
report_hardware_sweep() {
  "$DDFA" report results/hardware results/hardware-sweep --out results/hardware-sweep/report \
    --title "Hardware setting, MNIST 784-128-10: sensitivity to seed, learning rate and alpha"
}

# (e) Ablation on MNIST 1x800, DDFA, 3 epochs, seed 0: each departure from the paper's
#     setting alone, then the hardware setting and departures back from it.
ablation() {
  local A="--dataset mnist --arch 1x800 --epochs 3 --seed 0"
  local P="$A --setting paper --threads 1"
  local H="$A --setting hardware --lr 0.00390625 --alpha 0.015625"
  local d=results/ablation
  train $d/paper.json                 --algo ddfa $P
  train $d/paper-dfa.json             --algo dfa  $P
  train $d/paper-rademacher.json      --algo ddfa $P --directions rademacher
  for k in 4 6 8 10; do
    train $d/paper-ema-2e-$k.json     --algo ddfa $P --feedback-update ema --alpha "$($PY -c "print(2**-$k)")"
  done
  for k in 2 4 6; do
    train $d/paper-sgd-2e-$k.json     --algo ddfa $P --optimizer sgd --lr "$($PY -c "print(2**-$k)")"
  done
  train $d/paper-batch1.json          --algo ddfa $P --batch-size 1
  train $d/hardware.json              --algo ddfa $H
  train $d/hardware-dfa.json          --algo dfa  $H
  train $d/hardware-gaussian.json     --algo ddfa $H --directions gaussian
  train $d/hardware-adam-feedback.json --algo ddfa $H --feedback-update adam --alpha 0.0001
  for k in 4 8 10; do
    train $d/hardware-ema-2e-$k.json  --algo ddfa $H --alpha "$($PY -c "print(2**-$k)")"
  done
  train $d/hardware-batch64.json      --algo ddfa $H --batch-size 64 --lr 0.0625 --threads 1
  report_ablation
}
report_ablation() {
  "$PY" scripts/ablation_table.py results/ablation > results/ablation/table.md
  cat results/ablation/table.md
}

# The full protocol of the paper's Table I (no BN): 100 epochs x 10 seeds, all four
# algorithms, MNIST/Fashion-MNIST x 1x800/2x800/3x800/conv (about ten days of one core):
# the sweep spec examples/sweeps/paper-full100.toml, run by 'ddfa sweep' on local worker
# processes or on the workers of a Dask scheduler (docs/SWEEPS.md).
#   scripts/reproduce_float.sh full100 [--epochs N] [--datasets "mnist fashion-mnist"]
#       [--archs "1x800 2x800 3x800 conv"] [--seeds "0 1 ... 9"] [--algos "bp dfa dkp ddfa"]
#       [--bn] [--out DIR] [--workers N] [--scheduler tcp://HOST:PORT] [--print]
# --bn on every run gives Table II; --print lists the commands without running them. A run
# stopped halfway and started again runs only the trainings whose results are missing.
# A smoke test of one configuration:
#   scripts/reproduce_float.sh full100 --epochs 1 --datasets mnist --archs 1x800 --seeds 0 \
#       --algos ddfa --out build/full100-smoke
full100() {
  local epochs=100 seeds="0 1 2 3 4 5 6 7 8 9" out=results/full100 print=0 bn=0
  local sweep=(examples/sweeps/paper-full100.toml)
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --epochs|--datasets|--archs|--seeds|--algos|--out|--workers|--scheduler)
        if [[ $# -lt 2 ]]; then
          echo "reproduce_float.sh full100: $1 needs a value. Fix: e.g. $1 ${epochs}" >&2; exit 2
        fi
        case "$1" in
          --epochs) epochs="$2";; --datasets) sweep+=(--grid "dataset=$2");; --archs) sweep+=(--grid "arch=$2");;
          --seeds) seeds="$2";; --algos) sweep+=(--grid "algo=$2");; --out) out="$2";;
          --workers|--scheduler) sweep+=("$1" "$2");;
        esac
        shift 2;;
      --bn) bn=1; sweep+=(--arg bn=true); shift;;
      --print) print=1; sweep+=(--print); shift;;
      *) echo "reproduce_float.sh full100: unknown option '$1'. Fix: use --epochs N, --datasets, --archs," \
              "--seeds, --algos (space-separated lists in quotes), --bn, --out DIR, --workers N," \
              "--scheduler tcp://HOST:PORT or --print" >&2; exit 2;;
    esac
  done
  if ! [[ "$epochs" =~ ^[1-9][0-9]*$ ]]; then
    echo "reproduce_float.sh full100: --epochs '$epochs' is not a positive whole number. Fix: e.g. --epochs 100" >&2
    exit 2
  fi
  sweep+=(--arg "epochs=$epochs" --grid "seed=$seeds" --out "$out")
  local status=0
  "$DDFA" sweep "${sweep[@]}" || status=$?
  [[ $status == 2 ]] && exit 2                      # the spec or an option was refused: nothing ran
  local title="Table I, full protocol (no BN): $epochs epochs, paper setting, seeds $seeds"
  [[ $bn == 1 ]] && title="Table II, full protocol (BN): $epochs epochs, paper setting, seeds $seeds"
  if [[ $print == 1 ]]; then
    echo "ddfa report $out/*.json (not sweep.json) --out $out/report --title \"$title\""
    return
  fi
  local runs=() f                                   # the runs' results, not the sweep's table
  for f in "$out"/*.json; do [[ $f == */sweep.json ]] || runs+=("$f"); done
  "$DDFA" report "${runs[@]}" --out "$out/report" --title "$title"
  return $status
}

report() {  # re-render every table and plot from the results JSON already there
  report_table1; report_alignment; report_hardware; report_hardware_sweep; report_ablation
}

if [[ "${1:-}" == full100 ]]; then shift; full100 "$@"; exit; fi
if [[ $# -eq 0 ]]; then set -- table1 alignment hardware hardware_sweep ablation speed; fi
for step in "$@"; do
  case "$step" in
    table1|alignment|speed|hardware|hardware_sweep|ablation|report) ;;
    *) echo "reproduce_float.sh: unknown experiment '$step'. Fix: use table1, alignment, hardware," \
            "hardware_sweep, ablation, speed, report or full100 [options]" >&2; exit 2;;
  esac
done
for step in "$@"; do "$step"; done
