"""The memory-mapping policy: where every learned word lives and what holds it.

**Banking** (``docs/ARITHMETIC.md`` section 7). Layer ``l``'s weights ``W_l``
(``n_l x n_{l-1}``) are held in ``P_l`` banks, one per PE: PE ``p = i mod P_l`` holds row
``i``, and word ``W_l[i, j]`` is at address ``(i div P_l) * n_{l-1} + j`` of that bank
(:func:`bank_address`, :func:`split_banks`, :func:`bank_depth`). The golden model's
images, the processor's memories and the host's memory map all follow this one rule.

**Block RAM** (``docs/ARCHITECTURE.md``, "Banking"). Where a bank is deeper than the
block RAM's widest aspect on a family with ``bram_aspects`` (the ECP5), its words are
sliced into columns, each one block RAM deep enough for the whole bank
(:func:`aspect_slices`, :func:`bram_slices`), unless that would leave too few blocks for
the other memories (:data:`BRAM_RESERVE`).

The functions that take a configuration read only its validated fields and its board.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, TypeVar

if TYPE_CHECKING:
    from .core import Config

__all__ = ["BRAM_RESERVE", "bank_depth", "bank_address", "split_banks", "aspect_slices", "bram_slices",
           "bank_blocks", "registered_bram", "lut_ram", "exp_table_in_logic", "memory_words", "memory_bits"]

#: Block RAMs left for the memories other than the ``W`` banks when those are sliced
#: (:func:`bram_slices`): the x, y and d buffers, b, B, the e FIFO and the link's
#: frame buffer (12 on the ULX3S default).
BRAM_RESERVE = 16

Rows = TypeVar("Rows")


# --------------------------------------------------------------------------------------
# Banking: which PE holds row i, and at which address
# --------------------------------------------------------------------------------------

def bank_depth(n_out: int, n_in: int, pes: int) -> int:
    """Words in each of the ``pes`` banks of an ``n_out x n_in`` weight matrix: each PE
    holds ``n_out / pes`` rows of ``n_in`` weights."""
    return n_out // pes * n_in


def bank_address(i: int, j: int, n_in: int, pes: int) -> tuple[int, int]:
    """``(pe, address)`` of weight ``W[i, j]`` (``n_in`` columns, ``pes`` banks): PE
    ``i mod pes``, address ``(i div pes) * n_in + j``."""
    return i % pes, (i // pes) * n_in + j


def split_banks(rows: Rows, pes: int) -> list[Rows]:
    """The ``pes`` banks of a weight matrix given as its rows (a tensor, an array or a
    list of rows): bank ``p`` is rows ``p, p + pes, p + 2 pes, ...`` in order, so its
    row-major words are at the addresses of :func:`bank_address`."""
    return [rows[p::pes] for p in range(pes)]


# --------------------------------------------------------------------------------------
# Block RAM
# --------------------------------------------------------------------------------------

def aspect_slices(aspects: Sequence[tuple[int, int]], depth: int, width: int) -> tuple[int, ...] | None:
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


def bank_blocks(cfg: Config) -> int:
    """Block RAMs of every layer's ``W`` banks, deep banks sliced (:func:`aspect_slices`),
    the others in whole blocks of the shallowest aspect."""
    aspects, width, total = cfg.board.bram_aspects, cfg.arith.weight.width, 0
    (d0, w0) = aspects[0]
    for l in range(1, cfg.model.n_layers + 1):
        depth = cfg.bank_depth(l)
        slices = aspect_slices(aspects, depth, width)
        blocks = len(slices) if slices else -(-depth // d0) * -(-width // w0)
        total += cfg.hardware.pes[l - 1] * blocks
    return total


def bram_slices(cfg: Config, layer: int) -> tuple[int, ...]:
    """The widths of the column slices, low bits first, that layer ``layer``'s ``W``
    banks are stored in: ``(weight.width,)`` (one memory) unless a bank is deeper than
    the block RAM's widest aspect on a board with ``bram_aspects`` (the ECP5). There
    each slice is as wide as one block RAM that holds every word of the bank
    (:func:`aspect_slices`; the ULX3S default's 6,272-word banks of 18-bit weights:
    nine 8,192 x 2 DP16KD), so a word is read from every slice at once and goes
    straight into its register: no read multiplexer after the block RAMs, whose
    outputs are slow (:func:`registered_bram`), and no read-address register to
    select it. ``docs/ARCHITECTURE.md``, "Banking".

    Slices can take up to 1.8 times the block RAMs of whole banks (nine 8,192 x 2
    slices hold what five 1,024 x 18 blocks and a multiplexer hold). Where every
    layer's banks, sliced, would leave fewer than :data:`BRAM_RESERVE` blocks for the
    other memories, the banks stay whole: a configuration that fits keeps fitting."""
    width = cfg.arith.weight.width
    aspects = cfg.board.bram_aspects if cfg.has_board else ()
    slices = aspect_slices(aspects, cfg.bank_depth(layer), width)
    if slices is None or bank_blocks(cfg) > cfg.board.ebr_blocks - BRAM_RESERVE:
        return (width,)
    return slices


def registered_bram(cfg: Config) -> bool:
    """The target's block RAM read data is slow (ECP5 DP16KD without its output
    register): the hardware registers every block-RAM word before any logic uses it."""
    return cfg.has_board and cfg.board.family_info.registered_bram


def exp_table_in_logic(cfg: Config) -> bool:
    """The softmax's exponential table (a few hundred words, read every cycle of the
    error phase, its word going straight into a multiplier's operand) is kept in logic,
    not block RAM: where block RAM is slow to read (:func:`registered_bram`, the ECP5,
    5.8 ns from clock to data) and logic is plentiful. Its read stays registered, so the
    cycles are the same either way."""
    return registered_bram(cfg)


def lut_ram(cfg: Config) -> bool:
    """The target has distributed RAM with asynchronous reads (the ECP5's LUT RAM). The
    iCE40 has none: there a small memory read in the same cycle would be flip-flops and
    multiplexers, so a streaming layer's row sums live in block RAM with registered
    reads instead."""
    return cfg.has_board and cfg.board.family_info.lut_ram


# --------------------------------------------------------------------------------------
# The learned memories
# --------------------------------------------------------------------------------------

def memory_words(cfg: Config) -> dict[str, tuple[int, int]]:
    """Every learned memory: name -> (words, bits per word), in the order
    ``W1, b1, B1, W2, b2, ...`` (``B_l`` for hidden layers only, and none for
    backpropagation, ``model.algorithm = "bp"``, which has no feedback matrices)."""
    a, L = cfg.arith, cfg.model.layers
    feedback = cfg.model.algorithm != "bp"
    mem: dict[str, tuple[int, int]] = {}
    for l in range(1, len(L)):
        mem[f"W{l}"] = (L[l] * L[l - 1], a.weight.width)
        mem[f"b{l}"] = (L[l], a.weight.width)
        if feedback and l < len(L) - 1:
            mem[f"B{l}"] = (L[l] * L[-1], a.feedback.width)
    return mem


def memory_bits(cfg: Config) -> int:
    """Bits of every learned memory together."""
    return sum(words * bits for words, bits in memory_words(cfg).values())
