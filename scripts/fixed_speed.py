#!/usr/bin/env python
"""Training throughput of the fixed-point golden model (samples/s, batch of one).

Runs ``train_fixed`` for one epoch of digits on the icebreaker default (no alignment
probes) ``--repeats`` times, and 2,000 steps of MNIST on the ulx3s-85f default, and
writes ``results/fixed-speed.json`` with every repeat, the median and the best, the
torch thread count and the machine's load average (the CPU is shared: a busy machine
lowers the numbers).

Example::

    DDFA_DATA_DIR=../shared/data python scripts/fixed_speed.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ddfa.config import default_config  # noqa: E402
from ddfa.data import Dataset, load_dataset  # noqa: E402
from golden.fixed import train_fixed  # noqa: E402


def measure(board: str, n_train: int | None, repeats: int) -> dict:
    cfg = default_config(board).replace(**{"train.epochs": 1})
    full = load_dataset(cfg.model.dataset, inputs=cfg.model.inputs)
    n = n_train or full.x_train.shape[0]
    ds = Dataset(full.name, full.x_train[:n], full.y_train[:n], full.x_test[:100], full.y_test[:100])
    runs = []
    for _ in range(repeats):
        load = os.getloadavg()[0]
        r = train_fixed(cfg, ds, progress=False, align_every=0)
        runs.append({"samples_per_s": r["samples_per_s"], "load_average_1min_before": round(load, 2)})
    sps = [r["samples_per_s"] for r in runs]
    return {"config": board, "dataset": cfg.model.dataset, "arch": "-".join(map(str, cfg.model.layers)),
            "train_samples": n, "runs": runs, "median_samples_per_s": statistics.median(sps),
            "best_samples_per_s": max(sps)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "results" / "fixed-speed.json"))
    args = p.parse_args(argv)
    result = {"host": platform.node(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "torch_threads_in_training": 1, "command": "python scripts/fixed_speed.py",
              "measurements": [measure("icebreaker", None, args.repeats),
                               measure("ulx3s-85f", 2000, max(1, args.repeats // 2))]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    for m in result["measurements"]:
        print(f"{m['config']} {m['dataset']} {m['arch']}: median {m['median_samples_per_s']} samples/s, "
              f"best {m['best_samples_per_s']} ({[r['samples_per_s'] for r in m['runs']]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
