"""The processor's Verilog from a configuration: deterministic, and fast to emit.

:func:`processor_verilog` is Amaranth's Verilog: every memory's initial contents are
written in it word by word (an ``initial`` block of one assignment per word, about
105,000 lines for the ULX3S default's weights). :func:`readmem_verilog` turns that into
the form ``ddfa generate`` writes: every learned memory (the ``W`` banks, or their
column slices, ``b`` and ``B``) loads its contents with ``$readmemh`` from the memory
images of :meth:`golden.fixed.FixedModel.export_images`, whose file names are those of
:func:`ddfa.protocol.memory_map`. In this form YoWASP Yosys synthesises the ULX3S
default in about a minute of CPU time and 335 MiB (``docs/results/builds.md``, "Yosys on
the generated Verilog"); the per-word form of that processor (19 MB) makes YoWASP
Yosys trap in ``read_verilog`` after 4 GiB and six minutes.

The image paths in the Verilog are relative (``mem/W1_pe0.hex``): Yosys finds them
beside the Verilog file, Icarus Verilog and Verilator in the simulator's working
directory, so the images must stay where ``ddfa generate`` wrote them, beside the
Verilog.
"""

from __future__ import annotations

import bisect
import contextlib
import re
from pathlib import Path

from amaranth.back import verilog

from ddfa.config import Config
from ddfa.protocol import memory_map

from .top import Processor

__all__ = ["VERILOG_NAME", "IMAGE_DIR", "processor_verilog", "design_verilog", "readmem_verilog", "image_memories",
           "readmem_paths"]

#: Top module name and file stem of the generated Verilog.
VERILOG_NAME = "ddfa_processor"
#: The folder of the memory images, beside the Verilog (``ddfa generate``'s ``mem/``).
IMAGE_DIR = "mem"


@contextlib.contextmanager
def _fast_meminit():
    """Amaranth 0.5.10 writes each memory's initial contents to RTLIL one bit at a time
    through its netlist objects, which is most of the conversion time of a large
    processor (about 2.5 s of the ULX3S default's 100,352 weight words). This emits the
    same ``$meminit_v2`` cell, character for character, from the integers directly. It
    applies only to the pinned Amaranth version (anything else runs unchanged), only
    inside :func:`design_verilog`, and ``tests/test_generate.py`` checks that the RTLIL is
    identical with and without it.
    """
    import amaranth
    from amaranth.back import rtlil
    from amaranth.hdl import _nir
    if amaranth.__version__ != "0.5.10" or not hasattr(rtlil, "ModuleEmitter"):
        yield
        return
    original = rtlil.ModuleEmitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if cell.width == 0 or cell.depth == 0:
            return original(self, cell_idx, cell)
        info = self.memories[cell_idx]
        mask = (1 << cell.width) - 1
        bits = "".join(format(row & mask, f"0{cell.width}b") for row in reversed(cell.init))
        self.builder.cell("$meminit_v2", ports={
            "ADDR": self.sigspec(),
            "DATA": f"{cell.width * cell.depth}'{bits}",
            "EN": self.sigspec(_nir.Value.ones(cell.width)),
        }, parameters={
            "MEMID": info.memid,
            "ABITS": 0,
            "WIDTH": cell.width,
            "WORDS": cell.depth,
            "PRIORITY": 0,
        }, src_loc=cell.src_loc)

    rtlil.ModuleEmitter.emit_memory = emit_memory
    try:
        yield
    finally:
        rtlil.ModuleEmitter.emit_memory = original


def processor_verilog(cfg: Config, model=None) -> str:
    """The Verilog of ``Processor(cfg, model)`` (deterministic: ``emit_src=False``)."""
    return design_verilog(Processor(cfg, model), VERILOG_NAME)


def design_verilog(top, name: str) -> str:
    """The Verilog of the component ``top`` (a processor, or a design around one such as
    :class:`hdl.board.VirtualBoardTop`) as module ``name``, written as
    :func:`processor_verilog` writes the processor's (deterministic: ``emit_src=False``)."""
    with _fast_meminit():
        return verilog.convert(top, name=name, emit_src=False)


def image_memories(cfg: Config) -> list[tuple[str, str, str, int | None]]:
    """Where each memory image's words are in the processor's Verilog: ``(module, memory,
    image, slice)`` for every memory of :func:`ddfa.protocol.memory_map`. ``module`` is
    the Verilog module's hierarchical name, ``memory`` the array in it, ``image`` the
    memory's name (its file is ``<image>.hex``); ``slice`` is ``None`` for a whole
    memory, or ``k`` for the ``k``-th column slice of a ``W`` bank stored in slices
    (:meth:`~ddfa.config.Config.bram_slices`)."""
    out = []
    for m in memory_map(cfg):
        l = m.layer
        if m.kind == "W":
            slices = cfg.bram_slices(l)
            if len(slices) == 1:
                out.append((f"{VERILOG_NAME}.layer{l}", f"W_pe{m.pe}", m.name, None))
            else:
                out += [(f"{VERILOG_NAME}.layer{l}.W_pe{m.pe}", f"s{k}", m.name, k) for k in range(len(slices))]
        elif m.kind == "b":
            out.append((f"{VERILOG_NAME}.layer{l}.biases", "b", m.name, None))
        elif m.kind == "B":
            out.append((f"{VERILOG_NAME}.feedback{l}", "mem", m.name, None))
        else:
            raise ValueError(f"memory {m.name} of kind {m.kind!r}: hdl/verilog.py's image_memories does not know "
                             f"where it is in the Verilog; add it there")
    return out


_MODULE_RE = re.compile(r"^module\s+\\?([^\s(]+)", re.M)
#: A memory declaration followed by Yosys's per-word ``initial`` block.
_MEMINIT_RE = re.compile(r"^  reg \[(\d+):0\] (\S+) \[(\d+):0\];\n  initial begin\n((?:    [^\n]*\n)*?)  end\n", re.M)
_WORD_RE = re.compile(r"^    (\S+)\[(\d+)\] = \d+'([hdb])([0-9a-fA-F_]+);$", re.M)
_BASES = {"h": 16, "d": 10, "b": 2}


def _hex_words(path: Path, width: int) -> list[int]:
    words = []
    for line in path.read_text().splitlines():
        line = line.split("//")[0].strip()
        if line:
            words.append(int(line, 16) & ((1 << width) - 1))
    return words


def readmem_verilog(text: str, cfg: Config, image_dir: str | Path, prefix: str = IMAGE_DIR) -> tuple[str, list[str]]:
    """``text`` (:func:`processor_verilog` of ``cfg``) with every learned memory's
    per-word ``initial`` block replaced by ``$readmemh("<prefix>/<image>.hex", ...)``.

    ``image_dir`` holds the images of :meth:`golden.fixed.FixedModel.export_images` for
    the same initial state. A ``W`` bank stored in column slices reads one image per
    slice, ``<image>_s<k>.hex`` (the slice's bits of ``<image>.hex``), which this writes
    into ``image_dir``. Every memory's words in ``text`` are checked against its image
    before the block is replaced. The other memories (buffers, the exponential table)
    keep their ``initial`` blocks.

    Returns
    -------
    (str, list of str)
        The Verilog, and the names of the slice images written into ``image_dir``.

    Raises
    ------
    ValueError
        A memory of :func:`image_memories` is missing from ``text``, or its words or
        size differ from its image's.
    """
    image_dir = Path(image_dir)
    starts = [(m.start(), m.group(1)) for m in _MODULE_RE.finditer(text)]
    positions = [p for p, _ in starts]
    blocks = {}
    for mm in _MEMINIT_RE.finditer(text):
        module = starts[bisect.bisect_right(positions, mm.start()) - 1][1]
        blocks[(module, mm.group(2))] = mm
    replace, written, images = [], [], {}
    infos = {m.name: m for m in memory_map(cfg)}
    for module, name, image, k in image_memories(cfg):
        mm = blocks.get((module, name))
        if mm is None:
            raise ValueError(f"the Verilog has no memory {module}.{name} with initial contents for the image "
                             f"{image}.hex: hdl/verilog.py's image_memories must follow the processor's hierarchy")
        width, depth = int(mm.group(1)) + 1, int(mm.group(3)) + 1
        info = infos[image]
        if image not in images:
            images[image] = _hex_words(image_dir / f"{image}.hex", info.width)
        words = images[image]
        if k is not None:
            lo = sum(cfg.bram_slices(info.layer)[:k])
            words = [(v >> lo) & ((1 << width) - 1) for v in words]
        mask = (1 << width) - 1
        found = [(int(i), int(v.replace("_", ""), _BASES[b]) & mask) for n, i, b, v in _WORD_RE.findall(mm.group(4))]
        if len(words) != depth or found != list(enumerate(words)):
            raise ValueError(f"{module}.{name} ({depth} words of {width} bits) does not hold the words of "
                             f"{image}.hex{'' if k is None else f' (slice {k})'} in {image_dir}")
        fname = f"{image}.hex" if k is None else f"{image}_s{k}.hex"
        if k is not None:
            digits = (width + 3) // 4
            (image_dir / fname).write_text("".join(format(v, f"0{digits}x") + "\n" for v in words))
            written.append(fname)
        decl = f"  reg [{width - 1}:0] {name} [{depth - 1}:0];\n"
        replace.append((mm.start(), mm.end(), f'{decl}  initial $readmemh("{prefix}/{fname}", {name}, 0, {depth - 1});\n'))
    out, pos = [], 0
    for a, b, new in sorted(replace):
        out += [text[pos:a], new]
        pos = b
    out.append(text[pos:])
    return "".join(out), written


_READMEM_RE = re.compile(r'\$readmem[hb]\s*\(\s*"([^"]+)"')


def readmem_paths(text: str) -> list[str]:
    """The files that the ``$readmemh``/``$readmemb`` calls of ``text`` name, in order of
    first appearance."""
    return list(dict.fromkeys(_READMEM_RE.findall(text)))
