"""The layer engine's update side: the delta collector and the bias store."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

from .fixed import fixed_shape, round_shift, saturate
from .layer_common import data_reg
from .layouts import MemPortSignature, addr_width

__all__ = ["BiasStore", "DeltaCollector"]


class DeltaCollector(wiring.Component):
    """Takes ``delta_i`` one row at a time during an update pass and hands them to the
    PEs ``P`` at a time.

    A delta is taken (``taken``) while the update pass runs, fewer than ``n_out`` are
    taken and the collector is not full; with its relu bit (``relu``: ``relu'(a_i)``, 1
    for the output layer). After ``P`` deltas the collector is ``full`` until the PEs
    latch them (``latched``); each PE's ``delta`` is its row's delta, or 0 where relu'
    is 0. No latency of its own: ``taken``, ``value``, ``keep`` and ``row`` describe the
    delta of this cycle.

    With ``external`` the values are kept outside, in a shift register that shifts
    (taking ``value`` at its top) with ``taken`` and reads back on ``stored`` (the row
    sums' hold register, idle in update passes: :class:`~hdl.layer_sums.GroupSums`);
    the collector keeps the relu bits.

    Parameters
    ----------
    cfg : Config
        The configuration (``err`` format).
    pes : int
        ``P``.
    n_out : int
        The layer's width.
    external : bool
        The values are kept outside (``stored``).

    Members
    -------
    upd_busy, fwd_start, upd_start : ``In(1)``
        The pass flags: the count restarts with either strobe.
    latched : ``In(1)``
        The PEs latch the collected deltas (the collector empties).
    deltas : ``In(stream.Signature(signed(err.width)))``
        ``delta_i`` (``g_i`` or ``e_o``), ``i`` in order.
    relu : ``In(1)``
        ``[a_i > 0]`` of the delta on ``deltas``.
    full : ``Out(1)``
        ``P`` deltas collected.
    delta : ``Out(signed(err.width)).array(P)``
        PE ``p``'s masked delta.
    taken, keep : ``Out(1)``
        A delta is taken this cycle; its relu bit.
    value : ``Out(signed(err.width))``
        The delta on ``deltas`` (unmasked).
    row : ``Out(range(n_out + 1))``
        Its row ``i``.
    stored : ``In(signed(err.width)).array(P)``
        With ``external``: the values taken, the last in ``stored[P-1]``.
    """

    def __init__(self, cfg: Config, *, pes: int, n_out: int, external: bool = False):
        self.pes, self.n_out, self.external = pes, n_out, external
        err = fixed_shape(cfg.arith.err)
        members = {
            "upd_busy": In(1), "fwd_start": In(1), "upd_start": In(1), "latched": In(1),
            "deltas": In(stream.Signature(err)), "relu": In(1),
            "full": Out(1), "delta": Out(err).array(pes),
            "taken": Out(1), "keep": Out(1), "value": Out(err), "row": Out(range(n_out + 1)),
        }
        if external:
            members["stored"] = In(err).array(pes)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        P, full, row = self.pes, self.full, self.row
        if self.external:
            collected = list(self.stored)
        else:
            collected = [data_reg(self.value.shape(), f"collect{p}") for p in range(P)]
        collected_relu = [Signal(name=f"collect_m{p}") for p in range(P)]
        count = Signal(range(max(P, 2)))
        collecting = Signal()
        m.d.comb += [collecting.eq(self.upd_busy & ~full & (row < self.n_out)),
                     self.deltas.ready.eq(collecting),
                     self.taken.eq(collecting & self.deltas.valid),
                     self.value.eq(self.deltas.payload), self.keep.eq(self.relu)]
        m.d.comb += [self.delta[p].eq(Mux(collected_relu[p], collected[p], 0)) for p in range(P)]
        with m.If(self.fwd_start):
            m.d.sync += row.eq(0)
        with m.Elif(self.upd_start):
            m.d.sync += [row.eq(0), count.eq(0)]
        with m.If(self.taken):
            if not self.external:
                m.d.sync += [collected[k].eq(collected[k + 1]) for k in range(P - 1)]
                m.d.sync += collected[P - 1].eq(self.value)
            m.d.sync += [collected_relu[k].eq(collected_relu[k + 1]) for k in range(P - 1)]
            m.d.sync += [collected_relu[P - 1].eq(self.keep), row.eq(row + 1)]
            with m.If(count == P - 1):
                m.d.sync += [count.eq(0), full.eq(1)]
            with m.Else():
                m.d.sync += count.eq(count + 1)
        with m.If(self.latched):
            m.d.sync += full.eq(0)
        with m.If(self.upd_start):
            m.d.sync += full.eq(0)
        return m


class BiasStore(wiring.Component):
    """The biases ``b``: read ahead for the activation stage, updated, and the host's port.

    **Forward.** ``bias`` is ``b_i`` of the row the activation stage takes next. With
    ``host_latency == 1`` (the iCE40) it is the read port's word: ``b_0`` is read with
    ``fwd_start``, then ``b_{i+1}`` as row ``i`` goes (``act_take``). With
    ``host_latency == 2`` (the ECP5) it is a register and the read port holds
    ``b_{i+1}``: ``b_1`` is read the cycle after ``fwd_start`` (``b_0`` moves to
    ``bias``), then ``b_{i+2}`` as row ``i`` goes.

    **Update.** For each delta taken, ``b_i`` is read and, three cycles later, written
    back (the rows in order: the write address counts the writes)::

        1: term = round_shift(delta_i, shift_b), relu bit registered (b_i being read)
        2: term masked by relu'(a_i), b_i registered
        3: b_new = sat(b_i - term, weight)         (written in the next cycle)

    With ``host_latency == 1``, ``b_i`` is read in cycle 1 and taken from the read port
    in cycle 2 (no register of its own).

    **Host.** While ``busy`` is low ``host_b`` reads and writes ``b``; ``rdata`` comes
    ``host_latency`` cycles after ``re``.

    Parameters
    ----------
    cfg : Config
        The configuration (formats).
    b_data : MemoryData
        The biases' contents.
    host_latency : int
        1, or 2 for the host's word from a register.
    shift_b : int
        The update term's right shift (``ArithConfig.bias_update_shift``).

    Members
    -------
    busy, upd_busy, fwd_start : ``In(1)``
        The engine's pass flags.
    act_take : ``In(1)``
        The activation stage takes a row.
    bias : ``Out(signed(weight.width))``
        ``b`` of the activation stage's next row.
    taken, keep : ``In(1)``
        A delta is taken; its relu bit.
    delta : ``In(signed(err.width))``
        The delta taken.
    row : ``In(range(n_out + 1))``
        Its row.
    host_b : ``In(MemPortSignature(addr_width(n_out), weight.width))``
        The host's port into ``b``.
    """

    def __init__(self, cfg: Config, b_data, *, host_latency: int, shift_b: int):
        ar = cfg.arith
        self.cfg, self.b_data, self.host_latency, self.shift_b = cfg, b_data, host_latency, shift_b
        self.n_out = b_data.depth
        super().__init__({
            "busy": In(1), "upd_busy": In(1), "fwd_start": In(1), "act_take": In(1),
            "bias": Out(fixed_shape(ar.weight)),
            "taken": In(1), "keep": In(1), "delta": In(fixed_shape(ar.err)),
            "row": In(range(self.n_out + 1)),
            "host_b": In(MemPortSignature(addr_width(self.n_out), ar.weight.width)),
        })

    def elaborate(self, platform):
        m = Module()
        ar, n_out, w_s = self.cfg.arith, self.n_out, fixed_shape(self.cfg.arith.weight)
        m.submodules.b = b_mem = Memory(data=self.b_data)
        b_rd, b_wr = b_mem.read_port(), b_mem.write_port()
        # With the host's word from a register (the ECP5, whose block RAM outputs are
        # slow) every word read is registered before any logic; else (the iCE40) the read
        # port's own register is enough: it holds the activation stage's next bias, and the
        # update reads b_i a cycle later so that it arrives with the masked term.
        registered = self.host_latency == 2

        term = round_shift(self.delta, self.shift_b)
        term_q = data_reg(term.shape(), "bias_term")
        term_masked = data_reg(term.shape(), "bias_term_masked")
        keep_q = Signal(name="bias_keep")
        b_new = data_reg(w_s, "b_new")
        valid = [Signal(name=f"bias_valid{k}") for k in range(3)]
        row_s = range(max(n_out, 2))
        m.d.sync += [valid[0].eq(self.taken), term_q.eq(term), keep_q.eq(self.keep),
                     valid[1].eq(valid[0]), term_masked.eq(Mux(keep_q, term_q, 0)),
                     valid[2].eq(valid[1])]
        # The rows are updated in order: the write address counts the writes of the pass.
        write_row = Signal(row_s, name="bias_write_row")
        with m.If(~self.upd_busy):
            m.d.sync += write_row.eq(0)
        with m.Elif(valid[2]):
            m.d.sync += write_row.eq(write_row + 1)
        if registered:
            read_row = self.row                        # b_i read with the delta
            b_q = data_reg(w_s, "b_q")
            m.d.sync += b_q.eq(b_rd.data)
            read_en = self.taken
        else:
            read_row = Signal(row_s, name="bias_read_row")     # b_i read a cycle later
            m.d.sync += read_row.eq(self.row)
            b_q = b_rd.data
            read_en = valid[0]
        m.d.sync += b_new.eq(saturate(b_q - term_masked, ar.weight))

        # Forward read-ahead: the address is a register; the read enable says when.
        ahead = Signal(row_s, name="b_ahead_addr")
        with m.If(self.fwd_start):
            m.d.sync += ahead.eq(min(1, n_out - 1))
        if registered:
            bias = data_reg(w_s, "b_next")
            filling = Signal(name="b_fill")    # b_0 moves to ``bias``, b_1 is read
            m.d.sync += filling.eq(self.fwd_start)
            with m.If(filling | self.act_take):
                m.d.sync += bias.eq(b_rd.data)
        else:
            bias = b_rd.data                   # b_i on the read port until row i goes
            filling = Const(0)
        fwd_read = filling | self.act_take
        with m.If(~self.fwd_start & fwd_read & (ahead != n_out - 1)):
            m.d.sync += ahead.eq(ahead + 1)
        m.d.comb += self.bias.eq(bias)

        host = self.host_b
        with m.If(self.busy):
            m.d.comb += [
                b_rd.addr.eq(Mux(self.upd_busy, read_row, Mux(self.fwd_start, 0, ahead))),
                b_rd.en.eq(Mux(self.upd_busy, read_en, self.fwd_start | fwd_read)),
                b_wr.addr.eq(write_row), b_wr.data.eq(b_new), b_wr.en.eq(valid[2]),
            ]
        with m.Else():
            m.d.comb += [
                b_rd.addr.eq(host.addr), b_rd.en.eq(host.re),
                b_wr.addr.eq(host.addr), b_wr.data.eq(host.wdata), b_wr.en.eq(host.we),
            ]
        m.d.comb += host.rdata.eq(b_q if self.host_latency == 2 else b_rd.data)
        return m
