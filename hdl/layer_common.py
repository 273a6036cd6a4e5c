"""What the layer engine's parts share: latencies, the activation read port, the banking.

The components of :class:`hdl.layer.LayerEngine` import these from here;
:mod:`hdl.layer` re-exports the public ones.
"""

from __future__ import annotations

from amaranth.hdl import Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

from .fixed import fixed_shape
from .layouts import addr_width

__all__ = ["ActReadSignature", "bank_rows", "data_reg", "host_latency", "weight_stages"]


def host_latency(cfg: Config) -> int:
    """Cycles from a host port's ``re`` to its word on ``rdata`` (``MemPortSignature``):
    2 for the ECP5 boards, whose block RAM outputs are slow (the word comes from a register
    after the block RAM), else 1."""
    return 2 if cfg.registered_bram else 1


def weight_stages(cfg: Config) -> int:
    """Pipeline registers between a PE's ``W`` bank and its multipliers' operand
    registers: 1 on the ECP5 boards (the DP16KD's read data, slow and far from the PE's
    logic, goes into a register of its own first, with the layer below's words and the
    pipeline's control), else 0. Each adds one cycle to a layer's forward pass and to its
    update (``hdl.cycles``)."""
    return 1 if cfg.registered_bram else 0


def ActReadSignature(cfg: Config, depth: int) -> wiring.Signature:
    """Read port into a layer's activation buffers ``y`` and ``d``, seen from the reader.

    The reader drives ``addr`` and ``en``; ``y`` and ``d`` hold the words at the address
    of the last cycle ``en`` was high (one cycle of latency, held while ``en`` is low).

    Parameters
    ----------
    cfg : Config
        The configuration (``act`` format).
    depth : int
        Words in each buffer (the layer's width ``n_l``, or ``n_0`` for the input sample).

    Members
    -------
    addr : ``Out(addr_width(depth))``
        Neuron index ``j``.
    en : ``Out(1)``
        Read this cycle.
    y : ``In(signed(act.width))``
        ``y_j`` (the activation, or the input ``x_j``).
    d : ``In(signed(act.width))``
        ``d_j`` (the directional derivative; zero for the input sample, ``d_0 = 0``).
    """
    act = fixed_shape(cfg.arith.act)
    return wiring.Signature({
        "addr": Out(addr_width(depth)),
        "en": Out(1),
        "y": In(act),
        "d": In(act),
    })


def bank_rows(values, n_out: int, n_in: int, pes: int) -> list[list[int]]:
    """Split a row-major ``n_out x n_in`` weight image into the ``pes`` PE banks.

    PE ``p`` holds rows ``i`` with ``i mod pes == p`` at address ``(i div pes) * n_in + j``
    (``docs/ARITHMETIC.md``, section 7).
    """
    values = [int(v) for v in values]
    if len(values) != n_out * n_in:
        raise ValueError(f"{len(values)} weights given, {n_out} x {n_in} expected")
    return [[values[i * n_in + j] for i in range(p, n_out, pes) for j in range(n_in)]
            for p in range(pes)]


def data_reg(shape, name: str) -> Signal:
    """A datapath register that is always written before it is read: no reset
    (``reset_less``), so that Yosys packs the multipliers' operand and product registers
    into the iCE40 SB_MAC16 and no register needs a reset net."""
    return Signal(shape, name=name, reset_less=True)
