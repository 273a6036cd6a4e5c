"""The SDRAM controller (hdl.sdram.SdramController) on the behavioural SDRAM model
(sim.sdram_model.SdramModel) in Amaranth's simulator: every word read is the last written,
no datasheet time is broken, no refresh is late; a controller timed for a faster chip, a
faulty chip and hand-written bad command sequences are all caught."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from ddfa.config.sdram import ULX3S_SDRAM
from hdl.sdram import (CMD_ACTIVE, CMD_MODE, CMD_NOP, CMD_PRECHARGE, CMD_READ, CMD_REFRESH, CMD_WRITE,
                       SdramController, mode_register, sdram_cell)
from sim.sdram_model import Request, SdramModel, run_store

CLK = 100e6
#: The ULX3S's SDRAM with a 2 us power-up wait (200 cycles at 100 MHz) to keep the runs short.
CHIP = replace(ULX3S_SDRAM, t_powerup_ns=2_000)
WORDS = 1 << CHIP.addr_bits


def address(bank: int, row: int, column: int) -> int:
    return row << 11 | bank << 9 | column


def mixed_requests(seed: int, n: int) -> list[Request]:
    """Random writes and reads across banks and rows, sequential runs (across rows and banks),
    interleaved writes and reads, and reads right after writes to the same word. Only words
    written before are read."""
    rng = random.Random(seed)
    out: list[Request] = []
    written: list[int] = []

    def write(a, gap=0):
        out.append(Request(a, True, rng.randrange(1 << 16), gap))
        written.append(a)

    def read(a, gap=0):
        out.append(Request(a, False, 0, gap))

    while len(out) < n:
        kind = rng.randrange(6)
        if kind == 0:                                   # random words anywhere
            for _ in range(rng.randrange(1, 20)):
                write(rng.randrange(WORDS), gap=rng.choice([0, 0, 0, 1, 7]))
        elif kind == 1 and written:                     # random reads of written words
            for _ in range(rng.randrange(1, 20)):
                read(rng.choice(written), gap=rng.choice([0, 0, 0, 2]))
        elif kind == 2:                                 # a sequential run written, then read back
            start, length = rng.randrange(WORDS - 1200), rng.randrange(1, 1200)
            for a in range(start, start + length):
                write(a)
            for a in range(start, start + length):
                read(a)
        elif kind == 3:                                 # read right after write, the same word twice
            a = rng.randrange(WORDS)
            write(a), read(a), write(a), read(a), read(a)
        elif kind == 4:                                 # interleaved: same row, other banks, other rows
            bank, row = rng.randrange(4), rng.randrange(8192)
            for _ in range(rng.randrange(4, 40)):
                a = address(rng.choice([bank, (bank + 1) % 4]), rng.choice([row, row + 1 & 8191]), rng.randrange(512))
                write(a)
                read(rng.choice(written))
        elif kind == 5 and written:                     # reads and writes of the same few words
            few = rng.sample(written, min(4, len(written)))
            for _ in range(rng.randrange(4, 30)):
                a = rng.choice(few)
                if rng.random() < 0.5:
                    write(a)
                else:
                    read(a)
    return out


def bank_conflicts() -> list[Request]:
    """Two rows of one bank in turn, then the other banks: every request opens a row (tRAS,
    tRP, tRC and tRRD at their limits), then a read back of each word."""
    words = [address(bank, row, 5 * i + bank) for i in range(6)
             for bank, row in ((0, i), (0, i + 100), (1, i), (2, i), (3, i))]
    return ([Request(a, True, (a * 7919) & 0xFFFF) for a in words] + [Request(a) for a in words]
            + [Request(a) for a in reversed(words)])


def assert_clean(run):
    assert not run.mismatches, run.mismatches[:5]
    assert not run.violations, run.violations[:5]


def test_timing_in_cycles_at_100_mhz():
    t = ULX3S_SDRAM.timing(100e6)
    assert (t.rp, t.rcd, t.wr, t.rfc, t.ras, t.rc, t.rrd, t.mrd, t.cl) == (2, 2, 2, 7, 5, 7, 2, 2, 2)
    assert (t.refi, t.powerup, t.ras_max) == (781, 20_000, 10_000)
    assert ULX3S_SDRAM.timing(143e6).cl == 3
    with pytest.raises(ValueError, match="at up to 143 MHz"):
        ULX3S_SDRAM.timing(150e6)


def test_power_up_then_first_request():
    """The full 200 us power-up wait, the initialization, then a write and its read."""
    run = run_store([Request(0x123456, True, 0xBEEF), Request(0x123456)], ULX3S_SDRAM, CLK)
    assert_clean(run)
    t = ULX3S_SDRAM.timing(CLK)
    assert run.first_taken > t.powerup + ULX3S_SDRAM.init_refreshes * t.rfc
    assert run.words == 1 and run.refreshes >= ULX3S_SDRAM.init_refreshes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mixed_patterns(seed):
    run = run_store(mixed_requests(seed, 5000), CHIP, CLK, tail=300)
    assert_clean(run)
    assert run.words > 1000 and run.refreshes > CHIP.init_refreshes + 3


@pytest.mark.parametrize("clk_hz", [25e6, 143e6])
def test_other_clocks(clk_hz):
    """At 25 MHz most times are one cycle; at 143 MHz the CAS latency is 3."""
    run = run_store(mixed_requests(5, 1500) + bank_conflicts(), CHIP, clk_hz, tail=100)
    assert_clean(run)


def test_bank_conflicts():
    """Also: each word lies where ``sdram_cell`` says (bank, row, column of the address)."""
    requests = bank_conflicts()
    run = run_store(requests, CHIP, CLK, tail=100)
    assert_clean(run)
    assert run.memory == {sdram_cell(CHIP, r.addr): r.data for r in requests if r.write}


def test_many_refreshes():
    """tREFI shortened to 2 us (200 cycles): 80 refreshes and more cut into sequential runs."""
    chip = replace(CHIP, t_refi_ns=2_000)
    start = address(3, 8000, 100)
    requests = ([Request(a, True, a & 0xFFFF) for a in range(start, start + 6000)]
                + [Request(a) for a in range(start, start + 6000)] + mixed_requests(7, 3000))
    run = run_store(requests, chip, CLK, tail=500)
    assert_clean(run)
    assert run.refreshes >= 80 + chip.init_refreshes


def test_latency_and_streaming():
    """A read's word comes cl + 2 cycles after it is taken; sequential reads in an open row are
    taken one a cycle."""
    dut = SdramController(CHIP, CLK)
    base = address(1, 77, 0)
    requests = [Request(a, True, a & 0xFFFF) for a in range(base, base + 64)] + [Request(a) for a in range(base, base + 64)]
    run = run_store(requests, CHIP, CLK, controller=dut)
    assert_clean(run)
    reads = run.taken[64:]
    assert [b - a for a, b in zip(reads, reads[1:])] == [1] * 63
    assert [w - r for r, w in zip(reads, run.arrived)] == [dut.read_latency] * 64 == [CHIP.timing(CLK).cl + 2] * 64


BREAKS = [   # a controller timed for a faster chip (field, its value, the chip's if not CHIP's), what the model says
    ("t_rcd_ns", 10, None, "tRCD"), ("t_rp_ns", 10, None, "tRP"), ("t_ras_ns", 30, None, "tRAS"),
    ("t_rc_ns", 63, 90, "tRC"), ("t_rrd_ns", 14, 40, "tRRD"), ("t_wr_ns", 10, None, "tWR"), ("t_rfc_ns", 55, None, "tRFC"),
    ("t_refi_ns", 1.5 * CHIP.t_refi_ns, None, "refresh late"), ("t_powerup_ns", 1_000, None, "during the power-up wait"),
    ("init_refreshes", 1, None, "before the initialization is complete")]


@pytest.mark.parametrize("field,fast,slow,flag", BREAKS, ids=[b[0] for b in BREAKS])
def test_a_broken_controller_is_caught(field, fast, slow, flag):
    requests = bank_conflicts() + [Request(a, True, a & 0xFFFF) for a in range(100, 1100)]
    chip = CHIP if slow is None else replace(CHIP, **{field: slow})
    run = run_store(requests, replace(CHIP, **{field: fast}), CLK, model_chip=chip, tail=1000)
    assert any(flag in v for v in run.violations), run.violations[:5]


class FaultySdram(SdramModel):
    """An SDRAM that stores bit 3 of some words inverted."""

    def _write(self, e, ba, a, dq_o, *rest):
        super()._write(e, ba, a, dq_o ^ (8 if a % 5 == 0 else 0), *rest)


def test_a_wrong_word_is_caught():
    run = run_store(mixed_requests(4, 400), CHIP, CLK, model_class=FaultySdram)
    assert run.mismatches and not run.violations


# -- the model alone, on hand-written command sequences --------------------------------------------------

def initialized_model(chip=CHIP) -> SdramModel:
    """A model after the power-up wait and a correct initialization."""
    model = SdramModel(chip, CLK)
    t = model.t
    script = [(t.powerup, CMD_NOP, {}), (t.rp, CMD_PRECHARGE, {"a": 1 << 10})]
    script += [(t.rfc, CMD_REFRESH, {})] * chip.init_refreshes + [(t.mrd, CMD_MODE, {"a": mode_register(t.cl)})]
    for wait, cmd, kw in script:
        model.step(cmd, **kw)
        for _ in range(wait - 1):
            model.step(CMD_NOP)
    assert model.initialized and not model.violations, model.violations
    return model


def play(model, script):
    """``script``: (command, fields, NOPs after it)."""
    for cmd, kw, nops in script:
        model.step(cmd, **kw)
        for _ in range(nops):
            model.step(CMD_NOP)
    return model.violations


def test_the_model_passes_a_correct_sequence():
    model = initialized_model()
    t = model.t
    assert play(model, [(CMD_ACTIVE, {"ba": 2, "a": 99}, t.rcd - 1),
                        (CMD_WRITE, {"ba": 2, "a": 7, "dq_o": 0x1234, "dq_oe": 1}, 0), (CMD_READ, {"ba": 2, "a": 7}, 0)]) == []
    read = model.edge
    assert [model.dq_at(read + k) for k in (t.cl - 1, t.cl)] == [model._idle_word(read + t.cl - 1), 0x1234]
    assert play(model, [(CMD_NOP, {}, t.wr), (CMD_PRECHARGE, {"ba": 2}, t.rp - 1), (CMD_REFRESH, {}, 0)]) == []
    assert model.memory == {(2, 99, 7): 0x1234}


@pytest.mark.parametrize("script,flag,chip", [
    ([(CMD_ACTIVE, {"ba": 0, "a": 1}, 0), (CMD_READ, {"ba": 0, "a": 0}, 0)], "tRCD", CHIP),
    ([(CMD_ACTIVE, {"ba": 0, "a": 1}, 1), (CMD_PRECHARGE, {"ba": 0}, 0)], "tRAS", CHIP),
    ([(CMD_ACTIVE, {"ba": 0, "a": 1}, 5), (CMD_PRECHARGE, {"ba": 0}, 0), (CMD_ACTIVE, {"ba": 0, "a": 2}, 0)], "tRP", CHIP),
    ([(CMD_ACTIVE, {"ba": 0, "a": 1}, 4), (CMD_PRECHARGE, {"ba": 0}, 1), (CMD_ACTIVE, {"ba": 0, "a": 2}, 0)], "tRC",
     replace(CHIP, t_rc_ns=90)),
    ([(CMD_ACTIVE, {"ba": 0, "a": 1}, 0), (CMD_ACTIVE, {"ba": 1, "a": 1}, 0)], "tRRD", CHIP),
    ([(CMD_ACTIVE, {"ba": 0, "a": 1}, 5), (CMD_WRITE, {"ba": 0, "a": 1, "dq_oe": 1}, 0), (CMD_PRECHARGE, {"ba": 0}, 0)],
     "tWR", CHIP),
    ([(CMD_REFRESH, {}, 0), (CMD_ACTIVE, {"ba": 0, "a": 1}, 0)], "tRFC", CHIP),
    ([(CMD_MODE, {"a": mode_register(2)}, 0), (CMD_ACTIVE, {"ba": 0, "a": 1}, 0)], "tMRD", CHIP),
    ([(CMD_ACTIVE, {"ba": 0, "a": 1}, 9), (CMD_ACTIVE, {"ba": 0, "a": 2}, 0)], "whose row 1 is open", CHIP),
    ([(CMD_READ, {"ba": 3, "a": 0}, 0)], "no open row", CHIP),
    ([(CMD_ACTIVE, {"ba": 1, "a": 1}, 9), (CMD_REFRESH, {}, 0)], "REFRESH with bank 1 open", CHIP),
    ([(CMD_NOP, {}, 800), (CMD_REFRESH, {}, 0)], "refresh late", CHIP),
    ([(CMD_ACTIVE, {"ba": 0, "a": 1}, 3), (CMD_READ, {"ba": 0, "a": 9}, 0)], "never written", CHIP),
    ([(CMD_ACTIVE, {"ba": 0, "a": 1}, 3), (CMD_WRITE, {"ba": 0, "a": 1, "dq_oe": 1}, 0), (CMD_READ, {"ba": 0, "a": 1}, 0),
      (CMD_NOP, {}, 0), (CMD_WRITE, {"ba": 0, "a": 2, "dq_oe": 1}, 0)], "driven by the controller", CHIP),
    ([(CMD_ACTIVE, {"ba": 0, "a": 1}, 3), (CMD_WRITE, {"ba": 0, "a": 1, "dq_oe": 1, "dqm": 1}, 0)], "DQM", CHIP),
    ([(CMD_MODE, {"a": 0x23}, 3)], "burst length", CHIP),
])
def test_the_model_flags_a_bad_sequence(script, flag, chip):
    violations = play(initialized_model(chip), script)
    assert any(flag in v for v in violations), violations


def test_the_model_flags_a_bad_power_up():
    early = SdramModel(CHIP, CLK)
    play(early, [(CMD_NOP, {}, 10), (CMD_PRECHARGE, {"a": 1 << 10}, 0)])
    assert any("during the power-up wait" in v for v in early.violations)
    no_init = SdramModel(CHIP, CLK)
    play(no_init, [(CMD_NOP, {}, no_init.t.powerup), (CMD_ACTIVE, {"ba": 0, "a": 0}, 0)])
    assert any("before the initialization is complete" in v for v in no_init.violations)
    slow = SdramModel(CHIP, 143e6)
    play(slow, [(CMD_NOP, {}, slow.t.powerup), (CMD_PRECHARGE, {"a": 1 << 10}, 3), (CMD_MODE, {"a": mode_register(2)}, 0)])
    assert any("CAS latency 2" in v for v in slow.violations)
