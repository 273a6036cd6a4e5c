"""The documentation against the code.

* The cycle-budget table in ``docs/ARCHITECTURE.md`` ("Cycle budget") and the cycles per
  sample in the README's figures table equal :func:`hdl.cycles.step_cycles` for the
  configurations they name (both embedded defaults must be there).
* README.md and every page under ``docs/`` describe the project as it is: no narration of
  how it came to be (working sessions, issue numbers, the machine it was measured on).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from ddfa.config import default_config
from hdl.cycles import step_cycles

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
README = ROOT / "README.md"
DEFAULTS = ("icebreaker", "ulx3s-85f")

NARRATION = re.compile(
    r"\bsession \d|\bsessions \d|\bissue \d|\bthe\s+brief\b|2-core machine|load average",
    re.IGNORECASE)


def _section(text: str, heading: str) -> str:
    """The text under a ``## heading`` up to the next heading of that level."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert m, f"no section '## {heading}'"
    return m.group(1)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _ints(cell: str) -> list[int]:
    return [int(s.replace(",", "")) for s in re.findall(r"\d[\d,]*", cell)]


def _config(spec: str):
    """``board [--set section.field=value ...]`` as a configuration."""
    words = spec.split()
    cfg = default_config(words[0])
    changes = {}
    for flag, item in zip(words[1::2], words[2::2]):
        assert flag == "--set", f"unexpected {flag!r} in {spec!r}"
        key, value = item.split("=", 1)
        changes[key] = tomllib.loads(f"v = {value}")["v"]
    return cfg.replace(**changes) if changes else cfg


def cycle_table(text: str) -> dict[str, dict]:
    """The rows of the cycle-budget table: configuration -> the figures it states."""
    rows = {}
    for line in _section(text, "Cycle budget").splitlines():
        cells = _cells(line) if line.startswith("|") else []
        if len(cells) == 5 and re.fullmatch(r"`[^`]+`", cells[0]):
            fwd, soft, upd, total = (_ints(c) for c in cells[1:])
            rows[cells[0].strip("`")] = {
                "forward": fwd[0], "forward_layers": fwd[1:], "softmax": soft[0],
                "update": upd[0], "update_layers": upd[1:], "total": total[0]}
    return rows


def expected_row(spec: str) -> dict:
    c = step_cycles(_config(spec))
    return {"forward": c["forward"], "forward_layers": list(c["forward_layers"].values()),
            "softmax": c["softmax"], "update": c["update"],
            "update_layers": list(c["update_layers"].values()), "total": c["total"]}


def test_cycle_table_names_both_defaults():
    rows = cycle_table(ARCHITECTURE.read_text())
    assert set(DEFAULTS) <= set(rows), f"the cycle table has {sorted(rows)}, not both defaults"


@pytest.mark.parametrize("spec", sorted(cycle_table(ARCHITECTURE.read_text())))
def test_cycle_table_row_equals_step_cycles(spec):
    stated = cycle_table(ARCHITECTURE.read_text())[spec]
    assert stated == expected_row(spec), (
        f"docs/ARCHITECTURE.md, 'Cycle budget', row `{spec}`: the table says {stated}, "
        f"hdl.cycles.step_cycles says {expected_row(spec)}; fix the table")


def readme_cycles() -> dict[str, int]:
    """The README's figures table: its 'cycles per sample' row, one cell per default
    (the columns named by the header row's board names)."""
    lines = [ln for ln in README.read_text().splitlines() if ln.startswith("|")]
    for i, line in enumerate(lines):
        cells = _cells(line)
        if cells[0].lower().startswith("cycles per sample"):
            header = next(_cells(h) for h in reversed(lines[:i]) if "---" not in h and
                          any(b in h for b in DEFAULTS))
            return {b: _ints(cells[j])[0] for j, h in enumerate(header) for b in DEFAULTS if f"`{b}`" in h}
    raise AssertionError("README.md has no table row 'cycles per sample'")


def test_readme_cycles_equal_step_cycles():
    stated = readme_cycles()
    assert set(stated) == set(DEFAULTS), f"README's cycles row covers {sorted(stated)}"
    for board, cycles in stated.items():
        assert cycles == step_cycles(default_config(board))["total"], (
            f"README.md says {cycles} cycles per sample for {board}; "
            f"hdl.cycles.step_cycles says {step_cycles(default_config(board))['total']}")


def _pages() -> list[Path]:
    return [README] + sorted((ROOT / "docs").rglob("*.md"))


def narration(text: str) -> list[str]:
    return [f"{n}: {ln.strip()[:100]}" for n, ln in enumerate(text.splitlines(), 1) if NARRATION.search(ln)]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_narration(page):
    found = narration(page.read_text())
    assert not found, (f"{page.relative_to(ROOT)} narrates history (describe the project as it is):\n"
                       + "\n".join(found))


def test_narration_pattern_catches_examples():
    assert narration("the default since session %d" % 6) and narration("Issue %d asks" % 2)
    assert narration("as the " + "brief says") and narration("on this 2-core " + "machine")
    assert narration("at a load average of 6")
    assert not narration("one training step per sample; 2 cores")
