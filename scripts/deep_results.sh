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
          --no-progress --json results/deep/fixed-$c-$algo-s$seed.json
      done
    done
  done
fi

if [[ $what == simulate || $what == all ]]; then
  $DDFA simulate --config examples/icebreaker-deep.toml --simulator verilator --steps 300 --test 100 \
    --no-progress --json results/deep/sim-icebreaker-deep.json
  for c in ulx3s-deep ulx3s-deep3; do
    $DDFA simulate --config examples/$c.toml --simulator verilator --steps 100 --test 100 \
      --no-progress --json results/deep/sim-$c.json
  done
fi
