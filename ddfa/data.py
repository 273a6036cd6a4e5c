"""Data sets: scikit-learn's 8x8 digits (embedded), MNIST and Fashion-MNIST (IDX files).

Inputs are scaled to [-1, 1] as in the paper (Sec. IV-A). With ``inputs="standardize"``
each pixel is then standardised with the training set's mean and standard deviation
(the deviation floored at 0.5, so that pixels that are almost always blank stay within
about +-4). Every loader returns a :class:`Dataset` of float32 tensors ``x`` (N,
features) and int64 labels ``y``.

Where the IDX files are looked for, first match wins:

1. ``--data-dir DIR`` (``data_dir=``), then ``$DDFA_DATA_DIR``, then Debian's
   ``/usr/share/datasets/fashion-mnist`` (package ``dataset-fashion-mnist``);
2. in each, ``DIR/<dataset>/`` and then ``DIR/`` itself;
3. each file as ``NAME`` or ``NAME.gz``.

The decompressed content of every file is checked against its published sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import INPUT_SCALINGS, STD_FLOOR

__all__ = ["Dataset", "DataError", "load_dataset", "standardize", "DIGITS_TEST", "IDX_FILES",
           "INPUT_SCALINGS", "STD_FLOOR"]  # the last two re-exported from ddfa.config



class DataError(FileNotFoundError):
    """A data set file that is missing or corrupt; the message says which and where."""


@dataclass
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def n_inputs(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return 10


#: Digits split: a fixed permutation (``numpy.random.RandomState(0).permutation(1797)``);
#: its first 360 indices are the test set, the other 1,437 the training set.
DIGITS_TEST = 360

IDX_FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}

# sha256 of the decompressed IDX files.
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def _scale(pixels: np.ndarray, maximum: float) -> torch.Tensor:
    """Pixels in [0, maximum] -> [-1, 1]."""
    return torch.from_numpy(pixels.astype(np.float32) * (2.0 / maximum) - 1.0)


def load_digits() -> Dataset:
    from sklearn.datasets import load_digits as sk_digits
    d = sk_digits()
    perm = np.random.RandomState(0).permutation(len(d.target))
    test, train = perm[:DIGITS_TEST], perm[DIGITS_TEST:]
    x = _scale(d.data, 16.0)
    y = torch.from_numpy(d.target.astype(np.int64))
    return Dataset("digits", x[train], y[train], x[test], y[test])


def _search_dirs(name: str, data_dir: str | Path | None) -> list[Path]:
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    elif os.environ.get("DDFA_DATA_DIR"):
        roots.append(Path(os.environ["DDFA_DATA_DIR"]))
    if name == "fashion-mnist":
        roots.append(DEBIAN_FASHION)
    dirs = []
    for r in roots:
        dirs += [r / name, r]
    return dirs


def _find(name: str, fname: str, dirs: list[Path]) -> Path:
    for d in dirs:
        for cand in (d / fname, d / (fname + ".gz")):
            if cand.is_file():
                return cand
    where = ", ".join(str(d) for d in dirs) or "(no directory given)"
    raise DataError(
        f"{name}: missing file {fname}[.gz]; looked in {where}. Fix: put the standard IDX files "
        f"in a directory and pass --data-dir DIR (or set DDFA_DATA_DIR); DIR/{name}/ or DIR/ both work.")


def _read_idx(name: str, path: Path) -> np.ndarray:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{name}: cannot read {path} ({exc.strerror or exc}). Fix: make it readable.") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{name}: {path} is not a valid gzip file ({exc}). Fix: download it again "
                            f"and put it at {path}.") from None
    base = path.name.removesuffix(".gz")
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256[name][base]:
        raise DataError(f"{name}: {path} is corrupt (sha256 {digest[:16]}..., expected "
                        f"{SHA256[name][base][:16]}...). Fix: replace it with the standard {base} file.")
    magic, = struct.unpack(">I", raw[:4])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_idx(name: str, data_dir: str | Path | None = None) -> Dataset:
    dirs = _search_dirs(name, data_dir)
    arrays = {k: _read_idx(name, _find(name, f, dirs)) for k, f in IDX_FILES.items()}
    flat = lambda a: a.reshape(a.shape[0], -1)
    return Dataset(name,
                   _scale(flat(arrays["train_x"]), 255.0), torch.from_numpy(arrays["train_y"].astype(np.int64)),
                   _scale(flat(arrays["test_x"]), 255.0), torch.from_numpy(arrays["test_y"].astype(np.int64)))


def standardize(d: Dataset, floor: float = STD_FLOOR) -> Dataset:
    """Each pixel minus its training-set mean, over its training-set standard deviation.

    The statistics come from ``x_train`` alone and are applied to both splits; the
    deviation (population, float64) is floored at ``floor`` so that a pixel that is
    nearly constant in training does not blow up in the test set.
    """
    x = d.x_train.double()
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(floor)
    scale = lambda t: ((t.double() - mean) / std).float()  # noqa: E731
    return Dataset(d.name, scale(d.x_train), d.y_train, scale(d.x_test), d.y_test)


_CACHE: dict[tuple, Dataset] = {}


def load_dataset(name: str, data_dir: str | Path | None = None, inputs: str = "pm1") -> Dataset:
    """Load ``digits``, ``mnist`` or ``fashion-mnist`` (cached per process).

    ``inputs`` is the configuration's ``model.inputs``: ``"pm1"`` (pixels in [-1, 1])
    or ``"standardize"`` (:func:`standardize` applied after that).
    """
    if inputs not in INPUT_SCALINGS:
        raise DataError(f"unknown input scaling {inputs!r}. Fix: use one of {', '.join(INPUT_SCALINGS)}.")
    key = (name, str(data_dir) if data_dir else os.environ.get("DDFA_DATA_DIR"), inputs)
    if key not in _CACHE:
        if inputs != "pm1":
            _CACHE[key] = standardize(load_dataset(name, data_dir))
        elif name == "digits":
            _CACHE[key] = load_digits()
        elif name in SHA256:
            _CACHE[key] = load_idx(name, data_dir)
        else:
            raise DataError(f"unknown data set {name!r}. Fix: use digits, mnist or fashion-mnist.")
    return _CACHE[key]
