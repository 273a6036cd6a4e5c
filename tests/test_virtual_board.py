"""The virtual board (``ddfa board serve``): the icebreaker default's board logic in
Verilator behind a TCP socket, driven by the real host client (``ddfa board ping/info/
train/status --port socket://...``), checked against the fixed-point golden model:
the classes of every training step and inference, the step count, and every stored
memory word read back afterwards.

The server runs as a user runs it, in a process of its own; its Verilator build is cached
in ``build/sim-tests`` (or ``$DDFA_SIM_BUILD``) and reused while the Verilog and the
harness are unchanged. The tests that start a server are marked slow: with the build,
they take a minute or more (half a minute with the build cached); `make test-quick`
runs the others, whose commands stop before any build.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ddfa.cli import main
from ddfa.cli.board import BoardSession
from ddfa.cli.link_client import Frame, FrameDecoder, SerialTransport, encode_frame
from ddfa.config import default_config
from ddfa.data import load_config_dataset
from ddfa.protocol import LinkErrorCode, Opcode
from golden.arith import quantize
from golden.fixed import FixedModel
from sim.readback import compare, decode_plan, logical, read_plan

REPO = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("DDFA_SIM_BUILD", REPO / "build" / "sim-tests"))
#: Seconds to the "listening on" line: the Verilog, and a Verilator build when not cached.
START_TIMEOUT = 600
N_TRAIN, N_TEST = 20, 10


class Server:
    """``ddfa board serve`` in a subprocess: its port, its output, its exit."""

    @staticmethod
    def env() -> dict:
        return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

    def __init__(self, tmp_path: Path, *args: str):
        self.err_path = tmp_path / "serve.err"
        with open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "ddfa.cli", "board", "serve", "--board", "icebreaker",
                                          "--listen", "127.0.0.1:0", "--build-dir", str(BUILD), *args],
                                         stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO, env=self.env())
        first = self._line(START_TIMEOUT)
        assert first.startswith("listening on 127.0.0.1:"), (first, self.stderr())
        self.port = int(first.rsplit(":", 1)[1])
        self.url = f"socket://127.0.0.1:{self.port}"

    def _line(self, timeout: float) -> str:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.proc.kill()
            raise AssertionError(f"no line from ddfa board serve within {timeout} s: {self.stderr()}")
        return self.proc.stdout.readline().strip()

    def stderr(self) -> str:
        return self.err_path.read_text()[-3000:]

    def finish(self, timeout: float = 30) -> tuple[int, str]:
        """Exit status and the rest of stdout."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"ddfa board serve did not exit within {timeout} s") from None
        return self.proc.returncode, out

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server(request, tmp_path):
    made = []

    def start(*args: str) -> Server:
        made.append(Server(tmp_path, *args))
        return made[-1]

    yield start
    for s in made:
        s.close()


def cli_json(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def read_memories(session: BoardSession) -> dict:
    """Every stored word, read through the link as :func:`sim.readback.read_plan` plans
    it (one frame per host command)."""
    proto = session.proto
    plan = read_plan(proto)
    reply = bytearray()
    for mem, a, n, _, block in plan.parts:
        if block:
            reply += session.command(proto.encode_read_block(mem.id, a))
        else:
            for k in range(a, a + n):
                reply += session.command(proto.encode_read_mem(mem.id, k))
    return logical(session.cfg, decode_plan(proto, plan, bytes(reply)))


@pytest.mark.slow
def test_client_commands_against_the_golden_model(server, tmp_path, capsys):
    cfg = default_config("icebreaker")
    srv = server("--clients", "5")
    port = ["--board", "icebreaker", "--port", srv.url]

    assert cli_json(capsys, "board", "ping", *port) == {"protocol_version": 1}
    info = cli_json(capsys, "board", "info", *port)
    assert info["config_hash"] == info["expected_hash"]

    out = tmp_path / "train.json"
    train = cli_json(capsys, "board", "train", *port, "--samples", str(N_TRAIN), "--test", str(N_TEST),
                     "--json", str(out), "--no-progress")
    assert json.loads(out.read_text()) == train

    data = load_config_dataset(cfg)
    golden = FixedModel(cfg)
    L = cfg.model.n_layers
    xs, ys = quantize(data.x_train[:N_TRAIN], cfg.arith.act), data.y_train[:N_TRAIN]
    train_classes = [int(golden.step(x, int(y))[f"y{L}"].argmax()) for x, y in zip(xs, ys)]
    xt, yt = quantize(data.x_test[:N_TEST], cfg.arith.act), data.y_test[:N_TEST]
    test_classes = [golden.predict(x) for x in xt]
    assert train["train_samples"] == N_TRAIN and train["test_samples"] == N_TEST
    assert train["online_train_accuracy"] == sum(c == int(y) for c, y in zip(train_classes, ys)) / N_TRAIN
    assert train["test_accuracy"] == sum(c == int(y) for c, y in zip(test_classes, yt)) / N_TEST
    assert train["steps_on_board"] == N_TRAIN

    # the board keeps its state from one client to the next
    status = cli_json(capsys, "board", "status", *port)
    assert status["steps"] == N_TRAIN and status["pred"] == test_classes[-1], status

    # every stored word, and each class again, one sample at a time
    with SerialTransport(srv.url, cfg.hardware.baud) as transport:
        session = BoardSession(cfg, transport, timeout=30)
        count, first = compare(cfg, golden.memory_words(), read_memories(session))
        assert count == 0, first
        assert [session.infer(x.tolist()) for x in xt] == test_classes

    rc, rest = srv.finish()
    assert rc == 0, srv.stderr()
    line = rest.strip().splitlines()[-1]
    assert line.startswith("stopped (client closed): ") and "5 clients" in line, rest
    cycles = int(line.split(": ")[1].split()[0])
    assert cycles > N_TRAIN * 585, line


def _frame(client: socket.socket, decoder: FrameDecoder) -> Frame:
    while True:
        chunk = client.recv(4096)
        assert chunk, "the virtual board closed the connection"
        frames = decoder.feed(chunk)
        if frames:
            assert len(frames) == 1, frames
            return frames[0]


@pytest.mark.slow
def test_slow_client_cut_frame_and_ctrl_c(server):
    """A client that writes a frame one byte at a time, 50 ms apart, is answered (the
    inter-byte timeout counts the board's cycles); a frame cut short is refused for its
    timeout, as on the board; Ctrl-C with the client still connected: status 0."""
    srv = server("--clients", "0")
    ping = encode_frame(Opcode.PING)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as client:
        decoder = FrameDecoder()
        for byte in ping:
            client.sendall(bytes([byte]))
            time.sleep(0.05)
        answer = _frame(client, decoder)
        assert (answer.cmd, answer.ok, answer.data) == (Opcode.PING, True, bytes([Opcode.PING, 1]))
        client.sendall(ping[:3])
        answer = _frame(client, decoder)
        assert (answer.cmd, answer.ok, answer.error) == (Opcode.PING, False, LinkErrorCode.TIMEOUT)
        srv.proc.send_signal(signal.SIGINT)
        rc, rest = srv.finish()
    assert rc == 0, srv.stderr()
    assert rest.strip().splitlines()[-1].startswith("stopped (SIGINT): "), rest


@pytest.mark.slow
def test_sigterm_stops_the_server(server):
    srv = server("--clients", "0")
    srv.proc.send_signal(signal.SIGTERM)
    rc, rest = srv.finish()
    assert rc == 0, srv.stderr()
    assert rest.strip().splitlines()[-1].startswith("stopped (SIGTERM): 0 cycles simulated"), rest


def test_a_port_in_use_is_one_line(capsys):
    """A port that is taken: one line naming it and the fix, status 2, before any build."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["board", "serve", "--board", "icebreaker", "--listen", f"127.0.0.1:{port}",
                     "--build-dir", "/nonexistent/build"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "choose another port" in err, err


def test_build_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["board", "serve", "--board", "icebreaker", "--build-dir", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--build-dir" in err, err


def test_listen_address_errors(capsys):
    assert main(["board", "serve", "--board", "icebreaker", "--listen", "localhost"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert main(["board", "serve", "--board", "icebreaker", "--listen", "127.0.0.1:70000"]) == 2
    assert "0..65535" in capsys.readouterr().err


def test_closed_port_names_the_server(capsys):
    with socket.socket() as s:                        # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    assert main(["board", "ping", "--board", "icebreaker", "--port", f"socket://127.0.0.1:{free}"]) == 2
    err = capsys.readouterr().err
    assert "cannot open" in err and "ddfa board serve" in err, err
