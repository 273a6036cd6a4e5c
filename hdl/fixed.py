"""Fixed-point arithmetic as Amaranth expressions (``docs/ARITHMETIC.md``, section 2).

Every function here builds a combinational expression that computes exactly what the
function of the same name in :mod:`golden.arith` computes on the stored integers: the
tests (``tests/test_hdl_fixed.py``) simulate them over every input of small widths and
compare bit for bit. Widths and shifts are Python integers taken from the configuration
(``cfg.arith``); nothing here chooses a width on its own.

A value's shape says how its bits are read: a ``signed`` value is a two's-complement
integer, an ``unsigned`` one is non-negative. The functions keep that meaning, so an
unsigned value is never mistaken for a negative one.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Shape, Signal, Value, signed, unsigned

from ddfa.config import Fixed

__all__ = ["fixed_shape", "extend", "round_parts", "round_shift", "saturate", "narrow", "fixed_const", "wire"]


def fixed_shape(fmt: Fixed) -> Shape:
    """The shape of a stored word of ``fmt``: ``signed(fmt.width)``."""
    return signed(fmt.width)


def fixed_const(value: int, fmt: Fixed) -> Const:
    """The stored integer ``value`` of ``fmt`` as a constant of :func:`fixed_shape`.

    Raises :class:`ValueError` when ``value`` does not fit ``fmt``.
    """
    if not fmt.min <= value <= fmt.max:
        raise ValueError(f"{value} does not fit {fmt}")
    return Const(value, fixed_shape(fmt))


def extend(value, width: int) -> Value:
    """``value`` widened to at least ``width`` bits with its meaning kept: sign-extended
    when it is signed, zero-extended when it is not. A value already as wide is returned
    unchanged."""
    value = Value.cast(value)
    w = len(value)
    if w >= width:
        return value
    if value.shape().signed:
        return Cat(value, value[-1].replicate(width - w)).as_signed()
    return Cat(value, Const(0, width - w))


def round_shift(value, s: int) -> Value:
    """``value / 2**s`` rounded to the nearest integer, ties to even.

    Parameters
    ----------
    value : value-like
        The integer to shift (its signedness is kept).
    s : int
        Bits to drop. ``s <= 0`` is an exact left shift by ``-s`` bits.

    Returns
    -------
    Value
        ``q + inc`` with ``q = value >> s`` (arithmetic for signed values) and ``inc`` set
        when the dropped bits ``r`` exceed half, or equal half and ``q`` is odd: that is
        ``r[s-1] & (r[s-2:0] != 0 | q[0])``. One bit wider than ``q``, so it never wraps.
    """
    value = Value.cast(value)
    if s <= 0:
        return value << (-s)
    q, inc = round_parts(value, s)
    return q + inc


def round_parts(value, s: int) -> tuple[Value, Value]:
    """:func:`round_shift`'s two parts for ``s >= 1``: ``(q, inc)``, ``q = value >> s``
    and the 1-bit rounding increment, so that a caller can add ``inc`` as the carry-in of
    an adder it needs anyway (``round_shift(value, s) + x == q + x + inc``: one carry
    chain, not two)."""
    if s < 1:
        raise ValueError(f"round_parts needs a right shift of at least 1 bit, not {s}")
    # The dropped bits of a negative value are its low bits of x mod 2**s: widen so that
    # the sign reaches every dropped position and q keeps at least a sign bit.
    value = extend(Value.cast(value), s + 1)
    q = value >> s
    half = value[s - 1]
    rest = value[:s - 1].any() if s > 1 else Const(0, 1)
    return q, half & (rest | q[0])


def saturate(value, fmt: Fixed) -> Value:
    """``value`` clamped to ``[fmt.min, fmt.max]`` (never wraps), as ``signed(fmt.width)``.

    The value fits when the bits from ``fmt.width - 1`` up are all equal (signed) or all
    zero (unsigned); otherwise the result is the bound on the value's side.
    """
    value = Value.cast(value)
    w = fmt.width
    shape = value.shape()
    if len(value) < w or (shape.signed and len(value) == w):
        return extend(value, w).as_signed()       # always fits
    hi = value[w - 1:]
    vmax = Const(fmt.max, unsigned(w))
    vmin = Const(fmt.min & ((1 << w) - 1), unsigned(w))
    if shape.signed:
        fits = ~hi.any() | hi.all()
        return Mux(fits, value[:w], Mux(value[-1], vmin, vmax)).as_signed()
    return Mux(hi.any(), vmax, value[:w]).as_signed()


def narrow(value, s: int, fmt: Fixed) -> Value:
    """Every narrowing of the datapath: :func:`round_shift` by ``s``, then
    :func:`saturate` to ``fmt``.

    For a signed value and ``s > 0`` the circuit is arranged for speed (the result is
    the same): with ``q = value >> s`` and the rounding increment ``inc``, whether
    ``q + inc`` fits ``fmt`` is decided from the bits of ``q`` and ``inc`` alone (``q``
    fits and is not ``fmt.max`` with ``inc``, or ``q`` is ``fmt.min - 1`` with ``inc``),
    so only the low ``fmt.width`` bits of ``q + inc`` need an adder, and the overflow
    test does not wait for its carry chain.
    """
    value = Value.cast(value)
    if s <= 0 or not value.shape().signed:
        return saturate(round_shift(value, s), fmt)
    value = extend(value, s + 1)
    q = value[s:].as_signed()
    w = fmt.width
    half = value[s - 1]
    rest = value[:s - 1].any() if s > 1 else Const(0, 1)
    inc = half & (rest | q[0])
    if len(q) < w:                                # q + inc always fits
        return extend(q + inc, w).as_signed()
    low = q[:w]
    hi = q[w - 1:]                                # all equal <=> q fits
    fits_q = ~hi.any() | hi.all()
    at_max = ~hi.any() & low[:w - 1].all()        # q == fmt.max
    if len(hi) >= 2:
        below_min = hi[1:].all() & ~hi[0] & low[:w - 1].all()    # q == fmt.min - 1
    else:
        below_min = Const(0, 1)
    fits = Mux(inc, (fits_q & ~at_max) | below_min, fits_q)
    r = (low + inc)[:w]
    vmax = Const(fmt.max, unsigned(w))
    vmin = Const(fmt.min & ((1 << w) - 1), unsigned(w))
    return Mux(fits, r, Mux(q[-1], vmin, vmax)).as_signed()


def wire(m, expr, name: str) -> Signal:
    """A combinational :class:`Signal` of ``expr``'s shape, driven by ``expr`` in module
    ``m``. The functions above reuse their argument several times; naming an
    intermediate result keeps the generated Verilog (and the simulation) from repeating
    the expression behind it."""
    expr = Value.cast(expr)
    sig = Signal(expr.shape(), name=name)
    m.d.comb += sig.eq(expr)
    return sig
