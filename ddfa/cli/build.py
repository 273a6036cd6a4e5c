"""``ddfa build``: the processor for a board, with the open toolchain.

::

    ddfa build --board icebreaker --json build/icebreaker.json
    ddfa build --config examples/config.toml --out build/mine --program

Builds ``hdl.top.Processor(cfg)`` behind the UART host link (``boards/top.py``), then
writes a JSON report: bitstream, target clock, fmax, whether timing was met, resource
use, and training samples per second (see ``docs/BOARDS.md``). Exit status 0 when the
bitstream was built and timing met, 1 when timing failed (the report is still written;
``--allow-timing-fail`` makes that 0), 2 for a configuration or toolchain error.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from . import add_config_args, check_data, config_from_args, nonnegative_int
from .output import check_output_dir, check_output_file, write_text
from .progress import add_progress_args, progress_bar, wants_progress

__all__ = ["add_arguments", "run"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--out", help="build directory (default build/<board>)")
    p.add_argument("--json", metavar="PATH", help="write the build report here (default <out>/build.json)")
    p.add_argument("--program", action="store_true",
                   help="load the bitstream into the board (iceprog / openFPGALoader)")
    p.add_argument("--seed", type=nonnegative_int, help="nextpnr placement seed")
    p.add_argument("--allow-timing-fail", action="store_true", help="exit 0 even when timing is not met")
    p.add_argument("--verbose", action="store_true", help="show the tools' output")
    add_progress_args(p, " (stages: elaborate, synthesis/place/route, program)")


def run(args: argparse.Namespace) -> int:
    from boards.build import BuildFailed, build, program
    from boards.toolchain import ToolchainError
    from boards.top import ProcessorUnavailable, processor_top
    from hdl.top import check_hardware

    cfg = config_from_args(args)
    board = cfg.board                                   # ConfigError for board "none"
    check_hardware(cfg)                                 # before --out is made
    check_data(cfg, args.data_dir)
    out = check_output_dir(args.out or Path("build") / board.name, "--out")
    json_path = check_output_file(args.json, "--json") if args.json else out / "build.json"
    bar = progress_bar(3 if args.program else 2, "build", "stage", wants_progress(args.progress))
    try:
        bar.set_postfix_str("elaborate")
        top = processor_top(cfg)
        bar.update(1)
        bar.set_postfix_str("synthesis, place and route")
        print(f"ddfa build: {board.name} ({board.device}), {cfg.clock_mhz:g} MHz, "
              f"layers {'-'.join(map(str, cfg.model.layers))} -> {out}", file=sys.stderr)
        result = build(cfg, top, out, seed=args.seed, verbose=args.verbose)
        bar.update(1)
    except (ToolchainError, ProcessorUnavailable) as exc:
        bar.close()
        print(f"ddfa build: error: {exc}", file=sys.stderr)
        return 2
    except BuildFailed as exc:
        bar.close()
        print(f"ddfa build: error: {exc}", file=sys.stderr)
        if exc.partial is not None:
            write_text(json_path, exc.partial.to_json() + "\n", "--json")
            print(f"ddfa build: partial report (no bitstream) in {json_path}", file=sys.stderr)
        return 2

    status = 0
    if args.program:
        bar.set_postfix_str("program")
        try:
            program(board.name, board.family, result.bitstream)
            result.programmed = True
            bar.update(1)
        except ToolchainError as exc:
            print(f"ddfa build: {exc}", file=sys.stderr)
            status = 2
        except subprocess.CalledProcessError as exc:
            print(f"ddfa build: programming failed ({exc}); is the board attached and readable?",
                  file=sys.stderr)
            status = 2
    bar.close()

    write_text(json_path, result.to_json() + "\n", "--json")
    r = result.resources
    logic = r.get("logic", {})
    print(f"bitstream {result.bitstream}\n"
          f"clock {result.clock_mhz:g} MHz (target {result.target_mhz:g}), fmax {result.fmax_mhz} MHz, "
          f"timing {'met' if result.timing_met else 'NOT MET'}\n"
          f"logic {logic.get('used')}/{logic.get('available')} {logic.get('unit', '')}, "
          + ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in r.items()
                      if k in ("ff", "dsp", "ebr", "spram")) + "\n"
          f"train samples/s at fmax: {result.train_samples_per_s}; over the UART: {result.link_samples_per_s}\n"
          f"report {json_path}")
    if not result.timing_met and not args.allow_timing_fail and status == 0:
        status = 1
    return status
