"""Amaranth platforms of the supported boards, each with a ``uart`` resource.

``ddfa.config.BOARDS`` names each board's amaranth-boards platform class. The
iCEBreaker and the ULX3S route a UART through their USB bridge (FTDI) and their
platforms already declare it. The UPduino v3 and the OrangeCrab have no USB UART: their
``uart`` is put on header pins here (:data:`EXTRA_UART`) for a 3.3 V USB-serial adapter.
To support another board, see ``docs/BOARDS.md``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from amaranth.build import Attrs, Pins, Resource, Subsignal

from ddfa.config import BOARDS, Board, ConfigError

__all__ = ["EXTRA_UART", "UartPins", "platform_class", "make_platform", "uart_description"]


@dataclass(frozen=True)
class UartPins:
    """A UART on header pins: FPGA pin names, the header labels a person wires to, and
    the IO attributes."""

    rx: str
    tx: str
    where: str
    attrs: dict


#: Boards whose platform lacks a ``uart`` resource: where this project puts one.
EXTRA_UART: dict[str, UartPins] = {
    # UPduino v3.0: header JP6 (right row), FPGA pins 45 and 47 (free IO, not the flash).
    "upduino-v3": UartPins(rx="45", tx="47", where="header pins 45 (FPGA RX) and 47 (FPGA TX)",
                           attrs={"IO_STANDARD": "SB_LVCMOS", "PULLUP": 1}),
    # OrangeCrab r0.2: Feather pins 0 (RX) and 1 (TX).
    "orangecrab-25f": UartPins(rx="N17", tx="M18", where="Feather header pins 0 (FPGA RX) and 1 (FPGA TX)",
                               attrs={"IO_TYPE": "LVCMOS33", "PULLMODE": "UP"}),
}


def platform_class(board: Board | str):
    """The platform class of ``board`` (imported from ``Board.platform``)."""
    b = BOARDS[board] if isinstance(board, str) else board
    module, _, cls = b.platform.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as exc:
        raise ConfigError("hardware.board", f"platform {b.platform} of board {b.name} cannot be loaded ({exc})",
                          "install amaranth-boards ('make setup') or fix the BOARDS entry") from None


def make_platform(board: Board | str):
    """A platform instance for ``board`` with a ``uart`` resource, and without build
    steps that need tools the open flow does not ship (the OrangeCrab's ``dfu-suffix``
    is run only when programming)."""
    b = BOARDS[board] if isinstance(board, str) else board
    base = platform_class(b)

    class Platform(base):
        @property
        def command_templates(self):
            return [t for t in super().command_templates if "dfu-suffix" not in t]

        @property
        def required_tools(self):
            return [t for t in super().required_tools if t != "dfu-suffix"]

    Platform.__name__ = Platform.__qualname__ = f"{base.__name__}ForDDFA"
    platform = Platform()
    if not _has_resource(platform, "uart"):
        pins = EXTRA_UART.get(b.name)
        if pins is None:
            raise ConfigError("hardware.board", f"board {b.name} has no 'uart' resource",
                              "add one to boards/platforms.py EXTRA_UART (see docs/BOARDS.md)")
        platform.add_resources([Resource("uart", 0,
                                         Subsignal("rx", Pins(pins.rx, dir="i")),
                                         Subsignal("tx", Pins(pins.tx, dir="o")),
                                         Attrs(**pins.attrs))])
    return platform


def uart_description(board: str) -> str:
    """Where a person finds the board's UART."""
    if board in EXTRA_UART:
        return f"3.3 V USB-serial adapter on {EXTRA_UART[board].where}"
    return {"icebreaker": "USB (FTDI FT2232H, second interface: /dev/ttyUSB1 on Linux)",
            "ulx3s-85f": "USB (FTDI FT231X on US1: /dev/ttyUSB0 on Linux)"}.get(board, "the platform's uart resource")


def _has_resource(platform, name: str) -> bool:
    return any(res_name == name for res_name, _ in platform.resources)
