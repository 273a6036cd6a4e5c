"""The host link: ddfa/cli/link_client.py (framing, CRC) and hdl/link.py (store-and-forward).

Every refusal case is simulated with a recording stub in the processor's place, and the
test proves that the stub's command stream saw no byte at all.
"""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator
from hypothesis import given, settings, strategies as st

from ddfa.config import default_config
from ddfa.cli.link_client import (CRC_CHECK, STATUS_ERROR, STATUS_OK, SYNC, Frame, FrameDecoder, LinkClient,
                              LinkErrorCode, LinkProtocolError, LinkRefused, LinkTimeout, crc16, decode_frame,
                              encode_frame)
from ddfa.protocol import CRC_ALGORITHM, Command as LinkCommand
from hdl.link import Link
from hdl.skid import StreamSlice

from .link_loopback import LinkLoopback
from .uart_model import uart_recv, uart_send

CFG = default_config("icebreaker")
CMDS = (
    LinkCommand(0x01, "PING", request=0, response=2),
    LinkCommand(0x10, "WRITE", request=5, response=0),
    LinkCommand(0x20, "READ", request=3, response=4),
)
BY_CODE = {c.code: c for c in CMDS}
TIMEOUT = 64


def answer(cmd: int, payload: bytes) -> bytes:
    """What the stub processor answers."""
    n = BY_CODE[cmd].response
    return bytes((cmd + 7 * i + sum(payload)) & 0xFF for i in range(n))


# --------------------------------------------------------------------------------------
# Host side: CRC and framing
# --------------------------------------------------------------------------------------

def test_crc_check_value_and_residue():
    assert crc16(b"123456789") == CRC_CHECK == 0x29B1
    frame = encode_frame(0x20, b"\x01\x02\x03")
    assert frame[0] == SYNC and frame[1] == 0x20 and frame[2:4] == b"\x03\x00"
    assert crc16(frame[1:]) == 0              # the CRC is sent MSB first: zero residue


@given(st.integers(0, 255), st.binary(max_size=300))
@settings(max_examples=60, deadline=None)
def test_frame_round_trip(cmd, payload):
    frame = encode_frame(cmd, payload)
    assert decode_frame(frame) == Frame(cmd, payload)


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=5), st.binary(max_size=20),
       st.integers(1, 7))
@settings(max_examples=60, deadline=None)
def test_decoder_skips_junk_and_splits(frames, junk, chunk):
    junk = junk.replace(bytes([SYNC]), b"")
    data = junk + b"".join(encode_frame(c, p) for c, p in frames)
    dec = FrameDecoder()
    out = []
    for i in range(0, len(data), chunk):
        out += dec.feed(data[i:i + chunk])
    assert out == [Frame(c, p) for c, p in frames]
    assert dec.skipped == len(junk) and dec.pending == 0


def test_decoder_drops_corrupt_frame_and_resyncs():
    good = encode_frame(0x02, b"abcd")
    bad = bytearray(encode_frame(0x02, b"wxyz"))
    bad[5] ^= 0x10
    dec = FrameDecoder()
    assert dec.feed(bytes(bad) + good) == [Frame(0x02, b"abcd")]
    assert dec.bad_crc == 1


def test_crc_hardware_matches_software():
    """The link's CRC processor (CRC_ALGORITHM(data_width=8).create()) against crc16, on
    random byte strings fed with gaps: the CRC after every byte, and the zero residue
    (match_detected) once the CRC itself has gone through, MSB first."""
    rng = random.Random(1)
    strings = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12))) for _ in range(60)]
    strings += [bytes([b]) for b in range(256)]
    dut = CRC_ALGORITHM(data_width=8).create()

    async def tb(ctx):
        for data in strings:
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for k, b in enumerate(data):
                ctx.set(dut.data, b)
                ctx.set(dut.valid, 1)
                await ctx.tick()
                ctx.set(dut.valid, 0)
                if rng.random() < 0.3:
                    await ctx.tick()
                assert ctx.get(dut.crc) == crc16(data[:k + 1]), data[:k + 1].hex()
            for b in crc16(data).to_bytes(2, "big"):
                ctx.set(dut.data, b)
                ctx.set(dut.valid, 1)
                await ctx.tick()
            ctx.set(dut.valid, 0)
            assert ctx.get(dut.match_detected), data.hex()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_serial_transport_loopback():
    """SerialTransport through pyserial's loop:// URL: the request comes back as its own
    response (payload b"\x00..." reads as status OK)."""
    pytest.importorskip("serial")
    from ddfa.cli.link_client import SerialTransport
    with SerialTransport("loop://", 115200) as t:
        client = LinkClient(t, timeout=1.0)
        assert client.request(0x02, bytes([STATUS_OK]) + b"abc") == b"abc"
        with pytest.raises(LinkRefused) as exc:
            client.request(0x02, bytes([STATUS_ERROR, LinkErrorCode.BAD_CRC]))
        assert exc.value.code == LinkErrorCode.BAD_CRC


def test_client_times_out_without_response():
    class Silent:
        def write(self, data):
            pass

        def read(self, size, timeout):
            return b""
    with pytest.raises(Exception, match="no response frame"):
        LinkClient(Silent(), timeout=0.05).request(0x01)


# --------------------------------------------------------------------------------------
# The Link in simulation, byte streams on both sides
# --------------------------------------------------------------------------------------

class Harness:
    """Drives a Link's rx stream with a script; a stub processor records every byte the
    link forwards and answers each whole command; a sink collects the link's tx bytes."""

    def __init__(self, *, timeout=TIMEOUT, stall_seed=None, cfg=CFG):
        self.dut = Link(cfg, CMDS, timeout_cycles=timeout)
        self.forwarded: list[int] = []      # every byte that reached the processor
        self.commands: list[tuple[int, bytes]] = []
        self.tx = bytearray()
        self.errors = 0
        self.rng = random.Random(stall_seed) if stall_seed is not None else None

    def run(self, script):
        dut = self.dut
        pending: list[bytes] = []

        async def host(ctx):
            await ctx.tick().repeat(2)
            for item in script:
                if isinstance(item, int):            # idle cycles
                    await ctx.tick().repeat(item)
                elif item == "uart_error":
                    ctx.set(dut.rx_error, 1)
                    await ctx.tick()
                    ctx.set(dut.rx_error, 0)
                elif isinstance(item, tuple):          # ("error_with_byte", byte)
                    ctx.set(dut.rx_error, 1)
                    ctx.set(dut.rx.payload, item[1])
                    ctx.set(dut.rx.valid, 1)
                    await ctx.tick().until(dut.rx.ready)
                    ctx.set(dut.rx_error, 0)
                    ctx.set(dut.rx.valid, 0)
                elif item == "wait_response":
                    await ctx.tick().until(~dut.busy)
                else:
                    for b in item:
                        ctx.set(dut.rx.payload, b)
                        ctx.set(dut.rx.valid, 1)
                        await ctx.tick().until(dut.rx.ready)
                        ctx.set(dut.rx.valid, 0)
                        if self.rng and self.rng.random() < 0.3:
                            await ctx.tick().repeat(self.rng.randrange(1, 4))
            await ctx.tick().repeat(2 * TIMEOUT)
            await ctx.tick().until(~dut.busy)
            await ctx.tick().repeat(4)

        async def processor(ctx):
            cur = []
            async for _, _, valid, was_ready, payload in ctx.tick().sample(
                    dut.cmd.valid, dut.cmd.ready, dut.cmd.payload):
                ready = 1 if self.rng is None else int(self.rng.random() < 0.6)
                if valid and was_ready:
                    self.forwarded.append(payload)
                    cur.append(payload)
                    if len(cur) == 1 + BY_CODE[cur[0]].request:
                        self.commands.append((cur[0], bytes(cur[1:])))
                        pending.append(answer(cur[0], bytes(cur[1:])))
                        cur = []
                ctx.set(dut.cmd.ready, ready)

        async def responder(ctx):
            while True:
                if not pending:
                    await ctx.tick()
                    continue
                for b in pending.pop(0):
                    if self.rng and self.rng.random() < 0.5:
                        await ctx.tick().repeat(self.rng.randrange(1, 3))
                    ctx.set(dut.resp.payload, b)
                    ctx.set(dut.resp.valid, 1)
                    await ctx.tick().until(dut.resp.ready)
                    ctx.set(dut.resp.valid, 0)

        async def sink(ctx):
            ctx.set(dut.tx.ready, 1)
            async for _, _, valid, ready, payload, err in ctx.tick().sample(
                    dut.tx.valid, dut.tx.ready, dut.tx.payload, dut.error):
                if valid and ready:
                    self.tx.append(payload)
                if err:
                    self.errors += 1
                if self.rng:
                    ctx.set(dut.tx.ready, int(self.rng.random() < 0.7))

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(host)
        sim.add_testbench(processor, background=True)
        sim.add_testbench(responder, background=True)
        sim.add_testbench(sink, background=True)
        sim.run()
        dec = FrameDecoder()
        frames = dec.feed(bytes(self.tx))
        assert dec.pending == 0 and dec.skipped == 0 and dec.bad_crc == 0
        return frames


def refused(cmd: int, code: LinkErrorCode) -> Frame:
    return Frame(cmd, bytes([STATUS_ERROR, code]))


# The ECP5 boards register the frame buffer's word before forwarding it (one more cycle
# per byte): both forms forward the same bytes.
BOARDS_CFG = pytest.mark.parametrize("cfg", [CFG, default_config("ulx3s-85f")], ids=["ice40", "ecp5"])


@BOARDS_CFG
def test_good_frames_are_forwarded_and_answered(cfg):
    reqs = [(0x01, b""), (0x10, b"\x01\x02\x03\x04\x05"), (0x20, b"\xa5\x00\xff")]
    h = Harness(cfg=cfg)
    frames = h.run([b"\x00\x13\x37"] + [encode_frame(c, p) for c, p in reqs])   # junk first
    assert h.commands == reqs
    assert frames == [Frame(c, bytes([STATUS_OK]) + answer(c, p)) for c, p in reqs]
    assert h.errors == 0


@BOARDS_CFG
def test_backpressure_everywhere(cfg):
    """Random stalls on every stream (host bytes, processor ready, processor answers,
    UART transmitter ready): same commands, same answers."""
    rng = random.Random(7)
    reqs = [(c.code, bytes(rng.randrange(256) for _ in range(c.request))) for c in CMDS for _ in range(3)]
    rng.shuffle(reqs)
    h = Harness(stall_seed=3, cfg=cfg)
    frames = h.run([encode_frame(c, p) for c, p in reqs])
    assert h.commands == reqs
    assert frames == [Frame(c, bytes([STATUS_OK]) + answer(c, p)) for c, p in reqs]


def test_bad_crc_is_refused_and_nothing_forwarded():
    f = bytearray(encode_frame(0x10, b"\x01\x02\x03\x04\x05"))
    f[6] ^= 0x01                                  # one payload bit
    h = Harness()
    assert h.run([bytes(f)]) == [refused(0x10, LinkErrorCode.BAD_CRC)]
    assert h.forwarded == [] and h.errors == 1


def test_bad_crc_bytes_are_refused():
    f = bytearray(encode_frame(0x20, b"\x00\x01\x02"))
    f[-1] ^= 0x80                                 # the CRC itself
    h = Harness()
    assert h.run([bytes(f)]) == [refused(0x20, LinkErrorCode.BAD_CRC)]
    assert h.forwarded == []


def test_wrong_length_is_refused_and_drained():
    """LEN 4 for a 5-byte command: refused after the line goes quiet; the rest of the
    frame (which holds a SYNC byte) is not mistaken for a new frame."""
    body = b"\x10\x04\x00" + bytes([SYNC, 0x01, 0x00, 0x00])
    frame = bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")
    h = Harness()
    assert h.run([frame]) == [refused(0x10, LinkErrorCode.BAD_LENGTH)]
    assert h.forwarded == []


def test_unknown_command_is_refused():
    h = Harness()
    assert h.run([encode_frame(0x77, b"\x00\x01")]) == [refused(0x77, LinkErrorCode.UNKNOWN_CMD)]
    assert h.forwarded == []


@pytest.mark.parametrize("cut", [1, 2, 3, 4, 6, 9, 10])
def test_truncated_frame_times_out(cut):
    """A frame cut after ``cut`` bytes (SYNC only, in the header, in the payload, in the
    CRC) is answered with TIMEOUT once the line has been quiet for the timeout."""
    f = encode_frame(0x10, b"\x01\x02\x03\x04\x05")          # 11 bytes
    h = Harness()
    frames = h.run([f[:cut]])
    cmd = 0x10 if cut >= 2 else 0x00
    assert frames == [refused(cmd, LinkErrorCode.TIMEOUT)]
    assert h.forwarded == []


def test_slow_bytes_within_timeout_are_fine():
    f = encode_frame(0x20, b"\x09\x08\x07")
    h = Harness()
    frames = h.run([x for b in f for x in (bytes([b]), TIMEOUT - 8)])
    assert frames == [Frame(0x20, bytes([STATUS_OK]) + answer(0x20, b"\x09\x08\x07"))]


def test_uart_error_inside_frame_is_refused():
    f = encode_frame(0x10, b"\x01\x02\x03\x04\x05")
    h = Harness()
    assert h.run([f[:5], "uart_error", f[5:]]) == [refused(0x10, LinkErrorCode.UART)]
    assert h.forwarded == []


def test_uart_error_beside_a_byte_wins():
    """A UART error in the same cycle as a byte transfer still refuses the frame."""
    f = encode_frame(0x20, b"\x01\x02\x03")
    h = Harness()
    assert h.run([f[:6], ("error_with_byte", f[6]), f[7:]]) == [refused(0x20, LinkErrorCode.UART)]
    assert h.forwarded == []


def test_recovery_after_each_error():
    """After every kind of refusal the next good frame goes through, exactly once."""
    good = encode_frame(0x20, b"\x01\x02\x03")
    bad_crc = bytearray(encode_frame(0x20, b"\x01\x02\x03"))
    bad_crc[4] ^= 0xFF
    script = [bytes(bad_crc), "wait_response", good, "wait_response",
              encode_frame(0x55), "wait_response", good, "wait_response",
              encode_frame(0x20, b"\x01"), "wait_response", good, "wait_response",
              good[:7], 2 * TIMEOUT, "wait_response", good]
    h = Harness()
    frames = h.run(script)
    ok = Frame(0x20, bytes([STATUS_OK]) + answer(0x20, b"\x01\x02\x03"))
    assert frames == [refused(0x20, LinkErrorCode.BAD_CRC), ok,
                      refused(0x55, LinkErrorCode.UNKNOWN_CMD), ok,
                      refused(0x20, LinkErrorCode.BAD_LENGTH), ok,
                      refused(0x20, LinkErrorCode.TIMEOUT), ok]
    assert h.commands == [(0x20, b"\x01\x02\x03")] * 4


@given(st.sampled_from(CMDS), st.data())
@settings(max_examples=12, deadline=None)
def test_any_single_bit_flip_is_never_forwarded(command, data):
    payload = data.draw(st.binary(min_size=command.request, max_size=command.request))
    f = bytearray(encode_frame(command.code, payload))
    bit = data.draw(st.integers(8, 8 * len(f) - 1))          # anything after SYNC
    f[bit // 8] ^= 1 << (bit % 8)
    h = Harness()
    frames = h.run([bytes(f)])
    assert h.forwarded == []
    assert len(frames) == 1 and frames[0].status == STATUS_ERROR


# --------------------------------------------------------------------------------------
# End to end through the UARTs, and the host client over a simulation transport
# --------------------------------------------------------------------------------------

class SimTransport:
    """A :class:`ddfa.cli.link_client.Transport` into an Amaranth simulation of a design with
    ``rx``/``tx`` UART pins: ``write`` queues bytes for a software UART, ``read`` advances
    the simulation until bytes come back."""

    def __init__(self, dut, divisor: int):
        self.dut, self.divisor = dut, divisor
        self.to_dut: list[bytes] = []
        self.from_dut = bytearray()
        self.sim = Simulator(dut)
        self.sim.add_clock(1e-6)
        self.sim.add_testbench(self._drive, background=True)
        self.sim.add_testbench(self._listen, background=True)

    async def _drive(self, ctx):
        while True:
            if self.to_dut:
                await uart_send(ctx, self.dut.rx, self.to_dut.pop(0), self.divisor)
            else:
                await ctx.tick()

    async def _listen(self, ctx):
        while True:
            self.from_dut.append(await uart_recv(ctx, self.dut.tx, self.divisor, timeout=1 << 40))

    def write(self, data: bytes) -> None:
        self.to_dut.append(bytes(data))

    def read(self, size: int, timeout: float) -> bytes:
        cycles = 0
        while not self.from_dut and cycles < 40 * self.divisor * 10:
            self.sim.advance()
            cycles += 1
        out = bytes(self.from_dut[:size])
        del self.from_dut[:size]
        return out


def test_client_over_uart_loopback_simulation():
    """LinkClient -> software UART -> UARTRx -> Link -> EchoStub -> Link -> UARTTx ->
    software UART -> LinkClient: answers, and a refused frame raises LinkRefused."""
    div = 8
    dut = LinkLoopback(CFG, div, timeout_cycles=30 * div)
    client = LinkClient(SimTransport(dut, div), timeout=1e9)
    assert client.request(0x02, b"\x10\x20\x30\x40") == b"\x10\x20\x30\x40"
    assert client.request(0x01) == b""
    with pytest.raises(LinkRefused) as exc:
        client.request(0x02, b"\x01")
    assert exc.value.code == LinkErrorCode.BAD_LENGTH
    assert client.request(0x03, bytes(range(16))) == bytes(range(16))


def test_uart_framing_error_is_refused_end_to_end():
    div = 8
    dut = LinkLoopback(CFG, div, timeout_cycles=30 * div)
    frame = encode_frame(0x02, b"abcd")
    got = []

    async def host(ctx):
        await uart_send(ctx, dut.rx, frame[:3], div)
        await uart_send(ctx, dut.rx, frame[3:4], div, stop=0)
        await uart_send(ctx, dut.rx, frame[4:], div)

    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def listen(ctx):
        while True:
            got.append(await uart_recv(ctx, dut.tx, div, timeout=1 << 40))

    sim.add_testbench(host)
    sim.add_testbench(listen, background=True)
    sim.run_until(1e-6 * 200 * div * 10)
    assert FrameDecoder().feed(bytes(got)) == [refused(0x02, LinkErrorCode.UART)]


class ReplyTransport:
    """A Transport that answers every request with the frame ``reply`` (once)."""

    def __init__(self, reply: bytes):
        self.reply = reply
        self.sent = b""

    def write(self, data: bytes) -> None:
        self.sent += data

    def read(self, size: int, timeout: float) -> bytes:
        out, self.reply = self.reply[:size], self.reply[size:]
        return out


def test_error_response_without_code_is_a_protocol_error():
    """STATUS_ERROR without its code byte: a LinkProtocolError naming it (the refusal
    needs the code)."""
    client = LinkClient(ReplyTransport(encode_frame(0x02, bytes([STATUS_ERROR]))), timeout=1.0)
    with pytest.raises(LinkProtocolError, match="lacks its error code byte"):
        client.request(0x02)
    client = LinkClient(ReplyTransport(encode_frame(0x06, b"")), timeout=1.0)
    with pytest.raises(LinkProtocolError, match="no status byte"):
        client.request(0x06, b"\x01")


def test_echoing_port_says_no_board_answered():
    """loop:// sends the request back: the error says that no board answered, that the
    port echoed, names the port and the fix (--port)."""
    pytest.importorskip("serial")
    from ddfa.cli.link_client import SerialTransport
    with SerialTransport("loop://", 115200) as t:
        client = LinkClient(t, timeout=1.0)
        for cmd, payload in ((0x00, b""), (0x06, b"\x07"), (0x02, bytes([STATUS_ERROR]))):
            with pytest.raises(LinkProtocolError) as exc:
                client.request(cmd, payload)
            text = str(exc.value)
            assert "no board answered on 'loop://'" in text and "echoed" in text and "--port" in text, text


def test_silent_port_says_no_board_answered():
    client = LinkClient(ReplyTransport(b""), timeout=0.05)
    with pytest.raises(LinkTimeout, match="no board answered on the ReplyTransport"):
        client.request(0x00)


def test_stream_slice_passes_every_word_in_order_and_registers_its_handshake():
    """Random offers and random backpressure: every byte comes out, in order, and
    ``o.ready`` does not reach ``i.ready`` within a cycle."""
    dut = StreamSlice()
    rng = random.Random(7)
    data = [rng.randrange(256) for _ in range(200)]
    got = []
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def source(ctx):
        for byte in data:
            ctx.set(dut.i.payload, byte)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            for _ in range(rng.randrange(3)):
                await ctx.tick()

    async def sink(ctx):
        while len(got) < len(data):
            ready_before = ctx.get(dut.i.ready)
            ctx.set(dut.o.ready, rng.random() < 0.6)            # no path from o.ready to i.ready
            assert ctx.get(dut.i.ready) == ready_before
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append(ctx.get(dut.o.payload))
            await ctx.tick()

    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert got == data
