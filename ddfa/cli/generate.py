"""``ddfa generate``: the processor's Verilog, its memory images and a report.

Examples
--------
::

    ddfa generate --board icebreaker --out build/icebreaker
    ddfa generate --config examples/config.toml --out build/custom

writes into ``--out``:

* ``ddfa_processor.v``: the :class:`hdl.top.Processor` (``amaranth.back.verilog``,
  ``emit_src=False``: the same configuration gives the same file, byte for byte); its
  memories start in the golden model's initial state: the learned memories (``W``
  banks, ``b``, ``B``) load it with ``$readmemh("mem/<name>.hex", ...)``
  (:func:`hdl.verilog.readmem_verilog`), so ``mem/`` must stay beside the Verilog
  (Yosys finds it there; Icarus Verilog and Verilator look in their working directory);
* ``mem/``: that state as ``$readmemh`` images and ``manifest.json``
  (:meth:`golden.fixed.FixedModel.export_images`), and, for ``W`` banks stored in
  column slices (the ECP5's block RAMs), each slice's image ``W<l>_pe<p>_s<k>.hex``;
* ``config.toml``: the configuration (``Config.to_toml``);
* ``report.json`` and ``report.md``: every memory with its size, the multipliers, the
  host protocol's byte counts and commands, and the cycles of one training step per
  phase (:func:`hdl.cycles.step_cycles`, checked in simulation by
  ``tests/test_hdl_top.py``).
* ``ddfa-generate.json``: the manifest, every file above that this command wrote.

Regenerating into the same folder replaces the files of the previous manifest and removes
those of them that the new configuration no longer has (a PE bank image of a layer that
now has fewer PEs). A file there that ``ddfa generate`` did not write (your own
``config.toml``, say) is never overwritten: the command stops (exit code 2) before
elaborating anything, unless ``--force`` is given. The files are written to a temporary
folder inside ``--out`` first and moved into place when all of them are complete.

A configuration the processor cannot be built from is refused before anything is
elaborated, with the :class:`~ddfa.config.ConfigError` that names the field (exit code 2):
no board (``hardware.board = "none"``), stochastic rounding (``arith.rounding``), an
algorithm other than ``ddfa``/``dfa``, or training settings that are not the hardware's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from hdl.verilog import IMAGE_DIR, VERILOG_NAME, processor_verilog, readmem_verilog

from . import add_config_args, check_data, config_from_args
from ..config import Config, ConfigError
from .output import OutputError, check_output_dir, write_json

__all__ = ["add_arguments", "run", "generate", "VERILOG_NAME", "MANIFEST", "verilog_memories", "verilog_multipliers"]

#: The manifest ``generate`` writes into ``--out``: the files it wrote there.
MANIFEST = "ddfa-generate.json"
#: The files every generation writes (the memory images under ``mem/`` depend on the configuration).
FIXED_FILES = (f"{VERILOG_NAME}.v", "config.toml", "report.json", "report.md", "mem/manifest.json")

def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--force", action="store_true",
                   help="overwrite files in --out that ddfa generate did not write")


def run(args: argparse.Namespace) -> int:
    if not args.board and not args.config:
        raise ConfigError("--config/--board", "no configuration was given", "give --board NAME or --config FILE")
    cfg = config_from_args(args)
    check_data(cfg, args.data_dir)
    t0 = time.perf_counter()
    report = generate(cfg, args.out, force=args.force)
    dt = time.perf_counter() - t0
    c = report["cycles"]
    print(f"ddfa generate: {cfg.name} ({cfg.board.name}, {'-'.join(map(str, cfg.model.layers))}, "
          f"PEs {list(cfg.hardware.pes)}) -> {args.out}")
    print(f"  {report['multipliers']['netlist']} multipliers (board {report['multipliers']['board']}), "
          f"{report['memory_bits']['total']} memory bits (board {report['memory_bits']['board']})")
    print(f"  {c['total']} cycles per training sample (forward {c['forward']}, update {c['update']}), "
          f"{report['throughput']['train_samples_per_s']:.0f} samples/s at {cfg.clock_mhz:g} MHz")
    print(f"  generated in {dt:.1f} s")
    return 0


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------

_MODULE_RE = re.compile(r"^module\s+(\\\S+|[^\s(]+)", re.M)
_MEM_RE = re.compile(r"^\s*reg\s+\[(\d+):0\]\s+(\S+)\s+\[(\d+):0\];", re.M)
_MUL_RE = re.compile(r"^\s*assign\s+\S+\s*=\s*[^;]*[^*]\*[^*][^;]*;", re.M)


def verilog_memories(text: str) -> list[dict]:
    """Every memory array declared in the generated Verilog: module, name, words, width."""
    out = []
    starts = [(m.start(), m.group(1).lstrip("\\")) for m in _MODULE_RE.finditer(text)]
    for mm in _MEM_RE.finditer(text):
        module = [name for pos, name in starts if pos < mm.start()][-1]
        out.append({"module": module, "name": mm.group(2).lstrip("\\"),
                    "words": int(mm.group(3)) + 1, "width": int(mm.group(1)) + 1})
    return out


def verilog_multipliers(text: str) -> int:
    """Multiplications (``*`` operators) in the generated Verilog."""
    return len(_MUL_RE.findall(text))


def _previous_files(out: Path) -> set[str]:
    """The files the previous generation into ``out`` wrote (its manifest), if any."""
    try:
        files = json.loads((out / MANIFEST).read_text())["files"]
        return {f for f in files if isinstance(f, str) and ".." not in Path(f).parts and not Path(f).is_absolute()}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _refuse_foreign(out: Path, names, previous: set[str], force: bool) -> None:
    for rel in sorted(names):
        dest = out / rel
        if dest.is_dir() and not dest.is_symlink():
            raise OutputError("--out", out, f"{rel} is a folder where ddfa generate writes a file",
                              "choose another --out or remove that folder")
        if (dest.exists() or dest.is_symlink()) and rel not in previous and not force:
            raise OutputError("--out", out, f"{rel} exists and was not written by ddfa generate",
                              "choose another --out, or pass --force to overwrite it")


def generate(cfg: Config, out: str | Path, force: bool = False) -> dict:
    """Write the Verilog, memory images, configuration and report of ``cfg`` to ``out``;
    returns the report. Raises :class:`~ddfa.config.ConfigError` (before elaborating
    anything) for a configuration the processor cannot be built from, and
    :class:`~ddfa.cli.output.OutputError` for an ``out`` that cannot be written or that
    holds a file ``generate`` did not write (unless ``force``)."""
    from golden.fixed import FixedModel
    from hdl.top import check_hardware

    check_hardware(cfg)
    model = FixedModel(cfg)                   # refuses settings the processor does not run
    out = check_output_dir(out, "--out")
    previous = _previous_files(out)
    _refuse_foreign(out, FIXED_FILES + (MANIFEST,), previous | {MANIFEST}, force)
    with tempfile.TemporaryDirectory(dir=out, prefix=".ddfa-generate-") as tmp:
        stage = Path(tmp)
        model.export_images(stage / IMAGE_DIR)
        text, _ = readmem_verilog(processor_verilog(cfg, model), cfg, stage / IMAGE_DIR)
        (stage / f"{VERILOG_NAME}.v").write_text(text)
        (stage / "config.toml").write_text(cfg.to_toml())
        report = build_report(cfg, text)
        (stage / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        (stage / "report.md").write_text(report_markdown(report))
        files = sorted(p.relative_to(stage).as_posix() for p in stage.rglob("*") if p.is_file())
        _refuse_foreign(out, files, previous, force)
        for rel in sorted(previous - set(files)):                # stale files of the previous generation
            old = out / rel
            if old.is_file() or old.is_symlink():
                old.unlink()
        for rel in files:
            dest = out / rel
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(stage / rel, dest)
            except OSError as exc:
                raise OutputError("--out", out, f"cannot write {rel} ({exc.strerror or exc})",
                                  "choose another --out") from None
    write_json(out / MANIFEST, {"generator": "ddfa generate", "config": cfg.name, "files": files}, "--out")
    return report


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------

def build_report(cfg: Config, text: str) -> dict:
    """The report of ``cfg``'s processor; ``text`` is its generated Verilog."""
    from hdl.cycles import infer_cycles, step_cycles
    from ddfa.protocol import HostParams, host_commands, memory_map

    board = cfg.board
    learned = [{"id": m.id, "name": m.name, "kind": m.kind, "layer": m.layer, "pe": m.pe,
                "words": m.words, "width": m.width, "bits": m.words * m.width} for m in memory_map(cfg)]
    arrays = verilog_memories(text)
    for a in arrays:
        a["bits"] = a["words"] * a["width"]
    total_bits = sum(a["bits"] for a in arrays)
    cyc = step_cycles(cfg)
    hz = cfg.clock_mhz * 1e6
    hp = HostParams.of(cfg)
    return {
        "config": cfg.name,
        "board": board.name,
        "device": board.device,
        "clock_mhz": cfg.clock_mhz,
        "layers": list(cfg.model.layers),
        "pes": list(cfg.hardware.pes),
        "forward_stages": cfg.forward_stages,        # layers that start together (hardware.stream)
        "algorithm": cfg.model.algorithm,
        "verilog": f"{VERILOG_NAME}.v",
        "multipliers": {"config": cfg.multipliers_needed, "netlist": verilog_multipliers(text),
                        "board": board.multipliers,
                        "shared": list(cfg.shared_multiplier_units)},   # hardware.share_multiplier
        "memory_bits": {"learned": sum(m["bits"] for m in learned), "total": total_bits,
                        "board": board.memory_bits},
        "memories": learned,
        "memory_arrays": arrays,
        "cycles": {
            "draw": cyc["draw"],
            "forward": cyc["forward"],
            "forward_layers": {str(k): v for k, v in cyc["forward_layers"].items()},
            "softmax": cyc["softmax"],
            "update": cyc["update"],
            "update_layers": {str(k): v for k, v in cyc["update_layers"].items()},
            "total": cyc["total"],
            "inference": infer_cycles(cfg),
        },
        "throughput": {
            "train_samples_per_s": round(hz / cyc["total"], 1),
            "infer_samples_per_s": round(hz / infer_cycles(cfg), 1),
        },
        "host_protocol": {
            "doc": "docs/HOST-PROTOCOL.md",
            "sample_bytes": hp.sample_bytes, "addr_bytes": hp.addr_bytes,
            "word_bytes": hp.word_bytes, "lfsr_bytes": hp.lfsr_bytes,
            "commands": [{"code": c.code, "name": c.name, "request": c.request, "response": c.response}
                         for c in host_commands(cfg)],
        },
    }


def report_markdown(r: dict) -> str:
    c = r["cycles"]
    lines = [
        f"# DDFA processor: {r['config']}",
        "",
        f"{r['board']} ({r['device']}), {r['clock_mhz']:g} MHz; layers {'-'.join(map(str, r['layers']))}, "
        f"PEs per layer {r['pes']}, {r['algorithm']}. Verilog: `{r['verilog']}`; memory images: `mem/`.",
        "",
        "## Resources",
        "",
        f"* multipliers: {r['multipliers']['netlist']} in the netlist "
        f"(configuration: {r['multipliers']['config']}; board: {r['multipliers']['board']})"
        + (f"; one shared by {', '.join(r['multipliers']['shared'])}" if r['multipliers']['shared'] else ""),
        f"* memory: {r['memory_bits']['total']} bits in all, {r['memory_bits']['learned']} of them learned "
        f"(board: {r['memory_bits']['board']})",
        "",
        "### Learned memories (host protocol ids)",
        "",
        "| id | name | words | width | bits |",
        "|---:|---|---:|---:|---:|",
    ]
    lines += [f"| {m['id']} | {m['name']} | {m['words']} | {m['width']} | {m['bits']} |" for m in r["memories"]]
    lines += ["", "### Every memory array in the Verilog", "", "| module | name | words | width | bits |",
              "|---|---|---:|---:|---:|"]
    lines += [f"| {a['module']} | {a['name']} | {a['words']} | {a['width']} | {a['bits']} |" for a in r["memory_arrays"]]
    lines += [
        "", "## Cycles per training sample", "",
        "From `hdl/cycles.py` (`docs/ARCHITECTURE.md`, \"Cycle budget\"), checked against the simulated",
        "processor's cycle counters.", "",
        "| phase | cycles |", "|---|---:|",
        f"| directions (in parallel with the forward pass) | {c['draw']} |",
    ]
    lines += [f"| forward, layer {k} | {v} |" for k, v in c["forward_layers"].items()]
    lines += [f"| **forward** | **{c['forward']}** |",
              f"| softmax (end of forward to the first error-bus beat) | {c['softmax']} |"]
    lines += [f"| update, layer {k} (from the end of forward) | {v} |" for k, v in c["update_layers"].items()]
    lines += [f"| **update** (the slowest layer) | **{c['update']}** |",
              f"| **total** | **{c['total']}** |",
              f"| inference | {c['inference']} |", "",
              f"{r['throughput']['train_samples_per_s']:.0f} training samples/s, "
              f"{r['throughput']['infer_samples_per_s']:.0f} inferences/s at {r['clock_mhz']:g} MHz "
              "(the host link not counted).", "",
              "## Host protocol", "",
              f"`docs/HOST-PROTOCOL.md`. Input word {r['host_protocol']['sample_bytes']} bytes, address "
              f"{r['host_protocol']['addr_bytes']} bytes, memory word {r['host_protocol']['word_bytes']} bytes, "
              f"LFSR state {r['host_protocol']['lfsr_bytes']} bytes.", "",
              "| code | command | argument bytes | reply bytes |", "|---:|---|---:|---:|"]
    lines += [f"| 0x{x['code']:02x} | {x['name']} | {x['request']} | {x['response']} |"
              for x in r["host_protocol"]["commands"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from . import main
    sys.exit(main(["generate"] + sys.argv[1:]))
