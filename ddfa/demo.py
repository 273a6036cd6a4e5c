"""``ddfa demo``: the main job on the embedded default.

For now: train the float golden model with Directional DFA (the hardware setting: batch
of one, SGD, Rademacher directions, the moving-average feedback of eq. 17) and with
random DFA on scikit-learn's digits (the iCEBreaker default, 64-32-10, 10 epochs), and
print accuracy, training throughput and gradient alignment side by side.
"""

from __future__ import annotations

import argparse
import time

from .cli import add_config_args, config_from_args
from .train import arch_name, run_training

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, software_only=True)
    print(f"ddfa demo: {cfg.name}: {cfg.model.dataset} {arch_name(cfg)} ({'-'.join(map(str, cfg.model.layers))}), "
          f"{cfg.train.setting} setting, batch {cfg.batch_size}, {cfg.optimizer}, lr {cfg.lr:g}, "
          f"{cfg.train.epochs} epochs, seed {cfg.model.seed}")
    rows = []
    for algo in ("ddfa", "dfa"):
        c = cfg.replace(**{"model.algorithm": algo})
        t0 = time.time()
        r = run_training(c, "float", getattr(args, "data_dir", None), progress=False)
        rows.append((algo, r, time.time() - t0))
    print(f"{'algorithm':<10} {'test acc':>9} {'samples/s':>10} {'alignment (deg, per hidden layer)':>36} {'wall s':>7}")
    for algo, r, wall in rows:
        align = ", ".join("-" if a is None else f"{a:.1f}" for a in r["alignment_deg"])
        print(f"{algo.upper():<10} {100 * r['test_accuracy']:>8.2f}% {r['samples_per_s']:>10.0f} "
              f"{align:>36} {wall:>7.1f}")
    (_, ddfa, _), (_, dfa, _) = rows
    diff = 100 * (ddfa["test_accuracy"] - dfa["test_accuracy"])
    print(f"Directional DFA - random DFA: {diff:+.2f} points of test accuracy; "
          "a lower alignment angle means an update closer to backpropagation's.")
    return 0
