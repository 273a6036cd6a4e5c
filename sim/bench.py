"""The cocotb bench: the generated processor against the fixed-point golden model.

Run by :mod:`sim.simulate` (``ddfa simulate``, ``tests/test_sim_*.py``) through cocotb's
Python runner on Icarus or Verilator; the job comes in a JSON file named by the
environment variable ``DDFA_SIM_JOB`` (:class:`sim.simulate.Job`) and the result goes to
the JSON file it names. The golden model is :class:`sim.golden_link.GoldenOracle`
(served by the process that started the simulator, or in this process).

What one run does, all through the host byte stream (:mod:`sim.host_stream`):

1. INFO: the protocol version and the configuration hash must match the configuration.
2. Every memory word (all W banks, b, B), the LFSR states and the step counter are read
   back and compared with the golden model's initial state.
3. ``steps`` training steps on real samples (the golden order of ``golden.order``,
   epoch after epoch): LOAD_SAMPLE, TRAIN, STATUS per step; each TRAIN answer must equal
   the golden forward pass's class. Every ``check_every`` steps (and after the last)
   everything of step 2 is read back and compared again. STATUS gives the cycles of
   every step, per phase.
4. Optionally a test pass: LOAD_SAMPLE + INFER over test samples; every answer must
   equal the golden model's prediction; the accuracy is reported. Then a last read-back
   (inference must change nothing).

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

__all__ = ["train_bit_exact", "mismatch_text"]


def mismatch_text(m: dict) -> str:
    """One line for a mismatch record (see :func:`sim.readback.compare`)."""
    where = f"{m['memory']}"
    parts = []
    if m.get("layer") is not None:
        parts.append(f"layer {m['layer']}")
    if m.get("row") is not None:
        parts.append(f"{'sample' if 'INFER' in m['memory'] else 'row'} {m['row']}")
    if m.get("column") is not None:
        parts.append(f"column {m['column']}")
    if m.get("bank") and m.get("bank") != m["memory"]:
        parts.append(f"{m['bank']} address {m['bank_address']}")
    if parts:
        where += " (" + ", ".join(parts) + ")"
    extra = f"; {m['words_differing']} words of {m['memory']} differ" if "words_differing" in m else ""
    return (f"MISMATCH after step {m['step']}: {where}: expected {m['expected']}, actual {m['actual']}"
            f"{extra}; {m.get('mismatches', 1)} differences in all")


@cocotb.test()
async def train_bit_exact(dut):
    """Train through the host stream and compare with the golden model, bit for bit."""
    t_enter = time.perf_counter()
    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks[name] = round(time.perf_counter() - t_enter, 3)

    from ddfa.config import load_config
    from ddfa.config import config_hash
    from ddfa.protocol import Opcode, PROTOCOL_VERSION
    from .golden_link import connect
    from .readback import compare, logical

    with open(os.environ["DDFA_SIM_JOB"]) as f:
        job = json.load(f)
    cfg = load_config(job["config"])
    L = cfg.model.n_layers
    steps, every = int(job["steps"]), max(1, int(job.get("check_every", 1)))
    samples = np.load(job["samples"])
    x_train, y_train = samples["train_x"], samples["train_y"].tolist()
    gold = connect(job)
    mark("setup")
    result: dict = {"steps": 0, "steps_asked": steps, "check_every": every, "bit_exact": False,
                    "mismatches": 0, "first_mismatch": None, "checks": 0}
    t_check = 0.0

    stream = HostStream(dut, stall=int(job.get("stall", 0)))
    host = HostSession(stream, cfg)
    proto = host.proto
    ns = proto.reply_length(Opcode.STATUS)

    def finish(status: str) -> None:
        result["status"] = status
        result["bench_seconds"] = round(time.perf_counter() - t_enter, 3)
        result["check_seconds"] = round(t_check, 3)
        try:
            result["golden_seconds"] = gold.golden_seconds()
        except Exception:
            pass
        result["timing"] = marks
        result["host"] = {"batches": stream.batches, "bytes_in": stream.bytes_in,
                          "bytes_out": stream.bytes_out, "cycles": stream.cycles}
        with open(job["result"], "w") as f:
            json.dump(result, f, indent=1)
        gold.close()

    def fail(first: dict, count: int) -> None:
        result["mismatches"] = count
        first["mismatches"] = count
        result["first_mismatch"] = first
        dut._log.error(mismatch_text(first))

    await stream.start()
    info = await host.info()
    if info["version"] != PROTOCOL_VERSION or info["config_hash"] != config_hash(cfg):
        fail({"memory": "INFO (protocol version, configuration hash)", "step": 0,
              "expected": [PROTOCOL_VERSION, config_hash(cfg)], "actual": [info["version"], info["config_hash"]]}, 1)
        finish("config")
        assert False, "the Verilog is not this configuration's processor: " + mismatch_text(result["first_mismatch"])
    mark("reset+info")

    async def check(step: int) -> bool:
        """Read back every memory word, the LFSRs and the step counter; compare."""
        nonlocal t_check
        t0 = time.perf_counter()
        banks = await host.read_banks()
        lfsrs = await host.read_lfsrs()
        st = await host.status()
        want = gold.state()
        count, first = compare(cfg, want["memories"], logical(cfg, banks))
        for l, (s, w) in enumerate(zip(lfsrs, want["lfsr"]), start=1):
            if s != w:
                count += 1
                first = first or {"memory": f"LFSR of hidden layer {l}", "layer": l, "expected": w, "actual": s}
        if st["steps"] != want["steps"] % (1 << 32):
            count += 1
            first = first or {"memory": "step counter (STATUS)", "expected": want["steps"], "actual": st["steps"]}
        result["checks"] += 1
        result["readback_cycles"] = host.read_cycles
        t_check += time.perf_counter() - t0
        if count:
            first["step"] = step
            fail(first, count)
            return False
        return True

    ok = await check(0) if job.get("initial_check", True) else True
    mark("first check")
    step_bytes = len(proto.encode_load_sample([0] * cfg.model.layers[0], 0)) + 2
    batch_steps = max(1, stream.scratch_bytes // step_bytes)
    cycles: list[tuple[int, int, int]] = []
    k = 0
    while ok and k < steps:
        # One batch: the steps up to the next check, each LOAD_SAMPLE + TRAIN + STATUS.
        todo = min(every - k % every, steps - k, batch_steps)
        cmd = b"".join(proto.encode_load_sample(x_train[j].tolist(), y_train[j]) + proto.encode_train()
                       + proto.encode_status() for j in range(k, k + todo))
        gold.step_async(k, k + todo)                   # the golden steps run meanwhile
        r = await stream.transact(cmd, todo * (3 + ns))
        want = gold.result()
        for t in range(todo):
            off = t * (3 + ns)
            if r[off] != Opcode.LOAD_SAMPLE:
                raise ValueError(f"bad reply to LOAD_SAMPLE at step {k + t + 1}: {r[off]:#04x}")
            pred = proto.decode_class(r[off + 1:off + 3], Opcode.TRAIN)
            st = proto.decode_status(r[off + 3:off + 3 + ns])
            cycles.append((st["cycles"], st["cycles_forward"], st["cycles_update"], st.get("cycles_error", -1)))
            if pred != want[t]:
                ok = False
                fail({"memory": "output class (TRAIN reply)", "layer": L, "step": k + t + 1,
                      "expected": want[t], "actual": pred}, 1)
                break
        if not ok:
            k += t + 1
            break
        k += todo
        if k % every == 0 or k == steps:
            ok = await check(k)
        result["steps"] = k
        if job.get("progress") and (k % max(1, steps // 10) < todo or k == steps):
            dut._log.info(f"step {k}/{steps}: bit-exact so far")
    result["steps"] = k
    mark("training")

    if cycles:
        c = np.asarray(cycles)
        result["cycles_per_sample"] = float(c[:, 0].mean())
        result["cycles_per_sample_min_max"] = [int(c[:, 0].min()), int(c[:, 0].max())]
        result["status_cycles"] = {"total": float(c[:, 0].mean()), "forward": float(c[:, 1].mean()),
                                   "update": float(c[:, 2].mean())}
        if c[0, 3] >= 0:                               # a processor whose STATUS has the error phase
            result["status_cycles"]["error"] = float(c[:, 3].mean())

    # ---- test pass: INFER on the test samples, against the golden predictions -----------
    N = len(samples["test_y"])
    if ok and N:
        x_test, y_test = samples["test_x"], samples["test_y"].tolist()
        want = gold.predict_test()
        chunk = max(1, min(1024, stream.scratch_bytes // step_bytes))
        correct, wrong, first, c_inf = 0, 0, None, []
        for s in range(0, N, chunk):
            idx = range(s, min(N, s + chunk))
            cmd = b"".join(proto.encode_load_sample(x_test[i].tolist(), y_test[i]) + proto.encode_infer()
                           + proto.encode_status() for i in idx)
            r = await stream.transact(cmd, len(idx) * (3 + ns))
            for t, i in enumerate(idx):
                off = t * (3 + ns)
                p = proto.decode_class(r[off + 1:off + 3], Opcode.INFER)
                c_inf.append(proto.decode_status(r[off + 3:off + 3 + ns])["cycles"])
                correct += p == y_test[i]
                if p != want[i]:
                    wrong += 1
                    first = first or {"memory": "output class (INFER reply)", "layer": L, "row": i,
                                      "step": k, "expected": want[i], "actual": p}
        result["test_samples"] = N
        result["test_accuracy"] = correct / N
        result["golden_test_accuracy"] = sum(w == y for w, y in zip(want, y_test)) / N
        result["inference_cycles"] = float(np.mean(c_inf))
        if first is not None:
            ok = False
            fail(first, wrong)
        else:
            ok = await check(k)                        # inference must change nothing
    mark("test pass")
    if ok:                     # the processor's state is the golden model's, word for word
        result["state_hash"] = gold.state_hash()

    result["bit_exact"] = bool(ok)
    finish("ok" if ok else "mismatch")
    if ok:
        dut._log.info(f"bit-exact: {k} training steps, {result['checks']} full read-backs (every {every} "
                      f"steps), host stream {stream.bytes_in} bytes in / {stream.bytes_out} out")
    assert ok, mismatch_text(result["first_mismatch"])
