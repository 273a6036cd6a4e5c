"""The order of an epoch on the chip: a keyed bijection of the training records.

``docs/ARITHMETIC.md``, "Training from the dataset store": before epoch ``e`` the key
LFSR steps 32 times; its low and high halves are the keys ``a`` and ``b``; record
``perm_e(i)`` is the first of ``F(i), F(F(i)), ...`` below ``N`` (cycle walking), with
``F(x) = G(5 * G'(x + a) + b)`` on ``k = bits(N - 1)`` bits, ``G'(x) = x ^ (x >> 3)``,
``G(x) = x ^ (x >> 5)``. :mod:`golden.onchip` is the software model.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config
from golden.arith import lfsr_mask

__all__ = ["KEY_STEPS", "EpochOrder"]

#: Steps of the key LFSR before each epoch.
KEY_STEPS = 32


class EpochOrder(wiring.Component):
    """The key LFSR and the permutation walker.

    ``next_epoch`` steps the key LFSR :data:`KEY_STEPS` times (one step a cycle, ``busy``
    meanwhile) and takes the mask of ``n``; ``start`` then walks ``perm_e(i)``: one
    application of ``F`` a cycle, ``busy`` until ``index`` holds the record (at least 2
    cycles, ``1 + `` the walk's length).

    Parameters
    ----------
    cfg : Config
        The configuration (``cfg.order_seed``, the store's record count).

    Members
    -------
    n : ``In(index_bits)``
        ``N``, the training records (held while epochs run).
    next_epoch : ``In(1)``
        Strobe: make the next epoch's key.
    start : ``In(1)``
        Strobe: compute ``perm_e(i)``.
    i : ``In(index_bits)``
        The position in the epoch.
    index : ``Out(index_bits)``
        ``perm_e(i)``, once ``busy`` has fallen.
    busy : ``Out(1)``
        Stepping the key or walking.
    key : ``Out(32)``
        The key LFSR's state.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.width = w = cfg.chip_store.index_bits
        super().__init__({
            "n": In(w), "next_epoch": In(1), "start": In(1), "i": In(w),
            "index": Out(w), "busy": Out(1), "key": Out(32, init=cfg.order_seed),
        })

    def elaborate(self, platform):
        m = Module()
        w = self.width
        mask = Signal(w)
        steps = Signal(range(KEY_STEPS + 1))
        walking = Signal()
        a, b = self.key[:w] & mask, self.key[16:16 + w] & mask
        x = Signal(w)
        source = Mux(walking, x, self.i)
        x1 = Signal(w)
        x2 = Signal(w)
        x3 = Signal(w)
        fx = Signal(w)
        m.d.comb += [x1.eq((source + a) & mask), x2.eq(x1 ^ (x1 >> 3)),
                     x3.eq((x2 + (x2 << 2) + b) & mask), fx.eq(x3 ^ (x3 >> 5)),
                     self.index.eq(x), self.busy.eq((steps != 0) | walking)]
        # the mask 2**k - 1 of N - 1 (k >= 1): every bit below N - 1's highest set one
        smear = self.n - 1
        for s in (1, 2, 4, 8):
            if s < w:
                smear = smear | (smear >> s)
        with m.If(self.next_epoch):
            m.d.sync += [steps.eq(KEY_STEPS), mask.eq(smear[:w] | 1)]
        with m.Elif(steps != 0):
            lfsr = self.key
            m.d.sync += [lfsr.eq((lfsr >> 1) ^ Mux(lfsr[0], lfsr_mask(32), 0)), steps.eq(steps - 1)]
        with m.If(self.start):
            m.d.sync += [x.eq(fx), walking.eq(1)]
        with m.Elif(walking):
            with m.If(x < self.n):
                m.d.sync += walking.eq(0)
            with m.Else():
                m.d.sync += x.eq(fx)
        return m
