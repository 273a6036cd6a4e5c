"""Validation of the arithmetic section (ddfa/config.py): every error names the field and
the fix, and the accumulator bound is exact."""

from __future__ import annotations

import math

import pytest
import torch

from ddfa.config import ConfigError, Fixed, default_config
from golden.arith import round_shift

ICE = default_config("icebreaker")
ULX = default_config("ulx3s-85f")


def err_of(base, **changes) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        base.replace(**changes)
    return info.value


@pytest.mark.parametrize("base, changes, field, fix", [
    # accumulators that can overflow for the fan-in
    (ICE, {"arith.acc_width": 38}, "arith.acc_width", "at least 39"),
    (ULX, {"arith.acc_width": 45}, "arith.acc_width", "at least 46"),
    (ICE, {"arith.acc_width": 65, "hardware.board": "none", "model.layers": (64, 32, 10),
           "arith.weight": Fixed(32, 20), "arith.act": Fixed(32, 20)}, "arith.acc_width", "at least"),
    (ICE, {"arith.acc_width": 65}, "arith.acc_width", "at most 64"),
    # PE counts that do not divide the layer
    (ICE, {"hardware.pes": (5, 1)}, "hardware.pes", "divisor of 32: 1, 2, 4, 8, 16, 32"),
    (ULX, {"hardware.pes": (32, 3)}, "hardware.pes", "divisor of 10: 1, 2, 5, 10"),
    (ICE, {"hardware.pes": (4, 1, 1)}, "hardware.pes", "one PE count per layer"),
    # multipliers and memories that exceed the board
    (ICE, {"hardware.pes": (8, 2), "hardware.stream": ()}, "hardware.pes", "fewer PEs"),
    (ICE, {"model.layers": (64, 2048, 10), "hardware.pes": (1, 1), "arith.acc_width": 48}, "model.layers",
     "smaller network"),
    (ULX, {"model.layers": (784, 512, 10), "hardware.pes": (1, 1)}, "model.layers", "larger board"),
    (ICE, {"arith.act": Fixed(18, 12), "arith.acc_width": 42}, "arith.act.width", "at most 16 bits on icebreaker"),
    (ULX, {"arith.feedback": Fixed(20, 14), "arith.acc_width": 50}, "arith.feedback.width", "at most 18 bits"),
    # learning-rate shifts out of range
    (ICE, {"arith.lr_shift": 0}, "arith.lr_shift", "use a shift from 1 to"),
    (ICE, {"arith.lr_shift": 21}, "arith.lr_shift", "use a shift from 1 to 20"),
    (ICE, {"hardware.board": "none", "arith.err": Fixed(28, 10), "arith.act": Fixed(28, 10), "arith.lr_shift": 25,
           "arith.acc_width": 64}, "arith.lr_shift", "use a shift from 1 to 24"),
    (ICE, {"arith.weight": Fixed(16, 14), "arith.err": Fixed(16, 2), "arith.act": Fixed(16, 2), "arith.lr_shift": 9},
     "arith.lr_shift", "use a shift from 11 to"),
    (ICE, {"hardware.board": "none", "arith.err": Fixed(8, 4), "arith.act": Fixed(8, 4), "arith.weight": Fixed(8, 2),
           "arith.lr_shift": 12, "arith.acc_width": 40}, "arith.lr_shift", "use a shift from 1 to 8"),
    (ICE, {"arith.alpha_shift": 17}, "arith.alpha_shift", "from 1 to 16"),
    # stochastic rounding draws 32-bit words
    (ICE, {"hardware.board": "none", "arith.err": Fixed(28, 24), "arith.act": Fixed(20, 12), "arith.lr_shift": 9,
           "arith.acc_width": 64, "arith.rounding": "stochastic"}, "arith.rounding", "at most 32"),
    # the softmax table
    (ICE, {"arith.exp_frac": 10}, "arith.exp_frac", "use 0 to 9"),
    (ICE, {"arith.exp_range": 200}, "arith.exp_range", "exp_range in 1..64"),
    (ICE, {"arith.exp_bits": 16}, "arith.exp_bits", "exp_bits <= 15"),
    (ICE, {"arith.lfsr_width": 21}, "arith.lfsr_width", "use one of"),
])
def test_arith_errors_name_field_and_fix(base, changes, field, fix):
    e = err_of(base, **changes)
    assert e.field == field
    assert fix in e.fix, e
    assert f"config field '{field}'" in str(e) and "Fix:" in str(e)


def test_lr_shift_edges_are_accepted():
    for shift in (1, 20):          # 20: 16 + 16 - 2 - (13 + 9 - 12), the last that can move a weight
        ICE.replace(**{"arith.lr_shift": shift})
    cfg = ICE.replace(**{"hardware.board": "none", "arith.err": Fixed(8, 4), "arith.act": Fixed(8, 4),
                         "arith.weight": Fixed(8, 2), "arith.lr_shift": 8, "arith.acc_width": 40,
                         "arith.exp_frac": 4})
    s_W = cfg.arith.err.frac + cfg.arith.act.frac + cfg.arith.lr_shift - cfg.arith.weight.frac
    biggest = torch.tensor([cfg.arith.err.min * cfg.arith.act.min])
    assert round_shift(biggest, s_W).item() == 1                       # still moves at the top shift
    assert round_shift(biggest, s_W + 1).item() == 0                   # one more: never moves


@pytest.mark.parametrize("m, n, fan_in", [(4, 4, 1), (4, 5, 3), (5, 4, 7), (6, 6, 15), (4, 7, 4), (8, 8, 255)])
def test_acc_width_needed_is_exact(m, n, fan_in):
    """The worst case, fan_in + 1 products min*min, fits acc_width_needed bits, and
    needs all of them when fan_in + 1 is a power of two."""
    cfg = ICE.replace(**{"hardware.board": "none", "arith.weight": Fixed(m, 1), "arith.act": Fixed(n, 1),
                         "arith.err": Fixed(m, 1), "arith.feedback": Fixed(n, 1), "arith.acc_width": 64,
                         "arith.exp_frac": 0, "arith.lr_shift": 1})
    need = cfg.acc_width_needed(fan_in)
    worst = (fan_in + 1) * (-(2 ** (m - 1))) * (-(2 ** (n - 1)))
    assert worst <= 2 ** (need - 1) - 1
    most_negative = (fan_in + 1) * (-(2 ** (m - 1))) * (2 ** (n - 1) - 1)
    assert most_negative >= -(2 ** (need - 1))
    if math.log2(fan_in + 1).is_integer():
        assert worst > 2 ** (need - 2) - 1                             # one bit fewer would overflow


def test_board_none_allows_any_size_and_width():
    cfg = ICE.replace(**{"hardware.board": "none", "model.dataset": "mnist", "model.layers": (784, 1000, 1000, 10),
                         "arith.weight": Fixed(24, 20), "arith.acc_width": 52, "hardware.pes": (3,)})
    assert not cfg.has_board
