"""Host side of the UART link (``docs/HOST-LINK.md``): framing, CRC and transports.

Pure Python. The same code frames requests for a board on a serial port or a virtual
board on a TCP socket (:class:`SerialTransport`) and for an RTL simulation in this
process (any object with the two methods of :class:`Transport`). The constants and the
CRC come from :mod:`ddfa.protocol`, which the hardware (:mod:`hdl.link`) reads as well,
so both ends read one definition.

A frame is::

    SYNC (0xA5) | CMD | LEN (16 bits, little-endian) | PAYLOAD (LEN bytes) | CRC (16 bits, big-endian)

with the CRC-16/CCITT-FALSE of ``CMD | LEN | PAYLOAD``. The CRC goes out most significant
byte first, so the CRC of ``CMD .. CRC`` is zero: the receiver needs no comparator.

Every request frame gets exactly one response frame with the same ``CMD``. Its payload
starts with a status byte: :data:`STATUS_OK` followed by the processor's answer, or
:data:`STATUS_ERROR` followed by one :class:`LinkErrorCode` (the frame was refused and
nothing reached the processor).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from ..protocol import (CRC_CHECK, CRC_INIT, CRC_POLY, MAX_PAYLOAD, STATUS_ERROR, STATUS_OK, SYNC,
                        LinkErrorCode, crc16)

__all__ = [
    "SYNC", "STATUS_OK", "STATUS_ERROR", "MAX_PAYLOAD", "CRC_INIT", "CRC_POLY", "CRC_CHECK",
    "LinkErrorCode", "crc16", "encode_frame", "Frame", "FrameDecoder", "decode_frame",
    "LinkTimeout", "LinkProtocolError", "LinkRefused",
    "Transport", "SerialTransport", "LinkClient",
]

def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    """One frame: ``SYNC | CMD | LEN | PAYLOAD | CRC``."""
    payload = bytes(payload)
    if not 0 <= cmd <= 0xFF:
        raise ValueError(f"command {cmd!r} is not a byte")
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = bytes([cmd, len(payload) & 0xFF, len(payload) >> 8]) + payload
    return bytes([SYNC]) + body + crc16(body).to_bytes(2, "big")


@dataclass(frozen=True)
class Frame:
    """A decoded frame. For a response, ``status`` and ``data`` split the payload."""

    cmd: int
    payload: bytes

    @property
    def status(self) -> int | None:
        return self.payload[0] if self.payload else None

    @property
    def data(self) -> bytes:
        return self.payload[1:]

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    @property
    def error(self) -> LinkErrorCode | int | None:
        """The link's error code of an error response, else None."""
        if self.status != STATUS_ERROR or len(self.payload) < 2:
            return None
        try:
            return LinkErrorCode(self.payload[1])
        except ValueError:
            return self.payload[1]


class FrameDecoder:
    """Incremental frame parser: :meth:`feed` bytes, get whole frames back.

    Bytes before a SYNC are skipped (counted in ``skipped``); a frame whose CRC does not
    match is dropped (counted in ``bad_crc``) and the search for SYNC resumes at the byte
    after the dropped frame's SYNC.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self.max_payload = max_payload
        self._buf = bytearray()
        self.skipped = 0
        self.bad_crc = 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames = []
        while True:
            start = self._buf.find(SYNC)
            if start < 0:
                self.skipped += len(self._buf)
                self._buf.clear()
                return frames
            self.skipped += start
            del self._buf[:start]
            if len(self._buf) < 4:
                return frames
            length = self._buf[2] | (self._buf[3] << 8)
            if length > self.max_payload:
                self.skipped += 1
                del self._buf[:1]
                continue
            total = 4 + length + 2
            if len(self._buf) < total:
                return frames
            if crc16(self._buf[1:total]) != 0:
                self.bad_crc += 1
                del self._buf[:1]
                continue
            frames.append(Frame(self._buf[1], bytes(self._buf[4:4 + length])))
            del self._buf[:total]

    @property
    def pending(self) -> int:
        """Bytes held that do not yet make a frame."""
        return len(self._buf)


def decode_frame(data: bytes) -> Frame:
    """Exactly one frame, nothing before or after it; :class:`ValueError` otherwise."""
    data = bytes(data)
    if len(data) < 6 or data[0] != SYNC:
        raise ValueError("not a frame: too short or no SYNC")
    length = data[2] | (data[3] << 8)
    if len(data) != 6 + length:
        raise ValueError(f"frame length {len(data)} does not match LEN {length}")
    if crc16(data[1:]) != 0:
        raise ValueError("bad CRC")
    return Frame(data[1], data[4:4 + length])


# --------------------------------------------------------------------------------------
# Transports and the client
# --------------------------------------------------------------------------------------

class LinkTimeout(TimeoutError):
    """No complete response frame arrived in time."""


class LinkProtocolError(RuntimeError):
    """The response does not belong to the request (other CMD, no or unknown status, an
    error without its code, the request itself echoed back)."""


class LinkRefused(RuntimeError):
    """The board's link refused the request frame; nothing reached the processor."""

    def __init__(self, cmd: int, code: LinkErrorCode | int):
        self.cmd = cmd
        self.code = code
        name = code.name if isinstance(code, LinkErrorCode) else f"0x{code:02x}"
        super().__init__(f"link refused command 0x{cmd:02x}: {name}")


class Transport(Protocol):
    """What :class:`LinkClient` needs from a byte pipe to the board or a simulation."""

    def write(self, data: bytes) -> None:
        """Send ``data`` (all of it)."""

    def read(self, size: int, timeout: float) -> bytes:
        """Return up to ``size`` bytes, waiting at most ``timeout`` seconds for the first;
        an empty result means nothing arrived."""


class SerialTransport:
    """A serial port (pyserial), 8N1 at the configuration's baud rate.

    Parameters
    ----------
    port : str
        Device, e.g. ``/dev/ttyUSB1`` (the iCEBreaker's FTDI offers the UART on its
        second interface) or ``/dev/ttyUSB0`` (ULX3S), or any URL that pyserial's
        ``serial_for_url`` opens: ``socket://host:port`` (a virtual board, ``ddfa board
        serve``: :mod:`sim.virtual_board`), ``loop://``. A ``socket://`` port ignores the
        baud rate.
    baud : int
        Bits per second: ``cfg.hardware.baud``.
    """

    def __init__(self, port: str, baud: int):
        self.port = port
        try:
            import serial
        except ImportError:
            raise RuntimeError("pyserial is not installed; run 'make setup' "
                               "(or '.venv/bin/pip install pyserial')") from None
        self._serial = serial.serial_for_url(port, baudrate=baud, bytesize=8, parity="N", stopbits=1,
                                             timeout=0.1)
        self._serial.reset_input_buffer()

    def write(self, data: bytes) -> None:
        self._serial.write(data)
        self._serial.flush()

    def read(self, size: int, timeout: float) -> bytes:
        self._serial.timeout = timeout
        first = self._serial.read(1)
        if not first:
            return b""
        self._serial.timeout = 0
        return first + self._serial.read(max(0, size - 1))

    def close(self) -> None:
        self._serial.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LinkClient:
    """Request/response over a :class:`Transport`: one frame out, one frame back.

    Parameters
    ----------
    transport : Transport
        The byte pipe.
    timeout : float
        Seconds to wait for a whole response frame (training a sample may take a while
        on a slow configuration; the link itself answers a refused frame within its
        inter-byte timeout).
    """

    def __init__(self, transport: Transport, timeout: float = 2.0):
        self.transport = transport
        self.timeout = timeout
        self._decoder = FrameDecoder()

    @property
    def port(self) -> str:
        """The transport's port (``SerialTransport.port``), for error messages."""
        port = getattr(self.transport, "port", None)
        return repr(port) if port is not None else f"the {type(self.transport).__name__}"

    def send(self, cmd: int, payload: bytes = b"") -> None:
        self.transport.write(encode_frame(cmd, payload))

    def receive(self, timeout: float | None = None) -> Frame:
        """The next complete frame."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            frames = self._decoder.feed(b"")
            if frames:
                return frames[0]
            left = deadline - time.monotonic()
            if left <= 0:
                raise LinkTimeout(f"no board answered on {self.port}: no response frame within "
                                  f"{self.timeout if timeout is None else timeout} s ({self._decoder.pending} "
                                  f"bytes pending); check that --port is the board's UART ('ddfa board list') "
                                  f"and that the board is programmed")
            chunk = self.transport.read(4096, min(left, 0.1))
            if chunk:
                frames = self._decoder.feed(chunk)
                if frames:
                    if len(frames) > 1:
                        raise LinkProtocolError(f"{len(frames)} frames answered one request")
                    return frames[0]

    def request_frame(self, cmd: int, payload: bytes = b"", timeout: float | None = None) -> Frame:
        """Send one request, return its response frame (either status).

        Raises :class:`LinkProtocolError` for a frame that cannot be a response: another
        CMD, a payload without a status byte or with an unknown one, or an error without
        its code byte. Such a frame that is the request itself is named as an echo (a
        port that loops the request back, such as ``loop://``: no board answered); an
        echoed request whose payload begins with a status byte cannot be told from a
        response."""
        payload = bytes(payload)
        self.send(cmd, payload)
        frame = self.receive(timeout)
        echo = frame == Frame(cmd, payload)
        if echo and (frame.status not in (STATUS_OK, STATUS_ERROR) or
                     (frame.status == STATUS_ERROR and len(frame.payload) < 2)):
            raise LinkProtocolError(f"no board answered on {self.port}: the port echoed the request "
                                    f"(command 0x{cmd:02x}) back, as a loopback such as loop:// or a cable "
                                    f"with RX wired to TX does; give --port the board's UART "
                                    f"('ddfa board list' names it, e.g. /dev/ttyUSB1 for the iCEBreaker)")
        if frame.cmd != cmd:
            raise LinkProtocolError(f"response to 0x{cmd:02x} carries command 0x{frame.cmd:02x}")
        if frame.status is None:
            raise LinkProtocolError(f"response to 0x{cmd:02x} has no status byte (empty payload): "
                                    f"the board's link always sends one; check that it runs this project's bitstream")
        if frame.status not in (STATUS_OK, STATUS_ERROR):
            raise LinkProtocolError(f"response to 0x{cmd:02x} has status 0x{frame.status:02x}, neither OK (0x00) "
                                    f"nor ERROR (0x01); check that the board runs this project's bitstream")
        if frame.status == STATUS_ERROR and len(frame.payload) < 2:
            raise LinkProtocolError(f"error response to 0x{cmd:02x} lacks its error code byte (payload "
                                    f"{frame.payload.hex()}); the link sends STATUS_ERROR and one code "
                                    f"(docs/HOST-LINK.md)")
        return frame

    def request(self, cmd: int, payload: bytes = b"", timeout: float | None = None) -> bytes:
        """Send one request and return the processor's answer; raises :class:`LinkRefused`
        when the link refused the frame."""
        frame = self.request_frame(cmd, payload, timeout)
        if not frame.ok:
            raise LinkRefused(cmd, frame.error)
        return frame.data
