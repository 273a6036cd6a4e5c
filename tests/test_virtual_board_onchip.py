"""The dataset store on the virtual board: the iCEBreaker default with
``hardware.dataset_store = true`` in Verilator behind a TCP socket, driven by the real
client (``ddfa board train --on-chip``) and by hand-made frames.

* malformed uploads: a block frame with a bad CRC (the link refuses it), a block frame
  cut short (refused for its timeout), an upload interrupted before its header (the
  store's header says it holds no data set, and the client sends it all again); no
  memory word changes, and the store holds none of the refused blocks' words;
* one digits epoch on the chip and the evaluation, every memory word and LFSR compared
  with the fixed-point model (``state_matches_golden``), the chip's cycles per sample
  within 1.05 of the per-sample step's;
* a second run on the same board skips the upload (same data set id) and still matches.
"""

from __future__ import annotations

import json
import signal
import socket

import pytest

from ddfa.cli.board import BoardSession
from ddfa.cli.onchip import OnChipSession
from ddfa.cli.link_client import FrameDecoder, SerialTransport, encode_frame
from ddfa.config import default_config
from ddfa.data import load_config_coded
from ddfa.protocol import WRITE_BLOCK_WORDS, HostProtocol, LinkErrorCode, Opcode
from golden.onchip import store_image
from hdl.cycles import step_cycles

from .test_virtual_board import _frame, cli_json, read_memories, server  # noqa: F401  (fixture)

STORE = ("--set", "hardware.dataset_store=true")


def request(client: socket.socket, decoder: FrameDecoder, raw: bytes):
    client.sendall(encode_frame(raw[0], raw[1:]))
    return _frame(client, decoder)


@pytest.mark.slow
def test_on_chip_epoch_and_malformed_uploads(server, tmp_path, capsys):
    cfg = default_config("icebreaker").replace(**{"hardware.dataset_store": True})
    proto = HostProtocol(cfg)
    coded = load_config_coded(cfg)
    image = store_image(cfg, coded)
    srv = server("--clients", "0", *STORE)
    port = ["--board", "icebreaker", *STORE, "--port", srv.url]

    with SerialTransport(srv.url, cfg.hardware.baud) as transport:
        before = {k: v.tolist() for k, v in read_memories(BoardSession(cfg, transport, timeout=30)).items()}

    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as client:
        decoder = FrameDecoder()
        layout = cfg.chip_store
        clear = proto.encode_write_block("store", layout.header_base, [0] * 4)
        assert request(client, decoder, clear).data == bytes([Opcode.WRITE_BLOCK])
        refused_at = 4 * WRITE_BLOCK_WORDS                 # where the refused frames would write
        block = proto.encode_write_block("store", refused_at, [0x5A5A] * WRITE_BLOCK_WORDS)
        frame = bytearray(encode_frame(block[0], block[1:]))
        frame[-1] ^= 0x55                                   # a damaged CRC
        client.sendall(bytes(frame))
        answer = _frame(client, decoder)
        assert (answer.ok, answer.error) == (False, LinkErrorCode.BAD_CRC)
        client.sendall(encode_frame(block[0], block[1:])[:100])      # a block cut short
        answer = _frame(client, decoder)
        assert (answer.ok, answer.error) == (False, LinkErrorCode.TIMEOUT)
        for b in range(2):                                  # then the upload stops
            first = b * WRITE_BLOCK_WORDS
            raw = proto.encode_write_block("store", first, image[first:first + WRITE_BLOCK_WORDS])
            assert request(client, decoder, raw).data == bytes([Opcode.WRITE_BLOCK])
    with SerialTransport(srv.url, cfg.hardware.baud) as transport:
        session = BoardSession(cfg, transport, timeout=30)
        after = read_memories(session)
        assert {k: v.tolist() for k, v in after.items()} == before
        chip = OnChipSession(session)
        assert chip.stored_header() == [0] * 4             # holds no data set: the client uploads again
        assert chip.read_store(0, 2 * WRITE_BLOCK_WORDS) == [int(w) for w in image[:2 * WRITE_BLOCK_WORDS]]
        assert 0x5A5A not in chip.read_store(refused_at, WRITE_BLOCK_WORDS)

    out = tmp_path / "onchip.json"
    first = cli_json(capsys, "board", "train", *port, "--on-chip", "--epochs", "1", "--check", "--timeout", "30",
                     "--json", str(out), "--no-progress")
    assert json.loads(out.read_text()) == first
    assert first["mode"] == "on-chip" and first["dataset_uploaded"] and first["epochs_on_board"] == 1
    assert first["state_matches_golden"], first["state_mismatches"]
    assert first["store_matches_image"]
    assert first["test_correct"] == first["golden_test_correct"]
    assert first["cycles_per_sample"] <= 1.05 * step_cycles(cfg)["total"]

    again = cli_json(capsys, "board", "train", *port, "--on-chip", "--epochs", "1", "--check", "--timeout", "30",
                     "--no-progress")
    assert not again["dataset_uploaded"] and again["upload_bytes"] < 100 and again["epochs_on_board"] == 2
    assert again["state_matches_golden"], again["state_mismatches"]

    srv.proc.send_signal(signal.SIGINT)
    rc, _ = srv.finish()
    assert rc == 0, srv.stderr()
