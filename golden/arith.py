"""The arithmetic contract in code (``docs/ARITHMETIC.md``), one function per hardware block.

Every function here works on int64 tensors that hold the stored integers of the
fixed-point formats of :class:`ddfa.config.ArithConfig`, and every hardware block in
``hdl/`` computes exactly what its function here computes (:func:`backward_unit`, the
backpropagation rule, has no hardware block: the processor runs DDFA and DFA). The
fixed-point golden model (:mod:`golden.fixed`) is these functions run in the order of
one training step.

Names follow the paper: a (pre-activations), y (activations), t (tangents), d
(directional derivatives), v (directions), e (output error), g (projected error),
B (feedback matrix), delta (the error a layer's update uses), W and b. Backpropagation
(``model.algorithm = "bp"``) replaces the feedback units by :func:`backward_unit`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from ddfa.config import LFSR_TAPS, ArithConfig, Fixed

__all__ = [
    "saturate", "round_shift", "round_shift_stochastic", "narrow", "quantize",
    "Lfsr", "lfsr_mask", "directions",
    "layer_forward", "exp_table", "output_unit", "feedback_unit", "backward_unit",
    "weight_update",
]

I64 = torch.int64


# --------------------------------------------------------------------------------------
# Primitives: saturation and rounding (ARITHMETIC.md section 2)
# --------------------------------------------------------------------------------------

def saturate(x: torch.Tensor, fmt: Fixed) -> torch.Tensor:
    """Clamp to the range of ``fmt`` (never wrap around)."""
    return x.clamp(fmt.min, fmt.max)


def round_shift(x: torch.Tensor, s: int) -> torch.Tensor:
    """``x / 2**s`` rounded to the nearest integer, ties to even; ``s < 0`` shifts left.

    In hardware: ``q = x >>> s`` (arithmetic), ``r = x[s-1:0]``; add one when
    ``r > half`` or (``r == half`` and ``q`` is odd), with ``half = 1 << (s-1)``.
    """
    if s <= 0:
        return x << (-s)
    q = x >> s
    # r > half, or r == half and q odd  <=>  r + q[0] > half   (r, half integers)
    return q + (((x & ((1 << s) - 1)) + (q & 1)) > (1 << (s - 1)))


def round_shift_stochastic(x: torch.Tensor, s: int, r: torch.Tensor) -> torch.Tensor:
    """``floor((x + (r mod 2**s)) / 2**s)``: rounds up with probability equal to the
    discarded fraction when ``r`` is uniform. ``s <= 0`` is exact (a left shift)."""
    if s <= 0:
        return x << (-s)
    return (x + (r & ((1 << s) - 1))) >> s


def narrow(x: torch.Tensor, s: int, fmt: Fixed) -> torch.Tensor:
    """Every narrowing of the datapath: round (nearest-even) by ``s`` bits, then saturate."""
    return saturate(round_shift(x, s), fmt)


def quantize(x: torch.Tensor, fmt: Fixed) -> torch.Tensor:
    """A float tensor to the stored integers of ``fmt``: nearest, ties to even, saturated.
    Used for the inputs and the initial parameters (on the host, not in hardware)."""
    return saturate(torch.round(x.double() * fmt.scale).to(I64), fmt)


# --------------------------------------------------------------------------------------
# Direction generators (ARITHMETIC.md section 4)
# --------------------------------------------------------------------------------------

def lfsr_mask(width: int) -> int:
    """Galois feedback mask of the maximal-length LFSR of ``width`` bits: bit ``t-1`` set
    for each tap ``t`` of :data:`ddfa.config.LFSR_TAPS`."""
    return sum(1 << (t - 1) for t in LFSR_TAPS[width])


class Lfsr:
    """A right-shifting Galois LFSR: each step outputs the low bit, shifts right, and
    XORs the mask in when that bit was 1. The state is never zero.

    The hardware direction generator (``hdl/direction.py``) is this, one step a cycle.
    """

    def __init__(self, width: int, seed: int):
        self.width = width
        self.mask = lfsr_mask(width)
        self.state = seed & ((1 << width) - 1)
        if self.state == 0:
            raise ValueError("an LFSR seed must not be zero")

    def step(self) -> int:
        bit = self.state & 1
        self.state >>= 1
        if bit:
            self.state ^= self.mask
        return bit

    def bits(self, n: int) -> list[int]:
        return [self.step() for _ in range(n)]


def directions(lfsr: Lfsr, n: int, fmt: Fixed) -> torch.Tensor:
    """Rademacher directions v (brief, section 1): ``n`` LFSR bits, neuron 0 first;
    bit 0 -> +1.0, bit 1 -> -1.0, in format ``fmt`` (the activations')."""
    b = torch.tensor(lfsr.bits(n), dtype=I64)
    return (1 - 2 * b) * fmt.one


# --------------------------------------------------------------------------------------
# The blocks of one training step (ARITHMETIC.md section 5)
# --------------------------------------------------------------------------------------

def layer_forward(ar: ArithConfig, W: torch.Tensor, b: torch.Tensor, y_prev: torch.Tensor,
                  d_prev: torch.Tensor | None, v: torch.Tensor | None, output: bool, tangent: bool = True):
    """Layer engine: eq. 1 (primal) and eq. 12 (tangent) for one layer.

    Parameters
    ----------
    W, b : weights (n_out, n_in) and biases (n_out,), weight format.
    y_prev : activations of the layer below (act format); the input x for layer 1.
    d_prev : directional derivatives of the layer below, or None for layer 1 (d_0 = 0,
        so t_1 = 0 and no tangent MACs are done).
    v : directions of this layer (act format); None for the output layer.
    output : the output layer is linear (y_L = a_L, d_L = t_L).
    tangent : False for backpropagation, which has no tangent path: eq. 1 only
        (``d_prev`` and ``v`` are ignored).

    Returns
    -------
    a, y, t, d : act format. ``t`` is zero for layer 1; ``t`` and ``d`` are None
        without ``tangent``.
    """
    s = ar.weight.frac                       # product frac (w + act) back to act
    acc_a = W @ y_prev + (b << ar.act.frac)  # eq. 1: a = W y + b
    a = narrow(acc_a, s, ar.act)
    if not tangent:
        return a, (a if output else a.clamp(min=0)), None, None
    if d_prev is None:
        t = torch.zeros_like(a)
    else:
        t = narrow(W @ d_prev, s, ar.act)    # eq. 12, first term: t = W d
    if output:
        return a, a, t, t                    # y_L = a_L, d_L = t_L
    y = a.clamp(min=0)                       # relu
    relu_d = a > 0                           # relu'(a), strict
    d = saturate(torch.where(relu_d, t, torch.zeros_like(t)) + v, ar.act)   # eq. 12
    return a, y, t, d


@lru_cache(maxsize=None)
def _exp_table(exp_frac: int, exp_range: int, exp_bits: int) -> tuple[int, ...]:
    n = exp_range << exp_frac
    return tuple(round(math.exp(-k / (1 << exp_frac)) * (1 << exp_bits)) for k in range(n))


@lru_cache(maxsize=None)
def _exp_table_tensor(exp_frac: int, exp_range: int, exp_bits: int) -> torch.Tensor:
    return torch.tensor(_exp_table(exp_frac, exp_range, exp_bits), dtype=I64)


def exp_table(ar: ArithConfig) -> torch.Tensor:
    """Softmax ROM: entry k = round(2**exp_bits * exp(-k / 2**exp_frac)), k < exp_entries.
    Entry 0 is exactly 2**exp_bits; all are unsigned, exp_bits + 1 bits wide.
    (One cached tensor per table: read it, never modify it.)"""
    return _exp_table_tensor(ar.exp_frac, ar.exp_range, ar.exp_bits)


def output_unit(ar: ArithConfig, y_L: torch.Tensor, label: int | None):
    """Output/error unit: fixed-point softmax and e = p - onehot (the loss gradient of
    softmax cross-entropy, which is dL/dy_L in eq. 3).

    1. ``z_o = y_o - max(y)`` (<= 0, exact).
    2. ``k_o = round_shift(-z_o, act.frac - exp_frac)``; ``E_o = table[k_o]`` or 0 when
       ``k_o >= exp_entries``.
    3. ``S = sum E_o`` (>= 2**exp_bits, since the maximum has E = 2**exp_bits).
    4. ``r = floor(2**(exp_bits + err.frac) / S)`` (one division, <= 2**err.frac).
    5. ``p_o = round_shift(E_o * r, exp_bits)`` (err format, <= 1.0).
    6. ``e_o = p_o - (err.one if o == label else 0)``.

    Returns ``p, e`` (``e`` is None without a label).
    """
    z = y_L - y_L.max()
    k = round_shift(-z, ar.act.frac - ar.exp_frac)
    table = exp_table(ar)
    E = torch.where(k < ar.exp_entries, table[k.clamp(max=ar.exp_entries - 1)], torch.zeros_like(k))
    S = int(E.sum())
    r = (1 << (ar.exp_bits + ar.err.frac)) // S
    p = round_shift(E * r, ar.exp_bits)
    if label is None:
        return p, None
    onehot = torch.zeros_like(p)
    onehot[label] = ar.err.one
    return p, p - onehot


def feedback_unit(ar: ArithConfig, B: torch.Tensor, e: torch.Tensor, v: torch.Tensor,
                  d_L: torch.Tensor, update: bool = True, rand_B: torch.Tensor | None = None):
    """Feedback-matrix memory and its in-place moving-average update.

    One read of each word ``B_io`` serves both sums:

    * ``g_i = narrow(sum_o B_io e_o, feedback.frac, err)``           (eq. 6: g = B e,
      with the B of before this step's update)
    * ``B_io <- sat(B_io + round_shift(vd_io - B_io, alpha_shift))``  (eq. 17)

    where ``vd_io = v_i d_o`` aligned to the feedback format: ``v_i = +-1`` makes it a
    sign flip of ``d_o`` (no multiplier), then a shift by ``feedback.frac - act.frac``
    (rounded when negative). The differences are formed one bit wider than either
    operand, so nothing wraps before the final saturation.

    Returns ``g`` (err format) and the updated ``B`` (unchanged when ``update`` is False,
    as for random DFA). With ``arith.rounding = "stochastic"`` (golden model only) the
    caller passes the random words ``rand_B`` (``n_l x n_L``, section 4.2) and the
    shift by ``alpha_shift`` rounds stochastically.
    """
    g = narrow(B @ e, ar.feedback.frac, ar.err)
    if not update:
        return g, B
    sign = torch.where(v < 0, -1, 1).to(I64)
    vd = round_shift(sign[:, None] * d_L[None, :], ar.act.frac - ar.feedback.frac)
    if rand_B is None:
        step = round_shift(vd - B, ar.alpha_shift)
    else:
        step = round_shift_stochastic(vd - B, ar.alpha_shift, rand_B)
    B_new = saturate(B + step, ar.feedback)                              # eq. 17
    return g, B_new


def backward_unit(ar: ArithConfig, W_next: torch.Tensor, delta_next: torch.Tensor, a: torch.Tensor):
    """Backpropagation through one layer (eq. 5, the chain rule), for ``model.algorithm
    = "bp"``: the error of hidden layer ``l`` from the layer above it.

    * ``g_l = narrow(W_{l+1}^T delta_{l+1}, weight.frac, err)``: the sum of products of
      the weight and err formats (``weight.frac + err.frac`` fractional bits), rounded
      once by ``weight.frac`` bits (nearest, ties to even) and saturated to err;
    * ``delta_l = relu'(a_l) * g_l`` with ``relu'(a) = [a > 0]``.

    Parameters
    ----------
    W_next : ``W_{l+1}`` (``n_{l+1} x n_l``, weight format) as it was **before** this
        step's update.
    delta_next : ``delta_{l+1}`` (err format); ``e`` for ``l + 1 = L``.
    a : ``a_l`` (act format), this layer's pre-activations of the forward pass.

    Returns
    -------
    g, delta : err format.
    """
    g = narrow(W_next.T @ delta_next, ar.weight.frac, ar.err)           # W^T delta
    delta = torch.where(a > 0, g, torch.zeros_like(g))                  # * relu'(a)
    return g, delta


def weight_update(ar: ArithConfig, W: torch.Tensor, b: torch.Tensor, delta: torch.Tensor,
                  y_prev: torch.Tensor, rand_W: torch.Tensor | None = None,
                  rand_b: torch.Tensor | None = None):
    """W <- W - eta delta y^T, b <- b - eta delta (eqs. 2-4), eta = 2**-lr_shift.

    Each update term is rounded to the weight format on its own, then subtracted and
    the result saturated. Nearest-even by default; with ``arith.rounding =
    "stochastic"`` the caller passes the random words ``rand_W``/``rand_b``.
    """
    s_W, s_b = ar.weight_update_shift, ar.bias_update_shift
    prod = delta[:, None] * y_prev[None, :]
    if rand_W is None:
        dW, db = round_shift(prod, s_W), round_shift(delta, s_b)
    else:
        dW, db = round_shift_stochastic(prod, s_W, rand_W), round_shift_stochastic(delta, s_b, rand_b)
    return saturate(W - dW, ar.weight), saturate(b - db, ar.weight)
