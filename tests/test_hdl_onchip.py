"""The processor's dataset store and epoch runner in Amaranth's simulator: a data set
uploaded through the host stream, one epoch and an evaluation run on the chip, every
memory word and LFSR against the fixed-point model trained on the same records in the
same order; the upload's and the runner's refusals change nothing."""

from __future__ import annotations

import random

import dataclasses

import pytest

from amaranth.sim import Simulator

from ddfa.config import Config, HardwareConfig, ModelConfig
from ddfa.data import load_config_coded
from ddfa.protocol import BUSY_REPLY, RANGE_ERROR_REPLY, UPLOAD_WORDS, HostProtocol, Opcode, store_crc
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


async def upload(ctx, drv, proto, words, n_train, n_test, dataset_id=0x1234ABCD, skip=()):
    assert await drv.transact(ctx, proto.encode_upload_begin(n_train, n_test), 1) == bytes([Opcode.UPLOAD_BEGIN])
    for blk in range(-(-len(words) // UPLOAD_WORDS)):
        if blk in skip:
            continue
        r = await drv.transact(ctx, proto.encode_upload_block(blk, words[blk * UPLOAD_WORDS:(blk + 1) * UPLOAD_WORDS]), 1)
        assert r == bytes([Opcode.UPLOAD_BLOCK])
    r = await drv.transact(ctx, proto.encode_upload_end(store_crc(words), dataset_id), 2)
    return proto.decode_upload_end(r)


@pytest.mark.slow
def test_epoch_and_evaluation_on_chip_match_the_fixed_point_model():
    """pm1: one table row for every input (the virtual board's test runs the default's
    standardize, a row per input)."""
    cfg = tiny_cfg("pm1")
    n_train, n_test = 24, 12
    words = store_image(cfg, small_set(cfg, n_train, n_test))
    gold = FixedModel(cfg)
    train_epochs(gold, words, n_train, n_test, first_epoch=0, epochs=1)
    correct = evaluate(gold, words, n_train, n_test)

    dut = Processor(cfg)
    proto = HostProtocol(cfg)
    drv = HostDriver(dut, random.Random(1), 0.2)
    sim = Simulator(dut)
    sim.add_clock(1e-6)

    async def tb(ctx):
        st = await run_status(ctx, drv, proto)
        assert not st["dataset_valid"] and not st["running"]
        # no data set yet: refused
        assert await drv.transact(ctx, proto.encode_train_epochs(1), 1) == bytes([RANGE_ERROR_REPLY])
        # a block lost: the check fails, the data set stays invalid
        assert not await upload(ctx, drv, proto, words, n_train, n_test, skip={3})
        assert not (await run_status(ctx, drv, proto))["dataset_valid"]
        assert await drv.transact(ctx, proto.encode_evaluate(), 1) == bytes([RANGE_ERROR_REPLY])
        # the whole data set, twice over: the check passes
        assert await upload(ctx, drv, proto, words, n_train, n_test)
        assert await upload(ctx, drv, proto, words, n_train, n_test)
        st = await run_status(ctx, drv, proto)
        assert st["dataset_valid"] and st["dataset_id"] == 0x1234ABCD
        # a block past the data set's end: refused
        r = await drv.transact(ctx, proto.encode_upload_block(len(words) // UPLOAD_WORDS + 1, [7] * 4), 1)
        assert r == bytes([RANGE_ERROR_REPLY])
        # a data set that does not fit
        r = await drv.transact(ctx, bytes([Opcode.UPLOAD_BEGIN]) + (60000).to_bytes(2, "little") + bytes(2), 1)
        assert r == bytes([RANGE_ERROR_REPLY])
        assert (await run_status(ctx, drv, proto))["dataset_valid"]

        assert await drv.transact(ctx, proto.encode_train_epochs(1), 1) == bytes([Opcode.TRAIN_EPOCHS])
        st = await run_status(ctx, drv, proto)
        assert st["running"]
        # commands that would change the state are refused while it runs
        r = await drv.transact(ctx, proto.encode_load_sample([5] * 64, 3), 1)
        assert r == bytes([BUSY_REPLY])
        r = await drv.transact(ctx, proto.encode_write_mem(0, 0, 99), 1)
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
        assert await drv.transact(ctx, proto.encode_evaluate(), 1) == bytes([Opcode.EVALUATE])
        while (await run_status(ctx, drv, proto))["running"]:
            await ctx.tick().repeat(200)
        st = await run_status(ctx, drv, proto)
        assert st["evaluating"] and (st["index"], st["correct"]) == (n_test, correct)
        assert await read_all(ctx, drv, proto) == want

    sim.add_testbench(tb)
    sim.run()
