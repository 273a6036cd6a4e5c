"""Layer engine: the forward pass (eq. 1 and eq. 12) and the weight update of one layer.

One :class:`LayerEngine` per layer. It holds the layer's forward weights ``W_l`` banked
across ``P`` processing elements, its biases ``b_l``, and (hidden layers) the buffers
``y_l``, ``d_l`` and the mask ``relu'(a_l)`` that the layer above and its own update read.
The arithmetic is ``docs/ARITHMETIC.md``, section 5, steps 2 and 5, bit for bit
(:func:`golden.arith.layer_forward`, :func:`golden.arith.weight_update`); the structure is
described in ``docs/ARCHITECTURE.md``.

Component map (``LayerEngine.elaborate`` only wires these together)::

    PassControl (layer_control)      strobes, busy, issue stage 0, pipeline control 1..5
      |  addresses, advance, operand y/d
    PEArray (layer_pe)               W banks; per PE primal + tangent multiplier from one
      |  prod_a, prod_t              weight read; update write-back W - round_shift(delta y)
    GroupSums | StreamSumsLUT | StreamSumsBRAM (layer_sums)
      |  row sums                    accumulators + hold register / streaming sums in LUT
      |                              RAM (ECP5) / in block RAM (iCE40)
    ActivationStage (layer_activation)  eq. 1, eq. 12; y/d buffers and relu mask (hidden)
      |                              or the output stream (output layer)
    DeltaCollector (layer_update)    delta_i in (g or the error FIFO), P at a time to the PEs
    BiasStore (layer_update)         b: read-ahead for the activation stage, bias update, host

Shared helpers (:func:`host_latency`, :func:`weight_stages`, :func:`ActReadSignature`,
:func:`bank_rows`) live in :mod:`hdl.layer_common` and are re-exported here.
"""

from __future__ import annotations

from amaranth.hdl import MemoryData, Module
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

from .bank import SlicedMemory
from .fixed import fixed_shape
from .layer_activation import ActivationStage
from .layer_common import ActReadSignature, bank_rows, host_latency, weight_stages
from .layer_control import PassControl
from .layer_pe import PEArray
from .layer_sums import GroupSums, StreamSumsBRAM, StreamSumsLUT, held_shape, sum_shape
from .layer_update import BiasStore, DeltaCollector
from .layouts import ErrorBeat, MemPortSignature, OutputBeat, addr_width
from .mul import MulPortSignature

__all__ = ["ActReadSignature", "LayerEngine", "bank_rows", "host_latency", "weight_stages"]


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
    (``w_q``), the layer below's words and the pipeline's control are registered first,
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

    # Shifts of the weight update (ARITHMETIC.md section 5, step 5; golden.arith).
    @property
    def shift_W(self) -> int:
        """The right shift of the weight update term (``ArithConfig.weight_update_shift``)."""
        return self.cfg.arith.weight_update_shift

    @property
    def shift_b(self) -> int:
        """The right shift of the bias update term (``ArithConfig.bias_update_shift``)."""
        return self.cfg.arith.bias_update_shift

    def bank_word(self, ctx, p: int, addr: int) -> int:
        """The weight at address ``addr`` of PE ``p``'s bank in a simulation."""
        bank = self.W_data[p]
        return bank.word(ctx, addr) if isinstance(bank, SlicedMemory) else ctx.get(bank[addr])

    def elaborate(self, platform):
        m = Module()
        cfg, ar, P, n_out = self.cfg, self.cfg.arith, self.pes, self.n_out
        acc_s = sum_shape(cfg, self.n_in)
        m.submodules.control = ctl = PassControl(
            cfg, n_in=self.n_in, n_out=n_out, bank_depth=self.bank_depth, groups=self.groups,
            stream=self.stream, tangent=self.tangent, weight_stages=self.weight_stages)
        m.submodules.pes = pes = PEArray(
            cfg, pes=P, bank_depth=self.bank_depth, tangent=self.tangent, shared=self.shared,
            weight_stages=self.weight_stages, host_latency=self.host_latency, shift_W=self.shift_W)
        prod_shapes = dict(prod_a_shape=pes.prod_a[0].shape(), prod_t_shape=pes.prod_t[0].shape())
        # With a hold register (row groups, P > 1) the deltas are kept there: it is idle
        # in update passes.
        held = held_shape(cfg, acc_s)
        deltas_in_hold = not self.stream and P > 1 and held.width >= ar.err.width
        if not self.stream:
            sums = GroupSums(acc_s, pes=P, n_out=n_out, tangent=self.tangent, held_s=held,
                             delta_s=fixed_shape(ar.err) if deltas_in_hold else None, **prod_shapes)
        elif cfg.lut_ram:
            sums = StreamSumsLUT(acc_s, n_out=n_out, **prod_shapes)
        else:
            sums = StreamSumsBRAM(acc_s, n_out=n_out, **prod_shapes)
        m.submodules.sums = sums
        m.submodules.activation = act = ActivationStage(
            cfg, n_out=n_out, acc_s=sums.sum_a.shape(), hidden=self.hidden, tangent=self.tangent,
            feeds_stream=self.feeds_stream)
        m.submodules.deltas = deltas = DeltaCollector(cfg, pes=P, n_out=n_out, external=deltas_in_hold)
        m.submodules.biases = bias = BiasStore(cfg, self.b_data, host_latency=self.host_latency,
                                             shift_b=self.shift_b)

        # Pass control: strobes, the layer below, the passes' ends.
        m.d.comb += [
            ctl.fwd.eq(self.fwd), ctl.upd.eq(self.upd), self.busy.eq(ctl.busy),
            self.prev.addr.eq(ctl.prev_addr), self.prev.en.eq(ctl.advance),
            ctl.prev_y.eq(self.prev.y), ctl.prev_d.eq(self.prev.d),
            ctl.fwd_done.eq(act.done), ctl.sums_full.eq(sums.sums_full), ctl.deltas_full.eq(deltas.full),
        ]
        if self.stream:
            m.d.comb += ctl.prev_written.eq(self.prev_written)
        # The PE array: addresses and operands from the control, deltas from the collector.
        m.d.comb += [
            pes.busy.eq(ctl.busy), pes.fwd_busy.eq(ctl.fwd_busy), pes.upd_busy.eq(ctl.upd_busy),
            pes.advance.eq(ctl.advance), pes.issue_addr.eq(ctl.issue_addr),
            pes.reread_addr.eq(ctl.reread_addr), pes.writeback_addr.eq(ctl.writeback_addr),
            pes.write_en.eq(ctl.write_en), pes.operand_upd.eq(ctl.operand_upd),
            pes.operand_first.eq(ctl.operand_first), pes.operand_y.eq(ctl.operand_y),
            pes.operand_d.eq(ctl.operand_d),
        ]
        m.d.comb += [pes.delta[p].eq(deltas.delta[p]) for p in range(P)]
        wiring.connect(m, wiring.flipped(self.host_w), pes.host_w)
        for p, bank in enumerate(self.W_data):
            if isinstance(bank, SlicedMemory):
                m.submodules[f"W_pe{p}"] = bank
                read, write = bank.read, bank.write
            else:
                m.submodules[f"W_pe{p}"] = mem = Memory(data=bank)
                read, write = mem.read_port(), mem.write_port()
            wiring.connect(m, pes.bank_read[p], read)
            wiring.connect(m, pes.bank_write[p], write)
        if self.shared:
            wiring.connect(m, wiring.flipped(self.mul), pes.mul)
        # The row sums: stage 3's products, taken by the activation stage.
        m.d.comb += [sums.fwd_start.eq(ctl.fwd_start), sums.sum_en.eq(ctl.sum_en),
                     sums.sum_last.eq(ctl.sum_last), sums.take.eq(act.take), sums.take_row.eq(act.row)]
        if self.stream:
            m.d.comb += [sums.prod_a.eq(pes.prod_a[0]), sums.prod_t.eq(pes.prod_t[0]),
                         sums.sum_row.eq(ctl.sum_row), sums.sum_first.eq(ctl.sum_first),
                         sums.operand_row.eq(ctl.operand_row),
                         sums.operand_row_first.eq(ctl.operand_row_first)]
        else:
            m.d.comb += [sums.prod_a[p].eq(pes.prod_a[p]) for p in range(P)]
            m.d.comb += [sums.prod_t[p].eq(pes.prod_t[p]) for p in range(P)]
        # The activation stage: the sums and their bias in; y, d out.
        m.d.comb += [act.fwd_start.eq(ctl.fwd_start), act.fwd_busy.eq(ctl.fwd_busy),
                     act.ready.eq(sums.ready), act.sum_a.eq(sums.sum_a), act.sum_t.eq(sums.sum_t),
                     act.bias.eq(bias.bias)]
        # The update: the deltas (hidden: g, masked by relu'; output: e through a FIFO).
        if deltas_in_hold:
            m.d.comb += [sums.delta_in.eq(deltas.value), sums.delta_shift.eq(deltas.taken)]
            m.d.comb += [deltas.stored[p].eq(sums.delta_out[p]) for p in range(P)]
        m.d.comb += [deltas.upd_busy.eq(ctl.upd_busy), deltas.fwd_start.eq(ctl.fwd_start),
                     deltas.upd_start.eq(ctl.upd_start), deltas.latched.eq(ctl.deltas_latched)]
        if self.hidden:
            m.d.comb += [act.v.eq(self.v), act.v_valid.eq(self.v_valid),
                         act.mask_shift.eq(deltas.taken), deltas.relu.eq(act.relu)]
            wiring.connect(m, wiring.flipped(self.buf), act.buf)
            wiring.connect(m, wiring.flipped(self.g), deltas.deltas)
            if self.feeds_stream:
                m.d.comb += self.written.eq(act.written)
        else:
            wiring.connect(m, act.y, wiring.flipped(self.y))
            # The error bus never waits for this engine: a FIFO holds all n_L values of e.
            m.submodules.e_fifo = fifo = SyncFIFOBuffered(width=ar.err.width, depth=n_out)
            m.d.comb += [fifo.w_data.eq(self.bus.payload.e), fifo.w_en.eq(self.bus.valid),
                         self.bus.ready.eq(fifo.w_rdy),
                         deltas.deltas.payload.eq(fifo.r_data), deltas.deltas.valid.eq(fifo.r_rdy),
                         fifo.r_en.eq(deltas.deltas.ready), deltas.relu.eq(1)]
        # The biases: read ahead for the activation stage, updated with each delta.
        m.d.comb += [bias.busy.eq(ctl.busy), bias.upd_busy.eq(ctl.upd_busy),
                     bias.fwd_start.eq(ctl.fwd_start), bias.act_take.eq(act.take),
                     bias.taken.eq(deltas.taken), bias.keep.eq(deltas.keep),
                     bias.delta.eq(deltas.value), bias.row.eq(deltas.row)]
        wiring.connect(m, wiring.flipped(self.host_b), bias.host_b)
        return m
