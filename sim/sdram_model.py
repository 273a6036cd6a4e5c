"""A behavioural model of the ULX3S's SDRAM (``ddfa.config.sdram``) for Amaranth simulations.

:class:`SdramModel` samples the controller's pins (``hdl.sdram.SdramPinSignature``) at every
clock edge, as the SDRAM does, keeps the banks' states and the memory, drives ``dq_i`` with
each READ's word ``CL`` edges after the READ, and records every breach of the datasheet:

* tRCD, tRAS (and its maximum), tRP, tRC, tRRD, tWR, tRFC, tMRD between commands;
* a command in the wrong state: ACTIVE to an open bank, READ or WRITE to a closed one,
  REFRESH or LOAD MODE REGISTER with a bank open;
* any command but NOP during the power-up wait; an access before the initialization
  (PRECHARGE all, ``chip.init_refreshes`` AUTO REFRESH, LOAD MODE REGISTER) is complete;
* the refresh interval: any gap between two AUTO REFRESH commands longer than tREFI
  (64 ms / 8192; the stricter of the datasheet's two readings), and from the last one to
  :meth:`SdramModel.finish`;
* a READ of a word never written, data pins driven by both sides (a WRITE within
  ``CL`` to ``CL + 1`` edges of a READ), a masked word, and a CAS latency too short for the
  clock.

Times are counted in clock edges: a command is the pins' levels at an edge (the model reads
them with ``ctx.tick().sample``), and a command ``t`` cycles after another comes ``t`` edges
later. The model keeps burst length 1 (the controller's); other modes are recorded as
violations, as are CKE low, BURST TERMINATE and auto precharge, which it does not model.

:func:`run_store` is a store user on a controller and the model: a list of
:class:`Request` presented in order, every read's word checked against the last word
written to its address.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from amaranth.sim import Simulator

from ddfa.config.sdram import SdramChip
from hdl.sdram import (ALL_BANKS_BIT, CMD_ACTIVE, CMD_MODE, CMD_NOP, CMD_PRECHARGE, CMD_READ, CMD_REFRESH,
                       CMD_WRITE, SdramController, sdram_cell)

__all__ = ["SdramModel", "COMMAND_NAMES", "Request", "StoreRun", "run_store"]

#: ``{ras_n, cas_n, we_n}`` -> command name.
COMMAND_NAMES = {CMD_NOP: "NOP", CMD_ACTIVE: "ACTIVE", CMD_READ: "READ", CMD_WRITE: "WRITE",
                 CMD_PRECHARGE: "PRECHARGE", CMD_REFRESH: "REFRESH", CMD_MODE: "LOAD MODE", 0b110: "BURST TERMINATE"}
_NEVER = -10**12


class SdramModel:
    """The SDRAM behind a controller's pins.

    Parameters
    ----------
    chip : SdramChip
        The part (its timings are checked at ``clk_hz``).
    clk_hz : float
        The clock.
    pins : object, optional
        The controller's pins (``SdramController.pins``) for :meth:`process`.

    Members
    -------
    violations : list of str
        Every breach found, ``"edge N: what"``.
    memory : dict
        ``(bank, row, column) -> word``: the words written.
    refreshes : int
        AUTO REFRESH commands seen.
    initialized : bool
        The initialization is complete.
    """

    def __init__(self, chip: SdramChip, clk_hz: float, pins=None):
        self.chip, self.pins = chip, pins
        self.t = chip.timing(clk_hz)
        self.violations: list[str] = []
        self.memory: dict[tuple[int, int, int], int] = {}
        self.refreshes = 0
        self.initialized = False
        self.edge = -1
        self._open: list[int | None] = [None] * chip.banks     # the open row of each bank
        self._act_at = [_NEVER] * chip.banks                     # edge of each bank's last ACTIVE
        self._pre_at = [_NEVER] * chip.banks                     # ... PRECHARGE
        self._write_at = [_NEVER] * chip.banks                   # ... WRITE
        self._any_act = self._ref = self._mode_edge = _NEVER
        self._reads: dict[int, int | None] = {}                  # edge a word is sampled -> the word
        self._driven: set[int] = set()                           # edges at which the SDRAM drives the data pins
        self._dqm: dict[int, int] = {}
        self._init = "power-up"                                  # power-up, precharged, done
        self._init_refreshes = 0
        self._mode_set = False
        self.cl = self.t.cl

    # -- the simulator's side ------------------------------------------------------------------------

    async def process(self, ctx) -> None:
        """A background testbench: the SDRAM at every edge (``sim.add_testbench(model.process,
        background=True)``)."""
        p = self.pins
        ctx.set(p.dq_i, self._idle_word(0))
        async for _, _, *v in ctx.tick().sample(p.cs_n, p.ras_n, p.cas_n, p.we_n, p.ba, p.a, p.dq_o, p.dq_oe,
                                                 p.dqm, p.clk_en):
            cs_n, ras_n, cas_n, we_n, ba, a, dq_o, dq_oe, dqm, clk_en = v
            self.step(cmd=(ras_n << 2) | (cas_n << 1) | we_n, ba=ba, a=a, dq_o=dq_o, dq_oe=dq_oe, dqm=dqm,
                      clk_en=clk_en, cs_n=cs_n)
            ctx.set(p.dq_i, self.dq_at(self.edge + 1))

    def dq_at(self, edge: int) -> int:
        """The data pins' level at ``edge`` (at most one edge ahead): a READ's word, or a
        changing pattern when none is due or DQM masked it (two edges earlier)."""
        if edge not in self._reads:
            return self._idle_word(edge)
        word = self._reads.pop(edge)
        if self._dqm.get(edge - 2, 0):
            self._flag(f"the READ's word at edge {edge} is masked by DQM")
            return self._idle_word(edge)
        return self._idle_word(edge) if word is None else word

    @staticmethod
    def _idle_word(edge: int) -> int:
        return (0xA5C3 ^ (edge * 0x9E37)) & 0xFFFF

    # -- one edge ----------------------------------------------------------------------------------------

    def step(self, cmd: int, ba: int = 0, a: int = 0, dq_o: int = 0, dq_oe: int = 0, dqm: int = 0,
             clk_en: int = 1, cs_n: int = 0) -> None:
        """The command at the next edge (``cmd``: ``{ras_n, cas_n, we_n}``)."""
        self.edge += 1
        e = self.edge
        self._dqm[e] = dqm
        self._dqm.pop(e - 3, None)
        if not clk_en:
            self._flag("CKE low (power-down and self refresh are not modelled)")
        if dq_oe and e in self._driven:
            self._flag("the data pins are driven by the controller while the SDRAM drives a READ's word")
        self._driven.discard(e - 1)
        name = "NOP" if cs_n else COMMAND_NAMES[cmd]
        if name == "NOP":
            return
        if e < self.t.powerup:
            self._flag(f"{name} during the power-up wait ({e} of {self.t.powerup} cycles)")
        if e - self._mode_edge < self.t.mrd:
            self._flag(f"tMRD: {name} {e - self._mode_edge} cycles after LOAD MODE, needs {self.t.mrd}")
        getattr(self, "_" + name.lower().replace(" ", "_"))(e, ba, a, dq_o, dq_oe, dqm)

    def finish(self) -> list[str]:
        """The checks at the end of a run (the refresh interval and the rows' tRAS maximum up to
        the last edge); returns :attr:`violations`."""
        e = self.edge
        if self._ref != _NEVER and e - self._ref > self.t.refi:
            self._flag(f"refresh late: no REFRESH for {e - self._ref} cycles at the end, tREFI is {self.t.refi}")
        for b, row in enumerate(self._open):
            if row is not None and e - self._act_at[b] > self.t.ras_max:
                self._flag(f"tRAS maximum: bank {b} open {e - self._act_at[b]} cycles, at most {self.t.ras_max}")
        return self.violations

    # -- the commands ----------------------------------------------------------------------------------

    def _active(self, e, ba, a, *_):
        t = self.t
        self._require_init("ACTIVE")
        if self._open[ba] is not None:
            self._flag(f"ACTIVE to bank {ba}, whose row {self._open[ba]} is open")
        self._since(e, self._pre_at[ba], t.rp, f"tRP: ACTIVE to bank {ba}", "PRECHARGE")
        self._since(e, self._act_at[ba], t.rc, f"tRC: ACTIVE to bank {ba}", "its last ACTIVE")
        self._since(e, self._any_act, t.rrd, "tRRD: ACTIVE", "an ACTIVE to another bank")
        self._since(e, self._ref, t.rfc, "tRFC: ACTIVE", "REFRESH")
        self._open[ba], self._act_at[ba], self._any_act = a, e, e

    def _column(self, e, ba, a, what):
        self._require_init(what)
        if self._open[ba] is None:
            self._flag(f"{what} to bank {ba}, which has no open row")
            return None
        if a >> ALL_BANKS_BIT & 1:
            self._flag(f"{what} with auto precharge (not modelled)")
        self._since(e, self._act_at[ba], self.t.rcd, f"tRCD: {what} to bank {ba}", "ACTIVE")
        return ba, self._open[ba], a & (self.chip.columns - 1)

    def _read(self, e, ba, a, *_):
        cell = self._column(e, ba, a, "READ")
        out = e + self.cl
        self._driven.update((out, out + 1))
        if cell is None:
            return
        word = self.memory.get(cell)
        if word is None:
            self._flag(f"READ of bank {cell[0]} row {cell[1]} column {cell[2]}, never written")
        self._reads[out] = word

    def _write(self, e, ba, a, dq_o, dq_oe, dqm):
        cell = self._column(e, ba, a, "WRITE")
        if cell is None:
            return
        if not dq_oe:
            self._flag(f"WRITE to bank {ba} with the data pins not driven")
        if dqm:
            self._flag(f"WRITE to bank {ba} with DQM {dqm:#x}: bytes not written")
        self.memory[cell] = dq_o
        self._write_at[ba] = e

    def _precharge(self, e, ba, a, *_):
        banks = range(self.chip.banks) if a >> ALL_BANKS_BIT & 1 else [ba]
        for b in banks:
            if self._open[b] is None:
                continue
            t = self.t
            self._since(e, self._act_at[b], t.ras, f"tRAS: PRECHARGE of bank {b}", "ACTIVE")
            self._since(e, self._write_at[b], t.wr, f"tWR: PRECHARGE of bank {b}", "WRITE")
            if e - self._act_at[b] > t.ras_max:
                self._flag(f"tRAS maximum: bank {b} open {e - self._act_at[b]} cycles, at most {t.ras_max}")
            self._open[b], self._pre_at[b] = None, e
        if self._init == "power-up" and len(banks) == self.chip.banks:
            self._init = "precharged"

    def _refresh(self, e, *_):
        t = self.t
        for b, row in enumerate(self._open):
            if row is not None:
                self._flag(f"REFRESH with bank {b} open (row {row})")
            self._since(e, self._pre_at[b], t.rp, f"tRP: REFRESH after bank {b}'s", "PRECHARGE")
            self._since(e, self._act_at[b], t.rc, f"tRC: REFRESH after bank {b}'s", "ACTIVE")
        self._since(e, self._ref, t.rfc, "tRFC: REFRESH", "the last REFRESH")
        if self._ref != _NEVER and e - self._ref > t.refi:
            self._flag(f"refresh late: {e - self._ref} cycles since the last REFRESH, tREFI is {t.refi}")
        if self._init == "power-up":
            self._flag("REFRESH before the initial PRECHARGE all")
        self._ref = e
        self.refreshes += 1
        self._init_refreshes += 1
        self._check_init()

    def _load_mode(self, e, ba, a, *_):
        t = self.t
        if any(row is not None for row in self._open):
            self._flag("LOAD MODE with a bank open")
        for b in range(self.chip.banks):
            self._since(e, self._pre_at[b], t.rp, f"tRP: LOAD MODE after bank {b}'s", "PRECHARGE")
        self._since(e, self._ref, t.rfc, "tRFC: LOAD MODE", "REFRESH")
        if self._init == "power-up":
            self._flag("LOAD MODE before the initial PRECHARGE all")
        burst, cl, rest = a & 0b1111, a >> 4 & 0b111, a >> 7
        if burst != 0:
            self._flag(f"mode register {a:#x}: burst length code {a & 7}, type {a >> 3 & 1}; the model keeps "
                       "burst length 1, sequential")
        if rest != 0:
            self._flag(f"mode register {a:#x}: bits 7-12 must be 0 (standard operation)")
        if cl not in (2, 3) or cl < self.t.cl:
            self._flag(f"mode register {a:#x}: CAS latency {cl}; the clock needs {self.t.cl} or 3")
        self.cl = cl
        self._mode_edge = e
        self._mode_set = True
        self._check_init()

    def _burst_terminate(self, e, *_):
        self._flag("BURST TERMINATE (not modelled: burst length 1)")

    # -- helpers ---------------------------------------------------------------------------------------------

    def _check_init(self):
        if self._init == "precharged" and self._mode_set and self._init_refreshes >= self.chip.init_refreshes:
            self._init = "done"
            self.initialized = True

    def _require_init(self, what):
        if self._init != "done":
            self._flag(f"{what} before the initialization is complete "
                       f"({self._init_refreshes} of {self.chip.init_refreshes} refreshes, "
                       f"mode {'set' if self._mode_set else 'not set'}, {self._init})")

    def _since(self, e, then, need, what, after):
        if e - then < need:
            self._flag(f"{what} {e - then} cycles after {after}, needs {need}")

    def _flag(self, what):
        self.violations.append(f"edge {self.edge}: {what}")


# -- a store user on a controller and the model ------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """A store request: write ``data`` at ``addr`` (``write``) or read it, presented ``gap``
    cycles after the previous request was taken (and, with ``wait``, once every earlier
    read's word has come)."""

    addr: int
    write: bool = False
    data: int = 0
    gap: int = 0
    wait: bool = False


@dataclass
class StoreRun:
    """What a run saw.

    Members
    -------
    mismatches : list of str
        Reads whose word was not the last written (or that never came).
    violations : list of str
        The model's (:attr:`SdramModel.violations`, after :meth:`SdramModel.finish`).
    cycles : int
        Cycles from the first request presented to the last word read (or request taken).
    first_taken : int
        The cycle the first request was taken (after the power-up sequence).
    words : int
        Reads checked.
    refreshes : int
        AUTO REFRESH commands the model saw.
    taken : list of int
        The cycle each request was taken.
    arrived : list of int
        The cycle each read's word came.
    memory : dict
        The model's words at the end (:attr:`SdramModel.memory`).
    """

    mismatches: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    cycles: int = 0
    first_taken: int = -1
    words: int = 0
    refreshes: int = 0
    taken: list[int] = field(default_factory=list, repr=False)
    arrived: list[int] = field(default_factory=list, repr=False)
    memory: dict = field(default_factory=dict, repr=False)


def run_store(requests: list[Request], chip: SdramChip, clk_hz: float, *, model_chip: SdramChip | None = None,
              tail: int = 0, limit: int = 2_000_000, preset: dict[int, int] | None = None,
              controller: SdramController | None = None, model_class: type | None = None) -> StoreRun:
    """Simulate ``requests`` through a controller built for ``chip`` into a model of
    ``model_chip`` (``chip`` by default): a controller timed for another chip is one the model
    should catch. ``tail`` idle cycles follow the last word (refreshes go on); ``preset``
    (address -> word) is in the SDRAM from the start (as if written); ``model_class`` replaces
    :class:`SdramModel` (a faulty SDRAM)."""
    dut = controller or SdramController(chip, clk_hz)
    model_class = model_class or SdramModel
    model = model_class(model_chip or chip, clk_hz, dut.pins)
    preset = preset or {}
    model.memory.update({sdram_cell(model.chip, a): w for a, w in preset.items()})
    run = StoreRun()
    req, resp = dut.bus.req, dut.bus.resp

    async def user(ctx):
        shadow = dict(preset)
        pending: deque[tuple[int, int | None]] = deque()
        i, idle, cycle, after = 0, 0, 0, 0
        while i < len(requests) or pending or after < tail:
            present = i < len(requests) and idle >= requests[i].gap and not (requests[i].wait and pending)
            if present:
                r = requests[i]
                ctx.set(req.payload, {"addr": r.addr, "write": int(r.write), "data": r.data})
            ctx.set(req.valid, int(present))
            _, _, ready, valid, word = await ctx.tick().sample(req.ready, resp.valid, resp.payload)
            cycle += 1
            if valid:
                if not pending:
                    run.mismatches.append(f"cycle {cycle}: a word ({word:#06x}) with no read outstanding")
                else:
                    addr, want = pending.popleft()
                    run.words += 1
                    run.arrived.append(cycle)
                    if word != want:
                        run.mismatches.append(f"cycle {cycle}: read of {addr:#08x} gave {word:#06x}, "
                                              f"last written {want if want is None else hex(want)}")
            if present and ready:
                run.taken.append(cycle)
                if run.first_taken < 0:
                    run.first_taken = cycle
                if r.write:
                    shadow[r.addr] = r.data
                else:
                    pending.append((r.addr, shadow.get(r.addr)))
                i, idle = i + 1, 0
            else:
                idle += 1
            if i == len(requests) and not pending:
                if after == 0:
                    run.cycles = cycle - run.first_taken + 1 if run.first_taken >= 0 else 0
                after += 1
            if cycle > limit:
                run.mismatches.append(f"stopped after {limit} cycles: {len(requests) - i} requests not taken, "
                                      f"{len(pending)} words not come")
                break
        ctx.set(req.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1 / clk_hz)
    sim.add_testbench(model.process, background=True)
    sim.add_testbench(user)
    sim.run()
    run.violations = model.finish()
    run.refreshes = model.refreshes
    run.memory = model.memory
    return run
