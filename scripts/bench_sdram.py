"""The SDRAM store's read bandwidth: MNIST records (393 words) read from the ULX3S's SDRAM
through ``hdl.sdram.SdramController`` into ``sim.sdram_model.SdramModel`` at 100 MHz.

Two access patterns, over enough records to span many refresh intervals (refresh included):

* ``sequential``: each record's words requested back to back, one a cycle when taken, the
  next record right after (a streaming reader);
* ``one_at_a_time``: the sample loader's pattern (``hdl.sample_loader``): a record word, then
  the input-table word of each of its two bytes, each request waiting for the last word.

The refresh share is ``1 - cycles without refresh / cycles``, the run repeated on a chip
whose tREFI (and tRAS maximum) is too long to need a refresh. Prints JSON.

    python scripts/bench_sdram.py [--records N] [--loader-records N] [--clock-mhz F]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ddfa.config.sdram import ULX3S_SDRAM  # noqa: E402
from ddfa.config.store import STORE_CAPACITY_WORDS, StoreLayout  # noqa: E402
from sim.sdram_model import Request, run_store  # noqa: E402

#: MNIST's layout in the ULX3S's store: a 256-word input table, then 393-word records.
LAYOUT = StoreLayout(capacity_words=STORE_CAPACITY_WORDS["ulx3s-85f"], code_bits=8, table_rows=1, n_inputs=784,
                     kind="sdram")
#: The processor's need: 40,000 samples/s at 100 MHz.
BUDGET_CYCLES = 2_500


def sequential(records: int) -> list[Request]:
    return [Request(LAYOUT.record_address(r) + k) for r in range(records) for k in range(LAYOUT.record_words)]


def one_at_a_time(records: int, words: dict[int, int]) -> list[Request]:
    out = []
    for r in range(records):
        for k in range(LAYOUT.record_words):
            addr = LAYOUT.record_address(r) + k
            out.append(Request(addr, wait=True))
            out += [Request(LAYOUT.table_address(0, words[addr] >> s & 0xFF), wait=True) for s in (0, 8)]
    return out


def measure(requests: list[Request], records: int, memory: dict, chip, clk_hz: float) -> dict:
    run = run_store(requests, chip, clk_hz, preset=memory)
    quiet = run_store(requests, replace(chip, t_refi_ns=1e9, t_ras_max_ns=1e9), clk_hz, preset=memory)
    for r in (run, quiet):
        if r.mismatches or r.violations:
            raise SystemExit(f"the run broke: {(r.mismatches + r.violations)[:3]}")
    return {"cycles_per_record": round(run.cycles / records, 1), "words_per_cycle": round(run.words / run.cycles, 3),
            "refresh_share": round(1 - quiet.cycles / run.cycles, 4), "refreshes": run.refreshes - chip.init_refreshes,
            "cycles_per_record_without_refresh": round(quiet.cycles / records, 1)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=40, help="records read back to back (default 40)")
    ap.add_argument("--loader-records", type=int, default=8, help="records read one word at a time (default 8)")
    ap.add_argument("--clock-mhz", type=float, default=100.0, help="the clock (default 100)")
    args = ap.parse_args(argv)
    clk = args.clock_mhz * 1e6
    chip = replace(ULX3S_SDRAM, t_powerup_ns=2_000)        # the power-up wait is not in the figures
    rng = random.Random(0)
    words = {a: rng.randrange(1 << 16) for a in range(LAYOUT.words(max(args.records, args.loader_records), 0))}
    out = {"chip": chip.name, "clock_mhz": args.clock_mhz, "record_words": LAYOUT.record_words,
           "records": args.records, "loader_records": args.loader_records, "budget_cycles_per_sample": BUDGET_CYCLES,
           "read_latency_cycles": chip.timing(clk).cl + 2,
           "sequential": measure(sequential(args.records), args.records, words, chip, clk),
           "one_at_a_time": measure(one_at_a_time(args.loader_records, words), args.loader_records, words, chip, clk)}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
