"""A stream register slice that cuts every combinational path through it."""

from __future__ import annotations

from amaranth.lib import stream, wiring
from amaranth.hdl import Module
from amaranth.lib.wiring import In, Out

__all__ = ["StreamSlice"]


class StreamSlice(wiring.Component):
    """A stream through one register: ``i.ready``, ``o.valid`` and ``o.payload`` all come
    from registers, so no combinational path crosses it. A word is offered on ``o`` the
    cycle after ``i`` gave it (latency 1) and ``i`` is ready again the cycle after ``o``
    took it: one word every two cycles, which is plenty for the byte streams of a UART.

    Parameters
    ----------
    width : int
        Payload bits.

    Members
    -------
    i : ``In(stream.Signature(width))``
    o : ``Out(stream.Signature(width))``
    """

    def __init__(self, width: int = 8):
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.i.ready.eq(~self.o.valid)
        with m.If(self.o.valid):
            with m.If(self.o.ready):
                m.d.sync += self.o.valid.eq(0)
        with m.Elif(self.i.valid):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(self.i.payload)]
        return m
