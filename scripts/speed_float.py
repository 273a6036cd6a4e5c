#!/usr/bin/env python3
"""Training throughput of the float golden model, in one run (README figure (c)).

Measures ``samples_per_s`` as ``ddfa train`` reports it (training steps only; no test
evaluation, alignment probes off) for

* the paper setting (Adam, Gaussian directions, batch 64), MNIST 2x800: DDFA and BP,
  interleaved ``--repeats`` times, with 1 and 2 torch threads; plus, as a yardstick for
  the manual BP, the standard autograd implementation (``nn.Sequential`` +
  ``torch.optim.Adam(fused=True)``) on the same data and order;
* the hardware setting (SGD, Rademacher directions, moving-average feedback, batch of
  one), MNIST 1x800: DDFA, DFA and BP.

Each measurement is one epoch over the first ``--samples`` training images. The median
over repeats is reported, both per second of wall-clock time (``samples_per_s``, what
``ddfa train`` reports) and per second of the process's CPU time (``samples_per_cpu_s``,
all threads counted, including DDFA's direction-generator thread), and the 1-minute load
average after each run is recorded, because the 2-core machine is shared.

Usage::

    DDFA_DATA_DIR=/work/shared/data python scripts/speed_float.py --out results/speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ddfa.config import default_config
from ddfa.data import Dataset, load_dataset
from golden.float_model import train_float
from golden.order import epoch_orders


def config(algo: str, layers: tuple[int, ...], setting: str):
    return default_config("icebreaker").replace(**{
        "model.dataset": "mnist", "model.layers": layers, "model.algorithm": algo,
        "train.setting": setting, "train.epochs": 1, "hardware.board": "none", "arith.acc_width": 48})


def autograd_bp(ds: Dataset, threads: int, batch: int = 64) -> tuple[float, float]:
    """The standard PyTorch BP: nn.Linear layers, autograd, fused Adam (lr 1e-4)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 800), nn.ReLU(), nn.Linear(800, 800), nn.ReLU(), nn.Linear(800, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, fused=True)
    order = next(epoch_orders(len(ds.y_train), 0))
    xs, ys = ds.x_train[order], ds.y_train[order]
    start, cpu = time.perf_counter(), time.process_time()
    for k in range(0, len(ys), batch):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xs[k:k + batch]), ys[k:k + batch]).backward()
        opt.step()
    return len(ys) / (time.perf_counter() - start), len(ys) / (time.process_time() - cpu)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=20000, help="training images per measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="results/speed.json")
    args = p.parse_args()

    full = load_dataset("mnist", os.environ.get("DDFA_DATA_DIR"))
    n = args.samples
    ds = Dataset("mnist", full.x_train[:n], full.y_train[:n], full.x_test[:1000], full.y_test[:1000])
    runs = []

    def record(name, setting, arch, threads, sps, cpu):
        load = os.getloadavg()[0]
        runs.append(dict(name=name, setting=setting, arch=arch, threads=threads,
                         samples_per_s=round(sps, 1), samples_per_cpu_s=round(cpu, 1), load_1min=round(load, 2)))
        print(f"{name:<14} {setting:<8} {arch:<6} threads={threads} {sps:8.0f} samples/s "
              f"{cpu:8.0f} samples/CPU-s (load {load:.2f})", flush=True)

    for threads in (1, 2):
        train_float(config("bp", (784, 800, 800, 10), "paper"), ds, progress=False, align_every=0,
                    threads=threads)                                        # warm-up
        for _ in range(args.repeats):
            for algo in ("bp", "ddfa"):
                r = train_float(config(algo, (784, 800, 800, 10), "paper"), ds, progress=False,
                                align_every=0, threads=threads)
                record(algo, "paper", "2x800", threads, r["samples_per_s"], r["samples_per_cpu_s"])
            record("bp-autograd", "paper", "2x800", threads, *autograd_bp(ds, threads))
    for algo in ("ddfa", "dfa", "bp"):
        r = train_float(config(algo, (784, 800, 10), "hardware"), ds, progress=False, align_every=0)
        record(algo, "hardware", "1x800", r["torch_threads"], r["samples_per_s"], r["samples_per_cpu_s"])

    def median(name, setting, threads=None, key="samples_per_s"):
        vals = [r[key] for r in runs if r["name"] == name and r["setting"] == setting
                and (threads is None or r["threads"] == threads)]
        return statistics.median(vals) if vals else None

    summary = {}
    for threads in (1, 2):
        row = {}
        for key in ("samples_per_s", "samples_per_cpu_s"):
            bp, ddfa = median("bp", "paper", threads, key), median("ddfa", "paper", threads, key)
            row[key] = dict(bp=bp, ddfa=ddfa, bp_autograd=median("bp-autograd", "paper", threads, key),
                            ddfa_over_bp=round(ddfa / bp, 3))
        summary[f"paper_2x800_b64_threads{threads}"] = row
    summary["hardware_1x800_b1"] = {key: dict(ddfa=median("ddfa", "hardware", key=key),
                                              dfa=median("dfa", "hardware", key=key),
                                              bp=median("bp", "hardware", key=key))
                                    for key in ("samples_per_s", "samples_per_cpu_s")}
    out = dict(summary=summary, runs=runs, samples=n, repeats=args.repeats, host=platform.node(),
               cpus=os.cpu_count(), torch=torch.__version__)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
