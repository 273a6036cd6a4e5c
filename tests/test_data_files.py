"""Data sets of the user's own (docs/YOUR-DATA.md): each format read as written, each
malformed file refused before any work with one line naming the file, the problem and
the fix, and the worked example end to end (fixed-point training, RTL simulation)."""

from __future__ import annotations

import csv
import gzip
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ddfa.cli
import ddfa.cli.train
from ddfa.cli import main
from ddfa.config import ConfigError, config_diff, config_hash, load_config
from ddfa.data import (STD_FLOOR, TEST_SPLIT_SEED, DataError, load_dataset, read_dataset_file, standardize)

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "examples"))
import make_tabular  # noqa: E402


def _arrays(seed=1, n_train=40, n_test=12, features=5, classes=3):
    rng = np.random.default_rng(seed)
    x_tr = rng.normal(size=(n_train, features)) * np.arange(1, features + 1) + 10
    x_te = rng.normal(size=(n_test, features)) * np.arange(1, features + 1) + 10
    y_tr = np.arange(n_train) % classes
    y_te = np.arange(n_test) % classes
    return x_tr, y_tr, x_te, y_te


def _write_csv(path: Path, x, labels, header=None, label_column="label"):
    header = header or [f"f{i}" for i in range(x.shape[1])]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([header[0], label_column] + header[1:])        # the label column need not be last
        for row, y in zip(x, labels):
            w.writerow([repr(float(row[0])), y] + [repr(float(v)) for v in row[1:]])
    return path


def _minmax(x_tr, x):
    lo, hi = x_tr.min(0), x_tr.max(0)
    return np.clip((x - lo) / (hi - lo) * 2 - 1, -1, 1).astype(np.float32)


# --------------------------------------------------------------------------------------
# Each format, read as written
# --------------------------------------------------------------------------------------

def test_npz_reads_as_written(tmp_path):
    x_tr, y_tr, x_te, y_te = _arrays()
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x_tr.reshape(40, 5, 1), y_train=y_tr, x_test=x_te.reshape(12, 5, 1), y_test=y_te)
    raw = read_dataset_file(str(path))
    assert np.array_equal(raw.x_train, x_tr) and np.array_equal(raw.x_test, x_te)    # images flattened
    assert np.array_equal(raw.y_train, y_tr) and np.array_equal(raw.y_test, y_te) and raw.classes == 3
    d = load_dataset(str(path), inputs="pm1")
    assert torch.equal(d.x_train, torch.from_numpy(_minmax(x_tr, x_tr)))
    assert torch.equal(d.x_test, torch.from_numpy(_minmax(x_tr, x_te)))
    assert d.x_test.abs().max() <= 1 and d.n_classes == 3 and d.y_train.dtype == torch.int64
    s = load_dataset(str(path), inputs="standardize")
    x = d.x_train.double()
    std = x.std(0, unbiased=False).clamp_min(STD_FLOOR)
    assert torch.equal(s.x_train, ((x - x.mean(0)) / std).float())
    assert torch.equal(s.x_test, standardize(d).x_test)


def test_csv_with_a_test_file_reads_as_written(tmp_path):
    x_tr, y_tr, x_te, y_te = _arrays()
    train = _write_csv(tmp_path / "train.csv", x_tr, y_tr, label_column="class")
    test = _write_csv(tmp_path / "test.csv", x_te, y_te, label_column="class")
    raw = read_dataset_file(str(train), label_column="class", test_file=str(test))
    assert np.array_equal(raw.x_train, x_tr) and np.array_equal(raw.x_test, x_te)
    assert np.array_equal(raw.y_train, y_tr) and np.array_equal(raw.y_test, y_te) and raw.label_names == ()


def test_csv_names_are_numbered_in_sorted_order_and_the_test_set_drawn(tmp_path):
    x, _, _, _ = _arrays(n_train=50)
    names = np.array(["pinot", "merlot", "syrah", "merlot", "barbera"] * 10)
    path = _write_csv(tmp_path / "wines.csv", x, names)
    raw = read_dataset_file(str(path), test_fraction=0.2)
    perm = np.random.RandomState(TEST_SPLIT_SEED).permutation(50)
    test, train = np.sort(perm[:10]), np.sort(perm[10:])
    code = {"barbera": 0, "merlot": 1, "pinot": 2, "syrah": 3}
    assert raw.label_names == ("barbera", "merlot", "pinot", "syrah") and raw.classes == 4
    assert np.array_equal(raw.x_train, x[train]) and np.array_equal(raw.x_test, x[test])
    assert raw.y_train.tolist() == [code[n] for n in names[train]]
    assert raw.y_test.tolist() == [code[n] for n in names[test]]


def _idx(path: Path, a: np.ndarray, code: int = 0x08):
    raw = bytes([0, 0, code, a.ndim]) + struct.pack(">" + "I" * a.ndim, *a.shape) + a.astype(">u1").tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def test_idx_folder_reads_as_written(tmp_path):
    rng = np.random.default_rng(2)
    x_tr, x_te = rng.integers(0, 256, (30, 4, 3)), rng.integers(0, 256, (7, 4, 3))
    y_tr, y_te = np.arange(30) % 5, np.arange(7) % 5
    _idx(tmp_path / "train-images-idx3-ubyte.gz", x_tr)
    _idx(tmp_path / "train-labels-idx1-ubyte", y_tr)
    _idx(tmp_path / "t10k-images-idx3-ubyte", x_te)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", y_te)
    d = load_dataset(str(tmp_path), inputs="pm1")
    pm1 = lambda x: torch.from_numpy(x.reshape(len(x), 12).astype(np.float32) * (2 / 255) - 1)  # as MNIST's  # noqa: E731
    assert torch.equal(d.x_train, pm1(x_tr)) and torch.equal(d.x_test, pm1(x_te))
    assert d.y_train.tolist() == y_tr.tolist() and d.y_test.tolist() == y_te.tolist() and d.n_classes == 5


def test_the_example_writes_one_data_set_twice(tmp_path):
    """examples/make_tabular.py: wine.npz holds the split ddfa draws from wine.csv."""
    csv_path, npz_path = make_tabular.write("wine", tmp_path)
    a, b = read_dataset_file(str(csv_path)), read_dataset_file(str(npz_path))
    assert a.label_names == ("class_0", "class_1", "class_2") and a.x_train.shape == (142, 13)
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k


def test_the_hash_leaves_the_data_set_out():
    """Without a dataset store, model.dataset reaches the processor only through
    model.layers; the split is the host's."""
    cfg = load_config(ROOT / "examples" / "wine.toml")
    assert config_hash(cfg.replace(**{"model.dataset": "elsewhere/wine.npz", "model.test_fraction": 0.3})) \
        == config_hash(cfg)


# --------------------------------------------------------------------------------------
# Malformed files: one line, status 2, before any work
# --------------------------------------------------------------------------------------

@pytest.fixture
def no_training(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("training started")
    monkeypatch.setattr(ddfa.cli.train, "_fixed_trainer", lambda: refuse)


def _refused(capsys, argv, *needles) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "no --board/--config: the" not in ln]
    assert len(lines) == 1 and lines[0].startswith(f"ddfa {argv[0]}: error: "), err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


def _train(path, *extra):
    return ["train", "--dataset", str(path), "--model", "fixed", "--epochs", "1", *extra]


def _npz(path, **override):
    x_tr, y_tr, x_te, y_te = _arrays()
    arrays = dict(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_npz_problems(tmp_path, capsys, no_training):
    x_tr, y_tr, x_te, y_te = _arrays()
    cases = [
        (dict(x_train=x_tr[:, 0]), "x_train has shape (40,)", "Fix: give x_train the shape (samples, features)"),
        (dict(x_test=x_te[:, :4]), "x_train has 5 features per sample but x_test has 4", "same features"),
        (dict(y_train=y_tr[:39]), "x_train has 40 samples but y_train has 39", "one label per sample"),
        (dict(y_train=np.eye(3)[y_tr]), "y_train has shape (40, 3)", "argmax"),
        (dict(y_test=y_te - 1), "y_test label -1 (sample 0) is not a whole number 0 or more", "0..K-1"),
        (dict(y_train=y_tr + 0.5), "y_train label 0.5", "0..K-1"),
        (dict(y_test=None), "has no array y_test", "np.savez"),
        (dict(x_train=np.where(np.arange(5) == 3, np.nan, x_tr)), "missing or infinite values (NaN/inf; "
         "the first at sample 0, feature 3)", "fill in or drop"),
        (dict(x_test=np.full((12, 5), "a")), "x_test has dtype <U1, not numbers", "integer or float array"),
    ]
    for i, (override, *needles) in enumerate(cases):
        path = _npz(tmp_path / f"bad{i}.npz", **override)
        _refused(capsys, _train(path), str(path), *needles)


def test_csv_problems(tmp_path, capsys, no_training):
    x_tr, y_tr, _, _ = _arrays()
    good = _write_csv(tmp_path / "good.csv", x_tr, y_tr)
    text = good.read_text().splitlines()
    cases = {
        "no_label.csv": (text, ["--label-column", "class"], "has no label column 'class' (its header: f0, label, f1",
                         "--label-column NAME"),
        "nan.csv": ([text[0], text[1].replace(text[1].split(",")[2], "nan", 1)] + text[2:], [],
                    "line 2, column 'f1' is a missing value ('nan')", "fill in or drop"),
        "empty_cell.csv": ([text[0], text[1], ",".join(text[2].split(",")[:2] + [""] + text[2].split(",")[3:])]
                           + text[3:], [], "line 3, column 'f1' is a missing value ('')"),
        "text.csv": ([text[0], text[1].replace(text[1].split(",")[0], "red", 1)] + text[2:], [],
                     "column 'f0' is not numeric (line 2: 'red')", "encode it as numbers"),
        "short_row.csv": (text[:3] + [",".join(text[3].split(",")[:-1])] + text[4:], [], "line 4 has 5 cells, the header 6"),
        "no_header.csv": (text[1:], [], "has no header row", "add a header row"),
        "header_only.csv": (text[:1], [], "has a header but no samples"),
        "negative.csv": ([text[0], text[1].replace(",0,", ",-2,", 1)] + text[2:], [],
                         "line 2, label '-2' is not a whole number 0 or more", "number the classes 0..K-1"),
    }
    for name, (lines, extra, *needles) in cases.items():
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        _refused(capsys, _train(path, *extra), str(path), *needles)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    _refused(capsys, _train(empty), f"{empty}: is empty", "write the data set into it")
    _refused(capsys, _train(tmp_path / "absent.csv"), "absent.csv: no such file or folder", "relative to the current")
    _refused(capsys, _train(good, "--test-fraction", "0.001"), "40 samples cannot be split", "--test-fraction")


def test_idx_folder_problems(tmp_path, capsys, no_training):
    _idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2), np.uint8))
    _refused(capsys, _train(f"{tmp_path}/"), "has no file train-labels-idx1-ubyte[.gz]", "put the four IDX files")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    _refused(capsys, _train(f"{tmp_path}/"), "holds 3 bytes of data, its header (5,) needs 5")


def test_widths_that_do_not_match_the_data(tmp_path, capsys, no_training):
    path = _npz(tmp_path / "five.npz")
    base = ["--board", "icebreaker", "--set", f"model.dataset={path}"]
    _refused(capsys, ["train", *base, "--set", "model.layers=4-8-3", "--model", "fixed"],
             f"{path}: 5 features per sample, but model.layers [4, 8, 3] starts with 4",
             "Fix: set model.layers = [5, 8, 3]")
    _refused(capsys, ["train", *base, "--set", "model.layers=5-8-10", "--model", "fixed"],
             "3 classes (labels 0..2), but model.layers [5, 8, 10] ends with 10", "[5, 8, 3]")
    out = tmp_path / "gen"
    _refused(capsys, ["generate", *base, "--set", "model.layers=4-8-3", "--out", str(out)], "starts with 4")
    assert not out.exists()
    _refused(capsys, ["simulate", *base, "--set", "model.layers=5-8-4", "--json", str(tmp_path / "s.json"),
                      "--simulator", "icarus"], "ends with 4")
    _refused(capsys, ["board", "train", *base, "--set", "model.layers=5-8-4", "--port", "/dev/null-none"],
             "ends with 4")
    _refused(capsys, ["train", "--board", "icebreaker", "--set", "model.dataset=notes.txt"],
             "'model.dataset': unknown data set 'notes.txt'", "or the path of a .npz or .csv file")
    _refused(capsys, ["train", "--dataset", "mnsit"], "unknown data set 'mnsit'")


# --------------------------------------------------------------------------------------
# The worked example of docs/YOUR-DATA.md, end to end
# --------------------------------------------------------------------------------------

def test_worked_example_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_tabular.main(["--out", "."])
    example = str(ROOT / "examples" / "wine.toml")
    assert main(["train", "--config", example, "--model", "fixed", "--epochs", "2", "--json", "fixed.json"]) == 0
    r = json.loads(Path("fixed.json").read_text())
    assert r["dataset"] == "wine.csv" and r["config"]["model"]["layers"] == [13, 16, 3]
    assert r["test_accuracy"] > 0.8, r["test_accuracy"]
    # --dataset alone sizes the layers from the file
    assert main(["train", "--dataset", "wine.npz", "--model", "fixed", "--epochs", "1", "--json", "npz.json"]) == 0
    assert json.loads(Path("npz.json").read_text())["config"]["model"]["layers"] == [13, 32, 3]
    assert main(["simulate", "--config", example, "--simulator", "icarus", "--steps", "5", "--test", "3",
                 "--json", "sim.json", "--build-dir", str(tmp_path / "sim")]) == 0
    s = json.loads(Path("sim.json").read_text())
    assert s["bit_exact"] and s["mismatches"] == 0 and s["steps"] == 5 and s["checks"] >= 6
    assert s["train_samples"] == 142 and s["test_samples"] == 3
