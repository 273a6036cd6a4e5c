"""Direction generator: the per-layer Galois LFSR of ``docs/ARITHMETIC.md``, section 4.1.

The hardware twin of :class:`golden.arith.Lfsr`: one step a cycle when ``next`` is high,
so its bit stream is the golden model's bit for bit (``tests/test_hdl_direction.py``
walks the full period of small widths).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config
from golden.arith import lfsr_mask

__all__ = ["DirectionGenerator"]


class DirectionGenerator(wiring.Component):
    """Rademacher directions ``v_l`` of one hidden layer from a right-shifting Galois LFSR.

    One step: ``bit = s[0]; s = s >> 1; if bit: s ^= mask`` with the maximal-length mask
    of ``cfg.arith.lfsr_width`` bits (:func:`golden.arith.lfsr_mask`). A training step
    draws ``n_l`` bits, neuron 0 first; bit 0 means ``v_i = +1``, bit 1 means ``v_i = -1``.

    Parameters
    ----------
    cfg : Config
        The configuration (``arith.lfsr_width``, ``direction_seed``).
    layer : int
        Hidden layer index, counting from 1; the reset state is
        ``cfg.direction_seed(layer)``.

    Members
    -------
    next : ``In(1)``
        Advance one step this cycle (consuming ``bit``).
    bit : ``Out(1)``
        ``state[0]``: the bit the next advance consumes (1 means ``v_i = -1``).
    state : ``Out(lfsr_width)``
        The LFSR state (for the host to read and save).
    load : ``In(1)``
        Replace the state with ``load_value`` this cycle; wins over ``next``. The host
        must never load zero (the LFSR would stay at zero).
    load_value : ``In(lfsr_width)``
        The state to load.
    """

    def __init__(self, cfg: Config, layer: int):
        if not 1 <= layer < cfg.model.n_layers:
            raise ValueError(f"layer {layer} is not a hidden layer (1..{cfg.model.n_layers - 1})")
        self._width = cfg.arith.lfsr_width
        self._mask = lfsr_mask(self._width)
        self._seed = cfg.direction_seed(layer)
        super().__init__({
            "next": In(1),
            "bit": Out(1),
            "state": Out(self._width, init=self._seed),
            "load": In(1),
            "load_value": In(self._width),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def seed(self) -> int:
        return self._seed

    def elaborate(self, platform):
        m = Module()
        s = Signal(self._width, init=self._seed)
        m.d.comb += [self.state.eq(s), self.bit.eq(s[0])]
        with m.If(self.load):
            m.d.sync += s.eq(self.load_value)
        with m.Elif(self.next):
            m.d.sync += s.eq((s >> 1) ^ (s[0].replicate(self._width) & self._mask))
        return m
