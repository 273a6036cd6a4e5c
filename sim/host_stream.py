"""cocotb driver for the processor's host byte stream, through ``sim/hdl/ddfa_sim_top.v``.

:class:`HostStream` is the bench's only way into the processor: it sends command bytes
and collects reply bytes on the 8-bit valid/ready streams the boards' UART link uses
(``docs/HOST-PROTOCOL.md``). To keep Python off the per-clock path, a batch of commands
is written into the wrapper's command buffer in 64-bit words, the wrapper plays it to
the processor at one byte per clock (honouring ``ready``), collects the replies in its
reply buffer, and raises ``ack``; the driver awaits that one edge and reads the reply
words back. Batches that repeat (the read-back of every memory after each step) are
written once and replayed from where they lie (:meth:`HostStream.transact` ``key``).

:class:`HostSession` puts :class:`ddfa.protocol.HostProtocol` (the pure-Python encoder and
decoder) on top: ``info``, ``load_sample``, ``train``, ``infer``, ``status``,
``read_lfsr`` and the read-back of every memory word as logical images.
"""

from __future__ import annotations

import numpy as np

from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from ddfa.protocol import HostProtocol, Opcode

from .readback import decode_plan, read_plan

__all__ = ["HostStream", "HostSession", "HostTimeout"]


class HostTimeout(RuntimeError):
    """The processor did not take or answer a batch of commands in time."""


class HostStream:
    """Plays byte batches into ``ddfa_sim_top`` and returns the reply bytes.

    Parameters
    ----------
    dut : cocotb handle of ``ddfa_sim_top``.
    period_ns : the simulation top's clock period (``2 * HALF_PERIOD``; the top makes its
        own clock, so that no clock edge costs a simulator callback).
    stall : 0..15, random gaps on both streams in about ``stall/16`` of the cycles.
    """

    def __init__(self, dut, period_ns: int = 10, stall: int = 0):
        self.dut = dut
        self.period_ns = period_ns
        self.stall = stall
        self.in_words = len(dut.in_buf)
        self.out_words = len(dut.out_buf)
        self._in = dut.in_buf
        self._out = dut.out_buf
        self._cached: dict[object, tuple[int, int]] = {}    # key -> (start byte, length)
        self._scratch_end = 0                                # bytes below are cached batches
        self._req = 0
        self.batches = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.cycles = 0                                      # clocks spent in batches

    async def start(self) -> None:
        """Start the clock and reset the processor and the wrapper."""
        dut = self.dut
        dut.req.value = 0
        dut.in_start.value = 0
        dut.in_len.value = 0
        dut.out_expect.value = 0
        dut.stall.value = self.stall
        dut.rst.value = 1
        await ClockCycles(dut.clk, 3)
        dut.rst.value = 0
        await RisingEdge(dut.clk)

    @property
    def scratch_bytes(self) -> int:
        """Command bytes an uncached batch may have (the buffer less the cached batches)."""
        return 8 * self.in_words - self._scratch_end

    def _write(self, start: int, data: bytes) -> None:
        if start % 8:
            raise ValueError("batches start on a word boundary")
        end = start + len(data)
        if end > 8 * self.in_words:
            raise ValueError(f"a batch of {len(data)} bytes does not fit the command buffer "
                             f"({8 * self.in_words} bytes; raise IN_WORDS)")
        pad = (-len(data)) % 8
        words = np.frombuffer(bytes(data) + bytes(pad), dtype="<u8")
        base = start // 8
        buf = self._in
        for k, w in enumerate(words.tolist()):
            buf[base + k].value = w

    async def transact(self, data: bytes, reply_len: int, key=None, timeout_cycles: int | None = None) -> bytes:
        """Send ``data``, return the ``reply_len`` reply bytes.

        ``key``: a batch sent again under the same key is not written again (it must be
        the same bytes). ``timeout_cycles``: fail (:class:`HostTimeout`) when the batch
        takes longer (default: generous, from its length).
        """
        if reply_len > 8 * self.out_words:
            raise ValueError(f"{reply_len} reply bytes do not fit the reply buffer ({8 * self.out_words} bytes)")
        if key is not None and key in self._cached:
            start, n = self._cached[key]
            assert n == len(data)
        elif key is not None:
            start = self._scratch_end
            self._write(start, data)
            self._scratch_end = start + -(-len(data) // 8) * 8
            self._cached[key] = (start, len(data))
        else:
            start = self._scratch_end
            self._write(start, data)
        dut = self.dut
        dut.in_start.value = start
        dut.in_len.value = len(data)
        dut.out_expect.value = reply_len
        self._req ^= 1
        dut.req.value = self._req
        if timeout_cycles is None:
            timeout_cycles = 4 * (len(data) + reply_len) * max(1, 4 * self.stall) + 10_000_000
        try:
            await with_timeout(dut.ack.value_change, timeout_cycles * self.period_ns, "ns")
        except TimeoutError:
            raise HostTimeout(f"no complete reply after {timeout_cycles} cycles: {len(data)} command bytes, "
                              f"{int(dut.out_count.value)} of {reply_len} reply bytes received") from None
        got = int(dut.out_count.value)
        self.batches += 1
        self.bytes_in += len(data)
        self.bytes_out += reply_len
        self.cycles += int(dut.cycles.value)
        if got != reply_len:
            raise HostTimeout(f"{got} reply bytes, expected {reply_len}")
        return self.read_reply(reply_len)

    def read_reply(self, n: int) -> bytes:
        out = self._out
        words = [int(out[k].value) for k in range(-(-n // 8))]
        return np.asarray(words, dtype="<u8").tobytes()[:n]


class HostSession:
    """The host protocol (:class:`ddfa.protocol.HostProtocol`) over a :class:`HostStream`."""

    def __init__(self, stream: HostStream, cfg):
        self.stream = stream
        self.cfg = cfg
        self.proto = HostProtocol(cfg)
        self.O = Opcode
        self.read_cycles = 0

    def _len(self, op) -> int:
        return self.proto.reply_length(op)

    async def info(self) -> dict:
        r = await self.stream.transact(self.proto.encode_info(), self._len(self.O.INFO), key="info")
        return self.proto.decode_info(r)

    async def load_sample(self, x_q, label: int) -> None:
        r = await self.stream.transact(self.proto.encode_load_sample(x_q, label), 1)
        if r != bytes([self.O.LOAD_SAMPLE]):
            raise ValueError(f"bad reply to LOAD_SAMPLE: {r.hex()}")

    async def train(self) -> int:
        r = await self.stream.transact(self.proto.encode_train(), 2, key="train")
        return self.proto.decode_class(r, self.O.TRAIN)

    async def infer(self) -> int:
        r = await self.stream.transact(self.proto.encode_infer(), 2, key="infer")
        return self.proto.decode_class(r, self.O.INFER)

    async def status(self) -> dict:
        r = await self.stream.transact(self.proto.encode_status(), self._len(self.O.STATUS), key="status")
        return self.proto.decode_status(r)

    async def read_lfsrs(self) -> list[int]:
        H = self.cfg.model.n_layers - 1
        if not H:
            return []
        n = self._len(self.O.READ_LFSR)
        data = b"".join(self.proto.encode_read_lfsr(l) for l in range(1, H + 1))
        r = await self.stream.transact(data, n * H, key="lfsr")
        return [self.proto.decode_lfsr(r[k * n:(k + 1) * n]) for k in range(H)]

    async def read_banks(self) -> dict[str, np.ndarray]:
        """Every word of every physical memory (``ddfa.protocol.memory_map``), as int64 arrays."""
        plan = read_plan(self.proto)
        c0 = self.stream.cycles
        r = await self.stream.transact(plan.data, plan.reply_len, key="readback")
        self.read_cycles = self.stream.cycles - c0
        return decode_plan(self.proto, plan, r)
