"""The processor's dataset store and epoch runner in Amaranth's simulator: a data set
written through the host stream and read back, one epoch and an evaluation run on the
chip, every memory word and LFSR against the fixed-point model trained on the same
records in the same order; refused commands change nothing."""

from __future__ import annotations

import random

import dataclasses

import pytest

from amaranth.sim import Simulator

from ddfa.config import Config, HardwareConfig, ModelConfig
from ddfa.data import load_config_coded
from ddfa.protocol import BLOCK_WORDS, BUSY_REPLY, RANGE_ERROR_REPLY, WRITE_BLOCK_WORDS, HostProtocol, Opcode
from golden.fixed import FixedModel
from golden.onchip import evaluate, store_image, train_epochs
from hdl.top import Processor

from .test_hdl_top import HostDriver, read_all


def tiny_cfg(inputs="pm1") -> Config:
    return Config(name="tiny", model=ModelConfig(layers=(64, 8, 10), inputs=inputs),
                  hardware=HardwareConfig(board="icebreaker", pes=(2, 2), dataset_store=True))


def small_set(cfg, n_train, n_test):
    coded = load_config_coded(cfg)
    return dataclasses.replace(coded, x_train=coded.x_train[:n_train], y_train=coded.y_train[:n_train],
                               x_test=coded.x_test[:n_test], y_test=coded.y_test[:n_test])


async def run_status(ctx, drv, proto):
    return proto.decode_run_status(await drv.transact(ctx, proto.encode_run_status(),
                                                      proto.reply_length(Opcode.RUN_STATUS)))


async def write_block(ctx, drv, proto, mem, addr, words):
    return await drv.transact(ctx, proto.encode_write_block(mem, addr, words), 1)


async def read_words(ctx, drv, proto, mem, addr, n):
    out = []
    for a in range(addr, addr + n, BLOCK_WORDS):
        r = await drv.transact(ctx, proto.encode_read_block(mem, a), proto.reply_length(Opcode.READ_BLOCK))
        out += proto.decode_block(r, mem)
    return out[:n]


async def upload(ctx, drv, proto, cfg, words, n_train, n_test, dataset_id=0x1234ABCD):
    """The data set and its header, as ``ddfa board train --on-chip`` writes them."""
    for a in range(0, len(words), WRITE_BLOCK_WORDS):
        assert await write_block(ctx, drv, proto, "store", a, words[a:a + WRITE_BLOCK_WORDS]) == bytes(
            [Opcode.WRITE_BLOCK])
    header = cfg.chip_store.header(n_train, n_test, dataset_id)
    assert await write_block(ctx, drv, proto, "store", cfg.chip_store.header_base, header) == bytes(
        [Opcode.WRITE_BLOCK])


def raw(opcode, *counts) -> bytes:
    return bytes([opcode]) + b"".join(c.to_bytes(2, "little") for c in counts)


@pytest.mark.slow
def test_epoch_and_evaluation_on_chip_match_the_fixed_point_model():
    """pm1: one table row for every input (the virtual board's test runs the default's
    standardize, a row per input)."""
    cfg = tiny_cfg("pm1")
    n_train, n_test = 24, 12
    layout = cfg.chip_store
    words = store_image(cfg, small_set(cfg, n_train, n_test))
    gold = FixedModel(cfg)
    train_epochs(gold, words, n_train, n_test, first_epoch=0, epochs=1)
    correct = evaluate(gold, words, n_train, n_test)

    dut = Processor(cfg)
    proto = HostProtocol(cfg)
    drv = HostDriver(dut, random.Random(1), 0.2)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    refused = bytes([RANGE_ERROR_REPLY])

    async def tb(ctx):
        st = await run_status(ctx, drv, proto)
        assert not st["running"]
        # counts the store cannot hold, or none to run: refused (raw frames: the encoders refuse them)
        top = layout.max_records
        # TRAIN_EPOCHS: n_train, epochs; EVALUATE: n_train, n_test
        for bad in (raw(Opcode.TRAIN_EPOCHS, 0, 1), raw(Opcode.TRAIN_EPOCHS, top + 1, 1),
                    raw(Opcode.TRAIN_EPOCHS, 0xFFFF, 1), raw(Opcode.TRAIN_EPOCHS, n_train, 0),
                    raw(Opcode.EVALUATE, n_train, 0), raw(Opcode.EVALUATE, top + 1, 1),
                    raw(Opcode.EVALUATE, 0, top + 1)):
            assert await drv.transact(ctx, bad, 1) == refused, bad.hex()
        # the data set, twice over (a block written again is harmless), every word read back
        await upload(ctx, drv, proto, cfg, words, n_train, n_test)
        await upload(ctx, drv, proto, cfg, words, n_train, n_test)
        assert await read_words(ctx, drv, proto, "store", 0, len(words)) == [int(w) for w in words]
        assert await read_words(ctx, drv, proto, "store", layout.header_base, 4) == layout.header(
            n_train, n_test, 0x1234ABCD)
        # a block that runs past the store's end writes up to it and does not wrap round
        first = layout.capacity_words - 6
        assert await write_block(ctx, drv, proto, "store", first, list(range(100, 228))) == bytes(
            [Opcode.WRITE_BLOCK])
        assert await read_words(ctx, drv, proto, "store", first, 6) == list(range(100, 106))
        assert await read_words(ctx, drv, proto, "store", 0, 128) == [int(w) for w in words[:128]]
        # a memory id past the store's: refused
        assert await write_block(ctx, drv, proto, proto.store.id + 1, 0, [1, 2]) == refused
        # WRITE_BLOCK reaches the learned memories too (b1 from word 4 on, then put back)
        b1 = await read_words(ctx, drv, proto, "b1", 0, 8)
        assert await write_block(ctx, drv, proto, "b1", 4, [1, -2, 3, -4, 5, 6]) == bytes([Opcode.WRITE_BLOCK])
        assert await read_words(ctx, drv, proto, "b1", 0, 8) == b1[:4] + [1, -2, 3, -4]
        assert await write_block(ctx, drv, proto, "b1", 0, b1) == bytes([Opcode.WRITE_BLOCK])

        assert await drv.transact(ctx, proto.encode_train_epochs(1, n_train), 1) == bytes([Opcode.TRAIN_EPOCHS])
        st = await run_status(ctx, drv, proto)
        assert st["running"]
        # commands that would change the state are refused while it runs
        r = await drv.transact(ctx, proto.encode_load_sample([5] * 64, 3), 1)
        assert r == bytes([BUSY_REPLY])
        r = await drv.transact(ctx, proto.encode_write_mem(0, 0, 99), 1)
        assert r == bytes([BUSY_REPLY])
        r = await write_block(ctx, drv, proto, "store", 0, [7] * 8)
        assert r == bytes([BUSY_REPLY])
        while (await run_status(ctx, drv, proto))["running"]:
            await ctx.tick().repeat(200)
        st = await run_status(ctx, drv, proto)
        assert (st["epoch"], st["index"]) == (1, n_train)
        got = await read_all(ctx, drv, proto)
        want = gold.memory_words()
        for name in want:
            assert got[name] == want[name], f"{name} differs after the epoch"
        for l in range(1, cfg.model.n_layers):
            r = await drv.transact(ctx, proto.encode_read_lfsr(l), proto.reply_length(Opcode.READ_LFSR))
            assert proto.decode_lfsr(r) == gold.lfsr[l - 1].state
        assert await read_words(ctx, drv, proto, "store", 0, 8) == [int(w) for w in words[:8]]
        assert await drv.transact(ctx, proto.encode_evaluate(n_train, n_test), 1) == bytes([Opcode.EVALUATE])
        while (await run_status(ctx, drv, proto))["running"]:
            await ctx.tick().repeat(200)
        st = await run_status(ctx, drv, proto)
        assert st["evaluating"] and (st["index"], st["correct"]) == (n_test, correct)
        assert await read_all(ctx, drv, proto) == want

    sim.add_testbench(tb)
    sim.run()
