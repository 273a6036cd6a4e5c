"""``ddfa demo``: the whole flow on the embedded default, with one summary.

::

    make demo                                   # = ddfa demo (iCEBreaker, digits)
    ddfa demo --board icebreaker --epochs 1 --test all --out build/demo
    ddfa demo --steps 200 --test 100 --no-build # simulation only, quicker
    ddfa demo --compare-dfa                     # the float DDFA-vs-DFA comparison instead

Three stages, each a Python call of the module that does it alone:

1. **generate** (:func:`ddfa.cli.generate.generate`): the processor's Verilog, memory images
   and report into ``OUT/generated``;
2. **simulate** (:func:`sim.simulate.simulate`): *that* Verilog on Verilator (or
   Icarus), trained on real samples through the host byte stream (default: one epoch of
   the training set) and then a test pass, every memory word read back and compared
   with the fixed-point golden model after every ``--check-every`` steps; the measured
   cycles per training sample and MAC utilisation;
3. **build** (:func:`boards.build.build`): the board's bitstream with the open toolchain
   into ``OUT/bitstream``: fmax, timing, resources used and available.

Then one summary, printed and written as JSON (``OUT/summary.json``, ``--json``): test
accuracy (RTL and golden), bit-exact, cycles per sample (measured and ideal), MAC
utilisation, fmax and timing, resources, the training rate on the chip
(``train_samples_per_s`` = fmax / measured cycles per sample) next to the authors' code
on a CPU (:data:`AUTHORS_CPU_SAMPLES_PER_S`), and the rate the UART link can feed
(``link_samples_per_s``).

A failed stage does not hide the others: the summary is always printed and written, the
failure stated in it, and the exit status names the first failed stage in flow order:

====  ==================================================================================
0     every stage passed: bit-exact, bitstream built, timing met
1     the RTL simulation is not bit-exact, or the simulator failed
2     a configuration error (nothing ran) or a missing tool (``ddfa build``'s code too)
3     no bitstream: the design does not fit the device, or synthesis/place-and-route failed
4     the bitstream was built but timing is not met at the target clock
====  ==================================================================================
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import add_config_args, config_from_args, count_or_all, nonnegative_int, positive_float, positive_int
from ..config import Config, ConfigError
from .output import check_output_dir, check_output_file, write_json, write_text

__all__ = ["add_arguments", "run", "run_demo", "format_summary", "exit_status", "compare_golden",
           "AUTHORS_CPU_SAMPLES_PER_S", "EXIT"]

#: Training samples per second of the authors' PyTorch code (DDFA, MNIST 1x800, batch of
#: one) on a two-core CPU: the software baseline (``docs/RESULTS-float.md``, "Training throughput").
AUTHORS_CPU_SAMPLES_PER_S = 360

#: Exit statuses, by the first failed stage (module docstring).
EXIT = {"ok": 0, "simulate": 1, "config": 2, "toolchain": 2, "no_bitstream": 3, "timing": 4}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--epochs", type=positive_float, help="training steps in epochs of the training set (default 1)")
    g.add_argument("--steps", type=positive_int, help="training steps (instead of --epochs)")
    p.add_argument("--test", type=count_or_all, default="all", metavar="N|all",
                   help="test samples inferred in simulation after training (default all; 0: none)")
    p.add_argument("--check-every", type=positive_int, default=1, metavar="K",
                   help="read back and compare every memory word every K steps and after the last (default 1)")
    p.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator")
    p.add_argument("--out", default="build/demo", metavar="DIR",
                   help="generated Verilog, bitstream and summary go here (default build/demo)")
    p.add_argument("--json", metavar="PATH", help="write the summary here (default OUT/summary.json)")
    p.add_argument("--no-build", action="store_true",
                   help="skip the bitstream (the summary says so; exit status from the other stages)")
    p.add_argument("--pnr-seed", type=nonnegative_int, help="nextpnr placement seed")
    p.add_argument("--sim-build-dir", metavar="DIR", help="Verilator/Icarus build cache (default build/sim)")
    p.add_argument("--compare-dfa", action="store_true",
                   help="instead: train the float golden model with DDFA and with random DFA and compare them")


# --------------------------------------------------------------------------------------
# The flow
# --------------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print(f"ddfa demo: {msg}", file=sys.stderr, flush=True)


def run_demo(cfg: Config, out: str | Path = "build/demo", *, epochs: float | None = 1.0, steps: int | None = None,
             test: int | str | None = "all", check_every: int = 1, simulator: str = "verilator",
             build_bitstream: bool = True, pnr_seed: int | None = None, sim_build_dir: str | Path | None = None,
             data_dir: str | None = None, log=_log) -> dict:
    """Run the three stages for ``cfg`` into ``out``; the summary (a dict; see
    :func:`format_summary`), with ``exit_status`` set. Never raises for a failed stage:
    the failure is in the summary. Raises :class:`~ddfa.config.ConfigError` (before
    anything runs) for a configuration the processor cannot be built from."""
    from hdl.top import check_hardware
    check_hardware(cfg)
    t_start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if steps is None:
        from ..data import load_config_dataset
        steps = round((1.0 if epochs is None else epochs) * load_config_dataset(cfg, data_dir).x_train.shape[0])
    if steps < 1:
        raise ConfigError("--steps/--epochs", f"{steps} training steps", "train for at least one step")
    board = cfg.board
    s: dict = {
        "config": cfg.name, "board": board.name, "device": board.device, "dataset": cfg.model.dataset,
        "layers": list(cfg.model.layers), "pes": list(cfg.hardware.pes), "algorithm": cfg.model.algorithm,
        "target_mhz": cfg.clock_mhz, "baud": cfg.hardware.baud,
        "authors_cpu_samples_per_s": AUTHORS_CPU_SAMPLES_PER_S,
        "stages": {}, "failures": [],
    }

    # 1. generate ------------------------------------------------------------------------
    from .generate import generate
    gen_dir = out / "generated"
    log(f"[1/3] generate {cfg.name} ({'-'.join(map(str, cfg.model.layers))}, PEs {list(cfg.hardware.pes)}) "
        f"-> {gen_dir}")
    t0 = time.perf_counter()
    report = generate(cfg, gen_dir, force=True)          # OUT/generated is the demo's own folder
    s["stages"]["generate"] = {"ok": True, "seconds": round(time.perf_counter() - t0, 1), "dir": str(gen_dir),
                               "verilog": str(gen_dir / report["verilog"])}
    s["model_cycles_per_sample"] = report["cycles"]["total"]
    s["multipliers"] = {"netlist": report["multipliers"]["netlist"], "board": report["multipliers"]["board"]}

    # 2. simulate ------------------------------------------------------------------------
    from sim.simulate import simulate
    log(f"[2/3] simulate {steps} training steps and {test if test else 'no'} test samples on {simulator}, "
        f"bit for bit against the golden model (read-back every {check_every} steps)")
    t0 = time.perf_counter()
    st: dict = {"ok": False, "simulator": simulator, "steps_asked": steps, "check_every": check_every}
    try:
        r = simulate(cfg, simulator, steps, check_every=check_every, test=test or None, verilog=gen_dir,
                     build_dir=sim_build_dir, data_dir=data_dir)
    except Exception as exc:             # a simulator or bench failure: stated, not raised
        st["error"] = f"{type(exc).__name__}: {str(exc)[-2000:]}"
        s["failures"].append(("simulate", f"the RTL simulation failed: {type(exc).__name__}: "
                                          f"{str(exc).splitlines()[0] if str(exc) else ''}"))
    else:
        write_json(out / "simulate.json", r, "--out")
        st.update({"ok": bool(r["bit_exact"]), "steps": r["steps"], "checks": r["checks"],
                   "epochs": round(r.get("epochs", 0.0), 4), "sim_seconds": r["sim_seconds"],
                   "build_seconds": r["build_seconds"], "build_reused": r["build_reused"],
                   "json": str(out / "simulate.json")})
        s.update({"bit_exact": bool(r["bit_exact"]), "train_steps": r["steps"],
                  "train_epochs": round(r.get("epochs", 0.0), 4),
                  "test_samples": r.get("test_samples") or 0,
                  "test_accuracy_rtl": r.get("test_accuracy"), "test_accuracy_golden": r.get("golden_test_accuracy"),
                  "cycles_per_sample": r.get("cycles_per_sample"),
                  "ideal_cycles_per_sample": r.get("ideal_cycles_per_sample"),
                  "mac_utilization": r.get("mac_utilization"),
                  "phase_cycles": r.get("phase_cycles"), "state_hash": r.get("state_hash")})
        if not r["bit_exact"]:
            from sim.bench import mismatch_text
            why = mismatch_text(r["first_mismatch"]) if r.get("first_mismatch") else "not bit-exact"
            st["first_mismatch"] = r.get("first_mismatch")
            s["failures"].append(("simulate", f"the RTL is NOT bit-exact: {why}"))
    st["seconds"] = round(time.perf_counter() - t0, 1)
    s["stages"]["simulate"] = st
    s.setdefault("bit_exact", False)
    cps = s.get("cycles_per_sample") or s["model_cycles_per_sample"]
    s["cycles_per_sample_source"] = "measured (RTL simulation)" if s.get("cycles_per_sample") else \
        "hdl.cycles model (the simulation gave none)"
    s["train_samples_per_s_at_target"] = round(cfg.clock_mhz * 1e6 / cps, 1)

    # 3. build ---------------------------------------------------------------------------
    from boards.build import link_samples_per_s
    lsps = link_samples_per_s(cfg)
    s["link_samples_per_s"] = round(lsps, 1) if lsps else None
    s.update({"fmax_mhz": None, "timing_met": None, "resources": {}, "train_samples_per_s": None,
              "speedup_vs_authors_cpu": None})
    if build_bitstream:
        _build_stage(cfg, out / "bitstream", s, cps, pnr_seed, log)
    else:
        s["stages"]["build"] = {"ok": None, "status": "skipped (--no-build)"}

    s["failures"] = [{"stage": k, "reason": v} for k, v in s["failures"]]
    s["exit_status"] = exit_status(s)
    s["wall_seconds"] = round(time.perf_counter() - t_start, 1)
    return s


def _build_stage(cfg: Config, bdir: Path, s: dict, cps: float, seed: int | None, log) -> None:
    from boards.build import BuildFailed, build
    from boards.toolchain import ToolchainError
    from boards.top import ProcessorUnavailable, processor_top
    log(f"[3/3] build the {cfg.board.name} bitstream ({cfg.board.device}, {cfg.clock_mhz:g} MHz) with "
        f"Yosys and nextpnr -> {bdir}")
    t0 = time.perf_counter()
    b: dict = {"ok": False, "dir": str(bdir)}
    result = None
    try:
        result = build(cfg, processor_top(cfg), bdir, seed=seed)
    except (ToolchainError, ProcessorUnavailable) as exc:
        b.update(status="toolchain error", error=str(exc))
        s["failures"].append(("toolchain", f"the build could not run: {exc}"))
    except BuildFailed as exc:
        b.update(status="not built", error=str(exc))
        s["failures"].append(("no_bitstream", f"no bitstream: {exc}"))
        if exc.partial is not None:
            s["resources"] = _resources(exc.partial.resources)
            b["logs"] = exc.partial.logs
    except Exception as exc:             # a tool crashed in some other way: stated, not raised
        b.update(status="not built", error=f"{type(exc).__name__}: {exc}")
        s["failures"].append(("no_bitstream", f"no bitstream: {type(exc).__name__}: {exc}"))
    b["seconds"] = round(time.perf_counter() - t0, 1)
    if result is not None:
        write_text(bdir / "build.json", result.to_json() + "\n", "--out")
        b.update(ok=bool(result.timing_met), status="built", bitstream=result.bitstream,
                 json=str(bdir / "build.json"), logs=result.logs)
        s.update({"fmax_mhz": result.fmax_mhz, "timing_met": bool(result.timing_met),
                  "clock_mhz": result.clock_mhz, "resources": _resources(result.resources),
                  "uart_divisor": result.uart_divisor})
        if result.fmax_mhz:
            s["train_samples_per_s"] = round(result.fmax_mhz * 1e6 / cps, 1)
            s["speedup_vs_authors_cpu"] = round(s["train_samples_per_s"] / AUTHORS_CPU_SAMPLES_PER_S, 1)
        if not result.timing_met:
            s["failures"].append(("timing", f"timing NOT met: fmax {result.fmax_mhz} MHz < target "
                                            f"{result.clock_mhz:g} MHz"))
    s["stages"]["build"] = b


def _resources(r: dict) -> dict:
    keep = ("logic", "ff", "dsp", "ebr", "spram", "pll", "io")
    return {k: {"used": v["used"], "available": v["available"], **({"unit": v["unit"]} if "unit" in v else {})}
            for k, v in r.items() if k in keep}


def exit_status(s: dict) -> int:
    """The exit status of a summary: the first failed stage's (module docstring)."""
    stages = [f["stage"] if isinstance(f, dict) else f[0] for f in s.get("failures", [])]
    for key in ("simulate", "config", "toolchain", "no_bitstream", "timing"):
        if key in stages:
            return EXIT[key]
    return EXIT["ok"]


# --------------------------------------------------------------------------------------
# The summary
# --------------------------------------------------------------------------------------

def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def _num(x, fmt="{:,.0f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def format_summary(s: dict) -> str:
    """The summary as printed: one line per figure, failures stated at the end."""
    sim = s["stages"].get("simulate", {})
    bld = s["stages"].get("build", {})
    lines = [f"== ddfa demo: {s['config']} on {s['board']} ({s['device']}): {s['dataset']}, "
             f"{'-'.join(map(str, s['layers']))}, PEs {s['pes']}, {s['algorithm']} =="]
    if "steps" in sim:
        lines.append(f"trained in RTL simulation : {s['train_steps']} steps ({s['train_epochs']:g} "
                     f"epoch{'' if s['train_epochs'] == 1 else 's'}) on "
                     f"{sim['simulator']}, {sim['sim_seconds']:.0f} s")
        lines.append(f"bit-exact                 : {'YES' if s['bit_exact'] else 'NO'} (every memory word, LFSRs and "
                     f"step counter read back {sim['checks']} times and compared with the golden model"
                     f"{'; every test answer too' if s['test_samples'] else ''})")
        if s["test_samples"]:
            lines.append(f"test accuracy             : RTL {_pct(s['test_accuracy_rtl'])}, golden model "
                         f"{_pct(s['test_accuracy_golden'])} on {s['test_samples']} test samples")
        lines.append(f"cycles per sample         : {_num(s['cycles_per_sample'], '{:g}')} measured, "
                     f"{_num(s['ideal_cycles_per_sample'], '{:g}')} ideal (all {s['multipliers']['netlist']} "
                     f"multipliers busy)")
        lines.append(f"MAC utilisation           : {_num(s['mac_utilization'], '{:.3f}')}")
    else:
        lines.append(f"RTL simulation            : FAILED ({sim.get('error', '?').splitlines()[0]})")
    status = bld.get("status", "?")
    if status == "built":
        lines.append(f"fmax                      : {s['fmax_mhz']} MHz at a {s['clock_mhz']:g} MHz clock "
                     f"(target {s['target_mhz']:g}): timing {'met' if s['timing_met'] else 'NOT MET'}")
    else:
        lines.append(f"bitstream                 : {status if status.startswith('skipped') else status.upper()}"
                     + (f": {bld['error']}" if bld.get("error") else ""))
    if s["resources"]:
        lines.append("resources (used/available): " + ", ".join(
            f"{k} {v['used']}/{v['available']}" for k, v in s["resources"].items() if k != "io"))
    tsps = s["train_samples_per_s"]
    if tsps is not None:
        lines.append(f"training samples/s        : {tsps:,.0f} (fmax / cycles per sample) = "
                     f"{s['speedup_vs_authors_cpu']:g}x the authors' code on a CPU "
                     f"(~{s['authors_cpu_samples_per_s']} samples/s, batch of one)")
    else:
        lines.append(f"training samples/s        : n/a (no fmax); at the {s['target_mhz']:g} MHz target it would be "
                     f"{s['train_samples_per_s_at_target']:,.0f} vs ~{s['authors_cpu_samples_per_s']} for the "
                     "authors' code on a CPU")
    if s.get("link_samples_per_s"):
        lines.append(f"UART link                 : {s['baud']:,} baud carries {s['link_samples_per_s']:,.0f} "
                     "training samples/s (the on-board training rate over the host link)")
    if s["failures"]:
        for f in s["failures"]:
            lines.append(f"FAILED ({f['stage']})        : {f['reason']}")
    lines.append(f"result                    : {'PASS' if s['exit_status'] == 0 else 'FAIL'} "
                 f"(exit status {s['exit_status']}), {s['wall_seconds']:.0f} s in all")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The old demo: the float golden model, DDFA against random DFA
# --------------------------------------------------------------------------------------

def compare_golden(cfg: Config, data_dir: str | None = None) -> int:
    """Train the float golden model with Directional DFA (the hardware setting: batch of
    one, SGD, Rademacher directions, the moving-average feedback of eq. 17) and with
    random DFA, and print accuracy, throughput and gradient alignment side by side."""
    from .train import arch_name, run_training
    print(f"ddfa demo --compare-dfa: {cfg.name}: {cfg.model.dataset} {arch_name(cfg)} "
          f"({'-'.join(map(str, cfg.model.layers))}), {cfg.train.setting} setting, batch {cfg.batch_size}, "
          f"{cfg.optimizer}, lr {cfg.lr:g}, {cfg.train.epochs} epochs, seed {cfg.model.seed}")
    rows = []
    for algo in ("ddfa", "dfa"):
        c = cfg.replace(**{"model.algorithm": algo})
        t0 = time.time()
        r = run_training(c, "float", data_dir, progress=False)
        rows.append((algo, r, time.time() - t0))
    print(f"{'algorithm':<10} {'test acc':>9} {'samples/s':>10} {'alignment (deg, per hidden layer)':>36} {'wall s':>7}")
    for algo, r, wall in rows:
        align = ", ".join("-" if a is None else f"{a:.1f}" for a in r["alignment_deg"])
        print(f"{algo.upper():<10} {100 * r['test_accuracy']:>8.2f}% {r['samples_per_s']:>10.0f} "
              f"{align:>36} {wall:>7.1f}")
    (_, ddfa, _), (_, dfa, _) = rows
    diff = 100 * (ddfa["test_accuracy"] - dfa["test_accuracy"])
    print(f"Directional DFA - random DFA: {diff:+.2f} points of test accuracy; "
          "a lower alignment angle means an update closer to backpropagation's.")
    return 0


# --------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    if args.compare_dfa:
        return compare_golden(config_from_args(args, software_only=True), args.data_dir)
    cfg = config_from_args(args)
    from hdl.top import check_hardware
    check_hardware(cfg)
    path = check_output_file(args.json, "--json") if args.json else Path(args.out) / "summary.json"
    check_output_dir(args.out, "--out")
    if args.sim_build_dir is not None:
        check_output_dir(args.sim_build_dir, "--sim-build-dir")
    s = run_demo(cfg, args.out, epochs=args.epochs, steps=args.steps, test=args.test or None,
                 check_every=args.check_every, simulator=args.simulator, build_bitstream=not args.no_build,
                 pnr_seed=args.pnr_seed, sim_build_dir=args.sim_build_dir, data_dir=args.data_dir)
    s["summary_json"] = str(path)
    write_json(path, s)
    print(format_summary(s))
    print(f"summary JSON              : {path}")
    return s["exit_status"]


if __name__ == "__main__":
    from . import main
    sys.exit(main(["demo"] + sys.argv[1:]))
