"""The schema: the sections of a configuration, their fields and how text becomes a value.

:class:`ModelConfig` (what is learned), :class:`TrainConfig` (how the float golden model
trains), :class:`ArithConfig` (the hardware's arithmetic) and :class:`HardwareConfig`
(what is built) are the four sections of a TOML configuration (``examples/config.toml``).
:func:`coerce` turns a TOML or ``--set`` value into a field's type; the rules a valid
configuration obeys are in :mod:`ddfa.config.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["ConfigError", "Fixed", "ModelConfig", "TrainConfig", "ArithConfig", "HardwareConfig", "SECTIONS",
           "ALGORITHMS", "PROCESSOR_ALGORITHMS", "DATASETS", "DATASET_FILE_KINDS", "DATASET_SHAPES", "INPUT_SCALINGS", "STD_FLOOR", "LFSR_TAPS",
           "dataset_is_file", "parse_arch", "coerce"]


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
# Choices
# --------------------------------------------------------------------------------------

ALGORITHMS = ("bp", "dfa", "dkp", "ddfa")
#: The algorithms the processor (``hdl/``) runs; ``hdl.top.check_hardware`` refuses the
#: others before anything is elaborated. The fixed-point golden model also runs ``bp``
#: (``golden.fixed.FIXED_ALGORITHMS``).
PROCESSOR_ALGORITHMS = ("ddfa", "dfa")
#: The built-in data sets. ``model.dataset`` may instead name a file of the user's own
#: (``.npz``, ``.csv``) or a folder of IDX files (:data:`DATASET_FILE_KINDS`, docs/YOUR-DATA.md).
DATASETS = ("digits", "mnist", "fashion-mnist")
#: What a data set path may name: its suffix, or ``""`` for a folder of IDX files.
DATASET_FILE_KINDS = (".npz", ".csv", "")


def dataset_is_file(dataset: str) -> bool:
    """Whether ``model.dataset`` names a file or folder rather than a built-in data set:
    a ``.npz`` or ``.csv`` file, or a folder of IDX files written with a slash
    (``./my-idx``, ``data/my-idx``)."""
    if dataset in DATASETS:
        return False
    suffix = dataset.rsplit(".", 1)[-1].lower() if "." in dataset.replace("\\", "/").rsplit("/", 1)[-1] else ""
    return f".{suffix}" in DATASET_FILE_KINDS if suffix else "/" in dataset


#: Inputs and classes of each built-in data set: ``model.layers`` starts and ends with them
#: (a file's are checked when it is read: :func:`ddfa.data.load_config_dataset`).
DATASET_SHAPES = {"digits": (64, 10), "mnist": (784, 10), "fashion-mnist": (784, 10)}
#: Input scalings (``model.inputs``): ``"pm1"``, pixels in [-1, 1] (the paper's);
#: ``"standardize"``, :func:`ddfa.data.standardize`.
INPUT_SCALINGS = ("pm1", "standardize")
#: Floor of the per-pixel standard deviation of ``"standardize"`` (on the [-1, 1]
#: scale): standardised pixels stay within ``2 / STD_FLOOR``.
STD_FLOOR = 0.5

# Maximal-length Galois LFSR feedback masks (taps from Xilinx XAPP 052), by width.
LFSR_TAPS: dict[int, tuple[int, ...]] = {
    8: (8, 6, 5, 4), 9: (9, 5), 10: (10, 7), 11: (11, 9), 12: (12, 6, 4, 1), 13: (13, 4, 3, 1),
    14: (14, 5, 3, 1), 15: (15, 14), 16: (16, 15, 13, 4), 17: (17, 14), 18: (18, 11), 19: (19, 6, 2, 1),
    20: (20, 17), 24: (24, 23, 22, 17), 31: (31, 28), 32: (32, 22, 2, 1),
}


# --------------------------------------------------------------------------------------
# The sections
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelConfig:
    """What is learned: the data set, the network and the algorithm."""

    #: A built-in data set (:data:`DATASETS`) or the path of a file (``.npz``, ``.csv``)
    #: or folder of IDX files, relative to the current directory (docs/YOUR-DATA.md).
    dataset: str = "digits"
    #: A CSV data set's label column (its header names it); every other column is a feature.
    label_column: str = field(default="label", metadata={"omit_default": True})
    #: A CSV data set's test file; empty: the test set is drawn from ``dataset`` itself.
    test_file: str = field(default="", metadata={"omit_default": True})
    #: The fraction of a CSV data set drawn as its test set when there is no ``test_file``
    #: (a fixed permutation, ``numpy.random.RandomState(0)``, whatever ``seed`` is).
    test_fraction: float = field(default=0.2, metadata={"omit_default": True})
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

    @property
    def weight_update_shift(self) -> int:
        """The right shift that turns ``delta_i * y_j`` (``err.frac + act.frac`` fraction
        bits) into the update term ``eta delta_i y_j`` in the weight format, ``eta =
        2**-lr_shift``: ``err.frac + act.frac + lr_shift - weight.frac`` (negative: a left
        shift; ``docs/ARITHMETIC.md`` 5.5). The one definition of this shift: the
        validation, the fixed-point model and the layer engine's write-back read it."""
        return self.err.frac + self.act.frac + self.lr_shift - self.weight.frac

    @property
    def bias_update_shift(self) -> int:
        """The right shift that turns ``delta_i`` (``err.frac`` fraction bits) into the
        bias update term ``eta delta_i`` in the weight format: ``err.frac + lr_shift -
        weight.frac`` (negative: a left shift). The one definition, as
        :attr:`weight_update_shift`."""
        return self.err.frac + self.lr_shift - self.weight.frac


@dataclass(frozen=True)
class HardwareConfig:
    """What is built: processing elements, the target board and clock."""

    #: A key of :data:`ddfa.config.BOARDS`, or ``"none"`` for a software-only
    #: configuration (the float and fixed golden models at any size); board-fit checks
    #: then do not apply.
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
    #: phase) (``docs/ARCHITECTURE.md``, "Shared multiplier"). Left out of the TOML
    #: while false.
    share_multiplier: bool = field(default=False, metadata={"omit_default": True})
    #: The dataset store and the epoch runner (``docs/HOST-PROTOCOL.md``, "The dataset
    #: store"): the board keeps a data set and trains epochs without the host. Boards
    #: whose store the processor builds only (``ddfa.config.store.BUILT_STORES``). Left
    #: out of the TOML while false.
    dataset_store: bool = field(default=False, metadata={"omit_default": True})
    #: The target clock; None: the board's default (:attr:`Board.clock_mhz`).
    clock_mhz: float | None = None
    #: UART rate of the host link; None: the board's default (:attr:`Board.baud`), which
    #: the validated :class:`Config` fills in, so ``cfg.hardware.baud`` is always a number.
    baud: int | None = None


#: The sections by name, in file order.
SECTIONS = {"model": ModelConfig, "train": TrainConfig, "arith": ArithConfig, "hardware": HardwareConfig}


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


#: How a true/false field may be written as text (``--set``, or a string in TOML).
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True,
               "0": False, "false": False, "no": False, "off": False}


def coerce(cls, fld: str, value: Any, key: str) -> Any:
    """``value`` (from TOML or ``--set``) as the type of field ``fld`` of section class
    ``cls``; ``key`` (``section.field``) names it in the :class:`ConfigError`."""
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
    except (TypeError, ValueError, KeyError, OverflowError):
        raise ConfigError(key, f"{value!r} has the wrong type", f"give a value of type {ftype}") from None
