"""Randomised small processor configurations for the RTL benches.

:func:`random_config` draws, from one seed, a valid configuration the processor can be
built for: digits (64 inputs, 10 classes), 2 to 4 layers of 3 to 16 neurons, PE counts
that divide the layers and fit the board's multipliers, fixed-point formats of 10 to 16
(iCE40) or 18 (ECP5) bits with random binary points, random learning-rate and
feedback shifts, DDFA or random DFA, a random seed, streaming for some of the
one-PE layers (``hardware.stream``) and the shared multiplier for about half of them
(``hardware.share_multiplier``). Narrow formats make saturation and
rounding corner cases frequent, which is the point: the bench demands bit equality with
the golden model whatever the numbers do.
"""

from __future__ import annotations

import random

from ddfa.config import (ArithConfig, BOARDS, Config, ConfigError, Fixed, HardwareConfig, ModelConfig)

__all__ = ["random_config"]


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _draw(rng: random.Random, name: str) -> Config:
    board = rng.choice(["icebreaker", "ulx3s-85f"])
    B = BOARDS[board]
    mw = B.multiplier_width
    # hidden layers: 2 to 4 layers in all (the iCE40's 8 multipliers fit 3 at most)
    depth = rng.choice([1, 2, 3] if B.multipliers >= 11 else [1, 2])
    hidden = tuple(rng.choice([3, 4, 5, 6, 8, 9, 10, 12, 16]) for _ in range(depth))
    layers = (64,) + hidden + (10,)
    L = len(layers) - 1
    pes = []
    budget = B.multipliers - (L - 1) - 1                  # feedback units and the softmax
    for l in range(1, L + 1):
        per = 1 if l == 1 else 2
        rest = sum(1 if k == 1 else 2 for k in range(l + 1, L + 1))   # at least 1 PE each later
        ok = [d for d in _divisors(layers[l]) if d * per <= budget - rest and d <= 8]
        p = rng.choice(ok)
        pes.append(p)
        budget -= p * per

    def fmt(lo: int, hi: int, int_bits_min: int = 2) -> Fixed:
        w = rng.randint(lo, hi)
        return Fixed(w, rng.randint(max(1, w // 2), w - int_bits_min))

    act = fmt(10, mw)
    err = fmt(10, mw)
    weight = fmt(10, mw)
    feedback = fmt(10, mw)
    lo = max(1, weight.frac - err.frac - act.frac + 1)
    lr_shift = rng.randint(lo, lo + 8)
    base = Config(name=name, model=ModelConfig(layers=layers), hardware=HardwareConfig(board="none"))
    acc = base.acc_width_needed(max(max(layers[:-1]), layers[-1])) + rng.randint(0, 4)
    arith = ArithConfig(act=act, err=err, weight=weight, feedback=feedback, acc_width=acc, lr_shift=lr_shift,
                        alpha_shift=rng.randint(1, 8), exp_frac=rng.randint(2, min(6, act.frac)),
                        exp_range=rng.choice([8, 10, 12]), exp_bits=rng.randint(10, mw - 1))
    algorithm = rng.choice(["ddfa", "ddfa", "ddfa", "dfa"])
    model = ModelConfig(layers=layers, algorithm=algorithm, seed=rng.randint(0, 999))
    # Every one-PE layer above layer 1 streams with probability 1/2, drawn from a
    # generator of its own (seeded by what was drawn), so that ``rng`` and with it every
    # configuration, retries included, is what it was before streaming existed.
    srng = random.Random(f"stream {name} {layers} {pes}")
    stream = tuple(l > 1 and p == 1 and srng.random() < 0.5 for l, p in enumerate(pes, start=1))
    # The shared multiplier, with probability 1/2 from the same generator; where the
    # validation refuses it (the softmax quotient does not fit its signed operand), the
    # configuration keeps its own multipliers rather than being drawn again.
    share = srng.random() < 0.5

    def make(share: bool) -> Config:
        return Config(name=name, model=model, arith=arith,
                      hardware=HardwareConfig(board=board, pes=tuple(pes), stream=stream if any(stream) else (),
                                              share_multiplier=share))
    try:
        return make(share)
    except ConfigError as e:
        if not share or e.field != "hardware.share_multiplier":
            raise
        return make(False)


def random_config(seed: int) -> Config:
    """A valid random configuration, the same for the same ``seed`` (draws again until
    the configuration validates)."""
    rng = random.Random(seed)
    for _ in range(100):
        try:
            return _draw(rng, f"random{seed}")
        except ConfigError:
            continue
    raise RuntimeError(f"no valid configuration drawn from seed {seed}")
