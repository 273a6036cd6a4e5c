#!/usr/bin/env bash
# The deep examples' results (docs/results/deep.md): fixed-point accuracy over seeds 0-4
# for DDFA, random DFA and backpropagation, and the Verilator runs, one run at a time.
# Usage: DDFA_DATA_DIR=../shared/data scripts/deep_results.sh [train|simulate|all]
# Then: .venv/bin/python scripts/deep_summary.py
set -euo pipefail
cd "$(dirname "$0")/.."
export DDFA_DATA_DIR="${DDFA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
DDFA=".venv/bin/ddfa"
what="${1:-all}"
mkdir -p results/deep

if [[ $what == train || $what == all ]]; then
  # digits: the configuration's 10 epochs; MNIST: 1 epoch.
  for spec in "icebreaker-deep:" "ulx3s-deep:--epochs 1" "ulx3s-deep3:--epochs 1"; do
    c=${spec%%:*}; extra=${spec#*:}
    for algo in ddfa dfa bp; do
      for seed in 0 1 2 3 4; do
        # shellcheck disable=SC2086
        $DDFA train --config examples/$c.toml --model fixed --algo $algo --seed $seed $extra --threads 1 \
          --no-progress --json results/deep/fixed-$c-$algo-s$seed.json || true    # a diverged run exits 1
      done
    done
  done
  # Other learning rates: random DFA at 2**-9 with two hidden layers; DDFA and DFA at
  # the default's 2**-8 with three. The float model's random DFA, seed 0.
  for seed in 0 1 2 3 4; do
    $DDFA train --config examples/ulx3s-deep.toml --set arith.lr_shift=9 --model fixed --algo dfa --seed $seed \
      --epochs 1 --threads 1 --no-progress --json results/deep/fixed-ulx3s-deep-dfa-lr9-s$seed.json || true
    for algo in ddfa dfa; do
      $DDFA train --config examples/ulx3s-deep3.toml --set arith.lr_shift=8 --model fixed --algo $algo --seed $seed \
        --epochs 1 --threads 1 --no-progress --json results/deep/fixed-ulx3s-deep3-$algo-lr8-s$seed.json || true
    done
  done
  $DDFA train --config examples/ulx3s-deep.toml --model float --algo dfa --seed 0 --epochs 1 --threads 1 \
    --no-progress --json results/deep/float-ulx3s-deep-dfa-s0.json || true
  $DDFA train --config examples/ulx3s-deep.toml --model float --algo dfa --seed 0 --epochs 1 --lr 0.001953125 \
    --threads 1 --no-progress --json results/deep/float-ulx3s-deep-dfa-lr9-s0.json
fi

if [[ $what == simulate || $what == all ]]; then
  $DDFA simulate --config examples/icebreaker-deep.toml --simulator verilator --steps 300 --test 100 \
    --no-progress --json results/deep/sim-icebreaker-deep.json
  $DDFA simulate --config examples/ulx3s-deep.toml --simulator verilator --steps 100 --test 100 \
    --no-progress --json results/deep/sim-ulx3s-deep.json
  $DDFA simulate --config examples/ulx3s-deep3.toml --simulator verilator --steps 50 --test 100 \
    --no-progress --json results/deep/sim-ulx3s-deep3.json
fi
