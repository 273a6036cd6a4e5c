"""The ULX3S's SDRAM: the datasheet figures its controller (``hdl.sdram``) and its
behavioural model (``sim.sdram_model``) are built from.

The ULX3S carries a 256 Mbit single-data-rate SDRAM of the ISSI IS42S16160 class (16M x 16:
4 banks of 8,192 rows of 512 columns of 16 bits; pin-compatible 16M x 16 parts of the same
speed grade have the same figures). The figures are the -7 speed grade's (143 MHz at CAS
latency 3); where the sources differ, the slower figure is taken. Sources:

* [LD] LiteDRAM, ``litedram/modules.py``, class ``IS42S16160`` (the module LiteX's ULX3S
  target uses): tRP = tRCD = tWR = 20 ns, tRFC = 70 ns, tREFI = 64 ms / 8192, tCCD = 1.
* [SP] SpinalHDL, ``IS42S16160B.timingGrade7``: tPOW = 200 us, tRC = 60 ns, tRFC = 60 ns,
  tRAS = 42 ns, tRP = tRCD = 18 ns, tMRD = 2 clocks, 8 refreshes at power-up.
* [DS] The ISSI IS42S83200B/IS42S16160B datasheet (features, key timing parameters):
  8K refresh cycles every 64 ms; CAS latency 2 or 3; a clock period of at least 10 ns at
  CAS latency 2 (7 ns at 3, -7 grade); burst lengths 1, 2, 4, 8 and full page.
* [AS] The 16M x 16 second source's -7 table (Alliance AS4C16M16SA, table 16): tRC = 63 ns,
  tRRD = 14 ns, tMRD = 14 ns, tRAS = 42 ns .. 120 us.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import ceil, floor

__all__ = ["SdramChip", "SdramTiming", "ULX3S_SDRAM"]


def _cycles(t_ns: float, clk_hz: float) -> Fraction:
    return Fraction(str(t_ns)) * Fraction(str(clk_hz)) / 10**9


@dataclass(frozen=True)
class SdramTiming:
    """An :class:`SdramChip`'s figures in clock cycles at one clock.

    Minimum times are rounded up, maximum times (``ras_max``, ``refi``) down. A time ``t``
    between two commands means the second may come ``t`` cycles after the first at the
    earliest (or, for the maxima, at the latest).

    Members
    -------
    rp, rcd, wr, rfc, ras, rc, rrd, mrd : int
        tRP, tRCD, tWR (last write data to PRECHARGE), tRFC, tRAS, tRC, tRRD, tMRD.
    ras_max : int
        The longest a row may stay open (ACTIVE to PRECHARGE).
    refi : int
        The longest gap between two AUTO REFRESH commands.
    powerup : int
        Cycles of NOP after power-up before the first command.
    cl : int
        The CAS latency the clock needs (READ to data).
    """

    rp: int
    rcd: int
    wr: int
    rfc: int
    ras: int
    rc: int
    rrd: int
    mrd: int
    ras_max: int
    refi: int
    powerup: int
    cl: int


@dataclass(frozen=True)
class SdramChip:
    """A single-data-rate SDRAM's geometry and datasheet timings (nanoseconds).

    Parameters
    ----------
    name : str
        The part.
    banks, rows, columns, width : int
        Geometry: banks of ``rows`` x ``columns`` words of ``width`` bits.
    t_rp_ns, t_rcd_ns, t_wr_ns, t_rfc_ns, t_ras_ns, t_rc_ns, t_rrd_ns : float
        PRECHARGE to ACTIVE/REFRESH; ACTIVE to READ/WRITE; last write data to PRECHARGE;
        REFRESH to ACTIVE/REFRESH; ACTIVE to PRECHARGE; ACTIVE to ACTIVE (one bank);
        ACTIVE to ACTIVE (two banks).
    t_ras_max_ns : float
        The longest a row may stay open.
    t_refi_ns : float
        The longest gap between AUTO REFRESH commands (``64 ms / 8192``).
    t_mrd_clk : int
        LOAD MODE REGISTER to the next command, in clocks.
    t_powerup_ns : float
        The wait after power-up (clock running, NOPs) before the first command.
    init_refreshes : int
        AUTO REFRESH commands at initialization.
    cl2_max_hz, max_hz : float
        The fastest clock at CAS latency 2, and at 3 (the speed grade).
    """

    name: str
    banks: int
    rows: int
    columns: int
    width: int
    t_rp_ns: float
    t_rcd_ns: float
    t_wr_ns: float
    t_rfc_ns: float
    t_ras_ns: float
    t_ras_max_ns: float
    t_rc_ns: float
    t_rrd_ns: float
    t_refi_ns: float
    t_mrd_clk: int
    t_powerup_ns: float
    init_refreshes: int
    cl2_max_hz: float
    max_hz: float

    @property
    def bank_bits(self) -> int:
        return (self.banks - 1).bit_length()

    @property
    def row_bits(self) -> int:
        return (self.rows - 1).bit_length()

    @property
    def column_bits(self) -> int:
        return (self.columns - 1).bit_length()

    @property
    def addr_bits(self) -> int:
        """Bits of a word address (bank, row and column)."""
        return self.bank_bits + self.row_bits + self.column_bits

    @property
    def words(self) -> int:
        return self.banks * self.rows * self.columns

    def cas_latency(self, clk_hz: float) -> int:
        """The CAS latency at ``clk_hz``: 2 up to :attr:`cl2_max_hz`, else 3."""
        self._check_clock(clk_hz)
        return 2 if clk_hz <= self.cl2_max_hz else 3

    def timing(self, clk_hz: float) -> SdramTiming:
        """The figures in cycles of a ``clk_hz`` clock (minima rounded up, maxima down)."""
        self._check_clock(clk_hz)
        up = lambda t: max(1, ceil(_cycles(t, clk_hz)))     # noqa: E731
        return SdramTiming(
            rp=up(self.t_rp_ns), rcd=up(self.t_rcd_ns), wr=up(self.t_wr_ns), rfc=up(self.t_rfc_ns),
            ras=up(self.t_ras_ns), rc=up(self.t_rc_ns), rrd=up(self.t_rrd_ns), mrd=self.t_mrd_clk,
            ras_max=floor(_cycles(self.t_ras_max_ns, clk_hz)), refi=floor(_cycles(self.t_refi_ns, clk_hz)),
            powerup=up(self.t_powerup_ns), cl=self.cas_latency(clk_hz))

    def _check_clock(self, clk_hz: float) -> None:
        if not 0 < clk_hz <= self.max_hz:
            raise ValueError(f"{self.name} runs at up to {self.max_hz / 1e6:g} MHz, not {clk_hz / 1e6:g} MHz; "
                             f"clock the SDRAM controller at {self.max_hz / 1e6:g} MHz or less")


#: The ULX3S's SDRAM (sources: the module docstring).
ULX3S_SDRAM = SdramChip(
    name="IS42S16160-7",
    banks=4, rows=8192, columns=512, width=16,     # [LD] nbanks, nrows, ncols; [DS] 16M x 16
    t_rp_ns=20,              # [LD] 20 (> [SP] 18)
    t_rcd_ns=20,             # [LD] 20 (> [SP] 18)
    t_wr_ns=20,              # [LD] 20 (> [SP] 6 ns + 1 clock)
    t_rfc_ns=70,             # [LD] 70 (> [SP] 60)
    t_ras_ns=42,             # [SP] 42, [AS] 42
    t_ras_max_ns=100_000,    # [AS] 120 us; 100 us, the common SDR figure, is the safe side
    t_rc_ns=63,              # [AS] 63 (> [SP] 60; tRAS + tRP = 62)
    t_rrd_ns=14,             # [AS] 14
    t_refi_ns=64e6 / 8192,   # [DS] 8K refresh cycles every 64 ms, [LD] tREFI = 64e6/8192 ns
    t_mrd_clk=2,             # [SP] cMRD = 2 ([AS] 14 ns: 2 clocks at 143 MHz)
    t_powerup_ns=200_000,    # [SP] tPOW = 200 us
    init_refreshes=8,        # [SP] bootRefreshCount = 8 ([DS] at least 2)
    cl2_max_hz=100e6,        # [DS] CL 2: clock period >= 10 ns
    max_hz=143e6,            # [DS] -7: 143 MHz at CL 3
)
