"""Synthesis, place and route, bitstream and report with the open toolchain.

:func:`build` runs Amaranth's build plan for a board (Yosys, nextpnr, icepack/ecppack,
the YoWASP wrappers located by :mod:`boards.toolchain`) and reads nextpnr's
``--report`` JSON: the achieved clock frequency and the utilisation of every kind of
cell. The plan is executed with ``prepare().execute_local()``, which skips the
platforms' up-front check for programmers (the ULX3S platform would demand
openFPGALoader even for a build). :func:`program` loads a built bitstream.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ddfa.config import Config
from ddfa.protocol import Opcode, host_commands
from hdl.cycles import step_cycles

from .platforms import make_platform
from .toolchain import find_programmer, find_tool, toolchain_env, ToolchainError

__all__ = ["BuildResult", "BuildFailed", "build", "parse_nextpnr_report", "parse_nextpnr_log",
           "summarise_resources", "program", "link_samples_per_s", "toolchain_overrides"]

# nextpnr cell type -> the summary's name, per family
_RESOURCES = {
    "ice40": {"logic": "ICESTORM_LC", "dsp": "ICESTORM_DSP", "ebr": "ICESTORM_RAM",
              "spram": "ICESTORM_SPRAM", "pll": "ICESTORM_PLL", "io": "SB_IO", "global_buffers": "SB_GB"},
    "ecp5": {"logic": "TRELLIS_COMB", "ff": "TRELLIS_FF", "dsp": "MULT18X18D", "ebr": "DP16KD",
             "pll": "EHXPLLL", "io": "TRELLIS_IO", "distributed_ram": "TRELLIS_RAMW"},
}
_LOGIC_UNIT = {"ice40": "LC (LUT4 + FF)", "ecp5": "LUT4"}


@dataclass
class BuildResult:
    """What ``ddfa build --json`` writes (see ``docs/BOARDS.md``)."""

    board: str
    family: str
    device: str
    top: str
    bitstream: str
    target_mhz: float
    clock_mhz: float                  # what the PLL makes (the timing constraint)
    fmax_mhz: float | None
    timing_met: bool
    resources: dict = field(default_factory=dict)
    cycles_per_sample: int | None = None
    train_samples_per_s: float | None = None       # fmax / cycles per training step
    train_samples_per_s_at_clock: float | None = None
    link_samples_per_s: float | None = None        # what the UART can carry
    build_seconds: float | None = None
    uart_divisor: int | None = None
    programmed: bool = False
    logs: dict = field(default_factory=dict)
    error: str | None = None          # set when no bitstream was made (the rest is partial)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)


class BuildFailed(RuntimeError):
    """A tool failed. ``utilization`` holds what nextpnr reported before failing (its
    "Device utilisation" block, the same form as the report's), ``log`` the log file."""

    def __init__(self, message: str, log: Path, utilization: dict, partial: "BuildResult | None" = None):
        super().__init__(message)
        self.log = log
        self.utilization = utilization
        self.partial = partial


def parse_nextpnr_log(path: str | Path) -> dict:
    """The last "Device utilisation" block of a nextpnr log as
    ``{cell type: {"used", "available"}}`` (empty when there is none)."""
    p = Path(path)
    if not p.is_file():
        return {}
    text = p.read_text(errors="replace")
    start = text.rfind("Device utilisation:")
    if start < 0:
        return {}
    util = {}
    for m in re.finditer(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", text[start:], re.M):
        util[m.group(1)] = {"used": int(m.group(2)), "available": int(m.group(3))}
    return util


def parse_nextpnr_report(path: str | Path) -> dict:
    """nextpnr's ``--report`` JSON: ``{"fmax": {net: {"achieved", "constraint"}},
    "utilization": {cell type: {"used", "available"}}, ...}``."""
    return json.loads(Path(path).read_text())


def _yosys_ff_count(rpt: Path) -> int | None:
    """Flip-flops in Yosys' final ``stat`` (iCE40: every ``SB_DFF*`` cell)."""
    if not rpt.is_file():
        return None
    text = rpt.read_text(errors="replace")
    # the last statistics block is the final netlist
    start = text.rfind("Printing statistics.")
    if start < 0:
        return None
    # Yosys prints the block twice (local counts, then counts including submodules):
    # the last count of each cell type is the design's.
    counts = {}
    for m in re.finditer(r"^\s+(\d+)\s+(SB_DFF\w*)\s*$", text[start:], re.M):
        counts[m.group(2)] = int(m.group(1))
    return sum(counts.values())


def summarise_resources(report: dict, family: str, rpt: Path | None = None) -> dict:
    """``{kind: {"cell", "used", "available"}}`` for logic, FFs, DSPs, EBR, SPRAM, PLL and
    IO, plus ``raw`` (every cell type nextpnr reported)."""
    util = report.get("utilization", {})
    out: dict = {}
    for kind, cell in _RESOURCES[family].items():
        if cell in util:
            out[kind] = {"cell": cell, "used": util[cell]["used"], "available": util[cell]["available"]}
    if "logic" in out:
        out["logic"]["unit"] = _LOGIC_UNIT[family]
    if family == "ice40" and rpt is not None:
        ffs = _yosys_ff_count(rpt)
        if ffs is not None and "logic" in out:
            out["ff"] = {"cell": "SB_DFF*", "used": ffs, "available": out["logic"]["available"]}
    out["raw"] = {k: {"used": v["used"], "available": v["available"]} for k, v in util.items()}
    return out


def _fmax(report: dict, clock_hz: float) -> tuple[float | None, bool]:
    """The achieved frequency of the sync clock (the constrained clock closest to
    ``clock_hz``) and whether every constrained clock met its constraint."""
    fmax = report.get("fmax", {})
    if not fmax:
        return None, False
    met = all(v["achieved"] >= v["constraint"] for v in fmax.values())
    net = min(fmax, key=lambda k: abs(fmax[k]["constraint"] - clock_hz / 1e6))
    return float(fmax[net]["achieved"]), met


def link_samples_per_s(cfg: Config) -> float | None:
    """Training samples per second that the UART can carry: per sample one LOAD_SAMPLE
    and one TRAIN request and their responses (frame overhead 6 bytes, status 1 byte),
    10 bits per byte at ``cfg.hardware.baud``; no allowance for USB latency."""
    cmds = {c.code: c for c in host_commands(cfg)}
    n = 0
    for op in (Opcode.LOAD_SAMPLE, Opcode.TRAIN):
        n += 6 + cmds[op].request + 6 + 1 + cmds[op].response
    return cfg.hardware.baud / 10 / n


def cycles_per_sample(cfg: Config) -> int:
    """Clock cycles of one training step (:func:`hdl.cycles.step_cycles`)."""
    return int(step_cycles(cfg)["total"])


#: Extra nextpnr options per family (none at present). Tried on the ULX3S default processor
#: and left out: ``--router router2`` (still 1800 overused wires after 21 iterations,
#: 20 s each, where router1 finishes in about 650 s; ``docs/BOARDS.md``, "Build time").
NEXTPNR_OPTS: dict = {}


def toolchain_overrides(family: str, name: str, device: str | None = None) -> dict:
    """The options ``build`` gives Amaranth's build plan for ``family`` (besides
    nextpnr's report and seed):

    * iCE40: ``synth_ice40 -dsp`` (multipliers to SB_MAC16); for an UltraPlus ``device``
      (``iCE40UP...``) also ``-device u``, so that ABC maps the logic with the UltraPlus
      delays rather than the default HX ones.
    * Both: before synthesis, the processor's memory read ports are marked "undefined on
      a collision with the write port" (Yosys ``COLLISION_X_MASK``). Amaranth's memories
      return the old word when a port reads the address another port writes in the same
      cycle; the block RAMs do not guarantee that, so Yosys would otherwise build a
      bypass (registers, comparators and multiplexers, about 60 LCs per memory on the
      iCE40, in the read data's timing path) for every memory. No memory of the
      processor is ever read and written at one address in one cycle where the word
      read is used (``docs/ARCHITECTURE.md``, "Block RAM"); the UART link's buffer keeps
      the default. Only the synchronous read ports are marked: an asynchronous one (the
      sums of a streaming layer, LUT RAM) has no collision to speak of, and Yosys asserts
      on the mark there.
    """
    ports = f"{name}.core*/t:$memrd_v2 {name}.core*/r:CLK_ENABLE=1 %i"
    out = {"script_after_read": f"setparam -set COLLISION_X_MASK 1'1 {ports}"}
    if family == "ice40":
        out["synth_opts"] = "-dsp -device u" if str(device or "").upper().startswith("ICE40UP") else "-dsp"
    return out


def build(cfg: Config, top, out_dir: str | Path, *, name: str = "ddfa_top", seed: int | None = None,
          verbose: bool = False, with_cycles: bool = True) -> BuildResult:
    """Build ``top`` (an Elaboratable for ``cfg.board``) into ``out_dir``.

    Returns the :class:`BuildResult`; raises :class:`~boards.toolchain.ToolchainError`
    when a tool is missing and :class:`BuildFailed` when a tool fails (its log is in
    ``out_dir``; :attr:`BuildFailed.partial` holds what is known of the build).
    """
    board = cfg.board
    family = board.family
    out = Path(out_dir).absolute()
    out.mkdir(parents=True, exist_ok=True)
    env = toolchain_env(family)
    platform = make_platform(board)
    report = f"{name}.report.json"
    nextpnr_opts = ["--report", report, "--timing-allow-fail"] + list(NEXTPNR_OPTS.get(family, ()))
    if seed is not None:
        nextpnr_opts += ["--seed", str(seed)]
    overrides = {"nextpnr_opts": " ".join(nextpnr_opts), "verbose": verbose,
                 **toolchain_overrides(family, name, board.device)}
    t0 = time.monotonic()
    plan = platform.prepare(top, name, **overrides)
    try:
        plan.execute_local(str(out), env=env)
    except subprocess.CalledProcessError as exc:
        log = out / f"{name}.tim"
        util = parse_nextpnr_log(log)
        over = [f"{k} {v['used']}/{v['available']}" for k, v in util.items() if v["used"] > v["available"]]
        if over:
            why = f"the design does not fit {board.device}: " + ", ".join(over)
        elif util:
            why = f"nextpnr failed (see {log})"
        else:
            why = f"synthesis failed (see {out / (name + '.rpt')})"
        partial = BuildResult(board=board.name, family=family, device=board.device, top=type(top).__name__,
                              bitstream="", target_mhz=cfg.clock_mhz, clock_mhz=cfg.clock_mhz, fmax_mhz=None,
                              timing_met=False, resources=summarise_resources({"utilization": util}, family,
                                                                              out / f"{name}.rpt"),
                              build_seconds=round(time.monotonic() - t0, 1),
                              logs={"yosys": str(out / f"{name}.rpt"), "nextpnr": str(log)}, error=why)
        raise BuildFailed(why, log, util, partial) from exc
    seconds = time.monotonic() - t0

    rep = parse_nextpnr_report(out / report)
    f_clock = getattr(getattr(top, "clock", None), "f_sync_hz", None) or cfg.clock_mhz * 1e6
    fmax, met = _fmax(rep, f_clock)
    bitstream = out / (f"{name}.bin" if family == "ice40" else f"{name}.bit")
    res = BuildResult(
        board=board.name, family=family, device=board.device, top=type(top).__name__,
        bitstream=str(bitstream), target_mhz=cfg.clock_mhz, clock_mhz=round(f_clock / 1e6, 6),
        fmax_mhz=round(fmax, 3) if fmax is not None else None, timing_met=met,
        resources=summarise_resources(rep, family, out / f"{name}.rpt"),
        build_seconds=round(seconds, 1), uart_divisor=getattr(top, "divisor", None),
        logs={"yosys": str(out / f"{name}.rpt"), "nextpnr": str(out / f"{name}.tim"), "report": str(out / report)},
    )
    if with_cycles:
        cyc = cycles_per_sample(cfg)
        res.cycles_per_sample = cyc
        if cyc and fmax:
            res.train_samples_per_s = round(fmax * 1e6 / cyc, 1)
            res.train_samples_per_s_at_clock = round(f_clock / cyc, 1)
        lsps = link_samples_per_s(cfg)
        res.link_samples_per_s = round(lsps, 1) if lsps else None
    return res


#: board -> programmer command (without the bitstream)
_PROGRAM = {
    "icebreaker": ["iceprog"],
    "upduino-v3": ["iceprog"],
    "ulx3s-85f": ["openFPGALoader", "-b", "ulx3s"],
    "orangecrab-25f": ["openFPGALoader", "-b", "orangecrab"],
}


def program(board: str, family: str, bitstream: str | Path) -> list[str]:
    """Load ``bitstream`` into ``board`` (volatile: SRAM for the ECP5 boards, flash for
    iceprog). Returns the command run; raises ToolchainError when the programmer is
    missing and CalledProcessError when it fails (no board attached, permissions)."""
    cmd = list(_PROGRAM.get(board) or ([find_programmer(family)]))
    exe = find_tool(cmd[0])
    if exe is None:
        find_programmer(family)              # raises with the install hint
        raise ToolchainError(f"{cmd[0]} is not installed")
    cmd[0] = exe
    cmd.append(str(bitstream))
    subprocess.run(cmd, check=True)
    return cmd
