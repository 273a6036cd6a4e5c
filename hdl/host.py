"""Host interface: the hardware that parses the host protocol's commands from a byte
stream and answers on another.

The protocol is specified in ``docs/HOST-PROTOCOL.md``; its definitions (opcodes, the
memory map, the command table, the pure-Python encoder/decoder :class:`HostProtocol`)
are in :mod:`ddfa.protocol`. It is a plain stream of bytes in each direction (no
framing, no checksum): the UART frame layer (``hdl/link.py``) wraps it on a board.

:class:`Host` is built from :class:`CommandDecoder` (the command table, registered),
:class:`SampleWriter` (LOAD_SAMPLE's input words into the sample buffer),
:class:`AddressCheck` (the memory map's word counts), :class:`ReplyMultiplexer` (the
reply bytes), :class:`BlockReader` (READ_BLOCK's stream of words) and
:class:`BlockWriter` (WRITE_BLOCK's words onto the memory bus).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config, config_hash
from ddfa.protocol import (BLOCK_WORDS, BUSY_REPLY, COUNTER_WIDTH, ERROR_REPLY, PROTOCOL_VERSION,
                           RANGE_ERROR_REPLY, RUN_STATUS_BYTES, RUNNING_COMMANDS, WRITE_BLOCK_WORDS, HostParams,
                           Opcode, bus_memories, host_commands)

from .epoch_runner import RunSignature
from .layer import host_latency

__all__ = ["mem_bus_latency", "HostMemSignature", "HostLfsrSignature", "HostStatusSignature",
           "CommandDecoder", "SampleWriter", "AddressCheck", "ReplyMultiplexer", "BlockReader", "BlockWriter",
           "Host"]

def mem_bus_latency(cfg: Config) -> int:
    """Cycles from the host bus's ``re`` to its word on ``rdata``: 1 on the iCE40 boards;
    4 on the ECP5 boards, where :class:`hdl.top.Processor` registers the bus's request
    (1), every port registers the block RAM's word (2, :func:`hdl.layer.host_latency`)
    and the processor registers the selected word (1), so that no timing path runs from
    the host through the memory selection to the block RAMs or back."""
    return host_latency(cfg) + (2 if cfg.registered_bram else 0)


def HostMemSignature(params: HostParams) -> wiring.Signature:
    """The host's bus into the processor's memories (seen from the host): ``id`` selects a
    memory of :func:`~ddfa.protocol.bus_memories`; a read's word is on ``rdata`` :func:`mem_bus_latency`
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


#: The replies :class:`ReplyMultiplexer` sends, in the order of its ``select`` bits; None is
#: the unknown opcode's. READ_BLOCK's words come from :class:`BlockReader`.
REPLY_KINDS = (Opcode.PING, Opcode.LOAD_SAMPLE, Opcode.TRAIN, Opcode.INFER, Opcode.READ_MEM,
               Opcode.WRITE_MEM, Opcode.READ_LFSR, Opcode.WRITE_LFSR, Opcode.STATUS, Opcode.INFO, None)
#: The replies of the dataset store's commands (boards with a store), after those.
STORE_REPLY_KINDS = (Opcode.WRITE_BLOCK, Opcode.TRAIN_EPOCHS, Opcode.EVALUATE, Opcode.RUN_STATUS)


def reply_kinds(cfg: Config) -> tuple:
    """The replies :class:`ReplyMultiplexer` sends for ``cfg``, in its ``select`` order."""
    return REPLY_KINDS + (STORE_REPLY_KINDS if HostParams.of(cfg).has_store else ())
#: The commands whose memory id and address :class:`AddressCheck` checks.
ADDRESSED = (Opcode.READ_MEM, Opcode.WRITE_MEM, Opcode.READ_BLOCK, Opcode.WRITE_BLOCK)


def at_most(x, bound: int):
    """``x <= bound`` for a constant ``bound``, as logic on ``x``'s bits from the most
    significant down (no carry chain: a few LUTs on the iCE40)."""
    result = Const(1)
    for k in range(len(x)):             # from the least significant bit up
        if bound >> k & 1:
            result = ~x[k] | result
        else:
            result = ~x[k] & result
    return result if bound < 1 << len(x) else Const(1)


def _max_reply(cfg: Config) -> int:
    return max(c.response for c in host_commands(cfg))


class CommandDecoder(wiring.Component):
    """The command table (:func:`ddfa.protocol.host_commands`) looked up for one opcode,
    into registers (so that no timing path runs from the opcode through the table).

    Parameters
    ----------
    cfg : Config
        The configuration (the table's lengths).

    Members
    -------
    opcode : ``In(8)``
        The command byte.
    load : ``In(1)``
        Decode ``opcode``: every output below holds its value from the next cycle on
        (latency 1) until the next ``load``.
    known : ``Out(1)``
        The opcode is a command.
    is_sample : ``Out(1)``
        It is LOAD_SAMPLE (whose argument bytes are input words and a label).
    no_args : ``Out(1)``
        It takes no argument bytes.
    addressed : ``Out(1)``
        Its arguments are a memory id and an address (:data:`ADDRESSED`).
    arg_last : ``Out(range(max arguments))``
        Index of its last argument byte (not for LOAD_SAMPLE).
    reply_last : ``Out(range(max reply))``
        Index of its last reply byte (1 for an unknown opcode).
    select : ``Out(len(reply_kinds(cfg)))``
        One bit per reply of :func:`reply_kinds` (none for READ_BLOCK).
    is_write_block : ``Out(1)``
        It is WRITE_BLOCK (its arguments are a memory id and an address, then the words'
        bytes).
    when_running : ``Out(1)``
        It is answered while the epoch runner runs (:data:`~ddfa.protocol.RUNNING_COMMANDS`).
    """

    def __init__(self, cfg: Config):
        self.commands = host_commands(cfg)
        self.kinds = reply_kinds(cfg)
        self.params = HostParams.of(cfg)
        args_max = max(_arg_bytes(c, self.params) for c in self.commands if c.code != Opcode.LOAD_SAMPLE)
        super().__init__({
            "opcode": In(8), "load": In(1),
            "known": Out(1), "is_sample": Out(1), "no_args": Out(1), "addressed": Out(1),
            "arg_last": Out(range(max(args_max, 1))), "reply_last": Out(range(_max_reply(cfg))),
            "select": Out(len(self.kinds)), "is_write_block": Out(1), "when_running": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        with m.If(self.load):
            m.d.sync += [self.known.eq(0), self.is_sample.eq(0), self.no_args.eq(0), self.addressed.eq(0),
                         self.arg_last.eq(0), self.reply_last.eq(1), self.is_write_block.eq(0),
                         self.when_running.eq(1), self.select.eq(1 << self.kinds.index(None))]
            with m.Switch(self.opcode):
                for c in self.commands:
                    with m.Case(c.code):
                        kind = 1 << self.kinds.index(c.code) if c.code in self.kinds else 0
                        m.d.sync += [self.known.eq(1), self.is_sample.eq(c.code == Opcode.LOAD_SAMPLE),
                                     self.no_args.eq(c.request == 0), self.addressed.eq(c.code in ADDRESSED),
                                     self.reply_last.eq(c.response - 1), self.select.eq(kind),
                                     self.is_write_block.eq(c.code == Opcode.WRITE_BLOCK),
                                     self.when_running.eq(c.code in RUNNING_COMMANDS)]
                        if c.request and c.code != Opcode.LOAD_SAMPLE:
                            m.d.sync += self.arg_last.eq(_arg_bytes(c, self.params) - 1)
        return m


def _arg_bytes(c, params: HostParams) -> int:
    """Argument bytes the host collects for command ``c`` (WRITE_BLOCK: its memory id and
    address; its words go onto the memory bus as they arrive)."""
    return 1 + params.addr_bytes if c.code == Opcode.WRITE_BLOCK else c.request


class AddressCheck(wiring.Component):
    """The word count of a memory of :func:`ddfa.protocol.bus_memories` (the learned
    memories and the dataset store), and whether an address is inside it.
    Combinational (latency 0).

    Parameters
    ----------
    cfg : Config
        The configuration (its memory map).

    Members
    -------
    id : ``In(8)``
        Memory id.
    addr : ``In(8 * addr_bytes + 1)``
        Word address (one bit more than the protocol's, for :class:`BlockWriter`'s words
        past the end).
    words : ``Out(range(max words + 1))``
        Words of memory ``id`` (0 for an id that is not in the map).
    in_range : ``Out(1)``
        ``addr < words``: ``id`` is in the map and ``addr`` addresses one of its words.
    """

    def __init__(self, cfg: Config):
        self.memories = bus_memories(cfg)
        super().__init__({
            "id": In(8), "addr": In(8 * HostParams.of(cfg).addr_bytes + 1),
            "words": Out(range(max(mem.words for mem in self.memories) + 1)), "in_range": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        with m.Switch(self.id):
            for mem in self.memories:
                with m.Case(mem.id):
                    m.d.comb += self.words.eq(mem.words)
        m.d.comb += self.in_range.eq(self.addr < self.words)
        return m


class ReplyMultiplexer(wiring.Component):
    """Byte ``index`` of the reply of the selected command.

    Latency 2: ``byte`` holds byte ``index`` from the second cycle after ``index`` (and
    the inputs) changed. The bytes of the long replies are selected into registers, then
    the selected reply's byte into ``byte``: no timing path runs through both
    multiplexers.

    Parameters
    ----------
    cfg : Config
        The configuration (the replies' fields and lengths).

    Members
    -------
    select : ``In(len(reply_kinds(cfg)))``
        The reply, one bit per entry of :func:`reply_kinds` (:class:`CommandDecoder`'s).
    opcode : ``In(8)``
        The command's opcode (the unknown opcode's and the refused command's second byte).
    refused : ``In(1)``
        The command's argument was out of range: the reply is ``RANGE_ERROR_REPLY``,
        the opcode, then zeros, whatever ``select`` says.
    busy_refused : ``In(1)``
        The command came while the epoch runner runs: the same with ``BUSY_REPLY``.
    index : ``In(range(max reply))``
        Byte of the reply.
    byte : ``Out(8)``
        That byte.
    pred, word, lfsr_state : ``In``
        The last class, the memory bus's word, the addressed LFSR's state.
    busy, loaded : ``In(1)``
        STATUS's flags: a step is running, a sample has been loaded.
    steps, cycles, cycles_fwd, cycles_upd, cycles_err : ``In(COUNTER_WIDTH)``
        STATUS's counters.
    run_status : ``In(8 * (RUN_STATUS_BYTES - 1))``
        RUN_STATUS's bytes after the echo (boards with a dataset store).
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.params = h = HostParams.of(cfg)
        self.kinds = reply_kinds(cfg)
        self.lengths = {c.code: c.response for c in host_commands(cfg)}
        store = {"run_status": In(8 * (RUN_STATUS_BYTES - 1))} if h.has_store else {}
        super().__init__({
            **store,
            "select": In(len(self.kinds)), "opcode": In(8), "refused": In(1), "busy_refused": In(1),
            "index": In(range(_max_reply(cfg))), "byte": Out(8),
            "pred": In(range(cfg.model.n_outputs)), "word": In(8 * h.word_bytes),
            "lfsr_state": In(cfg.arith.lfsr_width), "busy": In(1), "loaded": In(1),
            **{name: In(COUNTER_WIDTH) for name in ("steps", "cycles", "cycles_fwd", "cycles_upd", "cycles_err")},
        })

    def replies(self) -> dict:
        """Every reply of :data:`REPLY_KINDS` as one value, byte 0 in its low bits."""
        cfg, h, O = self.cfg, self.params, Opcode
        pred8 = Cat(self.pred, Const(0, 8))[:8]
        return {
            O.PING: Cat(Const(O.PING, 8), Const(PROTOCOL_VERSION, 8)),
            O.LOAD_SAMPLE: Const(O.LOAD_SAMPLE, 8),
            O.TRAIN: Cat(Const(O.TRAIN, 8), pred8),
            O.INFER: Cat(Const(O.INFER, 8), pred8),
            O.READ_MEM: Cat(Const(O.READ_MEM, 8), self.word),
            O.WRITE_MEM: Const(O.WRITE_MEM, 8),
            O.READ_LFSR: Cat(Const(O.READ_LFSR, 8), self.lfsr_state,
                             Const(0, 8 * h.lfsr_bytes - cfg.arith.lfsr_width)),
            O.WRITE_LFSR: Const(O.WRITE_LFSR, 8),
            O.STATUS: Cat(Const(O.STATUS, 8), self.busy, self.loaded, Const(0, 6), self.steps, self.cycles,
                          self.cycles_fwd, self.cycles_upd, self.cycles_err, pred8),
            O.INFO: Cat(Const(O.INFO, 8), Const(PROTOCOL_VERSION, 8), Const(h.n_memories, 8),
                        Const(h.addr_bytes, 8), Const(h.word_bytes, 8), Const(h.sample_bytes, 8),
                        Const(h.lfsr_bytes, 8), Const(h.n_hidden, 8), Const(config_hash(cfg), 32)),
            None: Cat(Const(ERROR_REPLY, 8), self.opcode),
            **({
                O.WRITE_BLOCK: Const(O.WRITE_BLOCK, 8),
                O.TRAIN_EPOCHS: Const(O.TRAIN_EPOCHS, 8),
                O.EVALUATE: Const(O.EVALUATE, 8),
                O.RUN_STATUS: Cat(Const(O.RUN_STATUS, 8), self.run_status),
            } if h.has_store else {}),
        }

    def elaborate(self, platform):
        m = Module()
        replies = self.replies()
        choices = []
        for k, code in enumerate(self.kinds):
            vec = replies[code]
            assert code is None or len(vec) == 8 * self.lengths[code], (code, len(vec))
            n_bytes = len(vec) // 8
            byte_k = Signal(8, name=f"reply_byte_{code.name if code is not None else 'error'}")
            domain = m.d.comb if n_bytes <= 2 else m.d.sync
            if n_bytes == 1:
                domain += byte_k.eq(vec)
            else:
                with m.Switch(self.index):
                    for b in range(n_bytes):
                        with m.Case(b):
                            domain += byte_k.eq(vec[8 * b:8 * (b + 1)])
            choices.append(Mux(self.select[k], byte_k, 0))
        selected = Cat(*[Cat(*[c[b] for c in choices]).any() for b in range(8)])
        first = Mux(self.busy_refused, BUSY_REPLY, RANGE_ERROR_REPLY)
        refusal = Mux(self.index == 0, first, Mux(self.index == 1, self.opcode, 0))
        m.d.sync += self.byte.eq(Mux(self.refused | self.busy_refused, refusal, selected))
        return m


class BlockReader(wiring.Component):
    """READ_BLOCK's reply: the echo, then :data:`~ddfa.protocol.BLOCK_WORDS` words of one
    memory from a start address on, each sign-extended to ``word_bytes`` bytes, least
    significant first; words at or past the memory's end are sent as 0.

    The echo goes out from the cycle after ``start``. Each word is read (``re``) after
    the last byte of the one before has gone out, and its bytes go out from
    ``mem_bus_latency`` cycles after the read: ``word_bytes`` bytes every
    ``word_bytes + mem_bus_latency`` cycles when ``o`` is always ready. Byte 0 comes
    from the bus (valid from ``mem_bus_latency`` cycles after the read, and held), the
    others from a copy that shifts one byte a cycle.

    Parameters
    ----------
    cfg : Config
        The configuration (byte counts, memory map, the bus's latency).

    Members
    -------
    start : ``In(1)``
        Send a block (``first`` is taken with it; the memory id on the bus must hold
        until ``busy`` falls).
    first : ``In(8 * addr_bytes)``
        Address of the first word.
    o : ``Out(stream.Signature(8))``
        The reply's bytes.
    re, addr : ``Out(1)``, ``Out(8 * addr_bytes + 1)``
        The memory bus's read strobe and the word's address (for the bus and
        :class:`AddressCheck`).
    in_range : ``In(1)``
        ``addr`` lies inside the memory (:class:`AddressCheck`).
    rdata : ``In(8 * word_bytes)``
        The bus's word.
    busy : ``Out(1)``
        Sending.
    """

    def __init__(self, cfg: Config):
        self.params = h = HostParams.of(cfg)
        self.latency = mem_bus_latency(cfg)
        super().__init__({
            "start": In(1), "first": In(8 * h.addr_bytes), "in_range": In(1),
            "o": Out(stream.Signature(8)), "re": Out(1), "addr": Out(8 * h.addr_bytes + 1),
            "rdata": In(8 * h.word_bytes), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        h, lat = self.params, self.latency
        next_addr = Signal(8 * h.addr_bytes + 1)        # first + BLOCK_WORDS < 2**(8 * addr_bytes + 1): never wraps
        words_left = Signal(range(BLOCK_WORDS + 1))
        byte_index = Signal(range(h.word_bytes))
        word_rest = Signal(8 * h.word_bytes)            # the word's bytes after byte 0, shifting
        past_end = Signal()                             # the word being sent is past the memory's end
        wait = Signal(range(max(lat, 2)))               # WAIT: cycles still to wait
        word = Mux(past_end, 0, self.rdata)
        m.d.comb += self.addr.eq(next_addr)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [next_addr.eq(self.first), words_left.eq(BLOCK_WORDS),
                                 byte_index.eq(0)]
                    m.next = "ECHO"
            with m.State("ECHO"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(Opcode.READ_BLOCK)]
                with m.If(self.o.ready):
                    m.next = "READ"
            with m.State("READ"):
                # the read in a state of its own: the bus's strobe and address come from the
                # state register and `next_addr` alone (no timing path from the byte counters)
                m.d.comb += [self.busy.eq(1), self.re.eq(1)]
                m.d.sync += [past_end.eq(~self.in_range), next_addr.eq(next_addr + 1)]
                if lat > 1:
                    m.d.sync += wait.eq(lat - 2)
                    m.next = "WAIT"
                else:
                    m.next = "SEND"
            if lat > 1:
                with m.State("WAIT"):
                    m.d.comb += self.busy.eq(1)
                    with m.If(wait == 0):
                        m.next = "SEND"
                    with m.Else():
                        m.d.sync += wait.eq(wait - 1)
            with m.State("SEND"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1),
                             self.o.payload.eq(Mux(byte_index == 0, word[:8], word_rest[:8]))]
                with m.If(self.o.ready):
                    with m.If(byte_index == 0):
                        m.d.sync += word_rest.eq(word >> 8)
                    with m.Else():
                        m.d.sync += word_rest.eq(word_rest >> 8)
                    with m.If(byte_index == h.word_bytes - 1):
                        m.d.sync += [byte_index.eq(0), words_left.eq(words_left - 1)]
                        with m.If(words_left == 1):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "READ"
                    with m.Else():
                        m.d.sync += byte_index.eq(byte_index + 1)
        return m


class BlockWriter(wiring.Component):
    """WRITE_BLOCK's words: :data:`~ddfa.protocol.WRITE_BLOCK_WORDS` words of
    ``word_bytes`` bytes each (least significant first) onto the memory bus, from
    address ``first`` on. A word's write strobe and data leave from registers the cycle
    after its last byte arrives (``wdata`` holds the word until the next word's first
    byte, which is taken from the cycle after); a word whose address is not inside the memory
    (``in_range`` low: at or past its end) is not written.

    Parameters
    ----------
    cfg : Config
        The configuration (byte counts).

    Members
    -------
    start : ``In(1)``
        The next byte is the block's first (``first`` and ``write`` are taken).
    first : ``In(8 * addr_bytes)``
        Address of the first word.
    write : ``In(1)``
        Write the words (else take the bytes and drop them: a refused block).
    i : ``In(stream.Signature(8))``
        The bytes.
    addr : ``Out(8 * addr_bytes + 1)``
        The word's address (for the bus and :class:`AddressCheck`).
    in_range : ``In(1)``
        ``addr`` lies inside the memory.
    we, wdata : ``Out(1)``, ``Out(8 * word_bytes)``
        The bus's write strobe and word.
    busy : ``Out(1)``
        The block's bytes are not all taken and written yet.
    """

    def __init__(self, cfg: Config):
        self.params = h = HostParams.of(cfg)
        super().__init__({
            "start": In(1), "first": In(8 * h.addr_bytes), "write": In(1), "i": In(stream.Signature(8)),
            "addr": Out(8 * h.addr_bytes + 1), "in_range": In(1),
            "we": Out(1), "wdata": Out(8 * h.word_bytes), "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        wb = self.params.word_bytes
        left = Signal(range(WRITE_BLOCK_WORDS + 1))     # words still to come
        byte_index = Signal(range(wb))
        write = Signal()
        issued = Signal()                               # a word's strobe is on the bus
        got = self.i.valid & self.i.ready
        m.d.comb += [self.i.ready.eq((left != 0) & ~issued), self.busy.eq((left != 0) | issued)]
        m.d.sync += [self.we.eq(0), issued.eq(0)]
        with m.If(self.start):
            m.d.sync += [self.addr.eq(self.first), write.eq(self.write), left.eq(WRITE_BLOCK_WORDS),
                         byte_index.eq(0)]
        with m.Elif(got):
            # the word is put together in ``wdata``: no byte arrives while its strobe is out
            m.d.sync += self.wdata.word_select(byte_index, 8).eq(self.i.payload)
            with m.If(byte_index == wb - 1):
                m.d.sync += [self.we.eq(write & self.in_range), issued.eq(1), left.eq(left - 1), byte_index.eq(0)]
            with m.Else():
                m.d.sync += byte_index.eq(byte_index + 1)
        with m.If(issued):
            m.d.sync += self.addr.eq(self.addr + 1)
        return m


class SampleWriter(wiring.Component):
    """LOAD_SAMPLE's input words: ``n_0`` words of ``sample_bytes`` bytes each (least
    significant first) into the sample buffer, each written in the cycle its last byte
    arrives (latency 0).

    Parameters
    ----------
    cfg : Config
        The configuration (``n_0``, ``act.width``, byte counts).

    Members
    -------
    start : ``In(1)``
        The next byte is byte 0 of input word 0.
    i : ``In(stream.Signature(8))``
        The bytes (always ready).
    x_addr : ``Out(range(n_0))``
        Sample buffer address (input ``j``).
    x_data : ``Out(act.width)``
        Input word ``x_j``.
    x_we : ``Out(1)``
        Write ``x_data`` to ``x_addr``.
    done : ``Out(1)``
        The last byte of the last word arrived (with its ``x_we``).
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.params = HostParams.of(cfg)
        super().__init__({
            "start": In(1), "i": In(stream.Signature(8)),
            "x_addr": Out(range(max(cfg.model.layers[0], 2))), "x_data": Out(cfg.arith.act.width),
            "x_we": Out(1), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        h = self.params
        byte_index = Signal(range(h.sample_bytes))
        word_bytes = Signal(8 * h.sample_bytes)          # the word's bytes before its last
        input_index = Signal(range(h.n_inputs + 1))
        got = self.i.valid & self.i.ready
        byte = self.i.payload
        full_word = Cat(word_bytes[:8 * (h.sample_bytes - 1)], byte) if h.sample_bytes > 1 else byte
        m.d.comb += [self.i.ready.eq(1), self.x_addr.eq(input_index),
                     self.x_data.eq(full_word[:self.cfg.arith.act.width])]
        with m.If(self.start):
            m.d.sync += [byte_index.eq(0), input_index.eq(0)]
        with m.Elif(got):
            with m.If(byte_index == h.sample_bytes - 1):
                m.d.comb += [self.x_we.eq(1), self.done.eq(input_index == h.n_inputs - 1)]
                m.d.sync += [byte_index.eq(0), input_index.eq(input_index + 1)]
            with m.Else():
                m.d.sync += [word_bytes.word_select(byte_index, 8).eq(byte), byte_index.eq(byte_index + 1)]
        return m


class Host(wiring.Component):
    """Parses host commands from a byte stream and answers on another.

    One command at a time: the opcode (decoded the next cycle), its argument bytes, a
    cycle to check a memory address against the memory map, the action (a training step
    or an inference runs to completion before the reply), then the reply bytes (each
    takes 3 cycles: :class:`ReplyMultiplexer`'s latency 2, then the offer). Input words
    of LOAD_SAMPLE are written to the sample buffer as they complete; its label is
    checked when it arrives. A command whose argument is out of range changes nothing
    and gets the range-error reply. See ``docs/HOST-PROTOCOL.md`` for the commands.

    Parameters
    ----------
    cfg : Config
        The configuration (byte counts: :class:`~ddfa.protocol.HostParams`).

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
    run : ``Out(RunSignature(cfg))``
        The epoch runner (boards with a dataset store, ``cfg.chip_store``; the store itself
        is on the memory bus).
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.params = HostParams.of(cfg)
        self.commands = host_commands(cfg)
        store = {"run": Out(RunSignature(cfg))} if self.params.has_store else {}
        super().__init__({
            **store,
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
        cfg, h, O, st = self.cfg, self.params, Opcode, self.ctl
        m.submodules.decoder = decoder = CommandDecoder(cfg)
        m.submodules.address_check = address_check = AddressCheck(cfg)
        m.submodules.replies = replies = ReplyMultiplexer(cfg)
        m.submodules.block_reader = block_reader = BlockReader(cfg)
        m.submodules.sample_writer = sample_writer = SampleWriter(cfg)
        if h.has_store:
            m.submodules.block_writer = block_writer = BlockWriter(cfg)
        args_max = max(_arg_bytes(c, h) for c in self.commands if c.code != O.LOAD_SAMPLE)

        opcode = Signal(8)
        args = Signal(8 * args_max)                     # the argument bytes, byte k at bits 8k
        byte_count = Signal(range(args_max + 1))
        loaded = Signal()
        refused = Signal()                              # the command's argument is out of range
        busy_refused = Signal()                         # the command came while the epoch runner runs
        running = Signal()
        reply_index = Signal.like(replies.index)
        reply_phase = Signal(2)                         # REPLY: 0, 1 the multiplexer's latency, 2 offer
        got = self.i.valid & self.i.ready
        byte = self.i.payload

        arg_id = args[:8]
        arg_addr = args[8:8 + 8 * h.addr_bytes]
        arg_word = args[8 + 8 * h.addr_bytes:8 + 8 * (h.addr_bytes + h.word_bytes)]
        arg_lfsr = args[8:8 + cfg.arith.lfsr_width]

        # The memory strobes come from registers (they reach every block RAM), set by CHECK
        # (and by the block writer).
        exec_re, exec_we = Signal(), Signal()
        writing = Signal()                              # WRITE_BLOCK's words are arriving
        # the bus's address, one bit wider: the block commands' words past the memory's end
        # are out of the address check's range, not wrapped round
        bus_addr = Signal(len(address_check.addr))
        m.d.sync += [exec_re.eq(0), exec_we.eq(0)]
        if h.has_store:
            m.d.comb += [
                block_writer.first.eq(arg_addr), block_writer.in_range.eq(address_check.in_range),
                block_writer.i.payload.eq(byte), block_writer.write.eq(~refused & ~busy_refused),
                self.mem.wdata.eq(Mux(writing, block_writer.wdata, arg_word)),
                bus_addr.eq(Mux(block_reader.busy, block_reader.addr, Mux(writing, block_writer.addr, arg_addr))),
                self.mem.we.eq(exec_we | block_writer.we),
            ]
        else:
            m.d.comb += [self.mem.wdata.eq(arg_word), self.mem.we.eq(exec_we),
                         bus_addr.eq(Mux(block_reader.busy, block_reader.addr, arg_addr))]
        m.d.comb += [
            address_check.addr.eq(bus_addr), self.mem.addr.eq(bus_addr),
            decoder.opcode.eq(byte),
            address_check.id.eq(arg_id), self.mem.id.eq(arg_id),
            self.mem.re.eq(exec_re | block_reader.re),
            self.lfsr.layer.eq(arg_id), self.lfsr.value.eq(arg_lfsr),
            block_reader.first.eq(arg_addr), block_reader.in_range.eq(address_check.in_range),
            block_reader.rdata.eq(self.mem.rdata),
            replies.select.eq(decoder.select), replies.opcode.eq(opcode), replies.refused.eq(refused), replies.busy_refused.eq(busy_refused),
            replies.index.eq(reply_index), replies.pred.eq(st.pred), replies.word.eq(self.mem.rdata),
            replies.lfsr_state.eq(self.lfsr.state), replies.busy.eq(st.busy), replies.loaded.eq(loaded),
            replies.steps.eq(st.steps), replies.cycles.eq(st.cycles), replies.cycles_fwd.eq(st.cycles_fwd),
            replies.cycles_upd.eq(st.cycles_upd), replies.cycles_err.eq(st.cycles_err),
        ]

        # The start strobes leave, and the sequencer's done strobe enters, through a
        # register: no timing path runs through both the host and the sequencer.
        done = Signal()
        m.d.sync += [done.eq(st.done), st.train.eq(0), st.infer.eq(0)]

        m.d.comb += [sample_writer.i.payload.eq(byte), self.x_addr.eq(sample_writer.x_addr),
                     self.x_data.eq(sample_writer.x_data), self.x_we.eq(sample_writer.x_we & ~busy_refused)]

        if h.has_store:
            # TRAIN_EPOCHS: n_train, epochs; EVALUATE: n_train, n_test (2 bytes each)
            run, max_records = self.run, cfg.chip_store.max_records
            arg_n_train, arg_second = args[:16], args[16:32]
            m.d.comb += [
                running.eq(run.running),
                run.n_train.eq(arg_n_train), run.epochs.eq(arg_second), run.n_test.eq(arg_second),
                replies.run_status.eq(Cat(run.running, run.evaluating, Const(0, 6), run.epoch,
                                          run.index, Const(0, 16 - len(run.index)),
                                          run.correct, Const(0, 16 - len(run.correct)), run.run_cycles)),
            ]

        with m.FSM():
            with m.State("OPCODE"):
                m.d.comb += [self.i.ready.eq(1), decoder.load.eq(got), sample_writer.start.eq(got)]
                with m.If(got):
                    m.d.sync += [opcode.eq(byte), byte_count.eq(0), refused.eq(0), reply_index.eq(0)]
                    m.next = "DECODE"
            with m.State("DECODE"):
                # while the epoch runner runs, a command that is not answered then is refused:
                # its bytes are taken (LOAD_SAMPLE's and WRITE_BLOCK's written nowhere)
                m.d.sync += busy_refused.eq(running & decoder.known & ~decoder.when_running)
                with m.If(~decoder.known):
                    m.next = "REPLY"
                with m.Elif(decoder.is_sample):
                    m.next = "SAMPLE"
                with m.Elif(decoder.no_args):
                    m.next = "CHECK"
                with m.Else():
                    m.next = "ARGS"
            with m.State("ARGS"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(got):
                    # a refused command's arguments are dropped: while a run runs, the
                    # argument registers hold its counts (RunSignature)
                    with m.If(~busy_refused):
                        m.d.sync += args.word_select(byte_count, 8).eq(byte)
                    m.d.sync += byte_count.eq(byte_count + 1)
                    with m.If(byte_count == decoder.arg_last):
                        m.next = "CHECK"
            with m.State("CHECK"):
                # a memory's id and address must address one of its words
                bad_address = decoder.addressed & ~address_check.in_range
                if h.has_store:
                    # a run's counts: at least one record to run, none past the store's last
                    # (ddfa.config.StoreLayout.max_records; an evaluation of records that lie
                    # past it only reads)
                    fits = at_most(arg_n_train, max_records) & at_most(arg_second, max_records)
                    bad_train = (arg_n_train == 0) | ~fits | (arg_second == 0)
                    bad_test = (arg_second == 0) | ~fits
                    bad = (bad_address | ((opcode == O.TRAIN_EPOCHS) & bad_train)
                           | ((opcode == O.EVALUATE) & bad_test))
                else:
                    bad = bad_address
                m.d.sync += [refused.eq(bad),
                             exec_re.eq((opcode == O.READ_MEM) & ~bad_address & ~busy_refused),
                             exec_we.eq((opcode == O.WRITE_MEM) & ~bad_address & ~busy_refused)]
                m.next = "EXEC"
            with m.State("SAMPLE"):
                m.d.comb += [sample_writer.i.valid.eq(self.i.valid), self.i.ready.eq(sample_writer.i.ready)]
                with m.If(sample_writer.done):
                    m.next = "LABEL"
            with m.State("LABEL"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(got):
                    with m.If(busy_refused):
                        pass
                    with m.Elif(byte < h.n_outputs):
                        m.d.sync += [st.label.eq(byte), loaded.eq(1)]
                    with m.Else():
                        m.d.sync += refused.eq(1)
                    m.next = "REPLY"
            with m.State("EXEC"):
                with m.If(refused | busy_refused):
                    if h.has_store:
                        with m.If(decoder.is_write_block):
                            m.d.comb += block_writer.start.eq(1)     # its words are taken and dropped
                            m.next = "WRITE"
                        with m.Else():
                            m.next = "REPLY"
                    else:
                        m.next = "REPLY"
                with m.Else():
                    with m.Switch(opcode):
                        with m.Case(O.TRAIN):
                            m.d.sync += st.train.eq(1)
                            m.next = "WAIT"
                        with m.Case(O.INFER):
                            m.d.sync += st.infer.eq(1)
                            m.next = "WAIT"
                        with m.Case(O.READ_BLOCK):
                            m.d.comb += block_reader.start.eq(1)
                            m.next = "BLOCK"
                        with m.Case(O.WRITE_LFSR):
                            m.d.comb += self.lfsr.load.eq(arg_lfsr != 0)
                            m.next = "REPLY"
                        if h.has_store:
                            # the store's commands: a strobe, then the state that waits for it
                            for code, strobe, then in ((O.WRITE_BLOCK, block_writer.start, "WRITE"),
                                                       (O.TRAIN_EPOCHS, run.train_epochs, "REPLY"),
                                                       (O.EVALUATE, run.evaluate, "REPLY")):
                                with m.Case(code):
                                    m.d.comb += strobe.eq(1)
                                    m.next = then
                        with m.Default():
                            m.next = "REPLY"          # READ_MEM's word is on the bus from the next cycle on
            with m.State("BLOCK"):
                m.d.comb += [self.o.valid.eq(block_reader.o.valid), self.o.payload.eq(block_reader.o.payload),
                             block_reader.o.ready.eq(self.o.ready)]
                with m.If(~block_reader.busy):
                    m.next = "OPCODE"
            with m.State("WAIT"):
                with m.If(done):
                    m.next = "REPLY"
            if h.has_store:
                with m.State("WRITE"):
                    m.d.comb += [writing.eq(1), block_writer.i.valid.eq(self.i.valid),
                                 self.i.ready.eq(block_writer.i.ready)]
                    with m.If(~block_writer.busy):
                        m.next = "REPLY"
            with m.State("REPLY"):
                with m.If(reply_phase != 2):
                    m.d.sync += reply_phase.eq(reply_phase + 1)
                with m.Else():
                    m.d.comb += [self.o.valid.eq(1), self.o.payload.eq(replies.byte)]
                    with m.If(self.o.ready):
                        m.d.sync += [reply_index.eq(reply_index + 1), reply_phase.eq(0)]
                        with m.If(reply_index == decoder.reply_last):
                            m.next = "OPCODE"
        return m
