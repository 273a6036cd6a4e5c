"""``ddfa sweep``: a grid of tiny fixed-point trainings on a local Dask cluster of two
workers, its table, a failing job, a second run that runs only what is missing, the
checks of the spec, and the progress helper's quiet default.
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path

import pytest

from ddfa.cli import main
from ddfa.cli.progress import progress_bar, wants_progress
from ddfa.cli.sweep import job_complete, load_spec, pareto_front, run_job

ROOT = Path(__file__).resolve().parent.parent


def _spec(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


TINY = """\
    [sweep]
    command = "train"
    out = "{out}"
    name = "s{{seed}}-{{id}}"

    [args]
    board = "icebreaker"
    model = "fixed"
    epochs = 1
    threads = 1
    no-progress = true

    [grid]
    set = [["arith.lr_shift=6"], ["arith.lr_shift=7"]]
    seed = [0, 1]

    [[job]]
    dataset = "mnist"
    arch = "1x8"
    data-dir = "{empty}"
    seed = 0
"""


def _records(out: Path) -> dict[str, tuple[int, int]]:
    """Job name -> (the record's mtime in ns, the pid that ran it)."""
    return {p.name[:-len(".job.json")]: (p.stat().st_mtime_ns, json.loads(p.read_text())["pid"])
            for p in (out / "jobs").glob("*.job.json")}


def test_sweep_table_failure_and_resume(tmp_path, capsys):
    """Four trainings and one that fails (no MNIST files in its data folder) on two
    workers: every job is a row, the failure keeps its error line and does not stop
    the others. Run again after two results were lost and one left partial, only those
    three and the failed job run; the kept results are not touched."""
    out, empty = tmp_path / "out", tmp_path / "empty"
    empty.mkdir()
    spec = _spec(tmp_path, TINY.format(out=out, empty=empty))
    assert main(["sweep", str(spec), "--workers", "2"]) == 1          # one job failed
    table = json.loads((out / "sweep.json").read_text())
    rows = {r["name"]: r for r in table["jobs"]}
    assert len(rows) == 5
    ok = [r for r in rows.values() if r["status"] == "done"]
    bad = [r for r in rows.values() if r["status"] == "failed"]
    assert len(ok) == 4 and len(bad) == 1
    for r in ok:
        assert 0.5 < r["test_accuracy"] <= 1 and r["train_samples_per_s"] > 0
        assert r["id"] in r["name"] and Path(r["json"]).is_file()
        assert json.loads(Path(r["json"]).read_text())["command"] == r["command"]
    assert "train-images-idx3-ubyte" in bad[0]["error"] and bad[0]["exit"] == 2
    md = (out / "sweep.md").read_text()
    assert md.count("| done |") == 4 and "| failed |" in md and "train-images-idx3-ubyte" in md
    assert (out / "sweep.png").stat().st_size > 0
    assert "1 failed" in capsys.readouterr().out

    before = _records(out)
    names = sorted(r["name"] for r in ok)
    lost, partial, kept = names[:2], names[2], names[3]
    for n in lost:
        (out / f"{n}.json").unlink()
    (out / f"{partial}.json").write_text(json.dumps({"interrupted": True, "test_accuracy": None}))
    assert main(["sweep", str(spec), "--workers", "2"]) == 1
    after = _records(out)
    rerun = {n for n in after if after[n] != before[n]}
    assert rerun == {*lost, partial, bad[0]["name"]}
    assert after[kept] == before[kept]
    rows2 = {r["name"]: r for r in json.loads((out / "sweep.json").read_text())["jobs"]}
    assert {n for n, r in rows2.items() if r["kept"]} == {kept}
    assert [r["status"] for r in rows2.values()].count("done") == 4
    for n in (*lost, partial):
        assert rows2[n]["test_accuracy"] == rows[n]["test_accuracy"]        # the same run again

    capsys.readouterr()
    assert main(["sweep", str(spec), "--print"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 5 and sum(l.startswith("# kept: ") for l in printed) == 4


def test_job_in_process_and_completeness(tmp_path):
    """A job run in this process writes its record; a record of another argument list
    (same file name) makes the result incomplete."""
    spec = _spec(tmp_path, f"""\
        [sweep]
        command = "train"
        out = "{tmp_path / 'o'}"
        name = "fixed"
        [args]
        board = "icebreaker"
        model = "fixed"
        epochs = 1
        """)
    _, (job,) = load_spec(spec)
    assert not job_complete(job)
    rec = run_job(job)
    assert rec["status"] == "done" and rec["exit"] == 0 and rec["error"] is None
    assert job_complete(job)
    spec.write_text(spec.read_text().replace("epochs = 1", "epochs = 2"))
    _, (other,) = load_spec(spec)
    assert other["json"] == job["json"] and other["id"] != job["id"]
    assert not job_complete(other)


BAD = [
    ("[sweep]\ncommand = 'train'\nout = 'o'\n[grids]\nseed = [1]\n", "[grids]", "unknown section"),
    ("[sweep]\ncommand = 'train'\nout = 'o'\nworkers = 2\n", "[sweep] workers", "unknown key"),
    ("[sweep]\ncommand = 'generate'\nout = 'o'\n", "[sweep] command", "train"),
    ("[sweep]\ncommand = 'train'\n", "[sweep] out", "out ="),
    ("[sweep]\ncommand = 'train'\nout = 'o'\n[grid]\nsead = [1, 2]\n", "[grid] sead", "no option --sead"),
    ("[sweep]\ncommand = 'train'\nout = 'o'\n[args]\nconfig = 'nowhere.toml'\n", "[args] config", "no file"),
    ("[sweep]\ncommand = 'train'\nout = 'o'\n[grid]\nalgo = ['bp', 'sgd']\n", "job", "invalid choice: 'sgd'"),
    ("[sweep]\ncommand = 'train'\nout = 'o'\n[grid]\nset = ['arith.lr_shft=3']\n", "arith.lr_shft", "Fix"),
    ("[sweep]\ncommand = 'train'\nout = 'o'\nname = 'x-{seed}'\n[grid]\nseed = [1]\nalgo = ['bp', 'dfa']\n",
     "[sweep] name", "both named"),
    ("[sweep]\ncommand = 'train'\nout = 'o'\n[args]\njson = 'x.json'\n", "[args] json", "set by the sweep"),
    ("[sweep]\ncommand = 'train'\nout = 'o'\n[args]\nbn = 3\n", "[args] bn", "is a flag"),
    ("[sweep]\ncommand = 'train'\nout = 'o'\n[grid]\nseed = 3\n", "[grid] seed", "non-empty list"),
    ("[sweep\n", "spec.toml", "not valid TOML"),
]


@pytest.mark.parametrize("text, key, problem", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_spec_errors_are_one_line(tmp_path, capsys, monkeypatch, text, key, problem):
    monkeypatch.chdir(tmp_path)
    spec = _spec(tmp_path, text)
    assert main(["sweep", str(spec)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("ddfa sweep: error: ") and key in err and problem in err and "Fix:" in err, err
    assert not (tmp_path / "o").exists()                          # nothing ran


def test_paper_spec_is_the_scripts_protocol():
    """``examples/sweeps/paper-full100.toml`` lists the 320 runs of the full protocol
    with the arguments and file names ``scripts/reproduce_float.sh full100`` gives."""
    sweep, jobs = load_spec(ROOT / "examples/sweeps/paper-full100.toml")
    assert sweep["command"] == "train" and len(jobs) == 320
    want = set()
    for ds in ("mnist", "fashion-mnist"):
        for arch in ("1x800", "2x800", "3x800", "conv"):
            for seed in range(10):
                for algo in ("bp", "dfa", "dkp", "ddfa"):
                    want.add((f"{ds}-{arch}-{algo}-s{seed}.json",
                              f"--algo {algo} --dataset {ds} --arch {arch} --setting paper --epochs 100 "
                              f"--seed {seed} --threads 1"))
    got = set()
    for j in jobs:
        words = j["argv"][1:j["argv"].index("--json")]
        assert "--no-progress" in words
        words.remove("--no-progress")
        pairs = dict(zip(words[::2], words[1::2]))
        got.add((Path(j["json"]).name, " ".join(f"{k} {pairs[k]}" for k in
                 ("--algo", "--dataset", "--arch", "--setting", "--epochs", "--seed", "--threads"))))
    assert got == want
    _, small = load_spec(ROOT / "examples/sweeps/paper-full100.toml", arg_overrides=["epochs=1", "bn=true"],
                         grid_overrides=["seed=0", "dataset=[\"mnist\"]"])
    assert len(small) == 16 and all("--bn" in j["argv"] and "--epochs" in j["argv"] for j in small)
    assert all(j["argv"][j["argv"].index("--epochs") + 1] == "1" for j in small)


def test_example_spec_loads():
    sweep, jobs = load_spec(ROOT / "examples/sweeps/digits-lr.toml")
    assert sweep["command"] == "train" and len(jobs) == 6
    assert len({j["id"] for j in jobs}) == 6


def test_pareto_front():
    pts = [(1.0, 0.9), (2.0, 0.8), (1.5, 0.95), (0.5, 0.5), (2.0, 0.7)]
    assert pareto_front(pts) == [2, 1]                   # more samples/s and accuracy: better
    assert pareto_front(pts, x_larger_better=False) == [3, 0, 2]     # less logic: better


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_quiet_unless_terminal(tmp_path, capsys, monkeypatch):
    assert wants_progress(None, io.StringIO()) is False
    assert wants_progress(None, _Tty()) is True
    assert wants_progress(True, io.StringIO()) is True and wants_progress(False, _Tty()) is False
    bar = progress_bar(10, "x", "step", wants_progress(None))     # pytest's stderr is no terminal
    bar.update(10)
    bar.close()
    assert capsys.readouterr().err == ""
    monkeypatch.setattr("sys.stderr", _Tty())
    bar = progress_bar(10, "x", "step", wants_progress(None))
    bar.update(10)
    bar.close()
    assert "10/10" in sys.stderr.getvalue()
    monkeypatch.undo()
    # a command: no bar in a log, a bar where forced
    assert main(["train", "--board", "icebreaker", "--model", "fixed", "--epochs", "1",
                 "--json", str(tmp_path / "t.json")]) == 0
    assert "sample/s" not in capsys.readouterr().err
    assert main(["train", "--board", "icebreaker", "--model", "fixed", "--epochs", "1", "--progress"]) == 0
    assert "sample" in capsys.readouterr().err
