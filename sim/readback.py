"""Reading every memory word back through the host protocol, and comparing it with the
fixed-point golden model (pure Python: no simulator needed, so it is unit-tested alone).

* :func:`read_plan` is the byte string of commands that reads every word of every
  physical memory of :func:`ddfa.protocol.memory_map` (``READ_BLOCK`` when the processor has
  it, else one ``READ_MEM`` per word), and :func:`decode_plan` turns the reply bytes
  into one int64 array per memory (sign-extended stored integers).
* :func:`logical` reassembles the PE banks of each ``W_l`` into the logical, row-major
  memory of :meth:`golden.fixed.FixedModel.memory_words`.
* :func:`compare` counts the words that differ and describes the first one: memory,
  layer, row, column, expected and actual value (and, for a banked ``W``, the PE and
  its bank address), in the golden model's memory order ``W1, b1, B1, W2, ...``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ddfa.protocol import Opcode

__all__ = ["ReadPlan", "read_plan", "decode_plan", "logical", "compare", "describe"]


@dataclass(frozen=True)
class ReadPlan:
    data: bytes                 # the command bytes
    reply_len: int              # reply bytes expected
    parts: tuple                # (memory info, first address, words, reply offset, block?) per command run
    block: bool                 # READ_BLOCK used


def _block_command(proto):
    code = getattr(Opcode, "READ_BLOCK", None)
    if code is None or code not in proto.commands:
        return None
    return proto.commands[code]


def read_plan(proto) -> ReadPlan:
    """The commands that read every memory word of the processor, in map order."""
    blk = _block_command(proto)
    cmds, parts, off = [], [], 0
    if blk is not None:
        K = proto.block_words
        for mem in proto.memories:
            for a in range(0, mem.words, K):
                cmds.append(proto.encode_read_block(mem.id, a))
                parts.append((mem, a, min(K, mem.words - a), off, True))
                off += blk.response
    else:
        n = proto.reply_length(Opcode.READ_MEM)
        for mem in proto.memories:
            cmds.append(b"".join(proto.encode_read_mem(mem.id, a) for a in range(mem.words)))
            parts.append((mem, 0, mem.words, off, False))
            off += n * mem.words
    return ReadPlan(b"".join(cmds), off, tuple(parts), blk is not None)


def _words(raw: np.ndarray, width: int) -> np.ndarray:
    """Little-endian byte rows (N, k) -> sign-extended int64 words of ``width`` bits."""
    v = np.zeros(raw.shape[0], dtype=np.int64)
    for k in range(raw.shape[1] - 1, -1, -1):
        v = (v << 8) | raw[:, k].astype(np.int64)
    v &= (1 << width) - 1
    return np.where(v >> (width - 1) & 1, v - (1 << width), v)


def decode_plan(proto, plan: ReadPlan, reply: bytes) -> dict[str, np.ndarray]:
    """The reply of :func:`read_plan`'s commands -> ``{physical memory name: words}``.
    Raises ``ValueError`` when an echo byte is wrong (a protocol error, not a data one)."""
    wb = proto.params.word_bytes
    buf = np.frombuffer(reply, dtype=np.uint8)
    out: dict[str, list[np.ndarray]] = {}
    for mem, a, n, off, block in plan.parts:
        if block:
            op = int(Opcode.READ_BLOCK)
            if buf[off] != op:
                raise ValueError(f"READ_BLOCK of {mem.name} at {a}: reply starts with {buf[off]:#04x}")
            raw = buf[off + 1:off + 1 + n * wb].reshape(n, wb)
        else:
            rows = buf[off:off + n * (1 + wb)].reshape(n, 1 + wb)
            bad = np.nonzero(rows[:, 0] != int(Opcode.READ_MEM))[0]
            if len(bad):
                raise ValueError(f"READ_MEM of {mem.name}[{bad[0]}]: reply starts with {rows[bad[0], 0]:#04x}")
            raw = rows[:, 1:]
        out.setdefault(mem.name, []).append(_words(raw, mem.width))
    return {k: np.concatenate(v) for k, v in out.items()}


def logical(cfg, banks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Physical memories -> logical ``W<l>`` (n_l x n_{l-1}), ``b<l>``, ``B<l>`` (n_l x n_L),
    flattened row-major, in the golden model's order."""
    n, L = cfg.model.layers, cfg.model.n_layers
    out = {}
    for l in range(1, L + 1):
        P = cfg.hardware.pes[l - 1]
        W = np.empty((n[l], n[l - 1]), dtype=np.int64)
        for p in range(P):
            W[p::P] = banks[f"W{l}_pe{p}"].reshape(-1, n[l - 1])
        out[f"W{l}"] = W.reshape(-1)
        out[f"b{l}"] = banks[f"b{l}"]
        if l < L:
            out[f"B{l}"] = banks[f"B{l}"]
    return out


def describe(cfg, name: str, index: int) -> dict:
    """Where word ``index`` of logical memory ``name`` lies: layer, row, column, and for
    ``W`` the PE bank and bank address that hold it."""
    n = cfg.model.layers
    kind, l = name[0], int(name[1:])
    if kind == "W":
        row, col = divmod(index, n[l - 1])
        P = cfg.hardware.pes[l - 1]
        return {"memory": name, "layer": l, "row": row, "column": col,
                "bank": f"W{l}_pe{row % P}", "bank_address": (row // P) * n[l - 1] + col}
    if kind == "B":
        row, col = divmod(index, n[-1])
        return {"memory": name, "layer": l, "row": row, "column": col, "bank": name, "bank_address": index}
    return {"memory": name, "layer": l, "row": index, "column": None, "bank": name, "bank_address": index}


def compare(cfg, expected: dict[str, list[int]], actual: dict[str, np.ndarray]) -> tuple[int, dict | None]:
    """``(number of differing words, first mismatch or None)``; ``expected`` is
    :meth:`golden.fixed.FixedModel.memory_words`."""
    count, first = 0, None
    for name, want in expected.items():
        w = np.asarray(want, dtype=np.int64)
        got = actual[name]
        diff = np.nonzero(w != got)[0]
        if len(diff):
            count += len(diff)
            if first is None:
                k = int(diff[0])
                first = describe(cfg, name, k) | {"expected": int(w[k]), "actual": int(got[k]),
                                                  "words_differing": int(len(diff))}
    return count, first
