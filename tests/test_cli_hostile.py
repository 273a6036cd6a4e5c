"""The command line against a hostile but fair user: a one-line error before any work
starts (exit status 2), never a lost result, never a silent wrong answer; Ctrl-C is one
line and exit status 130 with what was done so far; an internal error keeps its
traceback."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ddfa.cli
import ddfa.cli.board
import ddfa.cli.output
import ddfa.cli.train
import golden.float_model
from ddfa.cli import build_parser, config_from_args, main
from ddfa.cli.generate import MANIFEST

SMALL_GEN = ["--board", "icebreaker", "--set", "model.layers=[64,4,10]", "--set", "hardware.pes=[2,1]"]


def _one_line(capsys, argv, status=2, *needles) -> str:
    """``main(argv)`` exits with ``status`` and one ``ddfa COMMAND: error: ...`` line."""
    assert main(argv) == status
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "no --board/--config: the" not in line]   # the defaults note
    assert len(errors) == 1 and ": error: " in errors[0], err
    assert errors[0].startswith(f"ddfa {argv[0]}" if argv[0] in ddfa.cli.COMMANDS else "ddfa: "), err
    for needle in needles:
        assert needle in errors[0], err
    return errors[0]


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if training starts."""
    def refuse(*a, **k):
        raise AssertionError("training started before the output path was checked")
    monkeypatch.setattr(ddfa.cli.train, "run_training", refuse)


@pytest.fixture
def read_only(monkeypatch):
    """Every folder refuses new files (a read-only mount; chmod does not stop root)."""
    def refuse(folder):
        raise PermissionError(13, "Permission denied", str(folder))
    monkeypatch.setattr(ddfa.cli.output, "_probe_writable", refuse)


# -- 1. output paths: checked before the work, written atomically ----------------------

def test_train_json_is_a_directory(tmp_path, capsys, no_training):
    _one_line(capsys, ["train", "--dataset", "digits", "--epochs", "1", "--json", str(tmp_path)], 2,
              "--json", "is a folder, not a file")


def test_train_json_under_a_file(tmp_path, capsys, no_training):
    (tmp_path / "f").write_text("x")
    _one_line(capsys, ["train", "--json", str(tmp_path / "f" / "r.json")], 2, "is a file, not a folder")


def test_train_json_in_read_only_folder(tmp_path, capsys, no_training, read_only):
    _one_line(capsys, ["train", "--json", str(tmp_path / "r.json")], 2, "not writable")


def test_proc_is_not_writable(capsys, no_training):
    """A folder that refuses files for every user, root included."""
    _one_line(capsys, ["train", "--json", "/proc/ddfa-result.json"], 2, "--json", "/proc")


class FakeSession:
    def __init__(self, cfg, transport, timeout=2.0):
        pass

    def ping(self):
        return 1


class FakeTransport:
    def __init__(self, port, baud):
        pass

    def close(self):
        pass


def test_board_json_parent_is_created(tmp_path, capsys, monkeypatch):
    """Every command creates a missing parent folder the same way."""
    monkeypatch.setattr(ddfa.cli.board, "SerialTransport", FakeTransport)
    monkeypatch.setattr(ddfa.cli.board, "BoardSession", FakeSession)
    path = tmp_path / "missing" / "deeper" / "board.json"
    assert main(["board", "ping", "--board", "icebreaker", "--port", "x", "--json", str(path)]) == 0
    assert json.loads(path.read_text()) == {"protocol_version": 1}
    assert [p.name for p in path.parent.iterdir()] == ["board.json"]          # no temporary file left


def test_board_json_checked_before_the_port(tmp_path, capsys, monkeypatch):
    def no_port(*a):
        raise AssertionError("opened the port before checking --json")
    monkeypatch.setattr(ddfa.cli.board, "SerialTransport", no_port)
    (tmp_path / "f").write_text("x")
    _one_line(capsys, ["board", "train", "--board", "icebreaker", "--port", "x", "--json",
                       str(tmp_path / "f" / "board.json")], 2, "is a file, not a folder")
    _one_line(capsys, ["board", "train", "--board", "icebreaker", "--port", "x", "--json", str(tmp_path)], 2,
              "is a folder")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with ddfa.cli.output.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    inode = path.stat().st_ino
    ddfa.cli.output.write_text(path, "new")
    assert path.stat().st_ino != inode                  # a new file renamed into place, not rewritten
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert path.stat().st_mode & 0o044 == 0o044 & ~_umask()                  # as open() would make it


def _umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


def test_build_dirs_that_are_files(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    _one_line(capsys, ["simulate", "--board", "icebreaker", "--build-dir", str(tmp_path / "f"), "--json",
                       str(tmp_path / "s.json")], 2, "--build-dir", "is a file")
    _one_line(capsys, ["demo", "--board", "icebreaker", "--sim-build-dir", str(tmp_path / "f"), "--out",
                       str(tmp_path / "demo")], 2, "--sim-build-dir", "is a file")


def test_generate_and_report_out(tmp_path, capsys, read_only):
    (tmp_path / "f").write_text("x")
    _one_line(capsys, ["generate", *SMALL_GEN, "--out", str(tmp_path / "f")], 2, "--out", "is a file")
    _one_line(capsys, ["generate", *SMALL_GEN, "--out", str(tmp_path / "new")], 2, "--out")
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"test_accuracy": 0.5, "algo": "ddfa", "dataset": "digits", "arch": "1x32"}))
    _one_line(capsys, ["report", str(run), "--out", str(tmp_path / "f")], 2, "--out", "is a file")
    _one_line(capsys, ["report", str(run), "--out", str(tmp_path / "r")], 2, "--out", "not writable")


def test_report_skips_unfinished_runs(tmp_path, capsys):
    (tmp_path / "a.json").write_text(json.dumps({"interrupted": True, "test_accuracy": None, "history": []}))
    _one_line(capsys, ["report", str(tmp_path / "a.json"), "--out", str(tmp_path / "r")], 2, "no finished run",
              "was interrupted")
    (tmp_path / "a.json").write_text(json.dumps({"test_accuracy": "high", "algo": "ddfa", "dataset": "digits",
                                                 "arch": "1x32"}))
    _one_line(capsys, ["report", str(tmp_path / "a.json"), "--out", str(tmp_path / "r")], 2, "not a number")


def test_report_passes_over_a_sweep_table(tmp_path, capsys):
    """A sweep's folder holds its table ``sweep.json`` beside the runs: not a run."""
    (tmp_path / "sweep.json").write_text(json.dumps({"jobs": [{"status": "ok"}]}))
    _one_line(capsys, ["report", str(tmp_path), "--out", str(tmp_path / "r")], 2, "no results")


# -- 2. counts validated by the parser ------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["simulate", "--board", "icebreaker", "--test", "-3", "--json", "OUT"], "--test"),
    (["simulate", "--board", "icebreaker", "--test", "some", "--json", "OUT"], "--test"),
    (["simulate", "--board", "icebreaker", "--steps", "-5", "--json", "OUT"], "--steps"),
    (["simulate", "--board", "icebreaker", "--steps", "0", "--json", "OUT"], "--steps"),
    (["simulate", "--board", "icebreaker", "--epochs", "0", "--json", "OUT"], "--epochs"),
    (["simulate", "--board", "icebreaker", "--epochs", "nan", "--json", "OUT"], "--epochs"),
    (["simulate", "--board", "icebreaker", "--check-every", "0", "--json", "OUT"], "--check-every"),
    (["simulate", "--board", "icebreaker", "--on-chip", "--json", "OUT"], "hardware.dataset_store"),
    (["simulate", "--board", "icebreaker", "--steps", "5", "--epochs", "1", "--json", "OUT"], "--on-chip"),
    (["simulate", "--board", "icebreaker", "--set", "hardware.dataset_store=true", "--on-chip", "--epochs", "1.5",
      "--json", "OUT"], "epochs"),
    (["simulate", "--board", "icebreaker", "--set", "hardware.dataset_store=true", "--on-chip", "--steps", "5000",
      "--json", "OUT"], "1437"),
    (["board", "train", "--board", "icebreaker", "--port", "x", "--samples", "-1435"], "--samples"),
    (["board", "train", "--board", "icebreaker", "--port", "x", "--test", "-1"], "--test"),
    (["board", "ping", "--board", "icebreaker", "--port", "x", "--timeout", "-1"], "--timeout"),
    (["train", "--threads", "-1"], "--threads"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--epochs", "2.5"], "--epochs"),
    (["train", "--batch-size", "0"], "--batch-size"),
    (["train", "--align-every", "-1"], "--align-every"),
    (["demo", "--steps", "-1"], "--steps"),
    (["demo", "--test", "-1"], "--test"),
    (["no-such-command"], "invalid choice"),
])
def test_bad_counts(argv, needle, capsys, tmp_path, no_training):
    argv = [str(tmp_path / "x.json") if a == "OUT" else a for a in argv]
    _one_line(capsys, argv, 2, needle)
    assert list(tmp_path.iterdir()) == []


# -- 3. one line for what users cause, tracebacks for the rest -------------------------

def test_corrupt_deflate_stream(tmp_path, capsys):
    good = gzip.compress(bytes(range(256)) * 64)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(good[:10] + b"\xff" * 40 + good[50:])
    _one_line(capsys, ["train", "--dataset", "mnist", "--data-dir", str(tmp_path)], 2,
              "not a valid gzip file", "Fix:")


def test_net_without_hidden_layer_trains_as_bp(tmp_path, capsys):
    """DFA, DKP and DDFA on a net with no hidden layer: the output layer's delta rule, as BP."""
    acc = {}
    for algo in ("bp", "ddfa", "dfa", "dkp"):
        path = tmp_path / f"{algo}.json"
        assert main(["train", "--arch", "64-10", "--algo", algo, "--epochs", "1", "--json", str(path)]) == 0
        r = json.loads(path.read_text())
        acc[algo] = r["test_accuracy"]
        assert r["alignment_deg"] == []
    assert acc["bp"] > 0.8 and len(set(acc.values())) == 1, acc


def test_verilog_dir_without_verilog(tmp_path, capsys):
    _one_line(capsys, ["simulate", "--board", "icebreaker", "--verilog", str(tmp_path), "--json",
                       str(tmp_path / "x.json")], 2, "--verilog", "no .v or .sv file")
    _one_line(capsys, ["simulate", "--board", "icebreaker", "--verilog", str(tmp_path / "nope"), "--json",
                       str(tmp_path / "x.json")], 2, "--verilog", "no directory")


def test_verilog_dir_of_another_configuration(tmp_path, capsys, monkeypatch):
    """``--verilog DIR`` written by ``ddfa generate`` from a configuration that builds other
    hardware: one line naming the differing field, before anything is simulated; the
    same hardware under another name is accepted."""
    gen = tmp_path / "gen"
    assert main(["generate", *SMALL_GEN, "--out", str(gen)]) == 0
    capsys.readouterr()
    _one_line(capsys, ["simulate", *SMALL_GEN, "--set", "arith.lr_shift=7", "--verilog", str(gen), "--json",
                       str(tmp_path / "x.json")], 2, "--verilog", "arith.lr_shift: 6 != 7", "--config")
    renamed = tmp_path / "renamed.toml"
    renamed.write_text((gen / "config.toml").read_text().replace('name = "icebreaker"', 'name = "mine"'))
    assert 'name = "mine"' in renamed.read_text()
    ran = []
    monkeypatch.setattr("sim.simulate.simulate", lambda *a, **kw: ran.append(kw) or (_ for _ in ()).throw(
        KeyboardInterrupt()))
    assert main(["simulate", "--config", str(renamed), "--verilog", str(gen), "--json", str(tmp_path / "y.json")]) == 130
    assert ran and ran[0]["verilog"] == str(gen)


def test_import_failure_surfaces(monkeypatch):
    monkeypatch.setitem(ddfa.cli.COMMANDS, "broken", ("ddfa.cli.no_such_module", "broken"))
    with pytest.raises(ModuleNotFoundError):
        main(["train"])


def test_internal_error_keeps_its_traceback(monkeypatch):
    def bug(*a, **k):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(ddfa.cli.train, "run_training", bug)
    with pytest.raises(ZeroDivisionError):
        main(["train", "--epochs", "1"])


# -- 4. generate: a manifest, stale files removed, the user's files kept ---------------

def test_generate_keeps_the_users_files(tmp_path, capsys):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "config.toml").write_text("# my own configuration\n")
    _one_line(capsys, ["generate", "--config", str(user / "config.toml"), "--out", str(user)], 2,
              "config.toml exists and was not written by ddfa generate", "--force")
    assert (user / "config.toml").read_text() == "# my own configuration\n"


def test_generate_removes_its_stale_files(tmp_path, capsys):
    out = tmp_path / "gen"
    (out / "mem").mkdir(parents=True)
    (out / "config.toml").write_text("# overwritten with --force\n")
    (out / "notes.txt").write_text("mine")
    (out / "mem" / "W1_pe7.hex").write_text("stale")               # a bank of a previous generation
    (out / MANIFEST).write_text(json.dumps({"files": ["mem/W1_pe7.hex", "config.toml"]}))
    (out / "report.md").write_text("foreign")
    _one_line(capsys, ["generate", *SMALL_GEN, "--out", str(out)], 2, "report.md exists")
    assert (out / "mem" / "W1_pe7.hex").exists()                 # nothing touched by a refusal
    assert main(["generate", *SMALL_GEN, "--out", str(out), "--force"]) == 0
    files = json.loads((out / MANIFEST).read_text())["files"]
    assert not (out / "mem" / "W1_pe7.hex").exists() and (out / "notes.txt").read_text() == "mine"
    assert "mem/W1_pe1.hex" in files and "mem/W1_pe7.hex" not in files
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert on_disk == sorted(files + [MANIFEST, "notes.txt"])


# -- 5. Ctrl-C ---------------------------------------------------------------------------

def test_ctrl_c_during_train_writes_partial_json(tmp_path, capsys, monkeypatch):
    calls = {"n": 0}
    step = golden.float_model.FloatModel.train_step

    def interrupted_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > 1437 + 100:                 # in the second epoch of the digits
            raise KeyboardInterrupt
        return step(self, *a, **k)
    monkeypatch.setattr(golden.float_model.FloatModel, "train_step", interrupted_step)
    path = tmp_path / "r.json"
    assert main(["train", "--epochs", "3", "--json", str(path)]) == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"ddfa train: interrupted (1 of 3 epochs done, partial result in {path})"], lines
    r = json.loads(path.read_text())
    assert r["interrupted"] is True and r["epochs_done"] == 1 and len(r["history"]) == 1
    assert r["test_accuracy"] is None and r["epochs_asked"] == 3


def test_ctrl_c_during_simulate(tmp_path, capsys, monkeypatch):
    """Partial JSON, exit 130, and no temporary folder left behind."""
    import sim.simulate as ss

    runs, socks = tmp_path / "runs", tmp_path / "tmp"
    runs.mkdir()
    socks.mkdir()
    monkeypatch.setenv("DDFA_SIM_RUN_DIR", str(runs))
    monkeypatch.setattr(ss.tempfile, "tempdir", str(socks))
    verilog = tmp_path / "p.v"
    verilog.write_text("module ddfa_processor; endmodule\n")
    monkeypatch.setattr(ss, "processor_sources", lambda cfg, v, work: [verilog])
    monkeypatch.setattr(ss, "build", lambda *a, **k: (tmp_path, 0.0, True))

    def oracle(*a):
        raise KeyboardInterrupt
    monkeypatch.setattr(ss, "GoldenOracle", oracle)
    path = tmp_path / "out" / "sim.json"
    assert main(["simulate", "--board", "icebreaker", "--steps", "3", "--json", str(path),
                 "--build-dir", str(tmp_path / "b")]) == 130
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"ddfa simulate: interrupted (partial result in {path})"], lines
    r = json.loads(path.read_text())
    assert r["interrupted"] is True and r["steps_asked"] == 3 and r["bit_exact"] is None
    assert list(runs.iterdir()) == [] and list(socks.iterdir()) == []


def test_ctrl_c_during_build_leaves_no_half_build(tmp_path, monkeypatch):
    import sim.simulate as ss

    class Runner:
        def build(self, **kw):
            Path(kw["build_dir"]).mkdir(parents=True)
            raise KeyboardInterrupt
    monkeypatch.setattr(ss, "get_runner", lambda simulator: Runner())
    src = tmp_path / "p.v"
    src.write_text("module ddfa_processor; endmodule\n")
    root = tmp_path / "b"
    root.mkdir()
    with pytest.raises(KeyboardInterrupt):
        ss.build("icarus", [src], {}, root)
    assert list(root.iterdir()) == []


# -- 6. defaults suited to the data set; divergence stops the run ----------------------

@pytest.mark.parametrize("dataset, board", [("digits", "icebreaker"), ("mnist", "ulx3s-85f"),
                                             ("fashion-mnist", "ulx3s-85f")])
def test_defaults_follow_the_dataset(dataset, board, capsys):
    args = build_parser().parse_args(["train", "--dataset", dataset])
    cfg = config_from_args(args, software_only=True)
    assert cfg.name == board and cfg.model.dataset == dataset
    assert f"the {board} defaults" in capsys.readouterr().err


def test_float_divergence_stops_at_once(tmp_path, capsys):
    path = tmp_path / "r.json"
    line = _one_line(capsys, ["train", "--epochs", "5", "--lr", "10", "--json", str(path)], 2,
                     "diverged", "learning rate 10", "--lr")
    assert "epoch 1 " in line and f"partial result in {path}" in line
    r = json.loads(path.read_text())
    assert r["diverged"] is True and r["epochs_done"] == 0 and r["test_accuracy"] is None


def test_fixed_divergence_stops_at_once(capsys):
    _one_line(capsys, ["train", "--model", "fixed", "--epochs", "5", "--set", "arith.lr_shift=1"], 2,
              "diverged", "epoch 1 ", "learning rate 0.5", "arith.lr_shift")


# -- 7. generated bad command lines -----------------------------------------------------

BAD_VALUES = st.one_of(st.integers(-10 ** 6, 0).map(str), st.sampled_from(["", "-", "nan", "inf", "-inf", "1e999",
                                                                              "0x10", "all", "1.5", "--", "é"]),
                       st.text(max_size=6))
#: Per command: options given a value, and an anchor that makes the command fail fast
#: (a --json that is a folder, an --out that is a file) whatever the other options say.
OPTIONS = {
    "train": ["--epochs", "--batch-size", "--threads", "--align-every", "--lr", "--alpha", "--seed", "--arch",
              "--dataset", "--algo", "--setting", "--inputs"],
    "simulate": ["--steps", "--epochs", "--test", "--check-every", "--stall", "--simulator", "--verilog"],
    "demo": ["--steps", "--epochs", "--test", "--check-every", "--pnr-seed", "--simulator"],
    "generate": ["--board", "--set"],
    "board train": ["--samples", "--test", "--timeout"],
    "report": ["--title"],
}


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(sorted(OPTIONS)), data=st.data())
def test_generated_bad_arguments(command, data, tmp_path_factory, capsys, monkeypatch):
    def no_run(*a, **k):
        raise AssertionError("work started")
    monkeypatch.setattr(ddfa.cli.train, "run_training", no_run)
    tmp = tmp_path_factory.mktemp("h")
    a_file = tmp / "f"
    a_file.write_text("x")
    options = data.draw(st.lists(st.sampled_from(OPTIONS[command]), max_size=3))
    argv = command.split()
    for opt in options:
        argv += [opt, data.draw(BAD_VALUES)]
    anchor = {"train": ["--json", str(tmp)], "simulate": ["--board", "icebreaker", "--json", str(tmp)],
              "demo": ["--board", "icebreaker", "--out", str(a_file), "--no-build"],
              "generate": ["--out", str(a_file)], "report": [str(tmp / "none.json")],
              "board train": ["--board", "icebreaker", "--port", "x", "--json", str(tmp)]}[command]
    status = main(argv + anchor)
    err = capsys.readouterr().err
    assert status == 2, (argv, err)
    errors = [line for line in err.splitlines() if "no --board/--config: the" not in line]
    assert len(errors) == 1 and errors[0].startswith(f"ddfa {command.split()[0]}"), (argv, err)
    assert ": error: " in errors[0], (argv, err)
