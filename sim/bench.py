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

:func:`train_on_chip` (``ddfa simulate --on-chip``, a processor with the dataset store)
instead trains the way a board does without the host:

1. INFO, RUN_STATUS and the initial read-back, as above.
2. The store image (:func:`golden.onchip.store_image` of the job's data set) goes up:
   one WRITE_BLOCK per 128 words, then the store's header
   (:meth:`ddfa.config.StoreLayout.header`); the header and the image's first block are
   read back (READ_BLOCK) and must be what was written.
3. TRAIN_EPOCHS of ``check_every`` epochs at a time; the bench lets the simulator run
   for the expected cycles and then polls RUN_STATUS sparsely (:func:`wait_run`) until
   the runner stops. After each command every memory word, the LFSRs and the step
   counter are read back and compared with :func:`golden.onchip.train_epochs` on the
   same image from the same epoch. ``cycles_per_sample`` is RUN_STATUS's run cycles
   over the steps: the steps and the runner's loading of the next record together.
4. With test records in the store, EVALUATE: RUN_STATUS's count of correct answers
   must equal :func:`golden.onchip.evaluate`'s; then a last read-back (the evaluation
   must change nothing).

The first difference stops the run; it is reported (memory, layer, row, column, step,
expected, actual) in the log and in the result.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
import numpy as np
from cocotb.triggers import Timer

from ddfa.config import config_hash, dataset_id, load_config
from ddfa.protocol import BLOCK_WORDS, PROTOCOL_VERSION, WRITE_BLOCK_WORDS, Opcode

from .golden_link import connect
from .host_stream import HostSession, HostStream
from .readback import compare, logical

__all__ = ["train_bit_exact", "train_on_chip", "BenchRun", "wait_run", "mismatch_text"]


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


class BenchRun:
    """What both benches share: the job, the configuration, the golden model, the host
    stream, the result record and the read-back check.

    Parameters
    ----------
    dut : cocotb handle of ``ddfa_sim_top``.

    Members
    -------
    job : dict
        :class:`sim.simulate.Job` as read from ``DDFA_SIM_JOB``.
    cfg : Config
    gold : GoldenOracle-like (:func:`sim.golden_link.connect`)
    stream : HostStream
    host : HostSession
    result : dict
        What the bench writes to ``job["result"]`` (:meth:`finish`).
    last_status : dict or None
        The STATUS read by the last :meth:`check`.
    """

    def __init__(self, dut):
        self.t_enter = time.perf_counter()
        self.marks: dict[str, float] = {}
        self.dut = dut
        with open(os.environ["DDFA_SIM_JOB"]) as f:
            self.job = job = json.load(f)
        self.cfg = load_config(job["config"])
        self.gold = connect(job)
        self.mark("setup")
        self.result: dict = {"steps": 0, "check_every": max(1, int(job.get("check_every", 1))), "bit_exact": False,
                             "mismatches": 0, "first_mismatch": None, "checks": 0}
        self.t_check = 0.0
        self.stream = HostStream(dut, stall=int(job.get("stall", 0)))
        self.host = HostSession(self.stream, self.cfg)
        self.proto = self.host.proto
        self.last_status: dict | None = None

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.perf_counter() - self.t_enter, 3)

    def finish(self, status: str) -> None:
        """Write the result (and close the golden model)."""
        result, stream = self.result, self.stream
        result["status"] = status
        result["bench_seconds"] = round(time.perf_counter() - self.t_enter, 3)
        result["check_seconds"] = round(self.t_check, 3)
        try:
            result["golden_seconds"] = self.gold.golden_seconds()
        except Exception:
            pass
        result["timing"] = self.marks
        result["host"] = {"batches": stream.batches, "bytes_in": stream.bytes_in,
                          "bytes_out": stream.bytes_out, "cycles": stream.cycles}
        with open(self.job["result"], "w") as f:
            json.dump(result, f, indent=1)
        self.gold.close()

    def fail(self, first: dict, count: int) -> None:
        self.result["mismatches"] = count
        first["mismatches"] = count
        self.result["first_mismatch"] = first
        self.dut._log.error(mismatch_text(first))

    async def start(self) -> None:
        """Reset; INFO must give this configuration's protocol version and hash."""
        await self.stream.start()
        info = await self.host.info()
        cfg = self.cfg
        if info["version"] != PROTOCOL_VERSION or info["config_hash"] != config_hash(cfg):
            self.fail({"memory": "INFO (protocol version, configuration hash)", "step": 0,
                       "expected": [PROTOCOL_VERSION, config_hash(cfg)],
                       "actual": [info["version"], info["config_hash"]]}, 1)
            self.finish("config")
            assert False, ("the Verilog is not this configuration's processor: "
                           + mismatch_text(self.result["first_mismatch"]))
        self.mark("reset+info")

    async def check(self, step: int) -> bool:
        """Read back every memory word, the LFSRs and the step counter; compare with the
        golden model's state."""
        cfg, host = self.cfg, self.host
        t0 = time.perf_counter()
        banks = await host.read_banks()
        lfsrs = await host.read_lfsrs()
        st = self.last_status = await host.status()
        want = self.gold.state()
        count, first = compare(cfg, want["memories"], logical(cfg, banks))
        for l, (s, w) in enumerate(zip(lfsrs, want["lfsr"]), start=1):
            if s != w:
                count += 1
                first = first or {"memory": f"LFSR of hidden layer {l}", "layer": l, "expected": w, "actual": s}
        if st["steps"] != want["steps"] % (1 << 32):
            count += 1
            first = first or {"memory": "step counter (STATUS)", "expected": want["steps"], "actual": st["steps"]}
        self.result["checks"] += 1
        self.result["readback_cycles"] = host.read_cycles
        self.t_check += time.perf_counter() - t0
        if count:
            first["step"] = step
            self.fail(first, count)
            return False
        return True


@cocotb.test()
async def train_bit_exact(dut):
    """Train through the host stream and compare with the golden model, bit for bit."""
    run = BenchRun(dut)
    job, cfg, gold, stream, proto, result = run.job, run.cfg, run.gold, run.stream, run.proto, run.result
    mark, fail, finish, check = run.mark, run.fail, run.finish, run.check
    L = cfg.model.n_layers
    steps, every = int(job["steps"]), result["check_every"]
    result["steps_asked"] = steps
    samples = np.load(job["samples"])
    x_train, y_train = samples["train_x"], samples["train_y"].tolist()
    ns = proto.reply_length(Opcode.STATUS)
    await run.start()

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


async def wait_run(run: BenchRun, expect_cycles: int) -> tuple[dict, int, int]:
    """Wait until the epoch runner stops; ``(RUN_STATUS, polls, clocks waited)``.

    Python costs time per simulator callback, so the bench first lets ``expect_cycles``
    clocks pass in one timer, then polls RUN_STATUS every ``expect_cycles / 32`` clocks
    (at least 2,000). Gives up after ``4 * expect_cycles + 10**4`` clocks: RUN_STATUS
    then still says ``running``."""
    stream, proto = run.stream, run.proto
    n = proto.reply_length(Opcode.RUN_STATUS)
    poll = max(2_000, expect_cycles // 32)
    limit, waited, polls = 4 * expect_cycles + 10_000, expect_cycles, 0
    await Timer(expect_cycles * stream.period_ns, "ns")
    while True:
        st = proto.decode_run_status(await stream.transact(proto.encode_run_status(), n, key="run_status"))
        polls += 1
        if not st["running"] or waited > limit:
            return st, polls, waited
        await Timer(poll * stream.period_ns, "ns")
        waited += poll


@cocotb.test()
async def train_on_chip(dut):
    """Upload the dataset store, train epochs and evaluate on the chip (TRAIN_EPOCHS,
    EVALUATE), and compare with :mod:`golden.onchip`, bit for bit."""
    run = BenchRun(dut)
    job, cfg, gold, stream, proto, result = run.job, run.cfg, run.gold, run.stream, run.proto, run.result
    fail = run.fail
    store = np.load(job["samples"])
    image = store["store"].tolist()
    n_train, n_test = int(store["n_train"]), int(store["n_test"])
    epochs, every = int(job["epochs"]), result["check_every"]
    result.update({"mode": "on-chip", "epochs": epochs, "epochs_done": 0, "train_records": n_train,
                   "steps_asked": epochs * n_train})
    await run.start()

    def refused(what: str, step: int, expected, actual) -> bool:
        fail({"memory": what, "step": step, "expected": expected, "actual": actual}, 1)
        return False

    rs_len = proto.reply_length(Opcode.RUN_STATUS)
    st0 = proto.decode_run_status(await stream.transact(proto.encode_run_status(), rs_len, key="run_status"))
    first_epoch = st0["epoch"]
    ok = await run.check(0) if job.get("initial_check", True) else True
    run.mark("first check")

    # ---- upload: WRITE_BLOCKs, then the header, in batches that fit the buffer ----------
    ident = dataset_id(image)
    layout = cfg.chip_store
    if ok:
        c0, b0 = stream.cycles, stream.bytes_in
        header = layout.header(n_train, n_test, ident)
        blocks = [proto.encode_write_block("store", a, image[a:a + WRITE_BLOCK_WORDS])
                  for a in range(0, len(image), WRITE_BLOCK_WORDS)]
        cmds = blocks + [proto.encode_write_block("store", layout.header_base, header)]
        per_batch = max(1, stream.scratch_bytes // len(blocks[0]) - 1)
        for s in range(0, len(cmds), per_batch):
            r = await stream.transact(b"".join(cmds[s:s + per_batch]), len(cmds[s:s + per_batch]))
            bad = [k for k, b in enumerate(r) if b != Opcode.WRITE_BLOCK]
            if bad:
                ok = refused(f"reply to WRITE_BLOCK {s + bad[0]}", 0, int(Opcode.WRITE_BLOCK), r[bad[0]])
                break
        n_read = proto.reply_length(Opcode.READ_BLOCK)
        for what, addr, want in (("the store's header", layout.header_base, header),
                                 ("the store's first block", 0, image[:BLOCK_WORDS])):
            if ok:
                r = await stream.transact(proto.encode_read_block("store", addr), n_read)
                got = proto.decode_block(r, "store")[:len(want)]
                if got != [int(w) for w in want]:
                    ok = refused(f"{what}, read back", 0, [int(w) for w in want], got)
        result["upload"] = {"words": len(image), "blocks": len(blocks), "bytes": stream.bytes_in - b0,
                            "cycles": stream.cycles - c0}
    run.mark("upload")

    # ---- TRAIN_EPOCHS, `every` epochs per command, every word compared after each ------
    # the cycles a record should take: a step (hdl.cycles.step_cycles), or loading the next
    # record when that is longer (a word and a table read per input, about 3 cycles each)
    step_total = max(int(job["step_cycles"]) + 2, 3 * cfg.model.layers[0] + 8)
    run_cycles, polls, e = 0, 0, 0
    while ok and e < epochs:
        k = min(every, epochs - e)
        gold.train_epochs_async(first_epoch + e, k)       # the golden epochs run meanwhile
        r = await stream.transact(proto.encode_train_epochs(k, n_train), 1)
        if r != bytes([Opcode.TRAIN_EPOCHS]):
            gold.result()
            ok = refused("reply to TRAIN_EPOCHS", e * n_train, int(Opcode.TRAIN_EPOCHS), r[0])
            break
        st, p, waited = await wait_run(run, k * n_train * step_total)
        gold.result()
        polls += p
        if st["running"]:
            ok = refused(f"RUN_STATUS {waited:,} clocks after TRAIN_EPOCHS (epoch, record, running)",
                         e * n_train + st["index"], [first_epoch + e + k, n_train, False],
                         [st["epoch"], st["index"], True])
            break
        run_cycles += st["run_cycles"]
        e += k
        done = e * n_train
        if (st["epoch"], st["index"], st["evaluating"]) != (first_epoch + e, n_train, False):
            ok = refused("RUN_STATUS after TRAIN_EPOCHS (epoch, record, evaluating)", done,
                         [first_epoch + e, n_train, False], [st["epoch"], st["index"], st["evaluating"]])
            break
        ok = await run.check(done)
        result["steps"], result["epochs_done"] = done, e
        if job.get("progress"):
            dut._log.info(f"epoch {e}/{epochs}: {'bit-exact so far' if ok else 'MISMATCH'}")
    steps = result["steps"]
    run.mark("training")
    result["run_cycles"] = run_cycles
    result["run_status_polls"] = polls
    if steps and run.last_status is not None:
        last = run.last_status
        result["cycles_per_sample"] = run_cycles / steps
        result["step_cycles"] = last["cycles"]           # STATUS: the last training step alone
        result["status_cycles"] = {"total": float(last["cycles"]), "forward": float(last["cycles_forward"]),
                                   "update": float(last["cycles_update"]), "error": float(last["cycles_error"])}

    # ---- EVALUATE: the test records, against golden.onchip.evaluate ------------------------
    if ok and n_test:
        r = await stream.transact(proto.encode_evaluate(n_train, n_test), 1)
        if r != bytes([Opcode.EVALUATE]):
            ok = refused("reply to EVALUATE", steps, int(Opcode.EVALUATE), r[0])
        else:
            st, p, waited = await wait_run(run, n_test * step_total // 2)     # inference: the forward pass
            result["run_status_polls"] += p
            want = gold.evaluate()
            result.update({"test_samples": n_test, "test_correct": st["correct"],
                           "test_accuracy": st["correct"] / n_test, "golden_test_correct": want,
                           "golden_test_accuracy": want / n_test,
                           "evaluate_run_cycles": st["run_cycles"],
                           "inference_cycles": st["run_cycles"] / n_test})
            if st["running"]:
                ok = refused(f"RUN_STATUS {waited:,} clocks after EVALUATE (record, running)", steps,
                             [n_test, False], [st["index"], True])
            elif (st["evaluating"], st["index"]) != (True, n_test):
                ok = refused("RUN_STATUS after EVALUATE (evaluating, record)", steps, [True, n_test],
                             [st["evaluating"], st["index"]])
            elif st["correct"] != want:
                ok = refused("EVALUATE's count of correct test records (RUN_STATUS)", steps, want, st["correct"])
            else:
                ok = await run.check(steps)               # the evaluation must change nothing
    run.mark("evaluate")
    if ok:
        result["state_hash"] = gold.state_hash()
    result["bit_exact"] = bool(ok)
    run.finish("ok" if ok else "mismatch")
    if ok:
        dut._log.info(f"bit-exact on chip: {epochs} epochs of {n_train} records ({steps} steps), "
                      f"{run_cycles / max(1, steps):.1f} cycles per sample, {result['checks']} full read-backs")
    assert ok, mismatch_text(result["first_mismatch"])
