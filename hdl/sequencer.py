"""Sequencer: the order of one training step (or one inference) across the processor.

A training step (``docs/ARITHMETIC.md`` section 5; ``docs/ARCHITECTURE.md``, "One training
step") is:

1. **Directions and forward.** Every hidden layer's direction generator shifts ``n_l``
   bits into its ``v`` register (all layers at once, one bit a cycle), while the layer
   engines run their forward passes one stage after the other (``cfg.forward_stages``:
   each layer alone, ``l = 1..L``, or a layer together with the streaming layers above
   it, which start with it and take its outputs as they are written). A hidden layer's
   activation stage waits for ``v_valid``, so the draw overlaps the first MACs.
2. **Output.** The output layer's beats stream into the output unit as they are
   computed; when the output layer is done, every engine is told to start its update.
3. **Update.** The output unit broadcasts ``(e_o, d_L,o)`` on the error bus; all
   feedback units and all layer engines then work in parallel, so the update phase takes
   the cycles of the slowest layer, not their sum.
4. **Done** when every engine, feedback unit and the output unit is idle.

Inference is the forward pass alone (no draw: the directions and LFSRs are untouched),
then the output unit's argmax.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config
from ddfa.protocol import COUNTER_WIDTH

from .cycles import cycle_counter_width

__all__ = ["Sequencer"]


class Sequencer(wiring.Component):
    """Starts and waits for the blocks of one training step or one inference.

    Parameters
    ----------
    cfg : Config
        The configuration (layer sizes).

    Members
    -------
    train : ``In(1)``
        Start a training step (a one-cycle strobe while ``busy`` is low).
    infer : ``In(1)``
        Start an inference (a one-cycle strobe while ``busy`` is low).
    busy : ``Out(1)``
        A step or inference is running.
    done : ``Out(1)``
        One-cycle strobe: the step or inference has finished (everything is idle).
    training : ``Out(1)``
        The running (or last) operation is a training step; drives the output unit's
        ``train``.
    draw : ``Out(H)``
        Bit ``h``: hidden layer ``h+1``'s direction generator advances and its ``v``
        register shifts this cycle (``H`` = number of hidden layers).
    v_valid : ``Out(1)``
        Every ``v`` register holds this step's directions (always high outside the draw).
    fwd : ``Out(L)``
        Bit ``l-1``: start layer ``l``'s forward pass (strobe; every layer of a stage at
        once).
    upd : ``Out(L)``
        Bit ``l-1``: start layer ``l``'s weight update (strobe; all layers at once).
    engine_busy : ``In(L)``
        Bit ``l-1``: layer ``l``'s engine is busy.
    feedback_busy : ``In(H)``
        Bit ``h``: hidden layer ``h+1``'s feedback unit is busy.
    output_busy : ``In(1)``
        The output unit is busy.
    steps : ``Out(32)``
        Training steps done (wraps around).
    cycles : ``Out(32)``
        Cycles of the last step or inference, from the start strobe to ``done`` (while a
        step runs: the cycles so far). This and the other cycle counts are counted in
        :func:`~hdl.cycles.cycle_counter_width` bits and zero-extended.
    cycles_fwd : ``Out(32)``
        Of those, the cycles until the output layer's forward pass ended.
    cycles_upd : ``Out(32)``
        Of those, the cycles from then to ``done`` (output unit, error bus, feedback
        units and weight updates; 0 for an inference).
    error_beat : ``In(1)``
        The error bus carries a beat this cycle (from the output unit).
    cycles_err : ``Out(32)``
        Of ``cycles_upd``, those from the end of the forward pass to the first error-bus
        beat: the softmax and the error (``hdl.cycles.step_cycles``'s ``softmax``; 0 for
        an inference).
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.L = cfg.model.n_layers
        self.hidden_sizes = cfg.model.hidden
        H = len(self.hidden_sizes)
        super().__init__({
            "train": In(1),
            "infer": In(1),
            "busy": Out(1),
            "done": Out(1),
            "training": Out(1),
            "draw": Out(H),
            "v_valid": Out(1),
            "fwd": Out(self.L),
            "upd": Out(self.L),
            "engine_busy": In(self.L),
            "feedback_busy": In(H),
            "output_busy": In(1),
            "steps": Out(COUNTER_WIDTH),
            "cycles": Out(COUNTER_WIDTH),
            "cycles_fwd": Out(COUNTER_WIDTH),
            "cycles_upd": Out(COUNTER_WIDTH),
            "error_beat": In(1),
            "cycles_err": Out(COUNTER_WIDTH),
        })

    def elaborate(self, platform):
        m = Module()
        L, sizes = self.L, self.hidden_sizes
        n_draw = max(sizes, default=0)

        training = Signal()
        m.d.comb += self.training.eq(training)

        # Directions: n_l bits per hidden layer, all layers at once.
        drawing = Signal()
        k = Signal(range(n_draw + 1))
        for h, n in enumerate(sizes):
            m.d.comb += self.draw[h].eq(drawing & (k < n))
        m.d.comb += self.v_valid.eq(~drawing)
        with m.If(drawing):
            m.d.sync += k.eq(k + 1)
            with m.If(k == n_draw - 1):
                m.d.sync += drawing.eq(0)

        # The cycle counters stop when the step is done, so that they are themselves the
        # STATUS values until the next step (no copies, no subtractor): ``count`` from the
        # start strobe (cycles), ``ucount`` from the end of the forward pass (update). They
        # count every cycle of their states, done included (so their enables do not wait
        # for the units' busy signals): ``count`` starts at 0 and ends at the cycles; the
        # forward cycles and the cycles to the first error beat are taken one cycle late.
        cw = cycle_counter_width(self.cfg)
        count = Signal(cw)
        ucount = Signal(cw)
        cycles_fwd = Signal(cw)
        cycles_err = Signal(cw)
        m.d.comb += [self.cycles.eq(count), self.cycles_upd.eq(ucount), self.cycles_fwd.eq(cycles_fwd),
                     self.cycles_err.eq(cycles_err)]
        # The forward stages (``cfg.forward_stages``): the layers each one starts, as masks
        # of ``fwd`` and ``engine_busy`` bits. Stage k + 1 starts when stage k is idle.
        stages = self.cfg.forward_stages
        layer = Signal(range(len(stages) + 1))      # the running stage
        if len(stages) == L:
            # One layer a stage (nothing streams): stage k is layer k + 1. (Written as
            # before streaming existed, so that such a processor's Verilog is unchanged.)
            first_fwd = self.fwd[0].eq(1)
            stage_idle = ~self.engine_busy.bit_select(layer, 1)
            next_fwd = self.fwd.eq(Const(1, L) << (layer + 1))
        else:
            masks = Array(Const(sum(1 << (l - 1) for l in st), L) for st in stages)
            first_fwd = self.fwd.eq(masks[0])
            stage_idle = (self.engine_busy & masks[layer]) == 0
            next_fwd = self.fwd.eq(masks[layer + 1])
        fwd_end = Signal()                 # the forward pass ended last cycle
        err_now = Signal()                 # the first error-bus beat was last cycle

        first_beat = Signal()              # the first error-bus beat of this step is still to come
        others_idle = Signal()
        m.d.comb += others_idle.eq((self.engine_busy == 0) & (self.feedback_busy == 0) & ~self.output_busy)
        step_done = Signal()               # a training step ended last cycle: count it
        m.d.sync += [fwd_end.eq(0), err_now.eq(0), step_done.eq(0)]
        with m.If(step_done):
            m.d.sync += self.steps.eq(self.steps + 1)
        with m.If(fwd_end):
            m.d.sync += cycles_fwd.eq(count)
        with m.If(err_now):
            m.d.sync += cycles_err.eq(ucount)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.train | self.infer):
                    m.d.comb += first_fwd
                    m.d.sync += [training.eq(self.train), layer.eq(0), count.eq(0), ucount.eq(0),
                                 cycles_err.eq(0)]
                    if n_draw:
                        m.d.sync += [drawing.eq(self.train), k.eq(0)]
                    m.next = "FORWARD"
            with m.State("FORWARD"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += count.eq(count + 1)
                with m.If(stage_idle):
                    with m.If(layer == len(stages) - 1):
                        m.d.sync += fwd_end.eq(1)
                        with m.If(training):
                            m.d.comb += self.upd.eq((1 << L) - 1)
                            m.d.sync += first_beat.eq(1)
                            m.next = "UPDATE"
                        with m.Else():
                            m.next = "PREDICT"
                    with m.Else():
                        m.d.comb += next_fwd
                        m.d.sync += layer.eq(layer + 1)
            with m.State("UPDATE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [count.eq(count + 1), ucount.eq(ucount + 1)]
                with m.If(first_beat & self.error_beat):
                    m.d.sync += [first_beat.eq(0), err_now.eq(1)]
                with m.If(others_idle):
                    m.d.sync += step_done.eq(1)
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
            with m.State("PREDICT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += count.eq(count + 1)
                with m.If(~self.output_busy):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m
