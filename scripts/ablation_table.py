#!/usr/bin/env python3
"""Markdown table of the ablation runs (README figure (e)): one row per results JSON.

Usage: ``python scripts/ablation_table.py results/ablation > results/ablation/table.md``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


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


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "results/ablation")
    runs = [(p.stem, json.loads(p.read_text())) for p in sorted(root.glob("*.json"))]
    order = lambda kv: (not kv[0].startswith("paper"), kv[0])
    print("| run | algo | v | optimizer (lr) | batch | feedback (alpha) | "
          "test acc. per epoch (%) | alignment, last epoch (deg) | samples/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in sorted(runs, key=order):
        accs = " / ".join(f"{100 * h['test_accuracy']:.2f}" for h in r["history"])
        align = ", ".join("–" if a is None else f"{a:.1f}" for a in r["alignment_deg"])
        v = r["directions"] if r["algo"] == "ddfa" else "–"
        fb = "fixed random" if r["algo"] == "dfa" else f"{r['feedback_update']} ({fmt_alpha(r)})"
        print(f"| {name} | {r['algo'].upper()} | {v} | {r['optimizer']} ({fmt_lr(r['lr'])}) | {r['batch_size']} | "
              f"{fb} | {accs} | {align} | {r['samples_per_s']:.0f} |")


if __name__ == "__main__":
    main()
