"""The host protocol's definitions, shared by the hardware (:mod:`hdl.link`,
:mod:`hdl.host`) and the host side (:mod:`ddfa.cli.link_client`, :mod:`ddfa.cli.board`):
frame constants, the CRC, the link's error codes.

``docs/HOST-LINK.md`` (frames) and ``docs/HOST-PROTOCOL.md`` (commands) specify them.
"""

from __future__ import annotations

import enum
from typing import Iterable

__all__ = ["SYNC", "STATUS_OK", "STATUS_ERROR", "MAX_PAYLOAD", "CRC_INIT", "CRC_POLY", "CRC_CHECK",
           "LinkErrorCode", "crc16"]

SYNC = 0xA5
STATUS_OK = 0x00
STATUS_ERROR = 0x01
MAX_PAYLOAD = 0xFFFF

#: CRC-16/CCITT-FALSE: polynomial 0x1021, initial value 0xFFFF, no reflection, no final
#: XOR. ``crc16(b"123456789") == CRC_CHECK``.
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
CRC_CHECK = 0x29B1


class LinkErrorCode(enum.IntEnum):
    """Why the link refused a request frame (second payload byte of an error response)."""

    #: The CRC over CMD..PAYLOAD did not match.
    BAD_CRC = 0x01
    #: LEN is not the payload length that CMD takes.
    BAD_LENGTH = 0x02
    #: CMD is not a command the processor knows.
    UNKNOWN_CMD = 0x03
    #: The frame stopped: no byte for longer than the inter-byte timeout.
    TIMEOUT = 0x04
    #: The UART saw a bad stop bit or lost a byte (overrun) inside the frame.
    UART = 0x05


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes | Iterable[int], crc: int = CRC_INIT) -> int:
    """CRC-16/CCITT-FALSE of ``data``, continuing from ``crc``."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc
