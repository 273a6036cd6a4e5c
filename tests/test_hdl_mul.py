"""The shared multiplier on its own: the selected port's operands, under its clock
enable, come back as their product two enabled cycles later, on both multiplier widths."""

import random

import pytest
from amaranth.sim import Simulator

from ddfa.config import default_config
from hdl.mul import SharedMultiplier


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_shared_multiplier_model(board):
    cfg = default_config(board)
    w = cfg.board.multiplier_width
    dut = SharedMultiplier(cfg, 3)
    rng = random.Random(w)
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    checked = []

    async def tb(ctx):
        # model: the operand and product registers of the selected port, under its ce
        a_q = b_q = p_q = None
        owner = 0
        for cycle in range(2000):
            if cycle % 50 == 0:                      # another unit takes the multiplier
                owner = rng.randrange(3)
            for k, port in enumerate(dut.ports):
                ctx.set(port.sel, k == owner)
                ctx.set(port.a, rng.choice([lo, hi, rng.randint(lo, hi)]))
                ctx.set(port.b, rng.choice([lo, hi, rng.randint(lo, hi)]))
                ctx.set(port.ce, rng.random() < 0.8)
            sel = dut.ports[owner]
            ce, a, b = ctx.get(sel.ce), ctx.get(sel.a), ctx.get(sel.b)
            await ctx.tick()
            if ce:
                p_q = a_q * b_q if a_q is not None else None
                a_q, b_q = a, b
            if p_q is not None:
                for port in dut.ports:
                    assert ctx.get(port.p) == p_q, f"cycle {cycle}"
                checked.append(p_q)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert len(checked) > 1500 and lo * lo in checked      # min * min, the one product needing 2w bits
