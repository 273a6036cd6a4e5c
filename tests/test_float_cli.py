"""``ddfa train``, ``ddfa report`` and ``ddfa demo`` on the float model: results JSON,
training on the embedded digits, and every bad input (exit code 2 and a message)."""

import gzip
import json
import os
import sys
from pathlib import Path

import pytest

import boards.top
from ddfa.cli import main

SHARED = Path(os.environ.get("DDFA_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _fails(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("algo", ["bp", "dfa", "dkp", "ddfa"])
def test_train_writes_json(tmp_path, capsys, algo):
    path = tmp_path / f"{algo}.json"
    assert main(["train", "--algo", algo, "--epochs", "2", "--seed", "1", "--json", str(path)]) == 0
    r = json.loads(path.read_text())
    assert r["algo"] == algo and r["dataset"] == "digits" and r["arch"] == "1x32" and r["seed"] == 1
    assert r["setting"] == "hardware" and r["model"] == "float" and r["config"]["model"]["algorithm"] == algo
    assert [h["epoch"] for h in r["history"]] == [1, 2]
    for h in r["history"]:
        assert set(h) >= {"epoch", "train_loss", "train_accuracy", "test_accuracy", "alignment_deg"}
        assert 0 <= h["test_accuracy"] <= 1 and len(h["alignment_deg"]) == 1
    assert r["test_accuracy"] > 0.85
    assert r["samples_per_s"] > 0 and len(r["alignment_deg"]) == 1
    if algo == "bp":
        assert r["alignment_deg"][0] < 1e-3
    else:
        assert 0 < r["alignment_deg"][0] < 90
    assert "test accuracy" in capsys.readouterr().out


def test_paper_setting_with_batchnorm(tmp_path):
    """Adam, Gaussian directions, batch 64, BatchNorm, two hidden layers."""
    out = {}
    for algo in ("dfa", "ddfa"):
        path = tmp_path / f"{algo}.json"
        assert main(["train", "--algo", algo, "--setting", "paper", "--bn", "--arch", "2x32", "--epochs", "3",
                     "--lr", "0.003", "--json", str(path)]) == 0
        out[algo] = json.loads(path.read_text())
    assert out["ddfa"]["batch_size"] == 64 and out["ddfa"]["optimizer"] == "adam"
    assert out["ddfa"]["directions"] == "gaussian" and out["ddfa"]["feedback_update"] == "adam"
    assert out["ddfa"]["test_accuracy"] > 0.85 and out["dfa"]["test_accuracy"] > 0.5
    assert out["ddfa"]["samples_per_s"] > 0 and len(out["ddfa"]["alignment_deg"]) == 2
    assert all(a < b for a, b in zip(out["ddfa"]["alignment_deg"], out["dfa"]["alignment_deg"]))


def test_report_renders_table_and_plots(tmp_path, capsys):
    for algo in ("dfa", "ddfa"):
        for seed in ("0", "1"):
            assert main(["train", "--algo", algo, "--epochs", "1", "--seed", seed,
                         "--json", str(tmp_path / "runs" / f"{algo}-{seed}.json")]) == 0
    capsys.readouterr()
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0
    table = (out / "table.md").read_text()
    assert "| Dataset | Arch | BP | Random DFA | DKP | Dir. DFA |" in table
    row = next(line for line in table.splitlines() if line.startswith("| digits | 1x32"))
    assert row.count("(n=2)") == 2 and "±" in row
    assert (out / "accuracy.png").stat().st_size > 1000 and (out / "alignment.png").stat().st_size > 1000
    assert "digits" in capsys.readouterr().out


def test_report_bad_inputs(tmp_path, capsys):
    _fails(capsys, ["report", str(tmp_path / "nope.json")], "no file")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _fails(capsys, ["report", str(bad)], "bad.json is not valid JSON")
    bad.write_text(json.dumps({"algo": "dfa"}))
    _fails(capsys, ["report", str(bad)], "lacks test_accuracy")


def test_demo_compare_dfa_runs(capsys):
    """The float DDFA-vs-DFA comparison, now ``ddfa demo --compare-dfa`` (``ddfa demo``
    itself is the whole hardware flow: tests/test_demo.py)."""
    assert main(["demo", "--compare-dfa"]) == 0
    out = capsys.readouterr().out
    assert "DDFA" in out and "DFA" in out and "Directional DFA - random DFA" in out


# -- bad inputs via the CLI: exit code 2 and a message that names the problem -----------

def test_bad_config_field(capsys):
    _fails(capsys, ["train", "--set", "train.optimizer=rmsprop"], "train.optimizer", "rmsprop")
    _fails(capsys, ["train", "--set", "train.speed=3"], "train.speed", "unknown field")
    _fails(capsys, ["train", "--alpha", "1.5"], "train.alpha")
    _fails(capsys, ["train", "--epochs", "0"], "--epochs", "less than 1")
    _fails(capsys, ["train", "--set", "train.lr=inf"], "train.lr", "finite, positive")
    _fails(capsys, ["train", "--set", "train.lr=nan"], "train.lr", "finite, positive")
    _fails(capsys, ["train", "--set", "train.lr_decay=0"], "train.lr_decay", "(0, 1]")


def test_unmade_clock_is_a_config_error(capsys, monkeypatch):
    """``ddfa build --set hardware.clock_mhz=7``: one line naming the field and the PLL's
    range, before anything is built."""
    def no_build(cfg):
        raise AssertionError("the build started")
    monkeypatch.setattr(boards.top, "processor_top", no_build)
    err = _fails(capsys, ["build", "--board", "icebreaker", "--set", "hardware.clock_mhz=7"],
                 "hardware.clock_mhz", "from 16 to 275 MHz")
    assert err.count("\n") == 1


def test_non_utf8_config_file(tmp_path, capsys):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"name = \"caf\xe9\"\n")
    err = _fails(capsys, ["train", "--config", str(bad)], "--config", "not UTF-8", "save the file as UTF-8")
    assert err.count("\n") == 1


def test_inputs_option(tmp_path, capsys):
    """``--inputs`` overrides ``model.inputs``; the run's JSON records it."""
    import argparse
    from ddfa.cli import add_config_args, config_from_args
    p = argparse.ArgumentParser()
    add_config_args(p, training=True)
    assert config_from_args(p.parse_args(["--board", "icebreaker"])).model.inputs == "standardize"
    assert config_from_args(p.parse_args(["--board", "icebreaker", "--inputs", "pm1"])).model.inputs == "pm1"
    assert config_from_args(p.parse_args(["--board", "ulx3s-85f"])).model.inputs == "pm1"
    out = tmp_path / "r.json"
    assert main(["train", "--board", "icebreaker", "--inputs", "pm1", "--epochs", "1", "--no-progress",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["config"]["model"]["inputs"] == "pm1"
    _fails(capsys, ["train", "--inputs", "zscore"], "--inputs", "zscore")


def test_unknown_arch(capsys):
    _fails(capsys, ["train", "--dataset", "mnist", "--arch", "2y800"], "model.layers", "2y800")


def test_batchnorm_with_batch_of_one(capsys):
    _fails(capsys, ["train", "--bn"], "train.batchnorm", "batches of 2")


def test_missing_dataset_dir(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(capsys, ["train", "--dataset", "mnist", "--data-dir", str(empty)],
           "missing file train-images-idx3-ubyte", str(empty))


def test_corrupt_dataset_file(tmp_path, capsys):
    src = SHARED / "mnist"
    if not src.is_dir():
        pytest.fail(f"MNIST IDX files not found in {src}; set DDFA_DATA_DIR to the directory of mnist/")
    dst = tmp_path / "mnist"
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).symlink_to(f)
    labels = dst / "train-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.resolve().read_bytes()))
    raw[200] ^= 0x01
    labels.unlink()
    labels.write_bytes(gzip.compress(bytes(raw)))
    _fails(capsys, ["train", "--dataset", "mnist", "--data-dir", str(tmp_path)],
           "train-labels-idx1-ubyte.gz is corrupt")
    labels.write_bytes(b"not a gzip file")
    _fails(capsys, ["train", "--dataset", "mnist", "--data-dir", str(tmp_path)], "not a valid gzip file")


def test_fixed_model_missing_is_a_clear_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "golden.fixed", None)     # import golden.fixed fails
    _fails(capsys, ["train", "--model", "fixed"], "--model", "fixed-point golden model is not available")
