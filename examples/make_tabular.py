"""Write scikit-learn's wine data set (178 samples, 13 features, 3 classes) as the two
file formats ``ddfa`` reads (docs/YOUR-DATA.md):

- ``wine.csv``: a header row, the 13 feature columns and a ``label`` column holding the
  cultivar's name (``class_0``, ``class_1``, ``class_2``: label 0, 1, 2 in sorted order);
  ``ddfa`` draws its test set (``model.test_fraction``, 0.2 by default).
- ``wine.npz``: ``x_train``, ``y_train``, ``x_test``, ``y_test`` (integer labels 0..2),
  split as ``ddfa`` splits the CSV file.

Usage::

    python examples/make_tabular.py [--out DIR] [--dataset wine|breast-cancer]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine

LOADERS = {"wine": load_wine, "breast-cancer": load_breast_cancer}
#: The seed of ddfa's CSV test split (ddfa.data.TEST_SPLIT_SEED), and its fraction.
SPLIT_SEED, TEST_FRACTION = 0, 0.2


def write(name: str, out: Path) -> tuple[Path, Path]:
    """Write ``out/NAME.csv`` and ``out/NAME.npz``; their paths."""
    d = LOADERS[name]()
    out.mkdir(parents=True, exist_ok=True)
    header = [f.replace(" ", "_").replace("/", "_") for f in d.feature_names]
    csv_path = out / f"{name}.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header + ["label"])
        for x, y in zip(d.data, d.target):
            w.writerow([repr(float(v)) for v in x] + [str(d.target_names[y])])
    n = len(d.target)
    perm = np.random.RandomState(SPLIT_SEED).permutation(n)
    n_test = round(TEST_FRACTION * n)
    test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    npz_path = out / f"{name}.npz"
    np.savez(npz_path, x_train=d.data[train], y_train=d.target[train], x_test=d.data[test], y_test=d.target[test])
    return csv_path, npz_path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=".", type=Path, help="directory to write into (default: the current one)")
    p.add_argument("--dataset", default="wine", choices=sorted(LOADERS))
    args = p.parse_args(argv)
    for path in write(args.dataset, args.out):
        print(path)


if __name__ == "__main__":
    main()
