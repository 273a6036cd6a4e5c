"""A weight bank stored as column slices, one block RAM deep each.

An ECP5 DP16KD holds 1,024 words of 18 bits, or 8,192 of 2. A bank of 6,272 weights (a
layer-1 PE of the ``ulx3s-85f`` default) stored 18 bits wide takes seven block RAMs and a
7:1 read multiplexer after them, whose select is a registered address bit and whose
inputs are the block RAMs' slow outputs (``Config.registered_bram``). Stored as nine
2-bit slices, every slice holds every word: a read takes its bits from each slice at the
same address, and the word goes straight into its register. :class:`SlicedMemory`
is that memory, with the read and write ports of one :class:`~amaranth.lib.memory.Memory`;
:meth:`ddfa.config.Config.bram_slices` chooses the slices.
"""

from __future__ import annotations

from amaranth.hdl import Cat, MemoryData, Module, Shape, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory, ReadPort, WritePort
from amaranth.lib.wiring import Out

from ddfa.protocol import addr_width

__all__ = ["SlicedMemory"]


class SlicedMemory(wiring.Component):
    """A memory of ``depth`` words of ``shape``, stored as column slices of ``slices``
    bits (low bits first), with one synchronous read port and one write port.

    It behaves as ``Memory(shape=shape, depth=depth, init=init)`` with ``read_port()``
    (not transparent) and ``write_port()``: each slice is such a memory, of the slice's
    bits, and both ports drive every slice with the same address and enable.

    Parameters
    ----------
    shape : shape-castable
        The word (a signed or unsigned integer shape).
    depth : int
        Words.
    init : iterable of int
        Initial words (the rest are zero).
    slices : tuple of int
        The slices' widths, low bits first; they add up to the word's width.

    Members
    -------
    read : ``Out(ReadPort.Signature(addr_width, shape))``
        The read port: ``data`` is the word at the ``addr`` given on the last cycle with
        ``en`` high.
    write : ``Out(WritePort.Signature(addr_width, shape))``
        The write port.

    Attributes
    ----------
    slice_data : list of ``MemoryData``
        The slices' contents, for a testbench (:meth:`word` reads a whole word).
    """

    def __init__(self, *, shape, depth: int, init=(), slices: tuple[int, ...]):
        self.shape = Shape.cast(shape)
        if sum(slices) != self.shape.width or not all(w > 0 for w in slices):
            raise ValueError(f"slices {slices} do not add up to the word's {self.shape.width} bits")
        self.depth = depth
        self.slices = tuple(slices)
        words = [int(v) & ((1 << self.shape.width) - 1) for v in init]
        self.slice_data = []
        lo = 0
        for w in self.slices:
            self.slice_data.append(MemoryData(shape=unsigned(w), depth=depth,
                                              init=[(v >> lo) & ((1 << w) - 1) for v in words]))
            lo += w
        aw = addr_width(depth)
        super().__init__({
            "read": Out(ReadPort.Signature(addr_width=aw, shape=self.shape)),
            "write": Out(WritePort.Signature(addr_width=aw, shape=self.shape)),
        })

    def word(self, ctx, addr: int) -> int:
        """The word at ``addr`` in a simulation (``ctx``: a testbench's context)."""
        v, lo = 0, 0
        for w, d in zip(self.slices, self.slice_data):
            v |= ctx.get(d[addr]) << lo
            lo += w
        if self.shape.signed and v >> (self.shape.width - 1):
            v -= 1 << self.shape.width
        return v

    def elaborate(self, platform):
        m = Module()
        rd_data, lo = [], 0
        for k, (w, d) in enumerate(zip(self.slices, self.slice_data)):
            m.submodules[f"s{k}"] = mem = Memory(data=d)
            rd, wr = mem.read_port(), mem.write_port()
            m.d.comb += [
                rd.addr.eq(self.read.addr), rd.en.eq(self.read.en),
                wr.addr.eq(self.write.addr), wr.en.eq(self.write.en),
                wr.data.eq(self.write.data[lo:lo + w]),
            ]
            rd_data.append(rd.data)
            lo += w
        m.d.comb += self.read.data.eq(Cat(*rd_data))
        return m
