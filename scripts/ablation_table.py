#!/usr/bin/env python3
"""Markdown tables of the ablation runs (README figure (e)), from the results JSON only.

1. The cost of each hardware departure: pairs of runs that differ in one choice, the
   test-accuracy difference (run minus reference, percentage points, after the last
   epoch) and the alignment of each.
2. Every run: one row per results JSON, with the difference to its setting's reference
   (``paper.json`` for ``paper-*``, ``hardware.json`` for ``hardware-*``).

Usage: ``python scripts/ablation_table.py results/ablation > results/ablation/table.md``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: (departure, setting it is measured in, run, reference): run differs from reference in
#: that one choice.
COMPARISONS = [
    ("Rademacher instead of Gaussian directions", "paper", "paper-rademacher", "paper"),
    ("Rademacher instead of Gaussian directions", "hardware", "hardware", "hardware-gaussian"),
    ("SGD (eta 2^-4, best of 2^-2/2^-4/2^-6) instead of Adam on W", "paper", "paper-sgd-2e-4", "paper"),
    ("batch of one instead of 64 (Adam)", "paper", "paper-batch1", "paper"),
    ("batch of one instead of 64 (SGD, eta 2^-8 vs 2^-4)", "hardware", "hardware", "hardware-batch64"),
    ("moving average (eq. 17), alpha 2^-6, instead of Adam on B", "paper", "paper-ema-2e-6", "paper"),
    ("moving average, alpha 2^-10, instead of Adam on B", "paper", "paper-ema-2e-10", "paper"),
    ("moving average, alpha 2^-6, instead of Adam on B", "hardware", "hardware", "hardware-adam-feedback"),
    ("alpha 2^-4 instead of 2^-6", "hardware", "hardware-ema-2e-4", "hardware"),
    ("alpha 2^-8 instead of 2^-6", "hardware", "hardware-ema-2e-8", "hardware"),
    ("alpha 2^-10 instead of 2^-6", "hardware", "hardware-ema-2e-10", "hardware"),
    ("all departures together (the hardware setting)", "-", "hardware", "paper"),
    ("(yardstick) random DFA instead of DDFA", "paper", "paper-dfa", "paper"),
    ("(yardstick) random DFA instead of DDFA", "hardware", "hardware-dfa", "hardware"),
]


def fmt_alpha(r: dict) -> str:
    a = r["alpha"]
    if r["algo"] == "dfa":
        return "–"
    for k in range(1, 17):
        if abs(a - 2.0 ** -k) < 1e-12:
            return f"2^-{k}"
    return f"{a:g}"


def fmt_lr(lr: float) -> str:
    for k in range(1, 17):
        if abs(lr - 2.0 ** -k) < 1e-12:
            return f"2^-{k}"
    return f"{lr:g}"


def fmt_align(r: dict) -> str:
    return ", ".join("–" if a is None else f"{a:.1f}" for a in r["alignment_deg"])


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/ablation")
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(root.glob("*.json"))}
    if not runs:
        sys.exit(f"ablation_table.py: no results JSON in {root}. Fix: run scripts/reproduce_float.sh ablation")
    acc = lambda name: 100 * runs[name]["test_accuracy"]

    seeds = sorted({r["seed"] for r in runs.values()})
    epochs = sorted({len(r["history"]) for r in runs.values()})
    print(f"MNIST 1x800, DDFA unless marked, {'/'.join(map(str, epochs))} epochs, seed "
          f"{', '.join(map(str, seeds))} (one run per row: differences below about half a point "
          "are within seed-to-seed noise).\n")
    print("| departure | measured in | run | reference | test acc. run / ref. (%) | "
          "difference (points) | alignment run / ref. (deg) |")
    print("|---|---|---|---|---|---|---|")
    for label, setting, run, ref in COMPARISONS:
        if run not in runs or ref not in runs:
            missing = [n for n in (run, ref) if n not in runs]
            print(f"| {label} | {setting} | {run} | {ref} | missing: {', '.join(missing)} | | |")
            continue
        print(f"| {label} | {setting} | {run} | {ref} | {acc(run):.2f} / {acc(ref):.2f} | "
              f"{acc(run) - acc(ref):+.2f} | {fmt_align(runs[run])} / {fmt_align(runs[ref])} |")

    print("\nEvery run (difference: last-epoch accuracy minus that of `paper` or `hardware`):\n")
    print("| run | algo | v | optimizer (lr) | batch | feedback (alpha) | "
          "test acc. per epoch (%) | difference (points) | alignment, last epoch (deg) | samples/s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    order = lambda name: (not name.startswith("paper"), name)
    for name in sorted(runs, key=order):
        r = runs[name]
        ref = "paper" if name.startswith("paper") else "hardware"
        diff = "ref." if name == ref else (f"{acc(name) - acc(ref):+.2f}" if ref in runs else "–")
        accs = " / ".join(f"{100 * h['test_accuracy']:.2f}" for h in r["history"])
        v = r["directions"] if r["algo"] == "ddfa" else "–"
        fb = "fixed random" if r["algo"] == "dfa" else f"{r['feedback_update']} ({fmt_alpha(r)})"
        print(f"| {name} | {r['algo'].upper()} | {v} | {r['optimizer']} ({fmt_lr(r['lr'])}) | {r['batch_size']} | "
              f"{fb} | {accs} | {diff} | {fmt_align(r)} | {r['samples_per_s']:.0f} |")


if __name__ == "__main__":
    main()
