"""The cocotb bench: the generated processor against the fixed-point golden model.

Run by :mod:`sim.simulate` (``ddfa simulate``, ``tests/test_sim_*.py``) through cocotb's
Python runner on Icarus or Verilator; the job comes in a JSON file named by the
environment variable ``DDFA_SIM_JOB`` (:class:`sim.simulate.Job`) and the result goes to
the JSON file it names.

What one run does, all through the host byte stream (:mod:`sim.host_stream`):

1. INFO: the protocol version and the configuration hash must match the configuration.
2. Every memory word (all W banks, b, B), the LFSR states and the step counter are read
   back and compared with the golden model's initial state.
3. ``steps`` training steps on real samples (the golden order of ``golden.order``:
   epoch after epoch), the golden model stepping in this same process: LOAD_SAMPLE,
   TRAIN; the class TRAIN answers must equal the golden forward pass's argmax. Every
   ``check_every`` steps (and after the last) everything of step 2 is read back and
   compared again. STATUS gives the cycles of every step, per phase.
4. Optionally a test pass: LOAD_SAMPLE + INFER over test samples; every answer must
   equal the golden model's prediction, and the accuracy is reported.

The first difference stops the run; it is reported (memory, layer, row, column, step,
expected, actual) in the log and in the result.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np

from .host_stream import HostSession, HostStream

__all__ = ["train_bit_exact"]


def _log(dut, msg: str) -> None:
    dut._log.info(msg)


def _mismatch_text(m: dict) -> str:
    where = f"{m['memory']} (layer {m.get('layer')}"
    if m.get("row") is not None:
        where += f", row {m['row']}"
    if m.get("column") is not None:
        where += f", column {m['column']}"
    if m.get("bank") and m.get("bank") != m["memory"]:
        where += f"; {m['bank']} address {m['bank_address']}"
    where += ")"
    extra = f", {m['words_differing']} words of {m['memory']} differ" if "words_differing" in m else ""
    return (f"MISMATCH after step {m['step']}: {where}: expected {m['expected']}, "
            f"actual {m['actual']}{extra}; {m.get('mismatches', 1)} differences in all")


@cocotb.test()
async def train_bit_exact(dut):
    """Train through the host stream and compare with the golden model, bit for bit."""
    t_enter = time.perf_counter()
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.perf_counter() - t_enter, 3)

    import torch
    torch.set_num_threads(1)
    from ddfa.config import load_config
    from golden.fixed import FixedModel
    from hdl.host import Opcode, PROTOCOL_VERSION, config_hash
    from .readback import compare, logical

    mark("imports")
    with open(os.environ["DDFA_SIM_JOB"]) as f:
        job = json.load(f)
    cfg = load_config(job["config"])
    steps, every = int(job["steps"]), max(1, int(job.get("check_every", 1)))
    result: dict = {"simulator": job.get("simulator"), "config": cfg.name, "steps": 0,
                    "steps_asked": steps, "check_every": every, "bit_exact": False,
                    "mismatches": 0, "first_mismatch": None, "checks": 0}
    t_start = time.perf_counter()
    t_gold = t_check = 0.0

    def finish(status: str) -> None:
        result["status"] = status
        result["bench_seconds"] = round(time.perf_counter() - t_start, 3)
        result["golden_seconds"] = round(t_gold, 3)
        result["check_seconds"] = round(t_check, 3)
        result["timing"] = marks
        result["host"] = {"batches": stream.batches, "bytes_in": stream.bytes_in,
                          "bytes_out": stream.bytes_out, "cycles": stream.cycles}
        with open(job["result"], "w") as f:
            json.dump(result, f, indent=1)

    stream = HostStream(dut, stall=int(job.get("stall", 0)))
    host = HostSession(stream, cfg)
    await stream.start()

    mark("reset")
    info = await host.info()
    mark("info")
    if info["version"] != PROTOCOL_VERSION or info["config_hash"] != config_hash(cfg):
        result["first_mismatch"] = {"memory": "INFO", "step": 0, "expected":
                                    {"version": PROTOCOL_VERSION, "config_hash": config_hash(cfg)},
                                    "actual": {"version": info["version"], "config_hash": info["config_hash"]}}
        result["mismatches"] = 1
        finish("config")
        assert False, f"the Verilog is not this configuration's processor: INFO {info}"

    gold = FixedModel(cfg)
    samples = np.load(job["samples"])
    x_train = torch.from_numpy(samples["train_x"].astype(np.int64))    # quantised, in training order
    y_train = samples["train_y"].tolist()
    L = cfg.model.n_layers

    async def check(step: int) -> bool:
        nonlocal t_check
        t0 = time.perf_counter()
        banks = await host.read_banks()
        lfsrs = await host.read_lfsrs()
        st = await host.status()
        got = logical(cfg, banks)
        count, first = compare(cfg, gold.memory_words(), got)
        for l, s in enumerate(lfsrs, start=1):
            if s != gold.lfsr[l - 1].state:
                count += 1
                first = first or {"memory": f"lfsr{l}", "layer": l, "row": None, "column": None,
                                  "expected": gold.lfsr[l - 1].state, "actual": s}
        if st["steps"] != gold.steps % (1 << 32):
            count += 1
            first = first or {"memory": "step counter", "layer": None, "row": None, "column": None,
                              "expected": gold.steps, "actual": st["steps"]}
        result["checks"] += 1
        result["readback_cycles"] = host.read_cycles
        t_check += time.perf_counter() - t0
        if count:
            first["step"] = step
            first["mismatches"] = count
            result["mismatches"] = count
            result["first_mismatch"] = first
            _log(dut, _mismatch_text(first))
            return False
        return True

    mark("golden+data")
    ok = await check(0)
    mark("first check")
    step_bytes = len(host.proto.encode_load_sample([0] * cfg.model.layers[0], 0)) + 2
    batch_steps = max(1, stream.scratch_bytes // step_bytes)
    cycles: list[tuple[int, int, int]] = []
    k = 0
    while ok and k < steps:
        # One batch: the steps up to the next check (LOAD_SAMPLE + TRAIN, then STATUS each).
        todo = min(every - k % every, steps - k, batch_steps)
        cmd, reply = [], 0
        for j in range(k, k + todo):
            cmd.append(host.proto.encode_load_sample(x_train[j].tolist(), y_train[j]))
            cmd.append(host.proto.encode_train() + host.proto.encode_status())
            reply += 1 + 2 + host.proto.reply_length(Opcode.STATUS)
        r = await stream.transact(b"".join(cmd), reply)
        ns = host.proto.reply_length(Opcode.STATUS)
        off = 0
        for j in range(k, k + todo):
            t0 = time.perf_counter()
            out = gold.step(x_train[j], y_train[j])
            t_gold += time.perf_counter() - t0
            if r[off] != Opcode.LOAD_SAMPLE:
                raise ValueError(f"bad reply to LOAD_SAMPLE at step {j + 1}: {r[off:off + 1].hex()}")
            pred = host.proto.decode_class(r[off + 1:off + 3], Opcode.TRAIN)
            st = host.proto.decode_status(r[off + 3:off + 3 + ns])
            off += 3 + ns
            cycles.append((st["cycles"], st["cycles_forward"], st["cycles_update"]))
            want = int(out[f"y{L}"].argmax())
            if pred != want:
                ok = False
                first = {"memory": "output class (TRAIN reply)", "layer": L, "row": None, "column": None,
                         "step": j + 1, "expected": want, "actual": pred, "mismatches": 1}
                result["mismatches"], result["first_mismatch"] = 1, first
                _log(dut, _mismatch_text(first))
                k = j + 1
                break
        else:
            k += todo
            if k % every == 0 or k == steps:
                ok = await check(k)
        result["steps"] = k
        if job.get("progress") and (k % max(1, steps // 10) == 0 or k == steps):
            _log(dut, f"step {k}/{steps}: {'bit-exact' if ok else 'MISMATCH'}")

    mark("training")
    if cycles:
        c = np.asarray(cycles)
        result["cycles_per_sample"] = float(c[:, 0].mean())
        result["cycles_per_sample_min_max"] = [int(c[:, 0].min()), int(c[:, 0].max())]
        result["status_cycles"] = {"total": float(c[:, 0].mean()), "forward": float(c[:, 1].mean()),
                                   "update": float(c[:, 2].mean())}

    # ---- test pass: INFER on test samples, against the golden prediction ---------------
    n_test = job.get("test")
    if ok and "test_x" in samples and len(samples["test_y"]):
        x_test = torch.from_numpy(samples["test_x"].astype(np.int64))
        y_test = torch.from_numpy(samples["test_y"].astype(np.int64))
        N = x_test.shape[0]
        want = gold.predict_batch(x_test[:N]).tolist()
        got, correct, first = [], 0, None
        chunk = max(1, min(512, stream.scratch_bytes // (step_bytes - 1)))
        c_inf = []
        for s in range(0, N, chunk):
            idx = range(s, min(N, s + chunk))
            cmd = b"".join(host.proto.encode_load_sample(x_test[i].tolist(), int(y_test[i]))
                           + host.proto.encode_infer() for i in idx)
            c0 = stream.cycles
            r = await stream.transact(cmd, 3 * len(idx))
            c_inf.append((stream.cycles - c0) / len(idx))
            for t, i in enumerate(idx):
                p = host.proto.decode_class(r[3 * t + 1:3 * t + 3], Opcode.INFER)
                got.append(p)
                correct += p == int(y_test[i])
                if p != want[i] and first is None:
                    first = {"memory": "output class (INFER reply)", "layer": L, "row": i, "column": None,
                             "step": k, "expected": want[i], "actual": p, "mismatches": 1}
        result["test_samples"] = N
        result["test_accuracy"] = correct / N
        result["golden_test_accuracy"] = float((torch.tensor(want) == y_test[:N]).double().mean())
        result["test_predictions_equal"] = first is None
        if first is not None:
            ok = False
            result["mismatches"] = sum(a != b for a, b in zip(got, want))
            first["mismatches"] = result["mismatches"]
            result["first_mismatch"] = first
            _log(dut, _mismatch_text(first))
        # The model must be unchanged by inference.
        if ok:
            ok = await check(k)

    mark("test pass")
    result["bit_exact"] = bool(ok)
    finish("ok" if ok else "mismatch")
    if ok:
        _log(dut, f"bit-exact: {k} training steps, {result['checks']} full read-backs "
                  f"(every {every} steps), host stream {stream.bytes_in} bytes in / {stream.bytes_out} out")
    assert ok, _mismatch_text(result["first_mismatch"])
