"""The link in front of the real processor (hdl/top.py): a refused frame changes no
memory word, no LFSR state and no step counter; an accepted one does what it says."""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.sim import Simulator

from ddfa.config import Config, HardwareConfig, ModelConfig
from ddfa.cli.link_client import STATUS_ERROR, STATUS_OK, Frame, FrameDecoder, LinkErrorCode, encode_frame

from ddfa import protocol as host
from hdl import top
from hdl.link import Link

TIMEOUT = 48


def small_cfg() -> Config:
    return Config(name="link-tiny", model=ModelConfig(layers=(64, 2, 10)),
                  hardware=HardwareConfig(board="icebreaker", pes=(1, 1)))


class LinkedProcessor(wiring.Component):
    """Link -> Processor -> Link, byte streams on the UART side (no UART: fast)."""

    def __init__(self, cfg):
        self.link = Link(cfg, host.host_commands(cfg), timeout_cycles=TIMEOUT)
        self.proc = top.Processor(cfg)
        super().__init__({"rx": wiring.In(stream.Signature(8)), "tx": wiring.Out(stream.Signature(8)),
                          "rx_error": wiring.In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.link
        m.submodules.proc = self.proc
        wiring.connect(m, wiring.flipped(self.rx), self.link.rx)
        wiring.connect(m, self.link.tx, wiring.flipped(self.tx))
        wiring.connect(m, self.link.cmd, self.proc.i)
        wiring.connect(m, self.proc.o, self.link.resp)
        m.d.comb += self.link.rx_error.eq(self.rx_error)
        return m


def test_refused_frames_change_nothing():
    cfg = small_cfg()
    proto = host.HostProtocol(cfg)
    O = host.Opcode
    dut = LinkedProcessor(cfg)
    dec = FrameDecoder()
    target = proto.memories[0]                    # W1_pe0, word 0

    frames: list[Frame] = []

    async def send(ctx, data: bytes, uart_error_at: int | None = None):
        for k, b in enumerate(data):
            if k == uart_error_at:
                ctx.set(dut.rx_error, 1)
                await ctx.tick()
                ctx.set(dut.rx_error, 0)
            ctx.set(dut.rx.payload, b)
            ctx.set(dut.rx.valid, 1)
            await ctx.tick().until(dut.rx.ready)
            ctx.set(dut.rx.valid, 0)

    async def sink(ctx):
        ctx.set(dut.tx.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(dut.tx.valid, dut.tx.payload):
            if valid:
                frames.extend(dec.feed(bytes([payload])))

    async def receive(ctx) -> Frame:
        for _ in range(10 * TIMEOUT):
            if frames:
                return frames.pop(0)
            await ctx.tick()
        raise AssertionError("no response frame")

    async def request(ctx, raw: bytes, **kw) -> Frame:
        """``raw`` is the host-protocol command (opcode + arguments)."""
        await send(ctx, encode_frame(raw[0], raw[1:]), **kw)
        return await receive(ctx)

    async def snapshot(ctx):
        words = {}
        for mem in proto.memories:
            for a in range(mem.words):
                f = await request(ctx, proto.encode_read_mem(mem.id, a))
                assert f.status == STATUS_OK
                words[mem.name, a] = proto.decode_word(f.data, mem.id)
        lfsr = []
        for l in range(1, cfg.model.n_layers):
            f = await request(ctx, proto.encode_read_lfsr(l))
            lfsr.append(proto.decode_lfsr(f.data))
        f = await request(ctx, proto.encode_status())
        return words, lfsr, proto.decode_status(f.data)["steps"]

    def with_crc_flipped(raw: bytes) -> bytes:
        f = bytearray(encode_frame(raw[0], raw[1:]))
        f[-1] ^= 0x01
        return bytes(f)

    async def tb(ctx):
        before = await snapshot(ctx)
        old = before[0][target.name, 0]
        new = (old + 1234) & 0x7FFF
        write = proto.encode_write_mem(target.id, 0, new)
        sample = proto.encode_load_sample([100] * cfg.model.layers[0], 3)
        refusals = [
            # (bytes on the line, uart error before byte k, expected code)
            (with_crc_flipped(write), None, LinkErrorCode.BAD_CRC),
            (encode_frame(write[0], write[1:] + b"\x00"), None, LinkErrorCode.BAD_LENGTH),
            (encode_frame(0x7E, write[1:]), None, LinkErrorCode.UNKNOWN_CMD),
            (encode_frame(write[0], write[1:])[:-2], None, LinkErrorCode.TIMEOUT),
            (encode_frame(write[0], write[1:]), 5, LinkErrorCode.UART),
            (with_crc_flipped(proto.encode_write_lfsr(1, 0x1234)), None, LinkErrorCode.BAD_CRC),
            (with_crc_flipped(sample), None, LinkErrorCode.BAD_CRC),
            (with_crc_flipped(proto.encode_train()), None, LinkErrorCode.BAD_CRC),
        ]
        for data, at, code in refusals:
            await send(ctx, data, uart_error_at=at)
            f = await receive(ctx)
            assert f.status == STATUS_ERROR and f.error == code, (f, code)
        after = await snapshot(ctx)
        assert not frames and not dec.pending
        assert after == before                    # every word, every LFSR, the step counter

        # the same write, framed correctly, changes exactly that word
        f = await request(ctx, write)
        assert f.status == STATUS_OK and f.data == bytes([O.WRITE_MEM])
        f = await request(ctx, proto.encode_read_mem(target.id, 0))
        assert proto.decode_word(f.data, target.id) == new

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.add_testbench(sink, background=True)
    sim.run()
