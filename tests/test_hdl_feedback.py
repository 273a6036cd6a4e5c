# amaranth: UnusedElaboratable=no
"""hdl/feedback.py against golden.arith.feedback_unit, bit for bit: g and every word of B.

Several training steps run back to back on one unit, so each step starts from the B the
hardware itself updated; after every step the test reads every word of B through the host
port. Random gaps on the bus and random backpressure on g.
"""

import random

import pytest
import torch
from amaranth.sim import Simulator

from ddfa.config import default_config
from golden import arith
from hdl.feedback import FeedbackUnit
from hdl.layer import host_latency

from .leaf_util import verilator_lint, with_shared_multiplier


def _configs():
    ice = default_config("icebreaker")
    ulx = default_config("ulx3s-85f").replace(**{"model.layers": (784, 20, 10), "hardware.pes": (4, 5),
                                                 "hardware.stream": ()})
    return {
        "icebreaker": ice,
        "ulx3s-85f": ulx,
        "icebreaker-dfa": ice.replace(**{"model.algorithm": "dfa"}),
        "icebreaker-own-multiplier": ice.replace(**{"hardware.share_multiplier": False}),
    }


def _signed(x, width):
    return x - (1 << width) if x >> (width - 1) else x


def _step_data(cfg, rng, kind):
    """(e, d, v) of one step: ``full`` spans whole formats (saturates g and B), ``typical``
    keeps e in [-1, 1] and d small."""
    ar, n_L, n_l = cfg.arith, cfg.model.n_outputs, cfg.model.layers[1]
    if kind == "full":
        e = [rng.randint(ar.err.min, ar.err.max) for _ in range(n_L)]
        d = [rng.randint(ar.act.min, ar.act.max) for _ in range(n_L)]
        d[0], d[-1] = ar.act.min, ar.act.max
    else:
        e = [rng.randint(-ar.err.one, ar.err.one) for _ in range(n_L)]
        d = [rng.randint(-2 * ar.act.one, 2 * ar.act.one) for _ in range(n_L)]
    v = [rng.getrandbits(1) for _ in range(n_l)]
    return e, d, v


def _random_B(cfg, rng, full):
    fb, n = cfg.arith.feedback, cfg.model.layers[1] * cfg.model.n_outputs
    if full:
        return [rng.choice((fb.min, fb.max)) if rng.random() < 0.1 else rng.randint(fb.min, fb.max)
                for _ in range(n)]
    return [rng.randint(-fb.one // 4, fb.one // 4) for _ in range(n)]


def _simulate(dut, cfg, steps, rng, gap=0.3, ready=0.5):
    """``steps``: (B_written_by_host or None, e, d, v). Returns, per step, the g beats,
    the B image read back after the step, and the cycles the unit was busy."""
    fb = cfg.arith.feedback
    n_l, n_L = cfg.model.layers[1], cfg.model.n_outputs
    depth = n_l * n_L
    g_beats, results = [], []

    async def host_write(ctx, image):
        ctx.set(dut.host.we, 1)
        for a, word in enumerate(image):
            ctx.set(dut.host.addr, a)
            ctx.set(dut.host.wdata, word & ((1 << fb.width) - 1))
            await ctx.tick()
        ctx.set(dut.host.we, 0)

    async def host_read(ctx):
        image = []
        ctx.set(dut.host.re, 1)
        for a in range(depth):
            ctx.set(dut.host.addr, a)
            for _ in range(host_latency(cfg)):      # 2 on the ECP5 boards
                await ctx.tick()
            image.append(_signed(ctx.get(dut.host.rdata), fb.width))
        ctx.set(dut.host.re, 0)
        return image

    async def producer(ctx):
        for B_host, e, d, v in steps:
            if B_host is not None:
                await host_write(ctx, B_host)
            start = len(g_beats)
            ctx.set(dut.v, sum(bit << i for i, bit in enumerate(v)))
            busy = 0
            for o in range(n_L):
                while rng.random() < gap:
                    ctx.set(dut.bus.valid, 0)
                    await ctx.tick()
                    busy += ctx.get(dut.busy)
                ctx.set(dut.bus.valid, 1)
                ctx.set(dut.bus.payload, {"e": e[o], "d": d[o]})
                await ctx.tick().until(dut.bus.ready)
                busy += 1
                ctx.set(dut.v, 0)            # sampled with the first beat only
            ctx.set(dut.bus.valid, 0)
            while ctx.get(dut.busy):
                await ctx.tick()
                busy += 1
            await ctx.tick()                 # let the consumer record the last beat
            assert len(g_beats) - start == n_l
            results.append((g_beats[start:], await host_read(ctx), busy))

    async def consumer(ctx):
        held = None                          # a beat offered and refused must stay offered
        while True:
            r = rng.random() < ready
            ctx.set(dut.g.ready, r)
            _, _, valid, payload = await ctx.tick().sample(dut.g.valid, dut.g.payload)
            assert held is None or (valid and payload == held), "g beat withdrawn or changed"
            held = payload if valid and not r else None
            if r and valid:
                g_beats.append(payload)

    sim = Simulator(with_shared_multiplier(dut, cfg))
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer, background=True)
    sim.run()
    return results


@pytest.mark.parametrize("name", ["icebreaker", "ulx3s-85f", "icebreaker-dfa"])
def test_feedback_unit_matches_golden(name):
    cfg = _configs()[name]
    ar = cfg.arith
    rng = random.Random(f"feedback-{name}")
    n_l, n_L = cfg.model.layers[1], cfg.model.n_outputs
    B0 = _random_B(cfg, rng, full=True)
    # Step 1 from the initial image; step 3 after a host write of a fresh image.
    plan = [(None, "full"), (None, "typical"), (_random_B(cfg, rng, full=False), "typical"), (None, "full")]
    steps = [(B_host, *_step_data(cfg, rng, kind)) for B_host, kind in plan]
    dut = FeedbackUnit(cfg, 1, init=B0)
    results = _simulate(dut, cfg, steps, rng)

    B = torch.tensor(B0, dtype=torch.int64).reshape(n_l, n_L)
    for s, ((B_host, e, d, v), (g_hw, B_hw, _)) in enumerate(zip(steps, results)):
        if B_host is not None:
            B = torch.tensor(B_host, dtype=torch.int64).reshape(n_l, n_L)
        v_act = torch.tensor([(1 - 2 * b) * ar.act.one for b in v], dtype=torch.int64)
        g, B = arith.feedback_unit(ar, B, torch.tensor(e, dtype=torch.int64), v_act,
                                   torch.tensor(d, dtype=torch.int64), update=dut.update)
        assert g_hw == g.tolist(), f"step {s}: g"
        bad = [(a, B_hw[a], w) for a, w in enumerate(B.flatten().tolist()) if B_hw[a] != w]
        assert not bad, f"step {s}: {len(bad)} words of B differ, first (addr, hw, golden): {bad[:5]}"
    if name == "icebreaker":                 # the full-range steps saturate both g and B
        assert any(abs(x) == ar.err.max or x == ar.err.min for x in results[0][0])
        assert ar.feedback.max in results[0][1] or ar.feedback.min in results[0][1]


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_cycles_full_size(board):
    """The default sizes, never stalled: ``n_L + n_l * n_L + 5`` cycles, and a second
    step right after the first."""
    cfg = default_config(board)
    rng = random.Random(board)
    dut = FeedbackUnit(cfg, 1)
    steps = [(None, *_step_data(cfg, rng, "typical")) for _ in range(2)]
    results = _simulate(dut, cfg, steps, rng, gap=0.0, ready=1.1)
    n_l, n_L = cfg.model.layers[1], cfg.model.n_outputs
    B = torch.zeros(n_l, n_L, dtype=torch.int64)
    for (_, e, d, v), (g_hw, B_hw, busy) in zip(steps, results):
        v_act = torch.tensor([(1 - 2 * b) * cfg.arith.act.one for b in v], dtype=torch.int64)
        g, B = arith.feedback_unit(cfg.arith, B, torch.tensor(e), v_act, torch.tensor(d))
        assert g_hw == g.tolist() and B_hw == B.flatten().tolist()
        assert busy == dut.cycles() == n_L + n_l * n_L + 5


def test_rejects():
    cfg = default_config("icebreaker")
    with pytest.raises(ValueError):
        FeedbackUnit(cfg, 2)                                        # the output layer
    with pytest.raises(ValueError):
        FeedbackUnit(cfg.replace(**{"model.algorithm": "bp"}), 1)
    with pytest.raises(ValueError):
        FeedbackUnit(cfg, 1, init=[cfg.arith.feedback.max + 1])


def test_verilator_lint(tmp_path):
    verilator_lint(FeedbackUnit(default_config("icebreaker"), 1), "feedback_unit", tmp_path)
