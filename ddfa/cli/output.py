"""Output paths of the command line: checked before any work starts, written atomically.

Every command that writes a result (``--json PATH``, ``--out DIR``) calls
:func:`check_output_file` or :func:`check_output_dir` on it first, so that a path that
cannot be written (a folder where a file is meant, a folder under a file, a read-only
folder) is a one-line error before hours of training, not a traceback after them. The
result itself goes through :func:`write_text` or :func:`atomic_path`: a temporary file in
the same folder, renamed over the destination, so that an interrupted write never leaves
half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["OutputError", "check_output_file", "check_output_dir", "write_text", "write_json", "atomic_path"]


class OutputError(ValueError):
    """An output path that cannot be written; the message names the option, the problem and the fix."""

    def __init__(self, option: str, path: str | Path, problem: str, fix: str):
        super().__init__(f"{option} {str(path)!r}: {problem}. Fix: {fix}.")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _probe_writable(folder: Path) -> None:
    """Create and remove a temporary file in ``folder``: the one test of writability
    that also holds for read-only mounts and for the superuser."""
    fd, name = tempfile.mkstemp(dir=folder, prefix=".ddfa-probe-")
    os.close(fd)
    os.unlink(name)


def _make_folder(folder: Path, option: str, path: Path) -> None:
    for parent in [folder, *folder.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(option, path, f"{str(parent)!r} is a file, not a folder",
                                  "choose a path whose folders are folders")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(option, path, f"cannot create the folder {str(folder)!r} ({exc.strerror or exc})",
                          "choose a folder you can write to") from None
    try:
        _probe_writable(folder)
    except OSError as exc:
        raise OutputError(option, path, f"the folder {str(folder)!r} is not writable ({exc.strerror or exc})",
                          "choose a folder you can write to") from None


def check_output_file(path: str | Path, option: str = "--json") -> Path:
    """Check that a file can be written at ``path`` (creating its folder); return it.

    Raises :class:`OutputError` when ``path`` is a folder, when one of its folders is a
    file, or when its folder cannot be created or written.
    """
    p = Path(path)
    if str(path) == "" or p.is_dir() or str(path).endswith(("/", os.sep)):
        raise OutputError(option, path, "is a folder, not a file",
                          f"give a file name, e.g. {str(p / 'result.json')!r}")
    _make_folder(p.parent if str(p.parent) else Path("."), option, p)
    return p


def check_output_dir(path: str | Path, option: str = "--out") -> Path:
    """Check that ``path`` is (or can be created as) a writable folder; create it; return it."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(option, path, "is a file, not a folder", "give a folder (it is created if missing)")
    _make_folder(p, option, p)
    return p


@contextlib.contextmanager
def atomic_path(path: str | Path, option: str = "output"):
    """A temporary path in ``path``'s folder (same suffix), renamed to ``path`` when the
    block ends without an exception, removed otherwise."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, name = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=p.suffix or ".tmp")
    except OSError as exc:
        raise OutputError(option, p, f"cannot write ({exc.strerror or exc})", "choose a folder you can write to") \
            from None
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())           # as an ordinary open() would create it
        yield tmp
        os.replace(tmp, p)
    except OSError as exc:
        raise OutputError(option, p, f"cannot write ({exc.strerror or exc})", "choose a folder you can write to") \
            from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str, option: str = "output") -> None:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    with atomic_path(path, option) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj, option: str = "--json", **kw) -> None:
    """:func:`write_text` of ``json.dumps(obj, indent=1)`` plus a newline."""
    kw.setdefault("indent", 1)
    write_text(path, json.dumps(obj, **kw) + "\n", option)
