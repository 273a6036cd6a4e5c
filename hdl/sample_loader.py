"""The sample loader: one record of the dataset store into the sample buffer ``x``.

A record (``ddfa.config.StoreLayout``) is ``n_0`` pixel codes and a label, a byte each,
two to a store word. Each code is looked up in the store's input table (row ``j`` when
the table has a row per input, else row 0), and the table's word, the act-format input
``x_j`` the golden model's ``quantize_input`` gives, is written to the sample buffer.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ddfa.config import Config

from .store import StoreSignature

__all__ = ["SampleLoader"]


class SampleLoader(wiring.Component):
    """Reads a record and writes its inputs, through the table, to the sample buffer.

    One store request at a time: the record's word, then the table word of each of its
    two bytes. With :class:`~hdl.store.SpramStore` (latency 1) a record of ``R`` words
    takes about ``6 R`` cycles (``hdl.cycles.load_cycles``).

    Parameters
    ----------
    cfg : Config
        The configuration (``n_0``, ``act.width``, ``cfg.chip_store``'s layout).

    Members
    -------
    start : ``In(1)``
        Strobe: load the record at ``record``.
    record : ``In(addr_bits)``
        Store address of the record's first word.
    busy : ``Out(1)``
        Loading (from the cycle after ``start``).
    label : ``Out(range(n_L))``
        The last record's label (valid once ``busy`` has fallen).
    x_addr : ``Out(range(n_0))``, x_data : ``Out(act.width)``, x_we : ``Out(1)``
        The sample buffer's write port.
    store : ``Out(StoreSignature(addr_bits))``
        The store.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.layout = st = cfg.chip_store
        n0 = cfg.model.layers[0]
        super().__init__({
            "start": In(1), "record": In(st.addr_bits), "busy": Out(1),
            "label": Out(range(cfg.model.n_outputs)),
            "x_addr": Out(range(max(n0, 2))), "x_data": Out(cfg.arith.act.width), "x_we": Out(1),
            "store": Out(StoreSignature(st.addr_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        st, n0 = self.layout, self.cfg.model.layers[0]
        req, resp = self.store.req, self.store.resp
        addr = Signal(st.addr_bits)          # the record's next word
        word = Signal(16)
        k = Signal(range(n0 + 1))            # the byte: input k, or the label when k = n0
        code = Signal(8)
        req_addr = Signal(st.addr_bits)      # the request's address (the request reads)
        m.d.comb += [code.eq(word.word_select(k[0], 8)), self.x_addr.eq(k),
                     self.x_data.eq(resp.payload[:self.cfg.arith.act.width]),
                     req.payload.addr.eq(req_addr), req.payload.write.eq(0), req.payload.data.eq(0)]
        row = Cat(code[:st.code_bits], k) if st.table_rows > 1 else code[:st.code_bits]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [addr.eq(self.record), k.eq(0)]
                    m.next = "WORD"
            with m.State("WORD"):
                m.d.comb += [self.busy.eq(1), req.valid.eq(1), req_addr.eq(addr)]
                with m.If(req.ready):
                    m.d.sync += addr.eq(addr + 1)
                    m.next = "WORD_WAIT"
            with m.State("WORD_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(resp.valid):
                    m.d.sync += word.eq(resp.payload)
                    m.next = "BYTE"
            with m.State("BYTE"):
                m.d.comb += self.busy.eq(1)
                with m.If(k == n0):
                    m.d.sync += self.label.eq(code)
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += [req.valid.eq(1), req_addr.eq(row)]
                    with m.If(req.ready):
                        m.next = "TABLE_WAIT"
            with m.State("TABLE_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(resp.valid):
                    m.d.comb += self.x_we.eq(1)
                    m.d.sync += k.eq(k + 1)
                    with m.If(k[0]):
                        m.next = "WORD"
                    with m.Else():
                        m.next = "BYTE"
        return m
