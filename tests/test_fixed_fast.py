"""FixedModel.train_step (numpy, used by train_fixed) equals FixedModel.step (the
reference that calls golden/arith.py block by block), bit for bit, step after step."""

from __future__ import annotations

import random

import pytest
import torch

from ddfa.config import ConfigError, Fixed, default_config
from ddfa.data import load_dataset
from golden.fixed import FixedModel

ICE = default_config("icebreaker")


def random_config(seed: int):
    """A valid random software-only configuration (formats, shifts, depth, algorithm)."""
    rng = random.Random(seed)
    while True:
        def fmt(lo=8, hi=24, int_min=2):
            w = rng.randint(lo, hi)
            return Fixed(w, rng.randint(max(1, w // 2), w - int_min))
        act, err, weight, feedback = fmt(), fmt(), fmt(), fmt()
        hidden = tuple(rng.choice([3, 5, 8, 16]) for _ in range(rng.randint(1, 3)))
        try:
            base = ICE.replace(**{"hardware.board": "none", "model.layers": (64,) + hidden + (10,),
                                  "arith.act": act, "arith.err": err, "arith.weight": weight,
                                  "arith.feedback": feedback, "arith.acc_width": 64,
                                  "arith.exp_frac": rng.randint(0, min(6, act.frac)), "arith.exp_range": rng.choice([4, 8, 12]),
                                  "arith.exp_bits": rng.randint(6, 20), "arith.alpha_shift": rng.randint(1, 9),
                                  "model.algorithm": rng.choice(["ddfa", "ddfa", "dfa"]),
                                  "arith.rounding": rng.choice(["nearest", "stochastic"]),
                                  "arith.lfsr_width": rng.choice([8, 16, 20, 32]), "model.seed": rng.randrange(100)})
            lo = max(1, base.arith.weight.frac - err.frac - act.frac + 1)
            return base.replace(**{"arith.lr_shift": rng.randint(lo, lo + 10)})
        except ConfigError:
            continue


CONFIGS = {
    "icebreaker": ICE,
    "icebreaker-dfa": ICE.replace(**{"model.algorithm": "dfa"}),
    "icebreaker-stochastic": ICE.replace(**{"arith.rounding": "stochastic"}),
    "three-hidden": ICE.replace(**{"hardware.board": "none", "model.layers": (64, 16, 12, 8, 10)}),
    # saturates W, b, B, a and g within the 60 steps (checked below)
    "saturating": ICE.replace(**{"arith.weight": Fixed(8, 6), "arith.feedback": Fixed(8, 6), "arith.act": Fixed(10, 7),
                                 "arith.exp_frac": 5, "arith.lr_shift": 1, "arith.alpha_shift": 1}),
    **{f"random{s}": random_config(s) for s in range(8)},
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("name", CONFIGS)
def test_fast_step_equals_reference(name, digits):
    cfg = CONFIGS[name]
    ref, fast = FixedModel(cfg), FixedModel(cfg)
    x = ref.quantize_input(digits.x_train[:60])
    L = cfg.model.n_layers
    for k in range(60):
        label = int(digits.y_train[k])
        out = ref.step(x[k], label)
        y = fast.train_step(x[k].numpy(), label)
        assert y.tolist() == out[f"y{L}"].tolist(), f"y_L at step {k}"
        assert fast.memory_words() == ref.memory_words(), f"memories after step {k}"
        assert [s.state for s in fast.lfsr] == [s.state for s in ref.lfsr]
        if cfg.arith.rounding == "stochastic":
            assert [s.state for s in fast.xorshift] == [s.state for s in ref.xorshift]
    assert fast.steps == ref.steps == 60
    assert fast.state_hash() == ref.state_hash()
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.int64 for t in fast.W + fast.b + fast.B)


def test_saturating_config_saturates(digits):
    cfg = CONFIGS["saturating"]
    ar = cfg.arith
    m = FixedModel(cfg)
    x = m.quantize_input(digits.x_train[:60])
    hits = 0
    for k in range(60):
        out = m.step(x[k], int(digits.y_train[k]))
        hits += int(((out["a1"] == ar.act.max) | (out["a1"] == ar.act.min)).sum())
    edge = lambda ts, f: sum(int(((t == f.max) | (t == f.min)).sum()) for t in ts)
    assert hits > 0 and edge(m.W + m.b, ar.weight) > 0 and edge(m.B, ar.feedback) > 0
