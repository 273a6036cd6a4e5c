"""A virtual board: the board's logic in Verilator behind a TCP socket.

:class:`hdl.board.VirtualBoardTop` around the processor (the UART link, its register slices
and the processor: everything of the board top but the PLL and the pins) is Verilated
together with the harness ``sim/hdl/virtual_board.cpp`` into one executable. It listens
on a TCP port and carries the bytes of one client at a time to and from the design's UART
lines, so the host client (``ddfa board ping/info/status/train --port socket://HOST:PORT``)
talks to it byte for byte as to a board on a serial port. ``ddfa board serve`` runs it.

* The UART runs at :data:`hdl.board.VIRTUAL_DIVISOR` cycles a bit, not the board's
  divisor: the bytes are the same, the simulation spends fewer cycles on each.
* The link's inter-byte timeout is the board's in clock cycles
  (:func:`hdl.board.virtual_timeout_cycles`): longer in wall-clock time than on the
  board, as the simulation is slower than the board's clock.
* The clock stops while the design is idle and no byte is on its way (the harness waits
  for the client then): the cycle counts are those of the board at work.

Executables are cached: the folder is named by the sha256 of the Verilog, the harness
source and the build options, so the same design is compiled once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ddfa.config import Config
from ddfa.protocol import host_commands
from hdl.board import VirtualBoardTop
from hdl.top import Processor
from hdl.verilog import design_verilog

from .runner import VERILATOR_MAKE_VARS, simulator_env
from .simulate import DEFAULT_BUILD_DIR

__all__ = ["HARNESS", "VERILOG_NAME", "VirtualBoard", "virtual_board_top", "virtual_board_verilog", "build",
           "command"]

#: The C++ harness: socket, UART lines, clock.
HARNESS = Path(__file__).resolve().parent / "hdl" / "virtual_board.cpp"
#: Top module name and file stem of the virtual board's Verilog.
VERILOG_NAME = "ddfa_virtual_board"
EXE_NAME = "virtual_board"

#: Verilator's options besides the sources. ``--prefix Vboard`` is the class the harness
#: includes; the model's C++ is compiled at -O2 (:data:`sim.runner.VERILATOR_MAKE_VARS`).
VERILATOR_ARGS = ["--cc", "--exe", "--build", "-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast",
                  "--noassert", "--prefix", "Vboard", "--top-module", VERILOG_NAME]


@dataclass(frozen=True)
class VirtualBoard:
    """A built virtual board.

    Attributes
    ----------
    executable : Path
        The harness with the design in it.
    divisor : int
        Its UART cycles per bit.
    build_seconds : float
        Seconds the Verilator build took (0 when reused).
    reused : bool
        The executable was in the cache.
    """

    executable: Path
    divisor: int
    build_seconds: float
    reused: bool


def virtual_board_top(cfg: Config) -> VirtualBoardTop:
    """The virtual board of ``cfg``: ``Processor(cfg)`` behind the link."""
    return VirtualBoardTop(cfg, Processor(cfg), host_commands(cfg))


def virtual_board_verilog(cfg: Config, top: VirtualBoardTop | None = None) -> str:
    """The Verilog of ``top`` (default :func:`virtual_board_top`), module :data:`VERILOG_NAME`."""
    return design_verilog(top if top is not None else virtual_board_top(cfg), VERILOG_NAME)


def _build_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def build(cfg: Config, build_root: str | Path | None = None, top: VirtualBoardTop | None = None,
          log=None) -> VirtualBoard:
    """Build (or reuse) the virtual board of ``cfg`` under ``build_root`` (default
    :data:`sim.simulate.DEFAULT_BUILD_DIR`), in a folder ``board-<sha256>``.

    ``log``: called with a line before a build that is not cached.
    Raises :class:`RuntimeError` with the tail of Verilator's log when the build fails."""
    top = top if top is not None else virtual_board_top(cfg)
    text = virtual_board_verilog(cfg, top)
    h = hashlib.sha256()
    for part in (text.encode(), HARNESS.read_bytes(), json.dumps([VERILATOR_ARGS, VERILATOR_MAKE_VARS]).encode()):
        h.update(hashlib.sha256(part).digest())
    key = h.hexdigest()[:16]
    root = Path(build_root) if build_root is not None else DEFAULT_BUILD_DIR
    bdir = (root / f"board-{key}").resolve()
    exe = bdir / EXE_NAME
    if exe.is_file():
        return VirtualBoard(exe, top.divisor, 0.0, True)
    if log is not None:
        log(f"building the virtual board with Verilator into {bdir}")
    tmp = bdir.with_name(bdir.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / f"{VERILOG_NAME}.v").write_text(text)
    simulator_env()
    obj = tmp / "obj"
    cmd = ["verilator", *VERILATOR_ARGS, "--build-jobs", str(_build_jobs()), "-Mdir", str(obj), "-o", EXE_NAME,
           str(tmp / f"{VERILOG_NAME}.v"), str(HARNESS)]
    env = dict(os.environ)
    extra = " ".join(f"{k}={v}" for k, v in VERILATOR_MAKE_VARS.items())
    env["MAKEFLAGS"] = f"{env['MAKEFLAGS']} {extra}" if env.get("MAKEFLAGS") else extra
    t0 = time.perf_counter()
    try:
        with open(tmp / "build.log", "w") as log_file:
            rc = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env).returncode
        if rc != 0 or not (obj / EXE_NAME).is_file():
            tail = (tmp / "build.log").read_text()[-6000:]
            raise RuntimeError(f"the Verilator build of the virtual board failed (status {rc}):\n{tail}")
        dt = time.perf_counter() - t0
        (obj / EXE_NAME).replace(tmp / EXE_NAME)
        shutil.rmtree(obj)                          # the object files: no longer needed
        (tmp / "ddfa-build.json").write_text(json.dumps({"config": cfg.name, "divisor": top.divisor,
                                                         "timeout_cycles": top.timeout_cycles,
                                                         "seconds": round(dt, 2)}, indent=1))
    except BaseException:                           # Ctrl-C included: no half-built folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        tmp.replace(bdir)
    except OSError:                                 # built meanwhile by another process: use that one
        shutil.rmtree(tmp, ignore_errors=True)
    return VirtualBoard(exe, top.divisor, dt, False)


def command(board: VirtualBoard, host: str, port: int, clients: int = 1) -> list[str]:
    """The command line that runs ``board`` on ``host:port`` (port 0: any free one) for
    ``clients`` clients one after another (0: until SIGINT or SIGTERM)."""
    return [str(board.executable), "--listen", f"{host}:{port}", "--divisor", str(board.divisor),
            "--clients", str(clients)]
