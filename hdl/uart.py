"""UART receiver and transmitter: 8 data bits, no parity, one stop bit (8N1).

The host link (:mod:`hdl.link`) sits on these two components; the boards' USB bridges
(FTDI on the iCEBreaker and the ULX3S) carry the line to the host. The bit period is a
whole number of clock cycles, the *divisor*; :func:`uart_divisor` computes it from the
configuration's clock (``cfg.clock_mhz``) and baud rate (``cfg.hardware.baud``) and
refuses a pair whose rounding error would endanger the link.

Both components speak :class:`amaranth.lib.stream.Signature` streams of bytes: a byte
transfers on a cycle when ``valid`` and ``ready`` are both high; a producer holds its
payload while ``valid`` is high and ``ready`` is low.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ddfa.config import Config, ConfigError

__all__ = ["uart_divisor", "UARTRx", "UARTTx", "MAX_BAUD_ERROR"]

#: Largest relative error of the bit period that :func:`uart_divisor` accepts. Both
#: ends may be off by this much and the receiver's mid-bit samples still fall inside the
#: bit after ten bits (start, 8 data, stop): 2 x 2 % x 9.5 bits = 0.38 of a bit < 0.5.
MAX_BAUD_ERROR = 0.02

#: Fewest clock cycles per bit the receiver handles (it samples half a bit after an edge).
MIN_DIVISOR = 4


def uart_divisor(cfg_or_clock_hz: Config | float, baud: int | None = None) -> int:
    """Clock cycles per UART bit: ``round(clock / baud)``.

    Parameters
    ----------
    cfg_or_clock_hz : Config or float
        A configuration (its ``clock_mhz`` and ``hardware.baud`` are used) or a clock
        frequency in Hz.
    baud : int, optional
        Bits per second; required when a frequency is given, ignored for a ``Config``.

    Raises
    ------
    ConfigError
        When the divisor is below :data:`MIN_DIVISOR` or the rounded bit period is off by
        more than :data:`MAX_BAUD_ERROR`.
    """
    if isinstance(cfg_or_clock_hz, Config):
        clock_hz = cfg_or_clock_hz.clock_mhz * 1e6
        baud = cfg_or_clock_hz.hardware.baud
    else:
        clock_hz = float(cfg_or_clock_hz)
        if baud is None:
            raise TypeError("uart_divisor(clock_hz, baud): baud is required with a frequency")
    if baud <= 0:
        raise ConfigError("hardware.baud", f"{baud} is not a baud rate", "use e.g. 115200")
    divisor = round(clock_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ConfigError("hardware.baud", f"{baud} baud needs {clock_hz / baud:.2f} cycles per bit at "
                          f"{clock_hz / 1e6:g} MHz, fewer than {MIN_DIVISOR}",
                          "lower the baud rate or raise the clock")
    error = abs(clock_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ConfigError("hardware.baud", f"{baud} baud at {clock_hz / 1e6:g} MHz is off by "
                          f"{100 * error:.1f} % (divisor {divisor})",
                          f"choose a baud rate within {100 * MAX_BAUD_ERROR:g} % of clock/N")
    return divisor


def _check_divisor(divisor: int) -> int:
    if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise ValueError(f"UART divisor must be an integer of at least {MIN_DIVISOR}, not {divisor!r}")
    return divisor


class UARTRx(wiring.Component):
    """UART receiver, 8N1, LSB first.

    The line goes through a two-flip-flop synchroniser. A falling edge starts a byte; the
    start bit is checked half a bit later (a shorter low pulse is a glitch and ignored),
    then each data bit and the stop bit are sampled in the middle of their bit periods.
    A low stop bit is a framing error: the byte is dropped, ``frame_error`` pulses, and
    the receiver waits for the line to return high (a break holds it low) before it looks
    for the next start bit.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (see :func:`uart_divisor`), at least :data:`MIN_DIVISOR`.

    Members
    -------
    rx : ``In(1)``
        The serial line (idle high). Asynchronous to the clock.
    stream : ``Out(stream.Signature(8))``
        Received bytes. A byte stays valid until it is taken; the receiver keeps one.
    frame_error : ``Out(1)``
        One-cycle pulse: a byte ended with a low stop bit and was dropped.
    overrun : ``Out(1)``
        One-cycle pulse: a byte arrived while the previous one was still not taken; the
        new byte was dropped.
    busy : ``Out(1)``
        A byte is being received (from the start bit to the middle of its stop bit).
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "stream": Out(stream.Signature(8)),
            "frame_error": Out(1),
            "overrun": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        div = self.divisor

        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(div))
        bit = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.stream.ready):
            m.d.sync += self.stream.valid.eq(0)
        m.d.sync += [self.frame_error.eq(0), self.overrun.eq(0)]

        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.comb += self.busy.eq(1)
                with m.If(timer == 0):
                    with m.If(~rx):
                        m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                        m.next = "DATA"
                    with m.Else():
                        m.next = "IDLE"           # a glitch, not a start bit
            with m.State("DATA"):
                m.d.comb += self.busy.eq(1)
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(div - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.comb += self.busy.eq(1)
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(self.stream.valid & ~self.stream.ready):
                            m.d.sync += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.stream.payload.eq(shreg), self.stream.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.frame_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter, 8N1, LSB first.

    Each byte taken from ``stream`` goes out as a start bit (low), eight data bits and one
    stop bit (high), each ``divisor`` cycles long; the next byte follows the stop bit
    without a gap. The line output is a register (no glitches).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (see :func:`uart_divisor`), at least :data:`MIN_DIVISOR`.

    Members
    -------
    tx : ``Out(1)``
        The serial line, high when idle.
    stream : ``In(stream.Signature(8))``
        Bytes to send; ``ready`` is high while the transmitter is idle.
    busy : ``Out(1)``
        A byte is on the line.
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({
            "tx": Out(1, init=1),
            "stream": In(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        div = self.divisor

        timer = Signal(range(div))
        bits = Signal(range(11))
        shreg = Signal(10, init=0x3FF)

        # The transmitter takes the next byte on the last cycle of a stop bit, so
        # back-to-back bytes leave no idle cycle between them.
        last = (bits == 1) & (timer == 0)
        m.d.comb += [
            self.tx.eq(shreg[0]),
            self.busy.eq(bits != 0),
            self.stream.ready.eq((bits == 0) | last),
        ]
        with m.If(self.stream.valid & self.stream.ready):
            m.d.sync += [
                shreg.eq(Cat(Const(0, 1), self.stream.payload, Const(1, 1))),
                bits.eq(10),
                timer.eq(div - 1),
            ]
        with m.Elif(bits != 0):
            with m.If(timer == 0):
                m.d.sync += [
                    shreg.eq(Cat(shreg[1:], Const(1, 1))),
                    bits.eq(bits - 1),
                    timer.eq(div - 1),
                ]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
