"""Deliberate faults in the generated Verilog, to show that the bench can fail.

Each fault flips one operator in one module of ``ddfa_processor.v`` (what ``sed`` on a
copy would do); :func:`inject` writes the faulty copy into a directory that
``ddfa simulate --verilog DIR`` then checks. ``docs/RESULTS-sim.md`` shows the report
the bench prints for one of them.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from hdl.verilog import readmem_paths

__all__ = ["Fault", "FAULTS", "inject", "inject_dir"]


@dataclass(frozen=True)
class Fault:
    module: str          # the Verilog module (Amaranth's hierarchical name)
    pattern: str         # regular expression; its first match in that module is replaced
    replacement: str
    what: str            # what the change breaks, and where the bench should see it
    every_copy: bool = False   # also replace the other occurrences of the matched text


FAULTS: dict[str, Fault] = {
    # The first subtraction in layer 1's bias store becomes an addition, in every copy the
    # generator made of it (the saturation logic evaluates the same expression several
    # times): the bias write-back b - eta delta (the PEs' write-back adds ~term + 1).
    "layer1-update-sign": Fault(
        r"\ddfa_processor.layer1.biases", r"(\$signed\([^()]*\)) - (\$signed\([^()]*\))", r"\1 + \2",
        "layer 1's bias update adds the change instead of subtracting it: b1 differs once a "
        "hidden delta is non-zero (DDFA: from step 2)", every_copy=True),
    # B <- B + alpha (v d^T - B), formed from B - v d^T: that difference becomes -B - v d^T,
    # so that the average adds B instead of subtracting it.
    "feedback-ema": Fault(
        r"\ddfa_processor.feedback1", r"(assign ndiff = \$signed\([^()]*\)) \+ (\$signed\(rp__data\));",
        r"\1 - \2;",
        "hidden layer 1's moving average of B adds B instead of subtracting it: B1 differs "
        "once B is non-zero (DDFA: from step 2)"),
}


def _module_span(text: str, module: str) -> tuple[int, int]:
    start = text.find(f"module {module} ")
    if start < 0:
        raise ValueError(f"no module {module} in the Verilog")
    end = text.find("endmodule", start)
    return start, end


def inject(text: str, name: str) -> str:
    """``text`` with fault ``name`` (a key of :data:`FAULTS`) applied; raises
    ``ValueError`` when the operator is not there (the generator changed)."""
    f = FAULTS[name]
    a, b = _module_span(text, f.module)
    body = text[a:b]
    m = re.search(f.pattern, body)
    if m is None:
        raise ValueError(f"fault {name}: no match of {f.pattern!r} in {f.module}")
    if f.every_copy:
        body = body.replace(m.group(0), m.expand(f.replacement))
    else:
        body = body[:m.start()] + m.expand(f.replacement) + body[m.end():]
    return text[:a] + body + text[b:]


def inject_dir(verilog: Path, name: str, out: Path) -> Path:
    """Copy ``verilog`` (a file) with fault ``name`` into directory ``out``, and the
    memory images it reads (``$readmemh``) beside it."""
    out.mkdir(parents=True, exist_ok=True)
    text = verilog.read_text()
    for rel in readmem_paths(text):
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(verilog.parent / rel, out / rel)
    dest = out / verilog.name
    dest.write_text(inject(text, name))
    return out
