"""The Verilog of ``ddfa generate`` with its ``$readmemh`` images, in simulation and
through Yosys: the images are what the simulated processor starts from; ``ddfa simulate
--netlist`` runs the iCEBreaker default's Yosys netlist (``synth_ice40``, Yosys's cell
models, Icarus) and a small ECP5 configuration's (``synth_ecp5``, the DP16KD and
MULT18X18D models of ``boards/hdl``, Verilator) bit-exact against the golden model.

Builds and netlists are cached in ``build/sim-tests`` (or ``$DDFA_SIM_BUILD``); the
netlist of the iCEBreaker default takes Yosys about a minute.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ddfa.cli import main
from sim.configs import random_config
from sim.simulate import REPO

BUILD = Path(os.environ.get("DDFA_SIM_BUILD", REPO / "build" / "sim-tests"))


@pytest.mark.slow
def test_simulation_reads_the_images(tmp_path, capsys):
    """``ddfa simulate --verilog DIR`` on what ``ddfa generate`` wrote starts from the
    images in ``DIR/mem``: one bias changed there is the first mismatch (b1, row 3,
    before the first step); the images untouched, the same run is bit-exact."""
    out = tmp_path / "gen"
    assert main(["generate", "--board", "icebreaker", "--out", str(out)]) == 0
    argv = ["simulate", "--config", str(out / "config.toml"), "--simulator", "icarus", "--steps", "1",
            "--verilog", str(out), "--build-dir", str(BUILD)]
    assert main(argv + ["--json", str(tmp_path / "good.json")]) == 0
    lines = (out / "mem" / "b1.hex").read_text().splitlines()
    lines[3] = format(int(lines[3], 16) ^ 1, "04x")
    (out / "mem" / "b1.hex").write_text("\n".join(lines) + "\n")
    assert main(argv + ["--json", str(tmp_path / "bad.json")]) == 1
    m = json.loads((tmp_path / "bad.json").read_text())["first_mismatch"]
    assert (m["memory"], m["row"], m["step"]) == ("b1", 3, 0)
    assert m["actual"] == m["expected"] ^ 1
    (out / "mem" / "b1.hex").unlink()
    assert main(argv + ["--json", str(tmp_path / "missing.json")]) == 2
    assert "mem/b1.hex" in capsys.readouterr().err


@pytest.mark.slow
def test_icebreaker_netlist_icarus(tmp_path, capsys):
    """The iCEBreaker default's Yosys netlist (SB_LUT4, SB_RAM40_4K with the images as
    INIT, SB_MAC16) with Yosys's iCE40 cell models: 5 training steps, every word read
    back before and after, bit-exact."""
    out = tmp_path / "r.json"
    rc = main(["simulate", "--board", "icebreaker", "--simulator", "icarus", "--netlist", "--steps", "5",
               "--check-every", "5", "--build-dir", str(BUILD), "--json", str(out)])
    r = json.loads(out.read_text())
    assert rc == 0 and r["bit_exact"] and r["steps"] == 5 and r["checks"] == 2, r.get("first_mismatch")
    cells = r["netlist"]["cells"]
    assert cells["SB_MAC16"] == 6 and cells["SB_RAM40_4K"] >= 20 and cells["SB_LUT4"] > 1000
    assert r["netlist"]["yosys"].split(";")[1].strip().startswith("synth_ice40 -dsp")
    assert [Path(p).name for p in r["verilog"]] == ["ddfa_processor_netlist.v"]
    assert [Path(p).name for p in r["models"]] == ["cells_sim.v"]
    assert "netlist: Yosys 'synth_ice40" in capsys.readouterr().out


@pytest.mark.slow
def test_small_ecp5_netlist_verilator(tmp_path):
    """A small ECP5 configuration (64-16-9-10, 2 + 3 + 1 PEs, 17-bit weights) as a
    synth_ecp5 netlist on Verilator, with the DP16KD and MULT18X18D models of
    boards/hdl: 3 steps, every word read back before and after each, bit-exact."""
    cfg = random_config(12)
    assert cfg.board.family == "ecp5" and cfg.model.layers == (64, 16, 9, 10)
    (tmp_path / "cfg.toml").write_text(cfg.to_toml())
    out = tmp_path / "r.json"
    rc = main(["simulate", "--config", str(tmp_path / "cfg.toml"), "--simulator", "verilator", "--netlist",
               "--steps", "3", "--build-dir", str(BUILD), "--json", str(out)])
    r = json.loads(out.read_text())
    assert rc == 0 and r["bit_exact"] and r["checks"] == 4, r.get("first_mismatch")
    assert r["netlist"]["cells"]["MULT18X18D"] == cfg.multipliers_needed
    assert r["netlist"]["cells"]["DP16KD"] > 0
    assert [Path(p).name for p in r["models"]] == ["ecp5_cells.v", "ecp5_dp16kd.v", "ecp5_mult18x18d.v"]


def test_ecp5_netlist_on_icarus_is_refused(tmp_path, capsys):
    """Icarus does not compile Yosys's ECP5 cell models: refused before any work."""
    rc = main(["simulate", "--board", "ulx3s-85f", "--simulator", "icarus", "--netlist", "--steps", "1",
               "--build-dir", str(tmp_path / "b"), "--json", str(tmp_path / "r.json")])
    assert rc == 2
    assert "--simulator verilator" in capsys.readouterr().err
    assert not (tmp_path / "b" / "netlist").exists()
