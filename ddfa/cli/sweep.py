"""``ddfa sweep SPEC.toml``: a grid or list of ``train``, ``simulate`` or ``build`` jobs on
Dask distributed, with one table of their results.

Examples
--------
::

    ddfa sweep examples/sweeps/digits-lr.toml --workers 2
    ddfa sweep examples/sweeps/paper-full100.toml --scheduler tcp://10.0.0.1:8786
    ddfa sweep examples/sweeps/paper-full100.toml --grid "seed=0 1" --arg epochs=1 --out build/smoke --print

The spec (TOML; ``docs/SWEEPS.md`` has the whole schema)::

    [sweep]
    command = "train"                 # train, simulate or build
    out = "results/sweep-lr"          # every job's JSON and log, the table, the plot
    name = "{algo}-s{seed}-{id}"      # optional: a job's file name; default "{command}-{id}"

    [args]                            # the arguments of every job: option = value
    board = "icebreaker"              # --board icebreaker;  true: a flag;  a list: repeated
    model = "fixed"

    [grid]                            # every combination of these values
    seed = [0, 1]
    set = [["arith.lr_shift=6"], ["arith.lr_shift=7"]]

    [[job]]                           # and/or jobs listed one by one (merged onto [args])
    seed = 9

A key is the command's long option without its dashes (``batch-size`` or
``batch_size``); ``json`` is the sweep's own. ``set`` values are added to those of
``[args]``, every other key replaces its ``[args]`` value. The spec and every job's
arguments (options, choices, configuration fields, files) are checked before anything
runs: a mistake is one line ``ddfa sweep: error: SPEC: KEY: problem. Fix: ...`` and exit
status 2.

Each job runs ``ddfa.cli.main([command, ...args, "--json", OUT/NAME.json])`` in a worker
process (output in ``OUT/jobs/NAME.log``) and leaves a record ``OUT/jobs/NAME.job.json`` (job id,
arguments, exit status, the error line). The job id is a stable hash of the command and
its arguments. A job whose JSON is complete (not a partial result of an interrupted or
diverged run) and whose record has the same id is kept, not run again: a sweep run
again after Ctrl-C, a crash or a failed job runs only what is missing. A failed job
(non-zero exit or an exception) is a row with its error line, never the end of the
sweep; the exit status is 1 when any job failed, 0 otherwise.

The table is ``OUT/sweep.json`` and ``OUT/sweep.md`` (one row per job), the plot
``OUT/sweep.png``: test accuracy against training samples/s, and against logic where
the jobs report it, the Pareto front marked.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import io
import itertools
import json
import logging
import os
import platform
import re
import shlex
import sys
import time
import tomllib
import traceback
from pathlib import Path

from . import COMMANDS, Parser, UsageError, config_from_args, main, positive_int
from ..config import ConfigError
from .output import OutputError, check_output_dir, write_json, write_text
from .progress import add_progress_args, progress_bar, wants_progress

__all__ = ["add_arguments", "run", "SpecError", "Job", "load_spec", "run_job", "job_complete", "pareto_front",
           "SWEEP_COMMANDS"]

#: The commands a sweep can run.
SWEEP_COMMANDS = ("train", "simulate", "build")
_SECTIONS = {"sweep": "the sweep itself", "args": "arguments of every job", "grid": "lists to combine",
             "job": "jobs listed one by one ([[job]])"}
_SWEEP_KEYS = ("command", "out", "name")
#: Options whose value is a path that must exist before the sweep starts: (file or folder).
_PATHS = {"config": "file", "data-dir": "folder", "verilog": "folder"}
#: Options the sweep sets itself.
_RESERVED = {"json": "the sweep writes each job's JSON to OUT/NAME.json"}
_DEFAULT_NAME = "{command}-{id}"


class SpecError(ValueError):
    """A sweep spec that cannot run; the message names the spec, the key, the problem and the fix."""

    def __init__(self, where: str, problem: str, fix: str):
        super().__init__(f"{where}: {problem}. Fix: {fix}.")


class Job(dict):
    """One job: ``id``, ``name``, ``command``, ``args`` (key -> value as in the spec),
    ``argv`` (for :func:`ddfa.cli.main`, ``--json`` included), ``json`` (``OUT/NAME.json``),
    ``log`` and ``record`` (``OUT/jobs/NAME.log``, ``OUT/jobs/NAME.job.json``; absolute paths)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC.toml", help="the sweep spec (see docs/SWEEPS.md)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="local worker processes, one thread each (default: the CPU count, at most the jobs)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="run on the workers of a running Dask scheduler instead of local ones")
    p.add_argument("--out", help="output folder (replaces [sweep] out)")
    p.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE",
                   help="set an argument of every job (replaces [args] KEY), e.g. --arg epochs=1 (repeatable)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=VALUES",
                   help="replace the grid's KEY: a TOML list or words, e.g. --grid 'seed=0 1' (repeatable)")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="list the jobs' commands (kept ones marked) and run nothing")
    add_progress_args(p, " (jobs done and failed)")


# ---------------------------------------------------------------------------------------
# The spec
# ---------------------------------------------------------------------------------------

def _toml_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _command_parser(command: str) -> argparse.ArgumentParser:
    p = Parser(prog=f"ddfa {command}")
    importlib.import_module(COMMANDS[command][0]).add_arguments(p)
    return p


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Long option name without dashes -> its action."""
    return {o[2:]: a for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"}


def _key(where: str, key: str, options: dict, command: str) -> str:
    """The option name of spec key ``key`` (underscores read as dashes)."""
    name = key.replace("_", "-")
    if name in _RESERVED:
        raise SpecError(f"{where} {key}", f"is set by the sweep ({_RESERVED[name]})", f"remove '{key}'")
    if name not in options:
        near = [o for o in options if o.startswith(name[:3])] or sorted(options)
        raise SpecError(f"{where} {key}", f"'ddfa {command}' has no option --{name}",
                        f"use one of its options, e.g. {', '.join(near[:6])} (see 'ddfa {command} --help')")
    return name


def _argv_of(where: str, name: str, value, action: argparse.Action) -> list[str]:
    """The command-line words of one ``name = value``."""
    flag = action.nargs == 0
    if isinstance(value, bool):
        if not flag:
            raise SpecError(f"{where} {name}", f"--{name} takes a value, not {str(value).lower()}",
                            f"write {name} = VALUE")
        return [f"--{name}"] if value else []
    if flag:
        raise SpecError(f"{where} {name}", f"--{name} is a flag, not {value!r}", f"write {name} = true or false")
    if isinstance(value, list):
        if not isinstance(action, argparse._AppendAction):
            raise SpecError(f"{where} {name}", f"--{name} takes one value, not a list",
                            f"write one value, or put the list under [grid] {name}")
        return [w for v in value for w in (f"--{name}", str(v))]
    if isinstance(value, (dict,)):
        raise SpecError(f"{where} {name}", "is a table", f"write {name} = VALUE")
    return [f"--{name}", str(value)]


def _resolve_paths(where: str, name: str, value, base: Path):
    kind = _PATHS.get(name)
    if kind is None or isinstance(value, bool):
        return value
    p = Path(str(value)).expanduser()
    p = p if p.is_absolute() else (base / p)
    ok = p.is_file() if kind == "file" else p.is_dir()
    if not ok:
        raise SpecError(f"{where} {name}", f"no {kind} {str(value)!r} (looked for {p})",
                        f"give an existing {kind}; relative paths are read from the current folder")
    return str(p.resolve())


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if k == "set":
            out["set"] = list(base.get("set", [])) + (v if isinstance(v, list) else [v])
        else:
            out[k] = v
    return out


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_") or "_"


def job_id(command: str, argv: list[str]) -> str:
    """The stable id of a job: the first 10 hex digits of the sha256 of its command and arguments."""
    return hashlib.sha256("\0".join([command, *argv]).encode()).hexdigest()[:10]


def load_spec(path: str | Path, out: str | None = None, arg_overrides=(), grid_overrides=()) -> tuple[dict, list[Job]]:
    """Read and check ``path``; ``(sweep, jobs)`` where ``sweep`` has ``command``,
    ``out`` (absolute) and ``name``. Raises :class:`SpecError` for any mistake, before
    anything runs: unknown sections and keys, a command a sweep cannot run, options the
    command lacks, values it refuses, configuration fields, files that do not exist,
    two jobs with one file name."""
    spec_path = Path(path)
    s = str(path)
    if not spec_path.is_file():
        raise SpecError(s, "no such file", "give the path of a sweep spec (.toml), e.g. examples/sweeps/digits-lr.toml")
    try:
        spec = tomllib.loads(spec_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise SpecError(s, "is not UTF-8", "save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(s, f"is not valid TOML ({exc})", "correct the TOML syntax at that line") from None
    for section in spec:
        if section not in _SECTIONS:
            raise SpecError(f"{s}: [{section}]", "unknown section",
                            "use [sweep], [args], [grid] and [[job]] (see docs/SWEEPS.md)")
    sweep = spec.get("sweep")
    if not isinstance(sweep, dict):
        raise SpecError(f"{s}: [sweep]", "missing", 'add [sweep] with command = "train" and out = "results/NAME"')
    for k in sweep:
        if k not in _SWEEP_KEYS:
            raise SpecError(f"{s}: [sweep] {k}", "unknown key", f"use {', '.join(_SWEEP_KEYS)}")
    command = sweep.get("command")
    if command not in SWEEP_COMMANDS:
        raise SpecError(f"{s}: [sweep] command", f"{command!r} is not a command a sweep runs",
                        f"write command = one of {', '.join(map(repr, SWEEP_COMMANDS))}")
    out = out if out is not None else sweep.get("out")
    if not isinstance(out, str) or not out:
        raise SpecError(f"{s}: [sweep] out", "missing", 'write out = "results/NAME" (or give --out DIR)')
    name_tpl = sweep.get("name", _DEFAULT_NAME)
    if not isinstance(name_tpl, str) or not name_tpl:
        raise SpecError(f"{s}: [sweep] name", f"{name_tpl!r} is not a text", 'write e.g. name = "{algo}-s{seed}-{id}"')

    parser = _command_parser(command)
    options = _options(parser)
    base = Path.cwd()

    def section(title: str, table, lists: bool) -> dict:
        if not isinstance(table, dict):
            raise SpecError(f"{s}: {title}", "is not a table", f"write {title} with key = value lines")
        got = {}
        for k, v in table.items():
            name = _key(f"{s}: {title}", k, options, command)
            values = v if lists else [v]
            if lists and (not isinstance(v, list) or not v):
                raise SpecError(f"{s}: {title} {k}", f"{v!r} is not a non-empty list",
                                f"write --grid '{k}=VALUE VALUE ...' or a TOML list [VALUE, ...]"
                                if title == "--grid" else f"write {k} = [VALUE, ...]")
            checked = []
            for one in values:
                if name == "set" and lists and isinstance(one, str):
                    one = [one]
                if name == "set" and not lists and isinstance(one, str):
                    one = [one]
                _argv_of(f"{s}: {title}", name, one, options[name])
                checked.append(_resolve_paths(f"{s}: {title}", name, one, base))
            got[name] = checked if lists else checked[0]
        return got

    args = section("[args]", spec.get("args", {}), lists=False)
    for item in arg_overrides:
        if "=" not in item:
            raise SpecError(f"--arg {item!r}", "has no '='", "write --arg KEY=VALUE, e.g. --arg epochs=1")
        k, v = item.split("=", 1)
        args.update(section("--arg", {k.strip(): _toml_value(v.strip())}, lists=False))
    grid = section("[grid]", spec.get("grid", {}), lists=True)
    for item in grid_overrides:
        if "=" not in item:
            raise SpecError(f"--grid {item!r}", "has no '='", "write --grid KEY=VALUES, e.g. --grid 'seed=0 1 2'")
        k, v = item.split("=", 1)
        v = v.strip()
        values = _toml_value(v) if v.startswith("[") else [_toml_value(w) for w in v.split()]
        grid.update(section("--grid", {k.strip(): values}, lists=True))
    listed = spec.get("job", [])
    if not isinstance(listed, list):
        raise SpecError(f"{s}: job", "is not a list of tables", "write each job as a [[job]] table")
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else []
    points += [section(f"[[job]] {i + 1}", j, lists=False) for i, j in enumerate(listed)]
    if not points:
        points = [{}]

    out_dir = Path(out).expanduser()
    out_dir = (out_dir if out_dir.is_absolute() else base / out_dir).resolve()
    jobs: list[Job] = []
    names: dict[str, int] = {}
    for n, point in enumerate(points):
        merged = _merge(args, point)
        argv = [w for k, v in merged.items() for w in _argv_of(s, k, v, options[k])]
        jid = job_id(command, argv)
        fields = {k.replace("-", "_"): ("+".join(map(str, v)) if isinstance(v, list) else v)
                  for k, v in merged.items()}
        try:
            name = _safe(name_tpl.format(id=jid, command=command, **fields))
        except (KeyError, IndexError, ValueError) as exc:
            raise SpecError(f"{s}: [sweep] name", f"{name_tpl!r} names {exc} which job {n + 1} does not have",
                            f"use {{id}}, {{command}} or keys every job has: {', '.join(sorted(fields)) or '(none)'}") \
                from None
        if name in names:
            raise SpecError(f"{s}: [sweep] name", f"jobs {names[name] + 1} and {n + 1} are both named {name!r}",
                            "put every key that varies (or {id}) into the name")
        names[name] = n
        full = [command, *argv, "--json", str(out_dir / f"{name}.json")]
        if command == "build" and "out" not in merged:
            full += ["--out", str(out_dir / f"{name}.build")]
        try:
            parsed = parser.parse_args(full[1:])
            parsed.command = command
            with contextlib.redirect_stderr(io.StringIO()):
                config_from_args(parsed, software_only=command == "train")
        except UsageError as exc:
            raise SpecError(f"{s}: job {name}", str(exc).replace(f"ddfa {command}: error: ", ""),
                            "correct that value in the spec") from None
        except ConfigError as exc:
            raise SpecError(f"{s}: job {name}", str(exc).rstrip("."), "correct that value in the spec") from None
        jobs.append(Job(id=jid, name=name, command=command, args=merged, argv=full,
                        json=str(out_dir / f"{name}.json"), log=str(out_dir / "jobs" / f"{name}.log"),
                        record=str(out_dir / "jobs" / f"{name}.job.json")))
    return {"command": command, "out": str(out_dir), "name": name_tpl, "spec": str(spec_path)}, jobs


# ---------------------------------------------------------------------------------------
# One job (runs on a worker)
# ---------------------------------------------------------------------------------------

def _read_json(path) -> dict | None:
    try:
        r = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return r if isinstance(r, dict) else None


def job_complete(job: dict) -> bool:
    """Whether ``job`` need not run again: its record has its id and its JSON is a whole
    result (not the partial one of an interrupted or diverged run, not a build without
    a bitstream)."""
    record, r = _read_json(job["record"]), _read_json(job["json"])
    if record is None or r is None or record.get("id") != job["id"]:
        return False
    if r.get("interrupted") or r.get("diverged"):
        return False
    if job["command"] == "train":
        return r.get("test_accuracy") is not None
    if job["command"] == "simulate":
        return r.get("bit_exact") is not None
    return bool(r.get("bitstream"))


def _error_line(text: str) -> str | None:
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for l in reversed(lines):
        if "error" in l.lower() or "mismatch" in l.lower():
            return l
    return lines[-1] if lines else None


def run_job(job: dict) -> dict:
    """Run ``job`` in this process (``ddfa.cli.main``, its output to its log file) and
    write its record; the record: ``id``, ``name``, ``argv``, ``status`` (``done`` or
    ``failed``), ``exit`` (the exit status, None after an exception), ``error`` (the
    error line), ``seconds``, ``host``."""
    t0 = time.time()
    code, error = None, None
    saved = sys.argv
    Path(job["log"]).parent.mkdir(parents=True, exist_ok=True)
    with open(job["log"], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        print("$ ddfa " + shlex.join(job["argv"]), flush=True)
        sys.argv = ["ddfa", *job["argv"]]        # what 'ddfa train' records as its command
        try:
            code = main(list(job["argv"]))
        except (Exception, SystemExit) as exc:
            traceback.print_exc(file=log)
            error = (f"{type(exc).__name__}: {exc}".splitlines() or [type(exc).__name__])[0]
        finally:
            sys.argv = saved
    if code != 0 and error is None:
        error = _error_line(Path(job["log"]).read_text(errors="replace")) or f"exit status {code}"
    record = {"id": job["id"], "name": job["name"], "argv": job["argv"], "status": "done" if code == 0 else "failed",
              "exit": code, "error": error, "seconds": round(time.time() - t0, 2), "host": platform.node(),
              "pid": os.getpid()}
    write_json(job["record"], record, "[sweep] out")
    return record


# ---------------------------------------------------------------------------------------
# The table and the plot
# ---------------------------------------------------------------------------------------

METRICS = ("test_accuracy", "bit_exact", "fmax_mhz", "train_samples_per_s", "logic")


def _metrics(command: str, r: dict | None) -> dict:
    if not r:
        return {}
    m = {"test_accuracy": r.get("test_accuracy"), "bit_exact": r.get("bit_exact"), "fmax_mhz": r.get("fmax_mhz"),
         "train_samples_per_s": r.get("train_samples_per_s", r.get("samples_per_s"))}
    logic = (r.get("resources") or {}).get("logic") if isinstance(r.get("resources"), dict) else None
    if isinstance(logic, dict):
        m["logic"] = logic.get("used")
    return {k: v for k, v in m.items() if v is not None}


def table_rows(jobs: list[Job], records: dict[str, dict], kept: set[str]) -> list[dict]:
    """One row per job, in the spec's order: its arguments, status and figures."""
    rows = []
    for j in jobs:
        rec = records.get(j["id"])
        row = {"id": j["id"], "name": j["name"], "args": j["args"], "command": "ddfa " + shlex.join(j["argv"]),
               "json": j["json"], "status": rec["status"] if rec else "pending", "kept": j["id"] in kept,
               "exit": rec.get("exit") if rec else None, "error": rec.get("error") if rec else None,
               "seconds": rec.get("seconds") if rec else None}
        if rec:                                   # a failed job's figures too (a simulate mismatch)
            row.update(_metrics(j["command"], _read_json(j["json"])))
        rows.append(row)
    return rows


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return " ".join(map(str, v))
    return str(v).replace("|", "\\|")


def table_markdown(sweep: dict, rows: list[dict]) -> str:
    varying = [k for k in dict.fromkeys(k for r in rows for k in r["args"])
               if len({json.dumps(r["args"].get(k)) for r in rows}) > 1]
    metrics = [m for m in METRICS if any(m in r for r in rows)]
    head = ["job", "id", *varying, "status", *metrics, "seconds", "error"]
    done = sum(r["status"] == "done" for r in rows)
    failed = sum(r["status"] == "failed" for r in rows)
    lines = [f"# ddfa sweep: {Path(sweep['spec']).name}", "",
             f"{len(rows)} {sweep['command']} jobs: {done} done, {failed} failed, "
             f"{len(rows) - done - failed} pending.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        status = r["status"] + (" (kept)" if r["kept"] else "")
        cells = [r["name"], r["id"], *(_cell(r["args"].get(k)) for k in varying), status,
                 *(_cell(r.get(m)) for m in metrics), _cell(r["seconds"]), _cell(r["error"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pareto_front(points: list[tuple[float, float]], x_larger_better: bool = True) -> list[int]:
    """Indices of the points no other point beats in both ``x`` and ``y`` (``y`` larger
    is better; ``x`` larger or smaller as said), sorted by ``x``."""
    sign = 1 if x_larger_better else -1
    front = []
    for i, (x, y) in enumerate(points):
        beaten = any((sign * x2 >= sign * x and y2 >= y) and (sign * x2 > sign * x or y2 > y)
                     for j, (x2, y2) in enumerate(points) if j != i)
        if not beaten:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def plot(rows: list[dict], path: Path) -> bool:
    """``sweep.png``: test accuracy against training samples/s, and against logic where
    the rows have it; the Pareto front marked. False when no row has the figures."""
    panels = [(x, lbl, larger) for x, lbl, larger in
              (("train_samples_per_s", "training samples/s", True), ("logic", "logic (cells / LUTs)", False))
              if any(x in r and "test_accuracy" in r for r in rows)]
    if not panels:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (x, label, larger) in zip(axes[0], panels):
        pts = [(r[x], r["test_accuracy"], r["name"]) for r in rows if x in r and "test_accuracy" in r]
        xy = [(float(a), float(b)) for a, b, _ in pts]
        ax.scatter([p[0] for p in xy], [p[1] for p in xy], s=18, color="tab:blue", label="job")
        front = pareto_front(xy, larger)
        ax.plot([xy[i][0] for i in front], [xy[i][1] for i in front], "o-", color="tab:red", mfc="none", ms=9,
                label="Pareto front")
        for i in front:
            ax.annotate(pts[i][2], xy[i], fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_table(sweep: dict, jobs: list[Job], records: dict, kept: set[str], with_plot: bool = True) -> list[dict]:
    out = Path(sweep["out"])
    rows = table_rows(jobs, records, kept)
    write_json(out / "sweep.json", {"spec": sweep["spec"], "command": sweep["command"], "out": sweep["out"],
                                    "jobs": rows}, "[sweep] out")
    write_text(out / "sweep.md", table_markdown(sweep, rows), "[sweep] out")
    if with_plot:
        plot(rows, out / "sweep.png")
    return rows


# ---------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------

def _client(args, n_jobs: int):
    """A Dask client: of ``--scheduler``, else of a new local cluster (processes, one
    thread each); and the cluster to close (None for a scheduler)."""
    from dask.distributed import Client, LocalCluster           # heavy: imported when a sweep runs
    if args.scheduler:
        try:
            return Client(args.scheduler, timeout="10s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise SpecError(f"--scheduler {args.scheduler}", f"cannot reach the scheduler ({exc})",
                            "start one with 'dask scheduler' and give its tcp://HOST:PORT") from None
    n = args.workers or max(1, min(n_jobs, os.cpu_count() or 1))
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def run(args: argparse.Namespace) -> int:
    try:
        sweep, jobs = load_spec(args.spec, args.out, args.arg, args.grid)
        check_output_dir(sweep["out"], "[sweep] out")
    except (SpecError, OutputError) as exc:
        print(f"ddfa sweep: error: {exc}", file=sys.stderr)
        return 2
    kept = {j["id"] for j in jobs if job_complete(j)}
    records = {j["id"]: _read_json(j["record"]) for j in jobs if j["id"] in kept}
    todo = [j for j in jobs if j["id"] not in kept]
    if args.print_only:
        for j in jobs:
            print(("# kept: " if j["id"] in kept else "") + "ddfa " + shlex.join(j["argv"]))
        return 0
    print(f"ddfa sweep: {len(jobs)} {sweep['command']} jobs, {len(kept)} kept from an earlier run, "
          f"{len(todo)} to run -> {sweep['out']}", file=sys.stderr)
    if todo:
        try:
            client, cluster = _client(args, len(todo))
        except SpecError as exc:
            print(f"ddfa sweep: error: {exc}", file=sys.stderr)
            return 2
        _run_jobs(client, cluster, args, sweep, jobs, todo, records, kept)
    rows = write_table(sweep, jobs, records, kept)
    failed = [r for r in rows if r["status"] == "failed"]
    print(f"ddfa sweep: {len(rows)} jobs: {len(rows) - len(failed)} done ({len(kept)} kept), "
          f"{len(failed)} failed; table {Path(sweep['out']) / 'sweep.md'}")
    for r in failed:
        print(f"  failed {r['name']}: {r['error']}")
    return 1 if failed else 0


def _run_jobs(client, cluster, args, sweep: dict, jobs: list[Job], todo: list[Job], records: dict,
              kept: set[str]) -> None:
    """Run ``todo`` on ``client``'s workers, recording each job as it ends; close the
    client and ``cluster`` (None: a scheduler's, left running)."""
    from dask.distributed import as_completed
    bar = progress_bar(len(todo), "sweep", "job", wants_progress(args.progress))
    failed = 0
    try:
        futures = {client.submit(run_job, dict(j), key=f"ddfa-sweep-{j['id']}-{time.time_ns()}", pure=False,
                                 retries=0): j for j in todo}
        for fut in as_completed(futures):
            j = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:            # the worker died (killed, out of memory)
                rec = {"id": j["id"], "name": j["name"], "argv": j["argv"], "status": "failed", "exit": None,
                       "error": (f"{type(exc).__name__}: {exc}".splitlines() or ["worker lost"])[0],
                       "seconds": None}
                write_json(j["record"], rec, "[sweep] out")
            records[j["id"]] = rec
            failed += rec["status"] != "done"
            bar.set_postfix(failed=failed)
            bar.update(1)
            write_table(sweep, jobs, records, kept, with_plot=False)
    except KeyboardInterrupt:
        done = sum(1 for j in todo if j["id"] in records)
        write_table(sweep, jobs, records, kept)
        raise KeyboardInterrupt(f"{done} of {len(todo)} jobs ran; run the sweep again to run the rest") from None
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
