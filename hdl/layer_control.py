"""The layer engine's pass control: strobes, ``busy``, the issue stage and the PE pipeline's control."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

from .fixed import fixed_shape
from .layer_common import data_reg

__all__ = ["PassControl"]


class PassControl(wiring.Component):
    """Runs the forward and update passes of one layer engine through its PE pipeline.

    **Strobes.** ``fwd`` and ``upd`` are registered first (``fwd_start``, ``upd_start``:
    the sequencer's decision logic ends at a register); ``busy`` is high from the cycle
    after a strobe until the pass ends, from a register of its own.

    **Issue (stage 0).** Row groups, column by column: bank address ``r * n_in + j`` for
    group ``r``, column ``j`` (``prev_addr`` reads the layer below's column ``j``). An
    update pass issues a group's first column only once its deltas are collected
    (``deltas_full``). Streaming forward pass (``stream``): column ``j`` once the layer
    below has written it (``prev_written`` counts), then rows ``i = 0 .. n_out - 1`` at
    addresses ``i * n_in + j``.

    **Pipeline.** Stage 1: the banks' words and the layer below's valid. Stage 1X
    (``weight_stages == 1``, the ECP5): the layer below's words and the control are
    registered once more. Stage 2 (``operand_*``): the multipliers' operand registers are
    loaded. Stage 3 (``sum_*``): the products are registered (forward: added to the row
    sums). Update only: stage 2 reads ``W`` again (``reread_addr``; stage 3 without stage
    1X, so that the bank's word itself meets the rounded term at stage 4), stage 5 writes
    it back (``write_en``, ``writeback_addr``); an update pass visits the addresses in order,
    so two counters replace a pipeline of addresses. While the row sums hold a finished
    group (``sums_full``) and a forward product reaches stage 3, ``advance`` is low and
    stages 0 to 3 stall; stages 4 and 5 run only in update passes, which never stall.

    **Latency.** ``fwd_start`` / ``upd_start`` and ``busy`` rise one cycle after the
    strobe. A word issued at stage 0 is at the operand stage 1 advancing cycle later (2
    with stage 1X) and at stage 3 two advancing cycles after that; stage 5 comes two
    cycles after stage 3.

    Parameters
    ----------
    cfg : Config
        The configuration (``act`` format).
    n_in, n_out : int
        The layer's fan-in ``n_{l-1}`` and width ``n_l``.
    bank_depth : int
        Words per ``W`` bank.
    groups : int
        Row groups of an update pass (``n_out / P``).
    stream : bool
        The forward pass streams behind the layer below (one PE).
    tangent : bool
        The layer forms tangents (``l >= 2``): ``prev_d`` is used.
    weight_stages : int
        0, or 1 for stage 1X.

    Members
    -------
    fwd, upd : ``In(1)``
        The engine's strobes.
    busy : ``Out(1)``
        A pass runs (registered: the next value of ``fwd_busy | upd_busy | fwd_start |
        upd_start``).
    fwd_start, upd_start : ``Out(1)``
        The registered strobes (one cycle after ``fwd`` / ``upd``).
    fwd_busy, upd_busy : ``Out(1)``
        A forward / update pass runs (from the cycle after ``*_start``).
    fwd_done : ``In(1)``
        The activation stage hands on the last row: the forward pass ends.
    prev_written : ``In(1)``
        Streaming: the layer below wrote its next row this cycle.
    sums_full : ``In(1)``
        The row sums hold a finished group (stall forward products at stage 3).
    deltas_full : ``In(1)``
        The delta collector holds the next group's deltas.
    deltas_latched : ``Out(1)``
        The collected deltas move into the operand registers this cycle (the
        collector may take the next group's): stage 0 issues a group's first update
        column, or (stage 1X) stage 1 holds it.
    advance : ``Out(1)``
        Stages 0 to 3 move on (the pipeline's clock enable).
    prev_addr : ``Out(range(n_in))``
        The layer below's column ``j`` of stage 0 (read with ``advance``).
    prev_y, prev_d : ``In(signed(act.width))``
        The layer below's words of stage 1.
    issue_addr, reread_addr, writeback_addr : ``Out(range(bank_depth))``
        Bank addresses: stage 0's read, the update's second read (stage 2), its write
        (stage 5).
    write_en : ``Out(1)``
        Stage 5 writes ``W`` back.
    operand_upd, operand_first : ``Out(1)``
        The word at the operand stage belongs to an update pass / to a group's first
        column.
    operand_y, operand_d : ``Out(signed(act.width))``
        ``y_{l-1,j}`` and ``d_{l-1,j}`` for the operand registers.
    operand_row : ``Out(range(n_out))``
        Streaming: the row of the product the operand stage forms (stage 2).
    operand_row_first : ``Out(1)``
        Streaming: that product is its row's first (the first column).
    sum_en : ``Out(1)``
        Stage 3 holds a forward product and advances: add it to its row's sums.
    sum_last, sum_first : ``Out(1)``
        Stage 3's product is a group's last (streaming: the pass's last) / its row's
        first (streaming).
    sum_row : ``Out(range(n_out))``
        Streaming: stage 3's row.
    """

    def __init__(self, cfg: Config, *, n_in: int, n_out: int, bank_depth: int, groups: int,
                 stream: bool, tangent: bool, weight_stages: int):
        self.n_in, self.n_out, self.bank_depth, self.groups = n_in, n_out, bank_depth, groups
        self.stream, self.tangent, self.weight_stages = stream, tangent, weight_stages
        act = fixed_shape(cfg.arith.act)
        addr = range(max(bank_depth, 2))
        row = range(max(n_out, 2))
        super().__init__({
            "fwd": In(1), "upd": In(1), "busy": Out(1),
            "fwd_start": Out(1), "upd_start": Out(1), "fwd_busy": Out(1), "upd_busy": Out(1),
            "fwd_done": In(1), "prev_written": In(1), "sums_full": In(1),
            "deltas_full": In(1), "deltas_latched": Out(1),
            "advance": Out(1), "prev_addr": Out(range(max(n_in, 2))),
            "prev_y": In(act), "prev_d": In(act),
            "issue_addr": Out(addr), "reread_addr": Out(addr), "writeback_addr": Out(addr),
            "write_en": Out(1),
            "operand_upd": Out(1), "operand_first": Out(1), "operand_y": Out(act),
            "operand_d": Out(act), "operand_row": Out(row), "operand_row_first": Out(1),
            "sum_en": Out(1), "sum_last": Out(1), "sum_first": Out(1), "sum_row": Out(row),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.sync += [self.fwd_start.eq(self.fwd), self.upd_start.eq(self.upd)]
        st = self._stage_signals()
        m.d.comb += self.advance.eq(~(self.sums_full & st.s3_valid & ~st.s3_upd))
        self._issue_stage(m, st)
        self._pipeline(m, st)
        self._pass_ends(m, st)
        return m

    def _stage_signals(self) -> SimpleNamespace:
        """The pipeline's control registers: stage ``k``'s ``valid`` (a word is there),
        ``first`` / ``last`` (a group's first / last column), ``upd`` (an update pass's
        word) and, streaming, ``row`` (the row ``i`` of the product)."""
        row = range(max(self.n_out, 2))
        st = SimpleNamespace(s0_addr=self.issue_addr, s0_col=self.prev_addr)
        for name in ("s0_active", "s0_upd", "s0_issue", "s1_valid", "s1_first", "s1_last", "s1_upd",
                     "s2_valid", "s2_first", "s2_last", "s2_upd", "s3_valid", "s3_first", "s3_last",
                     "s3_upd", "s4_valid", "s4_last", "s5_valid", "s5_last"):
            setattr(st, name, Signal(name=name))
        for k in range(4):
            setattr(st, f"s{k}_row", Signal(row, name=f"s{k}_row"))
        st.groups_done = Signal(range(max(self.groups, 2)), name="groups_done")
        return st

    def _issue_stage(self, m, st):
        """Stage 0: (group r, column j) -> bank address r * n_in + j; streaming forward:
        (column j, row i) -> i * n_in + j. The strobes start a pass here."""
        n_in, n_out, en = self.n_in, self.n_out, self.advance
        s0_addr, s0_col, s0_row, s0_issue = st.s0_addr, st.s0_col, st.s0_row, st.s0_issue
        # An update group's first column waits for its deltas. (Stage 1X: the deltas are
        # latched one cycle later, at the end of stage 1X, so ``deltas_full`` clears at
        # stage 1; a group's first column never issues in that cycle, which matters only
        # for n_in = 1.)
        group_ok = Signal()
        if self.weight_stages:
            m.d.comb += [self.deltas_latched.eq(en & st.s1_valid & st.s1_upd & st.s1_first),
                         group_ok.eq(~st.s0_upd | (s0_col != 0) | (self.deltas_full & ~self.deltas_latched))]
        else:
            m.d.comb += [self.deltas_latched.eq(s0_issue & st.s0_upd & (s0_col == 0)),
                         group_ok.eq(~st.s0_upd | (s0_col != 0) | self.deltas_full)]
        if self.stream:
            # A column is issued once the layer below has written it (``rows_written``).
            rows_written = Signal(range(n_in + 1))
            with m.If(self.fwd_start):
                m.d.sync += rows_written.eq(0)
            with m.Elif(self.prev_written):
                m.d.sync += rows_written.eq(rows_written + 1)
            m.d.comb += s0_issue.eq(st.s0_active & en & group_ok & (st.s0_upd | (s0_col < rows_written)))
        else:
            m.d.comb += s0_issue.eq(st.s0_active & en & group_ok)

        with m.If(self.fwd_start):
            m.d.sync += [self.fwd_busy.eq(1), st.s0_active.eq(1), st.s0_upd.eq(0), s0_addr.eq(0),
                         s0_col.eq(0)]
            if self.stream:
                m.d.sync += s0_row.eq(0)
        with m.Elif(self.upd_start):
            m.d.sync += [self.upd_busy.eq(1), st.s0_active.eq(1), st.s0_upd.eq(1), s0_addr.eq(0),
                         s0_col.eq(0), st.groups_done.eq(0)]
        with m.Elif(s0_issue & st.s0_upd if self.stream else s0_issue):
            # Row groups, column by column: the bank addresses in order.
            m.d.sync += s0_addr.eq(s0_addr + 1)
            with m.If(s0_col == n_in - 1):
                m.d.sync += s0_col.eq(0)
                with m.If(s0_addr == self.bank_depth - 1):
                    m.d.sync += st.s0_active.eq(0)
            with m.Else():
                m.d.sync += s0_col.eq(s0_col + 1)
        if self.stream:
            # Streaming forward: column j, rows i = 0..n_l-1 (address i * n_in + j).
            with m.Elif(s0_issue):
                with m.If(s0_row == n_out - 1):
                    m.d.sync += [s0_row.eq(0), s0_addr.eq(s0_col + 1)]
                    with m.If(s0_col == n_in - 1):
                        m.d.sync += st.s0_active.eq(0)
                    with m.Else():
                        m.d.sync += s0_col.eq(s0_col + 1)
                with m.Else():
                    m.d.sync += [s0_row.eq(s0_row + 1), s0_addr.eq(s0_addr + n_in)]

    def _pipeline(self, m, st):
        """Stages 1 (1X) to 5: the control moves with the words; the operand and sum
        stages' outputs; the update's read-back and write-back address counters."""
        en = self.advance
        # Stage 1X (``weight_stages == 1``): the layer below's words and the control once
        # more, so that the slow block RAM outputs end at a register. Elsewhere the
        # operand stage takes stage 1 directly.
        if self.weight_stages:
            sx_valid, sx_first, sx_last, sx_upd = Signal(), Signal(), Signal(), Signal()
            sx_y, sx_d = data_reg(self.prev_y.shape(), "y_x"), data_reg(self.prev_d.shape(), "d_x")
            sx_row = Signal.like(st.s0_row, name="sx_row")
            with m.If(en):
                m.d.sync += [sx_valid.eq(st.s1_valid), sx_first.eq(st.s1_first), sx_last.eq(st.s1_last),
                             sx_upd.eq(st.s1_upd), sx_y.eq(self.prev_y)]
                if self.tangent:
                    m.d.sync += sx_d.eq(self.prev_d)
                if self.stream:
                    m.d.sync += sx_row.eq(st.s1_row)
            o_valid, o_first, o_last, o_upd, o_row = sx_valid, sx_first, sx_last, sx_upd, sx_row
            m.d.comb += [self.operand_y.eq(sx_y), self.operand_d.eq(sx_d)]
        else:
            o_valid, o_first, o_last = st.s1_valid, st.s1_first, st.s1_last
            o_upd, o_row = st.s1_upd, st.s1_row
            m.d.comb += [self.operand_y.eq(self.prev_y), self.operand_d.eq(self.prev_d)]
        m.d.comb += [self.operand_upd.eq(o_upd), self.operand_first.eq(o_first)]

        # (Streaming: a forward pass's "last" is its very last issue, row n_l - 1 of the
        # last column; an update pass's is each row group's last column, as always.)
        s0_last = st.s0_col == self.n_in - 1
        if self.stream:
            s0_last = s0_last & (st.s0_upd | (st.s0_row == self.n_out - 1))
        with m.If(en):
            m.d.sync += [
                st.s1_valid.eq(st.s0_issue), st.s1_first.eq(st.s0_col == 0), st.s1_last.eq(s0_last),
                st.s1_upd.eq(st.s0_upd),
                st.s2_valid.eq(o_valid), st.s2_last.eq(o_last), st.s2_upd.eq(o_upd),
                st.s3_valid.eq(st.s2_valid), st.s3_last.eq(st.s2_last), st.s3_upd.eq(st.s2_upd),
            ]
            if self.stream:
                m.d.sync += [st.s1_row.eq(st.s0_row), st.s2_row.eq(o_row), st.s3_row.eq(st.s2_row),
                             st.s2_first.eq(o_first), st.s3_first.eq(st.s2_first)]
        m.d.comb += [self.operand_row.eq(st.s2_row), self.operand_row_first.eq(st.s2_first),
                     self.sum_row.eq(st.s3_row),
                     self.sum_first.eq(st.s3_first), self.sum_last.eq(st.s3_last),
                     self.sum_en.eq(en & st.s3_valid & ~st.s3_upd)]

        # Stages 4 and 5 (update passes): the read-back and write-back address counters.
        m.d.sync += [st.s4_valid.eq(st.s3_valid & st.s3_upd), st.s4_last.eq(st.s3_last),
                     st.s5_valid.eq(st.s4_valid), st.s5_last.eq(st.s4_last)]
        m.d.comb += self.write_en.eq(st.s5_valid)
        with m.If(self.upd_start):
            m.d.sync += [self.reread_addr.eq(0), self.writeback_addr.eq(0)]
        with m.Else():
            reread = (st.s2_valid & st.s2_upd) if self.weight_stages else (st.s3_valid & st.s3_upd)
            with m.If(reread):
                m.d.sync += self.reread_addr.eq(self.reread_addr + 1)
            with m.If(st.s5_valid):
                m.d.sync += self.writeback_addr.eq(self.writeback_addr + 1)

    def _pass_ends(self, m, st):
        """The passes' ends and ``busy`` (added after the strobes' statements: a pass's
        end clears its flag)."""
        last_group = st.groups_done == self.groups - 1
        upd_done = st.s5_valid & st.s5_last & last_group
        with m.If(st.s5_valid & st.s5_last):
            m.d.sync += st.groups_done.eq(st.groups_done + 1)
            with m.If(last_group):
                m.d.sync += self.upd_busy.eq(0)
        with m.If(self.fwd_done):
            m.d.sync += self.fwd_busy.eq(0)
        # busy's next value: that of fwd_busy | upd_busy | fwd_start | upd_start (upd_start
        # sets upd_busy only without fwd_start), in a register of its own: the sequencer's
        # decisions then start at a register, not at this engine's logic.
        fwd_next = Mux(self.fwd_done, 0, self.fwd_start | self.fwd_busy)
        upd_next = Mux(upd_done, 0, (self.upd_start & ~self.fwd_start) | self.upd_busy)
        m.d.sync += self.busy.eq(self.fwd | self.upd | fwd_next | upd_next)
