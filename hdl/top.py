"""The processor: every block wired from the one configuration.

:class:`Processor` is the whole on-chip learner behind a byte-stream host interface
(``docs/HOST-PROTOCOL.md``); a board top (UART, clocks, pins) wraps it. Its memories
start in the state of the golden :class:`golden.fixed.FixedModel` of the same
configuration, so the processor and the golden model agree word for word from reset on.
See ``docs/ARCHITECTURE.md`` for the block diagram and the cycle budget.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ddfa.config import PROCESSOR_ALGORITHMS, Config, ConfigError
from ddfa.protocol import HostParams, memory_map, store_memory
from golden.fixed import FixedModel

from .direction import DirectionGenerator
from .epoch_runner import EpochRunner
from .feedback import FeedbackUnit
from .fixed import extend, fixed_shape
from .host import Host, mem_bus_latency
from .layer import LayerEngine, host_latency
from .mul import SharedMultiplier
from .output import OutputUnit
from .sequencer import Sequencer
from .store import make_store

__all__ = ["Processor", "check_hardware"]


def check_hardware(cfg: Config) -> None:
    """Refuse, with a :class:`~ddfa.config.ConfigError` naming the field, a configuration
    the processor cannot be built for (before anything is elaborated)."""
    cfg.board                                     # raises for hardware.board = "none"
    if cfg.arith.rounding != "nearest":
        raise ConfigError("arith.rounding", f"{cfg.arith.rounding!r} rounding is implemented in the golden "
                          "model only, not in hardware", "set arith.rounding = \"nearest\" to generate a processor")
    if cfg.model.algorithm not in PROCESSOR_ALGORITHMS:
        raise ConfigError("model.algorithm", f"the processor runs {' and '.join(PROCESSOR_ALGORITHMS)}, not "
                          f"{cfg.model.algorithm!r}, which trains in the golden models only (ddfa train)",
                          "set model.algorithm = \"ddfa\" (or \"dfa\") to generate, simulate or build a processor")
    if cfg.model.n_outputs > 256:
        raise ConfigError("model.layers", f"{cfg.model.n_outputs} classes do not fit the host protocol's "
                          "one-byte label", "use at most 256 outputs")


class Processor(wiring.Component):
    """The Directional DFA processor: layer engines, feedback units, direction
    generators, output unit, sequencer and host interface.

    Parameters
    ----------
    cfg : Config
        The validated configuration (with a board; ``arith.rounding = "nearest"``).
    model : golden.fixed.FixedModel, optional
        The state the memories and LFSRs start in; by default ``FixedModel(cfg)``'s
        initial state (``docs/ARITHMETIC.md`` section 6). (LFSRs always reset to their
        seeds; a model whose LFSRs have moved is refused.)

    Members
    -------
    i : ``In(stream.Signature(8))``
        Host command bytes (``docs/HOST-PROTOCOL.md``).
    o : ``Out(stream.Signature(8))``
        Host reply bytes.
    busy : ``Out(1)``
        A training step or an inference is running, or the epoch runner runs (for a LED;
        the virtual board keeps its clock running while it is high).

    Attributes
    ----------
    engines, feedback, directions : list
        The layer engines (layer ``l`` at index ``l-1``), the feedback units and the
        direction generators (hidden layer ``l`` at index ``l-1``).
    output, sequencer, host : Component
        The output unit, the sequencer and the host interface.
    """

    def __init__(self, cfg: Config, model=None):
        check_hardware(cfg)
        if model is None:
            model = FixedModel(cfg)
        if any(s.state != cfg.direction_seed(l) for l, s in enumerate(model.lfsr, start=1)):
            raise ValueError("the LFSRs of the initial model must be at their seeds")
        self.cfg = cfg
        L = cfg.model.n_layers
        self.engines = [LayerEngine(cfg, l, W_init=model.W[l - 1].reshape(-1).tolist(),
                                    b_init=model.b[l - 1].tolist()) for l in range(1, L + 1)]
        self.feedback = [FeedbackUnit(cfg, l, init=model.B[l - 1].reshape(-1).tolist()) for l in range(1, L)]
        self.directions = [DirectionGenerator(cfg, l) for l in range(1, L)]
        self.output = OutputUnit(cfg)
        self.sequencer = Sequencer(cfg)
        self.host = Host(cfg)
        # the dataset store and the epoch runner, on boards with a store (cfg.chip_store)
        self.store = make_store(cfg) if cfg.chip_store else None
        self.runner = EpochRunner(cfg) if cfg.chip_store else None
        self.memories = memory_map(cfg)
        self.params = HostParams.of(cfg)
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, ar = self.cfg, self.cfg.arith
        L = cfg.model.n_layers
        H = L - 1
        eng, fbs, dgs = self.engines, self.feedback, self.directions
        ou, seq, host = self.output, self.sequencer, self.host
        for l, e in enumerate(eng, start=1):
            m.submodules[f"layer{l}"] = e
        for l, (f, d) in enumerate(zip(fbs, dgs), start=1):
            m.submodules[f"feedback{l}"] = f
            m.submodules[f"direction{l}"] = d
        m.submodules.output = ou
        m.submodules.sequencer = seq
        m.submodules.host = host

        wiring.connect(m, wiring.flipped(self.i), host.i)
        wiring.connect(m, host.o, wiring.flipped(self.o))
        m.d.comb += self.busy.eq(seq.busy | (self.runner.ctl.running if self.runner else 0))

        # ---- the input sample x (y_0; d_0 = 0) -----------------------------------------
        n0 = cfg.model.layers[0]
        runner = self.runner
        if runner is None:
            m.submodules.x = x_mem = Memory(shape=fixed_shape(ar.act), depth=n0, init=[])
            x_wr, x_rd = x_mem.write_port(), x_mem.read_port()
            m.d.comb += [x_wr.addr.eq(host.x_addr), x_wr.data.eq(host.x_data), x_wr.en.eq(host.x_we),
                         x_rd.addr.eq(eng[0].prev.addr)]
        else:
            # Two halves: the engines read half `runner.half`; the host writes that half, the
            # epoch runner's loader the other (the next sample, while a step runs).
            m.submodules.runner = runner
            m.submodules.store = store = self.store
            # the store's reads go to the loader and to the host's memory bus (below); its
            # requests come from the loader while a run runs, else from the bus (the host's
            # commands that reach the store are refused while a run runs)
            m.d.comb += [runner.store.resp.valid.eq(store.bus.resp.valid),
                         runner.store.resp.payload.eq(store.bus.resp.payload),
                         runner.store.req.ready.eq(store.bus.req.ready)]
            wiring.connect(m, host.run, runner.ctl)
            j_bits = len(host.x_addr)
            m.submodules.x = x_mem = Memory(shape=fixed_shape(ar.act), depth=2 << j_bits, init=[])
            x_wr, x_rd = x_mem.write_port(), x_mem.read_port()
            with m.If(runner.x_we):
                m.d.comb += [x_wr.addr.eq(Cat(runner.x_addr, ~runner.half)), x_wr.data.eq(runner.x_data),
                             x_wr.en.eq(1)]
            with m.Else():
                m.d.comb += [x_wr.addr.eq(Cat(host.x_addr, runner.half)), x_wr.data.eq(host.x_data),
                             x_wr.en.eq(host.x_we)]
            m.d.comb += x_rd.addr.eq(Cat(eng[0].prev.addr[:j_bits], runner.half))
        m.d.comb += [x_rd.en.eq(eng[0].prev.en), eng[0].prev.y.eq(x_rd.data), eng[0].prev.d.eq(0)]

        # ---- layers chained through their activation buffers ---------------------------
        for l in range(2, L + 1):
            wiring.connect(m, eng[l - 1].prev, eng[l - 2].buf)
            if cfg.streams(l):          # layer l reads each row as layer l - 1 writes it
                m.d.comb += eng[l - 1].prev_written.eq(eng[l - 2].written)

        # ---- directions: n_l bits shift into each v register at the start of a step ----
        for h in range(H):
            n = cfg.model.layers[h + 1]
            v = Signal(n, name=f"v{h + 1}")
            draw = seq.draw[h]
            m.d.comb += dgs[h].next.eq(draw)
            with m.If(draw):
                m.d.sync += v.eq(Cat(v[1:], dgs[h].bit) if n > 1 else dgs[h].bit)
            m.d.comb += [eng[h].v.eq(v), eng[h].v_valid.eq(seq.v_valid), fbs[h].v.eq(v)]
            wiring.connect(m, fbs[h].g, eng[h].g)

        # ---- output layer -> output unit -> error bus broadcast ------------------------
        wiring.connect(m, eng[L - 1].y, ou.y)
        if runner is None:
            m.d.comb += ou.label.eq(host.ctl.label)
        else:
            m.d.comb += ou.label.eq(Mux(runner.ctl.running, runner.label, host.ctl.label))
        m.d.comb += ou.train.eq(seq.training)
        consumers = [f.bus for f in fbs] + [eng[L - 1].bus]
        readys = [c.ready for c in consumers]
        m.d.comb += ou.bus.ready.eq(Cat(*readys).all())
        for k, c in enumerate(consumers):
            others = Cat(*(r for j, r in enumerate(readys) if j != k))
            m.d.comb += [c.valid.eq(ou.bus.valid & (others.all() if len(others) else 1)),
                         c.payload.eq(ou.bus.payload)]

        # ---- the shared multiplier (hardware.share_multiplier) --------------------------
        units = cfg.shared_multiplier_units
        if units:
            m.submodules.shared_mul = shared = SharedMultiplier(cfg, len(units))
            users = {"tangent": eng[L - 1], "softmax": ou, "feedback": fbs[0] if fbs else None}
            for k, unit in enumerate(units):
                wiring.connect(m, users[unit].mul, shared.ports[k])

        # ---- sequencer -----------------------------------------------------------------
        m.d.comb += [
            seq.train.eq(host.ctl.train | (runner.step_train if runner else 0)),
            seq.infer.eq(host.ctl.infer | (runner.step_infer if runner else 0)),
            seq.engine_busy.eq(Cat(*(e.busy for e in eng))),
            seq.output_busy.eq(ou.busy),
            host.ctl.busy.eq(seq.busy), host.ctl.done.eq(seq.done), host.ctl.pred.eq(ou.pred),
            host.ctl.steps.eq(seq.steps), host.ctl.cycles.eq(seq.cycles),
            host.ctl.cycles_fwd.eq(seq.cycles_fwd), host.ctl.cycles_upd.eq(seq.cycles_upd),
            host.ctl.cycles_err.eq(seq.cycles_err), seq.error_beat.eq(ou.bus.valid & ou.bus.ready),
        ]
        if runner is not None:
            m.d.comb += [runner.step_done.eq(seq.done), runner.pred.eq(ou.pred)]
        if H:
            m.d.comb += seq.feedback_busy.eq(Cat(*(f.busy for f in fbs)))
        for l, e in enumerate(eng, start=1):
            m.d.comb += [e.fwd.eq(seq.fwd[l - 1]), e.upd.eq(seq.upd[l - 1])]

        # ---- host access to every memory (by id, see ddfa.protocol.memory_map) -------------
        # The memories are grouped by the port they sit behind (a layer's W banks share
        # one port, whose address has the PE index in its high bits; ``b_l`` and ``B_l``
        # one each). The bus id is decoded once into one select bit per port (and the PE
        # index), and the words come back through an AND-OR of the ports, not through a
        # multiplexer over every memory id. On the ECP5 (mem_bus_latency 4) the request is
        # registered before it reaches the ports and the selected word before it reaches
        # the host: the host's state machine, the ports' multiplexers and the block RAMs
        # (of 32 PEs, all over the chip) then meet only at registers.
        bus = host.mem
        wbits = 8 * self.params.word_bytes
        staged = mem_bus_latency(cfg) > host_latency(cfg)
        groups = []                                    # [port, kind, engine, first id, last id]
        for mem in self.memories:
            if mem.kind == "W":
                e = eng[mem.layer - 1]
                port = e.host_w
            elif mem.kind == "b":
                e, port = None, eng[mem.layer - 1].host_b
            else:
                e, port = None, fbs[mem.layer - 1].host
            if groups and groups[-1][0] is port:
                assert mem.id == groups[-1][4] + 1     # memory_map numbers a port's banks in a row
                groups[-1][4] = mem.id
            else:
                groups.append([port, mem.kind, e, mem.id, mem.id])
        store_info = store_memory(cfg)                 # the dataset store: one more select bit
        n_sel = len(groups) + (store_info is not None)
        req = m.d.sync if staged else m.d.comb
        sel = Signal(n_sel)                            # bus.id decoded: one bit per port
        q_sel = Signal(n_sel)
        q_re, q_we = Signal(), Signal()
        q_addr, q_wdata = Signal.like(bus.addr), Signal.like(bus.wdata)
        for k, (port, kind, e, lo, hi) in enumerate(groups):
            m.d.comb += sel[k].eq((bus.id == lo) if lo == hi else ((bus.id >= lo) & (bus.id <= hi)))
        req += [q_sel.eq(sel), q_re.eq(bus.re), q_we.eq(bus.we), q_addr.eq(bus.addr), q_wdata.eq(bus.wdata)]
        for k, (port, kind, e, lo, hi) in enumerate(groups):
            if kind == "W" and e.pe_bits:
                pe = Signal(e.pe_bits, name=f"host_pe{e.layer}")
                req += pe.eq(bus.id - lo)
                addr = Cat(q_addr[:e.bank_addr_bits], pe)
            elif kind == "W":
                addr = q_addr[:e.bank_addr_bits]
            else:
                addr = q_addr[:len(port.addr)]
            m.d.comb += [port.addr.eq(addr), port.wdata.eq(q_wdata),
                         port.re.eq(q_re & q_sel[k]), port.we.eq(q_we & q_sel[k])]
        rd_sel = Signal(n_sel)                         # the ports of the last read
        with m.If(bus.re):
            m.d.sync += rd_sel.eq(sel)
        words = [Mux(rd_sel[k], extend(g[0].rdata.as_signed(), wbits), 0) for k, g in enumerate(groups)]
        if store_info is not None:
            # the store's read latency (1) is the bus's on the boards that have one
            assert not staged and store_info.width <= wbits
            k, req, loader = len(groups), self.store.bus.req, self.runner.store.req
            running = self.runner.ctl.running
            m.d.comb += [sel[k].eq(bus.id == store_info.id),
                         req.valid.eq(loader.valid | ((q_re | q_we) & q_sel[k])),
                         req.payload.addr.eq(Mux(running, loader.payload.addr, q_addr)),
                         req.payload.write.eq(q_we & ~running), req.payload.data.eq(q_wdata)]
            words.append(Mux(rd_sel[k], self.store.bus.resp.payload, 0))     # unsigned
        word = Signal(wbits)
        m.d.comb += word.eq(Cat(*[Cat(*[w[b] for w in words]).any() for b in range(wbits)]))
        if staged:
            m.d.sync += bus.rdata.eq(word)
        else:
            m.d.comb += bus.rdata.eq(word)

        # ---- direction generators: the host reads and loads their states ---------------
        lf = host.lfsr
        for h in range(H):
            m.d.comb += [dgs[h].load.eq(lf.load & (lf.layer == h + 1)), dgs[h].load_value.eq(lf.value)]
        with m.Switch(lf.layer):
            for h in range(H):
                with m.Case(h + 1):
                    m.d.comb += lf.state.eq(dgs[h].state)
        return m
