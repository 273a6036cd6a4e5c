"""Test-only designs for the link and the build flow. NOT the processor.

:class:`EchoStub` stands where the processor goes: it answers each command with its own
payload. :class:`LinkLoopback` is UART -> Link -> EchoStub -> Link -> UART; the tests
simulate it end to end, and ``tests/bench_build.py`` (``make bench-build``) places and
routes it to measure the open-toolchain flow before the processor exists. ``ddfa build``
never builds it.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ddfa.protocol import Command as LinkCommand
from hdl.link import UARTLink

__all__ = ["ECHO_COMMANDS", "EchoStub", "LinkLoopback"]

#: A small command table: ECHO answers its 4 payload bytes, PING answers nothing.
ECHO_COMMANDS = (
    LinkCommand(0x01, "PING", request=0, response=0),
    LinkCommand(0x02, "ECHO", request=4, response=4),
    LinkCommand(0x03, "ECHO16", request=16, response=16),
)


class EchoStub(wiring.Component):
    """Stands for the processor: drops each command's CMD byte and answers with its
    payload bytes, in order (so ``response == request`` for every command it is given).

    Members
    -------
    i : ``In(stream.Signature(8))``
        Commands (the processor's ``i``).
    o : ``Out(stream.Signature(8))``
        Answers (the processor's ``o``).
    """

    def __init__(self, commands=ECHO_COMMANDS, depth: int = 16):
        self.commands = tuple(commands)
        self.depth = depth
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=8, depth=self.depth)
        expect_cmd = Signal(init=1)
        left = Signal(16)
        with m.If(self.i.valid & self.i.ready):
            with m.If(expect_cmd):
                with m.Switch(self.i.payload):
                    for c in self.commands:
                        with m.Case(c.code):
                            m.d.sync += [left.eq(c.request), expect_cmd.eq(c.request == 0)]
            with m.Else():
                m.d.sync += left.eq(left - 1)
                with m.If(left == 1):
                    m.d.sync += expect_cmd.eq(1)
        m.d.comb += [
            self.i.ready.eq(expect_cmd | q.w_rdy),
            q.w_en.eq(self.i.valid & ~expect_cmd),
            q.w_data.eq(self.i.payload),
            self.o.valid.eq(q.r_rdy),
            self.o.payload.eq(q.r_data),
            q.r_en.eq(self.o.ready),
        ]
        return m


class LinkLoopback(wiring.Component):
    """UART pins -> :class:`~hdl.link.UARTLink` -> :class:`EchoStub` -> UARTLink -> UART
    pins.

    Members
    -------
    rx : ``In(1)``
    tx : ``Out(1)``
    error : ``Out(1)``
        The link refused a frame (pulse).
    """

    def __init__(self, cfg, divisor: int, *, timeout_cycles: int | None = None, commands=ECHO_COMMANDS):
        self.cfg = cfg
        self.divisor = divisor
        self.timeout_cycles = timeout_cycles
        self.commands = tuple(commands)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = UARTLink(self.cfg, self.commands, divisor=self.divisor,
                                            timeout_cycles=self.timeout_cycles)
        m.submodules.stub = stub = EchoStub(self.commands)
        wiring.connect(m, link.cmd, stub.i)
        wiring.connect(m, stub.o, link.resp)
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx), self.error.eq(link.error)]
        return m
