"""``ddfa build`` and ``ddfa board``: the command lines (tools mocked), and BoardSession
driving the real processor behind the link in simulation."""

from __future__ import annotations

import json

import pytest
from amaranth.sim import Simulator

from boards import build as build_mod
from boards import top as top_mod
from ddfa.cli import main


def fake_result(cfg, timing_met=True):
    return build_mod.BuildResult(
        board=cfg.board.name, family=cfg.board.family, device=cfg.board.device, top="BoardTop",
        bitstream="/x/ddfa_top.bin", target_mhz=30.0, clock_mhz=30.0, fmax_mhz=41.0 if timing_met else 25.0,
        timing_met=timing_met, resources={"logic": {"cell": "ICESTORM_LC", "used": 10, "available": 5280}},
        train_samples_per_s=1000.0, link_samples_per_s=76.8)


@pytest.fixture
def no_toolchain(monkeypatch):
    """processor_top and build replaced: the command line only."""
    calls = {}
    monkeypatch.setattr(top_mod, "processor_top", lambda cfg: calls.setdefault("top", object()))

    def fake_build(cfg, top, out, **kw):
        calls["build"] = (cfg, top, out, kw)
        return fake_result(cfg, timing_met=calls.get("timing_met", True))

    monkeypatch.setattr(build_mod, "build", fake_build)
    return calls


def test_build_writes_json(no_toolchain, tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["build", "--board", "icebreaker", "--out", str(tmp_path / "b"), "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    for key in ("bitstream", "target_mhz", "fmax_mhz", "timing_met", "resources", "train_samples_per_s"):
        assert key in rep
    assert no_toolchain["build"][2] == tmp_path / "b"
    assert "timing met" in capsys.readouterr().out


def test_build_timing_failure_exit_status(no_toolchain, tmp_path):
    no_toolchain["timing_met"] = False
    args = ["build", "--board", "icebreaker", "--out", str(tmp_path), "--json", str(tmp_path / "r.json")]
    assert main(args) == 1
    assert json.loads((tmp_path / "r.json").read_text())["timing_met"] is False
    assert main(args + ["--allow-timing-fail"]) == 0


def test_build_needs_a_board(tmp_path, capsys):
    assert main(["build", "--board", "icebreaker", "--set", "hardware.board=\"none\"", "--out", str(tmp_path)]) == 2
    assert "hardware.board" in capsys.readouterr().err


def test_build_without_processor_is_an_error(monkeypatch, tmp_path, capsys):
    def unavailable(cfg):
        raise top_mod.ProcessorUnavailable("the processor ... cannot be imported (simulated)")
    monkeypatch.setattr(top_mod, "processor_top", unavailable)
    assert main(["build", "--board", "icebreaker", "--out", str(tmp_path)]) == 2
    assert "cannot be imported" in capsys.readouterr().err
    assert not (tmp_path / "build.json").exists()


def test_build_that_does_not_fit_writes_partial_report(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(top_mod, "processor_top", lambda cfg: object())

    def failing(cfg, top, out, **kw):
        partial = fake_result(cfg)
        partial.error = "the design does not fit iCE40UP5K: ICESTORM_LC 5935/5280"
        raise build_mod.BuildFailed(partial.error, tmp_path / "x.tim", {}, partial)

    monkeypatch.setattr(build_mod, "build", failing)
    assert main(["build", "--board", "icebreaker", "--out", str(tmp_path)]) == 2
    assert "does not fit" in capsys.readouterr().err
    assert "does not fit" in json.loads((tmp_path / "build.json").read_text())["error"]


def test_program_without_programmer(no_toolchain, monkeypatch, tmp_path, capsys):
    from boards import toolchain
    monkeypatch.setattr(toolchain, "find_tool", lambda exe: None)
    monkeypatch.setattr(build_mod, "find_tool", lambda exe: None)
    assert main(["build", "--board", "icebreaker", "--out", str(tmp_path), "--program"]) == 2
    err = capsys.readouterr().err
    assert "iceprog" in err and "apt-get install fpga-icestorm" in err
    assert json.loads((tmp_path / "build.json").read_text())["programmed"] is False


def test_board_list(capsys):
    assert main(["board", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("icebreaker", "upduino-v3", "ulx3s-85f", "orangecrab-25f"):
        assert name in out


def test_board_bad_port(capsys):
    assert main(["board", "ping", "--board", "icebreaker", "--port", "/dev/does-not-exist"]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_board_echoing_port(capsys):
    """--port loop:// echoes every request: the error says that no board answered on it."""
    pytest.importorskip("serial")
    assert main(["board", "ping", "--board", "icebreaker", "--port", "loop://", "--timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert "no board answered on 'loop://'" in err and "echoed" in err and "--port" in err, err


# -- BoardSession against the processor in simulation ------------------------------------------

class StreamSimTransport:
    """A Transport into a simulated design with byte streams ``rx``/``tx`` (the link's
    UART side without the UARTs): one byte per cycle each way."""

    def __init__(self, dut):
        self.dut = dut
        self.to_dut = bytearray()
        self.from_dut = bytearray()
        self.sim = Simulator(dut)
        self.sim.add_clock(1e-6)
        self.sim.add_testbench(self._drive, background=True)
        self.sim.add_testbench(self._listen, background=True)

    async def _drive(self, ctx):
        while True:
            if self.to_dut:
                ctx.set(self.dut.rx.payload, self.to_dut.pop(0))
                ctx.set(self.dut.rx.valid, 1)
                await ctx.tick().until(self.dut.rx.ready)
                ctx.set(self.dut.rx.valid, 0)
            else:
                await ctx.tick()

    async def _listen(self, ctx):
        ctx.set(self.dut.tx.ready, 1)
        async for _, _, valid, payload in ctx.tick().sample(self.dut.tx.valid, self.dut.tx.payload):
            if valid:
                self.from_dut.append(payload)

    def write(self, data: bytes) -> None:
        self.to_dut += data

    def read(self, size: int, timeout: float) -> bytes:
        for _ in range(200_000):
            if self.from_dut:
                break
            self.sim.advance()
        out = bytes(self.from_dut[:size])
        del self.from_dut[:size]
        return out


def test_board_session_trains_the_simulated_processor():
    pytest.importorskip("hdl.top")
    import torch
    from ddfa.cli.board import BoardSession, ConfigMismatch, train_on_board
    from golden.fixed import FixedModel
    from golden.arith import quantize
    from .test_link_processor import LinkedProcessor, small_cfg

    cfg = small_cfg()
    session = BoardSession(cfg, StreamSimTransport(LinkedProcessor(cfg)), timeout=1e9)
    assert session.ping() == 1
    session.info()                                    # the configuration hash matches
    other = cfg.replace(**{"model.seed": 5})
    with pytest.raises(ConfigMismatch):
        BoardSession(other, session.client.transport, timeout=1e9).info()

    g = torch.Generator().manual_seed(0)

    class Data:
        x_train = torch.rand(3, 64, generator=g) * 2 - 1
        y_train = torch.tensor([3, 1, 7])
        x_test = torch.rand(2, 64, generator=g) * 2 - 1
        y_test = torch.tensor([0, 9])

    result = train_on_board(session, cfg, Data, None, None)
    assert result["train_samples"] == 3 and result["test_samples"] == 2
    assert result["steps_on_board"] == 3

    golden = FixedModel(cfg)
    for x, y in zip(quantize(Data.x_train, cfg.arith.act), Data.y_train):
        golden.step(x, int(y))
    words = golden.memory_words()                     # one PE per layer: banks = row-major
    for name, mem in (("b1", "b1"), ("B1", "B1"), ("W2_pe0", "W2"), ("b2", "b2")):
        assert [session.read_word(name, a) for a in range(len(words[mem]))] == words[mem], name
    assert [session.read_word("W1_pe0", a) for a in range(0, 128, 9)] == words["W1"][::9]
