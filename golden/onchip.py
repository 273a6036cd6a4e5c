"""Training from the dataset store: the chip's epochs, bit for bit.

A board with a dataset store (:attr:`ddfa.config.Config.store`) holds a whole data set
as integer pixel codes and trains epochs without the host (``docs/ARITHMETIC.md``,
"Training from the dataset store"). This module is that mode's golden model:

* :func:`input_table` and :func:`store_image`: the store's words, the input table first
  (the act-format input of every code of every input), then one record per sample;
* :func:`epoch_keys`, :func:`permutation`, :func:`epoch_permutation`: the order in
  which epoch ``e`` visits the training records (a keyed bijection of ``[0, N)`` by
  cycle walking, the key drawn from a 32-bit LFSR seeded with ``Config.order_seed``);
* :func:`train_epochs` and :func:`evaluate`: :class:`golden.fixed.FixedModel` trained
  and tested from a store image, every record read through the layout and every input
  through the table, each step :meth:`golden.fixed.FixedModel.train_step`;
* :func:`train_onchip`: ``ddfa train --model fixed --on-chip``, the result schema of
  :func:`golden.fixed.train_fixed`.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ddfa.config import STORE_WORD_BITS, Config, StoreError, StoreLayout
from ddfa.data import CodedData

from .arith import Lfsr, quantize
from .diverge import check_divergence
from .fixed import FixedModel

__all__ = ["EPOCH_KEY_LFSR_WIDTH", "EPOCH_KEY_STEPS", "require_store", "epoch_keys", "permutation",
           "epoch_permutation", "input_table", "store_image", "table_inputs", "StoreView", "train_epochs", "evaluate",
           "train_onchip"]

#: Width of the epoch-key LFSR (:class:`golden.arith.Lfsr`, mask ``lfsr_mask(32)``).
EPOCH_KEY_LFSR_WIDTH = 32
#: LFSR steps before each epoch.
EPOCH_KEY_STEPS = 32

_WORD = (1 << STORE_WORD_BITS) - 1


def require_store(cfg: Config) -> StoreLayout:
    """``cfg.store``, or a :class:`~ddfa.config.StoreError` for a board without one."""
    layout = cfg.store
    if layout is None:
        raise StoreError("hardware.board", f"{cfg.hardware.board!r} has no dataset store",
                         "use a board with one (icebreaker, ulx3s-85f), or train from the host")
    if cfg.arith.act.width > STORE_WORD_BITS:
        raise StoreError("arith.act", f"{cfg.arith.act.width}-bit inputs do not fit the dataset store's "
                         f"{STORE_WORD_BITS}-bit table words",
                         f"use an act format of at most {STORE_WORD_BITS} bits, or train from the host")
    return layout


# --------------------------------------------------------------------------------------
# The epoch order
# --------------------------------------------------------------------------------------

def epoch_keys(cfg: Config, epoch: int) -> tuple[int, int]:
    """Epoch ``epoch``'s key ``(a, b)``, unmasked 16-bit halves of ``s_{epoch+1}``.

    ``s_0 = cfg.order_seed``; ``s_{e+1}`` is ``s_e`` after 32 steps of the right-shifting
    Galois LFSR of 32 bits (:class:`golden.arith.Lfsr`); ``a = s_{e+1} & 0xFFFF``,
    ``b = s_{e+1} >> 16``. Epochs count from 0 (the processor's epoch counter at reset).
    """
    if epoch < 0:
        raise ValueError(f"epoch {epoch} < 0")
    lfsr = Lfsr(EPOCH_KEY_LFSR_WIDTH, cfg.order_seed)
    for _ in range(EPOCH_KEY_STEPS * (epoch + 1)):
        lfsr.step()
    s = lfsr.state
    return s & 0xFFFF, s >> 16


def _mix(x: np.ndarray, a: int, b: int, M: int) -> np.ndarray:
    """``F(x)``: each line a bijection of ``[0, M]`` (``M = 2**k - 1``). A new array."""
    x = (x + a) & M
    x ^= x >> 3
    x = (5 * x + b) & M
    x ^= x >> 5
    return x


def permutation(n: int, a: int, b: int) -> np.ndarray:
    """``perm(i)`` for ``i = 0 .. n-1``: the keyed bijection of ``[0, n)`` by cycle walking.

    ``k = max(1, bit_length(n - 1))``, ``M = 2**k - 1``, ``a &= M``, ``b &= M``;
    ``F(x)``: ``x = (x + a) & M; x ^= x >> 3; x = (5 x + b) & M; x ^= x >> 5``
    (:func:`_mix`); ``perm(i)``: ``x = F(i)``, then ``x = F(x)`` while ``x >= n``.

    Returns
    -------
    numpy.ndarray
        int64 ``(n,)``.
    """
    if n < 1:
        raise ValueError(f"a permutation of {n} records: give at least 1")
    k = max(1, (n - 1).bit_length())
    M = (1 << k) - 1
    a, b = a & M, b & M
    x = _mix(np.arange(n, dtype=np.int64), a, b, M)
    walk = np.flatnonzero(x >= n)
    while walk.size:
        y = _mix(x[walk], a, b, M)
        x[walk] = y
        walk = walk[y >= n]
    return x


def epoch_permutation(cfg: Config, n: int, epoch: int) -> np.ndarray:
    """The order in which the chip trains the ``n`` training records in epoch ``epoch``:
    ``permutation(n, *epoch_keys(cfg, epoch))``."""
    return permutation(n, *epoch_keys(cfg, epoch))


# --------------------------------------------------------------------------------------
# The store's words
# --------------------------------------------------------------------------------------

def input_table(cfg: Config, coded: CodedData) -> np.ndarray:
    """The input table: ``table[t * 2**cb + c]`` is the act-format input (the signed
    stored integer) that :meth:`golden.fixed.FixedModel.quantize_input` gives input
    ``j = t`` (any input when the table has one row) for pixel code ``c``: the data
    set's scaling (:attr:`ddfa.data.CodedData.scaling`) evaluated on every code, every
    input, then quantised.

    Returns
    -------
    numpy.ndarray
        int64 ``(table_words,)``.
    """
    layout = require_store(cfg)
    _check_coded(layout, coded)
    grid = np.repeat(np.arange(layout.codes, dtype=coded.x_train.dtype)[:, None], coded.n_inputs, axis=1)
    q = quantize(coded.scaling(grid), cfg.arith.act).numpy()          # (codes, n_0)
    return np.ascontiguousarray(q[:, 0] if layout.table_rows == 1 else q.T.reshape(-1))


def _check_coded(layout: StoreLayout, coded: CodedData) -> None:
    if coded.code_bits != layout.code_bits or coded.n_inputs != layout.n_inputs:
        raise StoreError("model.dataset", f"{coded.name}: {coded.n_inputs} inputs of {coded.code_bits}-bit codes, "
                         f"the store's layout has {layout.n_inputs} of {layout.code_bits} bits",
                         "load the data set the configuration names (ddfa.data.load_config_coded)")


def _records(layout: StoreLayout, codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Records as words ``(N, R)``: byte ``k < n_0`` code ``k``, byte ``n_0`` the label,
    byte ``k`` in word ``k // 2`` at bit ``8 (k % 2)``."""
    n = len(labels)
    raw = np.zeros((n, 2 * layout.record_words), dtype=np.int64)
    raw[:, :layout.n_inputs] = codes
    raw[:, layout.n_inputs] = labels
    return raw[:, 0::2] | (raw[:, 1::2] << 8)


def store_image(cfg: Config, coded: CodedData) -> list[int]:
    """The dataset store's words ``0 .. words(n_train, n_test) - 1`` in address order:
    the input table (16-bit two's complement), then the training records, then the test
    records. Refuses (:class:`~ddfa.config.StoreError`, with the sizes) a data set
    that does not fit."""
    layout = require_store(cfg)
    _check_coded(layout, coded)
    layout.check(coded.n_train, coded.n_test, coded.name)
    if max(coded.y_train.max(initial=0), coded.y_test.max(initial=0)) > 0xFF:
        raise StoreError("model.dataset", f"{coded.name}: labels above 255", "use at most 256 classes")
    table = input_table(cfg, coded) & _WORD
    records = _records(layout, np.concatenate([coded.x_train, coded.x_test]),
                       np.concatenate([coded.y_train, coded.y_test]))
    return np.concatenate([table, records.reshape(-1)]).tolist()


def table_inputs(layout: StoreLayout, table: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Inputs read through the table as the chip reads them: input ``j`` of a record
    with code ``c`` is ``table[t * 2**cb + c]`` (``t = j``, or 0 with one table row).
    ``codes`` ``(N, n_0)``; int64 ``(N, n_0)``."""
    rows = np.arange(layout.n_inputs) if layout.table_rows > 1 else np.zeros(layout.n_inputs, dtype=np.int64)
    return np.ascontiguousarray(table[rows * layout.codes + codes.astype(np.int64)])


class StoreView:
    """A store image read as the chip reads it: records through the layout, inputs
    through the table.

    Parameters
    ----------
    cfg : Config
        The configuration (its :attr:`~ddfa.config.Config.store`).
    image : sequence of int
        Store words from address 0, at least ``words(n_train, n_test)`` of them.
    n_train, n_test : int
        The records' counts (the store's header, TRAIN_EPOCHS' and EVALUATE's).
    """

    def __init__(self, cfg: Config, image, n_train: int, n_test: int):
        self.layout = layout = require_store(cfg)
        layout.check(n_train, n_test)
        self.words = np.asarray(image, dtype=np.int64)
        need = layout.words(n_train, n_test)
        if self.words.size < need:
            raise StoreError("model.dataset", f"a store image of {self.words.size:,} words, its layout needs "
                             f"{need:,}", "give the whole image (golden.onchip.store_image)")
        if ((self.words < 0) | (self.words > _WORD)).any():
            raise ValueError("store words are 16-bit: 0..65535")
        self.n_train, self.n_test = n_train, n_test
        t = self.words[:layout.table_words]
        self.table = np.where(t & 0x8000, t - 0x10000, t)             # sign-extended 16-bit words

    def records(self, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Records ``first .. first + count - 1`` (training then test records): their
        codes ``(count, n_0)`` and labels ``(count,)``."""
        lay = self.layout
        start = lay.record_address(first)
        w = self.words[start:start + count * lay.record_words].reshape(count, lay.record_words)
        raw = np.empty((count, 2 * lay.record_words), dtype=np.int64)
        raw[:, 0::2] = w & 0xFF
        raw[:, 1::2] = w >> 8
        return raw[:, :lay.n_inputs], raw[:, lay.n_inputs]

    def inputs(self, codes: np.ndarray) -> np.ndarray:
        """The act-format inputs of records' codes ``(N, n_0)`` (:func:`table_inputs`)."""
        return table_inputs(self.layout, self.table, codes)

    def train_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Every training record's inputs ``(n_train, n_0)`` and labels."""
        codes, labels = self.records(0, self.n_train)
        return self.inputs(codes), labels

    def test_set(self) -> tuple[np.ndarray, np.ndarray]:
        """Every test record's inputs ``(n_test, n_0)`` and labels."""
        codes, labels = self.records(self.n_train, self.n_test)
        return self.inputs(codes), labels


def _view(model: FixedModel, image_or_coded, n_train, n_test) -> StoreView:
    if isinstance(image_or_coded, CodedData):
        coded = image_or_coded
        return StoreView(model.cfg, store_image(model.cfg, coded), coded.n_train, coded.n_test)
    if n_train is None or n_test is None:
        raise ValueError("a store image needs n_train and n_test")
    return StoreView(model.cfg, image_or_coded, n_train, n_test)


# --------------------------------------------------------------------------------------
# Training and evaluation from the store
# --------------------------------------------------------------------------------------

def train_epochs(model: FixedModel, image_or_coded, n_train: int | None = None, n_test: int | None = None,
                 first_epoch: int = 0, epochs: int = 1) -> list[np.ndarray]:
    """Train ``epochs`` epochs from the store, as TRAIN_EPOCHS does: epoch ``e``
    (``first_epoch``, ``first_epoch + 1``, ...) trains training records
    ``epoch_permutation(cfg, n_train, e)`` in that order, one
    :meth:`~golden.fixed.FixedModel.train_step` each.

    Parameters
    ----------
    model : FixedModel
        Trained in place.
    image_or_coded : list of int or CodedData
        A store image (then ``n_train`` and ``n_test`` are needed), or the data set,
        whose :func:`store_image` is read.
    n_train, n_test : int, optional
        The image's record counts.
    first_epoch : int
        The epoch counter when the run starts (epochs done since reset).
    epochs : int
        Epochs to train.

    Returns
    -------
    list of numpy.ndarray
        Per epoch, ``y_L`` of every step ``(n_train, n_L)``, in training order.
    """
    view = _view(model, image_or_coded, n_train, n_test)
    x, labels = view.train_set()
    labels = labels.tolist()
    out = []
    for e in range(first_epoch, first_epoch + epochs):
        order = epoch_permutation(model.cfg, view.n_train, e)
        out.append(np.stack([model.train_step(x[i], labels[i]) for i in order.tolist()]))
    return out


def evaluate(model: FixedModel, image_or_coded, n_train: int | None = None, n_test: int | None = None) -> int:
    """EVALUATE: one inference per test record ``0 .. n_test - 1``; the number with
    ``argmax y_L == label`` (lowest index on ties). Changes no state."""
    view = _view(model, image_or_coded, n_train, n_test)
    x, labels = view.test_set()
    if len(labels) == 0:
        return 0
    with torch.inference_mode():
        pred = model.predict_batch(torch.from_numpy(x)).numpy()
    return int((pred == labels).sum())


def train_onchip(cfg: Config, coded: CodedData, progress: bool = True, log=None, return_model: bool = False):
    """``ddfa train --model fixed --on-chip``: ``train.epochs`` epochs of
    :func:`train_epochs` from epoch 0 on ``coded``'s store image, each followed by
    :func:`evaluate`.

    Returns
    -------
    dict
        The keys of :func:`golden.fixed.train_fixed`'s result (``alignment_deg`` empty:
        no probes), ``on_chip`` true, ``store_words`` (the image's size) and
        ``test_correct`` (the last evaluation's count).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = FixedModel(cfg)
        image = store_image(cfg, coded)
        view = StoreView(cfg, image, coded.n_train, coded.n_test)
        _, y_train = view.train_set()
        x_test, y_test = view.test_set()
        ar = cfg.arith
        scale = 2.0 ** -ar.act.frac
        n = coded.n_train
        history, total_time, correct = [], 0.0, 0
        bar = tqdm(total=cfg.train.epochs, unit="epoch", disable=not progress,
                   desc=f"on-chip fixed {cfg.model.algorithm} {cfg.model.dataset}", leave=False)
        for epoch in range(cfg.train.epochs):
            start = time.perf_counter()
            with torch.inference_mode():
                y_L = train_epochs(model, image, n, coded.n_test, first_epoch=epoch, epochs=1)[0]
            elapsed = time.perf_counter() - start
            total_time += elapsed
            ys = torch.from_numpy(y_train[epoch_permutation(cfg, n, epoch)])
            lf = torch.from_numpy(y_L).double() * scale
            check_divergence(lf, ys, epoch=epoch + 1, sample=n, lr=2.0 ** -ar.lr_shift, history=history,
                             fix=f"raise arith.lr_shift, e.g. --set arith.lr_shift={ar.lr_shift + 2}")
            correct = evaluate(model, image, n, coded.n_test)
            test_logits = model.logits(torch.from_numpy(x_test)).double() * scale
            entry = dict(epoch=epoch + 1,
                         train_loss=round(float(F.cross_entropy(lf, ys)), 6),
                         train_accuracy=round(float((lf.argmax(1) == ys).double().mean()), 6),
                         test_loss=round(float(F.cross_entropy(test_logits, torch.from_numpy(y_test))), 6),
                         test_accuracy=round(correct / max(1, coded.n_test), 6),
                         alignment_deg=[], lr=2.0 ** -ar.lr_shift, train_seconds=round(elapsed, 3))
            history.append(entry)
            if log is not None:
                log(entry)
            bar.update(1)
        bar.close()
    finally:
        torch.set_num_threads(threads)
    result = dict(model="fixed", on_chip=True, algo=cfg.model.algorithm, dataset=cfg.model.dataset,
                  arch="-".join(map(str, cfg.model.layers)), seed=cfg.model.seed,
                  test_accuracy=history[-1]["test_accuracy"], test_correct=correct, history=history,
                  samples_per_s=round(cfg.train.epochs * n / total_time, 1) if total_time > 0 else None,
                  alignment_deg=[], align_every=0, train_seconds=round(total_time, 3), rounding=ar.rounding,
                  store_words=len(image), state_hash=model.state_hash(), config=cfg.to_dict())
    return (result, model) if return_model else result

