"""The PLL divider search of each family, within its limits (:class:`PLLLimits` of
:data:`FAMILIES`).

:func:`ice40_pll` and :func:`ecp5_pll` search the divider settings the same way the
project IceStorm / Trellis tools do (``icepll``, ``ecppll``), so their results agree with
those tools (``tests/test_boards.py`` holds the tools' answers). The achieved frequency
is rarely the requested one exactly: within ``tolerance`` (2 %), else :class:`PLLError`.
:func:`pll_for` picks the search of a board's family; validation uses it to refuse a
``hardware.clock_mhz`` that the board cannot make, and ``boards/pll.py`` to build the
clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from .boards import FAMILIES, Board

__all__ = ["PLLError", "ICE40PLL", "ECP5PLL", "ice40_pll", "ecp5_pll", "pll_for", "made_clock_hz", "board_makes_clock"]


class PLLError(ValueError):
    """No PLL setting reaches the requested frequency within tolerance."""


@dataclass(frozen=True)
class ICE40PLL:
    """``SB_PLL40_*`` in SIMPLE feedback: ``f_out = f_in * (DIVF+1) / ((DIVR+1) * 2**DIVQ)``."""

    f_in: float
    f_out: float
    divr: int
    divf: int
    divq: int
    filter_range: int

    @property
    def f_pfd(self) -> float:
        return self.f_in / (self.divr + 1)

    @property
    def f_vco(self) -> float:
        return self.f_pfd * (self.divf + 1)


@dataclass(frozen=True)
class ECP5PLL:
    """``EHXPLLL`` with CLKOP feedback: ``f_out = f_in / CLKI_DIV * CLKFB_DIV``,
    ``f_vco = f_out * CLKOP_DIV``."""

    f_in: float
    f_out: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_vco(self) -> float:
        return self.f_out * self.clkop_div

    @property
    def clkop_cphase(self) -> int:
        return (self.clkop_div - 1) // 2       # what ecppll writes for 0 degrees


def _mhz(f_hz: float) -> Fraction:
    return Fraction(round(f_hz)) / 1_000_000


def ice40_pll(f_in_hz: float, f_out_hz: float, tolerance: float = 0.02) -> ICE40PLL:
    """The ``icepll`` search (SIMPLE feedback) within the family's PLL limits
    (``ddfa.config.FAMILIES["ice40"].pll``: PFD 10..133 MHz, VCO 533..1066 MHz, output
    16..275 MHz); the closest output frequency wins, the first found on a tie."""
    lim = FAMILIES["ice40"].pll
    (pfd_lo, pfd_hi), (vco_lo, vco_hi), (out_lo, out_hi) = (
        map(Fraction, r) for r in (lim.pfd_mhz, lim.vco_mhz, lim.out_mhz))
    f_in, want = _mhz(f_in_hz), _mhz(f_out_hz)
    best = None
    for divr in range(16):
        pfd = f_in / (divr + 1)
        if not pfd_lo <= pfd <= pfd_hi:
            continue
        for divf in range(128):
            vco = pfd * (divf + 1)
            if not vco_lo <= vco <= vco_hi:
                continue
            for divq in range(1, 7):
                out = vco / (1 << divq)
                if not out_lo <= out <= out_hi:
                    continue
                err = abs(out - want)
                if best is None or err < best[0]:
                    best = (err, divr, divf, divq, out, pfd)
    if best is None or best[0] > want * Fraction(tolerance):
        raise PLLError(f"an iCE40 PLL cannot make {float(want):g} MHz from {float(f_in):g} MHz "
                       f"(outputs {float(out_lo):g}..{float(out_hi):g} MHz); choose another hardware.clock_mhz")
    _, divr, divf, divq, out, pfd = best
    filter_range = 1 if pfd < 17 else 2 if pfd < 26 else 3 if pfd < 44 else 4 if pfd < 66 else 5 if pfd < 101 else 6
    return ICE40PLL(float(f_in) * 1e6, float(out) * 1e6, divr, divf, divq, filter_range)


def ecp5_pll(f_in_hz: float, f_out_hz: float, tolerance: float = 0.02) -> ECP5PLL:
    """The ``ecppll`` search within the family's PLL limits
    (``ddfa.config.FAMILIES["ecp5"].pll``: PFD 3.125..400 MHz, VCO 400..800 MHz); the
    closest output wins, then the VCO closest to 600 MHz."""
    lim = FAMILIES["ecp5"].pll
    (pfd_lo, pfd_hi), (vco_lo, vco_hi) = (map(Fraction, r) for r in (lim.pfd_mhz, lim.vco_mhz))
    f_in, want = _mhz(f_in_hz), _mhz(f_out_hz)
    best = None
    for clki in range(1, 129):
        pfd = f_in / clki
        if not pfd_lo <= pfd <= pfd_hi:
            continue
        for fb in range(1, 81):
            out = pfd * fb
            if out > vco_hi:
                break
            for op in range(1, 129):
                vco = out * op
                if vco < vco_lo:
                    continue
                if vco > vco_hi:
                    break
                err = abs(out - want)
                if best is None or err < best[0] or (err == best[0] and abs(vco - 600) < abs(best[4] - 600)):
                    best = (err, clki, fb, op, vco, out)
    if best is None or best[0] > want * Fraction(tolerance):
        raise PLLError(f"an ECP5 PLL cannot make {float(want):g} MHz from {float(f_in):g} MHz; "
                       f"choose another hardware.clock_mhz")
    _, clki, fb, op, _, out = best
    return ECP5PLL(float(f_in) * 1e6, float(out) * 1e6, clki, fb, op)


def pll_for(family: str, f_in_hz: float, f_out_hz: float) -> ICE40PLL | ECP5PLL:
    """The PLL setting of ``family`` (``"ice40"`` or ``"ecp5"``) that makes ``f_out_hz``
    from ``f_in_hz`` (:class:`PLLError` where none is within 2 %)."""
    return {"ice40": ice40_pll, "ecp5": ecp5_pll}[family](f_in_hz, f_out_hz)


def made_clock_hz(board: Board, mhz: float) -> float:
    """The clock ``board`` runs at for ``hardware.clock_mhz = mhz``: its oscillator when
    that is the clock asked for, else what its PLL makes (:func:`pll_for`)."""
    if mhz == board.osc_mhz:
        return board.osc_mhz * 1e6
    return pll_for(board.family, board.osc_mhz * 1e6, mhz * 1e6).f_out


@lru_cache(maxsize=256)
def board_makes_clock(board: Board, mhz: float) -> bool:
    """``mhz`` is ``board``'s oscillator (no PLL), or its PLL makes it within 2 %."""
    if mhz == board.osc_mhz:
        return True
    lo, hi = board.clock_range_mhz
    if not lo <= mhz <= hi:
        return False
    try:
        pll_for(board.family, board.osc_mhz * 1e6, mhz * 1e6)
    except PLLError:
        return False
    return True
