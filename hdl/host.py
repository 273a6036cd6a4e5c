"""Host interface: a byte-stream command protocol into the processor.

The protocol is specified in ``docs/HOST-PROTOCOL.md``. It is a plain stream of bytes in
each direction (no framing, no checksum): a later layer (``hdl/link.py``, the UART frame
layer) wraps it. Every command is one opcode byte followed by a fixed number of argument
bytes, and is answered by a fixed number of reply bytes, the first of which echoes the
opcode (``0xFF`` for an unknown opcode). The lengths depend only on the configuration
(:func:`host_commands`). Multi-byte numbers are little-endian.

This module holds both ends of the definition: the hardware (:class:`Host`) and the pure
Python encoder/decoder (:class:`HostProtocol`) that the tests and host-side tools use, and
the memory map (:func:`memory_map`) that numbers every memory of the processor.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config, config_hash
from ddfa.protocol import (BLOCK_WORDS, COUNTER_WIDTH, ERROR_REPLY, PROTOCOL_VERSION, HostParams, Opcode,
                           host_commands, memory_map)

__all__ = ["mem_bus_latency", "HostMemSignature", "HostLfsrSignature", "HostStatusSignature", "Host"]

# --------------------------------------------------------------------------------------
# The hardware
# --------------------------------------------------------------------------------------

def mem_bus_latency(cfg: Config) -> int:
    """Cycles from the host bus's ``re`` to its word on ``rdata``: 1 on the iCE40 boards;
    4 on the ECP5 boards, where :class:`hdl.top.Processor` registers the bus's request
    (1), every port registers the block RAM's word (2, :func:`hdl.layer.host_latency`)
    and the processor registers the selected word (1), so that no timing path runs from
    the host through the memory selection to the block RAMs or back."""
    from .layer import host_latency
    return host_latency(cfg) + (2 if cfg.registered_bram else 0)


def HostMemSignature(params: HostParams) -> wiring.Signature:
    """The host's bus into the processor's memories (seen from the host): ``id`` selects a
    memory of :func:`memory_map`; a read's word is on ``rdata`` :func:`mem_bus_latency`
    cycles after ``re`` (1; 4 on the ECP5 boards) and holds until the next read; ``rdata``
    is the word sign-extended to ``8 * word_bytes`` bits (0 for an unknown id)."""
    return wiring.Signature({
        "id": Out(8),
        "addr": Out(8 * params.addr_bytes),
        "wdata": Out(8 * params.word_bytes),
        "we": Out(1),
        "re": Out(1),
        "rdata": In(8 * params.word_bytes),
    })


def HostLfsrSignature(cfg: Config) -> wiring.Signature:
    """The host's port into the direction generators (seen from the host): ``layer`` is
    the hidden layer ``l`` (1..L-1); ``state`` is its LFSR state (0 for another number);
    ``load`` replaces it with ``value`` (ignored when ``value`` is 0)."""
    w = cfg.arith.lfsr_width
    return wiring.Signature({
        "layer": Out(8),
        "value": Out(w),
        "load": Out(1),
        "state": In(w),
    })


def HostStatusSignature(cfg: Config) -> wiring.Signature:
    """The host's control of the sequencer (seen from the host)."""
    n_out = cfg.model.n_outputs
    return wiring.Signature({
        "train": Out(1),
        "infer": Out(1),
        "label": Out(range(n_out)),
        "busy": In(1),
        "done": In(1),
        "pred": In(range(n_out)),
        "steps": In(COUNTER_WIDTH),
        "cycles": In(COUNTER_WIDTH),
        "cycles_fwd": In(COUNTER_WIDTH),
        "cycles_upd": In(COUNTER_WIDTH),
        "cycles_err": In(COUNTER_WIDTH),
    })


class Host(wiring.Component):
    """Parses host commands from a byte stream and answers on another.

    One command at a time: the opcode, its argument bytes, the action (a training step
    or an inference runs to completion before the reply), then the reply bytes. Input
    words of LOAD_SAMPLE are written to the sample buffer as they complete. See
    ``docs/HOST-PROTOCOL.md`` for the commands.

    Parameters
    ----------
    cfg : Config
        The configuration (byte counts: :class:`HostParams`).

    Members
    -------
    i : ``In(stream.Signature(8))``
        Command bytes.
    o : ``Out(stream.Signature(8))``
        Reply bytes.
    x_addr : ``Out(range(n_0))``
        Sample buffer address (input ``j``).
    x_data : ``Out(act.width)``
        Input word ``x_j``.
    x_we : ``Out(1)``
        Write ``x_data`` to ``x_addr``.
    mem : ``Out(HostMemSignature(params))``
        Bus into the memories.
    lfsr : ``Out(HostLfsrSignature(cfg))``
        Port into the direction generators.
    ctl : ``Out(HostStatusSignature(cfg))``
        Start strobes, the label, and the sequencer's status and counters.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.params = HostParams.of(cfg)
        self.commands = host_commands(cfg)
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(8)),
            "x_addr": Out(range(max(cfg.model.layers[0], 2))),
            "x_data": Out(cfg.arith.act.width),
            "x_we": Out(1),
            "mem": Out(HostMemSignature(self.params)),
            "lfsr": Out(HostLfsrSignature(cfg)),
            "ctl": Out(HostStatusSignature(cfg)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, h, O = self.cfg, self.params, Opcode
        args_max = max(c.request for c in self.commands if c.code != O.LOAD_SAMPLE)
        reply_max = max(max(c.response for c in self.commands if c.code != O.READ_BLOCK), 2)

        cmd = Signal(8)
        arg = Signal(8 * args_max)
        cnt = Signal(range(max(args_max, h.sample_bytes, h.n_inputs) + 1))
        word = Signal(8 * h.sample_bytes)
        wi = Signal(range(h.n_inputs + 1))
        loaded = Signal()
        ridx = Signal(range(reply_max + 1))

        got = self.i.valid & self.i.ready
        byte = self.i.payload

        # READ_BLOCK: words to go, byte of the word, the word being sent, past the end.
        lat = mem_bus_latency(cfg)                  # cycles from `mem.re` to its word
        bwait = Signal(range(max(lat, 2)))          # BLOCK_WAIT: cycles still to wait
        bcnt = Signal(range(BLOCK_WORDS + 1))
        baddr = Signal(8 * h.addr_bytes + BLOCK_WORDS.bit_length())    # never wraps within a block
        bi = Signal(range(h.word_bytes))
        bword = Signal(8 * h.word_bytes)
        boob = Signal()

        # Argument fields.
        a_id = arg[:8]
        a_addr = arg[8:8 + 8 * h.addr_bytes]
        a_word = arg[8 + 8 * h.addr_bytes:8 + 8 * (h.addr_bytes + h.word_bytes)]
        a_lfsr = arg[8:8 + cfg.arith.lfsr_width]
        m.d.comb += [
            self.mem.id.eq(a_id), self.mem.addr.eq(a_addr), self.mem.wdata.eq(a_word),
            self.lfsr.layer.eq(a_id), self.lfsr.value.eq(a_lfsr),
        ]

        # Words of the addressed memory (READ_BLOCK sends 0 past the end).
        limit = Signal(range(max(mem.words for mem in memory_map(cfg)) + 1))
        with m.Switch(a_id):
            for mem in memory_map(cfg):
                with m.Case(mem.id):
                    m.d.comb += limit.eq(mem.words)
        block_next = lambda a: [baddr.eq(a + 1), boob.eq(a >= limit)]

        # Decoded once, when the command byte arrives (registers, so that no timing path
        # runs from `cmd` through the whole command table): the index of the last argument
        # byte, the index of the last reply byte, and the command as one bit per reply.
        n_last = Signal(range(args_max + 1))
        r_last = Signal(range(reply_max + 1))
        st = self.ctl
        pred8 = Cat(st.pred, Const(0, 8))[:8]
        replies = {
            O.PING: Cat(Const(O.PING, 8), Const(PROTOCOL_VERSION, 8)),
            O.LOAD_SAMPLE: Const(O.LOAD_SAMPLE, 8),
            O.TRAIN: Cat(Const(O.TRAIN, 8), pred8),
            O.INFER: Cat(Const(O.INFER, 8), pred8),
            O.READ_MEM: Cat(Const(O.READ_MEM, 8), self.mem.rdata),
            O.WRITE_MEM: Const(O.WRITE_MEM, 8),
            O.READ_LFSR: Cat(Const(O.READ_LFSR, 8), self.lfsr.state, Const(0, 8 * h.lfsr_bytes - cfg.arith.lfsr_width)),
            O.WRITE_LFSR: Const(O.WRITE_LFSR, 8),
            O.STATUS: Cat(Const(O.STATUS, 8), st.busy, loaded, Const(0, 6),
                          st.steps, st.cycles, st.cycles_fwd, st.cycles_upd, st.cycles_err, pred8),
            O.INFO: Cat(Const(O.INFO, 8), Const(PROTOCOL_VERSION, 8), Const(h.n_memories, 8),
                        Const(h.addr_bytes, 8), Const(h.word_bytes, 8), Const(h.sample_bytes, 8),
                        Const(h.lfsr_bytes, 8), Const(h.n_hidden, 8), Const(config_hash(cfg), 32)),
        }
        lengths = {c.code: c.response for c in self.commands}
        replies[None] = Cat(Const(ERROR_REPLY, 8), cmd)           # an unknown opcode
        is_reply = {code: Signal(name=f"is_reply_{code if code is not None else 'error'}")
                    for code in replies}
        # The reply byte `ridx` of each reply (selected by `ridx` first, then by command).
        # A byte takes three cycles of REPLY (the UART needs thousands): the long replies'
        # bytes are selected into registers, then the command's byte into `rbyte`, then
        # `rbyte` is offered; no timing path runs through both multiplexers.
        choices = []
        for code, vec in replies.items():
            assert code is None or len(vec) == 8 * lengths[code], (code, len(vec))
            nb = len(vec) // 8
            sel = Signal(8, name=f"reply_byte_{code if code is not None else 'error'}")
            dom = m.d.comb if nb <= 2 else m.d.sync
            if nb == 1:
                dom += sel.eq(vec)
            else:
                with m.Switch(ridx):
                    for k in range(nb):
                        with m.Case(k):
                            dom += sel.eq(vec[8 * k:8 * (k + 1)])
            choices.append(Mux(is_reply[code], sel, 0))
        reply_byte = Signal(8)
        m.d.comb += reply_byte.eq(Cat(*[Cat(*[c[b] for c in choices]).any() for b in range(8)]))
        rbyte = Signal(8)
        rphase = Signal(2)         # REPLY: 0 select, 1 take reply byte `ridx` into rbyte, 2 offer it

        # The start strobes leave, and the sequencer's done strobe enters, through a
        # register: no timing path runs through both the host and the sequencer.
        done = Signal()
        m.d.sync += [done.eq(st.done), st.train.eq(0), st.infer.eq(0)]
        exec_re, exec_we = Signal(), Signal()
        m.d.sync += [exec_re.eq(0), exec_we.eq(0)]

        # Sample words complete on their last byte.
        if h.sample_bytes > 1:
            full_word = Cat(word[:8 * (h.sample_bytes - 1)], byte)
        else:
            full_word = byte
        m.d.comb += [self.x_addr.eq(wi), self.x_data.eq(full_word[:cfg.arith.act.width])]

        with m.FSM():
            with m.State("CMD"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(got):
                    m.d.sync += [cmd.eq(byte), cnt.eq(0), wi.eq(0)]
                    m.d.sync += [f.eq(0) for f in is_reply.values()]
                    with m.Switch(byte):
                        for code in replies:
                            if code is not None:
                                with m.Case(code):
                                    m.d.sync += [is_reply[code].eq(1), r_last.eq(lengths[code] - 1)]
                        with m.Default():
                            m.d.sync += [is_reply[None].eq(1), r_last.eq(1)]
                    with m.Switch(byte):
                        for c in self.commands:
                            if c.code != O.LOAD_SAMPLE and c.request:
                                with m.Case(c.code):
                                    m.d.sync += n_last.eq(c.request - 1)
                    with m.Switch(byte):
                        with m.Case(O.LOAD_SAMPLE):
                            m.next = "SAMPLE"
                        for c in self.commands:
                            if c.code != O.LOAD_SAMPLE:
                                with m.Case(c.code):
                                    m.next = "ARGS" if c.request else "EXEC"
                        with m.Default():
                            m.d.sync += ridx.eq(0)
                            m.next = "REPLY"
            with m.State("ARGS"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(got):
                    m.d.sync += [arg.word_select(cnt, 8).eq(byte), cnt.eq(cnt + 1)]
                    with m.If(cnt == n_last):
                        # EXEC's memory strobes, from registers (they reach every block RAM)
                        m.d.sync += [exec_re.eq((cmd == O.READ_MEM) | (cmd == O.READ_BLOCK)),
                                     exec_we.eq(cmd == O.WRITE_MEM)]
                        m.next = "EXEC"
            with m.State("SAMPLE"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(got):
                    with m.If(cnt == h.sample_bytes - 1):
                        m.d.comb += self.x_we.eq(1)
                        m.d.sync += [cnt.eq(0), wi.eq(wi + 1)]
                        with m.If(wi == h.n_inputs - 1):
                            m.next = "LABEL"
                    with m.Else():
                        m.d.sync += [word.word_select(cnt, 8).eq(byte), cnt.eq(cnt + 1)]
            with m.State("LABEL"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(got):
                    m.d.sync += [st.label.eq(byte), loaded.eq(1), ridx.eq(0)]
                    m.next = "REPLY"
            with m.State("EXEC"):
                m.d.sync += ridx.eq(0)
                m.d.comb += [self.mem.re.eq(exec_re), self.mem.we.eq(exec_we)]
                with m.Switch(cmd):
                    with m.Case(O.TRAIN):
                        m.d.sync += st.train.eq(1)
                        m.next = "WAIT"
                    with m.Case(O.INFER):
                        m.d.sync += st.infer.eq(1)
                        m.next = "WAIT"
                    with m.Case(O.READ_MEM):
                        m.next = "REPLY"          # rdata is valid from the next cycle on
                    with m.Case(O.READ_BLOCK):
                        m.d.sync += block_next(a_addr) + [bcnt.eq(BLOCK_WORDS), bi.eq(0)]
                        m.next = "BLOCK_ECHO"
                    with m.Case(O.WRITE_MEM):
                        m.next = "REPLY"
                    with m.Case(O.WRITE_LFSR):
                        m.d.comb += self.lfsr.load.eq(a_lfsr != 0)
                        m.next = "REPLY"
                    with m.Default():
                        m.next = "REPLY"
            with m.State("BLOCK_ECHO"):
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(O.READ_BLOCK)]
                with m.If(self.o.ready):
                    if lat > 2:
                        # the first word was read in EXEC: BLOCK starts `lat` cycles after it
                        m.d.sync += bwait.eq(lat - 3)
                        m.next = "BLOCK_WAIT"
                    else:
                        m.next = "BLOCK"
            with m.State("BLOCK"):
                # Byte 0 of a word comes from the read port (valid from the cycle after the
                # read, and held), the others from a copy taken with byte 0 that shifts one
                # byte a cycle; the next word is read (BLOCK_READ) after the last byte of
                # this one goes out: word_bytes bytes every word_bytes + 1 cycles, plus
                # mem_bus_latency - 1 where the word comes later than the cycle after the read.
                live = Mux(boob, 0, self.mem.rdata)
                m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(Mux(bi == 0, live[:8], bword[:8]))]
                with m.If(self.o.ready):
                    with m.If(bi == 0):
                        m.d.sync += bword.eq(live >> 8)
                    with m.Else():
                        m.d.sync += bword.eq(bword >> 8)
                    with m.If(bi == h.word_bytes - 1):
                        m.d.sync += [bi.eq(0), bcnt.eq(bcnt - 1)]
                        with m.If(bcnt == 1):
                            m.next = "CMD"
                        with m.Else():
                            m.next = "BLOCK_READ"
                    with m.Else():
                        m.d.sync += bi.eq(bi + 1)
            with m.State("BLOCK_READ"):
                # The next word's read, in a state of its own: the bus's strobe and address
                # come from the state register and `baddr` alone (they reach every memory's
                # port multiplexers; no timing path runs from the byte counters to them).
                m.d.comb += [self.mem.re.eq(1), self.mem.addr.eq(baddr)]
                m.d.sync += block_next(baddr)
                if lat > 1:
                    m.d.sync += bwait.eq(lat - 2)
                    m.next = "BLOCK_WAIT"
                else:
                    m.next = "BLOCK"
            if lat > 1:
                with m.State("BLOCK_WAIT"):
                    # `bwait + 1` cycles for the word: the bus delivers it `lat` cycles after
                    # `re` (mem_bus_latency: 4 on the ECP5, whose bus and block RAM words
                    # are registered)
                    with m.If(bwait == 0):
                        m.next = "BLOCK"
                    with m.Else():
                        m.d.sync += bwait.eq(bwait - 1)
            with m.State("WAIT"):
                with m.If(done):
                    m.next = "REPLY"
            with m.State("REPLY"):
                with m.If(rphase == 0):
                    m.d.sync += rphase.eq(1)
                with m.Elif(rphase == 1):
                    m.d.sync += [rbyte.eq(reply_byte), rphase.eq(2)]
                with m.Else():
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(rbyte)]
                    with m.If(self.o.ready):
                        m.d.sync += [ridx.eq(ridx + 1), rphase.eq(0)]
                        with m.If(ridx == r_last):
                            m.next = "CMD"
        return m
