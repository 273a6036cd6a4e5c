"""The clock/reset block of a board top.

:class:`BoardClock` makes the ``sync`` domain of a board top: the board's oscillator,
through the PLL when the target clock differs from it, with a reset held until the PLL
has locked and then for a further 20 us (iCE40 block RAM reads as zero for about 3 us
after configuration).

The PLL settings for the target clock come from :func:`ice40_pll` and :func:`ecp5_pll`
(:mod:`ddfa.config.pll`, where validation uses them too, re-exported here). They search
the divider settings the same way the project IceStorm / Trellis tools do (``icepll``,
``ecppll``), within the family's PLL limits in the board database
(``ddfa.config.FAMILIES``), so their results agree with those tools
(``tests/test_boards.py`` holds the tools' answers). The achieved frequency is rarely
the requested one exactly (within 2 %, else :class:`PLLError`); the board top uses the
achieved one for the UART divisor, and nextpnr derives the timing constraint from the
PLL's settings, so timing is checked at the frequency actually made.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from ddfa.config.pll import ECP5PLL, ICE40PLL, PLLError, ecp5_pll, ice40_pll

__all__ = ["PLLError", "ICE40PLL", "ECP5PLL", "ice40_pll", "ecp5_pll", "BoardClock"]


class BoardClock(Elaboratable):
    """Drives the ``sync`` domain of a board top at (close to) ``f_target_hz``. The top
    defines the domain (``m.domains.sync = ClockDomain("sync")``); this block drives its
    clock and reset.

    Parameters
    ----------
    f_target_hz : float
        The configuration's clock, ``cfg.clock_mhz * 1e6``.

    Attributes
    ----------
    f_sync_hz : float
        The frequency actually made (known once :meth:`plan` has seen the platform).
    """

    POR_US = 20

    def __init__(self, f_target_hz: float):
        self.f_target_hz = float(f_target_hz)
        self.f_sync_hz: float | None = None
        self.pll: ICE40PLL | ECP5PLL | None = None

    def plan(self, platform) -> float:
        """Choose the PLL for ``platform``'s oscillator; returns the sync frequency."""
        f_in = platform.default_clk_frequency
        family = getattr(platform, "family", "ice40")
        if abs(f_in - self.f_target_hz) <= 1e-6 * self.f_target_hz:
            self.pll = None
            self.f_sync_hz = f_in
        elif family == "ecp5":
            self.pll = ecp5_pll(f_in, self.f_target_hz)
            self.f_sync_hz = self.pll.f_out
        else:
            self.pll = ice40_pll(f_in, self.f_target_hz)
            self.f_sync_hz = self.pll.f_out
        return self.f_sync_hz

    def elaborate(self, platform):
        if self.f_sync_hz is None:
            self.plan(platform)
        m = Module()
        clk = Signal()
        m.d.comb += ClockSignal("sync").eq(clk)
        locked = Signal()
        family = getattr(platform, "family", "ice40")
        hfosc = platform.default_clk == "SB_HFOSC"

        if self.pll is None:
            if hfosc:
                clk_i = Signal()
                m.submodules.hfosc = Instance("SB_HFOSC", i_CLKHFEN=1, i_CLKHFPU=1,
                                              p_CLKHF_DIV=f"0b{platform.hfosc_div:02b}", o_CLKHF=clk_i)
            else:
                pin = platform.request(platform.default_clk, dir="-")
                m.submodules.clk_buf = buf = io.Buffer("i", pin)
                clk_i = buf.i
            m.d.comb += [clk.eq(clk_i), locked.eq(1)]
        elif family == "ecp5":
            p = self.pll
            pin = platform.request(platform.default_clk, dir="-")
            m.submodules.clk_buf = buf = io.Buffer("i", pin)
            clkop = Signal()
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{p.f_in / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{p.f_out / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=p.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p.clkop_div,
                p_CLKOP_CPHASE=p.clkop_cphase, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p.clkfb_div,
                i_RST=0, i_STDBY=0, i_CLKI=buf.i, o_CLKOP=clkop, i_CLKFB=clkop,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
            )
            m.d.comb += clk.eq(clkop)
        else:
            p = self.pll
            common = dict(
                p_FEEDBACK_PATH="SIMPLE", p_DIVR=p.divr, p_DIVF=p.divf, p_DIVQ=p.divq,
                p_FILTER_RANGE=p.filter_range, i_RESETB=1, i_BYPASS=0, o_LOCK=locked,
                o_PLLOUTGLOBAL=clk,
            )
            if hfosc:
                osc = Signal()
                m.submodules.hfosc = Instance("SB_HFOSC", i_CLKHFEN=1, i_CLKHFPU=1,
                                              p_CLKHF_DIV=f"0b{platform.hfosc_div:02b}", o_CLKHF=osc)
                m.submodules.pll = Instance("SB_PLL40_CORE", i_REFERENCECLK=osc, **common)
            else:
                # the board's oscillator pin is the PLL's pad (iCEBreaker: pin 35)
                pin = platform.request(platform.default_clk, dir="-")
                m.submodules.pll = Instance("SB_PLL40_PAD", i_PACKAGEPIN=pin.io, **common)

        # Reset: asynchronously asserted while the PLL is unlocked, released in step with
        # the clock, then held for POR_US more.
        m.domains.por = cd_por = ClockDomain("por", local=True)
        m.d.comb += cd_por.clk.eq(clk)
        m.submodules.por_sync = ResetSynchronizer(~locked, domain="por")
        delay = max(1, int(self.POR_US * 1e-6 * self.f_sync_hz))
        timer = Signal(range(delay + 1))
        with m.If(timer != delay):
            m.d.por += timer.eq(timer + 1)
        # The reset itself comes from a register: it reaches every register of the design
        # (through their enable logic too), so no comparator sits in front of that net.
        rst = Signal(init=1)
        m.d.por += rst.eq(timer != delay)
        m.d.comb += ResetSignal("sync").eq(rst)
        # No explicit constraint on the sync clock: nextpnr derives the PLL's output
        # frequency from the oscillator's (the platform constrains the oscillator pin).
        return m
