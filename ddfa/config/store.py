"""The dataset store: where a data set lies in the processor's store memory.

A board with a store keeps a whole data set on the chip, in 16-bit words, and trains
epochs from it without the host (``docs/ARITHMETIC.md``, "Training from the dataset
store"). The layout is a function of the configuration alone:

* an input table of ``table_rows * 2**code_bits`` words at address 0: word
  ``t * 2**code_bits + c`` holds the act-format input (two's complement, sign-extended
  to 16 bits) of pixel code ``c`` of input ``t`` (``t = 0`` when ``table_rows == 1``);
* then one record of ``record_words`` words per sample, the training set first: a record
  is the ``n_0`` pixel codes and the label, one byte each, two bytes to a word, low byte
  first;
* in the store's last :data:`HEADER_WORDS` words, the header that says which data set the
  store holds (:meth:`StoreLayout.header`), written by the host after the data set and
  cleared before it is overwritten.

:func:`order_seed` seeds the epoch keys of the chip's training order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .schema import DATASETS, ConfigError

if TYPE_CHECKING:
    from .core import Config

__all__ = ["StoreLayout", "StoreError", "STORE_CAPACITY_WORDS", "STORE_WORD_BITS", "STORE_KINDS", "BUILT_STORES",
           "MAX_SPLIT_RECORDS", "HEADER_WORDS",
           "code_bits", "store_layout", "order_seed", "dataset_id"]

#: Bits of a store word.
STORE_WORD_BITS = 16

#: Store words of each board that has a store: the iCEBreaker's iCE40 UP5K, its four
#: SB_SPRAM256KA (16,384 words of 16 bits each); the ULX3S's 32 MB SDRAM.
STORE_CAPACITY_WORDS = {
    "icebreaker": 4 * 16_384,
    "ulx3s-85f": 16_777_216,
}

#: The memory each board's store is: ``"spram"`` (:class:`hdl.store.SpramStore`) or
#: ``"sdram"`` (the ULX3S's SDRAM; the layout, the golden model and the controller,
#: :class:`hdl.sdram.SdramController`, exist; the processor does not use it yet).
STORE_KINDS = {"icebreaker": "spram", "ulx3s-85f": "sdram"}
#: The kinds the processor builds.
BUILT_STORES = ("spram",)

#: The most records of one split (``n_train``, ``n_test``: 16-bit counts).
MAX_SPLIT_RECORDS = 65_535

#: Words of the store's header (:meth:`StoreLayout.header`).
HEADER_WORDS = 4


class StoreError(ConfigError):
    """A data set that does not fit the dataset store (or a board without one)."""


def code_bits(dataset: str) -> int:
    """Bits of one pixel code of ``dataset`` (``model.dataset``): 5 for ``digits``
    (codes 0..16), 8 for every other data set (0..255)."""
    return 5 if dataset == "digits" else 8


@dataclass(frozen=True)
class StoreLayout:
    """Where a data set lies in the dataset store (16-bit words).

    Parameters
    ----------
    capacity_words : int
        Words the board's store holds.
    code_bits : int
        ``cb``: bits of a pixel code (:func:`code_bits`).
    table_rows : int
        ``TR``: rows of the input table, 1 when every input scales the same way
        (``pm1`` of a built-in data set), else ``n_inputs`` (one per input).
    n_inputs : int
        ``n_0``: pixel codes per record.
    kind : str
        The memory (:data:`STORE_KINDS`).

    Members
    -------
    codes : int
        ``2**code_bits``: table words per row.
    table_words : int
        ``TR * 2**cb``.
    record_words : int
        ``R = ceil((n_0 + 1) / 2)``.
    train_base : int
        The address of training record 0 (``= table_words``).
    """

    capacity_words: int
    code_bits: int
    table_rows: int
    n_inputs: int
    kind: str = "spram"

    @property
    def built(self) -> bool:
        """The processor builds this kind of store (:data:`BUILT_STORES`)."""
        return self.kind in BUILT_STORES

    @property
    def addr_bits(self) -> int:
        """Bits of a store address."""
        return max(1, (self.capacity_words - 1).bit_length())

    @property
    def index_bits(self) -> int:
        """Bits of a record count or index of one split (at most :data:`MAX_SPLIT_RECORDS`,
        at most :attr:`max_records`)."""
        return max(1, min(MAX_SPLIT_RECORDS, self.max_records).bit_length())

    @property
    def codes(self) -> int:
        return 1 << self.code_bits

    @property
    def table_words(self) -> int:
        return self.table_rows * self.codes

    @property
    def record_words(self) -> int:
        return (self.n_inputs + 2) // 2

    @property
    def train_base(self) -> int:
        return self.table_words

    def table_address(self, j: int, code: int) -> int:
        """The table word of input ``j`` (from 0) and pixel code ``code``."""
        return (j if self.table_rows > 1 else 0) * self.codes + code

    def record_address(self, r: int) -> int:
        """The first word of record ``r``: training records ``0 .. n_train - 1``, then the
        test records (test record ``i`` is record ``n_train + i``)."""
        return self.train_base + r * self.record_words

    def words(self, n_train: int, n_test: int) -> int:
        """Words the layout of ``n_train`` training and ``n_test`` test records takes."""
        return self.train_base + (n_train + n_test) * self.record_words

    @property
    def header_base(self) -> int:
        """The address of the header's first word: the store's last :data:`HEADER_WORDS`."""
        return self.capacity_words - HEADER_WORDS

    @staticmethod
    def header(n_train: int, n_test: int, dataset_id: int) -> list[int]:
        """The header of a stored data set: ``n_train``, ``n_test``, then the data set's
        32-bit id, low word first. All zeros (``n_train = 0``) says the store holds none."""
        return [n_train, n_test, dataset_id & 0xFFFF, dataset_id >> 16 & 0xFFFF]

    @property
    def max_records(self) -> int:
        """Records (both splits together) that fit between the table and the header."""
        return max(0, (self.header_base - self.train_base) // self.record_words)

    def check(self, n_train: int, n_test: int, what: str = "the data set") -> None:
        """Raise :class:`StoreError` (with the sizes) unless ``n_train`` and ``n_test``
        records are 0..65,535 each and their layout fits :attr:`capacity_words`."""
        for name, n in (("training", n_train), ("test", n_test)):
            if not 0 <= n <= MAX_SPLIT_RECORDS:
                raise StoreError("model.dataset", f"{what} has {n:,} {name} samples; the dataset store counts at "
                                 f"most {MAX_SPLIT_RECORDS:,} per split",
                                 f"use at most {MAX_SPLIT_RECORDS:,} {name} samples, or train from the host")
        need = self.words(n_train, n_test)
        if need > self.header_base:
            raise StoreError("model.dataset", f"{what} needs {need:,} store words (a table of {self.table_words:,} "
                             f"words, then {n_train:,} + {n_test:,} records of {self.record_words} words), the "
                             f"store holds {self.header_base:,} before its header",
                             f"use at most {self.max_records:,} samples in all, or train from the host")


def store_layout(cfg: Config) -> StoreLayout | None:
    """The dataset store's layout of ``cfg`` (:attr:`Config.store`); None for a board
    without a store and for ``hardware.board = "none"``."""
    capacity = STORE_CAPACITY_WORDS.get(cfg.hardware.board)
    if capacity is None:
        return None
    m = cfg.model
    n0 = m.layers[0]
    rows = 1 if (m.inputs == "pm1" and m.dataset in DATASETS) else n0
    return StoreLayout(capacity_words=capacity, code_bits=code_bits(m.dataset), table_rows=rows, n_inputs=n0,
                       kind=STORE_KINDS[cfg.hardware.board])


def dataset_id(words) -> int:
    """The id a data set is stored under (:meth:`StoreLayout.header`): the first 4 bytes,
    little endian, of the sha256 of its store words (16 bits each, low byte first), so
    that the same image is recognised on the board."""
    raw = b"".join(int(w).to_bytes(2, "little") for w in words)
    return int.from_bytes(hashlib.sha256(raw).digest()[:4], "little")


def order_seed(cfg: Config) -> int:
    """The initial state of the 32-bit epoch-key LFSR (:attr:`Config.order_seed`):
    ``(0x9E3779B9 * (model.seed + 1)) mod 2**32``, or 1 when that is 0."""
    return (0x9E3779B9 * (cfg.model.seed + 1)) & 0xFFFFFFFF or 1
