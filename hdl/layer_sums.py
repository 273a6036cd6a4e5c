"""The layer engine's row sums: where the products add up until the activation stage takes them.

Three variants with the same outputs (``sums_full``, ``ready``, ``sum_a``, ``sum_t``):

* :class:`GroupSums`: one accumulator pair per PE and a hold register (row groups);
* :class:`StreamSumsLUT`: streaming, the sums in LUT RAM read asynchronously (the ECP5);
* :class:`StreamSumsBRAM`: streaming, the sums in one block RAM read a stage early (the iCE40).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .layer_common import data_reg

__all__ = ["GroupSums", "StreamSumsBRAM", "StreamSumsLUT", "held_shape", "sum_shape"]


def sum_shape(cfg, n_in: int):
    """The row sums' shape. Each sums ``n_in`` products ``W*y`` (or ``W*d``), each
    ``|W*y| <= 2^(w+a-2)`` for w-bit weights and a-bit activations: ``|sum| <=
    2^(w+a-2+ceil(log2 n_in))`` fits a signed word of ``w + a + ceil(log2 n_in)`` bits,
    never wider than ``acc_width`` (which also covers the bias and the widest fan-in). No
    sum can overflow either way, so the result is the same bit for bit; a narrower adder
    is smaller and faster."""
    ar = cfg.arith
    return signed(min(ar.acc_width, cfg.sum_width(ar.weight.width, ar.act.width, n_in)))


def held_shape(cfg, acc_s):
    """The shape of the row sums in a :class:`GroupSums` hold register: ``H = k + 2``
    bits, ``k = max(act.width - 1 + weight.frac, weight.width - 1 + act.frac) + 1``, where
    that is narrower than ``acc_s``.

    The activation stage computes ``narrow(sum_a + (b << act.frac), weight.frac, act)``
    and ``narrow(sum_t, weight.frac, act)``, with ``|b << act.frac| <= 2^(k-1)``. A sum
    that fits ``H - 1`` bits is held as it is. Any other, ``|sum| >= 2^k``, is held with
    its sign in bit ``H - 1``, the opposite in bit ``H - 2`` and its own low bits below: a
    value of the same sign with ``2^k <= |held| <= 2^(k+1)``. Either way ``|sum + bias|``
    is at least ``2^k - 2^(k-1) = 2^(k-1) >= 2^(act.width - 1 + weight.frac)``, so both
    saturate to the same bound: the results are the same bit for bit."""
    ar = cfg.arith
    k = max(ar.act.width - 1 + ar.weight.frac, ar.weight.width - 1 + ar.act.frac) + 1
    return signed(k + 2) if k + 2 < acc_s.width else acc_s


def _members(acc_s, n_out: int, prods: dict, streaming: bool, out_s=None) -> dict:
    row = range(max(n_out, 2))
    members = {
        "fwd_start": In(1), "sum_en": In(1), "sum_last": In(1),
        "take": In(1), "take_row": In(row),
        "sums_full": Out(1), "ready": Out(1),
        "sum_a": Out(out_s or acc_s), "sum_t": Out(out_s or acc_s),
    }
    members.update(prods)
    if streaming:
        members.update({"sum_row": In(row), "sum_first": In(1), "operand_row": In(row),
                        "operand_row_first": In(1)})
    return members


class GroupSums(wiring.Component):
    """Row-group sums: an accumulator pair (primal ``a``, tangent ``t``) per PE.

    Stage 3 adds each PE's products (``sum_en``); with a group's last product
    (``sum_last``) the accumulators are full (``sums_full``: the pipeline stalls the next
    group's first product at stage 3). With ``P > 1`` they then move to a hold register
    in one cycle (and are cleared) while the next group starts; the activation stage
    shifts the hold register out one row a cycle (``take``), row ``r*P`` first. The hold
    register is ``held_s`` wide (:func:`held_shape`: a sum too wide for it moves in with
    its bit ``H - 2`` set to the opposite of its sign). With one PE there is no hold
    register: the activation stage takes the accumulators.

    **Deltas** (``delta_s`` given, ``P > 1``). The hold register is idle in update passes;
    it then keeps the :class:`~hdl.layer_update.DeltaCollector`'s deltas: ``delta_shift``
    shifts it one row on as ``take`` does, ``delta_in`` entering the top row's low bits,
    and ``delta_out[p]`` is row ``p``'s low bits.

    **Latency.** A product is in the sums the cycle after ``sum_en``; ``sums_full`` rises
    the cycle after the group's last one; with ``P > 1``, ``ready`` the cycle after that
    (the hold register), else at once.

    Parameters
    ----------
    acc_s : Shape
        The sums' shape (:func:`sum_shape`).
    pes : int
        ``P``.
    n_out : int
        The layer's width.
    prod_a_shape, prod_t_shape : Shape
        The products' shapes.
    tangent : bool
        Sum the tangent products.
    held_s : Shape, optional
        The hold register's shape (:func:`held_shape`); ``acc_s`` by default.
    delta_s : Shape, optional
        The deltas' shape, where the hold register keeps them in update passes.

    Members
    -------
    fwd_start : ``In(1)``
        A forward pass starts: nothing held.
    sum_en, sum_last : ``In(1)``
        Add stage 3's products; they are the group's last.
    prod_a, prod_t : ``In(prod shape).array(P)``
        The PEs' products.
    take : ``In(1)``
        The activation stage takes row ``sum_a``, ``sum_t`` this cycle.
    take_row : ``In(range(n_out))``
        The row it takes (unused here).
    sums_full : ``Out(1)``
        The accumulators hold a finished group.
    ready : ``Out(1)``
        A row is ready for the activation stage.
    sum_a, sum_t : ``Out(held_s)`` (``Out(acc_s)`` with one PE)
        That row's sums (``sum_t`` 0 for layer 1).
    delta_in, delta_shift, delta_out : ``In(delta_s)``, ``In(1)``, ``Out(delta_s).array(P)``
        With ``delta_s``: the deltas into and out of the hold register.
    """

    def __init__(self, acc_s, *, pes: int, n_out: int, prod_a_shape, prod_t_shape, tangent: bool,
                 held_s=None, delta_s=None):
        self.acc_s, self.pes, self.tangent = acc_s, pes, tangent
        self.held_s = acc_s if held_s is None or pes == 1 else held_s
        self.delta_s = delta_s if pes > 1 else None
        members = _members(acc_s, n_out, {"prod_a": In(prod_a_shape).array(pes),
                                          "prod_t": In(prod_t_shape).array(pes)}, False, out_s=self.held_s)
        if self.delta_s is not None:
            members.update({"delta_in": In(delta_s), "delta_shift": In(1),
                            "delta_out": Out(delta_s).array(pes)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        P, acc_s, full = self.pes, self.acc_s, self.sums_full
        acc_a = [data_reg(acc_s, f"acc_a{p}") for p in range(P)]
        acc_t = [data_reg(acc_s, f"acc_t{p}") for p in range(P)]
        direct = P == 1             # the activation stage takes the accumulators
        hold_load = Signal()        # the accumulators move to the hold register (and clear)
        if not direct:
            hold_a = [data_reg(self.held_s, f"hold_a{p}") for p in range(P)]
            hold_t = [data_reg(self.held_s, f"hold_t{p}") for p in range(P)]
            hold_valid = Signal()   # the hold register holds a group
            hold_p = Signal(range(P))
            m.d.comb += hold_load.eq(full & ~hold_valid)
        # The accumulators are cleared (a synchronous reset, no multiplexer in front of
        # the adder) when their group moves on; they are zero when a pass starts.
        for p in range(P):
            with m.If(self.sum_en):
                m.d.sync += acc_a[p].eq(acc_a[p] + self.prod_a[p])
                if self.tangent:
                    m.d.sync += acc_t[p].eq(acc_t[p] + self.prod_t[p])
            with m.If(hold_load | (self.take if direct else 0)):
                m.d.sync += acc_a[p].eq(0)
                if self.tangent:
                    m.d.sync += acc_t[p].eq(0)
        if direct:
            with m.If(self.sum_en & self.sum_last):
                m.d.sync += full.eq(1)
            with m.If(self.take):
                m.d.sync += full.eq(0)
            with m.If(self.fwd_start):
                m.d.sync += full.eq(0)
            m.d.comb += [self.ready.eq(full), self.sum_a.eq(acc_a[0]), self.sum_t.eq(acc_t[0])]
            return m

        with m.If(hold_load):
            m.d.sync += [hold_valid.eq(1), full.eq(0)]
            m.d.sync += [h.eq(self._held(a)) for h, a in zip(hold_a, acc_a)]
            if self.tangent:
                m.d.sync += [h.eq(self._held(a)) for h, a in zip(hold_t, acc_t)]
        with m.If(self.sum_en & self.sum_last):
            m.d.sync += full.eq(1)
        with m.If(self.take):
            m.d.sync += [hold_a[k].eq(hold_a[k + 1]) for k in range(P - 1)]
            if self.tangent:
                m.d.sync += [hold_t[k].eq(hold_t[k + 1]) for k in range(P - 1)]
            with m.If(hold_p == P - 1):
                m.d.sync += [hold_valid.eq(0), hold_p.eq(0)]
            with m.Else():
                m.d.sync += hold_p.eq(hold_p + 1)
        with m.If(self.fwd_start):
            m.d.sync += [hold_p.eq(0), hold_valid.eq(0), full.eq(0)]
        m.d.comb += [self.ready.eq(hold_valid), self.sum_a.eq(hold_a[0]), self.sum_t.eq(hold_t[0])]
        if self.delta_s is not None:
            # Update passes: the deltas shift through the hold register's low bits.
            w = self.delta_s.width
            with m.If(self.delta_shift):
                m.d.sync += [hold_a[k].eq(hold_a[k + 1]) for k in range(P - 1)]
                m.d.sync += hold_a[P - 1].eq(self.delta_in)
            m.d.comb += [self.delta_out[p].eq(hold_a[p][:w]) for p in range(P)]
        return m

    def _held(self, acc):
        """``acc`` as the hold register keeps it (:func:`held_shape`)."""
        H = self.held_s.width
        if H >= len(acc):
            return acc
        top = acc[H - 2:]                       # all equal <=> acc fits H - 1 bits
        fits = ~top.any() | top.all()
        return Cat(acc[:H - 2], Mux(fits, acc[H - 2], ~acc[-1]), acc[-1]).as_signed()


class _StreamSums(wiring.Component):
    """What the two streaming variants share: their signature (one PE's products in,
    the row sums of a streaming layer out; :class:`StreamSumsLUT` lists the members)."""

    def __init__(self, acc_s, *, n_out: int, prod_a_shape, prod_t_shape):
        self.acc_s, self.n_out = acc_s, n_out
        super().__init__(_members(acc_s, n_out, {"prod_a": In(prod_a_shape),
                                                 "prod_t": In(prod_t_shape)}, True))


class StreamSumsLUT(_StreamSums):
    """Streaming row sums in LUT RAM (the ECP5, ``cfg.lut_ram``), one PE.

    Two memories of ``n_out`` words (``a``, ``t``), read asynchronously: stage 3 reads
    row ``sum_row``'s sums and writes them back with its products added (the row's first
    column, ``sum_first``, writes the products alone). After the pass's last product
    (``sums_full``) the activation stage reads row ``take_row``; the last row taken ends
    it. Latency: ``ready`` with ``sums_full``, the row's sums in the same cycle.

    Parameters
    ----------
    acc_s : Shape
        The sums' shape (:func:`sum_shape`).
    n_out : int
        The layer's width.
    prod_a_shape, prod_t_shape : Shape
        The products' shapes.

    Members
    -------
    fwd_start, sum_en, sum_last, take, take_row, sums_full, ready, sum_a, sum_t
        As :class:`GroupSums`.
    prod_a, prod_t : ``In(prod shape)``
        The PE's products.
    sum_row, sum_first : ``In``
        Stage 3's row, and whether it is the row's first column.
    operand_row : ``In(range(n_out))``
        Stage 2's row (unused here).
    operand_row_first : ``In(1)``
        Stage 2's product is its row's first (unused here).
    """

    def elaborate(self, platform):
        m = Module()
        full = self.sums_full
        m.submodules.sum_a = sum_a = Memory(shape=self.acc_s, depth=self.n_out, init=[])
        m.submodules.sum_t = sum_t = Memory(shape=self.acc_s, depth=self.n_out, init=[])
        for mem, prod, out in ((sum_a, self.prod_a, self.sum_a), (sum_t, self.prod_t, self.sum_t)):
            rd, wr = mem.read_port(domain="comb"), mem.write_port()
            m.d.comb += [rd.addr.eq(Mux(full, self.take_row, self.sum_row)),
                         wr.addr.eq(self.sum_row), wr.en.eq(self.sum_en),
                         wr.data.eq(Mux(self.sum_first, 0, rd.data) + prod),
                         out.eq(rd.data)]
        with m.If(self.sum_en & self.sum_last):
            m.d.sync += full.eq(1)
        with m.If(self.take & (self.take_row == self.n_out - 1)):     # every row's sums taken
            m.d.sync += full.eq(0)
        with m.If(self.fwd_start):
            m.d.sync += full.eq(0)
        m.d.comb += self.ready.eq(full)
        return m


class StreamSumsBRAM(_StreamSums):
    """Streaming row sums in block RAM (the iCE40: no LUT RAM), one PE.

    One memory of ``n_out + 1`` words holding both sums, with registered reads: row
    ``operand_row``'s sums are read at stage 2, so that they arrive with the products at
    stage 3 (a row is written at stage 3 before it is read again at stage 2: one column
    later, ``n_out >= 2`` cycles; with one row, in the same cycle, so the read port is
    transparent). For a row's first product (``operand_row_first``) word ``n_out``, never
    written and always 0, is read instead: the adders need no multiplexer in front. After the pass's last product the activation stage reads row
    ``take_row`` ahead: the address is the next row as the activation stage takes one,
    and ``ready`` comes a cycle after ``sums_full`` (row 0's read): one cycle more than
    :class:`StreamSumsLUT`.

    Parameters and members as :class:`StreamSumsLUT`; ``operand_row`` and
    ``operand_row_first`` are used, ``sum_first`` is not.
    """

    def elaborate(self, platform):
        m = Module()
        full, n_out = self.sums_full, self.n_out
        m.submodules.sums = sums = Memory(shape=data.StructLayout({"a": self.acc_s, "t": self.acc_s}),
                                          depth=n_out + 1, init=[])
        wr = sums.write_port()
        rd = sums.read_port(transparent_for=(wr,) if n_out == 1 else ())
        read_done = Signal()        # row 0's sums are on the read port
        m.d.sync += read_done.eq(full)
        ahead = Mux(self.take, self.take_row + 1, self.take_row)     # the activation stage's next row
        operand_row = Mux(self.operand_row_first, n_out, self.operand_row)   # word n_out: 0
        m.d.comb += [rd.addr.eq(Mux(full, ahead, operand_row)),
                     wr.addr.eq(self.sum_row), wr.en.eq(self.sum_en),
                     wr.data.a.eq(rd.data.a + self.prod_a),
                     wr.data.t.eq(rd.data.t + self.prod_t),
                     self.sum_a.eq(rd.data.a), self.sum_t.eq(rd.data.t)]
        with m.If(self.sum_en & self.sum_last):
            m.d.sync += full.eq(1)
        with m.If(self.take & (self.take_row == n_out - 1)):          # every row's sums taken
            m.d.sync += full.eq(0)
        with m.If(self.fwd_start):
            m.d.sync += full.eq(0)
        m.d.comb += self.ready.eq(full & read_done)
        return m
