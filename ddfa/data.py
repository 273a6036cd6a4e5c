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

A data set of the user's own (``model.dataset`` a path, docs/YOUR-DATA.md) is a ``.npz``
file (``x_train``, ``y_train``, ``x_test``, ``y_test``), a ``.csv`` file (a header row,
a label column, every other column a feature; the test set a second file or drawn from
the first) or a folder of the four IDX files. :func:`read_dataset_file` reads and checks
it; :func:`load_config_dataset` loads whatever a configuration names and checks it
against ``model.layers``. A file's features are scaled to [-1, 1] by the training set's
per-feature minimum and maximum (test values clipped to [-1, 1]); 8-bit IDX images, as
the built-in sets, by [0, 255]. Labels are whole numbers 0..K-1, or (CSV, ``.npz``)
names, numbered in sorted order.

Every scaling is a :class:`Scaling`: one map, fixed by the training set, that turns raw
features (and so any integer pixel code) into the network's float32 inputs.
:func:`load_coded` gives a data set as the integer pixel codes the chip's dataset store
holds (:class:`CodedData`), with the :class:`Scaling` that :func:`load_dataset` applies to
them: ``golden.onchip.input_table`` evaluates it on every code, so the store's input
table holds the very values :func:`load_dataset` gives.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import INPUT_SCALINGS, STD_FLOOR, Config, code_bits, dataset_is_file

__all__ = ["Dataset", "DataError", "load_dataset", "load_config_dataset", "check_dataset", "read_dataset_file",
           "RawData", "Scaling", "CodedData", "load_coded", "load_config_coded", "load_scaling", "standardize",
           "DIGITS_TEST", "IDX_FILES", "TEST_SPLIT_SEED",
           "INPUT_SCALINGS", "STD_FLOOR"]  # the last two re-exported from ddfa.config



class DataError(FileNotFoundError):
    """A data set file that is missing or corrupt; the message says which and where."""


@dataclass
class Dataset:
    """A data set ready to train on.

    Members
    -------
    name : str
        The built-in set's name or the file's path.
    x_train, x_test : torch.Tensor
        float32 (N, features), scaled (``model.inputs``).
    y_train, y_test : torch.Tensor
        int64 (N,) labels 0..classes-1.
    classes : int
        The number of classes K.
    label_names : tuple of str
        The class names of a file whose labels are names, in label order (sorted); empty
        when the labels are numbers.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int = 10
    label_names: tuple[str, ...] = ()

    @property
    def n_inputs(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return self.classes


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


def _std_stats(x_train: torch.Tensor, floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-feature training mean and floored population deviation (float64)."""
    x = x_train.double()
    return x.mean(0), x.std(0, unbiased=False).clamp_min(floor)


def _standardize_with(t: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return ((t.double() - mean) / std).float()


@dataclass(frozen=True, eq=False)
class Scaling:
    """The map from raw features to the network's float32 inputs (``model.inputs``),
    fixed by the training set. It works feature by feature, element by element, so it
    gives the same float32 values for a data set's samples and for any array of pixel
    codes ``(rows, n_0)`` (``golden.onchip.input_table``).

    Members
    -------
    maximum : float or None
        ``pm1`` of a pixel range [0, ``maximum``] (the built-in sets, 8-bit IDX files):
        ``fl32(fl32(p) * fl32(2 / maximum)) - 1`` in float32.
    lo, hi : numpy.ndarray or None
        ``pm1`` of a file: the per-feature training minimum and maximum (float64);
        ``2 (x - lo) / (hi - lo) - 1`` in float64, clipped to [-1, 1], then float32; a
        feature with ``hi == lo`` is 0.
    mean, std : torch.Tensor or None
        ``standardize``: the per-feature mean and floored population deviation (float64)
        of the training set's ``pm1`` values; ``fl32((x' - mean) / std)`` in float64.
        None for ``pm1``.
    """

    maximum: float | None = None
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None

    def pm1(self, x: np.ndarray) -> torch.Tensor:
        """Raw features ``(rows, n_0)`` to [-1, 1] (float32)."""
        if self.maximum is not None:
            return _scale(x, self.maximum)
        varies = self.hi > self.lo
        span = np.where(varies, self.hi - self.lo, 1.0)
        x = np.asarray(x, dtype=np.float64)
        return torch.from_numpy(np.where(varies, np.clip((x - self.lo) / span * 2.0 - 1.0, -1.0, 1.0), 0.0)
                                .astype(np.float32))

    def standardize(self, t: torch.Tensor) -> torch.Tensor:
        """``pm1`` values to the network's inputs: standardised, or as they are."""
        return t if self.mean is None else _standardize_with(t, self.mean, self.std)

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        """Raw features ``(rows, n_0)`` to the network's float32 inputs."""
        return self.standardize(self.pm1(x))

    def standardized(self, x_train_pm1: torch.Tensor, floor: float = STD_FLOOR) -> "Scaling":
        """This scaling followed by :func:`standardize` with the statistics of the
        training set's ``pm1`` values ``x_train_pm1``."""
        mean, std = _std_stats(x_train_pm1, floor)
        return dataclasses.replace(self, mean=mean, std=std)


def _digits_raw() -> tuple[RawData, Scaling]:
    from sklearn.datasets import load_digits as sk_digits
    d = sk_digits()
    perm = np.random.RandomState(0).permutation(len(d.target))
    test, train = perm[:DIGITS_TEST], perm[DIGITS_TEST:]
    y = d.target.astype(np.int64)
    return RawData(d.data[train], y[train], d.data[test], y[test], 10), Scaling(maximum=16.0)


def _from_raw(name: str, raw: RawData, scaling: Scaling) -> Dataset:
    return Dataset(name, scaling(raw.x_train), torch.from_numpy(raw.y_train), scaling(raw.x_test),
                   torch.from_numpy(raw.y_test), raw.classes, raw.label_names)


def load_digits() -> Dataset:
    return _from_raw("digits", *_digits_raw())


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


def _idx_raw(name: str, data_dir: str | Path | None = None) -> tuple[RawData, Scaling]:
    dirs = _search_dirs(name, data_dir)
    arrays = {k: _read_idx(name, _find(name, f, dirs)) for k, f in IDX_FILES.items()}
    flat = lambda a: a.reshape(a.shape[0], -1)  # noqa: E731
    return (RawData(flat(arrays["train_x"]), arrays["train_y"].astype(np.int64),
                    flat(arrays["test_x"]), arrays["test_y"].astype(np.int64), 10), Scaling(maximum=255.0))


def load_idx(name: str, data_dir: str | Path | None = None) -> Dataset:
    return _from_raw(name, *_idx_raw(name, data_dir))


def standardize(d: Dataset, floor: float = STD_FLOOR) -> Dataset:
    """Each pixel minus its training-set mean, over its training-set standard deviation.

    The statistics come from ``x_train`` alone and are applied to both splits; the
    deviation (population, float64) is floored at ``floor`` so that a pixel that is
    nearly constant in training does not blow up in the test set.
    """
    mean, std = _std_stats(d.x_train, floor)
    return dataclasses.replace(d, x_train=_standardize_with(d.x_train, mean, std),
                               x_test=_standardize_with(d.x_test, mean, std))


# --------------------------------------------------------------------------------------
# The user's own data: .npz, .csv, a folder of IDX files
# --------------------------------------------------------------------------------------

#: The seed of the permutation that draws a CSV file's test set (``model.test_fraction``):
#: fixed, so that runs with different ``model.seed`` are tested on the same samples.
TEST_SPLIT_SEED = 0

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

# IDX element types: the third byte of the magic number.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class RawData:
    """A data set file as read and checked, before scaling.

    Members
    -------
    x_train, x_test : numpy.ndarray
        (N, features), finite: float64 as read from a file; the built-in sets keep their
        pixels (digits float64, the IDX sets uint8).
    y_train, y_test : numpy.ndarray
        int64 (N,) labels 0..classes-1.
    classes : int
        K: the largest label plus one, or the number of label names.
    label_names : tuple of str
        The sorted label names (label k is ``label_names[k]``); empty for numeric labels.
    images_8bit : bool
        The features are 8-bit IDX pixels (scaled by [0, 255], as the built-in sets).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    label_names: tuple[str, ...] = ()
    images_8bit: bool = False


def _fail(path, problem: str, fix: str):
    raise DataError(f"{path}: {problem}. Fix: {fix}.")


def _features(path, what: str, x: np.ndarray) -> np.ndarray:
    """``x`` as finite float64 (N, features): images flattened; refuses the rest."""
    if x.dtype.kind not in "biuf":
        _fail(path, f"{what} has dtype {x.dtype}, not numbers", f"store {what} as an integer or float array")
    if x.ndim < 2:
        _fail(path, f"{what} has shape {x.shape}: not one row of features per sample",
              f"give {what} the shape (samples, features), e.g. x.reshape(len(x), -1)")
    if x.shape[0] == 0:
        _fail(path, f"{what} has no samples", f"give {what} at least one sample")
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    if x.shape[1] == 0:
        _fail(path, f"{what} has no features", f"give {what} at least one feature per sample")
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        i, j = bad[0]
        _fail(path, f"{what} has {len(bad)} missing or infinite values (NaN/inf; the first at sample {i}, "
              f"feature {j})", "fill in or drop those samples")
    return x


def _numeric_labels(path, what: str, y: np.ndarray) -> np.ndarray:
    """Labels stored as numbers: whole numbers 0 or more, as int64."""
    y = y.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)) | (y < 0))
    if len(bad):
        _fail(path, f"{what} label {y[bad[0]]:g} (sample {bad[0]}) is not a whole number 0 or more",
              "number the classes 0..K-1")
    return y.astype(np.int64)


def _labels(path, y_train, y_test, what=("y_train", "y_test")) -> tuple[np.ndarray, np.ndarray, int, tuple]:
    """Both splits' labels as int64 0..K-1, K and the label names (for labels given as text)."""
    if y_train.dtype.kind in "USO" or y_test.dtype.kind in "USO":
        names = tuple(sorted({str(v) for v in y_train} | {str(v) for v in y_test}))
        code = {n: k for k, n in enumerate(names)}
        enc = lambda y: np.array([code[str(v)] for v in y], np.int64)  # noqa: E731
        return enc(y_train), enc(y_test), len(names), names
    out = []
    for w, y in zip(what, (y_train, y_test)):
        if y.dtype.kind not in "biuf":
            _fail(path, f"{w} has dtype {y.dtype}, not numbers", "store the labels as integers 0..K-1")
        out.append(_numeric_labels(path, w, y))
    classes = int(max(out[0].max(initial=0), out[1].max(initial=0))) + 1
    return out[0], out[1], classes, ()


def _pair(path, what: str, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _features(path, f"x_{what}", x)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        _fail(path, f"y_{what} has shape {y.shape}, not one label per sample",
              f"give y_{what} the shape (samples,): class numbers, not one-hot rows (y.argmax(1))")
    if len(y) != len(x):
        _fail(path, f"x_{what} has {len(x)} samples but y_{what} has {len(y)}", "give one label per sample")
    return x, y


def _read_npz(path: Path) -> RawData:
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                _fail(path, f"has no array {', '.join(missing)} (it has {', '.join(f.files) or 'none'})",
                      "save it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
            arrays = {k: f[k] for k in NPZ_KEYS}
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            _fail(path, "holds Python objects", "save plain numeric (or string label) arrays")
        _fail(path, f"is not a valid .npz file ({exc})", "write it with numpy.savez")
    except (OSError, zlib.error, EOFError) as exc:
        _fail(path, f"is not a valid .npz file ({exc})", "write it with numpy.savez")
    x_tr, y_tr = _pair(path, "train", arrays["x_train"], arrays["y_train"])
    x_te, y_te = _pair(path, "test", arrays["x_test"], arrays["y_test"])
    if x_tr.shape[1] != x_te.shape[1]:
        _fail(path, f"x_train has {x_tr.shape[1]} features per sample but x_test has {x_te.shape[1]}",
              "give both splits the same features")
    y_tr, y_te, k, names = _labels(path, y_tr, y_te)
    return RawData(x_tr, y_tr, x_te, y_te, k, names)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv_rows(path: Path, label_column: str) -> tuple[np.ndarray, list[str], list[str]]:
    """The features (float64) and label texts of one CSV file, and its feature names."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        _fail(path, "is not UTF-8 text", "save it as UTF-8 CSV")
    except OSError as exc:
        _fail(path, f"cannot be read ({exc.strerror or exc})", "make it readable")
    except csv.Error as exc:
        _fail(path, f"is not valid CSV ({exc})", "write it with a CSV writer (pandas.DataFrame.to_csv)")
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        _fail(path, "is empty", "write a header row naming the columns, then one row per sample")
    header = [h.strip() for h in rows[0]]
    if all(_is_number(h) for h in header):
        _fail(path, "has no header row (its first row is all numbers)",
              "add a header row naming the columns, the label column among them")
    if label_column not in header:
        _fail(path, f"has no label column {label_column!r} (its header: {', '.join(header)})",
              "name the label column with --label-column NAME (model.label_column), or rename it label")
    if len(header) < 2:
        _fail(path, "has no feature columns", "give every feature a column next to the label column")
    data = rows[1:]
    if not data:
        _fail(path, "has a header but no samples", "add one row per sample")
    li = header.index(label_column)
    names = [h for i, h in enumerate(header) if i != li]
    x = np.empty((len(data), len(header) - 1))
    labels = []
    for n, row in enumerate(data, start=2):
        if len(row) != len(header):
            _fail(path, f"line {n} has {len(row)} cells, the header {len(header)}", "give every row one cell per column")
        cells = [c.strip() for c in row]
        for i, c in enumerate(cells):
            if c == "" or c.lower() in ("nan", "na", "n/a", "null"):
                _fail(path, f"line {n}, column {header[i]!r} is a missing value ({c!r})",
                      "fill in or drop the samples with missing values")
        labels.append(cells[li])
        feats = cells[:li] + cells[li + 1:]
        for j, c in enumerate(feats):
            try:
                v = float(c)
            except ValueError:
                _fail(path, f"column {names[j]!r} is not numeric (line {n}: {c!r})",
                      "encode it as numbers (one-hot columns, say) or drop the column")
            if not math.isfinite(v):
                _fail(path, f"line {n}, column {names[j]!r} is not finite ({c!r})", "give finite numbers")
            x[n - 2, j] = v
    if all(_is_number(v) for v in labels):
        for n, v in enumerate(labels, start=2):
            if not (float(v) >= 0 and float(v) == round(float(v))):
                _fail(path, f"line {n}, label {v!r} is not a whole number 0 or more", "number the classes 0..K-1")
    return x, labels, names


def _read_csv(path: Path, label_column: str, test_file: str, test_fraction: float) -> RawData:
    x, labels, names = _read_csv_rows(path, label_column)
    if test_file:
        tpath = _existing(test_file, "model.test_file")
        x_te, labels_te, names_te = _read_csv_rows(tpath, label_column)
        if names_te != names:
            _fail(tpath, f"has the feature columns {', '.join(names_te)}, {path} has {', '.join(names)}",
                  "give the test file the training file's columns, in its order")
        x_tr, labels_tr = x, labels
    else:
        n = len(x)
        n_test = round(test_fraction * n)
        if n_test < 1 or n_test >= n:
            _fail(path, f"{n} samples cannot be split {1 - test_fraction:g}:{test_fraction:g} into training and test sets",
                  "add samples, change --test-fraction, or give a test file (--test-file)")
        perm = np.random.RandomState(TEST_SPLIT_SEED).permutation(n)
        test, train = np.sort(perm[:n_test]), np.sort(perm[n_test:])
        x_tr, x_te = x[train], x[test]
        labels_tr, labels_te = [labels[i] for i in train], [labels[i] for i in test]
    numeric = all(_is_number(v) for v in labels_tr + labels_te)
    as_array = (lambda t: np.array([float(v) for v in t])) if numeric else (lambda t: np.array(t, dtype=str))
    y_tr, y_te = as_array(labels_tr), as_array(labels_te)
    y_tr, y_te, k, lnames = _labels(path, y_tr, y_te, (f"column {label_column!r}",) * 2)
    return RawData(x_tr, y_tr, x_te, y_te, k, lnames)


def _parse_idx(path: Path) -> np.ndarray:
    """Any IDX file (plain or .gz): the array its header describes."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except OSError as exc:
        _fail(path, f"cannot be read ({getattr(exc, 'strerror', None) or exc})", "make it a readable IDX file")
    except (EOFError, zlib.error) as exc:
        _fail(path, f"is not a valid gzip file ({exc})", "compress it again with gzip, or store it uncompressed")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        _fail(path, "is not an IDX file (bad magic number)", "write it in the IDX format of MNIST")
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    if len(raw) < 4 + 4 * ndim:
        _fail(path, "is truncated (its header is incomplete)", "write the whole file again")
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    need = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - 4 - 4 * ndim != need:
        _fail(path, f"holds {len(raw) - 4 - 4 * ndim} bytes of data, its header {dims} needs {need}",
              "write the whole file again")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)


def _read_idx_folder(path: Path) -> RawData:
    arrays = {}
    for key, fname in IDX_FILES.items():
        found = [c for c in (path / fname, path / (fname + ".gz")) if c.is_file()]
        if not found:
            _fail(path, f"has no file {fname}[.gz]", f"put the four IDX files {', '.join(IDX_FILES.values())} "
                  "(each plain or .gz) in this folder")
        arrays[key] = _parse_idx(found[0])
    x_tr, y_tr = _pair(path, "train", arrays["train_x"], arrays["train_y"])
    x_te, y_te = _pair(path, "test", arrays["test_x"], arrays["test_y"])
    if x_tr.shape[1] != x_te.shape[1]:
        _fail(path, f"its training images have {x_tr.shape[1]} pixels, its test images {x_te.shape[1]}",
              "give both the same image size")
    y_tr, y_te, k, _ = _labels(path, y_tr, y_te)
    u8 = arrays["train_x"].dtype == np.uint8 and arrays["test_x"].dtype == np.uint8
    return RawData(x_tr, y_tr, x_te, y_te, k, images_8bit=u8)


def _existing(name: str, key: str = "model.dataset") -> Path:
    path = Path(name).expanduser()
    if not path.exists():
        raise DataError(f"{name}: no such file or folder (relative to {Path.cwd()}). Fix: give {key} as the "
                        f"path of a .npz or .csv file or a folder of IDX files, absolute or relative to the "
                        f"current directory.")
    return path


def read_dataset_file(name: str, label_column: str = "label", test_file: str = "",
                      test_fraction: float = 0.2) -> RawData:
    """Read and check the data set file or folder ``name`` (``model.dataset``): every
    problem is a one-line :class:`DataError` naming the file, the problem and the fix."""
    path = _existing(name)
    if path.is_dir():
        return _read_idx_folder(path)
    if not path.is_file():
        _fail(path, "is not a regular file", "give a .npz or .csv file or a folder of IDX files")
    if path.stat().st_size == 0:
        _fail(path, "is empty", "write the data set into it (docs/YOUR-DATA.md)")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix == ".csv":
        return _read_csv(path, label_column, test_file, test_fraction)
    _fail(path, f"has the unknown suffix {path.suffix!r}", "give a .npz or .csv file or a folder of IDX files")


def _file_scaling(raw: RawData) -> Scaling:
    """A file's ``pm1``: 8-bit IDX pixels by [0, 255], otherwise each feature by its
    training minimum and maximum (a constant feature is 0; test values are clipped)."""
    if raw.images_8bit:
        return Scaling(maximum=255.0)
    return Scaling(lo=raw.x_train.min(0), hi=raw.x_train.max(0))


def _stamp(name: str) -> tuple:
    """What identifies a file's content for the cache: its path, size and time."""
    try:
        st = Path(name).stat()
    except OSError:
        return (name,)
    return (str(Path(name).resolve()), st.st_size, st.st_mtime_ns)


_CACHE: dict[tuple, Dataset] = {}
_SOURCES: dict[tuple, tuple[RawData, Scaling]] = {}
_SCALINGS: dict[tuple, Scaling] = {}


def _key(name: str, data_dir, label_column: str, test_file: str, test_fraction: float) -> tuple:
    if isinstance(name, str) and dataset_is_file(name):
        return (_stamp(name), _stamp(test_file) if test_file else None, label_column, test_fraction)
    return (name, str(data_dir) if data_dir else os.environ.get("DDFA_DATA_DIR"))


def _source(name: str, data_dir, label_column: str, test_file: str, test_fraction: float) -> tuple[RawData, Scaling]:
    """The raw features and labels of a data set and its ``pm1`` :class:`Scaling`
    (cached per process)."""
    key = _key(name, data_dir, label_column, test_file, test_fraction)
    if key not in _SOURCES:
        if isinstance(name, str) and dataset_is_file(name):
            raw = read_dataset_file(name, label_column, test_file, test_fraction)
            _SOURCES[key] = raw, _file_scaling(raw)
        elif name == "digits":
            _SOURCES[key] = _digits_raw()
        elif name in SHA256:
            _SOURCES[key] = _idx_raw(name, data_dir)
        else:
            raise DataError(f"unknown data set {name!r}. Fix: use digits, mnist or fashion-mnist, or the path "
                            f"of a .npz or .csv file or of a folder of IDX files.")
    return _SOURCES[key]


def _check_inputs(inputs: str) -> None:
    if inputs not in INPUT_SCALINGS:
        raise DataError(f"unknown input scaling {inputs!r}. Fix: use one of {', '.join(INPUT_SCALINGS)}.")


def load_scaling(name: str, data_dir: str | Path | None = None, inputs: str = "pm1", *,
                 label_column: str = "label", test_file: str = "", test_fraction: float = 0.2) -> Scaling:
    """The :class:`Scaling` that :func:`load_dataset` applies to the data set's raw
    features (the arguments are :func:`load_dataset`'s)."""
    _check_inputs(inputs)
    key = (_key(name, data_dir, label_column, test_file, test_fraction), inputs)
    if key not in _SCALINGS:
        _, scaling = _source(name, data_dir, label_column, test_file, test_fraction)
        if inputs != "pm1":
            pm1 = load_dataset(name, data_dir, label_column=label_column, test_file=test_file,
                               test_fraction=test_fraction)
            scaling = scaling.standardized(pm1.x_train)
        _SCALINGS[key] = scaling
    return _SCALINGS[key]


def load_dataset(name: str, data_dir: str | Path | None = None, inputs: str = "pm1", *,
                 label_column: str = "label", test_file: str = "", test_fraction: float = 0.2) -> Dataset:
    """Load ``digits``, ``mnist``, ``fashion-mnist`` or a data set file (cached per process).

    ``inputs`` is the configuration's ``model.inputs``: ``"pm1"`` (pixels in [-1, 1];
    a file's features min-max scaled to [-1, 1]) or ``"standardize"`` (:func:`standardize`
    applied after that). ``label_column``, ``test_file`` and ``test_fraction`` are those
    of ``model`` and apply to a CSV file.
    """
    _check_inputs(inputs)
    key = (_key(name, data_dir, label_column, test_file, test_fraction), inputs)
    if key not in _CACHE:
        split = dict(label_column=label_column, test_file=test_file, test_fraction=test_fraction)
        if inputs != "pm1":
            pm1 = load_dataset(name, data_dir, **split)
            scaling = load_scaling(name, data_dir, inputs, **split)
            _CACHE[key] = dataclasses.replace(pm1, x_train=scaling.standardize(pm1.x_train),
                                              x_test=scaling.standardize(pm1.x_test))
        else:
            raw, scaling = _source(name, data_dir, **split)
            _CACHE[key] = _from_raw(name, raw, scaling)
    return _CACHE[key]


def check_dataset(cfg: Config, data: Dataset) -> None:
    """``model.layers`` starts with the data's feature count and ends with its class count:
    else a one-line :class:`DataError` saying what to set."""
    layers = list(cfg.model.layers)
    n_in, k = data.n_inputs, data.n_classes
    hint = f"[{n_in}, {', '.join(str(n) for n in layers[1:-1]) or '...'}, {k}]"
    if layers[0] != n_in:
        raise DataError(f"{data.name}: {n_in} features per sample, but model.layers {layers} starts with "
                        f"{layers[0]}. Fix: set model.layers = {hint}.")
    if layers[-1] != k:
        what = (f"labels {', '.join(data.label_names)}" if data.label_names else f"labels 0..{k - 1}")
        raise DataError(f"{data.name}: {k} classes ({what}), but model.layers {layers} ends with {layers[-1]}. "
                        f"Fix: set model.layers = {hint}" + ("." if data.label_names else
                                                             f", or number the classes 0..{layers[-1] - 1}."))


def load_config_dataset(cfg: Config, data_dir: str | Path | None = None) -> Dataset:
    """The data set ``cfg`` names, scaled as ``model.inputs`` says, checked against
    ``model.layers`` (:func:`check_dataset`). Every command that uses data calls this
    before any work."""
    m = cfg.model
    data = load_dataset(m.dataset, data_dir, m.inputs, label_column=m.label_column, test_file=m.test_file,
                        test_fraction=m.test_fraction)
    check_dataset(cfg, data)
    return data


# --------------------------------------------------------------------------------------
# Integer pixel codes: what the chip's dataset store holds
# --------------------------------------------------------------------------------------

@dataclass
class CodedData:
    """A data set as integer pixel codes, one byte per feature: what the dataset store
    holds (``ddfa.config.store``, ``golden.onchip.store_image``).

    Members
    -------
    name : str
        The built-in set's name or the file's path.
    x_train, x_test : numpy.ndarray
        uint8 (N, n_0): the features' codes, each in ``0 .. 2**code_bits - 1``.
    y_train, y_test : numpy.ndarray
        int64 (N,) labels 0..classes-1 (at most 255).
    classes : int
        The number of classes K.
    code_bits : int
        Bits of a code (``ddfa.config.code_bits``): 5 for digits, else 8.
    scaling : Scaling
        What :func:`load_dataset` applies to the codes (``model.inputs``): its float32
        values, quantised, are the store's input table.
    label_names : tuple of str
        As :attr:`Dataset.label_names`.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int
    code_bits: int
    scaling: Scaling
    label_names: tuple[str, ...] = ()

    @property
    def codes(self) -> int:
        """The number of codes, ``2**code_bits``."""
        return 1 << self.code_bits

    @property
    def n_inputs(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)

    def subset(self, train: slice | np.ndarray = slice(None), test: slice | np.ndarray = slice(None)) -> "CodedData":
        """Some of the samples, with the same :attr:`scaling` (the full training set's)."""
        return dataclasses.replace(self, x_train=self.x_train[train], y_train=self.y_train[train],
                                   x_test=self.x_test[test], y_test=self.y_test[test])


def _codes(name: str, what: str, x: np.ndarray, bits: int) -> np.ndarray:
    """``x`` as uint8 codes 0..2**bits-1, or a :class:`DataError` naming the first
    feature that is not one."""
    top = (1 << bits) - 1
    x = np.asarray(x)
    bad = np.argwhere((x != np.round(x)) | (x < 0) | (x > top)) if x.dtype.kind == "f" else \
        np.argwhere((x < 0) | (x > top))
    if len(bad):
        i, j = bad[0]
        raise DataError(f"{name}: {what} feature {j} of sample {i} is {x[i, j]:g}, not an integer code 0..{top} "
                        f"({len(bad):,} such values): the dataset store holds each feature as one {bits}-bit code. "
                        f"Fix: give integer features 0..{top} (quantise each feature to {top + 1} levels), or train "
                        f"from the host, one sample at a time.")
    return x.astype(np.uint8)


def load_coded(name: str, data_dir: str | Path | None = None, inputs: str = "pm1", *,
               label_column: str = "label", test_file: str = "", test_fraction: float = 0.2) -> CodedData:
    """The data set as integer pixel codes (:class:`CodedData`), the arguments those of
    :func:`load_dataset`: digits' pixels 0..16 (5-bit codes), MNIST's and Fashion-MNIST's
    bytes, a file's features when every one is an integer 0..255 (8-bit codes); the same
    samples, split and labels as :func:`load_dataset`, whose values are
    ``scaling(codes)``. Anything else is a :class:`DataError` that says so."""
    split = dict(label_column=label_column, test_file=test_file, test_fraction=test_fraction)
    raw, _ = _source(name, data_dir, **split)
    scaling = load_scaling(name, data_dir, inputs, **split)
    bits = code_bits(name)
    if raw.classes > 256:
        raise DataError(f"{name}: {raw.classes} classes; a dataset store record holds the label in one byte. "
                        f"Fix: use at most 256 classes, or train from the host, one sample at a time.")
    return CodedData(name, _codes(name, "training", raw.x_train, bits), raw.y_train,
                     _codes(name, "test", raw.x_test, bits), raw.y_test, raw.classes, bits, scaling,
                     raw.label_names)


def load_config_coded(cfg: Config, data_dir: str | Path | None = None) -> CodedData:
    """The data set ``cfg`` names as integer pixel codes (:func:`load_coded`), checked
    against ``model.layers`` (:func:`check_dataset`)."""
    m = cfg.model
    check_dataset(cfg, load_config_dataset(cfg, data_dir))
    return load_coded(m.dataset, data_dir, m.inputs, label_column=m.label_column, test_file=m.test_file,
                      test_fraction=m.test_fraction)
