"""hdl/fixed.py against golden/arith.py: every input of small widths, bit for bit.

Each case builds one combinational module with an input of ``width`` bits and one output
per (function, shift, format); a testbench drives every input value and compares every
output with the golden function evaluated on the whole range at once.
"""

import itertools

import pytest
import torch
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from ddfa.config import Fixed
from golden import arith
from hdl import fixed

SHIFTS = (-2, -1, 0, 1, 2, 3, 5, 7, 8, 10)
FORMATS = (Fixed(4, 1), Fixed(5, 2), Fixed(6, 3), Fixed(8, 4), Fixed(10, 5))


def _run_exhaustive(shape, cases):
    """``cases``: name -> (hdl function of the input, golden function of a tensor)."""
    m = Module()
    x = Signal(shape)
    outs = {}
    for name, (hdl_fn, _) in cases.items():
        expr = hdl_fn(x)
        outs[name] = Signal(expr.shape(), name=name)
        m.d.comb += outs[name].eq(expr)
    lo = -(1 << (shape.width - 1)) if shape.signed else 0
    values = torch.arange(lo, lo + (1 << shape.width), dtype=torch.int64)
    want = {name: golden_fn(values).tolist() for name, (_, golden_fn) in cases.items()}
    bad = []

    async def bench(ctx):
        for idx, v in enumerate(values.tolist()):
            ctx.set(x, v)
            for name, sig in outs.items():
                got = ctx.get(sig)
                if got != want[name][idx]:
                    bad.append((name, v, got, want[name][idx]))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not bad, f"{len(bad)} mismatches, first: (case, x, hdl, golden) = {bad[:5]}"


@pytest.mark.parametrize("shape", [signed(8), unsigned(8), signed(3)], ids=str)
def test_round_shift_exhaustive(shape):
    cases = {f"rs_{s}".replace("-", "m"): (lambda x, s=s: fixed.round_shift(x, s),
                                            lambda t, s=s: arith.round_shift(t, s))
             for s in SHIFTS}
    _run_exhaustive(shape, cases)


@pytest.mark.parametrize("shape", [signed(8), unsigned(8), signed(3), unsigned(4)], ids=str)
def test_saturate_exhaustive(shape):
    cases = {f"sat_{f.width}": (lambda x, f=f: fixed.saturate(x, f),
                                lambda t, f=f: arith.saturate(t, f))
             for f in FORMATS}
    _run_exhaustive(shape, cases)


@pytest.mark.parametrize("shape", [signed(8), unsigned(8)], ids=str)
def test_narrow_exhaustive(shape):
    cases = {f"nw_{s}_{f.width}".replace("-", "m"): (lambda x, s=s, f=f: fixed.narrow(x, s, f),
                                                     lambda t, s=s, f=f: arith.narrow(t, s, f))
             for s, f in itertools.product((-1, 0, 1, 3, 4), FORMATS[:3])}
    _run_exhaustive(shape, cases)


def test_shapes():
    f = Fixed(16, 10)
    assert fixed.fixed_shape(f) == signed(16)
    assert fixed.saturate(Signal(signed(30)), f).shape() == signed(16)
    assert fixed.saturate(Signal(unsigned(3)), f).shape() == signed(16)
    assert fixed.narrow(Signal(signed(40)), 12, f).shape() == signed(16)
    with pytest.raises(ValueError):
        fixed.fixed_const(1 << 15, f)
    assert fixed.fixed_const(-(1 << 15), f).value == -(1 << 15)
