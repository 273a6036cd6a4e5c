#!/usr/bin/env bash
# The fixed-point golden model's results (docs/RESULTS-fixed.md), one run at a time.
# Usage: DDFA_DATA_DIR=../shared/data scripts/fixed_results.sh [digits|mnist|mnist-lr9|speed|all]
set -euo pipefail
cd "$(dirname "$0")/.."
export DDFA_DATA_DIR="${DDFA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
DDFA=".venv/bin/ddfa"
PY=".venv/bin/python"
what="${1:-all}"
mkdir -p results

if [[ $what == digits || $what == all ]]; then
  # Digits, icebreaker default, 10 epochs, batch of one: fixed point against the float
  # model in the hardware setting (same config, init, sample order), seeds 0-4.
  for seed in 0 1 2 3 4; do
    $DDFA train --board icebreaker --model fixed --seed $seed --no-progress \
      --json results/fixed-digits-icebreaker-ddfa-s$seed.json
    $DDFA train --board icebreaker --model float --seed $seed --no-progress \
      --json results/float-digits-icebreaker-ddfa-s$seed.json
  done
  # The same with the paper's input scaling, pixels in [-1, 1] (the default standardises).
  for seed in 0 1 2 3 4; do
    for model in fixed float; do
      $DDFA train --board icebreaker --inputs pm1 --model $model --seed $seed --no-progress \
        --json results/$model-digits-icebreaker-pm1-ddfa-s$seed.json
    done
  done
  # Determinism: the same run again gives the same state hash.
  $DDFA train --board icebreaker --model fixed --seed 0 --no-progress \
    --json results/fixed-digits-icebreaker-ddfa-s0-rerun.json
fi

if [[ $what == mnist || $what == all ]]; then
  # MNIST, ulx3s-85f default, 3 epochs, seeds 0-4: DDFA against random DFA through the same
  # model. The float model on the same configuration is the hardware setting of
  # scripts/reproduce_float.sh hardware (eta = alpha = 2^-8): seed 0 here, all seeds there.
  for seed in 0 1 2 3 4; do
    $DDFA train --board ulx3s-85f --model fixed --seed $seed --no-progress --json results/fixed-mnist-ulx3s-ddfa-s$seed.json
    $DDFA train --board ulx3s-85f --model fixed --algo dfa --seed $seed --no-progress --json results/fixed-mnist-ulx3s-dfa-s$seed.json
  done
  $DDFA train --board ulx3s-85f --model float --no-progress --json results/float-mnist-ulx3s-ddfa.json
fi

if [[ $what == mnist-lr9 ]]; then
  # The ulx3s-85f default at eta = 2^-9 (docs/RESULTS-fixed.md section 2; not the default).
  for seed in 0 1 2 3 4; do
    for algo in ddfa dfa; do
      for model in fixed float; do
        $DDFA train --board ulx3s-85f --set arith.lr_shift=9 --model $model --algo $algo --seed $seed \
          --no-progress --json results/$model-mnist-ulx3s-lr9-$algo-s$seed.json
      done
    done
  done
  $DDFA train --board ulx3s-85f --set arith.lr_shift=9 --set arith.rounding=stochastic --model fixed --algo dfa \
    --seed 0 --no-progress --json results/fixed-mnist-ulx3s-lr9-dfa-stochastic-s0.json
fi

if [[ $what == speed || $what == all ]]; then
  $PY scripts/fixed_speed.py
fi

$PY scripts/fixed_summary.py
