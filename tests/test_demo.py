"""``ddfa demo`` (ddfa/cli/demo.py): the flow, its summary and its exit statuses.

The simulation stage runs for real (a small processor, a few steps on Icarus, a few
seconds once Icarus has compiled it). The bitstream stage runs for real too, up to the
point where a real failure stops it: a missing tool. A full build of even a small
processor takes minutes, so the built and does-not-fit cases are exercised by
``make demo`` itself (README, "What the demo does"); here their summaries are checked
from the build stage's own objects.
"""

from __future__ import annotations

import json

import pytest

from ddfa.cli import main
from ddfa.config import default_config
from ddfa.cli.demo import EXIT, AUTHORS_CPU_SAMPLES_PER_S, exit_status, format_summary, run_demo

SMALL = ["--set", "model.layers=[64,4,10]", "--set", "hardware.pes=[2,1]"]


def small_cfg():
    return default_config("icebreaker").replace(**{"model.layers": (64, 4, 10), "hardware.pes": (2, 1)})


@pytest.fixture(scope="module")
def sim_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sim")


def test_demo_cli_without_build(tmp_path, sim_cache, capsys):
    """Generate + real RTL simulation (bit-exact, a test pass) + the summary and its JSON."""
    out = tmp_path / "demo"
    rc = main(["demo", *SMALL, "--steps", "4", "--test", "12", "--simulator", "icarus", "--no-build",
               "--out", str(out), "--sim-build-dir", str(sim_cache)])
    text = capsys.readouterr().out
    assert rc == 0, text
    s = json.loads((out / "summary.json").read_text())
    assert s["bit_exact"] is True and s["train_steps"] == 4 and s["test_samples"] == 12
    assert s["test_accuracy_rtl"] == s["test_accuracy_golden"]
    assert s["cycles_per_sample"] == s["model_cycles_per_sample"]           # measured = the cycle model
    assert 0 < s["ideal_cycles_per_sample"] < s["cycles_per_sample"]
    from sim.perf import useful_macs
    cfg = small_cfg()
    assert s["mac_utilization"] == round(useful_macs(cfg)["total"] / (cfg.multipliers_needed * s["cycles_per_sample"]), 4)
    assert s["stages"]["build"]["status"].startswith("skipped") and s["fmax_mhz"] is None
    assert s["train_samples_per_s_at_target"] == round(30e6 / s["cycles_per_sample"], 1)
    assert s["baud"] == 3_000_000 and s["link_samples_per_s"] > 1000
    assert s["exit_status"] == 0 and s["failures"] == []
    assert (out / "generated" / "ddfa_processor.v").is_file() and (out / "simulate.json").is_file()
    for line in ("bit-exact                 : YES", "test accuracy             : RTL", "cycles per sample",
                 "MAC utilisation", "bitstream                 : skipped", "PASS (exit status 0)"):
        assert line in text


def test_demo_reports_a_mismatch(tmp_path, sim_cache, monkeypatch):
    """A fault in the generated Verilog (sim/faults.py) makes the simulation stage fail:
    exit status 1, the first mismatch in the summary."""
    import ddfa.cli.generate as gen
    from sim.faults import inject
    real = gen.generate

    def faulty(cfg, out, **kw):
        r = real(cfg, out, **kw)
        v = out / r["verilog"]
        v.write_text(inject(v.read_text(), "feedback-ema"))
        return r

    monkeypatch.setattr(gen, "generate", faulty)
    s = run_demo(small_cfg(), tmp_path, steps=4, test=None, simulator="icarus", build_bitstream=False,
                 sim_build_dir=sim_cache, log=lambda m: None)
    assert s["bit_exact"] is False and s["exit_status"] == EXIT["simulate"] == 1
    assert s["failures"][0]["stage"] == "simulate" and "MISMATCH" in s["failures"][0]["reason"]
    assert "B1" in s["failures"][0]["reason"]
    text = format_summary(s)
    assert "bit-exact                 : NO" in text and "FAIL (exit status 1)" in text


def test_demo_build_stage_names_a_missing_tool(tmp_path, sim_cache, monkeypatch):
    """The build stage really runs and stops at a missing tool: the summary says which
    and how to get it, the simulation's figures are still there, exit status 2."""
    import boards.toolchain as tc
    monkeypatch.setattr(tc, "find_tool", lambda name: None)
    s = run_demo(small_cfg(), tmp_path, steps=2, test=None, simulator="icarus", sim_build_dir=sim_cache,
                 log=lambda m: None)
    assert s["bit_exact"] is True and s["cycles_per_sample"]
    assert s["stages"]["build"]["status"] == "toolchain error"
    assert s["exit_status"] == EXIT["toolchain"] == 2
    assert "make setup" in s["failures"][0]["reason"]
    assert "TOOLCHAIN ERROR" in format_summary(s)


def _summary(**kw):
    """A summary as run_demo makes it, for the build outcomes (see the module docstring)."""
    s = {"config": "icebreaker", "board": "icebreaker", "device": "iCE40UP5K", "dataset": "digits",
         "layers": [64, 32, 10], "pes": [4, 1], "algorithm": "ddfa", "target_mhz": 30.0, "baud": 3_000_000,
         "authors_cpu_samples_per_s": AUTHORS_CPU_SAMPLES_PER_S, "failures": [], "bit_exact": True,
         "train_steps": 1437, "train_epochs": 1.0, "test_samples": 360, "test_accuracy_rtl": 0.9389,
         "test_accuracy_golden": 0.9389, "cycles_per_sample": 1469.0, "ideal_cycles_per_sample": 674,
         "mac_utilization": 0.458, "multipliers": {"netlist": 8, "board": 8},
         "train_samples_per_s_at_target": 20422.1, "link_samples_per_s": 1898.7, "fmax_mhz": None,
         "timing_met": None, "resources": {}, "train_samples_per_s": None, "speedup_vs_authors_cpu": None,
         "wall_seconds": 1.0,
         "stages": {"simulate": {"ok": True, "simulator": "verilator", "steps": 1437, "checks": 1438,
                                 "sim_seconds": 72.0}}}
    s.update(kw)
    s["exit_status"] = exit_status(s)
    return s


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_demo_build_does_not_fit(tmp_path, monkeypatch):
    """BuildFailed with nextpnr's partial utilisation (what a design too large for the
    UP5K gives): 'NOT BUILT', the overflowing resource, exit status 3."""
    import boards.build as bb
    from ddfa.cli.demo import _build_stage
    cfg = default_config("icebreaker")
    util = {"ICESTORM_LC": {"used": 6092, "available": 5280}, "ICESTORM_DSP": {"used": 8, "available": 8}}
    partial = bb.BuildResult(board="icebreaker", family="ice40", device="iCE40UP5K", top="BoardTop", bitstream="",
                             target_mhz=30.0, clock_mhz=30.0, fmax_mhz=None, timing_met=False,
                             resources=bb.summarise_resources({"utilization": util}, "ice40"))

    def no_fit(*a, **k):
        raise bb.BuildFailed("the design does not fit iCE40UP5K: ICESTORM_LC 6092/5280", tmp_path / "x.tim",
                             util, partial)
    monkeypatch.setattr(bb, "build", no_fit)
    s = _summary()
    _build_stage(cfg, tmp_path, s, 1469.0, None, lambda m: None)
    s["failures"] = [{"stage": k, "reason": v} for k, v in s["failures"]]
    s["exit_status"] = exit_status(s)
    assert s["exit_status"] == EXIT["no_bitstream"] == 3
    assert s["resources"]["logic"] == {"used": 6092, "available": 5280, "unit": "LC (LUT4 + FF)"}
    text = format_summary(s)
    assert "bitstream                 : NOT BUILT: the design does not fit iCE40UP5K" in text
    assert "logic 6092/5280" in text and "at the 30 MHz target it would be 20,422" in text
    assert "FAIL (exit status 3)" in text


def test_demo_exit_status_order():
    """The first failed stage in flow order decides the exit status."""
    assert _summary()["exit_status"] == 0
    assert _summary(failures=[("timing", "")])["exit_status"] == 4
    assert _summary(failures=[("no_bitstream", "")])["exit_status"] == 3
    assert _summary(failures=[("timing", ""), ("simulate", "")])["exit_status"] == 1
    assert _summary(failures=[{"stage": "toolchain", "reason": ""}])["exit_status"] == 2


def test_demo_timing_summary():
    s = _summary(fmax_mhz=29.0, timing_met=False, clock_mhz=30.0, train_samples_per_s=19741.3,
                 speedup_vs_authors_cpu=54.8, failures=[{"stage": "timing", "reason": "timing NOT met"}])
    s["stages"]["build"] = {"status": "built"}
    s["exit_status"] = exit_status(s)
    text = format_summary(s)
    assert "timing NOT MET" in text and "19,741" in text and "54.8x the authors' code" in text
    assert s["exit_status"] == 4

# The float DDFA-vs-DFA comparison (ddfa demo --compare-dfa): tests/test_float_cli.py.
