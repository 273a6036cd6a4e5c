"""The validated configuration and every quantity derived from it.

:class:`Config` is validated once, when it is made (:func:`ddfa.config.validate.validate`),
and every width, shift or size that more than one module needs is a property here, so
no module re-derives it on its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

import tomli_w

from . import memory, store
from .boards import BOARDS, DEFAULT_BAUD, Board
from .schema import SECTIONS, ArithConfig, ConfigError, Fixed, HardwareConfig, ModelConfig, TrainConfig, coerce
from .validate import validate

__all__ = ["Config"]


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
        validate(self)

    # -- the board -------------------------------------------------------------------

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

    # -- training (the float golden model), ``train.setting`` filling in -------------

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

    # -- the processor's structure ---------------------------------------------------

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

    @property
    def softmax_fold(self) -> bool:
        """With the shared multiplier (signed operands): the softmax's table word
        ``E <= 2**exp_bits`` does not fit a signed operand (``exp_bits + 2`` bits), so
        ``E = 2**exp_bits`` (the only word that needs the top bit) enters as
        ``2**(exp_bits-1)`` times ``2 r``. See :class:`hdl.output.OutputUnit`."""
        return (self.has_board and "softmax" in self.shared_multiplier_units
                and self.arith.exp_bits + 2 > self.board.multiplier_width)

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

    def direction_seed(self, layer: int) -> int:
        """Seed of hidden layer ``layer``'s direction LFSR (layers count from 1): a fixed,
        documented function of ``model.seed`` that is never zero.
        """
        mask = (1 << self.arith.lfsr_width) - 1
        s = (0x9E3779B9 * (self.model.seed + 1) + 0x7F4A7C15 * layer) & mask
        return s or 1

    # -- the dataset store (:mod:`ddfa.config.store`) ---------------------------------

    @property
    def store(self) -> store.StoreLayout | None:
        """The dataset store's layout (:func:`ddfa.config.store.store_layout`); None for
        a board without a store."""
        return store.store_layout(self)

    @property
    def order_seed(self) -> int:
        """The initial state of the epoch-key LFSR of the chip's training order
        (:func:`ddfa.config.store.order_seed`)."""
        return store.order_seed(self)

    @property
    def chip_store(self) -> store.StoreLayout | None:
        """:attr:`store` when the processor has it (``hardware.dataset_store`` on a board
        whose store it builds, :attr:`StoreLayout.built`), else None: the store's commands
        and the epoch runner exist only then."""
        layout = self.store
        return layout if self.hardware.dataset_store and layout is not None and layout.built else None

    # -- arithmetic ------------------------------------------------------------------

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
        MACs (W*y, W*d, + b), the feedback MACs (B*e) and, for backpropagation, the
        backward MACs (W^T delta, at most ``n_L`` or a hidden layer's width of terms).
        """
        a = self.arith
        pairs = [(a.weight, a.act), (a.feedback, a.err), (a.err, a.act)]
        if self.model.algorithm == "bp":
            pairs.append((a.weight, a.err))
        return max(self.sum_width(m.width, n.width, fan_in + 1) for m, n in pairs)

    # -- memories (:mod:`ddfa.config.memory`) ----------------------------------------

    @property
    def registered_bram(self) -> bool:
        """The target's block RAM read data is slow (ECP5 DP16KD without its output
        register): the hardware registers every block-RAM word before any logic uses it.
        ``hdl.layer.host_latency``, ``hdl.layer.weight_stages`` and
        ``hdl.host.mem_bus_latency`` follow from this one fact."""
        return memory.registered_bram(self)

    @property
    def exp_table_in_logic(self) -> bool:
        """The softmax's exponential table is kept in logic (:func:`memory.exp_table_in_logic`)."""
        return memory.exp_table_in_logic(self)

    @property
    def lut_ram(self) -> bool:
        """The target has distributed RAM with asynchronous reads (:func:`memory.lut_ram`)."""
        return memory.lut_ram(self)

    def bank_depth(self, layer: int) -> int:
        """Words in each of layer ``layer``'s ``W`` banks, one per PE: PE ``p`` holds the
        rows ``i = p (mod P_l)``, ``n_{l-1}`` weights each (:mod:`ddfa.config.memory`,
        ``docs/ARITHMETIC.md`` section 7)."""
        n = self.model.layers
        return memory.bank_depth(n[layer], n[layer - 1], self.hardware.pes[layer - 1])

    def bram_slices(self, layer: int) -> tuple[int, ...]:
        """The widths of the column slices, low bits first, that layer ``layer``'s ``W``
        banks are stored in (:func:`ddfa.config.memory.bram_slices`)."""
        return memory.bram_slices(self, layer)

    @property
    def memory_words(self) -> dict[str, tuple[int, int]]:
        """Every learned memory: name -> (words, bits per word)."""
        return memory.memory_words(self)

    @property
    def memory_bits(self) -> int:
        return memory.memory_bits(self)

    # -- construction and serialisation ----------------------------------------------

    def replace(self, **changes: Any) -> "Config":
        """A new, validated configuration with ``section.field`` (or ``section``) changes:
        ``cfg.replace(**{"model.algorithm": "dfa", "train.epochs": 3})``.
        """
        sections = {name: getattr(self, name) for name in SECTIONS}
        name = changes.pop("name", self.name)
        if self._baud_from_board and "hardware.baud" not in changes:
            sections["hardware"] = dataclasses.replace(sections["hardware"], baud=None)
        for key, value in changes.items():
            if "." not in key:
                raise ConfigError(key, "unknown field", "name it as section.field, e.g. model.layers")
            sec, fld = key.split(".", 1)
            if sec not in sections:
                raise ConfigError(key, f"unknown section {sec!r}", f"use one of {', '.join(SECTIONS)}")
            cls = SECTIONS[sec]
            if fld not in {f.name for f in fields(cls)}:
                raise ConfigError(key, "unknown field", f"use one of {', '.join(f.name for f in fields(cls))}")
            sections[sec] = dataclasses.replace(sections[sec], **{fld: coerce(cls, fld, value, key)})
        return Config(name=name, **sections)

    @classmethod
    def from_dict(cls, data: dict, name: str = "custom") -> "Config":
        data = dict(data)
        name = data.pop("name", name)
        sections = {}
        for sec, sec_cls in SECTIONS.items():
            raw = data.pop(sec, {})
            if not isinstance(raw, dict):
                raise ConfigError(sec, "is not a table", f"write it as [{sec}]")
            known = {f.name for f in fields(sec_cls)}
            for k in raw:
                if k not in known:
                    raise ConfigError(f"{sec}.{k}", "unknown field", f"use one of {', '.join(sorted(known))}")
            sections[sec] = sec_cls(**{k: coerce(sec_cls, k, v, f"{sec}.{k}") for k, v in raw.items()})
        if data:
            k = next(iter(data))
            raise ConfigError(k, "unknown section", f"use one of {', '.join(SECTIONS)}")
        return cls(name=name, **sections)

    def to_dict(self) -> dict:
        def conv(v):
            if isinstance(v, Fixed):
                return {"width": v.width, "frac": v.frac}
            if isinstance(v, tuple):
                return list(v)
            return v
        # Unset fields (None: TOML has no null) and empty lists (``hardware.stream`` when
        # nothing streams) are left out, and so are fields marked ``omit_default`` while
        # they hold their default.
        out: dict[str, Any] = {"name": self.name}
        for sec in SECTIONS:
            obj = getattr(self, sec)
            out[sec] = {f.name: conv(getattr(obj, f.name)) for f in fields(obj)
                        if getattr(obj, f.name) not in (None, ())
                        and not (f.metadata.get("omit_default") and getattr(obj, f.name) == f.default)}
        return out

    def to_toml(self) -> str:
        """The configuration as TOML (``tomli_w``): :func:`ddfa.config.load_config` reads
        it back as an equal configuration."""
        return tomli_w.dumps(self.to_dict())
