"""The fast random streams of golden/streams.py equal the one-step definitions."""

from __future__ import annotations

import random

import pytest

from ddfa.config import LFSR_TAPS
from golden.arith import Lfsr
from golden.streams import LfsrStream, Xorshift32Stream, sr_seed, xorshift32_step


@pytest.mark.parametrize("width", sorted(LFSR_TAPS))
def test_lfsr_stream_equals_lfsr(width):
    rng = random.Random(width)
    seed = rng.randrange(1, 1 << width)
    ref = Lfsr(width, seed)
    fast = LfsrStream(width, seed, block=256)        # small block: many block crossings
    for n in [1, 0, 5, 255, 256, 257, 3, 700, 31, 1]:
        assert fast.bits(n) == ref.bits(n)
        assert fast.state == ref.state
    assert fast.step() == ref.step()


def test_lfsr_stream_default_block_and_reseed():
    ref, fast = Lfsr(32, 0xDEADBEEF), LfsrStream(32, 0xDEADBEEF)
    assert fast.bits(10000) == ref.bits(10000)
    assert fast.state == ref.state
    fast.state = 0x1234                               # what the benches and from_images do
    ref = Lfsr(32, 0x1234)
    assert fast.bits(5000) == ref.bits(5000) and fast.state == ref.state
    with pytest.raises(ValueError):
        fast.state = 0


def test_xorshift32_reference_values():
    """Marsaglia (2003), "Xorshift RNGs": xor32 from y = 2463534242 returns 723471715 first."""
    assert xorshift32_step(2463534242) == 723471715
    assert xorshift32_step(1) == 270369


@pytest.mark.parametrize("block", [8, 1024])
def test_xorshift32_stream_equals_stepping(block):
    seed = sr_seed(0x9E3779B9)
    fast, s = Xorshift32Stream(seed, block=block), seed
    for n in [1, 7, 8, 9, 100, 1000, 3]:
        words = fast.words(n).tolist()
        ref = []
        for _ in range(n):
            s = xorshift32_step(s)
            ref.append(s)
        assert words == ref
        assert fast.state == s
    assert all(0 < w < 2 ** 32 for w in words)


def test_sr_seed_never_zero():
    assert sr_seed(0x5BD1E995) == 1
    assert sr_seed(0) == 0x5BD1E995
