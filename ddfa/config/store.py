"""The dataset store's layout: where a data set's input table and records live in the
board's dataset memory (``docs/ARITHMETIC.md``, "Training from the dataset store").

Every field is a function of the configuration alone; the hardware, the golden model and
the host read this one definition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["StoreLayout", "store_layout", "MAX_RECORDS"]

#: At most this many training (and test) records: the host protocol sends their counts
#: in 2 bytes.
MAX_RECORDS = 0xFFFF


@dataclass(frozen=True)
class StoreLayout:
    """The dataset store's layout, in 16-bit words.

    Members
    -------
    kind : str
        ``"spram"`` (the iCE40 UP5K's four SB_SPRAM256KA).
    capacity_words : int
        Words of the store.
    n_inputs : int
        ``n_0``.
    code_bits : int
        Bits of a pixel code (``cb``): 5 for ``digits`` (codes 0..16), else 8.
    table_rows : int
        Rows of the input table (``TR``): 1 when every input scales alike, else ``n_0``.
    """

    kind: str
    capacity_words: int
    n_inputs: int
    code_bits: int
    table_rows: int

    @property
    def addr_bits(self) -> int:
        """Bits of a store address."""
        return max(1, (self.capacity_words - 1).bit_length())

    @property
    def index_bits(self) -> int:
        """Bits of a record number (training or test): enough for :attr:`max_records`."""
        return max(1, self.max_records.bit_length())

    @property
    def table_words(self) -> int:
        """``TR * 2**cb``: the input table, at address 0."""
        return self.table_rows << self.code_bits

    @property
    def record_words(self) -> int:
        """``R = ceil((n_0 + 1) / 2)``: a record's input codes and its label, a byte each."""
        return math.ceil((self.n_inputs + 1) / 2)

    @property
    def train_base(self) -> int:
        """Address of training record 0 (right after the table)."""
        return self.table_words

    def words(self, n_train: int, n_test: int) -> int:
        """Words of a data set of ``n_train`` training and ``n_test`` test records."""
        return self.train_base + (n_train + n_test) * self.record_words

    @property
    def max_records(self) -> int:
        """The most records (training and test together) the store holds."""
        return min(2 * MAX_RECORDS, (self.capacity_words - self.train_base) // self.record_words)

    def check(self, n_train: int, n_test: int) -> None:
        """Raise ``ValueError`` naming the sizes when the data set does not fit."""
        if not 1 <= n_train <= MAX_RECORDS or not 0 <= n_test <= MAX_RECORDS:
            raise ValueError(f"{n_train} training and {n_test} test records: each count must be at most "
                             f"{MAX_RECORDS} (and at least 1 training record)")
        if self.words(n_train, n_test) > self.capacity_words:
            raise ValueError(f"{n_train} training + {n_test} test records of {self.record_words} words and a "
                             f"{self.table_words}-word input table need {self.words(n_train, n_test)} words; the "
                             f"{self.kind} store holds {self.capacity_words} ({self.max_records} records): "
                             f"use fewer samples")


def store_layout(cfg) -> StoreLayout | None:
    """The layout of ``cfg``'s board's dataset store, or None (no board, or a board whose
    store is not built yet)."""
    if not cfg.has_board or cfg.board.family != "ice40":
        return None
    builtin = cfg.model.dataset in ("digits", "mnist", "fashion-mnist")
    code_bits = 5 if cfg.model.dataset == "digits" else 8
    table_rows = 1 if (cfg.model.inputs == "pm1" and builtin) else cfg.model.layers[0]
    return StoreLayout("spram", 4 * 16384, cfg.model.layers[0], code_bits, table_rows)
