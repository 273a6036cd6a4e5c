"""What a board runs behind its pins: the host link, two register slices and the processor.

::

    rx -> UARTRx -> Link -> cmd slice -> core.i      core.o -> resp slice -> Link -> UARTTx -> tx

:func:`add_linked_core` puts these blocks into a module; the board top of
:mod:`boards.top` (with the PLL, the pins and the LEDs) and :class:`VirtualBoardTop`
(the same logic alone, clocked by a simulation: ``ddfa board serve``) both build on it, so
the board and its simulation run one design.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config
from ddfa.protocol import link_commands

from .link import DEFAULT_TIMEOUT_US, UARTLink
from .skid import StreamSlice
from .uart import MIN_DIVISOR

__all__ = ["LinkedCore", "add_linked_core", "VirtualBoardTop", "VIRTUAL_DIVISOR", "virtual_timeout_cycles"]

#: UART clock cycles per bit of the virtual board: the fewest :class:`hdl.uart.UARTRx`
#: takes (:data:`hdl.uart.MIN_DIVISOR`). The simulation drives the line in step with the
#: clock, so the bit period is exact and the receiver's mid-bit samples fall in the middle
#: of each bit; the bytes are the board's, each in 10 x 4 = 40 cycles.
VIRTUAL_DIVISOR = MIN_DIVISOR


def virtual_timeout_cycles(cfg: Config) -> int:
    """The virtual board's inter-byte timeout in clock cycles: the board's own,
    :data:`hdl.link.DEFAULT_TIMEOUT_US` (20 ms) at ``cfg.clock_mhz`` (600,000 cycles at
    the iCEBreaker's 30 MHz), not scaled down with the faster UART.

    A timeout counts clock cycles, and a simulation runs far slower than the board's
    clock (about a million cycles a second), so the same count lasts longer in
    wall-clock time than on the board (0.6 s or more for the iCEBreaker's): a client whose
    gaps between bytes the board accepts never times out on the virtual board. Scaled to
    the same number of byte times at :data:`VIRTUAL_DIVISOR`, it would shrink with the
    board's divisor: about 9,200 cycles, 10 ms of wall-clock time, for a board at 115,200
    baud (divisor 260 at 30 MHz), short enough for a busy host's scheduling delays to
    cut a frame. A refused frame is answered once the line has been quiet for this long,
    as on the board.
    """
    return round(cfg.clock_mhz * DEFAULT_TIMEOUT_US)


@dataclass(frozen=True)
class LinkedCore:
    """The blocks :func:`add_linked_core` added.

    Attributes
    ----------
    link : UARTLink
        ``link.rx``/``link.tx`` are the serial lines, ``link.error`` pulses when a frame
        is refused.
    core : wiring.Component
        The core behind the link.
    busy : Value
        A frame is in progress on the link or the core is busy (a training step).
    """

    link: UARTLink
    core: wiring.Component
    busy: Value


def add_linked_core(m: Module, cfg: Config, core, commands, *, divisor: int, timeout_cycles: int) -> LinkedCore:
    """Add the UART link, the two register slices and ``core`` to ``m`` as its submodules
    ``link``, ``cmd_slice``, ``resp_slice`` and ``core``, connected.

    Both byte streams go through register slices (:class:`hdl.skid.StreamSlice`): the
    link's ready and valid logic and the core's command decoding then meet only at
    registers (one cycle of latency each way, a byte every two cycles at most).

    Parameters
    ----------
    m : Module
        The top's module (the ``sync`` domain is the top's).
    cfg : Config
        The configuration (the link's buffer layout).
    core : wiring.Component
        Has ``i: In(stream.Signature(8))`` (commands) and ``o: Out(stream.Signature(8))``
        (answers), and optionally ``busy: Out(1)``.
    commands : iterable
        ``core``'s command table (``ddfa.protocol.host_commands(cfg)`` for the processor).
    divisor : int
        UART clock cycles per bit.
    timeout_cycles : int
        The link's inter-byte timeout in clock cycles.
    """
    m.submodules.link = link = UARTLink(cfg, link_commands(commands), divisor=divisor,
                                        timeout_cycles=timeout_cycles)
    m.submodules.core = core
    m.submodules.cmd_slice = cmd_slice = StreamSlice()
    m.submodules.resp_slice = resp_slice = StreamSlice()
    wiring.connect(m, link.cmd, cmd_slice.i)
    wiring.connect(m, cmd_slice.o, core.i)
    wiring.connect(m, core.o, resp_slice.i)
    wiring.connect(m, resp_slice.o, link.resp)
    busy = link.busy | (core.busy if hasattr(core, "busy") else 0)
    return LinkedCore(link, core, busy)


class VirtualBoardTop(wiring.Component):
    """A board without its PLL and pins: the logic of :func:`add_linked_core` around
    ``core``, its ``sync`` clock and reset driven by a simulation (``ddfa board serve``
    runs it with ``Processor(cfg)``: :func:`sim.virtual_board.virtual_board_top`).

    The UART runs at ``divisor`` cycles per bit instead of the board's; the bytes on the
    lines are the board's.

    Parameters
    ----------
    cfg : Config
        The configuration.
    core : wiring.Component
        The core behind the link (see :func:`add_linked_core`). Its ``busy`` must be high
        while it works on after its last reply byte (the processor's is: a training step
        is answered once it is complete).
    commands : iterable
        ``core``'s command table (``ddfa.protocol.host_commands(cfg)`` for the processor).
    divisor : int
        UART clock cycles per bit (default :data:`VIRTUAL_DIVISOR`).
    timeout_cycles : int, optional
        The link's inter-byte timeout; default :func:`virtual_timeout_cycles`.

    Members
    -------
    rx : ``In(1)``
        Serial line from the host (idle high).
    tx : ``Out(1)``
        Serial line to the host (idle high).
    busy : ``Out(1)``
        A frame is in progress on the link, or the core is busy. While it is low, no byte
        is on its way in or out and nothing changes until ``rx`` falls, so a simulation
        may stop the clock (once the last reply bytes have left ``tx``: up to two bytes,
        20 bit periods, follow the fall of ``busy``).
    """

    def __init__(self, cfg: Config, core, commands, *, divisor: int = VIRTUAL_DIVISOR,
                 timeout_cycles: int | None = None):
        self.cfg = cfg
        self.core = core
        self.commands = link_commands(commands)
        self.divisor = divisor
        self.timeout_cycles = virtual_timeout_cycles(cfg) if timeout_cycles is None else timeout_cycles
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        linked = add_linked_core(m, self.cfg, self.core, self.commands, divisor=self.divisor,
                                 timeout_cycles=self.timeout_cycles)
        m.d.comb += [linked.link.rx.eq(self.rx), self.tx.eq(linked.link.tx), self.busy.eq(linked.busy)]
        return m
