#!/usr/bin/env python
"""Accuracy of the fixed-point model against its word widths and rounding.

Sweeps, on top of an embedded default (digits: ``icebreaker``, 10 epochs; MNIST:
``ulx3s-85f``, one epoch over a reduced training set), with ``hardware.board = "none"``
so that any width is allowed:

* ``weight``: the width of W and b, 8..24 bits, keeping the default's integer bits;
* ``feedback``: the width of B, likewise;
* ``lr``: ``arith.lr_shift`` around the default, at the default formats;
* ``weight_frac``, ``feedback_frac``: the binary point at the default width (2 to 6
  integer bits);

the width sweeps with ``arith.rounding`` nearest and stochastic, the others nearest only.
Every run records its test accuracy and the largest |W| and |B| reached (to check the
integer bits), and the base's input scaling (``model.inputs``; records without it are
``pm1``, pixels in [-1, 1]). Results go to ``results/width_sweep.json`` (one record per run, written
after each run; a rerun skips the records already there) and a markdown table
``results/width_sweep.md``.

Example::

    DDFA_DATA_DIR=../shared/data python scripts/width_sweep.py --datasets digits,mnist
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ddfa.config import Config, Fixed, default_config  # noqa: E402
from ddfa.data import Dataset, load_dataset  # noqa: E402
from golden.fixed import train_fixed  # noqa: E402

WIDTHS = (8, 10, 12, 14, 16, 18, 20, 24)
BASES = {"digits": ("icebreaker", 10), "mnist": ("ulx3s-85f", 1)}


def variant(base: Config, sweep: str, value: int, rounding: str, seed: int, epochs: int) -> Config:
    """``base`` with one field swept; the accumulator is widened as the formats need."""
    a = base.arith
    changes = {"hardware.board": "none", "arith.rounding": rounding, "model.seed": seed, "train.epochs": epochs}
    if sweep in ("weight", "feedback"):
        fmt = getattr(a, sweep)
        changes[f"arith.{sweep}"] = Fixed(value, value - (fmt.width - fmt.frac))
    elif sweep in ("weight_frac", "feedback_frac"):
        name = sweep.split("_")[0]
        changes[f"arith.{name}"] = Fixed(getattr(a, name).width, value)
    elif sweep == "lr":
        changes["arith.lr_shift"] = value
    wide = base.replace(**changes, **{"arith.acc_width": 64})
    fan_in = max(max(base.model.layers[:-1]), base.model.layers[-1])
    return wide.replace(**{"arith.acc_width": max(a.acc_width, wide.acc_width_needed(fan_in))})


def _fracs(fmt: Fixed) -> range:
    """Fractional bits around the default at the default width (integer bits 2..6)."""
    return range(fmt.width - 6, fmt.width - 1)


def plan(datasets: list[str], seeds: dict[str, int], sweeps: set[str] | None = None, lr_shift: int | None = None):
    for ds in datasets:
        base_name, epochs = BASES[ds]
        base = default_config(base_name)
        if lr_shift is not None:
            base = base.replace(**{"arith.lr_shift": lr_shift})
        lr0 = base.arith.lr_shift
        for sweep, values, roundings in (("weight", WIDTHS, ("nearest", "stochastic")),
                                         ("feedback", WIDTHS, ("nearest", "stochastic")),
                                         ("lr", range(lr0 - 2, lr0 + 3), ("nearest",)),
                                         ("weight_frac", _fracs(base.arith.weight), ("nearest",)),
                                         ("feedback_frac", _fracs(base.arith.feedback), ("nearest",))):
            if sweeps is not None and sweep not in sweeps:
                continue
            for value in values:
                for rounding in roundings:
                    for seed in range(seeds[ds]):
                        yield ds, base, sweep, value, rounding, seed, epochs


def run(args) -> None:
    out = Path(args.out)
    records = json.loads(out.read_text()) if out.exists() else []
    done = {(r["dataset"], r.get("inputs", "pm1"), r["sweep"], r["value"], r["rounding"], r["seed"])
            for r in records}
    seeds = {"digits": args.digits_seeds, "mnist": args.mnist_seeds}
    data = {}
    sweeps = set(args.sweeps.split(",")) if args.sweeps else None
    for ds, base, sweep, value, rounding, seed, epochs in plan(args.datasets.split(","), seeds, sweeps, args.lr_shift):
        inputs = base.model.inputs
        key = (ds, inputs, sweep, value, rounding, seed)
        if key in done:
            continue
        if ds not in data:
            full = load_dataset(ds, inputs=inputs)
            n = args.mnist_samples if ds == "mnist" else full.x_train.shape[0]
            data[ds] = Dataset(ds, full.x_train[:n], full.y_train[:n], full.x_test, full.y_test)
        cfg = variant(base, sweep, value, rounding, seed, epochs)
        t0 = time.time()
        r, model = train_fixed(cfg, data[ds], progress=False, align_every=0, return_model=True)
        ar = cfg.arith
        rec = dict(dataset=ds, inputs=inputs, base=base.name, sweep=sweep, value=value, rounding=rounding, seed=seed,
                   epochs=epochs, train_samples=int(data[ds].x_train.shape[0]),
                   weight=str(ar.weight), feedback=str(ar.feedback), act=str(ar.act), lr_shift=ar.lr_shift,
                   alpha_shift=ar.alpha_shift,
                   test_accuracy=r["test_accuracy"], samples_per_s=r["samples_per_s"],
                   max_abs_W=max(float(W.abs().max()) for W in model.W + model.b) / ar.weight.scale,
                   max_abs_B=(max(float(B.abs().max()) for B in model.B) / ar.feedback.scale) if model.B else 0.0,
                   saturated_W=sum(int(((W == ar.weight.max) | (W == ar.weight.min)).sum()) for W in model.W),
                   wall_s=round(time.time() - t0, 1))
        records.append(rec)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(records, indent=1) + "\n")
        print(f"{ds} {sweep}={value} {rounding} seed {seed}: {100 * rec['test_accuracy']:.2f}% "
              f"(max|W| {rec['max_abs_W']:.2f}, max|B| {rec['max_abs_B']:.2f}, {rec['wall_s']} s)", flush=True)
    Path(args.md).write_text(markdown(records))


def markdown(records: list[dict]) -> str:
    """Mean test accuracy (and spread over seeds) per dataset, sweep, value and rounding."""
    lines = ["# Width sweep of the fixed-point model", "",
             "Test accuracy (%), mean over seeds (min-max when more than one). Generated by "
             "`scripts/width_sweep.py` from `results/width_sweep.json`.", ""]
    groups = list(dict.fromkeys((r["dataset"], r.get("inputs", "pm1")) for r in records))
    datasets = list(dict.fromkeys(ds for ds, _ in groups))
    # Per data set, the sweep with the embedded default's scaling first.
    groups.sort(key=lambda g: (datasets.index(g[0]), g[1] != default_config(BASES[g[0]][0]).model.inputs))
    for ds, inputs in groups:
        rs = [r for r in records if r["dataset"] == ds and r.get("inputs", "pm1") == inputs]
        first = rs[0]
        lrs = sorted({r["lr_shift"] for r in rs if r["sweep"] != "lr"})
        lines += [f"## {ds}, inputs `{inputs}` (base `{first['base']}`, {first['epochs']} epoch(s) over {first['train_samples']} "
                  f"training samples, seeds {sorted({r['seed'] for r in rs})}; width and binary-point sweeps "
                  f"at lr_shift {', '.join(map(str, lrs))}, alpha_shift {first.get('alpha_shift', '?')}, "
                  f"act {first.get('act', '?')})", ""]
        for sweep, label in (("weight", "weight/bias width (bits)"), ("feedback", "feedback width (bits)"),
                             ("lr", "lr_shift"), ("weight_frac", "weight/bias fractional bits"),
                             ("feedback_frac", "feedback fractional bits")):
            srs = [r for r in rs if r["sweep"] == sweep]
            if not srs:
                continue
            roundings = list(dict.fromkeys(r["rounding"] for r in srs))
            fmt_col = {"weight": "weight", "feedback": "feedback", "weight_frac": "weight",
                       "feedback_frac": "feedback"}.get(sweep)
            head = f"| {label} |" + (" format |" if fmt_col else "") + "".join(f" {x} |" for x in roundings) + \
                " max abs W | max abs B |"
            lines += [head, "|" + "---|" * (head.count("|") - 1)]
            for value in sorted({r["value"] for r in srs}):
                row = [r for r in srs if r["value"] == value]
                cells = []
                for rounding in roundings:
                    accs = [100 * r["test_accuracy"] for r in row if r["rounding"] == rounding]
                    if not accs:
                        cells.append(" - |")
                    elif len(accs) == 1:
                        cells.append(f" {accs[0]:.2f} |")
                    else:
                        cells.append(f" {statistics.mean(accs):.2f} ({min(accs):.1f}-{max(accs):.1f}) |")
                fmt = f" {row[0][fmt_col]} |" if fmt_col else ""
                lines.append(f"| {value} |{fmt}{''.join(cells)} {max(r['max_abs_W'] for r in row):.2f} | "
                             f"{max(r['max_abs_B'] for r in row):.2f} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="digits,mnist")
    p.add_argument("--digits-seeds", type=int, default=3)
    p.add_argument("--mnist-seeds", type=int, default=1)
    p.add_argument("--mnist-samples", type=int, default=20000, help="training samples of the reduced MNIST")
    p.add_argument("--out", default=str(ROOT / "results" / "width_sweep.json"))
    p.add_argument("--md", default=str(ROOT / "results" / "width_sweep.md"))
    p.add_argument("--sweeps", help="only these sweeps (comma-separated: weight, feedback, lr, weight_frac, "
                   "feedback_frac)")
    p.add_argument("--lr-shift", type=int, help="arith.lr_shift of the base configurations (default: theirs)")
    p.add_argument("--table-only", action="store_true", help="only rewrite the markdown from the JSON")
    args = p.parse_args(argv)
    if args.table_only:
        Path(args.md).write_text(markdown(json.loads(Path(args.out).read_text())))
        return 0
    torch.set_num_threads(1)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
