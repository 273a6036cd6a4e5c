#!/usr/bin/env python
"""The tables of ``docs/results/deep.md`` from the JSON files of ``scripts/deep_results.sh``
(``results/deep/``): test accuracy per example and algorithm over seeds 0-4, the hidden
layers' alignment, and the Verilator runs' cycles against :func:`hdl.cycles.step_cycles`."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ddfa.config import load_config  # noqa: E402
from hdl.cycles import step_cycles  # noqa: E402

RES = ROOT / "results" / "deep"
EXAMPLES = ("icebreaker-deep", "ulx3s-deep", "ulx3s-deep3")
ALGOS = ("ddfa", "dfa", "bp")
SEEDS = range(5)


def accuracy_rows(name: str) -> list[str]:
    """One row per algorithm (and per ``-lrN`` variant): mean ± sample std over the
    seeds that finished; a seed that diverged shows the sample it stopped at ("div. N")."""
    rows = []
    for algo in ALGOS:
        for variant in ("", "-lr8", "-lr9"):
            runs = {s: json.loads(p.read_text()) for s in SEEDS
                    if (p := RES / f"fixed-{name}-{algo}{variant}-s{s}.json").exists()}
            if not runs:
                continue
            done = [r for r in runs.values() if r.get("test_accuracy") is not None]
            acc = [100 * r["test_accuracy"] for r in done]
            label = algo + (f", lr_shift {variant[3:]}" if variant else "")
            seeds = " / ".join(
                "-" if s not in runs else f"{100 * runs[s]['test_accuracy']:.2f}" if runs[s].get("test_accuracy")
                is not None else "div. " + runs[s]["error"].split(" after ")[1].split(" samples")[0] for s in SEEDS)
            if acc:
                std = statistics.stdev(acc) if len(acc) > 1 else 0.0
                align = [r["alignment_deg"] for r in done if r.get("alignment_deg")]
                per_layer = " / ".join(f"{statistics.mean(a[l] for a in align):.1f}"
                                       for l in range(len(align[0]))) if align else "-"
                cell = f"{statistics.mean(acc):.2f} ± {std:.2f}" + (f" ({len(acc)} of {len(runs)})" if len(acc) < len(runs) else "")
            else:
                cell, per_layer = f"diverged ({len(runs)} of {len(runs)})", "-"
            rows.append(f"| {label} | {cell} | {seeds} | {per_layer} |")
    return rows


def cycle_row(name: str) -> str:
    """Simulated cycles per sample (min-max) and phases against step_cycles's."""
    cfg = load_config(ROOT / "examples" / f"{name}.toml")
    want = step_cycles(cfg)
    p = RES / f"sim-{name}.json"
    r = json.loads(p.read_text()) if p.exists() else {}
    lo, hi = r.get("cycles_per_sample_min_max", ["-", "-"])
    ph = r.get("phase_cycles", {})
    sim = " / ".join(f"{ph[k]:g}" if k in ph else "-" for k in ("forward", "error", "update"))
    secs = f"{r['sim_seconds']:.0f} s (+ {r['build_seconds']:.0f} s)" if r else "-"
    return (f"| {name} | {r.get('steps', '-')} | {r.get('bit_exact', '-')} | {lo}-{hi} | {sim} | {want['total']} "
            f"| {want['forward']} / {want['softmax']} / {want['update'] - want['softmax']} | {secs} |")


def main() -> int:
    for name in EXAMPLES:
        print(f"## {name}\n\n| algorithm | test accuracy | per seed 0 / 1 / 2 / 3 / 4 | alignment per hidden layer |\n"
              "|---|---|---|---|")
        print("\n".join(accuracy_rows(name)) + "\n")
    print("| example | steps | bit-exact | cycles per sample | forward / error / update | `step_cycles` "
          "| forward / error / update | simulation (+ build) |\n|---|---:|---|---:|---|---:|---|---:|")
    for name in EXAMPLES:
        print(cycle_row(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
