"""``ddfa board``: the supported boards, and a programmed board over its UART.

::

    ddfa board list
    ddfa board ping   --board icebreaker --port /dev/ttyUSB1
    ddfa board info   --board icebreaker --port /dev/ttyUSB1     # checks the configuration hash
    ddfa board status --board icebreaker --port /dev/ttyUSB1
    ddfa board train  --board icebreaker --port /dev/ttyUSB1 --samples 1437 --test 360 --json run.json
    ddfa board train  --board icebreaker --port /dev/ttyUSB1 --on-chip --epochs 10 --check --json run.json
    ddfa board serve  --board icebreaker --listen 127.0.0.1:5000    # a virtual board ...
    ddfa board ping   --board icebreaker --port socket://127.0.0.1:5000   # ... is a port too

Every request goes out as a link frame (``docs/HOST-LINK.md``) carrying one host-protocol
command (``docs/HOST-PROTOCOL.md``). :class:`BoardSession` is the same conversation for
any :class:`ddfa.cli.link_client.Transport`, so the tests drive it into an RTL simulation.
``serve`` runs the board's logic in Verilator behind a TCP socket (:mod:`sim.virtual_board`);
the other commands reach it through pyserial's ``socket://`` URLs.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import sys
import time

from . import (add_config_args, check_data, config_from_args, count_or_all, nonnegative_int, positive_float,
               positive_int)
from ..config import BOARDS, Config, config_hash
from ..data import load_config_coded, load_config_dataset
from ..protocol import HostProtocol, HostReplyError, Opcode
from .output import check_output_dir, check_output_file, write_text
from .progress import add_progress_args, progress_bar, wants_progress
from .link_client import LinkClient, LinkProtocolError, LinkRefused, LinkTimeout, SerialTransport
from .onchip import CountingTransport, UploadFailed, train_on_chip

__all__ = ["BoardSession", "ConfigMismatch", "add_arguments", "run", "listen_address"]


class ConfigMismatch(RuntimeError):
    """The board runs a processor of another configuration."""


class BoardSession:
    """Host-protocol commands over the link.

    Parameters
    ----------
    cfg : Config
        The configuration the board was built from (byte counts, memory map).
    transport : Transport
        Serial port or simulation.
    timeout : float
        Seconds to wait for each response.
    """

    def __init__(self, cfg: Config, transport, timeout: float = 2.0):
        self.cfg = cfg
        self.proto = HostProtocol(cfg)
        self.client = LinkClient(transport, timeout=timeout)

    def command(self, raw: bytes) -> bytes:
        """Send one host command (opcode + arguments); return its reply bytes."""
        reply = self.client.request(raw[0], raw[1:])
        expect = self.proto.reply_length(raw[0])
        if len(reply) != expect:
            raise LinkProtocolError(f"reply to opcode 0x{raw[0]:02x} has {len(reply)} bytes, {expect} expected")
        return reply

    def ping(self) -> int:
        reply = self.command(self.proto.encode_ping())
        if reply[0] != Opcode.PING:
            raise LinkProtocolError(f"bad PING reply {reply.hex()}")
        return reply[1]

    def info(self, check: bool = True) -> dict:
        info = self.proto.decode_info(self.command(self.proto.encode_info()))
        info["expected_hash"] = config_hash(self.cfg)
        if check and info["config_hash"] != info["expected_hash"]:
            raise ConfigMismatch(f"the board runs configuration hash {info['config_hash']:#010x}, this "
                                 f"configuration is {info['expected_hash']:#010x}: build and program it "
                                 f"('ddfa build ... --program') or pass the configuration it was built from")
        return info

    def status(self) -> dict:
        return self.proto.decode_status(self.command(self.proto.encode_status()))

    def load(self, x_q, label: int) -> None:
        self.command(self.proto.encode_load_sample([int(v) for v in x_q], int(label)))

    def train(self, x_q, label: int) -> int:
        """One training step on one sample; returns the class the forward pass predicted."""
        self.load(x_q, label)
        return self.proto.decode_class(self.command(self.proto.encode_train()), Opcode.TRAIN)

    def infer(self, x_q) -> int:
        self.load(x_q, 0)
        return self.proto.decode_class(self.command(self.proto.encode_infer()), Opcode.INFER)

    def read_word(self, mem: int | str, addr: int) -> int:
        return self.proto.decode_word(self.command(self.proto.encode_read_mem(mem, addr)), mem)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the supported boards")
    for name, text in (("ping", "check that the processor answers"),
                       ("info", "identify the bitstream (configuration hash)"),
                       ("status", "steps, cycles of the last step, last class"),
                       ("train", "stream a data set through the board: train, then test")):
        q = sub.add_parser(name, help=text, description=text)
        add_config_args(q)
        q.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB1 (iCEBreaker), or "
                                                     "socket://HOST:PORT for a virtual board ('ddfa board serve')")
        q.add_argument("--timeout", type=positive_float, default=2.0, help="seconds to wait for each response")
        q.add_argument("--json", metavar="PATH", help="write the result as JSON")
        if name == "train":
            q.add_argument("--samples", type=positive_int, help="training samples (default: the whole training set)")
            q.add_argument("--test", type=count_or_all, default="all", metavar="N|all",
                           help="test samples (default: all, the whole test set)")
            q.add_argument("--no-check", action="store_true", help="skip the configuration hash check")
            q.add_argument("--on-chip", action="store_true",
                           help="upload the data set to the board's dataset store (unless it holds it already), "
                                "train --epochs on the chip, then evaluate the test set on the chip")
            q.add_argument("--epochs", type=positive_int,
                           help="with --on-chip: epochs to train (default: the configuration's train.epochs)")
            q.add_argument("--check", action="store_true",
                           help="with --on-chip: read every memory word and LFSR back and compare them with the "
                                "fixed-point model after the same epochs (state_matches_golden)")
            add_progress_args(q, " (training samples)")
    text = "a virtual board: the board's logic in Verilator behind a TCP socket"
    q = sub.add_parser("serve", help=text, description=text + " (the other commands reach it with "
                       "--port socket://HOST:PORT)")
    add_config_args(q)
    q.add_argument("--listen", type=listen_address, default=("127.0.0.1", 0), metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:0; port 0: any free port, the line "
                        "'listening on HOST:PORT' names it)")
    q.add_argument("--clients", type=nonnegative_int, default=1, metavar="N",
                   help="serve N clients one after another, the board keeping its state, then exit "
                        "(default 1; 0: until Ctrl-C)")
    q.add_argument("--build-dir", help="where Verilator builds are cached (default build/sim or $DDFA_SIM_BUILD)")


def listen_address(text: str) -> tuple[str, int]:
    """``type=`` for ``--listen``: ``HOST:PORT`` (``[::1]:PORT`` for IPv6) with a port of
    0 to 65535."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT; write e.g. 127.0.0.1:5000")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {port!r} of {text!r} is not a number; write e.g. "
                                         f"127.0.0.1:5000") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number} is not 0..65535 (0: any free port)")
    return host, number


def _list() -> int:
    from boards.platforms import uart_description
    from boards.toolchain import PROGRAMMERS, find_tool
    print(f"{'board':16} {'device':11} {'clock':>7}  {'baud':>9}  {'UART':64} programmer")
    for b in BOARDS.values():
        exe, package = PROGRAMMERS[b.family]
        prog = exe if find_tool(exe) else f"{exe} (missing: apt-get install {package})"
        print(f"{b.name:16} {b.device:11} {b.clock_mhz:5g} MHz  {b.baud:>9}  {uart_description(b.name):64} {prog}")
    return 0


def train_on_board(session: BoardSession, cfg: Config, data, n_train: int | None, n_test: int | None,
                   progress=None) -> dict:
    """Train on ``n_train`` samples in order (one step each), then infer ``n_test``."""
    from golden.arith import quantize
    act = cfg.arith.act
    xs, ys = data.x_train[:n_train], data.y_train[:n_train]
    xt, yt = data.x_test[:n_test], data.y_test[:n_test]
    t0 = time.monotonic()
    correct_train = 0
    for k, (x, y) in enumerate(zip(quantize(xs, act), ys)):
        correct_train += session.train(x.tolist(), int(y)) == int(y)
        if progress:
            progress(k + 1, len(xs))
    t_train = time.monotonic() - t0
    t1 = time.monotonic()
    correct_test = sum(session.infer(x.tolist()) == int(y) for x, y in zip(quantize(xt, act), yt))
    t_test = time.monotonic() - t1
    st = session.status()
    return {
        "board": cfg.hardware.board, "dataset": cfg.model.dataset, "layers": list(cfg.model.layers),
        "train_samples": len(xs), "online_train_accuracy": correct_train / max(1, len(xs)),
        "test_samples": len(xt), "test_accuracy": correct_test / max(1, len(xt)),
        "train_samples_per_s": len(xs) / t_train if t_train else None,
        "infer_samples_per_s": len(xt) / t_test if t_test else None,
        "steps_on_board": st["steps"], "cycles_last_step": st["cycles"],
    }


def _train_on_chip(args, session, transport, cfg: Config, coded) -> dict:
    """``--on-chip``, with progress bars for the upload (blocks) and the training
    (samples, the epoch, and the chip's samples/s at the board's clock)."""
    epochs = args.epochs or cfg.train.epochs
    show = wants_progress(args.progress)
    with progress_bar(None, "upload", "block", show) as up, \
            progress_bar(epochs * coded.n_train, "train", "sample", show) as bar:
        def on_upload(k, n):
            up.total = n
            up.update(k - up.n)

        def on_train(done, epoch, rate):
            bar.update(done - bar.n)
            bar.set_postfix(epoch=epoch, chip=f"{rate:,.0f} samples/s")

        return train_on_chip(session, transport, cfg, coded, epochs, args.check, on_train, on_upload)


def _cannot_listen(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host:port`` (with the fix), or None."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"{exc.strerror}; give an address of this machine, e.g. 127.0.0.1:5000"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            probe.listen(1)
        except OSError as exc:
            fix = {errno.EADDRINUSE: "choose another port (0: any free one)",
                   errno.EACCES: "choose a port of 1024 or more",
                   errno.EADDRNOTAVAIL: "give an address of this machine, e.g. 127.0.0.1"}.get(exc.errno,
                                                                                           "check the address")
            return f"{exc.strerror}; {fix}"
    return None


def _serve(args: argparse.Namespace, cfg: Config) -> int:
    """Build (or reuse) the virtual board, then become it: the harness replaces this
    process, so Ctrl-C and SIGTERM reach it directly and it exits cleanly."""
    from sim.virtual_board import build, command
    host, port = args.listen
    problem = _cannot_listen(host, port)
    if problem:                                       # said before a build, not after it
        print(f"ddfa board serve: error: cannot listen on {host}:{port}: {problem}", file=sys.stderr)
        return 2
    if args.build_dir is not None:
        check_output_dir(args.build_dir, "--build-dir")
    say = lambda line: print(f"ddfa board serve: {line}", file=sys.stderr, flush=True)
    board = build(cfg, args.build_dir, log=say)
    say(f"{cfg.name}: " + ("reusing " if board.reused else f"built in {board.build_seconds:.1f} s: ")
        + f"{board.executable}; UART at {board.divisor} cycles a bit; connect with "
          f"--port socket://HOST:PORT")
    argv = command(board, host, port, args.clients)
    sys.stdout.flush()
    os.execv(argv[0], argv)
    return 0                                          # not reached


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list()
    cfg = config_from_args(args)
    if args.action == "serve":
        return _serve(args, cfg)
    if args.action == "train":
        check_data(cfg, getattr(args, "data_dir", None))
    if args.json:
        check_output_file(args.json, "--json")
    on_chip = args.action == "train" and args.on_chip
    if args.action == "train" and not on_chip and (args.check or args.epochs):
        print("ddfa board: error: --epochs and --check go with --on-chip", file=sys.stderr)
        return 2
    if on_chip and cfg.chip_store is None:
        print(f"ddfa board: error: this configuration's processor has no dataset store: use one built with "
              f"--set hardware.dataset_store=true (iCEBreaker), or train over the link (without --on-chip)",
              file=sys.stderr)
        return 2
    try:
        transport = CountingTransport(SerialTransport(args.port, cfg.hardware.baud))
    except Exception as exc:                          # pyserial's SerialException and friends
        hint = ("; is a virtual board listening there? start one with 'ddfa board serve --listen HOST:PORT'"
                if args.port.startswith("socket://") else "")
        print(f"ddfa board: error: cannot open {args.port}: {exc}{hint}", file=sys.stderr)
        return 2
    session = BoardSession(cfg, transport, timeout=args.timeout)
    try:
        if args.action == "ping":
            result = {"protocol_version": session.ping()}
        elif args.action == "info":
            result = session.info()
        elif args.action == "status":
            result = session.status()
        elif on_chip:
            if not args.no_check:
                session.info()
            coded = load_config_coded(cfg, getattr(args, "data_dir", None))
            result = _train_on_chip(args, session, transport, cfg, coded)
        else:
            if not args.no_check:
                session.info()
            data = load_config_dataset(cfg, getattr(args, "data_dir", None))
            n_test = None if args.test == "all" else args.test
            n = min(args.samples or len(data.x_train), len(data.x_train))
            with progress_bar(n, "train", "sample", wants_progress(args.progress)) as bar:
                result = train_on_board(session, cfg, data, args.samples, n_test,
                                        lambda k, n: bar.update(k - bar.n))
    except (LinkTimeout, LinkRefused, LinkProtocolError, ConfigMismatch, HostReplyError, UploadFailed) as exc:
        print(f"ddfa board: error: {exc}", file=sys.stderr)
        return 2
    finally:
        transport.close()
    text = json.dumps(result, indent=2, default=int)
    print(text)
    if args.json:
        write_text(args.json, text + "\n", "--json")
    return 0
