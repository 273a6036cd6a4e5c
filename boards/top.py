"""Board tops: clock and reset, the UART pins, the host link and the processor.

::

    oscillator -> PLL (cfg.clock_mhz) -> sync domain
    uart.rx -> UARTRx -> Link -> Processor.i      Processor.o -> Link -> UARTTx -> uart.tx

:func:`processor_top` is what ``ddfa build`` builds. :class:`BoardTop` takes any core
with the processor's two byte streams (``i``/``o``) and its command table, which lets the
tests place and route the link with a stand-in core before anything else is ready. The
link, its register slices and the core come from :func:`hdl.board.add_linked_core`, which
the virtual board (:class:`hdl.board.VirtualBoardTop`, ``ddfa board serve``) runs too.
"""

from __future__ import annotations

from amaranth.build import ResourceError
from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io

from ddfa.config import Config
from ddfa.protocol import host_commands, link_commands
from hdl.board import add_linked_core
from hdl.link import DEFAULT_TIMEOUT_US
from hdl.uart import uart_divisor

from .pll import BoardClock

__all__ = ["BoardTop", "ProcessorUnavailable", "processor_top"]


class ProcessorUnavailable(RuntimeError):
    """``hdl/top.py``'s Processor cannot be imported or built."""


class BoardTop(Elaboratable):
    """A board's top level around ``core``.

    Parameters
    ----------
    cfg : Config
        The configuration: board, clock, baud rate.
    core : wiring.Component
        Has ``i: In(stream.Signature(8))`` (commands) and ``o: Out(stream.Signature(8))``
        (answers), and optionally ``busy: Out(1)``.
    commands : iterable
        ``core``'s command table (``ddfa.protocol.host_commands(cfg)`` for the processor).

    Attributes
    ----------
    clock : BoardClock
        ``clock.f_sync_hz`` is the clock actually made, once elaborated.
    divisor : int
        UART clock cycles per bit at that clock, once elaborated.
    """

    def __init__(self, cfg: Config, core, commands):
        self.cfg = cfg
        self.core = core
        self.commands = link_commands(commands)
        self.clock = BoardClock(cfg.clock_mhz * 1e6)
        self.divisor: int | None = None

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.clock = self.clock
        f_sync = self.clock.plan(platform)
        self.divisor = uart_divisor(f_sync, self.cfg.hardware.baud)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart.tx)
        linked = add_linked_core(m, self.cfg, self.core, self.commands, divisor=self.divisor,
                                 timeout_cycles=round(f_sync * DEFAULT_TIMEOUT_US / 1e6))
        link = linked.link
        m.d.comb += [link.rx.eq(rx_buf.i), tx_buf.o.eq(link.tx)]

        # LEDs, where the board has them: 0 = a frame or a training step in progress,
        # 1 = the last frame was refused (cleared by the next accepted one).
        leds = []
        for k in range(2):
            try:
                port = platform.request("led", k, dir="-")
            except ResourceError:
                break
            m.submodules[f"led{k}_buf"] = buf = io.Buffer("o", port)
            leds.append(buf)
        if leds:
            m.d.comb += leds[0].o.eq(linked.busy)
        if len(leds) > 1:
            refused = Signal()
            with m.If(link.error):
                m.d.sync += refused.eq(1)
            with m.Elif(link.cmd.valid & link.cmd.ready):
                m.d.sync += refused.eq(0)
            m.d.comb += leds[1].o.eq(refused)
        return m


def processor_top(cfg: Config) -> BoardTop:
    """The board top with ``hdl.top.Processor(cfg)`` behind the link.

    Raises
    ------
    ProcessorUnavailable
        When the processor cannot be imported (``hdl/top.py`` missing or broken); no
        stand-in is ever built in its place.
    """
    try:
        from hdl.top import Processor
    except ImportError as exc:
        raise ProcessorUnavailable(f"the processor (hdl/top.py Processor) "
                                   f"cannot be imported: {exc}. 'ddfa build' builds only the real "
                                   f"processor; fix hdl/ first") from exc
    return BoardTop(cfg, Processor(cfg), host_commands(cfg))
