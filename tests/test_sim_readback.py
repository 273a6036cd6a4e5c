"""The bench's read-back and comparison (sim/readback.py), and its performance figures
(sim/perf.py), without a simulator: fast unit tests of what every RTL run relies on."""

from __future__ import annotations

import pytest
import torch

from ddfa.config import default_config
from golden.fixed import FixedModel
from ddfa.protocol import BLOCK_WORDS, HostProtocol, Opcode
from sim.bench import mismatch_text
from sim.configs import random_config
from sim.perf import figures, useful_macs
from sim.readback import compare, decode_plan, logical, read_plan


def fake_reply(proto: HostProtocol, plan, banks: dict[str, list[int]]) -> bytes:
    """The bytes a correct processor sends for ``plan`` (from the host protocol's own
    encoder rules: echo byte, then words sign-extended, little-endian; 0 past the end)."""
    wb = proto.params.word_bytes
    out = bytearray()
    for mem, a, n, off, block in plan.parts:
        assert len(out) == off
        words = banks[mem.name]
        if block:
            out.append(Opcode.READ_BLOCK)
            for k in range(a, a + BLOCK_WORDS):
                out += ((words[k] if k < len(words) else 0) & ((1 << (8 * wb)) - 1)).to_bytes(wb, "little")
        else:
            for k in range(mem.words):
                out.append(Opcode.READ_MEM)
                out += (words[k] & ((1 << (8 * wb)) - 1)).to_bytes(wb, "little")
    return bytes(out)


def bank_words(model: FixedModel) -> dict[str, list[int]]:
    cfg = model.cfg
    out = {}
    for l in range(1, cfg.model.n_layers + 1):
        for p, bank in enumerate(model.banks(l)):
            out[f"W{l}_pe{p}"] = bank.reshape(-1).tolist()
        out[f"b{l}"] = model.b[l - 1].tolist()
        if l < cfg.model.n_layers:
            out[f"B{l}"] = model.B[l - 1].reshape(-1).tolist()
    return out


@pytest.mark.parametrize("cfg", [default_config("icebreaker"), default_config("ulx3s-85f"), random_config(5),
                                 random_config(4)], ids=lambda c: c.name)
def test_read_plan_round_trip(cfg):
    """Every memory word, through the plan's commands and replies, back to the golden
    model's logical memories; the plan reads in blocks, one command per 256 words."""
    model = FixedModel(cfg)
    if cfg.model.algorithm == "ddfa":                     # make B non-zero, negative words too
        model.B = [b - 3 * torch.arange(b.numel()).view_as(b) for b in model.B]
    proto = HostProtocol(cfg)
    plan = read_plan(proto)
    assert plan.block
    assert len(plan.parts) == sum(-(-m.words // BLOCK_WORDS) for m in proto.memories)
    assert plan.reply_len == len(plan.parts) * proto.reply_length(Opcode.READ_BLOCK)
    reply = fake_reply(proto, plan, bank_words(model))
    got = logical(cfg, decode_plan(proto, plan, reply))
    want = model.memory_words()
    assert list(got) == list(want)
    for k in want:
        assert got[k].tolist() == want[k], k
    assert compare(cfg, want, got) == (0, None)


def test_first_mismatch_names_memory_layer_row_column():
    """A word changed in PE bank 2 of W1 is reported as W1, its logical row and column,
    the bank and the bank address, with expected and actual values; every differing
    word is counted, and the first one in the golden model's memory order is named."""
    cfg = default_config("icebreaker")                    # W1: 32 x 64, 4 PEs
    model = FixedModel(cfg)
    proto = HostProtocol(cfg)
    plan = read_plan(proto)
    banks = bank_words(model)
    want = model.memory_words()
    # W1[row 6][col 5] lives in PE 6 mod 4 = 2 at address (6 div 4) * 64 + 5 = 69.
    banks["W1_pe2"][69] += 1
    banks["B1"][13] = -7 if banks["B1"][13] != -7 else 7      # later in memory order
    got = logical(cfg, decode_plan(proto, plan, fake_reply(proto, plan, banks)))
    count, first = compare(cfg, want, got)
    assert count == 2
    assert first["memory"] == "W1" and first["layer"] == 1
    assert (first["row"], first["column"]) == (6, 5)
    assert (first["bank"], first["bank_address"]) == ("W1_pe2", 69)
    assert first["expected"] == want["W1"][6 * 64 + 5] and first["actual"] == first["expected"] + 1
    first["step"] = 12
    text = mismatch_text(first)
    assert "step 12" in text and "W1" in text and "row 6" in text and "column 5" in text and "W1_pe2 address 69" in text


def test_bad_echo_is_a_protocol_error():
    cfg = default_config("icebreaker")
    proto = HostProtocol(cfg)
    plan = read_plan(proto)
    reply = bytearray(fake_reply(proto, plan, bank_words(FixedModel(cfg))))
    reply[plan.parts[3][3]] = 0x04
    with pytest.raises(ValueError, match="READ_BLOCK"):
        decode_plan(proto, plan, bytes(reply))


def test_useful_macs_and_utilization():
    """Useful multiplications of a step and the utilisation figure's definition."""
    own = default_config("icebreaker").replace(**{"hardware.share_multiplier": False})
    cfg = own                                             # 64-32-10, PEs 4 and 1: 8 multipliers
    m = useful_macs(cfg)
    assert m["forward_primal"] == 64 * 32 + 32 * 10 == m["update"]
    assert m["forward_tangent"] == 32 * 10
    assert m["feedback"] == 32 * 10
    assert m["total"] == 2 * 2368 + 320 + 320 + 10
    r = figures(cfg, {"cycles_per_sample": 1000.0,
                      "status_cycles": {"total": 1000.0, "forward": 600.0, "update": 400.0, "error": 30.0}})
    assert r["multipliers"] == 8
    assert r["ideal_cycles_per_sample"] == -(-m["total"] // 8)
    assert r["mac_utilization"] == round(m["total"] / 8000, 4)
    assert r["phase_cycles"] == {"forward": 600.0, "error": 30.0, "update": 370.0}
    # the default shares one multiplier among layer 2's tangent, the feedback unit and the
    # softmax: 6 multipliers, the same useful work, one group for the three
    shared = figures(default_config("icebreaker"), {"cycles_per_sample": 1000.0, "status_cycles": {
        "total": 1000.0, "forward": 600.0, "update": 400.0, "error": 30.0}})
    assert shared["multipliers"] == 6 and shared["mac_utilization"] == round(m["total"] / 6000, 4)
    groups = shared["multiplier_utilization"]
    assert groups["shared (layer2_tangent + feedback1 + output_softmax)"] == round((320 + 320 + 10) / 1000, 4)
    assert set(groups) == {"layer1_primal (forward + update)", "layer2_primal (forward + update)",
                           "shared (layer2_tangent + feedback1 + output_softmax)"}


@pytest.mark.parametrize("seed", range(40))
def test_random_configs_are_buildable(seed):
    """The randomised bench configurations validate and fit their boards."""
    from hdl.top import check_hardware
    cfg = random_config(seed)
    check_hardware(cfg)
    assert 2 <= cfg.model.n_layers <= 4
    assert cfg.multipliers_needed <= cfg.board.multipliers
    assert cfg == random_config(seed)
