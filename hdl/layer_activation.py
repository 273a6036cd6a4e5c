"""The layer engine's activation stage: eq. 1 and eq. 12, one row a cycle."""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

from .fixed import fixed_shape, narrow, saturate
from .layer_common import ActReadSignature, data_reg
from .layouts import OutputBeat

__all__ = ["ActivationStage"]


class ActivationStage(wiring.Component):
    """Turns each row's sums into ``y`` and ``d`` (hidden layers) or the output beat.

    Serial, one row a cycle, three stages::

        A0 (take):  row i's sums and its bias b_i
        A1:         s = sum_a + (b_i << act.frac);  t = narrow(sum_t, weight.frac, act)
        A2:         a = narrow(s, weight.frac, act)                                  eq. 1
                    hidden: y = max(a, 0); d = sat([a > 0] * t + v_i, act)            eq. 12
                    output: y = a; d = t

    A row is taken (``take``) while the forward pass runs, a row is ``ready``, A2 can
    hand on, and (hidden layers) the directions are complete (``v_valid``). Hidden layers
    write ``y``, ``d`` into the buffers the layer above reads (``buf``) and shift
    ``[a > 0]`` into the relu mask: ``n_out`` bits, row 0 first, shifted out by the
    delta collector (``mask_shift``; ``relu`` is the next row's bit). (Reading ``[y_i !=
    0]`` back from ``y`` would need a second read port, the first being the layer
    above's: a second block RAM on the iCE40, a DP16KD's slow output on the ECP5.) The
    output layer streams ``(y, d)`` (``y``) and waits for its ``ready``.

    **Latency.** A row taken at A0 is at A2 (written, or ``y.valid``) two cycles later
    while A2 hands on; ``done`` strobes with the last row's hand-on.

    Parameters
    ----------
    cfg : Config
        The configuration (formats).
    n_out : int
        The layer's width.
    acc_s : Shape
        The row sums' shape.
    hidden, tangent, feeds_stream : bool
        A hidden layer; one with tangents (``l >= 2``); the layer above streams (the
        ``written`` strobe).

    Members
    -------
    fwd_start, fwd_busy : ``In(1)``
        A forward pass starts (the stage empties) / runs.
    ready : ``In(1)``
        The row sums have a row.
    sum_a, sum_t : ``In(acc_s)``
        Its sums.
    bias : ``In(signed(weight.width))``
        ``b_i`` of the row taken next (:class:`~hdl.layer_update.BiasStore`).
    take : ``Out(1)``
        A0 takes a row.
    row : ``Out(range(n_out))``
        The row A0 takes next.
    done : ``Out(1)``
        A2 hands on the last row (the forward pass ends).
    v, v_valid : ``In(n_out)``, ``In(1)``
        Hidden layers: the directions (bit ``i`` set: ``v_i = -1``), complete.
    buf : ``In(ActReadSignature(cfg, n_out))``
        Hidden layers: the layer above reads ``y``, ``d`` here.
    written : ``Out(1)``
        Hidden layers feeding a streaming layer: A2 writes the next row.
    mask_shift : ``In(1)``, relu : ``Out(1)``
        Hidden layers: shift the relu mask; its next bit ``[a_i > 0]``.
    y : ``Out(stream.Signature(OutputBeat(cfg)))``
        Output layer: ``(y_L,o, d_L,o)``, ``o`` in order.
    """

    def __init__(self, cfg: Config, *, n_out: int, acc_s, hidden: bool, tangent: bool,
                 feeds_stream: bool):
        self.cfg, self.n_out, self.acc_s = cfg, n_out, acc_s
        self.hidden, self.tangent, self.feeds_stream = hidden, tangent, feeds_stream
        ar = cfg.arith
        row = range(max(n_out, 2))
        members = {
            "fwd_start": In(1), "fwd_busy": In(1), "ready": In(1),
            "sum_a": In(acc_s), "sum_t": In(acc_s), "bias": In(fixed_shape(ar.weight)),
            "take": Out(1), "row": Out(row), "done": Out(1),
        }
        if hidden:
            members.update({"v": In(n_out), "v_valid": In(1), "buf": In(ActReadSignature(cfg, n_out)),
                            "mask_shift": In(1), "relu": Out(1)})
            if feeds_stream:
                members["written"] = Out(1)
        else:
            members["y"] = Out(stream.Signature(OutputBeat(cfg)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ar, n_out = self.cfg.arith, self.n_out
        act_s = fixed_shape(ar.act)
        take, row = self.take, self.row
        a1_valid, a2_valid = Signal(), Signal()
        a2_row = Signal(range(max(n_out, 2)))                # A2's row: the rows handed on so far
        a_sum = self.sum_a + (self.bias << ar.act.frac)
        a1_sum = data_reg(a_sum.shape(), "a1_sum")          # sum_a + (b << act.frac)
        a1_t = data_reg(act_s, "a1_t")                        # narrow(sum_t)
        a_i = data_reg(act_s, "a")                            # A2: a_l,i
        t_i = data_reg(act_s, "t")                            # A2: t_l,i
        a2_hand_on = Signal()                                 # A2's row leaves this cycle
        if self.hidden:
            m.d.comb += a2_hand_on.eq(1)
            v_ok = self.v_valid
        else:
            m.d.comb += a2_hand_on.eq(self.y.ready)
            v_ok = Const(1)
        advance = Signal()
        m.d.comb += [advance.eq(~a2_valid | a2_hand_on),
                     take.eq(self.fwd_busy & self.ready & advance & v_ok)]

        with m.If(take):
            m.d.sync += row.eq(row + 1)
        with m.If(advance):
            m.d.sync += [a1_valid.eq(take), a1_sum.eq(a_sum),
                         a2_valid.eq(a1_valid),
                         a_i.eq(narrow(a1_sum, ar.weight.frac, ar.act))]          # eq. 1
            if self.tangent:
                m.d.sync += [a1_t.eq(narrow(self.sum_t, ar.weight.frac, ar.act)), t_i.eq(a1_t)]
        with m.If(a2_valid & a2_hand_on):
            m.d.sync += a2_row.eq(a2_row + 1)
        with m.If(self.fwd_start):
            m.d.sync += [row.eq(0), a1_valid.eq(0), a2_valid.eq(0), a2_row.eq(0)]
        m.d.comb += self.done.eq(a2_valid & a2_hand_on & (a2_row == n_out - 1))

        positive = Signal()
        m.d.comb += positive.eq(a_i > 0)
        if not self.hidden:
            m.d.comb += [self.y.valid.eq(a2_valid), self.y.payload.y.eq(a_i), self.y.payload.d.eq(t_i)]
            return m

        # A2, hidden: eq. 12 into the buffers, [a > 0] into the relu mask.
        m.submodules.y_buf = y_mem = Memory(shape=act_s, depth=n_out, init=[])
        m.submodules.d_buf = d_mem = Memory(shape=act_s, depth=n_out, init=[])
        y_wr, d_wr = y_mem.write_port(), d_mem.write_port()
        y_rd, d_rd = y_mem.read_port(), d_mem.read_port()
        one = ar.act.one
        v_i = self.v.bit_select(a2_row, 1)
        y = Mux(positive, a_i, 0)
        d = saturate(Mux(positive, t_i, 0) + Mux(v_i, Const(-one, act_s), Const(one, act_s)), ar.act)
        if self.feeds_stream:
            m.d.comb += self.written.eq(a2_valid)
        m.d.comb += [
            y_wr.addr.eq(a2_row), y_wr.data.eq(y), y_wr.en.eq(a2_valid),
            d_wr.addr.eq(a2_row), d_wr.data.eq(d), d_wr.en.eq(a2_valid),
            y_rd.addr.eq(self.buf.addr), y_rd.en.eq(self.buf.en),
            d_rd.addr.eq(self.buf.addr), d_rd.en.eq(self.buf.en),
            self.buf.y.eq(y_rd.data), self.buf.d.eq(d_rd.data),
        ]
        mask = Signal(n_out, name="relu_mask")
        with m.If(a2_valid):
            m.d.sync += mask.eq(Cat(mask[1:], positive) if n_out > 1 else positive)
        with m.Elif(self.mask_shift):
            m.d.sync += mask.eq(mask >> 1)
        m.d.comb += self.relu.eq(mask[0])
        return m
