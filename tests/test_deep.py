"""Networks with several hidden layers: the shipped examples (``examples/*-deep*.toml``)
load, pass the board validation and fit the board's multipliers and memory (the
iCEBreaker's 30 block RAMs by the iCE40's aspect rule), and a digits network with three
hidden layers, a streaming middle layer and a streaming output layer, is bit-exact on
Verilator with cycle counters equal to :func:`hdl.cycles.step_cycles`. Accuracy and
cycles of the examples: ``docs/results/deep.md``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ddfa.cli.generate import verilog_memories
from ddfa.config import Config, default_config, load_config
from hdl.verilog import processor_verilog
from tests.test_sim_bench import assert_cycles, assert_exact, run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEEP = {"icebreaker-deep.toml": 2, "ulx3s-deep.toml": 2, "ulx3s-deep3.toml": 3}

#: The iCE40's SB_RAM40_4K aspects (words, bits): a memory takes the fewest blocks of one.
ICE40_ASPECTS = ((256, 16), (512, 8), (1024, 4), (2048, 2))
#: Block RAMs of the board top beyond the processor's memories: the link's frame buffer.
LINK_BLOCKS = 1


def ice40_blocks(cfg: Config) -> int:
    """SB_RAM40_4K of every memory array of the processor's Verilog, each in the aspect
    that needs fewest, plus the link's frame buffer. For the icebreaker default this is
    the 29 + 1 that Yosys and nextpnr place (``docs/results/builds.md``)."""
    mems = verilog_memories(processor_verilog(cfg))
    return LINK_BLOCKS + sum(min(math.ceil(m["words"] / d) * math.ceil(m["width"] / w) for d, w in ICE40_ASPECTS)
                             for m in mems)


@pytest.mark.parametrize("name, hidden", DEEP.items())
def test_deep_example_is_valid_and_fits(name, hidden):
    cfg = load_config(EXAMPLES / name)
    assert cfg.model.n_layers == hidden + 1
    assert cfg.memory_bits <= cfg.board.memory_bits
    assert cfg.multipliers_needed <= cfg.board.multipliers
    # The board default's formats and accumulator (the validation checks it against the fan-in).
    a, d = cfg.arith, default_config(cfg.hardware.board).arith
    assert (a.act, a.err, a.weight, a.feedback, a.acc_width) == (d.act, d.err, d.weight, d.feedback, d.acc_width)


def test_ice40_block_estimate():
    """The estimate equals the placed icebreaker default (30 of 30 EBR), and the deep
    example fits the 30 blocks."""
    assert ice40_blocks(default_config("icebreaker")) == 30
    cfg = load_config(EXAMPLES / "icebreaker-deep.toml")
    assert ice40_blocks(cfg) <= cfg.board.ebr_blocks


def three_hidden_digits() -> Config:
    """64-24-16-16-10 on digits, the icebreaker example's arithmetic, on the ULX3S (more
    multipliers than the iCE40's 8): layer 2 streams behind layer 1, layer 4 behind 3."""
    return load_config(EXAMPLES / "icebreaker-deep.toml").replace(**{
        "name": "digits-deep3", "model.layers": (64, 24, 16, 16, 10), "hardware.board": "ulx3s-85f",
        "hardware.pes": (2, 1, 2, 1), "hardware.stream": (False, True, False, True)})


@pytest.mark.slow
def test_three_hidden_layers_bit_exact_on_verilator():
    """30 training steps, every stored word compared after each, then 20 test samples
    whose answers equal the golden model's."""
    cfg = three_hidden_digits()
    r = run(cfg, "verilator", 30, test=20)
    assert_exact(r)
    assert_cycles(cfg, r)
    assert r["checks"] == 30 + 2
    assert r["test_accuracy"] == r["golden_test_accuracy"]
