"""The layer engine alone against golden.arith.layer_forward and weight_update, bit for bit.

Randomized (seeded) layers of several shapes and PE counts, including fewer columns than
PEs (the activation stage then stalls the MACs), saturating weights, and random stalls on
every stream (g and bus producers drop valid, the y consumer drops ready, the directions
arrive late).
"""

from __future__ import annotations

import random

import pytest
import torch
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from ddfa.config import Config, ModelConfig, HardwareConfig, ArithConfig, Fixed
from golden import arith
from hdl.layer import LayerEngine, bank_rows, weight_stages
from hdl.fixed import fixed_shape

from .leaf_util import with_shared_multiplier

I64 = torch.int64


def small_cfg(layers, pes, board="none", stream=(), share=False, dataset="digits", **arith_kw) -> Config:
    """A software-only configuration (no board checks), any layer sizes and PE counts;
    ``board`` picks a board's family (the ECP5's extra weight stage, LUT RAM and sliced
    deep banks; "none" builds what the iCE40 gets: block-RAM sums)."""
    ar = ArithConfig(**arith_kw) if arith_kw else ArithConfig()
    return Config(model=ModelConfig(layers=tuple(layers), dataset=dataset),
                  arith=ar, hardware=HardwareConfig(board=board, pes=tuple(pes), stream=tuple(stream),
                                                    share_multiplier=share))


class Harness(wiring.Component):
    """The engine plus memories that play the layer below (y_{l-1}, d_{l-1}).

    For a streaming engine the memories start with garbage and the testbench writes the
    rows one by one (``w_en``, ``w_addr``, ``w_y``, ``w_d``), strobing ``prev_written``
    as the layer below would: a column read before it is written reads garbage."""

    def __init__(self, cfg, layer, y_prev, d_prev, garbage=None, **kw):
        self.engine = LayerEngine(cfg, layer, **kw)
        self.y_prev, self.d_prev = y_prev, d_prev
        self.garbage = garbage
        self.act_shape = fixed_shape(cfg.arith.act)
        super().__init__({})
        n = len(y_prev)
        self.w_en, self.w_addr = Signal(), Signal(range(max(n, 2)))
        self.w_y, self.w_d = Signal(self.act_shape), Signal(self.act_shape)

    def elaborate(self, platform):
        m = Module()
        e = self.engine
        m.submodules.engine = with_shared_multiplier(e, e.cfg)   # (the output layer's tangent, if shared)
        y0, d0 = (self.garbage, self.garbage) if self.engine.stream else (self.y_prev, self.d_prev)
        m.submodules.ym = ym = Memory(shape=self.act_shape, depth=len(self.y_prev), init=y0)
        m.submodules.dm = dm = Memory(shape=self.act_shape, depth=len(self.d_prev), init=d0)
        yr, dr = ym.read_port(), dm.read_port()
        m.d.comb += [yr.addr.eq(e.prev.addr), yr.en.eq(e.prev.en), e.prev.y.eq(yr.data),
                     dr.addr.eq(e.prev.addr), dr.en.eq(e.prev.en), e.prev.d.eq(dr.data)]
        if self.engine.stream:
            yw, dw = ym.write_port(), dm.write_port()
            m.d.comb += [yw.addr.eq(self.w_addr), yw.data.eq(self.w_y), yw.en.eq(self.w_en),
                         dw.addr.eq(self.w_addr), dw.data.eq(self.w_d), dw.en.eq(self.w_en),
                         e.prev_written.eq(self.w_en)]
        return m


def signed_word(x, width):
    """A host port's raw bits as the stored two's-complement integer."""
    return x - (1 << width) if x >> (width - 1) else x


def rand_fmt(rng, fmt, n, scale=1.0):
    lo, hi = int(fmt.min * scale), int(fmt.max * scale)
    return [rng.randint(lo, hi) for _ in range(n)]


def run_layer(cfg, layer, seed, stall=0.3, w_scale=0.2, sat=False, extreme=False):
    """``extreme``: the accumulators' worst case. Every input is the most negative
    activation; even rows hold the most negative weight (every product is the largest
    positive one, ``2^(w+a-2)``), odd rows the most positive (products near the most
    negative), so that the sums reach ``+-n_in 2^(w+a-2)``."""
    rng = random.Random(seed)
    ar = cfg.arith
    L = cfg.model.n_layers
    n_in, n_out = cfg.model.layers[layer - 1], cfg.model.layers[layer]
    hidden, P = layer < L, cfg.hardware.pes[layer - 1]
    W = rand_fmt(rng, ar.weight, n_out * n_in, 1.0 if sat else w_scale)
    b = rand_fmt(rng, ar.weight, n_out, 1.0 if sat else w_scale)
    y_prev = rand_fmt(rng, ar.act, n_in, 1.0 if sat else 0.1)
    d_prev = rand_fmt(rng, ar.act, n_in, 1.0 if sat else 0.1) if layer >= 2 else [0] * n_in
    if extreme:
        W = [ar.weight.min if (k // n_in) % 2 == 0 else ar.weight.max for k in range(n_out * n_in)]
        y_prev = [ar.act.min] * n_in
        d_prev = [ar.act.min] * n_in if layer >= 2 else [0] * n_in
    v_bits = [rng.randint(0, 1) for _ in range(n_out)]
    v = torch.tensor([(1 - 2 * x) * ar.act.one for x in v_bits], dtype=I64)
    g = rand_fmt(rng, ar.err, n_out, 1.0 if sat else 0.3)
    bus_d = rand_fmt(rng, ar.act, n_out)

    # golden
    Wt = torch.tensor(W, dtype=I64).reshape(n_out, n_in)
    bt = torch.tensor(b, dtype=I64)
    a, y, t, d = arith.layer_forward(ar, Wt, bt, torch.tensor(y_prev, dtype=I64),
                                     torch.tensor(d_prev, dtype=I64) if layer >= 2 else None,
                                     v if hidden else None, output=not hidden)
    gt = torch.tensor(g, dtype=I64)
    delta = torch.where(a > 0, gt, torch.zeros_like(gt)) if hidden else gt
    W_new, b_new = arith.weight_update(ar, Wt, bt, delta, torch.tensor(y_prev, dtype=I64))
    # The case must exercise what it checks: some weights change, and a hidden layer has
    # both active and inactive neurons (relu' masks some deltas, not all).
    assert (W_new != Wt).any(), "vacuous update: choose another seed"
    if hidden and n_out > 1:
        assert (a > 0).any() and (a <= 0).any(), "all neurons on one side of 0: choose another seed"

    garbage = rand_fmt(rng, ar.act, n_in)
    dut = Harness(cfg, layer, y_prev, d_prev, garbage=garbage, W_init=W, b_init=b)
    e = dut.engine
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    out = {"beats": [], "cycles": {}}

    async def main(ctx):
        if hidden:
            ctx.set(e.v, sum(bit << i for i, bit in enumerate(v_bits)))
        ctx.set(e.fwd, 1)
        await ctx.tick()
        ctx.set(e.fwd, 0)
        n = 1
        while ctx.get(e.busy):
            if hidden and n == 2 * n_in // 3:       # the directions arrive late
                ctx.set(e.v_valid, 1)
            await ctx.tick()
            n += 1
        out["cycles"]["forward"] = n
        if hidden:
            ys, ds = [], []
            for i in range(n_out):
                ctx.set(e.buf.addr, i)
                ctx.set(e.buf.en, 1)
                await ctx.tick()
                ctx.set(e.buf.en, 0)
                ys.append(ctx.get(e.buf.y))
                ds.append(ctx.get(e.buf.d))
            out["y"], out["d"] = ys, ds
        ctx.set(e.upd, 1)
        await ctx.tick()
        ctx.set(e.upd, 0)
        n = 1
        while ctx.get(e.busy):
            await ctx.tick()
            n += 1
        out["cycles"]["update"] = n
        Wb = []
        for p in range(P):
            words = []
            for a_ in range(e.bank_depth):
                ctx.set(e.host_w.addr, (p << e.bank_addr_bits) | a_)
                ctx.set(e.host_w.re, 1)
                for _ in range(e.host_latency):      # 2 on the ECP5 boards
                    await ctx.tick()
                words.append(signed_word(ctx.get(e.host_w.rdata), ar.weight.width))
            Wb.append(words)
        ctx.set(e.host_w.re, 0)
        out["W_banks"] = Wb
        bs = []
        for i in range(n_out):
            ctx.set(e.host_b.addr, i)
            ctx.set(e.host_b.re, 1)
            for _ in range(e.host_latency):
                await ctx.tick()
            bs.append(signed_word(ctx.get(e.host_b.rdata), ar.weight.width))
        out["b"] = bs

    async def producer(ctx):
        s = e.g if hidden else e.bus
        for i in range(n_out):
            while rng.random() < stall:
                await ctx.tick()
            ctx.set(s.valid, 1)
            if hidden:
                ctx.set(s.payload, g[i])
            else:
                ctx.set(s.payload.e, g[i])
                ctx.set(s.payload.d, bus_d[i])
            await ctx.tick().until(s.ready)
            ctx.set(s.valid, 0)

    async def consumer(ctx):
        for i in range(n_out):
            while rng.random() < stall:
                ctx.set(e.y.ready, 0)
                await ctx.tick()
            ctx.set(e.y.ready, 1)
            yy, dd = await ctx.tick().sample(e.y.payload.y, e.y.payload.d).until(e.y.valid)
            out["beats"].append((yy, dd))
        ctx.set(e.y.ready, 0)

    async def writer(ctx):
        """Streaming: the layer below writes its rows in order, at random moments (bursts
        and gaps), from the cycle after the strobe."""
        await ctx.tick().until(e.busy)
        for j in range(n_in):
            while rng.random() < stall:
                await ctx.tick()
            ctx.set(dut.w_en, 1)
            ctx.set(dut.w_addr, j)
            ctx.set(dut.w_y, y_prev[j])
            ctx.set(dut.w_d, d_prev[j])
            await ctx.tick()
            ctx.set(dut.w_en, 0)

    sim.add_testbench(main)
    sim.add_testbench(producer, background=True)
    if e.stream:
        sim.add_testbench(writer, background=True)
    if not hidden:
        sim.add_testbench(consumer, background=True)
    sim.run()

    if hidden:
        assert out["y"] == y.tolist(), "y differs"
        assert out["d"] == d.tolist(), "d differs"
    else:
        assert [bt_[0] for bt_ in out["beats"]] == y.tolist(), "y_L differs"
        assert [bt_[1] for bt_ in out["beats"]] == d.tolist(), "d_L differs"
    assert out["W_banks"] == bank_rows(W_new.flatten().tolist(), n_out, n_in, P), "W after the update differs"
    assert out["b"] == b_new.tolist(), "b after the update differs"
    return out["cycles"]


CASES = [
    # layers, pes, layer, stall probability, seed
    ((64, 8, 10), (4, 1), 1, 0.3, 1),       # first layer: no tangent MACs
    ((64, 8, 10), (4, 1), 2, 0.3, 2),       # output layer, one PE
    ((64, 6, 4, 10), (3, 2, 5), 2, 0.5, 9),  # middle hidden layer with tangents
    ((64, 6, 4, 10), (3, 2, 5), 3, 0.5, 4),  # output layer, 5 PEs
    ((64, 3, 10), (1, 10), 2, 0.2, 5),       # fewer columns (3) than PEs (10): activation stalls
    ((64, 6, 4, 10), (6, 4, 2), 2, 0.0, 6),  # no stalls at all
    ((64, 4, 10), (4, 10), 1, 0.3, 7),       # one row group (R = 1)
    ((64, 4, 10), (4, 10), 2, 0.3, 8),       # one row group, 4 columns for 10 PEs
    ((64, 1, 10), (1, 2), 2, 0.3, 9),        # a single column
]


@pytest.mark.parametrize("layers,pes,layer,stall,seed", CASES)
def test_layer_engine(layers, pes, layer, stall, seed):
    cfg = small_cfg(layers, pes)
    cycles = run_layer(cfg, layer, seed=seed, stall=stall)
    print(layers, pes, layer, cycles)


@pytest.mark.parametrize("layers,pes,layer,stall,seed", CASES)
def test_layer_engine_ecp5(layers, pes, layer, stall, seed):
    """The ECP5 engine: one more pipeline stage between the banks and the operand
    registers (``weight_stages == 1``), the deltas latched a cycle later."""
    cfg = small_cfg(layers, pes, board="ulx3s-85f")
    assert weight_stages(cfg) == 1
    cycles = run_layer(cfg, layer, seed=seed + 100, stall=stall)
    print(layers, pes, layer, cycles)


@pytest.mark.parametrize("layers,pes,layer,seed", [
    ((784, 3, 10), (1, 10), 1, 21),      # 2,352-word bank: 4-bit slices (as the 32-PE ulx3s processor's)
    ((784, 4, 10), (2, 10), 1, 22),      # 1,568-word banks: 9-bit slices
])
def test_layer_engine_ecp5_sliced(layers, pes, layer, seed):
    """ECP5 banks deeper than a DP16KD at 18 bits are stored as column slices
    (``Config.bram_slices``): forward, update and every stored weight (read back through
    the host port) bit for bit."""
    cfg = small_cfg(layers, pes, board="ulx3s-85f", dataset="mnist", acc_width=48)
    slices = cfg.bram_slices(layer)
    assert len(slices) > 1
    cycles = run_layer(cfg, layer, seed=seed, stall=0.2)
    print(layers, pes, layer, slices, cycles)


STREAM_CASES = [
    # layers, pes, stream, layer, stall probability, seed
    ((64, 8, 10), (4, 1), (False, True), 2, 0.3, 11),           # output layer
    ((64, 6, 4, 10), (3, 1, 5), (False, True, False), 2, 0.5, 12),  # hidden, directions late
    ((64, 6, 4, 10), (3, 1, 1), (False, True, True), 3, 0.8, 13),   # rows arrive slowly
    ((64, 6, 4, 10), (3, 1, 1), (False, True, True), 3, 0.0, 14),   # every cycle a row
    ((64, 1, 10), (1, 1), (False, True), 2, 0.3, 15),            # a single column
    ((64, 5, 1, 10), (5, 1, 2), (False, True, False), 2, 0.3, 18),  # a single row
]


@pytest.mark.parametrize("board", ["none", "ulx3s-85f"])
@pytest.mark.parametrize("layers,pes,stream,layer,stall,seed", STREAM_CASES)
def test_layer_engine_streaming(layers, pes, stream, layer, stall, seed, board):
    """A streaming engine (``hardware.stream``): the rows of the layer below are written
    one by one at random moments, the memory holding garbage until then, so a column
    read too early shows as a wrong y or d. Forward and update bit for bit."""
    cfg = small_cfg(layers, pes, board=board, stream=stream)
    assert cfg.streams(layer)
    cycles = run_layer(cfg, layer, seed=seed, stall=stall)
    print(layers, pes, stream, layer, cycles)


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
@pytest.mark.parametrize("stream", [(), (False, True)])
def test_layer_engine_shared_tangent(board, stream):
    """The output layer's tangent products from the shared multiplier
    (``hardware.share_multiplier``), with and without streaming, on both families."""
    cfg = small_cfg((64, 8, 10), (4, 1), board=board, stream=stream, share=True,
                    **({} if board == "ulx3s-85f" else {"acc_width": 40}))
    assert LayerEngine(cfg, 2).shared
    cycles = run_layer(cfg, 2, seed=21, stall=0.3)
    print(board, stream, cycles)


@pytest.mark.parametrize("layer", [2, 3])
def test_layer_engine_saturates(layer):
    """Full-range weights and inputs: every narrowing saturates somewhere."""
    cfg = small_cfg((64, 5, 4, 10), (5, 2, 2), lr_shift=1, acc_width=40)
    run_layer(cfg, layer, seed=99 + layer, stall=0.2, sat=True)


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_layer_engine_accumulator_extremes(layer):
    """The accumulators are sized to their fan-in (``w + a + ceil(log2 n_in)`` bits, no
    spare bit when ``n_in`` is a power of two, as here: 64, 8, 4). The largest sums of
    products, of both signs, must come out exactly (a bit fewer wraps them)."""
    cfg = small_cfg((64, 8, 4, 10), (4, 2, 2))
    run_layer(cfg, layer, seed=210 + layer, stall=0.2, extreme=True)


def test_layer_engine_other_formats():
    """ulx3s-like 18-bit formats and a negative bias shift (err.frac + lr_shift < weight.frac)."""
    cfg = small_cfg((64, 4, 3, 10), (2, 3, 2),
                    act=Fixed(18, 12), err=Fixed(18, 15), weight=Fixed(18, 15), feedback=Fixed(18, 14),
                    acc_width=48, lr_shift=8)
    run_layer(cfg, 2, seed=5, stall=0.3, w_scale=0.5)
    cfg = small_cfg((64, 4, 3, 10), (2, 3, 2), weight=Fixed(16, 14), err=Fixed(12, 9), lr_shift=3)
    run_layer(cfg, 3, seed=6, stall=0.3, w_scale=0.5, sat=True)
