"""The host's side of the dataset store: UPLOAD_BLOCK's words into the store and
UPLOAD_END's check of what the store holds (``docs/HOST-PROTOCOL.md``, "The dataset
store")."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config
from ddfa.protocol import CRC_ALGORITHM, UPLOAD_WORDS, HostParams

from .epoch_runner import const_mul
from .store import StoreArbiter, StoreSignature

__all__ = ["BlockWriter", "StoreChecker", "StoreCommands"]


class BlockWriter(wiring.Component):
    """UPLOAD_BLOCK's data: :data:`~ddfa.protocol.UPLOAD_WORDS` words of two bytes each
    (low byte first) written to the store from address ``first`` on, each as its second
    byte arrives. Bytes are not taken while a word waits for the store.

    Parameters
    ----------
    addr_bits : int
        Address bits of the store.

    Members
    -------
    start : ``In(1)``
        Strobe: the next byte is the block's first (``first`` and ``write`` are taken).
    first : ``In(addr_bits)``
        Address of the block's first word.
    write : ``In(1)``
        Write the words (else take the bytes and drop them: a refused block).
    i : ``In(stream.Signature(8))``
        The bytes.
    busy : ``Out(1)``
        The block's bytes are not all taken and written yet.
    store : ``Out(StoreSignature(addr_bits))``
        The store (writes only).
    """

    def __init__(self, addr_bits: int):
        super().__init__({
            "start": In(1), "first": In(addr_bits), "write": In(1), "i": In(stream.Signature(8)),
            "busy": Out(1), "store": Out(StoreSignature(addr_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        req = self.store.req
        addr = Signal.like(self.first)
        low = Signal(8)
        data = Signal(16)
        high_next = Signal()                 # the next byte is a word's high byte
        pending = Signal()                   # a whole word waits for the store
        write = Signal()
        left = Signal(range(UPLOAD_WORDS + 1))
        m.d.comb += [self.busy.eq((left != 0) | pending), self.i.ready.eq((left != 0) & ~pending),
                     req.valid.eq(pending & write), req.payload.addr.eq(addr), req.payload.write.eq(1),
                     req.payload.data.eq(data)]
        with m.If(self.start):
            m.d.sync += [addr.eq(self.first), write.eq(self.write), left.eq(UPLOAD_WORDS), high_next.eq(0)]
        with m.Elif(self.i.valid & self.i.ready):
            with m.If(high_next):
                m.d.sync += [data.eq(Cat(low, self.i.payload)), pending.eq(1), left.eq(left - 1)]
            with m.Else():
                m.d.sync += low.eq(self.i.payload)
            m.d.sync += high_next.eq(~high_next)
        with m.If(pending & (req.ready | ~write)):
            m.d.sync += [pending.eq(0), addr.eq(addr + 1)]
        return m


class StoreChecker(wiring.Component):
    """UPLOAD_END's check: CRC-16/CCITT-FALSE (``ddfa.protocol.CRC_ALGORITHM``, the
    software's :func:`ddfa.protocol.store_crc`) over the bytes of store words
    ``0 .. words - 1``, low byte first, compared with ``expected``. One word every
    ``2 + `` the store's read latency cycles.

    Parameters
    ----------
    addr_bits : int
        Address bits of the store.

    Members
    -------
    start : ``In(1)``
        Strobe: check (``words`` and ``expected`` are held until ``busy`` falls).
    words : ``In(addr_bits + 1)``
        Words to check (at least 1).
    expected : ``In(16)``
        The CRC they must have.
    busy : ``Out(1)``
        Checking (from the cycle after ``start``).
    match : ``Out(1)``
        The last check passed (valid once ``busy`` has fallen).
    store : ``Out(StoreSignature(addr_bits))``
        The store (reads only).
    """

    def __init__(self, addr_bits: int):
        super().__init__({
            "start": In(1), "words": In(addr_bits + 1), "expected": In(16), "busy": Out(1), "match": Out(1),
            "store": Out(StoreSignature(addr_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = crc = CRC_ALGORITHM(data_width=8).create()
        req, resp = self.store.req, self.store.resp
        addr = Signal.like(self.words)
        word = Signal(16)
        m.d.comb += [req.payload.addr.eq(addr), req.payload.write.eq(0), req.payload.data.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += addr.eq(0)
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [self.busy.eq(1), req.valid.eq(1)]
                with m.If(req.ready):
                    m.d.sync += addr.eq(addr + 1)
                    m.next = "WAIT"
            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(resp.valid):
                    m.d.comb += [crc.valid.eq(1), crc.data.eq(resp.payload[:8])]
                    m.d.sync += word.eq(resp.payload)
                    m.next = "HIGH"
            with m.State("HIGH"):
                m.d.comb += [self.busy.eq(1), crc.valid.eq(1), crc.data.eq(word[8:])]
                with m.If(addr == self.words):
                    m.next = "COMPARE"
                with m.Else():
                    m.next = "READ"
            with m.State("COMPARE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += self.match.eq(crc.crc == self.expected)
                m.next = "IDLE"
        return m


class StoreCommands(wiring.Component):
    """The data set the store holds, and the upload commands' actions on it.

    Holds the sizes UPLOAD_BEGIN announced, whether the store's contents passed
    UPLOAD_END's check (``valid``; UPLOAD_BEGIN and every written block clear it) and the
    data set's id. Its :class:`BlockWriter` and :class:`StoreChecker` share its store port.

    Parameters
    ----------
    cfg : Config
        The configuration (``cfg.chip_store``'s layout, the protocol's block index bytes).

    Members
    -------
    n_train_arg, n_test_arg : ``In(16)``
        UPLOAD_BEGIN's sizes.
    fits : ``Out(1)``
        They fit the store (at least one training record). Combinational.
    begin : ``In(1)``
        Strobe: take the sizes (when they fit); the data set becomes invalid.
    block_arg : ``In(8 * block_bytes)``
        UPLOAD_BLOCK's block index.
    block_fits : ``Out(1)``
        The block starts inside the announced data set. Combinational.
    block : ``In(1)``
        Strobe: take a block's data bytes from ``i`` (written when it fits, else dropped).
    drop : ``In(1)``
        With ``block``: drop the bytes whatever the index (a refused command).
    i : ``In(stream.Signature(8))``
        The data bytes.
    crc_arg : ``In(16)``, id_arg : ``In(32)``
        UPLOAD_END's CRC and data set id.
    end : ``In(1)``
        Strobe: check the store's contents.
    busy : ``Out(1)``
        Taking a block or checking (from the cycle after the strobe).
    match : ``Out(1)``
        The last check passed.
    valid : ``Out(1)``, dataset_id : ``Out(32)``, n_train, n_test : ``Out(index_bits)``
        The data set.
    store : ``Out(StoreSignature(addr_bits))``
        The store.
    """

    def __init__(self, cfg: Config):
        self.layout = st = cfg.chip_store
        self.block_bytes = HostParams.of(cfg).block_bytes
        super().__init__({
            "n_train_arg": In(16), "n_test_arg": In(16), "fits": Out(1), "begin": In(1),
            "block_arg": In(8 * self.block_bytes), "block_fits": Out(1), "block": In(1), "drop": In(1),
            "i": In(stream.Signature(8)),
            "crc_arg": In(16), "id_arg": In(32), "end": In(1),
            "busy": Out(1), "match": Out(1), "valid": Out(1), "dataset_id": Out(32),
            "n_train": Out(st.index_bits), "n_test": Out(st.index_bits),
            "store": Out(StoreSignature(st.addr_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        st = self.layout
        m.submodules.writer = writer = BlockWriter(st.addr_bits)
        m.submodules.checker = checker = StoreChecker(st.addr_bits)
        m.submodules.arbiter = arbiter = StoreArbiter(st.addr_bits, 2)
        wiring.connect(m, writer.store, arbiter.port0)
        wiring.connect(m, checker.store, arbiter.port1)
        wiring.connect(m, arbiter.store, wiring.flipped(self.store))
        wiring.connect(m, wiring.flipped(self.i), writer.i)

        words = Signal(st.addr_bits + 1)        # the announced data set's words
        need = Signal(max(st.addr_bits, 17 + st.record_words.bit_length()) + 2)
        m.d.comb += [
            need.eq(st.train_base + const_mul(self.n_train_arg + self.n_test_arg, st.record_words)),
            self.fits.eq((self.n_train_arg != 0) & (need <= st.capacity_words)),
            self.block_fits.eq(self.block_arg * UPLOAD_WORDS < words),
            writer.first.eq(self.block_arg * UPLOAD_WORDS), writer.write.eq(self.block_fits & ~self.drop),
            writer.start.eq(self.block),
            checker.words.eq(words), checker.expected.eq(self.crc_arg), checker.start.eq(self.end),
            self.match.eq(checker.match), self.busy.eq(writer.busy | checker.busy),
        ]
        with m.If(self.begin & self.fits):
            m.d.sync += [words.eq(need), self.n_train.eq(self.n_train_arg), self.n_test.eq(self.n_test_arg),
                         self.valid.eq(0)]
        with m.If(self.block & self.block_fits & ~self.drop):
            m.d.sync += self.valid.eq(0)
        ending = Signal()                       # UPLOAD_END's check is running
        with m.If(self.end):
            m.d.sync += ending.eq(1)
        with m.Elif(ending & ~checker.busy):
            m.d.sync += ending.eq(0)
            with m.If(checker.match):
                m.d.sync += [self.valid.eq(1), self.dataset_id.eq(self.id_arg)]
        return m
