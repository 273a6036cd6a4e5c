"""The host protocol's definitions, shared by the hardware (:mod:`hdl.link`,
:mod:`hdl.host`), the RTL benches (:mod:`sim`) and the host side
(:mod:`ddfa.cli.link_client`, :mod:`ddfa.cli.board`).

Two layers, each specified in a page of ``docs/``:

* the UART frame layer (``docs/HOST-LINK.md``): frame constants, the CRC
  (:data:`CRC_ALGORITHM`: one definition gives the hardware's CRC processor and the
  software's :func:`crc16`), the link's error codes;
* the command protocol on the processor's byte streams (``docs/HOST-PROTOCOL.md``): the
  opcodes, the memory map, the byte counts, the command table with exact lengths
  (:func:`host_commands`) and :class:`HostProtocol`, the pure-Python encoder and decoder.

Nothing here is hardware; this module imports only :mod:`ddfa.config` of the project.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable

from amaranth.lib import crc

from .config import STORE_WORD_BITS, Config

__all__ = [
    # frames
    "SYNC", "STATUS_OK", "STATUS_ERROR", "MAX_PAYLOAD", "CRC_ALGORITHM", "CRC_INIT", "CRC_POLY",
    "CRC_CHECK", "LinkErrorCode", "crc16",
    # commands
    "PROTOCOL_VERSION", "ERROR_REPLY", "RANGE_ERROR_REPLY", "BUSY_REPLY", "Opcode", "BLOCK_WORDS",
    "WRITE_BLOCK_WORDS", "COUNTER_WIDTH", "STATUS_BYTES", "INFO_BYTES", "RUN_STATUS_BYTES", "RunFlags", "addr_width", "MemoryInfo", "memory_map", "store_memory", "bus_memories", "HostParams", "Command",
    "RUNNING_COMMANDS", "store_commands", "host_commands", "link_commands", "HostReplyError", "HostProtocol",
]

# --------------------------------------------------------------------------------------
# Frames (docs/HOST-LINK.md)
# --------------------------------------------------------------------------------------

SYNC = 0xA5
STATUS_OK = 0x00
STATUS_ERROR = 0x01
MAX_PAYLOAD = 0xFFFF

#: CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final
#: XOR. ``CRC_ALGORITHM(data_width=8).create()`` is the hardware's CRC processor,
#: ``.compute()`` the software's (:func:`crc16`).
CRC_ALGORITHM = crc.catalog.CRC16_CCITT_FALSE
CRC_POLY = CRC_ALGORITHM.polynomial
CRC_INIT = CRC_ALGORITHM.initial_crc
#: ``crc16(b"123456789")``.
CRC_CHECK = 0x29B1


class LinkErrorCode(enum.IntEnum):
    """Why the link refused a request frame (second payload byte of an error response)."""

    #: The CRC over CMD..PAYLOAD did not match.
    BAD_CRC = 0x01
    #: LEN is not the payload length that CMD takes.
    BAD_LENGTH = 0x02
    #: CMD is not a command the processor knows.
    UNKNOWN_CMD = 0x03
    #: The frame stopped: no byte for longer than the inter-byte timeout.
    TIMEOUT = 0x04
    #: The UART saw a bad stop bit or lost a byte (overrun) inside the frame.
    UART = 0x05


_CRC_BYTES = CRC_ALGORITHM(data_width=8)


def crc16(data: bytes | Iterable[int]) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (:data:`CRC_ALGORITHM`)."""
    return _CRC_BYTES.compute(bytes(data))


# --------------------------------------------------------------------------------------
# Commands (docs/HOST-PROTOCOL.md)
# --------------------------------------------------------------------------------------

#: Version byte returned by PING and INFO.
PROTOCOL_VERSION = 1
#: First reply byte of an unknown opcode (the second byte is the opcode).
ERROR_REPLY = 0xFF
#: First reply byte of a command whose argument is out of range (a memory id not in the
#: map, an address at or past the end of the addressed memory, a label of LOAD_SAMPLE
#: that is not a class); the command changes nothing. The reply keeps the command's
#: length: this byte, then the opcode (when the reply has a second byte), then zeros.
RANGE_ERROR_REPLY = 0xFE
#: First reply byte of a command refused because the processor is running epochs or an
#: evaluation on its own (TRAIN_EPOCHS, EVALUATE); same shape as :data:`RANGE_ERROR_REPLY`'s.
#: PING, STATUS, INFO and RUN_STATUS are answered while it runs.
BUSY_REPLY = 0xFD


class Opcode(enum.IntEnum):
    """The command opcodes (first byte of every command)."""

    PING = 0x00
    LOAD_SAMPLE = 0x01
    TRAIN = 0x02
    INFER = 0x03
    READ_MEM = 0x04
    WRITE_MEM = 0x05
    READ_LFSR = 0x06
    WRITE_LFSR = 0x07
    STATUS = 0x08
    INFO = 0x09
    READ_BLOCK = 0x0A
    # The dataset store (boards with one: ``Config.chip_store``)
    WRITE_BLOCK = 0x0B
    TRAIN_EPOCHS = 0x0E
    EVALUATE = 0x0F
    RUN_STATUS = 0x10


#: The commands a processor answers while it runs epochs or an evaluation.
RUNNING_COMMANDS = (Opcode.PING, Opcode.STATUS, Opcode.INFO, Opcode.RUN_STATUS)


#: Words one READ_BLOCK returns (a fixed number, so that every reply length stays a
#: function of the opcode and the configuration alone).
BLOCK_WORDS = 256
#: Bits of the sequencer's step and cycle counters (4 bytes each in the STATUS reply).
COUNTER_WIDTH = 32
#: STATUS reply: echo, flags, five counters, the last class.
STATUS_BYTES = 1 + 1 + 5 * (COUNTER_WIDTH // 8) + 1
#: INFO reply: echo, seven single-byte fields, the 4-byte configuration hash.
INFO_BYTES = 1 + 7 + 4
#: Words one WRITE_BLOCK writes.
WRITE_BLOCK_WORDS = 128
#: RUN_STATUS reply: echo, flags, epoch (2), index (2), correct (2), run cycles (4).
RUN_STATUS_BYTES = 1 + 1 + 2 + 2 + 2 + 4


class RunFlags(enum.IntFlag):
    """RUN_STATUS's flags byte."""

    #: Epochs or an evaluation are running.
    RUNNING = 1
    #: The current (or last) run is an evaluation.
    EVALUATING = 2


def addr_width(depth: int) -> int:
    """Address bits of a memory of ``depth`` words (at least 1)."""
    return max(1, (depth - 1).bit_length())


@dataclass(frozen=True)
class MemoryInfo:
    """One physical memory of the processor, as the host addresses it.

    ``kind`` is ``"W"`` (one PE bank of ``W_l``: PE ``pe`` holds rows ``i`` with
    ``i mod P_l == pe`` at address ``(i div P_l) * n_{l-1} + j``), ``"b"`` (``b_l``,
    address ``i``), ``"B"`` (``B_l``, address ``i * n_L + o``) or ``"store"`` (the
    dataset store, :func:`store_memory`). ``name`` is the name of its ``$readmemh``
    image (``W1_pe0``, ``b1``, ``B1``, ...) or ``store``.
    """

    id: int
    name: str
    kind: str
    layer: int
    pe: int | None
    words: int
    width: int


def memory_map(cfg: Config) -> tuple[MemoryInfo, ...]:
    """Every memory of the processor with its id: for ``l = 1..L``, the PE banks
    ``W<l>_pe<p>`` (``p = 0..P_l-1``), then ``b<l>``, then ``B<l>`` (hidden layers)."""
    a, n, L = cfg.arith, cfg.model.layers, cfg.model.n_layers
    out: list[MemoryInfo] = []
    for l in range(1, L + 1):
        P = cfg.hardware.pes[l - 1]
        for p in range(P):
            out.append(MemoryInfo(len(out), f"W{l}_pe{p}", "W", l, p, cfg.bank_depth(l), a.weight.width))
        out.append(MemoryInfo(len(out), f"b{l}", "b", l, None, n[l], a.weight.width))
        if l < L:
            out.append(MemoryInfo(len(out), f"B{l}", "B", l, None, n[l] * n[-1], a.feedback.width))
    if len(out) > 254:
        raise ValueError("more than 254 memories: the host protocol's memory id is one byte")
    return tuple(out)


def store_memory(cfg: Config) -> MemoryInfo | None:
    """The dataset store as the host addresses it (boards with one, ``cfg.chip_store``):
    the id after :func:`memory_map`'s, ``capacity_words`` unsigned 16-bit words. It is
    not part of the learned state (:func:`memory_map`); READ_MEM, WRITE_MEM, READ_BLOCK
    and WRITE_BLOCK reach it like any memory."""
    st = cfg.chip_store
    if st is None:
        return None
    return MemoryInfo(len(memory_map(cfg)), "store", "store", 0, None, st.capacity_words, STORE_WORD_BITS)


def bus_memories(cfg: Config) -> tuple[MemoryInfo, ...]:
    """Every memory the host's commands address, by id: :func:`memory_map`'s, then the
    dataset store (:func:`store_memory`) on boards with one."""
    store = store_memory(cfg)
    return memory_map(cfg) + ((store,) if store else ())


@dataclass(frozen=True)
class HostParams:
    """The byte counts of the protocol for one configuration.

    Attributes
    ----------
    n_inputs, n_outputs, n_hidden, n_memories : int
        ``n_0``, ``n_L``, ``L - 1`` and the number of memories of :func:`memory_map`.
    sample_bytes : int
        Bytes per input word, ``ceil(act.width / 8)``.
    addr_bytes : int
        Bytes of a memory address, ``ceil(max address bits / 8)`` over :func:`memory_map`.
    word_bytes : int
        Bytes of a memory word, ``ceil(max(weight.width, feedback.width) / 8)``; a word
        is read sign-extended to this many bytes and written from its low bits.
    lfsr_bytes : int
        Bytes of an LFSR state, ``ceil(lfsr_width / 8)``.
    has_store : bool
        The processor has a dataset store (:func:`store_memory`) and its commands.
    """

    n_inputs: int
    n_outputs: int
    n_hidden: int
    n_memories: int
    sample_bytes: int
    addr_bytes: int
    word_bytes: int
    lfsr_bytes: int
    has_store: bool = False

    @classmethod
    def of(cls, cfg: Config) -> "HostParams":
        a = cfg.arith
        mems = memory_map(cfg)
        abits = max(addr_width(mem.words) for mem in bus_memories(cfg))
        return cls(n_inputs=cfg.model.layers[0], n_outputs=cfg.model.n_outputs,
                   n_hidden=cfg.model.n_layers - 1, n_memories=len(mems),
                   sample_bytes=-(-a.act.width // 8), addr_bytes=-(-abits // 8),
                   word_bytes=-(-max(a.weight.width, a.feedback.width) // 8),
                   lfsr_bytes=-(-a.lfsr_width // 8), has_store=cfg.chip_store is not None)


@dataclass(frozen=True)
class Command:
    """One command, with its exact lengths: the link checks a request frame against it
    and the processor parses it.

    Parameters
    ----------
    code : int
        The opcode: the CMD byte of the link's frames and the first byte the processor
        receives.
    name : str
        For documentation and error messages.
    request : int
        Argument bytes after the opcode (the payload of a request frame), exactly.
    response : int
        Reply bytes (the echoed opcode included), exactly; may be 0, and the response
        frame then carries only its status byte.
    """

    code: int
    name: str
    request: int
    response: int

    def __post_init__(self):
        if not 0 <= self.code <= 0xFF:
            raise ValueError(f"command {self.name}: code {self.code!r} is not a byte")
        if not 0 <= self.request <= MAX_PAYLOAD:
            raise ValueError(f"command {self.name}: request length {self.request} is not 0..{MAX_PAYLOAD}")
        if not 0 <= self.response <= MAX_PAYLOAD - 1:
            raise ValueError(f"command {self.name}: response length {self.response} is not 0..{MAX_PAYLOAD - 1}")


def host_commands(cfg: Config) -> tuple[Command, ...]:
    """The command set with its exact lengths for ``cfg`` (``docs/HOST-PROTOCOL.md``)."""
    h = HostParams.of(cfg)
    O = Opcode
    return (
        Command(O.PING, "PING", 0, 2),
        Command(O.LOAD_SAMPLE, "LOAD_SAMPLE", h.n_inputs * h.sample_bytes + 1, 1),
        Command(O.TRAIN, "TRAIN", 0, 2),
        Command(O.INFER, "INFER", 0, 2),
        Command(O.READ_MEM, "READ_MEM", 1 + h.addr_bytes, 1 + h.word_bytes),
        Command(O.WRITE_MEM, "WRITE_MEM", 1 + h.addr_bytes + h.word_bytes, 1),
        Command(O.READ_LFSR, "READ_LFSR", 1, 1 + h.lfsr_bytes),
        Command(O.WRITE_LFSR, "WRITE_LFSR", 1 + h.lfsr_bytes, 1),
        Command(O.STATUS, "STATUS", 0, STATUS_BYTES),
        Command(O.INFO, "INFO", 0, INFO_BYTES),
        Command(O.READ_BLOCK, "READ_BLOCK", 1 + h.addr_bytes, 1 + BLOCK_WORDS * h.word_bytes),
    ) + (store_commands(h) if h.has_store else ())


def store_commands(h: HostParams) -> tuple[Command, ...]:
    """The dataset store's commands (``docs/HOST-PROTOCOL.md``, "The dataset store")."""
    O = Opcode
    return (
        Command(O.WRITE_BLOCK, "WRITE_BLOCK", 1 + h.addr_bytes + WRITE_BLOCK_WORDS * h.word_bytes, 1),
        Command(O.TRAIN_EPOCHS, "TRAIN_EPOCHS", 2 + 2, 1),
        Command(O.EVALUATE, "EVALUATE", 2 + 2, 1),
        Command(O.RUN_STATUS, "RUN_STATUS", 0, RUN_STATUS_BYTES),
    )


def link_commands(commands) -> tuple[Command, ...]:
    """The link's command table from any objects with ``code``, ``name``, ``request``
    and ``response`` (such as :func:`host_commands`' :class:`Command`)."""
    return tuple(c if isinstance(c, Command) else
                 Command(int(c.code), str(c.name), int(c.request), int(c.response)) for c in commands)


# --------------------------------------------------------------------------------------
# The host side, in Python
# --------------------------------------------------------------------------------------

def _le(value: int, n: int) -> bytes:
    return (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little")


def _signed(raw: int, bits: int) -> int:
    return raw - (1 << bits) if raw >> (bits - 1) & 1 else raw


class HostReplyError(ValueError):
    """A reply that does not answer its command as asked: the processor refused it
    (unknown opcode, argument out of range) or the reply is malformed."""


class HostProtocol:
    """Encodes commands and decodes replies of the host protocol for one configuration.

    Every ``encode_*`` method returns the command bytes; :meth:`reply_length` gives the
    number of reply bytes to read; :meth:`check` and the ``decode_*`` methods check the
    first reply byte (the echoed opcode) and return the value, or raise
    :class:`HostReplyError` for a refused or malformed reply.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.params = HostParams.of(cfg)
        self.memories = memory_map(cfg)
        #: The dataset store (:func:`store_memory`), or None.
        self.store = store_memory(cfg)
        self.by_name = {mem.name: mem for mem in bus_memories(cfg)}
        self.commands = {c.code: c for c in host_commands(cfg)}
        self.block_words = BLOCK_WORDS

    def reply_length(self, opcode: int) -> int:
        return self.commands[opcode].response if opcode in self.commands else 2

    # -- commands ----------------------------------------------------------------------
    def encode_ping(self) -> bytes:
        return bytes([Opcode.PING])

    def encode_load_sample(self, words, label: int) -> bytes:
        h = self.params
        words = [int(w) for w in words]
        if len(words) != h.n_inputs:
            raise ValueError(f"{len(words)} input words, {h.n_inputs} expected")
        if not 0 <= label < h.n_outputs:
            raise ValueError(f"label {label} is not in 0..{h.n_outputs - 1}")
        return bytes([Opcode.LOAD_SAMPLE]) + b"".join(_le(w, h.sample_bytes) for w in words) + bytes([label])

    def encode_train(self) -> bytes:
        return bytes([Opcode.TRAIN])

    def encode_infer(self) -> bytes:
        return bytes([Opcode.INFER])

    def encode_read_mem(self, mem: int | str, addr: int) -> bytes:
        return bytes([Opcode.READ_MEM, self._id(mem)]) + _le(addr, self.params.addr_bytes)

    def encode_read_block(self, mem: int | str, addr: int) -> bytes:
        """READ_BLOCK: the :data:`BLOCK_WORDS` words of ``mem`` from ``addr`` on."""
        return bytes([Opcode.READ_BLOCK, self._id(mem)]) + _le(addr, self.params.addr_bytes)

    def encode_write_mem(self, mem: int | str, addr: int, word: int) -> bytes:
        h = self.params
        return bytes([Opcode.WRITE_MEM, self._id(mem)]) + _le(addr, h.addr_bytes) + _le(word, h.word_bytes)

    def encode_read_lfsr(self, layer: int) -> bytes:
        return bytes([Opcode.READ_LFSR, layer])

    def encode_write_lfsr(self, layer: int, state: int) -> bytes:
        return bytes([Opcode.WRITE_LFSR, layer]) + _le(state, self.params.lfsr_bytes)

    def encode_status(self) -> bytes:
        return bytes([Opcode.STATUS])

    def encode_info(self) -> bytes:
        return bytes([Opcode.INFO])

    def encode_write_block(self, mem: int | str, addr: int, words) -> bytes:
        """WRITE_BLOCK: :data:`WRITE_BLOCK_WORDS` words (fewer are padded with 0) into
        ``mem`` from ``addr`` on, each written from its low bits; words that would lie at
        or past the memory's end are not written."""
        h = self.params
        words = [int(w) for w in words]
        if len(words) > WRITE_BLOCK_WORDS:
            raise ValueError(f"{len(words)} words in one block, at most {WRITE_BLOCK_WORDS}")
        words += [0] * (WRITE_BLOCK_WORDS - len(words))
        return (bytes([Opcode.WRITE_BLOCK, self._id(mem)]) + _le(addr, h.addr_bytes)
                + b"".join(_le(w, h.word_bytes) for w in words))

    def encode_train_epochs(self, epochs: int, n_train: int) -> bytes:
        """TRAIN_EPOCHS: ``epochs`` epochs over the store's ``n_train`` training records."""
        if not 1 <= epochs <= 0xFFFF:
            raise ValueError(f"{epochs} epochs: 1..65535 per command")
        self._store().check(n_train, 0)
        if n_train < 1:
            raise ValueError("TRAIN_EPOCHS needs at least one training record")
        return bytes([Opcode.TRAIN_EPOCHS]) + _le(n_train, 2) + _le(epochs, 2)

    def encode_evaluate(self, n_train: int, n_test: int) -> bytes:
        """EVALUATE: the ``n_test`` test records after the ``n_train`` training records."""
        self._store().check(n_train, n_test)
        if n_test < 1:
            raise ValueError("EVALUATE needs at least one test record")
        return bytes([Opcode.EVALUATE]) + _le(n_train, 2) + _le(n_test, 2)

    def encode_run_status(self) -> bytes:
        return bytes([Opcode.RUN_STATUS])

    def _store(self):
        if not self.params.has_store:
            raise ValueError(f"board {self.cfg.hardware.board!r} has no dataset store")
        return self.cfg.chip_store

    # -- replies -----------------------------------------------------------------------
    def range_error_reply(self, opcode: int) -> bytes:
        """The reply to command ``opcode`` with an argument out of range."""
        return self._refusal(RANGE_ERROR_REPLY, opcode)

    def busy_reply(self, opcode: int) -> bytes:
        """The reply to command ``opcode`` sent while the processor runs epochs."""
        return self._refusal(BUSY_REPLY, opcode)

    def _refusal(self, first: int, opcode: int) -> bytes:
        n = self.reply_length(opcode)
        return (bytes([first, opcode]) + bytes(max(0, n - 2)))[:n]

    def check(self, reply: bytes, opcode: int) -> bytes:
        """The reply's bytes after the echo; :class:`HostReplyError` when the processor
        refused the command or the reply is not one to ``opcode``."""
        reply = bytes(reply)
        name = Opcode(opcode).name if opcode in set(Opcode) else f"{opcode:#04x}"
        if len(reply) != self.reply_length(opcode):
            raise HostReplyError(f"reply to {name} has {len(reply)} bytes, {self.reply_length(opcode)} expected: "
                                 f"{reply.hex()}")
        if reply[0] == opcode:
            return reply[1:]
        if reply[0] == ERROR_REPLY:
            raise HostReplyError(f"the processor does not know opcode {opcode:#04x}: check that the host "
                                 f"and the bitstream are of the same protocol version")
        if reply[0] == RANGE_ERROR_REPLY and reply == self.range_error_reply(opcode):
            if opcode == Opcode.LOAD_SAMPLE:
                what = f"its label is not a class (0..{self.params.n_outputs - 1})"
            elif opcode in (Opcode.TRAIN_EPOCHS, Opcode.EVALUATE):
                what = ("a count is 0 or the records do not fit the store "
                        f"(at most {self._store().max_records:,} in all)")
            else:
                what = "its memory id is not in the memory map or its address is past the memory's end"
            raise HostReplyError(f"the processor refused {name}: {what}; nothing changed "
                                 f"(see memory_map and docs/HOST-PROTOCOL.md)")
        if reply[0] == BUSY_REPLY and reply == self.busy_reply(opcode):
            raise HostReplyError(f"the processor refused {name}: it is running epochs or an evaluation on "
                                 f"its own; nothing changed. Wait until RUN_STATUS says it is not running")
        raise HostReplyError(f"bad reply to {name}: {reply.hex()}")

    def decode_class(self, reply: bytes, opcode: int) -> int:
        """The class of a TRAIN or INFER reply."""
        return self.check(reply, opcode)[0]

    def decode_word(self, reply: bytes, mem: int | str) -> int:
        """The stored (signed) integer of a READ_MEM reply from memory ``mem``."""
        raw = int.from_bytes(self.check(reply, Opcode.READ_MEM), "little")
        return self._stored(raw, self._info(mem))

    def decode_block(self, reply: bytes, mem: int | str) -> list[int]:
        """The stored (signed) integers of a READ_BLOCK reply from memory ``mem`` (words
        past the memory's end read as 0)."""
        body = self.check(reply, Opcode.READ_BLOCK)
        wb, info = self.params.word_bytes, self._info(mem)
        return [self._stored(int.from_bytes(body[k:k + wb], "little"), info) for k in range(0, len(body), wb)]

    def decode_lfsr(self, reply: bytes) -> int:
        return int.from_bytes(self.check(reply, Opcode.READ_LFSR), "little")

    def decode_status(self, reply: bytes) -> dict:
        body = self.check(reply, Opcode.STATUS)
        n = COUNTER_WIDTH // 8
        f = lambda k: int.from_bytes(body[1 + k * n:1 + (k + 1) * n], "little")
        return {"busy": bool(body[0] & 1), "sample_loaded": bool(body[0] & 2), "steps": f(0),
                "cycles": f(1), "cycles_forward": f(2), "cycles_update": f(3), "cycles_error": f(4),
                "pred": body[-1]}

    def decode_info(self, reply: bytes) -> dict:
        body = self.check(reply, Opcode.INFO)
        keys = ["version", "n_memories", "addr_bytes", "word_bytes", "sample_bytes", "lfsr_bytes", "n_hidden"]
        out = dict(zip(keys, body[:7]))
        out["config_hash"] = int.from_bytes(body[7:11], "little")
        return out

    def decode_run_status(self, reply: bytes) -> dict:
        body = self.check(reply, Opcode.RUN_STATUS)
        flags = RunFlags(body[0])
        f = lambda lo, n: int.from_bytes(body[lo:lo + n], "little")  # noqa: E731
        return {"running": RunFlags.RUNNING in flags, "evaluating": RunFlags.EVALUATING in flags,
                "epoch": f(1, 2), "index": f(3, 2), "correct": f(5, 2), "run_cycles": f(7, 4)}

    def _info(self, mem: int | str) -> MemoryInfo:
        i = self._id(mem)
        return self.store if self.store is not None and i == self.store.id else self.memories[i]

    @staticmethod
    def _stored(raw: int, info: MemoryInfo) -> int:
        """A word as stored: the store's unsigned, the learned memories' signed."""
        raw &= (1 << info.width) - 1
        return raw if info.kind == "store" else _signed(raw, info.width)

    def _id(self, mem: int | str) -> int:
        return self.by_name[mem].id if isinstance(mem, str) else int(mem)
