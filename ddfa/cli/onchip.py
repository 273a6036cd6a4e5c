"""``ddfa board train --on-chip``: the data set into the board's dataset store, then
epochs and the evaluation run on the chip (``docs/HOST-PROTOCOL.md``, "The dataset
store"; ``docs/ARITHMETIC.md``, "Training from the dataset store").

:class:`OnChipSession` is the conversation, on a :class:`~ddfa.cli.board.BoardSession`:
upload (skipped when the board already holds the same data set), TRAIN_EPOCHS with
RUN_STATUS polled for progress, EVALUATE, and the state read back for ``--check``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from golden.fixed import FixedModel
from golden.onchip import evaluate, store_image, train_epochs
from sim.readback import logical

from ..config import HEADER_WORDS, Config, dataset_id
from ..config.pll import made_clock_hz
from ..protocol import BLOCK_WORDS, WRITE_BLOCK_WORDS, Opcode
from .link_client import LinkRefused, LinkTimeout

__all__ = ["CountingTransport", "OnChipSession", "UploadFailed", "train_on_chip"]

#: Times a block the link refused or lost is sent again before the upload gives up.
BLOCK_RETRIES = 3


class UploadFailed(RuntimeError):
    """The board did not take the data set (a block kept failing), or has no store."""


class CountingTransport:
    """A transport that counts the bytes each way (the link's time at the board's baud)."""

    def __init__(self, transport):
        self.transport = transport
        self.written = 0
        self.read_bytes = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.transport.write(data)

    def read(self, size: int, timeout: float) -> bytes:
        data = self.transport.read(size, timeout)
        self.read_bytes += len(data)
        return data

    def __getattr__(self, name):
        return getattr(self.transport, name)


class OnChipSession:
    """The dataset store's commands on a board.

    Parameters
    ----------
    session : BoardSession
        The board (its ``proto`` and ``command``).
    """

    def __init__(self, session):
        self.session = session
        self.proto = session.proto
        self.cfg = session.cfg
        if self.cfg.chip_store is None:
            built = self.cfg.store is not None and self.cfg.store.built
            fix = ("build, program and train with --set hardware.dataset_store=true, or train over the link "
                   "('ddfa board train' without --on-chip)" if built else
                   "train over the link ('ddfa board train' without --on-chip)")
            raise UploadFailed(f"this configuration of board {self.cfg.hardware.board!r} has no dataset store: "
                               f"{fix}")

    def _command(self, raw: bytes) -> bytes:
        return self.session.command(raw)

    def run_status(self) -> dict:
        return self.proto.decode_run_status(self._command(self.proto.encode_run_status()))

    def read_store(self, addr: int, words: int) -> list[int]:
        """``words`` store words from ``addr`` on (READ_BLOCK)."""
        out: list[int] = []
        for a in range(addr, addr + words, BLOCK_WORDS):
            out += self.proto.decode_block(self._command(self.proto.encode_read_block("store", a)), "store")
        return out[:words]

    def write_store(self, addr: int, words, what: str = "block") -> None:
        """``words`` (at most :data:`WRITE_BLOCK_WORDS`) into the store from ``addr`` on
        (WRITE_BLOCK). A block that the link refuses or that gets no answer is sent again
        (:data:`BLOCK_RETRIES` times); writing a block twice is harmless."""
        raw = self.proto.encode_write_block("store", addr, words)
        for attempt in range(BLOCK_RETRIES + 1):
            try:
                self.proto.check(self._command(raw), Opcode.WRITE_BLOCK)
                return
            except (LinkRefused, LinkTimeout) as exc:
                if attempt == BLOCK_RETRIES:
                    raise UploadFailed(f"{what} failed {attempt + 1} times ({exc}); the weights are unchanged: "
                                       f"check the cable and run the command again") from exc

    def stored_header(self) -> list[int]:
        """The store's header (``ddfa.config.StoreLayout.header``): which data set it holds."""
        return self.read_store(self.cfg.chip_store.header_base, HEADER_WORDS)

    def upload(self, image, n_train: int, n_test: int, ident: int, progress=None) -> bool:
        """Store ``image`` (``golden.onchip.store_image``) unless the store's header says
        the board holds it already; returns whether it was sent. The header is cleared
        first and written last, so that an upload cut short leaves a store that holds no
        data set (and the next upload sends it again)."""
        layout = self.cfg.chip_store
        header = layout.header(n_train, n_test, ident)
        if self.stored_header() == header:
            return False
        self.write_store(layout.header_base, [0] * HEADER_WORDS, "clearing the store's header")
        blocks = -(-len(image) // WRITE_BLOCK_WORDS)
        for blk in range(blocks):
            first = blk * WRITE_BLOCK_WORDS
            self.write_store(first, image[first:first + WRITE_BLOCK_WORDS], f"block {blk} of {blocks}")
            if progress:
                progress(blk + 1, blocks)
        self.write_store(layout.header_base, header, "the store's header")
        return True

    def wait(self, progress=None, poll: float = 0.05) -> dict:
        """Poll RUN_STATUS until the run ends; ``progress(status)`` after each poll."""
        while True:
            st = self.run_status()
            if progress:
                progress(st)
            if not st["running"]:
                return st
            time.sleep(poll)

    def train_epochs(self, epochs: int, n_train: int, progress=None) -> dict:
        self.proto.check(self._command(self.proto.encode_train_epochs(epochs, n_train)), Opcode.TRAIN_EPOCHS)
        return self.wait(progress)

    def evaluate(self, n_train: int, n_test: int) -> dict:
        self.proto.check(self._command(self.proto.encode_evaluate(n_train, n_test)), Opcode.EVALUATE)
        return self.wait()

    def read_state(self) -> tuple[dict[str, np.ndarray], list[int]]:
        """Every memory word (logical ``W<l>``, ``b<l>``, ``B<l>``) and every LFSR state."""
        banks = {}
        for mem in self.proto.memories:
            words = []
            for a in range(0, mem.words, BLOCK_WORDS):
                words += self.proto.decode_block(self._command(self.proto.encode_read_block(mem.id, a)), mem.id)
            banks[mem.name] = np.asarray(words[:mem.words], dtype=np.int64)
        lfsr = [self.proto.decode_lfsr(self._command(self.proto.encode_read_lfsr(l)))
                for l in range(1, self.cfg.model.n_layers)]
        return logical(self.cfg, banks), lfsr


def golden_from_state(cfg: Config, words: dict[str, np.ndarray], lfsr: list[int]):
    """The fixed-point model in a state read back from a board."""
    model = FixedModel(cfg)
    n = cfg.model.layers
    for l in range(1, cfg.model.n_layers + 1):
        model.W[l - 1] = torch.from_numpy(words[f"W{l}"].reshape(n[l], n[l - 1]).copy())
        model.b[l - 1] = torch.from_numpy(words[f"b{l}"].copy())
        if l < cfg.model.n_layers:
            model.B[l - 1] = torch.from_numpy(words[f"B{l}"].reshape(n[l], n[-1]).copy())
            model.lfsr[l - 1].state = lfsr[l - 1]
    return model


def train_on_chip(session, counter: CountingTransport, cfg: Config, coded, epochs: int, check: bool,
                  progress=None, upload_progress=None) -> dict:
    """Upload (or reuse) the data set, train ``epochs`` epochs and evaluate on the chip
    (``progress(samples done, epoch, chip samples/s)`` while it trains);
    with ``check``, compare every word of the stored data set with the image, and every
    memory word and LFSR with the fixed-point model after the same epochs from the state
    the board started in."""
    chip = OnChipSession(session)
    image = store_image(cfg, coded)
    ident = dataset_id(image)
    n_train, n_test = coded.n_train, coded.n_test
    f_clk, baud = made_clock_hz(cfg.board, cfg.clock_mhz), cfg.hardware.baud
    before = chip.read_state() if check else None
    first_epoch = chip.run_status()["epoch"]

    out0, in0 = counter.written, counter.read_bytes
    sent = chip.upload(image, n_train, n_test, ident, upload_progress)
    upload_out, upload_in = counter.written - out0, counter.read_bytes - in0

    def on_status(st):
        if progress and st["run_cycles"]:
            done = (st["epoch"] - first_epoch - 1) * n_train + st["index"]
            progress(done, st["epoch"], done * f_clk / st["run_cycles"])

    t0 = time.monotonic()
    trained = chip.train_epochs(epochs, n_train, on_status)
    wall_train = time.monotonic() - t0
    if trained["epoch"] != first_epoch + epochs:
        raise UploadFailed(f"the board ran {trained['epoch'] - first_epoch} epochs, {epochs} asked")
    samples = epochs * n_train
    evaluated = chip.evaluate(n_train, n_test)
    result = {
        "mode": "on-chip", "board": cfg.hardware.board, "dataset": cfg.model.dataset,
        "layers": list(cfg.model.layers), "epochs": epochs, "train_samples": n_train, "test_samples": n_test,
        "test_correct": evaluated["correct"], "test_accuracy": evaluated["correct"] / max(1, n_test),
        "cycles_per_sample": trained["run_cycles"] / samples, "train_run_cycles": trained["run_cycles"],
        "evaluate_run_cycles": evaluated["run_cycles"], "clock_hz": f_clk, "baud": baud,
        "chip_samples_per_s": samples * f_clk / trained["run_cycles"],
        "dataset_uploaded": sent, "dataset_id": f"{ident:08x}",
        "upload_bytes": upload_out, "upload_reply_bytes": upload_in,
        "end_to_end_board_s": ((upload_out + upload_in) * 10 / baud
                               + (trained["run_cycles"] + evaluated["run_cycles"]) / f_clk),
        "wall_train_s": wall_train, "epochs_on_board": trained["epoch"],
    }
    if check:
        result["store_matches_image"] = chip.read_store(0, len(image)) == [int(w) for w in image]
        gold = golden_from_state(cfg, *before)
        train_epochs(gold, image, n_train, n_test, first_epoch=first_epoch, epochs=epochs)
        words, lfsr = chip.read_state()
        want = gold.memory_words()
        mismatched = [name for name in want if words[name].tolist() != want[name]]
        lfsr_ok = lfsr == [s.state for s in gold.lfsr]
        result["state_matches_golden"] = not mismatched and lfsr_ok
        result["state_mismatches"] = mismatched + ([] if lfsr_ok else ["lfsr"])
        result["golden_test_correct"] = evaluate(gold, image, n_train, n_test)
    return result
