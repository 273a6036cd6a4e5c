"""Payload layouts and port signatures shared by the processor's components.

Every width comes from the configuration (``cfg.arith``); see ``docs/ARITHMETIC.md`` for
the formats and ``docs/ARCHITECTURE.md`` for who produces and consumes each stream.
"""

from __future__ import annotations

from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config
from ddfa.protocol import addr_width

from .fixed import fixed_shape

__all__ = ["ErrorBeat", "OutputBeat", "MemPortSignature", "addr_width"]


class ErrorBeat(data.StructLayout):
    """One beat of the broadcast error bus: ``(e_o, d_L,o)``, output ``o`` in order.

    Parameters
    ----------
    cfg : Config
        The configuration; the fields take its ``err`` and ``act`` formats.

    Members
    -------
    e : ``signed(err.width)``
        Output error ``e_o = p_o - onehot_o`` (err format).
    d : ``signed(act.width)``
        Directional derivative of the output, ``d_L,o = t_L,o`` (act format).
    """

    def __init__(self, cfg: Config):
        super().__init__({
            "e": fixed_shape(cfg.arith.err),
            "d": fixed_shape(cfg.arith.act),
        })


class OutputBeat(data.StructLayout):
    """One beat from the output layer to the output unit: ``(y_L,o, d_L,o)``.

    Parameters
    ----------
    cfg : Config
        The configuration; both fields take its ``act`` format.

    Members
    -------
    y : ``signed(act.width)``
        Output activation ``y_L,o = a_L,o`` (linear output layer).
    d : ``signed(act.width)``
        Directional derivative ``d_L,o = t_L,o``.
    """

    def __init__(self, cfg: Config):
        super().__init__({
            "y": fixed_shape(cfg.arith.act),
            "d": fixed_shape(cfg.arith.act),
        })


class MemPortSignature(wiring.Signature):
    """A host's port into one memory of a component, seen from the host.

    A component offers it as ``In(MemPortSignature(...))``. Reads have one cycle of
    latency: ``rdata`` holds the word at ``addr`` the cycle after ``re``. A write happens
    on the cycle ``we`` is asserted. The host uses the port only while the component is
    idle (``busy`` low).

    Parameters
    ----------
    addr_width : int
        Address bits.
    data_width : int
        Word bits (the stored two's-complement word, read and written as raw bits).

    Members
    -------
    addr : ``Out(addr_width)``
        Word address.
    wdata : ``Out(data_width)``
        Word to write.
    we : ``Out(1)``
        Write ``wdata`` to ``addr`` this cycle.
    re : ``Out(1)``
        Read ``addr``; the word appears on ``rdata`` next cycle.
    rdata : ``In(data_width)``
        Word read.
    """

    def __init__(self, addr_width: int, data_width: int):
        self._addr_width = int(addr_width)
        self._data_width = int(data_width)
        super().__init__({
            "addr": Out(self._addr_width),
            "wdata": Out(self._data_width),
            "we": Out(1),
            "re": Out(1),
            "rdata": In(self._data_width),
        })

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def data_width(self) -> int:
        return self._data_width

    def __eq__(self, other):
        return (type(other) is type(self) and
                other.addr_width == self.addr_width and
                other.data_width == self.data_width)

    def __repr__(self):
        return f"MemPortSignature({self.addr_width}, {self.data_width})"
