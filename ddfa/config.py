"""The one configuration object.

Everything the project generates or trains -- the float golden model, the fixed-point
golden model, the Amaranth processor, the cocotb benches and the board builds -- reads
one :class:`Config`. It is validated once, when it is made (:meth:`Config.__post_init__`),
and every widths, shift or size that more than one module needs is a property here, so
no module re-derives it on its own.

A configuration comes from an embedded default (``--board icebreaker``), from a TOML
file with the same sections (``--config FILE``, see ``examples/config.toml``), or from
either with command-line overrides (:meth:`Config.replace`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError", "Fixed", "ModelConfig", "TrainConfig", "ArithConfig", "HardwareConfig",
    "Config", "BOARDS", "Board", "DEFAULTS", "load_config", "default_config", "config_hash",
]


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the field and the fix."""

    def __init__(self, field_name: str, problem: str, fix: str):
        self.field = field_name
        self.problem = problem
        self.fix = fix
        super().__init__(f"config field '{field_name}': {problem}. Fix: {fix}.")


# --------------------------------------------------------------------------------------
# Fixed-point formats
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fixed:
    """A signed two's-complement fixed-point format: ``width`` bits, ``frac`` of them
    fractional. The stored integer ``q`` stands for ``q / 2**frac``.
    """

    width: int
    frac: int

    @property
    def min(self) -> int:
        return -(1 << (self.width - 1))

    @property
    def max(self) -> int:
        return (1 << (self.width - 1)) - 1

    @property
    def scale(self) -> int:
        return 1 << self.frac

    @property
    def one(self) -> int:
        """The integer that stands for 1.0."""
        return 1 << self.frac

    def __str__(self) -> str:
        return f"Q{self.width - self.frac}.{self.frac} ({self.width} bits)"


def _fixed(value: Any, name: str) -> Fixed:
    if isinstance(value, Fixed):
        return value
    if isinstance(value, dict) and set(value) == {"width", "frac"}:
        return Fixed(int(value["width"]), int(value["frac"]))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return Fixed(int(value[0]), int(value[1]))
    raise ConfigError(name, f"{value!r} is not a fixed-point format",
                      "write it as {width = 16, frac = 12}")


# --------------------------------------------------------------------------------------
# Boards: what each target device offers (checked by validation, used by boards/)
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Board:
    name: str
    family: str           # "ice40" or "ecp5"
    device: str
    multipliers: int      # SB_MAC16 (16x16) or MULT18X18D (18x18)
    multiplier_width: int
    ebr_blocks: int
    ebr_bits: int         # bits per block
    spram_bits: int       # total single-port RAM (iCE40UP only)
    luts: int
    platform: str         # amaranth-boards platform class, "module:Class"
    clock_mhz: float      # default target clock
    #: Default UART rate of the host link (``hardware.baud`` when the configuration does
    #: not set it): what the board's USB-UART bridge runs and what makes the UART divisor
    #: ``clock / baud`` a whole number at ``clock_mhz`` (docs/BOARDS.md, "Host link rate").
    baud: int = 115200
    #: The block RAM's ``(depth, width)`` aspect ratios, shallowest first, where a word
    #: may be sliced into narrower, deeper block RAMs (:meth:`Config.bram_slices`);
    #: empty where the processor keeps one memory per bank.
    bram_aspects: tuple = ()

    @property
    def memory_bits(self) -> int:
        return self.ebr_blocks * self.ebr_bits + self.spram_bits


#: The ECP5 DP16KD's true-dual-port aspects (18 kbit; 512 x 36 is pseudo-dual-port only).
DP16KD_ASPECTS = ((1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
#: Block RAMs left for the memories other than the ``W`` banks when those are sliced
#: (:meth:`Config.bram_slices`): the x, y and d buffers, b, B, the e FIFO and the link's
#: frame buffer (12 on the ULX3S default).
BRAM_RESERVE = 16


def aspect_slices(aspects: tuple, depth: int, width: int) -> tuple[int, ...] | None:
    """The column slices (widths, low bits first) of a memory of ``depth`` words of
    ``width`` bits, each slice one block RAM of the narrowest-width aspect in ``aspects``
    (``(depth, width)`` pairs, shallowest first) that holds all ``depth`` words; ``None``
    where it needs none (one block deep) or none fits (deeper than every aspect)."""
    if not aspects or depth <= aspects[0][0]:
        return None
    w = next((w for d, w in aspects if depth <= d), None)
    if w is None:
        return None
    n, r = divmod(width, w)
    return (w,) * n + ((r,) if r else ())

BOARDS: dict[str, Board] = {b.name: b for b in [
    # FT2232H bridge (up to 12 Mbaud): 3 Mbaud = 30 MHz / 10, exact.
    Board("icebreaker", "ice40", "iCE40UP5K", 8, 16, 30, 4096, 4 * 256 * 1024, 5280,
          "amaranth_boards.icebreaker:ICEBreakerPlatform", 30.0, 3_000_000),
    # The link's UART pins go to an external 3.3 V USB-serial adapter (docs/BOARDS.md),
    # so the rate every adapter runs (30 MHz / 260 = 115,385 baud, 0.16 % off).
    Board("upduino-v3", "ice40", "iCE40UP5K", 8, 16, 30, 4096, 4 * 256 * 1024, 5280,
          "amaranth_boards.upduino_v3:UpduinoV3Platform", 30.0, 115200),
    # FT231X bridge (up to 3 Mbaud): 2 Mbaud = 80 MHz / 40, exact (3 Mbaud would be
    # 80 MHz / 27 = 2.963 Mbaud, 1.2 % off).
    Board("ulx3s-85f", "ecp5", "LFE5U-85F", 156, 18, 208, 18432, 0, 83640,
          "amaranth_boards.ulx3s:ULX3S_85F_Platform", 80.0, 2_000_000, DP16KD_ASPECTS),
    # No USB-UART bridge on the board: the UART pins go to an external adapter, so the
    # rate every adapter runs (80 MHz / 694 = 115,274 baud, 0.06 % off).
    Board("orangecrab-25f", "ecp5", "LFE5U-25F", 28, 18, 56, 18432, 0, 24288,
          "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform", 80.0, 115200, DP16KD_ASPECTS),
]}

#: The UART rate of a configuration without a board (``hardware.board = "none"``).
DEFAULT_BAUD = 115200


# --------------------------------------------------------------------------------------
# The sections
# --------------------------------------------------------------------------------------

ALGORITHMS = ("bp", "dfa", "dkp", "ddfa")
DATASETS = ("digits", "mnist", "fashion-mnist")
#: Input scalings (``model.inputs``): ``"pm1"``, pixels in [-1, 1] (the paper's);
#: ``"standardize"``, :func:`ddfa.data.standardize`.
INPUT_SCALINGS = ("pm1", "standardize")
#: Floor of the per-pixel standard deviation of ``"standardize"`` (on the [-1, 1]
#: scale): standardised pixels stay within ``2 / STD_FLOOR``.
STD_FLOOR = 0.5


@dataclass(frozen=True)
class ModelConfig:
    """What is learned: the data set, the network and the algorithm."""

    dataset: str = "digits"
    #: Layer sizes, input first: ``(64, 32, 10)``. ``arch`` strings such as ``2x800``
    #: or ``784-800-800-10`` are turned into this by :func:`parse_arch`.
    layers: tuple[int, ...] = (64, 32, 10)
    #: ``conv`` selects the paper's shallow CNN 15C5-P2-40C5-P2-128-10 (float model only).
    conv: bool = False
    algorithm: str = "ddfa"
    seed: int = 0
    #: Input scaling (:data:`INPUT_SCALINGS`): ``"pm1"``, each pixel scaled
    #: to [-1, 1] as in the paper (Sec. IV-A), or ``"standardize"``, each pixel minus
    #: its training-set mean, divided by its training-set standard deviation (floored
    #: at 0.5 on the [-1, 1] scale). Done on the host before the processor sees a
    #: sample; the processor's input format must hold the result.
    inputs: str = "pm1"

    @property
    def n_layers(self) -> int:
        return len(self.layers) - 1

    @property
    def n_outputs(self) -> int:
        return self.layers[-1]

    @property
    def hidden(self) -> tuple[int, ...]:
        return tuple(self.layers[1:-1])


@dataclass(frozen=True)
class TrainConfig:
    """How the float golden model trains (``--setting paper`` or ``hardware``).

    ``setting`` fills in the other fields that were left as ``None``; each choice is
    also an option of its own.
    """

    setting: str = "hardware"
    epochs: int = 10
    batch_size: int | None = None      # paper: 64, hardware: 1
    lr: float | None = None            # paper: 1e-4 (5e-4 conv), hardware: 2**-lr_shift
    lr_decay: float | None = None      # per epoch; paper: 0.95, hardware: 1.0
    optimizer: str | None = None       # "adam" | "sgd"
    directions: str | None = None      # "gaussian" | "rademacher"
    feedback_update: str | None = None  # "adam" (eq. 18-19) | "ema" (eq. 17)
    alpha: float | None = None         # feedback rate; paper 1e-4 (Adam), hardware 2**-alpha_shift
    batchnorm: bool = False
    weight_decay: float | None = None  # DKP's decay on W and B (paper: 1e-6)
    #: "default": PyTorch's default initialisation (the authors' code);
    #: "zero": the paper's text for random DFA (stalls with ReLU, see README).
    init: str = "default"


@dataclass(frozen=True)
class ArithConfig:
    """The hardware's arithmetic: see ``docs/ARITHMETIC.md``, which every field follows."""

    act: Fixed = Fixed(16, 9)         # a, y, t, d, v (and the input x)
    err: Fixed = Fixed(16, 13)        # p, e, g, delta
    weight: Fixed = Fixed(16, 12)     # W, b
    feedback: Fixed = Fixed(16, 12)   # B
    acc_width: int = 40               # MAC accumulators
    lr_shift: int = 6                 # eta = 2**-lr_shift
    alpha_shift: int = 6              # alpha = 2**-alpha_shift (eq. 17)
    rounding: str = "nearest"         # weight/bias update rounding: "nearest" | "stochastic"
    exp_frac: int = 5                 # softmax table index: z quantised to 2**-exp_frac
    exp_range: int = 12               # table covers z in [-exp_range, 0)
    exp_bits: int = 15                # table entries: round(exp(z) * 2**exp_bits)
    lfsr_width: int = 32              # direction generators (Galois LFSR)

    @property
    def exp_entries(self) -> int:
        return self.exp_range << self.exp_frac


@dataclass(frozen=True)
class HardwareConfig:
    """What is built: processing elements, the target board and clock."""

    #: A key of :data:`BOARDS`, or ``"none"`` for a software-only configuration (the
    #: float and fixed golden models at any size); board-fit checks then do not apply.
    board: str = "icebreaker"
    #: Processing elements per layer (each must divide that layer's output count).
    pes: tuple[int, ...] = (4, 1)
    #: Per layer: does its forward pass stream behind the layer below's (``true``) or
    #: start when that one has finished (``false``)? A streaming layer has one PE and
    #: takes each ``y_{l-1,j}`` as soon as it is written, column by column
    #: (``docs/ARCHITECTURE.md``, "Streaming layers"); layer 1 reads the input and never
    #: streams. Empty: no layer streams.
    stream: tuple[bool, ...] = ()
    #: One multiplier serves the three units that never multiply at the same time: the
    #: output layer's tangent products (forward pass; when the output layer has one PE),
    #: the softmax normalisation (error phase) and layer 1's feedback unit (update
    #: phase) (``docs/ARCHITECTURE.md``, "Shared multiplier"). Left out of the TOML and
    #: the configuration hash while false.
    share_multiplier: bool = field(default=False, metadata={"omit_default": True})
    clock_mhz: float | None = None    # None: the board's default
    #: UART rate of the host link; None: the board's default (:attr:`Board.baud`), which
    #: the validated :class:`Config` fills in, so ``cfg.hardware.baud`` is always a number.
    baud: int | None = None


def parse_arch(arch: str, dataset_inputs: int, dataset_outputs: int) -> tuple[tuple[int, ...], bool]:
    """``2x800`` -> (in, 800, 800, out); ``784-128-10`` -> as given; ``conv`` -> CNN."""
    a = arch.strip().lower()
    if a == "conv":
        return (dataset_inputs, 128, dataset_outputs), True
    try:
        if "x" in a:
            depth, width = a.split("x")
            return (dataset_inputs,) + (int(width),) * int(depth) + (dataset_outputs,), False
        sizes = tuple(int(s) for s in a.split("-"))
    except ValueError:
        raise ConfigError("model.layers", f"cannot read the architecture {arch!r}",
                          "write it as 2x800, 784-800-800-10 or conv") from None
    return sizes, False


# --------------------------------------------------------------------------------------
# The configuration
# --------------------------------------------------------------------------------------

_SECTIONS = {"model": ModelConfig, "train": TrainConfig, "arith": ArithConfig, "hardware": HardwareConfig}

DATASET_SHAPES = {"digits": (64, 10), "mnist": (784, 10), "fashion-mnist": (784, 10)}


@dataclass(frozen=True)
class Config:
    """The validated configuration. Construction validates; an invalid one never exists."""

    name: str = "custom"
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    arith: ArithConfig = field(default_factory=ArithConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)

    def __post_init__(self):
        h = self.hardware
        # hardware.baud left unset: the board's default. Remembered, so that replace()
        # with another board or clock gives that board's default rather than this one.
        object.__setattr__(self, "_baud_from_board", h.baud is None)
        if h.baud is None:
            board = BOARDS.get(h.board)
            object.__setattr__(self, "hardware", dataclasses.replace(h, baud=board.baud if board else DEFAULT_BAUD))
        self._validate()

    # -- derived quantities, the single source for every module -----------------------

    @property
    def has_board(self) -> bool:
        """False for software-only configurations (``hardware.board = "none"``)."""
        return self.hardware.board != "none"

    @property
    def board(self) -> Board:
        """The target board; software-only configurations have none."""
        if not self.has_board:
            raise ConfigError("hardware.board", "this configuration targets no board (\"none\")",
                              f"set hardware.board to one of {', '.join(BOARDS)} or use --board NAME")
        return BOARDS[self.hardware.board]

    @property
    def clock_mhz(self) -> float:
        return self.hardware.clock_mhz or self.board.clock_mhz

    @property
    def batch_size(self) -> int:
        return self.train.batch_size or (64 if self.train.setting == "paper" else 1)

    @property
    def lr(self) -> float:
        if self.train.lr is not None:
            return self.train.lr
        if self.train.setting == "paper":
            return 5e-4 if self.model.conv else 1e-4
        return 2.0 ** -self.arith.lr_shift

    @property
    def lr_decay(self) -> float:
        if self.train.lr_decay is not None:
            return self.train.lr_decay
        return 0.95 if self.train.setting == "paper" else 1.0

    @property
    def optimizer(self) -> str:
        return self.train.optimizer or ("adam" if self.train.setting == "paper" else "sgd")

    @property
    def directions(self) -> str:
        return self.train.directions or ("gaussian" if self.train.setting == "paper" else "rademacher")

    @property
    def feedback_update(self) -> str:
        return self.train.feedback_update or ("adam" if self.train.setting == "paper" else "ema")

    @property
    def alpha(self) -> float:
        if self.train.alpha is not None:
            return self.train.alpha
        return 1e-4 if self.feedback_update == "adam" else 2.0 ** -self.arith.alpha_shift

    @property
    def weight_decay(self) -> float:
        if self.train.weight_decay is not None:
            return self.train.weight_decay
        return 1e-6 if self.model.algorithm == "dkp" else 0.0

    def streams(self, layer: int) -> bool:
        """Layer ``layer`` (counting from 1) streams its forward pass behind the layer
        below's (``hardware.stream``)."""
        st = self.hardware.stream
        return bool(st) and st[layer - 1]

    @property
    def forward_stages(self) -> list[list[int]]:
        """The forward pass's stages: runs of layers that start together, each streaming
        layer with the one below it (``[[1], [2]]`` without streaming, ``[[1, 2]]`` when
        layer 2 streams). The sequencer starts a stage when the previous one is idle."""
        stages: list[list[int]] = []
        for l in range(1, self.model.n_layers + 1):
            if stages and self.streams(l):
                stages[-1].append(l)
            else:
                stages.append([l])
        return stages

    @property
    def registered_bram(self) -> bool:
        """The target's block RAM read data is slow (ECP5 DP16KD without its output
        register): the hardware registers every block-RAM word before any logic uses it.
        ``hdl.layer.host_latency``, ``hdl.layer.weight_stages`` and
        ``hdl.host.mem_bus_latency`` follow from this one fact."""
        return self.has_board and self.board.family == "ecp5"

    def bank_depth(self, layer: int) -> int:
        """Words in each of layer ``layer``'s ``W`` banks, one per PE: PE ``p`` holds the
        rows ``i = p (mod P_l)``, ``n_{l-1}`` weights each (``docs/ARITHMETIC.md`` section 7)."""
        n, P = self.model.layers, self.hardware.pes[layer - 1]
        return n[layer] // P * n[layer - 1]

    def bram_slices(self, layer: int) -> tuple[int, ...]:
        """The widths of the column slices, low bits first, that layer ``layer``'s ``W``
        banks are stored in: ``(weight.width,)`` (one memory) unless a bank is deeper than
        the block RAM's widest aspect on a board with ``bram_aspects`` (the ECP5). There
        each slice is as wide as one block RAM that holds every word of the bank
        (:func:`aspect_slices`; the ULX3S default's 6,272-word banks of 18-bit weights:
        nine 8,192 x 2 DP16KD), so a word is read from every slice at once and goes
        straight into its register: no read multiplexer after the block RAMs, whose
        outputs are slow (:attr:`registered_bram`), and no read-address register to
        select it. ``docs/ARCHITECTURE.md``, "Banking".

        Slices can take up to 1.8 times the block RAMs of whole banks (nine 8,192 x 2
        slices hold what five 1,024 x 18 blocks and a multiplexer hold). Where every
        layer's banks, sliced, would leave fewer than ``BRAM_RESERVE`` blocks for the
        other memories, the banks stay whole: a configuration that fits keeps fitting."""
        width = self.arith.weight.width
        aspects = self.board.bram_aspects if self.has_board else ()
        slices = aspect_slices(aspects, self.bank_depth(layer), width)
        if slices is None or self._bank_blocks() > self.board.ebr_blocks - BRAM_RESERVE:
            return (width,)
        return slices

    def _bank_blocks(self) -> int:
        """Block RAMs of every layer's ``W`` banks, deep banks sliced."""
        aspects, width, total = self.board.bram_aspects, self.arith.weight.width, 0
        (d0, w0) = aspects[0]
        for l in range(1, self.model.n_layers + 1):
            depth = self.bank_depth(l)
            slices = aspect_slices(aspects, depth, width)
            blocks = len(slices) if slices else -(-depth // d0) * -(-width // w0)
            total += self.hardware.pes[l - 1] * blocks
        return total

    @property
    def lut_ram(self) -> bool:
        """The target has distributed RAM with asynchronous reads (the ECP5's LUT RAM).
        The iCE40 has none: there a small memory read in the same cycle would be flip-flops
        and multiplexers, so a streaming layer's row sums live in block RAM with registered
        reads instead."""
        return self.has_board and self.board.family == "ecp5"

    @property
    def softmax_fold(self) -> bool:
        """With the shared multiplier (signed operands): the softmax's table word
        ``E <= 2**exp_bits`` does not fit a signed operand (``exp_bits + 2`` bits), so
        ``E = 2**exp_bits`` (the only word that needs the top bit) enters as
        ``2**(exp_bits-1)`` times ``2 r``. See :class:`hdl.output.OutputUnit`."""
        return (self.has_board and "softmax" in self.shared_multiplier_units
                and self.arith.exp_bits + 2 > self.board.multiplier_width)

    @staticmethod
    def sum_width(m: int, n: int, terms: int) -> int:
        """Bits of a signed word that holds the sum of ``terms`` products of an ``m``-bit
        and an ``n``-bit two's-complement word: ``|product| <= 2^(m+n-2)`` (equality only
        for min * min), so ``|sum| <= 2^(m+n-2+ceil(log2 terms))`` fits
        ``m + n + ceil(log2 terms)`` bits, with no spare bit when ``terms`` is a power of
        two."""
        return m + n + (terms - 1).bit_length()

    def acc_width_needed(self, fan_in: int) -> int:
        """Bits a MAC accumulator needs so that ``fan_in`` products plus the bias never
        overflow. A product of an ``m``-bit and an ``n``-bit two's-complement word has
        ``|product| <= 2^(m+n-2)`` (equality only for min * min, which needs all ``m + n``
        bits); the bias term ``b << act.frac`` obeys the same bound.
        ``N = fan_in + 1`` terms sum to ``|acc| <= N 2^(m+n-2) <= 2^(m+n-2+ceil(log2 N))``,
        which a signed word of ``m + n + ceil(log2 N)`` bits holds. Covers the forward
        MACs (W*y, W*d, + b) and the feedback MACs (B*e).
        """
        a = self.arith
        return max(self.sum_width(m.width, n.width, fan_in + 1)
                   for m, n in ((a.weight, a.act), (a.feedback, a.err), (a.err, a.act)))

    @property
    def memory_words(self) -> dict[str, tuple[int, int]]:
        """Every learned memory: name -> (words, bits per word)."""
        a, L = self.arith, self.model.layers
        mem: dict[str, tuple[int, int]] = {}
        for l in range(1, len(L)):
            mem[f"W{l}"] = (L[l] * L[l - 1], a.weight.width)
            mem[f"b{l}"] = (L[l], a.weight.width)
            if l < len(L) - 1:
                mem[f"B{l}"] = (L[l] * L[-1], a.feedback.width)
        return mem

    @property
    def memory_bits(self) -> int:
        return sum(words * bits for words, bits in self.memory_words.values())

    @property
    def multipliers_needed(self) -> int:
        """Multipliers the processor instantiates: per layer, P primal MACs and P tangent
        MACs (none on layer 1, where d_1 = v_1); one B*e MAC per hidden layer's feedback
        unit; one in the output unit's softmax normalisation. The weight update reuses
        the primal MACs.
        """
        P = self.hardware.pes
        n = sum(p * (1 if l == 0 else 2) for l, p in enumerate(P))
        saved = max(len(self.shared_multiplier_units) - 1, 0)     # hardware.share_multiplier
        return n + (self.model.n_layers - 1) + 1 - saved

    @property
    def shared_multiplier_units(self) -> tuple[str, ...]:
        """The units that use the one shared multiplier (``hardware.share_multiplier``), in
        the order of its ports: ``"tangent"`` (the output layer's tangent products, when
        that layer has one PE), ``"softmax"`` and ``"feedback"`` (layer 1's feedback unit,
        when there is a hidden layer); empty when nothing is shared. They run in the
        forward pass, the error phase and the update phase: never two at once."""
        if not self.hardware.share_multiplier:
            return ()
        L = self.model.n_layers
        units = []
        if L >= 2 and self.hardware.pes[-1] == 1:
            units.append("tangent")
        units.append("softmax")
        if L >= 2:
            units.append("feedback")
        return tuple(units)

    def direction_seed(self, layer: int) -> int:
        """Seed of hidden layer ``layer``'s direction LFSR (layers count from 1): a fixed,
        documented function of ``model.seed`` that is never zero.
        """
        mask = (1 << self.arith.lfsr_width) - 1
        s = (0x9E3779B9 * (self.model.seed + 1) + 0x7F4A7C15 * layer) & mask
        return s or 1

    # -- construction ----------------------------------------------------------------

    def replace(self, **changes: Any) -> "Config":
        """A new, validated configuration with ``section.field`` (or ``section``) changes:
        ``cfg.replace(**{"model.algorithm": "dfa", "train.epochs": 3})``.
        """
        sections = {name: getattr(self, name) for name in _SECTIONS}
        name = changes.pop("name", self.name)
        if self._baud_from_board and "hardware.baud" not in changes:
            sections["hardware"] = dataclasses.replace(sections["hardware"], baud=None)
        for key, value in changes.items():
            if "." not in key:
                raise ConfigError(key, "unknown field", "name it as section.field, e.g. model.layers")
            sec, fld = key.split(".", 1)
            if sec not in sections:
                raise ConfigError(key, f"unknown section {sec!r}", f"use one of {', '.join(_SECTIONS)}")
            cls = _SECTIONS[sec]
            if fld not in {f.name for f in fields(cls)}:
                raise ConfigError(key, "unknown field", f"use one of {', '.join(f.name for f in fields(cls))}")
            sections[sec] = dataclasses.replace(sections[sec], **{fld: _coerce(cls, fld, value, key)})
        return Config(name=name, **sections)

    @classmethod
    def from_dict(cls, data: dict, name: str = "custom") -> "Config":
        data = dict(data)
        name = data.pop("name", name)
        sections = {}
        for sec, sec_cls in _SECTIONS.items():
            raw = data.pop(sec, {})
            if not isinstance(raw, dict):
                raise ConfigError(sec, "is not a table", f"write it as [{sec}]")
            known = {f.name for f in fields(sec_cls)}
            for k in raw:
                if k not in known:
                    raise ConfigError(f"{sec}.{k}", "unknown field", f"use one of {', '.join(sorted(known))}")
            sections[sec] = sec_cls(**{k: _coerce(sec_cls, k, v, f"{sec}.{k}") for k, v in raw.items()})
        if data:
            k = next(iter(data))
            raise ConfigError(k, "unknown section", f"use one of {', '.join(_SECTIONS)}")
        return cls(name=name, **sections)

    def to_dict(self) -> dict:
        def conv(v):
            if isinstance(v, Fixed):
                return {"width": v.width, "frac": v.frac}
            if isinstance(v, tuple):
                return list(v)
            return v
        # Unset fields (None) and empty lists (``hardware.stream`` when nothing streams)
        # are left out, so a configuration that does not use a field serialises, and
        # hashes (INFO's configuration hash), as it did before the field existed.
        # So are fields marked ``omit_default`` while they hold their default.
        out: dict[str, Any] = {"name": self.name}
        for sec in _SECTIONS:
            obj = getattr(self, sec)
            out[sec] = {f.name: conv(getattr(obj, f.name)) for f in fields(obj)
                        if getattr(obj, f.name) not in (None, ())
                        and not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)}
        return out

    def to_toml(self) -> str:
        lines = [f'name = "{self.name}"']
        for sec, values in self.to_dict().items():
            if sec == "name":
                continue
            lines.append(f"\n[{sec}]")
            for k, v in values.items():
                lines.append(f"{k} = {_toml_value(v)}")
        return "\n".join(lines) + "\n"

    # -- validation ------------------------------------------------------------------

    def _validate(self) -> None:
        m, t, a, h = self.model, self.train, self.arith, self.hardware

        if m.dataset not in DATASETS:
            raise ConfigError("model.dataset", f"unknown data set {m.dataset!r}", f"use one of {', '.join(DATASETS)}")
        if m.inputs not in INPUT_SCALINGS:
            raise ConfigError("model.inputs", f"unknown input scaling {m.inputs!r}",
                              f"use one of {', '.join(INPUT_SCALINGS)}")
        if m.algorithm not in ALGORITHMS:
            raise ConfigError("model.algorithm", f"unknown algorithm {m.algorithm!r}", f"use one of {', '.join(ALGORITHMS)}")
        if len(m.layers) < 2 or any(not isinstance(n, int) or n < 1 for n in m.layers):
            raise ConfigError("model.layers", f"{m.layers!r} is not a list of at least two positive sizes",
                              "give input, hidden and output sizes, e.g. [64, 32, 10]")
        n_in, n_out = DATASET_SHAPES[m.dataset]
        if m.layers[0] != n_in or m.layers[-1] != n_out:
            raise ConfigError("model.layers", f"{list(m.layers)} does not match {m.dataset} "
                              f"({n_in} inputs, {n_out} classes)",
                              f"start the list with {n_in} and end it with {n_out}")
        if m.conv and m.dataset == "digits":
            raise ConfigError("model.conv", "the paper's CNN needs 28x28 images", "use mnist or fashion-mnist")

        if t.setting not in ("paper", "hardware"):
            raise ConfigError("train.setting", f"unknown setting {t.setting!r}", "use paper or hardware")
        if t.epochs < 1:
            raise ConfigError("train.epochs", f"{t.epochs} epochs", "train for at least 1 epoch")
        if t.batch_size is not None and t.batch_size < 1:
            raise ConfigError("train.batch_size", f"batch size {t.batch_size}", "use 1 or more")
        if t.lr is not None and not t.lr > 0:
            raise ConfigError("train.lr", f"learning rate {t.lr}", "use a positive learning rate")
        for key, allowed in (("optimizer", ("adam", "sgd")), ("directions", ("gaussian", "rademacher")),
                             ("feedback_update", ("adam", "ema")), ("init", ("default", "zero"))):
            v = getattr(t, key)
            if v is not None and v not in allowed:
                raise ConfigError(f"train.{key}", f"unknown choice {v!r}", f"use one of {', '.join(allowed)}")
        if t.alpha is not None and not 0 < t.alpha < 1:
            raise ConfigError("train.alpha", f"alpha = {t.alpha} is outside (0, 1)", "use for instance 2**-6 = 0.015625")

        for name in ("act", "err", "weight", "feedback"):
            f = getattr(a, name)
            if not isinstance(f, Fixed):
                raise ConfigError(f"arith.{name}", f"{f!r} is not a fixed-point format", "write {width = 16, frac = 12}")
            if not 4 <= f.width <= 32:
                raise ConfigError(f"arith.{name}.width", f"{f.width} bits is outside 4..32", "choose 4 to 32 bits")
            if not 1 <= f.frac <= f.width - 2:
                raise ConfigError(f"arith.{name}.frac", f"{f.frac} fractional bits of {f.width}",
                                  f"keep 1 to {f.width - 2} fractional bits, so that +1.0 is representable")
        reach = 2 / STD_FLOOR                 # |standardised pixel| <= (1 - (-1)) / STD_FLOOR
        if m.inputs == "standardize" and 2.0 ** (a.act.width - a.act.frac - 1) < reach:
            need = (int(reach) - 1).bit_length() + 1  # integer bits, sign included
            raise ConfigError("arith.act", f"{a.act} holds inputs up to +-{2.0 ** (a.act.width - a.act.frac - 1):g}, "
                              f"standardised pixels reach +-{reach:g}",
                              f"give arith.act at least {need} integer bits (frac <= {a.act.width - need}) "
                              "or set model.inputs = \"pm1\"")
        fan_in = max(max(m.layers[:-1]), m.layers[-1])
        need = self.acc_width_needed(fan_in)
        if a.acc_width < need:
            raise ConfigError("arith.acc_width", f"{a.acc_width} bits can overflow for fan-in {fan_in} "
                              f"(products need up to {need} bits)", f"set arith.acc_width to at least {need}")
        if a.acc_width > 64:
            raise ConfigError("arith.acc_width", f"{a.acc_width} bits exceeds 64", "use at most 64 bits")
        # The weight update rounds delta*y (err.frac + act.frac fractional bits) by
        # s_W = err.frac + act.frac + lr_shift - weight.frac bits (ARITHMETIC.md 5.5).
        # s_W >= 1: a shift, not a multiplication. |delta*y| <= 2**(err.width + act.width - 2),
        # so s_W >= err.width + act.width - 1 would round every update to zero.
        base = a.err.frac + a.act.frac - a.weight.frac
        lo = max(1, 1 - base)
        hi = min(24, a.err.width + a.act.width - 2 - base)
        if not lo <= a.lr_shift <= hi:
            raise ConfigError("arith.lr_shift", f"eta = 2**-{a.lr_shift} is out of range for these formats "
                              f"(the update shift err.frac + act.frac + lr_shift - weight.frac would be "
                              f"{base + a.lr_shift}; below 1 it is no shift, from "
                              f"{a.err.width + a.act.width - 1} on every update rounds to zero)",
                              f"use a shift from {lo} to {hi}" if lo <= hi else
                              "no shift works: give err and act more fractional bits than weight has")
        if not 1 <= a.alpha_shift <= 16:
            raise ConfigError("arith.alpha_shift", f"alpha = 2**-{a.alpha_shift} is out of range", "use a shift from 1 to 16")
        if a.rounding not in ("nearest", "stochastic"):
            raise ConfigError("arith.rounding", f"unknown rounding {a.rounding!r}", "use nearest or stochastic")
        if a.rounding == "stochastic" and base + a.lr_shift > 32:
            raise ConfigError("arith.rounding", f"stochastic rounding draws 32-bit words, but the weight update "
                              f"drops {base + a.lr_shift} bits (err.frac + act.frac + lr_shift - weight.frac)",
                              "keep that shift at most 32 (fewer fractional bits or a smaller lr_shift), "
                              "or use rounding = \"nearest\"")
        if a.lfsr_width not in LFSR_TAPS:
            raise ConfigError("arith.lfsr_width", f"no LFSR of {a.lfsr_width} bits",
                              f"use one of {', '.join(map(str, sorted(LFSR_TAPS)))}")
        if not 0 <= a.exp_frac <= a.act.frac:
            raise ConfigError("arith.exp_frac", f"{a.exp_frac} index bits finer than the activations' {a.act.frac}",
                              f"use 0 to {a.act.frac}")
        if not 1 <= a.exp_range <= 64 or not 4 <= a.exp_bits <= 24 or a.exp_entries > 4096:
            raise ConfigError("arith.exp_range", "the softmax table is out of range",
                              "keep exp_range in 1..64, exp_bits in 4..24 and exp_range * 2**exp_frac <= 4096")

        if h.clock_mhz is not None and not 1 <= h.clock_mhz <= 500:
            raise ConfigError("hardware.clock_mhz", f"{h.clock_mhz} MHz", "use 1 to 500 MHz")
        if not isinstance(h.baud, int) or not 300 <= h.baud <= 12_000_000:
            raise ConfigError("hardware.baud", f"{h.baud!r} baud", "use 300 to 12000000 (e.g. 115200 or 3000000)")
        if h.board == "none":
            return

        if h.board not in BOARDS:
            raise ConfigError("hardware.board", f"unknown board {h.board!r}", f"use one of {', '.join(BOARDS)} or none")
        if m.conv:
            raise ConfigError("model.conv", "the processor runs fully-connected networks only",
                              "set hardware.board = \"none\" to train the CNN in software")
        if len(h.pes) != m.n_layers:
            raise ConfigError("hardware.pes", f"{len(h.pes)} entries for {m.n_layers} layers",
                              f"give one PE count per layer ({m.n_layers} numbers)")
        for l, (p, n) in enumerate(zip(h.pes, m.layers[1:]), start=1):
            if p < 1 or n % p:
                divs = [d for d in range(1, n + 1) if n % d == 0]
                raise ConfigError("hardware.pes", f"layer {l} has {n} neurons, which {p} PEs do not divide",
                                  f"use a divisor of {n}: {', '.join(map(str, divs[:12]))}")
        if h.stream:
            if len(h.stream) != m.n_layers:
                raise ConfigError("hardware.stream", f"{len(h.stream)} entries for {m.n_layers} layers",
                                  f"give one true/false per layer ({m.n_layers} values), or leave it empty")
            if h.stream[0]:
                raise ConfigError("hardware.stream", "layer 1 cannot stream: it reads the input sample",
                                  "set the first entry to false")
            for l, (s, p) in enumerate(zip(h.stream, h.pes), start=1):
                if s and p != 1:
                    raise ConfigError("hardware.stream", f"layer {l} streams with {p} PEs",
                                      f"a streaming layer has one PE: set hardware.pes[{l - 1}] = 1, "
                                      f"or stream[{l - 1}] = false")
        if h.share_multiplier and len(self.shared_multiplier_units) < 2:
            raise ConfigError("hardware.share_multiplier", "nothing to share: without a hidden layer the "
                              "softmax is the only unit that could use it", "set hardware.share_multiplier = false")
        board = self.board
        if a.exp_bits + 1 > board.multiplier_width:
            raise ConfigError("arith.exp_bits", f"softmax table entries of {a.exp_bits + 1} bits do not fit the "
                              f"{board.device}'s {board.multiplier_width}-bit multipliers",
                              f"use exp_bits <= {board.multiplier_width - 1}")
        for name in ("act", "err", "weight", "feedback"):
            f = getattr(a, name)
            if f.width > board.multiplier_width:
                raise ConfigError(f"arith.{name}.width", f"{f.width} bits exceed the {board.device}'s "
                                  f"{board.multiplier_width}-bit multipliers",
                                  f"use at most {board.multiplier_width} bits on {board.name}")
        if h.share_multiplier:
            # The quotient r <= 2**err.frac is a signed operand of the shared multiplier
            # (doubled when the table word is folded, see softmax_fold).
            r_bits = a.err.frac + 2 + self.softmax_fold
            if r_bits > board.multiplier_width:
                raise ConfigError("hardware.share_multiplier", f"the softmax quotient needs a {r_bits}-bit signed "
                                  f"operand, the {board.device}'s multipliers have {board.multiplier_width} bits",
                                  f"use err.frac <= {a.err.frac - (r_bits - board.multiplier_width)}, or set "
                                  "hardware.share_multiplier = false")
        if self.multipliers_needed > board.multipliers:
            raise ConfigError("hardware.pes", f"{self.multipliers_needed} multipliers needed, the {board.device} "
                              f"has {board.multipliers}", "use fewer PEs per layer")
        if self.memory_bits > board.memory_bits:
            raise ConfigError("model.layers", f"the memories need {self.memory_bits} bits, the {board.device} has "
                              f"{board.memory_bits}", "use a smaller network, narrower formats or a larger board")
        if h.clock_mhz is not None and not 1 <= h.clock_mhz <= 500:
            raise ConfigError("hardware.clock_mhz", f"{h.clock_mhz} MHz", "use 1 to 500 MHz")


# Maximal-length Galois LFSR feedback masks (taps from Xilinx XAPP 052), by width.
LFSR_TAPS: dict[int, tuple[int, ...]] = {
    8: (8, 6, 5, 4), 9: (9, 5), 10: (10, 7), 11: (11, 9), 12: (12, 6, 4, 1), 13: (13, 4, 3, 1),
    14: (14, 5, 3, 1), 15: (15, 14), 16: (16, 15, 13, 4), 17: (17, 14), 18: (18, 11), 19: (19, 6, 2, 1),
    20: (20, 17), 24: (24, 23, 22, 17), 31: (31, 28), 32: (32, 22, 2, 1),
}


#: How a true/false field may be written as text (``--set``, or a string in TOML).
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True,
               "0": False, "false": False, "no": False, "off": False}


def _coerce(cls, fld: str, value: Any, key: str) -> Any:
    ftype = {f.name: f.type for f in fields(cls)}[fld]
    try:
        if "Fixed" in str(ftype):
            return _fixed(value, key)
        if "tuple[bool" in str(ftype):
            if isinstance(value, str):
                value = [_BOOL_WORDS[v.strip().lower()] for v in value.split(",") if v.strip()]
            if not all(isinstance(v, (bool, int)) for v in value):
                raise ValueError
            return tuple(bool(v) for v in value)
        if "tuple" in str(ftype):
            if isinstance(value, str):
                value = [int(v) for v in value.replace("-", ",").split(",")]
            return tuple(int(v) for v in value)
        if value is None:
            return None
        if "bool" in str(ftype):
            if isinstance(value, str):
                return _BOOL_WORDS[value.strip().lower()]
            return bool(value)
        if "float" in str(ftype):
            return float(value)
        if "int" in str(ftype):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        return str(value)
    except (TypeError, ValueError, KeyError):
        raise ConfigError(key, f"{value!r} has the wrong type", f"give a value of type {ftype}") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def _defaults() -> dict[str, str]:
    root = resources.files("ddfa") / "defaults"
    return {p.name[:-5]: p.name for p in root.iterdir() if p.name.endswith(".toml")}


def default_config(name: str) -> Config:
    """An embedded default by board name: ``icebreaker`` or ``ulx3s-85f``."""
    defaults = _defaults()
    if name not in defaults:
        raise ConfigError("--board", f"no embedded default {name!r}", f"use one of {', '.join(sorted(defaults))} "
                          "or --config FILE")
    text = (resources.files("ddfa") / "defaults" / defaults[name]).read_text()
    return Config.from_dict(tomllib.loads(text), name=name)


DEFAULTS = ("icebreaker", "ulx3s-85f")


def load_config(path: str | Path | None = None, board: str | None = None) -> Config:
    """``--config FILE`` or ``--board NAME`` (the embedded default ``icebreaker`` when neither)."""
    if path is not None and board is not None:
        raise ConfigError("--config/--board", "both were given", "give one of them")
    if path is None:
        return default_config(board or "icebreaker")
    p = Path(path)
    if not p.is_file():
        raise ConfigError("--config", f"no file {str(p)!r}", "give the path of a TOML file such as examples/config.toml")
    try:
        data = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{p} is not valid TOML ({exc})", "fix the syntax") from None
    return Config.from_dict(data, name=p.stem)


def config_hash(cfg: Config) -> int:
    """32 bits that identify the configuration: the first four bytes (little-endian) of
    the sha256 of ``cfg.to_toml()``. INFO returns them."""
    return int.from_bytes(hashlib.sha256(cfg.to_toml().encode()).digest()[:4], "little")
