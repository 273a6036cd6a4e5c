"""The sliced weight bank against a plain memory model, word for word: random reads and
writes (read enable dropped at random, reads of the address being written) on the slicings
``Config.bram_slices`` chooses, signed and unsigned words; the choice itself."""

import random

import pytest
import torch
from amaranth.hdl import signed, unsigned
from amaranth.sim import Simulator

from ddfa.config import DP16KD_ASPECTS, aspect_slices, bank_address, bank_depth, default_config, split_banks
from golden.fixed import FixedModel
from hdl.bank import SlicedMemory
from hdl.layer import bank_rows


@pytest.mark.parametrize("shape,depth,slices", [
    (signed(18), 6272, (2,) * 9),            # the ulx3s-85f default's layer-1 banks (16 PEs)
    (signed(18), 3136, (4, 4, 4, 4, 2)),    # ... with 32 PEs
    (signed(18), 1200, (9, 9)),
    (unsigned(7), 40, (1, 2, 4)),
])
def test_sliced_memory_model(shape, depth, slices):
    rng = random.Random(depth)
    w = shape.width
    lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if shape.signed else (0, (1 << w) - 1)
    init = [rng.choice([lo, hi, -1 if shape.signed else 0, rng.randint(lo, hi)]) for _ in range(depth)]
    dut = SlicedMemory(shape=shape, depth=depth, init=init, slices=slices)
    model = list(init)
    checked = []

    async def tb(ctx):
        data = None                    # the read port's word (not transparent, enabled reads)
        for cycle in range(3000):
            ra = rng.randrange(depth)
            wa = ra if rng.random() < 0.2 else rng.randrange(depth)
            wd, we, re = rng.randint(lo, hi), rng.random() < 0.5, rng.random() < 0.8
            ctx.set(dut.read.addr, ra)
            ctx.set(dut.read.en, re)
            ctx.set(dut.write.addr, wa)
            ctx.set(dut.write.data, wd)
            ctx.set(dut.write.en, we)
            await ctx.tick()
            if re:
                data = model[ra]       # read before the write of the same cycle
            if we:
                model[wa] = wd
            if data is not None:
                assert ctx.get(dut.read.data) == data, f"cycle {cycle}"
                checked.append(data)
        for a in range(depth):         # every stored word, through the slices
            assert dut.word(ctx, a) == model[a], f"word {a}"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    assert len(checked) > 2000


def test_aspect_slices():
    a = DP16KD_ASPECTS
    assert aspect_slices(a, 1024, 18) is None                # one DP16KD 1024 x 18
    assert aspect_slices(a, 1025, 18) == (9, 9)              # 2048 x 9
    assert aspect_slices(a, 3136, 18) == (4, 4, 4, 4, 2)     # 4096 x 4 (2 bits unused)
    assert aspect_slices(a, 6272, 18) == (2,) * 9            # 8192 x 2
    assert aspect_slices(a, 16385, 18) is None               # deeper than any aspect
    assert aspect_slices((), 6272, 18) is None               # a board without aspects


def test_bram_slices():
    ulx, ice = default_config("ulx3s-85f"), default_config("icebreaker")
    assert ulx.bank_depth(1) == 6272 and ulx.bram_slices(1) == (2,) * 9
    assert ulx.bram_slices(2) == (9, 9)                      # 1 PE: 10 rows x 128
    ulx32 = ulx.replace(**{"hardware.pes": (32, 1), "hardware.share_multiplier": False})
    assert ulx32.bram_slices(1) == (4, 4, 4, 4, 2)
    assert ice.bram_slices(1) == (16,)                       # the iCE40 keeps one memory
    # On the OrangeCrab's 56 block RAMs, slices that would leave fewer than BRAM_RESERVE
    # blocks for the other memories are not used: the banks stay whole (and fit).
    crab = ulx.replace(**{"hardware.board": "orangecrab-25f", "model.layers": (784, 32, 10),
                          "hardware.pes": (4, 1)})
    assert crab.bram_slices(1) == (2,) * 9                   # 4 x 9 + 1 = 37 <= 56 - 16
    crab8 = crab.replace(**{"hardware.pes": (8, 1)})
    assert crab8.bram_slices(1) == (18,)                     # 8 x 5 + 1 = 41 > 40


@pytest.mark.parametrize("n_out, n_in, pes", [(32, 64, 4), (10, 32, 1), (784 // 98, 7, 8)])
def test_engine_banks_follow_the_banking_rule(n_out, n_in, pes):
    """The layer engine's initial banks (hdl.layer.bank_rows) and the golden model's
    (FixedModel.banks) are the banking rule of ddfa.config.memory: W[i, j] in PE
    i mod P at address (i div P) * n_in + j, bank_depth words per PE."""
    W = torch.arange(n_out * n_in).reshape(n_out, n_in)
    banks = bank_rows(W.reshape(-1).tolist(), n_out, n_in, pes)
    assert banks == [b.reshape(-1).tolist() for b in split_banks(W, pes)]
    for i in range(n_out):
        for j in range(n_in):
            pe, addr = bank_address(i, j, n_in, pes)
            assert banks[pe][addr] == W[i, j]
    assert all(len(b) == bank_depth(n_out, n_in, pes) for b in banks)
    cfg = default_config("icebreaker")
    model = FixedModel(cfg)
    for l in (1, 2):
        n = cfg.model.layers
        P = cfg.hardware.pes[l - 1]
        want = bank_rows(model.W[l - 1].reshape(-1).tolist(), n[l], n[l - 1], P)
        assert [b.reshape(-1).tolist() for b in model.banks(l)] == want
        assert all(len(b) == cfg.bank_depth(l) for b in want)
