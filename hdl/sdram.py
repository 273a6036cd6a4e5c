"""A controller for the ULX3S's SDRAM (``ddfa.config.sdram``) as a dataset store.

:class:`SdramController` takes the store's requests (:func:`hdl.store.StoreSignature` of 24
address bits, so it can stand where :class:`~hdl.store.SpramStore` stands) and drives the
SDRAM's pins through one register each way. Its parts: :class:`SdramInit` (the power-up
sequence), :class:`SdramRefreshTimer` (when an AUTO REFRESH is due), :class:`SdramEngine`
(one command a cycle: rows, columns and refreshes, every datasheet time counted by a
:class:`Countdown`) and :class:`SdramIO` (the pin registers and the read pipeline).

A word address is ``row * 2048 + bank * 512 + column``: a sequential run stays in one row
for 512 words, then goes on in the next bank, so the rows of a long run open in turn
across the four banks. Rows stay open (open-row policy) until another row of their bank is
needed or a refresh is due (every refresh closes all rows).

The SDRAM's clock (the system clock, phase-shifted to centre the pins' timing) is the board
top's: this module drives the pins' levels only.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ddfa.config.sdram import SdramChip

from .store import STORE_WIDTH, StoreSignature, store_request_layout

__all__ = ["CMD_NOP", "CMD_ACTIVE", "CMD_READ", "CMD_WRITE", "CMD_PRECHARGE", "CMD_REFRESH", "CMD_MODE",
           "SdramPinSignature", "sdram_command_layout", "sdram_cell", "mode_register", "Countdown", "SdramInit",
           "SdramRefreshTimer", "SdramEngine", "SdramIO", "SdramController"]

#: Commands as ``{ras_n, cas_n, we_n}`` (``ras_n`` the high bit), with ``cs_n`` low.
CMD_NOP, CMD_ACTIVE, CMD_READ, CMD_WRITE = 0b111, 0b011, 0b101, 0b100
CMD_PRECHARGE, CMD_REFRESH, CMD_MODE = 0b010, 0b001, 0b000
#: The address bit of a PRECHARGE that closes every bank (A10).
ALL_BANKS_BIT = 10


def SdramPinSignature(chip: SdramChip) -> wiring.Signature:
    """The SDRAM's pins seen from the controller, as plain signals: ``dq_o``/``dq_oe``/``dq_i``
    are the data pins' output, output enable and input (the board top makes the tristate
    buffers). At reset: NOP, DQM high, CKE high."""
    return wiring.Signature({
        "clk_en": Out(1, init=1), "cs_n": Out(1), "ras_n": Out(1, init=1), "cas_n": Out(1, init=1),
        "we_n": Out(1, init=1), "ba": Out(chip.bank_bits), "a": Out(chip.row_bits), "dq_o": Out(chip.width),
        "dq_oe": Out(1), "dq_i": In(chip.width), "dqm": Out(chip.width // 8, init=(1 << chip.width // 8) - 1),
    })


def sdram_command_layout(chip: SdramChip) -> data.StructLayout:
    """One cycle's command: ``cmd`` (``CMD_*``), bank, address, write data and its enable, DQM."""
    return data.StructLayout({"cmd": 3, "ba": chip.bank_bits, "a": chip.row_bits, "dq_o": chip.width,
                              "dq_oe": 1, "dqm": chip.width // 8})


def sdram_cell(chip: SdramChip, addr: int) -> tuple[int, int, int]:
    """The bank, row and column of word address ``addr`` (``row * 2048 + bank * 512 + column``
    on the ULX3S's SDRAM)."""
    column = addr & (chip.columns - 1)
    bank = addr >> chip.column_bits & (chip.banks - 1)
    return bank, addr >> (chip.column_bits + chip.bank_bits), column


def mode_register(cl: int) -> int:
    """The mode register: burst length 1, sequential, CAS latency ``cl``, standard operation."""
    return cl << 4


class Countdown(wiring.Component):
    """Cycles left before a command is allowed: ``load`` with ``wait`` in the cycle of a
    command makes ``zero`` rise ``wait`` cycles later at the latest (a pending longer wait
    is kept: the count becomes ``max(count - 1, wait - 1)``).

    Parameters
    ----------
    limit : int
        The longest wait.

    Members
    -------
    load : ``In(1)``
    wait : ``In(range(limit + 1))``
    zero : ``Out(1)``
        Nothing pending (combinational from the count).
    """

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__({"load": In(1), "wait": In(range(limit + 1)), "zero": Out(1)})

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.limit + 1))
        less = Signal.like(count)
        m.d.comb += [self.zero.eq(count == 0), less.eq(Const(0, count.shape()))]
        with m.If(count != 0):
            m.d.comb += less.eq(count - 1)
        m.d.sync += count.eq(less)
        with m.If(self.load & (self.wait != 0) & (self.wait - 1 > less)):
            m.d.sync += count.eq(self.wait - 1)
        return m


class SdramInit(wiring.Component):
    """The power-up sequence: NOPs (DQM high) for ``timing.powerup`` cycles, PRECHARGE all,
    ``chip.init_refreshes`` AUTO REFRESH, LOAD MODE REGISTER (:func:`mode_register`), then
    ``done`` after tMRD. Commands ``timing.rp``, ``timing.rfc`` and ``timing.mrd`` cycles apart.

    Parameters
    ----------
    chip : SdramChip
    timing : SdramTiming
        ``chip``'s figures at the clock.

    Members
    -------
    cmd : ``Out(sdram_command_layout(chip))``
        The command of each cycle until ``done``.
    done : ``Out(1)``
        The SDRAM is ready (stays high).
    """

    def __init__(self, chip: SdramChip, timing):
        self.chip, self.timing = chip, timing
        super().__init__({"cmd": Out(sdram_command_layout(chip)), "done": Out(1)})

    def elaborate(self, platform):
        m = Module()
        t = self.timing
        wait = Signal(range(max(t.powerup, t.rfc, t.rp, t.mrd) + 1), init=t.powerup - 1)
        left = Signal(range(self.chip.init_refreshes + 1))
        m.d.comb += [self.cmd.cmd.eq(CMD_NOP), self.cmd.dqm.eq(~0)]
        with m.If(wait != 0):
            m.d.sync += wait.eq(wait - 1)
        with m.FSM():
            with m.State("POWER_UP"):
                with m.If(wait == 0):
                    m.d.comb += [self.cmd.cmd.eq(CMD_PRECHARGE), self.cmd.a[ALL_BANKS_BIT].eq(1)]
                    m.d.sync += [wait.eq(t.rp - 1), left.eq(self.chip.init_refreshes)]
                    m.next = "REFRESH"
            with m.State("REFRESH"):
                with m.If(wait == 0):
                    m.d.comb += self.cmd.cmd.eq(CMD_REFRESH)
                    m.d.sync += [wait.eq(t.rfc - 1), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "MODE"
            with m.State("MODE"):
                with m.If(wait == 0):
                    m.d.comb += [self.cmd.cmd.eq(CMD_MODE), self.cmd.a.eq(mode_register(t.cl))]
                    m.d.sync += wait.eq(t.mrd - 1)
                    m.next = "SETTLE"
            with m.State("SETTLE"):
                with m.If(wait == 0):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [self.done.eq(1), self.cmd.dqm.eq(0)]
        return m


class SdramRefreshTimer(wiring.Component):
    """When the next AUTO REFRESH is due: ``due`` rises ``period`` cycles after the last
    REFRESH command and stays high until the next.

    Parameters
    ----------
    period : int
        Cycles from a REFRESH to ``due`` (tREFI less the longest the engine takes to close
        the rows and refresh, :meth:`SdramEngine.refresh_delay`).

    Members
    -------
    issued : ``In(1)``
        A REFRESH goes to the pins this cycle.
    due : ``Out(1)``
    """

    def __init__(self, period: int):
        if period < 1:
            raise ValueError(f"a refresh period of {period} cycles leaves no time between refreshes; "
                             "raise the clock or the chip's tREFI")
        self.period = period
        super().__init__({"issued": In(1), "due": Out(1)})

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.period + 1), init=self.period)
        m.d.comb += self.due.eq(count == 0)
        with m.If(self.issued):
            m.d.sync += count.eq(self.period - 1)
        with m.Elif(count != 0):
            m.d.sync += count.eq(count - 1)
        return m


class SdramEngine(wiring.Component):
    """The command engine: one command a cycle for the user's requests and the refreshes.

    A refresh, once due, comes first: no request is taken until every open row is closed
    (one PRECHARGE all, when tRAS and tWR allow) and the REFRESH is out. Otherwise the
    request's bank decides: its row open, a READ or WRITE (the request is taken in that
    cycle: ``req.ready``); another row open, PRECHARGE that bank; no row open, ACTIVE.
    Every command waits for its datasheet times (tRCD, tRAS, tWR, tRP, tRC, tRRD, tRFC) and a
    WRITE for the data pins to be free of a READ's word (``cl + 2`` cycles after the READ).

    Latencies from ``req.valid`` to ``req.ready``: 0 cycles with the row open, ``tRCD`` with the
    bank closed, ``tRP + tRCD`` more with another row open (after tRAS of that row), and the
    refresh when one is due (:meth:`refresh_delay` at most). Sequential requests in an open row
    are taken one a cycle.

    Parameters
    ----------
    chip : SdramChip
    timing : SdramTiming

    Members
    -------
    req : ``In(stream.Signature(store_request_layout(chip.addr_bits)))``
        The user's requests.
    enable : ``In(1)``
        The SDRAM is initialized.
    refresh_due : ``In(1)``
    cmd : ``Out(sdram_command_layout(chip))``
        This cycle's command (combinational).
    read : ``Out(1)``
        ``cmd`` is a READ.
    """

    def __init__(self, chip: SdramChip, timing):
        self.chip, self.timing = chip, timing
        super().__init__({"req": In(stream.Signature(store_request_layout(chip.addr_bits))), "enable": In(1),
                          "refresh_due": In(1), "cmd": Out(sdram_command_layout(chip)), "read": Out(1)})

    @staticmethod
    def refresh_delay(timing) -> int:
        """The most cycles from ``refresh_due`` to the REFRESH: the rows' tRAS or tWR, then tRP,
        or tRC after an ACTIVE (with a cycle's margin each)."""
        return max(timing.ras, timing.wr) + timing.rp + timing.rc + 3

    def elaborate(self, platform):
        m = Module()
        chip, t = self.chip, self.timing
        req, cmd = self.req, self.cmd
        col = req.payload.addr[:chip.column_bits]
        bank = req.payload.addr[chip.column_bits:chip.column_bits + chip.bank_bits]
        row = req.payload.addr[chip.column_bits + chip.bank_bits:]
        write = req.payload.write
        opened = Signal(chip.banks)
        rows = [Signal(chip.row_bits, name=f"row{b}") for b in range(chip.banks)]
        limit = max(t.rc, t.rp, t.rcd, t.ras, t.wr, t.rfc, t.rrd, t.cl + 2)
        ctr = {}
        for name in ("act", "rw", "pre"):                          # per bank: ACTIVE, READ/WRITE, PRECHARGE allowed
            ctr[name] = [Countdown(limit) for _ in range(chip.banks)]
            for b, c in enumerate(ctr[name]):
                m.submodules[f"{name}{b}"] = c
        m.submodules.any_act = any_act = Countdown(limit)          # tRRD, tRFC: an ACTIVE or REFRESH allowed
        m.submodules.write_ok = write_ok = Countdown(limit)        # the data pins free of a READ's word
        m.d.comb += cmd.cmd.eq(CMD_NOP)

        def load(c, wait):
            return [c.load.eq(1), c.wait.eq(wait)]

        closable = Cat(ctr["pre"][b].zero | ~opened[b] for b in range(chip.banks)).all()
        with m.If(~self.enable):
            pass
        with m.Elif(self.refresh_due):
            with m.If(opened.any()):
                with m.If(closable):
                    m.d.comb += [cmd.cmd.eq(CMD_PRECHARGE), cmd.a[ALL_BANKS_BIT].eq(1)]
                    m.d.comb += [s for c in ctr["act"] for s in load(c, t.rp)]
                    m.d.sync += opened.eq(0)
            with m.Elif(Cat(c.zero for c in ctr["act"]).all() & any_act.zero):
                m.d.comb += [cmd.cmd.eq(CMD_REFRESH), *load(any_act, t.rfc)]
        with m.Elif(req.valid):
            m.d.comb += [cmd.ba.eq(bank), cmd.dq_o.eq(req.payload.data)]
            with m.Switch(bank):
                for b in range(chip.banks):
                    with m.Case(b):
                        self._bank(m, b, opened, rows[b], row, col, write, ctr, any_act, write_ok, load)
        return m

    def _bank(self, m, b, opened, open_row, row, col, write, ctr, any_act, write_ok, load):
        t, cmd = self.timing, self.cmd
        act, rw, pre = ctr["act"][b], ctr["rw"][b], ctr["pre"][b]
        with m.If(opened[b] & (open_row == row)):
            with m.If(rw.zero & (~write | write_ok.zero)):
                m.d.comb += [self.req.ready.eq(1), cmd.a.eq(col)]
                with m.If(write):
                    m.d.comb += [cmd.cmd.eq(CMD_WRITE), cmd.dq_oe.eq(1), *load(pre, t.wr)]
                with m.Else():
                    m.d.comb += [cmd.cmd.eq(CMD_READ), self.read.eq(1), *load(write_ok, t.cl + 2)]
        with m.Elif(opened[b]):
            with m.If(pre.zero):
                m.d.comb += [cmd.cmd.eq(CMD_PRECHARGE), *load(act, t.rp)]
                m.d.sync += opened[b].eq(0)
        with m.Elif(act.zero & any_act.zero):
            m.d.comb += [cmd.cmd.eq(CMD_ACTIVE), cmd.a.eq(row), *load(rw, t.rcd), *load(pre, t.ras),
                         *load(act, t.rc), *load(any_act, t.rrd)]
            m.d.sync += [opened[b].eq(1), open_row.eq(row)]


class SdramIO(wiring.Component):
    """The pin registers: each command reaches the pins one cycle after the engine's cycle,
    and ``dq_i`` is registered once. A READ's word is on ``resp`` ``cl + 2`` cycles after the
    engine's READ (1 to the pins, ``cl`` in the SDRAM, 1 in the input register).

    Parameters
    ----------
    chip : SdramChip
    cl : int
        The CAS latency.

    Members
    -------
    cmd : ``In(sdram_command_layout(chip))``
    read : ``In(1)``
        ``cmd`` is a READ.
    pins : ``Out(SdramPinSignature(chip))``
    resp : ``Out(stream.Signature(chip.width, always_ready=True))``
        The words read, in order.
    """

    def __init__(self, chip: SdramChip, cl: int):
        self.cl = cl
        super().__init__({"cmd": In(sdram_command_layout(chip)), "read": In(1), "pins": Out(SdramPinSignature(chip)),
                          "resp": Out(stream.Signature(chip.width, always_ready=True))})

    def elaborate(self, platform):
        m = Module()
        pins, cmd = self.pins, self.cmd
        dq = Signal.like(pins.dq_i)
        reads = Signal(self.cl + 2)                 # reads[k]: a READ reached the pins k cycles ago
        m.d.sync += [pins.clk_en.eq(1), pins.cs_n.eq(0), Cat(pins.we_n, pins.cas_n, pins.ras_n).eq(cmd.cmd),
                     pins.ba.eq(cmd.ba), pins.a.eq(cmd.a), pins.dq_o.eq(cmd.dq_o), pins.dq_oe.eq(cmd.dq_oe),
                     pins.dqm.eq(cmd.dqm), dq.eq(pins.dq_i), reads.eq(Cat(self.read, reads[:-1]))]
        m.d.comb += [self.resp.valid.eq(reads[-1]), self.resp.payload.eq(dq)]
        return m


class SdramController(wiring.Component):
    """The ULX3S's SDRAM as a dataset store (16,777,216 words of 16 bits).

    A request is taken (``bus.req.ready``) when its READ or WRITE goes out: in the cycle it
    is valid when its row is open and no refresh is due (sequential words of a row, one a
    cycle), later when a row must be opened (tRCD, 2 cycles at 100 MHz), another closed first
    (tRP more, after tRAS) or a refresh is due (tREFI apart; the rows are closed and refreshed
    in at most :meth:`SdramEngine.refresh_delay` cycles). A read's word is on ``bus.resp``
    ``cl + 2`` cycles after its request is taken (4 at 100 MHz, CAS latency 2). No request is
    taken during the power-up sequence (``timing.powerup`` cycles, 200 us, and the
    initialization commands).

    Parameters
    ----------
    chip : SdramChip
        The SDRAM (``ddfa.config.sdram.ULX3S_SDRAM``).
    clk_hz : float
        The clock (the controller's and the SDRAM's).

    Members
    -------
    bus : ``In(StoreSignature(chip.addr_bits))``
        The store's port.
    pins : ``Out(SdramPinSignature(chip))``
        The SDRAM.
    """

    def __init__(self, chip: SdramChip, clk_hz: float):
        if chip.width != STORE_WIDTH:
            raise ValueError(f"{chip.name} has {chip.width}-bit words; the store needs a {STORE_WIDTH}-bit SDRAM")
        self.chip, self.clk_hz = chip, clk_hz
        self.timing = chip.timing(clk_hz)
        super().__init__({"bus": In(StoreSignature(chip.addr_bits)), "pins": Out(SdramPinSignature(chip))})

    @property
    def read_latency(self) -> int:
        """Cycles from a read request's acceptance to its word on ``bus.resp``."""
        return self.timing.cl + 2

    def elaborate(self, platform):
        m = Module()
        t = self.timing
        m.submodules.init = init = SdramInit(self.chip, t)
        m.submodules.refresh = refresh = SdramRefreshTimer(t.refi - SdramEngine.refresh_delay(t))
        m.submodules.engine = engine = SdramEngine(self.chip, t)
        m.submodules.io = io = SdramIO(self.chip, t.cl)
        wiring.connect(m, wiring.flipped(self.pins), io.pins)
        req = self.bus.req
        m.d.comb += [engine.req.valid.eq(req.valid), engine.req.payload.eq(req.payload), req.ready.eq(engine.req.ready),
                     self.bus.resp.valid.eq(io.resp.valid), self.bus.resp.payload.eq(io.resp.payload),
                     engine.enable.eq(init.done), engine.refresh_due.eq(refresh.due), io.read.eq(engine.read),
                     refresh.issued.eq(io.cmd.cmd == CMD_REFRESH)]
        with m.If(init.done):
            m.d.comb += io.cmd.eq(engine.cmd)
        with m.Else():
            m.d.comb += io.cmd.eq(init.cmd)
        return m
