"""Output/error unit: fixed-point softmax and ``e = p - onehot`` (``docs/ARITHMETIC.md``,
section 5, step 3), the hardware twin of :func:`golden.arith.output_unit`.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ddfa.config import Config
from golden.arith import exp_table

from .fixed import fixed_shape, round_parts, round_shift, wire
from .layouts import ErrorBeat, OutputBeat
from .mul import MulPortSignature

__all__ = ["OutputUnit"]


def _round_shift_int(x: int, s: int) -> int:
    """:func:`golden.arith.round_shift` on one Python integer."""
    if s <= 0:
        return x << (-s)
    q = x >> s
    return q + (((x & ((1 << s) - 1)) + (q & 1)) > (1 << (s - 1)))


def _table_threshold(n: int, s: int) -> int:
    """The least ``m >= 0`` with ``round_shift(m, s) >= n``: ``round_shift(m, s) < n``
    exactly when ``m < C`` (``round_shift`` never decreases as ``m`` grows)."""
    lo, hi = 0, (n + 1) << max(s, 0)
    while lo < hi:
        mid = (lo + hi) // 2
        if _round_shift_int(mid, s) >= n:
            hi = mid
        else:
            lo = mid + 1
    return lo


class OutputUnit(wiring.Component):
    """Softmax cross-entropy gradient of the output layer, and the prediction.

    For one sample it takes the ``n_L`` beats ``(y_L,o, d_L,o)`` of the output layer and,
    when training, streams the ``n_L`` beats ``(e_o, d_L,o)`` of the broadcast error bus:

    1. **Capture** (one beat a cycle): ``y`` and ``d`` are written to two small memories;
       the running maximum of ``y`` and its index (the first one wins ties) are kept.
       The cycle after the last beat, ``pred_valid`` strobes with ``pred = argmax y``.
       In inference (``train`` low) that is all.
    2. **Exponentials** (``n_L + 4`` cycles: one a cycle, 4 of latency): ``z_o = y_o - max y``,
       ``k_o = round_shift(-z_o, act.frac - exp_frac)``, ``E_o`` = ROM[``k_o``] (0 when
       ``k_o`` is past the table), ``S = sum E_o``.
    3. **Division** (``err.frac + 1`` cycles, one quotient bit each, restoring):
       ``r = floor(2**(exp_bits + err.frac) / S)``.
    4. **Error** (``n_L + 6`` cycles: one beat a cycle while ``bus.ready`` is high, 6 of latency):
       ``E_o`` is looked up again, ``p_o = round_shift(E_o * r, exp_bits)`` (the unit's one
       multiplier) and ``e_o = p_o - one(err) * [o == label]``; ``d_o`` is read from its
       memory with the product, straight into the bus word.

    The exponential ROM holds :func:`golden.arith.exp_table` (``exp_entries`` words of
    ``exp_bits + 1`` bits); every memory read is registered (block RAM).

    **Shared multiplier** (``hardware.share_multiplier``). The product ``E_o * r`` is
    formed by the processor's shared multiplier (``mul``, held during step 4), whose
    operands are signed: where ``E_o <= 2**exp_bits`` does not fit one
    (``cfg.softmax_fold``), the one word that needs the top bit, ``2**exp_bits``, enters
    as ``2**(exp_bits-1)`` and ``r`` as ``2 r``. The product is the same.

    Parameters
    ----------
    cfg : Config
        The configuration (``arith`` formats and softmax table, ``n_L`` outputs).

    Members
    -------
    y : ``In(stream.Signature(OutputBeat(cfg)))``
        ``n_L`` beats ``(y_L,o, d_L,o)``, ``o`` in order. Ready while idle or capturing.
    label : ``In(range(n_L))``
        The sample's label; sampled when the first ``y`` beat transfers.
    train : ``In(1)``
        Emit the error bus for this sample; sampled when the first ``y`` beat transfers.
    bus : ``Out(stream.Signature(ErrorBeat(cfg)))``
        ``n_L`` beats ``(e_o, d_L,o)``, ``o`` in order, only when training.
    pred : ``Out(range(n_L))``
        ``argmax_o y_L,o`` (the lowest index wins ties); held until the next sample.
    pred_valid : ``Out(1)``
        One-cycle strobe, the cycle after the last ``y`` beat, when ``pred`` is new.
    busy : ``Out(1)``
        From the first ``y`` beat until the last ``bus`` beat transfers (or until
        ``pred_valid`` has strobed, in inference).
    mul : ``Out(MulPortSignature(cfg))``
        Only with ``hardware.share_multiplier``: the port into the shared multiplier.
    """

    def __init__(self, cfg: Config):
        self._cfg = cfg
        n = cfg.model.n_outputs
        #: The product E_o * r comes from the shared multiplier (``mul``).
        self.shared = "softmax" in cfg.shared_multiplier_units
        members = {
            "y": In(stream.Signature(OutputBeat(cfg))),
            "label": In(range(n)),
            "train": In(1),
            "bus": Out(stream.Signature(ErrorBeat(cfg))),
            "pred": Out(range(n)),
            "pred_valid": Out(1),
            "busy": Out(1),
        }
        if self.shared:
            members["mul"] = Out(MulPortSignature(cfg))
        super().__init__(members)

    def cycles(self, train: bool = True) -> int:
        """Cycles from the first ``y`` beat to ``busy`` low, with ``y`` beats back to back
        and ``bus.ready`` always high."""
        ar, n = self._cfg.arith, self._cfg.model.n_outputs
        if not train:
            return n + 1
        return n + (n + 4) + (ar.err.frac + 1) + (n + 6)

    def elaborate(self, platform):
        cfg, ar = self._cfg, self._cfg.arith
        n = cfg.model.n_outputs
        m = Module()

        # -- memories: the captured y and d words and the exponential ROM -----------------
        # y is read where the pipeline starts; d where it leaves for the bus (its read
        # port is the bus word's d register), so that d needs no pipeline registers.
        act_s = fixed_shape(ar.act)
        m.submodules.y_mem = y_mem = Memory(shape=act_s, depth=n, init=[])
        m.submodules.d_mem = d_mem = Memory(shape=act_s, depth=n, init=[])
        y_w, y_r = y_mem.write_port(), y_mem.read_port()
        d_w, d_r = d_mem.write_port(), d_mem.read_port()
        table = exp_table(ar).tolist()
        e_shape = unsigned(ar.exp_bits + 1)
        # Yosys maps the table to logic where cfg.exp_table_in_logic (ECP5), else to a
        # block RAM; the read port is registered either way.
        m.submodules.rom = rom = Memory(shape=e_shape, depth=len(table), init=table,
                                        attrs={"rom_style": "logic"} if cfg.exp_table_in_logic else None)
        rom_r = rom.read_port()

        # -- registers --------------------------------------------------------------------
        cnt = Signal(range(n + 1))                   # capture index
        # max y, kept inverted (~max y = -max y - 1): y - max y and y > max y are then sums,
        # with no inverters in front of their carry chains.
        ymax_inv = Signal(fixed_shape(ar.act), init=-1)
        arg = Signal(range(n))
        label = Signal(range(n))
        train = Signal()
        pred_valid = Signal()
        s_width = (n << ar.exp_bits).bit_length()    # S <= n * 2**exp_bits
        S = Signal(s_width)
        P = Signal(s_width)                          # partial remainder, always < S
        r = Signal(ar.err.frac + 1)                  # quotient, <= 2**err.frac
        div_left = Signal(range(ar.err.frac + 1))

        # Pipeline of the exponential and error phases: read y -> register -> ROM ->
        # register -> product -> bus. (Every block RAM's word is registered before any
        # logic: the ECP5's block RAM outputs are slow.) The beats pass in order, so one
        # count stands for their indices: the beats past stage 2b (exponentials), past
        # stage 3 (error: it addresses d, and flags the label's beat and the last one).
        rd_o = Signal(range(n + 1))                  # next index to read
        v1 = Signal()                                # y memory data valid
        v1b = Signal()                               # ... registered: y1
        # On the iCE40 (no slow block RAM outputs) y is read a stage later instead, and
        # the read port is y1.
        y_at = rd_o if cfg.registered_bram else rd_o - 1    # stage 0's index, or stage 1's
        y1 = Signal(act_s, reset_less=True) if cfg.registered_bram else y_r.data
        v2 = Signal()                                # ROM data valid
        in2 = Signal()                               # k_o inside the table
        v2b = Signal()                               # ... registered: E2q
        E2q = Signal(e_shape, reset_less=True)
        v3 = Signal()                                # product valid
        o = Signal(range(n + 1))                     # index at stage 2b (EXP), 3 (EMIT)
        prod = Signal(e_shape.width + len(r), reset_less=True)   # in the SB_MAC16
        last4 = Signal()                             # the beat on the bus is the last

        m.d.comb += [
            self.bus.payload.d.eq(d_r.data),
            self.pred.eq(arg),
            self.pred_valid.eq(pred_valid),
        ]
        m.d.sync += pred_valid.eq(0)

        phase_exp = Signal()
        phase_emit = Signal()
        adv = Signal()                               # the pipeline moves this cycle
        m.d.comb += adv.eq(~self.bus.valid | self.bus.ready)

        issue = (phase_exp | phase_emit) & (rd_o < n)
        minus_z = wire(m, ~(y1 + ymax_inv), "minus_z")             # -z_o = max y - y_o >= 0
        k = wire(m, round_shift(minus_z, ar.act.frac - ar.exp_frac), "k")
        # k_o < len(table) <=> -z_o < C (k is monotone in -z_o) <=> y_o > max y - C: one
        # comparison with a threshold taken from ymax the cycle before (ymax holds still
        # from the last captured beat on), not a subtraction, a rounding and a comparison.
        # On the iCE40, whose block RAM outputs are not slow, -z_o < C itself: a comparison
        # of the subtraction's result with a constant, beside the rounding.
        C = _table_threshold(len(table), ar.act.frac - ar.exp_frac)
        if cfg.registered_bram:
            thr = Signal(signed(ar.act.width + C.bit_length() + 1))
            m.d.sync += thr.eq(~ymax_inv - C)
            in_table = y1 > thr
        else:
            in_table = minus_z < C
        E2 = wire(m, Mux(in2, rom_r.data, 0), "E")
        # p_o = q + inc (round_shift); e_o = q + inc - one * [o == label]: one adder, the
        # rounding increment its carry-in.
        p_q, p_inc = round_parts(prod, ar.exp_bits)
        m.d.comb += [
            y_r.addr.eq(y_at),
            y_r.en.eq(adv),
            d_r.addr.eq(o),                          # d_o onto the bus with e_o
            d_r.en.eq(adv),
            rom_r.addr.eq(k),
            rom_r.en.eq(adv),
        ]
        if self.shared:
            # E2 and r into the shared multiplier's operand registers (E2q's twin), its
            # product register is prod.
            a_in, b_in = E2, r
            if cfg.softmax_fold:
                top = ar.exp_bits                    # E2[top] set <=> E2 == 2**exp_bits
                a_in = Mux(E2[top], 1 << (top - 1), E2[:top])
                b_in = Mux(E2[top], r << 1, r)
            m.d.comb += [self.mul.a.eq(a_in), self.mul.b.eq(b_in), self.mul.ce.eq(adv),
                         self.mul.sel.eq(phase_emit), prod.eq(self.mul.p[:len(prod)])]
        with m.If(adv):
            m.d.sync += [
                v1.eq(issue),
                v1b.eq(v1),
                v2.eq(v1b), in2.eq(in_table),
                v2b.eq(v2), E2q.eq(E2),
                v3.eq(v2b & phase_emit),
            ]
            if cfg.registered_bram:
                m.d.sync += y1.eq(y_r.data)
            if not self.shared:
                m.d.sync += prod.eq(E2q * r)         # the multiplier: E_o * r
            m.d.sync += [
                self.bus.valid.eq(v3), last4.eq(o == n - 1),
                self.bus.payload.e.eq(p_q + Mux(o == label, Const(-ar.err.one, signed(len(prod) + 2)),
                                                Const(0, signed(len(prod) + 2))) + p_inc),
            ]
            with m.If(issue):
                m.d.sync += rd_o.eq(rd_o + 1)
            with m.If(Mux(phase_emit, v3, v2b)):
                m.d.sync += o.eq(o + 1)
            with m.If(v2b & phase_exp):
                m.d.sync += S.eq(S + E2q)

        self._control(m, (y_w, d_w), cnt=cnt, ymax_inv=ymax_inv, arg=arg, label=label, train=train,
                      pred_valid=pred_valid, S=S, P=P, r=r, div_left=div_left, rd_o=rd_o,
                      v2b=v2b, o=o, last4=last4, phase_exp=phase_exp, phase_emit=phase_emit)
        return m

    def _control(self, m, writes, *, cnt, ymax_inv, arg, label, train, pred_valid, S, P, r, div_left,
                 rd_o, v2b, o, last4, phase_exp, phase_emit):
        """The unit's state machine: CAPTURE (the ``y`` beats, their maximum and the
        prediction), EXP (``S``), DIV (``r``, restoring, one bit a cycle), EMIT (the bus)."""
        ar, n = self._cfg.arith, self._cfg.model.n_outputs
        # The words' address and data go to the write ports in every state (only their
        # enables wait for CAPTURE): no multiplexers in front of the block RAMs.
        for wr, word in zip(writes, (self.y.payload.y, self.y.payload.d)):
            m.d.comb += [wr.addr.eq(cnt), wr.data.eq(word)]
        with m.FSM():
            with m.State("CAPTURE"):
                m.d.comb += [self.y.ready.eq(1), self.busy.eq((cnt != 0) | pred_valid)]
                m.d.comb += [wr.en.eq(self.y.valid) for wr in writes]
                with m.If(self.y.valid):
                    first = cnt == 0
                    better = first | ~(self.y.payload.y + ymax_inv)[-1]      # y > max y
                    with m.If(first):
                        m.d.sync += [label.eq(self.label), train.eq(self.train)]
                    with m.If(better):
                        m.d.sync += [ymax_inv.eq(~self.y.payload.y), arg.eq(cnt)]
                    with m.If(cnt == n - 1):
                        m.d.sync += [cnt.eq(0), pred_valid.eq(1)]
                        with m.If(Mux(first, self.train, train)):
                            m.d.sync += [S.eq(0), rd_o.eq(0), o.eq(0)]
                            m.next = "EXP"
                    with m.Else():
                        m.d.sync += cnt.eq(cnt + 1)

            with m.State("EXP"):
                m.d.comb += [self.busy.eq(1), phase_exp.eq(1)]
                with m.If(v2b & (o == n - 1)):         # the last E_o joins S this cycle
                    m.d.sync += [
                        P.eq(1 << (ar.exp_bits - 1)),    # 2**(exp_bits+err.frac) >> (err.frac+1)
                        r.eq(0),
                        div_left.eq(ar.err.frac),
                    ]
                    m.next = "DIV"

            with m.State("DIV"):
                m.d.comb += self.busy.eq(1)
                P2 = Cat(Const(0, 1), P)                 # 2P (the dividend's lower bits are 0)
                ge = P2 >= S
                m.d.sync += [
                    P.eq(Mux(ge, P2 - S, P2)),
                    r.eq(Cat(ge, r)),
                    div_left.eq(div_left - 1),
                ]
                with m.If(div_left == 0):
                    m.d.sync += [rd_o.eq(0), o.eq(0)]
                    m.next = "EMIT"

            with m.State("EMIT"):
                m.d.comb += [self.busy.eq(1), phase_emit.eq(1)]
                with m.If(self.bus.valid & self.bus.ready & last4):
                    m.next = "CAPTURE"

