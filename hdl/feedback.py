"""Feedback unit: the feedback matrix ``B_l`` of one hidden layer, ``g_l = B_l e`` and the
in-place moving-average update of eq. 17 (``docs/ARITHMETIC.md``, section 5, step 4), the
hardware twin of :func:`golden.arith.feedback_unit`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ddfa.config import PROCESSOR_ALGORITHMS, Config
from ddfa.protocol import addr_width

from .fixed import fixed_shape, narrow, round_shift, saturate, wire
from .layer_common import host_latency
from .layouts import ErrorBeat, MemPortSignature
from .mul import MulPortSignature

__all__ = ["FeedbackUnit"]


class FeedbackUnit(wiring.Component):
    """Projected error ``g_l = B_l e`` and the update of ``B_l``, one word a cycle.

    ``B_l`` is ``n_l x n_L`` words of the ``feedback`` format, row-major (address
    ``i * n_L + o``), in one block RAM. For one training step:

    1. **Capture** (``n_L`` beats): the error-bus beats ``(e_o, d_L,o)`` are written to a
       small memory of ``n_L`` words, and ``v`` is sampled with the first beat.
    2. **Rows** (``n_l * n_L`` cycles, 5 cycles of latency): for each row ``i`` and
       output ``o`` in order, ``B_io`` is read once. The read feeds the unit's one
       multiplier, ``g_i += B_io * e_o`` (an accumulator of at most ``acc_width`` bits; its operands are
       registered first), and, for Directional DFA, the write-back of the same address
       (formed the cycle after, written the cycle after that; on the ECP5 the word read
       and ``-vd`` are registered first, one cycle more):
       ``vd = round_shift(sign(v_i) * d_o, act.frac - feedback.frac)`` (a sign flip and a
       shift, no multiplier) and
       ``B_io <- sat(B_io + round_shift(vd - B_io, alpha_shift), feedback)``, formed from
       ``B_io - vd`` so that every adder adds (the rounding is symmetric).
       After a row, ``g_i = narrow(sum, feedback.frac, err)`` is emitted on ``g``. While
       ``g`` is full and not taken, the whole pipeline waits.

    For random DFA (``model.algorithm = "dfa"``) ``B_l`` is fixed: nothing is written.

    With ``hardware.share_multiplier``, layer 1's unit sends ``B_io`` and ``e_o`` to the
    processor's shared multiplier (``mul``, held while the rows run) instead of its own;
    the timing is the same.

    Parameters
    ----------
    cfg : Config
        The configuration (formats, ``alpha_shift``, ``acc_width``, sizes, algorithm).
    layer : int
        Hidden layer index, counting from 1 (``n_l = cfg.model.layers[layer]``).
    init : sequence of int, optional
        Initial ``B_l`` (stored integers, row-major); zeros by default (Directional DFA).

    Members
    -------
    bus : ``In(stream.Signature(ErrorBeat(cfg)))``
        The broadcast error bus, ``n_L`` beats per step. Ready while idle or capturing.
    v : ``In(n_l)``
        The layer's direction bits (bit ``i`` is neuron ``i``; 1 means ``v_i = -1``);
        sampled when the first ``bus`` beat transfers.
    g : ``Out(stream.Signature(signed(err.width)))``
        ``g_l,i``, ``n_l`` beats in row order.
    busy : ``Out(1)``
        From the first ``bus`` beat until the last ``g`` beat transfers.
    host : ``In(MemPortSignature(addr_width(n_l * n_L), feedback.width))``
        The host's port into ``B_l``; used only while ``busy`` is low.
    mul : ``Out(MulPortSignature(cfg))``
        Only for the unit that uses the shared multiplier (``hardware.share_multiplier``,
        layer 1).
    """

    def __init__(self, cfg: Config, layer: int, init=None):
        if not 1 <= layer < cfg.model.n_layers:
            raise ValueError(f"layer {layer} is not a hidden layer (1..{cfg.model.n_layers - 1})")
        if cfg.model.algorithm not in PROCESSOR_ALGORITHMS:
            raise ValueError(f"the feedback unit implements ddfa and dfa, not "
                             f"model.algorithm = {cfg.model.algorithm!r}")
        self._cfg = cfg
        self._layer = layer
        self._rows = cfg.model.layers[layer]
        self._cols = cfg.model.n_outputs
        depth = self._rows * self._cols
        fb = cfg.arith.feedback
        init = [] if init is None else [int(x) for x in (init.flatten().tolist() if hasattr(init, "flatten") else init)]
        if len(init) > depth or any(not fb.min <= x <= fb.max for x in init):
            raise ValueError(f"init must be at most {depth} words of {fb}")
        self._init = init
        #: The products B_io * e_o come from the shared multiplier (``mul``).
        self.shared = layer == 1 and "feedback" in cfg.shared_multiplier_units
        members = {
            "bus": In(stream.Signature(ErrorBeat(cfg))),
            "v": In(self._rows),
            "g": Out(stream.Signature(fixed_shape(cfg.arith.err))),
            "busy": Out(1),
            "host": In(MemPortSignature(addr_width(depth), fb.width)),
        }
        if self.shared:
            members["mul"] = Out(MulPortSignature(cfg))
        super().__init__(members)

    @property
    def update(self) -> bool:
        """Whether ``B_l`` is updated (Directional DFA) or fixed (random DFA)."""
        return self._cfg.model.algorithm == "ddfa"

    def cycles(self) -> int:
        """Cycles from the first ``bus`` beat to ``busy`` low, with the beats back to back
        and ``g`` always ready."""
        return self._cols + self._rows * self._cols + 5

    def elaborate(self, platform):
        cfg, ar = self._cfg, self._cfg.arith
        rows, cols = self._rows, self._cols
        depth = rows * cols
        m = Module()

        m.submodules.mem = mem = Memory(shape=fixed_shape(ar.feedback), depth=depth, init=self._init)
        rp = mem.read_port()
        wp = mem.write_port()

        # The captured bus beats (e_o, d_o): read with the same address timing as B, so
        # that both words reach stage M together.
        m.submodules.beats = beats = Memory(shape=ErrorBeat(cfg), depth=cols, init=[])
        bw = beats.write_port()
        br = beats.read_port()
        e, d = br.data.e, br.data.d
        v = Signal(rows)                             # v[0] is the current row's bit
        cnt = Signal(range(cols + 1))                # capture count

        # Pipeline: issue read -> M (memory data) -> A (accumulate) -> N (row sum) -> g.
        ra = Signal(range(depth + 1))                # next address to read
        col = Signal(range(cols))                    # its column o
        m_v, m_last = Signal(), Signal()
        r_v, r_last = Signal(), Signal()             # stage R: the multiplier's operands
        B_r = Signal(fixed_shape(ar.feedback), reset_less=True)
        e_r = Signal(fixed_shape(ar.err), reset_less=True)
        a_v, a_last = Signal(), Signal()
        a_prod = Signal(signed(ar.feedback.width + ar.err.width), reset_less=True)   # in the SB_MAC16
        # n_L products B*e, each |B*e| <= 2^(f+e-2): the row sum fits f + e + ceil(log2 n_L)
        # bits (never more than ``acc_width``), so it cannot overflow (bit-exact either way).
        acc = Signal(signed(min(ar.acc_width, cfg.sum_width(ar.feedback.width, ar.err.width, cols))))
        n_v = Signal()
        total = Signal.like(acc)
        g_row = Signal(range(rows + 1))
        g_last = Signal()

        running = Signal()
        adv = Signal()                               # the pipeline moves this cycle
        m.d.comb += adv.eq(~(n_v & self.g.valid & ~self.g.ready))
        issue = running & (ra < depth)

        # -- stage M: one read of B_io serves both the MAC and the update ------------------
        # The update is finished one cycle later (stage W, which forms the new B_io; stage
        # X writes it back): the difference and ``B_io`` are registered at the end of
        # stage M. Every address is read once per step, so the later write changes nothing
        # else.
        #
        # The datapath forms B_io - vd (not vd - B_io) and keeps it inverted, so that every
        # carry chain adds operands as they come (an operand subtracted straight from a
        # register or a block RAM needs an inverter per bit in front of the chain):
        #   B - vd = B + x + c, where -vd = x + c: with vd = sign(v_i) d << k (k >= 0),
        #     x = (d << k) or its complement (v_i = +1) and c = [v_i = +1];
        #   round_shift(vd - B, alpha) = -round_shift(B - vd, alpha) (ties to even is
        #     symmetric), so B + step = B - q - inc = B + ~q + ~inc, with ~q taken from
        #     the inverted difference (~(n >> a) = ~n >> a) and ~inc as the carry-in.
        B = rp.data
        k = ar.feedback.frac - ar.act.frac                # vd = round_shift(sd, -k)
        if k >= 0:
            flip = ~v[0]                                  # -vd = -(d << k): complement, + 1
            dk = Cat(Const(0, k), d).as_signed() if k else d
            x = wire(m, Mux(flip, ~dk, dk), "nvd_x")
            c = flip
        else:
            sd = Mux(v[0], -d, d)                         # sign(v_i) * d_o: a sign flip
            x = wire(m, -round_shift(sd, -k), "nvd_x")
            c = Const(0, 1)
        u_v = None                                    # the update's stage U (ECP5 only)
        if cfg.registered_bram:
            # ECP5: ``B_io`` (and -vd's parts) go into registers of their own first (stage
            # U), so that the block RAM's slow output ends at a register and not in the
            # adder's carry chain; the write-back comes one cycle later.
            u_v = Signal(name="u_v")
            u_B = Signal.like(B, name="u_B", reset_less=True)
            u_x = Signal.like(x, name="u_x", reset_less=True)
            u_c = Signal(name="u_c", reset_less=True)
            m.d.sync += [u_v.eq(running & m_v & adv), u_B.eq(B), u_x.eq(x), u_c.eq(c)]   # M -> U
            B, x, c = u_B, u_x, u_c
        ndiff = wire(m, x + c + B, "ndiff")                     # B_io - vd
        w_ndiff_inv = Signal(ndiff.shape(), name="w_ndiff_inv", reset_less=True)   # ~(B - vd)
        w_B = Signal.like(B, name="w_B", reset_less=True)
        w_v = Signal()
        a = ar.alpha_shift
        if a >= 1:
            ni = w_ndiff_inv                              # bit j of B - vd is ~ni[j]
            rest = (~ni[:a - 1]).any() if a > 1 else Const(0, 1)
            inc_inv = wire(m, ~(~ni[a - 1] & (rest | ~ni[a])), "step_inc_inv")
            B_sum = w_B + (ni >> a) + inc_inv              # B + round_shift(vd - B, a)
        else:
            B_sum = w_B - round_shift(~w_ndiff_inv, a)
        B_new = wire(m, saturate(B_sum, ar.feedback), "B_new")
        # ... and registered once more before the write (stage X): the rounding, the adder
        # and the saturation are then not in one path with the block RAM's write port.
        # The words are written in the order they were read: the write address counts
        # the writes of the run.
        x_B = Signal.like(B, name="x_B", reset_less=True)
        x_v, x_a = Signal(), Signal(range(depth))
        m.d.sync += [x_v.eq(w_v), x_B.eq(B_new)]                                  # W -> X
        with m.If(x_v):
            m.d.sync += x_a.eq(x_a + 1)

        self._memory_ports(m, rp, wp, br, running=running, adv=adv, ra=ra, col=col,
                           x_a=x_a, x_B=x_B, x_v=x_v, B_r=B_r)

        if self.shared:
            # The shared multiplier's operand registers are B_r and e_r's twins, its
            # product register a_prod's (B_r stays: the ECP5 host reads B through it).
            m.d.comb += [self.mul.a.eq(rp.data), self.mul.b.eq(e), self.mul.ce.eq(adv),
                         self.mul.sel.eq(running), a_prod.eq(self.mul.p[:len(a_prod)])]
        acc_next = wire(m, acc + a_prod, "acc_next")
        g_narrow = wire(m, narrow(total, ar.feedback.frac, ar.err), "g_narrow")

        with m.If(self.g.ready):
            m.d.sync += self.g.valid.eq(0)
        if u_v is None:
            m.d.sync += [w_v.eq(running & m_v & adv), w_ndiff_inv.eq(~ndiff), w_B.eq(B)]   # M -> W
        else:
            m.d.sync += [w_v.eq(u_v), w_ndiff_inv.eq(~ndiff), w_B.eq(B)]                   # U -> W
        with m.If(adv):
            m.d.sync += [m_v.eq(issue), m_last.eq(col == cols - 1)]
            with m.If(issue):
                m.d.sync += [ra.eq(ra + 1), col.eq(Mux(col == cols - 1, 0, col + 1))]
            # M -> A
            m.d.sync += [r_v.eq(m_v), r_last.eq(m_last), B_r.eq(rp.data), e_r.eq(e)]   # M -> R
            m.d.sync += [a_v.eq(r_v), a_last.eq(r_last)]
            if not self.shared:
                m.d.sync += a_prod.eq(B_r * e_r)                                         # the multiplier
            with m.If(m_v & m_last):
                m.d.sync += v.eq(v >> 1)
            # A -> N
            m.d.sync += n_v.eq(a_v & a_last)
            with m.If(a_v):
                with m.If(a_last):
                    m.d.sync += [total.eq(acc_next), acc.eq(0)]
                with m.Else():
                    m.d.sync += acc.eq(acc_next)
            # N -> g
            with m.If(n_v):
                m.d.sync += [
                    self.g.valid.eq(1),
                    self.g.payload.eq(g_narrow),
                    g_row.eq(g_row + 1),
                    g_last.eq(g_row == rows - 1),
                ]

        self._control(m, bw, v=v, cnt=cnt, ra=ra, col=col, acc=acc, g_row=g_row, g_last=g_last,
                      x_a=x_a, running=running)
        return m

    def _memory_ports(self, m, rp, wp, br, *, running, adv, ra, col, x_a, x_B, x_v, B_r):
        """The ports of ``B`` and of the captured beats: the rows' reads and (Directional
        DFA) stage X's write while running, else the host's port. On the ECP5 the host
        reads ``B_io`` through the multiplier's operand register ``B_r`` (the block RAM's
        output is slow there; :func:`hdl.layer.host_latency`)."""
        m.d.comb += br.addr.eq(col)                  # the beats: only the rows read them
        with m.If(running):
            m.d.comb += [rp.addr.eq(ra), rp.en.eq(adv), br.en.eq(adv)]
            if self.update:
                m.d.comb += [wp.addr.eq(x_a), wp.data.eq(x_B), wp.en.eq(x_v)]
        with m.Else():                               # idle: the host's port
            m.d.comb += [
                rp.addr.eq(self.host.addr), rp.en.eq(self.host.re),
                wp.addr.eq(self.host.addr), wp.data.eq(self.host.wdata), wp.en.eq(self.host.we),
            ]
        m.d.comb += self.host.rdata.eq(B_r if host_latency(self._cfg) == 2 else rp.data)

    def _control(self, m, bw, *, v, cnt, ra, col, acc, g_row, g_last, x_a, running):
        """The unit's state machine: CAPTURE (the bus beats into ``beats``, ``v`` with
        the first), then RUN (the rows) until the last ``g`` beat transfers."""
        cols = self._cols
        # The beats' address and data go to the write port in every state (only its
        # enable waits for CAPTURE): no multiplexers in front of the block RAM.
        m.d.comb += [bw.addr.eq(cnt), bw.data.eq(self.bus.payload)]
        with m.FSM():
            with m.State("CAPTURE"):
                m.d.comb += [
                    self.bus.ready.eq(1),
                    self.busy.eq(cnt != 0),
                    bw.en.eq(self.bus.valid),
                ]
                with m.If(self.bus.valid):
                    with m.If(cnt == 0):
                        m.d.sync += v.eq(self.v)
                    with m.If(cnt == cols - 1):
                        m.d.sync += [cnt.eq(0), ra.eq(0), col.eq(0), acc.eq(0), g_row.eq(0), g_last.eq(0),
                                     x_a.eq(0)]
                        m.next = "RUN"
                    with m.Else():
                        m.d.sync += cnt.eq(cnt + 1)
            with m.State("RUN"):
                m.d.comb += [running.eq(1), self.busy.eq(1)]
                with m.If(self.g.valid & self.g.ready & g_last):
                    m.next = "CAPTURE"
