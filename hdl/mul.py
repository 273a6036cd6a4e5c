"""Shared multiplier: one hardware multiplier for units that never multiply at once.

Three units of the processor use their multiplier in one phase of a training step only:
the output layer's tangent products in the forward pass, the softmax normalisation in the
error phase, and a feedback unit in the update phase (``hardware.share_multiplier``;
``docs/ARCHITECTURE.md``, "Shared multiplier"). With the option on, they send their
operands to one :class:`SharedMultiplier` instead of multiplying themselves.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

__all__ = ["MulPortSignature", "SharedMultiplier"]


def MulPortSignature(cfg: Config) -> wiring.Signature:
    """A unit's port into the shared multiplier, seen from the unit.

    The timing is that of a multiplier with operand and product registers under one
    clock enable (an SB_MAC16 or a MULT18X18D with its registers): on a cycle with ``ce``
    high the operand registers take ``a`` and ``b`` and the product register takes the
    product of the operands registered before, so ``p`` is ``a * b`` two ``ce`` cycles
    after ``a`` and ``b`` were given. A unit holds ``sel`` high for as long as it uses
    the multiplier (its operands and its products); ``ce`` and the operands of a unit
    whose ``sel`` is low are ignored.

    Members
    -------
    a, b : ``Out(signed(w))``
        Operands (``w``: the board's multiplier width).
    ce : ``Out(1)``
        Clock enable of the operand and product registers.
    sel : ``Out(1)``
        This unit owns the multiplier.
    p : ``In(signed(2 w))``
        The registered product.
    """
    w = cfg.board.multiplier_width
    return wiring.Signature({
        "a": Out(signed(w)),
        "b": Out(signed(w)),
        "ce": Out(1),
        "sel": Out(1),
        "p": In(signed(2 * w)),
    })


class SharedMultiplier(wiring.Component):
    """One signed ``w x w`` multiplier with operand and product registers, shared by
    ``ports`` units through :func:`MulPortSignature` ports.

    The operands and the clock enable come from the unit whose ``sel`` is high (the
    first such port when several are, the last port when none is: the units are built
    never to overlap, and the processor's tests check every product they use). The
    registers carry no reset, so that Yosys packs them into the DSP block with the
    multiplier.

    Parameters
    ----------
    cfg : Config
        The configuration (``cfg.board.multiplier_width``).
    ports : int
        Units sharing it (``len(cfg.shared_multiplier_units)``).

    Members
    -------
    ports : ``In(MulPortSignature(cfg)).array(ports)``
        One port per unit, in the order of ``cfg.shared_multiplier_units``.
    """

    def __init__(self, cfg: Config, ports: int):
        if ports < 1:
            raise ValueError("a shared multiplier needs at least one port")
        self._cfg = cfg
        super().__init__({"ports": In(MulPortSignature(cfg)).array(ports)})

    def elaborate(self, platform):
        m = Module()
        w = self._cfg.board.multiplier_width
        a, b, ce = self.ports[-1].a, self.ports[-1].b, self.ports[-1].ce
        for port in reversed(self.ports[:-1]):
            a, b, ce = Mux(port.sel, port.a, a), Mux(port.sel, port.b, b), Mux(port.sel, port.ce, ce)
        a_q = Signal(signed(w), reset_less=True)
        b_q = Signal(signed(w), reset_less=True)
        p_q = Signal(signed(2 * w), reset_less=True)
        with m.If(ce):
            m.d.sync += [a_q.eq(a), b_q.eq(b), p_q.eq(a_q * b_q)]
        m.d.comb += [port.p.eq(p_q) for port in self.ports]
        return m
