"""The processor's Verilog from a configuration: deterministic, and fast to emit."""

from __future__ import annotations

import contextlib

from amaranth.back import verilog

from ddfa.config import Config

from .top import Processor

__all__ = ["VERILOG_NAME", "processor_verilog", "design_verilog"]

#: Top module name and file stem of the generated Verilog.
VERILOG_NAME = "ddfa_processor"


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
