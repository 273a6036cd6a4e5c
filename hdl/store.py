"""The dataset store: the board's memory that holds a data set for on-chip epochs.

One interface (:func:`StoreSignature`) that every user (the host's upload and check, the
epoch runner's sample loader) drives, and one implementation per kind of memory
(:attr:`ddfa.config.StoreLayout.kind`): :class:`SpramStore`, the iCE40 UP5K's four
``SB_SPRAM256KA``. The layout of what is stored is ``ddfa.config.StoreLayout``'s
(``docs/ARITHMETIC.md``, "Training from the dataset store").
"""

from __future__ import annotations

from amaranth.hdl import Array, ClockSignal, Instance, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

__all__ = ["STORE_WIDTH", "store_request_layout", "StoreSignature", "SpramStore", "make_store"]

#: Bits of a store word.
STORE_WIDTH = 16


def store_request_layout(addr_bits: int) -> data.StructLayout:
    """A request to the store: read (``write`` = 0) or write ``data`` at ``addr``."""
    return data.StructLayout({"addr": addr_bits, "write": 1, "data": STORE_WIDTH})


def StoreSignature(addr_bits: int) -> wiring.Signature:
    """The store seen from a user.

    ``req`` carries requests, taken in a cycle where ``valid`` and ``ready`` are both
    high; ``resp`` carries the words of the reads, in the order of their requests (it
    has no ready: a user takes each word in the cycle it is valid). Latency from a read's
    request to its word: 1 cycle for :class:`SpramStore`, more for other stores.
    """
    return wiring.Signature({
        "req": Out(stream.Signature(store_request_layout(addr_bits))),
        "resp": In(stream.Signature(STORE_WIDTH, always_ready=True)),
    })


class SpramStore(wiring.Component):
    """The iCE40 UP5K's four 16,384 x 16-bit SPRAM blocks as one store of 65,536 words.

    Always ready; a read's word comes the cycle after its request (the SPRAM's registered
    read). Address bits 14-15 select the block. On an iCE40 platform each block is an
    ``SB_SPRAM256KA`` instance (``STANDBY``, ``SLEEP`` low, ``POWEROFF`` high, all four
    nibbles written); elsewhere (the simulators) a :class:`~amaranth.lib.memory.Memory`
    of the same behaviour. The contents after configuration are undefined.

    Members
    -------
    bus : ``In(StoreSignature(16))``
        The store's port.
    """

    BLOCKS = 4
    BLOCK_WORDS = 16384

    def __init__(self, cfg: Config):
        self.cfg = cfg
        #: The blocks' :class:`~amaranth.lib.memory.Memory` objects once elaborated without a
        #: platform (the simulators; a test may fill them).
        self.memories: list[Memory] = []
        super().__init__({"bus": In(StoreSignature(16))})

    def elaborate(self, platform):
        m = Module()
        req, resp = self.bus.req, self.bus.resp
        block = req.payload.addr[14:16]
        read = req.valid & ~req.payload.write
        write = req.valid & req.payload.write
        block_q = Signal(2)
        m.d.comb += req.ready.eq(1)
        m.d.sync += resp.valid.eq(read)
        with m.If(read):
            m.d.sync += block_q.eq(block)
        primitive = platform is not None and self.cfg.board.family == "ice40"
        self.memories = []
        words = []
        for b in range(self.BLOCKS):
            chosen = block == b
            dout = Signal(STORE_WIDTH, name=f"spram{b}_data")
            if primitive:
                m.submodules[f"spram{b}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=req.payload.addr[:14], i_DATAIN=req.payload.data, i_MASKWREN=0b1111,
                    i_WREN=write, i_CHIPSELECT=req.valid & chosen, i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1, o_DATAOUT=dout)
            else:
                m.submodules[f"spram{b}"] = mem = Memory(shape=STORE_WIDTH, depth=self.BLOCK_WORDS, init=[])
                self.memories.append(mem)
                wr, rd = mem.write_port(), mem.read_port(transparent_for=())
                m.d.comb += [wr.addr.eq(req.payload.addr[:14]), wr.data.eq(req.payload.data),
                             wr.en.eq(write & chosen), rd.addr.eq(req.payload.addr[:14]),
                             rd.en.eq(read & chosen), dout.eq(rd.data)]
            words.append(dout)
        m.d.comb += resp.payload.eq(Array(words)[block_q])
        return m


def make_store(cfg: Config) -> wiring.Component:
    """The store of ``cfg``'s board (``cfg.chip_store.kind``)."""
    kind = cfg.chip_store.kind
    if kind == "spram":
        return SpramStore(cfg)
    raise ValueError(f"no hardware for a {kind!r} dataset store")
