"""The frame layer between the UART and the processor's host byte stream.

``docs/HOST-LINK.md`` is the specification; the constants (SYNC, status bytes, error
codes, the CRC) come from :mod:`ddfa.protocol`, which the host side (:mod:`ddfa.cli.link_client`)
reads as well, so both ends read one definition.

The link is *store-and-forward*: a request frame is received whole into a buffer and
checked (known command, the length that command takes, CRC) before its first byte goes
to the processor. A malformed frame -- bad CRC, wrong length, unknown command, a UART
framing error or overrun inside it, or a frame cut short (no byte for longer than the
inter-byte timeout) -- gets an error response and reaches the processor not at all, so
no weight can change because of line noise.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from amaranth.hdl import Cat, Module, Mux, Signal, Value
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config
from ddfa.protocol import CRC_ALGORITHM, STATUS_ERROR, STATUS_OK, SYNC, Command, LinkErrorCode, link_commands

__all__ = ["Link", "UARTLink", "DEFAULT_TIMEOUT_US"]

#: Default inter-byte timeout. USB serial bridges deliver a host's write in bursts with
#: gaps of a few milliseconds between USB transfers; 20 ms leaves a wide margin and is
#: still far below a person's patience.
DEFAULT_TIMEOUT_US = 20_000


class Link(wiring.Component):
    """Frame layer: UART bytes in, checked commands out to the processor, framed
    responses back.

    Request frame: ``SYNC | CMD | LEN (LE) | PAYLOAD | CRC (BE)``; CRC-16/CCITT-FALSE of
    ``CMD..PAYLOAD``. Bytes outside a frame (before SYNC) are ignored. After a frame passes
    every check, the link forwards ``CMD`` then ``PAYLOAD`` on ``cmd`` and, at the same
    time, sends the response frame ``SYNC | CMD | LEN | STATUS_OK | answer | CRC``, whose
    answer is the command's ``response`` bytes taken from ``resp``. It returns to looking
    for SYNC when both are done: one request is in flight at a time.

    A refused frame gets ``SYNC | CMD | 0x0002 | STATUS_ERROR | code | CRC`` and nothing
    is forwarded. For a bad CRC the response follows the frame's last byte; a bad header
    (unknown command, wrong length) or a UART error first waits until the line has been
    quiet for the timeout, discarding the rest of the frame, so that the next frame starts
    clean; a truncated frame is answered when the timeout expires.

    Parameters
    ----------
    cfg : Config
        The configuration: its clock sets the timeout in cycles, and on the ECP5 boards
        (``cfg.registered_bram``) the frame buffer's word is registered before it goes
        out on ``cmd`` (the block RAM's output is slow there), one more cycle per
        forwarded byte.
    commands : iterable
        The commands the processor accepts, with their exact lengths:
        :class:`Command` or anything :func:`link_commands` takes (for the processor,
        ``ddfa.protocol.host_commands(cfg)``).
    timeout_cycles : int, optional
        Inter-byte timeout in clock cycles; default :data:`DEFAULT_TIMEOUT_US` at
        ``cfg.clock_mhz``.

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Bytes from the UART receiver.
    rx_error : ``In(1)``
        The UART receiver's framing-error or overrun pulse.
    tx : ``Out(stream.Signature(8))``
        Bytes to the UART transmitter.
    cmd : ``Out(stream.Signature(8))``
        Checked commands to the processor's host byte stream: CMD, then PAYLOAD.
    resp : ``In(stream.Signature(8))``
        The processor's answers.
    error : ``Out(1)``
        One-cycle pulse when a frame is refused.
    busy : ``Out(1)``
        A frame is being received, checked, forwarded or answered.
    """

    def __init__(self, cfg: Config, commands: Iterable[Command], *, timeout_cycles: int | None = None):
        self.commands: Sequence[Command] = link_commands(commands)
        codes = [c.code for c in self.commands]
        if len(set(codes)) != len(codes):
            raise ValueError(f"duplicate command codes in {codes}")
        if timeout_cycles is None:
            timeout_cycles = round(cfg.clock_mhz * DEFAULT_TIMEOUT_US)
        if timeout_cycles < 1:
            raise ValueError(f"timeout_cycles must be positive, not {timeout_cycles}")
        self.timeout_cycles = int(timeout_cycles)
        self.buffer_depth = max([c.request for c in self.commands] + [1])
        self.registered_read = cfg.registered_bram
        super().__init__({
            "rx": In(stream.Signature(8)),
            "rx_error": In(1),
            "tx": Out(stream.Signature(8)),
            "cmd": Out(stream.Signature(8)),
            "resp": In(stream.Signature(8)),
            "error": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()

        m.submodules.buffer = buf = memory.Memory(shape=8, depth=self.buffer_depth, init=[])
        wr = buf.write_port()
        rd = buf.read_port(transparent_for=())

        # -- the command table ------------------------------------------------------------
        # Counters are as wide as the table needs, not as LEN's 16 bits: the frame's LEN
        # is compared in full once, then only lengths from the table are counted.
        max_resp = max([c.response for c in self.commands] + [1])
        cmd_reg = Signal(8)
        known = Signal()
        exp_req = Signal(16)
        no_args = Signal()
        resp_len = Signal(range(max_resp + 1))
        # Decoded into registers the cycle after CMD (cmd_reg holds still from then on, and
        # the frame's LEN bytes come first), so that no timing path runs through the table.
        with m.Switch(cmd_reg):
            for c in self.commands:
                with m.Case(c.code):
                    m.d.sync += [known.eq(1), exp_req.eq(c.request), no_args.eq(c.request == 0),
                                 resp_len.eq(c.response)]
            with m.Default():
                m.d.sync += [known.eq(0), exp_req.eq(0), no_args.eq(0), resp_len.eq(0)]

        length = Signal(16)
        last = Signal(range(self.buffer_depth))      # argument length - 1
        count = Signal(range(self.buffer_depth))
        err = Signal(range(8))

        got = self.rx.valid & self.rx.ready
        byte = self.rx.payload
        # One CRC processor (CRC_ALGORITHM, one byte a cycle; its `crc` is registered):
        # receiving and sending never overlap. It takes the received byte unless a
        # sending state gives it the sent one.
        m.submodules.crc = crc = CRC_ALGORITHM(data_width=8).create()
        crc_in = Signal(8)
        m.d.comb += [crc_in.eq(byte), crc.data.eq(crc_in)]

        # -- the inter-byte timer: restarts on every byte or UART error ----------------------
        timer = Signal(range(self.timeout_cycles + 1))
        timed_out = timer == self.timeout_cycles
        hunting = Signal()
        with m.If(hunting | got | self.rx_error):
            m.d.sync += timer.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += timer.eq(timer + 1)

        # -- the forwarder: CMD then the buffered payload to the processor -----------------
        fwd_start = Signal()
        fwd_busy = Signal()
        fcount = Signal(range(self.buffer_depth))
        m.d.comb += rd.addr.eq(fcount)
        if self.registered_read:
            # ECP5: the buffer's word goes into a register first (state READ), so that
            # the DP16KD's slow output ends at a register near the block RAM.
            word = Signal(8)
            m.d.sync += word.eq(rd.data)
            after_read = "READ"
        else:
            word = rd.data
            after_read = "DATA"
        with m.FSM(name="fwd"):
            with m.State("IDLE"):
                with m.If(fwd_start):
                    m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += [fwd_busy.eq(1), self.cmd.valid.eq(1), self.cmd.payload.eq(cmd_reg)]
                with m.If(self.cmd.ready):
                    m.d.sync += fcount.eq(0)
                    m.next = "CMD_DONE"
            with m.State("CMD_DONE"):
                # one cycle for the buffer's read latency (address fcount = 0)
                m.d.comb += fwd_busy.eq(1)
                with m.If(no_args):
                    m.next = "IDLE"
                with m.Else():
                    m.next = after_read
            if self.registered_read:
                with m.State("READ"):
                    m.d.comb += fwd_busy.eq(1)
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [fwd_busy.eq(1), self.cmd.valid.eq(1), self.cmd.payload.eq(word)]
                with m.If(self.cmd.ready):
                    m.d.sync += fcount.eq(fcount + 1)
                    with m.If(fcount == last):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += fwd_busy.eq(1)
                m.next = after_read

        # -- the response frame ---------------------------------------------------------------
        ok = Signal()
        idx = Signal(range(5))
        left = Signal(range(max_resp + 1))
        out_len = Signal(17)                 # LEN of the response, set with `ok` (a register:
                                             # the header bytes then need no adder)
        header = Signal(8)
        with m.Switch(idx):
            with m.Case(0):
                m.d.comb += header.eq(SYNC)
            with m.Case(1):
                m.d.comb += header.eq(cmd_reg)
            with m.Case(2):
                m.d.comb += header.eq(out_len[:8])
            with m.Case(3):
                m.d.comb += header.eq(out_len[8:])
            with m.Case(4):
                m.d.comb += header.eq(Mux(ok, STATUS_OK, STATUS_ERROR))
        tx_byte = Signal(8)
        m.d.comb += self.tx.payload.eq(tx_byte)
        sent = self.tx.valid & self.tx.ready

        def refuse(code: LinkErrorCode, drain: bool):
            m.d.sync += err.eq(code)
            m.next = "DRAIN" if drain else "REFUSE"

        def uart_error():
            """Inside a frame a UART error comes first: the byte beside it is suspect."""
            with m.If(self.rx_error):
                refuse(LinkErrorCode.UART, drain=True)

        def timeout():
            with m.Elif(timed_out):
                refuse(LinkErrorCode.TIMEOUT, drain=False)

        def receive(state: str, then: str, *take):
            """A state that waits for one byte of the frame and, when it comes, adds it to
            the CRC, does ``take`` and goes to ``then``."""
            with m.State(state):
                m.d.comb += [self.busy.eq(1), self.rx.ready.eq(1)]
                uart_error()
                with m.Elif(got):
                    m.d.comb += crc.valid.eq(1)
                    m.d.sync += list(take)
                    m.next = then
                timeout()

        with m.FSM(name="link"):
            with m.State("HUNT"):
                m.d.comb += [hunting.eq(1), self.rx.ready.eq(1)]
                with m.If(got & (byte == SYNC)):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += cmd_reg.eq(0)
                    m.next = "CMD"
            receive("CMD", "LEN0", cmd_reg.eq(byte))
            receive("LEN0", "LEN1", length[:8].eq(byte))
            receive("LEN1", "CHECK", length[8:].eq(byte), count.eq(0))
            with m.State("CHECK"):
                m.d.comb += self.busy.eq(1)
                with m.If(~known):
                    refuse(LinkErrorCode.UNKNOWN_CMD, drain=True)
                with m.Elif(length != exp_req):
                    refuse(LinkErrorCode.BAD_LENGTH, drain=True)
                with m.Elif(length == 0):
                    m.next = "CRC0"
                with m.Else():
                    m.d.sync += last.eq(length - 1)
                    m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [self.busy.eq(1), self.rx.ready.eq(1)]
                m.d.comb += [wr.addr.eq(count), wr.data.eq(byte), wr.en.eq(got)]
                uart_error()
                with m.Elif(got):
                    m.d.comb += crc.valid.eq(1)
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == last):
                        m.next = "CRC0"
                timeout()
            receive("CRC0", "CRC1")
            receive("CRC1", "VERIFY")
            with m.State("VERIFY"):
                # the CRC over CMD..CRC is the residue (zero) for an intact frame
                m.d.comb += self.busy.eq(1)
                with m.If(crc.match_detected):
                    # accepted: forward and answer at the same time
                    m.d.comb += [fwd_start.eq(1), crc.start.eq(1)]
                    m.d.sync += [ok.eq(1), left.eq(resp_len), idx.eq(0), out_len.eq(resp_len + 1)]
                    m.next = "TX_HEADER"
                with m.Else():
                    refuse(LinkErrorCode.BAD_CRC, drain=False)
            with m.State("DRAIN"):
                # discard the rest of a refused frame until the line is quiet
                m.d.comb += [self.busy.eq(1), self.rx.ready.eq(1)]
                with m.If(timed_out):
                    m.next = "REFUSE"
            with m.State("REFUSE"):
                m.d.comb += [self.busy.eq(1), self.error.eq(1), crc.start.eq(1)]
                m.d.sync += [ok.eq(0), left.eq(1), idx.eq(0), out_len.eq(2)]
                m.next = "TX_HEADER"
            with m.State("TX_HEADER"):
                m.d.comb += [self.busy.eq(1), self.tx.valid.eq(1), tx_byte.eq(header), crc_in.eq(tx_byte)]
                with m.If(sent):
                    m.d.comb += crc.valid.eq(idx != 0)
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == 4):
                        with m.If(left == 0):
                            m.next = "TX_CRC0"
                        with m.Else():
                            m.next = "TX_BODY"
            with m.State("TX_BODY"):
                m.d.comb += [self.busy.eq(1), crc_in.eq(tx_byte)]
                with m.If(ok):
                    m.d.comb += [
                        tx_byte.eq(self.resp.payload),
                        self.tx.valid.eq(self.resp.valid),
                        self.resp.ready.eq(self.tx.ready),
                    ]
                with m.Else():
                    m.d.comb += [tx_byte.eq(err), self.tx.valid.eq(1)]
                with m.If(sent):
                    m.d.comb += crc.valid.eq(1)
                    m.d.sync += left.eq(left - 1)
                    with m.If(left == 1):
                        m.next = "TX_CRC0"
            with m.State("TX_CRC0"):
                m.d.comb += [self.busy.eq(1), self.tx.valid.eq(1), tx_byte.eq(crc.crc[8:])]
                with m.If(sent):
                    m.next = "TX_CRC1"
            with m.State("TX_CRC1"):
                m.d.comb += [self.busy.eq(1), self.tx.valid.eq(1), tx_byte.eq(crc.crc[:8])]
                with m.If(sent):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.busy.eq(1)
                with m.If(~fwd_busy & ~fwd_start):
                    m.next = "HUNT"
        return m


class UARTLink(wiring.Component):
    """UART pins to checked command bytes and back: :class:`~hdl.uart.UARTRx` ->
    :class:`Link` -> ``cmd`` ... ``resp`` -> Link -> :class:`~hdl.uart.UARTTx`.

    A board top connects ``rx``/``tx`` to the platform's ``uart`` resource and ``cmd``/
    ``resp`` to the processor's host byte streams (``Processor.i``/``Processor.o``).

    Parameters
    ----------
    cfg : Config
        The configuration: clock and ``hardware.baud`` give the UART divisor.
    commands : iterable
        The command table (see :class:`Link`).
    divisor : int, optional
        Clock cycles per bit; default :func:`hdl.uart.uart_divisor` of ``cfg``.
    timeout_cycles : int, optional
        The link's inter-byte timeout (see :class:`Link`).

    Members
    -------
    rx : ``In(1)``
        Serial line from the host (idle high).
    tx : ``Out(1)``
        Serial line to the host (idle high).
    cmd : ``Out(stream.Signature(8))``
        Checked command bytes to the processor.
    resp : ``In(stream.Signature(8))``
        The processor's answers.
    error : ``Out(1)``
        A frame was refused (pulse).
    busy : ``Out(1)``
        A frame is in progress.
    """

    def __init__(self, cfg: Config, commands, *, divisor: int | None = None, timeout_cycles: int | None = None):
        from .uart import uart_divisor
        self.cfg = cfg
        self.commands = link_commands(commands)
        self.divisor = uart_divisor(cfg) if divisor is None else divisor
        self.timeout_cycles = timeout_cycles
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "cmd": Out(stream.Signature(8)),
            "resp": In(stream.Signature(8)),
            "error": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        from .uart import UARTRx, UARTTx
        m = Module()
        m.submodules.uart_rx = urx = UARTRx(self.divisor)
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        m.submodules.link = link = Link(self.cfg, self.commands, timeout_cycles=self.timeout_cycles)
        wiring.connect(m, urx.stream, link.rx)
        # A skid buffer keeps the transmitter's ready logic out of the link's timing paths.
        from .skid import StreamSkid
        m.submodules.tx_skid = tx_skid = StreamSkid()
        wiring.connect(m, link.tx, tx_skid.i)
        wiring.connect(m, tx_skid.o, utx.stream)
        wiring.connect(m, link.cmd, wiring.flipped(self.cmd))
        wiring.connect(m, wiring.flipped(self.resp), link.resp)
        m.d.comb += [
            urx.rx.eq(self.rx),
            self.tx.eq(utx.tx),
            link.rx_error.eq(urx.frame_error | urx.overrun),
            self.error.eq(link.error),
            self.busy.eq(link.busy),
        ]
        return m
