"""The arithmetic contract's primitives and blocks (golden/arith.py) against exact math.

Every primitive is compared with Python's exact integer and Fraction arithmetic over
exhaustive small ranges (``Fraction.__round__`` rounds half to even); the blocks are
compared with an independent Fraction implementation of docs/ARITHMETIC.md section 5;
the LFSRs are checked for maximal length (full period up to 20 bits, primitivity of the
feedback polynomial for every width) and against an independent formulation of their
output sequence; the softmax is checked against float softmax within the bound of
ARITHMETIC.md section 5.3.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
import torch

from ddfa.config import LFSR_TAPS, Config, Fixed, default_config
from golden.arith import (Lfsr, directions, exp_table, feedback_unit, layer_forward, lfsr_mask, narrow,
                          output_unit, quantize, round_shift, round_shift_stochastic, saturate,
                          weight_update)
from golden.fixed import softmax_error_bound

I64 = torch.int64
DEFAULT_FORMATS = sorted({getattr(default_config(b).arith, f) for b in ("icebreaker", "ulx3s-85f")
                          for f in ("act", "err", "weight", "feedback")}, key=lambda f: (f.width, f.frac))


def t(values):
    return torch.tensor(values, dtype=I64)


def ref_round(x: Fraction) -> int:
    """Nearest integer, ties to even (Python's exact rounding of a Fraction)."""
    return round(x)


def ref_sat(q: int, fmt: Fixed) -> int:
    return max(fmt.min, min(fmt.max, q))


# --------------------------------------------------------------------------------------
# round_shift, saturate, narrow, quantize
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("s", range(-3, 11))
def test_round_shift_exhaustive(s):
    xs = list(range(-3000, 3001))
    got = round_shift(t(xs), s).tolist()
    for x, g in zip(xs, got):
        want = ref_round(Fraction(x, 2 ** s)) if s >= 0 else x * 2 ** (-s)
        assert g == want, (x, s)


def test_round_shift_ties_go_to_even():
    # x / 4 for x = ..., -6, -2, 2, 6, 10: exact halves.
    assert round_shift(t([2, 6, 10, -2, -6, -10]), 2).tolist() == [0, 2, 2, 0, -2, -2]
    assert round_shift(t([1, 3, 5, -1, -3, -5]), 1).tolist() == [0, 2, 2, 0, -2, -2]
    # just above and below a half
    assert round_shift(t([3, 5, -3, -5]), 2).tolist() == [1, 1, -1, -1]


def test_round_shift_s0_and_negative_s_are_exact():
    xs = t(list(range(-50, 51)))
    assert torch.equal(round_shift(xs, 0), xs)
    assert torch.equal(round_shift(xs, -3), xs * 8)


def test_round_shift_large_values_do_not_overflow():
    big = t([2 ** 62 - 1, -(2 ** 62), 2 ** 62 - 2 ** 20, -(2 ** 62) + 2 ** 19])
    for s in (1, 20, 40, 61):
        want = [ref_round(Fraction(x, 2 ** s)) for x in big.tolist()]
        assert round_shift(big, s).tolist() == want


@pytest.mark.parametrize("fmt", DEFAULT_FORMATS + [Fixed(4, 1), Fixed(5, 2), Fixed(6, 4)], ids=str)
def test_saturate_edges(fmt):
    edges = [fmt.min - 2 ** 40, fmt.min - 1, fmt.min, fmt.min + 1, -1, 0, 1, fmt.max - 1, fmt.max,
             fmt.max + 1, fmt.max + 2 ** 40]
    assert saturate(t(edges), fmt).tolist() == [ref_sat(x, fmt) for x in edges]
    assert fmt.min == -(2 ** (fmt.width - 1)) and fmt.max == 2 ** (fmt.width - 1) - 1


@pytest.mark.parametrize("fmt", [Fixed(4, 1), Fixed(5, 2), Fixed(6, 3)], ids=str)
def test_narrow_exhaustive_small_formats(fmt):
    xs = list(range(-2 ** 9, 2 ** 9))
    for s in range(-2, 6):
        got = narrow(t(xs), s, fmt).tolist()
        want = [ref_sat(ref_round(Fraction(x) / Fraction(2) ** s), fmt) for x in xs]
        assert got == want, s


@pytest.mark.parametrize("fmt", DEFAULT_FORMATS, ids=str)
def test_quantize_ties_and_saturation(fmt):
    lsb = Fraction(1, fmt.scale)
    ks = list(range(-20, 20))
    halves = [float((k + Fraction(1, 2)) * lsb) for k in ks]     # exactly between two codes
    assert quantize(torch.tensor(halves, dtype=torch.float64), fmt).tolist() == \
        [ref_round(k + Fraction(1, 2)) for k in ks]
    top = float(Fraction(fmt.max, fmt.scale))
    bottom = float(Fraction(fmt.min, fmt.scale))
    x = torch.tensor([top, top + 1.0, 1e9, bottom, bottom - 1.0, -1e9, -1.0, 1.0], dtype=torch.float64)
    assert quantize(x, fmt).tolist() == [fmt.max, fmt.max, fmt.max, fmt.min, fmt.min, fmt.min, -fmt.one,
                                         min(fmt.one, fmt.max)]


@pytest.mark.parametrize("s", range(1, 7))
def test_stochastic_rounding_is_unbiased_exactly(s):
    """Over all 2**s residues of r, floor((x + r)/2**s) sums to x (Hermite's identity):
    the expectation is exactly x / 2**s for a uniform r."""
    xs = t(list(range(-300, 301)))
    total = torch.zeros_like(xs)
    for r in range(2 ** s):
        q = round_shift_stochastic(xs, s, torch.full_like(xs, r + 2 ** 20 * random.randrange(4)))
        assert torch.equal(q, torch.div(xs + r, 2 ** s, rounding_mode="floor"))
        total += q
    assert torch.equal(total, xs)


def test_stochastic_rounding_exact_for_nonpositive_shift():
    xs = t(list(range(-9, 10)))
    r = torch.full_like(xs, 12345)
    assert torch.equal(round_shift_stochastic(xs, 0, r), xs)
    assert torch.equal(round_shift_stochastic(xs, -2, r), xs * 4)


# --------------------------------------------------------------------------------------
# LFSRs
# --------------------------------------------------------------------------------------

def _galois_matrix(width: int) -> list[int]:
    """The one-step map as columns: column b = T e_b."""
    mask = lfsr_mask(width)
    return [((1 << b) >> 1) ^ (mask if b == 0 else 0) for b in range(width)]


def _mat_apply(cols: list[int], s: int) -> int:
    out, b = 0, 0
    while s:
        if s & 1:
            out ^= cols[b]
        s >>= 1
        b += 1
    return out


def _mat_mul(a: list[int], b: list[int]) -> list[int]:
    return [_mat_apply(a, c) for c in b]


def _mat_pow(cols: list[int], e: int) -> list[int]:
    result = [1 << b for b in range(len(cols))]
    while e:
        if e & 1:
            result = _mat_mul(cols, result)
        cols = _mat_mul(cols, cols)
        e >>= 1
    return result


def _prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        if n % p == 0:
            out.append(p)
            while n % p == 0:
                n //= p
        p += 1
    return out + ([n] if n > 1 else [])


@pytest.mark.parametrize("width", sorted(w for w in LFSR_TAPS if w <= 20))
def test_lfsr_full_period(width):
    """Every nonzero state is visited exactly once in 2**w - 1 steps."""
    lfsr = Lfsr(width, 1)
    seen = bytearray(1 << width)
    period = (1 << width) - 1
    for _ in range(period):
        s = lfsr.state
        assert not seen[s], f"state {s:#x} repeats before the full period"
        seen[s] = 1
        lfsr.step()
    assert lfsr.state == 1
    assert sum(seen) == period and not seen[0]


@pytest.mark.parametrize("width", sorted(LFSR_TAPS))
def test_lfsr_polynomial_is_primitive(width):
    """Maximal length for every width (also 24, 31, 32): T^(2^w - 1) = I and
    T^((2^w - 1)/p) != I for each prime p dividing 2^w - 1."""
    T = _galois_matrix(width)
    n = (1 << width) - 1
    identity = [1 << b for b in range(width)]
    assert _mat_pow(T, n) == identity
    for p in _prime_factors(n):
        assert _mat_pow(T, n // p) != identity, p


def reference_bits(width: int, taps: tuple[int, ...], seed: int, n: int) -> list[int]:
    """The output sequence written independently of golden.arith.Lfsr: unrolling the
    Galois recurrence s_i' = s_{i+1} ^ m_i o (m_i = 1 for i = t - 1, t a tap, s_w = 0)
    gives o_k = seed_k ^ XOR_{t in taps, t <= k} o_{k-t} (seed_k = 0 for k >= width)."""
    o: list[int] = []
    for k in range(n):
        bit = (seed >> k) & 1 if k < width else 0
        for tap in taps:
            if tap <= k:
                bit ^= o[k - tap]
        o.append(bit)
    return o


@pytest.mark.parametrize("width", sorted(LFSR_TAPS))
def test_lfsr_matches_independent_reference(width):
    rng = random.Random(width)
    for seed in (1, (1 << width) - 1, rng.randrange(1, 1 << width)):
        assert Lfsr(width, seed).bits(300) == reference_bits(width, LFSR_TAPS[width], seed, 300)


def test_lfsr_first_bits_table():
    """A table worked out by hand: width 8, taps (8, 6, 5, 4) -> mask 0xB8, seed 1."""
    assert lfsr_mask(8) == 0xB8
    lfsr = Lfsr(8, 1)
    states = []
    for _ in range(6):
        lfsr.step()
        states.append(lfsr.state)
    # 0x01 -> out 1: 0x00 ^ 0xB8 = 0xB8 -> 0x5C -> 0x2E -> 0x17 -> out 1: 0x0B ^ 0xB8 = 0xB3 -> out 1: 0x59 ^ 0xB8 = 0xE1
    assert states == [0xB8, 0x5C, 0x2E, 0x17, 0xB3, 0xE1]


def test_lfsr_rejects_zero_seed():
    with pytest.raises(ValueError):
        Lfsr(16, 0)
    with pytest.raises(ValueError):
        Lfsr(8, 256)          # masked to 8 bits: zero


def test_directions_are_rademacher():
    fmt = Fixed(16, 10)
    lfsr, ref = Lfsr(32, 0x1234567), Lfsr(32, 0x1234567)
    v = directions(lfsr, 1000, fmt)
    bits = ref.bits(1000)
    assert v.tolist() == [fmt.one if b == 0 else -fmt.one for b in bits]
    assert abs(int((v > 0).sum()) - 500) < 80


# --------------------------------------------------------------------------------------
# The blocks against an independent Fraction implementation of ARITHMETIC.md section 5
# --------------------------------------------------------------------------------------

SMALL = default_config("icebreaker").replace(**{
    "hardware.board": "none", "model.layers": (64, 6, 10),
    "arith.act": Fixed(10, 5), "arith.err": Fixed(9, 6), "arith.weight": Fixed(9, 6),
    "arith.feedback": Fixed(9, 7), "arith.acc_width": 28, "arith.lr_shift": 3, "arith.alpha_shift": 2,
    "arith.exp_frac": 3, "arith.exp_range": 5, "arith.exp_bits": 8})


def rand_fmt(rng, fmt, n, spread=1.0):
    lo, hi = int(fmt.min * spread), int(fmt.max * spread)
    return [rng.randint(lo, hi) for _ in range(n)]


def frac_of(q, fmt):
    return Fraction(q, fmt.scale)


def to_code(x: Fraction, fmt: Fixed) -> int:
    return ref_sat(ref_round(x * fmt.scale), fmt)


@pytest.mark.parametrize("seed", range(20))
def test_layer_forward_matches_fraction_reference(seed):
    ar, rng = SMALL.arith, random.Random(seed)
    n_in, n_out = 7, 5
    W = [rand_fmt(rng, ar.weight, n_in) for _ in range(n_out)]
    b = rand_fmt(rng, ar.weight, n_out)
    y = rand_fmt(rng, ar.act, n_in, 0.3)
    d = rand_fmt(rng, ar.act, n_in, 0.3)
    v = [rng.choice([ar.act.one, -ar.act.one]) for _ in range(n_out)]
    for output in (False, True):
        a_, y_, t_, d_ = layer_forward(ar, t(W), t(b), t(y), t(d), None if output else t(v), output)
        for i in range(n_out):
            a_ref = to_code(sum(frac_of(W[i][j], ar.weight) * frac_of(y[j], ar.act) for j in range(n_in))
                            + frac_of(b[i], ar.weight), ar.act)
            t_ref = to_code(sum(frac_of(W[i][j], ar.weight) * frac_of(d[j], ar.act) for j in range(n_in)), ar.act)
            assert a_[i] == a_ref and t_[i] == t_ref
            if output:
                assert y_[i] == a_ref and d_[i] == t_ref
            else:
                assert y_[i] == max(a_ref, 0)
                assert d_[i] == ref_sat((t_ref if a_ref > 0 else 0) + v[i], ar.act)
    # layer 1: no tangent (d_0 = 0), d_1 = v_1
    a_, y_, t_, d_ = layer_forward(ar, t(W), t(b), t(y), None, t(v), False)
    assert t_.tolist() == [0] * n_out and d_.tolist() == v


@pytest.mark.parametrize("fb", [Fixed(9, 7), Fixed(8, 3)], ids=["left-shift", "right-shift"])
@pytest.mark.parametrize("seed", range(12))
def test_feedback_unit_matches_fraction_reference(seed, fb):
    """vd = v d_L aligned to the feedback format: a left shift (feedback.frac > act.frac)
    or a rounded right shift (feedback.frac < act.frac)."""
    ar, rng = SMALL.replace(**{"arith.feedback": fb}).arith, random.Random(seed)
    n, m = 6, 10
    B = [rand_fmt(rng, ar.feedback, m) for _ in range(n)]
    e = rand_fmt(rng, Fixed(ar.err.frac + 1, ar.err.frac), m)      # |e| <= 1
    dL = rand_fmt(rng, ar.act, m)
    v = [rng.choice([ar.act.one, -ar.act.one]) for _ in range(n)]
    g, B_new = feedback_unit(ar, t(B), t(e), t(v), t(dL))
    alpha = Fraction(1, 2 ** ar.alpha_shift)
    for i in range(n):
        g_ref = to_code(sum(frac_of(B[i][o], ar.feedback) * frac_of(e[o], ar.err) for o in range(m)), ar.err)
        assert g[i] == g_ref
        for o in range(m):
            vd = ref_round(Fraction((1 if v[i] > 0 else -1) * dL[o] * ar.feedback.scale, ar.act.scale))
            step = ref_round((vd - B[i][o]) * alpha)                         # eq. 17, in feedback LSBs
            assert B_new[i, o] == ref_sat(B[i][o] + step, ar.feedback)
    g2, B_same = feedback_unit(ar, t(B), t(e), t(v), t(dL), update=False)
    assert torch.equal(g2, g) and B_same.tolist() == B


@pytest.mark.parametrize("seed", range(20))
def test_weight_update_matches_fraction_reference(seed):
    ar, rng = SMALL.arith, random.Random(seed)
    n_out, n_in = 4, 9
    W = [rand_fmt(rng, ar.weight, n_in) for _ in range(n_out)]
    b = rand_fmt(rng, ar.weight, n_out)
    delta = rand_fmt(rng, ar.err, n_out)
    y = rand_fmt(rng, ar.act, n_in)
    W2, b2 = weight_update(ar, t(W), t(b), t(delta), t(y))
    eta = Fraction(1, 2 ** ar.lr_shift)
    for i in range(n_out):
        for j in range(n_in):
            dW = ref_round(eta * frac_of(delta[i], ar.err) * frac_of(y[j], ar.act) * ar.weight.scale)
            assert W2[i, j] == ref_sat(W[i][j] - dW, ar.weight)
        db = ref_round(eta * frac_of(delta[i], ar.err) * ar.weight.scale)
        assert b2[i] == ref_sat(b[i] - db, ar.weight)


def test_output_unit_matches_fraction_reference():
    ar, rng = SMALL.arith, random.Random(5)
    for _ in range(50):
        y = rand_fmt(rng, ar.act, 10, rng.choice([0.05, 0.3, 1.0]))
        label = rng.randrange(10)
        p, e = output_unit(ar, t(y), label)
        m = max(y)
        E = []
        for yo in y:
            k = ref_round(Fraction(m - yo, 2 ** (ar.act.frac - ar.exp_frac)))
            E.append(round(math.exp(-k / 2 ** ar.exp_frac) * 2 ** ar.exp_bits) if k < ar.exp_entries else 0)
        S = sum(E)
        r = 2 ** (ar.exp_bits + ar.err.frac) // S
        p_ref = [ref_round(Fraction(Eo * r, 2 ** ar.exp_bits)) for Eo in E]
        assert p.tolist() == p_ref
        assert e.tolist() == [po - (ar.err.one if o == label else 0) for o, po in enumerate(p_ref)]
        assert output_unit(ar, t(y), None)[1] is None


def test_exp_table():
    ar = default_config("icebreaker").arith
    T = exp_table(ar)
    assert T.shape == (ar.exp_entries,)
    assert T[0] == 2 ** ar.exp_bits and bool((T[1:] <= T[:-1]).all()) and int(T.min()) >= 0
    assert int(T.max()).bit_length() == ar.exp_bits + 1


# --------------------------------------------------------------------------------------
# The softmax against float softmax (ARITHMETIC.md section 5.3)
# --------------------------------------------------------------------------------------

SOFTMAX_CONFIGS = {
    "icebreaker": default_config("icebreaker"),
    "ulx3s-85f": default_config("ulx3s-85f"),
    "coarse": default_config("icebreaker").replace(**{"arith.exp_frac": 2, "arith.exp_range": 6,
                                                      "arith.exp_bits": 8}),
}


@pytest.mark.parametrize("name", SOFTMAX_CONFIGS)
def test_softmax_within_stated_bound(name):
    cfg: Config = SOFTMAX_CONFIGS[name]
    ar = cfg.arith
    bound = softmax_error_bound(cfg)
    g = torch.Generator().manual_seed(1)
    worst = 0.0
    for spread in (0.05, 0.5, 2.0, 6.0, 15.0):
        for _ in range(300):
            z = (torch.randn(10, generator=g, dtype=torch.float64) * spread).clamp(-30, 30)
            y = quantize(z, ar.act)
            p, _ = output_unit(ar, y, None)
            q = torch.softmax(y.double() / ar.act.scale, 0)
            worst = max(worst, float((p.double() / ar.err.scale - q).abs().max()))
    assert worst <= bound
    assert worst >= bound / 8, f"bound {bound:.2e} is loose: worst seen {worst:.2e}"
    if name != "coarse":
        assert bound < 0.01


def test_softmax_edge_cases():
    ar = default_config("icebreaker").arith
    one = ar.err.one
    p, e = output_unit(ar, t([0] * 10), 3)                       # all equal: 1/10 each
    assert p.tolist() == [round(one / 10)] * 10 or all(abs(x - one / 10) <= 1 for x in p.tolist())
    assert e[3] == p[3] - one
    y = t([0] * 10)
    y[7] = ar.act.max                                            # one dominant: p = onehot exactly
    p, e = output_unit(ar, y, 7)
    assert p.tolist() == [0] * 7 + [one] + [0] * 2 and e.tolist() == [0] * 10
    p, _ = output_unit(ar, t([ar.act.min] * 9 + [ar.act.max]), None)   # beyond the table: E = 0
    assert p.tolist() == [0] * 9 + [one]
