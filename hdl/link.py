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

The CRC is :data:`ddfa.protocol.CRC_ALGORITHM` (``amaranth.lib.crc``'s
CRC-16/CCITT-FALSE): its ``create()`` is the hardware's CRC processor and its
``compute()`` the software's :func:`ddfa.protocol.crc16`.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config
from ddfa.protocol import CRC_ALGORITHM, STATUS_ERROR, STATUS_OK, SYNC, Command, LinkErrorCode, link_commands

from .skid import StreamSlice
from .uart import UARTRx, UARTTx, uart_divisor

__all__ = ["CRCPortSignature", "InterByteTimer", "CommandTable", "FrameReceiver", "CommandForwarder",
           "ResponseSender", "Link", "UARTLink", "DEFAULT_TIMEOUT_US"]

#: Default inter-byte timeout. USB serial bridges deliver a host's write in bursts with
#: gaps of a few milliseconds between USB transfers; 20 ms leaves a wide margin and is
#: still far below a person's patience.
DEFAULT_TIMEOUT_US = 20_000


def CRCPortSignature() -> wiring.Signature:
    """A user's port into the link's one CRC processor (:data:`ddfa.protocol.CRC_ALGORITHM`;
    the receiver and the response sender never use it at the same time).

    Members
    -------
    start : ``Out(1)``
        Restart from the initial value.
    valid : ``Out(1)``
        Add ``data`` (with ``start``: to the initial value); the new ``crc`` is there the
        next cycle.
    data : ``Out(8)``
        The byte to add.
    crc : ``In(16)``
        The CRC so far (registered).
    match : ``In(1)``
        ``crc`` is the residue (0): the bytes since ``start`` end in their own CRC.
    """
    return wiring.Signature({
        "start": Out(1), "valid": Out(1), "data": Out(8), "crc": In(16), "match": In(1),
    })


class InterByteTimer(wiring.Component):
    """Counts the cycles since the last received byte.

    Parameters
    ----------
    timeout_cycles : int
        Cycles to the timeout.

    Members
    -------
    restart : ``In(1)``
        Start from 0 (a byte or a UART error arrived, or the link is hunting for SYNC).
    expired : ``Out(1)``
        ``timeout_cycles`` cycles have passed since the last ``restart`` (comes 1 cycle
        after the count reaches it; holds until ``restart``).
    """

    def __init__(self, timeout_cycles: int):
        self.timeout_cycles = int(timeout_cycles)
        super().__init__({"restart": In(1), "expired": Out(1)})

    def elaborate(self, platform):
        m = Module()
        cycles = Signal(range(self.timeout_cycles + 1))
        m.d.comb += self.expired.eq(cycles == self.timeout_cycles)
        with m.If(self.restart):
            m.d.sync += cycles.eq(0)
        with m.Elif(~self.expired):
            m.d.sync += cycles.eq(cycles + 1)
        return m


class CommandTable(wiring.Component):
    """The link's command table: the lengths of the command ``code``, registered.

    Parameters
    ----------
    commands : sequence of :class:`~ddfa.protocol.Command`
        The table.

    Members
    -------
    code : ``In(8)``
        The CMD byte.
    known : ``Out(1)``
        ``code`` is in the table (latency 1, like the others).
    request : ``Out(16)``
        Its argument bytes (0 for an unknown code).
    no_args : ``Out(1)``
        ``request`` is 0.
    response : ``Out(range(max response + 1))``
        Its reply bytes.
    """

    def __init__(self, commands: Sequence[Command]):
        self.commands = tuple(commands)
        max_response = max([c.response for c in self.commands] + [1])
        super().__init__({"code": In(8), "known": Out(1), "request": Out(16), "no_args": Out(1),
                          "response": Out(range(max_response + 1))})

    def elaborate(self, platform):
        m = Module()
        with m.Switch(self.code):
            for c in self.commands:
                with m.Case(c.code):
                    m.d.sync += [self.known.eq(1), self.request.eq(c.request), self.no_args.eq(c.request == 0),
                                 self.response.eq(c.response)]
            with m.Default():
                m.d.sync += [self.known.eq(0), self.request.eq(0), self.no_args.eq(0), self.response.eq(0)]
        return m


class FrameReceiver(wiring.Component):
    """Receives one request frame into the frame buffer and checks it: known command,
    the length it takes, CRC, no UART error, no gap longer than the timeout.

    It hunts for SYNC, takes CMD and LEN, checks them against the command table (one
    cycle after LEN), stores the payload, adds the two CRC bytes and checks the residue
    (one cycle after the last byte). Then it signals ``accept`` or ``refuse`` (a refused
    bad header or UART error first waits, discarding bytes, until the line has been quiet
    for the timeout) and waits for ``release`` before it hunts again.

    Parameters
    ----------
    buffer_depth : int
        Bytes of the frame buffer (the longest payload in the table).

    Members
    -------
    rx : ``In(stream.Signature(8))``
        Bytes from the UART receiver.
    rx_error : ``In(1)``
        The UART's framing-error or overrun pulse.
    expired, restart : ``In(1)``, ``Out(1)``
        The :class:`InterByteTimer`'s.
    code : ``Out(8)``
        The frame's CMD (0 until it arrives), held until the next SYNC.
    known, request : ``In(1)``, ``In(16)``
        The :class:`CommandTable`'s lookup of ``code``.
    wr_addr, wr_data, wr_en : ``Out(range(buffer_depth))``, ``Out(8)``, ``Out(1)``
        The frame buffer's write port (payload byte ``k`` at address ``k``).
    last : ``Out(range(buffer_depth))``
        Payload bytes - 1 (held from ``accept`` on).
    crc : ``Out(CRCPortSignature())``
        The CRC processor, from SYNC to ``accept``/``refuse``.
    accept : ``Out(1)``
        One-cycle pulse: the frame passed every check.
    refuse : ``Out(1)``
        One-cycle pulse: the frame is refused for ``error_code``.
    error_code : ``Out(8)``
        The :class:`~ddfa.protocol.LinkErrorCode`, with ``refuse``.
    release : ``In(1)``
        The response and the forwarding are done: hunt for the next frame.
    busy : ``Out(1)``
        Not hunting for SYNC.
    """

    def __init__(self, buffer_depth: int):
        self.buffer_depth = int(buffer_depth)
        super().__init__({
            "rx": In(stream.Signature(8)), "rx_error": In(1),
            "expired": In(1), "restart": Out(1),
            "code": Out(8), "known": In(1), "request": In(16),
            "wr_addr": Out(range(self.buffer_depth)), "wr_data": Out(8), "wr_en": Out(1),
            "last": Out(range(self.buffer_depth)),
            "crc": Out(CRCPortSignature()),
            "accept": Out(1), "refuse": Out(1), "error_code": Out(8),
            "release": In(1), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        length = Signal(16)                                  # the frame's LEN
        count = Signal(range(self.buffer_depth))             # payload bytes stored
        got = self.rx.valid & self.rx.ready
        byte = self.rx.payload
        m.d.comb += [self.restart.eq(~self.busy | got | self.rx_error), self.crc.data.eq(byte),
                     self.wr_addr.eq(count), self.wr_data.eq(byte)]

        def refuse(code: LinkErrorCode, drain: bool):
            m.d.sync += self.error_code.eq(code)
            m.next = "DRAIN" if drain else "REFUSE"

        def receive(state: str, then: str, *take):
            """Wait for one byte of the frame; add it to the CRC, do ``take``, go to
            ``then``. A UART error comes first (the byte beside it is suspect), then the byte,
            then the timeout."""
            with m.State(state):
                m.d.comb += [self.busy.eq(1), self.rx.ready.eq(1)]
                with m.If(self.rx_error):
                    refuse(LinkErrorCode.UART, drain=True)
                with m.Elif(got):
                    m.d.comb += self.crc.valid.eq(1)
                    m.d.sync += list(take)
                    m.next = then
                with m.Elif(self.expired):
                    refuse(LinkErrorCode.TIMEOUT, drain=False)

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(got & (byte == SYNC)):
                    m.d.comb += self.crc.start.eq(1)
                    m.d.sync += self.code.eq(0)
                    m.next = "CMD"
            receive("CMD", "LEN0", self.code.eq(byte))
            receive("LEN0", "LEN1", length[:8].eq(byte))
            receive("LEN1", "CHECK", length[8:].eq(byte), count.eq(0))
            with m.State("CHECK"):
                m.d.comb += self.busy.eq(1)
                with m.If(~self.known):
                    refuse(LinkErrorCode.UNKNOWN_CMD, drain=True)
                with m.Elif(length != self.request):
                    refuse(LinkErrorCode.BAD_LENGTH, drain=True)
                with m.Elif(length == 0):
                    m.next = "CRC0"
                with m.Else():
                    m.d.sync += self.last.eq(length - 1)
                    m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [self.busy.eq(1), self.rx.ready.eq(1), self.wr_en.eq(got)]
                with m.If(self.rx_error):
                    refuse(LinkErrorCode.UART, drain=True)
                with m.Elif(got):
                    m.d.comb += self.crc.valid.eq(1)
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == self.last):
                        m.next = "CRC0"
                with m.Elif(self.expired):
                    refuse(LinkErrorCode.TIMEOUT, drain=False)
            receive("CRC0", "CRC1")
            receive("CRC1", "VERIFY")
            with m.State("VERIFY"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.crc.match):
                    m.d.comb += self.accept.eq(1)
                    m.next = "ANSWER"
                with m.Else():
                    refuse(LinkErrorCode.BAD_CRC, drain=False)
            with m.State("DRAIN"):
                # discard the rest of a refused frame until the line is quiet
                m.d.comb += [self.busy.eq(1), self.rx.ready.eq(1)]
                with m.If(self.expired):
                    m.next = "REFUSE"
            with m.State("REFUSE"):
                m.d.comb += [self.busy.eq(1), self.refuse.eq(1)]
                m.next = "ANSWER"
            with m.State("ANSWER"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.release):
                    m.next = "HUNT"
        return m


class CommandForwarder(wiring.Component):
    """Sends an accepted frame's CMD, then its payload from the frame buffer, to the
    processor.

    Parameters
    ----------
    buffer_depth : int
        Bytes of the frame buffer.
    registered_read : bool
        The buffer's word goes into a register before it goes out (ECP5: the block RAM's
        output is slow there): one more cycle per byte.

    Members
    -------
    start : ``In(1)``
        Forward the frame (``code``, ``no_args`` and ``last`` hold until ``busy`` falls).
    code : ``In(8)``
        CMD.
    no_args : ``In(1)``
        The command has no payload.
    last : ``In(range(buffer_depth))``
        Payload bytes - 1.
    rd_addr : ``Out(range(buffer_depth))``
        The frame buffer's read address.
    rd_data : ``In(8)``
        Its byte (one cycle after the address).
    o : ``Out(stream.Signature(8))``
        CMD, then the payload: one byte every 2 cycles (3 with ``registered_read``).
    busy : ``Out(1)``
        Forwarding.
    """

    def __init__(self, buffer_depth: int, registered_read: bool):
        self.buffer_depth = int(buffer_depth)
        self.registered_read = bool(registered_read)
        super().__init__({
            "start": In(1), "code": In(8), "no_args": In(1), "last": In(range(self.buffer_depth)),
            "rd_addr": Out(range(self.buffer_depth)), "rd_data": In(8),
            "o": Out(stream.Signature(8)), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        sent = Signal(range(self.buffer_depth))          # payload bytes forwarded
        m.d.comb += self.rd_addr.eq(sent)
        if self.registered_read:
            payload_byte = Signal(8)
            m.d.sync += payload_byte.eq(self.rd_data)
            after_read = "READ"
        else:
            payload_byte = self.rd_data
            after_read = "DATA"
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(self.code)]
                with m.If(self.o.ready):
                    m.d.sync += sent.eq(0)
                    m.next = "CMD_DONE"
            with m.State("CMD_DONE"):
                # one cycle for the buffer's read latency (address 0)
                m.d.comb += self.busy.eq(1)
                with m.If(self.no_args):
                    m.next = "IDLE"
                with m.Else():
                    m.next = after_read
            if self.registered_read:
                with m.State("READ"):
                    m.d.comb += self.busy.eq(1)
                    m.next = "DATA"
            with m.State("DATA"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(payload_byte)]
                with m.If(self.o.ready):
                    m.d.sync += sent.eq(sent + 1)
                    with m.If(sent == self.last):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                m.next = after_read
        return m


class ResponseSender(wiring.Component):
    """Sends the response frame ``SYNC | CMD | LEN | STATUS | data | CRC``: for an
    accepted frame, status OK and the processor's ``response`` bytes as they come; for a
    refused one, status ERROR and the error code.

    Parameters
    ----------
    max_response : int
        The longest reply in the command table.

    Members
    -------
    start : ``In(1)``
        Send a response (``ok``, ``code``, ``error_code`` and ``response`` are taken
        with it; ``code`` holds until ``busy`` falls).
    ok : ``In(1)``
        Status OK (else ERROR).
    code : ``In(8)``
        CMD.
    response : ``In(range(max_response + 1))``
        Bytes of the processor's reply (with ``ok``).
    error_code : ``In(8)``
        The :class:`~ddfa.protocol.LinkErrorCode` (without ``ok``).
    resp : ``In(stream.Signature(8))``
        The processor's reply bytes.
    tx : ``Out(stream.Signature(8))``
        The frame's bytes, the first the cycle after ``start``.
    crc : ``Out(CRCPortSignature())``
        The CRC processor, from ``start`` on.
    busy : ``Out(1)``
        Sending.
    """

    def __init__(self, max_response: int):
        self.max_response = int(max_response)
        super().__init__({
            "start": In(1), "ok": In(1), "code": In(8), "response": In(range(self.max_response + 1)),
            "error_code": In(8), "resp": In(stream.Signature(8)), "tx": Out(stream.Signature(8)),
            "crc": Out(CRCPortSignature()), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        ok = Signal()
        error_code = Signal(8)
        header_index = Signal(range(5))                      # SYNC, CMD, LEN0, LEN1, STATUS
        body_left = Signal(range(self.max_response + 1))     # data bytes still to send
        frame_len = Signal(17)                               # LEN (a register: no adder on the way out)
        header = Signal(8)
        with m.Switch(header_index):
            with m.Case(0):
                m.d.comb += header.eq(SYNC)
            with m.Case(1):
                m.d.comb += header.eq(self.code)
            with m.Case(2):
                m.d.comb += header.eq(frame_len[:8])
            with m.Case(3):
                m.d.comb += header.eq(frame_len[8:])
            with m.Case(4):
                m.d.comb += header.eq(Mux(ok, STATUS_OK, STATUS_ERROR))
        sent = self.tx.valid & self.tx.ready
        m.d.comb += self.crc.data.eq(self.tx.payload)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += self.crc.start.eq(1)
                    m.d.sync += [ok.eq(self.ok), error_code.eq(self.error_code), header_index.eq(0),
                                 body_left.eq(Mux(self.ok, self.response, 1)),
                                 frame_len.eq(Mux(self.ok, self.response + 1, 2))]
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += [self.busy.eq(1), self.tx.valid.eq(1), self.tx.payload.eq(header)]
                with m.If(sent):
                    m.d.comb += self.crc.valid.eq(header_index != 0)
                    m.d.sync += header_index.eq(header_index + 1)
                    with m.If(header_index == 4):
                        with m.If(body_left == 0):
                            m.next = "CRC0"
                        with m.Else():
                            m.next = "BODY"
            with m.State("BODY"):
                m.d.comb += self.busy.eq(1)
                with m.If(ok):
                    m.d.comb += [self.tx.payload.eq(self.resp.payload), self.tx.valid.eq(self.resp.valid),
                                 self.resp.ready.eq(self.tx.ready)]
                with m.Else():
                    m.d.comb += [self.tx.payload.eq(error_code), self.tx.valid.eq(1)]
                with m.If(sent):
                    m.d.comb += self.crc.valid.eq(1)
                    m.d.sync += body_left.eq(body_left - 1)
                    with m.If(body_left == 1):
                        m.next = "CRC0"
            with m.State("CRC0"):
                m.d.comb += [self.busy.eq(1), self.tx.valid.eq(1), self.tx.payload.eq(self.crc.crc[8:])]
                with m.If(sent):
                    m.next = "CRC1"
            with m.State("CRC1"):
                m.d.comb += [self.busy.eq(1), self.tx.valid.eq(1), self.tx.payload.eq(self.crc.crc[:8])]
                with m.If(sent):
                    m.next = "IDLE"
        return m


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

    Built from a :class:`FrameReceiver` (with the :class:`CommandTable`, the
    :class:`InterByteTimer` and the frame buffer), a :class:`CommandForwarder`, a
    :class:`ResponseSender` and one CRC processor (``CRC_ALGORITHM(data_width=8).create()``)
    that the receiver and the sender take in turn.

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
        m.submodules.buffer = buffer = memory.Memory(shape=8, depth=self.buffer_depth, init=[])
        buffer_write = buffer.write_port()
        buffer_read = buffer.read_port(transparent_for=())
        m.submodules.crc = crc = CRC_ALGORITHM(data_width=8).create()
        m.submodules.timer = timer = InterByteTimer(self.timeout_cycles)
        m.submodules.table = table = CommandTable(self.commands)
        m.submodules.receiver = receiver = FrameReceiver(self.buffer_depth)
        m.submodules.forwarder = forwarder = CommandForwarder(self.buffer_depth, self.registered_read)
        m.submodules.sender = sender = ResponseSender(max([c.response for c in self.commands] + [1]))

        wiring.connect(m, wiring.flipped(self.rx), receiver.rx)
        wiring.connect(m, forwarder.o, wiring.flipped(self.cmd))
        wiring.connect(m, wiring.flipped(self.resp), sender.resp)
        wiring.connect(m, sender.tx, wiring.flipped(self.tx))
        m.d.comb += [
            receiver.rx_error.eq(self.rx_error),
            timer.restart.eq(receiver.restart), receiver.expired.eq(timer.expired),
            # the table is looked up the cycle after CMD; LEN comes first
            table.code.eq(receiver.code), receiver.known.eq(table.known), receiver.request.eq(table.request),
            buffer_write.addr.eq(receiver.wr_addr), buffer_write.data.eq(receiver.wr_data),
            buffer_write.en.eq(receiver.wr_en),
            buffer_read.addr.eq(forwarder.rd_addr), forwarder.rd_data.eq(buffer_read.data),
            # an accepted frame is forwarded and answered at the same time
            forwarder.start.eq(receiver.accept), forwarder.code.eq(receiver.code),
            forwarder.no_args.eq(table.no_args), forwarder.last.eq(receiver.last),
            sender.start.eq(receiver.accept | receiver.refuse), sender.ok.eq(receiver.accept),
            sender.code.eq(receiver.code), sender.response.eq(table.response),
            sender.error_code.eq(receiver.error_code),
            receiver.release.eq(~sender.busy & ~sender.start & ~forwarder.busy & ~forwarder.start),
            self.error.eq(receiver.refuse), self.busy.eq(receiver.busy),
        ]
        # the one CRC processor: the receiver's until it accepts or refuses, then the sender's
        m.d.comb += [
            crc.start.eq(receiver.crc.start | sender.crc.start),
            crc.valid.eq(receiver.crc.valid | sender.crc.valid),
            crc.data.eq(Mux(sender.busy, sender.crc.data, receiver.crc.data)),
            receiver.crc.crc.eq(crc.crc), receiver.crc.match.eq(crc.match_detected),
            sender.crc.crc.eq(crc.crc), sender.crc.match.eq(crc.match_detected),
        ]
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
        m = Module()
        m.submodules.uart_rx = urx = UARTRx(self.divisor)
        m.submodules.uart_tx = utx = UARTTx(self.divisor)
        m.submodules.link = link = Link(self.cfg, self.commands, timeout_cycles=self.timeout_cycles)
        wiring.connect(m, urx.stream, link.rx)
        # A register slice keeps the transmitter's ready logic out of the link's timing paths.
        m.submodules.tx_slice = tx_slice = StreamSlice()
        wiring.connect(m, link.tx, tx_slice.i)
        wiring.connect(m, tx_slice.o, utx.stream)
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
