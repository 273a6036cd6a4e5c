"""Layer engine: the forward pass (eq. 1 and eq. 12) and the weight update of one layer.

One :class:`LayerEngine` per layer. It holds the layer's forward weights ``W_l`` banked
across ``P`` processing elements, its biases ``b_l``, and (hidden layers) the buffers
``y_l``, ``d_l`` and the mask ``relu'(a_l)`` that the layer above and its own update read.
The arithmetic is ``docs/ARITHMETIC.md``, section 5, steps 2 and 5, bit for bit
(:func:`golden.arith.layer_forward`, :func:`golden.arith.weight_update`); the structure is
described in ``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, MemoryData, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

from .bank import SlicedMemory
from .fixed import fixed_shape, narrow, round_shift, saturate
from .layouts import ErrorBeat, MemPortSignature, OutputBeat, addr_width
from .mul import MulPortSignature

__all__ = ["ActReadSignature", "LayerEngine", "bank_rows", "host_latency", "weight_stages"]


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


class LayerEngine(wiring.Component):
    """Forward pass and weight update of layer ``l`` with ``P`` processing elements.

    **Banking.** PE ``p`` owns one memory of ``W_l``: rows ``i`` with ``i mod P == p``,
    at address ``(i div P) * n_{l-1} + j``. Rows are processed in groups of ``P``
    (group ``r`` holds rows ``r*P .. r*P+P-1``), one column ``j`` per cycle: the word
    ``y_{l-1,j}`` (and ``d_{l-1,j}``) read from the layer below is broadcast to all PEs.

    **Forward** (``fwd`` strobe). A three-stage pipeline per PE: read ``W[p]`` and the
    layer below at column ``j``; multiply (each weight read feeds the primal product
    ``w*y`` and, for ``l >= 2``, the tangent product ``w*d`` in the same cycle); add to
    the accumulators. At the end of a group the ``P`` accumulators move to a hold
    register and the next group starts at once, while a serial activation stage
    (one row a cycle, one rounding unit) computes for each row ``i``::

        a = narrow(acc_a + (b_i << act.frac), weight.frac, act)       eq. 1
        t = narrow(acc_t, weight.frac, act)        (0 for layer 1)
        hidden: y = max(a, 0); d = sat([a > 0] * t + v_i, act)        eq. 12
        output: y = a; d = t

    Hidden layers write ``y``, ``d`` into their buffers (read by the layer above through
    ``buf``) and ``[a > 0]`` into the mask register. The output layer streams
    ``(y_L,o, d_L,o)`` to the output unit instead (``y``) and keeps nothing.

    **Update** (``upd`` strobe). The engine takes ``delta_i`` one row at a time (hidden:
    ``g_i`` from its feedback unit, masked by ``relu'(a_i)``; output: ``e_o`` from the
    error bus, captured by a FIFO of ``n_L`` words so that the bus never waits for this
    engine). Each ``delta_i`` updates ``b_i`` at once; every ``P`` rows the same PE
    pipeline runs a row group again, now as a read-modify-write of ``W``: the primal
    multiplier forms ``delta_i * y_{l-1,j}`` and the PE writes back
    ``sat(W_ij - round_shift(delta_i y_j, err.frac + act.frac + lr_shift - weight.frac))``
    two cycles after the read. The rows of the next group are collected while the current
    group is written.

    **ECP5** (``weight_stages == 1``, :func:`weight_stages`). One more register stage
    (1X) between the banks and the multipliers' operand registers: the banks' words
    (``w_d``), the layer below's words and the pipeline's control are registered first,
    so that the block RAMs' slow outputs end at a register; every later stage, in both
    passes, comes a cycle later (``hdl.cycles``).

    **Streaming** (``hardware.stream``, one PE, layers ``l >= 2``). The forward pass
    starts together with the layer below's and runs column by column instead of row
    group by row group: for each ``j``, once the layer below has written ``y_{l-1,j}``
    and ``d_{l-1,j}`` (``prev_written``), the PE issues the ``n_l`` rows ``i`` at bank
    addresses ``i * n_{l-1} + j``, one a cycle, and adds ``W_ij y_j`` and ``W_ij d_j`` to
    row ``i``'s sums, which live in two small memories of ``n_l`` words (read and
    written again at stage 3; the first column writes the product alone). After the last
    column the activation stage takes the rows from those memories, as above. The sums
    are the same integers, added in the same order, so the result is the same bit for
    bit; the update pass is unchanged. The memories are LUT RAM read asynchronously where
    the board has it (``cfg.lut_ram``, the ECP5); elsewhere (the iCE40) one block RAM of
    both sums, read a stage early, and the activation stage starts a cycle later.

    **Relu mask.** ``[a_l,i > 0]`` goes from the activation stage to the update through a
    shift register of ``n_l`` bits (not through a second read port of ``y_buf``: a second
    block RAM on the iCE40, a slow DP16KD output on the ECP5).

    **Shared multiplier** (``hardware.share_multiplier``, the output layer with one PE).
    The tangent products come from the processor's shared multiplier (``mul``, held
    during forward passes) instead of the engine's own; the timing is the same.

    **Host.** While ``busy`` is low the host reads and writes ``W`` and ``b`` through
    ``host_w`` (address ``{pe, bank address}``: the PE index in the high bits) and
    ``host_b`` (address ``i``).

    Parameters
    ----------
    cfg : Config
        The validated configuration (formats, layer sizes, ``hardware.pes``).
    layer : int
        Layer index, counting from 1.
    W_init : sequence of int, optional
        Initial ``W_l``, row-major (``n_l * n_{l-1}`` stored integers); zeros if omitted.
    b_init : sequence of int, optional
        Initial ``b_l`` (``n_l`` stored integers); zeros if omitted.

    Members
    -------
    fwd : ``In(1)``
        Start the forward pass (a one-cycle strobe while ``busy`` is low).
    upd : ``In(1)``
        Start the weight update (a one-cycle strobe while ``busy`` is low, after the
        forward pass of this training step).
    busy : ``Out(1)``
        A pass is running; high from the cycle after the strobe until the last word of
        the pass is written.
    prev : ``Out(ActReadSignature(cfg, n_{l-1}))``
        Reads ``y_{l-1}`` and ``d_{l-1}`` (the layer below or, for layer 1, the input).
    v : ``In(n_l)``
        Hidden layers only: the directions (bit ``i`` set means ``v_i = -1``).
    v_valid : ``In(1)``
        Hidden layers only: ``v`` is complete; the activation stage waits for it.
    buf : ``In(ActReadSignature(cfg, n_l))``
        Hidden layers only: the layer above reads ``y_l`` and ``d_l`` here.
    g : ``In(stream.Signature(signed(err.width)))``
        Hidden layers only: ``g_i`` from the feedback unit, ``i`` in order (update).
    y : ``Out(stream.Signature(OutputBeat(cfg)))``
        Output layer only: ``(y_L,o, d_L,o)``, ``o`` in order (forward).
    bus : ``In(stream.Signature(ErrorBeat(cfg)))``
        Output layer only: the error bus; ``e_o`` is ``delta_L,o`` (update). Its
        ``ready`` does not depend on ``valid``.
    prev_written : ``In(1)``
        Streaming layers only: the layer below wrote its next ``y``, ``d`` row (rows
        come in order) this cycle; the forward pass reads a column only once it is written.
    written : ``Out(1)``
        Only when the layer above streams: this cycle writes the next row of ``y``, ``d``.
    mul : ``Out(MulPortSignature(cfg))``
        Only with the shared multiplier (``self.shared``): the tangent products.
    host_w : ``In(MemPortSignature(pe_bits + bank_addr_bits, weight.width))``
        Host port into the ``W`` banks (address ``{pe, (i div P) * n_{l-1} + j}``).
    host_b : ``In(MemPortSignature(addr_width(n_l), weight.width))``
        Host port into ``b``.
    """

    def __init__(self, cfg: Config, layer: int, *, W_init=None, b_init=None):
        L = cfg.model.n_layers
        if not 1 <= layer <= L:
            raise ValueError(f"layer {layer} is not a layer (1..{L})")
        self.cfg = cfg
        self.layer = layer
        self.n_in = cfg.model.layers[layer - 1]
        self.n_out = cfg.model.layers[layer]
        self.pes = cfg.hardware.pes[layer - 1]
        self.groups = self.n_out // self.pes
        self.hidden = layer < L
        self.tangent = layer >= 2
        #: This layer streams behind the layer below (``hardware.stream``; one PE).
        self.stream = cfg.streams(layer)
        #: The layer above streams behind this one: it gets the ``written`` strobe.
        self.feeds_stream = self.hidden and cfg.streams(layer + 1)
        #: The tangent products come from the shared multiplier (``mul``; the output
        #: layer with one PE, ``hardware.share_multiplier``).
        self.shared = (not self.hidden and self.tangent and self.pes == 1
                       and "tangent" in cfg.shared_multiplier_units)
        self.bank_depth = cfg.bank_depth(layer)
        self.bank_addr_bits = addr_width(self.bank_depth)
        self.pe_bits = (self.pes - 1).bit_length()
        #: The host ports' read latency in cycles: 2 on the ECP5 boards (the word comes
        #: from a register after the block RAM, whose outputs are slow there), else 1.
        self.host_latency = host_latency(cfg)
        #: Extra pipeline stages between the ``W`` banks and the operand registers
        #: (:func:`weight_stages`: 1 on the ECP5 boards, else 0).
        self.weight_stages = weight_stages(cfg)

        W_init = [0] * (self.n_out * self.n_in) if W_init is None else list(W_init)
        b_init = [0] * self.n_out if b_init is None else [int(v) for v in b_init]
        if len(b_init) != self.n_out:
            raise ValueError(f"{len(b_init)} biases given, {self.n_out} expected")
        w_s = fixed_shape(cfg.arith.weight)
        #: The widths of the column slices each ``W`` bank is stored in
        #: (:meth:`~ddfa.config.Config.bram_slices`; one slice: a plain memory).
        self.bank_slices = cfg.bram_slices(layer)
        #: The ``W`` banks: ``MemoryData`` each, or a :class:`~hdl.bank.SlicedMemory`
        #: where the bank is sliced. A testbench reads a weight with
        #: :meth:`bank_word`.
        self.W_data = []
        for bank in bank_rows(W_init, self.n_out, self.n_in, self.pes):
            if len(self.bank_slices) == 1:
                self.W_data.append(MemoryData(shape=w_s, depth=self.bank_depth, init=bank))
            else:
                self.W_data.append(SlicedMemory(shape=w_s, depth=self.bank_depth, init=bank,
                                                slices=self.bank_slices))
        #: The contents of ``b`` (a testbench reads them with ``ctx.get(engine.b_data[i])``).
        self.b_data = MemoryData(shape=w_s, depth=self.n_out, init=b_init)

        ar = cfg.arith
        members = {
            "fwd": In(1),
            "upd": In(1),
            "busy": Out(1),
            "prev": Out(ActReadSignature(cfg, self.n_in)),
            "host_w": In(MemPortSignature(self.pe_bits + self.bank_addr_bits, ar.weight.width)),
            "host_b": In(MemPortSignature(addr_width(self.n_out), ar.weight.width)),
        }
        if self.stream:
            members["prev_written"] = In(1)
        if self.feeds_stream:
            members["written"] = Out(1)
        if self.shared:
            members["mul"] = Out(MulPortSignature(cfg))
        if self.hidden:
            members.update({
                "v": In(self.n_out),
                "v_valid": In(1),
                "buf": In(ActReadSignature(cfg, self.n_out)),
                "g": In(stream.Signature(fixed_shape(ar.err))),
            })
        else:
            members.update({
                "y": Out(stream.Signature(OutputBeat(cfg))),
                "bus": In(stream.Signature(ErrorBeat(cfg))),
            })
        super().__init__(members)

    # Shifts of the weight update (ARITHMETIC.md section 5, step 5).
    @property
    def shift_W(self) -> int:
        a = self.cfg.arith
        return a.err.frac + a.act.frac + a.lr_shift - a.weight.frac

    def bank_word(self, ctx, p: int, addr: int) -> int:
        """The weight at address ``addr`` of PE ``p``'s bank in a simulation."""
        bank = self.W_data[p]
        return bank.word(ctx, addr) if isinstance(bank, SlicedMemory) else ctx.get(bank[addr])

    @property
    def shift_b(self) -> int:
        a = self.cfg.arith
        return a.err.frac + a.lr_shift - a.weight.frac

    def elaborate(self, platform):
        m = Module()
        ar = self.cfg.arith
        P, R, n_in, n_out = self.pes, self.groups, self.n_in, self.n_out
        xs = self.weight_stages == 1        # the ECP5's stage 1X (see "stage 1" below)
        act_s, err_s, w_s = fixed_shape(ar.act), fixed_shape(ar.err), fixed_shape(ar.weight)
        # The accumulators sum n_in products W*y (or W*d), each |W*y| <= 2^(w+a-2) for
        # w-bit weights and a-bit activations: |sum| <= 2^(w+a-2+ceil(log2 n_in)) fits a
        # signed word of w + a + ceil(log2 n_in) bits, never wider than ``acc_width``
        # (which also covers the bias and the widest fan-in). No sum can overflow either
        # way, so the result is the same bit for bit; a narrower adder is smaller and faster.
        acc_s = signed(min(ar.acc_width, self.cfg.sum_width(ar.weight.width, ar.act.width, n_in)))

        # Datapath registers that are always written before they are read carry no reset
        # (``reset_less``): Yosys then packs the multipliers' operand and product registers
        # into the iCE40 SB_MAC16, and no register needs a reset net.
        def dreg(shape, name):
            return Signal(shape, name=name, reset_less=True)

        # ---- memories -------------------------------------------------------------
        banks = []
        for p in range(P):
            if isinstance(self.W_data[p], SlicedMemory):
                m.submodules[f"W_pe{p}"] = bank = self.W_data[p]
                banks.append((bank.read, bank.write))
            else:
                m.submodules[f"W_pe{p}"] = mem = Memory(data=self.W_data[p])
                banks.append((mem.read_port(), mem.write_port()))
        m.submodules.b = b_mem = Memory(data=self.b_data)
        b_rd, b_wr = b_mem.read_port(), b_mem.write_port()

        # ---- control state --------------------------------------------------------
        fwd_busy = Signal()
        upd_busy = Signal()
        # The strobes are registered first (the sequencer's decision logic ends there);
        # ``busy`` is high from the cycle after a strobe, as before.
        fwd_q, upd_q = Signal(), Signal()
        m.d.sync += [fwd_q.eq(self.fwd), upd_q.eq(self.upd)]
        # ``busy`` is fwd_busy | upd_busy | fwd_q | upd_q, kept in a register of its own
        # (its next value is formed at the end of elaborate): the sequencer's decisions
        # then start at a register, not at this engine's logic.
        busy = Signal()
        m.d.comb += self.busy.eq(busy)

        # Stage 0: issue (group r, column j) -> bank address r*n_in + j.
        s0_active = Signal()
        s0_upd = Signal()
        s0_addr = Signal(range(max(self.bank_depth, 2)))
        s0_j = Signal(range(max(n_in, 2)))
        s0_i = Signal(range(max(n_out, 2)))     # streaming forward only: the row of column j
        # Stage 1: memory words valid. Stage 2: multiplier operands registered.
        # Stage 3: products registered (forward: accumulate). Update only: W is read again
        # at stage 2 (address ``rb_addr``; the word is registered at the end of stage 3),
        # stage 4 has the rounded update term and the word, stage 5 writes it (address
        # ``wb_addr``). An update pass visits the bank addresses in order, so two counters
        # replace a pipeline of addresses.
        s1_valid, s1_first, s1_last, s1_upd = Signal(), Signal(), Signal(), Signal()
        s2_valid, s2_last, s2_upd = Signal(), Signal(), Signal()
        s3_valid, s3_last, s3_upd = Signal(), Signal(), Signal()
        s4_valid, s4_last = Signal(), Signal()
        s5_valid, s5_last = Signal(), Signal()
        # Streaming forward only: the row and "first column" flag down to stage 3.
        s1_i, s2_i, s3_i = (Signal.like(s0_i, name=f"s{k}_i") for k in (1, 2, 3))
        s2_first, s3_first = Signal(), Signal()
        rb_addr = Signal.like(s0_addr, name="rb_addr")
        wb_addr = Signal.like(s0_addr, name="wb_addr")

        mul_a_s = signed(max(ar.weight.width, ar.err.width))
        ma = [dreg(mul_a_s, f"ma{p}") for p in range(P)]          # primal operand: W or delta
        mb = [dreg(act_s, f"mb{p}") for p in range(P)]            # y_{l-1,j}
        mt = [dreg(w_s, f"mt{p}") for p in range(P)]              # tangent operand: W
        md = [dreg(act_s, f"md{p}") for p in range(P)]            # d_{l-1,j}
        prod_a = [dreg(signed(mul_a_s.width + ar.act.width), f"prod_a{p}") for p in range(P)]
        prod_t = [dreg(signed(ar.weight.width + ar.act.width), f"prod_t{p}") for p in range(P)]
        acc_a = [dreg(acc_s, f"acc_a{p}") for p in range(P)]
        acc_t = [dreg(acc_s, f"acc_t{p}") for p in range(P)]
        hold_a = [dreg(acc_s, f"hold_a{p}") for p in range(P)]
        hold_t = [dreg(acc_s, f"hold_t{p}") for p in range(P)]
        acc_full = Signal()         # the accumulators hold a finished group
        hold_load = Signal()        # ... and move to the hold register (accumulators cleared)
        hold_valid = Signal()       # the hold register holds a group for the activation stage

        # Update: deltas collected P at a time, then latched as the PEs' operands (the
        # primal multipliers' operand registers, which hold them for the whole row group).
        collect = [dreg(err_s, f"collect{p}") for p in range(P)]
        collect_m = [Signal(name=f"collect_m{p}") for p in range(P)]     # relu'(a_i) of each
        col_full = Signal()
        col_cnt = Signal(range(max(P, 2)))
        col_i = Signal(range(n_out + 1))
        groups_done = Signal(range(max(R, 2)))

        # Global stall: while the accumulators hold a finished group, the next group's
        # first product waits (at least the cycle the group moves to the hold register and
        # the accumulators are cleared; longer while the hold register is still in use).
        en = Signal()
        a0_go = Signal()            # the activation stage takes a row (see below)
        # With one PE there is no hold register: the activation stage takes the
        # accumulators' row itself.
        bypass = P == 1
        m.d.comb += [en.eq(~(acc_full & s3_valid & ~s3_upd)),
                     hold_load.eq(acc_full & ~hold_valid if not bypass else 0)]

        # ---- stage 0 --------------------------------------------------------------
        group_ok = Signal()
        # (ECP5: the deltas are latched one cycle later, at the end of stage 1X, so
        # ``col_full`` clears at stage 1 (the next delta is taken at stage 1X at the
        # earliest, and changes the collected ones only after the latch); a group's
        # first column never issues in that cycle, which matters only for n_in = 1.)
        if xs:
            col_clr = Signal()
            m.d.comb += group_ok.eq(~s0_upd | (s0_j != 0) | (col_full & ~col_clr))
        else:
            m.d.comb += group_ok.eq(~s0_upd | (s0_j != 0) | col_full)
        s0_issue = Signal()
        if self.stream:
            # A column is issued once the layer below has written it (``avail`` rows so far).
            avail = Signal(range(n_in + 1))
            with m.If(fwd_q):
                m.d.sync += avail.eq(0)
            with m.Elif(self.prev_written):
                m.d.sync += avail.eq(avail + 1)
            m.d.comb += s0_issue.eq(s0_active & en & group_ok & (s0_upd | (s0_j < avail)))
        else:
            m.d.comb += s0_issue.eq(s0_active & en & group_ok)

        m.d.comb += [self.prev.addr.eq(s0_j), self.prev.en.eq(en)]
        with m.If(fwd_q):
            m.d.sync += [fwd_busy.eq(1), s0_active.eq(1), s0_upd.eq(0), s0_addr.eq(0), s0_j.eq(0),
                         col_i.eq(0)]
            if self.stream:
                m.d.sync += s0_i.eq(0)
        with m.Elif(upd_q):
            m.d.sync += [upd_busy.eq(1), s0_active.eq(1), s0_upd.eq(1), s0_addr.eq(0), s0_j.eq(0),
                         col_i.eq(0), col_cnt.eq(0), groups_done.eq(0)]
        with m.Elif(s0_issue & s0_upd if self.stream else s0_issue):
            # Row groups, column by column: the bank addresses in order.
            m.d.sync += s0_addr.eq(s0_addr + 1)
            with m.If(s0_j == n_in - 1):
                m.d.sync += s0_j.eq(0)
                with m.If(s0_addr == self.bank_depth - 1):
                    m.d.sync += s0_active.eq(0)
            with m.Else():
                m.d.sync += s0_j.eq(s0_j + 1)
        if self.stream:
            # Streaming forward: column j, rows i = 0..n_l-1 (address i * n_in + j).
            with m.Elif(s0_issue):
                with m.If(s0_i == n_out - 1):
                    m.d.sync += [s0_i.eq(0), s0_addr.eq(s0_j + 1)]
                    with m.If(s0_j == n_in - 1):
                        m.d.sync += s0_active.eq(0)
                    with m.Else():
                        m.d.sync += s0_j.eq(s0_j + 1)
                with m.Else():
                    m.d.sync += [s0_i.eq(s0_i + 1), s0_addr.eq(s0_addr + n_in)]

        # ECP5 only (``weight_stages == 1``): stage 1X, between stages 1 and 2, holds the
        # banks' words (``w_d``, below), the layer below's words and the control, so that
        # the slow block RAM outputs end at a register (stage 2 and later are unchanged,
        # one cycle later). Elsewhere stage 2 takes stage 1 directly.
        if xs:
            sx_valid, sx_first, sx_last, sx_upd = Signal(), Signal(), Signal(), Signal()
            y_x, d_x = dreg(act_s, "y_x"), dreg(act_s, "d_x")
            sx_i = Signal.like(s0_i, name="sx_i")
            with m.If(en):
                m.d.sync += [sx_valid.eq(s1_valid), sx_first.eq(s1_first), sx_last.eq(s1_last),
                             sx_upd.eq(s1_upd), y_x.eq(self.prev.y)]
                if self.tangent:
                    m.d.sync += d_x.eq(self.prev.d)
                if self.stream:
                    m.d.sync += sx_i.eq(s1_i)
            o_valid, o_first, o_last, o_upd, o_i = sx_valid, sx_first, sx_last, sx_upd, sx_i
            o_y, o_d = y_x, d_x
        else:
            o_valid, o_first, o_last, o_upd, o_i = s1_valid, s1_first, s1_last, s1_upd, s1_i
            o_y, o_d = self.prev.y, self.prev.d
        # (Streaming: a forward pass's "last" is its very last issue, row n_l - 1 of the
        # last column; an update pass's is each row group's last column, as always.)
        s0_last = s0_j == n_in - 1
        if self.stream:
            s0_last = s0_last & (s0_upd | (s0_i == n_out - 1))
        with m.If(en):
            m.d.sync += [
                s1_valid.eq(s0_issue), s1_first.eq(s0_j == 0), s1_last.eq(s0_last),
                s1_upd.eq(s0_upd),
                s2_valid.eq(o_valid), s2_last.eq(o_last), s2_upd.eq(o_upd),
                s3_valid.eq(s2_valid), s3_last.eq(s2_last), s3_upd.eq(s2_upd),
            ]
            if self.stream:
                m.d.sync += [s1_i.eq(s0_i), s2_i.eq(o_i), s3_i.eq(s2_i),
                             s2_first.eq(o_first), s3_first.eq(s2_first)]
        # Stages 4 and 5 run only in update passes, where the pipeline never stalls.
        s3_wb = Signal()
        m.d.comb += s3_wb.eq(s3_valid & s3_upd)
        s2_rb = Signal()
        m.d.comb += s2_rb.eq(s2_valid & s2_upd)
        m.d.sync += [s4_valid.eq(s3_wb), s4_last.eq(s3_last), s5_valid.eq(s4_valid), s5_last.eq(s4_last)]
        with m.If(upd_q):
            m.d.sync += [rb_addr.eq(0), wb_addr.eq(0)]
        with m.Else():
            with m.If(s2_rb):
                m.d.sync += rb_addr.eq(rb_addr + 1)
            with m.If(s5_valid):
                m.d.sync += wb_addr.eq(wb_addr + 1)

        # ---- the PEs ----------------------------------------------------------------
        host_pe = Signal(max(self.pe_bits, 1))
        w_rd = [Signal(w_s, name=f"w_rd{p}") for p in range(P)]    # the banks' read data
        w_d_all = []                                                  # ... registered (below)
        # Forward: W is read at stage 0 (for the multipliers). Update: W is read again at
        # stage 3, so that the word arrives with the rounded update term (stage 4).
        # The banks' addresses are the same for every PE: one multiplexer each.
        host_addr = self.host_w.addr[:self.bank_addr_bits]
        rd_addr, wr_addr = Signal.like(s0_addr, name="bank_raddr"), Signal.like(s0_addr, name="bank_waddr")
        rd_en = Signal()
        # The banks belong to the passes from the cycle after the registered strobe on
        # (``fwd_busy | upd_busy``, two registers; ``busy`` also covers the strobe's cycle,
        # when the host is idle and nothing is read or written): the select of these
        # multiplexers, which reach every bank's address and enables, is one LUT from
        # registers.
        core = Signal()
        m.d.comb += core.eq(fwd_busy | upd_busy)
        m.d.comb += [
            rd_addr.eq(Mux(core, Mux(upd_busy, rb_addr, s0_addr), host_addr)),
            rd_en.eq(Mux(core, upd_busy | en, self.host_w.re)),
            wr_addr.eq(Mux(core, wb_addr, host_addr)),
        ]
        for p, (rd, wr) in enumerate(banks):
            host_sel = (self.host_w.addr[self.bank_addr_bits:] == p) if self.pe_bits else Const(1)
            m.d.comb += [rd.addr.eq(rd_addr), rd.en.eq(rd_en), wr.addr.eq(wr_addr),
                         wr.en.eq(Mux(core, s5_valid, self.host_w.we & host_sel))]
            m.d.comb += w_rd[p].eq(rd.data)

            w_d = dreg(w_s, f"w_d{p}")     # the bank's word, registered (see below)
            w_d_all.append(w_d)
            w = w_d if xs else rd.data
            # Stage 1 (1X on the ECP5) -> 2: the multipliers' operands. The primal
            # multiplier forms W * y (forward) or delta * y (update: the operand register
            # takes delta_i from the collected deltas with a group's first column and holds
            # it for the group); the tangent one W * d (layers 2..L).
            with m.If(en):
                with m.If(~o_upd | o_first):
                    m.d.sync += ma[p].eq(Mux(o_upd, Mux(collect_m[p], collect[p], 0), w))
                m.d.sync += [mb[p].eq(o_y), prod_a[p].eq(ma[p] * mb[p])]   # stage 2 -> 3
                if self.tangent and not self.shared:
                    m.d.sync += [mt[p].eq(w), md[p].eq(o_d),
                                 prod_t[p].eq(mt[p] * md[p])]             # the tangent multiplier
            if self.shared:
                # The shared multiplier's registers are mt, md and prod_t (forward passes).
                m.d.comb += [self.mul.a.eq(w), self.mul.b.eq(o_d), self.mul.ce.eq(en),
                             self.mul.sel.eq(fwd_busy), prod_t[p].eq(self.mul.p[:len(prod_t[p])])]

            if not self.stream:     # (streaming: the sums live in memories, below)
                # Stage 3, forward: accumulate. The accumulators are cleared (a synchronous
                # reset, no multiplexer in front of the adder) when their group moves on.
                with m.If(en & s3_valid & ~s3_upd):
                    m.d.sync += acc_a[p].eq(acc_a[p] + prod_a[p])
                    if self.tangent:
                        m.d.sync += acc_t[p].eq(acc_t[p] + prod_t[p])
                # (They are zero when a forward pass starts: every group is cleared as it moves.)
                with m.If(hold_load | (a0_go if bypass else 0)):
                    m.d.sync += acc_a[p].eq(0)
                    if self.tangent:
                        m.d.sync += acc_t[p].eq(0)

            # Update: stage 3 rounds the term (and W_ij arrives), stage 4 subtracts and
            # saturates, stage 5 writes W_ij back to the address read at stage 2.
            # |delta y| <= 2^(len - 2), so the rounded term needs len - shift_W + 1 bits.
            wb_r = dreg(signed(len(prod_a[p]) - self.shift_W + 1), f"wb_r{p}")
            # w_d: W_ij, read again (block RAM output registered). On the ECP5 it is also
            # stage 1X's word in forward passes, where it holds while the pipeline stalls.
            wb_w = dreg(w_s, f"wb_w{p}")
            if xs:
                m.d.sync += [wb_r.eq(round_shift(prod_a[p], self.shift_W)),
                             wb_w.eq(saturate(w_d - wb_r, ar.weight))]
                with m.If(~fwd_busy | en):
                    m.d.sync += w_d.eq(w_rd[p])
            else:
                m.d.sync += [wb_r.eq(round_shift(prod_a[p], self.shift_W)), w_d.eq(w_rd[p]),
                             wb_w.eq(saturate(w_d - wb_r, ar.weight))]
            with m.If(core):
                m.d.comb += wr.data.eq(wb_w)
            with m.Else():
                m.d.comb += wr.data.eq(self.host_w.wdata)

        with m.If(self.host_w.re & ~self.busy):
            m.d.sync += host_pe.eq(self.host_w.addr[self.bank_addr_bits:] if self.pe_bits else 0)
        host_words = w_d_all if self.host_latency == 2 else w_rd
        m.d.comb += self.host_w.rdata.eq(Array(host_words)[host_pe] if P > 1 else host_words[0])

        with m.If(s5_valid & s5_last):
            m.d.sync += groups_done.eq(groups_done + 1)
            with m.If(groups_done == R - 1):
                m.d.sync += upd_busy.eq(0)

        # ---- hold register and activation stage (serial, one row a cycle) -----------
        with m.If(hold_load):
            m.d.sync += [hold_valid.eq(1), acc_full.eq(0)]
            m.d.sync += [h.eq(a) for h, a in zip(hold_a, acc_a)]
            if self.tangent:
                m.d.sync += [h.eq(a) for h, a in zip(hold_t, acc_t)]
        with m.If(en & s3_valid & ~s3_upd & s3_last):
            m.d.sync += acc_full.eq(1)

        act_i = Signal(range(max(n_out, 2)))        # the next row for stage A0
        hold_p = Signal(range(max(P, 2)))
        a1_valid, a2_valid = Signal(), Signal()
        a1_i, a2_i = Signal(range(max(n_out, 2))), Signal(range(max(n_out, 2)))
        sums_ready = None
        if self.stream and not self.cfg.lut_ram:
            # The same in block RAM (the iCE40 has no LUT RAM), with registered reads: a
            # and t in one word, row s2_i's read at stage 2 so that its sums arrive with
            # the product at stage 3 (a row is written at stage 3 before it is read again
            # at stage 2: one column later, n_l >= 2 cycles; with one row, in the same
            # cycle, so the read port is transparent). After the last column the
            # activation stage reads row act_i ahead: the address is the next row as A0
            # takes one, and A0 waits a cycle for row 0 (``sums_ready``).
            m.submodules.sums = sums = Memory(shape=data.StructLayout({"a": acc_s, "t": acc_s}),
                                              depth=n_out, init=[])
            wr = sums.write_port()
            rd = sums.read_port(transparent_for=(wr,) if n_out == 1 else ())
            sums_ready = Signal()
            m.d.sync += sums_ready.eq(acc_full)
            m.d.comb += [rd.addr.eq(Mux(acc_full, Mux(a0_go, act_i + 1, act_i), s2_i)),
                         wr.addr.eq(s3_i), wr.en.eq(en & s3_valid & ~s3_upd),
                         wr.data.a.eq(Mux(s3_first, 0, rd.data.a) + prod_a[0]),
                         wr.data.t.eq(Mux(s3_first, 0, rd.data.t) + prod_t[0])]
            src_a, src_t = rd.data.a, rd.data.t
        elif self.stream:
            # Stage 3, streaming forward: row s3_i's sums, read (asynchronously) and
            # written back with this product added; the first column writes the product
            # alone. After the last column the activation stage reads them at act_i.
            m.submodules.sum_a = sum_a = Memory(shape=acc_s, depth=n_out, init=[])
            m.submodules.sum_t = sum_t = Memory(shape=acc_s, depth=n_out, init=[])
            stream_src = []
            for mem, prod in ((sum_a, prod_a[0]), (sum_t, prod_t[0])):
                rd, wr = mem.read_port(domain="comb"), mem.write_port()
                m.d.comb += [rd.addr.eq(Mux(acc_full, act_i, s3_i)),
                             wr.addr.eq(s3_i), wr.en.eq(en & s3_valid & ~s3_upd),
                             wr.data.eq(Mux(s3_first, 0, rd.data) + prod)]
                stream_src.append(rd.data)
            src_a, src_t = stream_src
        else:
            src_a, src_t = (acc_a[0], acc_t[0]) if bypass else (hold_a[0], hold_t[0])
        b_qa = dreg(w_s, "b_qa")                                 # b[act_i]
        a_sum = src_a + (b_qa << ar.act.frac)
        a1_sum = dreg(a_sum.shape(), "a1_sum")                   # acc + (b << act.frac)
        a1_t = dreg(act_s, "a1_t")                               # narrow(acc_t)
        a2_a = dreg(act_s, "a_sig")                              # a_l,i
        a2_t = dreg(act_s, "t_sig")                              # t_l,i
        a2_take = Signal()
        if self.hidden:
            m.d.comb += a2_take.eq(1)
            v_ok = self.v_valid
        else:
            m.d.comb += a2_take.eq(self.y.ready)
            v_ok = Const(1)
        act_adv = Signal()
        m.d.comb += act_adv.eq(~a2_valid | a2_take)
        full = acc_full if bypass else hold_valid
        if sums_ready is not None:
            full = full & sums_ready
        m.d.comb += a0_go.eq(fwd_busy & full & act_adv & v_ok)

        # A0: the hold register's first row and its bias (b_rd holds b[act_i], read ahead).
        with m.If(a0_go):
            m.d.sync += act_i.eq(act_i + 1)
            m.d.sync += [hold_a[k].eq(hold_a[k + 1]) for k in range(P - 1)]
            if self.tangent:
                m.d.sync += [hold_t[k].eq(hold_t[k + 1]) for k in range(P - 1)]
            if self.stream:
                with m.If(act_i == n_out - 1):         # every row's sums taken
                    m.d.sync += acc_full.eq(0)
            elif bypass:
                m.d.sync += acc_full.eq(0)
            with m.If(hold_p == P - 1):
                m.d.sync += [hold_valid.eq(0), hold_p.eq(0)]
            with m.Else():
                m.d.sync += hold_p.eq(hold_p + 1)
        with m.If(act_adv):
            m.d.sync += [a1_valid.eq(a0_go), a1_i.eq(act_i),
                         a1_sum.eq(a_sum),
                         a2_valid.eq(a1_valid), a2_i.eq(a1_i),
                         a2_a.eq(narrow(a1_sum, ar.weight.frac, ar.act))]          # eq. 1
            if self.tangent:
                m.d.sync += [a1_t.eq(narrow(src_t, ar.weight.frac, ar.act)), a2_t.eq(a1_t)]
        with m.If(fwd_q):
            m.d.sync += [act_i.eq(0), hold_p.eq(0), hold_valid.eq(0), acc_full.eq(0),
                         a1_valid.eq(0), a2_valid.eq(0)]
        with m.If(a2_valid & a2_take & (a2_i == n_out - 1)):
            m.d.sync += fwd_busy.eq(0)

        # A2: eq. 12 and the buffers (hidden) or the output stream.
        pos = Signal()
        m.d.comb += pos.eq(a2_a > 0)
        if self.hidden:
            m.submodules.y_buf = y_mem = Memory(shape=act_s, depth=n_out, init=[])
            m.submodules.d_buf = d_mem = Memory(shape=act_s, depth=n_out, init=[])
            y_wr, d_wr = y_mem.write_port(), d_mem.write_port()
            y_rd, d_rd = y_mem.read_port(), d_mem.read_port()
            # relu'(a_l,i) = [a_l,i > 0]: the mask bits go into a shift register, row 0
            # first (the forward pass writes the rows in order, the update takes them in
            # order). Reading [y_l,i != 0] back from y would need a second read port (the
            # first is the layer above's, busy with its own update at the same time): a
            # second block RAM on the iCE40, and on the ECP5 a DP16KD's slow output on
            # the path into the delta collector.
            mask = Signal(n_out, name="relu_mask")
            one = ar.act.one
            v_i = self.v.bit_select(a2_i, 1)
            y_val = Mux(pos, a2_a, 0)
            d_val = saturate(Mux(pos, a2_t, 0) + Mux(v_i, Const(-one, act_s), Const(one, act_s)), ar.act)
            if self.feeds_stream:
                m.d.comb += self.written.eq(a2_valid)
            m.d.comb += [
                y_wr.addr.eq(a2_i), y_wr.data.eq(y_val), y_wr.en.eq(a2_valid),
                d_wr.addr.eq(a2_i), d_wr.data.eq(d_val), d_wr.en.eq(a2_valid),
                y_rd.addr.eq(self.buf.addr), y_rd.en.eq(self.buf.en),
                d_rd.addr.eq(self.buf.addr), d_rd.en.eq(self.buf.en),
                self.buf.y.eq(y_rd.data), self.buf.d.eq(d_rd.data),
            ]
        else:
            m.d.comb += [self.y.valid.eq(a2_valid),
                         self.y.payload.y.eq(a2_a), self.y.payload.d.eq(a2_t)]

        # ---- update: delta_i in, bias update, row groups for the PEs ---------------
        collecting = Signal()
        m.d.comb += collecting.eq(upd_busy & ~col_full & (col_i < n_out))
        take = Signal()
        delta_in = Signal(err_s)        # g_i or e_o as it arrives; delta_i = keep ? delta_in : 0
        keep = Signal()
        if self.hidden:
            with m.If(a2_valid):
                m.d.sync += mask.eq(Cat(mask[1:], pos) if n_out > 1 else pos)
            with m.Elif(take):
                m.d.sync += mask.eq(mask >> 1)
            relu = mask[0]                                                      # [a_l,col_i > 0]
            m.d.comb += [self.g.ready.eq(collecting), take.eq(collecting & self.g.valid),
                         delta_in.eq(self.g.payload), keep.eq(relu)]
        else:
            # The error bus never waits for this engine: a FIFO holds all n_L values of e.
            m.submodules.e_fifo = fifo = SyncFIFOBuffered(width=ar.err.width, depth=n_out)
            m.d.comb += [fifo.w_data.eq(self.bus.payload.e), fifo.w_en.eq(self.bus.valid),
                         self.bus.ready.eq(fifo.w_rdy),
                         fifo.r_en.eq(collecting), take.eq(collecting & fifo.r_rdy),
                         delta_in.eq(fifo.r_data), keep.eq(1)]
        with m.If(take):
            m.d.sync += [collect[k].eq(collect[k + 1]) for k in range(P - 1)]
            m.d.sync += [collect_m[k].eq(collect_m[k + 1]) for k in range(P - 1)]
            m.d.sync += [collect[P - 1].eq(delta_in), collect_m[P - 1].eq(keep), col_i.eq(col_i + 1)]
            with m.If(col_cnt == P - 1):
                m.d.sync += [col_cnt.eq(0), col_full.eq(1)]
            with m.Else():
                m.d.sync += col_cnt.eq(col_cnt + 1)
        if xs:
            m.d.comb += col_clr.eq(en & s1_valid & s1_upd & s1_first)
            with m.If(col_clr):
                m.d.sync += col_full.eq(0)
        else:
            with m.If(s0_issue & s0_upd & (s0_j == 0)):
                m.d.sync += col_full.eq(0)
        with m.If(upd_q):
            m.d.sync += col_full.eq(0)

        # Bias: b_i <- sat(b_i - round_shift(delta_i, err.frac + lr_shift - weight.frac)),
        # in three steps after delta_i is taken (and b_i read): the term is masked and b_i
        # registered, then the new b_i is formed, then written.
        bu_term = round_shift(delta_in, self.shift_b)
        bu_raw = dreg(bu_term.shape(), "bu_raw")
        bu_r = dreg(bu_term.shape(), "bu_r")
        bu_m = Signal()
        b_q = dreg(w_s, "b_q")
        b_new = dreg(w_s, "b_new")
        bu_v = [Signal(name=f"bu_valid{k}") for k in range(3)]
        bu_i = [Signal(range(max(n_out, 2)), name=f"bu_i{k}") for k in range(3)]
        m.d.sync += [bu_v[0].eq(take), bu_raw.eq(bu_term), bu_m.eq(keep), bu_i[0].eq(col_i),
                     bu_v[1].eq(bu_v[0]), bu_i[1].eq(bu_i[0]), bu_r.eq(Mux(bu_m, bu_raw, 0)),
                     b_q.eq(b_rd.data),
                     bu_v[2].eq(bu_v[1]), bu_i[2].eq(bu_i[1]), b_new.eq(saturate(b_q - bu_r, ar.weight))]

        # Forward: the register b_qa holds b[act_i] and the read port b[act_i + 1]: b[0]
        # is read with the strobe and b[1] the cycle after (b_fill, b[0] moves to b_qa),
        # then b[i + 2] as row i goes (the address act_ra is a register; the read enable
        # says when).
        act_ra = Signal(range(max(n_out, 2)))
        b_fill = Signal()
        m.d.sync += b_fill.eq(fwd_q)
        with m.If(fwd_q):
            m.d.sync += act_ra.eq(min(1, n_out - 1))
        with m.Elif((b_fill | a0_go) & (act_ra != n_out - 1)):
            m.d.sync += act_ra.eq(act_ra + 1)
        with m.If(b_fill | a0_go):
            m.d.sync += b_qa.eq(b_rd.data)
        host_b = self.host_b
        with m.If(self.busy):
            m.d.comb += [
                b_rd.addr.eq(Mux(upd_busy, col_i, Mux(fwd_q, 0, act_ra))),
                b_rd.en.eq(Mux(upd_busy, take, fwd_q | b_fill | a0_go)),
                b_wr.addr.eq(bu_i[2]), b_wr.data.eq(b_new), b_wr.en.eq(bu_v[2]),
            ]
        with m.Else():
            m.d.comb += [
                b_rd.addr.eq(host_b.addr), b_rd.en.eq(host_b.re),
                b_wr.addr.eq(host_b.addr), b_wr.data.eq(host_b.wdata), b_wr.en.eq(host_b.we),
            ]
        m.d.comb += host_b.rdata.eq(b_q if self.host_latency == 2 else b_rd.data)
        # busy's next value: that of fwd_busy | upd_busy | fwd_q | upd_q (the statements
        # above, later ones winning: a pass's end clears its flag; upd_q sets upd_busy only
        # without fwd_q).
        fwd_end = a2_valid & a2_take & (a2_i == n_out - 1)
        upd_end = s5_valid & s5_last & (groups_done == R - 1)
        fwd_next = Mux(fwd_end, 0, fwd_q | fwd_busy)
        upd_next = Mux(upd_end, 0, (upd_q & ~fwd_q) | upd_busy)
        m.d.sync += busy.eq(self.fwd | self.upd | fwd_next | upd_next)
        return m
