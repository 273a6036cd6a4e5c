"""The processor's epoch order (hdl.epoch_order.EpochOrder) in Amaranth's simulator
against golden.onchip: the key LFSR's 32 steps per epoch and the keyed permutation by
cycle walking, index for index, for record counts from 1 to the iCEBreaker store's most
and for successive epochs; and the walk's cycles (one application of F a cycle)."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from ddfa.config import default_config
from golden.onchip import epoch_permutation
from hdl.epoch_order import KEY_STEPS, EpochOrder

CFG = default_config("icebreaker").replace(**{"hardware.dataset_store": True})
MOST = min(0xFFFF, CFG.chip_store.max_records)


def hardware_orders(cfg, counts_epochs):
    """``[(n, epoch, [perm_e(i) for i])]`` from the hardware; each (n, epochs) pair
    restarts from reset and runs epochs 0 .. epochs-1."""
    out = []
    for n, epochs in counts_epochs:
        dut = EpochOrder(cfg)
        sim = Simulator(dut)
        sim.add_clock(1e-6)

        async def tb(ctx, n=n, epochs=epochs):
            ctx.set(dut.n, n)
            for e in range(epochs):
                ctx.set(dut.next_epoch, 1)
                await ctx.tick()
                ctx.set(dut.next_epoch, 0)
                await ctx.tick().repeat(KEY_STEPS + 1)
                assert not ctx.get(dut.busy)
                order = []
                for i in range(n):
                    ctx.set(dut.i, i)
                    ctx.set(dut.start, 1)
                    await ctx.tick()
                    ctx.set(dut.start, 0)
                    await ctx.tick().until(~dut.busy)
                    order.append(ctx.get(dut.index))
                out.append((n, e, order))

        sim.add_testbench(tb)
        sim.run()
    return out


@pytest.mark.parametrize("counts", [
    [(1, 2), (2, 2), (3, 2), (5, 2), (8, 2), (9, 2), (33, 2)],
    [(1437, 2)],
    [(MOST, 1), (1025, 1), (1024, 1)],
])
def test_the_hardware_order_is_the_golden_order(counts):
    for n, e, order in hardware_orders(CFG, counts):
        want = epoch_permutation(CFG, n, e).tolist()
        assert order == want, (n, e)
        assert sorted(order) == list(range(n))
