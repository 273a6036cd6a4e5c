"""The epoch runner: training epochs and the test-set evaluation from the dataset store,
without the host.

While step ``s`` runs on the sample buffer's current half, the runner finds record
``s + 1`` (:class:`~hdl.epoch_order.EpochOrder` for a training epoch, the next test
record for an evaluation) and loads it (:class:`~hdl.sample_loader.SampleLoader`) into
the other half; when step ``s`` is done it swaps the halves and starts step ``s + 1``.
A step thus follows the one before after two cycles, unless finding and loading the
record takes longer than the step.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

from .epoch_order import EpochOrder
from .sample_loader import SampleLoader
from .store import StoreSignature

__all__ = ["RunSignature", "EpochRunner", "const_mul"]


def const_mul(x, factor: int):
    """``x * factor`` as a sum of shifted copies of ``x`` (one adder per set bit)."""
    terms = [x << b for b in range(factor.bit_length()) if factor >> b & 1]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def RunSignature(cfg: Config) -> wiring.Signature:
    """The host's control of the epoch runner (seen from the host): the start strobes with
    their arguments, and the run's progress. ``epochs`` is taken with the strobe;
    ``n_train`` and ``n_test`` must hold from the strobe until the run ends (they are the
    host's argument registers, which no command changes while a run runs)."""
    w = cfg.chip_store.index_bits
    return wiring.Signature({
        "train_epochs": Out(1), "evaluate": Out(1), "epochs": Out(16),
        "n_train": Out(w), "n_test": Out(w),
        "running": In(1), "evaluating": In(1), "epoch": In(16), "index": In(w), "correct": In(w),
        "run_cycles": In(32),
    })


class EpochRunner(wiring.Component):
    """Runs training epochs or the evaluation of the test set from the dataset store.

    Parameters
    ----------
    cfg : Config
        The configuration (its store layout).

    Members
    -------
    ctl : ``In(RunSignature(cfg))``
        Start strobes (``train_epochs`` with ``epochs`` >= 1 and ``n_train`` >= 1,
        ``evaluate`` with ``n_test`` >= 1; the host gives them only while nothing runs and
        with counts that fit the store), the counts, and the progress counters.
    step_train, step_infer : ``Out(1)``
        Strobes to the sequencer: start a training step or an inference.
    step_done : ``In(1)``
        The sequencer's done strobe.
    pred : ``In(range(n_L))``
        The class of the inference just done.
    half : ``Out(1)``
        The half of the sample buffer that the engines read; the loader writes the other.
    label : ``Out(range(n_L))``
        The running step's label.
    x_addr, x_data, x_we : ``Out``
        The loader's writes to the sample buffer (into half ``~half``).
    store : ``Out(StoreSignature(addr_bits))``
        The loader's reads.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.order = EpochOrder(cfg)
        self.loader = SampleLoader(cfg)
        n_out = cfg.model.n_outputs
        super().__init__({
            "ctl": In(RunSignature(cfg)),
            "step_train": Out(1), "step_infer": Out(1), "step_done": In(1), "pred": In(range(n_out)),
            "half": Out(1), "label": Out(range(n_out)),
            "x_addr": Out(range(max(cfg.model.layers[0], 2))), "x_data": Out(cfg.arith.act.width),
            "x_we": Out(1), "store": Out(StoreSignature(cfg.chip_store.addr_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        st, ctl = self.cfg.chip_store, self.ctl
        m.submodules.order = order = self.order
        m.submodules.loader = loader = self.loader
        wiring.connect(m, loader.store, wiring.flipped(self.store))
        n_train, n_test = ctl.n_train, ctl.n_test
        m.d.comb += [self.x_addr.eq(loader.x_addr), self.x_data.eq(loader.x_data), self.x_we.eq(loader.x_we),
                     order.n.eq(n_train)]

        i = ctl.index                           # the next step's position: records started
        epochs_left = Signal(16)
        stepping = Signal()                     # a step started by the runner has not finished
        record = Signal(st.index_bits + 1)      # the record to load: training r, or test r at n_train + r
        m.d.comb += [order.i.eq(i), loader.record.eq(st.train_base + const_mul(record, st.record_words))]
        with m.If(ctl.running):
            m.d.sync += ctl.run_cycles.eq(ctl.run_cycles + 1)
        with m.If(self.step_done):
            m.d.sync += stepping.eq(0)
            with m.If(ctl.evaluating & stepping & (self.pred == self.label)):
                m.d.sync += ctl.correct.eq(ctl.correct + 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(ctl.train_epochs):
                    m.d.sync += [epochs_left.eq(ctl.epochs), ctl.evaluating.eq(0), ctl.running.eq(1),
                                 ctl.run_cycles.eq(0)]
                    m.next = "KEY"
                with m.Elif(ctl.evaluate):
                    m.d.sync += [ctl.evaluating.eq(1), ctl.running.eq(1), ctl.run_cycles.eq(0),
                                 ctl.correct.eq(0), i.eq(0)]
                    m.next = "FIND"
            with m.State("KEY"):
                m.d.comb += order.next_epoch.eq(1)
                m.d.sync += [i.eq(0), ctl.epoch.eq(ctl.epoch + 1), epochs_left.eq(epochs_left - 1)]
                m.next = "KEY_WAIT"
            with m.State("KEY_WAIT"):
                with m.If(~order.busy):
                    m.next = "FIND"
            with m.State("FIND"):
                with m.If(ctl.evaluating):
                    m.d.comb += [loader.start.eq(1), record.eq(n_train + i)]
                    m.next = "LOAD"
                with m.Else():
                    m.d.comb += order.start.eq(1)
                    m.next = "FIND_WAIT"
            with m.State("FIND_WAIT"):
                with m.If(~order.busy):
                    m.d.comb += [loader.start.eq(1), record.eq(order.index)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                with m.If(~loader.busy & ~stepping):
                    # the step before is done: swap the halves, then start this one
                    m.d.sync += [self.half.eq(~self.half), self.label.eq(loader.label)]
                    m.next = "START"
            with m.State("START"):
                m.d.comb += [self.step_train.eq(~ctl.evaluating), self.step_infer.eq(ctl.evaluating)]
                m.d.sync += [stepping.eq(1), i.eq(i + 1)]
                # records in this epoch or evaluation: the counts, held while the run runs
                with m.If(i + 1 != Mux(ctl.evaluating, n_test, n_train)):
                    m.next = "FIND"
                with m.Elif(~ctl.evaluating & (epochs_left != 0)):
                    m.next = "KEY"
                with m.Else():
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(~stepping):
                    m.d.sync += ctl.running.eq(0)
                    m.next = "IDLE"
        return m
