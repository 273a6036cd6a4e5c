#!/usr/bin/env python
"""Digits on the icebreaker default: test accuracy per epoch against the training knobs.

For each override (``section.field=value`` changes of the icebreaker default, e.g.
``arith.lr_shift`` or ``arith.alpha_shift``) trains seeds 0..4 for the default's 10
epochs with the fixed-point model and with the float model in the hardware setting (same
configuration, initialisation and sample order), and appends one JSON line per
(override, model) to ``results/fixed-digits-grid.jsonl``: the per-epoch test accuracies
of each seed, the mean of the final epoch and the best per-epoch mean. The float model
also runs ``model.algorithm = bp`` and ``dfa`` as references.

Example::

    python scripts/fixed_digits_grid.py                      # the grid of docs/RESULTS-fixed.md
    python scripts/fixed_digits_grid.py --grid '[{"arith.lr_shift": 7}]' --models fixed
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ddfa.config import default_config  # noqa: E402
from ddfa.data import load_dataset  # noqa: E402
from golden.fixed import train_fixed  # noqa: E402
from golden.float_model import train_float  # noqa: E402

GRID = [{"arith.lr_shift": 6, "arith.alpha_shift": 6}, {"arith.lr_shift": 5}, {"arith.lr_shift": 7},
        {"arith.alpha_shift": 4}, {"arith.alpha_shift": 5}, {"arith.alpha_shift": 8}]
REFERENCES = [{"model.algorithm": "bp"}, {"model.algorithm": "dfa"}]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", help="JSON list of override dicts (default: the grid above, then the float "
                   "references bp and dfa)")
    p.add_argument("--models", default="fixed,float")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "results" / "fixed-digits-grid.jsonl"))
    args = p.parse_args(argv)
    runs = ([(ov, m) for ov in json.loads(args.grid) for m in args.models.split(",")] if args.grid else
            [(ov, m) for ov in GRID for m in ("fixed", "float")] + [(ov, "float") for ov in REFERENCES])
    with open(args.out, "a") as out:
        for ov, model in runs:
            accs = []
            for seed in range(args.seeds):
                cfg = default_config("icebreaker").replace(**ov, **{"model.seed": seed})
                d = load_dataset("digits", inputs=cfg.model.inputs)
                train = train_fixed if model == "fixed" else train_float
                r = train(cfg, d, progress=False, align_every=0)
                accs.append([h["test_accuracy"] for h in r["history"]])
            epochs = len(accs[0])
            means = [sum(a[e] for a in accs) / len(accs) for e in range(epochs)]
            rec = dict(ov=ov, model=model, accs=accs, final_mean=means[-1], best_epoch_mean=max(means))
            out.write(json.dumps(rec) + "\n")
            out.flush()
            print(model, ov, f"final {100 * means[-1]:.2f}", [round(100 * m, 2) for m in means], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
