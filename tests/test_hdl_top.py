"""The whole processor in Amaranth's simulator against golden.fixed.FixedModel.

Real digits samples go in through the host byte stream (LOAD_SAMPLE, TRAIN); after every
training step EVERY memory word (all W banks, b, B) is read back through the host stream
(READ_MEM) and compared with the golden model, exactly, and so are the LFSR states and the
step counter. Inference (INFER) must agree with FixedModel.predict and change nothing.
The cycles of each phase are measured and checked against the formula of
hdl.cycles.step_cycles (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import random
import time

import pytest
import torch
from amaranth.sim import Simulator

from ddfa.config import Config, ModelConfig, HardwareConfig, default_config
from ddfa.data import load_dataset
from golden.fixed import FixedModel
from hdl.cycles import infer_cycles, step_cycles
from ddfa.config import config_hash
from ddfa.protocol import BLOCK_WORDS, RANGE_ERROR_REPLY, HostProtocol, HostReplyError, Opcode, addr_width
from hdl.top import Processor


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny_cfg(layers=(64, 8, 10), pes=(2, 2), board="icebreaker", **kw) -> Config:
    return Config(name="tiny", model=ModelConfig(layers=tuple(layers), **kw),
                  hardware=HardwareConfig(board=board, pes=tuple(pes)))


class HostDriver:
    """Sends commands on the processor's byte stream and reads the replies (with random
    gaps on both sides, so that the host interface sees backpressure)."""

    def __init__(self, dut: Processor, rng: random.Random | None = None, gap: float = 0.0):
        self.dut, self.rng, self.gap = dut, rng or random.Random(0), gap

    async def transact(self, ctx, data: bytes, n_reply: int) -> bytes:
        i, o = self.dut.i, self.dut.o
        for b in data:
            if self.gap and self.rng.random() < self.gap:
                await ctx.tick()
            ctx.set(i.valid, 1)
            ctx.set(i.payload, b)
            await ctx.tick().until(i.ready)
            ctx.set(i.valid, 0)
        out = []
        for _ in range(n_reply):
            if self.gap and self.rng.random() < self.gap:
                ctx.set(o.ready, 0)
                await ctx.tick()
            ctx.set(o.ready, 1)
            (b,) = await ctx.tick().sample(o.payload).until(o.valid)
            out.append(b)
        ctx.set(o.ready, 0)
        return bytes(out)


async def read_all(ctx, drv: HostDriver, proto: HostProtocol) -> dict[str, list[int]]:
    """Every memory word, read through READ_MEM, as logical (unbanked) images."""
    cfg = proto.cfg
    n = cfg.model.layers
    words = {}
    for mem in proto.memories:
        vals = []
        for a in range(mem.words):
            r = await drv.transact(ctx, proto.encode_read_mem(mem.id, a), proto.reply_length(Opcode.READ_MEM))
            vals.append(proto.decode_word(r, mem.id))
        words[mem.name] = vals
    out = {}
    for l in range(1, cfg.model.n_layers + 1):
        P = cfg.hardware.pes[l - 1]
        W = [0] * (n[l] * n[l - 1])
        for p in range(P):
            bank = words[f"W{l}_pe{p}"]
            for r, i in enumerate(range(p, n[l], P)):
                W[i * n[l - 1]:(i + 1) * n[l - 1]] = bank[r * n[l - 1]:(r + 1) * n[l - 1]]
        out[f"W{l}"] = W
        out[f"b{l}"] = words[f"b{l}"]
        if l < cfg.model.n_layers:
            out[f"B{l}"] = words[f"B{l}"]
    return out


async def peek_all(ctx, drv: HostDriver, proto: HostProtocol) -> dict[str, list[int]]:
    """W and b straight from the simulated memories (fast), B through READ_MEM."""
    dut, cfg = drv.dut, proto.cfg
    n = cfg.model.layers
    out = {}
    for l, e in enumerate(dut.engines, start=1):
        P = e.pes
        W = [0] * (n[l] * n[l - 1])
        for p in range(P):
            bank = [e.bank_word(ctx, p, a) for a in range(e.bank_depth)]
            for r, i in enumerate(range(p, n[l], P)):
                W[i * n[l - 1]:(i + 1) * n[l - 1]] = bank[r * n[l - 1]:(r + 1) * n[l - 1]]
        out[f"W{l}"] = W
        out[f"b{l}"] = [ctx.get(e.b_data[i]) for i in range(n[l])]
        if l < cfg.model.n_layers:
            mem = proto.by_name[f"B{l}"]
            vals = []
            for a in range(mem.words):
                r = await drv.transact(ctx, proto.encode_read_mem(mem.id, a), proto.reply_length(Opcode.READ_MEM))
                vals.append(proto.decode_word(r, mem.id))
            out[f"B{l}"] = vals
    return out


async def host_writes(ctx, drv: HostDriver, proto: HostProtocol, gold: FixedModel, rng: random.Random):
    """PING, an unknown opcode, WRITE_MEM into every memory and WRITE_LFSR, mirrored in
    the golden model (so that the training that follows checks them too)."""
    cfg = proto.cfg
    n = cfg.model.layers
    assert await drv.transact(ctx, proto.encode_ping(), 2) == bytes([Opcode.PING, 1])
    assert await drv.transact(ctx, bytes([0x5A]), 2) == bytes([0xFF, 0x5A])
    for mem in proto.memories:
        for _ in range(3):
            a = rng.randrange(mem.words)
            fmt = cfg.arith.feedback if mem.kind == "B" else cfg.arith.weight
            word = rng.randint(fmt.min, fmt.max)
            r = await drv.transact(ctx, proto.encode_write_mem(mem.id, a, word), 1)
            assert r == bytes([Opcode.WRITE_MEM])
            r = await drv.transact(ctx, proto.encode_read_mem(mem.id, a), proto.reply_length(Opcode.READ_MEM))
            assert proto.decode_word(r, mem.id) == word
            if mem.kind == "W":
                P = cfg.hardware.pes[mem.layer - 1]
                i, j = (a // n[mem.layer - 1]) * P + mem.pe, a % n[mem.layer - 1]
                gold.W[mem.layer - 1][i, j] = word
            elif mem.kind == "b":
                gold.b[mem.layer - 1][a] = word
            else:
                gold.B[mem.layer - 1].view(-1)[a] = word
    for l in range(1, cfg.model.n_layers):
        state = rng.randrange(1, 1 << cfg.arith.lfsr_width)
        assert await drv.transact(ctx, proto.encode_write_lfsr(l, state), 1) == bytes([Opcode.WRITE_LFSR])
        assert await drv.transact(ctx, proto.encode_write_lfsr(l, 0), 1) == bytes([Opcode.WRITE_LFSR])  # ignored
        r = await drv.transact(ctx, proto.encode_read_lfsr(l), proto.reply_length(Opcode.READ_LFSR))
        assert proto.decode_lfsr(r) == state
        gold.lfsr[l - 1].state = state


def run_processor(cfg: Config, samples, labels, *, readback="host", gap=0.0, infer_every=True, writes=False,
                  monitor_layers=False):
    """Train on (samples, labels) through the host stream, comparing every memory word
    with the golden model after every step: ``readback`` "host" reads every word through
    READ_MEM, "peek" reads W and b from the simulator and B through READ_MEM, "end" reads
    every word through READ_MEM after the last step only. Returns the STATUS of each step."""
    gold = FixedModel(cfg)
    dut = Processor(cfg)
    proto = HostProtocol(cfg)
    drv = HostDriver(dut, random.Random(1), gap)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    res = {"steps": []}
    x_q = [gold.quantize_input(torch.as_tensor(s)) for s in samples]

    async def tb(ctx):
        r = await drv.transact(ctx, proto.encode_info(), proto.reply_length(Opcode.INFO))
        info = proto.decode_info(r)
        assert info["config_hash"] == config_hash(cfg)
        assert info["n_memories"] == len(proto.memories)
        if readback == "host":
            assert await read_all(ctx, drv, proto) == gold.memory_words(), "initial state differs"
        if writes:
            await host_writes(ctx, drv, proto, gold, random.Random(7))
        for k, (x, label) in enumerate(zip(x_q, labels)):
            r = await drv.transact(ctx, proto.encode_load_sample(x.tolist(), int(label)), 1)
            assert r == bytes([Opcode.LOAD_SAMPLE])
            if infer_every:
                r = await drv.transact(ctx, proto.encode_infer(), 2)
                assert proto.decode_class(r, Opcode.INFER) == gold.predict(x), f"inference of sample {k}"
                st = proto.decode_status(await drv.transact(ctx, proto.encode_status(), proto.reply_length(Opcode.STATUS)))
                assert (st["steps"], st["cycles"], st["cycles_update"]) == (k, infer_cycles(cfg), 0)
            out = gold.step(x, int(label))
            r = await drv.transact(ctx, proto.encode_train(), 2)
            assert proto.decode_class(r, Opcode.TRAIN) == int(out[f"y{cfg.model.n_layers}"].argmax())
            st = proto.decode_status(await drv.transact(ctx, proto.encode_status(), proto.reply_length(Opcode.STATUS)))
            assert st["steps"] == k + 1
            res["steps"].append(st)
            for l in range(1, cfg.model.n_layers):
                r = await drv.transact(ctx, proto.encode_read_lfsr(l), proto.reply_length(Opcode.READ_LFSR))
                assert proto.decode_lfsr(r) == gold.lfsr[l - 1].state, f"LFSR {l} after step {k + 1}"
            if readback != "end" or k == len(labels) - 1:
                got = await (peek_all if readback == "peek" else read_all)(ctx, drv, proto)
                want = gold.memory_words()
                for name in want:
                    assert got[name] == want[name], f"{name} differs after step {k + 1}"

    async def monitor(ctx):
        """Per layer, the cycles from the upd strobe until its engine and feedback unit
        are idle (last step)."""
        seq, L = dut.sequencer, cfg.model.n_layers
        cyc, start, idle = 0, None, {}
        while True:
            await ctx.tick()
            cyc += 1
            if ctx.get(seq.upd):
                start, idle = cyc, {}
            elif start is not None:
                for l in range(1, L + 1):
                    busy = ctx.get(dut.engines[l - 1].busy) or (l < L and ctx.get(dut.feedback[l - 1].busy))
                    if l not in idle and not busy:
                        idle[l] = cyc - start
                res["update_layers"] = dict(idle)

    sim.add_testbench(tb)
    if monitor_layers:
        sim.add_testbench(monitor, background=True)
    t0 = time.perf_counter()
    sim.run()
    res["seconds"] = time.perf_counter() - t0
    return res


def test_processor_tiny_trains_like_golden(digits):
    """64-8-10, 2 PEs per layer, icebreaker: 3 steps, full host readback after each."""
    cfg = tiny_cfg()
    idx = [0, 1, 2]
    res = run_processor(cfg, digits.x_train[idx], digits.y_train[idx], gap=0.2, writes=True)
    st = res["steps"][-1]
    want = step_cycles(cfg)
    print(f"\n{cfg.model.layers} pes {cfg.hardware.pes}: cycles {st['cycles']} "
          f"(forward {st['cycles_forward']}, update {st['cycles_update']}); formula {want}; "
          f"sim {res['seconds']:.1f} s")
    assert st["cycles"] == want["total"]
    assert st["cycles_forward"] == want["forward"]
    assert st["cycles_update"] == want["update"]
    assert st["cycles_error"] == want["softmax"]


def test_processor_three_hidden_layers(digits):
    """64-8-6-4-10 with random DFA off (DDFA) and mixed PE counts: the update phase takes
    the slowest layer's cycles, not the sum."""
    cfg = Config(name="deep", model=ModelConfig(layers=(64, 8, 6, 4, 10)),
                 hardware=HardwareConfig(board="ulx3s-85f", pes=(4, 3, 2, 5)),
                 arith=default_config("ulx3s-85f").arith)
    idx = [3, 4]
    res = run_processor(cfg, digits.x_train[idx], digits.y_train[idx], readback="end", infer_every=False,
                        monitor_layers=True)
    st = res["steps"][-1]
    want = step_cycles(cfg)
    print(f"\n{cfg.model.layers} pes {cfg.hardware.pes}: cycles {st['cycles']} "
          f"(forward {st['cycles_forward']}, update {st['cycles_update']}); measured update per layer "
          f"{res['update_layers']}; formula {want}; sim {res['seconds']:.1f} s")
    assert res["update_layers"] == want["update_layers"]
    assert st["cycles"] == want["total"]
    assert st["cycles_update"] == want["update"]
    assert want["update"] == max(want["update_layers"].values()) < sum(want["update_layers"].values())


def test_processor_icebreaker_default(digits):
    """The embedded icebreaker default (64-32-10, PEs 4 and 1): two steps, every word
    compared after each (W and b peeked, B through the host), cycles as the model says."""
    cfg = default_config("icebreaker")
    idx = [5, 6]
    res = run_processor(cfg, digits.x_train[idx], digits.y_train[idx], readback="peek", infer_every=False)
    st = res["steps"][-1]
    want = step_cycles(cfg)
    print(f"\nicebreaker: cycles {st['cycles']} (forward {st['cycles_forward']}, update {st['cycles_update']}); "
          f"formula {want}; sim {res['seconds']:.1f} s")
    assert (st["cycles"], st["cycles_forward"], st["cycles_update"]) == (want["total"], want["forward"], want["update"])


@pytest.mark.parametrize("board, layers, pes, stream", [
    ("icebreaker", (64, 8, 10), (2, 1), (False, True)),
    ("ulx3s-85f", (64, 6, 4, 10), (3, 1, 1), (False, True, True)),
    ("ulx3s-85f", (64, 6, 4, 10), (3, 1, 2), (False, True, False)),
])
def test_processor_streaming_layers(digits, board, layers, pes, stream):
    """Streaming layers (``hardware.stream``): layer 2 (and 3) start with layer 1 and take
    each row as it is written. Every word after every step, inference, and the cycles of
    each phase (hdl.cycles: the forward stages) as the model says; the forward pass is
    shorter than the layers one after the other."""
    cfg = Config(name="stream", model=ModelConfig(layers=layers),
                 hardware=HardwareConfig(board=board, pes=pes, stream=stream))
    idx = [10, 11]
    res = run_processor(cfg, digits.x_train[idx], digits.y_train[idx], monitor_layers=True)
    st = res["steps"][-1]
    want = step_cycles(cfg)
    serial = step_cycles(cfg.replace(**{"hardware.stream": ()}))
    print(f"\n{layers} pes {pes} stream {stream}: cycles {st['cycles']} (forward {st['cycles_forward']}); "
          f"formula {want}; layer after layer: forward {serial['forward']}; sim {res['seconds']:.1f} s")
    assert (st["cycles"], st["cycles_forward"], st["cycles_update"]) == (want["total"], want["forward"], want["update"])
    assert res["update_layers"] == want["update_layers"]
    assert want["forward"] < serial["forward"]


@pytest.mark.parametrize("board, layers, pes, stream", [
    ("icebreaker", (64, 32, 10), (4, 1), (False, True)),       # the icebreaker default's hardware
    ("icebreaker", (64, 8, 10), (2, 2), ()),                   # no tangent PE to share
    ("ulx3s-85f", (64, 6, 4, 10), (3, 2, 1), ()),              # two feedback units, one shares
])
def test_processor_shared_multiplier(digits, board, layers, pes, stream):
    """``hardware.share_multiplier``: the output layer's tangent products (when it has
    one PE), the softmax and layer 1's feedback unit use one multiplier. Every word after
    every step, inference, and the cycles as the model says (sharing costs none)."""
    cfg = Config(name="share", model=ModelConfig(layers=layers), arith=default_config(board).arith,
                 hardware=HardwareConfig(board=board, pes=pes, stream=stream, share_multiplier=True))
    assert cfg.softmax_fold == (board == "icebreaker")      # exp_bits 15 on 16-bit multipliers: folded
    own = cfg.replace(**{"hardware.share_multiplier": False})
    assert cfg.multipliers_needed == own.multipliers_needed - len(cfg.shared_multiplier_units) + 1
    idx = [12, 13]
    res = run_processor(cfg, digits.x_train[idx], digits.y_train[idx], readback="peek")
    st = res["steps"][-1]
    want = step_cycles(cfg)
    assert want == step_cycles(own)
    print(f"\n{layers} pes {pes} stream {stream} shared {cfg.shared_multiplier_units}: cycles {st['cycles']}; "
          f"sim {res['seconds']:.1f} s")
    assert (st["cycles"], st["cycles_forward"], st["cycles_update"]) == (want["total"], want["forward"], want["update"])


def test_processor_random_dfa(digits):
    """Random DFA (fixed random B, no eq.-17 update): B starts from the golden model's
    random draw and stays; W and b learn."""
    cfg = tiny_cfg(layers=(64, 4, 10), pes=(2, 2), algorithm="dfa")
    idx = [7, 8]
    B0 = FixedModel(cfg).B[0].clone()
    assert B0.abs().sum() > 0
    res = run_processor(cfg, digits.x_train[idx], digits.y_train[idx], readback="end", infer_every=False)
    assert res["steps"][-1]["cycles"] == step_cycles(cfg)["total"]


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_read_block_and_error_cycles(digits, board):
    """READ_BLOCK returns BLOCK_WORDS words from an address on, sign-extended, 0 past the
    memory's end, under backpressure on both streams; STATUS splits the update phase's
    first cycles off as the error phase (softmax, hdl.cycles.step_cycles "softmax").
    On the ECP5 board the memory bus has its registered request and word
    (hdl.host.mem_bus_latency 4)."""
    cfg = tiny_cfg(layers=(64, 6, 10), pes=(3, 1), board=board)
    gold = FixedModel(cfg)
    dut = Processor(cfg)
    proto = HostProtocol(cfg)
    drv = HostDriver(dut, random.Random(3), gap=0.3)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    x = gold.quantize_input(digits.x_train[9])
    label = int(digits.y_train[9])

    async def tb(ctx):
        await drv.transact(ctx, proto.encode_load_sample(x.tolist(), label), 1)
        gold.step(x, label)
        await drv.transact(ctx, proto.encode_train(), 2)
        st = proto.decode_status(await drv.transact(ctx, proto.encode_status(), proto.reply_length(Opcode.STATUS)))
        want = step_cycles(cfg)
        assert st["cycles_error"] == want["softmax"]
        assert st["cycles_update"] == want["update"]
        n_block = proto.reply_length(Opcode.READ_BLOCK)
        assert n_block == 1 + BLOCK_WORDS * proto.params.word_bytes
        for mem in proto.memories:
            if mem.kind == "W":
                P = cfg.hardware.pes[mem.layer - 1]
                words = gold.W[mem.layer - 1][mem.pe::P].reshape(-1).tolist()
            else:
                words = {"b": gold.b, "B": gold.B}[mem.kind][mem.layer - 1].reshape(-1).tolist()
            for start in sorted({0, max(0, mem.words - 3)}):
                r = await drv.transact(ctx, proto.encode_read_block(mem.id, start), n_block)
                got = proto.decode_block(r, mem.id)
                expect = (words[start:] + [0] * BLOCK_WORDS)[:BLOCK_WORDS]
                assert got == expect, f"READ_BLOCK {mem.name} from {start}"
        # the stream is in step afterwards: an ordinary command still answers
        r = await drv.transact(ctx, proto.encode_read_mem("b2", 1), proto.reply_length(Opcode.READ_MEM))
        assert proto.decode_word(r, "b2") == gold.b[1][1]

    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_out_of_range_arguments_change_nothing(digits, board):
    """READ_MEM, WRITE_MEM and READ_BLOCK with a memory id not in the map or an address
    at or past the memory's end (just past it, where it aliases onto word 0 of the
    memory's address bits, and the largest address), and LOAD_SAMPLE with a label that is
    not a class, get the range-error reply (RANGE_ERROR_REPLY, the opcode, zeros; the
    reply keeps its length) and change nothing: every stored word, the LFSR states, the
    step counter, the sample flag and the label (a TRAIN afterwards matches the golden
    step with the label loaded before)."""
    cfg = tiny_cfg(layers=(64, 6, 10), pes=(3, 1), board=board)
    gold = FixedModel(cfg)
    dut = Processor(cfg)
    proto = HostProtocol(cfg)
    drv = HostDriver(dut, random.Random(5), gap=0.2)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    x = gold.quantize_input(digits.x_train[4])
    label = int(digits.y_train[4])
    h = proto.params
    max_addr = (1 << (8 * h.addr_bytes)) - 1
    sample = proto.encode_load_sample(x.tolist(), label)[:-1]

    async def status(ctx):
        return proto.decode_status(await drv.transact(ctx, proto.encode_status(), proto.reply_length(Opcode.STATUS)))

    async def lfsrs(ctx):
        return [proto.decode_lfsr(await drv.transact(ctx, proto.encode_read_lfsr(l), proto.reply_length(Opcode.READ_LFSR)))
                for l in range(1, cfg.model.n_layers)]

    async def refused(ctx, command: bytes):
        op = command[0]
        r = await drv.transact(ctx, command, proto.reply_length(op))
        assert r == proto.range_error_reply(op), (command[:4].hex(), r[:4].hex())
        assert r[0] == RANGE_ERROR_REPLY
        with pytest.raises(HostReplyError, match="refused"):
            proto.check(r, op)

    async def tb(ctx):
        # before any sample: a refused LOAD_SAMPLE leaves the sample flag clear
        await refused(ctx, sample + bytes([cfg.model.n_outputs]))
        assert not (await status(ctx))["sample_loaded"]
        r = await drv.transact(ctx, proto.encode_load_sample(x.tolist(), label), 1)
        assert r == bytes([Opcode.LOAD_SAMPLE])
        before = (await read_all(ctx, drv, proto), await lfsrs(ctx), await status(ctx))
        assert before[0] == gold.memory_words()

        for mem in proto.memories:
            for addr in sorted({mem.words, 1 << addr_width(mem.words), max_addr}):
                await refused(ctx, proto.encode_write_mem(mem.id, addr, -1))
                await refused(ctx, proto.encode_read_mem(mem.id, addr))
                await refused(ctx, proto.encode_read_block(mem.id, addr))
        for mem_id in (len(proto.memories), 255):
            await refused(ctx, proto.encode_write_mem(mem_id, 0, -1))
            await refused(ctx, proto.encode_read_mem(mem_id, 0))
            await refused(ctx, proto.encode_read_block(mem_id, 0))
        for bad_label in (cfg.model.n_outputs, 255):
            await refused(ctx, sample + bytes([bad_label]))

        after = (await read_all(ctx, drv, proto), await lfsrs(ctx), await status(ctx))
        for name in before[0]:
            assert after[0][name] == before[0][name], f"{name} changed"
        assert after[1:] == before[1:]
        # the label loaded before the refused LOAD_SAMPLEs trains
        out = gold.step(x, label)
        r = await drv.transact(ctx, proto.encode_train(), 2)
        assert proto.decode_class(r, Opcode.TRAIN) == int(out[f"y{cfg.model.n_layers}"].argmax())
        assert await read_all(ctx, drv, proto) == gold.memory_words()

    sim.add_testbench(tb)
    sim.run()
