"""``ddfa simulate``: the generated processor in RTL simulation (cocotb, Icarus or
Verilator), trained step after step on real samples through the host byte stream and
compared with the fixed-point golden model bit for bit.

Examples
--------
::

    ddfa simulate --board icebreaker --simulator verilator --steps 1000 --json out/sim.json
    ddfa simulate --board icebreaker --simulator verilator --epochs 1 --test all --json out/epoch.json
    ddfa simulate --board icebreaker --simulator icarus --steps 20 --verilog build/hand-edited --json out/x.json
    ddfa simulate --board icebreaker --set hardware.dataset_store=true --on-chip --steps 100 --test 50 --json out/oc.json
    ddfa simulate --board icebreaker --set hardware.dataset_store=true --on-chip --epochs 2 --test all --json out/oc2.json
    ddfa simulate --board icebreaker --simulator icarus --steps 10 --netlist --json out/netlist.json

Every memory word (W, b, B), the LFSR states and the step counter are read back through
the host protocol every ``--check-every`` steps (default 1: after every step) and after
the last; every TRAIN and INFER answer is checked too. The first difference stops the run
and is reported (memory, layer, row, column, step, expected, actual); the command then
exits with status 1. The JSON has the figures of :func:`sim.perf.figures`
(``cycles_per_sample``, ``ideal_cycles_per_sample``, ``mac_utilization``,
``phase_cycles``) and, with ``--test``, the test accuracy of the simulated processor
next to the golden model's.

``--on-chip`` (a configuration with ``hardware.dataset_store``) trains from the dataset
store the way a board does without the host: the bench uploads the store image
(WRITE_BLOCKs, then the store's header), starts TRAIN_EPOCHS, polls RUN_STATUS until the
processor's epoch runner is done, and compares every memory word, the LFSRs and the step
counter with :func:`golden.onchip.train_epochs` on the same image; with ``--test`` the
store also holds that many test records and EVALUATE's count must equal
:func:`golden.onchip.evaluate`'s. The chip trains whole epochs in its own order, so there:

* ``--steps N``: the store holds the first N training records, trained for one epoch
  (N steps, in the chip's order of those N records);
* ``--epochs E`` (a whole number): E epochs of the whole training set, or with
  ``--steps N`` of its first N records;
* ``--check-every K``: one TRAIN_EPOCHS of K epochs between read-backs (default 1);
* ``cycles_per_sample`` is RUN_STATUS's run cycles over the training steps (the steps and
  the loading of each record from the store); ``step_cycles`` and ``phase_cycles`` are the
  last step's STATUS; the JSON adds ``mode: "on-chip"``, ``epochs``, ``run_cycles``,
  ``upload``, ``test_correct`` and ``golden_test_correct``.

``--netlist`` simulates the gate-level netlist instead: the processor's Verilog (as
``ddfa generate`` writes it, or ``--verilog DIR``'s ``ddfa_processor.v`` with its
``mem/`` images) synthesised by Yosys for the board's family (``synth_ice40 -dsp`` or
``synth_ecp5``; :mod:`boards.netlist`), with Yosys's models of the family's cells.
Netlists are cached beside the builds (``--build-dir``); the JSON has the synthesis
command, its time and the cell counts under ``netlist``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hdl.verilog import readmem_paths

from . import add_config_args, check_data, config_from_args, count_or_all, positive_float, positive_int
from ..config import Config, ConfigError, config_diff, load_config
from .output import check_output_dir, check_output_file, write_json
from .progress import add_progress_args, progress_bar, wants_progress

__all__ = ["add_arguments", "run", "summary"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--simulator", choices=["icarus", "verilator"], default="verilator")
    p.add_argument("--steps", type=positive_int, help="training steps (default 10)")
    p.add_argument("--epochs", type=positive_float, help="training steps as epochs of the training set (1 = every "
                   "sample once); without --on-chip, not with --steps")
    p.add_argument("--check-every", type=positive_int, default=1, metavar="K",
                   help="read back and compare every memory word every K steps (with --on-chip: epochs) "
                   "and after the last (default 1)")
    p.add_argument("--on-chip", action="store_true",
                   help="train from the dataset store (needs hardware.dataset_store): upload the data set, "
                   "TRAIN_EPOCHS, EVALUATE; --steps N: the first N training records (default: all with "
                   "--epochs, else 10), --epochs E: E whole epochs of them (default 1)")
    p.add_argument("--test", type=count_or_all, metavar="N|all", help="after training, infer N test samples (or all) in simulation "
                   "and report the test accuracy; every answer is compared with the golden model")
    p.add_argument("--verilog", metavar="DIR", help="simulate the Verilog files (*.v, *.sv) of DIR instead of "
                   "generating them: hand-edited Verilog, a post-synthesis netlist (top module ddfa_processor)")
    p.add_argument("--netlist", action="store_true", help="simulate the netlist that Yosys synthesises from the "
                   "Verilog for the board's family, with Yosys's cell models, instead of the Verilog itself")
    p.add_argument("--waves", action="store_true", help="record waveforms (VCD for Verilator, FST for Icarus)")
    p.add_argument("--json", required=True, metavar="PATH", help="write the result here")
    p.add_argument("--build-dir", metavar="DIR", help="build cache (default build/sim or $DDFA_SIM_BUILD)")
    p.add_argument("--stall", type=int, default=0, choices=range(16), metavar="0..15",
                   help="random gaps on both host streams in about k/16 of the cycles (backpressure)")
    p.add_argument("--golden", choices=["remote", "local"], default="remote",
                   help="golden model served from this process (default; fast start) or inside the simulator")
    add_progress_args(p, " (training steps; also logged in the simulator's log)")


def summary(r: dict) -> str:
    if r.get("mode") == "on-chip":
        return _summary_on_chip(r)
    lines = [f"ddfa simulate: {r['config']} on {r['simulator']}: {r['steps']} of {r['steps_asked']} steps, "
             f"{'BIT-EXACT' if r['bit_exact'] else 'MISMATCH'} ({r['checks']} full read-backs, every "
             f"{r['check_every']} steps)"]
    if r.get("netlist"):
        n = r["netlist"]
        synth = "reused" if n["reused"] else f"synthesised in {n['seconds']:.1f} s"
        lines.append(f"  netlist: Yosys '{n['yosys'].split(';')[1].strip()}', {sum(n['cells'].values())} cells ({synth})")
    _mismatch(lines, r)
    if r.get("cycles_per_sample"):
        p = r["phase_cycles"]
        lines.append(f"  {r['cycles_per_sample']:g} cycles per sample (ideal {r['ideal_cycles_per_sample']}; forward "
                     f"{p['forward']:g}, error {p['error']:g}, update {p['update']:g}), MAC utilisation "
                     f"{r['mac_utilization']:.3f} ({r['multipliers']} multipliers)")
    if r.get("test_accuracy") is not None:
        lines.append(f"  test accuracy {r['test_accuracy']:.4f} on {r['test_samples']} samples "
                     f"(golden model {r['golden_test_accuracy']:.4f})")
    return _finish(lines, r)


def _mismatch(lines: list[str], r: dict) -> None:
    if r.get("first_mismatch"):
        from sim.bench import mismatch_text
        lines.append("  " + mismatch_text(r["first_mismatch"]))


def _finish(lines: list[str], r: dict) -> str:
    build = "reused" if r["build_reused"] else f"{r['build_seconds']:.1f} s"
    lines.append(f"  simulation {r['sim_seconds']:.1f} s (build {build})")
    return "\n".join(lines)


def _summary_on_chip(r: dict) -> str:
    lines = [f"ddfa simulate --on-chip: {r['config']} on {r['simulator']}: {r['epochs_done']} of {r['epochs']} "
             f"epochs of {r['train_records']} records from the dataset store ({r['steps']} steps), "
             f"{'BIT-EXACT' if r['bit_exact'] else 'MISMATCH'} ({r['checks']} full read-backs, every "
             f"{r['check_every']} epochs)"]
    _mismatch(lines, r)
    if r.get("cycles_per_sample"):
        lines.append(f"  {r['cycles_per_sample']:g} cycles per sample (RUN_STATUS: {r['run_cycles']:,} cycles; "
                     f"one step {r['step_cycles']}, ideal {r['ideal_cycles_per_sample']}), MAC utilisation "
                     f"{r['mac_utilization']:.3f} ({r['multipliers']} multipliers)")
    if r.get("test_accuracy") is not None:
        lines.append(f"  EVALUATE: {r['test_correct']} of {r['test_samples']} test records correct, accuracy "
                     f"{r['test_accuracy']:.4f} (golden model {r['golden_test_correct']})")
    return _finish(lines, r)


def _verilog_dir(path: str, cfg: Config) -> str:
    """Check ``--verilog DIR`` before any work: it holds Verilog, and where ``ddfa
    generate`` wrote it (its ``config.toml`` is there), from a configuration that builds
    the same hardware as ``cfg``."""
    d = Path(path)
    if not d.is_dir():
        raise ConfigError("--verilog", f"no directory {path!r}", "give a directory of .v files")
    if not any(p.suffix in (".v", ".sv") and p.is_file() for p in d.iterdir()):
        raise ConfigError("--verilog", f"no .v or .sv file in {path!r}",
                          "give the directory that 'ddfa generate --out DIR' wrote, or one with your Verilog")
    for v in sorted(p for p in d.iterdir() if p.suffix in (".v", ".sv") and p.is_file()):
        for rel in readmem_paths(v.read_text(errors="replace")):
            if not Path(rel).is_absolute() and not (d / rel).is_file():
                raise ConfigError("--verilog", f"{v.name} reads the memory image {rel} with $readmemh, "
                                  f"but {d / rel} does not exist",
                                  f"keep the images that 'ddfa generate' wrote beside the Verilog, or generate "
                                  f"it anew with 'ddfa generate ... --out {path}'")
    written = d / "config.toml"
    if written.is_file():
        differ = config_diff(load_config(written), cfg)
        if differ:
            raise ConfigError("--verilog", f"{path!r} was generated from another configuration "
                              f"({written} against this one: {'; '.join(differ)})",
                              f"give the configuration it was generated from (--config {written}), "
                              f"or generate it anew with 'ddfa generate ... --out {path}'")
    return path


def _netlist(cfg: Config, args: argparse.Namespace) -> tuple[str, list, list, dict]:
    """Synthesise the processor's Verilog (generated, or ``--verilog DIR``'s) for the
    board's family; returns the netlist's folder, the cell models, their include
    folders and what to report of the synthesis."""
    from boards.netlist import cell_models, synthesize
    from hdl.verilog import VERILOG_NAME
    from sim.simulate import DEFAULT_BUILD_DIR, processor_sources
    if cfg.board.family == "ecp5" and args.simulator == "icarus":
        raise ConfigError("--simulator", "Icarus Verilog does not compile Yosys's ECP5 cell models",
                          "use --simulator verilator with --netlist for an ECP5 board")
    root = Path(args.build_dir) if args.build_dir is not None else DEFAULT_BUILD_DIR
    if args.verilog is not None:
        source = Path(args.verilog) / f"{VERILOG_NAME}.v"
        if not source.is_file():
            raise ConfigError("--netlist", f"no {VERILOG_NAME}.v in {args.verilog!r} to synthesise",
                              "give the directory that 'ddfa generate --out DIR' wrote")
    else:
        source = processor_sources(cfg, None, root.resolve())[0]
    print(f"ddfa simulate: synthesising {source} for {cfg.board.family} (Yosys) ...", flush=True)
    net = synthesize(source, cfg.board.family, root / "netlist", device=cfg.board.device)
    models, includes = cell_models(cfg.board.family)
    info = {"source": str(source), "path": str(net.path), "yosys": net.command, "seconds": net.seconds,
            "reused": net.reused, "cells": net.cells}
    return str(net.path.parent), models, includes, info


def run(args: argparse.Namespace) -> int:
    if not args.board and not args.config:
        raise ConfigError("--config/--board", "no configuration was given", "give --board NAME or --config FILE")
    cfg = config_from_args(args)
    from hdl.top import check_hardware
    check_hardware(cfg)
    check_data(cfg, args.data_dir)
    from sim.simulate import simulate
    check_output_file(args.json, "--json")
    if args.build_dir is not None:
        check_output_dir(args.build_dir, "--build-dir")
    if args.verilog is not None:
        _verilog_dir(args.verilog, cfg)
    if args.on_chip:
        return _run_on_chip(args, cfg)
    if args.steps is not None and args.epochs is not None:
        raise ConfigError("--steps/--epochs", "both were given", "give --steps N or --epochs E (both go together "
                          "only with --on-chip: E epochs of the first N training records)")
    steps = args.steps if args.steps is not None else 10
    if args.epochs is not None:
        from ddfa.data import load_config_dataset
        n = load_config_dataset(cfg, args.data_dir).x_train.shape[0]
        steps = round(args.epochs * n)
        if steps < 1:
            raise ConfigError("--epochs", f"{args.epochs} epochs of {n} samples is {steps} training steps",
                              f"give at least {1 / n:.2g} epochs, or --steps N")
    test = args.test or None                 # 0: no test pass
    t0 = time.perf_counter()
    verilog, models, includes, netlist = args.verilog, [], [], None
    if args.netlist:
        verilog, models, includes, netlist = _netlist(cfg, args)
    show = wants_progress(args.progress)
    bar = progress_bar(steps, "simulate", "step", show)
    try:
        r = simulate(cfg, args.simulator, steps, check_every=args.check_every, test=test, verilog=verilog,
                     waves=args.waves, build_dir=args.build_dir, data_dir=args.data_dir, stall=args.stall,
                     progress=show, golden=args.golden, on_step=lambda k: bar.update(k - bar.n),
                     models=models, includes=includes)
        bar.close()
    except KeyboardInterrupt:
        bar.close()
        write_json(args.json, {"interrupted": True, "config": cfg.name, "simulator": args.simulator,
                               "steps_asked": steps, "test_asked": test, "bit_exact": None,
                               "wall_seconds": round(time.perf_counter() - t0, 2), "configuration": cfg.to_dict()})
        raise KeyboardInterrupt(f"partial result in {args.json}") from None
    if netlist is not None:
        r["netlist"] = netlist
    write_json(args.json, r)
    print(summary(r))
    return 0 if r["bit_exact"] else 1


def _run_on_chip(args: argparse.Namespace, cfg: Config) -> int:
    """``--on-chip``: ``--steps N`` cuts the training set to N records for one epoch,
    ``--epochs E`` trains E epochs of all of them."""
    from sim.simulate import simulate
    if cfg.chip_store is None:
        raise ConfigError("--on-chip", f"configuration {cfg.name!r} has no dataset store "
                          f"(hardware.dataset_store is false)",
                          "add --set hardware.dataset_store=true (a board with a store: icebreaker), "
                          "or simulate without --on-chip")
    epochs = 1
    if args.epochs is not None:
        if args.epochs != int(args.epochs):
            raise ConfigError("--epochs", f"{args.epochs} epochs: the chip trains whole epochs",
                              "give a whole number of epochs, or --steps N for the first N training records")
        epochs = int(args.epochs)
        if epochs > 0xFFFF:
            raise ConfigError("--epochs", f"{epochs} epochs", "give at most 65535 (one TRAIN_EPOCHS command)")
    records = args.steps if args.steps is not None else (None if args.epochs is not None else 10)
    test = args.test or None
    t0 = time.perf_counter()
    try:
        r = simulate(cfg, args.simulator, records, check_every=args.check_every, test=test, verilog=args.verilog,
                     waves=args.waves, build_dir=args.build_dir, data_dir=args.data_dir, stall=args.stall,
                     progress=wants_progress(args.progress), golden=args.golden, on_chip=True, epochs=epochs)
    except KeyboardInterrupt:
        write_json(args.json, {"interrupted": True, "mode": "on-chip", "config": cfg.name,
                               "simulator": args.simulator, "epochs": epochs, "train_records_asked": records,
                               "test_asked": test, "bit_exact": None,
                               "wall_seconds": round(time.perf_counter() - t0, 2), "configuration": cfg.to_dict()})
        raise KeyboardInterrupt(f"partial result in {args.json}") from None
    r["wall_seconds"] = round(time.perf_counter() - t0, 2)
    write_json(args.json, r)
    print(summary(r))
    return 0 if r["bit_exact"] else 1


if __name__ == "__main__":
    from . import main
    sys.exit(main(["simulate"] + sys.argv[1:]))
