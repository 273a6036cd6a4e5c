#!/usr/bin/env python3
"""Wall time of ``ddfa sweep`` on local workers against the same jobs one after another.

The same ``--jobs`` trainings (the fixed-point golden model on digits, the icebreaker
default, ``--epochs`` epochs, seeds 0, 1, ...) run twice in one process:

1. one after another in this process (:func:`ddfa.cli.sweep.run_job` in a loop: no Dask,
   no worker start, the imports already paid);
2. as ``ddfa sweep SPEC --workers W`` (a new local Dask cluster of W processes, one thread
   each; its start and the workers' imports are counted).

The JSON (``--json``) has both wall times, their ratio (sweep / sequential; below 1 the
sweep is faster), the worker count, the CPU count and the 1-minute load before and after
each part (other work on the machine slows both).

Usage::

    python scripts/bench_sweep.py --json results/bench/sweep.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ddfa.cli import main                                   # noqa: E402
from ddfa.cli.output import write_json                      # noqa: E402
from ddfa.cli.sweep import load_spec, run_job               # noqa: E402

SPEC = """\
[sweep]
command = "train"
out = "{out}"
name = "s{{seed}}-{{id}}"

[args]
board = "icebreaker"
model = "fixed"
epochs = {epochs}
threads = 1
no-progress = true

[grid]
seed = {seeds}
"""


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def main_bench(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=8, help="trainings (default 8)")
    ap.add_argument("--epochs", type=int, default=30, help="epochs of each training (default 30)")
    ap.add_argument("--workers", type=int, default=2, help="local Dask workers (default 2)")
    ap.add_argument("--json", metavar="PATH", help="write the figures here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ddfa-bench-sweep-") as td:
        td = Path(td)
        spec = td / "bench.toml"
        figures = {"jobs": args.jobs, "epochs": args.epochs, "workers": args.workers, "cpus": os.cpu_count(),
                   "host": platform.node(), "date": time.strftime("%Y-%m-%d", time.gmtime())}

        spec.write_text(SPEC.format(out=td / "sequential", epochs=args.epochs, seeds=list(range(args.jobs))))
        _, jobs = load_spec(spec)
        figures["load_before_sequential"] = _load()
        t0 = time.perf_counter()
        records = [run_job(j) for j in jobs]
        figures["sequential_s"] = round(time.perf_counter() - t0, 2)
        figures["load_after_sequential"] = _load()
        assert all(r["status"] == "done" for r in records), records

        spec.write_text(SPEC.format(out=td / "sweep", epochs=args.epochs, seeds=list(range(args.jobs))))
        figures["load_before_sweep"] = _load()
        t0 = time.perf_counter()
        status = main(["sweep", str(spec), "--workers", str(args.workers), "--no-progress"])
        figures["sweep_s"] = round(time.perf_counter() - t0, 2)
        figures["load_after_sweep"] = _load()
        assert status == 0, f"the sweep failed (exit {status})"
        rows = json.loads((td / "sweep" / "sweep.json").read_text())["jobs"]
        assert len(rows) == args.jobs and all(r["status"] == "done" and not r["kept"] for r in rows)
    figures["ratio"] = round(figures["sweep_s"] / figures["sequential_s"], 3)
    print(f"{args.jobs} jobs: one after another {figures['sequential_s']} s, sweep on {args.workers} workers "
          f"{figures['sweep_s']} s, ratio {figures['ratio']} (1-minute load {figures['load_before_sequential']} "
          f"... {figures['load_after_sweep']}, {figures['cpus']} CPUs)")
    if args.json:
        write_json(args.json, figures)
    return figures


if __name__ == "__main__":
    main_bench()
