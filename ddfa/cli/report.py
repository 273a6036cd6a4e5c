"""``ddfa report``: results JSON files -> a table shaped like the paper's Table I, and plots.

Example
-------
::

    ddfa report results/table1/*.json --out results/report

Rows are (data set, architecture) pairs, columns the algorithms (BP, DFA, DKP, DDFA);
each cell is the mean test accuracy over seeds +- the sample standard deviation, with the
number of seeds. When the files differ in protocol (setting, epochs, BatchNorm, golden
model), the protocol becomes part of the row. The best of the three DFA methods in each
row is in bold, as in the paper (BP is the reference).

Writes ``table.md``, ``accuracy.png`` (test accuracy per epoch, mean over seeds) and
``alignment.png`` (per hidden layer, mean over the last epoch, paper Fig. 4 style) to
``--out`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from .output import atomic_path, check_output_dir, write_text

__all__ = ["add_arguments", "run", "load_results", "table_markdown"]

ALGOS = ("bp", "dfa", "dkp", "ddfa")
LABELS = {"bp": "BP", "dfa": "Random DFA", "dkp": "DKP", "ddfa": "Dir. DFA"}
COLORS = {"bp": "black", "dfa": "tab:red", "dkp": "tab:orange", "ddfa": "tab:blue"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULTS.json",
                   help="results files of 'ddfa train --json' (a directory: all its *.json)")
    p.add_argument("--out", default="out/report", metavar="DIR", help="output directory (default out/report)")
    p.add_argument("--title", default=None, help="a caption for the table")


class ReportError(ValueError):
    pass


def is_sweep_table(f: Path, r: dict) -> bool:
    """``OUT/sweep.json`` of ``ddfa sweep``: a table of runs, not a run."""
    return f.name == "sweep.json" and isinstance(r.get("jobs"), list)


def load_results(paths: list[str]) -> list[dict]:
    """Read results files (directories are expanded to their ``*.json``; the table
    ``sweep.json`` that ``ddfa sweep`` writes beside its runs is passed over)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob("*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise ReportError(f"no file {str(p)!r}. Fix: give results files written by 'ddfa train --json'.")
    runs, skipped = [], []
    for f in files:
        try:
            r = json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ReportError(f"{f} is not valid JSON ({exc}). Fix: rerun 'ddfa train --json {f}'.") from None
        if not isinstance(r, dict):
            raise ReportError(f"{f} is not a results object. Fix: give files written by 'ddfa train --json'.")
        if is_sweep_table(f, r):
            continue                                  # ddfa sweep's table beside its runs
        if r.get("interrupted") or r.get("diverged"):
            why = "was interrupted" if r.get("interrupted") else "diverged"
            skipped.append(f"{f}: the run {why} ({len(r.get('history') or [])} epochs done)")
            continue
        missing = [k for k in ("test_accuracy", "algo", "dataset", "arch") if k not in r]
        if missing:
            raise ReportError(f"{f} lacks {', '.join(missing)}. Fix: give files written by 'ddfa train --json'.")
        if not isinstance(r["test_accuracy"], (int, float)) or isinstance(r["test_accuracy"], bool):
            raise ReportError(f"{f}: test_accuracy {r['test_accuracy']!r} is not a number. "
                              f"Fix: give files written by 'ddfa train --json'.")
        r["_file"] = str(f)
        runs.append(r)
    if not runs and skipped:
        raise ReportError(f"no finished run: {'; '.join(skipped)}. Fix: give the results of runs that finished.")
    if not runs:
        raise ReportError("no results files found. Fix: give files written by 'ddfa train --json'.")
    for note in skipped:
        print(f"ddfa report: skipping {note}", file=sys.stderr)
    return runs


def _number(x: float) -> str:
    """``2^-8`` for powers of two below 1, else ``%g``."""
    if 0 < x < 1 and math.log2(x).is_integer():
        return f"2^{int(math.log2(x))}"
    return f"{x:g}"


def _protocol(r: dict) -> str:
    """Setting, epochs, and every training choice the run set explicitly."""
    train = r.get("config", {}).get("train", {})
    epochs = len(r.get("history") or []) or train.get("epochs")
    parts = [r.get("setting", "?"), f"{epochs} ep"]
    if r.get("batchnorm"):
        parts.append("BN")
    for key, label in (("lr", "lr"), ("batch_size", "batch"), ("optimizer", ""), ("directions", ""),
                       ("feedback_update", "feedback"), ("alpha", "alpha"), ("init", "init")):
        value = train.get(key)
        if value is None or (key == "init" and value == "default"):
            continue
        text = _number(value) if isinstance(value, float) else str(value)
        parts.append(f"{label} {text}".strip())
    if r.get("model", "float") != "float":
        parts.append(r["model"])
    return ", ".join(parts)


def _groups(runs: list[dict]) -> dict[tuple, dict[str, list[dict]]]:
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        groups[(r["dataset"], r["arch"], _protocol(r))][r["algo"]].append(r)
    order = {"digits": 0, "mnist": 1, "fashion-mnist": 2}
    return dict(sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1], kv[0][2])))


def _mean_std(values: list[float]) -> tuple[float, float]:
    m = statistics.fmean(values)
    return m, (statistics.stdev(values) if len(values) > 1 else 0.0)


def table_markdown(runs: list[dict], title: str | None = None) -> str:
    """The Table I-shaped markdown table."""
    groups = _groups(runs)
    protocols = {k[2] for k in groups}
    show_protocol = len(protocols) > 1
    head = ["Dataset", "Arch"] + (["Protocol"] if show_protocol else []) + [LABELS[a] for a in ALGOS]
    lines = []
    if title:
        lines += [title, ""]
    if not show_protocol:
        lines += [f"Protocol: {protocols.pop()}. Test accuracy, mean ± std over seeds (n = seeds).", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (dataset, arch, proto), by_algo in groups.items():
        stats = {a: _mean_std([100 * r["test_accuracy"] for r in by_algo[a]]) for a in ALGOS if by_algo.get(a)}
        dfa_family = [a for a in ("dfa", "dkp", "ddfa") if a in stats]
        best = max(dfa_family, key=lambda a: stats[a][0]) if len(dfa_family) > 1 else None
        cells = []
        for a in ALGOS:
            if a not in stats:
                cells.append("–")
                continue
            m, s = stats[a]
            text = f"{m:.2f} ± {s:.2f}% (n={len(by_algo[a])})"
            cells.append(f"**{text}**" if a == best else text)
        row = [dataset, arch] + ([proto] if show_protocol else []) + cells
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _mean_curve(runs: list[dict], key: str) -> tuple[list[int], list[float], list[float]]:
    hist = [r.get("history") or [] for r in runs]
    n = min(len(h) for h in hist)
    xs, means, stds = [], [], []
    for i in range(n):
        vals = [100 * h[i][key] for h in hist if h[i].get(key) is not None]
        if not vals:
            continue
        m, s = _mean_std(vals)
        xs.append(hist[0][i]["epoch"])
        means.append(m)
        stds.append(s)
    return xs, means, stds



def _save(fig, axes, n: int, path: Path) -> None:
    """Blank the unused panels after the first ``n``, then write and close the figure."""
    import matplotlib.pyplot as plt
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

def plot_accuracy(runs: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = _groups(runs)
    n = len(groups)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
    for ax, ((dataset, arch, proto), by_algo) in zip(axes.flat, groups.items()):
        for a in ALGOS:
            if not by_algo.get(a):
                continue
            xs, m, s = _mean_curve(by_algo[a], "test_accuracy")
            ax.plot(xs, m, marker="o", ms=3, color=COLORS[a], label=f"{LABELS[a]} (n={len(by_algo[a])})")
            ax.fill_between(xs, [x - y for x, y in zip(m, s)], [x + y for x, y in zip(m, s)],
                            color=COLORS[a], alpha=0.15)
        ax.set_title(f"{dataset} {arch} ({proto})", fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    _save(fig, axes, n, path)


def plot_alignment(runs: list[dict], path: Path) -> bool:
    """Bars: alignment per hidden layer (last epoch, mean over seeds) per DFA method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = {k: v for k, v in _groups(runs).items()
              if any(r.get("alignment_deg") for a in ("dfa", "dkp", "ddfa") for r in v.get(a, []))}
    if not groups:
        return False
    n = len(groups)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
    for ax, ((dataset, arch, proto), by_algo) in zip(axes.flat, groups.items()):
        algos = [a for a in ("dfa", "dkp", "ddfa") if by_algo.get(a)]
        width = 0.8 / max(1, len(algos))
        layers = 1
        for j, a in enumerate(algos):
            per_run = [r["alignment_deg"] for r in by_algo[a] if r.get("alignment_deg")]
            if not per_run:
                continue
            layers = len(per_run[0])
            means = []
            for l in range(layers):
                vals = [p[l] for p in per_run if p[l] is not None]
                means.append(statistics.fmean(vals) if vals else float("nan"))
            xs = [l + 1 + (j - (len(algos) - 1) / 2) * width for l in range(layers)]
            ax.bar(xs, means, width=width, color=COLORS[a], label=LABELS[a])
        ax.set_title(f"{dataset} {arch} ({proto})", fontsize=9)
        ax.set_xticks(range(1, layers + 1))
        ax.set_xlabel("hidden layer")
        ax.set_ylabel("angle to BP gradient (deg)")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    _save(fig, axes, n, path)
    return True


def run(args: argparse.Namespace) -> int:
    try:
        runs = load_results(args.results)
    except ReportError as exc:
        print(f"ddfa report: error: {exc}", file=sys.stderr)
        return 2
    out = check_output_dir(args.out, "--out")
    table = table_markdown(runs, args.title)
    write_text(out / "table.md", table, "--out")
    with atomic_path(out / "accuracy.png", "--out") as tmp:
        plot_accuracy(runs, tmp)
    with atomic_path(out / "alignment.png", "--out") as tmp:
        wrote_alignment = plot_alignment(runs, tmp)
    if not wrote_alignment:
        (out / "alignment.png").unlink()
    print(table)
    print(f"wrote {out / 'table.md'}, {out / 'accuracy.png'}"
          + (f", {out / 'alignment.png'}" if wrote_alignment else ""))
    return 0
