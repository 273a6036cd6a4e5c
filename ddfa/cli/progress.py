"""Progress bars of the long commands: one rule for all of them.

``train`` (samples of every epoch), ``simulate`` (training steps), ``build`` (stages),
``sweep`` (jobs done and failed) and ``board train`` (samples) show a tqdm bar on
stderr when stderr is a terminal and stay quiet otherwise (a log file, CI, a sweep's
worker); ``--progress`` / ``--no-progress`` force it either way.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

__all__ = ["add_progress_args", "wants_progress", "progress_bar"]


def add_progress_args(p: argparse.ArgumentParser, help_extra: str = "") -> None:
    """``--progress`` / ``--no-progress`` (``args.progress``: True, False or None = automatic)."""
    p.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="show a progress bar on stderr (default: when stderr is a terminal)" + help_extra)
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def wants_progress(flag: bool | None, stream=None) -> bool:
    """``flag`` where it was given, else whether ``stream`` (default ``sys.stderr``) is a terminal."""
    if flag is not None:
        return bool(flag)
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):                    # a closed or detached stream
        return False


def progress_bar(total: int | float | None, desc: str, unit: str, enabled: bool) -> tqdm:
    """A tqdm bar on stderr; ``enabled`` False gives a bar that prints nothing (its
    ``update`` and ``close`` still work)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled, dynamic_ncols=True)
