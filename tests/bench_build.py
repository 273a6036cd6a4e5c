"""Place and route the UART link with a stand-in core, to measure the open flow.

    make bench-build                       # icebreaker and ulx3s-85f
    .venv/bin/python -m tests.bench_build icebreaker --out build/bench

The design is boards.top.BoardTop around tests.link_loopback.EchoStub: PLL, UART, Link,
and an echo in place of the processor. It is a test design, never what ``ddfa build``
builds; it measures the toolchain's time and the link's size and speed on each board.
Prints one JSON report per board (the same fields as ``ddfa build --json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from boards.build import build
from boards.top import BoardTop
from ddfa.config import default_config

from .link_loopback import ECHO_COMMANDS, EchoStub


def loopback_top(cfg):
    return BoardTop(cfg, EchoStub(ECHO_COMMANDS), ECHO_COMMANDS)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("boards", nargs="*", default=["icebreaker", "ulx3s-85f"])
    p.add_argument("--out", default="build/bench")
    args = p.parse_args(argv)
    for name in args.boards:
        base = default_config(name) if name in ("icebreaker", "ulx3s-85f") else default_config("icebreaker")
        cfg = base.replace(**{"hardware.board": name}) if base.hardware.board != name else base
        res = build(cfg, loopback_top(cfg), Path(args.out) / name, name="loopback", with_cycles=False)
        print(res.to_json())
        print(f"{name}: {res.build_seconds} s, clock {res.clock_mhz} MHz, fmax {res.fmax_mhz} MHz, "
              f"timing {'met' if res.timing_met else 'NOT met'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
