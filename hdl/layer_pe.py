"""The layer engine's PE array: the ``W`` banks, the multipliers, the weights' write-back."""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

from .fixed import fixed_shape, round_shift, saturate
from .layer_common import data_reg
from .layouts import MemPortSignature
from .mul import MulPortSignature

__all__ = ["PEArray"]


class PEArray(wiring.Component):
    """``P`` processing elements, each with a primal and a tangent multiplier, on the ``W`` banks.

    **Forward.** Each PE reads its bank at ``issue_addr`` (stage 0); from one weight
    read its primal multiplier forms ``W_ij * y_j`` and, for ``l >= 2``, its tangent
    multiplier ``W_ij * d_j``: operands registered at stage 2, products at stage 3
    (``prod_a``, ``prod_t``), two cycles after the operand stage. On the ECP5
    (``weight_stages == 1``) the banks' words are registered first (``w_q``, stage 1X).

    **Update.** The primal multiplier forms ``delta_i * y_j``: its operand register takes
    ``delta_i`` with a group's first column and holds it for the group. The bank is read
    again at ``reread_addr`` so that ``W_ij`` arrives with the rounded term::

        stage 3: term = round_shift(delta_i y_j, shift_W)     (W_ij registered)
        stage 4: w_new = sat(W_ij - term, weight)
        stage 5: W_ij <- w_new at writeback_addr               (write_en)

    (With ``weight_stages == 0``, the iCE40, the bank is read again at stage 3 and its
    word goes straight into stage 4's subtraction: no register of its own.)

    **Latency.** The bank's word one cycle after its address (block RAM), a product two
    advancing cycles after its operands are at the operand stage, a write-back two cycles
    after stage 3.

    **Host.** While no pass runs (``fwd_busy | upd_busy`` low) the banks belong to
    ``host_w`` (address ``{pe, bank address}``); ``rdata`` comes ``host_latency`` cycles
    after ``re``.

    The banks themselves are the engine's (``bank_read``, ``bank_write``: the memories
    stay in the engine's module, ``W_pe<p>``, where the reports look for them).

    Parameters
    ----------
    cfg : Config
        The configuration (formats).
    pes : int
        ``P``.
    bank_depth : int
        Words per bank.
    tangent : bool
        Form the tangent products (``l >= 2``).
    shared : bool
        The tangent products come from the shared multiplier (``mul``).
    weight_stages : int
        0, or 1 for the registered bank words (stage 1X).
    host_latency : int
        1, or 2 for the host's words from registers.
    shift_W : int
        The update term's right shift (:func:`golden.arith.weight_update_shift`).

    Members
    -------
    busy, fwd_busy, upd_busy : ``In(1)``
        The engine's pass flags (:class:`~hdl.layer_control.PassControl`).
    advance : ``In(1)``
        The pipeline moves on (operand and product registers enabled).
    issue_addr, reread_addr, writeback_addr : ``In(range(bank_depth))``
        Forward read, update read, update write addresses.
    write_en : ``In(1)``
        Update: write ``w_new`` back (stage 5).
    operand_upd, operand_first : ``In(1)``
        The operand stage's word belongs to an update / to a group's first column.
    operand_y, operand_d : ``In(signed(act.width))``
        ``y_{l-1,j}``, ``d_{l-1,j}`` at the operand stage.
    delta : ``In(signed(err.width)).array(P)``
        Update: each PE's ``delta_i`` (already masked by ``relu'(a_i)``).
    prod_a : ``Out(signed(max(weight, err) + act.width)).array(P)``
        Stage 3's primal products.
    prod_t : ``Out(signed(weight.width + act.width)).array(P)``
        Stage 3's tangent products (0 for layer 1).
    host_w : ``In(MemPortSignature(pe_bits + bank_addr_bits, weight.width))``
        The host's port into the banks.
    bank_read : ``In(ReadPort.Signature(bank_addr_bits, signed(weight.width))).array(P)``
        Each PE's bank read port (synchronous, not transparent).
    bank_write : ``In(WritePort.Signature(bank_addr_bits, signed(weight.width))).array(P)``
        Each PE's bank write port.
    mul : ``Out(MulPortSignature(cfg))``
        Only with ``shared``: the tangent products.
    """

    def __init__(self, cfg: Config, *, pes: int, bank_depth: int, tangent: bool, shared: bool,
                 weight_stages: int, host_latency: int, shift_W: int):
        ar = cfg.arith
        self.cfg, self.pes, self.bank_depth = cfg, pes, bank_depth
        self.tangent, self.shared = tangent, shared
        self.weight_stages, self.host_latency, self.shift_W = weight_stages, host_latency, shift_W
        P = pes
        self.pe_bits = (P - 1).bit_length()
        self.bank_addr_bits = max(1, (bank_depth - 1).bit_length())
        act, err = fixed_shape(ar.act), fixed_shape(ar.err)
        self.operand_a_shape = signed(max(ar.weight.width, ar.err.width))
        addr = range(max(bank_depth, 2))
        members = {
            "busy": In(1), "fwd_busy": In(1), "upd_busy": In(1), "advance": In(1),
            "issue_addr": In(addr), "reread_addr": In(addr), "writeback_addr": In(addr),
            "write_en": In(1),
            "operand_upd": In(1), "operand_first": In(1), "operand_y": In(act), "operand_d": In(act),
            "delta": In(err).array(P),
            "prod_a": Out(signed(self.operand_a_shape.width + ar.act.width)).array(P),
            "prod_t": Out(signed(ar.weight.width + ar.act.width)).array(P),
            "host_w": In(MemPortSignature(self.pe_bits + self.bank_addr_bits, ar.weight.width)),
            "bank_read": In(ReadPort.Signature(addr_width=self.bank_addr_bits,
                                               shape=fixed_shape(ar.weight))).array(P),
            "bank_write": In(WritePort.Signature(addr_width=self.bank_addr_bits,
                                                 shape=fixed_shape(ar.weight))).array(P),
        }
        if shared:
            members["mul"] = Out(MulPortSignature(cfg))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ar = self.cfg.arith
        P, host = self.pes, self.host_w
        w_s = fixed_shape(ar.weight)
        ports = list(zip(self.bank_read, self.bank_write))

        # The banks belong to the passes from the cycle after the registered strobe on
        # (``fwd_busy | upd_busy``, two registers): the select of these multiplexers,
        # which reach every bank's address and enables, is one LUT from registers. The
        # addresses are the same for every PE: one multiplexer each.
        in_pass = Signal()
        host_addr = host.addr[:self.bank_addr_bits]
        read_addr = Signal.like(self.issue_addr, name="bank_raddr")
        write_addr = Signal.like(self.issue_addr, name="bank_waddr")
        read_en = Signal()
        m.d.comb += [
            in_pass.eq(self.fwd_busy | self.upd_busy),
            read_addr.eq(Mux(in_pass, Mux(self.upd_busy, self.reread_addr, self.issue_addr), host_addr)),
            read_en.eq(Mux(in_pass, self.upd_busy | self.advance, host.re)),
            write_addr.eq(Mux(in_pass, self.writeback_addr, host_addr)),
        ]

        bank_words = [Signal(w_s, name=f"w_rd{p}") for p in range(P)]     # the banks' read data
        bank_words_q = []                                                   # ... registered
        for p, (rd, wr) in enumerate(ports):
            host_sel = (host.addr[self.bank_addr_bits:] == p) if self.pe_bits else Const(1)
            m.d.comb += [rd.addr.eq(read_addr), rd.en.eq(read_en), wr.addr.eq(write_addr),
                         wr.en.eq(Mux(in_pass, self.write_en, host.we & host_sel)),
                         bank_words[p].eq(rd.data)]
            w_new = self.processing_element(m, p, rd.data)
            bank_words_q.append(w_new[0])
            with m.If(in_pass):
                m.d.comb += wr.data.eq(w_new[1])
            with m.Else():
                m.d.comb += wr.data.eq(host.wdata)

        host_pe = Signal(max(self.pe_bits, 1))
        with m.If(host.re & ~self.busy):
            m.d.sync += host_pe.eq(host.addr[self.bank_addr_bits:] if self.pe_bits else 0)
        host_words = bank_words_q if self.host_latency == 2 else bank_words
        m.d.comb += host.rdata.eq(Array(host_words)[host_pe] if P > 1 else host_words[0])
        return m

    def processing_element(self, m, p, bank_word):
        """PE ``p``'s multipliers and write-back, added to ``m``; returns ``(w_q, w_new)``:
        the bank's word registered and the word to write back."""
        ar = self.cfg.arith
        w_s, act_s = fixed_shape(ar.weight), fixed_shape(ar.act)
        en, upd, first = self.advance, self.operand_upd, self.operand_first
        operand_a = data_reg(self.operand_a_shape, f"operand_a{p}")   # W or delta
        operand_y = data_reg(act_s, f"operand_y{p}")                    # y_{l-1,j}
        operand_w = data_reg(w_s, f"operand_w{p}")                      # tangent: W
        operand_d = data_reg(act_s, f"operand_d{p}")                    # d_{l-1,j}
        prod_a = data_reg(self.prod_a[p].shape(), f"prod_a{p}")
        prod_t = data_reg(self.prod_t[p].shape(), f"prod_t{p}")
        m.d.comb += [self.prod_a[p].eq(prod_a), self.prod_t[p].eq(prod_t)]

        # w_q: the bank's word registered: on the ECP5 stage 1X's word in forward passes,
        # where it holds while the pipeline stalls, and W_ij read again (update; on the
        # iCE40 the bank's word itself, read a stage later), and the host's word.
        w_q = data_reg(w_s, f"w_q{p}")
        w = w_q if self.weight_stages else bank_word
        w_old = w_q if self.weight_stages else bank_word     # update: W_ij at stage 4
        # Operand stage -> stage 3. The primal multiplier forms W * y (forward) or
        # delta * y (update: delta_i is taken with a group's first column and held); the
        # tangent one W * d (layers 2..L).
        with m.If(en):
            with m.If(~upd | first):
                m.d.sync += operand_a.eq(Mux(upd, self.delta[p], w))
            m.d.sync += [operand_y.eq(self.operand_y), prod_a.eq(operand_a * operand_y)]
            if self.tangent and not self.shared:
                m.d.sync += [operand_w.eq(w), operand_d.eq(self.operand_d),
                             prod_t.eq(operand_w * operand_d)]
        if self.shared:
            # The shared multiplier's registers take the places of operand_w, operand_d
            # and prod_t (forward passes).
            m.d.comb += [self.mul.a.eq(w), self.mul.b.eq(self.operand_d), self.mul.ce.eq(en),
                         self.mul.sel.eq(self.fwd_busy), prod_t.eq(self.mul.p[:len(prod_t)])]

        # Update write-back: stage 3 rounds the term (and W_ij arrives), stage 4 subtracts
        # and saturates. |delta y| <= 2^(len - 2): the rounded term needs len - shift_W + 1 bits.
        # The term is kept inverted (free in the rounding adder's LUTs), so that stage 4
        # adds: W - term = W + ~term + 1, with no inverter in front of its carry chain.
        term_inv = data_reg(signed(len(prod_a) - self.shift_W + 1), f"wb_term_inv{p}")
        w_new = data_reg(w_s, f"w_new{p}")
        m.d.sync += [term_inv.eq(~round_shift(prod_a, self.shift_W)),
                     w_new.eq(saturate(w_old + term_inv + 1, ar.weight))]
        if self.weight_stages:
            with m.If(~self.fwd_busy | en):
                m.d.sync += w_q.eq(bank_word)
        else:
            m.d.sync += w_q.eq(bank_word)
        return w_q, w_new
