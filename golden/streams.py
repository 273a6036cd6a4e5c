"""Fast, exactly equivalent generators for the random streams of the arithmetic contract.

``docs/ARITHMETIC.md`` section 4 defines two streams one step at a time:

* the direction generators, right-shifting Galois LFSRs (:class:`golden.arith.Lfsr`),
  one bit per hidden neuron per training step;
* the stochastic-rounding streams (golden model only), xorshift32 (13, 17, 5), one
  32-bit word per rounded update term.

Stepping them bit by bit in Python is the golden model's hot spot (a 784-128-10
network with stochastic rounding needs about 100,000 words a step). Both generators
are linear maps ``T`` over GF(2) on their state, so the ``k``-th output is a fixed
linear function of the state ``k`` steps back. The classes here precompute those
functions once per generator kind and then produce whole blocks with a few numpy
operations:

* LFSR: output bit ``k`` is ``parity(R_k & s)`` where ``R_k`` is the first row of
  ``T^k`` (a ``width``-bit word), for ``k < BLOCK``; the state then jumps by
  ``T^BLOCK``.
* xorshift32: word ``k`` is ``T^(k+1) s``, computed from byte lookup tables of
  ``T^i`` for ``i <= BLOCK`` applied to block starts ``T^(j BLOCK) s``.

The results are bit-identical to stepping; ``tests/test_fixed_streams.py`` checks it
against the one-step definitions (``golden.arith.Lfsr`` and :func:`xorshift32_step`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .arith import Lfsr, lfsr_mask

__all__ = ["LfsrStream", "Xorshift32Stream", "xorshift32_step", "XORSHIFT_SALT", "sr_seed"]

#: Salt of the stochastic-rounding seeds (``ARITHMETIC.md`` 4.2).
XORSHIFT_SALT = 0x5BD1E995
M32 = 0xFFFFFFFF


def sr_seed(direction_seed: int) -> int:
    """Seed of a layer's stochastic-rounding stream: ``direction_seed(l) ^ 0x5bd1e995``
    (32 bits), or 1 when that is zero (xorshift32 must not start at 0)."""
    return ((direction_seed ^ XORSHIFT_SALT) & M32) or 1


def xorshift32_step(x: int) -> int:
    """One step of Marsaglia's xorshift32 with shifts (13, 17, 5); the new state is the
    output word."""
    x ^= (x << 13) & M32
    x ^= x >> 17
    x ^= (x << 5) & M32
    return x


def _galois_step(s: int, mask: int) -> int:
    """One right-shifting Galois step on any state (zero included: the map is linear)."""
    return (s >> 1) ^ (mask if s & 1 else 0)


def _byte_tables(columns: np.ndarray) -> np.ndarray:
    """``columns[i, b] = M_i e_b`` (images of the basis vectors under linear maps ``M_i``,
    ``nbits`` of them) to byte lookup tables ``tab[i, p, v] = M_i (v << 8 p)``."""
    n, nbits = columns.shape
    nbytes = (nbits + 7) // 8
    tab = np.zeros((n, nbytes, 256), dtype=np.uint64)
    for p in range(nbytes):
        for v in range(1, 256):
            low = (v & -v).bit_length() - 1           # lowest set bit of v
            bit = 8 * p + low
            col = columns[:, bit] if bit < nbits else np.zeros(n, dtype=np.uint64)
            tab[:, p, v] = tab[:, p, v & (v - 1)] ^ col
    return tab


def _apply(tab_row: list[list[int]], s: int) -> int:
    """A linear map given by byte tables (one row of :func:`_byte_tables`) applied to ``s``."""
    out = 0
    for p, t in enumerate(tab_row):
        out ^= t[(s >> (8 * p)) & 0xFF]
    return out


# --------------------------------------------------------------------------------------
# Direction generators (ARITHMETIC.md 4.1)
# --------------------------------------------------------------------------------------

LFSR_BLOCK = 4096


@lru_cache(maxsize=None)
def _lfsr_tables(width: int, block: int):
    """``rows[k]`` (uint64): bit ``b`` is the output bit ``k`` of the LFSR started at
    ``e_b``; ``jump``: byte tables of ``T^block``."""
    mask = lfsr_mask(width)
    rows = np.zeros(block, dtype=np.uint64)
    jump_cols = np.zeros((1, width), dtype=np.uint64)
    for b in range(width):
        s = 1 << b
        col = 0
        for k in range(block):
            col |= (s & 1) << k
            s = _galois_step(s, mask)
        jump_cols[0, b] = s
        # scatter the k-th output bit of basis state e_b into rows[k], bit b
        bits = np.frombuffer(col.to_bytes((block + 7) // 8, "little"), dtype=np.uint8)
        bits = np.unpackbits(bits, bitorder="little")[:block].astype(np.uint64)
        rows |= bits << np.uint64(b)
    jump = [[int(x) for x in t] for t in _byte_tables(jump_cols)[0]]
    return rows, jump


class LfsrStream:
    """The direction generator of one hidden layer, bit-identical to
    :class:`golden.arith.Lfsr` but producing bits a block at a time.

    Parameters
    ----------
    width : int
        ``arith.lfsr_width``.
    seed : int
        ``Config.direction_seed(l)`` (never zero).

    Notes
    -----
    It offers the interface :func:`golden.arith.directions` uses (``bits(n)`` returns a
    list of ints) and ``state``, the state of the equivalent one-step LFSR after the bits
    drawn so far (reading it steps a copy up to ``LFSR_BLOCK`` times; it is meant for
    export, not for the inner loop). Assigning ``state`` restarts the stream there.
    """

    def __init__(self, width: int, seed: int, block: int = LFSR_BLOCK):
        self.width = width
        self.mask = lfsr_mask(width)
        self.block = block
        self._rows, self._jump = _lfsr_tables(width, block)
        self.state = seed

    @property
    def state(self) -> int:
        lfsr = Lfsr(self.width, self._base)
        for _ in range(self._pos):
            lfsr.step()
        return lfsr.state

    @state.setter
    def state(self, seed: int) -> None:
        s = seed & ((1 << self.width) - 1)
        if s == 0:
            raise ValueError("an LFSR seed must not be zero")
        self._base, self._pos = s, 0
        self._fill()

    def _fill(self) -> None:
        s = np.uint64(self._base)
        self._buf = (np.bitwise_count(self._rows & s) & 1).astype(np.int64)

    def _advance_block(self) -> None:
        self._base = _apply(self._jump, self._base)
        self._pos -= self.block
        self._fill()

    def bits_array(self, n: int) -> np.ndarray:
        """The next ``n`` output bits as an int64 array (first drawn first)."""
        out = [np.zeros(0, dtype=np.int64)]
        while n > 0:
            if self._pos >= self.block:
                self._advance_block()
            take = min(n, self.block - self._pos)
            out.append(self._buf[self._pos:self._pos + take])
            self._pos += take
            n -= take
        return out[1] if len(out) == 2 else np.concatenate(out)

    def bits(self, n: int) -> list[int]:
        """The next ``n`` output bits, as :meth:`golden.arith.Lfsr.bits`."""
        return self.bits_array(n).tolist()

    def step(self) -> int:
        return int(self.bits_array(1)[0])


# --------------------------------------------------------------------------------------
# Stochastic-rounding streams (ARITHMETIC.md 4.2)
# --------------------------------------------------------------------------------------

XS_BLOCK = 1024


@lru_cache(maxsize=None)
def _xorshift_tables(block: int):
    """Byte tables of ``T^i``, ``i = 1..block``, as rows ``rows[p, v, i-1] = T^i (v << 8p)``
    (uint32), and the byte tables of ``T^block`` (the jump from one block start to the next)."""
    cols = np.zeros((block + 1, 32), dtype=np.uint64)
    x = np.uint64(1) << np.arange(32, dtype=np.uint64)
    m = np.uint64(M32)
    for i in range(block + 1):
        cols[i] = x
        x = x ^ ((x << np.uint64(13)) & m)
        x = x ^ (x >> np.uint64(17))
        x = x ^ ((x << np.uint64(5)) & m)
    tab = _byte_tables(cols)
    jump = [[int(v) for v in t] for t in tab[block]]
    # rows[p, v] = (T^(i+1) (v << 8p))_{i < block}: contiguous rows, gathered by start byte
    rows = np.ascontiguousarray(tab[1:block + 1].transpose(1, 2, 0)).astype(np.uint32)
    return rows, jump


class Xorshift32Stream:
    """A layer's stochastic-rounding stream: xorshift32 (13, 17, 5), one word per draw,
    the word being the state after the step; bit-identical to repeating
    :func:`xorshift32_step`, but ``words(n)`` produces ``n`` words with a few numpy
    gathers.

    Parameters
    ----------
    seed : int
        The start state (nonzero, 32 bits); see :func:`sr_seed`.
    """

    def __init__(self, seed: int, block: int = XS_BLOCK):
        if not 0 < seed <= M32:
            raise ValueError("a xorshift32 seed must be a nonzero 32-bit word")
        self.state = seed
        self.block = block
        self._rows, self._jump = _xorshift_tables(block)

    def words(self, n: int) -> np.ndarray:
        """The next ``n`` words (uint32 values in an int64 array); the state advances by
        ``n`` steps."""
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        K = self.block
        J = -(-n // K)
        starts = np.empty(J, dtype=np.uint64)
        s = self.state
        for j in range(J):
            starts[j] = s
            s = _apply(self._jump, s)
        # out[j, i] = T^(i+1) starts[j]: XOR of one table row per byte of the start
        out = self._rows[0][(starts & np.uint64(0xFF)).astype(np.intp)]
        for p in range(1, 4):
            out ^= self._rows[p][((starts >> np.uint64(8 * p)) & np.uint64(0xFF)).astype(np.intp)]
        flat = out.reshape(-1)[:n]
        self.state = int(flat[-1])
        return flat.astype(np.int64)
