"""Data sets: the embedded digits split, IDX loading, and the errors for missing or corrupt files."""

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from ddfa.data import DIGITS_TEST, STD_FLOOR, DataError, IDX_FILES, load_dataset, load_idx

SHARED = Path(os.environ.get("DDFA_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def test_digits_split_is_fixed_and_scaled():
    d = load_dataset("digits")
    assert d.x_train.shape == (1797 - DIGITS_TEST, 64) and d.x_test.shape == (DIGITS_TEST, 64)
    assert d.x_train.min() == -1.0 and d.x_train.max() == 1.0
    assert d.y_test[:10].tolist() == [2, 8, 2, 6, 6, 7, 1, 9, 8, 5]


def test_digits_standardized_with_training_statistics():
    raw, d = load_dataset("digits"), load_dataset("digits", inputs="standardize")
    assert torch.equal(d.y_train, raw.y_train) and torch.equal(d.y_test, raw.y_test)
    x = raw.x_train.double()
    mean, std = x.mean(0), x.std(0, unbiased=False)
    # Training pixels with a real spread come out with mean 0 and deviation 1; the
    # test split uses the training statistics, not its own.
    wide = std > STD_FLOOR
    assert wide.sum() > 30
    assert d.x_train.double().mean(0).abs().max() < 1e-6
    assert torch.allclose(d.x_train.double().std(0, unbiased=False)[wide], torch.ones(int(wide.sum()), dtype=torch.float64))
    expect = ((raw.x_test.double() - mean) / std.clamp_min(STD_FLOOR)).float()
    assert torch.equal(d.x_test, expect)
    # The floor keeps every value within (1 - (-1)) / STD_FLOOR = 4.
    assert 3.0 < float(torch.cat([d.x_train, d.x_test]).abs().max()) <= 2 / STD_FLOOR
    assert load_dataset("digits", inputs="standardize") is d  # cached


def test_unknown_input_scaling():
    with pytest.raises(DataError, match="unknown input scaling 'zscore'.*Fix: use one of pm1, standardize"):
        load_dataset("digits", inputs="zscore")


def test_training_uses_the_configured_scaling(monkeypatch):
    import ddfa.data
    from ddfa.cli import train
    from ddfa.config import default_config
    seen = []

    def fake(name, data_dir=None, inputs="pm1", **file_options):
        seen.append((name, inputs))
        raise DataError("stop here")
    monkeypatch.setattr(ddfa.data, "load_dataset", fake)
    for board, inputs in (("icebreaker", "standardize"), ("ulx3s-85f", "pm1")):
        with pytest.raises(DataError, match="stop here"):
            train.run_training(default_config(board), model="fixed", progress=False)
        assert seen[-1][1] == inputs


def _copy_mnist(dst: Path) -> Path:
    src = SHARED / "mnist"
    if not src.is_dir():
        pytest.fail(f"MNIST IDX files not found in {src}; set DDFA_DATA_DIR to the directory of mnist/")
    dst.mkdir()
    for f in src.iterdir():
        shutil.copy(f, dst / f.name)
    return dst


def test_mnist_loads_and_checks(tmp_path):
    d = load_idx("mnist", SHARED)
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    assert d.x_train.dtype == torch.float32 and float(d.x_train.min()) == -1.0


def test_uncompressed_files_and_flat_directory(tmp_path):
    root = _copy_mnist(tmp_path / "flat")
    for f in IDX_FILES.values():
        (root / (f + ".gz")).rename(root / "tmp.gz")
        (root / f).write_bytes(gzip.decompress((root / "tmp.gz").read_bytes()))
        (root / "tmp.gz").unlink()
    assert load_idx("mnist", root).y_test.shape == (10000,)


def test_missing_file_names_file_and_fix(tmp_path):
    root = _copy_mnist(tmp_path / "mnist")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing file t10k-labels-idx1-ubyte.*--data-dir"):
        load_idx("mnist", tmp_path)


def test_corrupt_file_is_named(tmp_path):
    root = _copy_mnist(tmp_path / "mnist")
    raw = bytearray(gzip.decompress((root / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] ^= 1
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz is corrupt"):
        load_idx("mnist", tmp_path)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not a valid gzip"):
        load_idx("mnist", tmp_path)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("cifar-10")
