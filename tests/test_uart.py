"""hdl/uart.py against the software UART of tests/uart_model.py."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from ddfa.config import BOARDS, Config, ConfigError, default_config
from hdl.uart import UARTRx, UARTTx, uart_divisor

from .uart_model import uart_recv, uart_send


def test_divisor_from_config():
    cfg = default_config("icebreaker")
    # the boards' default rates (Board.baud) divide the default clocks exactly
    assert cfg.hardware.baud == 3_000_000
    assert uart_divisor(cfg) == round(cfg.clock_mhz * 1e6 / cfg.hardware.baud) == 10
    assert uart_divisor(default_config("ulx3s-85f")) == 40
    assert uart_divisor(cfg.replace(**{"hardware.baud": 115200})) == 260


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_default_baud_is_exact(board):
    """Each board's default link rate is a whole number of cycles of its default clock
    (what the PLL really makes), and the configuration takes it when baud is unset."""
    from boards.pll import BoardClock
    from boards.platforms import make_platform
    b = BOARDS[board]
    cfg = default_config("icebreaker").replace(**{"hardware.board": board})
    assert cfg.hardware.baud == b.baud
    clock = BoardClock(cfg.clock_mhz * 1e6)
    f = clock.plan(make_platform(b))
    d = uart_divisor(f, b.baud)
    assert abs(f / d - b.baud) / b.baud < 0.005
    if board in ("icebreaker", "ulx3s-85f"):        # on-board FTDI bridges: a whole divisor
        assert f == d * b.baud


def test_baud_default_follows_the_board():
    ice = default_config("icebreaker")
    assert ice.hardware.baud == BOARDS["icebreaker"].baud
    # an explicit rate is kept through replace(); an unset one follows the board
    assert ice.replace(**{"hardware.baud": 115200}).replace(**{"model.seed": 1}).hardware.baud == 115200
    assert ice.replace(**{"hardware.board": "orangecrab-25f"}).hardware.baud == BOARDS["orangecrab-25f"].baud
    assert Config.from_dict(ice.to_dict()) == ice
    for bad in (0, 20_000_000):
        with pytest.raises(ConfigError, match="hardware.baud"):
            ice.replace(**{"hardware.baud": bad})


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_divisor_refuses_bad_rates():
    with pytest.raises(ConfigError, match="hardware.baud"):
        uart_divisor(1e6, 400_000)        # 2.5 cycles per bit
    with pytest.raises(ConfigError, match="off by"):
        uart_divisor(12e6, 1_600_000)     # 7.5 cycles: 8 gives 1.5 Mbaud, 6 % off
    with pytest.raises(ValueError):
        UARTRx(3)


@pytest.mark.parametrize("divisor,skew", [(8, 1.0), (13, 1.03), (13, 0.97)])
def test_rx_random_bytes(divisor, skew):
    """Random bytes at the nominal rate and with the host 3 % fast or slow."""
    rng = random.Random(divisor * 100 + int(skew * 100))
    data = bytes(rng.randrange(256) for _ in range(48))
    dut = UARTRx(divisor)
    got = []

    async def host(ctx):
        await ctx.tick().repeat(5)
        await uart_send(ctx, dut.rx, data, divisor * skew, gap=rng.random())
        await ctx.tick().repeat(3 * divisor)

    async def sink(ctx):
        ctx.set(dut.stream.ready, 1)
        async for _, _, valid, payload, ferr, ovr in ctx.tick().sample(
                dut.stream.valid, dut.stream.payload, dut.frame_error, dut.overrun):
            assert not ferr and not ovr
            if valid:
                got.append(payload)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.add_testbench(sink, background=True)
    sim.run()
    assert bytes(got) == data


def test_rx_framing_error_and_recovery():
    """A low stop bit drops the byte and pulses frame_error; a break (line held low for
    40 bits) gives one error and is waited out; the next good byte arrives intact."""
    div = 8
    dut = UARTRx(div)
    got, errors = [], []

    async def host(ctx):
        await ctx.tick().repeat(4)
        await uart_send(ctx, dut.rx, b"\x41", div)
        await uart_send(ctx, dut.rx, b"\x5a", div, stop=0)        # bad stop bit
        ctx.set(dut.rx, 0)                                         # then a break
        await ctx.tick().repeat(40 * div)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(2 * div)
        await uart_send(ctx, dut.rx, b"\xc3", div)
        await ctx.tick().repeat(2 * div)

    async def sink(ctx):
        ctx.set(dut.stream.ready, 1)
        async for _, _, valid, payload, ferr in ctx.tick().sample(
                dut.stream.valid, dut.stream.payload, dut.frame_error):
            if valid:
                got.append(payload)
            if ferr:
                errors.append(len(got))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.add_testbench(sink, background=True)
    sim.run()
    assert got == [0x41, 0xC3]
    # the bad stop bit, then the break (it reads as a character of zeros with a low
    # stop bit): one error each, however long the break lasts
    assert errors == [1, 1]


def test_rx_glitch_and_overrun():
    """A low pulse shorter than half a bit is not a start bit; a byte that arrives while
    the previous one is untaken is dropped with an overrun pulse."""
    div = 10
    dut = UARTRx(div)
    overruns = []

    async def host(ctx):
        await ctx.tick().repeat(4)
        ctx.set(dut.rx, 0)
        await ctx.tick().repeat(div // 2 - 3)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * div)
        assert not ctx.get(dut.stream.valid) and not ctx.get(dut.busy)
        await uart_send(ctx, dut.rx, b"\x12\x34", div)            # nobody takes them
        await ctx.tick().repeat(div)
        assert ctx.get(dut.stream.valid) and ctx.get(dut.stream.payload) == 0x12
        assert overruns, "no overrun pulse"

    async def watch(ctx):
        async for _, _, ovr in ctx.tick().sample(dut.overrun):
            if ovr:
                overruns.append(1)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host)
    sim.add_testbench(watch, background=True)
    sim.run()


@pytest.mark.parametrize("divisor,skew", [(8, 1.0), (11, 1.03), (11, 0.97)])
def test_tx_random_bytes(divisor, skew):
    """The transmitter's line, decoded by the software UART (also 3 % off)."""
    rng = random.Random(divisor)
    data = bytes(rng.randrange(256) for _ in range(48))
    dut = UARTTx(divisor)
    got = []

    async def source(ctx):
        for byte in data:
            ctx.set(dut.stream.payload, byte)
            ctx.set(dut.stream.valid, 1)
            await ctx.tick().until(dut.stream.ready)
            ctx.set(dut.stream.valid, 0)
            if rng.random() < 0.2:
                await ctx.tick().repeat(rng.randrange(1, 3 * divisor))

    async def host(ctx):
        for _ in data:
            got.append(await uart_recv(ctx, dut.tx, divisor * skew))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(host)
    sim.run()
    assert bytes(got) == data


def test_tx_back_to_back_timing():
    """Back-to-back bytes: exactly 10 bit periods each, no idle gap, line high at rest."""
    div = 6
    dut = UARTTx(div)
    trace = []

    async def source(ctx):
        assert ctx.get(dut.tx) == 1
        for byte in (0x00, 0xFF):
            ctx.set(dut.stream.payload, byte)
            ctx.set(dut.stream.valid, 1)
            await ctx.tick().until(dut.stream.ready)
        ctx.set(dut.stream.valid, 0)

    async def probe(ctx):
        async for _, _, tx in ctx.tick().sample(dut.tx):
            trace.append(tx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(source)
    sim.add_testbench(probe, background=True)
    sim.run_until(1e-6 * 30 * div)
    s = "".join(map(str, trace)).lstrip("1")
    # byte 0x00: start + 8 zeros = 9 low bits, then stop; 0xFF: start then 9 high bits.
    expect = "0" * 9 * div + "1" * div + "0" * div + "1" * 9 * div
    assert s.startswith(expect), s
