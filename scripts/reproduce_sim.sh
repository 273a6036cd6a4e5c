#!/usr/bin/env bash
# Reproduce every RTL-simulation figure of docs/RESULTS-sim.md, one run at a time.
#
#   scripts/reproduce_sim.sh              # everything (about 20 min on 2 cores, builds included)
#   scripts/reproduce_sim.sh fault        # or: ice1000, ice-icarus, epoch, ulx3s, fault, tests
#
# Each run writes results/sim/<name>.json (ddfa simulate --json) and its wall and CPU
# time to results/sim/<name>.time; builds are cached in build/sim (a Verilator build of
# the icebreaker default takes about 75 s, of the ulx3s-85f default about 130 s).
set -euo pipefail
cd "$(dirname "$0")/.."
export DDFA_DATA_DIR="${DDFA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
DDFA="${DDFA:-.venv/bin/ddfa}"
OUT=results/sim
mkdir -p "$OUT"

run() {  # run NAME ARGS...   (ddfa simulate ARGS --json results/sim/NAME.json, timed)
  local name="$1"; shift
  echo "== ddfa simulate $* --json $OUT/$name.json"
  local rc=0
  /usr/bin/time -f "wall %e s, user %U s, system %S s" -o "$OUT/$name.time" \
    "$DDFA" simulate "$@" --json "$OUT/$name.json" || rc=$?
  cat "$OUT/$name.time"
  echo "exit status $rc" | tee -a "$OUT/$name.time"
}

what="${1:-all}"
if [[ $what == all || $what == ice1000 ]]; then
  run icebreaker-verilator-1000 --board icebreaker --simulator verilator --steps 1000
fi
if [[ $what == all || $what == ice-icarus ]]; then
  run icebreaker-icarus-100 --board icebreaker --simulator icarus --steps 100
fi
if [[ $what == all || $what == epoch ]]; then
  run icebreaker-verilator-epoch --board icebreaker --simulator verilator --epochs 1 --test all
  .venv/bin/ddfa train --board icebreaker --model fixed --epochs 1 --no-progress --json "$OUT/icebreaker-fixed-epoch.json"
fi
if [[ $what == all || $what == ulx3s ]]; then
  run ulx3s-verilator-200 --board ulx3s-85f --simulator verilator --steps 200 --test 1000
fi
if [[ $what == all || $what == fault ]]; then
  # A deliberate fault: the moving average of B1 adds B instead of subtracting it.
  rm -rf build/fault
  "$DDFA" generate --board icebreaker --out build/fault > /dev/null
  sed -i 's/assign diff = $signed(vd) - $signed(rp__data);/assign diff = $signed(vd) + $signed(rp__data);/' \
    build/fault/ddfa_processor.v
  grep -n 'assign diff = ' build/fault/ddfa_processor.v
  run fault-feedback-verilator --board icebreaker --simulator verilator --steps 20 --verilog build/fault
fi
if [[ $what == all || $what == tests ]]; then
  /usr/bin/time -f "wall %e s, user %U s, system %S s" -o "$OUT/pytest-sim.time" \
    .venv/bin/python -m pytest -n 2 -q tests/test_sim_bench.py tests/test_sim_readback.py --durations=10 \
    | tee "$OUT/pytest-sim.log"
  cat "$OUT/pytest-sim.time"
fi
