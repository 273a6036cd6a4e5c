# amaranth: UnusedElaboratable=no
"""hdl/output.py against golden.arith.output_unit, bit for bit: p, e, d and pred.

Seeded random output vectors (ties of the maximum, ties of the table index rounding,
values far below the table, all-equal vectors, the format's extremes) stream through the
unit back to back, with random gaps on ``y`` and random backpressure on ``bus``.
"""

import random

import pytest
import torch
from amaranth.sim import Simulator

from ddfa.config import Config, default_config
from golden import arith
from hdl.output import OutputUnit

from .leaf_util import verilator_lint, with_shared_multiplier


def _configs():
    small = Config().replace(**{
        "hardware.board": "none", "arith.exp_frac": 3, "arith.exp_range": 5, "arith.exp_bits": 9,
        "arith.err": (12, 10), "arith.act": (12, 6),
    })
    ice = default_config("icebreaker")
    return {"icebreaker": ice, "ulx3s-85f": default_config("ulx3s-85f"), "small-table": small,
            "icebreaker-own-multiplier": ice.replace(**{"hardware.share_multiplier": False})}


def _vectors(cfg, rng: random.Random, count: int):
    """(y, d, label, train) samples covering the corners of the softmax."""
    ar, n = cfg.arith, cfg.model.n_outputs
    lo, hi = ar.act.min, ar.act.max
    step = 1 << (ar.act.frac - ar.exp_frac)            # one table index in act LSBs
    edge = ar.exp_entries * step                        # -z at which the table ends
    out = []
    for i in range(count):
        kind = i % 8
        if kind == 0:                                    # uniform over the whole format
            y = [rng.randint(lo, hi) for _ in range(n)]
        elif kind == 1:                                  # typical logits, +-4.0
            y = [rng.randint(-4 * ar.act.one, 4 * ar.act.one) for _ in range(n)]
        elif kind == 2:                                  # all equal
            y = [rng.randint(lo, hi)] * n
        elif kind == 3:                                  # ties of the maximum
            top = rng.randint(0, hi)
            y = [top if rng.random() < 0.4 else top - rng.randint(0, 3 * ar.act.one) for _ in range(n)]
        elif kind == 4:                                  # index ties: -z = (j + 1/2) table steps
            top = rng.randint(0, hi // 2)
            y = [top] + [top - (rng.randint(0, ar.exp_entries) * step + step // 2) for _ in range(n - 1)]
        elif kind == 5:                                  # around the end of the table
            top = hi
            y = [top] + [top - edge + rng.randint(-step, step) for _ in range(n - 1)]
        elif kind == 6:                                  # far below the table
            y = [hi] + [lo] * (n - 1)
        else:                                            # the maximum last, the rest near it
            base = rng.randint(lo // 2, hi // 2)
            y = [base - rng.randint(1, 2 * ar.act.one) for _ in range(n - 1)] + [base]
        y = [min(max(v, lo), hi) for v in y]
        rng.shuffle(y) if kind in (0, 1, 3, 4) else None
        d = [rng.randint(lo, hi) for _ in range(n)]
        out.append((y, d, rng.randrange(n), rng.random() < 0.85))
    return out


def _golden(cfg, y, label):
    p, e = arith.output_unit(cfg.arith, torch.tensor(y, dtype=torch.int64), label)
    pred = max(range(len(y)), key=lambda o: (y[o], -o))
    return p.tolist(), e.tolist(), pred


def _simulate(dut, samples, rng, gap=0.3, ready=0.5):
    beats, preds = [], []
    done = []

    async def producer(ctx):
        for y, d, label, train in samples:
            for o in range(len(y)):
                while rng.random() < gap:
                    ctx.set(dut.y.valid, 0)
                    await ctx.tick()
                ctx.set(dut.y.valid, 1)
                ctx.set(dut.y.payload, {"y": y[o], "d": d[o]})
                ctx.set(dut.label, label)
                ctx.set(dut.train, train)
                await ctx.tick().until(dut.y.ready)
                ctx.set(dut.label, 0)        # sampled with the first beat only
                ctx.set(dut.train, 0)
            ctx.set(dut.y.valid, 0)
        await ctx.tick()
        await ctx.tick().until(~dut.busy)
        for _ in range(5):
            await ctx.tick()
        done.append(True)

    async def consumer(ctx):
        held = None                          # a beat offered and refused must stay offered
        while True:
            r = rng.random() < ready
            ctx.set(dut.bus.ready, r)
            _, _, valid, payload = await ctx.tick().sample(dut.bus.valid, dut.bus.payload)
            beat = (payload.e, payload.d)
            assert held is None or (valid and beat == held), "bus beat withdrawn or changed"
            held = beat if valid and not r else None
            if r and valid:
                beats.append(beat)

    async def monitor(ctx):
        async for _, _, strobe, pred in ctx.tick().sample(dut.pred_valid, dut.pred):
            if strobe:
                preds.append(pred)

    sim = Simulator(with_shared_multiplier(dut, dut._cfg))
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer, background=True)
    sim.add_testbench(monitor, background=True)
    sim.run()
    assert done
    return beats, preds


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f", "small-table"])
def test_output_unit_matches_golden(name):
    cfg = _configs()[name]
    rng = random.Random(f"output-{name}")
    samples = _vectors(cfg, rng, 32)
    dut = OutputUnit(cfg)
    beats, preds = _simulate(dut, samples, rng)

    n, one = cfg.model.n_outputs, cfg.arith.err.one
    want_beats, want_preds = [], []
    for y, d, label, train in samples:
        p, e, pred = _golden(cfg, y, label)
        want_preds.append(pred)
        if train:
            want_beats += [(e[o], d[o], p[o], label, y) for o in range(n)]
    assert preds == want_preds
    assert len(beats) == len(want_beats)
    for i, ((e, d), (we, wd, wp, label, y)) in enumerate(zip(beats, want_beats)):
        o = i % n
        p = e + (one if o == label else 0)
        assert (p, e, d) == (wp, we, wd), f"beat {i} (o={o}, label={label}, y={y})"


@pytest.mark.parametrize("train", [True, False])
def test_cycles_and_busy(train):
    """Back to back and never stalled, the unit takes exactly ``cycles()``; inference emits
    nothing on the bus."""
    cfg = default_config("icebreaker")
    n = cfg.model.n_outputs
    dut = OutputUnit(cfg)
    y = [(o * 37) % 11 * 100 - 500 for o in range(n)]
    log = {}

    async def bench(ctx):
        ctx.set(dut.bus.ready, 1)
        ctx.set(dut.train, train)
        ctx.set(dut.label, 3)
        assert not ctx.get(dut.busy)
        beats = 0
        for o in range(n):
            ctx.set(dut.y.valid, 1)
            ctx.set(dut.y.payload, {"y": y[o], "d": o})
            await ctx.tick()
        ctx.set(dut.y.valid, 0)
        cycles = n
        while ctx.get(dut.busy):
            assert not ctx.get(dut.y.ready) or ctx.get(dut.pred_valid)
            beats += ctx.get(dut.bus.valid)
            await ctx.tick()
            cycles += 1
        log.update(cycles=cycles, beats=beats)

    sim = Simulator(with_shared_multiplier(dut, cfg))
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert log == {"cycles": dut.cycles(train), "beats": n if train else 0}


def test_verilator_lint(tmp_path):
    verilator_lint(OutputUnit(default_config("icebreaker")), "output_unit", tmp_path)
