"""Build and run the cocotb bench (:mod:`sim.bench`) on Icarus or Verilator.

:func:`simulate` is ``ddfa simulate`` and what ``tests/test_sim_*.py`` call:

1. the processor's Verilog: generated from the configuration as ``ddfa generate``
   writes it (:func:`hdl.verilog.readmem_verilog`: the learned memories load the images
   of ``mem/`` with ``$readmemh``), or every ``*.v``/``*.sv`` file of a given directory
   (``--verilog DIR``: hand-edited Verilog, a post-synthesis netlist), and cell models
   (``models``: a netlist's library cells);
2. a build with cocotb's runner (:func:`sim.runner.get_runner`), together with the
   simulation top ``sim/hdl/ddfa_sim_top.v``. Builds are cached: the build directory is
   named by a hash of the simulator, the sources' contents and the options, so the same
   Verilog is compiled once (a Verilator build takes 10-30 s) and then reused. The
   images that ``$readmemh`` reads are not part of the build: both simulators read them
   when the simulation starts, relative to its working directory, where
   :func:`link_images` puts them;
3. the bench, in the simulator's process, with the job as JSON (``DDFA_SIM_JOB``);
4. the result: the bench's JSON plus ``sim_seconds`` and the performance figures of
   :func:`sim.perf.figures` (cycles per sample, MAC utilisation, phases).

With ``on_chip`` (``ddfa simulate --on-chip``, a configuration with
``hardware.dataset_store``) the bench trains from the dataset store instead of sample by
sample: the store image (:func:`prepare_store`) goes up through the host stream, the
processor's epoch runner trains whole epochs in its own order and evaluates the test
records, and the state is compared with :func:`golden.onchip.train_epochs` and
:func:`golden.onchip.evaluate` on the same image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from ddfa.config import Config, ConfigError
from ddfa.protocol import HostProtocol
from golden.fixed import FixedModel
from hdl.cycles import step_cycles
from hdl.verilog import IMAGE_DIR, VERILOG_NAME, processor_verilog, readmem_paths, readmem_verilog

from .golden_link import GoldenOracle, serve
from .runner import PUBLIC_VLT, SIMULATORS, build_args, get_runner, make_overrides

__all__ = ["Job", "simulate", "build", "prepare_samples", "prepare_store", "processor_sources", "link_images",
           "buffer_words", "DEFAULT_BUILD_DIR", "SIM_TOP", "REPO"]

REPO = Path(__file__).resolve().parent.parent
SIM_TOP = Path(__file__).resolve().parent / "hdl" / "ddfa_sim_top.v"
SIM_DUMP = Path(__file__).resolve().parent / "hdl" / "ddfa_sim_dump.v"       # Icarus waveforms
TOPLEVEL = "ddfa_sim_top"
#: Where builds are cached unless told otherwise (``--build-dir``, ``$DDFA_SIM_BUILD``).
DEFAULT_BUILD_DIR = Path(os.environ.get("DDFA_SIM_BUILD", "build/sim"))
#: Bytes of the command and reply buffers beyond the cached read-back batch.
SCRATCH_BYTES = 1 << 17


@dataclass
class Job:
    """What the bench is asked to do (``DDFA_SIM_JOB``)."""

    config: str                       # TOML file of the configuration
    result: str                       # JSON file the bench writes
    samples: str = ""                 # .npz of prepare_samples
    golden: str = "local"             # Unix socket of the golden model's server, or "local"
    simulator: str = "verilator"
    steps: int = 10
    check_every: int = 1              # full read-back every k steps (and after the last)
    test: int | str | None = None     # test samples to infer at the end ("all": every one)
    data_dir: str | None = None
    stall: int = 0                    # random gaps on the host stream: 0..15 (of 16)
    initial_check: bool = True        # compare the initial state too
    progress: bool = False
    on_chip: bool = False             # train from the dataset store (samples: prepare_store's .npz)
    epochs: int = 1                   # with on_chip: epochs of the stored training records
    step_cycles: int = 0              # with on_chip: hdl.cycles.step_cycles' total (when to poll RUN_STATUS)


def prepare_samples(cfg: Config, steps: int, test: int | str | None, data_dir: str | None, path: Path) -> dict:
    """Write the bench's samples to ``path`` (.npz), quantised to the act format:
    ``train_x``/``train_y`` the ``steps`` training samples in the golden order
    (:func:`golden.order.epoch_orders`, epoch after epoch), ``train_index`` their indices
    in the training set, ``test_x``/``test_y`` the first ``test`` test samples (all for
    ``"all"``, none for ``None``). The bench then needs neither the data set nor its loader."""
    from ddfa.data import load_config_dataset
    from golden.arith import quantize
    from golden.order import epoch_orders
    data = load_config_dataset(cfg, data_dir)
    n = data.x_train.shape[0]
    orders, idx = epoch_orders(n, cfg.model.seed), []
    while len(idx) < steps:
        idx += next(orders).tolist()
    idx = idx[:steps]
    q = lambda x: quantize(x, cfg.arith.act).numpy().astype(np.int32)
    N = 0 if not test else (data.x_test.shape[0] if test == "all" else min(int(test), data.x_test.shape[0]))
    arrays = {"train_x": q(data.x_train[idx]) if idx else np.zeros((0, n), np.int32),
              "train_y": data.y_train[idx].numpy().astype(np.int32), "train_index": np.asarray(idx, np.int64),
              "test_x": q(data.x_test[:N]), "test_y": data.y_test[:N].numpy().astype(np.int32)}
    np.savez(path, **arrays)
    return {"train_samples": n, "epochs": steps / n, "test_samples": N}


def prepare_store(cfg: Config, train_records: int | None, test: int | str | None,
                  data_dir: str | None) -> tuple[dict, dict]:
    """The dataset store's image for ``ddfa simulate --on-chip``: ``(arrays, info)``.

    ``arrays`` (the bench's ``.npz``): ``store`` the words of
    :func:`golden.onchip.store_image` for the data set cut to its first ``train_records``
    training records (None: all) and its first ``test`` test records (all for ``"all"``,
    none for ``None``), ``n_train``, ``n_test``. ``info``: ``train_samples`` (the stored
    training records), ``dataset_train_samples``, ``test_samples``, ``store_words``.
    Refuses (one-line :class:`~ddfa.config.ConfigError`) a cut that the data set cannot
    give and a data set that does not fit the store."""
    from ddfa.data import load_config_coded
    from golden.onchip import store_image
    coded = load_config_coded(cfg, data_dir)
    n = coded.n_train
    if train_records is not None and train_records > n:
        raise ConfigError("--steps", f"{train_records} training records asked, {coded.name} has {n}",
                          f"give --steps {n} or fewer (--on-chip: the first N training records, one epoch), "
                          f"or --epochs E for whole epochs")
    k = n if train_records is None else int(train_records)
    N = 0 if not test else (coded.n_test if test == "all" else min(int(test), coded.n_test))
    cut = replace(coded, x_train=coded.x_train[:k], y_train=coded.y_train[:k],
                  x_test=coded.x_test[:N], y_test=coded.y_test[:N])
    image = store_image(cfg, cut)
    arrays = {"store": np.asarray(image, dtype=np.int64), "n_train": k, "n_test": N}
    return arrays, {"train_samples": k, "dataset_train_samples": n, "test_samples": N, "store_words": len(image)}


def processor_sources(cfg: Config, verilog_dir: str | Path | None, work: Path) -> list[Path]:
    """The processor's Verilog files: those of ``verilog_dir``, or generated from ``cfg``
    into ``work`` as ``ddfa generate`` writes them (the Verilog and its ``mem/`` images).

    Generated Verilog is stored in a folder named from the sha256 of
    :func:`~hdl.verilog.processor_verilog` (which holds every memory's initial words), so
    that whatever shapes the processor (the configuration, the generator's code, the
    pinned Amaranth) gives a new folder, and :func:`build` (keyed on the sources'
    contents) never reuses a simulation of other Verilog."""
    if verilog_dir is not None:
        d = Path(verilog_dir)
        files = sorted(p for p in d.iterdir() if p.suffix in (".v", ".sv")) if d.is_dir() else []
        if not files:
            raise FileNotFoundError(f"no .v or .sv file in {d}")
        return files
    text = processor_verilog(cfg)
    key = hashlib.sha256(b"$readmemh\0" + text.encode()).hexdigest()[:16]   # never a folder of per-word Verilog
    folder = work / "gen" / key
    v = folder / f"{VERILOG_NAME}.v"
    if not v.is_file():
        (work / "gen").mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp", dir=work / "gen"))
        try:
            FixedModel(cfg).export_images(tmp / IMAGE_DIR)
            readmem, _ = readmem_verilog(text, cfg, tmp / IMAGE_DIR)
            (tmp / v.name).write_text(readmem)
            try:
                tmp.replace(folder)
            except OSError:           # written meanwhile by another process: use that one
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return [v]


def link_images(sources: list[Path], run_dir: Path) -> list[str]:
    """Make the files that the sources' ``$readmemh`` calls name with relative paths
    (``mem/W1_pe0.hex``, relative to each source's folder) reachable from ``run_dir``,
    the simulator's working directory: a symbolic link there to the first folder of each
    path (or to the file). Returns the paths.

    Raises
    ------
    FileNotFoundError
        An image is not beside the Verilog that reads it.
    """
    paths = []
    for src in sources:
        for rel in readmem_paths(src.read_text(errors="replace")):
            if Path(rel).is_absolute():
                continue
            if not (src.parent / rel).is_file():
                raise FileNotFoundError(f"{src} reads the memory image {rel!r} with $readmemh, but "
                                        f"{src.parent / rel} does not exist: keep the {Path(rel).parts[0]!r} "
                                        f"that ddfa generate wrote beside the Verilog")
            head = Path(rel).parts[0]
            link = run_dir / head
            if not link.exists() and not link.is_symlink():
                link.symlink_to((src.parent / head).resolve())
            paths.append(rel)
    return paths


def buffer_words(cfg: Config) -> tuple[int, int]:
    """``(IN_WORDS, OUT_WORDS)`` of the simulation top: the read-back batch (commands and
    replies) plus :data:`SCRATCH_BYTES`, in 64-bit words, rounded up to a power of two."""
    from .readback import read_plan
    proto = HostProtocol(cfg)
    plan = read_plan(proto)
    pow2 = lambda n: 1 << max(10, (n - 1).bit_length())
    return (pow2((len(plan.data) + 1024 + SCRATCH_BYTES) // 8 + 1),
            pow2((plan.reply_len + SCRATCH_BYTES) // 8 + 1))


def build(simulator: str, sources: list[Path], parameters: dict, build_root: Path,
          waves: bool = False, includes: list[Path] = (), netlist: bool = False) -> tuple[Path, float, bool]:
    """Build (or reuse) the simulation of ``sources`` + the simulation top;
    ``includes``: folders of the files the sources include (cell models); ``netlist``:
    the sources are a gate-level netlist and its cell models (:func:`sim.runner.build_args`).

    Returns ``(build_dir, build_seconds, reused)``."""
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; use one of {', '.join(SIMULATORS)}")
    h = hashlib.sha256()
    h.update(json.dumps([simulator, waves, parameters, build_args(simulator, netlist)], sort_keys=True).encode())
    for d in includes:
        for p in sorted(Path(d).iterdir()):
            if p.suffix in (".v", ".vh", ".sv", ".svh"):
                h.update(p.name.encode() + p.read_bytes())
    for p in sources + [SIM_TOP, SIM_DUMP, Path(__file__).with_name("runner.py"), PUBLIC_VLT]:
        h.update(p.read_bytes())
    key = h.hexdigest()[:16]
    bdir = (build_root / f"{simulator}-{key}").resolve()
    stamp = bdir / "ddfa-build.json"
    if stamp.is_file():
        return bdir, 0.0, True
    runner = get_runner(simulator)
    t0 = time.perf_counter()
    tmp = bdir.with_name(bdir.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    kw = build_args(simulator, netlist)
    extra = [SIM_TOP]
    if simulator == "icarus" and waves:          # our own dump module (see sim/hdl/ddfa_sim_dump.v)
        extra.append(SIM_DUMP)
        kw["build_args"] = kw.get("build_args", []) + ["-s", "ddfa_sim_dump"]
    try:
        with make_overrides():
            _quiet(runner.build, sources=[str(p) for p in sources + extra], hdl_toplevel=TOPLEVEL,
                   build_dir=tmp, parameters=parameters, waves=waves and simulator != "icarus", always=True,
                   log_file=tmp / "build.log", includes=[str(d) for d in includes], **kw)
    except BaseException:                        # Ctrl-C included: no half-built folder is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    dt = time.perf_counter() - t0
    for junk in tmp.glob("*.gch"):               # Verilator's precompiled headers: 150 MB, no longer needed
        junk.unlink()
    (tmp / "ddfa-build.json").write_text(json.dumps({"simulator": simulator, "sources": [str(p) for p in sources],
                                                     "parameters": parameters, "waves": waves,
                                                     "seconds": round(dt, 2)}, indent=1))
    try:
        tmp.replace(bdir)
    except OSError:                 # built meanwhile by another process: use that one
        shutil.rmtree(tmp, ignore_errors=True)
    return bdir, dt, False


def _run_with_oracle(run_bench, oracle, sock: Path) -> None:
    """Run ``run_bench`` (the simulator) in a thread while this thread serves ``oracle``
    on the Unix socket ``sock`` to the bench."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock))
    srv.listen(1)
    srv.settimeout(0.2)
    th = threading.Thread(target=run_bench, name="ddfa-simulator", daemon=True)
    th.start()
    try:
        while th.is_alive():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            c.settimeout(None)
            serve(oracle, Connection(c.detach()))
            break
        th.join()
    finally:
        srv.close()


def _reporting(step, on_step):
    """``step`` (the golden model's steps ``k0 .. k1-1``) that then calls ``on_step(k1)``."""
    def reporting_step(k0: int, k1: int) -> list[int]:
        answer = step(k0, k1)
        on_step(k1)
        return answer
    return reporting_step


def _quiet(fn, **kw):
    """Run a runner step; its console output goes to ``log_file`` (shown on failure)."""
    try:
        return fn(**kw)
    except (SystemExit, Exception) as exc:
        lf = kw.get("log_file")
        text = Path(lf).read_text()[-6000:] if lf and Path(lf).is_file() else ""
        raise RuntimeError(f"{fn.__name__} failed ({exc!r}):\n{text}") from None


def simulate(cfg: Config, simulator: str = "verilator", steps: int = 10, *, check_every: int = 1,
             test: int | str | None = None, verilog: str | Path | None = None, waves: bool = False,
             build_dir: str | Path | None = None, data_dir: str | None = None, stall: int = 0,
             progress: bool = False, golden: str = "remote", initial_check: bool = True,
             on_step=None, on_chip: bool = False, epochs: int = 1, models: list[Path] = (),
             includes: list[Path] = ()) -> dict:
    """Build (or reuse) and run the bench; the result dict of ``ddfa simulate``.

    ``on_chip``: train from the dataset store (the configuration needs
    ``hardware.dataset_store``): the store holds the first ``steps`` training records
    (None: all of them) and the first ``test`` test records; the processor trains
    ``epochs`` epochs of them in its own order (TRAIN_EPOCHS), ``check_every`` epochs per
    command with every word read back after each, then evaluates the test records
    (EVALUATE). ``steps * epochs`` training steps in all.
    ``golden``: ``"remote"`` serves the golden model from this process
    (:mod:`sim.golden_link`), ``"local"`` makes the bench build its own.
    ``initial_check``: also read back and compare the state before the first step.
    ``on_step``: called with the number of training steps the golden model has answered
    so far (with ``golden="remote"``), e.g. to move a progress bar.
    ``models``, ``includes``: Verilog files compiled with the processor's (the cell
    models of a netlist, :func:`boards.netlist.cell_models`) and the folders of the
    files they include."""
    from .perf import figures
    if on_chip and cfg.chip_store is None:
        raise ConfigError("--on-chip", f"configuration {cfg.name!r} has no dataset store",
                          "set hardware.dataset_store = true (--set hardware.dataset_store=true, "
                          "on a board with a store: icebreaker), or simulate without --on-chip")
    if on_chip and not 1 <= epochs <= 0xFFFF:
        raise ValueError(f"{epochs} epochs: 1..65535")
    store = prepare_store(cfg, steps, test, data_dir) if on_chip else None      # refusals before the build
    root = Path(build_dir) if build_dir is not None else DEFAULT_BUILD_DIR
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    t0 = time.perf_counter()
    sources = processor_sources(cfg, verilog, root)
    t_gen = time.perf_counter() - t0
    in_words, out_words = buffer_words(cfg)
    params = {"IN_WORDS": in_words, "OUT_WORDS": out_words}
    bdir, t_build, reused = build(simulator, sources + [Path(p) for p in models], params, root, waves=waves,
                                  includes=[Path(d) for d in includes], netlist=bool(models))
    run_dir = os.environ.get("DDFA_SIM_RUN_DIR") or None
    with tempfile.TemporaryDirectory(prefix="ddfa-sim-", dir=run_dir) as td, \
            tempfile.TemporaryDirectory(prefix="ddfa-g-") as sock_dir:      # short: socket paths are limited
        td = Path(td)
        link_images(sources, td)
        (td / "config.toml").write_text(cfg.to_toml())
        if store is not None:
            np.savez(td / "samples.npz", **store[0])
            data_info = store[1]
            steps = data_info["train_samples"]
        else:
            data_info = prepare_samples(cfg, steps, test, data_dir, td / "samples.npz")
        sock = None
        if golden == "remote":
            sock = Path(sock_dir) / "golden"
        job = Job(config=str(td / "config.toml"), result=str(td / "result.json"), samples=str(td / "samples.npz"),
                  golden=str(sock) if sock else "local", simulator=simulator, steps=steps,
                  check_every=check_every, test=test, data_dir=data_dir, stall=stall, progress=progress,
                  initial_check=initial_check, on_chip=on_chip, epochs=epochs,
                  step_cycles=step_cycles(cfg)["total"] if on_chip else 0)
        (td / "job.json").write_text(json.dumps(asdict(job)))
        env = {"DDFA_SIM_JOB": str(td / "job.json"), "OMP_NUM_THREADS": "1",
               "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "INFO")}
        runner = get_runner(simulator)
        log_file = td / "sim.log"
        t1 = time.perf_counter()
        err: list = []

        def run_bench():
            try:
                runner.test(test_module="sim.bench", testcase="train_on_chip" if on_chip else "train_bit_exact",
                            hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
                            build_dir=bdir, test_dir=td, extra_env=env, waves=waves, log_file=log_file,
                            results_xml=str(td / "results.xml"))
            except (SystemExit, Exception) as exc:      # the result file tells what happened
                err.append(exc)

        saved = os.environ.pop("PYTEST_CURRENT_TEST", None)    # else the runner sys.exits under pytest
        if str(REPO) not in sys.path:            # the runner hands this process's sys.path on
            sys.path.insert(0, str(REPO))
        try:
            if sock is None:
                run_bench()
            else:
                oracle = GoldenOracle(str(td / "config.toml"), str(td / "samples.npz"))
                if on_step is not None:
                    oracle.step = _reporting(oracle.step, on_step)
                _run_with_oracle(run_bench, oracle, sock)
        finally:
            if saved is not None:
                os.environ["PYTEST_CURRENT_TEST"] = saved
        t_sim = time.perf_counter() - t1
        log_text = log_file.read_text() if log_file.is_file() else ""
        rf = td / "result.json"
        if not rf.is_file():
            raise RuntimeError(f"the bench wrote no result ({err[0] if err else None!r}); simulator log:\n"
                               f"{log_text[-8000:]}")
        result = json.loads(rf.read_text())
        if waves:
            for name in ("dump.vcd", f"{TOPLEVEL}.fst"):
                for cand in (td / name, bdir / name):
                    if cand.is_file():
                        dest = root / f"waves-{simulator}-{cfg.name}{cand.suffix}"
                        shutil.copy(cand, dest)
                        result["waves"] = str(dest)
        result["log_tail"] = [l for l in log_text.splitlines() if "MISMATCH" in l][:5]
    result.update(data_info)
    h = hashlib.sha256()
    for p in sources:
        h.update(p.read_bytes())
    result.update({
        "verilog_sha256": h.hexdigest(),
        "simulator": simulator, "dataset": cfg.model.dataset, "config": cfg.name, "verilog": [str(p) for p in sources],
        "verilog_given": verilog is not None, "models": [str(p) for p in models], "configuration": cfg.to_dict(),
        "build_dir": str(bdir), "build_reused": reused, "build_seconds": round(t_build, 2),
        "generate_seconds": round(t_gen, 2), "sim_seconds": round(t_sim, 2),
    })
    result.update(figures(cfg, result))
    return result
