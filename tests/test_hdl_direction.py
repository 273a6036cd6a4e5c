# amaranth: UnusedElaboratable=no
"""hdl/direction.py against golden.arith.Lfsr: full periods of small widths, bit for bit."""

import pytest
from amaranth.sim import Simulator

from ddfa.config import Config
from golden.arith import Lfsr
from hdl.direction import DirectionGenerator

from .leaf_util import verilator_lint


def _cfg(width=None):
    cfg = Config()
    return cfg if width is None else cfg.replace(**{"arith.lfsr_width": width})


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("width", [8, 12])
def test_full_period(width):
    cfg = _cfg(width)
    dut = DirectionGenerator(cfg, 1)
    golden = Lfsr(width, cfg.direction_seed(1))
    period = (1 << width) - 1
    seen = set()

    async def bench(ctx):
        assert ctx.get(dut.state) == cfg.direction_seed(1)
        ctx.set(dut.next, 1)
        for n in range(period):
            state = ctx.get(dut.state)
            assert state == golden.state, f"step {n}: state {state:#x}, golden {golden.state:#x}"
            seen.add(state)
            want = golden.step()
            assert ctx.get(dut.bit) == want, f"step {n}: bit"
            await ctx.tick()
        assert ctx.get(dut.state) == cfg.direction_seed(1)     # back at the seed after one period

    _run(dut, bench)
    assert len(seen) == period and 0 not in seen                # maximal length


def test_default_width_prefix():
    cfg = _cfg()
    assert cfg.arith.lfsr_width == 32
    layer = 1
    dut = DirectionGenerator(cfg, layer)
    golden = Lfsr(32, cfg.direction_seed(layer))

    async def bench(ctx):
        ctx.set(dut.next, 1)
        for n in range(3000):
            assert ctx.get(dut.bit) == golden.step(), f"bit {n}"
            await ctx.tick()
        assert ctx.get(dut.state) == golden.state

    _run(dut, bench)


def test_hold_and_load():
    """``next`` low holds the state; ``load`` replaces it and wins over ``next``."""
    cfg = _cfg(12)
    dut = DirectionGenerator(cfg, 1)
    golden = Lfsr(12, cfg.direction_seed(1))
    pattern = [1, 0, 0, 1, 1, 0, 1, 1, 1, 0] * 5

    async def bench(ctx):
        for n, nxt in enumerate(pattern):
            ctx.set(dut.next, nxt)
            assert ctx.get(dut.state) == golden.state, f"cycle {n}"
            if nxt:
                assert ctx.get(dut.bit) == golden.step()
            await ctx.tick()
        ctx.set(dut.load, 1)
        ctx.set(dut.load_value, 0xABC)
        ctx.set(dut.next, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)
        assert ctx.get(dut.state) == 0xABC
        reloaded = Lfsr(12, 0xABC)
        for n in range(100):
            assert ctx.get(dut.bit) == reloaded.step(), f"after load, bit {n}"
            await ctx.tick()
        assert ctx.get(dut.state) == reloaded.state

    _run(dut, bench)


def test_layers_and_seeds():
    cfg = Config().replace(**{"model.layers": (64, 16, 16, 10), "hardware.board": "none"})
    seeds = [DirectionGenerator(cfg, l).seed for l in (1, 2)]
    assert seeds == [cfg.direction_seed(1), cfg.direction_seed(2)] and seeds[0] != seeds[1]
    with pytest.raises(ValueError):
        DirectionGenerator(cfg, 3)      # the output layer draws no directions


def test_verilator_lint(tmp_path):
    verilator_lint(DirectionGenerator(_cfg(), 1), "direction_generator", tmp_path)
