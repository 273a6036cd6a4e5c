"""The rules a valid configuration obeys, one small check per section.

:func:`validate` runs when a :class:`~ddfa.config.Config` is made: each check raises a
:class:`~ddfa.config.ConfigError` that names the field, the problem and the fix, on one
line. Every rule is here once; :data:`BOARD_CHECKS` apply only to a configuration with a
board.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .boards import BOARDS
from .pll import board_makes_clock
from .schema import (ALGORITHMS, DATASET_SHAPES, DATASETS, INPUT_SCALINGS, LFSR_TAPS, STD_FLOOR, ConfigError,
                     Fixed, dataset_is_file)

if TYPE_CHECKING:
    from .core import Config

__all__ = ["validate", "CHECKS", "BOARD_CHECKS"]


def validate(cfg: Config) -> None:
    """Every check of :data:`CHECKS` in order, then, with a board, of
    :data:`BOARD_CHECKS`; raises the first :class:`ConfigError`."""
    for check in CHECKS + (BOARD_CHECKS if cfg.has_board else ()):
        check(cfg)


def _choice(key: str, value, allowed: tuple, what: str, fix: str | None = None) -> None:
    if value not in allowed:
        raise ConfigError(key, f"unknown {what} {value!r}", fix or f"use one of {', '.join(allowed)}")


def _count(key: str, value: int, what: str) -> None:
    """An integer count that must be at least 1."""
    if value < 1:
        raise ConfigError(key, f"{value} {what}", f"use at least 1 {what}")


def _finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def check_name(cfg: Config) -> None:
    """``name`` is a string (any: the hash leaves it out)."""
    if not isinstance(cfg.name, str):
        raise ConfigError("name", f"{cfg.name!r} is not a string", "write it as name = \"my-net\"")


def check_model(cfg: Config) -> None:
    """The data set, its input scaling, the algorithm and the layer sizes. A data set
    file's shape is checked when it is read (:func:`ddfa.data.load_config_dataset`)."""
    m = cfg.model
    is_file = isinstance(m.dataset, str) and dataset_is_file(m.dataset)
    if not is_file:
        _choice("model.dataset", m.dataset, DATASETS, "data set",
                f"use one of {', '.join(DATASETS)}, or the path of a .npz or .csv file or of a folder "
                "of IDX files (with a slash: ./my-idx)")
    if not (isinstance(m.label_column, str) and m.label_column.strip()):
        raise ConfigError("model.label_column", f"{m.label_column!r} is empty", "name the CSV header's label column")
    if not (_finite(m.test_fraction) and 0 < m.test_fraction < 1):
        raise ConfigError("model.test_fraction", f"{m.test_fraction} is outside (0, 1)", "use for instance 0.2")
    if m.test_file and not (is_file and m.dataset.lower().endswith(".csv") and m.test_file.lower().endswith(".csv")):
        raise ConfigError("model.test_file", f"{m.test_file!r} goes with a .csv data set and must be a .csv file",
                          "give model.dataset and model.test_file as .csv files, or leave test_file out")
    _choice("model.inputs", m.inputs, INPUT_SCALINGS, "input scaling")
    _choice("model.algorithm", m.algorithm, ALGORITHMS, "algorithm")
    if len(m.layers) < 2 or any(not isinstance(n, int) or n < 1 for n in m.layers):
        raise ConfigError("model.layers", f"{m.layers!r} is not a list of at least two positive sizes",
                          "give input, hidden and output sizes, e.g. [64, 32, 10]")
    if is_file:
        if m.conv:
            raise ConfigError("model.conv", "the paper's CNN needs 28x28 images", "use mnist or fashion-mnist")
        return
    n_in, n_out = DATASET_SHAPES[m.dataset]
    if m.layers[0] != n_in or m.layers[-1] != n_out:
        raise ConfigError("model.layers", f"{list(m.layers)} does not match {m.dataset} "
                          f"({n_in} inputs, {n_out} classes)", f"start the list with {n_in} and end it with {n_out}")
    if m.conv and m.dataset == "digits":
        raise ConfigError("model.conv", "the paper's CNN needs 28x28 images", "use mnist or fashion-mnist")


def check_train(cfg: Config) -> None:
    """The float model's training: counts at least 1, finite positive rates, choices."""
    t = cfg.train
    _choice("train.setting", t.setting, ("paper", "hardware"), "setting", "use paper or hardware")
    _count("train.epochs", t.epochs, "epoch")
    if t.batch_size is not None:
        _count("train.batch_size", t.batch_size, "sample per batch")
    if t.lr is not None and not (_finite(t.lr) and t.lr > 0):
        raise ConfigError("train.lr", f"learning rate {t.lr}", "use a finite, positive learning rate such as 1e-4")
    if t.lr_decay is not None and not (_finite(t.lr_decay) and 0 < t.lr_decay <= 1):
        raise ConfigError("train.lr_decay", f"lr_decay = {t.lr_decay} is outside (0, 1]",
                          "use a per-epoch factor such as 0.95, or 1.0 for a constant rate")
    if t.alpha is not None and not (_finite(t.alpha) and 0 < t.alpha < 1):
        raise ConfigError("train.alpha", f"alpha = {t.alpha} is outside (0, 1)", "use for instance 2**-6 = 0.015625")
    if t.weight_decay is not None and not (_finite(t.weight_decay) and t.weight_decay >= 0):
        raise ConfigError("train.weight_decay", f"weight_decay = {t.weight_decay}",
                          "use a finite decay of 0 or more, such as 1e-6")
    for key, allowed in (("optimizer", ("adam", "sgd")), ("directions", ("gaussian", "rademacher")),
                         ("feedback_update", ("adam", "ema")), ("init", ("default", "zero"))):
        v = getattr(t, key)
        if v is not None:
            _choice(f"train.{key}", v, allowed, "choice")


def _check_format(name: str, f) -> None:
    if not isinstance(f, Fixed):
        raise ConfigError(f"arith.{name}", f"{f!r} is not a fixed-point format", "write {width = 16, frac = 12}")
    if not 4 <= f.width <= 32:
        raise ConfigError(f"arith.{name}.width", f"{f.width} bits is outside 4..32", "choose 4 to 32 bits")
    if not 1 <= f.frac <= f.width - 2:
        raise ConfigError(f"arith.{name}.frac", f"{f.frac} fractional bits of {f.width}",
                          f"keep 1 to {f.width - 2} fractional bits, so that +1.0 is representable")


def check_formats(cfg: Config) -> None:
    """The four fixed-point formats; ``act`` holds the scaled inputs."""
    m, a = cfg.model, cfg.arith
    for name in ("act", "err", "weight", "feedback"):
        _check_format(name, getattr(a, name))
    reach = 2 / STD_FLOOR                 # |standardised pixel| <= (1 - (-1)) / STD_FLOOR
    if m.inputs == "standardize" and 2.0 ** (a.act.width - a.act.frac - 1) < reach:
        need = (int(reach) - 1).bit_length() + 1  # integer bits, sign included
        raise ConfigError("arith.act", f"{a.act} holds inputs up to +-{2.0 ** (a.act.width - a.act.frac - 1):g}, "
                          f"standardised pixels reach +-{reach:g}",
                          f"give arith.act at least {need} integer bits (frac <= {a.act.width - need}) "
                          "or set model.inputs = \"pm1\"")


def check_accumulator(cfg: Config) -> None:
    """``acc_width`` holds every MAC's sum (:meth:`Config.acc_width_needed`), at most 64 bits."""
    m, a = cfg.model, cfg.arith
    fan_in = max(max(m.layers[:-1]), m.layers[-1])
    need = cfg.acc_width_needed(fan_in)
    if a.acc_width < need:
        raise ConfigError("arith.acc_width", f"{a.acc_width} bits can overflow for fan-in {fan_in} "
                          f"(products need up to {need} bits)", f"set arith.acc_width to at least {need}")
    if a.acc_width > 64:
        raise ConfigError("arith.acc_width", f"{a.acc_width} bits exceeds 64", "use at most 64 bits")


def check_update(cfg: Config) -> None:
    """The update's shifts and rounding, and the direction generators' LFSR."""
    a = cfg.arith
    # The weight update rounds delta*y (err.frac + act.frac fractional bits) by
    # s_W = err.frac + act.frac + lr_shift - weight.frac bits (ARITHMETIC.md 5.5).
    # s_W >= 1: a shift, not a multiplication. |delta*y| <= 2**(err.width + act.width - 2),
    # so s_W >= err.width + act.width - 1 would round every update to zero.
    base = a.weight_update_shift - a.lr_shift      # the update shift without lr_shift
    lo = max(1, 1 - base)
    hi = min(24, a.err.width + a.act.width - 2 - base)
    if not lo <= a.lr_shift <= hi:
        raise ConfigError("arith.lr_shift", f"eta = 2**-{a.lr_shift} is out of range for these formats "
                          f"(the update shift err.frac + act.frac + lr_shift - weight.frac would be "
                          f"{a.weight_update_shift}; below 1 it is no shift, from "
                          f"{a.err.width + a.act.width - 1} on every update rounds to zero)",
                          f"use a shift from {lo} to {hi}" if lo <= hi else
                          "no shift works: give err and act more fractional bits than weight has")
    if not 1 <= a.alpha_shift <= 16:
        raise ConfigError("arith.alpha_shift", f"alpha = 2**-{a.alpha_shift} is out of range", "use a shift from 1 to 16")
    _choice("arith.rounding", a.rounding, ("nearest", "stochastic"), "rounding", "use nearest or stochastic")
    if a.rounding == "stochastic" and a.weight_update_shift > 32:
        raise ConfigError("arith.rounding", f"stochastic rounding draws 32-bit words, but the weight update "
                          f"drops {a.weight_update_shift} bits (err.frac + act.frac + lr_shift - weight.frac)",
                          "keep that shift at most 32 (fewer fractional bits or a smaller lr_shift), "
                          "or use rounding = \"nearest\"")
    if a.lfsr_width not in LFSR_TAPS:
        raise ConfigError("arith.lfsr_width", f"no LFSR of {a.lfsr_width} bits",
                          f"use one of {', '.join(map(str, sorted(LFSR_TAPS)))}")


def check_softmax(cfg: Config) -> None:
    """The softmax table: index step, range, entry bits and size."""
    a = cfg.arith
    if not 0 <= a.exp_frac <= a.act.frac:
        raise ConfigError("arith.exp_frac", f"{a.exp_frac} index bits finer than the activations' {a.act.frac}",
                          f"use 0 to {a.act.frac}")
    if not 1 <= a.exp_range <= 64 or not 4 <= a.exp_bits <= 24 or a.exp_entries > 4096:
        raise ConfigError("arith.exp_range", "the softmax table is out of range",
                          "keep exp_range in 1..64, exp_bits in 4..24 and exp_range * 2**exp_frac <= 4096")


def check_hardware(cfg: Config) -> None:
    """The board, its clock (one the board's PLL makes, :mod:`ddfa.config.pll`) and the
    UART rate; the board-fit checks are :data:`BOARD_CHECKS`."""
    h = cfg.hardware
    if h.board != "none" and h.board not in BOARDS:
        raise ConfigError("hardware.board", f"unknown board {h.board!r}", f"use one of {', '.join(BOARDS)} or none")
    if h.clock_mhz is not None:
        if h.board == "none":
            if not (_finite(h.clock_mhz) and h.clock_mhz > 0):
                raise ConfigError("hardware.clock_mhz", f"{h.clock_mhz} MHz", "use a positive clock such as 30")
        else:
            board = BOARDS[h.board]
            if not (_finite(h.clock_mhz) and board_makes_clock(board, h.clock_mhz)):
                lo, hi = board.clock_range_mhz
                raise ConfigError("hardware.clock_mhz", f"the {board.family} PLL of {board.name} cannot make "
                                  f"{h.clock_mhz:g} MHz (within 2 %) from its {board.osc_mhz:g} MHz oscillator",
                                  f"use a clock from {lo:g} to {hi:g} MHz that it makes, such as the default "
                                  f"{board.clock_mhz:g}, or {board.osc_mhz:g} MHz (no PLL)")
    if not isinstance(h.baud, int) or not 300 <= h.baud <= 12_000_000:
        raise ConfigError("hardware.baud", f"{h.baud!r} baud", "use 300 to 12000000 (e.g. 115200 or 3000000)")


def check_layers(cfg: Config) -> None:
    """With a board: a fully-connected network, one PE count (dividing its layer) and,
    if any, one stream flag per layer; a streaming layer has one PE."""
    m, h = cfg.model, cfg.hardware
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


def check_multipliers(cfg: Config) -> None:
    """With a board: every multiplier operand fits its width, and there are enough."""
    a, h, board = cfg.arith, cfg.hardware, cfg.board
    if h.share_multiplier and len(cfg.shared_multiplier_units) < 2:
        raise ConfigError("hardware.share_multiplier", "nothing to share: without a hidden layer the "
                          "softmax is the only unit that could use it", "set hardware.share_multiplier = false")
    mw = board.multiplier_width
    if a.exp_bits + 1 > mw:
        raise ConfigError("arith.exp_bits", f"softmax table entries of {a.exp_bits + 1} bits do not fit the "
                          f"{board.device}'s {mw}-bit multipliers", f"use exp_bits <= {mw - 1}")
    for name in ("act", "err", "weight", "feedback"):
        f = getattr(a, name)
        if f.width > mw:
            raise ConfigError(f"arith.{name}.width", f"{f.width} bits exceed the {board.device}'s "
                              f"{mw}-bit multipliers", f"use at most {mw} bits on {board.name}")
    if h.share_multiplier:
        # The quotient r <= 2**err.frac is a signed operand of the shared multiplier
        # (doubled when the table word is folded, see Config.softmax_fold).
        r_bits = a.err.frac + 2 + cfg.softmax_fold
        if r_bits > mw:
            raise ConfigError("hardware.share_multiplier", f"the softmax quotient needs a {r_bits}-bit signed "
                              f"operand, the {board.device}'s multipliers have {mw} bits",
                              f"use err.frac <= {a.err.frac - (r_bits - mw)}, or set "
                              "hardware.share_multiplier = false")
    if cfg.multipliers_needed > board.multipliers:
        raise ConfigError("hardware.pes", f"{cfg.multipliers_needed} multipliers needed, the {board.device} "
                          f"has {board.multipliers}", "use fewer PEs per layer")


def check_memory(cfg: Config) -> None:
    """With a board: the learned memories fit its block and single-port RAM."""
    board = cfg.board
    if cfg.memory_bits > board.memory_bits:
        raise ConfigError("model.layers", f"the memories need {cfg.memory_bits} bits, the {board.device} has "
                          f"{board.memory_bits}", "use a smaller network, narrower formats or a larger board")


#: The checks of every configuration, sections in file order.
CHECKS = (check_name, check_model, check_train, check_formats, check_accumulator, check_update, check_softmax,
          check_hardware)
#: The checks of a configuration with a board (after :data:`CHECKS`).
def check_store(cfg: Config) -> None:
    """``hardware.dataset_store`` only on a board whose store the processor builds, with
    inputs that fit the store's 16-bit table words."""
    if not cfg.hardware.dataset_store:
        return
    layout = cfg.store
    if layout is None or not layout.built:
        kind = f"its {layout.kind} store is not built yet" if layout is not None else "it has no dataset store"
        raise ConfigError("hardware.dataset_store", f"board {cfg.hardware.board!r}: {kind}",
                          "set hardware.dataset_store = false (train over the link) or use --board icebreaker")
    if cfg.arith.act.width > 16:
        raise ConfigError("hardware.dataset_store", f"{cfg.arith.act.width}-bit inputs do not fit the store's "
                          f"16-bit table words", "use an arith.act format of at most 16 bits")


BOARD_CHECKS = (check_layers, check_multipliers, check_memory, check_store)
