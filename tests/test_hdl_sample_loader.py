"""The sample loader (hdl.sample_loader.SampleLoader) on the store (hdl.store.SpramStore)
in Amaranth's simulator: a record whose inputs take every pixel code, read through the
input table of golden.onchip (standardize: a row per input), written to the sample buffer
as the act-format inputs the fixed-point model gives those codes, and its label."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from ddfa.config import default_config
from ddfa.data import load_config_coded
from golden.onchip import input_table, table_inputs
from hdl.sample_loader import SampleLoader
from hdl.store import SpramStore


def test_every_code_through_the_table():
    cfg = default_config("icebreaker").replace(**{"hardware.dataset_store": True})
    layout = cfg.chip_store
    coded = load_config_coded(cfg)
    table = input_table(cfg, coded)
    n0, codes = layout.n_inputs, layout.codes
    record_codes = [[(j + s) % 17 for j in range(n0)] for s in range(17)]      # every code at every input
    labels = [s % cfg.model.n_outputs for s in range(17)]
    words = [int(w) & 0xFFFF for w in table]
    for rec, label in zip(record_codes, labels):
        b = rec + [label] + [0] * ((n0 + 1) % 2)
        words += [b[k] | b[k + 1] << 8 for k in range(0, len(b), 2)]

    m = Module()
    m.submodules.loader = loader = SampleLoader(cfg)
    m.submodules.store = store = SpramStore(cfg)
    wiring.connect(m, loader.store, store.bus)
    sim = Simulator(m)
    sim.add_clock(1e-6)

    async def tb(ctx):
        for a, w in enumerate(words):                  # the store's contents, as an upload leaves them
            ctx.set(store.memories[a // 16384].data[a % 16384], w)
        for s, (rec, label) in enumerate(zip(record_codes, labels)):
            ctx.set(loader.record, layout.record_address(s))
            ctx.set(loader.start, 1)
            await ctx.tick()
            ctx.set(loader.start, 0)
            x = {}
            while True:
                if ctx.get(loader.x_we):
                    x[ctx.get(loader.x_addr)] = ctx.get(loader.x_data.as_signed())
                if not ctx.get(loader.busy):
                    break
                await ctx.tick()
            want = table_inputs(layout, table, np.asarray([rec]))[0].tolist()
            assert [x[j] for j in range(n0)] == want, s
            assert ctx.get(loader.label) == label

    sim.add_testbench(tb)
    sim.run()
