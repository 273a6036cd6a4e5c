#!/usr/bin/env python3
"""Training throughput of the float golden model, in one run (``docs/RESULTS-float.md`` (c)).

One process, one torch thread throughout. Because other work on the machine can change
the load within seconds, BP and DDFA are always measured side by side and compared pair by pair; the figures are the **median of the per-pair ratios**
DDFA/BP, with the quartiles, the extremes and the number of pairs at or above 0.9x.

1. Paper setting (Adam, Gaussian directions, batch 64), MNIST 2x800, step-interleaved:
   one BP and one DDFA model train side by side on the same batches, ``--chunk`` steps of
   one, then ``--chunk`` steps of the other (the order alternating), for ``--rounds``
   rounds; each round's DDFA/BP ratio compares two stretches of a fraction of a second
   under nearly the same load. DDFA's chunk includes waiting for the block of directions
   its background generator thread is drawing, so no DDFA work spills into BP's time.
   A third model, DDFA with the directions drawn inline (no generator thread: strictly
   one thread, every Gaussian number charged to the training step), is measured in the
   same rounds.
2. Paper setting as ``ddfa train`` reports it: ``train_float`` (``samples_per_s``: the
   training steps of one epoch over the first ``--samples`` images; no test evaluation,
   no alignment probes) for BP and DDFA in ``--pairs`` adjacent pairs, the order
   alternating; after each pair the standard autograd BP (``nn.Sequential`` +
   ``torch.optim.Adam(fused=True)``, same data and order) as a yardstick for the manual BP.
3. Hardware setting (SGD, Rademacher directions, moving-average feedback, batch of one),
   MNIST 1x800: DDFA, DFA and BP through ``train_float``, interleaved ``--b1-repeats``
   times, median.

Every measurement is recorded per second of wall-clock time and per second of the
process's CPU time (all its threads counted, including DDFA's generator thread), with
the 1-minute load average.

Usage::

    DDFA_DATA_DIR=/work/shared/data python scripts/speed_float.py --out results/speed/speed.json
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

THREADS = 1


def config(algo: str, layers: tuple[int, ...], setting: str):
    return default_config("icebreaker").replace(**{
        "model.dataset": "mnist", "model.layers": layers, "model.algorithm": algo,
        "train.setting": setting, "train.epochs": 1, "hardware.board": "none", "arith.acc_width": 48})


def autograd_bp(ds: Dataset, batch: int = 64) -> tuple[float, float]:
    """The standard PyTorch BP: nn.Linear layers, autograd, fused Adam (lr 1e-4)."""
    torch.set_num_threads(THREADS)
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


def interleaved(ds: Dataset, rounds: int, chunk: int, log) -> dict:
    """Part 1: BP, DDFA and DDFA without the generator thread, ``chunk`` steps each in
    turn on the same batches; per-round throughput (wall and CPU) of each."""
    from golden.float_model import Directions, FloatModel
    from golden.order import derived_seed

    torch.set_num_threads(THREADS)
    cfgs = {"bp": config("bp", (784, 800, 800, 10), "paper"), "ddfa": config("ddfa", (784, 800, 800, 10), "paper")}
    models = {"bp": FloatModel(cfgs["bp"]), "ddfa": FloatModel(cfgs["ddfa"]), "ddfa-inline": FloatModel(cfgs["ddfa"])}
    inline = models["ddfa-inline"]
    inline.directions = Directions([l.out_shape for l in inline.hidden], cfgs["ddfa"].directions,
                                   torch.Generator().manual_seed(derived_seed(cfgs["ddfa"].model.seed, "directions")),
                                   prefetch=False)
    bs = 64
    n = len(ds.y_train) // bs * bs
    order = next(epoch_orders(len(ds.y_train), 0))[:n]
    xs, onehots = ds.x_train[order], torch.eye(10)[ds.y_train[order]]
    steps = n // bs
    pos = {k: 0 for k in models}

    def run(name):
        m = models[name]
        t, c = time.perf_counter(), time.process_time()
        for _ in range(chunk):
            k = pos[name] % steps
            pos[name] += 1
            m.train_step(xs[k * bs:(k + 1) * bs], onehots[k * bs:(k + 1) * bs])
        if m.directions is not None:
            m.directions._pending.result()          # the generator thread's work is DDFA's
        return chunk * bs / (time.perf_counter() - t), chunk * bs / (time.process_time() - c)

    for name in models:                                 # warm-up (also fills the first blocks)
        run(name)
    per_round = []
    names = list(models)
    for r in range(rounds):
        turn = names[r % 3:] + names[:r % 3]
        got = {name: run(name) for name in turn}
        row = {name: dict(samples_per_s=round(w, 1), samples_per_cpu_s=round(c, 1)) for name, (w, c) in got.items()}
        row["load_1min"] = round(os.getloadavg()[0], 2)
        per_round.append(row)
        log(f"round {r:3d}: BP {got['bp'][0]:7.0f}  DDFA {got['ddfa'][0]:7.0f}  DDFA-inline "
            f"{got['ddfa-inline'][0]:7.0f} samples/s  DDFA/BP {got['ddfa'][0] / got['bp'][0]:.3f} "
            f"(inline {got['ddfa-inline'][0] / got['bp'][0]:.3f})  load {row['load_1min']:.2f}")
    out = dict(rounds=rounds, chunk_steps=chunk, batch=bs, per_round=per_round)
    for name in ("ddfa", "ddfa-inline"):
        for key, label in (("samples_per_s", "wall"), ("samples_per_cpu_s", "cpu")):
            ratios = [row[name][key] / row["bp"][key] for row in per_round]
            out[f"{name}_over_bp_{label}"] = spread(ratios)
            out[f"{name}_over_bp_{label}"]["rounds_at_or_above_0_9"] = sum(x >= 0.9 for x in ratios)
    for name in models:
        out[f"{name}_median_samples_per_s"] = round(statistics.median(row[name]["samples_per_s"] for row in per_round), 1)
    return out


def spread(values: list[float]) -> dict:
    """Median, quartiles and extremes of a list of ratios."""
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [values[0]] * 3
    return dict(median=round(statistics.median(values), 3), q1=round(q[0], 3), q3=round(q[2], 3),
                min=round(min(values), 3), max=round(max(values), 3), n=len(values))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=6400, help="training images per batch-64 measurement")
    p.add_argument("--rounds", type=int, default=60, help="rounds of the step-interleaved measurement (part 1)")
    p.add_argument("--chunk", type=int, default=16, help="batch-64 steps per model and round (part 1)")
    p.add_argument("--pairs", type=int, default=7, help="adjacent BP/DDFA train_float pairs (part 2)")
    p.add_argument("--b1-samples", type=int, default=4000, help="training images per batch-of-one measurement")
    p.add_argument("--b1-repeats", type=int, default=5)
    p.add_argument("--out", default="results/speed/speed.json")
    args = p.parse_args()
    if min(args.rounds, args.chunk, args.pairs, args.b1_repeats, args.b1_samples) < 1 or args.samples < 64:
        p.error("--rounds, --chunk, --pairs, --b1-repeats and --b1-samples must be at least 1, --samples at least 64")

    full = load_dataset("mnist", os.environ.get("DDFA_DATA_DIR"))
    ds = Dataset("mnist", full.x_train[:args.samples], full.y_train[:args.samples], full.x_test[:1000],
                 full.y_test[:1000])
    ds1 = Dataset("mnist", full.x_train[:args.b1_samples], full.y_train[:args.b1_samples], full.x_test[:1000],
                  full.y_test[:1000])
    runs = []

    def measure(name, setting, arch, data, pair=None):
        if name == "bp-autograd":
            sps, cpu = autograd_bp(data)
        else:
            layers = (784, 800, 800, 10) if arch == "2x800" else (784, 800, 10)
            r = train_float(config(name, layers, setting), data, progress=False, align_every=0, threads=THREADS)
            sps, cpu = r["samples_per_s"], r["samples_per_cpu_s"]
        load = os.getloadavg()[0]
        run = dict(name=name, setting=setting, arch=arch, threads=THREADS, pair=pair,
                   samples_per_s=round(sps, 1), samples_per_cpu_s=round(cpu, 1), load_1min=round(load, 2))
        runs.append(run)
        print(f"{'' if pair is None else pair:>3} {name:<12} {setting:<8} {arch:<6} {sps:8.0f} samples/s "
              f"{cpu:8.0f} samples/CPU-s (load {load:.2f})", flush=True)
        return run

    t0 = time.perf_counter()
    step_interleaved = interleaved(ds, args.rounds, args.chunk, lambda line: print(line, flush=True))
    measure("bp", "paper", "2x800", ds)                                   # warm-up, not counted
    measure("ddfa", "paper", "2x800", ds)
    runs.clear()
    ratios, cpu_ratios = [], []
    for i in range(args.pairs):
        order = ("bp", "ddfa") if i % 2 == 0 else ("ddfa", "bp")
        got = {algo: measure(algo, "paper", "2x800", ds, pair=i) for algo in order}
        ratios.append(got["ddfa"]["samples_per_s"] / got["bp"]["samples_per_s"])
        cpu_ratios.append(got["ddfa"]["samples_per_cpu_s"] / got["bp"]["samples_per_cpu_s"])
        print(f"    pair {i}: DDFA/BP = {ratios[-1]:.3f} (wall), {cpu_ratios[-1]:.3f} (CPU)", flush=True)
        measure("bp-autograd", "paper", "2x800", ds, pair=i)
    for i in range(args.b1_repeats):
        for algo in ("ddfa", "dfa", "bp"):
            measure(algo, "hardware", "1x800", ds1, pair=i)

    def median(name, setting, key="samples_per_s"):
        vals = [r[key] for r in runs if r["name"] == name and r["setting"] == setting]
        return round(statistics.median(vals), 1) if vals else None

    wall, cpu = spread(ratios), spread(cpu_ratios)
    si = step_interleaved
    summary = {
        "paper_2x800_b64_threads1_step_interleaved": {
            k: si[k] for k in ("ddfa_over_bp_wall", "ddfa_over_bp_cpu", "ddfa-inline_over_bp_wall",
                               "ddfa-inline_over_bp_cpu", "bp_median_samples_per_s", "ddfa_median_samples_per_s",
                               "ddfa-inline_median_samples_per_s")} | dict(
            target_0_9_met=si["ddfa_over_bp_wall"]["median"] >= 0.9, rounds=si["rounds"], chunk_steps=si["chunk_steps"]),
        "paper_2x800_b64_threads1": dict(
            ddfa_over_bp=wall, ddfa_over_bp_cpu=cpu,
            pairs_at_or_above_0_9=sum(r >= 0.9 for r in ratios),
            target_0_9_met=wall["median"] >= 0.9,
            median_samples_per_s={k: median(k, "paper") for k in ("bp", "ddfa", "bp-autograd")},
            median_samples_per_cpu_s={k: median(k, "paper", "samples_per_cpu_s") for k in ("bp", "ddfa", "bp-autograd")}),
        "hardware_1x800_b1": dict(
            median_samples_per_s={k: median(k, "hardware") for k in ("ddfa", "dfa", "bp")},
            median_samples_per_cpu_s={k: median(k, "hardware", "samples_per_cpu_s") for k in ("ddfa", "dfa", "bp")},
            target_1000_met=(median("ddfa", "hardware") or 0) >= 1000),
        "load_1min": spread([r["load_1min"] for r in runs]),
    }
    out = dict(summary=summary, step_interleaved=si, ratios_wall=[round(r, 3) for r in ratios], ratios_cpu=[round(r, 3) for r in cpu_ratios],
               runs=runs, samples=args.samples, pairs=args.pairs, b1_samples=args.b1_samples,
               b1_repeats=args.b1_repeats, torch_threads=THREADS, host=platform.node(), cpus=os.cpu_count(),
               torch=torch.__version__, wall_seconds=round(time.perf_counter() - t0, 1),
               command="python scripts/speed_float.py " + " ".join(
                   f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
