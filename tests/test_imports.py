"""Dependencies run one way: the configuration, data and protocol definitions at the
bottom, the command line at the top.

Every ``import`` in the project's packages, function-local ones included, is read with
:mod:`ast` and checked against :data:`LAYERS`: a module may import its own package and
the packages of lower layers, never a package of its own layer or above. ``ddfa.cli`` (the
command line and the host client) is a layer of its own, above everything else.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: Package -> layer. Higher layers may import lower ones; packages of one layer are
#: independent of each other.
LAYERS = {
    "ddfa": 0,          # ddfa.config, ddfa.data, ddfa.protocol: the leaf layer
    "golden": 1,        # reference models
    "hdl": 2,           # the processor
    "sim": 3,           # RTL simulation benches
    "boards": 3,        # board tops and the open-toolchain build
    "ddfa.cli": 4,      # the command line and the host client
}


def package_of(module: str) -> str | None:
    """The entry of :data:`LAYERS` that ``module`` belongs to (the longest prefix)."""
    best = None
    for pkg in LAYERS:
        if module == pkg or module.startswith(pkg + "."):
            if best is None or len(pkg) > len(best):
                best = pkg
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source`` (relative ones resolved)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{a.name}") for a in node.names]   # "from ddfa import cli"
    return out


def wrong_edges(source: str, module: str, is_package: bool = False) -> list[str]:
    """The imports of ``source`` (the text of ``module``) that run the wrong way."""
    src_pkg = package_of(module)
    bad = []
    for line, name in imported_modules(source, module, is_package):
        dst_pkg = package_of(name)
        if src_pkg is None or dst_pkg is None or dst_pkg == src_pkg:
            continue
        if LAYERS[dst_pkg] >= LAYERS[src_pkg]:
            bad.append(f"{module}:{line} imports {name} ({dst_pkg}, layer {LAYERS[dst_pkg]}) "
                       f"from {src_pkg} (layer {LAYERS[src_pkg]})")
    return sorted(set(bad))


def project_modules() -> list[Path]:
    return sorted(p for pkg in ("ddfa", "golden", "hdl", "sim", "boards")
                  for p in (REPO / pkg).rglob("*.py"))


def test_every_module_is_in_a_layer():
    assert len(project_modules()) > 40
    for p in project_modules():
        assert package_of(module_name(p)) is not None, p


def test_dependencies_run_one_way():
    bad = []
    for p in project_modules():
        bad += wrong_edges(p.read_text(), module_name(p), p.name == "__init__.py")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


@pytest.mark.parametrize("module, source", [
    ("hdl.link", "from ddfa.cli.link_client import SYNC"),
    ("hdl.link", "from ddfa.cli import link_client"),
    ("sim.simulate", "def f():\n    from ddfa.cli.generate import generate"),
    ("ddfa.config", "import golden.arith"),
    ("golden.fixed", "from hdl.top import Processor"),
    ("sim.bench", "from boards.build import build"),
    ("ddfa.protocol", "from .cli import main"),
])
def test_a_wrong_edge_is_found(module, source):
    assert wrong_edges(source, module)


@pytest.mark.parametrize("module, source", [
    ("hdl.link", "from ddfa.protocol import SYNC"),
    ("ddfa.cli.board", "from ..config import Config\nfrom hdl.host import Host"),
    ("sim.simulate", "from hdl.verilog import processor_verilog\nfrom .runner import get_runner"),
])
def test_a_right_edge_passes(module, source):
    assert not wrong_edges(source, module)
