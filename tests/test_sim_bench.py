"""The generated Verilog on Icarus and Verilator (cocotb), bit for bit against the
fixed-point golden model: the two embedded defaults on both simulators, 24 randomised
small configurations, the check interval, backpressure on the host stream,
deliberate faults that the bench must catch, and training from the dataset store
(``ddfa simulate --on-chip``) against :mod:`golden.onchip`.

Builds are cached in ``build/sim-tests`` (or ``$DDFA_SIM_BUILD``): a Verilator build
takes 30 s (a small configuration) to 2 min (ulx3s-85f) on two cores and is reused
while the Verilog is unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dataclasses

import numpy as np
import pytest

import golden.onchip
from ddfa.config import Config, HardwareConfig, ModelConfig, default_config
from ddfa.data import load_config_coded
from golden.fixed import FixedModel
from hdl.cycles import step_cycles
from sim.configs import random_config
from sim.simulate import REPO, simulate

#: Every test here builds and runs RTL simulations: `make test-quick` leaves them out.
pytestmark = pytest.mark.slow

BUILD = Path(os.environ.get("DDFA_SIM_BUILD", REPO / "build" / "sim-tests"))
DATA = os.environ.get("DDFA_DATA_DIR", str(REPO.parent / "shared" / "data"))


def run(cfg, simulator, steps, **kw):
    r = simulate(cfg, simulator, steps, build_dir=BUILD, data_dir=DATA if cfg.model.dataset != "digits" else None,
                 **kw)
    print(f"\n{cfg.name} on {simulator}: {r['steps']} steps, bit_exact {r['bit_exact']}, "
          f"{r.get('cycles_per_sample')} cycles/sample, sim {r['sim_seconds']} s, build {r['build_seconds']} s "
          f"(reused {r['build_reused']})")
    return r


def assert_exact(r):
    assert r["bit_exact"], f"first mismatch: {r['first_mismatch']}"
    assert r["mismatches"] == 0 and r["steps"] == r["steps_asked"]


def assert_cycles(cfg, r):
    """The STATUS counters agree with hdl.cycles.step_cycles, phase by phase."""
    want = step_cycles(cfg)
    assert r["cycles_per_sample_min_max"] == [want["total"]] * 2
    assert r["phase_cycles"] == {"forward": want["forward"], "error": want["softmax"],
                                 "update": want["update"] - want["softmax"]}


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_icebreaker_default(simulator):
    """64-32-10 on digits: training steps with every word compared after each, then a
    test pass whose answers equal the golden model's."""
    cfg = default_config("icebreaker")
    steps, test = (40, 100) if simulator == "verilator" else (4, 10)
    r = run(cfg, simulator, steps, test=test)
    assert_exact(r)
    assert_cycles(cfg, r)
    assert r["test_accuracy"] == r["golden_test_accuracy"]
    assert r["checks"] == steps + 2                      # initial, after every step, after the test pass


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_ulx3s_default(simulator):
    """784-128-10 on MNIST (IDX files from DDFA_DATA_DIR). Icarus runs this design at a
    few thousand cycles a second, so it does one step and one read-back of the 103,690
    words (after the step; the TRAIN answer and the initial INFO are checked too)."""
    cfg = default_config("ulx3s-85f")
    if simulator == "verilator":
        r = run(cfg, simulator, 3, test=20)
        assert r["test_accuracy"] == r["golden_test_accuracy"]
    else:
        r = run(cfg, simulator, 1, initial_check=False)
    assert_exact(r)
    assert_cycles(cfg, r)


@pytest.mark.parametrize("seed", range(24))
def test_random_config(seed):
    """Randomised small configurations (sim/configs.py: 2-4 layers, random sizes, PE
    counts, formats, shifts, DDFA or DFA) on Icarus: 3 steps compared after each, a
    short test pass; every third with random gaps on both host streams."""
    cfg = random_config(seed)
    r = run(cfg, "icarus", 3, test=5, stall=5 if seed % 3 == 0 else 0)
    assert_exact(r)
    assert_cycles(cfg, r)


@pytest.mark.parametrize("seed", [11])
def test_random_config_verilator(seed):
    """A randomised configuration with 4 layers on Verilator too (the fault test below
    runs another one, 64-8-10)."""
    cfg = random_config(seed)
    r = run(cfg, "verilator", 8, check_every=3, test=20)
    assert_exact(r)
    assert r["checks"] == 1 + 3 + 1                      # initial, steps 3, 6, 8, after the test pass
    assert_cycles(cfg, r)


def _fault_run(tmp_path, cfg, fault, simulator, steps):
    """Generate, inject the fault into a copy, and run ``ddfa simulate --verilog DIR``."""
    from ddfa.cli import main
    from sim.faults import inject_dir
    from sim.simulate import processor_sources
    good = processor_sources(cfg, None, BUILD.resolve())[0]
    bad = inject_dir(good, fault, tmp_path / "faulty")
    (tmp_path / "cfg.toml").write_text(cfg.to_toml())
    out = tmp_path / "r.json"
    rc = main(["simulate", "--config", str(tmp_path / "cfg.toml"), "--simulator", simulator, "--steps", str(steps),
               "--verilog", str(bad), "--build-dir", str(BUILD), "--json", str(out)])
    return rc, json.loads(out.read_text())


def test_fault_in_weight_update_is_caught(tmp_path, capsys):
    """A flipped operator in layer 1's update (sim/faults.py): the run fails at step 2 or
    later (DDFA's B starts at 0, so the first hidden update is 0; a later one can still
    round to zero), naming the memory (W1 or b1),
    the layer, row, column, step, expected and actual; the command exits 1."""
    cfg = random_config(14)                              # 64-8-10, 4 PEs on layer 1, DDFA
    rc, r = _fault_run(tmp_path, cfg, "layer1-update-sign", "icarus", 4)
    assert rc == 1
    assert not r["bit_exact"] and r["verilog_given"]
    m = r["first_mismatch"]
    assert m["memory"] in ("W1", "b1") and m["layer"] == 1 and 2 <= m["step"] <= 4
    assert m["row"] is not None and m["expected"] != m["actual"] and r["steps"] == m["step"]
    assert f"MISMATCH after step {m['step']}: {m['memory']} (layer 1, row {m['row']}" in capsys.readouterr().out


def test_fault_in_feedback_is_caught_on_verilator(tmp_path):
    """A flipped operator in the moving average of B1, on Verilator: B1 differs after
    step 2 (B is 0 before step 1, so the first update cannot show it)."""
    cfg = random_config(17)                              # 64-8-10, DDFA: a small build
    rc, r = _fault_run(tmp_path, cfg, "feedback-ema", "verilator", 5)
    assert rc == 1
    m = r["first_mismatch"]
    assert (m["memory"], m["layer"], m["step"]) == ("B1", 1, 2)


# -- the dataset store: ddfa simulate --on-chip ------------------------------------------

def store_config() -> Config:
    """The icebreaker default with its dataset store and epoch runner."""
    return default_config("icebreaker").replace(**{"hardware.dataset_store": True})


def golden_on_chip(cfg, n_train, n_test, epochs):
    """golden.onchip in this process: the state hash after ``epochs`` epochs of the first
    ``n_train`` training records, and EVALUATE's count on the first ``n_test`` test records."""
    coded = load_config_coded(cfg)
    cut = dataclasses.replace(coded, x_train=coded.x_train[:n_train], y_train=coded.y_train[:n_train],
                              x_test=coded.x_test[:n_test], y_test=coded.y_test[:n_test])
    model = FixedModel(cfg)
    golden.onchip.train_epochs(model, cut, epochs=epochs)
    return model.state_hash(), golden.onchip.evaluate(model, cut)


def assert_on_chip(cfg, r, n_train, n_test, epochs, every=1):
    assert_exact(r)
    assert (r["mode"], r["epochs"], r["epochs_done"], r["train_records"]) == ("on-chip", epochs, epochs, n_train)
    # read-backs: the initial one, one per TRAIN_EPOCHS of `every` epochs, one after EVALUATE
    assert r["steps"] == epochs * n_train and r["checks"] == 1 + -(-epochs // every) + (n_test > 0)
    state_hash, correct = golden_on_chip(cfg, n_train, n_test, epochs)
    assert r["state_hash"] == state_hash
    assert r["test_samples"] == n_test and r["test_correct"] == r["golden_test_correct"] == correct
    assert r["cycles_per_sample"] == r["run_cycles"] / r["steps"]
    assert r["step_cycles"] == step_cycles(cfg)["total"]
    # a step follows the one before after 2 cycles; each epoch adds its key's 32 LFSR steps and
    # its first record's walk and load (about 250 cycles)
    assert r["step_cycles"] + 2 <= r["cycles_per_sample"] < r["step_cycles"] + 2 + 300 / n_train


def test_on_chip_icebreaker_verilator():
    """The icebreaker default with its dataset store on Verilator: 100 training and 50
    test records uploaded through the host stream, one epoch in the chip's order, every
    word and LFSR compared, EVALUATE's count equal to golden.onchip's."""
    cfg = store_config()
    r = run(cfg, "verilator", 100, test=50, on_chip=True)
    assert_on_chip(cfg, r, 100, 50, 1)
    assert r["upload"]["words"] == r["store_words"] == cfg.chip_store.words(100, 50)


def test_on_chip_epochs_verilator():
    """Three epochs of 20 records, two in the first TRAIN_EPOCHS and one in the second:
    the later epochs' keys and orders, and the epoch counter carried across commands."""
    cfg = store_config()
    r = run(cfg, "verilator", 20, test=10, on_chip=True, epochs=3, check_every=2)
    assert_on_chip(cfg, r, 20, 10, 3, every=2)


def test_on_chip_order_is_checked(monkeypatch):
    """The bench catches a golden model that trains the records in another order (here
    the stored order, not the chip's permutation): the state differs after the epoch."""
    monkeypatch.setattr(golden.onchip, "epoch_permutation", lambda cfg, n, epoch: np.arange(n))
    r = run(store_config(), "verilator", 20, on_chip=True)
    assert not r["bit_exact"] and r["steps"] == 20
    m = r["first_mismatch"]
    assert m["step"] == 20 and m["memory"] in ("W1", "b1", "W2", "b2", "B1") and m["expected"] != m["actual"]


@pytest.mark.slow
def test_on_chip_two_epochs_icarus():
    """A small processor with a dataset store (64-8-10) on Icarus: 12 training records for
    two epochs (the second epoch's key and order), 6 test records evaluated."""
    cfg = Config(name="tiny-store", model=ModelConfig(layers=(64, 8, 10)),
                 hardware=HardwareConfig(board="icebreaker", pes=(2, 2), dataset_store=True))
    r = run(cfg, "icarus", 12, test=6, on_chip=True, epochs=2)
    assert_on_chip(cfg, r, 12, 6, 2)
