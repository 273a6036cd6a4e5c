"""The board database: what each target device offers.

A :class:`Family` holds what every device of an FPGA family shares: its multipliers'
width, its block RAM (bits, aspects, read timing), whether it has LUT RAM, and the limits
of its PLL (:class:`PLLLimits`; ``boards/pll.py`` searches the divider settings within
them). A :class:`Board` is one device on one board: its resource counts, its
amaranth-boards platform, its oscillator and its default clock and UART rate.
Validation checks a configuration against these; ``boards/`` builds from them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PLLLimits", "Family", "FAMILIES", "Board", "BOARDS", "DP16KD_ASPECTS", "DEFAULT_BAUD"]


@dataclass(frozen=True)
class PLLLimits:
    """The frequency limits of a family's PLL, each a ``(low, high)`` pair in MHz.

    Members
    -------
    pfd_mhz : tuple of float
        Phase-detector input (the oscillator after the input divider).
    vco_mhz : tuple of float
        Voltage-controlled oscillator.
    out_mhz : tuple of float
        The output: the clocks the PLL can make (``hardware.clock_mhz``).
    """

    pfd_mhz: tuple[float, float]
    vco_mhz: tuple[float, float]
    out_mhz: tuple[float, float]


@dataclass(frozen=True)
class Family:
    """What every device of an FPGA family shares.

    Members
    -------
    name : str
        ``"ice40"`` or ``"ecp5"`` (:attr:`Board.family`).
    multiplier_width : int
        Operand width of the hard multipliers (SB_MAC16: 16, MULT18X18D: 18).
    ebr_bits : int
        Bits per block RAM.
    bram_aspects : tuple
        The block RAM's ``(depth, width)`` aspect ratios, shallowest first, where a word
        may be sliced into narrower, deeper block RAMs (``ddfa.config.memory.bram_slices``);
        empty where the processor keeps one memory per bank.
    registered_bram : bool
        The block RAM's read data is slow (ECP5 DP16KD without its output register):
        the hardware registers every block-RAM word before any logic uses it.
    lut_ram : bool
        The family has distributed RAM with asynchronous reads (the ECP5's LUT RAM).
    pll : PLLLimits
        The limits of the family's PLL.
    """

    name: str
    multiplier_width: int
    ebr_bits: int
    bram_aspects: tuple
    registered_bram: bool
    lut_ram: bool
    pll: PLLLimits


#: The ECP5 DP16KD's true-dual-port aspects (18 kbit; 512 x 36 is pseudo-dual-port only).
DP16KD_ASPECTS = ((1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))

#: ``EHXPLLL`` output dividers (CLKOP_DIV) run 1..128, so the output is the VCO divided
#: by 1 to 128.
_ECP5_VCO = (400.0, 800.0)

FAMILIES: dict[str, Family] = {f.name: f for f in [
    # SB_PLL40 in SIMPLE feedback (the icepll search): PFD 10..133 MHz, VCO 533..1066 MHz,
    # output 16..275 MHz (iCE40 sysCLOCK PLL design guide, TN1251).
    Family("ice40", multiplier_width=16, ebr_bits=4096, bram_aspects=(), registered_bram=False,
           lut_ram=False, pll=PLLLimits((10.0, 133.0), (533.0, 1066.0), (16.0, 275.0))),
    # EHXPLLL with CLKOP feedback (the ecppll search): PFD 3.125..400 MHz, VCO 400..800 MHz,
    # output the VCO / CLKOP_DIV (1..128): 3.125..800 MHz.
    Family("ecp5", multiplier_width=18, ebr_bits=18432, bram_aspects=DP16KD_ASPECTS, registered_bram=True,
           lut_ram=True, pll=PLLLimits((3.125, 400.0), _ECP5_VCO, (_ECP5_VCO[0] / 128, _ECP5_VCO[1]))),
]}


@dataclass(frozen=True)
class Board:
    """One device on one board.

    Members
    -------
    name : str
        The key of :data:`BOARDS` (``hardware.board``).
    family : str
        A key of :data:`FAMILIES`.
    device : str
        The FPGA part.
    multipliers, ebr_blocks, luts : int
        Hard multipliers, block RAMs and logic cells of the device.
    spram_bits : int
        Total single-port RAM (iCE40UP only).
    platform : str
        The amaranth-boards platform class, ``"module:Class"``.
    osc_mhz : float
        The board's oscillator (the platform's default clock): a ``hardware.clock_mhz``
        equal to it needs no PLL.
    clock_mhz : float
        Default target clock.
    baud : int
        Default UART rate of the host link (``hardware.baud`` when the configuration does
        not set it): what the board's USB-UART bridge runs and what makes the UART divisor
        ``clock / baud`` a whole number at ``clock_mhz`` (docs/BOARDS.md, "Host link rate").
    """

    name: str
    family: str
    device: str
    multipliers: int
    ebr_blocks: int
    spram_bits: int
    luts: int
    platform: str
    osc_mhz: float
    clock_mhz: float
    baud: int = 115200

    @property
    def family_info(self) -> Family:
        """The board's :class:`Family`."""
        return FAMILIES[self.family]

    @property
    def multiplier_width(self) -> int:
        return self.family_info.multiplier_width

    @property
    def ebr_bits(self) -> int:
        return self.family_info.ebr_bits

    @property
    def bram_aspects(self) -> tuple:
        return self.family_info.bram_aspects

    @property
    def pll(self) -> PLLLimits:
        """The limits of the family's PLL."""
        return self.family_info.pll

    @property
    def clock_range_mhz(self) -> tuple[float, float]:
        """The clocks the PLL can make, ``(low, high)`` in MHz (the oscillator itself,
        :attr:`osc_mhz`, is usable too: it needs no PLL). Within it, the divider search
        of ``ddfa.config.pll`` says which the board makes from its oscillator."""
        return self.pll.out_mhz

    @property
    def memory_bits(self) -> int:
        return self.ebr_blocks * self.ebr_bits + self.spram_bits


BOARDS: dict[str, Board] = {b.name: b for b in [
    # FT2232H bridge (up to 12 Mbaud): 3 Mbaud = 30 MHz / 10, exact.
    Board("icebreaker", "ice40", "iCE40UP5K", 8, 30, 4 * 256 * 1024, 5280,
          "amaranth_boards.icebreaker:ICEBreakerPlatform", 12.0, 30.0, 3_000_000),
    # The link's UART pins go to an external 3.3 V USB-serial adapter (docs/BOARDS.md),
    # so the rate every adapter runs (30 MHz / 260 = 115,385 baud, 0.16 % off).
    Board("upduino-v3", "ice40", "iCE40UP5K", 8, 30, 4 * 256 * 1024, 5280,
          "amaranth_boards.upduino_v3:UpduinoV3Platform", 48.0, 30.0, 115200),
    # FT231X bridge (up to 3 Mbaud): 2 Mbaud = 80 MHz / 40, exact (3 Mbaud would be
    # 80 MHz / 27 = 2.963 Mbaud, 1.2 % off).
    Board("ulx3s-85f", "ecp5", "LFE5U-85F", 156, 208, 0, 83640,
          "amaranth_boards.ulx3s:ULX3S_85F_Platform", 25.0, 80.0, 2_000_000),
    # No USB-UART bridge on the board: the UART pins go to an external adapter, so the
    # rate every adapter runs (80 MHz / 694 = 115,274 baud, 0.06 % off).
    Board("orangecrab-25f", "ecp5", "LFE5U-25F", 28, 56, 0, 24288,
          "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform", 48.0, 80.0, 115200),
]}

#: The UART rate of a configuration without a board (``hardware.board = "none"``).
DEFAULT_BAUD = 115200
