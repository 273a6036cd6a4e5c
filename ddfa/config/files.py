"""Where a configuration comes from: an embedded default or a TOML file.

An embedded default is chosen by board name (``--board icebreaker``); a TOML file has the
same sections (``--config FILE``, see ``examples/config.toml``). Either may then take
command-line overrides (:meth:`Config.replace`).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from .core import Config
from .schema import ConfigError

__all__ = ["DEFAULTS", "default_config", "load_config"]

#: The embedded defaults, by board name.
DEFAULTS = ("icebreaker", "ulx3s-85f")


def _defaults() -> dict[str, str]:
    root = resources.files("ddfa") / "defaults"
    return {p.name[:-5]: p.name for p in root.iterdir() if p.name.endswith(".toml")}


def default_config(name: str) -> Config:
    """An embedded default by board name: ``icebreaker`` or ``ulx3s-85f``."""
    defaults = _defaults()
    if name not in defaults:
        raise ConfigError("--board", f"no embedded default {name!r}", f"use one of {', '.join(sorted(defaults))} "
                          "or --config FILE")
    text = (resources.files("ddfa") / "defaults" / defaults[name]).read_text(encoding="utf-8")
    return Config.from_dict(tomllib.loads(text), name=name)


def load_config(path: str | Path | None = None, board: str | None = None) -> Config:
    """``--config FILE`` or ``--board NAME`` (the embedded default ``icebreaker`` when neither)."""
    if path is not None and board is not None:
        raise ConfigError("--config/--board", "both were given", "give one of them")
    if path is None:
        return default_config(board or "icebreaker")
    p = Path(path)
    if not p.is_file():
        raise ConfigError("--config", f"no file {str(p)!r}", "give the path of a TOML file such as examples/config.toml")
    raw = p.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError("--config", f"{p} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                          "save the file as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("--config", f"{p} is not valid TOML ({exc})", "fix the syntax") from None
    return Config.from_dict(data, name=p.stem)
